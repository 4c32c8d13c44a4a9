#!/usr/bin/env bash
# vr-agent benchmark: apply times, one-item ACL changes, and forwarding between
# two tiers against linear nft and iptables rulesets, all in lab namespaces.
# As root. ROUTER_BENCH=apply|flows runs one half; the report is printed and
# written to target/router-bench.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
bash scripts/setup.sh --quiet
ROUTER_BENCH_REPORT="$root/target/router-bench.md" cargo bench --locked -p vr-agent --bench router
