#!/usr/bin/env bash
# Runs a local peerchain testnet on this machine (SPEC section 6).
#
#   scripts/testnet.sh up [N]            build if needed, start N nodes (default 4), wait until ready
#   scripts/testnet.sh status            one line per node
#   scripts/testnet.sh down | clean      stop every node (keep data) | stop and delete TESTNET_DIR
#   scripts/testnet.sh stop I | start I | kill I
#   scripts/testnet.sh partition A B     e.g. partition 0,1 2,3
#   scripts/testnet.sh heal
#   scripts/testnet.sh load TPS SECONDS
#   scripts/testnet.sh logs I
#
# TESTNET_BACKEND=compose runs the same commands on Docker Compose (scripts/compose.sh,
# docs/DEPLOY.md); the default backend is processes on this machine.
#
# Environment: TESTNET_DIR (default ./testnet), P2P_BASE (7710), RPC_BASE (8710),
# GENESIS (./genesis.json), HASHRATE (hashes/s per node, default 200000), PEERCHAIN_BIN (use this
# binary instead of building one). Relative paths are relative to the repository root, so the
# script works from any current directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
abs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$ROOT" "$1" ;; esac; }
TESTNET_DIR="$(abs "${TESTNET_DIR:-testnet}")"
P2P_BASE="${P2P_BASE:-7710}"
RPC_BASE="${RPC_BASE:-8710}"
GENESIS="$(abs "${GENESIS:-genesis.json}")"
HASHRATE="${HASHRATE:-200000}"
BIN="${PEERCHAIN_BIN:-$ROOT/target/release/peerchain}"

die() { echo "testnet: $*" >&2; exit 1; }
node_dir() { printf '%s/node%s' "$TESTNET_DIR" "$1"; }
rpc_url() { printf 'http://127.0.0.1:%s' "$((RPC_BASE + $1))"; }
count() { [ -f "$TESTNET_DIR/count" ] || die "no testnet in $TESTNET_DIR (run: $0 up)"; cat "$TESTNET_DIR/count"; }
pid_of() { local f; f="$(node_dir "$1")/pid"; [ -f "$f" ] && cat "$f" || true; }
alive() { local p; p="$(pid_of "$1")"; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
check_index() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -lt "$(count)" ] || die "no node $1 (nodes 0..$(( $(count) - 1 )))"; }
token_file() { printf '%s/admin.token' "$(node_dir "$1")"; }
admin() { local i="$1"; shift; "$BIN" admin --rpc "$(rpc_url "$i")" --token-file "$(token_file "$i")" "$@" >/dev/null; }
peer_id() { cat "$(node_dir "$1")/peer_id"; }

build() {
    if [ -n "${PEERCHAIN_BIN:-}" ]; then
        [ -x "$BIN" ] || die "PEERCHAIN_BIN=$BIN is not executable"
        return
    fi
    echo "building peerchain (release)..." >&2
    (cd "$ROOT" && cargo build --release --quiet -p peerchain) || die "build failed"
}

# Prints "height tip peers mempool peer_id" of node I, or fails.
node_line() { "$BIN" status --rpc "$(rpc_url "$1")" --format line 2>/dev/null; }

wait_ready() { # I, need_peer, timeout_s
    local i="$1" need_peer="$2" deadline=$((SECONDS + $3)) line
    while [ "$SECONDS" -lt "$deadline" ]; do
        alive "$i" || die "node $i exited; see $(node_dir "$i")/node.log"
        if line="$(node_line "$i")"; then
            local peers; peers="$(awk '{print $6}' <<<"$line")"
            if [ "$need_peer" = 0 ] || [ "${peers:-0}" -ge 1 ]; then
                awk '{print $10}' <<<"$line" >"$(node_dir "$i")/peer_id"
                return 0
            fi
        fi
        sleep 0.3
    done
    die "node $i not ready after $3 s; see $(node_dir "$i")/node.log"
}

