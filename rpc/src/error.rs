//! The error model of SPEC section 5: a 4xx/5xx status and
//! `{"error": {"code": "snake_case_code", "message": "..."}}`, for every failure, axum's and
//! tower's own rejections included (`normalize` rewrites any error response that is not
//! already in this shape).

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use peerchain_ledger::StoreError;
use peerchain_ledger::mempool::MempoolError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::node_api::NodeError;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code (see docs/API.md for the list).
    #[schema(example = "nonce_too_low")]
    pub code: String,
    /// Human-readable explanation naming the values involved.
    #[schema(example = "nonce 7 is below the account nonce 9")]
    pub message: String,
}

impl ErrorBody {
    /// A body with `code` and `message`.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
            },
        }
    }
}

/// An error answered to an HTTP client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// snake_case code.
    pub code: &'static str,
    /// Message naming the values involved.
    pub message: String,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 429 `rate_limited`.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
    }

    /// 413 `body_too_large`.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body is larger than the limit of {limit} bytes"),
        )
    }

    /// The error a refused transaction answers with: 422 for a transaction invalid against
    /// the state, 429 `mempool_full`, 503 for a store failure (not a verdict on the
    /// transaction: retry later).
    pub fn from_mempool(e: &MempoolError) -> Self {
        let status = match e {
            MempoolError::Invalid(_) | MempoolError::ReplacementUnderpriced { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            MempoolError::Full { .. } => StatusCode::TOO_MANY_REQUESTS,
            MempoolError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(status, e.code(), e.to_string())
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code, self.message.clone())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, code = self.code, message = %self.message, "request failed");
        }
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS
            || self.status == StatusCode::SERVICE_UNAVAILABLE
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from(NodeError::Store(e))
    }
}

impl From<NodeError> for ApiError {
    /// The one mapping of node failures to HTTP: unknown things 404, requests that can never
    /// succeed 400, a failed store or a stopped service 503 (`Retry-After: 1`), a block of our
    /// own that our chain refused 500.
    fn from(e: NodeError) -> Self {
        let message = e.to_string();
        match e {
            NodeError::UnknownBlock(_)
            | NodeError::UnknownPeer { .. }
            | NodeError::NotBlocked { .. } => ApiError::not_found(message),
            NodeError::Genesis
            | NodeError::BadPeerId { .. }
            | NodeError::BadAddress { .. }
            | NodeError::LocalPeer { .. }
            | NodeError::UnknownAdversary { .. }
            | NodeError::AdversaryAtStartOnly { .. }
            | NodeError::BadLinkFault(_) => ApiError::bad_request("bad_request", message),
            NodeError::TooManyLinkFaults { .. } => {
                ApiError::new(StatusCode::CONFLICT, "too_many_link_faults", message)
            }
            NodeError::AdversaryNotAllowed => {
                ApiError::new(StatusCode::FORBIDDEN, "adversary_not_allowed", message)
            }
            NodeError::Store(_) => {
                tracing::error!(error = %message, "store failure while serving a request");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    message,
                )
            }
            NodeError::Busy { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
            }
            NodeError::DiskFull { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "disk_full", message)
            }
            NodeError::Stopped(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            NodeError::MinedBlockRefused { .. } => ApiError::internal(message),
        }
    }
}

/// Fallback of the router: 404 `not_found` naming the method and path.
pub(crate) async fn fallback(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

/// Middleware: rewrites any error response that is not JSON (axum's 405, tower-http's 413 and
/// timeouts, extractor rejections) into the error model, keeping its status and headers.
pub(crate) async fn normalize(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (code, message) = describe(status, &method, &path);
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut fresh = ApiError::new(status, code, message).into_response();
    for (name, value) in fresh.headers_mut().drain() {
        if let Some(name) = name {
            parts.headers.insert(name, value);
        }
    }
    Response::from_parts(parts, fresh.into_body())
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn describe(status: StatusCode, method: &Method, path: &str) -> (&'static str, String) {
    match status {
        StatusCode::NOT_FOUND => ("not_found", format!("no route for {method} {path}")),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            format!("method {method} is not allowed on {path}"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body_too_large",
            format!("request body of {method} {path} is larger than the limit"),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "expected Content-Type: application/json".to_owned(),
        ),
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => (
            "timeout",
            format!("{method} {path} did not complete within the request time limit"),
        ),
        StatusCode::TOO_MANY_REQUESTS => (
            "rate_limited",
            "too many requests in progress; retry later".to_owned(),
        ),
        s if s.is_server_error() => ("internal", format!("{method} {path} failed: {s}")),
        s => ("bad_request", format!("{method} {path} was refused: {s}")),
    }
}
