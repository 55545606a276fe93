//! Faults: real links. Three node processes, each in its own network namespace (`ip netns`)
//! joined by veth pairs to a bridge in the root namespace, exchange blocks and transactions
//! over real TCP/IP links, and the test degrades those links:
//!
//! 1. connected: blocks reach every node (one tip) and a transfer submitted to node 2 is
//!    confirmed on every node;
//! 2. partition: iptables in node 2's namespace drops every packet to and from nodes 0 and 1
//!    (not the test's own HTTP traffic from the bridge address); both sides mine, their chains
//!    diverge (each side's tip is unknown to the other); the rules are removed and every node
//!    ends on one tip, and transfers submitted to each side during the partition are
//!    confirmed everywhere (whichever branch wins, the other's transactions are mined again);
//! 3. 5% packet loss (`iptables -m statistic --mode random --probability 0.05 -j DROP` on
//!    INPUT in every namespace): blocks still reach every node and a batch of transfers is
//!    confirmed everywhere;
//! 4. a bandwidth cap (`tc qdisc … tbf rate 1mbit burst 32kbit latency 400ms` on every
//!    namespace's link): same;
//! 5. added latency (`tc qdisc … netem delay 20ms`): only when the kernel has netem (the test
//!    probes for it in a scratch namespace); otherwise it says "netem not available in this
//!    kernel: added latency not tested". The machine this test was written on has no netem.
//!
//! Every phase prints its figures (time to converge, heights, counts) on stderr.
//!
//! Run: `cargo test -p peerchain --test links -- --nocapture` (as root: it creates namespaces,
//! a bridge and veth pairs named after the test's pid, and removes them at the end, also when
//! the test fails). It skips, with a message saying why, when not root, when `ip netns add`
//! fails, or when `tc` or an iptables that works inside a namespace (`iptables`, else
//! `iptables-legacy`) is missing; `.ci/run` installs iptables.
//!
//! The partition is kept short (well under the 15 s ping interval), so the nodes' TCP
//! connections survive it and resume once TCP retransmits; a longer partition would close
//! them, and the redial backoff would then decide the healing time.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use peerchain_ledger::crypto::Keypair;
use serde_json::Value;
use support::{Http, write_genesis};

const NODES: usize = 3;
const P2P_PORT: u16 = 7710;
const RPC_PORT: u16 = 8710;
const ADMIN_TOKEN: &str = "links-test-admin-token";
/// Shortest partition. Kept well under the nodes' 15 s ping interval (see the top).
const PARTITION: Duration = Duration::from_secs(5);

/// Runs a command; its stdout, or an error naming the command and its stderr.
fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs a command inside network namespace `ns`.
fn run_in(ns: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    run(&all)
}

/// Runs a command inside `ns` that must succeed (test setup or a fault being applied).
fn must_in(ns: &str, args: &[&str]) {
    if let Err(e) = run_in(ns, args) {
        panic!("{e}");
    }
}

/// One node process in its namespace.
struct Node {
    ns: String,
    /// The namespace's end of its veth pair.
    dev: String,
    ip: String,
    dir: PathBuf,
    rpc: String,
    peer_id: String,
    child: Option<Child>,
}

impl Node {
    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }
}

/// Everything the test creates outside its temporary directory; `Drop` removes it all (node
/// processes first, then namespaces, veths, the bridge and any root-namespace rule), also when
/// the test panics.
#[derive(Default)]
struct Lab {
    nodes: Vec<Node>,
    namespaces: Vec<String>,
    links: Vec<String>,
    /// A rule inserted in the root namespace's FORWARD chain: (iptables binary, rule spec).
    forward_rule: Option<(String, Vec<String>)>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                eprintln!(
                    "links: log of the node in {} (last lines):\n{}",
                    node.ns,
                    node.log()
                );
            }
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for ns in &self.namespaces {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        // Deleting a namespace deletes its veth end and so the pair; the bridge stays.
        for link in self.links.iter().rev() {
            let _ = run(&["ip", "link", "del", link]);
        }
        if let Some((bin, spec)) = &self.forward_rule {
            let mut args = vec![bin.as_str(), "-w", "-D", "FORWARD"];
            args.extend(spec.iter().map(String::as_str));
            let _ = run(&args);
        }
    }
}

