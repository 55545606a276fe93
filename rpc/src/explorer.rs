//! `GET /`: the web block explorer. This is a placeholder page until the explorer lands; the
//! route and handler stay here so it can be replaced without touching the router.

use axum::response::Html;

const PLACEHOLDER: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>peerchain node</title></head>
<body>
<h1>peerchain node</h1>
<p>The block explorer is not built yet. The JSON API lives under <code>/v1</code>; its schema is
at <a href="/openapi.json">/openapi.json</a>.</p>
<ul>
<li><a href="/v1/status">/v1/status</a></li>
<li><a href="/v1/blocks">/v1/blocks</a></li>
<li><a href="/v1/mempool">/v1/mempool</a></li>
<li><a href="/metrics">/metrics</a></li>
</ul>
</body>
</html>
"#;

/// The explorer page.
#[utoipa::path(
    get, path = "/", tag = "explorer",
    responses((status = 200, description = "The web block explorer", content_type = "text/html", body = String))
)]
pub(crate) async fn index() -> Html<&'static str> {
    Html(PLACEHOLDER)
}
