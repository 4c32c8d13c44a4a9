#!/usr/bin/env bash
# Runs the system on this machine, as root: installs what is missing, builds
# the release binaries (vpc-manager, vr-agent), and starts vpc-manager with
# SQLite in /var/lib/vpc-manager, the API on 127.0.0.1:8080 and the netns
# driver: routers and VMs are network namespaces on this host, named
# vpc-<router name> and vpc-<instance name>. The first start bootstraps the
# ROOT domain, the admin account (keys in <data dir>/cloudstack.ini for the cs
# client), the default offerings and zone1 (guest VLANs 100-999, a public
# range in 203.0.113.0/24 whose gateway is the upstream namespace
# vpc-up-<zone>). The manager runs its host agent in-process (socket
# host-agent.sock in the data directory). Later starts keep all that; the host
# agent takes back the routers and VMs still running. Ctrl-C stops the
# manager; routers and VMs keep running.
#
# Environment: VPC_DATA_DIR, VPC_LISTEN (address:port), VPC_NETNS_PREFIX
# override the defaults.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh --quiet
cargo build --workspace --locked --release --bins

data_dir=${VPC_DATA_DIR:-/var/lib/vpc-manager}
listen=${VPC_LISTEN:-127.0.0.1:8080}
prefix=${VPC_NETNS_PREFIX:-vpc-}
mkdir -p "$data_dir"
# dnsmasq runs as nobody in the routers and reads its files under the data
# directory: every directory on the way must be searchable by others.
chmod o+x "$data_dir"
dir=$(cd "$data_dir" && pwd)
while [ "$dir" != / ]; do
  dir=$(dirname "$dir")
  perms=$(stat -c %A "$dir")
  [ "${perms:9:1}" = x ] || [ "${perms:9:1}" = t ] || {
    echo "run: $dir is not searchable by others (dnsmasq runs as nobody): chmod o+x $dir" >&2
    exit 1
  }
done

ini=$data_dir/cloudstack.ini
demo_args=""
[ "$prefix" != vpc- ] && demo_args+=" --prefix $prefix"
[ "$data_dir" != /var/lib/vpc-manager ] && demo_args+=" --config $ini"
cat <<MSG

Starting vpc-manager: API on http://$listen/client/api, data in $data_dir,
routers and VMs as network namespaces named $prefix<name> (ip netns list).
Once it logs "admin credentials written", use the cs client with the admin's keys:
  export CLOUDSTACK_CONFIG=$ini
  $root/.venv/bin/cs listZones
  $root/.venv/bin/cs listVPCs
Run the demo (a VPC, two tiers, two VMs, ACLs, port forwards, a private gateway;
a connectivity matrix measured with real packets; then the teardown):
  bash $root/scripts/demo.sh$demo_args
Ctrl-C stops the manager.

MSG
exec "$root/target/release/vpc-manager" serve --listen "$listen" --data-dir "$data_dir" \
  --driver netns --netns-prefix "$prefix" --bootstrap-zone
