//! The runner's client of the node HTTP API (docs/API.md): the few calls it makes, with typed
//! answers and short timeouts.
//!
//! It owns: URLs, bearer tokens, JSON shapes of the answers it reads, and error messages
//! naming the URL, the status and the node's error code.
//! It must never: retry on its own or sleep; callers decide what a failure means.

use std::time::Duration;

use anyhow::{Context, bail};
use peerchain_ledger::Transaction;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Most items `POST /v1/transactions/batch` takes (docs/API.md).
pub const MAX_BATCH: usize = 10_000;
/// Largest answer body read (the txids of a 20,000-transaction block take about 1.3 MB, a
/// batch answer of 10,000 items about 1 MB); a longer one is an error naming the URL.
pub const MAX_BODY: u64 = 16 * 1024 * 1024;
/// Largest error body read.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// The parts of `GET /v1/status` the runner reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    /// Main-chain height.
    pub height: u64,
    /// Main-chain tip hash.
    pub tip_hash: String,
    /// Connected peers.
    pub peer_count: u64,
    /// libp2p peer id.
    pub peer_id: String,
    /// Continuous mining on.
    #[serde(default)]
    pub mining: bool,
    /// Whether it is catching up with a peer that has more work.
    #[serde(default)]
    pub syncing: bool,
    /// Faulted links (only their number is used).
    #[serde(default)]
    pub link_faults: Vec<serde_json::Value>,
}

/// The part of an item of `GET /v1/peers/banned` the runner reads.
#[derive(Debug, Clone, Deserialize)]
struct BannedPeer {
    peer_id: String,
}

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(4);

/// The parts of `GET /v1/blocks/{id}` the runner reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Block {
    /// Block hash.
    pub hash: String,
    /// Height.
    pub height: u64,
    /// Parent hash.
    pub prev_hash: String,
    /// Header timestamp, ms since the Unix epoch (the miner's clock).
    pub timestamp_ms: u64,
    /// Miner address.
    pub miner: String,
    /// Transactions (`null` when the body is not stored).
    pub tx_count: Option<u64>,
}

/// One answer of a batch submission.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BatchItem {
    /// Admitted or already known: `pending`, `queued` or `confirmed`.
    Known {
        /// Transaction id.
        txid: String,
        /// Its status.
        status: String,
    },
    /// Refused.
    Refused {
        /// `{code, message}`.
        error: ErrorBody,
    },
}

/// The node's error body.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    /// Stable code, e.g. `nonce_too_low`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// A blocking HTTP client for the node API.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::blocking::Client,
}

/// Outcome of an admin call that a caller may tolerate failing (e.g. blocking a peer the node
/// does not know).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAnswer {
    /// 2xx.
    Ok,
    /// 404 `not_found`, with the node's message.
    NotFound(String),
}

impl Api {
    /// A client whose every request gives up after `timeout` (loopback only: no proxy).
    pub fn new(timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            // Well inside the node's 10 s idle deadline, so a pooled connection is not reused
            // just as the node closes it.
            .pool_idle_timeout(POOL_IDLE)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .no_proxy()
            .build()
            .context("cannot build an HTTP client")?;
        Ok(Api { client })
    }

