//! The sync protocol's messages and their byte encoding, and the payloads of the block topic
//! (compact blocks) and the transaction topic (see docs/NETWORK.md).
//!
//! One request or response per stream: the writer sends the message and closes its side, the
//! reader reads to the end with a size limit. A message is a tag byte followed by fixed-width
//! little-endian fields; hashes are 32 raw bytes, total work 32 big-endian bytes, headers and
//! blocks use the SPEC encodings.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use peerchain_ledger::merkle::merkle_root;
use peerchain_ledger::types::{HEADER_LEN, TX_ENCODED_LEN};
use peerchain_ledger::{Block, BlockHeader, Hash, Transaction, U256};

use crate::config::{
    MAX_BLOCKS_PER_REQUEST, MAX_HEADERS, MAX_LOCATOR, MAX_TX_BATCH, MAX_TXS_PER_REQUEST,
    SYNC_REQUEST_LIMIT,
};
use crate::types::CompactBlock;

/// The status handshake: which network, and the sender's best chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    /// Genesis hash of the sender's network.
    pub genesis: Hash,
    /// Sender's tip.
    pub tip: Hash,
    /// Sender's tip height.
    pub height: u64,
    /// Sender's cumulative work.
    pub total_work: U256,
}

/// A sync request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SyncRequest {
    /// The requester's status; answered with the responder's.
    Status(Status),
    /// Main-chain headers after the first locator hash on the responder's main chain.
    GetHeaders {
        /// Newest first, ending with genesis; at most [`MAX_LOCATOR`].
        locator: Vec<Hash>,
        /// Most headers wanted (the responder caps it at [`MAX_HEADERS`]).
        max: u32,
    },
    /// Blocks by hash, answered in order as a prefix of the list.
    GetBlocks(Vec<Hash>),
    /// Some transactions of a stored block, by position (BIP 152's `getblocktxn`): those a
    /// compact block's receiver lacks.
    GetBlockTxs {
        /// The block.
        block: Hash,
        /// Positions in the block, strictly increasing; 1 to [`MAX_TXS_PER_REQUEST`].
        indexes: Vec<u32>,
    },
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Over the per-peer request rate.
    RateLimited = 0,
    /// Too many requests being served.
    Busy = 1,
    /// The request does not parse or breaks a limit.
    BadRequest = 2,
    /// The store failed.
    Internal = 3,
}

impl Refusal {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Refusal::RateLimited,
            1 => Refusal::Busy,
            2 => Refusal::BadRequest,
            3 => Refusal::Internal,
            _ => return None,
        })
    }
}

/// A sync response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SyncResponse {
    /// The responder's status.
    Status(Status),
    /// Linked main-chain headers, oldest first (empty: nothing after the locator).
    Headers(Vec<BlockHeader>),
    /// Blocks as read: decoded, each with a matching Merkle root.
    Blocks(Vec<Block>),
    /// Blocks as written: stored encodings sent as they are (same wire form as `Blocks`).
    BlocksRaw(Vec<Vec<u8>>),
    /// The transactions a `GetBlockTxs` asked for, in its order; none when the block is not
    /// stored.
    BlockTxs(Vec<Transaction>),
    /// The request was refused.
    Refused(Refusal),
    /// Only produced when reading: the response framed correctly but its content is invalid.
    Malformed(String),
}

const TAG_STATUS: u8 = 0;
const TAG_GET_HEADERS: u8 = 1;
const TAG_GET_BLOCKS: u8 = 2;
const TAG_GET_BLOCK_TXS: u8 = 3;
const TAG_HEADERS: u8 = 1;
pub(crate) const TAG_BLOCKS: u8 = 2;
const TAG_REFUSED: u8 = 3;
const TAG_BLOCK_TXS: u8 = 4;

