//! The subcommands: running a node (with signals and the dev banner) and the client tools.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peerchain_ledger::{Address, Transaction};
use serde_json::Value;

use crate::cli::{
    AddressArgs, AdminArgs, AdminCall, GenesisCommand, KeygenArgs, LogFormat, NodeArgs, OnOff,
    StatusArgs, StatusFormat, TransferArgs, TxCommand,
};
use crate::config::NodeConfig;

/// Longest an orderly shutdown may take after SIGTERM or SIGINT before the process exits
/// anyway (non-zero): well inside Kubernetes' default grace period of 30 s, after which it
/// would be SIGKILLed. A normal shutdown takes well under a second; the store reopens
/// consistent after either.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

/// `peerchain node`: runs until SIGINT or SIGTERM (a second signal exits at once; a shutdown
/// longer than [`SHUTDOWN_DEADLINE`] is cut short), or until a part of the node fails: then it
/// logs why and exits with an error.
pub fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let config = NodeConfig::resolve(args)?;
    init_logging(config.log_format);
    if let Some(mode) = &config.adversary {
        eprintln!(
            "\n!!! ADVERSARY MODE {mode}: this node attacks its peers on purpose. Testing only. !!!\n"
        );
    }
    if !crate::heap::keep_freed_memory() {
        tracing::debug!("the allocator keeps its default thresholds (not 64-bit glibc)");
    }
    crate::heap::spawn_trimmer(crate::heap::TRIM_INTERVAL);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async move {
        let dev = config.dev;
        let genesis = config.genesis.clone();
        let mut node = crate::node::start(config).await?;
        if dev.is_some() {
            print_dev_banner(&mut node, &genesis).await;
        }
        tokio::select! {
            () = wait_for_signal() => {}
            exit = node.failed() => {
                tracing::error!(part = exit.part, reason = %exit.reason, "node failed; stopping");
                tokio::time::timeout(Duration::from_secs(10), node.shutdown()).await.ok();
                bail!("the node failed: {exit}");
            }
        }
        tracing::info!("shutting down (send the signal again to exit at once)");
        tokio::spawn(async {
            wait_for_signal().await;
            eprintln!("second signal: exiting now");
            std::process::exit(130);
        });
        if tokio::time::timeout(SHUTDOWN_DEADLINE, node.shutdown())
            .await
            .is_err()
        {
            tracing::error!(deadline = ?SHUTDOWN_DEADLINE, "shutdown did not complete in time; exiting anyway");
            bail!(
                "the node did not stop within {} s of the signal; exiting anyway (its store \
                 reopens consistent, as after a crash)",
                SHUTDOWN_DEADLINE.as_secs()
            );
        }
        Ok(())
    });
    // Threads still stuck in a cut-short shutdown must not hold the process.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,libp2p=warn,libp2p_kad=error,sled=warn")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        // For container engines and log collectors, which read stdout: one JSON object per
        // line, no colours.
        LogFormat::Json => builder
            .with_ansi(false)
            .with_writer(std::io::stdout)
            .json()
            .try_init(),
        // For people at a terminal: stderr, coloured when it is a terminal.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init(),
    };
}

async fn print_dev_banner(node: &mut crate::RunningNode, genesis: &peerchain_ledger::Genesis) {
    let p2p = node
        .p2p_addr(Duration::from_secs(2))
        .await
        .unwrap_or_default();
    let mut out = String::new();
    out.push_str("\npeerchain dev node\n==================\n\n");
    out.push_str(&crate::dev::banner_accounts(genesis));
    out.push_str(&format!(
        "\nChain id        {}\nGenesis hash    {}\nHTTP API        http://{}/v1/status\nExplorer        http://{}/\nP2P             {}\nAdmin token     {}\nData directory  {}\n",
        genesis.chain_id,
        node.genesis_hash,
        node.rpc_addr,
        node.rpc_addr,
        p2p,
        node.admin_token,
        node.data_dir.display()
    ));
    // A closed stdout (e.g. a reader that stopped after the banner) must not stop the node.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{out}").and_then(|()| stdout.flush());
}

/// `peerchain keygen`.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    let key = crate::keys::generate_key_file(&args.out)?;
    println!("{}", key.address());
    Ok(())
}

/// `peerchain address`.
pub fn address(args: &AddressArgs) -> anyhow::Result<()> {
    println!("{}", crate::keys::read_key_file(&args.key)?.address());
    Ok(())
}

/// `peerchain genesis ...`.
pub fn genesis(cmd: GenesisCommand) -> anyhow::Result<()> {
    let GenesisCommand::New(args) = cmd;
    crate::genesis_new::run(&args)
}

pub(crate) fn client() -> anyhow::Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build an HTTP client")
}

pub(crate) fn get_json(client: &reqwest::blocking::Client, url: &str) -> anyhow::Result<Value> {
    let resp = client
        .get(url)
        .send()
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .with_context(|| format!("{url} did not answer JSON"))?;
    if !status.is_success() {
        bail!("{url}: {status}: {}", error_message(&body));
    }
    Ok(body)
}

fn error_message(body: &Value) -> String {
    let code = body["error"]["code"].as_str().unwrap_or("error");
    let message = body["error"]["message"].as_str().unwrap_or("");
    format!("{code}: {message}")
}

