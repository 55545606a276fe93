// Opens scenario reports (report.html, written by `peerchain scenario run`) in headless
// Chromium from disk and checks each one: no console error, no page error, nothing fetched
// (any request other than the file itself fails the page: a report is self-contained), and
// the essentials shown: the verdict, the assertion table, the height chart as an SVG of
// nonzero size, the per-node table, every chart drawn (each `[data-chart]` spec the page's
// inline chart code, rpc/assets/charts.js, turns into an SVG), and a hover title on every
// chart mark. A full-page
// screenshot of each goes to the screenshot directory, named after the report's directory
// (`<dir>/report.html` -> `<dir>.png`) or, for any other file name, after the file.
//
// Usage: node report.mjs SCREENSHOT_DIR REPORT.html...
// Prints "ok <file>" or "FAIL <file>: <reasons>" per report and exits 1 if any failed (2 on
// bad usage). Driven by node/tests/scenario.rs through peerchain_testkit::browser.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [outDir, ...files] = process.argv.slice(2);
if (!outDir || files.length === 0) {
  console.error("usage: node report.mjs SCREENSHOT_DIR REPORT.html...");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

function shotName(file) {
  const name = basename(file);
  return name === "report.html" ? basename(dirname(resolve(file))) : name.replace(/\.html?$/, "");
}

// What the page shows, read in the page. Returns a list of problems (empty when all is there).
function essentials() {
  // Every kind of chart mark (this runs in the page: nothing from outside the function).
  const MARKS = "polyline, rect.bar, rect.fault, circle, g.blk";
  const problems = [];
  const text = (el) => (el?.textContent || "").trim();
  const verdict = document.querySelector("#verdict");
  if (!verdict) problems.push("no verdict (#verdict)");
  else if (!["PASSED", "FAILED"].includes(text(verdict))) problems.push(`verdict reads "${text(verdict)}"`);
  const rows = (sel) => Math.max(0, document.querySelectorAll(`${sel} tr`).length - 1);
  if (!document.querySelector("table#assertions")) problems.push("no assertion table (table#assertions)");
  else if (rows("table#assertions") < 1) problems.push("the assertion table has no row");
  if (!document.querySelector("table#nodes")) problems.push("no per-node table (table#nodes)");
  else if (rows("table#nodes") < 1) problems.push("the per-node table has no node");
  const heights = document.querySelector("svg#heights");
  if (!heights) problems.push("no height chart (svg#heights)");
  const svgs = [...document.querySelectorAll("svg")].map((s) => s.getBoundingClientRect());
  if (!svgs.some((b) => b.width > 0 && b.height > 0)) problems.push("no SVG chart of nonzero size");
  if (heights) {
    const b = heights.getBoundingClientRect();
    if (!(b.width > 0 && b.height > 0)) problems.push(`the height chart is ${b.width}x${b.height}`);
  }
  const charts = [...document.querySelectorAll("[data-chart]")];
  const undrawn = charts.filter((el) => !el.querySelector("svg"));
  if (undrawn.length) problems.push(`${undrawn.length} charts not drawn (${undrawn.map((el) => el.dataset.chart).join(", ")})`);
  const empty = charts.filter((el) => el.querySelector("svg") && !el.querySelector(`svg :is(${MARKS})`));
  if (empty.length) problems.push(`${empty.length} charts drawn with no mark (${empty.map((el) => el.dataset.chart).join(", ")})`);
  // Hover values: every chart mark that has a <title> must have a non-empty one, and if the
  // page uses titles at all, every mark of that kind carries one.
  const marks = [...document.querySelectorAll(`svg :is(${MARKS})`)];
  const titled = marks.filter((m) => m.querySelector(":scope > title"));
  const emptyTitles = titled.filter((m) => !text(m.querySelector(":scope > title")));
  if (emptyTitles.length) problems.push(`${emptyTitles.length} chart marks with an empty <title>`);
  if (titled.length && titled.length < marks.length) {
    problems.push(`${marks.length - titled.length} of ${marks.length} chart marks have no hover <title>`);
  }
  return { problems, marks: marks.length, titled: titled.length, svgs: svgs.length };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"],
});
let failed = 0;
try {
  for (const file of files) {
    const url = pathToFileURL(resolve(file)).href;
    const errors = [];
    // A fresh context per report, so one page's requests never count against another.
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    // Nothing but the file may load: requests over the network are recorded and aborted.
    await context.route(/^(?!file:)/, (route) => route.abort());
    const page = await context.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console error: ${m.text()}`);
    });
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    page.on("request", (r) => {
      if (r.url() !== url) errors.push(`fetched ${r.url()} (a report must fetch nothing)`);
    });
    page.on("requestfailed", (r) => {
      if (r.url() === url) errors.push(`the page itself failed to load: ${r.failure()?.errorText}`);
    });
    try {
      const response = await page.goto(url, { waitUntil: "load", timeout: 30000 });
      if (response && !response.ok()) errors.push(`loading the page: status ${response.status()}`);
      // Late requests and errors (e.g. from a timer) get a moment to show up.
      await page.waitForTimeout(300);
      const found = await page.evaluate(essentials);
      errors.push(...found.problems);
      const shot = `${outDir}/${shotName(file)}.png`;
      await page.screenshot({ path: shot, fullPage: true });
      if (errors.length === 0) {
        console.log(`ok ${file}: ${found.svgs} charts, ${found.titled} of ${found.marks} marks with hover titles; screenshot ${shot}`);
      }
    } catch (e) {
      errors.push(`browser: ${e.message}`);
    }
    await context.close();
    if (errors.length) {
      failed += 1;
      // Duplicates (the same request seen as a request and as a console message) once each.
      console.log(`FAIL ${file}:\n  ${[...new Set(errors)].join("\n  ")}`);
    }
  }
} finally {
  await browser.close();
}
if (failed) {
  console.log(`report browser check: ${failed} of ${files.length} reports failed`);
  process.exit(1);
}
console.log(`report browser check passed (${files.length} reports)`);
