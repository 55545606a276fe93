//! Tests of the scenario file format: the files that parse, and each refusal with its field,
//! line and value.

use std::collections::BTreeSet;

use super::*;

const GOOD: &str = r#"
name = "demo"
seed = 7

[network]
nodes = 4
block_time_ms = 1000
hashrate = 40000
min_fee = 2

[[network.node]]
index = 3
hash_share = 0.4
adversary = "selfish"

[[network.node]]
index = 2
start_s = 5

[load]
tps = 20
duration_s = 30
accounts = 6
nodes = [0, 1]

[[at]]
t = 10
partition = [[0, 1], [2, 3]]

[[at]]
t = 20
heal = true

[[at]]
t = 25
kill = 1

[[at]]
t = 30
start = 1

[[at]]
t = 31
adversary = { node = 3, mode = "off" }

[assert]
converge_within_s = 15
no_transfer_lost = true
max_reorg_depth = 6
"#;

fn err(text: &str) -> String {
    parse(text, "x").expect_err("must be refused").to_string()
}

/// GOOD with `from` replaced by `to` (which must occur).
fn good_with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn a_good_file_parses_with_defaults_and_shares() {
    let s = parse(GOOD, "x").expect("valid");
    assert_eq!(s.name, "demo");
    assert_eq!(s.seed, 7);
    assert_eq!(s.network.nodes, 4);
    assert_eq!(s.network.genesis.min_fee, 2);
    assert_eq!(s.network.genesis.accounts, 16);
    let n = &s.network.node;
    assert!((n[3].hash_share - 0.4).abs() < 1e-9);
    assert_eq!(n[3].hashrate, 16_000);
    assert_eq!(n[0].hashrate, 8_000, "the rest split evenly");
    assert!(
        n[3].allow_adversary,
        "start mode and step need --allow-adversary"
    );
    assert_eq!(n[2].start_ms, 5000);
    let load = s.load.as_ref().expect("load");
    assert_eq!((load.tps, load.accounts, load.fee), (20, 6, 2));
    assert_eq!(load.nodes, vec![0, 1]);
    assert_eq!(load.total(), 600);
    let actions: Vec<String> = s.steps.iter().map(|s| s.action.describe()).collect();
    assert_eq!(
        actions,
        [
            "start 2",
            "partition [0, 1] | [2, 3]",
            "heal",
            "kill 1",
            "start 1",
            "adversary 3 off"
        ]
    );
    assert_eq!(s.steps[1].line, 26, "the line of its [[at]]");
    assert_eq!(s.steps[0].line, 16, "the line of its [[network.node]]");
    assert_eq!(s.assert.converge_within_ms, Some(15_000));
    // Last step 31 s + 15 s window, or load end 30 s + 20 s tail: 51 s.
    assert_eq!(s.duration_ms, 51_000);
}

#[test]
fn the_smallest_file_is_one_node() {
    let s = parse("[network]\nnodes = 1\n", "tiny").expect("valid");
    assert_eq!(s.name, "tiny");
    assert_eq!(s.network.node[0].hashrate, 100_000);
    assert_eq!(s.duration_ms, 20_000);
    assert!(s.load.is_none() && s.steps.is_empty());
}

#[test]
fn toml_errors_name_the_line_and_field() {
    let e = err("[network]\nnodes = 4\nspeed = 3\n");
    assert!(
        e.contains("line 3") && e.contains("unknown field `speed`"),
        "{e}"
    );
    let e = err("[network]\nnodes = \"four\"\n");
    assert!(e.contains("line 2") && e.contains("nodes"), "{e}");
    let e = err("[load]\ntps = 1\nduration_s = 1\n");
    assert!(e.contains("missing field `network`"), "{e}");
    let e = err(&good_with("kill = 1", "kill = -1"));
    assert!(e.contains("line 36"), "{e}");
}

