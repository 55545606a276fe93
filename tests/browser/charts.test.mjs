// Unit tests of the chart code the explorer and the scenario reports share
// (rpc/assets/charts.js), run in Node with no browser: `node --test charts.test.mjs`. Driven by
// tests/tests/explorer_browser.rs. The page-level checks (the charts drawn in Chromium, hover
// titles present) are explorer.mjs's and report.mjs's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { runInThisContext } from "node:vm";

runInThisContext(readFileSync(new URL("../../rpc/assets/charts.js", import.meta.url), "utf8"));
const C = globalThis.PeerchainCharts;

const count = (svg, re) => (svg.match(re) || []).length;
const attrs = (svg, tag, name) => [...svg.matchAll(new RegExp(`<${tag}[^>]*? ${name}="([^"]*)"`, "g"))].map((m) => m[1]);
const titles = (svg) => [...svg.matchAll(/<title>([^<]*)<\/title>/g)].map((m) => m[1]);

test("ticks are round numbers and labels drop needless decimals", () => {
  assert.deepEqual(C.ticks(0, 25, 12), [0, 5, 10, 15, 20, 25]);
  assert.deepEqual(C.ticks(0, 1, 8, 1), [0, 1], "heights tick by whole blocks");
  assert.deepEqual(C.ticks(0, 3000, 8), [0, 500, 1000, 1500, 2000, 2500, 3000]);
  assert.deepEqual(C.ticks(3, 17, 5), [5, 10, 15], "ticks start at the first multiple inside the range");
  assert.equal(C.label(0.30000000000000004), "0.3");
  assert.equal(C.label(20), "20");
  assert.equal(C.label(12345.6), "12,346");
  assert.deepEqual(C.ticks(5, 5, 10), [5], "an empty range has one tick");
  assert.deepEqual(C.ticks(1.7e12, 1.7e12 + 1e-9, 10).length <= 11, true, "never more than maxTicks + 1");
});

test("one x value, a huge one, or missing values draw a bounded chart", () => {
  for (const x of [0, 1e6, 1.7e12]) {
    const svg = C.lineChart({ x_unit: "t", y_unit: "v", series: [{ name: "s", dots: true, points: [[x, 1], [x, 2]] }] });
    assert.ok(svg.length < 20000, `x = ${x}: ${svg.length} characters`);
    assert.ok(!/NaN|Infinity/.test(svg), svg);
  }
  const gaps = C.lineChart({ x_unit: "t", y_unit: "v", series: [{ name: "s", dots: true, points: [[0, 1], [1, null], [2, 3]] }] });
  assert.equal(count(gaps, /<circle/g), 2, "a null value (NaN from Rust) is not drawn at 0");
  const bars = C.barChart({ y_unit: "count", bars: [{ label: "0", value: null }, { label: "1", value: 3 }] });
  assert.ok(!/null|NaN/.test(bars), bars);
});

test("a line chart shades its bands, breaks its lines and titles every mark", () => {
  const svg = C.lineChart({
    id: "heights", label: "h", x_unit: "time (s)", y_unit: "height (blocks)", x_min: 0, x_max: 10, y_integer: true,
    bands: [{ from: 1, to: 4, colour: "#ff9800", title: "partition <a> | b", cls: "fault" }],
    series: [{ name: "node 0", colour: "#1f77b4", points: [[0, 1], [2, 2], null, [5, 3], [9, 4]] }],
  });
  assert.match(svg, /^<svg id="heights" class="chart"/);
  assert.equal(count(svg, /<rect class="fault"/g), 1);
  assert.equal(count(svg, /<polyline /g), 2, "a node that was down breaks its line");
  assert.ok(titles(svg).includes("partition &lt;a&gt; | b"), "titles are escaped");
  assert.equal(count(svg, /<polyline[^>]*><title>node 0<\/title>/g), 2);
  assert.equal(count(svg, /<line class="axis"/g), 2);
  assert.ok(svg.includes(">time (s)<") && svg.includes(">height (blocks)<"), "both units shown");
  // x: 0..10 s over 64..944 px; the band from 1 s to 4 s.
  assert.deepEqual(attrs(svg, "rect", "x"), ["152.0"]);
  assert.deepEqual(attrs(svg, "rect", "width"), ["264.0"]);
  assert.ok(!/NaN|Infinity|undefined/.test(svg), svg);
});

