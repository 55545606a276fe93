//! Pages of lists: `limit` (default 25, at most 100) and an opaque `cursor`; a page is
//! `{"items": [...], "next_cursor": "..." | null}`. The cursor formats are private to each
//! list (docs/API.md describes them for maintainers; clients pass them back unchanged).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::config::{DEFAULT_PAGE, MAX_PAGE};
use crate::error::ApiError;
use crate::extract::shorten;

/// `limit` and `cursor` of a list request.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page (default 25).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page; absent (or empty) for the first page.
    pub cursor: Option<String>,
}

impl PageParams {
    /// The page size, or 400 `invalid_limit` outside 1..=100.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE as u32).contains(&n) => Ok(n as usize),
            Some(n) => Err(ApiError::bad_request(
                "invalid_limit",
                format!("limit {n} is outside 1..={MAX_PAGE}"),
            )),
        }
    }

    /// The cursor parsed by `parse`, or 400 `invalid_cursor`.
    pub fn cursor<C>(&self, parse: impl FnOnce(&str) -> Option<C>) -> Result<Option<C>, ApiError> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => parse(text).map(Some).ok_or_else(|| invalid_cursor(text)),
        }
    }
}

/// 400 `invalid_cursor` naming the cursor.
pub fn invalid_cursor(text: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_cursor",
        format!(
            "cursor {:?} was not issued by this list; pass next_cursor back unchanged",
            shorten(text)
        ),
    )
}

/// One page of a list, newest first unless the list says otherwise.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Cursor of the next page, `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Cursor of a list walked by a decimal position (heights, offsets, indexes).
pub fn number_cursor(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors() {
        let p = PageParams::default();
        assert_eq!(p.limit().expect("default"), 25);
        let p = PageParams {
            limit: Some(101),
            cursor: Some("x".into()),
        };
        assert_eq!(p.limit().expect_err("too big").code, "invalid_limit");
        assert_eq!(
            p.cursor(number_cursor).expect_err("bad").code,
            "invalid_cursor"
        );
        let empty = PageParams {
            limit: None,
            cursor: Some(String::new()),
        };
        assert_eq!(empty.cursor(number_cursor).expect("first page"), None);
        assert_eq!(number_cursor("17"), Some(17));
        assert_eq!(number_cursor("+17"), None);
        assert_eq!(number_cursor(""), None);
    }
}
