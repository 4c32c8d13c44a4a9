#!/usr/bin/env bash
# The demo, against a running manager on the netns driver (scripts/run.sh):
# through the API (the `cs` client library) it builds a VPC with two tiers
# (web, db), a VM in each, three ACL lists, port forwards from a public IP to
# the web VM, and a private gateway with a static route to an on-premises
# network whose namespace it creates; then it prints a connectivity matrix
# measured with real packets inside the VMs', the upstream's and the
# on-premises namespaces, checks it against the ACLs, and tears everything
# down. Exits non-zero when a probe disagrees with the ACLs. As root.
#
# Usage: scripts/demo.sh [--keep] [--prefix vpc-] [--config cloudstack.ini]
#                        [--zone NAME|ID] [--cidr 10.60.0.0/16] [--vlan 3100]
#                        [--manager-bin PATH] [--teardown VPCID]
#   --keep      leave it all in place (then: scripts/demo.sh --teardown VPCID)
#   --prefix    the manager's --netns-prefix (default vpc-, or $VPC_NETNS_PREFIX)
#   --config    an admin's cloudstack.ini (default $CLOUDSTACK_CONFIG, else
#               /var/lib/vpc-manager/cloudstack.ini, written by the manager)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "demo: run as root (ip netns exec)" >&2; exit 2; }
if ! "$root/.venv/bin/python" -c "import cs" 2>/dev/null; then
  bash "$root/scripts/setup.sh" --quiet
fi
exec "$root/.venv/bin/python" "$root/scripts/demo.py" "$@"
