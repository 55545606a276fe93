//! `report.html`: one self-contained page (inline CSS and SVG, no script, no fonts, nothing
//! fetched) that opens from disk: the verdict, the assertion table, every node's height over
//! time with the fault periods shaded, the steps, the transfers, the distributions (latency,
//! propagation, reorg depth, throughput), the final chain, the block tree (`html/tree.rs`), the
//! difficulty response (`html/difficulty.rs`) and the nodes.
//!
//! It owns: the page's layout and the chart's geometry (scales, ticks, the points kept).
//! It must never: compute a verdict or a statistic the report does not already hold, or
//! reference anything outside the page.

use std::fmt::Write as _;

mod difficulty;
mod tree;

use super::distributions::Histogram;
use super::report::{FaultWindow, Report};
use super::sample::Sample;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 40.0;
/// Line colours of nodes 0, 1, 2, ... (repeating).
const NODE_COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
];

/// The page.
pub fn render(r: &Report) -> String {
    let verdict = if r.passed { "PASSED" } else { "FAILED" };
    let mut page = String::with_capacity(64 * 1024);
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{name}: {verdict}</title><style>{STYLE}</style></head><body>\n\
         <h1>Scenario {name} <span id=\"verdict\" class=\"{class}\">{verdict}</span></h1>\n",
        name = esc(&r.name),
        class = if r.passed { "pass" } else { "fail" },
    );
    page.push_str(&facts(r));
    page.push_str(&assertions(r));
    page.push_str("<h2>Heights</h2>\n");
    page.push_str(&chart(r));
    page.push_str(&steps(r));
    page.push_str(&transfers(r));
    page.push_str(&distributions(r));
    page.push_str(&chain(r));
    page.push_str(&tree::section(&r.blocks));
    page.push_str(&difficulty::section(&r.difficulty, r.duration_ms));
    page.push_str(&nodes(r));
    page.push_str("</body></html>\n");
    page
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1000px}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;\
text-align:left;vertical-align:top}th{background:#f3f3f3}.pass{color:#1a7f37}.fail{color:#c62828}\
code{font-size:90%}.legend span{display:inline-block;margin-right:1.2em}\
.sw{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:middle}\
svg text{font-size:11px;fill:#444}";

/// Escapes text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn facts(r: &Report) -> String {
    let mut s = String::from("<table>\n");
    let rows = [
        ("file", r.file.clone()),
        ("seed", r.seed.to_string()),
        ("commit", r.commit.clone()),
        (
            "machine",
            format!(
                "{}, {} cores, {}",
                r.machine.cpu, r.machine.cores, r.machine.os
            ),
        ),
        ("started (Unix ms)", r.started_at_ms.to_string()),
        ("duration", secs(r.duration_ms)),
        ("interrupted", r.interrupted.to_string()),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    s.push_str("</table>\n");
    if !r.errors.is_empty() {
        s.push_str("<h2 class=\"fail\">Errors</h2>\n<ul>\n");
        for e in &r.errors {
            let _ = writeln!(s, "<li>{}</li>", esc(e));
        }
        s.push_str("</ul>\n");
    }
    s
}

fn assertions(r: &Report) -> String {
    let mut s = String::from(
        "<h2>Assertions</h2>\n<table id=\"assertions\"><tr><th>assertion</th><th>expected</th><th>actual</th>\
         <th>result</th></tr>\n",
    );
    if r.assertions.is_empty() {
        s.push_str("<tr><td colspan=\"4\">none set</td></tr>\n");
    }
    for a in &r.assertions {
        let (class, word) = if a.passed {
            ("pass", "pass")
        } else {
            ("fail", "FAIL")
        };
        let _ = writeln!(
            s,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td></tr>",
            esc(a.name),
            esc(&a.expected),
            esc(&a.actual)
        );
    }
    s.push_str("</table>\n");
    s
}

fn fault_colour(kind: &str) -> &'static str {
    match kind {
        "partition" => "#ff9800",
        "down" => "#607d8b",
        "not_mining" => "#2196f3",
        "link" => "#9c27b0",
        _ => "#e53935",
    }
}

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving at most `max_ticks` ticks.
fn tick_step(span: f64, max_ticks: f64) -> f64 {
    let raw = (span / max_ticks).max(1e-9);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power)
}

