//! Test harness: in-process nodes on 127.0.0.1, each the network service plus a consensus
//! `Chain` on its own store and a task that imports network events into the chain the way the
//! node does (verdicts reported back, orphans trigger ancestor requests, invalid sync blocks
//! penalised, new tips announced).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peerchain_consensus::{Chain, ChainConfig, ChainEvent, Verdict, build_template, solve};
use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::mempool::{Admitted, MempoolError};
use peerchain_ledger::{
    Address, Block, Genesis, Hash, Store, StoreConfig, Target, Transaction, TxError, U256,
};
use peerchain_network::{
    Acceptance, BlockOrigin, LocalTip, NetworkConfig, NetworkEvent, NetworkHandle,
};
use tokio::task::JoinHandle;

/// Dev accounts funded in test genesis blocks.
pub const ACCOUNTS: u32 = 6;
/// Block limit of test networks (small, so size limits are easy to exceed).
pub const MAX_BLOCK_TXS: u64 = 100;
/// Gossipsub heartbeat of test nodes.
pub const HEARTBEAT_MS: u64 = 100;

/// Installs a tracing subscriber once when `RUST_LOG` is set.
pub fn init_tracing() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("RUST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .with_ansi(false)
                .try_init();
        }
    });
}

/// A dev network whose proof of work takes about two hashes and whose difficulty stays put
/// when blocks are 2 s apart. `chain_id` tells networks apart.
pub fn test_genesis(chain_id: u64) -> Genesis {
    let mut g = Genesis::dev(ACCOUNTS, 1_000_000_000, 2000);
    g.chain_id = chain_id;
    g.timestamp_ms = 1_600_000_000_000;
    g.initial_target = Target(U256::MAX >> 1);
    g.pow_limit = Target(U256::MAX >> 1);
    g.max_block_txs = MAX_BLOCK_TXS;
    g
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a node's import task saw.
#[derive(Debug, Default)]
pub struct Log {
    /// Every block event: hash, delivering peer, whether it came by gossip, the verdict.
    pub blocks: Vec<(Hash, String, bool, Verdict)>,
    /// Every transaction event: txid, propagating peer, the acceptance reported.
    pub txs: Vec<(Hash, String, Acceptance)>,
    pub connected: Vec<String>,
    pub disconnected: Vec<String>,
    pub syncing: Vec<bool>,
    pub listening: Vec<String>,
}

/// One in-process node.
pub struct TestNode {
    pub name: String,
    pub net: NetworkHandle,
    pub chain: Arc<Mutex<Chain>>,
    pub log: Arc<Mutex<Log>>,
    pub genesis: Genesis,
    pub peer_id: String,
    /// Listen address with `/p2p/<peer id>`.
    pub addr: String,
    pub data_dir: PathBuf,
    /// Height of the store when the node started.
    pub start_height: u64,
    task: JoinHandle<()>,
    _tempdir: Option<tempfile::TempDir>,
}

/// How to start a node.
pub struct NodeOpts {
    pub name: String,
    pub genesis: Genesis,
    pub bootnodes: Vec<String>,
    /// A persistent data directory (key and store); a temporary one when `None`.
    pub data_dir: Option<PathBuf>,
    /// Overrides the genesis `max_block_txs` in the network config (adversarial tests).
    pub max_block_txs: Option<usize>,
    /// Run the import task (false for an adversarial node that never validates).
    pub validate: bool,
    /// A prepared store (e.g. holding a forged chain) instead of a fresh one.
    pub store: Option<Store>,
}

impl NodeOpts {
    pub fn new(name: &str, genesis: &Genesis) -> Self {
        NodeOpts {
            name: name.to_owned(),
            genesis: genesis.clone(),
            bootnodes: Vec::new(),
            data_dir: None,
            max_block_txs: None,
            validate: true,
            store: None,
        }
    }

    pub fn bootnode(mut self, node: &TestNode) -> Self {
        self.bootnodes.push(node.addr.clone());
        self
    }
}

fn open_store(genesis: &Genesis, dir: Option<&Path>) -> Store {
    let Some(dir) = dir else {
        return Store::temporary(genesis).expect("temporary store");
    };
    let config = StoreConfig {
        path: dir.join("db"),
        cache_mb: 16,
        sync_every_block: false,
    };
    // A store closed a moment ago may still be held by sled's flusher thread.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open(&config, genesis) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                eprintln!("store not reopened yet: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("cannot open the store: {e}"),
        }
    }
}

pub fn local_tip(chain: &Chain) -> LocalTip {
    LocalTip {
        hash: chain.tip(),
        height: chain.tip_header().height,
        total_work: chain.tip_work(),
    }
}

/// Whether a mempool error is the sender's fault (as the node decides).
fn is_peer_fault(e: &MempoolError) -> bool {
    matches!(
        e,
        MempoolError::Invalid(TxError::BadSignature { .. } | TxError::WrongChain { .. })
    )
}

