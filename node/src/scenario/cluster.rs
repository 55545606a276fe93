//! The scenario's node processes: a generated genesis, free loopback ports, one data
//! directory per node under the output directory, node 0 as the bootnode, each node's
//! `--fault-seed` drawn from the run's seed, and every fault the timeline applies to them
//! (kill, stop, start, partition, heal, link faults, mining, hash shares, adversary).
//!
//! It owns: the child processes and their ports. A node whose port another program holds
//! when it (re)starts moves to a free one ([`Cluster::start`]). [`Cluster`] is their guard:
//! dropping it SIGKILLs and reaps every node still running, so no path out of the runner
//! (error, panic, interrupt) leaves a node behind.
//! It must never: outlive its children, or talk to a node other than through its HTTP API
//! ([`Api`]) and signals.

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peerchain_ledger::crypto::Keypair;
use serde::Serialize;
use serde_json::json;

use super::http::{AdminAnswer, Api, Status};
use super::links::LinkTable;
use super::seeded::{self, Stream};
use super::spec::{LinkSpec, NodeSpec, Scenario, build_genesis};

/// Dev account index of node `i`'s miner address is `MINER_KEY_BASE + i` (unfunded, so mining
/// rewards never touch the load's senders).
pub const MINER_KEY_BASE: u32 = 1_000_000;
/// How long a node may take to answer `/v1/status` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the initial nodes may take to see a peer.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to exit after SIGTERM before it is SIGKILLed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of a node's log quoted in an error.
const LOG_TAIL: usize = 2000;

/// What the report says about a node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    /// Index.
    pub index: usize,
    /// HTTP API base URL.
    pub rpc: String,
    /// P2P multiaddr (without the peer id).
    pub p2p: String,
    /// libp2p peer id, once known.
    pub peer_id: Option<String>,
    /// Miner address (rewards).
    pub miner_address: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Log file (every start appends to it).
    pub log: PathBuf,
    /// Process ids of every start, in order.
    pub pids: Vec<u32>,
    /// Settings from the scenario.
    pub spec: NodeSpec,
}

struct Node {
    spec: NodeSpec,
    rpc_port: u16,
    p2p_port: u16,
    dir: PathBuf,
    log: PathBuf,
    miner: String,
    token: Option<String>,
    peer_id: Option<String>,
    child: Option<Child>,
    pids: Vec<u32>,
    /// Its adversary mode now (from the file, then the timeline's switches).
    adversary: Option<String>,
    /// Its hash-rate cap now (from its share, then the timeline's hash-share steps).
    hashrate: u64,
    /// Whether it mines now (from the file, then the timeline's mining and hash-share steps);
    /// a restart keeps it.
    mine: bool,
    /// Processes started for it so far: each start gets a `--fault-seed` of its own.
    starts: u64,
}

impl Node {
    fn rpc(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    fn multiaddr(&self) -> Option<String> {
        let id = self.peer_id.as_ref()?;
        Some(format!("/ip4/127.0.0.1/tcp/{}/p2p/{id}", self.p2p_port))
    }

    fn token(&self) -> anyhow::Result<&str> {
        self.token
            .as_deref()
            .with_context(|| format!("node {} has no admin token yet", self.spec.index))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(LOG_TAIL);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }
}

/// The running network. Dropping it kills every node still running.
pub struct Cluster {
    bin: PathBuf,
    genesis: PathBuf,
    explorer_list: PathBuf,
    nodes: Vec<Node>,
    api: Api,
    partition: Option<Vec<Vec<usize>>>,
    links: LinkTable,
    /// `[network.link]`: set on every link once the initial nodes are up.
    initial_link: Option<LinkSpec>,
    /// The network's total hash rate, shared by the hash shares.
    total_hashrate: u64,
    /// The run's seed: each node's `--fault-seed` (one per start) is drawn from it.
    seed: u64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("nodes", &self.nodes.len())
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Writes the genesis and the explorer's node list into `out`, picks ports and creates
    /// the data directories. Starts nothing. The nodes are processes of this executable.
    pub fn prepare(scenario: &Scenario, out: &Path) -> anyhow::Result<Self> {
        let bin = std::env::current_exe().context("cannot find the peerchain executable")?;
        Self::prepare_with(scenario, out, bin)
    }