/// Bounds-checked reader.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err(format!(
                "truncated: needed {n} bytes, {} left",
                self.bytes.len()
            ));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn hash(&mut self) -> Result<Hash, String> {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.take(32)?);
        Ok(Hash(b))
    }

    fn count(&mut self, max: usize, what: &str) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(format!("{n} {what}, at most {max} allowed"));
        }
        Ok(n)
    }

    fn finish(&self) -> Result<(), String> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(format!("{} trailing bytes", self.bytes.len()))
        }
    }
}

fn put_status(out: &mut Vec<u8>, s: &Status) {
    out.extend_from_slice(&s.genesis.0);
    out.extend_from_slice(&s.tip.0);
    out.extend_from_slice(&s.height.to_le_bytes());
    out.extend_from_slice(&s.total_work.to_big_endian());
}

fn read_status(r: &mut Reader<'_>) -> Result<Status, String> {
    let genesis = r.hash()?;
    let tip = r.hash()?;
    let height = r.u64()?;
    let total_work = U256::from_big_endian(r.take(32)?);
    Ok(Status {
        genesis,
        tip,
        height,
        total_work,
    })
}

fn put_hashes(out: &mut Vec<u8>, hashes: &[Hash]) {
    out.extend_from_slice(&(hashes.len() as u32).to_le_bytes());
    for h in hashes {
        out.extend_from_slice(&h.0);
    }
}

fn read_hashes(r: &mut Reader<'_>, max: usize) -> Result<Vec<Hash>, String> {
    let n = r.count(max, "hashes")?;
    (0..n).map(|_| r.hash()).collect()
}

/// Encodes a request.
pub(crate) fn encode_request(req: &SyncRequest) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    match req {
        SyncRequest::Status(s) => {
            out.push(TAG_STATUS);
            put_status(&mut out, s);
        }
        SyncRequest::GetHeaders { locator, max } => {
            out.push(TAG_GET_HEADERS);
            out.extend_from_slice(&max.to_le_bytes());
            put_hashes(&mut out, locator);
        }
        SyncRequest::GetBlocks(hashes) => {
            out.push(TAG_GET_BLOCKS);
            put_hashes(&mut out, hashes);
        }
        SyncRequest::GetBlockTxs { block, indexes } => {
            out.push(TAG_GET_BLOCK_TXS);
            out.extend_from_slice(&block.0);
            out.extend_from_slice(&(indexes.len() as u32).to_le_bytes());
            for i in indexes {
                out.extend_from_slice(&i.to_le_bytes());
            }
        }
    }
    out
}

/// The positions of a `GetBlockTxs`: 1 to [`MAX_TXS_PER_REQUEST`], strictly increasing.
fn read_indexes(r: &mut Reader<'_>) -> Result<Vec<u32>, String> {
    let n = r.count(MAX_TXS_PER_REQUEST, "transaction indexes")?;
    if n == 0 {
        return Err("no transaction index".into());
    }
    let indexes = (0..n)
        .map(|_| r.u32())
        .collect::<Result<Vec<u32>, String>>()?;
    if indexes.windows(2).any(|w| w[0] >= w[1]) {
        return Err("transaction indexes not strictly increasing".into());
    }
    Ok(indexes)
}

/// Decodes a request, enforcing the locator and request limits.
pub(crate) fn decode_request(bytes: &[u8]) -> Result<SyncRequest, String> {
    let mut r = Reader { bytes };
    let req = match r.u8()? {
        TAG_STATUS => SyncRequest::Status(read_status(&mut r)?),
        TAG_GET_HEADERS => {
            let max = r.u32()?;
            let locator = read_hashes(&mut r, MAX_LOCATOR)?;
            SyncRequest::GetHeaders { locator, max }
        }
        TAG_GET_BLOCKS => SyncRequest::GetBlocks(read_hashes(&mut r, MAX_BLOCKS_PER_REQUEST)?),
        TAG_GET_BLOCK_TXS => SyncRequest::GetBlockTxs {
            block: r.hash()?,
            indexes: read_indexes(&mut r)?,
        },
        tag => return Err(format!("unknown request tag {tag}")),
    };
    r.finish()?;
    Ok(req)
}