    /// `GET {rpc}{path}` as `T`.
    pub fn get<T: DeserializeOwned>(&self, rpc: &str, path: &str) -> anyhow::Result<T> {
        let url = format!("{rpc}{path}");
        let resp = self
            .client
            .get(&url)
            .send()
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            bail!("{url}: {status}: {}", error_text(resp));
        }
        json_body(resp, &url)
    }

    /// `GET /v1/status`.
    pub fn status(&self, rpc: &str) -> anyhow::Result<Status> {
        self.get(rpc, "/v1/status")
    }

    /// `GET /v1/peers/banned`: the peer ids a node refuses.
    pub fn banned(&self, rpc: &str) -> anyhow::Result<Vec<String>> {
        let list: Vec<BannedPeer> = self.get(rpc, "/v1/peers/banned")?;
        Ok(list.into_iter().map(|b| b.peer_id).collect())
    }

    /// `GET /v1/blocks/{hash}`.
    pub fn block(&self, rpc: &str, hash: &str) -> anyhow::Result<Block> {
        self.get(rpc, &format!("/v1/blocks/{hash}"))
    }

    /// `GET /v1/blocks/{hash}/txids`.
    pub fn block_txids(&self, rpc: &str, hash: &str) -> anyhow::Result<Vec<String>> {
        self.get(rpc, &format!("/v1/blocks/{hash}/txids"))
    }

    /// `next_nonce` of `GET /v1/accounts/{address}` (counts pending transactions).
    pub fn next_nonce(&self, rpc: &str, address: &str) -> anyhow::Result<u64> {
        #[derive(Deserialize)]
        struct Account {
            next_nonce: u64,
        }
        let a: Account = self.get(rpc, &format!("/v1/accounts/{address}"))?;
        Ok(a.next_nonce)
    }

    /// `POST /v1/transactions/batch` with at most [`MAX_BATCH`] transactions: one answer per
    /// transaction, in order.
    pub fn submit_batch(&self, rpc: &str, txs: &[Transaction]) -> anyhow::Result<Vec<BatchItem>> {
        anyhow::ensure!(
            txs.len() <= MAX_BATCH,
            "a batch of {} transactions is above the {MAX_BATCH} the API takes",
            txs.len()
        );
        let url = format!("{rpc}/v1/transactions/batch");
        let resp = self
            .client
            .post(&url)
            .json(txs)
            .send()
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            bail!("{url}: {status}: {}", error_text(resp));
        }
        let items: Vec<BatchItem> = json_body(resp, &url)?;
        anyhow::ensure!(
            items.len() == txs.len(),
            "{url} answered {} items for {} transactions",
            items.len(),
            txs.len()
        );
        Ok(items)
    }

    /// `POST {rpc}/v1/admin/{path}` with the bearer token and an optional JSON body.
    pub fn admin(
        &self,
        rpc: &str,
        token: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<AdminAnswer> {
        let url = format!("{rpc}/v1/admin/{path}");
        let send = || {
            let mut req = self.client.post(&url).bearer_auth(token);
            if let Some(body) = body {
                req = req.json(body);
            }
            req.send()
        };
        // Every admin call the runner makes is idempotent: one that failed in transport (a
        // connection reset) is sent once more.
        let resp = match send() {
            Ok(resp) => resp,
            Err(e) if !e.is_timeout() => {
                std::thread::sleep(Duration::from_millis(200));
                send().with_context(|| format!("cannot reach {url} (twice; first: {e})"))?
            }
            Err(e) => return Err(e).with_context(|| format!("cannot reach {url}")),
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(AdminAnswer::Ok);
        }
        let text = error_text(resp);
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(AdminAnswer::NotFound(text));
        }
        bail!("{url}: {status}: {text}")
    }
}

/// `code: message` of an error answer, or its first 200 characters when it is not the
/// node's error body.
fn error_text(resp: reqwest::blocking::Response) -> String {
    let text = read_body(resp, MAX_ERROR_BODY)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| e.to_string());
    #[derive(Deserialize)]
    struct Wrapper {
        error: ErrorBody,
    }
    match serde_json::from_str::<Wrapper>(&text) {
        Ok(w) => format!("{}: {}", w.error.code, w.error.message),
        Err(_) => text.chars().take(200).collect(),
    }
}

/// The body of `resp` (from `url`) as `T`, read up to [`MAX_BODY`].
fn json_body<T: DeserializeOwned>(
    resp: reqwest::blocking::Response,
    url: &str,
) -> anyhow::Result<T> {
    let body = read_body(resp, MAX_BODY).with_context(|| format!("{url} answered"))?;
    serde_json::from_slice(&body).with_context(|| format!("{url} answered an unexpected body"))
}

/// At most `limit` bytes of `body`; more is an error.
fn read_body(body: impl std::io::Read, limit: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    body.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .context("a body that could not be read")?;
    anyhow::ensure!(
        out.len() as u64 <= limit,
        "a body longer than {limit} bytes (not read)"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_read_up_to_their_bound() {
        assert_eq!(read_body(&b"abc"[..], 3).expect("fits"), b"abc");
        let long = read_body(&b"abcd"[..], 3).expect_err("too long");
        assert!(long.to_string().contains("longer than 3 bytes"), "{long}");
    }

    #[test]
    fn batch_items_read_both_shapes() {
        let items: Vec<BatchItem> = serde_json::from_str(
            r#"[{"txid":"ab","status":"pending"},
                {"error":{"code":"nonce_too_low","message":"nonce 1 is below 2"}}]"#,
        )
        .expect("valid");
        assert!(matches!(&items[0], BatchItem::Known { status, .. } if status == "pending"));
        assert!(matches!(&items[1], BatchItem::Refused { error } if error.code == "nonce_too_low"));
    }
}
