//! Block assembly and "mine now".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "tests: the crate's no-panic lints are for consensus code"
)]

mod common;

use common::*;
use peerchain_consensus::{TemplateBuilder, Verdict, build_template, solve};
use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::merkle::merkle_root;
use peerchain_ledger::{AccountReader, Address};

#[test]
fn template_takes_fees_first_and_pays_the_miner() {
    let g = easy_genesis();
    let mut chain = new_chain(&g);
    let now = now(&g);
    let to = Address([9; 20]);
    for (i, fee) in [3u64, 9, 5].iter().enumerate() {
        let tx = Keypair::dev(i as u32).sign_transfer(g.chain_id, to, 10, *fee, 0);
        chain.submit(tx, now).expect("admitted");
    }
    // A second transaction of dev 0 must come after its first even with a higher fee.
    chain
        .submit(
            Keypair::dev(0).sign_transfer(g.chain_id, to, 10, 50, 1),
            now,
        )
        .expect("admitted");
    let miner = Address([1; 20]);
    let template = build_template(&chain, miner, now).expect("template");
    let fees: Vec<u64> = template.transactions.iter().map(|t| t.fee).collect();
    assert_eq!(fees, vec![9, 5, 3, 50]);
    assert!(template.header.timestamp_ms > g.timestamp_ms);
    let block = solve(template).expect("solved");
    let v = chain.import(block, None, now).expect("import");
    assert_eq!(v[0].verdict, Verdict::Accepted { on_main: true });
    let paid = chain.store().account(&miner).expect("read").balance;
    assert_eq!(paid, g.reward(1) + 9 + 5 + 3 + 50);
    assert!(
        chain.mempool().is_empty(),
        "confirmed transactions leave the mempool"
    );
}

#[test]
fn an_extended_template_is_a_block_the_chain_accepts_until_the_tip_moves() {
    let g = easy_genesis();
    let mut chain = new_chain(&g);
    let now = now(&g);
    let to = Address([9; 20]);
    let transfer = |dev: u32, nonce| Keypair::dev(dev).sign_transfer(g.chain_id, to, 10, 1, nonce);
    chain.submit(transfer(0, 0), now).expect("admitted");
    let miner = Address([1; 20]);
    let mut builder = TemplateBuilder::new(&chain, miner, now).expect("template");
    assert_eq!(builder.len(), 1);
    let root_before = builder.template().header.tx_root;
    let admitted: Vec<_> = [transfer(0, 1), transfer(1, 0), transfer(0, 2)]
        .into_iter()
        .map(|tx| {
            let txid = tx.txid();
            chain.submit(tx, now).expect("admitted");
            txid
        })
        .collect();
    assert_eq!(
        builder.extend(&chain, &admitted, now + 7).expect("extend"),
        3
    );
    let template = builder.template();
    assert_eq!(
        template.header.timestamp_ms,
        now + 7,
        "the time of the extension"
    );
    let rebuilt = build_template(&chain, miner, now).expect("template");
    assert_eq!(template.transactions.len(), rebuilt.transactions.len());
    let txids: Vec<_> = template.transactions.iter().map(|t| t.txid()).collect();
    assert_ne!(template.header.tx_root, root_before);
    assert_eq!(template.header.tx_root, merkle_root(&txids));
    let block = solve(template).expect("solved");
    let tip = block.hash();
    let v = chain.import(block, None, now).expect("import");
    assert_eq!(v[0].verdict, Verdict::Accepted { on_main: true });
    assert!(chain.mempool().is_empty());
    // The tip moved: the old builder appends nothing more, even for a new admission.
    let late = transfer(2, 0);
    let late_id = late.txid();
    chain.submit(late, now).expect("admitted");
    assert_eq!(
        builder.extend(&chain, [&late_id], now + 9).expect("extend"),
        0
    );
    assert_ne!(builder.parent(), tip);
}
