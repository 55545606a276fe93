//! The difficulty response in report.html: every final-chain block's difficulty over time
//! against ASERT's closed form (on a log scale), and a table of the periods of constant
//! hash rate: what the closed form expected and what the chain did.
//!
//! It owns: the chart's geometry.
//! It must never: compute the prediction; the points and segments are
//! [`super::super::difficulty`]'s.

use std::fmt::Write as _;

use super::super::difficulty::{DifficultyPoint, DifficultyResponse, Segment};
use super::{BOTTOM, LEFT, RIGHT, TOP, WIDTH, esc, secs, tick_label, ticks};

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

struct Scale {
    duration_ms: f64,
    lo: f64,
    hi: f64,
}

impl Scale {
    fn x(&self, t_ms: u64) -> f64 {
        LEFT + t_ms as f64 / self.duration_ms * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, difficulty: f64) -> f64 {
        let f = (difficulty.log2() - self.lo) / (self.hi - self.lo);
        HEIGHT - BOTTOM - f * (HEIGHT - TOP - BOTTOM)
    }
}

fn chart(d: &DifficultyResponse, duration_ms: u64) -> String {
    let values = d
        .points
        .iter()
        .flat_map(|p| [Some(p.observed), p.expected])
        .flatten()
        .filter(|v| *v > 0.0)
        .map(f64::log2);
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let scale = Scale {
        duration_ms: duration_ms as f64,
        lo: lo.floor() - 0.5,
        hi: hi.ceil() + 0.5,
    };
    let mut s = format!(
        "<svg id=\"difficulty\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"difficulty over time\">\n"
    );
    s.push_str(&axes(&scale));
    for seg in &d.segments {
        s.push_str(&expected_line(seg, &d.points, &scale));
    }
    for p in &d.points {
        let expected = p.expected.map_or_else(String::new, |e| {
            format!(", expected {}", tick_label(e.round()))
        });
        let _ = writeln!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#1f77b4\"><title>height {} at {}: \
             difficulty {}{expected}</title></circle>",
            scale.x(p.t_ms),
            scale.y(p.observed),
            p.height,
            secs(p.t_ms),
            tick_label(p.observed.round())
        );
    }
    s.push_str("</svg>\n");
    s
}

fn expected_line(seg: &Segment, points: &[DifficultyPoint], scale: &Scale) -> String {
    let line: Vec<String> = points
        .iter()
        .filter(|p| p.t_ms > seg.from_ms && p.t_ms < seg.to_ms)
        .filter_map(|p| {
            let e = p.expected?;
            Some(format!("{:.1},{:.1}", scale.x(p.t_ms), scale.y(e)))
        })
        .collect();
    if line.len() < 2 {
        return String::new();
    }
    format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\">\
         <title>expected from {}: {} H/s</title></polyline>\n",
        line.join(" "),
        secs(seg.from_ms),
        tick_label(seg.hashrate.round())
    )
}

fn axes(scale: &Scale) -> String {
    let y0 = HEIGHT - BOTTOM;
    let mut s = format!(
        "<line x1=\"{LEFT}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\" stroke=\"#444\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{y0}\" stroke=\"#444\"/>\n",
        WIDTH - RIGHT
    );
    let first = scale.lo.ceil() as i32;
    let last = scale.hi.floor() as i32;
    let every = ((last - first) / 6).max(1);
    for k in (first..=last).step_by(every as usize) {
        let v = 2f64.powi(k);
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            scale.y(v) + 4.0,
            tick_label(v)
        );
    }
    for t_s in ticks(scale.duration_ms / 1000.0, 10.0, 1.0) {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            scale.x((t_s * 1000.0) as u64),
            y0 + 14.0,
            tick_label(t_s)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">time (s), run of {}</text>\
         <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">\
         hashes per block</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 6.0,
        secs(scale.duration_ms as u64),
        (TOP + y0) / 2.0,
        (TOP + y0) / 2.0
    );
    s
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
        assert_eq!(html.matches("<circle").count(), 4);
        assert_eq!(html.matches("<polyline").count(), 1);
        assert!(
            html.contains("<td>190.0 s</td><td>4.5</td><td>3</td><td>2.00</td>"),
            "{html}"
        );
        assert!(!html.contains("NaN") && !html.contains("inf"), "{html}");
        let none = section(&DifficultyResponse::default(), 10_000);
        assert!(none.contains("no final-chain block seen"));
    }
}
