#!/usr/bin/env bash
# Runs the system on this machine. As root.
#
# Today this builds the workspace and starts a vr-agent inside a fresh router
# namespace (vpc-demo-router), reachable on a Unix socket, so it can be
# explored with grpcurl. Ctrl-C stops it and removes the namespace.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
cargo build --workspace --locked --release --bins

ns=vpc-demo-router
run_dir=/run/vpc
socket="$run_dir/demo-router.sock"
mkdir -p "$run_dir" /var/lib/vpc/demo-router
ip netns list | awk '{print $1}' | grep -qx "$ns" || ip netns add "$ns"
ip -n "$ns" link set lo up

ip netns exec "$ns" "$root/target/release/vr-agent" \
  --listen "unix://$socket" --state-dir /var/lib/vpc/demo-router &
agent=$!
cleanup() {
  kill "$agent" 2>/dev/null || true
  wait "$agent" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

cat <<MSG

vr-agent is running in network namespace $ns (pid $agent).
Explore it with grpcurl:
  $root/.tools/bin/grpcurl -plaintext -authority localhost -unix $socket list
  $root/.tools/bin/grpcurl -plaintext -authority localhost -unix $socket describe vpc.agent.v1.VirtualRouter
  $root/.tools/bin/grpcurl -plaintext -authority localhost -unix $socket vpc.agent.v1.VirtualRouter/GetState
Look inside the router:
  ip netns exec $ns nft list ruleset
Ctrl-C stops the agent and removes the namespace.
MSG
wait "$agent"