start_node() { # I
    local i="$1" dir; dir="$(node_dir "$i")"
    alive "$i" && die "node $i is already running (pid $(pid_of "$i"))"
    port_busy "$((RPC_BASE + i))" && die "port $((RPC_BASE + i)) is in use"
    port_busy "$((P2P_BASE + i))" && die "port $((P2P_BASE + i)) is in use"
    mkdir -p "$dir"
    local args=(node --genesis "$GENESIS" --data-dir "$dir"
        --p2p-listen "/ip4/127.0.0.1/tcp/$((P2P_BASE + i))" --rpc-listen "127.0.0.1:$((RPC_BASE + i))"
        --mine --mine-hashrate "$HASHRATE" --explorer-nodes "$TESTNET_DIR/nodes.json")
    local miner; miner="$(dev_address "$i")"
    [ -n "$miner" ] && args+=(--miner-address "$miner")
    # Bootnodes: node 0, and every other node running now (so nodes restarted in any order,
    # node 0 last, find each other). A node remembers no peers across restarts.
    local boot=()
    for ((j = 0; j < $(count); j++)); do
        [ "$j" = "$i" ] && continue
        [ -f "$(node_dir "$j")/peer_id" ] || continue
        if [ "$j" = 0 ] || alive "$j"; then
            boot+=("/ip4/127.0.0.1/tcp/$((P2P_BASE + j))/p2p/$(peer_id "$j")")
        fi
    done
    [ "${#boot[@]}" -gt 0 ] && args+=(--bootnode "$(IFS=,; echo "${boot[*]}")")
    nohup "$BIN" "${args[@]}" >>"$dir/node.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
}

dev_address() { # node I pays its rewards to the genesis allocation I (mod their count), if any
    local addrs; addrs="$(node_dev_addresses)"
    local n; n="$(grep -c . <<<"$addrs" || true)"
    [ "${n:-0}" -gt 0 ] || return 0
    sed -n "$(( ($1 % n) + 1 ))p" <<<"$addrs"
}
node_dev_addresses() {
    # Allocation addresses of the genesis file, in file order.
    grep -o '"address": *"[0-9a-fA-F]*"' "$GENESIS" | sed 's/.*"\([0-9a-fA-F]*\)"$/\1/'
}

write_explorer_list() {
    local n; n="$(count)"; local urls=()
    for ((i = 0; i < n; i++)); do urls+=("\"$(rpc_url "$i")\""); done
    (IFS=,; echo "[${urls[*]}]") >"$TESTNET_DIR/nodes.json"
}

cmd_up() {
    local n="${1:-4}"
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || die "up: N must be a positive number, got '$n'"
    [ -f "$GENESIS" ] || die "genesis file $GENESIS not found"
    if [ -f "$TESTNET_DIR/count" ]; then
        for ((i = 0; i < $(count); i++)); do alive "$i" && die "a testnet is already running in $TESTNET_DIR (node $i); run: $0 down"; done
    fi
    for ((i = 0; i < n; i++)); do
        port_busy "$((RPC_BASE + i))" && die "port $((RPC_BASE + i)) is in use: is another testnet running? (set RPC_BASE)"
        port_busy "$((P2P_BASE + i))" && die "port $((P2P_BASE + i)) is in use: is another testnet running? (set P2P_BASE)"
    done
    build
    mkdir -p "$TESTNET_DIR"
    echo "$n" >"$TESTNET_DIR/count"
    rm -f "$TESTNET_DIR/partitions"
    start_node 0
    wait_ready 0 0 60
    for ((i = 1; i < n; i++)); do start_node "$i"; done
    for ((i = 1; i < n; i++)); do wait_ready "$i" 1 60; done
    [ "$n" -gt 1 ] && wait_ready 0 1 60
    write_explorer_list
    printf '%-5s %-54s %-24s %s\n' node "peer id" HTTP explorer
    for ((i = 0; i < n; i++)); do
        printf '%-5s %-54s %-24s %s/\n' "$i" "$(peer_id "$i")" "$(rpc_url "$i")" "$(rpc_url "$i")"
    done
}

cmd_status() {
    local n; n="$(count)"
    for ((i = 0; i < n; i++)); do
        local line
        if alive "$i" && line="$(node_line "$i")"; then
            awk -v i="$i" '{printf "node %s up   height %s tip %s peers %s mempool %s\n", i, $2, $4, $6, $8}' <<<"$line"
        else
            echo "node $i down"
        fi
    done
}

stop_node() { # I
    local i="$1" p; p="$(pid_of "$i")"
    alive "$i" || { rm -f "$(node_dir "$i")/pid"; return 0; }
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
        echo "node $i did not stop in 30 s: killing it" >&2
        kill -KILL "$p" 2>/dev/null || true
    fi
    rm -f "$(node_dir "$i")/pid"
}

cmd_down() {
    [ -f "$TESTNET_DIR/count" ] || return 0
    local n; n="$(count)"
    for ((i = 0; i < n; i++)); do stop_node "$i"; done
    echo "testnet stopped (data kept in $TESTNET_DIR)"
}

cmd_clean() { cmd_down; rm -rf "$TESTNET_DIR"; echo "removed $TESTNET_DIR"; }