/// Encodes a response. `Malformed` is never sent; it encodes as a refusal.
pub(crate) fn encode_response(resp: &SyncResponse) -> Vec<u8> {
    let mut out = Vec::new();
    match resp {
        SyncResponse::Status(s) => {
            out.push(TAG_STATUS);
            put_status(&mut out, s);
        }
        SyncResponse::Headers(headers) => {
            out.reserve(5 + headers.len() * HEADER_LEN);
            out.push(TAG_HEADERS);
            out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
            for h in headers {
                out.extend_from_slice(&h.encode());
            }
        }
        SyncResponse::Blocks(blocks) => {
            out.push(TAG_BLOCKS);
            out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
            for b in blocks {
                let enc = b.encode();
                out.extend_from_slice(&(enc.len() as u32).to_le_bytes());
                out.extend_from_slice(&enc);
            }
        }
        SyncResponse::BlocksRaw(blocks) => {
            let total: usize = blocks.iter().map(|b| b.len() + 4).sum();
            out.reserve(5 + total);
            out.push(TAG_BLOCKS);
            out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
            for b in blocks {
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            }
        }
        SyncResponse::BlockTxs(txs) => {
            out.reserve(5 + txs.len() * TX_ENCODED_LEN);
            out.push(TAG_BLOCK_TXS);
            out.extend_from_slice(&(txs.len() as u32).to_le_bytes());
            for tx in txs {
                tx.encode_into(&mut out);
            }
        }
        SyncResponse::Refused(reason) => {
            out.push(TAG_REFUSED);
            out.push(*reason as u8);
        }
        SyncResponse::Malformed(_) => {
            out.push(TAG_REFUSED);
            out.push(Refusal::BadRequest as u8);
        }
    }
    out
}

/// Checks a decoded block's transaction root against its header.
pub(crate) fn check_tx_root(block: &Block) -> Result<(), String> {
    let root = merkle_root(&block.txids());
    if root == block.header.tx_root {
        Ok(())
    } else {
        Err(format!(
            "block {} has tx_root {} but its transactions give {root}",
            block.hash(),
            block.header.tx_root
        ))
    }
}

/// Decodes one block and checks its Merkle root.
pub(crate) fn decode_block(bytes: &[u8], max_block_txs: usize) -> Result<Block, String> {
    let block = Block::decode(bytes, max_block_txs).map_err(|e| e.to_string())?;
    check_tx_root(&block)?;
    Ok(block)
}

impl CompactBlock {
    /// The block topic's payload: header (144 bytes, SPEC layout) ‖ count u32 ‖ the txids,
    /// 32 bytes each, in block order.
    pub fn encode(&self) -> Vec<u8> {
        let len = HEADER_LEN
            .saturating_add(4)
            .saturating_add(self.txids.len().saturating_mul(32));
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&self.header.encode());
        let count = u32::try_from(self.txids.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for txid in &self.txids {
            out.extend_from_slice(&txid.0);
        }
        out
    }
}

/// Decodes a message of the block topic ([`CompactBlock::encode`]): at most `max_block_txs`
/// txids, nothing after them, and a header whose `tx_root` is their Merkle root (a wrong
/// body must not get a valid header marked invalid).
pub(crate) fn decode_compact_block(
    bytes: &[u8],
    max_block_txs: usize,
) -> Result<CompactBlock, String> {
    let mut r = Reader { bytes };
    let header = BlockHeader::decode(r.take(HEADER_LEN)?).map_err(|e| e.to_string())?;
    let count = r.count(max_block_txs, "txids")?;
    let mut txids = Vec::with_capacity(count);
    for _ in 0..count {
        txids.push(r.hash()?);
    }
    r.finish()?;
    let root = merkle_root(&txids);
    if root != header.tx_root {
        return Err(format!(
            "compact block {} has tx_root {} but its txids give {root}",
            header.hash(),
            header.tx_root
        ));
    }
    Ok(CompactBlock { header, txids })
}

