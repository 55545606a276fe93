#!/usr/bin/env bash
# Builds the node image without an image registry: the release binary built here, a base
# image made from this machine's glibc (the binary's shared libraries and little else,
# imported with `docker import`), and deploy/docker/Dockerfile.prebuilt. Where a registry is
# reachable, `docker build -t peerchain:local .` builds the same image from the Dockerfile.
#
#   scripts/docker-image.sh [TAG]      default TAG peerchain:local
#
# Environment: PEERCHAIN_BIN (use this binary instead of building one), RUNTIME_IMAGE (use
# this base instead of making one), BASE_TAG (tag of the base made here, default
# peerchain-base:local). Prints the image tag.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TAG="${1:-peerchain:local}"
BASE_TAG="${BASE_TAG:-peerchain-base:local}"
die() { echo "docker-image: $*" >&2; exit 1; }
command -v docker >/dev/null || die "docker is not installed"

BIN="${PEERCHAIN_BIN:-}"
if [ -z "$BIN" ]; then
    echo "building peerchain (release)..." >&2
    (cd "$ROOT" && cargo build --release --quiet -p peerchain) || die "build failed"
    BIN="$ROOT/target/release/peerchain"
fi
[ -x "$BIN" ] || die "$BIN is not executable"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ctx="$work/context"
mkdir -p "$ctx/usr/local/bin" "$ctx/owned/data"
# Debug info is most of the binary's size; the image does not need it.
if command -v objcopy >/dev/null; then
    objcopy --strip-debug "$BIN" "$ctx/usr/local/bin/peerchain"
else
    cp "$BIN" "$ctx/usr/local/bin/peerchain"
fi
chmod 0755 "$ctx/usr/local/bin/peerchain"

if [ -z "${RUNTIME_IMAGE:-}" ]; then
    root="$work/base"
    # The dynamic loader and every library the binary links (glibc, libgcc_s, libm).
    for lib in $(ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
        install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
    done
    mkdir -p "$root/etc" "$root/tmp"
    chmod 1777 "$root/tmp"
    echo 'root:x:0:0:root:/:/nonexistent' >"$root/etc/passwd"
    echo 'peerchain:x:10001:10001:peerchain:/data:/nonexistent' >>"$root/etc/passwd"
    printf 'root:x:0:\npeerchain:x:10001:\n' >"$root/etc/group"
    echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
    tar -C "$root" -c . | docker import - "$BASE_TAG" >/dev/null || die "docker import failed"
    RUNTIME_IMAGE="$BASE_TAG"
fi

docker build -q -f "$ROOT/deploy/docker/Dockerfile.prebuilt" \
    --build-arg RUNTIME_IMAGE="$RUNTIME_IMAGE" -t "$TAG" "$ctx" >/dev/null \
    || die "docker build failed"
echo "$TAG"
