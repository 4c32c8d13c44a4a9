#!/usr/bin/env bash
# Placement at scale (issue 12): three host agents on a fabric in this
# machine's namespaces, PLACEMENT_VPCS (300) VPCs of one tier and one VM
# each through the API, PLACEMENT_PARALLEL (4) at a time; prints the time
# taken, the spread of routers and VMs over the hosts, the memory of each
# router and the CPU at idle (PLACEMENT_IDLE_SECS, 30) as a Markdown table.
# As root.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
bash scripts/setup.sh --quiet
export PATH="$root/.tools/bin:$PATH"
cargo build --locked --bins
cargo test --locked -p vpc-manager --test bench_placement -- --ignored --nocapture
