//! `peerchain scenario run` through the real binary: a short scenario with load, a partition
//! and its heal, a kill and a restart passes and reports its samples; one with an assertion
//! that cannot hold exits 1 naming it; a malformed file exits 2 naming the line; SIGINT ends
//! a run with 130 and a report. Every node process a run started is gone when it returns.
//! The examples' report.html pages open in headless Chromium with no console error and
//! nothing fetched (screenshots in `target/report-screenshots/`), and that check fails a page
//! with a script error or a fetch (`tests/browser/report.mjs`; skipped without Chromium
//! unless `PEERCHAIN_REQUIRE_BROWSER` is set).

mod support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use peerchain_testkit::browser_or_skip;
use serde_json::Value;
use support::{BIN, signal};

/// Longest a run may take here before the test stops it (SIGTERM, so it still kills its
/// nodes) and fails.
const RUN_LIMIT: Duration = Duration::from_secs(240);

fn run_scenario(file: &Path, out: &Path) -> Output {
    run_scenario_with(file, out, &[])
}

fn run_scenario_with(file: &Path, out: &Path, extra: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(["scenario", "run"])
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start peerchain scenario run");
    wait_bounded(child)
}

fn wait_bounded(mut child: Child) -> Output {
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > RUN_LIMIT {
            signal(&child, libc::SIGTERM);
            let out = child.wait_with_output().expect("output");
            panic!(
                "the run took longer than {RUN_LIMIT:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    child.wait_with_output().expect("output")
}

fn read_report(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    serde_json::from_str(&text).expect("report.json is JSON")
}

/// Every pid the report lists is gone, or at least no longer a node of this run.
fn assert_no_node_left(report: &Value, out: &Path) {
    let out = out.to_string_lossy().into_owned();
    for node in report["nodes"].as_array().expect("nodes") {
        for pid in node["pids"].as_array().expect("pids") {
            let pid = pid.as_u64().expect("pid");
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(
                !cmdline.contains(&out),
                "node process {pid} is still running: {cmdline}"
            );
        }
    }
}

/// Runs `file` into `out`, checks that it left no node running and passed; returns the report
/// and stdout.
fn run_passing(file: &Path, out: &Path) -> (Value, String) {
    let run = run_scenario(file, out);
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    let report = read_report(out);
    assert_no_node_left(&report, out);
    assert!(
        run.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        run.status.code()
    );
    (report, stdout)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_short_scenario_with_load_partition_and_kill_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("short.toml");
    std::fs::write(
        &file,
        r#"
# Three nodes, a partition of node 2, a kill and restart of node 2, load on nodes 0 and 1.
name = "short"
seed = 42
duration_s = 30

[network]
nodes = 3
block_time_ms = 1000
hashrate = 30000

[load]
tps = 10
duration_s = 18
accounts = 6
nodes = [0, 1]

[[at]]
t = 4
partition = [[0, 1], [2]]

[[at]]
t = 10
heal = true

[[at]]
t = 12
kill = 2

[[at]]
t = 15
start = 2

[assert]
converge_within_s = 14
no_transfer_lost = true
max_reorg_depth = 30
"#,
    )
    .expect("write the scenario");
    let out = dir.path().join("out");
    let (report, stdout) = run_passing(&file, &out);
    assert!(stdout.contains("scenario short: PASSED"), "{stdout}");
    assert_eq!(report["passed"], true);
    assert_eq!(report["seed"], 42);
    let samples = report["samples"].as_array().expect("samples");
    assert!(samples.len() > 3 * 100, "{} samples", samples.len());
    let assertions = report["assertions"].as_array().expect("assertions");
    let names: Vec<&str> = assertions
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["converge_within_s", "no_transfer_lost", "max_reorg_depth"]
    );
    assert!(
        assertions.iter().all(|a| a["passed"] == true),
        "{assertions:?}"
    );
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 4);
    assert!(steps.iter().all(|s| s["ok"] == true), "{steps:?}");
    assert!(report["transfer_summary"]["accepted"].as_u64().unwrap_or(0) > 100);
    assert_eq!(
        report["nodes"][2]["pids"].as_array().map(Vec::len),
        Some(2),
        "killed and started again"
    );
    assert!(
        report["faults"].as_array().is_some_and(|f| f.len() == 2),
        "a partition and a down period: {}",
        report["faults"]
    );
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.contains("PASSED"), "report.html");
    for kind in ["lineChart", "barChart", "blockTree"] {
        assert!(
            html.contains(&format!("data-chart=\"{kind}\" data-spec=\"{{")),
            "a {kind} spec in report.html"
        );
    }
    assert!(
        html.contains("PeerchainCharts = {") && !html.contains("<script src"),
        "the shared chart code is inlined, nothing is loaded"
    );
}