    /// [`Cluster::prepare`] with the nodes run by the `peerchain` executable `bin` (tests
    /// give the binary under test).
    pub fn prepare_with(scenario: &Scenario, out: &Path, bin: PathBuf) -> anyhow::Result<Self> {
        let net = &scenario.network;
        let genesis = build_genesis(&net.genesis, net.hashrate)?;
        let genesis_path = out.join("genesis.json");
        std::fs::write(&genesis_path, genesis.to_json() + "\n")
            .with_context(|| format!("cannot write {}", genesis_path.display()))?;
        let ports = free_ports(net.nodes * 2)?;
        let mut nodes = Vec::with_capacity(net.nodes);
        for (spec, pair) in net.node.iter().zip(ports.chunks_exact(2)) {
            let i = spec.index;
            let dir = out.join(format!("node{i}"));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            nodes.push(Node {
                spec: spec.clone(),
                rpc_port: pair[0],
                p2p_port: pair[1],
                dir,
                log: out.join(format!("node{i}.log")),
                miner: miner_key(i).address().to_string(),
                token: None,
                peer_id: None,
                child: None,
                pids: Vec::new(),
                adversary: spec.adversary.clone(),
                hashrate: spec.hashrate,
                mine: spec.mine,
                starts: 0,
            });
        }
        let cluster = Cluster {
            bin,
            genesis: genesis_path,
            explorer_list: out.join("nodes.json"),
            nodes,
            api: Api::new(Duration::from_secs(10))?,
            partition: None,
            links: LinkTable::default(),
            initial_link: net.link,
            total_hashrate: net.hashrate,
            seed: scenario.seed,
        };
        cluster.write_explorer_list()?;
        Ok(cluster)
    }

    /// Writes the explorer's list of node URLs (`nodes.json`).
    fn write_explorer_list(&self) -> anyhow::Result<()> {
        let urls: Vec<String> = self.nodes.iter().map(Node::rpc).collect();
        std::fs::write(&self.explorer_list, serde_json::to_string(&urls)?)
            .with_context(|| format!("cannot write {}", self.explorer_list.display()))
    }

