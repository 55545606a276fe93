//! Account state and the state transition of SPEC sections 2-3: transaction checks, applying a
//! block's transactions, fees and reward as a [`BlockDelta`] (which is also the undo data), and
//! the additive state digest.

use primitive_types::U256;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ApplyError, StoreError, TxError};
use crate::fast_hash::FastMap;
use crate::genesis::Genesis;
use crate::types::{Address, Block, Transaction};

/// An account: balance and count of confirmed transactions sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Whole units held.
    pub balance: u64,
    /// Confirmed transactions sent.
    pub nonce: u64,
}

impl Account {
    /// Whether the account is absent from the state (balance and nonce zero).
    pub fn is_empty(&self) -> bool {
        self.balance == 0 && self.nonce == 0
    }

    /// 16-byte encoding: balance u64 ‖ nonce u64, little-endian.
    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.balance.to_le_bytes());
        b[8..].copy_from_slice(&self.nonce.to_le_bytes());
        b
    }

    /// Reads [`Account::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::error::DecodeError> {
        let mut r = crate::types::Reader::new(bytes);
        let account = Account {
            balance: r.u64()?,
            nonce: r.u64()?,
        };
        r.finish()?;
        Ok(account)
    }
}

/// Read access to the account state a block or transaction is checked against.
pub trait AccountReader {
    /// The account at `address` (zero when never credited).
    fn account(&self, address: &Address) -> Result<Account, StoreError>;
}

impl AccountReader for std::collections::BTreeMap<Address, Account> {
    fn account(&self, address: &Address) -> Result<Account, StoreError> {
        Ok(self.get(address).copied().unwrap_or_default())
    }
}

/// Checks the parts of SPEC section 2 that need no account state (signature excluded).
pub fn check_stateless(tx: &Transaction, genesis: &Genesis) -> Result<(), TxError> {
    if tx.chain_id != genesis.chain_id {
        return Err(TxError::WrongChain {
            expected: genesis.chain_id,
            got: tx.chain_id,
        });
    }
    if tx.fee < genesis.min_fee {
        return Err(TxError::FeeTooLow {
            fee: tx.fee,
            min_fee: genesis.min_fee,
        });
    }
    Ok(())
}

/// Checks nonce and balance of `tx` against the sender's account.
pub fn check_against_account(tx: &Transaction, sender: &Account) -> Result<(), TxError> {
    if tx.nonce < sender.nonce {
        return Err(TxError::NonceTooLow {
            nonce: tx.nonce,
            expected: sender.nonce,
        });
    }
    if tx.nonce > sender.nonce {
        return Err(TxError::NonceTooHigh {
            nonce: tx.nonce,
            expected: sender.nonce,
        });
    }
    let needed = tx.wide_cost();
    if needed > u128::from(sender.balance) {
        return Err(TxError::InsufficientFunds {
            address: tx.sender(),
            balance: sender.balance,
            needed,
        });
    }
    Ok(())
}

/// `sender` after it pays for `tx`, or why it cannot ([`check_against_account`]).
pub(crate) fn debit(tx: &Transaction, sender: &Account) -> Result<Account, TxError> {
    check_against_account(tx, sender)?;
    Ok(paid(tx, sender))
}

/// `sender` after paying for `tx`, which [`check_against_account`] accepted against it.
// Cannot overflow: that check made `amount + fee <= balance` (compared in u128), and
// `tx.nonce == nonce`, which counts the account's confirmed transactions (genesis accounts
// start at 0): 2^64 of them cannot exist.
#[allow(clippy::arithmetic_side_effects)]
fn paid(tx: &Transaction, sender: &Account) -> Account {
    Account {
        balance: sender.balance - (tx.amount + tx.fee),
        nonce: sender.nonce + 1,
    }
}

/// One account's value before and after a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountChange {
    /// The account.
    pub address: Address,
    /// Its value in the parent state.
    pub before: Account,
    /// Its value after the block.
    pub after: Account,
}

/// Every account a block changes, in first-touched order. Applying writes each `after`;
/// reverting writes each `before`, so the delta doubles as the block's undo data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDelta {
    /// Changed accounts.
    pub changes: Vec<AccountChange>,
    /// Sum of the block's fees.
    pub fees: u64,
    /// Block reward credited to the miner.
    pub reward: u64,
}

