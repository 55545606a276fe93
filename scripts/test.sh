#!/usr/bin/env bash
# Runs the whole test suite: unit, property, crash and multi-node tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets "$@"
