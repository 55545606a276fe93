#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS_PER_TARGET seconds (default 30) on a
# temporary copy of its seed corpus, so the repository does not change. Exits non-zero when a
# target crashes, printing the artifact that reproduces it. See docs/FUZZING.md.
#
#   scripts/fuzz.sh          # 30 s per target (CI)
#   scripts/fuzz.sh 600      # the long form
#
# FUZZ_SANITIZER=none scripts/fuzz.sh runs without the address sanitizer (faster; libFuzzer's
# coverage and panics still work).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2
    exit 2
fi

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# The build and every run use the same flags (another set would rebuild everything):
# release with debug assertions (overflow checks are on in fuzz/Cargo.toml as in the node).
flags=(--sanitizer "${FUZZ_SANITIZER:-address}" --debug-assertions)

# Largest input per target: above each decoder's own limit where it has one within reach.
declare -A max_len=(
    [gossip_block]=$((256 * 1024))  # a block of ~1,700 transactions
    [gossip_tx]=81920               # the transaction topic's limit is 76,800 bytes (512 transactions)
    [sync_request]=$((16 * 1024))   # twice the request limit of 8 KiB
    [sync_response]=$((1024 * 1024))
    [tx_json]=$((64 * 1024))        # the single-body limit (a batch may be 8 MiB)
    [genesis]=$((64 * 1024))
    [cursor]=$((64 * 1024))
)

echo "== building the fuzz targets"
build_start=$SECONDS
cargo fuzz build "${flags[@]}"
echo "built in $((SECONDS - build_start)) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for target in $(cargo fuzz list); do
    len="${max_len[$target]:-65536}"
    corpus="$work/corpus/$target"
    mkdir -p "$corpus"
    if [ -d "fuzz/corpus/$target" ]; then
        cp -R "fuzz/corpus/$target/." "$corpus/"
    fi
    log="$work/$target.log"
    echo "== fuzz $target (${seconds} s, max_len $len)"
    start=$SECONDS
    if cargo fuzz run "${flags[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len="$len" -timeout=20 \
        -print_final_stats=1 >"$log" 2>&1; then
        runs="$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log")"
        rate="$(awk '/^stat::average_exec_per_sec:/ {print $2}' "$log")"
        cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')"
        fuzzed="$(awk '/^Done [0-9]+ runs in/ {print $5}' "$log")"
        line="$target: ${runs:-?} runs, ${rate:-?} exec/s, coverage ${cov:-?}, corpus $(ls "$corpus" | wc -l)"
        line="$line, fuzzed ${fuzzed:-?} s of $((SECONDS - start)) s"
        echo "$line"
        summary+=("$line")
    else
        echo "!! $target failed:"
        grep -E -A6 'panicked at|==ERROR|ERROR: libFuzzer' "$log" | head -n 40 || true
        echo "!! the end of its log:"
        tail -n 25 "$log"
        artifact="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | cut -d' ' -f5- || true)"
        if [ -n "$artifact" ]; then
            echo "!! artifact: $artifact"
            echo "!! reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run ${flags[*]} $target $artifact"
        fi
        failed+=("$target")
        summary+=("$target: FAILED ${artifact:+(artifact $artifact)}")
    fi
done

echo "== fuzz summary (${seconds} s per target)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz targets that failed: ${failed[*]}"
    exit 1
fi
