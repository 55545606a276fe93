//! Request extractors whose rejections follow the error model, and parsers of the path
//! parameters (hashes, addresses, block ids) with messages that name the input.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use peerchain_ledger::{Address, Hash};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body; missing, extra or mistyped fields are 400 `invalid_json`, a body over the
/// limit is 413 `body_too_large`, another content type is 415 `unsupported_media_type`.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection, state.limits().max_body_bytes)),
        }
    }
}

pub(crate) fn json_rejection(rejection: JsonRejection, limit: usize) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
        JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::body_too_large(limit)
        }
        JsonRejection::JsonDataError(e) => invalid_json(&e.body_text()),
        JsonRejection::JsonSyntaxError(e) => invalid_json(&e.body_text()),
        other => ApiError::bad_request("invalid_json", other.body_text()),
    }
}

/// 400 `invalid_json` with serde's description (it names the field and the value).
pub(crate) fn invalid_json(detail: &str) -> ApiError {
    let detail = detail
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .or_else(|| detail.strip_prefix("Failed to parse the request body as JSON: "))
        .unwrap_or(detail);
    ApiError::bad_request("invalid_json", format!("invalid JSON body: {detail}"))
}

/// 415 `unsupported_media_type`.
pub(crate) fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "expected Content-Type: application/json",
    )
}

/// Whether the request declares a JSON body (`application/json` or `application/*+json`).
pub(crate) fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Query parameters; a value of the wrong type is 400 `invalid_query`.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| {
                let detail = e.body_text();
                let detail = detail
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&detail);
                ApiError::bad_request("invalid_query", format!("invalid query string: {detail}"))
            })
    }
}

/// Parses a 64-hex-digit hash (`0x` prefix and uppercase accepted); `what` names it.
pub(crate) fn parse_hash(text: &str, what: &str) -> Result<Hash, ApiError> {
    text.parse::<Hash>().map_err(|e| {
        ApiError::bad_request(
            "invalid_hash",
            format!(
                "{what} {:?} is not a hash of 64 hex digits: {e}",
                shorten(text)
            ),
        )
    })
}

/// Parses a 40-hex-digit address.
pub(crate) fn parse_address(text: &str) -> Result<Address, ApiError> {
    text.parse::<Address>().map_err(|e| {
        ApiError::bad_request(
            "invalid_address",
            format!("address {:?} is not 40 hex digits: {e}", shorten(text)),
        )
    })
}

/// A block named by hash or by main-chain height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockId {
    /// 64 hex digits.
    Hash(Hash),
    /// A decimal main-chain height.
    Height(u64),
}

/// Parses `{id}` of the block routes: 64 hex digits are a hash, a decimal number a height.
pub(crate) fn parse_block_id(text: &str) -> Result<BlockId, ApiError> {
    let looks_like_hash = text.len() == 64 || text.starts_with("0x") || text.starts_with("0X");
    if !looks_like_hash && !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u64>().map(BlockId::Height).map_err(|_| {
            ApiError::bad_request(
                "invalid_block_id",
                format!("block height {} is out of range", shorten(text)),
            )
        });
    }
    text.parse::<Hash>().map(BlockId::Hash).map_err(|_| {
        ApiError::bad_request(
            "invalid_block_id",
            format!(
                "block id {:?} is neither a hash of 64 hex digits nor a decimal height",
                shorten(text)
            ),
        )
    })
}

/// Cuts long user input for messages.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids() {
        assert_eq!(parse_block_id("0").expect("height"), BlockId::Height(0));
        assert_eq!(parse_block_id("42").expect("height"), BlockId::Height(42));
        let h = "ab".repeat(32);
        assert!(matches!(parse_block_id(&h), Ok(BlockId::Hash(_))));
        assert!(matches!(
            parse_block_id(&format!("0x{}", h.to_uppercase())),
            Ok(BlockId::Hash(_))
        ));
        // 64 decimal digits are a hash, not a height.
        assert!(matches!(
            parse_block_id(&"1".repeat(64)),
            Ok(BlockId::Hash(_))
        ));
        for bad in ["", "-1", "1.5", "abc", "99999999999999999999999", "0x12"] {
            let e = parse_block_id(bad).expect_err(bad);
            assert_eq!(e.code, "invalid_block_id", "{bad}");
        }
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(!has_json_content_type(&h));
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().expect("value"),
        );
        assert!(has_json_content_type(&h));
        h.insert(
            header::CONTENT_TYPE,
            "application/problem+json".parse().expect("value"),
        );
        assert!(has_json_content_type(&h));
        h.insert(header::CONTENT_TYPE, "text/plain".parse().expect("value"));
        assert!(!has_json_content_type(&h));
    }

    #[test]
    fn long_input_is_cut() {
        assert_eq!(shorten(&"x".repeat(200)).len(), 83);
    }
}
