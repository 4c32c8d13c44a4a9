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
   reports how long until another manager's connection to each of them moves;
   and, from the surviving managers' own logs, when each saw its share change
   (the dead one Down) and when its first checks of the routers it gained
   ended;
   Just before the kill, restartVPC jobs are submitted through the victim;
   those it is running when it dies are followed on a survivor until they
   reach a final state (they are run again elsewhere);
5. graceful stop (with three or more managers): the same for SIGTERM of a
   second manager, which the others should take over at once;
6. join: a new manager starts (`--join` script); from its own log, when it
   took its share and finished its first checks of it, and, from the
   routers, how many managers check each router afterwards.

Prints a Markdown report on stdout. Exit status 0 when it measured, 1 when
the cluster did not get ready.
"""

import argparse
import concurrent.futures as futures
import json
import os
import re
import signal
import subprocess
import sys
import time

from cs import CloudStack, CloudStackApiException, read_config


def api_for(ini):
    os.environ["CLOUDSTACK_CONFIG"] = ini
    conf = read_config()
    # A loaded 2-core machine can take longer than the client's default
    # 10 s to answer while 200 routers start.
    conf["timeout"] = 120
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


def socket_owners(pids):
    """{socket inode: pid} of the managers' sockets (their /proc fd tables
    only: `ss -p` would walk every process of the machine for each
    namespace, which takes seconds per sweep with hundreds of routers)."""
    owners = {}
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[int(target[8:-1])] = pid
    return owners


def manager_bytes(ns, owners):
    """Bytes sent to the agent of namespace `ns`, by manager pid (each
    manager's connections are made inside the namespace, so `ss` there shows
    their sockets; `owners` maps their inodes to the managers); None when
    the namespace is gone."""
    p = subprocess.run(
        ["nsenter", f"--net=/run/netns/{ns}", "ss", "-tieH"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if p.returncode != 0:
        return None
    sent = {}
    owner = None
    for token in p.stdout.split():
        if token.startswith("ino:"):
            owner = owners.get(int(token[4:]))
        elif token.startswith("bytes_sent:") and owner is not None:
            sent[owner] = sent.get(owner, 0) + int(token.split(":")[1])
    return sent


def sweep(pool, namespaces, pids):
    owners = socket_owners(pids)
    return dict(zip(namespaces, pool.map(lambda ns: manager_bytes(ns, owners), namespaces)))


SHARE_CHANGED = "this manager's share of the routers changed"
GAINED_CHECKED = "first checks of the routers gained finished"


def field(line, name):
    m = re.search(rf"\b{name}=(\d+)", line)
    return int(m.group(1)) if m else None


def log_lines_since(path, offset):
    with open(path, errors="replace") as f:
        f.seek(offset)
        return f.read().splitlines()


def sole_checkers(pool, namespaces, interval, pids):
    """The namespaces whose agent only one manager talked to over 1.5
    check intervals: {namespace: (pid, bytes sent by pid so far)}."""
    first = sweep(pool, namespaces, pids)
    time.sleep(interval * 1.5)
    second = sweep(pool, namespaces, pids)
    sole = {}
    for ns in namespaces:
        grew = {
            pid for pid, sent in (second[ns] or {}).items()
            if sent > (first[ns] or {}).get(pid, 0)
        }
        if len(grew) == 1:
            sole[ns] = (grew.pop(), dict(second[ns] or {}))
    return sole


def api_at(api, port):
    """A client like `api` for the manager listening on `port`."""
    endpoint = re.sub(r":\d+/", f":{port}/", api.endpoint, count=1)
    return CloudStack(endpoint=endpoint, key=api.key, secret=api.secret, timeout=120)


def in_flight_jobs(args, api, victim_port, vpcs):
    """Submits restartVPC for each VPC of `vpcs` through the manager on
    `victim_port` and waits (up to 5 s) until it runs three of them:
    the jobs' UUIDs by owner ({owner: [uuid]}), read while they run."""
    victim = api_at(api, victim_port)
    for vpc in vpcs:
        victim.restartVPC(id=vpc)
    deadline = time.monotonic() + 5.0
    owners = {}
    while time.monotonic() < deadline:
        owners = {}
        for uuid, owner in psql(
            args,
            "SELECT uuid, owner_manager FROM async_job WHERE cmd = 'restartVPC' "
            "AND status = 0 AND owner_manager IS NOT NULL",
        ):
            owners.setdefault(owner, []).append(uuid)
        running = sum(len(us) for o, us in owners.items() if o.endswith(f"-{victim_port}"))
        if running >= min(3, len(vpcs)):
            break
        time.sleep(0.02)
    return owners


