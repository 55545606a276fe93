//! Ed25519 keys, signing and the signature rule of SPEC section 2.
//!
//! A signature is valid exactly when `verify_strict` accepts it and the public key is not weak
//! (small order). [`verify_many`] checks many transactions on every core with that same rule, so
//! it accepts exactly the same set as [`verify_transaction`], one by one.
//!
//! Batch verification (`ed25519_dalek::verify_batch`) is deliberately not used for consensus:
//! with mixed-order keys or `R` points its equation can accept signatures that `verify_strict`
//! rejects, and the torsion checks that would make it exact cost more than the batch saves.
//! `docs/BENCHMARKS.md` has the figures.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::sigcache::VerifiedSignatures;
use crate::types::{Address, Hash, PublicKey, Signature, Transaction, sha256};

/// A 32-byte Ed25519 secret seed with its key pair.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({})", self.public().address())
    }
}

impl Keypair {
    /// The key pair of a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Keypair {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// A fresh random key pair from the operating system's generator.
    pub fn generate() -> Self {
        let mut csprng = rand_core::OsRng;
        Keypair {
            signing: SigningKey::generate(&mut csprng),
        }
    }

    /// Dev account `i`: seed `SHA-256("peerchain-dev-key-" + i)` (public test keys).
    pub fn dev(i: u32) -> Self {
        Self::from_seed(&dev_seed(i))
    }

    /// The secret seed.
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// The address of the public key.
    pub fn address(&self) -> Address {
        self.public().address()
    }

    /// Signs arbitrary bytes.
    pub fn sign_bytes(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }

    /// Builds and signs a transfer.
    pub fn sign_transfer(
        &self,
        chain_id: u64,
        to: Address,
        amount: u64,
        fee: u64,
        nonce: u64,
    ) -> Transaction {
        let mut tx = Transaction {
            chain_id,
            from: self.public(),
            to,
            amount,
            fee,
            nonce,
            signature: Signature([0u8; 64]),
        };
        tx.signature = self.sign_bytes(&tx.signing_message());
        tx
    }
}

/// The seed of dev account `i`.
pub fn dev_seed(i: u32) -> [u8; 32] {
    sha256(format!("peerchain-dev-key-{i}").as_bytes()).0
}

/// The SPEC signature rule for arbitrary bytes: `verify_strict` and a key that is not weak.
pub fn verify_signature(public: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(&public.0) else {
        return false;
    };
    if key.is_weak() {
        return false;
    }
    let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.verify_strict(message, &sig).is_ok()
}

/// Transaction signatures checked by [`verify_transaction`] in this process.
static TX_VERIFICATIONS: AtomicU64 = AtomicU64::new(0);

/// How many transaction signatures this process has checked (the `signature_verifications`
/// metric: with the verified-signature set, about one per transaction a node sees).
pub fn tx_verifications() -> u64 {
    TX_VERIFICATIONS.load(Ordering::Relaxed)
}

/// Whether a transaction's signature is valid (SPEC section 2).
pub fn verify_transaction(tx: &Transaction) -> bool {
    TX_VERIFICATIONS.fetch_add(1, Ordering::Relaxed);
    verify_signature(&tx.from, &tx.signing_message(), &tx.signature)
}

/// Verifies every transaction on the rayon pool (all cores). Element `i` of the result says
/// whether `txs[i]` is valid; it equals `verify_transaction(&txs[i])` by construction.
pub fn verify_many(txs: &[Transaction]) -> Vec<bool> {
    txs.par_iter()
        .with_min_len(64)
        .map(verify_transaction)
        .collect()
}

/// Index of the first transaction whose signature is invalid, checked on all cores.
pub fn first_invalid_signature(txs: &[Transaction]) -> Option<usize> {
    txs.par_iter()
        .with_min_len(64)
        .position_first(|tx| !verify_transaction(tx))
}

