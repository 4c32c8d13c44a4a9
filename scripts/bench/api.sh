#!/usr/bin/env bash
# vpc-manager API benchmark: signed listZones requests/s and async cycles/s
# (createDomain + deleteDomain + queryAsyncJobResult polling), on SQLite and on
# a throw-away PostgreSQL cluster, with 1 and 16 concurrent clients. As root
# (the PostgreSQL cluster runs as the postgres user). The report is printed and
# written to target/api-bench.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
bash scripts/setup.sh --quiet
API_BENCH_REPORT="$root/target/api-bench.md" cargo bench --locked -p vpc-manager --bench api
