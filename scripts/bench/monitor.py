"""The cost of watching routers, measured on a running cluster (issue 11).

Driven by scripts/bench/monitor.sh, which starts PostgreSQL (with
pg_stat_statements), one host agent and the managers. This script:

1. creates N VPCs (each gets a real router) through the API, in parallel;
2. waits until every router is Running and has been checked a few times;
3. idle window: over WINDOW seconds, counts the database statements the
   managers ran (pg_stat_statements) and the bytes between the managers and
   the routers' agents (the loopback counters of each router namespace: the
   managers reach a TCP agent from inside its namespace, so every byte of a
   check crosses that namespace's `lo`), and the managers' CPU time;
4. failover (with several managers): finds the routers that only one
   manager checks (the bytes each manager's connections send, as `ss` shows
   them inside each router namespace), kills that manager with SIGKILL and
   reports how long until another manager's connection to each of them moves.

Prints a Markdown report on stdout. Exit status 0 when it measured, 1 when
the cluster did not get ready.
"""

import argparse
import concurrent.futures as futures
import json
import os
import signal
import subprocess
import sys
import time

from cs import CloudStack, CloudStackApiException, read_config


def api_for(ini):
    os.environ["CLOUDSTACK_CONFIG"] = ini
    conf = read_config()
    return CloudStack(**conf)


def psql(args, sql):
    out = subprocess.run(
        args.psql + ["-c", sql], check=True, capture_output=True, text=True
    ).stdout
    return [line.split("|") for line in out.strip().splitlines() if line]


def lo_bytes(ns):
    """Bytes that crossed `lo` in namespace `ns`, or None when it is gone."""
    p = subprocess.run(
        ["ip", "-n", ns, "-s", "-j", "link", "show", "dev", "lo"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if p.returncode != 0:
        return None
    link = json.loads(p.stdout)[0]
    stats = link["stats64"]
    # On a loopback every packet sent is received once: rx alone counts the
    # bytes that crossed it.
    return stats["rx"]["bytes"]


def all_lo_bytes(pool, namespaces):
    return dict(zip(namespaces, pool.map(lo_bytes, namespaces)))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 (1-based) of the whole line.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def create_vpcs(api, n, parallel):
    zone = api.listZones(fetch_list=True)[0]
    offering = api.listVPCOfferings(isdefault=True, fetch_list=True)[0]

    def one(i):
        cidr = f"10.{(i // 250) + 1}.{i % 250}.0/24"
        for attempt in range(3):
            try:
                return api.createVPC(
                    name=f"mon-{i}",
                    displaytext=f"monitor bench {i}",
                    cidr=cidr,
                    zoneid=zone["id"],
                    vpcofferingid=offering["id"],
                    fetch_result=True,
                )
            except CloudStackApiException as e:
                if attempt == 2:
                    raise
                print(f"createVPC {i}: {e}; again", file=sys.stderr)

    started = time.monotonic()
    with futures.ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, range(n)))
    return time.monotonic() - started


def running_routers(api):
    routers = api.listRouters(listall=True, fetch_list=True)
    return [r for r in routers if r.get("state") == "Running"]


def idle_window(args, pool, namespaces, pids):
    psql(args, "SELECT pg_stat_statements_reset()")
    before = all_lo_bytes(pool, namespaces)
    cpu_before = {p: cpu_seconds(p) for p in pids}
    time.sleep(args.window)
    after = all_lo_bytes(pool, namespaces)
    cpu_after = {p: cpu_seconds(p) for p in pids}
    rows = psql(
        args,
        "SELECT calls, rows, regexp_replace(left(query, 90), E'[\\n|]+', ' ', 'g') "
        "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
        "WHERE datname = 'vpc') ORDER BY calls DESC",
    )
    measured = [ns for ns in namespaces if before[ns] is not None and after[ns] is not None]
    total_bytes = sum(after[ns] - before[ns] for ns in measured)
    calls = sum(int(r[0]) for r in rows)
    fetched = sum(int(r[1]) for r in rows)
    cpu = sum(cpu_after[p] - cpu_before[p] for p in pids)
    return {
        "routers": len(measured),
        "bytes": total_bytes,
        "calls": calls,
        "rows": fetched,
        "cpu": cpu,
        "top": rows[:8],
    }


