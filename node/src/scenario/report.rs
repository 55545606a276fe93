//! The run's report: `report.json` (the seed, the commit, the machine, the scenario, every
//! sample, event, step and transfer, and every assertion's result) and `report.html`
//! ([`super::html`]).
//!
//! It owns: the report's shape (format 1), the summaries derived from the records (fault
//! windows, transfer counts, blocks per node, reorgs), and the facts about this machine and
//! checkout.
//! It must never: measure anything itself or change a verdict; it only arranges what the
//! run recorded and the assertions decided.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::assert::{Outcome, deepest_reorg, latencies, percentile};
use super::blocks::BlockTree;
use super::cluster::NodeInfo;
use super::confirm::{ConfirmationSources, FinalChain};
use super::difficulty::DifficultyResponse;
use super::distributions::Distributions;
use super::events::{ChainEvent, EventKind};
use super::load::{Answer, TransferRecord};
use super::mining::MiningStats;
use super::sample::Sample;
use super::spec::{Action, Network, Scenario};
use super::timeline::StepRecord;

/// Version of the report's layout.
pub const FORMAT: u32 = 1;

/// Everything `report.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Layout version.
    pub format: u32,
    /// Scenario name.
    pub name: String,
    /// The scenario file as given.
    pub file: String,
    /// The seed of the load's choices.
    pub seed: u64,
    /// `git rev-parse HEAD` of the current directory, or "unknown".
    pub commit: String,
    /// This machine.
    pub machine: Machine,
    /// Unix time of the run clock's start, ms.
    pub started_at_ms: u64,
    /// How long the run lasted on its clock, ms.
    pub duration_ms: u64,
    /// Every assertion passed, every step was carried out, nothing went wrong.
    pub passed: bool,
    /// The run was interrupted (SIGINT or SIGTERM).
    pub interrupted: bool,
    /// What went wrong besides assertions (failed steps, unreadable final chain...).
    pub errors: Vec<String>,
    /// The assertions' results.
    pub assertions: Vec<Outcome>,
    /// The scenario after defaults.
    pub scenario: Scenario,
    /// The nodes.
    pub nodes: Vec<NodeInfo>,
    /// The steps carried out.
    pub steps: Vec<StepRecord>,
    /// Periods of faults, for the charts.
    pub faults: Vec<FaultWindow>,
    /// The reference node's final main chain.
    pub final_chain: Option<ChainSummary>,
    /// Reorgs seen.
    pub reorgs: ReorgSummary,
    /// The hash-power dial: stale blocks and main-chain shares per node.
    pub mining: MiningStats,
    /// The difficulty against ASERT's closed form, per period of constant hash rate.
    pub difficulty: DifficultyResponse,
    /// Every block seen, with its parent, miner and each node's first sight: the forks.
    pub blocks: BlockTree,
    /// Confirmation latency, block propagation, reorg depths, throughput over time.
    pub distributions: Distributions,
    /// Counts of the load's transfers.
    pub transfer_summary: TransferSummary,
    /// How confirmation times were found.
    pub confirmation_sources: ConfirmationSources,
    /// Every status sample.
    pub samples: Vec<Sample>,
    /// Samples not kept (bound reached).
    pub samples_dropped: u64,
    /// Every chain event (blocks joining a main chain or stored on a side branch, reorgs).
    pub events: Vec<ChainEvent>,
    /// Events not kept (bound reached or unreadable).
    pub events_dropped: u64,
    /// Every transfer.
    pub transfers: Vec<TransferRecord>,
}

/// The machine the run used.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model from /proc/cpuinfo, or "unknown".
    pub cpu: String,
    /// Cores available to this process.
    pub cores: usize,
    /// Operating system.
    pub os: String,
}

/// A period during which something was wrong on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultWindow {
    /// `partition`, `link`, `down`, `not_mining` or `adversary`.
    pub kind: &'static str,
    /// The node concerned (`None` for a partition).
    pub node: Option<usize>,
    /// In words.
    pub label: String,
    /// Start, ms on the run's clock.
    pub from_ms: u64,
    /// End, ms on the run's clock (the end of the run if never undone).
    pub to_ms: u64,
}

/// The final chain in brief.
#[derive(Debug, Clone, Serialize)]
pub struct ChainSummary {
    /// The node read.
    pub node: usize,
    /// Tip hash.
    pub tip: String,
    /// Height.
    pub height: u64,
    /// Main-chain blocks mined by each node, by index.
    pub blocks_by_node: Vec<u64>,
    /// Main-chain blocks whose miner is none of the nodes' addresses.
    pub blocks_by_others: u64,
}

