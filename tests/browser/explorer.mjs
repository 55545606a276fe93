// Drives the block explorer in headless Chromium against two live nodes (started by the Rust
// test tests/tests/explorer_browser.rs, which passes their URLs and admin token in the
// environment). Exits non-zero with a message on the first failed expectation.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [A, B] = process.env.NODES.split(",");
const TOKEN = process.env.ADMIN_TOKEN;
const PEER_A = process.env.PEER_A, PEER_B = process.env.PEER_B, ADDR_A = process.env.P2P_A, ADDR_B = process.env.P2P_B;
const OUT = process.env.SCREENSHOTS;
const TXID = process.env.TXID, ADDRESS = process.env.ADDRESS;
mkdirSync(OUT, { recursive: true });

const errors = [];
function expect(cond, what) { if (!cond) throw new Error(`expected: ${what}`); }
async function admin(base, path, body) {
  const r = await fetch(`${base}/v1/admin/${path}`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined });
  if (!r.ok) throw new Error(`admin ${path} on ${base}: ${r.status} ${await r.text()}`);
  return r.json().catch(() => null);
}
const status = async (base) => (await fetch(`${base}/v1/status`)).json();
async function waitFor(fn, what, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    try { if (await fn()) return; } catch { /* retry */ }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  // A search that matches nothing is answered 404 by design (SPEC); Chromium logs every failed
  // fetch, so that one expected response is not counted as an error.
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const url = m.location()?.url || "";
    if (url.includes("/v1/search?q=ffff") && m.text().includes("404")) return;
    errors.push(`console: ${m.text()} (${url})`);
  });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  const shot = (name) => page.screenshot({ path: `${OUT}/${name}.png`, fullPage: true });

  // Home shows the tip and updates live when a block is mined.
  await page.goto(`${A}/`);
  await page.waitForSelector("#tip-height");
  const before = await status(A);
  expect((await page.textContent("#tip-height")).replace(/\D/g, "") === String(before.height), "home shows the tip height");
  await shot("home");
  await admin(A, "mine", { blocks: 1 });
  await page.waitForFunction((h) => document.querySelector("#tip-height")?.textContent.replace(/\D/g, "") === String(h), before.height + 1, { timeout: 15000 });

  // Search by height, hash, txid and address lands on the right page.
  const st = await status(A);
  async function search(q, hashPrefix, heading) {
    await page.fill("#q", q);
    await page.click("#search button");
    await page.waitForFunction((p) => location.hash.startsWith(p), hashPrefix, { timeout: 10000 });
    await page.waitForSelector("h1");
    await page.waitForFunction((h) => document.querySelector("h1")?.textContent.includes(h), heading, { timeout: 10000 });
  }
  await search(String(st.height), "#/block/", "Block");
  await shot("block");
  await search(st.tip_hash, "#/block/", "Block");
  await search(TXID, "#/tx/", "Transaction");
  await page.waitForSelector("#proof-result", { timeout: 10000 });
  expect((await page.textContent("#proof-result")).includes("verified"), "the Merkle proof verifies in the browser");
  await shot("transaction");
  await search(ADDRESS, "#/address/", "Account");
  await shot("account");
  await search("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "#/notfound/", "Not found");
  await shot("not-found");
  for (const [route, name] of [["#/mempool", "mempool"], ["#/network", "network"], ["#/charts", "charts"]]) {
    await page.goto(`${A}/${route}`);
    await page.waitForSelector("h1");
    await shot(name);
  }
  // Charts have axes with units and each value on hover.
  await page.goto(`${A}/#/charts`);
  await page.waitForSelector("svg.chart");
  const chart = await page.$eval("svg.chart", (svg) => ({
    axes: svg.querySelectorAll("line.axis").length,
    unit: svg.textContent.includes("seconds"),
    hover: svg.querySelector("circle title")?.textContent || "",
  }));
  expect(chart.axes === 2 && chart.unit, `the interval chart has two axes and its unit: ${JSON.stringify(chart)}`);
  expect(/^block \d+: [\d.,]+ seconds$/.test(chart.hover), `a point shows its block and value on hover: ${chart.hover}`);

  // Testnet view: two branches during a partition, one tip after healing.
  await page.goto(`${A}/#/testnet`);
  await page.waitForSelector("#nodes");
  await page.fill("#nodes", `${A}\n${B}`);
  await page.click("#nodes-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#tip-summary")?.textContent.includes("one tip"), null, { timeout: 20000 });
  await admin(A, `peers/${PEER_B}/block`);
  await admin(B, `peers/${PEER_A}/block`);
  await admin(A, "mine", { blocks: 2 });
  await admin(B, "mine", { blocks: 1 });
  await page.reload();
  await page.waitForFunction(() => document.querySelector("#tip-summary")?.textContent.includes("2 tips"), null, { timeout: 20000 });
  // The block tree draws both branches side by side, each tip marked, the forks amber.
  expect(await page.$$eval("#block-tree .tipmark", (m) => m.length) === 2, "two tips marked in the block tree");
  expect(await page.$$eval("#block-tree .blk.warn", (b) => b.length) >= 3, "the blocks of both branches drawn as forks");
  const columns = await page.$$eval("#block-tree .blk rect", (r) => new Set(r.map((e) => e.getAttribute("x"))).size);
  expect(columns >= 2, `branches side by side (${columns} columns)`);
  await shot("testnet-partitioned");
  await admin(A, `peers/${PEER_B}/unblock`);
  await admin(B, `peers/${PEER_A}/unblock`);
  await admin(B, "peers", { addr: ADDR_A });
  await waitFor(async () => (await status(B)).tip_hash === (await status(A)).tip_hash, "B to reorganise onto A's heavier branch", 30000);
  await page.reload();
  await page.waitForFunction(() => document.querySelector("#tip-summary")?.textContent.includes("one tip"), null, { timeout: 20000 });
  expect(await page.$$eval("#block-tree .tipmark", (m) => m.length) === 1, "one tip marked once healed");
  await shot("testnet-healed");

  // Latest transactions stay on the home page however many empty blocks follow them (issue 14:
  // it said "Nothing here yet" once the last transfers were more than 10 blocks back).
  await waitFor(async () => (await status(A)).mempool_size === 0, "an empty mempool on A");
  await admin(A, "mine", { blocks: 60 });
  const top = await (await fetch(`${A}/v1/blocks?limit=12`)).json();
  expect(top.items.every((b) => b.height === 0 || b.tx_count === 0), "the newest blocks are empty");
  await page.goto(`${A}/`);
  await page.waitForSelector("#tip-height");
  const latestListed = () => [...document.querySelectorAll("section")]
    .find((s) => s.querySelector("h2")?.textContent === "Latest transactions")
    ?.querySelectorAll('a[href^="#/tx/"]').length > 0;
  await page.waitForFunction(latestListed, null, { timeout: 15000 })
    .catch(() => { throw new Error("expected: the home page lists the latest transactions, 60 empty blocks back"); });
  await shot("home-latest-txs");

  // Phone-width window.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${A}/`);
  await page.waitForSelector("#tip-height");
  await shot("home-phone");

  expect(errors.length === 0, `no errors in the browser console, got:\n${errors.join("\n")}`);
  console.log("explorer browser test passed");
} finally {
  await browser.close();
}
