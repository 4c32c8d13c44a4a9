#!/usr/bin/env bash
# Site-to-site VPN timings, end to end through the manager's API: two VPCs on
# this host, each the other's customer gateway (manager/tests/e2e_vpn.rs).
# Prints the time from createVpnConnection to Connected (as listVpnConnections
# shows it, read from the router's charon), to the first TCP connection
# passing between the VPCs' VMs, and from resetVpnConnection to Connected,
# and the TCP throughput through the tunnel between the two VMs (iperf3, 3 s),
# for RUNS runs (default 5), with the IPsec backend the routers chose. As root.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
bash scripts/setup.sh --quiet
runs=${RUNS:-5}
cargo build --locked --workspace --bins >/dev/null
for i in $(seq 1 "$runs"); do
    VPN_BENCH_THROUGHPUT=1 cargo test --locked -p vpc-manager --test e2e_vpn -- --nocapture 2>&1 | grep '^vpn-bench:' \
        | sed "s/^vpn-bench:/run $i:/"
done | tee "$root/target/vpn-bench.txt"
