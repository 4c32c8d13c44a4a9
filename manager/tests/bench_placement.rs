//! Placement at scale (issue 12's measurement), a benchmark run by
//! `scripts/bench/placement.sh`, not by the suite: three host agents on a
//! fabric, `PLACEMENT_VPCS` (300) VPCs of one tier and one VM each made
//! through the API, `PLACEMENT_PARALLEL` (4) at a time. Printed: how long
//! they took, how the planner spread routers and VMs over the hosts, the
//! memory of each router (proportional set size of every process in its
//! namespace: its agent and dnsmasq), and the CPU the manager (this
//! process) and each host agent use while nothing happens; then the manager
//! is restarted, and the time until it has checked every router again is
//! read from its own log line ("first checks of the routers gained
//! finished", logged when a manager's share of the routers changes, as at
//! its start).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use support::api::{Client, job_ok};
use support::e2e::E2e;
use support::fabric::{FabricOptions, fabric_zone};
use support::netns::namespaces;
use vpc_manager::settings::AgentTransport;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    field(11) + field(12)
}

/// The proportional set size of every process in namespace `ns`, in KiB.
fn pss_kib(ns: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|rollup| {
            rollup
                .lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .sum()
}

/// The manager's log lines, kept to read its own timings.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The value of `key=` in a log line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.trim_matches('"').parse().ok())
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// One VPC with one tier and one VM; the seconds it took.
async fn one_vpc(e: &E2e, admin: &Client, zone: &str, i: usize) -> f64 {
    let started = Instant::now();
    let (a, b) = (i / 250, i % 250);
    let vpc = job_ok(
        admin,
        "createVPC",
        &[
            ("name", &format!("p{i}")),
            ("cidr", &format!("10.{}.{b}.0/24", 100 + a)),
            ("zoneid", zone),
            ("vpcofferingid", &e.vpc_offering),
        ],
    )
    .await["vpc"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tier = admin
        .ok(
            "createNetwork",
            &[
                ("name", &format!("t{i}")),
                ("displaytext", "t"),
                ("zoneid", zone),
                ("vpcid", &vpc),
                ("networkofferingid", &e.tier_offering),
                ("gateway", &format!("10.{}.{b}.1", 100 + a)),
                ("netmask", "255.255.255.128"),
            ],
        )
        .await["network"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    job_ok(
        admin,
        "deployVirtualMachine",
        &[
            ("zoneid", zone),
            ("serviceofferingid", &e.service_offering),
            ("templateid", &e.template),
            ("networkids", &tier),
            ("name", &format!("v{i}")),
        ],
    )
    .await;
    started.elapsed().as_secs_f64()
}

fn count_by_host(listed: &Value, key: &str, names: &BTreeMap<String, String>) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for item in listed[key].as_array().cloned().unwrap_or_default() {
        let host = item["hostid"].as_str().unwrap_or("none").to_string();
        *by.entry(names.get(&host).cloned().unwrap_or(host))
            .or_default() += 1;
    }
    by.iter()
        .map(|(h, n)| format!("{h}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench/placement.sh"]
async fn placement_of_many_vpcs_over_three_hosts() {
    let vpcs = env_or("PLACEMENT_VPCS", 300);
    let parallel = env_or("PLACEMENT_PARALLEL", 4);
    let idle_secs = env_or("PLACEMENT_IDLE_SECS", 30);
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .init();
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();
    let (fabric, zone, hosts) = fabric_zone(
        &admin,
        FabricOptions {
            hosts: 3,
            ..FabricOptions::default()
        },
        "pl",
        "5000-5999",
    )
    .await;
    // A second public range: one source NAT address per VPC.
    admin
        .ok(
            "createVlanIpRange",
            &[
                ("zoneid", &zone),
                ("gateway", "198.51.100.1"),
                ("netmask", "255.255.255.0"),
                ("startip", "198.51.100.3"),
                ("endip", "198.51.100.254"),
                ("forvirtualnetwork", "true"),
            ],
        )
        .await;
    let names: BTreeMap<String, String> = hosts
        .iter()
        .zip(&fabric.hosts)
        .map(|(h, lab)| (h["id"].as_str().unwrap().to_string(), lab.name.clone()))
        .collect();

    let started = Instant::now();
    let times: Vec<f64> = futures_util::stream::iter(0..vpcs)
        .map(|i| one_vpc(&e, &admin, &zone, i))
        .buffer_unordered(parallel)
        .collect()
        .await;
    let total = started.elapsed();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());

    let routers = admin
        .ok(
            "listRouters",
            &[("zoneid", &zone), ("listall", "true"), ("pagesize", "-1")],
        )
        .await;
    let vms = admin
        .ok(
            "listVirtualMachines",
            &[("zoneid", &zone), ("listall", "true"), ("pagesize", "-1")],
        )
        .await;
    assert_eq!(routers["count"], vpcs, "every VPC has its router");
    assert_eq!(vms["count"], vpcs, "every VPC has its VM");

    let mut per_router = Vec::new();
    for host in &fabric.hosts {
        for ns in namespaces(&host.prefix) {
            if ns.trim_start_matches(&host.prefix).starts_with("r-") {
                per_router.push(pss_kib(&ns));
            }
        }
    }
    let total_pss: u64 = per_router.iter().sum();
    let routers_seen = per_router.len();

    // Idle: nothing asked for `idle_secs`.
    let me = std::process::id();
    let agents: Vec<(String, u32)> = fabric
        .hosts
        .iter()
        .filter_map(|h| h.pid().map(|p| (h.name.clone(), p)))
        .collect();
    let before: Vec<u64> = std::iter::once(me)
        .chain(agents.iter().map(|(_, p)| *p))
        .map(cpu_ticks)
        .collect();
    tokio::time::sleep(Duration::from_secs(idle_secs as u64)).await;
    let after: Vec<u64> = std::iter::once(me)
        .chain(agents.iter().map(|(_, p)| *p))
        .map(cpu_ticks)
        .collect();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let share = |i: usize| (after[i] - before[i]) as f64 / ticks / idle_secs as f64 * 100.0;

    println!("| what | result |");
    println!("| --- | --- |");
    println!(
        "| {vpcs} VPCs (one tier, one VM each), {parallel} at a time | {:.0} s, {:.2} s per VPC; each took median {:.1} s, p90 {:.1} s |",
        total.as_secs_f64(),
        total.as_secs_f64() / vpcs as f64,
        sorted[sorted.len() / 2],
        sorted[sorted.len() * 9 / 10],
    );
    println!(
        "| routers per host | {} |",
        count_by_host(&routers, "router", &names)
    );
    println!(
        "| VMs per host | {} |",
        count_by_host(&vms, "virtualmachine", &names)
    );
    println!(
        "| memory per router (PSS of its agent and dnsmasq), {routers_seen} routers | median {} KiB, mean {} KiB |",
        median(per_router),
        total_pss / routers_seen.max(1) as u64
    );
    println!(
        "| CPU at idle over {idle_secs} s, % of one core | manager (with its embedded host agent) {:.1} %, {} |",
        share(0),
        agents
            .iter()
            .enumerate()
            .map(|(i, (name, _))| format!("{name} {:.1} %", share(i + 1)))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // A restart: from the old manager's stop to every router checked by the
    // new one, read from the new manager's log line.
    let from = log.text().len();
    let restarting = Instant::now();
    let e = e.restart_manager(|| {}).await;
    let started = restarting.elapsed();
    let done = loop {
        let text = log.text();
        let line = text[from..]
            .lines()
            .find(|l| l.contains("first checks of the routers gained finished"))
            .map(str::to_string);
        if let Some(line) = line {
            break line;
        }
        if restarting.elapsed() > Duration::from_secs(300) {
            let seen: Vec<&str> = text[from..]
                .lines()
                .filter(|l| l.contains("share") || l.contains("WARN") || l.contains("ERROR"))
                .take(40)
                .collect();
            panic!(
                "the restarted manager did not check its routers in 300 s (stop and start took {:.1} s); its log: {seen:#?}",
                started.as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let checked_after = restarting.elapsed();
    assert_eq!(
        field(&done, "gained"),
        Some(vpcs as u64),
        "the restarted manager takes every router: {done}"
    );
    println!(
        "| manager restart to every router checked again ({vpcs} routers) | {:.1} s (stop and start {:.1} s, then the checks {} ms; {} checked, {} failed) |",
        checked_after.as_secs_f64(),
        started.as_secs_f64(),
        field(&done, "took_ms").unwrap_or_default(),
        field(&done, "checked").unwrap_or_default(),
        field(&done, "failed").unwrap_or_default(),
    );
    drop(fabric);
    e.finish().await;
}
