//! `double-spend`: every round, two transfers of one funded account with the same nonce, to
//! different addresses. One goes into this node's own mempool only (so its own miner confirms
//! it); the other is gossiped to every peer. Peers and this node then disagree about which
//! spend is pending: the chain decides, and every honest mempool must drop the loser when the
//! winner is confirmed. No balance is ever spent twice on any node.
//!
//! The account is the first of the dev keys (`Keypair::dev(0..DEV_KEYS)`) that can pay; on a
//! network whose genesis funds none of them the mode has nothing to spend and says so.

use peerchain_consensus::Chain;
use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::{AccountReader, Address, Hash, Transaction};

use crate::outbox::{NetCommand, NetOutbox};

/// Dev keys searched for funds.
const DEV_KEYS: u32 = 16;
/// What each transfer moves.
const AMOUNT: u64 = 1;
/// The address of the spend kept at home.
pub(super) const HOME: Address = Address([0xd1; 20]);
/// The address of the spend gossiped to peers.
pub(super) const AWAY: Address = Address([0xd2; 20]);

/// The conflicting pair of one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pair {
    /// Kept in this node's mempool.
    pub home: Transaction,
    /// Gossiped to peers.
    pub away: Transaction,
}

/// The first dev key that can pay one more transfer, with the nonce to use.
fn funded_key(chain: &Chain) -> Option<(Keypair, u64)> {
    let fee = chain.genesis().min_fee;
    (0..DEV_KEYS).map(Keypair::dev).find_map(|key| {
        let address = key.address();
        let account = chain.store().account(&address).ok()?;
        let pending = chain.mempool().pending_cost(&address, None);
        let cost = u128::from(AMOUNT) + u128::from(fee);
        (u128::from(account.balance) >= pending.saturating_add(cost)).then(|| {
            let nonce = chain.mempool().next_nonce(&address, account.nonce);
            (key, nonce)
        })
    })
}

/// The pair of the next round, or `None` when no dev key can pay.
pub(super) fn pair(chain: &Chain) -> Option<Pair> {
    let (key, nonce) = funded_key(chain)?;
    let g = chain.genesis();
    Some(Pair {
        home: key.sign_transfer(g.chain_id, HOME, AMOUNT, g.min_fee, nonce),
        away: key.sign_transfer(g.chain_id, AWAY, AMOUNT, g.min_fee, nonce),
    })
}

/// One round: the home spend into the own mempool, the away spend to the peers. Returns the
/// two transaction ids.
pub(super) fn round(chain: &mut Chain, outbox: &NetOutbox, now_ms: u64) -> Option<(Hash, Hash)> {
    let Some(pair) = pair(chain) else {
        tracing::warn!("adversary: double-spend has no funded dev key to spend");
        return None;
    };
    let ids = (pair.home.txid(), pair.away.txid());
    if let Err(e) = chain.submit(pair.home, now_ms) {
        tracing::warn!(error = %e, "adversary: own spend refused");
        return None;
    }
    tracing::warn!(home = %ids.0, away = %ids.1, "adversary: double spend (one kept, one gossiped)");
    outbox.send(NetCommand::PublishTxs(vec![pair.away]));
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchain_consensus::ChainConfig;
    use peerchain_ledger::{Genesis, Store};

    #[test]
    fn a_round_keeps_one_spend_and_gossips_its_conflict() {
        let g = Genesis::dev(2, 1_000_000, 2000);
        let store = Store::temporary(&g).expect("store");
        let mut chain = Chain::open(store, g.clone(), ChainConfig::default()).expect("chain");
        let (outbox, mut rx) = NetOutbox::new(16);
        let now = g.timestamp_ms + 1_000;
        let (home, away) = round(&mut chain, &outbox, now).expect("a funded dev key");
        assert_ne!(home, away);
        assert!(
            chain.mempool().get(&home).is_some(),
            "the home spend is pending here"
        );
        let Some(NetCommand::PublishTxs(txs)) = rx.try_recv() else {
            panic!("the away spend is gossiped");
        };
        assert_eq!(txs.len(), 1);
        let sent = &txs[0];
        assert_eq!(sent.txid(), away);
        let kept = chain.mempool().get(&home).expect("pending").tx.clone();
        assert_eq!(
            (sent.sender(), sent.nonce),
            (kept.sender(), kept.nonce),
            "same account and nonce"
        );
        assert_ne!(sent.to, kept.to);
        // The conflict is refused by a mempool that holds the other spend.
        assert!(chain.submit(sent.clone(), now).is_err());
        // The next round spends the next nonce.
        let next = pair(&chain).expect("still funded");
        assert_eq!(next.home.nonce, kept.nonce + 1);
    }
}
