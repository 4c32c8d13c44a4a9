#!/usr/bin/env bash
# The network between hosts: TCP throughput (iperf3) and new TCP connections
# per second between two VMs of one VXLAN tier on one host vs on two hosts,
# in the three-host lab of manager/tests/support/fabric.rs (real host agents,
# router, dnsmasq, DHCP clients, VXLAN over a fabric namespace). Medians of
# FABRIC_BENCH_RUNS runs (default 5), with the machine; as root. The report
# is printed and written to target/fabric-bench.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
bash scripts/setup.sh --quiet
export PATH="$root/.tools/bin:$PATH"
cargo build --locked --workspace --bins
out="$root/target/fabric-bench.md"
{
    echo "# Fabric benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs, kernel $(uname -r)"
    cargo test --locked -p vpc-manager --test host_fabric -- --ignored --nocapture \
        fabric_bench_throughput_and_new_connections_one_host_vs_two 2>/dev/null | grep '^|'
} | tee "$out"