test("dots carry their own hover text, or the value with its units", () => {
  const given = C.lineChart({ x_unit: "block height", y_unit: "seconds", series: [{ name: "i", dots: true, points: [[5, 1.5], [6, 2]], titles: ["block 5: 1.5 seconds", "block 6: 2 seconds"] }] });
  assert.deepEqual(titles(given).slice(-2), ["block 5: 1.5 seconds", "block 6: 2 seconds"]);
  const xLabels = (svg) => [...svg.matchAll(/<text x="[^"]*" y="[^"]*" text-anchor="middle">([^<]*)</g)].map((m) => m[1]);
  assert.ok(xLabels(given).includes("5.5"), "a linear x axis ticks between whole numbers");
  const whole = C.lineChart({ x_integer: true, x_unit: "block height", y_unit: "s", series: [{ name: "i", points: [[5, 1], [6, 2]] }] });
  assert.deepEqual(xLabels(whole).slice(0, 2), ["5", "6"], "x_integer ticks whole blocks only");
  const plain = C.lineChart({ x_unit: "s", y_unit: "tx", series: [{ name: "n", line: false, dots: true, points: [[0, 3], [1, 4]] }] });
  assert.equal(count(plain, /<polyline/g), 0, "line: false draws dots only");
  assert.deepEqual(titles(plain), ["s 0: 3 tx", "s 1: 4 tx"]);
});

test("a log-scale chart ticks at powers of two", () => {
  const svg = C.lineChart({ y_log: true, x_unit: "s", y_unit: "hashes per block", series: [{ name: "d", dots: true, points: [[0, 1000], [1, 4000], [2, 0]] }] });
  const labels = [...svg.matchAll(/text-anchor="end">([^<]*)</g)].map((m) => m[1]);
  assert.deepEqual(labels, ["512", "1,024", "2,048", "4,096"]);
  assert.equal(count(svg, /<circle/g), 2, "a zero cannot be placed on a log scale and is left out");
  assert.ok(!/NaN|Infinity/.test(svg), svg);
});

test("a bar chart titles each bar with its value and unit", () => {
  const svg = C.barChart({ label: "latency", x_unit: "s (bucket start)", y_unit: "count", bars: [{ label: "0", value: 4 }, { label: "0.5", value: 2 }] });
  assert.equal(count(svg, /<rect class="bar"/g), 2);
  assert.deepEqual(titles(svg), ["0: 4 count", "0.5: 2 count"]);
  const heights = attrs(svg, "rect", "height").map(Number);
  assert.equal(heights[0], 2 * heights[1], "bars scale with their values");
  const axis = (s) => [...s.matchAll(/text-anchor="end">([^<]*)</g)].map((m) => m[1]);
  const counts = C.barChart({ y_unit: "count", y_integer: true, bars: [{ label: "a", value: 7 }, { label: "b", value: 2 }] });
  assert.deepEqual(axis(counts), ["0", "2", "4", "6", "8"], "whole counts, the tallest bar under the top tick");
  assert.deepEqual(axis(C.barChart({ y_integer: true, bars: [{ label: "a", value: 2 }] })), ["0", "1", "2"]);
  const titled = C.barChart({ bars: [{ label: "12", value: 3, title: "block 12: 3 transactions" }] });
  assert.deepEqual(titles(titled), ["block 12: 3 transactions"]);
});

const fork = [
  { hash: "a1", parent: "g", height: 1, lane: 0, cls: "block", title: "a1" },
  { hash: "a2", parent: "a1", height: 2, lane: 0, cls: "block", title: "a2", tip: "node 0" },
  { hash: "b2", parent: "a1", height: 2, lane: 1, cls: "stale", stroke: "#c62828", fill: "#d62728", title: "b2", tip: "node 1" },
];

test("a horizontal block tree puts heights across and lanes down", () => {
  const svg = C.blockTree({ id: "block-tree", horizontal: true, box: [12, 12], step_height: 16, step_lane: 20, axis_every: 1, blocks: fork });
  assert.deepEqual(attrs(svg, "rect", "x"), ["50.0", "66.0", "66.0"]);
  assert.deepEqual(attrs(svg, "rect", "y"), ["10.0", "10.0", "30.0"], "the fork one lane below");
  assert.equal(count(svg, /<line /g), 2, "each block to its parent; a1's is not drawn");
  assert.equal(count(svg, /stroke="#c62828"/g), 1);
  assert.equal(count(svg, /class="tipmark"/g), 2);
  assert.deepEqual(titles(svg), ["a1", "a2", "b2"]);
});

test("a vertical block tree puts branches side by side, highest block on top, with links", () => {
  const blocks = fork.map((b) => ({ ...b, text: b.hash, href: `#/block/${b.hash}` }));
  const svg = C.blockTree({ id: "block-tree", box: [80, 22], step_height: 34, step_lane: 150, blocks });
  assert.deepEqual(attrs(svg, "rect", "x"), ["70.0", "70.0", "220.0"], "two columns");
  assert.deepEqual(attrs(svg, "rect", "y"), ["44.0", "10.0", "10.0"]);
  assert.equal(count(svg, /<a href="#\/block\/[ab][12]">/g), 3);
  assert.equal(C.blockTree({ blocks: [] }), "", "nothing to draw draws nothing");
  const far = C.blockTree({ blocks: [{ hash: "low", parent: "g", height: 3, lane: 0 }, { hash: "high", parent: "x", height: 1e6, lane: 1 }] });
  assert.deepEqual(titles(far), ["high"], "a block far below the highest is left out");
  assert.ok(far.length < 5000, `bounded: ${far.length} characters`);
});
