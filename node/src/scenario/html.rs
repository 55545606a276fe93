//! `report.html`: one self-contained page (inline CSS and script, no fonts, nothing fetched)
//! that opens from disk: the verdict, the assertion table, every node's height over time with
//! the fault periods shaded, the steps, the transfers, the distributions (latency,
//! propagation, reorg depth, throughput), the final chain, the block tree (`html/tree.rs`), the
//! difficulty response (`html/difficulty.rs`) and the nodes. The tables are plain HTML; the
//! charts are specs drawn by the chart code the explorer uses too (`html/charts.rs`).
//!
//! It owns: the page's layout and what each chart shows (series, the points kept, bands,
//! hover texts).
//! It must never: compute a verdict or a statistic the report does not already hold, draw a
//! chart itself, or reference anything outside the page.

use std::fmt::Write as _;

mod charts;
mod difficulty;
mod tree;

use super::distributions::Histogram;
use super::report::Report;
use super::sample::Sample;
use charts::{Band, Bar, BarChart, LineChart, Series};

/// Width of every chart, and height of the height chart.
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 360.0;
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
    page.push_str(&charts::scripts());
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

/// A value as a label: whole numbers without decimals, others with one.
fn tick_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        format!("{v:.1}")
    }
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Every node's height over time, the fault periods shaded, and the legend.
fn chart(r: &Report) -> String {
    let last_sample = r.samples.iter().map(|s| s.t_ms).max().unwrap_or(0);
    let count = r.nodes.len();
    let chart = LineChart {
        id: Some("heights"),
        label: "height of every node over time".into(),
        width: WIDTH,
        height: HEIGHT,
        x_unit: "time (s)".into(),
        y_unit: "height (blocks)".into(),
        x_min: Some(0.0),
        x_max: Some(seconds(r.duration_ms.max(last_sample).max(1))),
        y_integer: true,
        bands: r
            .faults
            .iter()
            .map(|w| Band {
                from: seconds(w.from_ms),
                to: seconds(w.to_ms),
                colour: fault_colour(w.kind),
                title: format!("{} ({} to {})", w.label, secs(w.from_ms), secs(w.to_ms)),
                cls: "fault",
            })
            .collect(),
        series: (0..count)
            .map(|node| Series {
                name: format!("node {node}"),
                colour: NODE_COLOURS[node % NODE_COLOURS.len()],
                // Lower-numbered nodes draw wider, so nodes on one tip show as nested bands.
                width: 1.2 + 0.8 * (count - 1 - node).min(5) as f64,
                cls: format!("node{node}"),
                line: true,
                points: node_points(&r.samples, node),
                ..Series::default()
            })
            .collect(),
        ..LineChart::default()
    };
    let mut s = chart.html();
    s.push_str(&legend(r));
    s
}

/// Node `node`'s heights as (seconds, height) points, `None` where it did not answer; points
/// where the height stays the same are dropped except at the ends of a flat stretch.
fn node_points(samples: &[Sample], node: usize) -> Vec<Option<[f64; 2]>> {
    let mut points = Vec::new();
    for (i, segment) in segments(samples, node).iter().enumerate() {
        if i > 0 {
            points.push(None);
        }
        points.extend(
            thin(segment)
                .iter()
                .map(|&(t, h)| Some([seconds(t), h as f64])),
        );
    }
    points
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

/// Height of the bar charts.
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
        false,
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
        true,
    )
}

/// A bar chart under its title, each bar's value on hover; `counts` ticks whole numbers.
fn bars(
    title: &str,
    values: &[f64],
    labels: &[String],
    x_unit: &str,
    y_unit: &str,
    counts: bool,
) -> String {
    let mut s = format!("<h3>{}</h3>\n", esc(title));
    if values.is_empty() {
        s.push_str("<p>none</p>\n");
        return s;
    }
    let chart = BarChart {
        label: title.to_owned(),
        width: WIDTH,
        height: BARS_HEIGHT,
        x_unit: x_unit.to_owned(),
        y_unit: y_unit.to_owned(),
        y_integer: counts,
        bars: values
            .iter()
            .zip(labels)
            .map(|(&value, label)| Bar {
                label: label.clone(),
                value,
            })
            .collect(),
    };
    s.push_str(&chart.html());
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
        "<p>{} blocks taken in by some node (into its main chain or a side branch), {} stale ({}).</p>",
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
    use super::super::report::{FaultWindow, Machine, ReorgSummary, TransferSummary};
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
    fn labels_drop_the_decimals_of_whole_numbers() {
        assert_eq!(tick_label(0.30000000000000004), "0.3");
        assert_eq!(tick_label(20.0), "20");
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
        assert_eq!(
            node_points(&samples, 0),
            vec![
                Some([0.0, 1.0]),
                Some([0.002, 1.0]),
                Some([0.003, 2.0]),
                None,
                Some([0.005, 3.0])
            ],
            "the chart's points: seconds and height, a break where the node was down"
        );
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
        let heights = charts::spec_in(&page, "lineChart");
        assert_eq!(heights["id"], "heights");
        let bands = heights["bands"].as_array().expect("bands");
        assert_eq!(bands.len(), 1, "one fault period shaded");
        assert_eq!(bands[0]["title"], "partition [0] | [1] (1.0 s to 4.0 s)");
        assert_eq!(bands[0]["cls"], "fault");
        let series = heights["series"].as_array().expect("series");
        assert_eq!(series.len(), 2, "a line per node");
        assert_eq!(
            series[0]["points"],
            serde_json::json!([[0.0, 1.0], [0.25, 2.0]])
        );
        assert_eq!(series[1]["points"], serde_json::json!([[0.0, 1.0]]));
        assert!(
            page.contains(peerchain_rpc::CHARTS_JS),
            "the explorer's chart code draws the charts"
        );
        for outside in ["<script src", "src=", "@import", "<link", "url("] {
            assert!(!page.contains(outside), "the page loads nothing: {outside}");
        }
    }
}