#[test]
fn bad_values_name_field_value_and_rule() {
    let cases = [
        (
            "nodes = 4",
            "nodes = 17",
            "network.nodes = 17: must be 1 to 16",
        ),
        ("nodes = 4", "nodes = 0", "network.nodes = 0"),
        ("hashrate = 40000", "hashrate = 0", "network.hashrate = 0"),
        (
            "block_time_ms = 1000",
            "block_time_ms = 0",
            "network.block_time_ms = 0",
        ),
        (
            "hash_share = 0.4",
            "hash_share = 1.5",
            "network.node[index = 3].hash_share = 1.5",
        ),
        (
            "index = 3",
            "index = 9",
            "network.node.index = 9: no such node",
        ),
        (
            "index = 2",
            "index = 3",
            "network.node.index = 3: given twice",
        ),
        (
            "\"selfish\"",
            "\"sneaky\"",
            "network.node[index = 3].adversary = \"sneaky\": unknown adversary mode",
        ),
        ("tps = 20", "tps = 0", "load.tps = 0"),
        (
            "accounts = 6",
            "accounts = 17",
            "load.accounts = 17: more senders",
        ),
        ("nodes = [0, 1]", "nodes = [0, 7]", "load.nodes = 7"),
        ("duration_s = 30", "duration_s = -1", "load.duration_s = -1"),
        ("t = 10", "t = -3", "at[0].t = -3"),
        ("kill = 1", "kill = 4", "at[2].kill = 4: no such node"),
        (
            "[[0, 1], [2, 3]]",
            "[[0, 1], [1, 3]]",
            "node 1 is in more than one group",
        ),
        (
            "[[0, 1], [2, 3]]",
            "[[0, 1, 2, 3]]",
            "at least two non-empty groups",
        ),
        ("heal = true", "heal = false", "at[1].heal = false"),
        (
            "mode = \"off\"",
            "mode = \"stall-sync\"",
            "can only be chosen at start",
        ),
        (
            "max_reorg_depth = 6",
            "max_reorg_depth = 6\nmin_confirmed_tps = -1",
            "assert.min_confirmed_tps = -1",
        ),
    ];
    for (from, to, want) in cases {
        let e = err(&good_with(from, to));
        assert!(e.contains(want), "{from} -> {to}: {e}");
    }
}

#[test]
fn step_errors_carry_their_line() {
    let e = err(&good_with("kill = 1", "kill = 4"));
    assert!(e.starts_with("line 34: at[2].kill = 4"), "{e}");
    let e = err(&good_with("kill = 1", "kill = 1\nstop = 2"));
    assert!(
        e.contains("line 34: at[2] = kill and stop: a step holds exactly one action"),
        "{e}"
    );
    let e = err(&good_with("kill = 1", ""));
    assert!(e.contains("at[2] = t = 25: no action"), "{e}");
}

#[test]
fn impossible_timelines_are_refused() {
    let e = err(&good_with("start = 1", "kill = 1"));
    assert!(
        e.contains("at[3] = kill 1: node 1 is not running then (t = 30 s)"),
        "{e}"
    );
    let e = err(&good_with("heal = true", "partition = [[0], [1, 2, 3]]"));
    assert!(e.contains("a partition is in place"), "{e}");
    let e = err(&good_with("heal = true", "partition = [[0], [1]]"));
    assert!(
        e.contains("node 2 is in no group: put every node in one"),
        "{e}"
    );
    let e = err(&good_with("partition = [[0, 1], [2, 3]]", "kill = 0"));
    assert!(e.contains("heal: there is no partition to heal"), "{e}");
    let e = err(&good_with("start = 1", "start = 2"));
    assert!(e.contains("start 2: node 2 is already running then"), "{e}");
}

#[test]
fn convergence_cannot_be_asked_of_a_partition_never_healed() {
    let e = err(&good_with(
        "heal = true",
        "mining = { node = 0, enabled = false }",
    ));
    assert!(
        e.contains("assert.converge_within_s = 15: the timeline ends with a partition"),
        "{e}"
    );
}

#[test]
fn the_example_scenarios_parse_and_say_what_they_show() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.starts_with("# Shows: "),
            "{}: first line",
            path.display()
        );
        let s = load(&path, 1.0, SeedChoice::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(s.duration_ms <= 90_000, "{}: short", path.display());
        count += 1;
    }
    assert!(count >= 3, "{count} examples");
}

