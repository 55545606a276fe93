//! The charts of report.html as specs for the chart code the explorer and the report share
//! (`rpc/assets/charts.js`, [`peerchain_rpc::CHARTS_JS`]): each chart is a `<div data-chart>`
//! holding its spec as JSON, and one inline script at the end of the page draws them all, so
//! the page still opens from disk and fetches nothing.
//!
//! It owns: the spec types (their fields are charts.js's, snake_case) and the embedding.
//! It must never: draw (positions, scales and ticks are charts.js's) or hold a statistic the
//! report does not.

use serde::Serialize;

use super::esc;

/// Draws every `[data-chart]` element with the shared chart code; a chart that fails says why
/// in its place and on the console (which the report's browser check fails on).
const DRAW: &str = r#"for (const el of document.querySelectorAll("[data-chart]")) {
  try {
    el.innerHTML = PeerchainCharts[el.dataset.chart](JSON.parse(el.dataset.spec));
  } catch (e) {
    el.textContent = `chart not drawn: ${e.message}`;
    console.error(`chart ${el.dataset.chart} not drawn:`, e);
  }
}"#;

/// The scripts at the end of the page: the shared chart code, then the drawing.
pub(super) fn scripts() -> String {
    format!(
        "<script>\n{}\n</script>\n<script>\n{DRAW}\n</script>\n",
        peerchain_rpc::CHARTS_JS
    )
}

/// A chart's place in the page: `kind` is the charts.js function that draws `spec`.
fn embed(kind: &str, spec: &impl Serialize) -> String {
    // Specs are plain data (strings and numbers; a non-finite number becomes null, which
    // charts.js leaves out), so serialising them cannot fail.
    let json = serde_json::to_string(spec).unwrap_or_else(|_| "{}".to_owned());
    // What shows until the script draws (and with scripts off).
    format!(
        "<div class=\"chart\" data-chart=\"{kind}\" data-spec=\"{}\"><p><small>(a chart drawn \
         by this page's script; its figures are also in report.json)</small></p></div>\n",
        esc(&json)
    )
}

/// A line chart (charts.js `lineChart`).
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct LineChart {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'static str>,
    pub label: String,
    pub width: f64,
    pub height: f64,
    pub x_unit: String,
    pub y_unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_max: Option<f64>,
    pub y_log: bool,
    pub y_integer: bool,
    pub bands: Vec<Band>,
    pub series: Vec<Series>,
}

impl LineChart {
    pub(super) fn html(&self) -> String {
        embed("lineChart", self)
    }
}

/// A shaded period of a line chart, titled.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Band {
    pub from: f64,
    pub to: f64,
    pub colour: &'static str,
    pub title: String,
    pub cls: &'static str,
}

/// One line (and its dots) of a line chart; `None` points break the line. `line: false` (the
/// default here, unlike charts.js's) draws the dots only.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Series {
    pub name: String,
    pub colour: &'static str,
    pub width: f64,
    pub cls: String,
    pub line: bool,
    pub dots: bool,
    pub points: Vec<Option<[f64; 2]>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub titles: Vec<String>,
}

/// A bar chart (charts.js `barChart`).
#[derive(Debug, Clone, Serialize)]
pub(super) struct BarChart {
    pub label: String,
    pub width: f64,
    pub height: f64,
    pub x_unit: String,
    pub y_unit: String,
    /// Whole-number ticks (for counts).
    pub y_integer: bool,
    pub bars: Vec<Bar>,
}

impl BarChart {
    pub(super) fn html(&self) -> String {
        embed("barChart", self)
    }
}

/// One bar: its x label and value.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Bar {
    pub label: String,
    pub value: f64,
}

/// A block tree (charts.js `blockTree`).
#[derive(Debug, Clone, Serialize)]
pub(super) struct BlockTree {
    pub id: &'static str,
    pub label: &'static str,
    pub horizontal: bool,
    #[serde(rename = "box")]
    pub box_size: [f64; 2],
    pub step_height: f64,
    pub step_lane: f64,
    pub axis_every: u64,
    pub blocks: Vec<TreeMark>,
}

impl BlockTree {
    pub(super) fn html(&self) -> String {
        embed("blockTree", self)
    }
}

/// One block of a drawn tree.
#[derive(Debug, Clone, Serialize)]
pub(super) struct TreeMark {
    pub hash: String,
    pub parent: String,
    pub height: u64,
    pub lane: usize,
    pub cls: &'static str,
    pub fill: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stroke: Option<&'static str>,
    pub title: String,
}

/// The spec of the first chart of `kind` (a charts.js function) in `page`, unescaped.
#[cfg(test)]
pub(super) fn spec_in(page: &str, kind: &str) -> serde_json::Value {
    let marker = format!("data-chart=\"{kind}\" data-spec=\"");
    let attr = page
        .split(&marker)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no {kind} in the page"));
    let json = attr
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).expect("a chart spec is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_is_embedded_as_escaped_json_the_shared_code_draws() {
        let chart = BarChart {
            label: "a \"quoted\" <label>".into(),
            width: 100.0,
            height: 50.0,
            x_unit: "s".into(),
            y_unit: "count".into(),
            y_integer: true,
            bars: vec![Bar {
                label: "0".into(),
                value: 2.0,
            }],
        };
        let html = chart.html();
        assert!(html.starts_with("<div class=\"chart\" data-chart=\"barChart\" data-spec=\"{"));
        assert!(!html.contains("<label>") && html.contains("&lt;label&gt;"));
        let back = spec_in(&html, "barChart");
        assert_eq!(back["bars"][0]["value"], 2.0);
        assert_eq!(back["label"], "a \"quoted\" <label>");
        let page = scripts();
        assert!(page.contains("PeerchainCharts = {") && page.contains("data-chart"));
    }
}
