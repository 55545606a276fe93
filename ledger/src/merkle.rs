//! RFC 6962 / RFC 9162 Merkle tree over txids: root, inclusion proofs (audit paths) and
//! their verification.

use sha2::{Digest, Sha256};

use crate::types::Hash;

/// `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf.0);
    Hash(h.finalize().into())
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The largest power of two strictly smaller than `n`; `None` when `n < 2`.
fn split_point(n: usize) -> Option<usize> {
    1usize.checked_shl(n.checked_sub(1)?.checked_ilog2()?)
}

/// `nodes` split at [`split_point`] of its length; `None` for fewer than two nodes.
fn split(nodes: &[Hash]) -> Option<(&[Hash], &[Hash])> {
    nodes.split_at_checked(split_point(nodes.len())?)
}

/// Merkle root of `leaves` (txids) per RFC 9162 section 2.1.1; `SHA-256("")` for none.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return crate::types::sha256(b"");
    }
    // Bottom-up: hash leaves, then combine pairs level by level. An odd last node is
    // promoted unchanged, which yields exactly the RFC's recursive split.
    let mut level: Vec<Hash> = leaves.iter().map(leaf_hash).collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            match pair {
                [left, right] => next.push(node_hash(left, right)),
                [single] => next.push(*single),
                _ => {}
            }
        }
        level = next;
    }
    level
        .first()
        .copied()
        .unwrap_or_else(|| crate::types::sha256(b""))
}

/// A Merkle tree that grows at its end (a block template taking more transactions): after
/// [`MerkleBuilder::extend`] its [`MerkleBuilder::root`] is [`merkle_root`] of every leaf so
/// far, but only the nodes right of the first new leaf are hashed again, about two per new
/// leaf instead of two per leaf. Holds every level (about two hashes per leaf).
#[derive(Debug, Clone, Default)]
pub struct MerkleBuilder {
    /// `levels[0]` the leaf hashes, each next level their parents built as [`merkle_root`]
    /// does (pairs, an odd last node promoted unchanged); the last holds the root.
    levels: Vec<Vec<Hash>>,
}

impl MerkleBuilder {
    /// The tree of `leaves`.
    pub fn from_leaves(leaves: &[Hash]) -> Self {
        let mut tree = MerkleBuilder::default();
        tree.extend(leaves);
        tree
    }

    /// Appends `leaves` and hashes again the nodes they change.
    pub fn extend(&mut self, leaves: &[Hash]) {
        if leaves.is_empty() {
            return;
        }
        let mut old = std::mem::take(&mut self.levels).into_iter();
        let mut current = old.next().unwrap_or_default();
        let mut below = current.len();
        current.extend(leaves.iter().map(leaf_hash));
        let mut rebuilt = Vec::new();
        // From the leaves up: each level keeps its parents left of the first changed child
        // (`below`, the first new node of the level beneath) and computes the rest.
        while current.len() > 1 {
            let first_changed = below / 2;
            let mut parents = old.next().unwrap_or_default();
            parents.truncate(first_changed);
            let changed = current
                .get(first_changed.saturating_mul(2)..)
                .unwrap_or_default();
            parents.extend(changed.chunks(2).filter_map(|pair| match pair {
                [left, right] => Some(node_hash(left, right)),
                [single] => Some(*single),
                _ => None,
            }));
            rebuilt.push(current);
            current = parents;
            below = first_changed;
        }
        rebuilt.push(current);
        self.levels = rebuilt;
    }

    /// [`merkle_root`] of every leaf appended so far.
    pub fn root(&self) -> Hash {
        self.levels
            .last()
            .and_then(|top| top.first())
            .copied()
            .unwrap_or_else(|| crate::types::sha256(b""))
    }
}

/// The audit path of leaf `index` (siblings from the leaf upwards), or `None` when out of range.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let hashed: Vec<Hash> = leaves.iter().map(leaf_hash).collect();
    let mut path = Vec::new();
    path_of(&hashed, index, &mut path);
    Some(path)
}

/// Recursive PATH(m, D[n]) of RFC 9162 2.1.3.1 over already-hashed leaves; pushes siblings
/// bottom-up.
fn path_of(nodes: &[Hash], index: usize, out: &mut Vec<Hash>) {
    let Some((left, right)) = split(nodes) else {
        return;
    };
    match index.checked_sub(left.len()) {
        None => {
            path_of(left, index, out);
            out.push(subtree_root(right));
        }
        Some(index) => {
            path_of(right, index, out);
            out.push(subtree_root(left));
        }
    }
}