/// The messages of the transaction topic for `txs`: each the concatenated encodings of at
/// most [`MAX_TX_BATCH`] transactions, in order.
pub(crate) fn encode_tx_batches(txs: &[Transaction]) -> Vec<Vec<u8>> {
    txs.chunks(MAX_TX_BATCH)
        .map(|chunk| {
            let mut bytes = Vec::with_capacity(chunk.len().saturating_mul(TX_ENCODED_LEN));
            for tx in chunk {
                tx.encode_into(&mut bytes);
            }
            bytes
        })
        .collect()
}

/// How many transactions a message of the transaction topic of `len` bytes claims to hold
/// (before decoding; a length that is no whole number of them claims at least one).
pub(crate) fn tx_batch_len(len: usize) -> usize {
    len.div_ceil(TX_ENCODED_LEN).max(1)
}

/// Decodes a message of the transaction topic: 1 to [`MAX_TX_BATCH`] transactions of
/// `TX_ENCODED_LEN` bytes each, nothing else. One transaction alone is a batch of one.
pub(crate) fn decode_tx_batch(bytes: &[u8]) -> Result<Vec<Transaction>, String> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(TX_ENCODED_LEN) {
        return Err(format!(
            "{} bytes is no whole number of {TX_ENCODED_LEN}-byte transactions",
            bytes.len()
        ));
    }
    let n = bytes.len() / TX_ENCODED_LEN;
    if n > MAX_TX_BATCH {
        return Err(format!(
            "{n} transactions in one message (at most {MAX_TX_BATCH})"
        ));
    }
    bytes
        .chunks_exact(TX_ENCODED_LEN)
        .enumerate()
        .map(|(i, b)| Transaction::decode(b).map_err(|e| format!("transaction {i}: {e}")))
        .collect()
}

/// Decodes a response. Content errors give `Err` with the reason.
pub(crate) fn decode_response(bytes: &[u8], max_block_txs: usize) -> Result<SyncResponse, String> {
    let mut r = Reader { bytes };
    let resp = match r.u8()? {
        TAG_STATUS => SyncResponse::Status(read_status(&mut r)?),
        TAG_HEADERS => {
            let n = r.count(MAX_HEADERS, "headers")?;
            let mut headers = Vec::with_capacity(n);
            for _ in 0..n {
                headers.push(BlockHeader::decode(r.take(HEADER_LEN)?).map_err(|e| e.to_string())?);
            }
            SyncResponse::Headers(headers)
        }
        TAG_BLOCKS => {
            let n = r.count(MAX_BLOCKS_PER_REQUEST, "blocks")?;
            let mut blocks = Vec::with_capacity(n);
            for _ in 0..n {
                let len = r.u32()? as usize;
                blocks.push(decode_block(r.take(len)?, max_block_txs)?);
            }
            SyncResponse::Blocks(blocks)
        }
        TAG_BLOCK_TXS => {
            let n = r.count(MAX_TXS_PER_REQUEST, "transactions")?;
            let mut txs = Vec::with_capacity(n);
            for _ in 0..n {
                let bytes = r.take(TX_ENCODED_LEN)?;
                txs.push(Transaction::decode(bytes).map_err(|e| e.to_string())?);
            }
            SyncResponse::BlockTxs(txs)
        }
        TAG_REFUSED => {
            let code = r.u8()?;
            SyncResponse::Refused(
                Refusal::from_u8(code).ok_or_else(|| format!("unknown refusal code {code}"))?,
            )
        }
        tag => return Err(format!("unknown response tag {tag}")),
    };
    r.finish()?;
    Ok(resp)
}

