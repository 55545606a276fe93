//! Writes the seed corpus of the fuzz targets (`fuzz/corpus/<target>/seed-*`) with the real
//! encoders: `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`. The seeds are
//! committed; run this again when an encoding changes.

use std::fs;
use std::path::{Path, PathBuf};

use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::merkle::merkle_root;
use peerchain_ledger::{Block, BlockHeader, Genesis, Hash, Transaction};
use peerchain_network::CompactBlock;
use peerchain_network::fuzzing::{example_sync_requests, example_sync_responses};
use peerchain_rpc::fuzzing::example_cursors;
use peerchain_rpc::views::TxFields;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    fs::create_dir_all(&dir).expect("create the corpus directory");
    fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
}

/// A block on top of `parent` holding `txs`, with the right Merkle root (proof of work is not
/// a decoding matter).
fn block(parent: &BlockHeader, txs: Vec<Transaction>) -> Block {
    let txids: Vec<Hash> = txs.iter().map(Transaction::txid).collect();
    Block {
        header: BlockHeader {
            version: 1,
            height: parent.height + 1,
            prev_hash: parent.hash(),
            tx_root: merkle_root(&txids),
            timestamp_ms: parent.timestamp_ms + 2000,
            target: parent.target,
            nonce: 42,
            miner: Keypair::dev(9).address(),
        },
        transactions: txs,
    }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("corpus");
    let genesis_text =
        fs::read_to_string(root.join("../genesis.json")).expect("read the testnet genesis.json");
    let genesis = Genesis::from_json(&genesis_text).expect("the testnet genesis parses");

    let keys: Vec<Keypair> = (0..4).map(Keypair::dev).collect();
    let txs: Vec<Transaction> = (0..3u64)
        .map(|i| {
            let from = &keys[i as usize];
            let to = keys[(i as usize + 1) % keys.len()].address();
            from.sign_transfer(genesis.chain_id, to, 1_000 * (i + 1), 1 + i, i)
        })
        .collect();
    let b1 = block(&genesis.header(), vec![txs[0].clone()]);
    let b2 = block(&b1.header, txs[1..].to_vec());
    let b3 = block(&b2.header, Vec::new());
    let blocks = vec![b1.clone(), b2.clone(), b3.clone()];

    // gossip_block: compact blocks (the topic's payload) and whole blocks (the target also
    // checks the whole-block decoders).
    write(&out, "gossip_block", "genesis", &genesis.block().encode());
    write(&out, "gossip_block", "one-tx", &b1.encode());
    write(&out, "gossip_block", "two-txs", &b2.encode());
    write(&out, "gossip_block", "empty", &b3.encode());
    for (name, b) in [("one-tx", &b1), ("two-txs", &b2), ("empty", &b3)] {
        let compact = CompactBlock::of(b).encode();
        write(&out, "gossip_block", &format!("compact-{name}"), &compact);
    }

    // gossip_tx
    for (i, tx) in txs.iter().enumerate() {
        write(&out, "gossip_tx", &format!("tx{i}"), &tx.encode());
    }

    // sync_request and sync_response
    let gh = genesis.hash();
    let requests = ["status", "get-headers", "get-blocks", "get-block-txs"];
    for (name, req) in requests.iter().zip(example_sync_requests(gh, &blocks)) {
        write(&out, "sync_request", name, &req);
    }
    let responses = ["status", "headers", "blocks", "block-txs", "refused"];
    for (name, resp) in responses.iter().zip(example_sync_responses(gh, &blocks)) {
        write(&out, "sync_response", name, &resp);
    }

    // tx_json: one object (POST /v1/transactions) and an array (POST /v1/transactions/batch)
    let fields: Vec<TxFields> = txs.iter().map(TxFields::from).collect();
    let one = serde_json::to_vec_pretty(&fields[0]).expect("json");
    write(&out, "tx_json", "single", &one);
    write(
        &out,
        "tx_json",
        "batch",
        &serde_json::to_vec(&fields).expect("json"),
    );

    // genesis
    write(&out, "genesis", "testnet", genesis_text.as_bytes());
    write(
        &out,
        "genesis",
        "dev",
        Genesis::dev(2, 1_000_000, 2000).to_json().as_bytes(),
    );

    // cursor: one per list, as the lists issue them, and the path parameters
    let lists = ["number", "mempool", "pending", "confirmed"];
    let mut cursors: Vec<(String, String)> = lists
        .iter()
        .zip(example_cursors(txs[0].txid()))
        .map(|(name, text)| (name.to_string(), text))
        .collect();
    cursors.push(("hash".to_owned(), format!("0x{}", b1.hash())));
    cursors.push(("address".to_owned(), keys[0].address().to_hex()));
    cursors.push(("height".to_owned(), "7".to_owned()));
    for (name, text) in cursors {
        write(&out, "cursor", &name, text.as_bytes());
    }
}