/// MTH over already-hashed leaves (`nodes` is never empty; `SHA-256("")` if it were).
fn subtree_root(nodes: &[Hash]) -> Hash {
    match split(nodes) {
        Some((left, right)) => node_hash(&subtree_root(left), &subtree_root(right)),
        None => nodes
            .first()
            .copied()
            .unwrap_or_else(|| crate::types::sha256(b"")),
    }
}

/// Verifies an RFC 9162 section 2.1.3.2 inclusion proof of `leaf` (a txid) at `index` in a
/// tree of `leaf_count` leaves with root `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    leaf_count: u64,
    siblings: &[Hash],
    root: &Hash,
) -> bool {
    if index >= leaf_count {
        return false;
    }
    let Some(mut sn) = leaf_count.checked_sub(1) else {
        return false;
    };
    let mut fn_ = index;
    let mut r = leaf_hash(leaf);
    for p in siblings {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
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
    use crate::types::sha256;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| sha256(&[i as u8])).collect()
    }

    #[test]
    fn spec_roots() {
        let cases = [
            (
                0,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                1,
                "d9de27625445003d8a9739a851e3ff8d41c0683630b4d63a88327a6aaa37c409",
            ),
            (
                2,
                "604d540f09268b91672ab011394d5266ccd7d4484d0d109411a55848126a1b2c",
            ),
            (
                3,
                "d1f13800048f5909d4043fc0c152f6643280cba608b672715e56ce159a20629f",
            ),
            (
                5,
                "6b313b611b40676b9e1dfd70c4503f2379f88f0f1c2740fb7e1cacc32c113465",
            ),
        ];
        for (n, root) in cases {
            assert_eq!(merkle_root(&leaves(n)).to_hex(), root, "n = {n}");
        }
    }

    #[test]
    fn spec_proof() {
        let l = leaves(5);
        let proof = inclusion_proof(&l, 2).expect("index in range");
        let hexes: Vec<String> = proof.iter().map(Hash::to_hex).collect();
        assert_eq!(
            hexes,
            [
                "36e4970e7c84e559ed7290304c3c0672289a6918e7746d48397b0e122db7748f",
                "604d540f09268b91672ab011394d5266ccd7d4484d0d109411a55848126a1b2c",
                "12d24297164ffddfd8febbd02275c3c5ff24916dc71d5f3476931480854b3113",
            ]
        );
        assert!(verify_inclusion(&l[2], 2, 5, &proof, &merkle_root(&l)));
        assert!(!verify_inclusion(&l[3], 2, 5, &proof, &merkle_root(&l)));
        assert!(!verify_inclusion(&l[2], 5, 5, &proof, &merkle_root(&l)));
        assert!(inclusion_proof(&l, 5).is_none());
    }

    proptest! {
        #[test]
        fn a_tree_grown_in_steps_has_the_root_of_all_its_leaves(
            steps in proptest::collection::vec(0usize..40, 0..8),
        ) {
            let mut tree = MerkleBuilder::default();
            let mut all = Vec::new();
            prop_assert_eq!(tree.root(), merkle_root(&all));
            for (k, n) in steps.into_iter().enumerate() {
                let step: Vec<Hash> = (0..n).map(|i| sha256(&[k as u8, i as u8])).collect();
                tree.extend(&step);
                all.extend(step);
                prop_assert_eq!(tree.root(), merkle_root(&all), "after {} leaves", all.len());
            }
            prop_assert_eq!(MerkleBuilder::from_leaves(&all).root(), merkle_root(&all));
        }

        #[test]
        fn every_proof_verifies_and_wrong_index_fails(n in 1usize..80, pick in 0usize..80) {
            let l: Vec<Hash> = (0..n).map(|i| sha256(&(i as u64).to_le_bytes())).collect();
            let root = merkle_root(&l);
            let i = pick % n;
            let proof = inclusion_proof(&l, i).expect("in range");
            prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &proof, &root));
            if n > 1 {
                let j = (i + 1) % n;
                prop_assert!(!verify_inclusion(&l[i], j as u64, n as u64, &proof, &root));
            }
        }
    }
}
