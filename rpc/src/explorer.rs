//! The web block explorer: a dependency-free single-page app (HTML, JavaScript, CSS) embedded
//! in the binary, so it works offline with no build step. `GET /` serves the page; its assets
//! live under `/explorer/`. `/explorer/nodes.json` lists the nodes of a local testnet for the
//! testnet view, read from the file the node was given (written by `scripts/testnet.sh`).
//! Its chart code (`assets/charts.js`, [`CHARTS_JS`]) is shared with the scenario reports,
//! which inline it.

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");
/// The chart code (line charts, bar charts, block trees as SVG) the explorer and the scenario
/// reports share: served at `/explorer/charts.js`, inlined into every `report.html`.
pub const CHARTS_JS: &str = include_str!("../assets/charts.js");
const CACHE: &str = "no-cache";

/// The explorer page.
#[utoipa::path(
    get, path = "/", tag = "explorer",
    responses((status = 200, description = "The web block explorer", content_type = "text/html", body = String))
)]
pub(crate) async fn index() -> Html<&'static str> {
    Html(INDEX)
}

/// The explorer's script.
pub(crate) async fn app_js() -> Response {
    script(APP_JS)
}

/// The chart code the explorer shares with the scenario reports.
pub(crate) async fn charts_js() -> Response {
    script(CHARTS_JS)
}

fn script(text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        text,
    )
        .into_response()
}

/// The explorer's style sheet.
pub(crate) async fn style_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        STYLE_CSS,
    )
        .into_response()
}

/// The testnet's node URLs (a JSON array); empty when the node was given no list.
pub(crate) async fn nodes_json(State(state): State<AppState>) -> Result<Response, ApiError> {
    let Some(path) = state.api().explorer_nodes.clone() else {
        return Ok(axum::Json(Vec::<String>::new()).into_response());
    };
    let text = tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| ApiError::not_found(format!("testnet node list {}: {e}", path.display())))?;
    let list: Vec<String> = serde_json::from_str(&text).map_err(|e| {
        ApiError::internal(format!(
            "testnet node list {} is not a JSON array of URLs: {e}",
            path.display()
        ))
    })?;
    Ok(axum::Json(list).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_reference_each_other() {
        assert!(INDEX.contains("/explorer/app.js") && INDEX.contains("/explorer/style.css"));
        assert!(
            matches!(
                (INDEX.find("/explorer/charts.js"), INDEX.find("/explorer/app.js")),
                (Some(charts), Some(app)) if charts < app
            ),
            "the shared chart code loads before the app that calls it"
        );
        assert!(
            APP_JS.contains("PeerchainCharts.blockTree") && CHARTS_JS.contains("PeerchainCharts ="),
            "the explorer draws with the shared chart code"
        );
        let lower = CHARTS_JS.to_ascii_lowercase();
        assert!(
            !lower.contains("</script") && !lower.contains("<!--"),
            "the chart code can be inlined in a report's <script>"
        );
        assert!(
            APP_JS.contains("/v1/events"),
            "the explorer updates live over SSE"
        );
        assert!(
            !INDEX.contains("http://") && !INDEX.contains("https://"),
            "no CDN or external asset"
        );
    }
}