/// The import task: the node's handling of network events, in miniature.
async fn import_task(
    net: NetworkHandle,
    mut events: tokio::sync::mpsc::Receiver<NetworkEvent>,
    chain: Arc<Mutex<Chain>>,
    log: Arc<Mutex<Log>>,
    validate: bool,
) {
    while let Some(event) = events.recv().await {
        match event {
            NetworkEvent::Block {
                block,
                peer,
                origin,
            } => {
                let hash = block.hash();
                let gossip = matches!(origin, BlockOrigin::Gossip(_));
                if !validate {
                    lock(&log)
                        .blocks
                        .push((hash, peer, gossip, Verdict::Duplicate));
                    continue;
                }
                let (reports, tip) = {
                    let mut c = lock(&chain);
                    let reports = c
                        .import(block, Some(peer.clone()), now_ms())
                        .expect("store works");
                    let tip_changed = c.take_events().iter().any(|e| {
                        matches!(
                            e,
                            ChainEvent::BlockConnected { .. } | ChainEvent::Reorg { .. }
                        )
                    });
                    (reports, tip_changed.then(|| local_tip(&c)))
                };
                for r in &reports {
                    if r.hash == hash {
                        lock(&log)
                            .blocks
                            .push((hash, peer.clone(), gossip, r.verdict.clone()));
                        let acceptance = match &r.verdict {
                            Verdict::Accepted { .. } => Acceptance::Accept,
                            Verdict::Invalid(_) => Acceptance::Reject,
                            _ => Acceptance::Ignore,
                        };
                        match &origin {
                            BlockOrigin::Gossip(msg) => net.report(msg.clone(), acceptance).await,
                            BlockOrigin::Sync => {
                                if let Verdict::Invalid(e) = &r.verdict {
                                    net.penalize(&peer, &e.to_string()).await;
                                }
                            }
                        }
                        if let Verdict::Orphan { missing } = &r.verdict {
                            net.request_ancestors(&peer, *missing).await;
                        }
                    } else if let (Verdict::Invalid(e), Some(src)) = (&r.verdict, &r.source) {
                        net.penalize(src, &e.to_string()).await;
                    }
                }
                if let Some(tip) = tip {
                    net.set_local_tip(tip).await;
                }
            }
            NetworkEvent::Tx { tx, peer, msg } => {
                let txid = tx.txid();
                let acceptance = if validate {
                    match lock(&chain).submit(tx, now_ms()) {
                        Ok(Admitted::New { .. }) => Acceptance::Accept,
                        Ok(Admitted::AlreadyPending(_)) => Acceptance::Ignore,
                        Err(e) if is_peer_fault(&e) => Acceptance::Reject,
                        Err(_) => Acceptance::Ignore,
                    }
                } else {
                    Acceptance::Ignore
                };
                lock(&log).txs.push((txid, peer, acceptance));
                if validate {
                    net.report(msg, acceptance).await;
                }
            }
            NetworkEvent::PeerConnected { peer } => lock(&log).connected.push(peer),
            NetworkEvent::PeerDisconnected { peer } => lock(&log).disconnected.push(peer),
            NetworkEvent::Syncing(s) => lock(&log).syncing.push(s),
            NetworkEvent::Listening { addr } => lock(&log).listening.push(addr),
        }
    }
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().expect("mutex not poisoned")
}

impl TestNode {
    /// Starts a node listening on 127.0.0.1 with a free port; returns once it listens.
    pub async fn start(opts: NodeOpts) -> TestNode {
        init_tracing();
        let (tempdir, data_dir) = match &opts.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::tempdir().expect("tempdir");
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let store = match opts.store.clone() {
            Some(s) => s,
            None => open_store(&opts.genesis, opts.data_dir.as_deref()),
        };
        let chain = Chain::open(store.clone(), opts.genesis.clone(), ChainConfig::default())
            .expect("chain");
        let tip = local_tip(&chain);
        let mut config = NetworkConfig::new(
            &data_dir,
            opts.genesis.hash(),
            opts.max_block_txs
                .unwrap_or(opts.genesis.max_block_txs as usize),
        );
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".to_owned()];
        config.bootnodes = opts.bootnodes.clone();
        config.heartbeat_ms = HEARTBEAT_MS;
        config.max_peers = 20;
        let (net, events) = peerchain_network::start(config, store)
            .await
            .expect("network starts");
        net.set_local_tip(tip).await;
        let chain = Arc::new(Mutex::new(chain));
        let log = Arc::new(Mutex::new(Log::default()));
        let task = tokio::spawn(import_task(
            net.clone(),
            events,
            chain.clone(),
            log.clone(),
            opts.validate,
        ));
        let peer_id = net.local_peer_id();
        let addr = {
            let log = log.clone();
            wait_until(&format!("{} listening", opts.name), 10, move || {
                lock(&log).listening.first().cloned()
            })
            .await
        };
        TestNode {
            name: opts.name,
            net,
            chain,
            log,
            genesis: opts.genesis,
            peer_id,
            addr,
            data_dir,
            start_height: tip.height,
            task,
            _tempdir: tempdir,
        }
    }

