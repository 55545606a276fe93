//! Fixed-size byte types (hashes, addresses, keys, signatures, targets) and the
//! transaction and block structures with their exact SPEC byte layouts.

use std::fmt;
use std::str::FromStr;

use primitive_types::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::DecodeError;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash {
    Hash(Sha256::digest(data).into())
}

/// `a + b` in a type it always fits.
// Cannot overflow: 2 * (2^64 - 1) < 2^128.
#[allow(clippy::arithmetic_side_effects)]
pub(crate) fn wide_sum(a: u64, b: u64) -> u128 {
    u128::from(a) + u128::from(b)
}

/// Parses hex that may carry a `0x` prefix and uppercase digits into exactly `N` bytes.
pub fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], DecodeError> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    // Cannot overflow: N is the length of a `[u8; N]`, so at most isize::MAX.
    #[allow(clippy::arithmetic_side_effects)]
    let expected = N * 2;
    if digits.len() != expected {
        return Err(DecodeError::HexLength {
            expected,
            got: digits.len(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).map_err(|e| DecodeError::Hex(e.to_string()))?;
    Ok(out)
}

macro_rules! byte_newtype {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length of the encoding in bytes.
            pub const LEN: usize = $len;
            /// All bytes zero.
            pub const ZERO: Self = Self([0u8; $len]);

            /// Lowercase hex without prefix.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Reads exactly `LEN` bytes.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, DecodeError> {
                let arr: [u8; $len] = bytes.try_into().map_err(|_| DecodeError::Length {
                    what: stringify!($name),
                    expected: $len,
                    got: bytes.len(),
                })?;
                Ok(Self(arr))
            }
        }

        impl FromStr for $name {
            type Err = DecodeError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex::<$len>(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

byte_newtype!(
    /// A SHA-256 hash (block hash, txid, Merkle node).
    Hash, 32
);
byte_newtype!(
    /// An account address: the first 20 bytes of SHA-256 of the public key.
    Address, 20
);
byte_newtype!(
    /// An Ed25519 public key (32 bytes).
    PublicKey, 32
);
byte_newtype!(
    /// An Ed25519 signature (64 bytes).
    Signature, 64
);

impl PublicKey {
    /// The address of this key: the first 20 bytes of `SHA-256(public_key)`.
    pub fn address(&self) -> Address {
        let digest = sha256(&self.0);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest.0[..20]);
        Address(out)
    }
}

/// A 256-bit proof-of-work target, encoded as 32 big-endian bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Target(pub U256);

impl Target {
    /// The big-endian encoding.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0.to_big_endian()
    }

    /// Reads a big-endian encoding.
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Self {
        Target(U256::from_big_endian(bytes))
    }

    /// Work of a block with this target: `floor(2^256 / (target + 1))`.
    pub fn work(&self) -> U256 {
        // 2^256 / (t + 1) == (2^256 - 1 - t) / (t + 1) + 1, computed without overflow.
        // target == 2^256 - 1 has no `t + 1`: its work is exactly 1. Target 0 would be 2^256,
        // which does not fit: it saturates (such a target is never valid).
        self.0
            .checked_add(U256::one())
            .and_then(|divisor| (!self.0).checked_div(divisor))
            .map_or(U256::one(), |q| q.saturating_add(U256::one()))
    }

    /// Whether `hash`, read as a big-endian integer, is at most this target.
    pub fn is_met_by(&self, hash: &Hash) -> bool {
        U256::from_big_endian(&hash.0) <= self.0
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_be_bytes()))
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

impl FromStr for Target {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex::<32>(s).map(|b| Target::from_be_bytes(&b))
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Hex encoding of a 256-bit unsigned integer (total work), 64 digits.
pub fn u256_hex(value: &U256) -> String {
    hex::encode(value.to_big_endian())
}

/// Reads 64 hex digits as a big-endian 256-bit integer.
pub fn u256_from_hex(text: &str) -> Result<U256, DecodeError> {
    parse_hex::<32>(text).map(|b| U256::from_big_endian(&b))
}

/// Domain prefix of the transaction signing message.
pub const TX_DOMAIN: &[u8; 15] = b"peerchain/tx/v1";
/// Length of the signing message.
pub const SIGNING_MESSAGE_LEN: usize = 99;
/// Length of an encoded transaction (the signing message fields without the domain, plus signature).
pub const TX_ENCODED_LEN: usize = 8 + 32 + 20 + 8 + 8 + 8 + 64;
/// Length of an encoded block header.
pub const HEADER_LEN: usize = 144;

/// A signed transfer, with exactly the fields of SPEC section 2.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    /// Must equal the genesis chain id.
    pub chain_id: u64,
    /// The sender's Ed25519 public key.
    pub from: PublicKey,
    /// The recipient address.
    pub to: Address,
    /// Amount moved (may be 0).
    pub amount: u64,
    /// Fee paid to the miner.
    pub fee: u64,
    /// The sender's count of confirmed transactions.
    pub nonce: u64,
    /// Ed25519 signature of the signing message.
    pub signature: Signature,
}

impl Transaction {
    /// The 99-byte signing message of SPEC section 2.
    pub fn signing_message(&self) -> [u8; SIGNING_MESSAGE_LEN] {
        let mut m = [0u8; SIGNING_MESSAGE_LEN];
        m[..15].copy_from_slice(TX_DOMAIN);
        m[15..23].copy_from_slice(&self.chain_id.to_le_bytes());
        m[23..55].copy_from_slice(&self.from.0);
        m[55..75].copy_from_slice(&self.to.0);
        m[75..83].copy_from_slice(&self.amount.to_le_bytes());
        m[83..91].copy_from_slice(&self.fee.to_le_bytes());
        m[91..99].copy_from_slice(&self.nonce.to_le_bytes());
        m
    }

    /// `SHA-256(signing message ‖ signature)`.
    pub fn txid(&self) -> Hash {
        let mut h = Sha256::new();
        h.update(self.signing_message());
        h.update(self.signature.0);
        Hash(h.finalize().into())
    }

    /// The sender's address.
    pub fn sender(&self) -> Address {
        self.from.address()
    }

    /// `amount + fee`, or `None` on overflow.
    pub fn total_cost(&self) -> Option<u64> {
        self.amount.checked_add(self.fee)
    }

    /// `amount + fee` as a u128, which it always fits.
    pub fn wide_cost(&self) -> u128 {
        wide_sum(self.amount, self.fee)
    }

    /// Appends the 148-byte encoding: the signing message without its domain, then the signature.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.signing_message()[15..]);
        out.extend_from_slice(&self.signature.0);
    }

    /// The 148-byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TX_ENCODED_LEN);
        self.encode_into(&mut out);
        out
    }

    /// Decodes exactly one transaction from `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let tx = Self::read(&mut reader)?;
        reader.finish()?;
        Ok(tx)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Transaction {
            chain_id: r.u64()?,
            from: PublicKey(r.array()?),
            to: Address(r.array()?),
            amount: r.u64()?,
            fee: r.u64()?,
            nonce: r.u64()?,
            signature: Signature(r.array()?),
        })
    }
}

