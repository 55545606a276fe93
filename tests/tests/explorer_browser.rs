//! The block explorer in headless Chromium against two live nodes: home page and live update,
//! search by height, hash, txid and address, a Merkle proof checked in the browser, the testnet
//! view during a partition and after healing, no console errors; screenshots of every page go
//! to `target/explorer-screenshots/`. And the unit tests of the chart code the explorer shares
//! with the scenario reports (`tests/browser/charts.test.mjs`, in Node).
//!
//! Needs Debian's `chromium` and `playwright-core` (installed by `.ci/run`). Without them the
//! test says so and passes, unless `PEERCHAIN_REQUIRE_BROWSER=1` (set by `.ci/run`) makes their
//! absence a failure (`peerchain_testkit::browser`).

use peerchain_ledger::crypto::Keypair;
use peerchain_testkit::{Browser, browser_or_skip};
use peerchain_tests::{NodeOptions, TestNet, easy_genesis, workspace_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explorer_in_headless_chromium() -> anyhow::Result<()> {
    let Some(Browser {
        chromium,
        script_dir,
    }) = browser_or_skip("explorer browser test")
    else {
        return Ok(());
    };
    let net = TestNet::start(2, easy_genesis(), NodeOptions::default()).await?;
    net.wait_all("a peer each", std::time::Duration::from_secs(30), |s| {
        s["peer_count"].as_u64() >= Some(1)
    })
    .await?;
    net.mine(0, 3).await?;
    let g = &net.genesis;
    let tx = Keypair::dev(0).sign_transfer(g.chain_id, Keypair::dev(1).address(), 4242, 2, 0);
    let (status, body) = net
        .post(0, "/v1/transactions", &serde_json::to_value(&tx)?)
        .await?;
    anyhow::ensure!(status == 202, "submit: {status} {body}");
    net.mine(0, 1).await?;
    net.wait_same_tip(4, std::time::Duration::from_secs(30))
        .await?;
    let out_dir = workspace_root().join("target/explorer-screenshots");
    let output = tokio::process::Command::new("node")
        .arg(script_dir.join("explorer.mjs"))
        .current_dir(&script_dir)
        .env(
            "NODES",
            format!("{},{}", net.nodes[0].url, net.nodes[1].url),
        )
        .env("ADMIN_TOKEN", &net.nodes[0].token)
        .env("PEER_A", &net.nodes[0].peer_id)
        .env("PEER_B", &net.nodes[1].peer_id)
        .env("P2P_A", &net.nodes[0].p2p)
        .env("P2P_B", &net.nodes[1].p2p)
        .env("TXID", tx.txid().to_hex())
        .env("ADDRESS", Keypair::dev(1).address().to_hex())
        .env("SCREENSHOTS", &out_dir)
        .env("CHROMIUM", &chromium)
        .output()
        .await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    net.stop().await;
    anyhow::ensure!(
        output.status.success(),
        "explorer browser test failed:\n{text}"
    );
    assert!(text.contains("explorer browser test passed"), "{text}");
    Ok(())
}

/// The shared chart code's own tests (`rpc/assets/charts.js`: ticks, line and bar charts, block
/// trees), run by Node's test runner.
#[test]
fn shared_chart_code_unit_tests() {
    let Some(Browser { script_dir, .. }) = browser_or_skip("chart code unit tests") else {
        return;
    };
    let output = std::process::Command::new("node")
        .args(["--test", "charts.test.mjs"])
        .current_dir(&script_dir)
        .output()
        .expect("run node --test charts.test.mjs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "charts.test.mjs failed:\n{text}");
    assert!(text.contains("# fail 0"), "{text}");
}
