//! `peerchain load`: signs real transfers between dev accounts (with the same signing code as
//! `peerchain tx`) and submits them over HTTP at a steady rate, then counts confirmations.

use std::time::{Duration, Instant};

use anyhow::Context;
use peerchain_ledger::crypto::Keypair;
use serde_json::Value;

use crate::cli::LoadArgs;
use crate::commands::{client, get_json};

/// One sending account: its key, the node it sends through and its next nonce.
struct Sender {
    key: Keypair,
    rpc: String,
    nonce: u64,
}

/// Counts of a load run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Transactions sent.
    pub sent: u64,
    /// Accepted by a node (202 or 200).
    pub accepted: u64,
    /// Confirmed on the chain by the end of the wait.
    pub confirmed: u64,
}

/// Runs the load and prints `sent N accepted M confirmed K`.
pub fn run(args: &LoadArgs) -> anyhow::Result<()> {
    let report = generate(args)?;
    println!(
        "sent {} accepted {} confirmed {}",
        report.sent, report.accepted, report.confirmed
    );
    Ok(())
}

fn generate(args: &LoadArgs) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(!args.rpc.is_empty(), "give at least one --rpc");
    anyhow::ensure!(args.accounts >= 2, "--accounts must be at least 2");
    let http = client()?;
    let rpcs: Vec<String> = args
        .rpc
        .iter()
        .map(|r| r.trim_end_matches('/').to_owned())
        .collect();
    let status = get_json(&http, &format!("{}/v1/status", rpcs[0]))?;
    let chain_id = status["chain_id"]
        .as_u64()
        .context("status has no chain_id")?;
    let mut senders = Vec::new();
    for i in 0..args.accounts {
        let key = Keypair::dev(i);
        let rpc = rpcs[i as usize % rpcs.len()].clone();
        let account = get_json(&http, &format!("{rpc}/v1/accounts/{}", key.address()))?;
        let nonce = account["next_nonce"]
            .as_u64()
            .context("account has no next_nonce")?;
        senders.push(Sender { key, rpc, nonce });
    }
    let mut report = LoadReport::default();
    let mut accepted: Vec<(String, String)> = Vec::new();
    let total = u64::from(args.tps) * u64::from(args.seconds);
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.tps.max(1)));
    for n in 0..total {
        let due = started + interval.mul_f64(n as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let i = (n % senders.len() as u64) as usize;
        let to = senders[(i + 1) % senders.len()].key.address();
        let s = &mut senders[i];
        let tx = s.key.sign_transfer(chain_id, to, 1 + n % 1000, 1, s.nonce);
        report.sent += 1;
        let resp = http
            .post(format!("{}/v1/transactions", s.rpc))
            .json(&tx)
            .send();
        match resp {
            Ok(r) if r.status().is_success() => {
                s.nonce += 1;
                report.accepted += 1;
                accepted.push((s.rpc.clone(), tx.txid().to_hex()));
            }
            Ok(r) => {
                let body: Value = r.json().unwrap_or(Value::Null);
                eprintln!(
                    "refused: {}",
                    body["error"]["message"].as_str().unwrap_or("?")
                );
                // Resynchronise this sender's nonce with the node.
                if let Ok(a) =
                    get_json(&http, &format!("{}/v1/accounts/{}", s.rpc, s.key.address()))
                {
                    s.nonce = a["next_nonce"].as_u64().unwrap_or(s.nonce);
                }
            }
            Err(e) => eprintln!("send failed: {e}"),
        }
    }
    report.confirmed =
        wait_for_confirmations(&http, &accepted, Duration::from_secs(args.confirm_timeout));
    Ok(report)
}

/// Polls until every accepted transaction is confirmed or the timeout passes; returns the
/// number confirmed.
fn wait_for_confirmations(
    http: &reqwest::blocking::Client,
    txs: &[(String, String)],
    timeout: Duration,
) -> u64 {
    let started = Instant::now();
    let mut pending: Vec<&(String, String)> = txs.iter().collect();
    loop {
        pending.retain(|(rpc, txid)| {
            !matches!(get_json(http, &format!("{rpc}/v1/transactions/{txid}")),
                Ok(body) if body["status"] == "confirmed")
        });
        if pending.is_empty() || started.elapsed() >= timeout {
            return (txs.len() - pending.len()) as u64;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