/// `peerchain status`.
pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let url = format!("{}/v1/status", args.rpc.trim_end_matches('/'));
    let body = get_json(&client()?, &url)?;
    match args.format {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&body)?),
        StatusFormat::Line => println!(
            "height {} tip {} peers {} mempool {} peer_id {}",
            body["height"],
            body["tip_hash"].as_str().unwrap_or("?"),
            body["peer_count"],
            body["mempool_size"],
            body["peer_id"].as_str().unwrap_or("?"),
        ),
    }
    Ok(())
}

/// `peerchain admin`.
pub fn admin(args: &AdminArgs) -> anyhow::Result<()> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read token file {}", path.display()))?
            .trim()
            .to_owned(),
        (None, None) => bail!("give --token or --token-file"),
    };
    let rpc = args.rpc.trim_end_matches('/');
    let (path, body) = match &args.call {
        AdminCall::Mine { blocks } => ("mine".to_owned(), serde_json::json!({ "blocks": blocks })),
        AdminCall::Mining { state, hashrate } => (
            "mining".to_owned(),
            serde_json::json!({ "enabled": *state == OnOff::On, "hashrate": hashrate }),
        ),
        AdminCall::Link {
            peer_id,
            loss,
            delay_ms,
            bandwidth_kbps,
        } => (
            format!("peers/{peer_id}/link"),
            serde_json::json!({
                "loss": loss,
                "delay_ms": delay_ms,
                "bandwidth_kbps": bandwidth_kbps,
            }),
        ),
        AdminCall::Dial { addr } => ("peers".to_owned(), serde_json::json!({ "addr": addr })),
        AdminCall::BlockPeer { peer_id } => (format!("peers/{peer_id}/block"), Value::Null),
        AdminCall::UnblockPeer { peer_id } => (format!("peers/{peer_id}/unblock"), Value::Null),
        AdminCall::Invalidate { hash } => {
            ("invalidate".to_owned(), serde_json::json!({ "hash": hash }))
        }
        AdminCall::Reconsider { hash } => {
            ("reconsider".to_owned(), serde_json::json!({ "hash": hash }))
        }
    };
    let url = format!("{rpc}/v1/admin/{path}");
    let mut req = client()?.post(&url).bearer_auth(token);
    if !body.is_null() {
        req = req.json(&body);
    }
    let resp = req.send().with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    if !status.is_success() {
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        bail!("{url}: {status}: {}", error_message(&body));
    }
    println!("{text}");
    Ok(())
}

/// `peerchain tx ...`.
pub fn tx(cmd: TxCommand) -> anyhow::Result<()> {
    match cmd {
        TxCommand::Sign(a) => {
            let rpc = a.rpc.trim_end_matches('/').to_owned();
            let tx = build_transfer(&a.transfer, a.chain_id, &rpc)?;
            println!("{}", serde_json::to_string_pretty(&tx)?);
            Ok(())
        }
        TxCommand::Send(a) => {
            let rpc = a.rpc.trim_end_matches('/').to_owned();
            let tx = build_transfer(&a.transfer, None, &rpc)?;
            let client = client()?;
            let url = format!("{rpc}/v1/transactions");
            let resp = client
                .post(&url)
                .json(&tx)
                .send()
                .with_context(|| format!("cannot reach {url}"))?;
            let status = resp.status();
            let body: Value = resp
                .json()
                .with_context(|| format!("{url} did not answer JSON"))?;
            if !status.is_success() {
                bail!("transaction refused ({status}): {}", error_message(&body));
            }
            let txid = body["txid"].as_str().unwrap_or_default().to_owned();
            println!("{txid} {}", body["status"].as_str().unwrap_or("pending"));
            if a.wait {
                wait_confirmed(&client, &rpc, &txid, Duration::from_secs(a.timeout))?;
            }
            Ok(())
        }
    }
}

fn build_transfer(
    t: &TransferArgs,
    chain_id: Option<u64>,
    rpc: &str,
) -> anyhow::Result<Transaction> {
    let key = crate::keys::read_key_file(&t.key)?;
    let to: Address =
        t.to.parse()
            .map_err(|e| anyhow::anyhow!("--to {:?}: {e}", t.to))?;
    let client = client()?;
    let chain_id = match chain_id {
        Some(c) => c,
        None => get_json(&client, &format!("{rpc}/v1/status"))?["chain_id"]
            .as_u64()
            .context("status has no chain_id")?,
    };
    let nonce = match t.nonce {
        Some(n) => n,
        None => get_json(&client, &format!("{rpc}/v1/accounts/{}", key.address()))?["next_nonce"]
            .as_u64()
            .context("account has no next_nonce")?,
    };
    Ok(key.sign_transfer(chain_id, to, t.amount, t.fee, nonce))
}

fn wait_confirmed(
    client: &reqwest::blocking::Client,
    rpc: &str,
    txid: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let url = format!("{rpc}/v1/transactions/{txid}");
    loop {
        if let Ok(body) = get_json(client, &url)
            && body["status"] == "confirmed"
        {
            println!(
                "confirmed in block {} at height {}",
                body["block_hash"].as_str().unwrap_or("?"),
                body["height"]
            );
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!(
                "transaction {txid} not confirmed after {} s",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
