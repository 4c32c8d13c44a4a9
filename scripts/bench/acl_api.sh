#!/usr/bin/env bash
# One ACL change through the API (issue 17): createNetworkACL of a Deny as
# item 1 of a tier's list of ACL_API_ITEMS ("1000,10000") items, timed from
# the request until the last datagram of a one-new-flow-per-millisecond UDP
# stream between two VMs gets through, and deleteNetworkACL until the first
# gets through again; medians of ACL_API_ROUNDS (10). As root.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
bash scripts/setup.sh --quiet
export PATH="$root/.tools/bin:$PATH"
# Release, as the manager and its agents run (scripts/run.sh); ACL_API_PROFILE=dev
# measures the debug build the suite uses.
if [ "${ACL_API_PROFILE:-release}" = "dev" ]; then
    cargo build --locked --bins
    cargo test --locked -p vpc-manager --test bench_acl_api -- --ignored --nocapture
else
    cargo build --locked --release --bins
    cargo test --locked --release -p vpc-manager --test bench_acl_api -- --ignored --nocapture
fi
