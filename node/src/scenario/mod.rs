//! # Scenario runner (`peerchain scenario run FILE`)
//!
//! A scenario file (docs/SCENARIOS.md) describes a testnet experiment: the nodes and their
//! genesis, a load of signed transfers, a timeline of faults and the assertions that must
//! hold. The runner starts the nodes as processes of this executable, drives the timeline
//! and the load from one clock, samples every node, and writes `report.json` and
//! `report.html`. The parts, one concern each:
//!
//! - [`spec`]: the file → a validated [`spec::Scenario`], its timeline drawn from the seed by
//!   [`seeded`];
//! - [`cluster`]: the node processes and the faults applied to them (the guard that kills
//!   every node on every way out); [`links`]: the link faults in force, per directed link;
//! - [`timeline`]: the clock and the steps at their times;
//! - [`load`]: the transfers; [`sample`]: status every 250 ms; [`events`]: blocks, reorgs
//!   and transfer admissions of every node; [`confirm`]: the final main chain and each
//!   transfer's confirmation; [`blocks`]: the block tree with its forks;
//!   [`mining`]: the hash-power dial's statistics (stale blocks, main-chain share);
//!   [`difficulty`]: the difficulty response against ASERT's closed form;
//!   [`distributions`]: latency, propagation, reorg depth and throughput histograms;
//! - [`assert`](mod@assert): the verdicts, pure functions of the records; [`report`] and [`html`]: the
//!   outputs; [`http`]: the client of the node API they share.
//!
//! This module owns the order of a run and the exit status: 0 when every assertion passed,
//! 1 when one failed or a step could not be carried out, 2 when the scenario could not run
//! (a bad file, a node that would not start), 130 when interrupted.
//! It must never: leave a node running, or report a pass it did not check.

pub mod assert;
pub mod blocks;
pub mod cluster;
pub mod confirm;
pub mod difficulty;
pub mod distributions;
pub mod events;
pub mod html;
pub mod http;
pub mod links;
pub mod load;
pub mod mining;
pub mod report;
pub mod sample;
pub mod seeded;
pub mod spec;
pub mod timeline;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::cli::{ScenarioCommand, ScenarioRunArgs};
use cluster::Cluster;
use confirm::FinalChain;
use load::TransferRecord;
use report::Report;
use spec::Scenario;
use timeline::{Clock, StepRecord};

/// Exit status when an assertion failed or a step could not be carried out.
pub const EXIT_FAILED: u8 = 1;
/// Exit status when the scenario could not run.
pub const EXIT_ERROR: u8 = 2;
/// Exit status when interrupted.
pub const EXIT_INTERRUPTED: u8 = 130;