/// A block header: 144 bytes, hashed with SHA-256 to the block hash.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockHeader {
    /// Always 1.
    pub version: u32,
    /// Parent height + 1; genesis is 0.
    pub height: u64,
    /// Parent's hash; zero in genesis.
    pub prev_hash: Hash,
    /// Merkle root of the txids; the genesis commitment in genesis.
    pub tx_root: Hash,
    /// Unix time in milliseconds.
    pub timestamp_ms: u64,
    /// Proof-of-work target.
    pub target: Target,
    /// Free for the miner.
    pub nonce: u64,
    /// Address credited with reward and fees.
    pub miner: Address,
}

impl BlockHeader {
    /// The 144-byte encoding of SPEC section 3.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.version.to_le_bytes());
        b[4..12].copy_from_slice(&self.height.to_le_bytes());
        b[12..44].copy_from_slice(&self.prev_hash.0);
        b[44..76].copy_from_slice(&self.tx_root.0);
        b[76..84].copy_from_slice(&self.timestamp_ms.to_le_bytes());
        b[84..116].copy_from_slice(&self.target.to_be_bytes());
        b[116..124].copy_from_slice(&self.nonce.to_le_bytes());
        b[124..144].copy_from_slice(&self.miner.0);
        b
    }

    /// Decodes exactly 144 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let header = Self::read(&mut r)?;
        r.finish()?;
        Ok(header)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(BlockHeader {
            version: r.u32()?,
            height: r.u64()?,
            prev_hash: Hash(r.array()?),
            tx_root: Hash(r.array()?),
            timestamp_ms: r.u64()?,
            target: Target::from_be_bytes(&r.array()?),
            nonce: r.u64()?,
            miner: Address(r.array()?),
        })
    }

    /// `SHA-256(header bytes)`.
    pub fn hash(&self) -> Hash {
        sha256(&self.encode())
    }
}

