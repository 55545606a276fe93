// peerchain's chart code, shared by the explorer and every scenario report.html: line charts,
// bar charts and block trees drawn as SVG markup (strings, to set with innerHTML), each with
// labelled axes and units and every value on hover (an SVG <title>). The explorer loads it from
// /explorer/charts.js; `peerchain scenario run` inlines this same file into report.html, so the
// two draw with one code. It reads only the spec it is given and touches nothing else: no DOM,
// no network, no globals but the one it defines (PeerchainCharts). A spec is plain JSON, so a
// report can carry it in the page; its fields are snake_case because the report's are written
// by Rust (node/src/scenario/html/charts.rs).
"use strict";
(function (root) {
  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);
  const grouped = new Intl.NumberFormat("en");
  const f1 = (v) => v.toFixed(1);

  // A value as a tick or hover label: whole numbers with thousands separators, others with at
  // most two decimals.
  function label(v) {
    if (!Number.isFinite(v)) return String(v);
    if (Math.abs(v - Math.round(v)) < 1e-9 * Math.max(1, Math.abs(v)) || Math.abs(v) >= 100) return grouped.format(Math.round(v));
    return String(Number(v.toFixed(2)));
  }

  // A "nice" tick step (1, 2 or 5 times a power of ten) giving at most maxTicks ticks over span.
  function niceStep(span, maxTicks) {
    const raw = Math.max(span / maxTicks, 1e-9);
    const power = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw * (1 - 1e-12));
  }

  // The multiples of a nice step (at least minStep) from lo to hi: at most maxTicks + 1 of
  // them, and just lo when the range is empty.
  function ticks(lo, hi, maxTicks, minStep = 0) {
    if (!(hi > lo)) return Number.isFinite(lo) ? [lo] : [];
    const step = Math.max(niceStep(hi - lo, maxTicks), minStep);
    const out = [];
    for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step && out.length <= maxTicks; k++) out.push(k * step || 0);
    return out;
  }

  // Margins shared by line and bar charts: room for the y labels and the unit on the left,
  // the x labels and the unit below.
  const M = { left: 64, right: 16, top: 10, bottom: 40 };

  function frame(w, h, xUnit, yUnit) {
    const y0 = h - M.bottom, mid = (M.top + y0) / 2;
    return `<line class="axis" x1="${M.left}" x2="${w - M.right}" y1="${y0}" y2="${y0}" stroke="#444"/>` +
      `<line class="axis" x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${y0}" stroke="#444"/>` +
      `<text x="${f1((M.left + w - M.right) / 2)}" y="${h - 6}" text-anchor="middle">${esc(xUnit)}</text>` +
      `<text x="14" y="${f1(mid)}" text-anchor="middle" transform="rotate(-90 14 ${f1(mid)})">${esc(yUnit)}</text>`;
  }

  function svgOpen(spec, w, h, cls) {
    const id = spec.id ? ` id="${esc(spec.id)}"` : "";
    return `<svg${id} class="${esc(spec.cls || cls)}" xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(spec.label || "")}">`;
  }

  function extent(values, fallback) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    return lo <= hi ? [lo, hi] : fallback;
  }

  // The y scale: linear from y_min (default 0, or the lowest value if below) to the highest
  // value, or log2 over whole powers of two when y_log; its ticks and their labels.
  function yScale(spec, values, h) {
    const plot = h - M.top - M.bottom;
    if (spec.y_log) {
      const [a, b] = extent(values.filter((v) => v > 0).map(Math.log2), [0, 1]);
      const lo = Math.floor(a) - 0.5, hi = Math.ceil(b) + 0.5;
      const at = (v) => h - M.bottom - ((Math.log2(v) - lo) / (hi - lo)) * plot;
      const every = Math.max(1, Math.floor((Math.floor(hi) - Math.ceil(lo)) / 6));
      const marks = [];
      for (let k = Math.ceil(lo); k <= Math.floor(hi); k += every) marks.push(2 ** k);
      return { at, marks };
    }
    const [a, b] = extent(values, [0, 1]);
    const lo = Math.min(spec.y_min ?? 0, a);
    let hi = b;
    if (hi - lo < (spec.y_integer ? 1 : 1e-9)) hi = lo + 1;
    const at = (v) => h - M.bottom - ((v - lo) / (hi - lo)) * plot;
    return { at, marks: ticks(lo, hi, 6, spec.y_integer ? 1 : 0) };
  }

  // A line chart. spec: { id, cls, label, width, height, x_unit, y_unit, x_min, x_max,
  // x_integer, y_min, y_log, y_integer (whole-number ticks), bands: [{ from, to, colour,
  // title, cls }], series: [{ name, colour, width, cls, line (default true), dots, points:
  // [[x, y] or null (a break)], titles }] }.
  // A series draws a polyline per unbroken run (titled with its name) and, with `dots`, a dot
  // per point titled with titles[i] (default "x_unit x: y y_unit").
  function lineChart(spec) {
    const w = spec.width || 960, h = spec.height || 300;
    const series = spec.series || [];
    const points = series.flatMap((s) => (s.points || []).filter(Boolean));
    const [x0, x1] = extent(points.map((p) => p[0]), [0, 1]);
    const xlo = spec.x_min ?? x0, xmax = spec.x_max ?? x1;
    const xhi = xmax > xlo ? xmax : xlo + 1; // one x value: a unit-wide axis around nothing
    const y = yScale(spec, points.map((p) => p[1]), h);
    const x = (v) => M.left + ((v - xlo) / (xhi - xlo)) * (w - M.left - M.right);
    let out = svgOpen(spec, w, h, "chart");
    for (const b of spec.bands || []) {
      const bx = x(Math.max(b.from, xlo));
      out += `<rect class="${esc(b.cls || "band")}" x="${f1(bx)}" y="${M.top}" width="${f1(Math.max(1, x(Math.min(b.to, xhi)) - bx))}" height="${h - M.top - M.bottom}" fill="${esc(b.colour || "#999")}" fill-opacity="0.15"><title>${esc(b.title)}</title></rect>`;
    }
    for (const v of y.marks) {
      const yy = f1(y.at(v));
      out += `<line class="grid" x1="${M.left}" x2="${w - M.right}" y1="${yy}" y2="${yy}" stroke="#ddd"/><text x="${M.left - 6}" y="${f1(y.at(v) + 4)}" text-anchor="end">${esc(label(v))}</text>`;
    }
    for (const v of ticks(xlo, xhi, 10, spec.x_integer ? 1 : 0)) {
      out += `<text x="${f1(x(v))}" y="${h - M.bottom + 15}" text-anchor="middle">${esc(label(v))}</text>`;
    }
    out += frame(w, h, spec.x_unit || "", spec.y_unit || "");
    for (const s of series) out += seriesMarks(s, x, y.at, spec);
    return out + "</svg>";
  }

  function seriesMarks(s, x, y, spec) {
    const colour = esc(s.colour || "#1f77b4");
    // A point the scale cannot place (a missing value, a zero on a log scale) is left out.
    const placed = (p) => p && Number.isFinite(p[0]) && Number.isFinite(p[1]) && Number.isFinite(y(p[1]));
    let out = "";
    if (s.line !== false) {
      let run = [];
      const flush = () => {
        if (run.length) out += `<polyline class="${esc(s.cls || "series")}" fill="none" stroke="${colour}" stroke-width="${s.width || 1.5}" points="${run.join(" ")}"><title>${esc(s.name || "")}</title></polyline>`;
        run = [];
      };
      for (const p of s.points || []) {
        if (placed(p)) run.push(`${f1(x(p[0]))},${f1(y(p[1]))}`);
        else flush();
      }
      flush();
    }
    if (s.dots) {
      (s.points || []).forEach((p, i) => {
        if (!placed(p)) return;
        const title = s.titles?.[i] ?? `${spec.x_unit || "x"} ${label(p[0])}: ${label(p[1])} ${spec.y_unit || ""}`;
        out += `<circle class="dot" cx="${f1(x(p[0]))}" cy="${f1(y(p[1]))}" r="2.5" fill="${colour}"><title>${esc(title)}</title></circle>`;
      });
    }
    return out;
  }

  // A bar chart. spec: { id, cls, label, width, height, x_unit, y_unit, y_integer, colour,
  // bars: [{ label, value, title }] }. Each bar is titled (default "label: value y_unit");
  // every few bars get an x label; the y axis reaches the first tick at or above the tallest.
  function barChart(spec) {
    const w = spec.width || 960, h = spec.height || 200;
    const bars = (spec.bars || []).map((b) => ({ ...b, value: Number.isFinite(b.value) ? b.value : 0 }));
    const tallest = Math.max(0, ...bars.map((b) => b.value));
    const step = Math.max(niceStep(tallest || 1, 4), spec.y_integer ? 1 : 0);
    const top = Math.max(step, Math.ceil(tallest / step - 1e-9) * step);
    const marks = [];
    for (let k = 0; k * step <= top + 1e-9 * step; k++) marks.push(k * step);
    const plotH = h - M.top - M.bottom, barW = (w - M.left - M.right) / Math.max(1, bars.length);
    const y0 = h - M.bottom;
    const every = Math.max(1, Math.floor(bars.length / 10));
    let out = svgOpen(spec, w, h, "bars");
    bars.forEach((b, i) => {
      const bh = (b.value / top) * plotH, bx = M.left + i * barW;
      const title = b.title ?? `${b.label}: ${label(b.value)} ${spec.y_unit || ""}`.trim();
      out += `<rect class="bar" x="${f1(bx)}" y="${f1(y0 - bh)}" width="${f1(Math.max(1, barW - 1))}" height="${f1(bh)}" fill="${esc(spec.colour || "#1f77b4")}"><title>${esc(title)}</title></rect>`;
      if (i % every === 0) out += `<text x="${f1(bx)}" y="${y0 + 15}">${esc(b.label)}</text>`;
    });
    for (const v of marks) {
      const yy = y0 - (v / top) * plotH;
      out += `<text x="${M.left - 6}" y="${f1(yy + 4)}" text-anchor="end">${esc(label(v))}</text>`;
    }
    return out + frame(w, h, spec.x_unit || "", spec.y_unit || "") + "</svg>";
  }

  // Most heights a block tree spans: blocks further below its highest are left out, so one
  // far-off height (a node far behind or ahead) cannot make the drawing unbounded.
  const MAX_TREE_HEIGHTS = 2000;

  // A block tree. spec: { id, cls, label, horizontal, box: [w, h], step_height, step_lane,
  // axis_every, blocks: [{ hash, parent, height, lane, cls, fill, stroke, title, text, href,
  // tip }] }. Heights run left to right (horizontal) or top (highest) to bottom; lanes run
  // across them. A line joins each block to its parent when the parent is drawn; `tip` marks
  // a block with text beside it; every block is a <g class="blk ..."> with a <title>. At most
  // MAX_TREE_HEIGHTS heights, the highest, are drawn.
  function blockTree(spec) {
    const highest = Math.max(...(spec.blocks || []).map((b) => b.height));
    const blocks = (spec.blocks || []).filter((b) => b.height > highest - MAX_TREE_HEIGHTS);
    if (!blocks.length) return "";
    const [bw, bh] = spec.box || [12, 12];
    const sh = spec.step_height || (spec.horizontal ? bw + 4 : bh + 12);
    const sl = spec.step_lane || (spec.horizontal ? bh + 8 : bw + 70);
    const [low, top] = extent(blocks.map((b) => b.height), [0, 0]);
    const lanes = Math.max(...blocks.map((b) => b.lane)) + 1;
    const left = spec.horizontal ? 50 : 70, head = 10;
    const tipRoom = blocks.some((b) => b.tip) ? 110 : 20;
    const pos = (b) => spec.horizontal
      ? [left + (b.height - low) * sh, head + b.lane * sl]
      : [left + b.lane * sl, head + (top - b.height) * sh];
    const span = top - low + 1;
    const w = spec.horizontal ? left + span * sh + tipRoom : left + lanes * sl + tipRoom;
    const h = spec.horizontal ? head + lanes * sl + 30 : head + span * sh + 10;
    const byHash = new Map(blocks.map((b) => [b.hash, b]));
    let lines = "", boxes = "", axis = "";
    for (const b of blocks) {
      const [bx, by] = pos(b);
      const parent = byHash.get(b.parent);
      if (parent) {
        const [px, py] = pos(parent);
        lines += `<line x1="${f1(px + bw / 2)}" y1="${f1(py + bh / 2)}" x2="${f1(bx + bw / 2)}" y2="${f1(by + bh / 2)}" stroke="#999"/>`;
      }
      const paint = `${b.fill ? ` fill="${esc(b.fill)}"` : ""}${b.stroke ? ` stroke="${esc(b.stroke)}" stroke-width="2"` : ""}`;
      const text = b.text ? `<text x="${f1(bx + bw / 2)}" y="${f1(by + bh / 2 + 4)}" text-anchor="middle">${esc(b.text)}</text>` : "";
      const box = `<g class="blk ${esc(b.cls || "")}"><title>${esc(b.title || b.hash)}</title><rect x="${f1(bx)}" y="${f1(by)}" width="${bw}" height="${bh}" rx="${Math.min(4, bw / 4)}"${paint}/>${text}</g>`;
      boxes += b.href ? `<a href="${esc(b.href)}">${box}</a>` : box;
      if (b.tip) boxes += `<text class="tipmark" x="${f1(bx + bw + 6)}" y="${f1(by + bh / 2 + 4)}">◀ ${esc(b.tip)}</text>`;
    }
    const every = spec.axis_every || 1;
    for (let ht = low; ht <= top; ht++) {
      if (ht % every) continue;
      axis += spec.horizontal
        ? `<text x="${f1(left + (ht - low) * sh + bw / 2)}" y="${f1(head + lanes * sl + 14)}" text-anchor="middle">${esc(label(ht))}</text>`
        : `<text x="4" y="${f1(head + (top - ht) * sh + bh / 2 + 4)}">${esc(label(ht))}</text>`;
    }
    axis += spec.horizontal ? `<text x="4" y="${f1(head + lanes * sl + 14)}">height</text>` : "";
    return `${svgOpen(spec, w, h, "blocktree")}${axis}${lines}${boxes}</svg>`;
  }

  root.PeerchainCharts = { esc, label, ticks, lineChart, barChart, blockTree, MAX_TREE_HEIGHTS };
})(globalThis);