/// `peerchain scenario ...`: runs the command and turns its outcome into the exit status.
pub fn main(cmd: &ScenarioCommand) -> ExitCode {
    let ScenarioCommand::Run(args) = cmd;
    match run(args) {
        Ok((report, out)) => {
            print_summary(&report, &out);
            ExitCode::from(exit_status(&report))
        }
        Err(e) if e.is::<Interrupted>() => {
            eprintln!("{e}");
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// A signal came while the nodes were starting: nothing ran, nothing is reported.
#[derive(Debug, thiserror::Error)]
#[error("interrupted while the nodes were starting: stopped them; no report")]
pub struct Interrupted;

fn exit_status(report: &Report) -> u8 {
    if report.interrupted {
        EXIT_INTERRUPTED
    } else if report.passed {
        0
    } else {
        EXIT_FAILED
    }
}

/// The flags every thread of a run watches.
#[derive(Debug, Clone, Default)]
struct Flags {
    /// Set by SIGINT or SIGTERM.
    interrupted: Arc<AtomicBool>,
    /// Tells the timeline, the load, the sampler and the readers to stop (the end of the run
    /// or an interrupt).
    halt: Arc<AtomicBool>,
}

/// Runs the scenario of `args`; returns its report and the output directory. An error means
/// it could not run (nothing was judged).
pub fn run(args: &ScenarioRunArgs) -> anyhow::Result<(Report, PathBuf)> {
    let seed = spec::SeedChoice {
        flag: args.seed,
        otherwise: rand::random::<u64>(),
    };
    let scenario = spec::load(&args.file, args.scale, seed)
        .with_context(|| format!("scenario file {}", args.file.display()))?;
    let seed = scenario.seed;
    let out = out_dir(args.out.as_deref(), &scenario.name)?;
    let flags = Flags::default();
    watch_signals(&flags);
    eprintln!(
        "scenario {}: {} nodes, {:.0} s{}, seed {seed}; output in {}",
        scenario.name,
        scenario.network.nodes,
        scenario.duration_ms as f64 / 1000.0,
        if scenario.scale == 1.0 {
            String::new()
        } else {
            format!(" (times x{})", scenario.scale)
        },
        out.display()
    );
    let mut cluster = Cluster::prepare(&scenario, &out)?;
    if let Err(e) = cluster.start_initial(&flags.halt) {
        if flags.interrupted.load(Ordering::SeqCst) {
            return Err(Interrupted.into());
        }
        return Err(e);
    }
    let file = args.file.display().to_string();
    let report = drive(&scenario, file, seed, &mut cluster, &flags);
    drop(cluster);
    report::write(&report, &out)?;
    Ok((report, out))
}

/// `--out`, or `scenario-runs/<name>-<unix seconds>`; created, and refused when not empty
/// (a node would reopen an old store). Returned absolute.
fn out_dir(given: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    let dir = match given {
        Some(d) => d.to_owned(),
        None => {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            PathBuf::from("scenario-runs").join(format!("{name}-{secs}"))
        }
    };
    if dir.exists() {
        let mut entries = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read the output directory {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "the output directory {} is not empty: give another --out or delete it",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))
}

/// SIGINT or SIGTERM sets both flags; the run then stops its threads, kills the nodes and
/// writes what it recorded. Later signals are absorbed while it does so.
fn watch_signals(flags: &Flags) {
    let flags = flags.clone();
    let spawned = std::thread::Builder::new()
        .name("scenario-signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                flags.interrupted.store(true, Ordering::SeqCst);
                flags.halt.store(true, Ordering::SeqCst);
                eprintln!("interrupted: killing the nodes and writing the report");
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
            });
        });
    if let Err(e) = spawned {
        eprintln!("warning: cannot watch for signals ({e}); Ctrl-C may leave nodes running");
    }
}