def follow_jobs(api, uuids, limit, started):
    """Polls `uuids` on a survivor until each is final: {uuid: (seconds
    after `started`, jobstatus)}."""
    done = {}
    while len(done) < len(uuids) and time.monotonic() < started + limit:
        for uuid in uuids:
            if uuid in done:
                continue
            try:
                r = api.queryAsyncJobResult(jobid=uuid)
            except CloudStackApiException:
                continue
            if r.get("jobstatus", 0) != 0:
                done[uuid] = (time.monotonic() - started, r["jobstatus"])
        time.sleep(0.1)
    return done


def take_over(args, pool, namespaces, victim, sig, logs, jobs=None):
    """Sends `sig` to manager `victim`: which routers only it checked; the
    seconds until another manager's connection to each moved (sampled with
    `ss` in each namespace); and, from the other managers' logs (`logs`:
    pid -> path), when each saw its share change and when its first checks
    of the routers it gained ended (ms since the signal)."""
    pids = list(logs) + [victim]
    sole = sole_checkers(pool, namespaces, args.interval, pids)
    orphans = [ns for ns, (pid, _) in sole.items() if pid == victim]
    baseline = {ns: sole[ns][1] for ns in orphans}
    offsets = {pid: os.path.getsize(path) for pid, path in logs.items() if pid != victim}
    followed = None
    if jobs is not None:
        api, victim_port, survivor_port, vpcs = jobs
        owners = in_flight_jobs(args, api, victim_port, vpcs)
        followed = [u for o, us in owners.items() if o.endswith(f"-{victim_port}") for u in us]
    sent_at = time.time()
    os.kill(victim, sig)
    killed = time.monotonic()
    job_times = None
    if followed:
        job_times = pool.submit(
            follow_jobs, api_at(api, survivor_port), followed, args.failover_limit + 30, killed
        )
    resumed = {}
    sweeps = []
    while time.monotonic() < killed + args.failover_limit and len(resumed) < len(orphans):
        waiting = [ns for ns in orphans if ns not in resumed]
        swept = time.monotonic()
        now = sweep(pool, waiting, pids)
        t = time.monotonic() - killed
        sweeps.append((len(waiting), time.monotonic() - swept))
        for ns in waiting:
            if any(
                sent > baseline[ns].get(pid, 0)
                for pid, sent in (now[ns] or {}).items()
                if pid != victim
            ):
                resumed[ns] = t
    # Let the survivors log their first checks.
    time.sleep(min(args.interval, 5.0))
    seen = []
    for pid, offset in offsets.items():
        changed = None
        for line in log_lines_since(logs[pid], offset):
            if SHARE_CHANGED in line and changed is None and (field(line, "gained") or 0) > 0:
                changed = field(line, "seen_at_ms")
            elif GAINED_CHECKED in line and changed is not None:
                seen.append({
                    "pid": pid,
                    "gained": field(line, "gained"),
                    "failed": field(line, "failed"),
                    "seen_ms": changed - sent_at * 1000,
                    "took_ms": field(line, "took_ms"),
                    "done_ms": field(line, "done_at_ms") - sent_at * 1000,
                })
                break
    finished = job_times.result() if job_times is not None else {}
    return {
        "jobs": (len(followed or []), finished),
        "orphans": len(orphans),
        "times": sorted(resumed.values()),
        "unresolved": len(orphans) - len(resumed),
        "sweeps": sweeps,
        "logged": seen,
    }