#[test]
fn mining_on_needs_a_share() {
    let text = "[network]\nnodes = 2\n[[network.node]]\nindex = 1\nmine = false\n\
                [[at]]\nt = 1\nmining = { node = 1, enabled = true }\n";
    let e = err(text);
    assert!(e.contains("node 1 has hash_share 0"), "{e}");
    let ok = text.replace("mine = false", "mine = false\nhash_share = 0.5");
    let s = parse(&ok, "x").expect("valid with a share");
    assert_eq!(s.network.node[1].hashrate, 50_000);
    assert!(!s.network.node[1].mine);
}

#[test]
fn the_ban_assertion_needs_an_adversary() {
    let sc = parse(
        &good_with("max_reorg_depth = 6", "adversary_banned_within_s = 10"),
        "x",
    )
    .expect("valid: node 3 is an adversary");
    assert_eq!(sc.assert.adversary_banned_within_ms, Some(10_000));
    let e = err("[network]\nnodes = 2\n[assert]\nadversary_banned_within_s = 5\n");
    assert!(e.contains("no node is an adversary"), "{e}");
}

/// The last step of GOOD, free to replace.
const ADV_OFF: &str = r#"adversary = { node = 3, mode = "off" }"#;

#[test]
fn link_faults_hash_shares_and_stale_rates_parse_and_bad_ones_are_refused() {
    let text = good_with(
        ADV_OFF,
        "link = { between = [[0], [2, 3]], loss = 0.05, delay_ms = 80, bandwidth_kbps = 500 }",
    );
    let text = text.replace("min_fee = 2", "min_fee = 2\n[network.link]\ndelay_ms = 20");
    let text = text.replace(
        "max_reorg_depth = 6",
        "max_reorg_depth = 6\nmax_stale_rate = 0.2",
    );
    let text = format!("{text}\n[[at]]\nt = 12\nhash_share = {{ node = 2, share = 0 }}\n");
    let sc = parse(&text, "t").expect("valid");
    assert_eq!(
        sc.network.link,
        Some(LinkSpec {
            loss: 0.0,
            delay_ms: 20,
            bandwidth_kbps: 0
        })
    );
    assert_eq!(sc.assert.max_stale_rate, Some(0.2));
    let actions: Vec<String> = sc.steps.iter().map(|s| s.action.describe()).collect();
    assert!(
        actions.contains(&"link [0] | [2, 3] loss 5%, delay 80 ms, 500 kbit/s".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"hash_share 2 0".to_owned()),
        "{actions:?}"
    );

    let bad = [
        ("link = { loss = 1.5 }", "at[4].link.loss"),
        ("link = { delay_ms = 20000 }", "at[4].link.delay_ms"),
        ("link = { between = [[0], [0]] }", "more than one group"),
        ("link = { between = [[0, 1]] }", "at least two"),
        ("link = { jitter_ms = 3 }", "unknown field `jitter_ms`"),
        (
            "hash_share = { node = 9, share = 0.1 }",
            "at[4].hash_share.node",
        ),
        (
            "hash_share = { node = 1, share = 2 }",
            "at[4].hash_share.share",
        ),
    ];
    for (step, want) in bad {
        let e = err(&good_with(ADV_OFF, step));
        assert!(e.contains(want), "{step}: {e}");
    }
    let e = err(&good_with("max_reorg_depth = 6", "max_stale_rate = 1.5"));
    assert!(e.contains("assert.max_stale_rate"), "{e}");
    let e = err(&good_with(
        "min_fee = 2",
        "min_fee = 2\n[network.link]\nbetween = [[0], [1]]",
    ));
    assert!(e.contains("network.link.between"), "{e}");
}

