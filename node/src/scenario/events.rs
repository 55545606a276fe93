//! Chain events of every node, from `GET /v1/events?types=block,side_block,reorg`
//! (Server-Sent Events): each block that joined a node's main chain or that it stored on a
//! side branch (its parent, who mined it, its target, when this node had it) and each reorg
//! with its depth (the blocks it disconnected);
//! [`incomplete`] says when the record may miss one. On a second stream per node
//! (`types=tx`, so a flood of transfers cannot make the block record lag), when each node
//! first admitted each transfer ([`TxSeen`]). `/metrics` has `reorgs_total` and
//! a `reorg_depth` histogram too, but its buckets are powers of two and its counters restart
//! with the node; the event stream gives every depth exactly.
//!
//! It owns: two reader threads per node, reconnecting while its node is down or restarting,
//! and a bounded record per node ([`MAX_EVENTS_PER_NODE`] chain events and
//! [`MAX_TXS_SEEN_PER_NODE`] transfers, the rest counted as dropped; lines longer than
//! [`MAX_LINE`] are skipped).
//! It must never: hold more than those bounds, or keep a node alive: a reader ends when
//! `stop` is set and its stream closes (the node stopped).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::timeline::Clock;

/// Most events kept per node.
pub const MAX_EVENTS_PER_NODE: usize = 50_000;
/// Most transfers whose first admission is kept per node (a load sends at most 200,000).
pub const MAX_TXS_SEEN_PER_NODE: usize = 250_000;
/// Longest SSE line read (a reorg event lists every block it disconnected and connected:
/// about 134 KB per 1,000 blocks moved, so a reorg of about 1,900 blocks or more is dropped,
/// and [`incomplete`] says so).
pub const MAX_LINE: usize = 256 * 1024;

/// One event of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainEvent {
    /// When the runner read it, ms on the run's clock.
    pub t_ms: u64,
    /// Node index.
    pub node: usize,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl ChainEvent {
    /// A `block` event of `node` at `t_ms` (height 1), for the tests of the parts that read
    /// events.
    #[cfg(test)]
    pub fn test_block(t_ms: u64, node: usize, hash: &str, miner: &str) -> Self {
        ChainEvent {
            t_ms,
            node,
            kind: EventKind::Block(BlockSeen {
                height: 1,
                hash: hash.into(),
                prev_hash: String::new(),
                miner: miner.into(),
                timestamp_ms: 0,
                target: String::new(),
            }),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum EventKind {
    /// A block joined the node's main chain.
    Block(BlockSeen),
    /// The node stored a valid block on a side branch (it did not join its main chain).
    SideBlock(BlockSeen),
    /// The node switched branches.
    Reorg {
        /// Blocks that left its main chain.
        depth: u64,
        /// Height of the common ancestor.
        fork_height: u64,
        /// Tip before.
        old_tip: String,
        /// Tip after.
        new_tip: String,
    },
    /// The node dropped `missed` events for this reader (it read too slowly).
    Lagged {
        /// Events missed.
        missed: u64,
    },
}

/// A block a node took in, as its event describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSeen {
    /// Height.
    pub height: u64,
    /// Hash.
    pub hash: String,
    /// Parent hash.
    pub prev_hash: String,
    /// Miner address.
    pub miner: String,
    /// Header timestamp, ms since the Unix epoch (the miner's clock).
    pub timestamp_ms: u64,
    /// Proof-of-work target, 64 hex digits.
    pub target: String,
}

/// What one node's chain-event reader recorded.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    /// Events in arrival order.
    pub events: Vec<ChainEvent>,
    /// Events not kept because [`MAX_EVENTS_PER_NODE`] were, or unreadable.
    pub dropped: u64,
}

/// When one node first admitted each transfer (its `tx` events).
#[derive(Debug, Clone, Default)]
pub struct TxSeen {
    /// Txid (hex) → ms on the run's clock.
    pub first_ms: HashMap<String, u64>,
    /// Events not kept because [`MAX_TXS_SEEN_PER_NODE`] transfers were, or unreadable.
    pub dropped: u64,
    /// Events the node skipped because this reader lagged.
    pub missed: u64,
}

/// What a reader keeps of its stream's events.
trait Sink: Default + Send + 'static {
    /// One event, read at `t_ms` from `node`.
    fn event(&mut self, name: &str, data: &str, t_ms: u64, node: usize);
    /// An event too long to read.
    fn overlong(&mut self);
}