/// The examples CI runs, in a short form: the whole timeline at half length (`--scale 0.5`).
/// `PEERCHAIN_SCENARIO_EXAMPLES=all` runs every file in `scenarios/`, and
/// `PEERCHAIN_SCENARIO_SCALE=1` runs them as written (the full form).
const CI_EXAMPLES: [&str; 3] = ["partition-heal", "crash-restart", "selfish-miner"];

#[test]
fn the_examples_pass_in_short_form_and_keep_their_reports_under_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let reports = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scenario-reports");
    let scale = std::env::var("PEERCHAIN_SCENARIO_SCALE").unwrap_or_else(|_| "0.5".into());
    let names: Vec<String> = match std::env::var("PEERCHAIN_SCENARIO_EXAMPLES").as_deref() {
        Ok("all") => {
            let mut all: Vec<String> = std::fs::read_dir(&root)
                .expect("scenarios/")
                .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_owned))
                .collect();
            all.sort();
            all
        }
        _ => CI_EXAMPLES.iter().map(|n| (*n).to_owned()).collect(),
    };
    let mut pages = Vec::new();
    for name in &names {
        let out = reports.join(name);
        // A run needs a new or empty directory: the last run's report goes.
        let _ = std::fs::remove_dir_all(&out);
        let file = root.join(format!("{name}.toml"));
        let run = run_scenario_with(&file, &out, &["--scale", &scale]);
        let report = read_report(&out);
        assert_no_node_left(&report, &out);
        assert!(
            run.status.success(),
            "{name} (x{scale}): exit {:?}; report in {}\nstderr:\n{}",
            run.status.code(),
            out.display(),
            text(&run.stderr)
        );
        assert_eq!(report["passed"], true, "{name}");
        assert!(out.join("report.html").is_file(), "{name}: report.html");
        pages.push(out.join("report.html"));
        // Keep the reports, not the nodes' stores.
        for entry in std::fs::read_dir(&out).expect("output directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        eprintln!("{name} (x{scale}): passed; report in {}", out.display());
    }
    // Issue 14: every report opens in headless Chromium with no console error and nothing
    // fetched, and shows its essentials; one browser for all of them.
    if let Some(browser) = browser_or_skip("report.html browser check") {
        let check = browser.check_reports(&report_screenshots(), &pages);
        let said = format!("{}{}", text(&check.stdout), text(&check.stderr));
        assert!(
            check.status.success(),
            "report.html in headless Chromium:\n{said}"
        );
        eprint!("{said}");
    }
}

/// Where the report check's screenshots go: `target/report-screenshots/`.
fn report_screenshots() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("report-screenshots")
}