#[test]
fn scale_multiplies_the_timeline_and_nothing_else() {
    let full = parse(GOOD, "x").expect("valid");
    let half = parse_scaled(GOOD, "x", 0.5).expect("valid at half length");
    assert_eq!(half.scale, 0.5);
    let times = |s: &Scenario| s.steps.iter().map(|s| s.t_ms).collect::<Vec<_>>();
    let halved: Vec<u64> = times(&full).iter().map(|t| t / 2).collect();
    assert_eq!(times(&half), halved);
    let (fl, hl) = (full.load.as_ref(), half.load.as_ref());
    assert_eq!(hl.map(|l| l.duration_ms), fl.map(|l| l.duration_ms / 2));
    assert_eq!(hl.map(|l| l.tps), fl.map(|l| l.tps));
    assert_eq!(half.network.node[2].start_ms, 2_500);
    assert_eq!(half.network.genesis, full.network.genesis);
    assert_eq!(half.assert, full.assert);
    let e = parse_scaled(GOOD, "x", 0.0)
        .expect_err("refused")
        .to_string();
    assert!(e.contains("--scale"), "{e}");
}

#[test]
fn mining_needs_a_share_then_and_a_hash_share_step_gives_one() {
    let base = "[network]\nnodes = 2\n[[network.node]]\nindex = 1\nmine = false\n";
    let on = "[[at]]\nt = 5\nmining = { node = 1, enabled = true }\n";
    let e = err(&format!("{base}{on}"));
    assert!(e.contains("hash_share 0 then"), "{e}");
    let share = "[[at]]\nt = 2\nhash_share = { node = 1, share = 0.3 }\n";
    parse(&format!("{base}{share}{on}"), "t").expect("a share before mining on");
}

#[test]
fn load_assertions_need_a_load_and_duration_must_cover_the_run() {
    let e = err("[network]\nnodes = 1\n[assert]\nno_transfer_lost = true\n");
    assert!(
        e.contains("assert.no_transfer_lost = (set): needs a [load] section"),
        "{e}"
    );
    let e = err(&format!("duration_s = 40\n{GOOD}"));
    assert!(
        e.contains("duration_s = 40: ends before the scenario does"),
        "{e}"
    );
    let s = parse(&format!("duration_s = 60\n{GOOD}"), "x").expect("long enough");
    assert_eq!(s.duration_ms, 60_000);
}

#[test]
fn a_bad_genesis_is_refused_before_any_node_starts() {
    let e = err(&good_with(
        "min_fee = 2",
        "min_fee = 2\naccounts = 50000\nbalance = 1000000000000",
    ));
    assert!(
        e.contains("network = (the genesis fields)") && e.contains("2^53"),
        "{e}"
    );
    let e = err(&good_with("accounts = 6", "accounts = 6\nfee = 1"));
    assert!(
        e.contains("load.fee = 1: below the network's min_fee 2"),
        "{e}"
    );
}

#[test]
fn too_much_load_is_refused() {
    let e =
        err(&good_with("tps = 20", "tps = 10000").replace("duration_s = 30", "duration_s = 100"));
    assert!(e.contains("at most 200000 transfers"), "{e}");
}

/// Three nodes, node 2 an adversary, a kill and a start of any node with jitter.
const SEEDED: &str = r#"
[network]
nodes = 4
[[network.node]]
index = 3
adversary = "selfish"

[[at]]
t = 10
jitter_s = 5
kill = "any"

[[at]]
t = 20
jitter_s = 2.5
start = "any"

[[at]]
t = 30
partition = [[0, 1], [2, 3]]

[[at]]
t = 40
heal = true
jitter_s = 10
"#;

fn seeded(text: &str, seed: u64) -> Scenario {
    let choice = SeedChoice {
        flag: Some(seed),
        otherwise: 0,
    };
    parse_with(text, "s", 1.0, choice).unwrap_or_else(|e| panic!("seed {seed}: {e}"))
}

/// Each step's time and action, the timeline a seed draws.
fn timeline(s: &Scenario) -> Vec<(u64, String)> {
    s.steps
        .iter()
        .map(|s| (s.t_ms, s.action.describe()))
        .collect()
}