def manager_bytes(ns):
    """Bytes sent to the agent of namespace `ns`, by manager pid (each
    manager's connections are made inside the namespace, so `ss` there shows
    their owner); None when the namespace is gone."""
    p = subprocess.run(
        ["ip", "netns", "exec", ns, "ss", "-tinpH"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if p.returncode != 0:
        return None
    sent = {}
    owner = None
    for token in p.stdout.split():
        if token.startswith('users:(("vpc-manager"'):
            owner = int(token.split("pid=")[1].split(",")[0])
        elif token.startswith('users:(('):
            owner = None
        elif token.startswith("bytes_sent:") and owner is not None:
            sent[owner] = sent.get(owner, 0) + int(token.split(":")[1])
    return sent


def failover(args, pool, namespaces, victim):
    """kill -9 of `victim`: which routers only it checked, and the seconds
    until another manager checked each of them."""
    first = dict(zip(namespaces, pool.map(manager_bytes, namespaces)))
    time.sleep(args.interval * 1.5)
    second = dict(zip(namespaces, pool.map(manager_bytes, namespaces)))
    orphans = []
    for ns in namespaces:
        grew = {
            pid for pid, sent in (second[ns] or {}).items()
            if sent > (first[ns] or {}).get(pid, 0)
        }
        if grew == {victim}:
            orphans.append(ns)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    baseline = {ns: dict(second[ns] or {}) for ns in orphans}
    resumed = {}
    while time.monotonic() < killed + args.failover_limit and len(resumed) < len(orphans):
        waiting = [ns for ns in orphans if ns not in resumed]
        now = dict(zip(waiting, pool.map(manager_bytes, waiting)))
        t = time.monotonic() - killed
        for ns in waiting:
            if any(
                sent > baseline[ns].get(pid, 0)
                for pid, sent in (now[ns] or {}).items()
                if pid != victim
            ):
                resumed[ns] = t
    times = sorted(resumed.values())
    return len(orphans), times, len(orphans) - len(resumed)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ini", required=True, help="cloudstack.ini of the first manager")
    p.add_argument("--routers", type=int, default=200)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--interval", type=float, default=5.0, help="router.check.interval")
    p.add_argument("--prefix", required=True, help="the namespace prefix")
    p.add_argument("--manager-pids", required=True, help="comma-separated")
    p.add_argument("--failover-limit", type=float, default=60.0)
    p.add_argument("--psql", required=True, help="psql command, space-separated")
    args = p.parse_args()
    args.psql = args.psql.split()
    pids = [int(x) for x in args.manager_pids.split(",")]

    api = api_for(args.ini)
    api.updateConfiguration(name="max.account.vpcs", value="-1")
    created_in = create_vpcs(api, args.routers, args.parallel)
    routers = []
    for _ in range(600):
        routers = running_routers(api)
        if len(routers) >= args.routers:
            break
        time.sleep(1)
    if len(routers) < args.routers:
        print(f"only {len(routers)} of {args.routers} routers Running", file=sys.stderr)
        return 1
    namespaces = [args.prefix + r["name"] for r in routers]
    # Let every router be checked and resynced a few times first.
    time.sleep(args.interval * 3)
    with futures.ThreadPoolExecutor(16) as pool:
        idle = idle_window(args, pool, namespaces, pids)
        fail = failover(args, pool, namespaces, pids[-1]) if len(pids) > 1 else None

    per_min = 60.0 / args.window
    n = idle["routers"]
    print(f"# Monitoring cost, {n} routers, {len(pids)} manager(s)\n")
    print(f"machine: {os.uname().nodename}, {os.cpu_count()} cores, {os.uname().release}")
    print(f"router.check.interval {args.interval:g} s; idle window {args.window:g} s; "
          f"{args.routers} VPCs created in {created_in:.1f} s ({args.parallel} at once)\n")
    print("| per router per minute | value |")
    print("|---|---:|")
    print(f"| database statements | {idle['calls'] * per_min / n:.1f} |")
    print(f"| rows returned | {idle['rows'] * per_min / n:.1f} |")
    print(f"| bytes manager <-> agent (both ways, with TCP/IP headers) | {idle['bytes'] * per_min / n:.0f} |")
    print(f"| managers' CPU (ms) | {idle['cpu'] * 1000 * per_min / n:.2f} |")
    print(f"\ntotal per minute: {idle['calls'] * per_min:.0f} statements, "
          f"{idle['bytes'] * per_min / 1e6:.2f} MB, managers' CPU {idle['cpu'] * per_min:.2f} s\n")
    print("| statement (most called) | calls | rows |")
    print("|---|---:|---:|")
    for calls, rows, query in idle["top"]:
        print(f"| `{query.strip()}` | {calls} | {rows} |")
    if fail is not None:
        orphaned, times, unresolved = fail
        median = times[len(times) // 2] if times else 0.0
        worst = times[-1] if times else 0.0
        print(f"\nfailover: kill -9 of one manager of {len(pids)}: {orphaned} routers were "
              f"checked by it alone; another manager checked them again after "
              f"{median:.1f} s (median), {worst:.1f} s (last)"
              + (f"; {unresolved} not within {args.failover_limit:g} s" if unresolved else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