/// A header and its ordered transactions.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions in block order.
    pub transactions: Vec<Transaction>,
}

impl Block {
    /// The block hash.
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// The txids in block order.
    pub fn txids(&self) -> Vec<Hash> {
        self.transactions.iter().map(Transaction::txid).collect()
    }

    /// Size of [`Block::encode`]'s output.
    // Cannot overflow: a `Vec<Transaction>` holds at most isize::MAX / size_of::<Transaction>()
    // (>= TX_ENCODED_LEN) elements.
    #[allow(clippy::arithmetic_side_effects)]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 4 + self.transactions.len() * TX_ENCODED_LEN
    }

    /// Encoding used on the wire and on disk: header (144) ‖ tx count u32 ‖ transactions (148 each).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&self.header.encode());
        let count = u32::try_from(self.transactions.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for tx in &self.transactions {
            tx.encode_into(&mut out);
        }
        out
    }

    /// Decodes a block, refusing more than `max_txs` transactions before allocating for them.
    pub fn decode(bytes: &[u8], max_txs: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let header = BlockHeader::read(&mut r)?;
        let count = r.u32()? as usize;
        if count > max_txs {
            return Err(DecodeError::TooManyTransactions {
                count,
                max: max_txs,
            });
        }
        // Saturates (on 32-bit targets) to a length no slice has, so the check still fails.
        let expected = count.saturating_mul(TX_ENCODED_LEN);
        if r.remaining() != expected {
            return Err(DecodeError::Length {
                what: "block transactions",
                expected,
                got: r.remaining(),
            });
        }
        let mut transactions = Vec::with_capacity(count);
        for _ in 0..count {
            transactions.push(Transaction::read(&mut r)?);
        }
        r.finish()?;
        Ok(Block {
            header,
            transactions,
        })
    }
}

/// Offset of `fee` in an encoded transaction: chain_id, from, to, amount.
const TX_FEE_OFFSET: usize = 8 + 32 + 20 + 8;
/// Start of the first transaction in an encoded block: header, then the u32 count.
const BLOCK_TXS_OFFSET: usize = HEADER_LEN + 4;
/// Start of the first transaction's fee in an encoded block.
const BLOCK_FEE_OFFSET: usize = BLOCK_TXS_OFFSET + TX_FEE_OFFSET;

/// Byte range of transaction `index` in an encoded block (`None` past `usize`).
fn tx_range(index: usize) -> Option<std::ops::Range<usize>> {
    let at = index
        .checked_mul(TX_ENCODED_LEN)?
        .checked_add(BLOCK_TXS_OFFSET)?;
    Some(at..at.checked_add(TX_ENCODED_LEN)?)
}

/// A view of an encoded block that reads its transaction count, fee sum or single
/// transactions where they sit, without decoding the whole block (explorer reads of 20,000-tx
/// blocks). The layout is [`Block::encode`]'s; the length is checked once, on creation.
#[derive(Debug, Clone, Copy)]
pub struct EncodedBlock<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> EncodedBlock<'a> {
    /// Checks that `bytes` holds a header, a count and exactly that many transactions.
    pub fn new(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let field: [u8; 4] = bytes
            .get(HEADER_LEN..BLOCK_TXS_OFFSET)
            .and_then(|s| s.try_into().ok())
            .ok_or(DecodeError::Truncated {
                needed: BLOCK_TXS_OFFSET,
                available: bytes.len(),
            })?;
        let count = u32::from_le_bytes(field) as usize;
        let expected = count.saturating_mul(TX_ENCODED_LEN);
        let got = bytes.len().saturating_sub(BLOCK_TXS_OFFSET);
        if got != expected {
            return Err(DecodeError::Length {
                what: "block transactions",
                expected,
                got,
            });
        }
        Ok(EncodedBlock { bytes, count })
    }

    /// Transactions in the block.
    pub fn tx_count(&self) -> usize {
        self.count
    }

    /// Sum of the transactions' fees (saturating).
    pub fn fees(&self) -> u64 {
        (0..self.count)
            .filter_map(|i| {
                let at = i
                    .checked_mul(TX_ENCODED_LEN)?
                    .checked_add(BLOCK_FEE_OFFSET)?;
                self.bytes.get(at..at.checked_add(8)?)?.try_into().ok()
            })
            .map(u64::from_le_bytes)
            .fold(0u64, u64::saturating_add)
    }

    /// The transaction at `index`, `None` past the end.
    pub fn tx_at(&self, index: usize) -> Result<Option<Transaction>, DecodeError> {
        if index >= self.count {
            return Ok(None);
        }
        let range = tx_range(index);
        let slice =
            range
                .clone()
                .and_then(|r| self.bytes.get(r))
                .ok_or(DecodeError::Truncated {
                    needed: range.map_or(usize::MAX, |r| r.end),
                    available: self.bytes.len(),
                })?;
        Transaction::decode(slice).map(Some)
    }

    /// The transactions from `start`, at most `limit`.
    pub fn txs(&self, start: usize, limit: usize) -> Result<Vec<Transaction>, DecodeError> {
        (start..self.count.min(start.saturating_add(limit)))
            .filter_map(|i| self.tx_at(i).transpose())
            .collect()
    }
}

