//! The difficulty response in report.html: every final-chain block's difficulty over time
//! against ASERT's closed form (on a log scale), and a table of the periods of constant
//! hash rate: what the closed form expected and what the chain did.
//!
//! It owns: what the chart shows (a dot per block, a line per period, their hover texts).
//! It must never: compute the prediction (the points and segments are
//! [`super::super::difficulty`]'s) or draw (the shared chart code does, through
//! [`super::charts`]).

use std::fmt::Write as _;

use super::super::difficulty::{DifficultyPoint, DifficultyResponse, Segment};
use super::charts::{LineChart, Series};
use super::{WIDTH, esc, seconds, secs, tick_label};

const HEIGHT: f64 = 260.0;

/// The section: heading, chart, table.
pub(super) fn section(d: &DifficultyResponse, duration_ms: u64) -> String {
    let mut s = String::from("<h2>Difficulty response</h2>\n");
    if d.points.is_empty() {
        s.push_str("<p>no final-chain block seen</p>\n");
        return s;
    }
    let _ = writeln!(
        s,
        "<p>Dots: each final-chain block's difficulty (hashes per block) when first seen; \
         line: what ASERT's closed form expects from the network's hash rate (block time {}, \
         half-life {}). Log scale.</p>",
        secs(d.block_time_ms),
        secs(d.half_life_ms)
    );
    s.push_str(&chart(d, duration_ms.max(1)));
    s.push_str(&table(&d.segments));
    s
}

fn chart(d: &DifficultyResponse, duration_ms: u64) -> String {
    let observed = Series {
        name: "difficulty of each final-chain block".into(),
        colour: "#1f77b4",
        cls: "observed".into(),
        dots: true,
        points: d
            .points
            .iter()
            .map(|p| Some([seconds(p.t_ms), p.observed]))
            .collect(),
        titles: d.points.iter().map(point_title).collect(),
        ..Series::default()
    };
    let mut series = vec![observed];
    series.extend(
        d.segments
            .iter()
            .filter_map(|seg| expected_line(seg, &d.points)),
    );
    LineChart {
        id: Some("difficulty"),
        label: "difficulty over time".into(),
        width: WIDTH,
        height: HEIGHT,
        x_unit: format!("time (s), run of {}", secs(duration_ms)),
        y_unit: "hashes per block".into(),
        x_min: Some(0.0),
        x_max: Some(seconds(duration_ms)),
        y_log: true,
        series,
        ..LineChart::default()
    }
    .html()
}

fn point_title(p: &DifficultyPoint) -> String {
    let expected = p.expected.map_or_else(String::new, |e| {
        format!(", expected {}", tick_label(e.round()))
    });
    format!(
        "height {} at {}: difficulty {}{expected}",
        p.height,
        secs(p.t_ms),
        tick_label(p.observed.round())
    )
}

/// The closed form's difficulty over one period, at the blocks inside it; none with fewer
/// than two.
fn expected_line(seg: &Segment, points: &[DifficultyPoint]) -> Option<Series> {
    let line: Vec<Option<[f64; 2]>> = points
        .iter()
        .filter(|p| p.t_ms > seg.from_ms && p.t_ms < seg.to_ms)
        .filter_map(|p| Some(Some([seconds(p.t_ms), p.expected?])))
        .collect();
    (line.len() >= 2).then(|| Series {
        name: format!(
            "expected from {}: {} H/s",
            secs(seg.from_ms),
            tick_label(seg.hashrate.round())
        ),
        colour: "#d62728",
        width: 1.5,
        cls: "expected".into(),
        line: true,
        points: line,
        ..Series::default()
    })
}

fn table(segments: &[Segment]) -> String {
    let mut s = String::from(
        "<table id=\"difficulty-segments\"><tr><th>from</th><th>to</th><th>hash rate</th>\
         <th>block rate at the start (x target)</th><th>expected to settle within 10% after</th>\
         <th>blocks expected</th><th>blocks seen</th><th>median observed / expected difficulty</th></tr>\n",
    );
    for seg in segments {
        let settle = seg.settle_ms.map_or_else(|| "-".to_owned(), secs);
        let error = seg
            .median_log2_error
            .map_or_else(|| "-".to_owned(), |e| format!("{:.2}", e.exp2()));
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{} H/s</td><td>{:.2}</td><td>{}</td><td>{:.1}</td>\
             <td>{}</td><td>{}</td></tr>",
            secs(seg.from_ms),
            secs(seg.to_ms),
            tick_label(seg.hashrate.round()),
            seg.start_rate,
            esc(&settle),
            seg.expected_blocks,
            seg.observed_blocks,
            error
        );
    }
    s.push_str("</table>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_for_blocks_a_line_per_segment_and_a_row_per_segment() {
        let point = |t_ms, observed, expected| DifficultyPoint {
            t_ms,
            height: t_ms / 1000,
            observed,
            expected,
        };
        let d = DifficultyResponse {
            block_time_ms: 1_000,
            half_life_ms: 60_000,
            segments: vec![Segment {
                from_ms: 1_000,
                to_ms: 10_000,
                hashrate: 500.0,
                start_difficulty: 1024.0,
                start_rate: 0.49,
                settle_ms: Some(190_000),
                expected_blocks: 4.5,
                observed_blocks: 3,
                median_log2_error: Some(1.0),
            }],
            points: vec![
                point(1_000, 1024.0, None),
                point(3_000, 1024.0, Some(1000.0)),
                point(5_000, 1024.0, Some(980.0)),
                point(9_000, 1024.0, Some(960.0)),
            ],
        };
        let html = section(&d, 10_000);
        let spec = super::super::charts::spec_in(&html, "lineChart");
        assert_eq!(spec["y_log"], true);
        let series = spec["series"].as_array().expect("series");
        assert_eq!(series.len(), 2, "the blocks, and one period's line");
        assert_eq!(series[0]["dots"], true);
        assert_eq!(series[0]["line"], false, "blocks are dots, not a line");
        assert_eq!(series[0]["points"].as_array().map(Vec::len), Some(4));
        assert_eq!(
            series[0]["titles"][1],
            "height 3 at 3.0 s: difficulty 1024, expected 1000"
        );
        assert_eq!(
            series[1]["points"],
            serde_json::json!([[3.0, 1000.0], [5.0, 980.0], [9.0, 960.0]]),
            "the line runs through the period's blocks"
        );
        assert_eq!(series[1]["name"], "expected from 1.0 s: 500 H/s");
        assert!(
            html.contains("<td>190.0 s</td><td>4.5</td><td>3</td><td>2.00</td>"),
            "{html}"
        );
        assert!(!html.contains("NaN") && !html.contains("inf"), "{html}");
        let none = section(&DifficultyResponse::default(), 10_000);
        assert!(none.contains("no final-chain block seen"));
    }
}