# Waits up to $2 s for node $1 to have a peer; fails (without exiting) if none came.
wait_peer() { # I, timeout_s
    local deadline=$((SECONDS + $2)) line
    while [ "$SECONDS" -lt "$deadline" ]; do
        if line="$(node_line "$1")" && [ "$(awk '{print $6}' <<<"$line")" -ge 1 ]; then
            return 0
        fi
        sleep 0.3
    done
    return 1
}

cmd_start() {
    check_index "$1"
    [ -x "$BIN" ] || build
    local others=0
    for ((j = 0; j < $(count); j++)); do
        [ "$j" != "$1" ] && alive "$j" && others=$((others + 1))
    done
    start_node "$1"
    wait_ready "$1" 0 60
    if [ "$others" -eq 0 ]; then
        echo "node $1 started; no peers yet: every other node is down (it connects when they start)"
    elif wait_peer "$1" 60; then
        echo "node $1 started"
    else
        echo "node $1 started, but has no peer after 60 s; see $(node_dir "$1")/node.log" >&2
    fi
}
cmd_stop() { check_index "$1"; stop_node "$1"; echo "node $1 stopped"; }
cmd_kill() {
    check_index "$1"
    alive "$1" || die "node $1 is not running"
    kill -KILL "$(pid_of "$1")"
    rm -f "$(node_dir "$1")/pid"
    echo "node $1 killed"
}

groups_pairs() { # A B -> lines "a b"
    local a b
    IFS=, read -ra ga <<<"$1"; IFS=, read -ra gb <<<"$2"
    for a in "${ga[@]}"; do for b in "${gb[@]}"; do
        check_index "$a"; check_index "$b"
        [ "$a" = "$b" ] && die "node $a is in both groups"
        echo "$a $b"
    done; done
}

cmd_partition() {
    [ $# -eq 2 ] || die "usage: partition A B (e.g. partition 0,1 2,3)"
    local pairs; pairs="$(groups_pairs "$1" "$2")"
    while read -r a b; do
        admin "$a" block-peer "$(peer_id "$b")" || die "node $a could not block node $b"
        admin "$b" block-peer "$(peer_id "$a")" || die "node $b could not block node $a"
        echo "$a $b" >>"$TESTNET_DIR/partitions"
    done <<<"$pairs"
    echo "partitioned {$1} from {$2}"
}

cmd_heal() {
    [ -f "$TESTNET_DIR/partitions" ] || { echo "no partition to heal"; return 0; }
    while read -r a b; do
        alive "$a" && admin "$a" unblock-peer "$(peer_id "$b")" || true
        alive "$b" && admin "$b" unblock-peer "$(peer_id "$a")" || true
        alive "$a" && alive "$b" && admin "$a" dial "/ip4/127.0.0.1/tcp/$((P2P_BASE + b))/p2p/$(peer_id "$b")" || true
    done <"$TESTNET_DIR/partitions"
    rm -f "$TESTNET_DIR/partitions"
    echo "healed"
}

cmd_load() {
    [ $# -eq 2 ] || die "usage: load TPS SECONDS"
    local n rpcs=(); n="$(count)"
    for ((i = 0; i < n; i++)); do alive "$i" && rpcs+=("$(rpc_url "$i")"); done
    [ "${#rpcs[@]}" -gt 0 ] || die "no node is running"
    (IFS=,; "$BIN" load --rpc "${rpcs[*]}" --tps "$1" --seconds "$2")
}

cmd_logs() { check_index "$1"; exec tail -n 50 -F "$(node_dir "$1")/node.log"; }

main() {
    if [ "${TESTNET_BACKEND:-process}" = compose ]; then
        exec "$ROOT/scripts/compose.sh" "$@"
    fi
    [ "${TESTNET_BACKEND:-process}" = process ] || die "TESTNET_BACKEND must be process or compose, got '$TESTNET_BACKEND'"
    local cmd="${1:-}"; shift || true
    case "$cmd" in
        up) cmd_up "$@" ;;
        status) cmd_status ;;
        down) cmd_down ;;
        clean) cmd_clean ;;
        start) [ $# -eq 1 ] || die "usage: start I"; cmd_start "$1" ;;
        stop) [ $# -eq 1 ] || die "usage: stop I"; cmd_stop "$1" ;;
        kill) [ $# -eq 1 ] || die "usage: kill I"; cmd_kill "$1" ;;
        partition) cmd_partition "$@" ;;
        heal) cmd_heal ;;
        load) cmd_load "$@" ;;
        logs) [ $# -eq 1 ] || die "usage: logs I"; cmd_logs "$1" ;;
        ""|-h|--help|help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' ;;
        *) die "unknown command '$cmd' (see $0 --help)" ;;
    esac
}

main "$@"
