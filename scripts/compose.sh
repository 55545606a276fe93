#!/usr/bin/env bash
# A peerchain testnet on Docker Compose: the generator of an N-node Compose file and the
# commands of scripts/testnet.sh for it (which runs this when TESTNET_BACKEND=compose).
#
#   scripts/compose.sh gen N [DIR]        write DIR/docker-compose.yml and its files (default DIR: COMPOSE_DIR)
#   scripts/compose.sh up [N]             generate (if N differs or none yet) and start N nodes (default 4)
#   scripts/compose.sh status             one line per node
#   scripts/compose.sh down | clean       stop and remove the containers (keep volumes) | and the volumes and DIR
#   scripts/compose.sh stop I | start I | kill I
#   scripts/compose.sh partition A B      a real network cut: group B's containers leave the network
#   scripts/compose.sh heal
#   scripts/compose.sh load TPS SECONDS
#   scripts/compose.sh logs I
#
# Environment: COMPOSE_DIR (default ./testnet-compose), PEERCHAIN_IMAGE (peerchain:local; build
# it with scripts/docker-image.sh), COMPOSE_PROJECT_NAME (peerchain), RPC_BASE (8710: node i's
# HTTP API is published on 127.0.0.1:RPC_BASE+i), HASHRATE (hashes/s per node, 50000),
# NODE_KEY_SEED (seed of the node keys; testnets only), PEERCHAIN_BIN (the binary used on
# the host for genesis, keys and load), COMPOSE (the compose command, default docker-compose
# when installed, else "docker compose").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
abs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$ROOT" "$1" ;; esac; }
COMPOSE_DIR="$(abs "${COMPOSE_DIR:-testnet-compose}")"
IMAGE="${PEERCHAIN_IMAGE:-peerchain:local}"
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-peerchain}"
RPC_BASE="${RPC_BASE:-8710}"
HASHRATE="${HASHRATE:-50000}"
NODE_KEY_SEED="${NODE_KEY_SEED:-peerchain-compose-testnet}"
BIN="${PEERCHAIN_BIN:-$ROOT/target/release/peerchain}"
if [ -z "${COMPOSE:-}" ]; then
    if command -v docker-compose >/dev/null; then COMPOSE=docker-compose; else COMPOSE="docker compose"; fi
fi
NET="${COMPOSE_PROJECT_NAME}_peerchain"
CUT_NET="${COMPOSE_PROJECT_NAME}_cut"

die() { echo "compose: $*" >&2; exit 1; }
compose() { (cd "$COMPOSE_DIR" && $COMPOSE "$@"); }
count() { [ -f "$COMPOSE_DIR/count" ] || die "no testnet in $COMPOSE_DIR (run: $0 up)"; cat "$COMPOSE_DIR/count"; }
container() { printf '%s-node%s' "$COMPOSE_PROJECT_NAME" "$1"; }
check_index() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -lt "$(count)" ] || die "no node $1 (nodes 0..$(( $(count) - 1 )))"; }
rpc_url() { printf 'http://127.0.0.1:%s' "$((RPC_BASE + $1))"; }
need_bin() {
    [ -x "$BIN" ] && return
    [ -n "${PEERCHAIN_BIN:-}" ] && die "PEERCHAIN_BIN=$BIN is not executable"
    echo "building peerchain (release)..." >&2
    (cd "$ROOT" && cargo build --release --quiet -p peerchain) || die "build failed"
}
# The peer id of node `ordinal` for NODE_KEY_SEED (the last word `node-key` prints).
peer_id_of() { "$BIN" node-key --seed "$NODE_KEY_SEED" --ordinal "$1" | awk 'NR == 1 {print $NF}'; }

# ----- the generator ----------------------------------------------------------------------

node_service() { # I BOOTNODE
    local i="$1" boot="$2" miner
    miner="$("$BIN" dev-key "$i" | awk '{print $1}')"
    cat <<YAML
  node$i:
    image: \${PEERCHAIN_IMAGE:-$IMAGE}
    container_name: \${COMPOSE_PROJECT_NAME:-peerchain}-node$i
    hostname: node$i
    command: ["node", "--genesis", "/etc/peerchain/genesis.json", "--mine", "--miner-address", "$miner", "--explorer-nodes", "/etc/peerchain/nodes.json"]
    environment:
      PEERCHAIN_NODE_KEY_SEED: "$NODE_KEY_SEED"
      PEERCHAIN_NODE_ORDINAL: "$i"
      PEERCHAIN_ADMIN_TOKEN_FILE: /etc/peerchain/admin.token
      PEERCHAIN_MINE_HASHRATE: "$HASHRATE"
YAML
    if [ -n "$boot" ]; then
        echo "      PEERCHAIN_BOOTNODES: \"$boot\""
    fi
    cat <<YAML
    volumes:
      - node$i-data:/data
      - ./genesis.json:/etc/peerchain/genesis.json:ro
      - ./nodes.json:/etc/peerchain/nodes.json:ro
      - ./admin.token:/etc/peerchain/admin.token:ro
    ports:
      - "127.0.0.1:$((RPC_BASE + i)):8710"
    networks:
      - peerchain
    stop_grace_period: 30s
YAML
}