/// Tick values from 0 to `span` at a nice step of at least `min_step` (at most `max_ticks`
/// of them, plus 0).
fn ticks(span: f64, max_ticks: f64, min_step: f64) -> Vec<f64> {
    let step = tick_step(span, max_ticks).max(min_step);
    (0..=(max_ticks as usize + 1))
        .map(|k| k as f64 * step)
        .take_while(|t| *t <= span + 1e-9)
        .collect()
}

fn tick_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        format!("{v:.1}")
    }
}

/// The chart's scales: ms → x, height → y.
#[derive(Debug, Clone, Copy)]
struct Scale {
    end_ms: f64,
    max_height: f64,
}

impl Scale {
    fn x(&self, ms: u64) -> f64 {
        LEFT + (ms as f64 / self.end_ms) * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, height: u64) -> f64 {
        HEIGHT - BOTTOM - (height as f64 / self.max_height) * (HEIGHT - TOP - BOTTOM)
    }
}

fn chart(r: &Report) -> String {
    let last_sample = r.samples.iter().map(|s| s.t_ms).max().unwrap_or(0);
    let scale = Scale {
        end_ms: r.duration_ms.max(last_sample).max(1) as f64,
        max_height: r
            .samples
            .iter()
            .filter_map(|s| s.height)
            .max()
            .unwrap_or(0)
            .max(1) as f64,
    };
    let mut s = format!(
        "<svg id=\"heights\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"height of every node over time\">\n"
    );
    for w in &r.faults {
        s.push_str(&fault_rect(w, &scale));
    }
    s.push_str(&axes(&scale));
    let count = r.nodes.len();
    for node in 0..count {
        // Lower-numbered nodes draw wider, so nodes on one tip show as nested bands.
        let width = 1.2 + 0.8 * (count - 1 - node).min(5) as f64;
        s.push_str(&node_lines(&r.samples, node, width, &scale));
    }
    s.push_str("</svg>\n");
    s.push_str(&legend(r));
    s
}

fn fault_rect(w: &FaultWindow, scale: &Scale) -> String {
    let (x0, x1) = (scale.x(w.from_ms), scale.x(w.to_ms));
    format!(
        "<rect class=\"fault\" x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" \
         fill=\"{}\" fill-opacity=\"0.15\"><title>{} ({} to {})</title></rect>\n",
        (x1 - x0).max(1.0),
        HEIGHT - TOP - BOTTOM,
        fault_colour(w.kind),
        esc(&w.label),
        secs(w.from_ms),
        secs(w.to_ms)
    )
}

fn axes(scale: &Scale) -> String {
    let (x0, y0) = (LEFT, HEIGHT - BOTTOM);
    let mut s = format!(
        "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\" stroke=\"#444\"/>\
         <line x1=\"{x0}\" y1=\"{TOP}\" x2=\"{x0}\" y2=\"{y0}\" stroke=\"#444\"/>\n",
        WIDTH - RIGHT
    );
    for t in ticks(scale.end_ms / 1000.0, 12.0, 0.0) {
        let x = scale.x((t * 1000.0).round() as u64);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#444\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            y0 + 4.0,
            y0 + 16.0,
            tick_label(t)
        );
    }
    for h in ticks(scale.max_height, 8.0, 1.0) {
        let y = scale.y(h.round() as u64);
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{x0}\" y2=\"{y:.1}\" stroke=\"#444\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x0 - 4.0,
            x0 - 6.0,
            y + 4.0,
            tick_label(h)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">time (s)</text>\
         <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">height (blocks)</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 6.0,
        (TOP + HEIGHT - BOTTOM) / 2.0,
        (TOP + HEIGHT - BOTTOM) / 2.0
    );
    s
}

