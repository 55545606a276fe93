// peerchain block explorer: a dependency-free single-page app over the node's HTTP API.
// Routes live in the URL hash so every page has a stable, shareable address.
"use strict";

const $ = (sel) => document.querySelector(sel);
const main = $("#main");
const fmt = new Intl.NumberFormat();
let events = null;
let onEvent = null; // the current page's live-update hook

// ---------- helpers ----------
function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
const num = (n) => (n === null || n === undefined ? "–" : fmt.format(n));
const short = (h) => (h ? `${h.slice(0, 10)}…${h.slice(-6)}` : "–");
const link = (kind, id, text) => `<a href="#/${kind}/${esc(id)}" class="mono">${esc(text ?? id)}</a>`;
function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}
const when = (ms) => (ms ? `${new Date(ms).toLocaleString()} <span class="muted">(${ago(ms)})</span>` : "–");

async function api(path, base = "") {
  const r = await fetch(base + path, { headers: { accept: "application/json" } });
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    const err = new Error(body?.error?.message || `${r.status} ${r.statusText}`);
    err.status = r.status;
    err.code = body?.error?.code;
    throw err;
  }
  return body;
}

function fields(rows) {
  return `<dl class="fields">${rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("")}</dl>`;
}

function table(headers, rows) {
  const th = headers.map((h) => `<th class="${h.endsWith("#") ? "num" : ""}">${esc(h.replace(/#$/, ""))}</th>`).join("");
  return `<table><thead><tr>${th}</tr></thead><tbody>${rows.join("") || `<tr><td colspan="${headers.length}" class="muted">Nothing here yet.</td></tr>`}</tbody></table>`;
}

// 256-bit helpers with BigInt.
const big = (hex) => BigInt("0x" + (hex || "0"));
const workOf = (targetHex) => (1n << 256n) / (big(targetHex) + 1n);

// ---------- SHA-256 (WebCrypto when available, else a small pure-JS fallback) ----------
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
function sha256Sync(msg) {
  const len = msg.length;
  const total = ((len + 9 + 63) >> 6) << 6;
  const buf = new Uint8Array(total);
  buf.set(msg);
  buf[len] = 0x80;
  const view = new DataView(buf.buffer);
  view.setUint32(total - 4, (len * 8) >>> 0);
  view.setUint32(total - 8, Math.floor((len * 8) / 2 ** 32));
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < total; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  h.forEach((x, i) => ov.setUint32(i * 4, x));
  return out;
}
const hexToBytes = (hex) => Uint8Array.from(hex.match(/../g) || [], (b) => parseInt(b, 16));
const bytesToHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
const leafHash = (leaf) => sha256Sync(concat(Uint8Array.of(0), leaf));
const nodeHash = (l, r) => sha256Sync(concat(Uint8Array.of(1), l, r));