/// [`first_invalid_signature`], skipping the transactions whose txid (`txids[i]` for
/// `txs[i]`) `verified` holds: their exact bytes passed [`verify_transaction`] before (see
/// `sigcache.rs`), so the result is the same.
pub fn first_invalid_signature_except(
    txs: &[Transaction],
    txids: &[Hash],
    verified: &VerifiedSignatures,
) -> Option<usize> {
    txs.par_iter()
        .zip(txids.par_iter())
        .with_min_len(64)
        .position_first(|(tx, txid)| !verified.contains(txid) && !verify_transaction(tx))
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
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use curve25519_dalek::edwards::EdwardsPoint;
    use curve25519_dalek::scalar::Scalar;
    use sha2::{Digest, Sha512};

    fn challenge(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
        let mut h = Sha512::new();
        h.update(r);
        h.update(a);
        h.update(m);
        Scalar::from_hash(h)
    }

    /// A transaction signed by hand with public point `a_point = a*B + torsion_a` and
    /// nonce point `r*B + torsion_r`, so every kind of mixed-order input can be made.
    fn crafted(a: Scalar, torsion_a: usize, torsion_r: usize, seed: u8) -> Transaction {
        let a_point: EdwardsPoint = ED25519_BASEPOINT_POINT * a + EIGHT_TORSION[torsion_a];
        let from = PublicKey(a_point.compress().to_bytes());
        let mut tx = Transaction {
            chain_id: 7710,
            from,
            to: Address([seed; 20]),
            amount: u64::from(seed),
            fee: 1,
            nonce: 0,
            signature: Signature([0; 64]),
        };
        let m = tx.signing_message();
        let r = Scalar::from_bytes_mod_order([seed.wrapping_add(7); 32]);
        let r_point = ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[torsion_r];
        let r_bytes = r_point.compress().to_bytes();
        let k = challenge(&r_bytes, &from.0, &m);
        let s = r + k * a;
        tx.signature.0[..32].copy_from_slice(&r_bytes);
        tx.signature.0[32..].copy_from_slice(&s.to_bytes());
        tx
    }

    #[test]
    fn dev_keys_match_spec_vectors() {
        let k0 = Keypair::dev(0);
        assert_eq!(
            hex::encode(k0.seed()),
            "b99f56239ba1dd408c5bddedf55e1a5a332cd2ba16eb4eae0fe47fbe310ab574"
        );
        assert_eq!(
            k0.public().to_hex(),
            "1e3b7987f0c7ad89311c45a2631342a5de16d40ba5e07bd8b2a1996e0972cc7f"
        );
        assert_eq!(
            k0.address().to_hex(),
            "49a6bdea2673b89bd7b3992b18711ea9597c666a"
        );
        let k1 = Keypair::dev(1);
        assert_eq!(
            hex::encode(k1.seed()),
            "d23168dc16baed0b6a2cc8fd8e5ee214e0f643bb6f5b194b923c03596d250c8b"
        );
        assert_eq!(
            k1.public().to_hex(),
            "7de2f5aef43cbe00752502a4469c6f244d5df107335eb41673f637c69addf512"
        );
        assert_eq!(
            k1.address().to_hex(),
            "1489567a16dc6f7c680d290992ffe2bdf35c69c6"
        );
    }

    #[test]
    fn honest_crafted_signature_verifies() {
        let tx = crafted(Scalar::from(12345u64), 0, 0, 1);
        assert!(verify_transaction(&tx));
    }

    #[test]
    fn small_order_key_is_rejected() {
        // A = identity-ish small-order point; s = 0 and R = small order satisfy the
        // cofactored equation trivially, but the key is weak.
        for (i, t) in EIGHT_TORSION.iter().enumerate() {
            let from = PublicKey(t.compress().to_bytes());
            let mut tx = Transaction {
                chain_id: 1,
                from,
                to: Address::ZERO,
                amount: 0,
                fee: 1,
                nonce: i as u64,
                signature: Signature([0; 64]),
            };
            tx.signature.0[..32].copy_from_slice(&EIGHT_TORSION[0].compress().to_bytes());
            assert!(!verify_transaction(&tx), "small-order key {i} accepted");
        }
    }

    #[test]
    fn mixed_order_r_is_rejected_and_parallel_path_agrees() {
        let mut txs = Vec::new();
        for seed in 0..64u8 {
            let ta = usize::from(seed % 8);
            let tr = usize::from((seed / 8) % 8);
            txs.push(crafted(
                Scalar::from(1000u64 + u64::from(seed)),
                ta,
                tr,
                seed,
            ));
        }
        // Signatures from real keys, and corrupted copies.
        for i in 0..32u32 {
            let k = Keypair::dev(i);
            let mut tx = k.sign_transfer(7710, Address([1; 20]), 5, 1, u64::from(i));
            if i % 3 == 0 {
                tx.signature.0[40] ^= 1;
            }
            txs.push(tx);
        }
        let single: Vec<bool> = txs.iter().map(verify_transaction).collect();
        assert_eq!(verify_many(&txs), single);
        // With a torsion-free key, a torsion component in R always breaks the cofactorless
        // equation. (With a mixed-order key it may cancel out: verify_strict then accepts, and
        // so must the parallel path, which the equality above checks.)
        for (i, ok) in single.iter().enumerate().take(64) {
            let (ta, tr) = (i % 8, (i / 8) % 8);
            if ta == 0 && tr != 0 {
                assert!(!ok, "mixed-order R accepted at {i}");
            }
        }
        assert!(single[0], "torsion-free crafted signature must verify");
        let first_bad = single.iter().position(|ok| !ok);
        assert_eq!(first_invalid_signature(&txs), first_bad);
    }

    /// The verified-signature set changes no verdict: it only ever holds txids whose exact
    /// bytes verified, and a txid commits to the signature, so every crafted small-order,
    /// mixed-order and corrupted case is judged as without it.
    #[test]
    fn skipping_verified_signatures_accepts_exactly_the_same_set() {
        let mut txs = Vec::new();
        for seed in 0..64u8 {
            let (ta, tr) = (usize::from(seed % 8), usize::from((seed / 8) % 8));
            txs.push(crafted(
                Scalar::from(2000u64 + u64::from(seed)),
                ta,
                tr,
                seed,
            ));
        }
        for i in 0..32u32 {
            let mut tx = Keypair::dev(i).sign_transfer(7710, Address([1; 20]), 5, 1, u64::from(i));
            if i % 3 == 0 {
                tx.signature.0[40] ^= 1;
            }
            txs.push(tx);
        }
        let txids: Vec<Hash> = txs.iter().map(Transaction::txid).collect();
        let single: Vec<bool> = txs.iter().map(verify_transaction).collect();
        // Remember every other valid transaction, as admission would.
        let mut verified = VerifiedSignatures::new(1000);
        for (i, ok) in single.iter().enumerate() {
            if *ok && i % 2 == 0 {
                verified.insert(txids[i]);
            }
        }
        assert!(!verified.is_empty());
        let first_bad = single.iter().position(|ok| !ok);
        assert_eq!(
            first_invalid_signature_except(&txs, &txids, &verified),
            first_bad
        );
        // Each invalid transaction alone, and each with a valid one whose txid is remembered
        // in front of it: still caught, at the same index.
        for (i, ok) in single.iter().enumerate() {
            if *ok {
                continue;
            }
            let pair = [txs[0].clone(), txs[i].clone()];
            let pair_ids = [txids[0], txids[i]];
            assert!(verified.contains(&txids[0]));
            assert_eq!(
                first_invalid_signature_except(&pair, &pair_ids, &verified),
                Some(1),
                "invalid transaction {i} slipped through"
            );
            // A corrupted copy of a remembered transaction has another txid.
            let mut copy = txs[0].clone();
            copy.signature.0[40] ^= 1;
            assert!(!verified.contains(&copy.txid()));
        }
    }
}