/// What the machine can do, found in a scratch namespace.
struct Abilities {
    iptables: String,
    netem: bool,
}

/// Probes for root, `ip netns`, an iptables with the statistic match that works inside a
/// namespace, `tc tbf`, and `tc netem`. `Err` is the reason to skip.
fn probe(lab: &mut Lab, tag: &str) -> Result<Abilities, String> {
    let uid = run(&["id", "-u"]).map_err(|e| format!("cannot tell the user id: {e}"))?;
    if uid.trim() != "0" {
        return Err(format!(
            "needs root to create network namespaces (uid {})",
            uid.trim()
        ));
    }
    run(&["ip", "-V"]).map_err(|e| format!("`ip` (iproute2) missing: {e}"))?;
    run(&["tc", "-V"]).map_err(|e| format!("`tc` (iproute2) missing: {e}"))?;
    let scratch = format!("{tag}x");
    run(&["ip", "netns", "add", &scratch])
        .map_err(|e| format!("cannot create a network namespace: {e}"))?;
    lab.namespaces.push(scratch.clone());
    run_in(&scratch, &["ip", "link", "set", "lo", "up"])
        .map_err(|e| format!("cannot use a network namespace: {e}"))?;
    let mut iptables = None;
    let mut tried = Vec::new();
    for bin in ["iptables", "iptables-legacy"] {
        let rule = [
            bin,
            "-w",
            "-A",
            "INPUT",
            "-s",
            "192.0.2.254",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            "0.05",
            "-j",
            "DROP",
        ];
        match run_in(&scratch, &rule) {
            Ok(_) => {
                let _ = run_in(&scratch, &[bin, "-w", "-F", "INPUT"]);
                iptables = Some(bin.to_owned());
                break;
            }
            Err(e) => tried.push(e),
        }
    }
    let iptables = iptables.ok_or_else(|| {
        format!(
            "no iptables with the statistic match works in a network namespace (install \
             iptables): {}",
            tried.join("; ")
        )
    })?;
    run_in(
        &scratch,
        &[
            "tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst", "32kbit",
            "latency", "400ms",
        ],
    )
    .map_err(|e| format!("tc tbf unavailable: {e}"))?;
    let _ = run_in(&scratch, &["tc", "qdisc", "del", "dev", "lo", "root"]);
    let netem = run_in(
        &scratch,
        &[
            "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
        ],
    )
    .is_ok();
    Ok(Abilities { iptables, netem })
}

/// A /24 of 10.231.0.0/16 that no interface of the root namespace uses, starting from one
/// derived from the pid.
fn free_subnet() -> u8 {
    let used = run(&["ip", "-4", "-o", "addr", "show"]).unwrap_or_default();
    let start = (std::process::id() % 250) as u8;
    (0..250u8)
        .map(|k| ((u16::from(start) + u16::from(k)) % 250 + 1) as u8)
        .find(|x| !used.contains(&format!("10.231.{x}.")))
        .expect("a free 10.231.X.0/24 subnet")
}