cmd_gen() {
    local n="${1:-}" dir
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || die "gen: N must be a positive number, got '$n'"
    dir="$(abs "${2:-$COMPOSE_DIR}")"
    need_bin
    mkdir -p "$dir"
    if [ ! -f "$dir/genesis.json" ]; then
        "$BIN" genesis new --dev-accounts 16 --block-time 1000 --hashrate "$((n * HASHRATE))" \
            --out "$dir/genesis.json" >/dev/null
    fi
    if [ ! -f "$dir/admin.token" ]; then
        head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/admin.token"
    fi
    # Readable by the node's user (uid 10001) in the container: a test token, not a secret.
    chmod 0644 "$dir/admin.token"
    local urls=() i
    for ((i = 0; i < n; i++)); do urls+=("\"$(rpc_url "$i")\""); done
    (IFS=,; echo "[${urls[*]}]") >"$dir/nodes.json"
    local boot; boot="/dns4/node0/tcp/7710/p2p/$(peer_id_of 0)"
    {
        echo "# $n-node peerchain testnet, generated by scripts/compose.sh gen $n (docs/DEPLOY.md)."
        echo "# Node keys derive from NODE_KEY_SEED=$NODE_KEY_SEED and each node's ordinal, so"
        echo "# node 0's bootnode address below is known in advance. Testnets only: anyone with the"
        echo "# seed can impersonate the nodes."
        echo "services:"
        for ((i = 0; i < n; i++)); do
            if [ "$i" = 0 ]; then node_service 0 ""; else node_service "$i" "$boot"; fi
        done
        echo "networks:"
        echo "  peerchain: {}"
        echo "volumes:"
        for ((i = 0; i < n; i++)); do echo "  node$i-data: {}"; done
    } >"$dir/docker-compose.yml"
    echo "$n" >"$dir/count"
    echo "wrote $dir/docker-compose.yml ($n nodes)"
}

# ----- the testnet commands ---------------------------------------------------------------

node_line() { docker exec "$(container "$1")" peerchain status --rpc http://127.0.0.1:8710 --format line 2>/dev/null; }

wait_ready() { # I TIMEOUT_S
    local deadline=$((SECONDS + $2)) line
    while [ "$SECONDS" -lt "$deadline" ]; do
        if line="$(node_line "$1")" && { [ "$(count)" = 1 ] || [ "$(awk '{print $6}' <<<"$line")" -ge 1 ]; }; then
            return 0
        fi
        sleep 1
    done
    die "node $1 not ready within $2 s; see: $0 logs $1"
}

cmd_up() {
    local n="${1:-4}"
    if [ ! -f "$COMPOSE_DIR/count" ] || [ "$(cat "$COMPOSE_DIR/count")" != "$n" ]; then
        rm -f "$COMPOSE_DIR/docker-compose.yml"
        cmd_gen "$n"
    fi
    docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE not found: build it with scripts/docker-image.sh"
    compose up -d
    for ((i = 0; i < n; i++)); do wait_ready "$i" 90; done
    printf '%-5s %-24s %s\n' node container "HTTP API and explorer"
    for ((i = 0; i < n; i++)); do printf '%-5s %-24s %s/\n' "$i" "$(container "$i")" "$(rpc_url "$i")"; done
}

cmd_status() {
    local n i line; n="$(count)"
    for ((i = 0; i < n; i++)); do
        if line="$(node_line "$i")"; then echo "node $i: $line"; else echo "node $i: down"; fi
    done
}

cmd_down() { compose down; }
cmd_clean() {
    [ -f "$COMPOSE_DIR/docker-compose.yml" ] && compose down -v
    docker network rm "$CUT_NET" >/dev/null 2>&1 || true
    rm -rf "$COMPOSE_DIR"
    echo "removed $COMPOSE_DIR"
}
cmd_stop() { check_index "$1"; docker stop -t 30 "$(container "$1")" >/dev/null; echo "node $1 stopped"; }
cmd_kill() { check_index "$1"; docker kill "$(container "$1")" >/dev/null; echo "node $1 killed"; }
cmd_start() { check_index "$1"; docker start "$(container "$1")" >/dev/null; wait_ready "$1" 90; echo "node $1 started"; }

# Group B's containers leave the testnet's network for a network of their own: no packet
# passes between the groups (a real cut, not a peer block).
cmd_partition() {
    [ $# -eq 2 ] || die "usage: partition A B (e.g. partition 0,1 2)"
    local b
    IFS=, read -ra gb <<<"$2"
    [ -f "$COMPOSE_DIR/cut" ] && die "a partition is in place: heal it first"
    docker network inspect "$CUT_NET" >/dev/null 2>&1 || docker network create "$CUT_NET" >/dev/null
    for b in "${gb[@]}"; do
        check_index "$b"
        docker network disconnect "$NET" "$(container "$b")"
        docker network connect --alias "node$b" "$CUT_NET" "$(container "$b")"
        echo "$b" >>"$COMPOSE_DIR/cut"
    done
    echo "partitioned {$1} from {$2}"
}

cmd_heal() {
    [ -f "$COMPOSE_DIR/cut" ] || { echo "no partition to heal"; return 0; }
    local b
    while read -r b; do
        docker network disconnect "$CUT_NET" "$(container "$b")" || true
        docker network connect --alias "node$b" "$NET" "$(container "$b")" || true
    done <"$COMPOSE_DIR/cut"
    rm -f "$COMPOSE_DIR/cut"
    docker network rm "$CUT_NET" >/dev/null 2>&1 || true
    echo "healed"
}

cmd_load() {
    [ $# -eq 2 ] || die "usage: load TPS SECONDS"
    need_bin
    local n rpcs=() i; n="$(count)"
    for ((i = 0; i < n; i++)); do rpcs+=("$(rpc_url "$i")"); done
    (IFS=,; "$BIN" load --rpc "${rpcs[*]}" --tps "$1" --seconds "$2")
}

cmd_logs() { check_index "$1"; exec docker logs --tail 50 -f "$(container "$1")"; }

main() {
    local cmd="${1:-}"; shift || true
    case "$cmd" in
        gen) cmd_gen "$@" ;;
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
        ""|-h|--help|help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' ;;
        *) die "unknown command '$cmd' (see $0 --help)" ;;
    esac
}

main "$@"