/// The report check can fail: `tests/browser/report-fixture.html` (static SVG) passes it as
/// it is, and copies of it with a console error, an uncaught exception, an image from the
/// network, a local file fetched, no verdict, or a chart line without its hover title each
/// fail it, named with the reason. So does a real report.html (its charts drawn by the shared
/// chart code) of a 4-second run, and copies of it with a chart of an unknown kind or an
/// empty spec fail.
#[test]
fn the_report_check_fails_a_page_with_a_script_error_a_fetch_or_a_missing_part() {
    let Some(browser) = browser_or_skip("report.html browser check") else {
        return;
    };
    let fixture = browser.script_dir.join("report-fixture.html");
    let page = std::fs::read_to_string(&fixture).expect("tests/browser/report-fixture.html");
    let dir = tempfile::tempdir().expect("tempdir");
    let end = "</body>";
    let faults = [
        (
            "console-error",
            page.replace(end, "<script>console.error(\"injected\")</script></body>"),
            "console error: injected",
        ),
        (
            "page-error",
            page.replace(end, "<script>throw new Error(\"injected\")</script></body>"),
            "page error: injected",
        ),
        (
            "network-image",
            page.replace(
                end,
                "<img src=\"http://127.0.0.1:9/x.png\" alt=\"\"></body>",
            ),
            "fetched http://127.0.0.1:9/x.png",
        ),
        (
            "local-file",
            page.replace(end, "<img src=\"x.png\" alt=\"\"></body>"),
            "/x.png (a report must fetch nothing)",
        ),
        (
            "no-verdict",
            page.replace(" id=\"verdict\"", ""),
            "no verdict (#verdict)",
        ),
        (
            "untitled-line",
            page.replace("<title>node 1</title>", ""),
            "1 of 4 chart marks have no hover <title>",
        ),
        (
            "undrawn-chart",
            page.replace(
                end,
                "<div data-chart=\"lineChart\" data-spec=\"{}\"></div></body>",
            ),
            "1 charts not drawn (lineChart)",
        ),
    ];
    let real = tiny_report(dir.path());
    let real_page = std::fs::read_to_string(&real).expect("the real report");
    let first_spec = real_page
        .split("data-chart=\"lineChart\" data-spec=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a line chart in a real report");
    let real_faults = [
        (
            "unknown-chart",
            real_page.replacen("data-chart=\"lineChart\"", "data-chart=\"noSuchChart\"", 1),
            "1 charts not drawn (noSuchChart)",
        ),
        (
            "empty-spec",
            real_page.replacen(first_spec, "{}", 1),
            "1 charts drawn with no mark (lineChart)",
        ),
    ];
    let faults: Vec<_> = faults.into_iter().chain(real_faults).collect();
    let mut pages = vec![fixture.clone(), real.clone()];
    for (name, html, _) in &faults {
        assert_ne!(*html, page, "{name}: the fault was injected");
        let path = dir.path().join(format!("{name}.html"));
        std::fs::write(&path, html).expect("write a faulty page");
        pages.push(path);
    }
    let check = browser.check_reports(&dir.path().join("screenshots"), &pages);
    let said = format!("{}{}", text(&check.stdout), text(&check.stderr));
    assert_eq!(check.status.code(), Some(1), "{said}");
    for good in [&fixture, &real] {
        assert!(
            said.contains(&format!("ok {}", good.display())),
            "{} itself passes:\n{said}",
            good.display()
        );
    }
    for ((name, _, reason), path) in faults.iter().zip(&pages[2..]) {
        // The page's block: "FAIL <path>:" and its indented reasons.
        let head = format!("FAIL {}:\n", path.display());
        let block: String = said
            .split_once(&head)
            .map(|(_, rest)| {
                rest.lines()
                    .take_while(|l| l.starts_with("  "))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_else(|| panic!("{name} did not fail:\n{said}"));
        assert!(block.contains(reason), "{name}: {reason:?} not in\n{block}");
    }
    assert!(said.contains("9 of 11 reports failed"), "{said}");
}

/// The report.html of a 4-second run of two nodes with a little load, in `dir`.
fn tiny_report(dir: &Path) -> PathBuf {
    let file = dir.join("tiny.toml");
    std::fs::write(
        &file,
        "name = \"tiny\"\nseed = 1\nduration_s = 4\n\
         [network]\nnodes = 2\nblock_time_ms = 500\nhashrate = 20000\n\
         [load]\ntps = 10\nduration_s = 3\naccounts = 2\n",
    )
    .expect("write the scenario");
    let out = dir.join("tiny");
    run_passing(&file, &out);
    out.join("report.html")
}

/// Samples of `node` taken between `from_ms` and `to_ms`.
fn samples_of(report: &Value, node: u64, from_ms: u64, to_ms: u64) -> Vec<&Value> {
    report["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter(|s| s["node"] == node && s["up"] == true)
        .filter(|s| (from_ms..to_ms).contains(&s["t_ms"].as_u64().unwrap_or(0)))
        .collect()
}

#[test]
fn link_faults_and_hash_share_steps_reach_the_nodes_and_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("links.toml");
    std::fs::write(
        &file,
        r#"
# Delay on every link from the start, loss and delay between node 0 and the others for a
# while, node 2's hash share taken away and given back.
name = "links"
seed = 5
duration_s = 24

[network]
nodes = 3
block_time_ms = 1000
hashrate = 30000

[network.link]
delay_ms = 30

[load]
tps = 8
duration_s = 14
accounts = 4
nodes = [1]

[[at]]
t = 4
link = { between = [[0], [1, 2]], loss = 0.3, delay_ms = 300 }

[[at]]
t = 6
hash_share = { node = 2, share = 0 }

[[at]]
t = 11
hash_share = { node = 2, share = 0.5 }

[[at]]
t = 12
link = { between = [[0], [1, 2]] }

[assert]
converge_within_s = 10
no_transfer_lost = true
max_stale_rate = 1.0
"#,
    )
    .expect("write the scenario");
    let out = dir.path().join("out");
    let (report, _) = run_passing(&file, &out);
    let steps = report["steps"].as_array().expect("steps");
    assert!(steps.iter().all(|s| s["ok"] == true), "{steps:?}");
    // What the nodes reported: every node faults its 2 links from the start; after the clear
    // step node 0 faults none and nodes 1 and 2 only the link between them.
    let faulted = |node, from, to| -> Vec<u64> {
        samples_of(&report, node, from, to)
            .iter()
            .filter_map(|s| s["link_faults"].as_u64())
            .collect()
    };
    for node in 0..3 {
        let before = faulted(node, 1_000, 3_500);
        assert!(
            !before.is_empty() && before.iter().all(|&n| n == 2),
            "node {node}: {before:?}"
        );
    }
    let after = faulted(0, 14_000, 24_000);
    assert!(
        !after.is_empty() && after.iter().all(|&n| n == 0),
        "node 0: {after:?}"
    );
    let after = faulted(1, 14_000, 24_000);
    assert!(
        !after.is_empty() && after.iter().all(|&n| n == 1),
        "node 1: {after:?}"
    );
    // Node 2 stopped mining with its share taken away, and mined again with it back.
    let mining = |from, to| -> Vec<bool> {
        samples_of(&report, 2, from, to)
            .iter()
            .filter_map(|s| s["mining"].as_bool())
            .collect()
    };
    assert!(
        mining(7_000, 10_500).iter().all(|m| !m),
        "{:?}",
        mining(7_000, 10_500)
    );
    assert!(
        mining(12_000, 24_000).iter().all(|m| *m),
        "{:?}",
        mining(12_000, 24_000)
    );
    // The report: link and not-mining fault windows, the dial's statistics, the assertion.
    let kinds: Vec<&str> = report["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(
        kinds.iter().filter(|k| **k == "link").count() == 2 && kinds.contains(&"not_mining"),
        "{kinds:?}"
    );
    let mining_stats = &report["mining"];
    assert!(
        mining_stats["blocks_seen"].as_u64().unwrap_or(0) > 5,
        "{mining_stats}"
    );
    let share = mining_stats["by_node"][2]["hash_share"]
        .as_f64()
        .expect("share");
    assert!(
        share > 0.25 && share < 0.45,
        "node 2's time-averaged share {share}"
    );
    let names: Vec<&str> = report["assertions"]
        .as_array()
        .expect("assertions")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(names.contains(&"max_stale_rate"), "{names:?}");
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(
        html.contains("stale rate"),
        "report.html has the dial's table"
    );
}

/// Built to fail: both sides of a partition mine, so the heal makes one of them reorganise
/// at least a block, and `max_reorg_depth = 0` cannot hold. The heal's time is drawn from
/// the seed (`jitter_s`), and the report says what was drawn.
#[test]
fn a_reorg_deeper_than_allowed_across_a_partition_exits_1_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("fails.toml");
    std::fs::write(
        &file,
        "name = \"fails\"\nseed = 3\nduration_s = 22\n\
         [network]\nnodes = 2\nblock_time_ms = 500\nhashrate = 20000\n\
         [[at]]\nt = 2\npartition = [[0], [1]]\n\
         [[at]]\nt = 10\njitter_s = 2\nheal = true\n\
         [assert]\nmax_reorg_depth = 0\nmax_stale_rate = 1.0\n",
    )
    .expect("write the scenario");
    let out = dir.path().join("out");
    let run = run_scenario(&file, &out);
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    let report = read_report(&out);
    assert_no_node_left(&report, &out);
    assert_eq!(
        run.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("assertion failed: max_reorg_depth: deepest"),
        "a reorg was seen and judged too deep; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("assertion failed: max_stale_rate"),
        "{stderr}"
    );
    assert!(stdout.contains("scenario fails: FAILED"), "{stdout}");
    assert_eq!(report["passed"], false);
    let heal = &report["steps"][1];
    let t = heal["t_ms"].as_u64().expect("t_ms");
    assert!((10_000..=12_000).contains(&t), "drawn heal time {t}");
    assert_eq!(
        heal["notes"][0],
        format!("t drawn from 10 s to 12 s: {} s", t as f64 / 1000.0),
        "{heal}"
    );
    assert_eq!(report["scenario"]["steps"][1]["t_ms"], t);
}

#[test]
fn a_malformed_file_exits_2_naming_line_and_field_and_starts_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[network]\nnodes = 2\n\n[[at]]\nt = 3\nlink = { loss = 1.5 }\n",
    )
    .expect("write");
    let out = dir.path().join("out");
    let run = run_scenario(&file, &out);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("line 4: at[0].link.loss = 1.5: must be from 0 to 1"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing was started or written");
}