/// Reads the whole stream, failing when it exceeds `limit` bytes.
pub(crate) async fn read_limited<T>(io: &mut T, limit: usize) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut buf = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    io.take(cap).read_to_end(&mut buf).await?;
    if buf.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message exceeds the limit of {limit} bytes"),
        ));
    }
    Ok(buf)
}

/// The request-response codec of the sync protocol.
#[derive(Clone, Debug)]
pub(crate) struct SyncCodec {
    /// Transactions allowed per block.
    pub max_block_txs: usize,
    /// Size limit of a response.
    pub response_limit: usize,
    /// Adversary only (`Adversary::SlowReader`, see `adversary.rs`): `Blocks` responses are
    /// never read; the stream is held this long, then dropped. `None` for every honest node.
    pub stall_block_reads: Option<std::time::Duration>,
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_limited(io, SYNC_REQUEST_LIMIT).await?;
        decode_request(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        if let Some(hold) = self.stall_block_reads {
            return crate::adversary::read_response_slowly(self, io, hold).await;
        }
        let bytes = read_limited(io, self.response_limit).await?;
        // Decoding (and the Merkle checks) run here, on the connection's task, not on the
        // service task. A content error is a response the service penalises.
        Ok(decode_response(&bytes, self.max_block_txs).unwrap_or_else(SyncResponse::Malformed))
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&encode_request(&req)).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        resp: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match resp {
            // Written piece by piece from the stored encodings: no second copy of a response
            // of up to 8 MiB is made while a slow reader drains it.
            SyncResponse::BlocksRaw(blocks) => {
                let mut out = futures::io::BufWriter::with_capacity(64 * 1024, &mut *io);
                let mut head = [0u8; 5];
                head[0] = TAG_BLOCKS;
                head[1..].copy_from_slice(&(blocks.len() as u32).to_le_bytes());
                out.write_all(&head).await?;
                for block in &blocks {
                    out.write_all(&(block.len() as u32).to_le_bytes()).await?;
                    out.write_all(block).await?;
                }
                out.flush().await
            }
            other => io.write_all(&encode_response(&other)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchain_ledger::crypto::Keypair;
    use peerchain_ledger::{Address, Target, Transaction};

    fn transfers(n: u64) -> Vec<Transaction> {
        (0..n)
            .map(|i| Keypair::dev(1).sign_transfer(7, Address([2; 20]), 5, 1, i))
            .collect()
    }

    #[test]
    fn transaction_batches_round_trip_and_split_at_the_bound() {
        let txs = transfers(MAX_TX_BATCH as u64 + 3);
        let messages = encode_tx_batches(&txs);
        assert_eq!(messages.len(), 2);
        assert_eq!(tx_batch_len(messages[0].len()), MAX_TX_BATCH);
        let decoded: Vec<Transaction> = messages
            .iter()
            .flat_map(|m| decode_tx_batch(m).expect("a batch decodes"))
            .collect();
        assert_eq!(decoded, txs);
        // One transaction alone is a batch of one.
        assert_eq!(
            decode_tx_batch(&txs[0].encode()).expect("one transaction decodes"),
            vec![txs[0].clone()]
        );
    }

    #[test]
    fn malformed_transaction_batches_are_refused() {
        let one = transfers(1)[0].encode();
        assert!(decode_tx_batch(&[]).is_err());
        assert!(decode_tx_batch(&one[..100]).is_err());
        let mut extra = one.clone();
        extra.push(0);
        assert!(decode_tx_batch(&extra).is_err());
        let too_many = one.repeat(MAX_TX_BATCH + 1);
        let e = decode_tx_batch(&too_many).expect_err("too many");
        assert!(e.contains("at most"), "{e}");
        assert_eq!(tx_batch_len(0), 1);
        assert_eq!(tx_batch_len(one.len() + 1), 2);
    }

    fn block_of(txs: Vec<Transaction>) -> Block {
        let mut header = header(3);
        header.tx_root = merkle_root(&txs.iter().map(Transaction::txid).collect::<Vec<_>>());
        Block {
            header,
            transactions: txs,
        }
    }

    #[test]
    fn compact_blocks_round_trip_with_the_txids_in_block_order() {
        let txs = transfers(5);
        let block = block_of(txs.clone());
        let compact = CompactBlock::of(&block);
        let bytes = compact.encode();
        assert_eq!(bytes.len(), HEADER_LEN + 4 + 5 * 32);
        let body = |len: usize| len - HEADER_LEN - 4;
        assert!(
            body(bytes.len()) * 4 < body(block.encode().len()),
            "the transactions take less than a quarter of their bytes in a whole block"
        );
        let decoded = decode_compact_block(&bytes, 5).expect("decodes");
        assert_eq!(decoded, compact);
        assert_eq!(decoded.hash(), block.hash());
        let txids: Vec<Hash> = txs.iter().map(|tx| tx.txid()).collect();
        assert_eq!(decoded.txids, txids);
        // An empty block has none.
        let empty = block_of(Vec::new());
        let bytes = CompactBlock::of(&empty).encode();
        let decoded = decode_compact_block(&bytes, 0).expect("decodes");
        assert_eq!(decoded, CompactBlock::of(&empty));
        assert!(decoded.txids.is_empty());
    }

    #[test]
    fn malformed_compact_blocks_are_refused() {
        let block = block_of(transfers(3));
        let bytes = CompactBlock::of(&block).encode();
        let too_many = decode_compact_block(&bytes, 2).expect_err("over the bound");
        assert!(too_many.contains("at most 2"), "{too_many}");
        assert!(decode_compact_block(&bytes[..bytes.len() - 1], 3).is_err());
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_compact_block(&extra, 3).is_err());
        assert!(decode_compact_block(&bytes[..100], 3).is_err());
        // A txid changed: the header's Merkle root no longer matches.
        let mut wrong = bytes.clone();
        let last = wrong.len() - 1;
        wrong[last] ^= 1;
        let e = decode_compact_block(&wrong, 3).expect_err("wrong root");
        assert!(e.contains("tx_root"), "{e}");
        // A whole block is no compact block.
        assert!(decode_compact_block(&block.encode(), 3).is_err());
    }

    fn header(height: u64) -> BlockHeader {
        BlockHeader {
            version: 1,
            height,
            prev_hash: Hash([height as u8; 32]),
            tx_root: merkle_root(&[]),
            timestamp_ms: 1000 + height,
            target: Target(U256::MAX >> 1),
            nonce: height,
            miner: Address([7; 20]),
        }
    }

    fn status() -> Status {
        Status {
            genesis: Hash([1; 32]),
            tip: Hash([2; 32]),
            height: 42,
            total_work: U256::from(123_456_789u64) << 100,
        }
    }

    #[test]
    fn requests_round_trip() {
        let reqs = [
            SyncRequest::Status(status()),
            SyncRequest::GetHeaders {
                locator: vec![Hash([3; 32]), Hash([4; 32])],
                max: 512,
            },
            SyncRequest::GetBlocks(vec![Hash([5; 32]); MAX_BLOCKS_PER_REQUEST]),
            SyncRequest::GetBlockTxs {
                block: Hash([6; 32]),
                indexes: (0..MAX_TXS_PER_REQUEST as u32).map(|i| i * 3).collect(),
            },
        ];
        for req in reqs {
            let bytes = encode_request(&req);
            assert!(bytes.len() <= SYNC_REQUEST_LIMIT);
            assert_eq!(decode_request(&bytes).expect("decodes"), req);
        }
    }

    #[test]
    fn requests_over_limits_are_refused() {
        let too_many = SyncRequest::GetBlocks(vec![Hash::ZERO; MAX_BLOCKS_PER_REQUEST + 1]);
        assert!(decode_request(&encode_request(&too_many)).is_err());
        let mut bytes = encode_request(&SyncRequest::Status(status()));
        bytes.push(0);
        assert!(decode_request(&bytes).is_err(), "trailing byte");
        assert!(decode_request(&[9]).is_err(), "unknown tag");
        let txs = |indexes: Vec<u32>| {
            encode_request(&SyncRequest::GetBlockTxs {
                block: Hash([6; 32]),
                indexes,
            })
        };
        assert!(decode_request(&txs(Vec::new())).is_err(), "no index");
        assert!(decode_request(&txs(vec![3, 3])).is_err(), "an index twice");
        assert!(decode_request(&txs(vec![4, 3])).is_err(), "out of order");
        let too_many = (0..=MAX_TXS_PER_REQUEST as u32).collect();
        assert!(decode_request(&txs(too_many)).is_err(), "over the bound");
        assert!(decode_request(&[]).is_err(), "empty");
    }

    #[test]
    fn responses_round_trip() {
        let tx = Transaction {
            chain_id: 1,
            from: peerchain_ledger::PublicKey([1; 32]),
            to: Address([2; 20]),
            amount: 3,
            fee: 4,
            nonce: 5,
            signature: peerchain_ledger::Signature([6; 64]),
        };
        let mut h = header(7);
        h.tx_root = merkle_root(&[tx.txid()]);
        let block = Block {
            header: h,
            transactions: vec![tx],
        };
        let raw = SyncResponse::BlocksRaw(vec![block.encode(), block.encode()]);
        let decoded = decode_response(&encode_response(&raw), 10).expect("decodes");
        assert_eq!(
            decoded,
            SyncResponse::Blocks(vec![block.clone(), block.clone()])
        );
        assert_eq!(
            encode_response(&SyncResponse::Blocks(vec![block.clone(), block.clone()])),
            encode_response(&raw)
        );
        for resp in [
            SyncResponse::Status(status()),
            SyncResponse::Headers((1..20).map(header).collect()),
            SyncResponse::Refused(Refusal::Busy),
            SyncResponse::BlockTxs(vec![block.transactions[0].clone(); 3]),
            SyncResponse::BlockTxs(Vec::new()),
        ] {
            assert_eq!(decode_response(&encode_response(&resp), 10), Ok(resp));
        }
    }

    /// Defect 2: stored blocks are written as they are, piece by piece (no second copy of a
    /// response of up to 8 MiB), and read back as the one-piece encoding would be.
    #[tokio::test]
    async fn raw_blocks_are_streamed_in_the_wire_format() {
        use request_response::Codec as _;
        let mut h = header(7);
        h.tx_root = merkle_root(&[]);
        let block = Block {
            header: h,
            transactions: vec![],
        };
        let raw = SyncResponse::BlocksRaw(vec![block.encode(); 40]);
        let mut codec = SyncCodec {
            max_block_txs: 10,
            response_limit: 1 << 20,
            stall_block_reads: None,
        };
        let protocol = StreamProtocol::new("/test/sync/1");
        let mut out = futures::io::Cursor::new(Vec::new());
        codec
            .write_response(&protocol, &mut out, raw.clone())
            .await
            .expect("written");
        let written = out.into_inner();
        assert_eq!(written, encode_response(&raw));
        let mut input = futures::io::Cursor::new(written);
        let read = codec
            .read_response(&protocol, &mut input)
            .await
            .expect("read");
        assert_eq!(read, SyncResponse::Blocks(vec![block; 40]));
    }

    #[test]
    fn bad_blocks_in_responses_are_malformed() {
        let mut block = Block {
            header: header(3),
            transactions: vec![],
        };
        block.header.tx_root = Hash([9; 32]);
        let bytes = encode_response(&SyncResponse::Blocks(vec![block]));
        let err = decode_response(&bytes, 10).expect_err("wrong merkle root");
        assert!(err.contains("tx_root"), "{err}");
        let mut truncated = encode_response(&SyncResponse::Headers(vec![header(1)]));
        truncated.pop();
        assert!(decode_response(&truncated, 10).is_err());
    }
}