#[test]
fn one_seed_draws_one_timeline_and_another_seed_another() {
    let a = seeded(SEEDED, 11);
    assert_eq!(a.seed, 11);
    assert_eq!(timeline(&a), timeline(&seeded(SEEDED, 11)), "repeatable");
    let others: BTreeSet<Vec<(u64, String)>> = (0..20)
        .map(|seed| timeline(&seeded(SEEDED, seed)))
        .collect();
    assert!(others.len() > 10, "seeds draw different timelines");
    for seed in 0..50 {
        let s = seeded(SEEDED, seed);
        let [kill, start, _, heal] = s.steps.as_slice() else {
            panic!("four steps: {:?}", timeline(&s));
        };
        assert!((10_000..=15_000).contains(&kill.t_ms), "{}", kill.t_ms);
        assert!((20_000..=22_500).contains(&start.t_ms), "{}", start.t_ms);
        assert!((40_000..=50_000).contains(&heal.t_ms), "{}", heal.t_ms);
        assert_eq!(kill.written_t_ms, 10_000);
        assert_eq!(kill.jitter_ms, 5_000);
        let Action::Kill(killed) = kill.action else {
            panic!("{:?}", kill.action);
        };
        assert!([1, 2].contains(&killed), "never node 0 nor the adversary 3");
        assert_eq!(kill.drawn_from, Some(vec![1, 2]));
        assert_eq!(start.action, Action::Start(killed), "the only node down");
        assert_eq!(start.drawn_from, Some(vec![killed]));
        // The duration covers the latest heal any seed can draw, plus the 20 s tail.
        assert_eq!(s.duration_ms, 70_000);
    }
}

#[test]
fn the_report_states_what_the_seed_drew() {
    let s = seeded(SEEDED, 3);
    let kill = &s.steps[0];
    let node = kill.action.node().expect("a node");
    assert_eq!(
        kill.draws(),
        [
            format!("t drawn from 10 s to 15 s: {} s", kill.t_ms as f64 / 1000.0),
            format!("node {node} drawn from [1, 2]"),
        ]
    );
    assert!(s.steps[2].draws().is_empty(), "written as it happens");
}

#[test]
fn a_step_added_at_the_end_changes_no_other_draw_nor_the_load_seed() {
    let more = format!("{SEEDED}\n[[at]]\nt = 45\njitter_s = 3\nkill = \"any\"\n");
    let by_source = |s: &Scenario| -> Vec<(String, u64, String)> {
        s.steps
            .iter()
            .filter(|s| s.source != "at[4]")
            .map(|s| (s.source.clone(), s.t_ms, s.action.describe()))
            .collect()
    };
    for seed in 0..10 {
        let (a, b) = (seeded(SEEDED, seed), seeded(&more, seed));
        assert_eq!(by_source(&a), by_source(&b), "seed {seed}");
        assert_eq!(b.steps.len(), 5);
        assert_eq!(a.seed, b.seed);
    }
}

#[test]
fn jitter_scales_with_the_timeline() {
    let choice = SeedChoice {
        flag: Some(5),
        otherwise: 0,
    };
    let half = parse_with(SEEDED, "s", 0.5, choice).expect("valid at half length");
    assert_eq!(half.steps[0].written_t_ms, 5_000);
    assert_eq!(half.steps[0].jitter_ms, 2_500);
    assert!((5_000..=7_500).contains(&half.steps[0].t_ms));
}

#[test]
fn the_seed_is_the_flag_then_the_file_then_the_fallback() {
    let choice = |flag| SeedChoice {
        flag,
        otherwise: 99,
    };
    let with_seed = format!("seed = 4\n{SEEDED}");
    let pick = |text: &str, flag| parse_with(text, "s", 1.0, choice(flag)).expect("ok");
    assert_eq!(pick(&with_seed, Some(8)).seed, 8);
    assert_eq!(pick(&with_seed, None).seed, 4);
    assert_eq!(pick(SEEDED, None).seed, 99);
}

