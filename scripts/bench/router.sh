#!/usr/bin/env bash
# vr-agent benchmark: apply times, one-item ACL changes, and forwarding between
# two tiers (a new flow per datagram, and TCP bulk) with no ACL items, with
# 10,000 items of each ACL generator (one action, realistic mix, adversarial),
# and against linear nft and iptables rulesets, all in lab namespaces, in one
# run; new flows and TCP bulk through a port forward with 2 and 10,000 port
# forwards; medians, and the machine it ran on. As root.
# ROUTER_BENCH=apply|flows|forwards|changes runs one part; the report is
# printed and written to target/router-bench.md.
# Planning times per generator (validate, compile, plan, render 10,000 items,
# CPU time) come from the release build of the planner test, run after it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
bash scripts/setup.sh --quiet
ROUTER_BENCH_REPORT="$root/target/router-bench.md" cargo bench --locked -p vr-agent --bench router
if [ "${ROUTER_BENCH:-}" = "" ] || [ "${ROUTER_BENCH:-}" = "plan" ]; then
    cargo test --release --locked -p vr-agent --test acl_plan -- --nocapture \
        planning_ten_thousand_items every_generator 2>&1 | grep -E 'ms CPU|layers' \
        | tee -a "$root/target/router-bench.md"
fi