// RFC 9162 section 2.1.3.2 inclusion proof verification.
function verifyInclusion(txidHex, index, leafCount, siblingsHex, rootHex) {
  if (index >= leafCount) return false;
  let fn = BigInt(index), sn = BigInt(leafCount - 1);
  let r = leafHash(hexToBytes(txidHex));
  for (const p of siblingsHex.map(hexToBytes)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n && bytesToHex(r) === rootHex;
}

// ---------- live events ----------
function connectEvents() {
  if (events || !window.EventSource) return;
  events = new EventSource("/v1/events");
  for (const kind of ["block", "reorg", "tx"]) {
    events.addEventListener(kind, (e) => {
      let data = null;
      try { data = JSON.parse(e.data); } catch { return; }
      if (kind === "reorg") showReorg(data);
      if (onEvent) onEvent(kind, data);
    });
  }
}
function showReorg(r) {
  const b = $("#banner");
  const gone = (r.disconnected || []).map((h) => link("block", h, short(h))).join(", ");
  b.innerHTML = `Reorganisation at height ${num(r.fork_height)}: ${num((r.disconnected || []).length)} block(s) left the main chain (${gone}); new tip ${link("block", r.new_tip, short(r.new_tip))}. <button class="secondary" type="button" id="dismiss">Dismiss</button>`;
  b.hidden = false;
  $("#dismiss").onclick = () => { b.hidden = true; };
}

// The newest confirmed transactions (at most 10), however many empty blocks came since: walks
// the main chain down from `first` (a page of /v1/blocks), 100 blocks a request, at most
// LATEST_TX_SCAN blocks, and reads the transactions of blocks that have any.
const LATEST_TX_SCAN = 5000;
async function latestTransactions(first) {
  const txs = [];
  let page = first, scanned = 0;
  while (page && txs.length < 10 && scanned < LATEST_TX_SCAN) {
    for (const b of page.items || []) {
      scanned++;
      if (txs.length >= 10 || !b.tx_count) continue;
      const t = await api(`/v1/blocks/${b.hash}/transactions?limit=10`).catch(() => ({ items: [] }));
      for (const x of t.items || []) if (txs.length < 10) txs.push({ ...x, height: b.height });
    }
    page = page.next_cursor && txs.length < 10
      ? await api(`/v1/blocks?limit=100&cursor=${encodeURIComponent(page.next_cursor)}`).catch(() => null)
      : null;
  }
  return { txs, scanned };
}

// ---------- pages ----------
async function home() {
  const [st, blocks] = await Promise.all([api("/v1/status"), api("/v1/blocks?limit=50")]);
  const items = blocks.items || [];
  // The genesis timestamp is fixed in the genesis file, so intervals start at block 1.
  const mined = items.filter((b) => b.height > 0);
  const span = mined.length > 1 ? mined[0].timestamp_ms - mined[mined.length - 1].timestamp_ms : 0;
  const avg = mined.length > 1 ? span / (mined.length - 1) : null;
  const work = mined.slice(0, -1).reduce((s, b) => s + workOf(b.target), 0n);
  const hashrate = span > 0 ? Number((work * 1000n) / BigInt(span)) : null;
  const latest = await latestTransactions(blocks);
  const latestTxs = latest.txs;
  main.innerHTML = `
    <h1>Chain ${esc(st.chain_id)} <span class="muted mono">${short(st.genesis_hash)}</span></h1>
    <div class="grid">
      <div class="card"><div class="k">Tip height</div><div class="v" id="tip-height">${num(st.height)}</div></div>
      <div class="card"><div class="k">Tip hash</div><div class="v mono" id="tip-hash">${link("block", st.tip_hash, short(st.tip_hash))}</div></div>
      <div class="card"><div class="k">Difficulty (hashes per block)</div><div class="v">${num(Number(workOf(st.target)))}</div></div>
      <div class="card"><div class="k">Network hash rate</div><div class="v">${hashrate === null ? "–" : num(hashrate) + " H/s"}</div></div>
      <div class="card"><div class="k">Average block time</div><div class="v">${avg === null ? "–" : (avg / 1000).toFixed(2) + " s"}</div></div>
      <div class="card"><div class="k">Mempool</div><div class="v"><a href="#/mempool">${num(st.mempool_size)}</a></div></div>
      <div class="card"><div class="k">Peers</div><div class="v"><a href="#/network">${num(st.peer_count)}</a></div></div>
      <div class="card"><div class="k">State digest</div><div class="v mono">${short(st.state_digest)}</div></div>
    </div>
    <div class="cols">
      <section><h2>Latest blocks</h2>${table(["Height#", "Hash", "Txs#", "Time"], items.slice(0, 12).map((b) =>
        `<tr><td class="num">${link("block", b.height, num(b.height))}</td><td>${link("block", b.hash, short(b.hash))}</td><td class="num">${num(b.tx_count)}</td><td>${ago(b.timestamp_ms)}</td></tr>`))}</section>
      <section id="latest-txs"><h2>Latest transactions</h2><div id="live-txs"></div>${table(["Txid", "Amount#", "Block#"], latestTxs.map((t) =>
        `<tr><td>${link("tx", t.txid, short(t.txid))}</td><td class="num">${num(t.amount)}</td><td class="num">${link("block", t.height, num(t.height))}</td></tr>`))}${latestTxs.length ? "" : `<p class="muted">No transaction in the latest ${num(latest.scanned)} blocks.</p>`}</section>
    </div>`;
  let pending = null;
  onEvent = (kind, data) => {
    if (kind === "tx") {
      const box = $("#live-txs");
      if (box) box.innerHTML = `<p class="muted">New in mempool: ${link("tx", data.txid, short(data.txid))}</p>`;
      return;
    }
    clearTimeout(pending);
    pending = setTimeout(() => route(), 300); // block or reorg: redraw with the new tip
  };
}

async function blockPage(id) {
  const b = await api(`/v1/blocks/${encodeURIComponent(id)}`);
  const cursor = new URLSearchParams(location.hash.split("?")[1] || "").get("cursor");
  const txs = await api(`/v1/blocks/${b.hash}/transactions?limit=25${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`);
  main.innerHTML = `
    <h1>Block ${num(b.height)} ${b.in_main_chain ? '<span class="tag ok">main chain</span>' : '<span class="tag warn">fork</span>'}</h1>
    ${fields([
      ["Hash", `<span class="mono">${esc(b.hash)}</span>`],
      ["Height", num(b.height)],
      ["Confirmations", num(b.confirmations)],
      ["Previous", b.height > 0 ? link("block", b.prev_hash) : "none (genesis)"],
      ["Next", b.next_hash ? link("block", b.next_hash) : "–"],
      ["Time", when(b.timestamp_ms)],
      ["Miner", link("address", b.miner)],
      ["Reward", num(b.reward)],
      ["Fees", num(b.fees)],
      ["Transactions", num(b.tx_count)],
      ["Merkle root (tx_root)", `<span class="mono">${esc(b.tx_root)}</span>`],
      ["Target", `<span class="mono">${esc(b.target)}</span>`],
      ["Work", `<span class="mono">${esc(b.work)}</span>`],
      ["Total work", `<span class="mono">${esc(b.total_work)}</span>`],
      ["Nonce", num(b.nonce)],
      ["Version", esc(b.version)],
      ["State digest", `<span class="mono">${esc(b.state_digest ?? "–")}</span>`],
    ])}
    <h2>Transactions</h2>
    ${txTable(txs.items || [])}
    ${pager(`#/block/${b.hash}`, txs.next_cursor)}`;
}

function txTable(items) {
  return table(["Txid", "From", "To", "Amount#", "Fee#"], items.map((t) =>
    `<tr><td>${link("tx", t.txid, short(t.txid))}</td><td>${link("address", t.sender, short(t.sender))}</td><td>${link("address", t.to, short(t.to))}</td><td class="num">${num(t.amount)}</td><td class="num">${num(t.fee)}</td></tr>`));
}

function pager(base, next) {
  const here = new URLSearchParams(location.hash.split("?")[1] || "").get("cursor");
  const first = here ? `<a href="${base}">First page</a>` : "";
  const more = next ? `<a href="${base}?cursor=${encodeURIComponent(next)}">Next page</a>` : "";
  return `<div class="pager">${first} ${more}</div>`;
}

async function txPage(txid) {
  const t = await api(`/v1/transactions/${encodeURIComponent(txid)}`);
  const rows = [
    ["Txid", `<span class="mono">${esc(t.txid)}</span>`],
    ["Status", t.status === "confirmed" ? `<span class="tag ok">confirmed</span> ${num(t.confirmations)} confirmations` : '<span class="tag warn">pending</span>'],
    ["From", link("address", t.sender) + ` <span class="muted">(key <span class="mono">${esc(short(t.from))}</span>)</span>`],
    ["To", link("address", t.to)],
    ["Amount", num(t.amount)],
    ["Fee", num(t.fee)],
    ["Nonce", num(t.nonce)],
    ["Chain id", esc(t.chain_id)],
    ["First seen", t.first_seen_ms ? when(t.first_seen_ms) : '<span class="muted">not seen by this node before confirmation</span>'],
    ["Signature", `<span class="mono">${esc(t.signature)}</span>`],
  ];
  if (t.status === "confirmed") rows.splice(2, 0, ["Block", `${link("block", t.block_hash)} at height ${link("block", t.height, num(t.height))}, position ${num(t.index)}`]);
  main.innerHTML = `<h1>Transaction</h1>${fields(rows)}<h2>Merkle inclusion proof</h2><div id="proof" class="muted">${t.status === "confirmed" ? "Checking…" : "Available once confirmed."}</div>`;
  if (t.status !== "confirmed") return;
  const p = await api(`/v1/transactions/${t.txid}/proof`);
  const ok = verifyInclusion(p.txid, p.index, p.leaf_count, p.siblings, p.tx_root);
  $("#proof").classList.remove("muted");
  $("#proof").innerHTML = `
    <p id="proof-result">${ok ? '<span class="tag ok">verified</span> The proof checks out in your browser against the block\'s tx_root.' : '<span class="tag bad">failed</span> The proof does not match the block\'s tx_root.'}</p>
    ${fields([["Leaf index", `${num(p.index)} of ${num(p.leaf_count)}`], ["tx_root", `<span class="mono">${esc(p.tx_root)}</span>`],
      ["Siblings (leaf upwards)", (p.siblings || []).map((s) => `<div class="mono">${esc(s)}</div>`).join("") || "none (single leaf)"]])}`;
}

async function addressPage(addr) {
  const cursor = new URLSearchParams(location.hash.split("?")[1] || "").get("cursor");
  const [a, h] = await Promise.all([
    api(`/v1/accounts/${encodeURIComponent(addr)}`),
    api(`/v1/accounts/${encodeURIComponent(addr)}/transactions?limit=25${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`),
  ]);
  const me = a.address;
  const rows = (h.items || []).map((t) => {
    const dir = t.sender === me && t.to === me ? "self" : t.sender === me ? "out" : "in";
    const signed = dir === "in" ? `+${num(t.amount)}` : dir === "out" ? `−${num(t.amount + t.fee)}` : `−${num(t.fee)}`;
    const other = dir === "in" ? t.sender : t.to;
    return `<tr><td>${link("tx", t.txid, short(t.txid))}</td><td><span class="tag">${dir}</span></td><td>${link("address", other, short(other))}</td><td class="num">${signed}</td><td>${t.status === "confirmed" ? link("block", t.height, num(t.height)) : '<span class="tag warn">pending</span>'}</td></tr>`;
  });
  main.innerHTML = `<h1>Account <span class="mono">${esc(me)}</span></h1>
    <div class="grid">
      <div class="card"><div class="k">Balance</div><div class="v">${num(a.balance)}</div></div>
      <div class="card"><div class="k">Nonce</div><div class="v">${num(a.nonce)}</div></div>
      <div class="card"><div class="k">Next nonce</div><div class="v">${num(a.next_nonce)}</div></div>
      <div class="card"><div class="k">Transactions</div><div class="v">${num(a.tx_count)}</div></div>
    </div>
    <h2>History</h2>${table(["Txid", "Direction", "Counterparty", "Change#", "Block"], rows)}${pager(`#/address/${me}`, h.next_cursor)}`;
}

async function mempoolPage() {
  const cursor = new URLSearchParams(location.hash.split("?")[1] || "").get("cursor");
  const m = await api(`/v1/mempool?limit=50${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`);
  main.innerHTML = `<h1>Mempool</h1><p>${num(m.count)} pending transactions, ${num(m.bytes)} bytes, highest fee first.</p>
    ${table(["Txid", "From", "To", "Amount#", "Fee#", "Nonce#"], (m.items || []).map((t) =>
      `<tr><td>${link("tx", t.txid, short(t.txid))}</td><td>${link("address", t.sender, short(t.sender))}</td><td>${link("address", t.to, short(t.to))}</td><td class="num">${num(t.amount)}</td><td class="num">${num(t.fee)}</td><td class="num">${num(t.nonce)}</td></tr>`))}
    ${pager("#/mempool", m.next_cursor)}`;
  onEvent = (kind) => { if (kind !== "reorg") debounceRoute(); };
}

async function networkPage() {
  const [peers, tips] = await Promise.all([api("/v1/peers"), api("/v1/chain/tips")]);
  main.innerHTML = `<h1>Network</h1>
    <h2>Peers</h2>${table(["Peer id", "Address", "Direction", "Connected", "Best height#"], (peers || []).map((p) =>
      `<tr><td class="mono">${esc(short(p.peer_id))}</td><td class="mono">${esc(p.address)}</td><td>${esc(p.direction)}</td><td>${ago(p.connected_since_ms)}</td><td class="num">${num(p.best_height)}</td></tr>`))}
    <h2>Chain tips</h2>${table(["Hash", "Height#", "Branch length#", "Status"], (tips || []).map((t) =>
      `<tr><td>${link("block", t.hash, short(t.hash))}</td><td class="num">${num(t.height)}</td><td class="num">${num(t.branch_length)}</td><td><span class="tag ${t.status === "active" ? "ok" : t.status === "invalid" ? "bad" : "warn"}">${esc(t.status)}</span></td></tr>`))}
    <p><a href="#/testnet">Testnet view: every node's tip on one block tree</a></p>`;
}

async function testnetNodes() {
  const saved = localStorage.getItem("peerchain-testnet-nodes");
  if (saved) return JSON.parse(saved);
  const fromScript = await api("/explorer/nodes.json").catch(() => null);
  return Array.isArray(fromScript) && fromScript.length ? fromScript : [location.origin];
}

async function testnetPage() {
  const nodes = await testnetNodes();
  const depth = 15;
  const views = await Promise.all(nodes.map(async (url) => {
    try {
      const [st, bl] = await Promise.all([api("/v1/status", url), api(`/v1/blocks?limit=${depth}`, url)]);
      return { url, st, blocks: bl.items || [] };
    } catch (e) {
      return { url, error: e.message, blocks: [] };
    }
  }));
  const heights = [...new Set(views.flatMap((v) => v.blocks.map((b) => b.height)))].sort((a, b) => b - a).slice(0, depth);
  const rows = heights.map((h) => {
    const cells = views.map((v) => v.blocks.find((b) => b.height === h));
    const hashes = new Set(cells.filter(Boolean).map((b) => b.hash));
    const digestsByHash = {};
    let divergent = false;
    for (const b of cells.filter(Boolean)) {
      if (b.state_digest === undefined) continue;
      if (digestsByHash[b.hash] && digestsByHash[b.hash] !== b.state_digest) divergent = true;
      digestsByHash[b.hash] = b.state_digest;
    }
    const flag = divergent ? '<span class="tag bad">state digests differ</span>' : hashes.size > 1 ? '<span class="tag warn">fork</span>' : "";
    return `<tr class="${divergent ? "diverge" : ""}"><td class="num">${num(h)}</td>${cells.map((b) => `<td class="mono">${b ? esc(b.hash.slice(0, 8)) : "·"}</td>`).join("")}<td>${flag}</td></tr>`;
  });
  const distinctTips = new Set(views.filter((v) => v.st).map((v) => v.st.tip_hash));
  main.innerHTML = `<h1>Testnet</h1>
    <p id="tip-summary">${distinctTips.size === 1 ? '<span class="tag ok">one tip</span> every node agrees' : `<span class="tag warn">${distinctTips.size} tips</span> nodes are on different branches`}</p>
    ${table(["Node", "Height#", "Tip", "Peers#", "Mempool#"], views.map((v, i) => v.error
      ? `<tr><td>${i}: ${esc(v.url)}</td><td colspan="4" class="muted">unreachable: ${esc(v.error)}</td></tr>`
      : `<tr><td>${i}: <a href="${esc(v.url)}/">${esc(v.url)}</a></td><td class="num">${num(v.st.height)}</td><td class="mono tip">${esc(short(v.st.tip_hash))}</td><td class="num">${num(v.st.peer_count)}</td><td class="num">${num(v.st.mempool_size)}</td></tr>`))}
    <h2>Block tree (last ${depth} heights)</h2>
    ${blockTree(views)}
    <details><summary>Hashes per height and node</summary>
    <table class="tree"><thead><tr><th class="num">Height</th>${views.map((_, i) => `<th>node ${i}</th>`).join("")}<th></th></tr></thead><tbody>${rows.join("")}</tbody></table></details>
    <h2>Nodes</h2>
    <form id="nodes-form"><label for="nodes">Node URLs, one per line</label><textarea id="nodes" rows="4">${esc(nodes.join("\n"))}</textarea>
    <div class="pager"><button type="submit">Use these nodes</button><button type="button" class="secondary" id="nodes-reset">Reset to the testnet script's list</button></div></form>`;
  $("#nodes-form").onsubmit = (e) => {
    e.preventDefault();
    const list = $("#nodes").value.split(/\s+/).map((s) => s.trim().replace(/\/$/, "")).filter(Boolean);
    localStorage.setItem("peerchain-testnet-nodes", JSON.stringify(list));
    route();
  };
  $("#nodes-reset").onclick = () => { localStorage.removeItem("peerchain-testnet-nodes"); route(); };
  onEvent = (kind) => { if (kind !== "tx") debounceRoute(); };
}

// The block tree every node's last blocks make: one column per branch (the branch most nodes
// follow first), a block's parent below it, each node's tip marked with its number; blocks some
// node does not have on its main chain are forks (amber), and a block two nodes give different
// state digests is red. Reads nothing but `views` (status and last blocks per node); the drawing
// is charts.js's, shared with the scenario reports.
function blockTree(views) {
  const blocks = new Map();
  views.forEach((v, i) => {
    for (const b of v.blocks) {
      const e = blocks.get(b.hash) || { ...b, nodes: [], digests: new Set(), col: null };
      e.nodes.push(i);
      if (b.state_digest !== undefined) e.digests.add(b.state_digest);
      blocks.set(b.hash, e);
    }
  });
  if (!blocks.size) return `<p class="muted">No node answered.</p>`;
  const tips = new Map();
  views.forEach((v, i) => { if (v.st) tips.set(v.st.tip_hash, [...(tips.get(v.st.tip_hash) || []), i]); });
  const order = [...tips.keys()].filter((h) => blocks.has(h))
    .sort((a, b) => tips.get(b).length - tips.get(a).length || blocks.get(b).height - blocks.get(a).height);
  let cols = 0;
  for (const tip of order) {
    const col = cols++;
    for (let e = blocks.get(tip); e && e.col === null; e = blocks.get(e.prev_hash)) e.col = col;
  }
  for (const e of blocks.values()) if (e.col === null) e.col = cols++;
  const all = views.filter((v) => v.st).length;
  const marks = [...blocks.values()].map((e) => ({
    hash: e.hash,
    parent: e.prev_hash,
    height: e.height,
    lane: e.col,
    cls: e.digests.size > 1 ? "bad" : e.nodes.length < all ? "warn" : "ok",
    title: `height ${e.height}, ${e.hash}, on the main chain of node${e.nodes.length > 1 ? "s" : ""} ${e.nodes.join(", ")}${e.digests.size > 1 ? "; state digests differ" : ""}`,
    text: e.hash.slice(0, 8),
    href: `#/block/${e.hash}`,
    tip: tips.has(e.hash) ? `node ${tips.get(e.hash).join(", ")}` : undefined,
  }));
  return `${PeerchainCharts.blockTree({ id: "block-tree", label: "block tree of the last blocks of every node", box: [80, 22], step_height: 34, step_lane: 150, blocks: marks })}
    <p class="muted">One column per branch; <span class="tag warn">amber</span> blocks are not on every node's main chain, <span class="tag bad">red</span> ones have differing state digests.</p>`;
}

// A chart of one value per block (x: block height, oldest on the left; y: `unit`), each value
// on hover; drawn by charts.js (`kind`: lineChart or barChart), as the scenario reports are.
function blockChart(kind, values, label, unit, xs) {
  if (values.length < 2) return `<p class="muted">Not enough blocks yet for ${esc(label)}.</p>`;
  const common = { label, width: 640, height: 190, x_unit: "block height", x_integer: true, y_unit: unit };
  const svg = kind === "barChart"
    ? PeerchainCharts.barChart({ ...common, cls: "chart", y_integer: true,
      bars: values.map((v, i) => ({ label: num(xs[i]), value: v, title: `block ${num(xs[i])}: ${num(v)} ${unit}` })) })
    : PeerchainCharts.lineChart({ ...common, series: [{ name: label, dots: true, points: values.map((v, i) => [xs[i], v]),
      titles: values.map((v, i) => `block ${num(xs[i])}: ${PeerchainCharts.label(v)} ${unit}`) }] });
  return `<figure><figcaption>${esc(label)}</figcaption>${svg}</figure>`;
}

async function chartsPage() {
  const blocks = [];
  let cursor = null;
  while (blocks.length < 300) {
    const page = await api(`/v1/blocks?limit=100${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`);
    blocks.push(...(page.items || []));
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  blocks.reverse(); // oldest first
  const mined = blocks.filter((b) => b.height > 0); // genesis has a fixed, old timestamp
  const intervals = mined.slice(1).map((b, i) => (b.timestamp_ms - mined[i].timestamp_ms) / 1000);
  const difficulty = blocks.map((b) => Number(workOf(b.target)));
  const txs = blocks.map((b) => b.tx_count);
  const heights = blocks.map((b) => b.height);
  main.innerHTML = `<h1>Charts</h1><p class="muted">Last ${num(blocks.length)} main-chain blocks, oldest on the left; hover a point for its value.</p>
    ${blockChart("lineChart", intervals, "Block interval", "seconds", mined.slice(1).map((b) => b.height))}${blockChart("lineChart", difficulty, "Difficulty", "expected hashes per block", heights)}${blockChart("barChart", txs, "Transactions per block", "transactions", heights)}`;
}

function notFound(what) {
  main.innerHTML = `<h1>Not found</h1><p>Nothing matches <span class="mono">${esc(what)}</span>: no block height, block hash, transaction id or address by that name on this node.</p><p><a href="#/">Back to the latest blocks</a></p>`;
}

// ---------- routing ----------
let routeTimer = null;
function debounceRoute() { clearTimeout(routeTimer); routeTimer = setTimeout(route, 500); }

async function route() {
  onEvent = null;
  const [path] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts.length === 0) await home();
    else if (parts[0] === "block" && parts[1]) await blockPage(parts[1]);
    else if (parts[0] === "tx" && parts[1]) await txPage(parts[1]);
    else if (parts[0] === "address" && parts[1]) await addressPage(parts[1]);
    else if (parts[0] === "mempool") await mempoolPage();
    else if (parts[0] === "network") await networkPage();
    else if (parts[0] === "testnet") await testnetPage();
    else if (parts[0] === "charts") await chartsPage();
    else if (parts[0] === "notfound") notFound(parts[1] || "");
    else notFound(path);
  } catch (e) {
    if (e.status === 404 || e.status === 400) notFound(parts[1] || path);
    else main.innerHTML = `<h1>Error</h1><p>${esc(e.message)}</p>`;
  }
}

$("#search").addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = $("#q").value.trim();
  if (!q) return;
  try {
    const r = await api(`/v1/search?q=${encodeURIComponent(q)}`);
    const kind = { block: "block", transaction: "tx", account: "address" }[r.kind];
    location.hash = `#/${kind}/${encodeURIComponent(r.id)}`;
  } catch {
    location.hash = `#/notfound/${encodeURIComponent(q)}`;
  }
});

window.addEventListener("hashchange", route);
connectEvents();
route();
