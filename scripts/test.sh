#!/usr/bin/env bash
# The whole test suite: unit tests, kernel tests in throw-away network
# namespaces, end-to-end tests. Runs the set-up first. As root.
#
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh --quiet
export PATH="$root/.tools/bin:$PATH"
# Tests build the binaries they drive (vr-agent, vpc-manager) first.
cargo build --workspace --locked --bins
cargo test --workspace --locked "$@"