#[test]
fn the_drawn_times_are_what_the_timeline_checks() {
    // Node 1 is killed between 10 and 20 s and started at 15 s: refused when the kill
    // falls after the start, valid otherwise.
    let text = "[network]\nnodes = 2\n[[at]]\nt = 10\njitter_s = 10\nkill = 1\n\
                [[at]]\nt = 15\nstart = 1\n";
    let outcomes: Vec<Result<Scenario, String>> = (0..20)
        .map(|seed| {
            let choice = SeedChoice {
                flag: Some(seed),
                otherwise: 0,
            };
            parse_with(text, "s", 1.0, choice).map_err(|e| e.to_string())
        })
        .collect();
    assert!(outcomes.iter().any(Result::is_ok), "{outcomes:?}");
    let refused = outcomes
        .iter()
        .find_map(|o| o.as_ref().err())
        .expect("some seed draws the kill after the start");
    assert!(
        refused.starts_with("line 7: at[1] = start 1: node 1 is already running then (t = 15 s)"),
        "{refused}"
    );
    for s in outcomes.iter().flatten() {
        assert_eq!(s.steps[0].action, Action::Kill(1), "{:?}", timeline(s));
        assert!(s.steps[0].t_ms <= 15_000, "the kill drawn before the start");
    }
    let text = "[network]\nnodes = 2\n[[at]]\nt = 10\njitter_s = 10\nkill = 1\n\
                [[at]]\nt = 25\nkill = 1\n";
    let e = err(text);
    assert!(
        e.contains("at[1] = kill 1: node 1 is not running then (t = 25 s)"),
        "{e}"
    );
    let text = "[network]\nnodes = 2\n[[at]]\nt = 10\njitter_s = 10\nkill = 1\n\
                [[at]]\nt = 12\njitter_s = 1\nkill = 1\n";
    let e = err(text);
    assert!(
        e.contains("node 1 is not running then (t = ") && e.contains("with seed 0)"),
        "the drawn time, its range and the seed: {e}"
    );
}

#[test]
fn any_node_prefers_others_to_node_0_and_refuses_when_none_fits() {
    let one = "[network]\nnodes = 1\n[[at]]\nt = 1\nstop = \"any\"\n\
               [[at]]\nt = 2\nstart = \"any\"\n";
    let s = parse(one, "x").expect("node 0 is the only choice");
    assert_eq!(
        timeline(&s),
        [(1_000, "stop 0".to_owned()), (2_000, "start 0".to_owned())]
    );
    let e = err("[network]\nnodes = 2\n[[at]]\nt = 1\nstart = \"any\"\n");
    assert!(
        e.starts_with("line 3: at[0].start = \"any\": no node qualifies: no node that is never an adversary was killed or stopped and is down then (t = 1 s)"),
        "{e}"
    );
    let adversaries = "[network]\nnodes = 2\n[[network.node]]\nindex = 1\n\
                       adversary = \"selfish\"\n[[at]]\nt = 1\nkill = 0\n\
                       [[at]]\nt = 2\njitter_s = 1\nkill = \"any\"\n";
    let e = err(adversaries);
    assert!(
        e.starts_with("line 9: at[1].kill = \"any\": no node qualifies: every node that is never an adversary is down then (t = "),
        "{e}"
    );
    // A node delayed by start_s is not "down" for start = "any" before its start.
    let delayed = "[network]\nnodes = 3\n[[network.node]]\nindex = 2\nstart_s = 9\n\
                   [[at]]\nt = 1\nkill = 1\n[[at]]\nt = 2\nstart = \"any\"\n";
    let s = parse(delayed, "x").expect("valid");
    assert_eq!(s.steps[1].action, Action::Start(1));
}

#[test]
fn bad_node_refs_and_jitters_name_the_line_and_field() {
    let e = err(&good_with("kill = 1", "kill = \"some\""));
    assert!(
        e.contains("line 36") && e.contains("kill") && e.contains("a node index or \"any\""),
        "{e}"
    );
    let e = err(&good_with("kill = 1", "kill = \"any\"\njitter_s = -1"));
    assert!(
        e.starts_with("line 34: at[2].jitter_s = -1: must be a number of seconds"),
        "{e}"
    );
    let e = err(&good_with("kill = 1", "kill = 1\njitter_s = 3590"));
    assert!(
        e.starts_with("line 34: at[2].jitter_s = 3590: t + jitter_s is 3615 s"),
        "{e}"
    );
    let e = err(&good_with("kill = 1", "kill = 7"));
    assert!(e.contains("at[2].kill = 7: no such node"), "{e}");
}
