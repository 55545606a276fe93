//! The genesis file: bytes -> `Genesis::from_json` (parsing and validation, as
//! `Genesis::from_file` runs them for `peerchain node` and the testnet), then what the node
//! derives from a genesis at start. A genesis that parses must parse again, unchanged, from
//! its own JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peerchain_ledger::Genesis;

fuzz_target!(|data: &[u8]| {
    // `from_file` reads the file into a String: bytes that are not UTF-8 stop there.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(genesis) = Genesis::from_json(text) else {
        return;
    };
    let again = Genesis::from_json(&genesis.to_json()).expect("to_json output parses");
    assert_eq!(again, genesis);
    let _ = genesis.hash();
    let _ = genesis.block();
    let _ = genesis.state();
    let _ = genesis.max_block_txs();
    let _ = genesis.initial_target.work();
    let _ = genesis.pow_limit.work();
    for height in [0, 1, genesis.halving_interval, u64::MAX] {
        let _ = genesis.reward(height);
    }
});