/// Node `node`'s heights as polylines, broken where it did not answer; points where the
/// height stays the same are dropped except at the ends of a flat stretch.
fn node_lines(samples: &[Sample], node: usize, width: f64, scale: &Scale) -> String {
    let colour = NODE_COLOURS[node % NODE_COLOURS.len()];
    let mut out = String::new();
    for segment in segments(samples, node) {
        let points: Vec<String> = thin(&segment)
            .iter()
            .map(|(t, h)| format!("{:.1},{:.1}", scale.x(*t), scale.y(*h)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline class=\"node{node}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width:.1}\" \
             points=\"{}\"><title>node {node}</title></polyline>",
            points.join(" ")
        );
    }
    out
}

/// Runs of consecutive answered samples of `node`, as (time, height).
fn segments(samples: &[Sample], node: usize) -> Vec<Vec<(u64, u64)>> {
    let mut out: Vec<Vec<(u64, u64)>> = Vec::new();
    let mut current = Vec::new();
    for s in samples.iter().filter(|s| s.node == node) {
        match s.height {
            Some(h) if s.up => current.push((s.t_ms, h)),
            _ if !current.is_empty() => out.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn thin(points: &[(u64, u64)]) -> Vec<(u64, u64)> {
    points
        .iter()
        .enumerate()
        .filter(|&(i, &(_, h))| {
            let prev = i.checked_sub(1).and_then(|p| points.get(p)).map(|p| p.1);
            let next = points.get(i + 1).map(|p| p.1);
            prev != Some(h) || next != Some(h)
        })
        .map(|(_, p)| *p)
        .collect()
}

fn legend(r: &Report) -> String {
    let mut s = String::from("<p class=\"legend\">");
    for n in &r.nodes {
        let _ = write!(
            s,
            "<span><i class=\"sw\" style=\"background:{}\"></i>node {}</span>",
            NODE_COLOURS[n.index % NODE_COLOURS.len()],
            n.index
        );
    }
    for (kind, words) in [
        ("partition", "partition"),
        ("link", "link faults"),
        ("down", "node down"),
        ("not_mining", "node not mining"),
        ("adversary", "adversary on"),
    ] {
        let _ = write!(
            s,
            "<span><i class=\"sw\" style=\"background:{};opacity:.4\"></i>{words}</span>",
            fault_colour(kind)
        );
    }
    s.push_str("</p>\n");
    s
}

fn steps(r: &Report) -> String {
    let mut s = String::from(
        "<h2>Steps</h2>\n<table><tr><th>planned</th><th>started</th><th>finished</th>\
         <th>step</th><th>result</th></tr>\n",
    );
    for st in &r.steps {
        let result = match &st.error {
            Some(e) => format!("<span class=\"fail\">failed: {}</span>", esc(e)),
            None if st.notes.is_empty() => "done".to_owned(),
            None => format!("done; {}", esc(&st.notes.join("; "))),
        };
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} <small>({}, line {})</small></td><td>{result}</td></tr>",
            secs(st.t_ms),
            secs(st.started_ms),
            secs(st.finished_ms),
            esc(&st.action.describe()),
            esc(&st.source),
            st.line
        );
    }
    s.push_str("</table>\n");
    s
}

fn transfers(r: &Report) -> String {
    let t = &r.transfer_summary;
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2} s"));
    let refused: Vec<String> = t.refused.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let rows = [
        ("tried", t.tried.to_string()),
        ("accepted", t.accepted.to_string()),
        ("queued", t.queued.to_string()),
        (
            "refused",
            if refused.is_empty() {
                "0".to_owned()
            } else {
                refused.join(", ")
            },
        ),
        ("failed (no answer)", t.failed.to_string()),
        ("confirmed", t.confirmed.to_string()),
        ("accepted, not confirmed", t.lost.to_string()),
        (
            "confirmation p50 / p99 / max",
            format!("{} / {} / {}", opt(t.p50_s), opt(t.p99_s), opt(t.max_s)),
        ),
    ];
    let mut s = String::from("<h2>Transfers</h2>\n<table>\n");
    for (k, v) in rows {
        let _ = writeln!(s, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    s.push_str("</table>\n");
    s
}

/// Bar height and margins of the small charts.
const BARS_HEIGHT: f64 = 200.0;

fn distributions(r: &Report) -> String {
    let d = &r.distributions;
    let mut s = String::from("<h2>Distributions</h2>\n");
    s.push_str(&histogram_chart(
        "Transfer confirmation latency",
        &d.confirmation_ms,
        1000.0,
        "s",
    ));
    s.push_str(&histogram_chart(
        "Block propagation (first to last node that took the block in)",
        &d.propagation_ms,
        1.0,
        "ms",
    ));
    s.push_str(&histogram_chart(
        "Transfer propagation (submission to the last node that admitted it)",
        &d.transfer_propagation_ms,
        1.0,
        "ms",
    ));
    s.push_str(&histogram_chart(
        "Reorg depth",
        &d.reorg_depth,
        1.0,
        "blocks",
    ));
    let t = &d.throughput;
    let labels: Vec<String> = (0..t.values.len())
        .map(|i| tick_label(i as f64 * t.width_ms as f64 / 1000.0))
        .collect();
    s.push_str(&bars(
        &format!(
            "Confirmed transfers per second ({} s buckets)",
            tick_label(t.width_ms as f64 / 1000.0)
        ),
        &t.values,
        &labels,
        "time (s)",
        t.unit,
    ));
    s
}

/// A histogram as bars, its values shown divided by `divisor` in `unit`.
fn histogram_chart(title: &str, h: &Histogram, divisor: f64, unit: &str) -> String {
    if h.total == 0 {
        return format!("<h3>{}</h3>\n<p>none</p>\n", esc(title));
    }
    let show =
        |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| tick_label(v as f64 / divisor));
    let caption = format!(
        "{title}: {} values, p50 {} {unit}, p99 {} {unit}, max {} {unit}",
        h.total,
        show(h.p50),
        show(h.p99),
        show(h.max)
    );
    let values: Vec<f64> = h.counts.iter().map(|&c| c as f64).collect();
    let labels: Vec<String> = (0..h.counts.len())
        .map(|i| tick_label(i as f64 * h.width as f64 / divisor))
        .collect();
    bars(
        &caption,
        &values,
        &labels,
        &format!("{unit} (bucket start)"),
        "count",
    )
}

/// A bar chart with an x label under every few bars and a y axis; each bar shows its value
/// on hover.
fn bars(title: &str, values: &[f64], labels: &[String], x_unit: &str, y_unit: &str) -> String {
    let mut s = format!("<h3>{}</h3>\n", esc(title));
    if values.is_empty() {
        s.push_str("<p>none</p>\n");
        return s;
    }
    let top = values.iter().copied().fold(0.0_f64, f64::max).max(1e-9);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = BARS_HEIGHT - TOP - BOTTOM;
    let bar_w = plot_w / values.len() as f64;
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{BARS_HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {BARS_HEIGHT}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    let y0 = BARS_HEIGHT - BOTTOM;
    let label_every = (values.len() / 10).max(1);
    for (i, (v, label)) in values.iter().zip(labels).enumerate() {
        let h = v / top * plot_h;
        let x = LEFT + i as f64 * bar_w;
        let _ = writeln!(
            s,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#1f77b4\">\
             <title>{}: {} {}</title></rect>",
            y0 - h,
            (bar_w - 1.0).max(1.0),
            esc(label),
            tick_label(*v),
            esc(y_unit)
        );
        if i % label_every == 0 {
            let _ = writeln!(
                s,
                "<text x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
                y0 + 14.0,
                esc(label)
            );
        }
    }
    let _ = writeln!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\" stroke=\"#444\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{y0}\" stroke=\"#444\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
         <text x=\"{:.1}\" y=\"{y0}\" text-anchor=\"end\">0</text>\
         <text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
        WIDTH - RIGHT,
        LEFT - 6.0,
        TOP + 10.0,
        tick_label(top),
        LEFT - 6.0,
        (LEFT + WIDTH - RIGHT) / 2.0,
        BARS_HEIGHT - 6.0,
        esc(x_unit),
        (TOP + y0) / 2.0,
        (TOP + y0) / 2.0,
        esc(y_unit)
    );
    s.push_str("</svg>\n");
    s
}

fn chain(r: &Report) -> String {
    let mut s = String::from("<h2>Final chain</h2>\n");
    let Some(c) = &r.final_chain else {
        s.push_str("<p class=\"fail\">not read</p>\n");
        return s;
    };
    let _ = writeln!(
        s,
        "<p>node {}: height {}, tip <code>{}</code>; {} reorgs seen, the deepest {} blocks.</p>",
        c.node,
        c.height,
        esc(&c.tip),
        r.reorgs.count,
        r.reorgs.deepest
    );
    let m = &r.mining;
    let _ = writeln!(
        s,
        "<p>{} blocks seen joining a main chain, {} stale ({}).</p>",
        m.blocks_seen,
        m.stale,
        percent(m.stale_rate)
    );
    s.push_str(
        "<table><tr><th>node</th><th>hash share (time average)</th><th>main-chain blocks</th>\
         <th>share of the main chain</th><th>blocks seen</th><th>stale</th><th>stale rate</th>\
         <th>reorgs</th></tr>\n",
    );
    for n in &r.nodes {
        let d = m.by_node.get(n.index).cloned().unwrap_or_default();
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            n.index,
            d.hash_share,
            c.blocks_by_node.get(n.index).copied().unwrap_or(0),
            percent(d.main_chain_share),
            d.blocks_seen,
            d.stale,
            percent(d.stale_rate),
            r.reorgs.by_node.get(n.index).copied().unwrap_or(0)
        );
    }
    s.push_str("</table>\n");
    s
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn nodes(r: &Report) -> String {
    let mut s = String::from(
        "<h2>Nodes</h2>\n<table id=\"nodes\"><tr><th>node</th><th>HTTP API (explorer while running)</th>\
         <th>peer id</th><th>hash rate cap</th><th>adversary</th><th>log</th></tr>\n",
    );
    for n in &r.nodes {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td><a href=\"{rpc}/\">{rpc}</a></td><td><code>{}</code></td><td>{} H/s</td><td>{}</td><td><code>{}</code></td></tr>",
            n.index,
            esc(n.peer_id.as_deref().unwrap_or("-")),
            n.spec.hashrate,
            esc(n.spec.adversary.as_deref().unwrap_or("-")),
            esc(&n.log.display().to_string()),
            rpc = esc(&n.rpc),
        );
    }
    s.push_str("</table>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::super::assert::Outcome;
    use super::super::blocks::BlockTree;
    use super::super::cluster::NodeInfo;
    use super::super::confirm::ConfirmationSources;
    use super::super::difficulty::DifficultyResponse;
    use super::super::distributions::Distributions;
    use super::super::mining::MiningStats;
    use super::super::report::{Machine, ReorgSummary, TransferSummary};
    use super::super::spec::{Scenario, parse};
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(ticks(25.0, 12.0, 0.0), [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]);
        assert_eq!(
            ticks(1.0, 8.0, 1.0),
            [0.0, 1.0],
            "heights tick by whole blocks"
        );
        assert_eq!(tick_label(0.30000000000000004), "0.3");
        assert_eq!(tick_label(20.0), "20");
        assert_eq!(tick_step(60.0, 12.0), 5.0);
        assert_eq!(tick_step(25.0, 12.0), 5.0);
        assert_eq!(tick_step(7.0, 8.0), 1.0);
        assert_eq!(tick_step(3000.0, 8.0), 500.0);
    }

    fn sample(t_ms: u64, node: usize, height: Option<u64>) -> Sample {
        Sample {
            round: 0,
            t_ms,
            node,
            up: height.is_some(),
            height,
            tip: height.map(|_| "t".into()),
            peers: None,
            mining: None,
            link_faults: None,
            banned: None,
        }
    }

    #[test]
    fn lines_break_where_a_node_was_down_and_flat_runs_keep_their_ends() {
        let samples = [
            sample(0, 0, Some(1)),
            sample(1, 0, Some(1)),
            sample(2, 0, Some(1)),
            sample(3, 0, Some(2)),
            sample(4, 0, None),
            sample(5, 0, Some(3)),
            sample(5, 1, Some(9)),
        ];
        let segs = segments(&samples, 0);
        assert_eq!(
            segs,
            vec![vec![(0, 1), (1, 1), (2, 1), (3, 2)], vec![(5, 3)]]
        );
        assert_eq!(thin(&segs[0]), vec![(0, 1), (2, 1), (3, 2)]);
    }

    fn report(scenario: Scenario) -> Report {
        let nodes = scenario
            .network
            .node
            .iter()
            .map(|spec| NodeInfo {
                index: spec.index,
                rpc: format!("http://127.0.0.1:{}", 9000 + spec.index),
                p2p: String::new(),
                peer_id: None,
                miner_address: String::new(),
                data_dir: "d".into(),
                log: "l".into(),
                pids: Vec::new(),
                spec: spec.clone(),
            })
            .collect();
        Report {
            format: 1,
            name: scenario.name.clone(),
            file: "f.toml".into(),
            seed: 1,
            commit: "unknown".into(),
            machine: Machine {
                cpu: "cpu".into(),
                cores: 2,
                os: "linux".into(),
            },
            started_at_ms: 0,
            duration_ms: 10_000,
            passed: false,
            interrupted: false,
            errors: vec!["step at[0] failed: <boom>".into()],
            assertions: vec![Outcome {
                name: "max_reorg_depth",
                expected: "no reorg deeper than 1 blocks".into(),
                actual: "deepest 3 blocks".into(),
                passed: false,
            }],
            scenario,
            nodes,
            steps: Vec::new(),
            faults: vec![FaultWindow {
                kind: "partition",
                node: None,
                label: "partition [0] | [1]".into(),
                from_ms: 1_000,
                to_ms: 4_000,
            }],
            final_chain: None,
            reorgs: ReorgSummary::default(),
            mining: MiningStats::default(),
            difficulty: DifficultyResponse::default(),
            blocks: BlockTree::default(),
            distributions: Distributions::default(),
            transfer_summary: TransferSummary::default(),
            confirmation_sources: ConfirmationSources::default(),
            samples: vec![
                sample(0, 0, Some(1)),
                sample(250, 0, Some(2)),
                sample(0, 1, Some(1)),
                sample(250, 1, None),
            ],
            samples_dropped: 0,
            events: Vec::new(),
            events_dropped: 0,
            transfers: Vec::new(),
        }
    }

    #[test]
    fn the_page_is_self_contained_and_shows_verdict_assertions_faults_and_lines() {
        let scenario = parse("[network]\nnodes = 2\n", "t<1>").expect("valid");
        let page = render(&report(scenario));
        assert!(page.starts_with("<!doctype html>"));
        assert!(
            page.contains("Scenario t&lt;1&gt; <span id=\"verdict\" class=\"fail\">FAILED</span>")
        );
        assert!(!page.contains("t<1>"), "names are escaped");
        assert!(page.contains("<code>max_reorg_depth</code>") && page.contains(">FAIL</td>"));
        assert!(page.contains("&lt;boom&gt;"), "errors are listed, escaped");
        assert_eq!(page.matches("class=\"fault\"").count(), 1);
        assert_eq!(page.matches("<polyline class=\"node0\"").count(), 1);
        assert_eq!(page.matches("<polyline class=\"node1\"").count(), 1);
        assert!(page.contains("<title>partition [0] | [1] (1.0 s to 4.0 s)</title>"));
        for outside in ["<script", "src=", "@import", "<link", "url("] {
            assert!(!page.contains(outside), "the page loads nothing: {outside}");
        }
    }
}