/// Applies `block`'s transactions, fees and reward to the state read through `parent`
/// (SPEC section 3, rules 6-7). Signatures are not checked here: callers verify them first,
/// in parallel, with [`crate::crypto::first_invalid_signature`].
pub fn apply_block(
    parent: &impl AccountReader,
    genesis: &Genesis,
    block: &Block,
) -> Result<BlockDelta, ApplyError> {
    let mut overlay: FastMap<Address, (Account, Account)> = FastMap::default();
    let mut order: Vec<Address> = Vec::new();
    let mut load = |address: Address,
                    overlay: &mut FastMap<Address, (Account, Account)>|
     -> Result<Account, StoreError> {
        if let Some((_, now)) = overlay.get(&address) {
            return Ok(*now);
        }
        let before = parent.account(&address)?;
        overlay.insert(address, (before, before));
        order.push(address);
        Ok(before)
    };
    let mut fees: u64 = 0;
    for (index, tx) in block.transactions.iter().enumerate() {
        let fail = |source: TxError| ApplyError::Transaction {
            index,
            txid: tx.txid(),
            source,
        };
        check_stateless(tx, genesis).map_err(fail)?;
        let sender_addr = tx.sender();
        let sender = load(sender_addr, &mut overlay)?;
        let sender = debit(tx, &sender).map_err(fail)?;
        set(&mut overlay, sender_addr, sender);
        let mut recipient = load(tx.to, &mut overlay)?;
        recipient.balance = recipient.balance.checked_add(tx.amount).ok_or_else(|| {
            fail(TxError::BalanceOverflow {
                address: tx.to,
                balance: recipient.balance,
                amount: tx.amount,
            })
        })?;
        set(&mut overlay, tx.to, recipient);
        fees = fees.checked_add(tx.fee).ok_or(ApplyError::RewardOverflow {
            reward: 0,
            fees: crate::types::wide_sum(fees, tx.fee),
        })?;
    }
    let reward = genesis.reward(block.header.height);
    let mut miner = load(block.header.miner, &mut overlay)?;
    miner.balance = reward
        .checked_add(fees)
        .and_then(|credit| miner.balance.checked_add(credit))
        .ok_or(ApplyError::RewardOverflow {
            reward,
            fees: u128::from(fees),
        })?;
    set(&mut overlay, block.header.miner, miner);
    let changes = order
        .into_iter()
        .filter_map(|address| {
            let (before, after) = overlay.get(&address)?;
            (before != after).then_some(AccountChange {
                address,
                before: *before,
                after: *after,
            })
        })
        .collect();
    Ok(BlockDelta {
        changes,
        fees,
        reward,
    })
}

fn set(overlay: &mut FastMap<Address, (Account, Account)>, address: Address, value: Account) {
    if let Some(entry) = overlay.get_mut(&address) {
        entry.1 = value;
    }
}

/// The additive state digest of SPEC section 3: a sum modulo 2^256 of per-account terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateDigest(pub U256);

impl StateDigest {
    /// The digest of a whole state.
    pub fn of<'a>(accounts: impl IntoIterator<Item = (&'a Address, &'a Account)>) -> Self {
        let mut d = StateDigest::default();
        for (address, account) in accounts {
            d.add(address, account);
        }
        d
    }

    /// `SHA-256(address ‖ balance ‖ nonce)` as a big-endian integer; zero for an empty account.
    pub fn term(address: &Address, account: &Account) -> U256 {
        if account.is_empty() {
            return U256::zero();
        }
        let mut h = Sha256::new();
        h.update(address.0);
        h.update(account.encode());
        U256::from_big_endian(&h.finalize())
    }

    fn add(&mut self, address: &Address, account: &Account) {
        self.0 = self.0.overflowing_add(Self::term(address, account)).0;
    }

    fn sub(&mut self, address: &Address, account: &Account) {
        self.0 = self.0.overflowing_sub(Self::term(address, account)).0;
    }

    /// The digest after a block's changes.
    pub fn apply(mut self, delta: &BlockDelta) -> Self {
        for c in &delta.changes {
            self.sub(&c.address, &c.before);
            self.add(&c.address, &c.after);
        }
        self
    }

    /// The digest before a block's changes.
    pub fn revert(mut self, delta: &BlockDelta) -> Self {
        for c in delta.changes.iter().rev() {
            self.sub(&c.address, &c.after);
            self.add(&c.address, &c.before);
        }
        self
    }

    /// 32 big-endian bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_big_endian()
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }
}