impl Sink for EventLog {
    fn event(&mut self, name: &str, data: &str, t_ms: u64, node: usize) {
        match decode(name, data) {
            Some(kind) if self.events.len() < MAX_EVENTS_PER_NODE => {
                self.events.push(ChainEvent { t_ms, node, kind })
            }
            _ => self.dropped += 1,
        }
    }

    fn overlong(&mut self) {
        self.dropped += 1;
    }
}

impl Sink for TxSeen {
    fn event(&mut self, name: &str, data: &str, t_ms: u64, _node: usize) {
        #[derive(Deserialize)]
        struct TxData {
            txid: String,
        }
        match (name, decode(name, data)) {
            (_, Some(EventKind::Lagged { missed })) => self.missed += missed,
            ("tx", _) => match serde_json::from_str::<TxData>(data) {
                Ok(tx) if self.first_ms.len() < MAX_TXS_SEEN_PER_NODE => {
                    self.first_ms.entry(tx.txid).or_insert(t_ms);
                }
                _ => self.dropped += 1,
            },
            _ => self.dropped += 1,
        }
    }

    fn overlong(&mut self) {
        self.dropped += 1;
    }
}

/// Starts one chain-event reader per node; `urls[i]` is node `i`'s API.
pub fn spawn(
    urls: &[String],
    clock: Clock,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Vec<JoinHandle<EventLog>>> {
    spawn_readers(
        urls,
        "block,side_block,reorg",
        "scenario-events",
        clock,
        stop,
    )
}

/// Starts one transfer reader per node.
pub fn spawn_tx(
    urls: &[String],
    clock: Clock,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Vec<JoinHandle<TxSeen>>> {
    spawn_readers(urls, "tx", "scenario-txs", clock, stop)
}

fn spawn_readers<S: Sink>(
    urls: &[String],
    types: &str,
    thread_name: &str,
    clock: Clock,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Vec<JoinHandle<S>>> {
    // No overall timeout: a stream lasts as long as its node.
    let client = reqwest::blocking::Client::builder()
        .timeout(None)
        .connect_timeout(Duration::from_secs(1))
        .no_proxy()
        .build()
        .context("cannot build the event stream client")?;
    urls.iter()
        .enumerate()
        .map(|(node, rpc)| {
            let (client, stop) = (client.clone(), Arc::clone(stop));
            let url = format!("{rpc}/v1/events?types={types}");
            std::thread::Builder::new()
                .name(format!("{thread_name}-{node}"))
                .spawn(move || read_until_stopped(&client, &url, node, &clock, &stop))
                .context("cannot start an event reader thread")
        })
        .collect()
}

/// Joins the readers, giving up on those not finished by `deadline` (their threads end
/// with the process): each node's record, `None` for a reader given up.
fn join_readers<S>(readers: Vec<JoinHandle<S>>, deadline: Instant) -> Vec<Option<S>> {
    readers
        .into_iter()
        .map(|reader| {
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            reader.is_finished().then(|| reader.join().ok()).flatten()
        })
        .collect()
}

/// Joins the chain-event readers, giving up on those not finished within `limit`; returns
/// every event in time order, the count dropped, and the nodes whose reader was given up
/// (their events are missing).
pub fn join(
    readers: Vec<JoinHandle<EventLog>>,
    limit: Duration,
) -> (Vec<ChainEvent>, u64, Vec<usize>) {
    let mut events = Vec::new();
    let mut dropped = 0;
    let mut abandoned = Vec::new();
    for (node, log) in join_readers(readers, Instant::now() + limit)
        .into_iter()
        .enumerate()
    {
        match log {
            Some(log) => {
                events.extend(log.events);
                dropped += log.dropped;
            }
            None => abandoned.push(node),
        }
    }
    events.sort_by_key(|e| e.t_ms);
    (events, dropped, abandoned)
}

/// Joins the transfer readers (as [`join`]): each node's record, empty for a reader given
/// up.
pub fn join_tx(readers: Vec<JoinHandle<TxSeen>>, limit: Duration) -> Vec<TxSeen> {
    join_readers(readers, Instant::now() + limit)
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}

/// Why the chain events may miss a reorg, if they may: events dropped (an overlong event,
/// such as a reorg of about 1,900 blocks or more, or past [`MAX_EVENTS_PER_NODE`]), events
/// a node skipped for a slow reader, readers given up. `None` when the record is whole
/// (events a node emits while the runner is reconnecting to it after a restart are not seen).
pub fn incomplete(events: &[ChainEvent], dropped: u64, abandoned: &[usize]) -> Option<String> {
    let lagged: u64 = events
        .iter()
        .map(|e| match e.kind {
            EventKind::Lagged { missed } => missed,
            _ => 0,
        })
        .sum();
    let mut why = Vec::new();
    if dropped > 0 {
        why.push(format!("{dropped} events dropped"));
    }
    if lagged > 0 {
        why.push(format!(
            "{lagged} events skipped by the nodes (the reader lagged)"
        ));
    }
    if !abandoned.is_empty() {
        why.push(format!("the readers of nodes {abandoned:?} never finished"));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

fn read_until_stopped<S: Sink>(
    client: &reqwest::blocking::Client,
    url: &str,
    node: usize,
    clock: &Clock,
    stop: &AtomicBool,
) -> S {
    let mut sink = S::default();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(resp) = client.get(url).send()
            && resp.status().is_success()
        {
            read_stream(resp, node, clock, &mut sink);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    sink
}

/// Reads one stream until it ends or fails.
fn read_stream(stream: impl Read, node: usize, clock: &Clock, sink: &mut impl Sink) {
    let mut reader = BufReader::new(stream);
    let mut parser = SseParser::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let Ok(n) = (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
        else {
            return;
        };
        if n == 0 {
            return;
        }
        if buf.last() != Some(&b'\n') {
            // Longer than MAX_LINE: skip the rest of the line and the event it belongs to.
            if skip_line(&mut reader).is_err() {
                return;
            }
            parser.discard();
            sink.overlong();
            continue;
        }
        let line = String::from_utf8_lossy(&buf);
        if let Some((name, data)) = parser.line(line.trim_end_matches(['\n', '\r'])) {
            sink.event(&name, &data, clock.now_ms(), node);
        }
    }
}

fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            reader.consume(i + 1);
            return Ok(());
        }
        let len = buf.len();
        reader.consume(len);
    }
}

/// The SSE wire format, line by line: `event:` and `data:` fields, a blank line ends an
/// event, `:` starts a comment.
#[derive(Debug, Default)]
struct SseParser {
    event: Option<String>,
    data: String,
}

impl SseParser {
    /// Feeds one line (without its line ending); returns `(event name, data)` when it ends
    /// an event.
    fn line(&mut self, line: &str) -> Option<(String, String)> {
        if line.is_empty() {
            let event = self.event.take().unwrap_or_else(|| "message".to_owned());
            let data = std::mem::take(&mut self.data);
            return (!data.is_empty()).then_some((event, data));
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                if self.data.len() + value.len() <= MAX_LINE {
                    self.data.push_str(value);
                }
            }
            _ => {}
        }
        None
    }

    fn discard(&mut self) {
        self.event = None;
        self.data.clear();
    }
}

/// The event's data as an [`EventKind`]; `None` for other events or unreadable data.
fn decode(name: &str, data: &str) -> Option<EventKind> {
    #[derive(Deserialize)]
    struct ReorgData {
        fork_height: u64,
        old_tip: String,
        new_tip: String,
        disconnected: Vec<String>,
    }
    #[derive(Deserialize)]
    struct LaggedData {
        missed: u64,
    }
    match name {
        "block" => Some(EventKind::Block(serde_json::from_str(data).ok()?)),
        "side_block" => Some(EventKind::SideBlock(serde_json::from_str(data).ok()?)),
        "reorg" => {
            let r: ReorgData = serde_json::from_str(data).ok()?;
            Some(EventKind::Reorg {
                depth: r.disconnected.len() as u64,
                fork_height: r.fork_height,
                old_tip: r.old_tip,
                new_tip: r.new_tip,
            })
        }
        "lagged" => {
            let l: LaggedData = serde_json::from_str(data).ok()?;
            Some(EventKind::Lagged { missed: l.missed })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_reads_events_and_skips_comments() {
        let mut p = SseParser::default();
        assert_eq!(p.line(": keep-alive"), None);
        assert_eq!(p.line(""), None, "a blank line with no data is no event");
        assert_eq!(p.line("event: block"), None);
        assert_eq!(p.line("data: {\"a\":"), None);
        assert_eq!(p.line("data:1}"), None);
        assert_eq!(p.line(""), Some(("block".into(), "{\"a\":\n1}".into())));
        assert_eq!(p.line("data: x"), None);
        assert_eq!(p.line(""), Some(("message".into(), "x".into())));
    }

    #[test]
    fn a_stream_becomes_events_with_exact_reorg_depths() {
        let stream = "event: block\ndata: {\"hash\":\"aa\",\"height\":5,\"prev_hash\":\"p\",\"miner\":\"m\",\"timestamp_ms\":9,\"target\":\"ff\",\"tx_count\":0}\n\n\
                      : comment\n\
                      event: reorg\ndata: {\"fork_height\":3,\"old_tip\":\"o\",\"new_tip\":\"n\",\"disconnected\":[\"o\",\"p\"],\"connected\":[\"q\",\"r\",\"n\"]}\n\n\
                      event: tx\ndata: {\"txid\":\"t\"}\n\n";
        let mut log = EventLog::default();
        read_stream(stream.as_bytes(), 2, &Clock::start(), &mut log);
        let kinds: Vec<&EventKind> = log.events.iter().map(|e| &e.kind).collect();
        assert_eq!(kinds.len(), 2, "{kinds:?}");
        assert!(matches!(
            kinds[0],
            EventKind::Block(BlockSeen { height: 5, .. })
        ));
        assert!(matches!(
            kinds[1],
            EventKind::Reorg {
                depth: 2,
                fork_height: 3,
                ..
            }
        ));
        assert!(log.events.iter().all(|e| e.node == 2));
        assert_eq!(log.dropped, 1, "the tx event is not kept");
    }

    #[test]
    fn overlong_lines_are_skipped() {
        let long = "x".repeat(MAX_LINE + 10);
        let stream =
            format!("event: block\ndata: {long}\n\nevent: lagged\ndata: {{\"missed\":4}}\n\n");
        let mut log = EventLog::default();
        read_stream(stream.as_bytes(), 0, &Clock::start(), &mut log);
        assert_eq!(log.events.len(), 1);
        assert!(matches!(
            log.events[0].kind,
            EventKind::Lagged { missed: 4 }
        ));
    }

    #[test]
    fn the_transfer_reader_keeps_each_first_admission_and_counts_what_the_node_skipped() {
        let stream = "event: tx\ndata: {\"txid\":\"t1\"}\n\n\
                      event: tx\ndata: {\"txid\":\"t2\"}\n\n\
                      event: tx\ndata: {\"txid\":\"t1\"}\n\n\
                      event: lagged\ndata: {\"missed\":7}\n\n\
                      event: tx\ndata: not json\n\n";
        let mut seen = TxSeen::default();
        read_stream(stream.as_bytes(), 1, &Clock::start(), &mut seen);
        assert_eq!(seen.first_ms.len(), 2);
        assert!(seen.first_ms.contains_key("t1") && seen.first_ms.contains_key("t2"));
        assert_eq!((seen.missed, seen.dropped), (7, 1));
    }
}