/// Creates the bridge, the namespaces and their veth pairs. `Err` is the reason to skip.
fn build_links(lab: &mut Lab, tag: &str, subnet: u8, iptables: &str) -> Result<(), String> {
    let bridge = format!("{tag}br");
    run(&["ip", "link", "add", &bridge, "type", "bridge"])?;
    lab.links.push(bridge.clone());
    run(&[
        "ip",
        "addr",
        "add",
        &format!("10.231.{subnet}.1/24"),
        "dev",
        &bridge,
    ])?;
    run(&["ip", "link", "set", &bridge, "up"])?;
    // With br_netfilter loaded, bridged frames cross the root namespace's FORWARD chain; a
    // DROP policy there (Docker sets one) would cut the namespaces off from each other.
    let forward = run(&[iptables, "-w", "-S", "FORWARD"]).unwrap_or_default();
    if !forward.lines().any(|l| l.trim() == "-P FORWARD ACCEPT") {
        let spec: Vec<String> = ["-i", &bridge, "-o", &bridge, "-j", "ACCEPT"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let mut args = vec![iptables, "-w", "-I", "FORWARD", "1"];
        args.extend(spec.iter().map(String::as_str));
        run(&args)?;
        lab.forward_rule = Some((iptables.to_owned(), spec));
    }
    for i in 0..NODES {
        let ns = format!("{tag}n{i}");
        let outer = format!("{tag}v{i}");
        let inner = format!("{tag}p{i}");
        run(&["ip", "netns", "add", &ns])?;
        lab.namespaces.push(ns.clone());
        run(&[
            "ip", "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ])?;
        lab.links.push(outer.clone());
        run(&["ip", "link", "set", &inner, "netns", &ns])?;
        run(&["ip", "link", "set", &outer, "master", &bridge])?;
        run(&["ip", "link", "set", &outer, "up"])?;
        run_in(&ns, &["ip", "link", "set", "lo", "up"])?;
        run_in(
            &ns,
            &[
                "ip",
                "addr",
                "add",
                &format!("10.231.{subnet}.{}/24", 10 + i),
                "dev",
                &inner,
            ],
        )?;
        run_in(&ns, &["ip", "link", "set", &inner, "up"])?;
    }
    Ok(())
}

fn status(http: &Http, node: &Node) -> Option<Value> {
    http.get(&format!("{}/v1/status", node.rpc))
}

/// Statuses of every node, or `None` if one did not answer.
fn statuses(http: &Http, nodes: &[Node]) -> Option<Vec<Value>> {
    nodes.iter().map(|n| status(http, n)).collect()
}

fn height(s: &Value) -> u64 {
    s["height"].as_u64().unwrap_or(0)
}

fn tip(s: &Value) -> String {
    s["tip_hash"].as_str().unwrap_or("").to_owned()
}

/// Waits until every node reports one tip and state digest at height `min_height` or more;
/// returns the time it took and that height. Panics after `limit` with every node's status.
fn converge(http: &Http, nodes: &[Node], min_height: u64, limit: Duration) -> (Duration, u64) {
    let started = Instant::now();
    loop {
        let last = statuses(http, nodes);
        if let Some(s) = &last {
            let tips: HashSet<(String, &str)> = s
                .iter()
                .map(|s| (tip(s), s["state_digest"].as_str().unwrap_or("")))
                .collect();
            if tips.len() == 1 && height(&s[0]) >= min_height {
                return (started.elapsed(), height(&s[0]));
            }
        }
        assert!(
            started.elapsed() < limit,
            "no common tip at height {min_height}+ within {limit:?}: {:?}",
            last.map(|s| s
                .iter()
                .map(|s| (height(s), tip(s), s["peer_count"].as_u64()))
                .collect::<Vec<_>>())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until every transfer of `txids` is in a main-chain block of every node (read as each
/// block's txid list from `from_height` up, which is cheap on a capped link); returns the time
/// it took. Panics after `limit`, naming what is still missing.
fn confirmed_everywhere(
    http: &Http,
    nodes: &[Node],
    txids: &[String],
    from_height: u64,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    let mut pending: Vec<usize> = (0..nodes.len()).collect();
    let mut missing_last = 0;
    loop {
        pending.retain(|&i| {
            let Some(top) = status(http, &nodes[i]).map(|s| height(&s)) else {
                return true;
            };
            let mut seen = HashSet::new();
            for h in from_height.max(1)..=top {
                let Some(ids) = http.get(&format!("{}/v1/blocks/{h}/txids", nodes[i].rpc)) else {
                    return true;
                };
                seen.extend(
                    ids.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t.as_str().map(str::to_owned)),
                );
            }
            missing_last = txids.iter().filter(|t| !seen.contains(*t)).count();
            missing_last > 0
        });
        if pending.is_empty() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "transfers not confirmed within {limit:?} on nodes {pending:?} (the last one checked \
             misses {missing_last} of {})",
            txids.len()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Packets dropped so far by the DROP rules of `chains` in namespace `ns`.
fn dropped(iptables: &str, ns: &str, chains: &[&str]) -> u64 {
    chains
        .iter()
        .filter_map(|chain| run_in(ns, &[iptables, "-w", "-L", chain, "-v", "-n", "-x"]).ok())
        .flat_map(|out| {
            out.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.get(2) == Some(&"DROP")).then(|| f[0].parse::<u64>().ok())?
                })
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Bytes sent through, and overlimits of, the root qdisc of `dev` in `ns` (`tc -s`).
fn qdisc_stats(ns: &str, dev: &str) -> (u64, u64) {
    let out = run_in(ns, &["tc", "-s", "qdisc", "show", "dev", dev]).unwrap_or_default();
    let words: Vec<&str> = out
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    let after = |key: &str| {
        words
            .windows(2)
            .find(|w| w[0] == key)
            .and_then(|w| w[1].parse::<u64>().ok())
            .unwrap_or(0)
    };
    (after("Sent"), after("overlimits"))
}

/// Signs transfers of 1 from fresh dev accounts (nonce 0 each) to dev account 0.
struct Wallet {
    chain_id: u64,
    next: u32,
}

impl Wallet {
    fn transfers(&mut self, n: usize) -> Vec<peerchain_ledger::Transaction> {
        let to = Keypair::dev(0).address();
        (0..n)
            .map(|_| {
                self.next += 1;
                Keypair::dev(self.next).sign_transfer(self.chain_id, to, 1, 1, 0)
            })
            .collect()
    }
}

/// Submits one transfer to `node`; its txid. Retries briefly (the link may be lossy).
fn submit(http: &Http, node: &Node, wallet: &mut Wallet) -> String {
    let tx = wallet.transfers(1).remove(0);
    let body = serde_json::to_value(&tx).expect("transfer as JSON");
    let started = Instant::now();
    loop {
        match http
            .0
            .post(format!("{}/v1/transactions", node.rpc))
            .json(&body)
            .send()
        {
            Ok(r) if r.status().is_success() => return tx.txid().to_string(),
            other => assert!(
                started.elapsed() < Duration::from_secs(15),
                "node in {} did not accept a transfer: {other:?}",
                node.ns
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Submits `n` transfers to `node` in one batch; their txids (all must be accepted).
fn submit_batch(http: &Http, node: &Node, wallet: &mut Wallet, n: usize) -> Vec<String> {
    let txs = wallet.transfers(n);
    let body = serde_json::to_value(&txs).expect("batch as JSON");
    let started = Instant::now();
    let answer: Value = loop {
        match http
            .0
            .post(format!("{}/v1/transactions/batch", node.rpc))
            .json(&body)
            .send()
            .and_then(reqwest::blocking::Response::error_for_status)
            .and_then(reqwest::blocking::Response::json)
        {
            Ok(v) => break v,
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(20),
                "node in {} did not take a batch: {e}",
                node.ns
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let items = answer.as_array().expect("batch answer is an array");
    assert_eq!(items.len(), n, "batch answer: {answer}");
    for item in items {
        assert!(item["txid"].is_string(), "batch item refused: {item}");
    }
    txs.iter().map(|t| t.txid().to_string()).collect()
}

/// Drops every packet between node 2 and nodes 0 and 1 (both directions, by address) inside
/// node 2's namespace; `heal` removes the rules.
fn partition_rules(iptables: &str, nodes: &[Node]) -> Vec<Vec<String>> {
    let mut rules = Vec::new();
    for other in &nodes[..2] {
        for (chain, dir) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
            rules.push(
                [iptables, "-w", chain, dir, &other.ip, "-j", "DROP"]
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
            );
        }
    }
    rules
}

/// Applies (`-A`) or removes (`-D`) iptables rules in a namespace.
fn apply_rules(ns: &str, rules: &[Vec<String>], op: &str) {
    for rule in rules {
        let mut args: Vec<&str> = rule.iter().map(String::as_str).collect();
        args.insert(2, op);
        must_in(ns, &args);
    }
}

#[test]
fn nodes_on_real_links_survive_partition_loss_and_a_bandwidth_cap() {
    let started = Instant::now();
    let tag = format!("pcl{}", std::process::id() % 10_000_000);
    let mut lab = Lab::default();
    let abilities = match probe(&mut lab, &tag) {
        Ok(a) => a,
        Err(why) => {
            eprintln!("links: skipped: {why}");
            return;
        }
    };
    let subnet = free_subnet();
    if let Err(why) = build_links(&mut lab, &tag, subnet, &abilities.iptables) {
        eprintln!("links: skipped: cannot build the namespaces' links: {why}");
        return;
    }
    let iptables = abilities.iptables.clone();
    eprintln!(
        "links: 3 namespaces on bridge {tag}br, subnet 10.231.{subnet}.0/24, packet filter \
         `{iptables}`, netem {}",
        if abilities.netem {
            "available"
        } else {
            "not available in this kernel: added latency not tested"
        }
    );

    let work = tempfile::tempdir().expect("tempdir");
    let genesis = work.path().join("genesis.json");
    let chain_id = write_genesis(&genesis, 1000, 1000);
    let http = Http::new();

    let launch = Instant::now();
    // Start the nodes; node 0 is the bootnode of 1 and 2. Every node mines at a third of the
    // genesis hash rate (a block every ~1 s in all).
    for i in 0..NODES {
        let ip = format!("10.231.{subnet}.{}", 10 + i);
        let mut node = Node {
            ns: format!("{tag}n{i}"),
            dev: format!("{tag}p{i}"),
            dir: work.path().join(format!("node{i}")),
            rpc: format!("http://{ip}:{RPC_PORT}"),
            ip,
            peer_id: String::new(),
            child: None,
        };
        let boot = lab
            .nodes
            .first()
            .map(|n: &Node| format!("/ip4/{}/tcp/{P2P_PORT}/p2p/{}", n.ip, n.peer_id));
        start(&mut node, &genesis, boot.as_deref());
        lab.nodes.push(node);
        let node = lab.nodes.last_mut().expect("node just pushed");
        let up = Instant::now();
        let status = loop {
            if let Some(s) = status(&http, node) {
                break s;
            }
            assert!(
                up.elapsed() < Duration::from_secs(30),
                "node in {} did not serve HTTP on {}; log: {}",
                node.ns,
                node.rpc,
                node.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        node.peer_id = status["peer_id"].as_str().expect("peer_id").to_owned();
    }
    let nodes = &lab.nodes;
    let peered = Instant::now();
    while !statuses(&http, nodes)
        .is_some_and(|s| s.iter().all(|s| s["peer_count"].as_u64() >= Some(1)))
    {
        assert!(
            peered.elapsed() < Duration::from_secs(30),
            "nodes did not connect over the bridge; node 2 log: {}",
            nodes[2].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let peered_in = launch.elapsed();
    let mut wallet = Wallet { chain_id, next: 0 };

    // 1. Connected.
    let (t, h) = converge(&http, nodes, 3, Duration::from_secs(30));
    let txid = submit(&http, &nodes[2], &mut wallet);
    let confirm = confirmed_everywhere(
        &http,
        nodes,
        &[txid],
        h.saturating_sub(2),
        Duration::from_secs(30),
    );
    eprintln!(
        "links: 1 connected: 3 nodes up and peered {:.1} s after launch; one tip at height {h} \
         after {:.1} s more; a transfer submitted to node 2 confirmed on every node in {:.1} s",
        peered_in.as_secs_f64(),
        t.as_secs_f64(),
        confirm.as_secs_f64()
    );

    // 2. Partition node 2 from nodes 0 and 1; both sides mine.
    let rules = partition_rules(&iptables, nodes);
    let split_height = statuses(&http, nodes)
        .map(|s| s.iter().map(height).max().unwrap_or(0))
        .expect("statuses before the partition");
    apply_rules(&nodes[2].ns, &rules, "-A");
    let split = Instant::now();
    let minority_tx = submit(&http, &nodes[2], &mut wallet);
    let majority_tx = submit(&http, &nodes[0], &mut wallet);
    // Node 2 (a third of the hash rate) also mines 2 blocks at once through the admin call, so
    // its side surely diverges; they carry the transfer submitted to it.
    let mined = http
        .0
        .post(format!("{}/v1/admin/mine", nodes[2].rpc))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "blocks": 2 }))
        .send()
        .expect("admin mine on node 2");
    assert!(mined.status().is_success(), "admin mine: {mined:?}");
    let minority_confirmed = http
        .get(&format!("{}/v1/transactions/{minority_tx}", nodes[2].rpc))
        .is_some_and(|v| v["status"] == "confirmed");
    // Diverged: both sides above the split and each side's tip unknown to the other; and the
    // partition lasts at least PARTITION.
    let (tip_majority, tip_minority) = loop {
        let s0 = status(&http, &nodes[0]);
        let s2 = status(&http, &nodes[2]);
        if let (Some(s0), Some(s2)) = (&s0, &s2)
            && split.elapsed() >= PARTITION
            && height(s0) > split_height
            && height(s2) > split_height
            && http.code(&format!("{}/v1/blocks/{}", nodes[0].rpc, tip(s2))) == Some(404)
            && http.code(&format!("{}/v1/blocks/{}", nodes[2].rpc, tip(s0))) == Some(404)
        {
            break ((height(s0), tip(s0)), (height(s2), tip(s2)));
        }
        assert!(
            split.elapsed() < Duration::from_secs(30),
            "the sides did not diverge during the partition: node 0 {:?}, node 2 {:?}",
            s0.map(|s| (height(&s), tip(&s))),
            s2.map(|s| (height(&s), tip(&s)))
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let partition_drops = dropped(&iptables, &nodes[2].ns, &["INPUT", "OUTPUT"]);
    apply_rules(&nodes[2].ns, &rules, "-D");
    let partitioned = split.elapsed();
    let healed = Instant::now();
    let target = tip_majority.0.max(tip_minority.0);
    let (heal, h) = converge(&http, nodes, target, Duration::from_secs(60));
    confirmed_everywhere(
        &http,
        nodes,
        &[minority_tx, majority_tx],
        split_height,
        Duration::from_secs(60),
    );
    let heal_confirm = healed.elapsed();
    let minority_won = http
        .get(&format!("{}/v1/blocks/{}", nodes[0].rpc, tip_minority.1))
        .is_some_and(|b| b["in_main_chain"] == true);
    eprintln!(
        "links: 2 partition: node 2 cut off from nodes 0 and 1 at height {split_height} for \
         {:.1} s ({partition_drops} packets dropped); the sides diverged (nodes 0-1 tip at height \
         {}, node 2 tip at height {}, each unknown to the other side; node 2's transfer {} in its \
         branch); one tip at height {h} {:.1} s after healing ({} branch kept); the transfers \
         submitted to each side during the partition confirmed on every node {:.1} s after healing",
        partitioned.as_secs_f64(),
        tip_majority.0,
        tip_minority.0,
        if minority_confirmed {
            "confirmed"
        } else {
            "pending"
        },
        heal.as_secs_f64(),
        if minority_won {
            "node 2's"
        } else {
            "nodes 0-1's"
        },
        heal_confirm.as_secs_f64()
    );

    // 3. 5% packet loss on every node's input.
    let loss_rule: Vec<String> = [
        iptables.as_str(),
        "-w",
        "INPUT",
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.05",
        "-j",
        "DROP",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for node in nodes {
        apply_rules(&node.ns, std::slice::from_ref(&loss_rule), "-A");
    }
    let loss = degraded(&http, nodes, &mut wallet, 20);
    let loss_drops: u64 = nodes
        .iter()
        .map(|n| dropped(&iptables, &n.ns, &["INPUT"]))
        .sum();
    for node in nodes {
        apply_rules(&node.ns, std::slice::from_ref(&loss_rule), "-D");
    }
    eprintln!(
        "links: 3 loss 5% on every node's input ({loss_drops} packets dropped in all): {loss}"
    );

    // 4. A 1 Mbit/s cap on every namespace's outgoing link.
    for node in nodes {
        must_in(
            &node.ns,
            &[
                "tc", "qdisc", "add", "dev", &node.dev, "root", "tbf", "rate", "1mbit", "burst",
                "32kbit", "latency", "400ms",
            ],
        );
    }
    let capped = degraded(&http, nodes, &mut wallet, 100);
    let (sent, overlimits) = nodes
        .iter()
        .map(|n| qdisc_stats(&n.ns, &n.dev))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    for node in nodes {
        must_in(&node.ns, &["tc", "qdisc", "del", "dev", &node.dev, "root"]);
    }
    eprintln!(
        "links: 4 bandwidth cap 1 Mbit/s (tc tbf) on every link ({} KB sent through the caps, \
         {overlimits} overlimits): {capped}",
        sent / 1000
    );

    // 5. Added latency, when the kernel has netem.
    let latency = if abilities.netem {
        for node in nodes {
            must_in(
                &node.ns,
                &[
                    "tc", "qdisc", "add", "dev", &node.dev, "root", "netem", "delay", "20ms",
                ],
            );
        }
        let delayed = degraded(&http, nodes, &mut wallet, 20);
        for node in nodes {
            must_in(&node.ns, &["tc", "qdisc", "del", "dev", &node.dev, "root"]);
        }
        format!("20 ms added each way (tc netem): {delayed}")
    } else {
        "netem not available in this kernel: added latency not tested".to_owned()
    };
    eprintln!("links: 5 latency: {latency}");
    eprintln!(
        "REPORT links: 3 nodes in network namespaces; partition healed to one tip in {:.1} s; \
         5% loss: {loss}; 1 Mbit/s cap: {capped}; latency: {latency}; whole test {:.0} s",
        heal.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// What a degraded-link phase measured.
struct Degraded {
    converge: Duration,
    height: u64,
    transfers: usize,
    confirm: Duration,
}

impl std::fmt::Display for Degraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "one tip 3 blocks higher after {:.1} s; {} transfers (a batch to each node) \
             confirmed on every node {:.1} s after submission; one tip at height {} at the end",
            self.converge.as_secs_f64(),
            self.transfers,
            self.confirm.as_secs_f64(),
            self.height
        )
    }
}

/// With the links degraded: blocks still reach every node (one tip 3 blocks above the
/// current highest), and a batch of transfers submitted to each node is confirmed on every
/// node.
fn degraded(http: &Http, nodes: &[Node], wallet: &mut Wallet, per_node: usize) -> Degraded {
    let from = statuses(http, nodes)
        .map(|s| s.iter().map(height).max().unwrap_or(0))
        .expect("every node's status");
    let (converge_time, _) = converge(http, nodes, from + 3, Duration::from_secs(40));
    let submitted = Instant::now();
    let mut txids = Vec::new();
    for (k, node) in nodes.iter().enumerate() {
        txids.extend(submit_batch(http, node, wallet, per_node + 10 * k));
    }
    confirmed_everywhere(http, nodes, &txids, from, Duration::from_secs(40));
    let confirm = submitted.elapsed();
    let (_, height) = converge(http, nodes, 0, Duration::from_secs(40));
    Degraded {
        converge: converge_time,
        height,
        transfers: txids.len(),
        confirm,
    }
}

/// Starts `node` inside its namespace (`ip netns exec` execs the node, so the child is the
/// node process itself), mining at a third of the genesis hash rate, its log in its directory.
fn start(node: &mut Node, genesis: &Path, bootnode: Option<&str>) {
    std::fs::create_dir_all(&node.dir).expect("node directory");
    let log = std::fs::File::create(node.dir.join("node.log")).expect("node log");
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &node.ns,
        env!("CARGO_BIN_EXE_peerchain"),
        "node",
    ])
    .arg("--genesis")
    .arg(genesis)
    .arg("--data-dir")
    .arg(&node.dir)
    .args(["--p2p-listen", &format!("/ip4/{}/tcp/{P2P_PORT}", node.ip)])
    .args(["--rpc-listen", &format!("{}:{RPC_PORT}", node.ip)])
    .args(["--admin-token", ADMIN_TOKEN])
    .args(["--mine", "--mine-hashrate", "20000"]);
    if let Some(b) = bootnode {
        cmd.args(["--bootnode", b]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn `ip netns exec … peerchain node`");
    node.child = Some(child);
}
