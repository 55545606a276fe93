//! Reads through a [`StoreReader`]: the tip, block records and bodies, the main-chain index,
//! transactions by txid (pending txindex entries first), digests, per-address history and the
//! saved mempool. It must never write.

use std::collections::BTreeMap;

use primitive_types::U256;

use crate::error::{DecodeError, StoreError};
use crate::history;
use crate::history::{HistoryCursor, HistoryPage};
use crate::state::StateDigest;
use crate::txindex::TxLocation;
use crate::types::{Address, Block, HEADER_LEN, Hash, Transaction, sha256};

use super::records::BlockRecord;
use super::{BodyLocation, META_TIP, StoreReader, decode_u64};

impl StoreReader {
    /// The genesis hash this store belongs to.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// The main-chain tip.
    pub fn tip(&self) -> Result<Hash, StoreError> {
        let bytes =
            self.trees()?
                .meta
                .get(META_TIP)?
                .ok_or(StoreError::Decode(DecodeError::Record {
                    what: "tip",
                    detail: "missing".into(),
                }))?;
        Ok(Hash::from_slice(&bytes)?)
    }

    /// The tip's block index record.
    pub fn tip_record(&self) -> Result<BlockRecord, StoreError> {
        let tip = self.tip()?;
        self.record(&tip)?.ok_or(StoreError::MissingBlock(tip))
    }

    /// The block index record of `hash`.
    pub fn record(&self, hash: &Hash) -> Result<Option<BlockRecord>, StoreError> {
        match self.trees()?.index.get(hash.0)? {
            Some(bytes) => Ok(Some(BlockRecord::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Every block index record, in key order (for loading the in-memory block tree).
    pub fn records(&self) -> impl Iterator<Item = Result<(Hash, BlockRecord), StoreError>> + '_ {
        let iter = match self.trees() {
            Ok(t) => t.index.iter(),
            Err(e) => return Box::new(std::iter::once(Err(e))) as Box<dyn Iterator<Item = _>>,
        };
        Box::new(iter.map(|item| {
            let (k, v) = item?;
            Ok((Hash::from_slice(&k)?, BlockRecord::decode(&v)?))
        }))
    }

    /// Whether the body of `hash` is stored.
    pub fn has_block(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.trees()?.blocks.contains_key(hash.0)?)
    }

    /// The block `hash`, if stored.
    pub fn block(&self, hash: &Hash) -> Result<Option<Block>, StoreError> {
        match self.block_bytes(hash)? {
            Some(bytes) => Ok(Some(Block::decode(&bytes, usize::MAX)?)),
            None => Ok(None),
        }
    }

    /// The encoded block `hash`, if stored (served to peers as is), read from its block file.
    /// Its header (the encoding's first bytes) must hash to `hash`: only a damaged store names
    /// another block's bytes (their CRC matching by chance), and they are refused as damaged.
    pub fn block_bytes(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.trees()?;
        let Some(value) = t.blocks.get(hash.0)? else {
            return Ok(None);
        };
        let at = BodyLocation::decode(&value)?;
        let bytes = t.bodies.read(hash, &at)?;
        if bytes.get(..HEADER_LEN).map(sha256) != Some(*hash) {
            return Err(StoreError::DamagedBody {
                hash: *hash,
                file: at.file,
                offset: at.offset,
                reason: "the bytes are another block",
            });
        }
        Ok(Some(bytes))
    }

    /// The main-chain block hash at `height`.
    pub fn main_hash(&self, height: u64) -> Result<Option<Hash>, StoreError> {
        match self.trees()?.main.get(height.to_be_bytes())? {
            Some(bytes) => Ok(Some(Hash::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Where a main-chain transaction is.
    pub fn tx_location(&self, txid: &Hash) -> Result<Option<TxLocation>, StoreError> {
        let t = self.trees()?;
        if let Some(loc) = t.pending_txindex.get(txid) {
            return Ok(Some(loc));
        }
        match t.txindex.get(txid.0)? {
            Some(bytes) => Ok(Some(TxLocation::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The confirmed transaction `txid` with its location.
    pub fn transaction(
        &self,
        txid: &Hash,
    ) -> Result<Option<(Transaction, TxLocation)>, StoreError> {
        let Some(loc) = self.tx_location(txid)? else {
            return Ok(None);
        };
        let block = self
            .block(&loc.block_hash)?
            .ok_or(StoreError::MissingBlock(loc.block_hash))?;
        let tx = block
            .transactions
            .get(loc.index as usize)
            .cloned()
            .ok_or(StoreError::MissingBlock(loc.block_hash))?;
        Ok(Some((tx, loc)))
    }

    /// State digest after block `hash` (known for every block that was ever connected).
    pub fn digest_of(&self, hash: &Hash) -> Result<Option<StateDigest>, StoreError> {
        match self.trees()?.digests.get(hash.0)? {
            Some(bytes) => Ok(Some(StateDigest(U256::from_big_endian(
                &<[u8; 32]>::try_from(bytes.as_ref()).map_err(|_| DecodeError::Length {
                    what: "state digest",
                    expected: 32,
                    got: bytes.len(),
                })?,
            )))),
            None => Ok(None),
        }
    }

    /// Number of main-chain transactions that sent from or paid to `address`.
    pub fn tx_count(&self, address: &Address) -> Result<u64, StoreError> {
        match self.trees()?.tx_counts.get(address.0)? {
            Some(bytes) => Ok(decode_u64(&bytes, "tx count")?),
            None => Ok(0),
        }
    }

    /// Up to `limit` confirmed txids of `address`, newest first, strictly older than `before`.
    /// Returns the page and the cursor of its last item when more may follow.
    pub fn history(
        &self,
        address: &Address,
        before: Option<HistoryCursor>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let first = history::row_key(address, 0);
        let last = history::row_key(address, before.map_or(u64::MAX, |c| c.height));
        let rows = self.trees()?.history.range(first..=last).rev();
        history::page(rows, before, limit)
    }

    /// History index rows of a block (by address, `crate::history`) and the new per-address
    /// counts after adding (`adding`) or removing them.
    #[allow(clippy::type_complexity)]
    pub(super) fn history_rows(
        &self,
        block: &Block,
        txids: &[Hash],
        adding: bool,
    ) -> Result<(Vec<(Address, u64)>, BTreeMap<Address, Vec<u8>>), StoreError> {
        let rows = history::block_rows(block, txids);
        let mut counts = Vec::with_capacity(rows.len());
        for (address, row) in &rows {
            let now = self.tx_count(address)?;
            let n = history::entry_count(row);
            let new = if adding {
                now.saturating_add(n)
            } else {
                now.saturating_sub(n)
            };
            counts.push((*address, new));
        }
        Ok((counts, rows))
    }

    /// The saved mempool, in (sender, nonce) order, so that each sender's transactions can be
    /// admitted one after the other. Undecodable entries are skipped with a warning.
    pub fn load_mempool(&self) -> Result<Vec<Transaction>, StoreError> {
        let t = self.trees()?;
        let mut out = t.saved_mempool.load(&t.mempool)?;
        out.sort_by_cached_key(|tx| (tx.sender(), tx.nonce));
        Ok(out)
    }

    /// Bytes on disk: sled's as it reports them, and the block files'.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        let t = self.trees()?;
        Ok(t.db
            .size_on_disk()?
            .saturating_add(t.bodies.size_on_disk()?))
    }
}
