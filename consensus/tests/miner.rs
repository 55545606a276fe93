//! Block assembly, "mine now" and the background miner with its hash-rate cap.

mod common;

use std::time::{Duration, Instant};

use common::*;
use peerchain_consensus::{Miner, MinerConfig, Verdict, build_template, solve};
use peerchain_ledger::crypto::Keypair;
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
fn background_miner_finds_blocks_and_respects_the_cap() {
    let g = easy_genesis();
    let chain = new_chain(&g);
    let (found_tx, found_rx) = crossbeam_channel::bounded(4);
    let miner = Miner::start(
        &MinerConfig {
            threads: 2,
            hashrate_cap: Some(2_000),
        },
        found_tx,
    );
    let template = build_template(&chain, Address([2; 20]), now(&g)).expect("template");
    miner.set_job(Some(template));
    let block = found_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("an easy block is found quickly");
    assert!(block.header.target.is_met_by(&block.hash()));
    // With the easy target every job is solved almost at once; measure the cap on a job that
    // cannot be solved (target 0 is never met).
    let mut hard = build_template(&chain, Address([2; 20]), now(&g)).expect("template");
    hard.header.target = peerchain_ledger::Target(peerchain_ledger::U256::zero());
    let before = miner.hashes();
    let started = Instant::now();
    miner.set_job(Some(hard));
    std::thread::sleep(Duration::from_millis(1500));
    let rate = (miner.hashes() - before) as f64 / started.elapsed().as_secs_f64();
    assert!(
        rate < 2_000.0 * 1.5,
        "capped at 2,000 H/s, measured {rate:.0} H/s"
    );
    assert!(rate > 100.0, "still mining, measured {rate:.0} H/s");
    miner.stop();
}