    /// Starts node 0, then every other node that starts at 0 s with node 0 as bootnode, and
    /// waits until each answers and (with more than one) sees a peer.
    pub fn start_initial(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        let initial: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].spec.start_ms == 0)
            .collect();
        for &i in &initial {
            self.spawn(i)?;
            if i == 0 {
                self.wait_up_or_move(0, stop)?;
            }
        }
        for &i in &initial {
            self.wait_up_or_move(i, stop)?;
        }
        if initial.len() > 1 {
            for &i in &initial {
                self.wait_peered(i, stop)?;
            }
        }
        if let Some(fault) = self.initial_link {
            self.set_links(None, fault)?;
        }
        Ok(())
    }

    /// Base URLs of every node's HTTP API, by index (stable across restarts).
    pub fn rpc_urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::rpc).collect()
    }

    /// Whether node `i`'s process is running.
    pub fn running(&mut self, i: usize) -> bool {
        let Some(node) = self.nodes.get_mut(i) else {
            return false;
        };
        match node.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_)) | Err(_)) | None => false,
        }
    }

    /// The reference node for the final chain: the lowest-numbered running honest node (no
    /// adversary mode on) that is not syncing, else the lowest running honest one, else the
    /// lowest running one. A node still catching up after a restart would give a short chain.
    pub fn reference_node(&mut self) -> Option<usize> {
        let running: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.running(i)).collect();
        let honest: Vec<usize> = running
            .iter()
            .copied()
            .filter(|&i| self.nodes[i].adversary.is_none())
            .collect();
        let candidates = if honest.is_empty() { running } else { honest };
        candidates
            .iter()
            .copied()
            .find(|&i| {
                self.api
                    .status(&self.nodes[i].rpc())
                    .is_ok_and(|s| !s.syncing)
            })
            .or_else(|| candidates.first().copied())
    }

    /// What the report says about each node.
    pub fn info(&self) -> Vec<NodeInfo> {
        self.nodes
            .iter()
            .map(|n| NodeInfo {
                index: n.spec.index,
                rpc: n.rpc(),
                p2p: format!("/ip4/127.0.0.1/tcp/{}", n.p2p_port),
                peer_id: n.peer_id.clone(),
                miner_address: n.miner.clone(),
                data_dir: n.dir.clone(),
                log: n.log.clone(),
                pids: n.pids.clone(),
                spec: n.spec.clone(),
            })
            .collect()
    }

    // ----- process lifecycle -------------------------------------------------------------

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let args = self.node_args(i);
        let node = &mut self.nodes[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("cannot open {}", node.log.display()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // A group of its own: a terminal's Ctrl-C reaches the runner only, which then reads
        // the final chain and stops the nodes itself.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // The scenario alone decides the nodes' flags: no PEERCHAIN_* from the caller.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PEERCHAIN_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start node {i} ({})", self.bin.display()))?;
        if let Some(mut old) = node.child.take() {
            // An earlier process that exited on its own: reap it.
            let _ = old.kill();
            let _ = old.wait();
        }
        node.pids.push(child.id());
        node.child = Some(child);
        node.starts += 1;
        Ok(())
    }

    fn node_args(&self, i: usize) -> Vec<String> {
        let node = &self.nodes[i];
        let spec = &node.spec;
        let mut args: Vec<String> = vec![
            "node".into(),
            "--genesis".into(),
            path_arg(&self.genesis),
            "--data-dir".into(),
            path_arg(&node.dir),
            "--p2p-listen".into(),
            format!("/ip4/127.0.0.1/tcp/{}", node.p2p_port),
            "--rpc-listen".into(),
            format!("127.0.0.1:{}", node.rpc_port),
            "--miner-address".into(),
            node.miner.clone(),
            "--explorer-nodes".into(),
            path_arg(&self.explorer_list),
        ];
        if node.hashrate > 0 {
            args.extend(["--mine-hashrate".into(), node.hashrate.to_string()]);
        }
        if node.mine {
            args.push("--mine".into());
        }
        if spec.clock_offset_ms != 0 {
            args.push(format!("--clock-offset-ms={}", spec.clock_offset_ms));
        }
        if spec.allow_adversary {
            args.push("--allow-adversary".into());
        }
        if let Some(mode) = &spec.adversary {
            args.extend(["--adversary".into(), mode.clone()]);
        }
        args.extend([
            "--fault-seed".into(),
            fault_seed(self.seed, i, node.starts).to_string(),
        ]);
        let boot = self.bootnodes(i);
        if !boot.is_empty() {
            args.extend(["--bootnode".into(), boot.join(",")]);
        }
        args
    }

    /// Node 0 and every node running now, except `i` and, during a partition, the nodes on
    /// the other side.
    fn bootnodes(&self, i: usize) -> Vec<String> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|&(j, n)| j != i && (j == 0 || n.child.is_some()) && !self.separated(i, j))
            .filter_map(|(_, n)| n.multiaddr())
            .collect()
    }

    fn separated(&self, a: usize, b: usize) -> bool {
        self.partition.as_ref().is_some_and(|groups| {
            let group_of = |n: usize| groups.iter().position(|g| g.contains(&n));
            matches!((group_of(a), group_of(b)), (Some(x), Some(y)) if x != y)
        })
    }

    /// Waits until node `i` answers `/v1/status`; learns its peer id and admin token.
    fn wait_up(&mut self, i: usize, stop: &AtomicBool) -> anyhow::Result<Status> {
        let started = Instant::now();
        let rpc = self.nodes[i].rpc();
        loop {
            if let Ok(status) = self.api.status(&rpc) {
                let node = &mut self.nodes[i];
                node.peer_id = Some(status.peer_id.clone());
                node.token = Some(read_token(&node.dir)?);
                return Ok(status);
            }
            if !self.running(i) {
                bail!(
                    "node {i} exited while starting; the end of its log {}:\n{}",
                    self.nodes[i].log.display(),
                    self.nodes[i].log_tail()
                );
            }
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted while node {i} was starting");
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "node {i} did not answer {rpc}/v1/status within {} s; the end of its log:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.nodes[i].log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until node `i` answers; when it exited because one of its ports was taken
    /// between choosing it and binding it (another program won the race), moves it
    /// ([`Cluster::move_taken_ports`]) and starts it once more. Returns the ports it moved.
    fn wait_up_or_move(&mut self, i: usize, stop: &AtomicBool) -> anyhow::Result<Moved> {
        match self.wait_up(i, stop) {
            Err(e) if !self.running(i) && self.nodes[i].log_tail().contains("cannot listen") => {
                let moved = self.move_taken_ports(i, true)?;
                eprintln!("node {i} lost a port race ({e:#}); {}", moved.describe(i));
                self.spawn(i)?;
                self.wait_up(i, stop)?;
                Ok(moved)
            }
            other => other.map(|_| Moved::default()),
        }
    }

    /// Gives node `i`, which is down, a free port for each of its ports another program
    /// listens on now (both when none seems taken and `or_both` is set: the other program
    /// may have let go already), and rewrites the explorer's node list when its HTTP port
    /// moved. Its P2P address reaches the others by itself: the nodes started after it get
    /// it as a bootnode, and it dials the running ones.
    fn move_taken_ports(&mut self, i: usize, or_both: bool) -> anyhow::Result<Moved> {
        let node = &self.nodes[i];
        let (mut rpc, mut p2p) = (taken(node.rpc_port), taken(node.p2p_port));
        if or_both && !rpc && !p2p {
            (rpc, p2p) = (true, true);
        }
        if !rpc && !p2p {
            return Ok(Moved::default());
        }
        let fresh = free_ports(2)?;
        let node = &mut self.nodes[i];
        let mut moved = Moved::default();
        if rpc {
            moved.rpc = Some((node.rpc_port, fresh[0]));
            node.rpc_port = fresh[0];
        }
        if p2p {
            moved.p2p = Some((node.p2p_port, fresh[1]));
            node.p2p_port = fresh[1];
        }
        if rpc {
            self.write_explorer_list()?;
        }
        Ok(moved)
    }

    fn wait_peered(&mut self, i: usize, stop: &AtomicBool) -> anyhow::Result<()> {
        let started = Instant::now();
        let rpc = self.nodes[i].rpc();
        loop {
            match self.api.status(&rpc) {
                Ok(s) if s.peer_count > 0 => return Ok(()),
                _ if stop.load(Ordering::Relaxed) => {
                    bail!("interrupted while node {i} was looking for peers")
                }
                _ if started.elapsed() > PEER_TIMEOUT => bail!(
                    "node {i} saw no peer within {} s; the end of its log:\n{}",
                    PEER_TIMEOUT.as_secs(),
                    self.nodes[i].log_tail()
                ),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// SIGKILLs node `i` and reaps it.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        let mut child = self.take_child(i)?;
        child
            .kill()
            .with_context(|| format!("cannot SIGKILL node {i}"))?;
        child
            .wait()
            .with_context(|| format!("cannot reap node {i}"))?;
        Ok(())
    }

    /// SIGTERMs node `i` and waits for it to exit; SIGKILLs it (and fails) after 30 s.
    pub fn stop(&mut self, i: usize) -> anyhow::Result<()> {
        let mut child = self.take_child(i)?;
        terminate(&child);
        if wait_exit(&mut child, STOP_TIMEOUT) {
            return Ok(());
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "node {i} did not exit within {} s of SIGTERM: killed it",
            STOP_TIMEOUT.as_secs()
        )
    }

    fn take_child(&mut self, i: usize) -> anyhow::Result<Child> {
        let node = self
            .nodes
            .get_mut(i)
            .with_context(|| format!("no node {i}"))?;
        node.child
            .take()
            .with_context(|| format!("node {i} is not running"))
    }

    /// Starts node `i` (again, with its data directory), waits until it answers, blocks its
    /// side of a partition in place and sets the link faults in force at either end of its
    /// links (its own were lost with its memory; the others learn its peer id). Returns
    /// notes.
    ///
    /// A port of it that another program holds (taken while it was down, or in a race as
    /// it binds) is moved as at the first start (`Cluster::move_taken_ports`) and noted.
    /// A moved HTTP port still fails the step once the node runs: the sampler, the event
    /// readers and the load were given its old URL when the clock started, so its record
    /// from then on would be missing.
    pub fn start(&mut self, i: usize, stop: &AtomicBool) -> anyhow::Result<Vec<String>> {
        if self.running(i) {
            bail!("node {i} is already running");
        }
        let before = self.move_taken_ports(i, false)?;
        self.spawn(i)?;
        let moved = before.then(self.wait_up_or_move(i, stop)?);
        let mut notes = Vec::new();
        if let Some(groups) = self.partition.clone() {
            for j in others_across(&groups, i) {
                notes.extend(self.block(i, j)?);
            }
        }
        for (receiver, sender, fault) in self.links.touching(i) {
            notes.extend(self.set_link(receiver, sender, fault)?);
        }
        if let Some((old, new)) = moved.rpc {
            bail!(
                "{}; but the runner's sampler, event readers and load address node {i} at \
                 port {old}, so nothing it does from now on is recorded (node {i} runs on \
                 port {new}; nodes.json lists it there)",
                moved.describe(i)
            );
        }
        if moved.p2p.is_some() {
            notes.push(moved.describe(i));
        }
        Ok(notes)
    }

    /// The current ports of node `i`: HTTP, then P2P.
    pub fn ports(&self, i: usize) -> Option<(u16, u16)> {
        self.nodes.get(i).map(|n| (n.rpc_port, n.p2p_port))
    }

    /// Stops every running node: SIGTERM to all, then SIGKILL to those still running after
    /// 20 s (at once when `graceful` is false).
    pub fn shutdown(&mut self, graceful: bool) {
        let mut children: Vec<(usize, Child)> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.child.take().map(|c| (n.spec.index, c)))
            .collect();
        if graceful {
            children.iter().for_each(|(_, c)| terminate(c));
            let deadline = Instant::now() + Duration::from_secs(20);
            for (i, child) in &mut children {
                let left = deadline.saturating_duration_since(Instant::now());
                if !wait_exit(child, left) {
                    eprintln!("node {i} did not exit within 20 s of SIGTERM: killing it");
                }
            }
        }
        for (_, mut child) in children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    // ----- network faults and admin switches ----------------------------------------------

    /// Every running node blocks every node of the other groups (both ways). Returns notes
    /// on the pairs that could not be blocked from one side.
    pub fn partition(&mut self, groups: &[Vec<usize>]) -> anyhow::Result<Vec<String>> {
        if self.partition.is_some() {
            bail!("a partition is already in place");
        }
        self.partition = Some(groups.to_vec());
        let mut notes = Vec::new();
        for (a, b) in cross_pairs(groups) {
            notes.extend(self.block(a, b)?);
            notes.extend(self.block(b, a)?);
        }
        Ok(notes)
    }

    /// Node `a` blocks node `b`, when `a` runs and `b`'s peer id is known. A node that does
    /// not know the peer (404) has nothing to refuse: noted, not an error.
    fn block(&mut self, a: usize, b: usize) -> anyhow::Result<Vec<String>> {
        let Some(peer) = self.nodes[b].peer_id.clone() else {
            return Ok(vec![format!(
                "node {b} never started: nothing for node {a} to block"
            )]);
        };
        if !self.running(a) {
            return Ok(vec![format!(
                "node {a} is down: it blocks node {b} when started"
            )]);
        }
        let node = &self.nodes[a];
        let path = format!("peers/{peer}/block");
        match self.api.admin(&node.rpc(), node.token()?, &path, None)? {
            AdminAnswer::Ok => Ok(Vec::new()),
            AdminAnswer::NotFound(why) => Ok(vec![format!(
                "node {a} does not know node {b} ({why}); node {b} blocks it"
            )]),
        }
    }

    /// Lifts the partition: every running node unblocks the others, then each pair across
    /// the old groups is dialled again.
    pub fn heal(&mut self) -> anyhow::Result<Vec<String>> {
        let groups = self
            .partition
            .take()
            .context("there is no partition to heal")?;
        let mut notes = Vec::new();
        for (a, b) in cross_pairs(&groups) {
            for (x, y) in [(a, b), (b, a)] {
                if let Some(note) = self.unblock(x, y)? {
                    notes.push(note);
                }
            }
        }
        for (a, b) in cross_pairs(&groups) {
            if self.running(a) && self.running(b) {
                self.dial(a, b)?;
            }
        }
        Ok(notes)
    }

    fn unblock(&mut self, a: usize, b: usize) -> anyhow::Result<Option<String>> {
        let Some(peer) = self.nodes[b].peer_id.clone() else {
            return Ok(None);
        };
        if !self.running(a) {
            return Ok(None);
        }
        let node = &self.nodes[a];
        let path = format!("peers/{peer}/unblock");
        match self.api.admin(&node.rpc(), node.token()?, &path, None)? {
            AdminAnswer::Ok => Ok(None),
            AdminAnswer::NotFound(_) => Ok(Some(format!("node {a} had not blocked node {b}"))),
        }
    }

    fn dial(&self, a: usize, b: usize) -> anyhow::Result<()> {
        let Some(addr) = self.nodes[b].multiaddr() else {
            return Ok(());
        };
        let node = &self.nodes[a];
        self.api.admin(
            &node.rpc(),
            node.token()?,
            "peers",
            Some(&json!({ "addr": addr })),
        )?;
        Ok(())
    }

    /// Sets `fault` on both directions of every link across `between` (every link when
    /// `None`); a clear fault lifts them. Links to a node that is down or not yet started are
    /// set when it starts. Returns notes on those.
    pub fn set_links(
        &mut self,
        between: Option<&[Vec<usize>]>,
        fault: LinkSpec,
    ) -> anyhow::Result<Vec<String>> {
        let pairs = self.links.set(between, self.nodes.len(), fault);
        let mut notes = Vec::new();
        for (receiver, sender) in pairs {
            notes.extend(self.set_link(receiver, sender, fault)?);
        }
        Ok(notes)
    }

    /// `POST /v1/admin/peers/{sender's peer id}/link` on `receiver`, when it runs and the
    /// sender's peer id is known.
    fn set_link(
        &mut self,
        receiver: usize,
        sender: usize,
        fault: LinkSpec,
    ) -> anyhow::Result<Option<String>> {
        let Some(peer) = self.nodes[sender].peer_id.clone() else {
            return Ok(Some(format!(
                "node {sender} never started: node {receiver} faults its link when it does"
            )));
        };
        if !self.running(receiver) {
            return Ok(Some(format!(
                "node {receiver} is down: its link from node {sender} is faulted when it starts"
            )));
        }
        let body = json!({
            "loss": fault.loss,
            "delay_ms": fault.delay_ms,
            "bandwidth_kbps": fault.bandwidth_kbps,
        });
        self.admin_call(receiver, &format!("peers/{peer}/link"), &body)?;
        Ok(None)
    }

    /// `POST /v1/admin/mining`.
    pub fn set_mining(&mut self, i: usize, enabled: bool) -> anyhow::Result<()> {
        self.admin_call(i, "mining", &json!({ "enabled": enabled }))?;
        self.nodes[i].mine = enabled;
        Ok(())
    }

    /// Gives node `i` `share` of the network's hash rate: its miner's cap changes, mining
    /// stops at 0 and starts above it. A node that is down gets it when it starts.
    pub fn set_hash_share(&mut self, i: usize, share: f64) -> anyhow::Result<Vec<String>> {
        // share in 0..=1 and the total a u64: the product fits.
        let rate = (share * self.total_hashrate as f64).round() as u64;
        let rate = if share > 0.0 { rate.max(1) } else { 0 };
        let node = &mut self.nodes[i];
        node.hashrate = rate;
        node.mine = rate > 0;
        if !self.running(i) {
            return Ok(vec![format!(
                "node {i} is down: it mines at {rate} H/s when it starts"
            )]);
        }
        let body = json!({ "enabled": rate > 0, "hashrate": rate });
        self.admin_call(i, "mining", &body)?;
        Ok(Vec::new())
    }

    /// `POST /v1/admin/adversary` (`None`: off).
    pub fn set_adversary(&mut self, i: usize, mode: Option<&str>) -> anyhow::Result<()> {
        self.admin_call(i, "adversary", &json!({ "mode": mode }))?;
        self.nodes[i].adversary = mode.map(str::to_owned);
        Ok(())
    }

    fn admin_call(&mut self, i: usize, path: &str, body: &serde_json::Value) -> anyhow::Result<()> {
        if !self.running(i) {
            bail!("node {i} is not running");
        }
        let node = &self.nodes[i];
        match self
            .api
            .admin(&node.rpc(), node.token()?, path, Some(body))?
        {
            AdminAnswer::Ok => Ok(()),
            AdminAnswer::NotFound(why) => bail!("node {i}: /v1/admin/{path}: {why}"),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown(false);
    }
}

/// The ports a node moved from and to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Moved {
    /// HTTP: old, new.
    rpc: Option<(u16, u16)>,
    /// P2P: old, new.
    p2p: Option<(u16, u16)>,
}

impl Moved {
    /// The moves of `self`, then those of `later` (a port moved twice: from the first old
    /// one to the last new one).
    fn then(self, later: Moved) -> Moved {
        let join = |a: Option<(u16, u16)>, b: Option<(u16, u16)>| match (a, b) {
            (Some((old, _)), Some((_, new))) => Some((old, new)),
            (a, b) => b.or(a),
        };
        Moved {
            rpc: join(self.rpc, later.rpc),
            p2p: join(self.p2p, later.p2p),
        }
    }

    /// `node 2's HTTP port 4000 was taken: moved to 4100`, or that nothing moved.
    fn describe(&self, i: usize) -> String {
        let moves: Vec<String> = [("HTTP", self.rpc), ("P2P", self.p2p)]
            .into_iter()
            .filter_map(|(name, m)| m.map(|(old, new)| format!("{name} port {old} to {new}")))
            .collect();
        if moves.is_empty() {
            return format!("node {i} keeps its ports");
        }
        format!(
            "another program took a port of node {i}: moved its {}",
            moves.join(" and its ")
        )
    }
}

/// Whether a program listens on `port` of 127.0.0.1 now: binding it fails. (The node binds
/// with SO_REUSEADDR, as std does here, so connections of its last run waiting out
/// TIME_WAIT do not count.)
fn taken(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_err()
}

/// The `--fault-seed` of node `i`'s start number `start` (0 first) for the run's `seed`: a
/// restarted sybil gets fresh identities, the same ones on every run with that seed.
pub fn fault_seed(seed: u64, i: usize, start: u64) -> u64 {
    seeded::derive(
        seed,
        Stream::FaultSeed,
        ((i as u64) << 32) | (start & 0xffff_ffff),
    )
}

/// The miner key of node `i` (only its address is used).
pub fn miner_key(i: usize) -> Keypair {
    let i = u32::try_from(i).unwrap_or(0);
    Keypair::dev(MINER_KEY_BASE.saturating_add(i))
}

/// Every pair (a, b) with a and b in different groups, a's group first.
fn cross_pairs(groups: &[Vec<usize>]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for (x, ga) in groups.iter().enumerate() {
        for gb in &groups[x + 1..] {
            for &a in ga {
                pairs.extend(gb.iter().map(|&b| (a, b)));
            }
        }
    }
    pairs
}

/// The nodes in other groups than `i`'s (none when `i` is in no group).
fn others_across(groups: &[Vec<usize>], i: usize) -> Vec<usize> {
    let Some(own) = groups.iter().position(|g| g.contains(&i)) else {
        return Vec::new();
    };
    groups
        .iter()
        .enumerate()
        .filter(|&(x, _)| x != own)
        .flat_map(|(_, g)| g.iter().copied())
        .collect()
}

/// `n` distinct ports free on 127.0.0.1 now ([`crate::ports`]).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    crate::ports::free_loopback_ports(n).context("cannot find free ports on 127.0.0.1")
}

fn read_token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("admin.token");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the admin token {}", path.display()))?;
    Ok(text.trim().to_owned())
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Sends SIGTERM to a child (std only offers SIGKILL).
fn terminate(child: &Child) {
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) takes two integers and touches no memory of ours; `pid` is our own
    // child, not yet reaped (we hold its `Child`), so the id cannot have been reused.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// Waits up to `limit` for a child to exit; `true` when it did.
fn wait_exit(child: &mut Child, limit: Duration) -> bool {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if started.elapsed() >= limit => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_pairs_cover_every_pair_across_groups() {
        let pairs = cross_pairs(&[vec![0, 1], vec![2], vec![3]]);
        assert_eq!(pairs, [(0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]);
        assert_eq!(others_across(&[vec![0, 1], vec![2, 3]], 1), [2, 3]);
        assert!(others_across(&[vec![0], vec![2]], 1).is_empty());
    }

    #[test]
    fn moves_join_and_describe_themselves() {
        let first = Moved {
            rpc: None,
            p2p: Some((10, 11)),
        };
        let later = Moved {
            rpc: Some((20, 21)),
            p2p: Some((11, 12)),
        };
        let both = first.then(later);
        assert_eq!(
            both.p2p,
            Some((10, 12)),
            "from the first old to the last new"
        );
        assert_eq!(both.rpc, Some((20, 21)));
        assert_eq!(first.then(Moved::default()), first);
        assert_eq!(
            both.describe(3),
            "another program took a port of node 3: moved its HTTP port 20 to 21 and its P2P port 10 to 12"
        );
        assert_eq!(Moved::default().describe(1), "node 1 keeps its ports");
    }

    #[test]
    fn a_port_with_a_listener_is_taken_and_a_closed_one_is_not() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(taken(port));
        drop(listener);
        assert!(!taken(port));
    }

    #[test]
    fn fault_seeds_differ_per_node_and_follow_the_seed() {
        assert_ne!(fault_seed(1, 0, 0), fault_seed(1, 1, 0));
        assert_ne!(fault_seed(1, 0, 0), fault_seed(2, 0, 0));
        assert_ne!(
            fault_seed(1, 0, 0),
            fault_seed(1, 0, 1),
            "a restart gets its own"
        );
        assert_eq!(fault_seed(9, 3, 2), fault_seed(9, 3, 2));
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(8).expect("ports");
        let set: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(set.len(), 8);
    }

    #[test]
    fn miner_keys_differ_per_node_and_from_dev_accounts() {
        assert_ne!(miner_key(0).address(), miner_key(1).address());
        assert_ne!(miner_key(0).address(), Keypair::dev(0).address());
    }
}