#[test]
fn sigint_stops_the_run_kills_its_nodes_and_still_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("long.toml");
    std::fs::write(
        &file,
        "name = \"long\"\nduration_s = 600\n[network]\nnodes = 2\nhashrate = 20000\n\
         [load]\ntps = 5\nduration_s = 600\naccounts = 2\n",
    )
    .expect("write the scenario");
    let out = dir.path().join("out");
    let mut child = Command::new(BIN)
        .args(["scenario", "run"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start peerchain scenario run");
    // Wait until the run's clock started (it prints the node URLs then).
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    let started = Instant::now();
    while !seen.contains("node 1: http") {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).expect("read stderr");
        assert!(
            n > 0 && started.elapsed() < Duration::from_secs(90),
            "no start:\n{seen}"
        );
        seen.push_str(&line);
    }
    std::thread::sleep(Duration::from_secs(3));
    signal(&child, libc::SIGINT);
    let run = wait_bounded(child);
    let report = read_report(&out);
    assert_no_node_left(&report, &out);
    assert_eq!(run.status.code(), Some(130), "{}", text(&run.stdout));
    assert_eq!(report["interrupted"], true);
    assert_eq!(report["passed"], false);
    assert!(report["duration_ms"].as_u64().is_some_and(|d| d < 60_000));
    assert!(text(&run.stdout).contains("scenario long: INTERRUPTED"));
}
