#!/usr/bin/env bash
# Runs the system on this machine, as root: installs what is missing, builds,
# and starts vpc-manager with its embedded defaults (SQLite in
# /var/lib/vpc-manager, API on 127.0.0.1:8080). The first start bootstraps the
# ROOT domain and the admin account and writes the admin's API keys to
# /var/lib/vpc-manager/cloudstack.ini for the cs client. Ctrl-C stops it.
#
# Environment: VPC_DATA_DIR, VPC_LISTEN override the defaults.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
cargo build --workspace --locked --release --bins

data_dir=${VPC_DATA_DIR:-/var/lib/vpc-manager}
listen=${VPC_LISTEN:-127.0.0.1:8080}
mkdir -p "$data_dir"

cat <<MSG

Starting vpc-manager on http://$listen/client/api (data in $data_dir).
Use it with the cs client once it logs "admin credentials written":
  CLOUDSTACK_CONFIG=$data_dir/cloudstack.ini $root/.venv/bin/cs listZones
  CLOUDSTACK_CONFIG=$data_dir/cloudstack.ini $root/.venv/bin/cs listApis
Ctrl-C stops it.

MSG
exec "$root/target/release/vpc-manager" serve --listen "$listen" --data-dir "$data_dir"