/// Reorgs in brief.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReorgSummary {
    /// Reorg events in all.
    pub count: u64,
    /// Deepest, blocks.
    pub deepest: u64,
    /// Reorg events per node, by index.
    pub by_node: Vec<u64>,
    /// `lagged` events: a reader missed events, so reorgs may be missing.
    pub lagged: u64,
}

/// The load's transfers in brief.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TransferSummary {
    /// Transfers tried.
    pub tried: u64,
    /// Answered `pending` or `confirmed`.
    pub accepted: u64,
    /// Answered `queued`.
    pub queued: u64,
    /// Refused, by error code.
    pub refused: BTreeMap<String, u64>,
    /// Not answered or never sent.
    pub failed: u64,
    /// In the final main chain.
    pub confirmed: u64,
    /// Accepted and not in the final main chain.
    pub lost: u64,
    /// Submit-to-confirmation p50, seconds.
    pub p50_s: Option<f64>,
    /// p99, seconds.
    pub p99_s: Option<f64>,
    /// Longest, seconds.
    pub max_s: Option<f64>,
}

/// Counts the transfers by answer and fate.
pub fn transfer_summary(transfers: &[TransferRecord]) -> TransferSummary {
    let mut s = TransferSummary {
        tried: transfers.len() as u64,
        ..TransferSummary::default()
    };
    for t in transfers {
        match &t.answer {
            Answer::Accepted { .. } => s.accepted += 1,
            Answer::Queued => s.queued += 1,
            Answer::Refused { code, .. } => *s.refused.entry(code.clone()).or_default() += 1,
            Answer::Failed { .. } => s.failed += 1,
        }
        if t.height.is_some() {
            s.confirmed += 1;
        } else if t.accepted() {
            s.lost += 1;
        }
    }
    let l = latencies(transfers);
    let secs = |v: Option<u64>| v.map(|ms| ms as f64 / 1000.0);
    s.p50_s = secs(percentile(&l, 50.0));
    s.p99_s = secs(percentile(&l, 99.0));
    s.max_s = secs(l.last().copied());
    s
}

/// The final chain with its miners mapped to node indexes.
pub fn chain_summary(chain: &FinalChain, nodes: &[NodeInfo]) -> ChainSummary {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .map(|n| (n.miner_address.as_str(), n.index))
        .collect();
    let mut by_node = vec![0; nodes.len()];
    let mut others = 0;
    for (miner, count) in &chain.blocks_by_miner {
        match index.get(miner.as_str()).and_then(|&i| by_node.get_mut(i)) {
            Some(slot) => *slot += count,
            None => others += count,
        }
    }
    ChainSummary {
        node: chain.node,
        tip: chain.tip.clone(),
        height: chain.height,
        blocks_by_node: by_node,
        blocks_by_others: others,
    }
}

/// Reorg counts per node and the deepest.
pub fn reorg_summary(events: &[ChainEvent], nodes: usize) -> ReorgSummary {
    let mut s = ReorgSummary {
        by_node: vec![0; nodes],
        deepest: deepest_reorg(events).map_or(0, |(d, _, _)| d),
        ..ReorgSummary::default()
    };
    for e in events {
        match e.kind {
            EventKind::Reorg { .. } => {
                s.count += 1;
                if let Some(n) = s.by_node.get_mut(e.node) {
                    *n += 1;
                }
            }
            EventKind::Lagged { .. } => s.lagged += 1,
            EventKind::Block(_) | EventKind::SideBlock(_) => {}
        }
    }
    s
}

