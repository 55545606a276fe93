//! The link faults in force between the scenario's nodes, kept as (receiver, sender) pairs:
//! a node holds its faults in memory, so a restarted node must be given its own again, and a
//! node seen for the first time must be faulted by the others.
//!
//! It owns: which fault each directed link has. It must never: talk to a node (the cluster
//! applies what this says).

use std::collections::BTreeMap;

use super::spec::LinkSpec;

/// The faulted links: receiver, sender, fault. Clear links are not kept.
#[derive(Debug, Default)]
pub struct LinkTable {
    faults: BTreeMap<(usize, usize), LinkSpec>,
}

impl LinkTable {
    /// Records `fault` on both directions of every link across `between` (every link among
    /// `nodes` nodes when `None`); a clear fault removes them. Returns the directed links
    /// (receiver, sender) it set.
    pub fn set(
        &mut self,
        between: Option<&[Vec<usize>]>,
        nodes: usize,
        fault: LinkSpec,
    ) -> Vec<(usize, usize)> {
        let pairs: Vec<(usize, usize)> = match between {
            Some(groups) => across(groups),
            None => (0..nodes)
                .flat_map(|r| (0..nodes).filter(move |&s| s != r).map(move |s| (r, s)))
                .collect(),
        };
        for &pair in &pairs {
            if fault.is_clear() {
                self.faults.remove(&pair);
            } else {
                self.faults.insert(pair, fault);
            }
        }
        pairs
    }

    /// Every faulted link with `node` at one end: what to set again when it (re)starts.
    pub fn touching(&self, node: usize) -> Vec<(usize, usize, LinkSpec)> {
        self.faults
            .iter()
            .filter(|((r, s), _)| *r == node || *s == node)
            .map(|(&(r, s), &f)| (r, s, f))
            .collect()
    }

    /// The fault of the link from `sender` to `receiver` (clear when none).
    pub fn get(&self, receiver: usize, sender: usize) -> LinkSpec {
        self.faults
            .get(&(receiver, sender))
            .copied()
            .unwrap_or_default()
    }
}

/// Both directions of every link between nodes of different groups.
fn across(groups: &[Vec<usize>]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        for (hi, h) in groups.iter().enumerate() {
            if gi != hi {
                pairs.extend(g.iter().flat_map(|&r| h.iter().map(move |&s| (r, s))));
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy(loss: f64) -> LinkSpec {
        LinkSpec {
            loss,
            ..LinkSpec::default()
        }
    }

    #[test]
    fn groups_fault_both_directions_across_and_nothing_within() {
        let mut t = LinkTable::default();
        let set = t.set(Some(&[vec![0, 1], vec![2]]), 4, lossy(0.1));
        assert_eq!(set, [(0, 2), (1, 2), (2, 0), (2, 1)]);
        assert_eq!(t.get(2, 0), lossy(0.1));
        assert_eq!(t.get(0, 2), lossy(0.1));
        assert!(t.get(0, 1).is_clear(), "same group");
        assert!(t.get(3, 0).is_clear(), "node 3 is in no group");
    }

    #[test]
    fn every_link_and_clearing_and_what_a_restart_needs() {
        let mut t = LinkTable::default();
        assert_eq!(t.set(None, 3, lossy(0.05)).len(), 6);
        assert_eq!(
            t.touching(2),
            [
                (0, 2, lossy(0.05)),
                (1, 2, lossy(0.05)),
                (2, 0, lossy(0.05)),
                (2, 1, lossy(0.05)),
            ]
        );
        t.set(Some(&[vec![0], vec![2]]), 3, LinkSpec::default());
        assert!(t.get(0, 2).is_clear() && t.get(2, 0).is_clear());
        assert_eq!(t.touching(2), [(1, 2, lossy(0.05)), (2, 1, lossy(0.05))]);
    }
}