/// Everything after the initial nodes are up. Never fails: what goes wrong is recorded in
/// the report's `errors`.
fn drive(
    scenario: &Scenario,
    file: String,
    seed: u64,
    cluster: &mut Cluster,
    flags: &Flags,
) -> Report {
    let clock = Clock::start();
    let urls = cluster.rpc_urls();
    for (i, url) in urls.iter().enumerate() {
        eprintln!("node {i}: {url}/ (explorer)");
    }
    let mut errors = Vec::new();
    let bans = scenario.assert.adversary_banned_within_ms.is_some();
    let sampler = sample::spawn(urls.clone(), bans, clock, Arc::clone(&flags.halt));
    let readers = events::spawn(&urls, clock, &flags.halt);
    let tx_readers = events::spawn_tx(&urls, clock, &flags.halt);
    let load = scenario.load.clone().map(|l| {
        let chain_id = scenario.network.genesis.chain_id;
        load::spawn(
            l,
            chain_id,
            urls.clone(),
            seed,
            clock,
            Arc::clone(&flags.halt),
        )
    });
    let steps = timeline::run(&scenario.steps, cluster, &clock, &flags.halt);
    clock.sleep_until(scenario.duration_ms, &flags.halt);
    let mut transfers = join_load(load, &mut errors);
    let chain = final_chain(scenario, cluster, &transfers, &flags.halt, &mut errors);
    let end_ms = clock.now_ms();
    flags.halt.store(true, Ordering::SeqCst);
    let samples = match sampler.map(|h| h.join()) {
        Ok(Ok(log)) => log,
        Ok(Err(_)) => {
            errors.push("the sampling thread panicked: no samples".to_owned());
            sample::SampleLog::default()
        }
        Err(e) => {
            errors.push(format!("no samples: {e:#}"));
            sample::SampleLog::default()
        }
    };
    cluster.shutdown(!flags.interrupted.load(Ordering::SeqCst));
    let (events, events_dropped, abandoned) = match readers {
        Ok(r) => events::join(r, Duration::from_secs(5)),
        Err(e) => {
            errors.push(format!("no chain events: {e:#}"));
            (Vec::new(), 0, (0..scenario.network.nodes).collect())
        }
    };
    match tx_readers {
        Ok(r) => {
            confirm::record_admissions(&mut transfers, &events::join_tx(r, Duration::from_secs(5)))
        }
        Err(e) => errors.push(format!("no transfer admissions: {e:#}")),
    }
    let events_incomplete = events::incomplete(&events, events_dropped, &abandoned);
    let nodes = cluster.info();
    let miners: Vec<String> = nodes.iter().map(|n| n.miner_address.clone()).collect();
    let tree = blocks::build(&events, scenario.network.nodes, &miners, chain.as_ref());
    let seen = confirm::first_seen(&tree);
    let clock_offsets: HashMap<String, i64> = nodes
        .iter()
        .map(|n| (n.miner_address.clone(), n.spec.clock_offset_ms))
        .collect();
    let sources = chain
        .as_ref()
        .map(|c| {
            let start = clock.start_epoch_ms();
            confirm::annotate(&mut transfers, c, &seen, start, &clock_offsets)
        })
        .unwrap_or_default();
    errors.extend(step_errors(&steps));
    let initially: Vec<bool> = scenario
        .network
        .node
        .iter()
        .map(|n| n.start_ms == 0)
        .collect();
    let adversary_at_start: Vec<bool> = scenario
        .network
        .node
        .iter()
        .map(|n| n.adversary.is_some())
        .collect();
    let peer_ids: Vec<Option<String>> = nodes.iter().map(|n| n.peer_id.clone()).collect();
    let evidence = assert::Evidence {
        initially_running: &initially,
        adversary_at_start: &adversary_at_start,
        peer_ids: &peer_ids,
        steps: &steps,
        samples: &samples.samples,
        events: &events,
        events_incomplete: events_incomplete.as_deref(),
        blocks: &tree,
        transfers: &transfers,
        chain: chain.as_ref(),
        load: scenario.load.as_ref(),
    };
    let assertions = assert::evaluate(&scenario.assert, &evidence);
    let interrupted = flags.interrupted.load(Ordering::SeqCst);
    let faults = report::fault_windows(&scenario.network, &steps, end_ms);
    Report {
        format: report::FORMAT,
        name: scenario.name.clone(),
        file,
        seed,
        commit: report::commit(),
        machine: report::machine(),
        started_at_ms: clock.start_epoch_ms(),
        duration_ms: end_ms,
        passed: !interrupted && errors.is_empty() && assertions.iter().all(|a| a.passed),
        interrupted,
        errors,
        assertions,
        scenario: scenario.clone(),
        difficulty: difficulty_response(scenario, &tree, &steps, &faults, end_ms),
        faults,
        final_chain: chain.as_ref().map(|c| report::chain_summary(c, &nodes)),
        reorgs: report::reorg_summary(&events, scenario.network.nodes),
        distributions: distributions::distributions(&tree, &events, &transfers, end_ms),
        mining: mining::mining_stats(
            &tree,
            chain.as_ref(),
            &miners,
            &mining::average_shares(&scenario.network, &steps, end_ms),
        ),
        blocks: tree,
        transfer_summary: report::transfer_summary(&transfers),
        confirmation_sources: sources,
        nodes,
        steps,
        samples: samples.samples,
        samples_dropped: samples.dropped,
        events,
        events_dropped,
        transfers,
    }
}