    /// Stops the network and the import task and releases the store.
    pub async fn stop(self) {
        self.net.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        drop(self.chain);
    }

    pub fn tip(&self) -> (Hash, u64) {
        let c = lock(&self.chain);
        (c.tip(), c.tip_header().height)
    }

    pub fn height(&self) -> u64 {
        self.tip().1
    }

    pub fn has_tx(&self, txid: &Hash) -> bool {
        lock(&self.chain).mempool().contains(txid)
    }

    /// Mines one block on the tip (timestamps 2 s apart, so the difficulty stays put), imports
    /// it and, when `publish`, gossips it.
    pub async fn mine(&self, publish: bool) -> Block {
        let (block, tip) =
            {
                let mut c = lock(&self.chain);
                let parent_ts = c.tip_header().timestamp_ms;
                let template =
                    build_template(&c, Address([0x11; 20]), parent_ts + 2000).expect("template");
                let block = solve(template).expect("easy target");
                let reports = c
                    .import(block.clone(), None, now_ms())
                    .expect("store works");
                assert!(
                    reports.iter().any(|r| r.hash == block.hash()
                        && r.verdict == Verdict::Accepted { on_main: true }),
                    "mined block accepted: {reports:?}"
                );
                c.take_events();
                (block, local_tip(&c))
            };
        self.net.set_local_tip(tip).await;
        if publish {
            self.net.publish_block(&block).await;
        }
        block
    }

    /// Mines `n` blocks without gossiping them (peers must sync).
    pub async fn mine_quietly(&self, n: usize) {
        for _ in 0..n {
            self.mine(false).await;
        }
    }

    /// Imports blocks built elsewhere (a shared prefix).
    pub async fn import_all(&self, blocks: &[Block]) {
        let tip = {
            let mut c = lock(&self.chain);
            for b in blocks {
                c.import(b.clone(), None, now_ms()).expect("store works");
            }
            c.take_events();
            local_tip(&c)
        };
        self.net.set_local_tip(tip).await;
    }

    /// Submits a transaction to the mempool and gossips it.
    pub async fn submit(&self, tx: Transaction) -> Hash {
        let txid = tx.txid();
        let r = lock(&self.chain).submit(tx.clone(), now_ms());
        assert!(matches!(r, Ok(Admitted::New { .. })), "submitted: {r:?}");
        self.net.publish_tx(&tx).await;
        txid
    }

    pub async fn peer_ids(&self) -> Vec<String> {
        self.net
            .peers()
            .await
            .into_iter()
            .map(|p| p.peer_id)
            .collect()
    }
}

/// A valid transfer from dev account `from` with `nonce`.
pub fn transfer(g: &Genesis, from: u32, to: u32, amount: u64, nonce: u64) -> Transaction {
    Keypair::dev(from).sign_transfer(g.chain_id, Keypair::dev(to).address(), amount, 1, nonce)
}

/// Polls `f` every 50 ms until it returns `Some`, panicking after `secs` seconds.
pub async fn wait_until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `cond` holds, panicking after `secs` seconds.
pub async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    wait_until(what, secs, || cond().then_some(())).await;
}

/// Waits until every node has at least `n` handshaked peers.
pub async fn wait_for_peers(nodes: &[&TestNode], n: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut ok = true;
        for node in nodes {
            if node.net.peers().await.len() < n {
                ok = false;
                break;
            }
        }
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} peers each"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every node's tip is `hash`.
pub async fn wait_for_tip(nodes: &[&TestNode], hash: Hash, secs: u64) {
    wait_for(&format!("every tip to be {hash}"), secs, || {
        nodes.iter().all(|n| n.tip().0 == hash)
    })
    .await;
}

/// A temporary store whose main chain has `n` blocks that are fine for the ledger (valid
/// transfers, proof of work against their own target) but break the difficulty rule: their
/// target is 4x harder than required, so the chain claims more work than an honest one.
pub fn forged_store(g: &Genesis, n: usize) -> Store {
    use peerchain_consensus::pow::mine_range;
    use peerchain_ledger::testkit::ChainBuilder;
    use peerchain_ledger::{BlockRecord, BlockStatus};
    let store = Store::temporary(g).expect("store");
    let mut builder = ChainBuilder::new(g.clone(), ACCOUNTS);
    let mut work = g.header().target.work();
    for i in 0..n {
        let mut block = builder.push_transfers(1, i as u64);
        block.header.target = Target(U256::MAX >> 3);
        block.header.nonce = mine_range(&block.header, 0, u64::MAX).expect("solvable");
        builder.tip = block.header.clone();
        work += block.header.target.work();
        let delta = peerchain_ledger::state::apply_block(&store, g, &block).expect("ledger-valid");
        let record = BlockRecord {
            header: block.header.clone(),
            total_work: work,
            status: BlockStatus::Valid,
            seq: store.next_seq().expect("seq"),
        };
        store.put_block(&block, &record).expect("put");
        store.connect_block(&block, &delta).expect("connect");
    }
    store
}