/// A bounds-checked little-endian reader over a byte slice.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    /// The bytes not read yet.
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let Some((head, rest)) = self.rest.split_first_chunk::<N>() else {
            return Err(DecodeError::Truncated {
                needed: N,
                available: self.remaining(),
            });
        };
        self.rest = rest;
        Ok(*head)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_le_bytes)
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                count: self.remaining(),
            })
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    #[test]
    fn encoded_block_view_matches_a_full_decode() {
        let g = crate::Genesis::dev(3, 1_000_000, 2000);
        let mut b = crate::testkit::ChainBuilder::new(g, 3);
        let block = b.push_transfers(7, 3);
        let bytes = block.encode();
        let view = EncodedBlock::new(&bytes).expect("view");
        assert_eq!(view.tx_count(), 7);
        assert_eq!(
            view.fees(),
            block.transactions.iter().map(|t| t.fee).sum::<u64>()
        );
        for (i, tx) in block.transactions.iter().enumerate() {
            assert_eq!(view.tx_at(i).expect("read").as_ref(), Some(tx));
        }
        assert_eq!(view.tx_at(7).expect("read"), None);
        assert_eq!(view.txs(5, 10).expect("range").len(), 2);
        assert!(EncodedBlock::new(&bytes[..bytes.len() - 1]).is_err());
        assert!(EncodedBlock::new(&bytes[..10]).is_err());
    }

    #[test]
    fn hex_accepts_prefix_and_uppercase() {
        let h: Hash = "0xAB9401175A40FA44D02030835B6792094018DB5675AB031F70B25CDEBD809E02"
            .parse()
            .expect("valid hex");
        assert_eq!(
            h.to_hex(),
            "ab9401175a40fa44d02030835b6792094018db5675ab031f70b25cdebd809e02"
        );
    }

    #[test]
    fn hex_rejects_wrong_length_and_bad_digits() {
        assert!(matches!(
            "abcd".parse::<Address>(),
            Err(DecodeError::HexLength {
                expected: 40,
                got: 4
            })
        ));
        let bad = "zz".repeat(20);
        assert!(matches!(bad.parse::<Address>(), Err(DecodeError::Hex(_))));
    }

    #[test]
    fn work_of_extreme_targets() {
        assert_eq!(Target(U256::MAX).work(), U256::one());
        assert_eq!(Target(U256::zero()).work(), U256::MAX); // 2^256 saturates
        assert_eq!(Target(U256::one()).work(), U256::one() << 255);
    }

    #[test]
    fn truncated_and_trailing_inputs_are_errors() {
        let header = BlockHeader {
            version: 1,
            height: 1,
            prev_hash: Hash::ZERO,
            tx_root: Hash::ZERO,
            timestamp_ms: 0,
            target: Target(U256::MAX),
            nonce: 0,
            miner: Address::ZERO,
        };
        let bytes = header.encode();
        assert!(matches!(
            BlockHeader::decode(&bytes[..100]),
            Err(DecodeError::Truncated { .. })
        ));
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(matches!(
            BlockHeader::decode(&long),
            Err(DecodeError::TrailingBytes { count: 1 })
        ));
        let block = Block {
            header,
            transactions: vec![],
        };
        let mut enc = block.encode();
        enc[144..148].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Block::decode(&enc, 20_000),
            Err(DecodeError::TooManyTransactions { .. })
        ));
        enc[144..148].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(
            Block::decode(&enc, 20_000),
            Err(DecodeError::Length { .. })
        ));
    }
}