def print_take_over(what, n_managers, r, limit):
    times = r["times"]
    median = times[len(times) // 2] if times else 0.0
    worst = times[-1] if times else 0.0
    print(f"\n{what} of one manager of {n_managers}: {r['orphans']} routers were checked by "
          f"it alone; seen from the routers (`ss` in their namespaces), another manager "
          f"checked them again after {median:.1f} s (median), {worst:.1f} s (last)"
          + (f"; {r['unresolved']} not within {limit:g} s" if r["unresolved"] else ""))
    if r["sweeps"]:
        per = [s for _, s in r["sweeps"]]
        big = max(r["sweeps"])
        print(f"(one `ss` sweep over the routers still waiting took {sorted(per)[len(per) // 2]:.2f} s "
              f"median; {big[1]:.2f} s for {big[0]} namespaces)")
    n_jobs, finished = r.get("jobs", (0, {}))
    if n_jobs:
        secs = sorted(t for t, _ in finished.values())
        ok = sum(1 for _, status in finished.values() if status == 1)
        print(f"\nIts jobs: {n_jobs} restartVPC jobs were running on it at the signal; "
              f"{len(finished)} reached a final state on the others ({ok} succeeded), "
              f"the first {secs[0]:.1f} s and the last {secs[-1]:.1f} s after the signal"
              if secs else f"\nIts jobs: {n_jobs} restartVPC jobs were running on it; none finished")
    if r["logged"]:
        print("\n| surviving manager | routers gained | share change seen after the signal | first checks of them done after the change | after the signal |")
        print("|---|---:|---:|---:|---:|")
        for x in r["logged"]:
            print(f"| pid {x['pid']} | {x['gained']} ({x['failed']} failed) | {x['seen_ms'] / 1000:.2f} s "
                  f"| {x['took_ms'] / 1000:.2f} s | {x['done_ms'] / 1000:.2f} s |")


def join(args, pool, namespaces, pids):
    """Starts one more manager (`args.join`, a script printing its pid and
    its log's path) and measures, from its log, when it took its share and
    finished its first checks of it (seconds after its start), then from
    the routers how many managers check each one."""
    started = time.time()
    out = subprocess.run([args.join], check=True, capture_output=True, text=True).stdout.split()
    pid, log = int(out[0]), out[1]
    deadline = time.monotonic() + args.failover_limit
    changed = done = None
    while time.monotonic() < deadline and done is None:
        time.sleep(0.2)
        try:
            lines = log_lines_since(log, 0)
        except OSError:
            continue
        for line in lines:
            if SHARE_CHANGED in line and changed is None and (field(line, "gained") or 0) > 0:
                changed = field(line, "seen_at_ms")
            elif GAINED_CHECKED in line and changed is not None:
                done = line
                break
    result = {"pid": pid, "log": log}
    if done is not None:
        result.update({
            "gained": field(done, "gained"),
            "failed": field(done, "failed"),
            "seen_ms": changed - started * 1000,
            "done_ms": field(done, "done_at_ms") - started * 1000,
        })
    # Settle, then count the checkers of each router over 1.5 intervals.
    time.sleep(args.interval)
    live = pids + [pid]
    first = sweep(pool, namespaces, live)
    time.sleep(args.interval * 1.5)
    second = sweep(pool, namespaces, live)
    counts = {}
    mine = 0
    for ns in namespaces:
        grew = {p for p, sent in (second[ns] or {}).items() if sent > (first[ns] or {}).get(p, 0)}
        counts[len(grew)] = counts.get(len(grew), 0) + 1
        if grew == {pid}:
            mine += 1
    result["checkers"] = counts
    result["mine"] = mine
    return result


def print_join(r, n_before):
    if "gained" not in r:
        print(f"\njoin: the new manager (pid {r['pid']}) logged no share within the limit; see {r['log']}")
        return
    print(f"\njoin of a manager to {n_before}: it took its share {r['seen_ms'] / 1000:.2f} s after "
          f"it was started and finished its first checks of those {r['gained']} routers "
          f"({r['failed']} failed) {r['done_ms'] / 1000:.2f} s after it was started. "
          f"Then, seen from the routers over 1.5 check intervals: "
          + ", ".join(f"{n} routers checked by {k} manager(s)" for k, n in sorted(r["checkers"].items()))
          + f"; {r['mine']} by the new one alone.")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ini", required=True, help="cloudstack.ini of the first manager")
    p.add_argument("--routers", type=int, default=200)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--interval", type=float, default=5.0, help="router.check.interval")
    p.add_argument("--prefix", required=True, help="the namespace prefix")
    p.add_argument("--manager-pids", required=True, help="comma-separated")
    p.add_argument("--manager-logs", required=True, help="comma-separated, as the pids")
    p.add_argument("--manager-ports", required=True, help="comma-separated, as the pids")
    p.add_argument("--join", help="a script that starts one more manager and prints its pid and log")
    p.add_argument("--failover-limit", type=float, default=60.0)
    p.add_argument("--psql", required=True, help="psql command, space-separated")
    args = p.parse_args()
    args.psql = args.psql.split()
    pids = [int(x) for x in args.manager_pids.split(",")]
    logs = dict(zip(pids, args.manager_logs.split(",")))
    ports = [int(x) for x in args.manager_ports.split(",")]

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
        fail = None
        stop = None
        joined = None
        if len(pids) > 1:
            vpcs = [v["id"] for v in api.listVPCs(listall=True, fetch_list=True)[:30]]
            fail = take_over(args, pool, namespaces, pids[-1], signal.SIGKILL, logs,
                             jobs=(api, ports[-1], ports[0], vpcs))
            live = {p: logs[p] for p in pids[:-1]}
        if len(pids) > 2:
            # Let the survivors settle on their shares first.
            time.sleep(args.interval)
            stop = take_over(args, pool, namespaces, pids[-2], signal.SIGTERM, live)
            live = {p: logs[p] for p in pids[:-2]}
        if args.join and len(pids) > 1:
            time.sleep(args.interval)
            joined = join(args, pool, namespaces, list(live))

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
        print_take_over("failover: kill -9", len(pids), fail, args.failover_limit)
    if stop is not None:
        print_take_over("graceful stop: SIGTERM", len(pids) - 1, stop, args.failover_limit)
    if joined is not None:
        print_join(joined, len(pids) - 2 if len(pids) > 2 else len(pids) - 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
