#!/usr/bin/env bash
# Runs a cluster on this machine, as root: one PostgreSQL (Debian's server
# binaries, a Unix socket in the cluster directory, no TCP port), one host
# agent (`vpc-manager host-agent`, which owns the routers and VMs: network
# namespaces named <prefix><name>) and three managers sharing the database,
# each with its API on its own port and each driving routers and VMs through
# the host agent. The first manager bootstraps zone1 as `scripts/run.sh` does.
# Prints how to use them, then waits; Ctrl-C stops the managers, the host
# agent (routers and VMs keep running; the next run takes them back) and
# PostgreSQL.
#
# Options: --debug uses target/debug binaries (no release build).
# Environment: VPC_CLUSTER_DIR (default /var/lib/vpc-cluster),
# VPC_NETNS_PREFIX (default vpc-), VPC_CLUSTER_PORT (first API port, 8080;
# the managers take it and the next two), VPC_PG_PORT (5433, names the
# socket), VPC_PG_BIN (/usr/lib/postgresql/15/bin).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

profile=release
[ "${1:-}" = --debug ] && profile=debug
bash scripts/setup.sh --quiet
if [ "$profile" = release ]; then
  cargo build --workspace --locked --release --bins
else
  cargo build --workspace --locked --bins
fi
bin=$root/target/$profile

base=${VPC_CLUSTER_DIR:-/var/lib/vpc-cluster}
prefix=${VPC_NETNS_PREFIX:-vpc-}
first_port=${VPC_CLUSTER_PORT:-8080}
pg_port=${VPC_PG_PORT:-5433}
pg_bin=${VPC_PG_BIN:-/usr/lib/postgresql/15/bin}
mkdir -p "$base"
base=$(cd "$base" && pwd)
# dnsmasq runs as nobody in the routers and reads its files below the host
# agent's directory: every directory on the way must be searchable by others.
chmod 0711 "$base"
dir=$base
while [ "$dir" != / ]; do
  dir=$(dirname "$dir")
  perms=$(stat -c %A "$dir")
  [ "${perms:9:1}" = x ] || [ "${perms:9:1}" = t ] || {
    echo "cluster: $dir is not searchable by others (dnsmasq runs as nobody): chmod o+x $dir" >&2
    exit 1
  }
done

pids=()
stop_all() {
  trap - INT TERM EXIT
  # Managers first (they hand their jobs back), then the host agent, by pid.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  if [ -f "$base/pg/data/postmaster.pid" ]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$base/pg/data" -m fast stop >/dev/null || true
  fi
}
trap stop_all INT TERM EXIT

# PostgreSQL, owned by the postgres user (it refuses to run as root).
mkdir -p "$base/pg"
chown postgres: "$base/pg"
chmod 0700 "$base/pg"
if [ ! -f "$base/pg/data/PG_VERSION" ]; then
  runuser -u postgres -- "$pg_bin/initdb" -D "$base/pg/data" -U postgres -A trust \
    -E UTF8 --no-locale >"$base/pg/initdb.log"
fi
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$base/pg/data" -l "$base/pg/postgres.log" -w \
  -o "-k $base/pg -p $pg_port -c listen_addresses= -c max_connections=200" start >/dev/null
url="postgres://postgres@localhost:$pg_port/vpc?host=$base/pg&sslmode=disable"
psql=(runuser -u postgres -- psql -h "$base/pg" -p "$pg_port" -U postgres -qtA)
if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'vpc'")" != 1 ]; then
  "${psql[@]}" -c "CREATE DATABASE vpc" >/dev/null
fi

# One database key for every manager of the database.
key=$base/database.key
if [ ! -f "$key" ]; then
  (umask 077 && openssl rand -base64 32 >"$key")
fi

# The host agent: routers' and VMs' files in $base/host.
mkdir -p "$base/host"
chmod 0711 "$base/host"
socket=$base/host/host-agent.sock
"$bin/vpc-manager" host-agent --listen "unix:$socket" --data-dir "$base/host" \
  --netns-prefix "$prefix" >>"$base/host-agent.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  [ -S "$socket" ] && break
  sleep 0.1
done
[ -S "$socket" ] || { echo "cluster: the host agent did not start; see $base/host-agent.log" >&2; exit 1; }

# Three managers; the first bootstraps zone1 and the others join.
for n in 1 2 3; do
  port=$((first_port + n - 1))
  data=$base/manager-$n
  mkdir -p "$data"
  args=(serve --listen "127.0.0.1:$port" --data-dir "$data" --database-url "$url"
    --database-key-file "$key" --host-agent-url "unix://$socket" --netns-prefix "$prefix")
  [ "$n" = 1 ] && args+=(--bootstrap-zone)
  "$bin/vpc-manager" "${args[@]}" >>"$base/manager-$n.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 \
    || { echo "cluster: manager $n did not start; see $base/manager-$n.log" >&2; exit 1; }
done

cat <<MSG

A cluster on this machine (data in $base):
  PostgreSQL   $url
  host agent   unix://$socket (pid ${pids[0]}), routers and VMs as namespaces $prefix<name>
  managers     http://127.0.0.1:$first_port, :$((first_port + 1)), :$((first_port + 2)) (pids ${pids[*]:1})
Each manager wrote the admin's keys for the cs client (one admin, any manager):
  CLOUDSTACK_CONFIG=$base/manager-1/cloudstack.ini $root/.venv/bin/cs listManagementServers
  CLOUDSTACK_CONFIG=$base/manager-2/cloudstack.ini $root/.venv/bin/cs listZones
  CLOUDSTACK_CONFIG=$base/manager-3/cloudstack.ini $root/.venv/bin/cs listVPCs
The host agent answers grpcurl (reflection):
  $root/.tools/bin/grpcurl -plaintext -authority localhost -unix $socket vpc.host.v1.HostAgent/Inventory
Logs: $base/host-agent.log, $base/manager-{1,2,3}.log, $base/pg/postgres.log
Ctrl-C stops the managers, the host agent and PostgreSQL; routers and VMs keep running.

MSG
wait