/// The periods of faults: partitions (until healed), link faults (from `[network.link]`, or a
/// link step, until a clear one), nodes down (killed, stopped, not yet started), nodes not
/// mining (mining off, or a hash share of 0), adversary modes; open ones end at `end_ms`.
pub fn fault_windows(network: &Network, steps: &[StepRecord], end_ms: u64) -> Vec<FaultWindow> {
    let nodes = &network.node;
    let mut open: BTreeMap<(&'static str, Option<usize>), (u64, String)> = BTreeMap::new();
    let mut done = Vec::new();
    if let Some(link) = &network.link {
        open.insert(
            ("link", None),
            (0, format!("every link: {}", link.describe())),
        );
    }
    for n in nodes {
        let i = Some(n.index);
        if n.start_ms > 0 {
            open.insert(
                ("down", i),
                (0, format!("node {} not started yet", n.index)),
            );
        }
        if !n.mine {
            open.insert(
                ("not_mining", i),
                (0, format!("node {} not mining", n.index)),
            );
        }
        if let Some(mode) = &n.adversary {
            open.insert(
                ("adversary", i),
                (0, format!("node {} adversary {mode}", n.index)),
            );
        }
    }
    let mut close =
        |open: &mut BTreeMap<_, (u64, String)>, key: (&'static str, Option<usize>), at| {
            if let Some((from_ms, label)) = open.remove(&key) {
                done.push(FaultWindow {
                    kind: key.0,
                    node: key.1,
                    label,
                    from_ms,
                    to_ms: at,
                });
            }
        };
    for s in steps {
        let (start, end) = (s.started_ms, s.finished_ms);
        match &s.action {
            Action::Partition(_) => {
                open.insert(("partition", None), (start, s.action.describe()));
            }
            Action::Heal => close(&mut open, ("partition", None), end),
            Action::Kill(i) => {
                open.insert(("down", Some(*i)), (start, format!("node {i} killed")));
            }
            Action::Stop(i) => {
                open.insert(("down", Some(*i)), (start, format!("node {i} stopped")));
            }
            Action::Start(i) if s.ok => close(&mut open, ("down", Some(*i)), end),
            Action::Start(_) => {}
            Action::Mining {
                node,
                enabled: true,
            } => {
                close(&mut open, ("not_mining", Some(*node)), end);
            }
            Action::Mining {
                node,
                enabled: false,
            } => {
                open.insert(
                    ("not_mining", Some(*node)),
                    (start, format!("node {node} not mining")),
                );
            }
            Action::Adversary { node, mode } => {
                close(&mut open, ("adversary", Some(*node)), end);
                if let Some(mode) = mode {
                    open.insert(
                        ("adversary", Some(*node)),
                        (start, format!("node {node} adversary {mode}")),
                    );
                }
            }
            Action::Link { fault, .. } => {
                close(&mut open, ("link", None), start);
                if !fault.is_clear() {
                    open.insert(("link", None), (start, s.action.describe()));
                }
            }
            Action::HashShare { node, share } if *share > 0.0 => {
                close(&mut open, ("not_mining", Some(*node)), end);
            }
            Action::HashShare { node, .. } => {
                open.insert(
                    ("not_mining", Some(*node)),
                    (start, format!("node {node} hash share 0")),
                );
            }
        }
    }
    let keys: Vec<_> = open.keys().copied().collect();
    for key in keys {
        close(&mut open, key, end_ms);
    }
    done.sort_by_key(|w| (w.from_ms, w.to_ms));
    done
}

/// This machine's CPU model and core count.
pub fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| cpu_model(&text))
        .unwrap_or_else(|| "unknown".to_owned());
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        os: std::env::consts::OS.to_owned(),
    }
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