fn difficulty_response(
    scenario: &Scenario,
    tree: &blocks::BlockTree,
    steps: &[StepRecord],
    faults: &[report::FaultWindow],
    end_ms: u64,
) -> difficulty::DifficultyResponse {
    let network = &scenario.network;
    // The genesis was built and checked before the run, so this cannot fail here.
    let Ok(genesis) = spec::build_genesis(&network.genesis, network.hashrate) else {
        return difficulty::DifficultyResponse::default();
    };
    let timeline = difficulty::hashrate_timeline(network, steps, faults, end_ms);
    difficulty::response(
        tree,
        &timeline,
        genesis.target_block_time_ms,
        genesis.difficulty_half_life_ms,
        end_ms,
    )
}

fn join_load(
    load: Option<anyhow::Result<std::thread::JoinHandle<Vec<TransferRecord>>>>,
    errors: &mut Vec<String>,
) -> Vec<TransferRecord> {
    match load {
        None => Vec::new(),
        Some(Ok(handle)) => handle.join().unwrap_or_else(|_| {
            errors.push("the load thread panicked: its transfers are lost".to_owned());
            Vec::new()
        }),
        Some(Err(e)) => {
            errors.push(format!("no load: {e:#}"));
            Vec::new()
        }
    }
}

/// The reference node's main chain, once the accepted transfers are in it or the load's
/// `confirm_timeout_s` has passed.
fn final_chain(
    scenario: &Scenario,
    cluster: &mut Cluster,
    transfers: &[TransferRecord],
    halt: &AtomicBool,
    errors: &mut Vec<String>,
) -> Option<FinalChain> {
    let Some(node) = cluster.reference_node() else {
        errors.push("no node was running at the end: the final chain could not be read".into());
        return None;
    };
    let accepted: HashSet<String> = transfers
        .iter()
        .filter(|t| t.accepted())
        .filter_map(|t| t.txid.clone())
        .collect();
    let timeout = Duration::from_millis(scenario.load.as_ref().map_or(0, |l| l.confirm_timeout_ms));
    let urls = cluster.rpc_urls();
    let read = http::Api::new(Duration::from_secs(10))
        .and_then(|api| confirm::wait_for_chain(&api, &urls[node], node, &accepted, timeout, halt));
    match read {
        Ok(chain) => Some(chain),
        Err(e) => {
            errors.push(format!("cannot read node {node}'s final chain: {e:#}"));
            None
        }
    }
}

fn step_errors(steps: &[StepRecord]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| {
            s.error.as_ref().map(|e| {
                format!(
                    "step {} (line {}, t = {} s) {} failed: {e}",
                    s.source,
                    s.line,
                    s.t_ms as f64 / 1000.0,
                    s.action.describe()
                )
            })
        })
        .collect()
}

fn print_summary(r: &Report, out: &Path) {
    let verdict = if r.interrupted {
        "INTERRUPTED"
    } else if r.passed {
        "PASSED"
    } else {
        "FAILED"
    };
    println!(
        "scenario {}: {verdict} after {:.1} s (seed {})",
        r.name,
        r.duration_ms as f64 / 1000.0,
        r.seed
    );
    for a in &r.assertions {
        let mark = if a.passed { "pass" } else { "FAIL" };
        println!(
            "  {mark}  {}: {} (expected {})",
            a.name, a.actual, a.expected
        );
    }
    println!(
        "report: {} and {}",
        out.join("report.json").display(),
        out.join("report.html").display()
    );
    for a in r.assertions.iter().filter(|a| !a.passed) {
        eprintln!(
            "assertion failed: {}: {} (expected {})",
            a.name, a.actual, a.expected
        );
    }
    for e in &r.errors {
        eprintln!("error: {e}");
    }
}
