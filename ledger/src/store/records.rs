//! The records the store keeps beside the blocks: a block's validation status and index
//! record (cumulative work, arrival sequence), and the undo data a disconnect reads back. It
//! owns their byte layouts; it must never touch sled.

use primitive_types::U256;

use crate::error::DecodeError;
use crate::state::{Account, AccountChange, BlockDelta, StateDigest};
use crate::types::{Address, BlockHeader, HEADER_LEN, Reader};

/// How a block stands with respect to validation. Consensus decides; the store remembers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockStatus {
    /// Stored, not yet fully validated (its branch was never the best).
    Unvalidated = 0,
    /// Fully validated (it has been connected at least once).
    Valid = 1,
    /// Failed validation, or descends from a block that did.
    Invalid = 2,
    /// Marked invalid by an operator (`invalidate`); undone by `reconsider`.
    InvalidatedByUser = 3,
}

impl BlockStatus {
    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            0 => BlockStatus::Unvalidated,
            1 => BlockStatus::Valid,
            2 => BlockStatus::Invalid,
            3 => BlockStatus::InvalidatedByUser,
            other => {
                return Err(DecodeError::Record {
                    what: "block status",
                    detail: format!("unknown status {other}"),
                });
            }
        })
    }

    /// Whether the block is known to be invalid (by rule or by operator).
    pub fn is_invalid(self) -> bool {
        matches!(self, BlockStatus::Invalid | BlockStatus::InvalidatedByUser)
    }
}

/// The block index entry of one block: its header, cumulative work, status and arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRecord {
    /// The header.
    pub header: BlockHeader,
    /// Work from genesis through this block.
    pub total_work: U256,
    /// Validation status.
    pub status: BlockStatus,
    /// Arrival order: lower was seen first (breaks ties in fork choice, also after a restart).
    pub seq: u64,
}

impl BlockRecord {
    const LEN: usize = HEADER_LEN + 32 + 1 + 8;

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&self.header.encode());
        out.extend_from_slice(&self.total_work.to_big_endian());
        out.push(self.status as u8);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let header = BlockHeader::decode(&r.array::<HEADER_LEN>()?)?;
        let total_work = U256::from_big_endian(&r.array::<32>()?);
        let status = BlockStatus::from_u8(r.array::<1>()?[0])?;
        let seq = r.u64()?;
        r.finish()?;
        Ok(BlockRecord {
            header,
            total_work,
            status,
            seq,
        })
    }
}

pub(super) fn encode_undo(delta: &BlockDelta, digest_before: &StateDigest) -> Vec<u8> {
    // Cannot overflow: a `Vec<AccountChange>` holds at most isize::MAX / 52 elements.
    #[allow(clippy::arithmetic_side_effects)]
    let capacity = 48 + delta.changes.len() * 52;
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&digest_before.to_bytes());
    out.extend_from_slice(&delta.fees.to_le_bytes());
    out.extend_from_slice(&delta.reward.to_le_bytes());
    for c in &delta.changes {
        out.extend_from_slice(&c.address.0);
        out.extend_from_slice(&c.before.encode());
        out.extend_from_slice(&c.after.encode());
    }
    out
}

pub(super) fn decode_undo(bytes: &[u8]) -> Result<(BlockDelta, StateDigest), DecodeError> {
    let mut r = Reader::new(bytes);
    let digest = StateDigest(U256::from_big_endian(&r.array::<32>()?));
    let fees = r.u64()?;
    let reward = r.u64()?;
    let mut changes = Vec::with_capacity(r.remaining() / 52);
    while r.remaining() > 0 {
        changes.push(AccountChange {
            address: Address(r.array()?),
            before: Account::decode(&r.array::<16>()?)?,
            after: Account::decode(&r.array::<16>()?)?,
        });
    }
    Ok((
        BlockDelta {
            changes,
            fees,
            reward,
        },
        digest,
    ))
}