/// `git rev-parse HEAD` here, or "unknown".
pub fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Writes `report.json` and `report.html` into `dir`.
pub fn write(report: &Report, dir: &Path) -> anyhow::Result<()> {
    let json = dir.join("report.json");
    let file = std::fs::File::create(&json)
        .with_context(|| format!("cannot create {}", json.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut writer, report)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(std::io::Write::flush(&mut writer)?))
        .with_context(|| format!("cannot write {}", json.display()))?;
    let html = dir.join("report.html");
    std::fs::write(&html, super::html::render(report))
        .with_context(|| format!("cannot write {}", html.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::spec::{LinkSpec, NodeSpec};
    use super::*;

    fn record(action: Action, started_ms: u64, finished_ms: u64, ok: bool) -> StepRecord {
        StepRecord {
            t_ms: started_ms,
            started_ms,
            finished_ms,
            source: "at[0]".into(),
            line: 1,
            action,
            ok,
            error: None,
            notes: Vec::new(),
        }
    }

    fn spec(index: usize) -> NodeSpec {
        NodeSpec {
            index,
            hash_share: 0.5,
            hashrate: 1,
            mine: true,
            adversary: None,
            allow_adversary: false,
            start_ms: 0,
            clock_offset_ms: 0,
        }
    }

    #[test]
    fn fault_windows_pair_faults_with_their_undoing() {
        let mut late = spec(1);
        late.start_ms = 2_000;
        late.adversary = Some("selfish".into());
        let steps = [
            record(Action::Start(1), 2_000, 2_600, true),
            record(
                Action::Partition(vec![vec![0], vec![1]]),
                3_000,
                3_100,
                true,
            ),
            record(Action::Kill(0), 4_000, 4_010, true),
            record(Action::Heal, 5_000, 5_050, true),
            record(
                Action::Mining {
                    node: 1,
                    enabled: false,
                },
                6_000,
                6_010,
                true,
            ),
            record(
                Action::Link {
                    between: None,
                    fault: LinkSpec::default(),
                },
                7_000,
                7_020,
                true,
            ),
            record(
                Action::HashShare {
                    node: 0,
                    share: 0.0,
                },
                7_500,
                7_510,
                true,
            ),
            record(
                Action::HashShare {
                    node: 0,
                    share: 0.2,
                },
                8_000,
                8_010,
                true,
            ),
        ];
        let mut network = super::super::spec::parse("[network]\nnodes = 2\n", "t")
            .expect("a minimal scenario")
            .network;
        network.node = vec![spec(0), late];
        network.link = Some(LinkSpec {
            loss: 0.05,
            delay_ms: 0,
            bandwidth_kbps: 0,
        });
        let w = fault_windows(&network, &steps, 9_000);
        let got: Vec<(&str, u64, u64, &str)> = w
            .iter()
            .map(|w| (w.kind, w.from_ms, w.to_ms, w.label.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("down", 0, 2_600, "node 1 not started yet"),
                ("link", 0, 7_000, "every link: loss 5%"),
                ("adversary", 0, 9_000, "node 1 adversary selfish"),
                ("partition", 3_000, 5_050, "partition [0] | [1]"),
                ("down", 4_000, 9_000, "node 0 killed"),
                ("not_mining", 6_000, 9_000, "node 1 not mining"),
                ("not_mining", 7_500, 8_010, "node 0 hash share 0"),
            ]
        );
    }

    #[test]
    fn transfers_are_counted_by_answer_and_fate() {
        let t = |answer: Answer, height: Option<u64>, confirmed_ms: Option<u64>| TransferRecord {
            txid: Some("t".into()),
            sender: 0,
            node: 0,
            submit_ms: 0,
            answer,
            height,
            confirmed_ms,
            seen_ms: Vec::new(),
        };
        let ok = || Answer::Accepted {
            status: "pending".into(),
        };
        let transfers = [
            t(ok(), Some(3), Some(1_500)),
            t(ok(), None, None),
            t(Answer::Queued, Some(4), Some(2_500)),
            t(
                Answer::Refused {
                    code: "mempool_full".into(),
                    message: String::new(),
                },
                None,
                None,
            ),
            t(
                Answer::Failed {
                    error: "down".into(),
                },
                None,
                None,
            ),
        ];
        let s = transfer_summary(&transfers);
        assert_eq!((s.tried, s.accepted, s.queued, s.failed), (5, 2, 1, 1));
        assert_eq!(s.refused.get("mempool_full"), Some(&1));
        assert_eq!((s.confirmed, s.lost), (2, 1));
        assert_eq!((s.p50_s, s.max_s), (Some(1.5), Some(2.5)));
    }

    #[test]
    fn blocks_are_credited_to_nodes_by_miner_address() {
        let info = |index: usize, miner: &str| NodeInfo {
            index,
            rpc: String::new(),
            p2p: String::new(),
            peer_id: None,
            miner_address: miner.into(),
            data_dir: "d".into(),
            log: "l".into(),
            pids: Vec::new(),
            spec: spec(index),
        };
        let mut chain = FinalChain::default();
        chain.blocks_by_miner.insert("m0".into(), 3);
        chain.blocks_by_miner.insert("m1".into(), 4);
        chain.blocks_by_miner.insert("zz".into(), 1);
        let s = chain_summary(&chain, &[info(0, "m0"), info(1, "m1")]);
        assert_eq!(s.blocks_by_node, [3, 4]);
        assert_eq!(s.blocks_by_others, 1);
    }

    #[test]
    fn cpu_model_comes_from_cpuinfo() {
        let text = "processor\t: 0\nmodel name\t: Example CPU @ 2.0GHz\nflags\t: x\n";
        assert_eq!(cpu_model(text).as_deref(), Some("Example CPU @ 2.0GHz"));
        assert_eq!(cpu_model("nothing"), None);
    }
}