impl std::fmt::Display for StateDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
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
    use crate::crypto::Keypair;
    use crate::types::BlockHeader;
    use std::collections::BTreeMap;

    #[test]
    fn spec_state_digests() {
        let d0 = Keypair::dev(0).address();
        let d1 = Keypair::dev(1).address();
        let mut state = BTreeMap::new();
        state.insert(
            d1,
            Account {
                balance: 500,
                nonce: 0,
            },
        );
        state.insert(
            d0,
            Account {
                balance: 1_000_000,
                nonce: 0,
            },
        );
        assert_eq!(
            StateDigest::of(&state).to_hex(),
            "8e54536036939e6cdf805fcff0e5bbb7946dfb8f146e1d861e8b82f4c458ef8e"
        );
        state.insert(
            d0,
            Account {
                balance: 998_990,
                nonce: 1,
            },
        );
        state.insert(
            d1,
            Account {
                balance: 1500,
                nonce: 0,
            },
        );
        assert_eq!(
            StateDigest::of(&state).to_hex(),
            "4771c94c2ccb2e6220e53f8bd630b6de1d2147f0469505f515cab784640ec4db"
        );
    }

    #[test]
    fn spec_transaction_vector() {
        let k0 = Keypair::dev(0);
        let tx = k0.sign_transfer(7710, Keypair::dev(1).address(), 1000, 10, 0);
        assert_eq!(
            hex::encode(tx.signing_message()),
            "70656572636861696e2f74782f76311e1e0000000000001e3b7987f0c7ad89311c45a2631342a5de16d40ba5e07bd8b2a1996e0972cc7f1489567a16dc6f7c680d290992ffe2bdf35c69c6e8030000000000000a000000000000000000000000000000"
        );
        assert_eq!(
            tx.signature.to_hex(),
            "b6fadac22aafd9c8f943aa94776a52902589043d39806c73140868d58ce5b90f14e4ebc7e45b3fb8ce313689b15be2684a96534f07f312318f6451273377bf05"
        );
        assert_eq!(
            tx.txid().to_hex(),
            "ab9401175a40fa44d02030835b6792094018db5675ab031f70b25cdebd809e02"
        );
        assert!(crate::crypto::verify_transaction(&tx));
        let decoded = Transaction::decode(&tx.encode()).expect("round trip");
        assert_eq!(decoded, tx);
    }

    #[test]
    fn a_transfer_overflowing_its_recipient_is_refused_with_its_index_and_txid() {
        let genesis = Genesis::dev(2, 1_000, 1_000);
        let (sender, recipient) = (Keypair::dev(0), Keypair::dev(1).address());
        let mut state = BTreeMap::new();
        state.insert(
            sender.address(),
            Account {
                balance: 1_000,
                nonce: 0,
            },
        );
        state.insert(
            recipient,
            Account {
                balance: u64::MAX - 15,
                nonce: 0,
            },
        );
        let fits = sender.sign_transfer(7710, recipient, 10, 1, 0);
        let overflows = sender.sign_transfer(7710, recipient, 10, 1, 1);
        let mut block = Block {
            header: BlockHeader {
                height: 1,
                ..genesis.header()
            },
            transactions: vec![fits],
        };
        assert!(apply_block(&state, &genesis, &block).is_ok());
        block.transactions.push(overflows.clone());
        assert_eq!(
            apply_block(&state, &genesis, &block).err(),
            Some(ApplyError::Transaction {
                index: 1,
                txid: overflows.txid(),
                source: TxError::BalanceOverflow {
                    address: recipient,
                    balance: u64::MAX - 5,
                    amount: 10,
                },
            })
        );
    }

    #[test]
    fn account_checks_name_values() {
        let tx = Keypair::dev(0).sign_transfer(7710, Address::ZERO, 10, 5, 3);
        let low = Account {
            balance: 100,
            nonce: 4,
        };
        assert_eq!(
            check_against_account(&tx, &low).map_err(|e| e.to_string()),
            Err("nonce 3 is below the account nonce 4".to_string())
        );
        let poor = Account {
            balance: 14,
            nonce: 3,
        };
        assert_eq!(
            check_against_account(&tx, &poor).map_err(|e| e.code()),
            Err("insufficient_funds")
        );
        let overflow = Keypair::dev(0).sign_transfer(7710, Address::ZERO, u64::MAX, 5, 3);
        let rich = Account {
            balance: u64::MAX,
            nonce: 3,
        };
        assert_eq!(
            check_against_account(&overflow, &rich).map_err(|e| e.code()),
            Err("insufficient_funds")
        );
    }
}
