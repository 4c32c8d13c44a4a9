#!/usr/bin/env bash
# The cost of watching routers (issue 11): database statements, bytes between
# managers and routers' agents and managers' CPU, per router per minute, with
# N real routers on an idle cluster; then the failover time until a killed
# manager's routers are checked again by the others and its jobs finished
# elsewhere, a stopped one's at once, and a joining one's share taken. As root.
#
# Usage: scripts/bench/monitor.sh [--release]
#   ROUTERS=200 MANAGERS=3 WINDOW=60 scripts/bench/monitor.sh
# The report is printed and written to target/monitor-bench.md.
#
# Everything runs in a throw-away directory with its own PostgreSQL cluster
# (pg_stat_statements loaded), one host agent and MANAGERS managers, routers
# reached over TCP with mutual TLS (so their bytes cross each router
# namespace's loopback, where they are counted). At the end the managers,
# the host agent, PostgreSQL, every router process of this run (by the pids
# in its namespaces) and the namespaces themselves are removed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

profile=debug
[ "${1:-}" = --release ] && profile=release
routers=${ROUTERS:-200}
managers=${MANAGERS:-3}
window=${WINDOW:-60}
pg_bin=${VPC_PG_BIN:-/usr/lib/postgresql/15/bin}

bash scripts/setup.sh --quiet
export PATH="$root/.tools/bin:$PATH"
if [ "$profile" = release ]; then
  cargo build --workspace --locked --release --bins
else
  cargo build --workspace --locked --bins
fi
bin=$root/target/$profile

base=$(mktemp -d /tmp/vpc-monitor-bench.XXXXXX)
chmod 0711 "$base"
prefix="mb$$-"
pg_port=$((20000 + $$ % 10000))
api_port=$((30000 + $$ % 10000))

pids=()
cleanup() {
  trap - INT TERM EXIT
  if [ -f "$base/joined.pid" ]; then
    pids+=("$(cat "$base/joined.pid")")
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -KILL "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  # The routers' processes outlive the host agent on purpose; this run
  # started them, in namespaces of its own prefix.
  for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix" || true); do
    ip netns delete "$ns" 2>/dev/null || true
  done
  if [ -f "$base/pg/data/postmaster.pid" ]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$base/pg/data" -m immediate stop >/dev/null || true
  fi
  if [ -n "${KEEP:-}" ]; then echo "kept $base" >&2; else rm -rf "$base"; fi
}
trap cleanup INT TERM EXIT

mkdir -p "$base/pg"
chown postgres: "$base/pg"
chmod 0700 "$base/pg"
runuser -u postgres -- "$pg_bin/initdb" -D "$base/pg/data" -U postgres -A trust \
  -E UTF8 --no-locale >"$base/pg/initdb.log"
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$base/pg/data" -l "$base/pg/postgres.log" -w \
  -o "-k $base/pg -p $pg_port -c listen_addresses= -c max_connections=300 \
      -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all" \
  start >/dev/null
psql="runuser -u postgres -- psql -h $base/pg -p $pg_port -U postgres -qtA"
$psql -c "CREATE DATABASE vpc" >/dev/null
$psql -d vpc -c "CREATE EXTENSION pg_stat_statements" >/dev/null
url="postgres://postgres@localhost:$pg_port/vpc?host=$base/pg&sslmode=disable"
(umask 077 && openssl rand -base64 32 >"$base/database.key")

start_manager() {
  local n=$1 port=$((api_port + $1 - 1)) data=$base/manager-$1
  mkdir -p "$data"
  local args=(serve --listen "127.0.0.1:$port" --data-dir "$data" --database-url "$url"
    --database-key-file "$base/database.key" --host-agent-url "unix://$socket"
    --netns-prefix "$prefix" --agent-transport tcp)
  [ "$n" = 1 ] && args+=(--bootstrap-zone)
  "$bin/vpc-manager" "${args[@]}" >>"$base/manager-$n.log" 2>&1 &
  pids+=($!)
  manager_pids+=($!)
  manager_ports+=("$port")
  manager_logs+=("$base/manager-$n.log")
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 \
    || { tail -20 "$base/manager-$n.log" >&2; exit 1; }
}

mkdir -p "$base/host"
chmod 0711 "$base/host"
socket=$base/host/host-agent.sock
manager_pids=()
manager_ports=()
manager_logs=()
# The first manager makes the cluster's CA; the host agent takes it from the
# database to issue its routers' certificates (TCP agents).
start_manager 1
"$bin/vpc-manager" host-agent --listen "unix:$socket" --data-dir "$base/host" \
  --netns-prefix "$prefix" --agent-transport tcp --database-url "$url" \
  --database-key-file "$base/database.key" >>"$base/host-agent.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  [ -S "$socket" ] && break
  sleep 0.1
done
[ -S "$socket" ] || { cat "$base/host-agent.log" >&2; exit 1; }
for n in $(seq 2 "$managers"); do
  start_manager "$n"
done

# The join phase starts one more manager through this script (its pid is
# recorded for the clean-up).
joiner=$((managers + 1))
cat >"$base/join.sh" <<JOIN
#!/usr/bin/env bash
set -euo pipefail
mkdir -p "$base/manager-$joiner"
"$bin/vpc-manager" serve --listen "127.0.0.1:$((api_port + joiner - 1))" \\
  --data-dir "$base/manager-$joiner" --database-url "$url" \\
  --database-key-file "$base/database.key" --host-agent-url "unix://$socket" \\
  --netns-prefix "$prefix" --agent-transport tcp >>"$base/manager-$joiner.log" 2>&1 &
echo \$! >"$base/joined.pid"
echo \$! "$base/manager-$joiner.log"
JOIN
chmod 0700 "$base/join.sh"

report=$root/target/monitor-bench.md
mkdir -p "$root/target"
"$root/.venv/bin/python" "$root/scripts/bench/monitor.py" \
  --ini "$base/manager-1/cloudstack.ini" --routers "$routers" --window "$window" \
  --prefix "$prefix" --manager-pids "$(IFS=,; echo "${manager_pids[*]}")" \
  --manager-logs "$(IFS=,; echo "${manager_logs[*]}")" \
  --manager-ports "$(IFS=,; echo "${manager_ports[*]}")" --join "$base/join.sh" \
  --psql "$psql -d vpc" | tee "$report"
echo "build: $profile; report in $report"
