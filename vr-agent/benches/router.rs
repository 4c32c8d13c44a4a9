//! Router benchmark, run with `cargo bench -p vr-agent --bench router` as root
//! (or `scripts/bench/router.sh`). Everything happens in lab namespaces.
//!
//! 1. Apply time: a router with 10 tiers x 1,000 ACL items and 1,000 port
//!    forwarding rules, applied cold and re-applied with every item changed.
//! 2. One change of every kind (add, delete, update, move, flip action,
//!    replace a tier's list) on routers with 1,000, 10,000 and 100,000 ACL
//!    items (lists of at most 10,000, one per tier), and port forwarding and
//!    static NAT changes beside 10,000 port forwards (`ROUTER_BENCH=nat`
//!    runs the NAT changes alone).
//! 3. Between two tiers: the agent's ruleset with no ACL items (allow all)
//!    and with 10,000 items from each traffic generator of
//!    `vr_agent::testing::acls` (one action, realistic mix, adversarial),
//!    each ending with the item that lets the benchmark traffic in from the
//!    last layer it needs, against a 10,000-rule policy loaded as a linear
//!    nft chain and as a linear iptables-restore ruleset (legacy and nft
//!    backends): the new-flow rate (64-byte UDP datagrams, each from a new
//!    source address and port, so every datagram is a new conntrack entry
//!    and walks the ACL) and TCP bulk throughput (iperf3). Every run builds
//!    fresh lab namespaces, so each starts with an empty conntrack table.
//! 4. Through a port forward, from a client on the public NIC to the server
//!    VM, with 2 and with 10,000 port forwards on the router: the same
//!    new-flow rate and TCP bulk (`ROUTER_BENCH=forwards` runs it alone).
//!
//! Results are medians of interleaved repetitions, printed as a table with
//! the machine they ran on. `ROUTER_BENCH_AGENT=<path>` runs another build
//! of the agent: alone in parts 1 and 2, beside this build in part 3 (each
//! agent row twice, interleaved). `ROUTER_BENCH_FLOW_REPS` sets the
//! repetitions of parts 3 and 4 (3 by default).

use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use vpc_integration::{Lab, Netns, ProcessHandle, require_root};
use vpc_proto::v1 as pb;
use vpc_proto::v1::virtual_router_client::VirtualRouterClient;
use vr_agent::testing::acls::{Generator, bench_allow};
use vr_agent::testing::{item, mac, tier};

const TIERS: u32 = 10;
const REPS: usize = 5;
/// Repetitions of a flow row, unless ROUTER_BENCH_FLOW_REPS says.
const FLOW_REPS: usize = 3;

fn flow_reps() -> usize {
    std::env::var("ROUTER_BENCH_FLOW_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(FLOW_REPS)
}

struct Agent {
    runtime: tokio::runtime::Runtime,
    socket: PathBuf,
    generation: u64,
    _process: ProcessHandle,
}

/// The agent built with this benchmark.
const THIS_AGENT: &str = env!("CARGO_BIN_EXE_vr-agent");

/// ROUTER_BENCH_AGENT: another build of the agent (an earlier commit's, for
/// a before-and-after in one run). The apply and change rows run it instead
/// of this build; the flow rows run both, interleaved.
fn other_agent() -> Option<String> {
    std::env::var("ROUTER_BENCH_AGENT").ok()
}

impl Agent {
    fn start(lab: &Lab, ns: &Netns, name: &str) -> Agent {
        let binary = other_agent().unwrap_or_else(|| THIS_AGENT.to_string());
        Agent::start_binary(lab, ns, name, &binary)
    }

    fn start_binary(lab: &Lab, ns: &Netns, name: &str, binary: &str) -> Agent {
        let socket = lab.dir().join(format!("{name}.sock"));
        let state = lab.dir().join(format!("{name}-state"));
        let argv = [
            binary.to_string(),
            "--listen".into(),
            format!("unix://{}", socket.display()),
            "--state-dir".into(),
            state.display().to_string(),
            "--reconcile-interval".into(),
            "3600".into(),
        ];
        let process = lab.spawn(ns, name, &argv).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = Instant::now();
        while !socket.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "agent did not start:\n{}",
                process.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        Agent {
            runtime,
            socket,
            generation: 0,
            _process: process,
        }
    }

    fn call<T, F, Fut>(&self, f: F) -> T
    where
        F: FnOnce(VirtualRouterClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let socket = self.socket.clone();
        self.runtime.block_on(async move {
            let channel = vpc_proto::channel::unix(socket).await.expect("connect");
            f(VirtualRouterClient::new(channel))
                .await
                .expect("rpc")
                .into_inner()
        })
    }

    /// Returns (wall time of the RPC, apply time the agent reported).
    fn apply(&mut self, config: &pb::RouterConfig) -> (Duration, Duration) {
        self.generation += 1;
        let (generation, config) = (self.generation, config.clone());
        let started = Instant::now();
        let r = self.call(move |mut c| async move {
            c.apply_config(pb::ApplyConfigRequest {
                generation,
                config: Some(config),
            })
            .await
        });
        (started.elapsed(), Duration::from_micros(r.apply_micros))
    }

    /// Medians of the step timings (`*_us` fields) of the agent's last
    /// `last` `applied` log lines (every other one from the `parity`th
    /// when given), as `name=value` pairs.
    fn steps(&self, last: usize, parity: Option<usize>) -> String {
        let log = self._process.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(" applied")).collect();
        let lines = &lines[lines.len().saturating_sub(last)..];
        let mut fields: Vec<(String, Vec<f64>)> = Vec::new();
        for (k, line) in lines.iter().enumerate() {
            if parity.is_some_and(|p| k % 2 != p) {
                continue;
            }
            for word in line.split_whitespace() {
                let Some((key, value)) = word.split_once('=') else {
                    continue;
                };
                let key = strip_ansi(key);
                if !(key.ends_with("_us") || key == "micros") {
                    continue;
                }
                let Ok(value) = strip_ansi(value).parse::<f64>() else {
                    continue;
                };
                match fields.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, values)) => values.push(value),
                    None => fields.push((key, vec![value])),
                }
            }
        }
        fields
            .into_iter()
            .map(|(k, v)| format!("{k}={:.0}", median(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn set_acl(&mut self, acl: &pb::NetworkAcl) -> (Duration, Duration) {
        self.generation += 1;
        let (generation, acl) = (self.generation, acl.clone());
        let started = Instant::now();
        let r = self.call(move |mut c| async move {
            c.set_network_acl(pb::SetNetworkAclRequest {
                generation,
                acl: Some(acl),
            })
            .await
        });
        (started.elapsed(), Duration::from_micros(r.apply_micros))
    }
}

impl Agent {
    /// An EditNetworkAcl (the manager's one-item path): `acl`'s items are
    /// added or replace the items with their ids, `removed` are taken out.
    /// Returns (wall time of the RPC, apply time the agent reported).
    fn edit_acl(&mut self, acl: &pb::NetworkAcl, removed: &[String]) -> (Duration, Duration) {
        let base_generation = self.generation;
        self.generation += 1;
        let (generation, acl, removed) = (self.generation, acl.clone(), removed.to_vec());
        let started = Instant::now();
        let r = self.call(move |mut c| async move {
            c.edit_network_acl(pb::EditNetworkAclRequest {
                generation,
                base_generation,
                acl: Some(acl),
                removed,
            })
            .await
        });
        (started.elapsed(), Duration::from_micros(r.apply_micros))
    }
}

/// `text` without terminal colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// ACL item `i` of a big list: distinct /24 sources, TCP and UDP alternating,
/// ports spread out; none matches the benchmark traffic (10.1.2.0/24 to 5201).
fn filler(i: u32, shift: u32) -> pb::AclItem {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let source = format!("10.{}.{}.0/24", 100 + i / 250, i % 250);
    let protocol = if i.is_multiple_of(2) { Tcp } else { Udp };
    let port = 1024 + (i * 7 + shift) % 4000;
    item(
        i + 1,
        Allow,
        Ingress,
        protocol,
        &[&source],
        Some((port, port)),
    )
}

/// The benchmark's policy: `n` filler items, then allow the tier-2 traffic.
fn policy(n: u32, shift: u32) -> Vec<pb::AclItem> {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut items: Vec<pb::AclItem> = (0..n.saturating_sub(2)).map(|i| filler(i, shift)).collect();
    items.push(item(
        n + 1,
        Allow,
        Ingress,
        Tcp,
        &["10.1.2.0/24"],
        Some((5201, 5201)),
    ));
    items.push(item(
        n + 2,
        Allow,
        Ingress,
        Udp,
        &["10.1.2.0/24"],
        Some((5201, 5201)),
    ));
    items
}

fn nic(index: u32, role: pb::NicRole) -> pb::Nic {
    pb::Nic {
        device_index: index,
        mac_address: mac(index),
        role: role as i32,
        ..Default::default()
    }
}

/// A router with a public NIC and `tiers` tiers, `items` ACL items each, and
/// `forwards` port forwarding rules.
fn router_config(tiers: u32, items: u32, forwards: u32, shift: u32) -> pb::RouterConfig {
    let mut config = pb::RouterConfig {
        nics: vec![nic(1, pb::NicRole::Public)],
        ..Default::default()
    };
    config.public_ips.push(pb::PublicIp {
        add: true,
        ip_address: "203.0.113.10".into(),
        prefix_length: 24,
        gateway: "203.0.113.1".into(),
        device_index: 1,
        source_nat: true,
        ..Default::default()
    });
    config.public_ips.push(pb::PublicIp {
        add: true,
        ip_address: "203.0.113.11".into(),
        prefix_length: 24,
        gateway: "203.0.113.1".into(),
        device_index: 1,
        ..Default::default()
    });
    config.source_nat_rules.push(pb::SourceNatRule {
        device_index: 1,
        nat_ip: "203.0.113.10".into(),
        source_cidrs: vec![],
    });
    for t in 0..tiers {
        let index = t + 2;
        config.nics.push(nic(index, pb::NicRole::Guest));
        config.guest_networks.push(tier(index));
        config.network_acls.push(pb::NetworkAcl {
            device_index: index,
            mac_address: mac(index),
            items: policy(items, shift + t),
            ..Default::default()
        });
    }
    for f in 0..forwards {
        config.port_forwarding_rules.push(pb::PortForwardingRule {
            id: format!("pf-{f}"),
            public_ip: "203.0.113.11".into(),
            protocol: pb::Protocol::Tcp as i32,
            public_start_port: 10000 + f,
            private_ip: format!("10.1.{}.{}", 1 + f % tiers, 10 + f / tiers),
            private_start_port: 80,
            ..Default::default()
        });
    }
    config
}

/// A router namespace whose NICs 1..=n end in a sink namespace.
fn router_ns(lab: &Lab, nics: u32) -> (Netns, Netns) {
    let r = lab.netns("r").unwrap();
    let sink = lab.netns("sink").unwrap();
    for i in 1..=nics {
        lab.veth_with_mac(
            &r,
            &format!("n{i}"),
            Some(&mac(i)),
            &sink,
            &format!("s{i}"),
            None,
        )
        .unwrap();
    }
    (r, sink)
}

fn bench_apply(report: &mut String) {
    let lab = Lab::new("bench_apply").unwrap();
    let (r, _sink) = router_ns(&lab, TIERS + 1);
    let mut agent = Agent::start(&lab, &r, "agent");
    let a = router_config(TIERS, 1000, 1000, 0);
    let b = router_config(TIERS, 1000, 1000, 1);
    let (cold, cold_agent) = agent.apply(&a);
    let mut full = Vec::new();
    for rep in 0..REPS {
        full.push(ms(agent
            .apply(if rep.is_multiple_of(2) { &b } else { &a })
            .1));
    }
    let _ = writeln!(
        report,
        "## Apply (10 tiers x 1,000 ACL items + 1,000 port forwards)\n"
    );
    let _ = writeln!(report, "| what | ms |\n|---|---|");
    let _ = writeln!(
        report,
        "| cold apply (RPC wall / agent apply) | {:.1} / {:.1} |",
        ms(cold),
        ms(cold_agent)
    );
    let _ = writeln!(
        report,
        "| re-apply with every item changed (agent apply, median of {REPS}) | {:.1} |",
        median(full)
    );

    drop(agent);
    bench_changes(report);
}

/// A fixed deny item (disjoint from every filler and from the benchmark's
/// traffic), so that both actions have a set in layer 0 and flipping an
/// item's action moves elements between existing sets.
fn deny_item(number: u32) -> pb::AclItem {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    item(
        number,
        Deny,
        Ingress,
        Tcp,
        &["10.250.250.0/24"],
        Some((9999, 9999)),
    )
}

/// A router whose ACL lists hold `total` items: lists of at most 10,000
/// (`network.acl.max.items`), one per tier, each with the deny item. Lists
/// and items have ids, as the manager sends them (an edit names them).
fn sized_config(total: u32, shift: u32) -> pb::RouterConfig {
    let per = total.min(10_000);
    let tiers = total.div_ceil(per);
    let mut config = router_config(tiers, per, 0, shift);
    for acl in &mut config.network_acls {
        acl.items.push(deny_item(per + 10));
        acl.acl_id = format!("acl-{}", acl.device_index);
        for item in &mut acl.items {
            item.id = format!("item-{}", item.number);
        }
    }
    config
}

/// An edit of `base`'s list: its labels with `items`.
fn edit_of(base: &pb::NetworkAcl, items: Vec<pb::AclItem>) -> pb::NetworkAcl {
    pb::NetworkAcl {
        device_index: base.device_index,
        mac_address: base.mac_address.clone(),
        private_gateway: base.private_gateway,
        acl_id: base.acl_id.clone(),
        acl_name: base.acl_name.clone(),
        items,
    }
}

/// Runs `change` 20 times (it alternates between two states by `rep`) and
/// returns the medians (RPC wall, agent apply) in ms.
fn medians(mut change: impl FnMut(u32) -> (Duration, Duration)) -> (f64, f64) {
    let (mut wall, mut applied) = (Vec::new(), Vec::new());
    for rep in 0..20u32 {
        let (w, a) = change(rep);
        wall.push(ms(w));
        applied.push(ms(a));
    }
    (median(wall), median(applied))
}

/// One-item changes of every kind, on routers with 1,000, 10,000 and
/// 100,000 ACL items, and port forwarding and static NAT changes with
/// 10,000 port forwards.
fn bench_changes(report: &mut String) {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let lab = Lab::new("bench_changes").unwrap();
    let (r, _sink) = router_ns(&lab, TIERS + 1);
    let mut agent = Agent::start(&lab, &r, "agent");
    let _ = writeln!(
        report,
        "## One change (medians of 20; RPC wall / agent apply, received to kernel updated and persisted)\n"
    );
    let _ = writeln!(
        report,
        "| change | 1,000 items | 10,000 items | 100,000 items |\n|---|---|---|---|"
    );
    let mut rows: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut breakdown = String::new();
    let mut row = |name: &str, value: (f64, f64), steps: String, total: u32| {
        eprintln!("{name}: {:.1} / {:.1} ms", value.0, value.1);
        eprintln!("  {total} items, agent steps (medians, us): {steps}");
        let _ = writeln!(breakdown, "| {name} | {total} | {steps} |");
        match rows.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => values.push(value),
            None => rows.push((name.to_string(), vec![value])),
        }
    };
    // ROUTER_BENCH_SIZES=10000 (comma-separated) runs only those sizes.
    let sizes: Vec<u32> = std::env::var("ROUTER_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10_000, 100_000]);
    for total in sizes {
        let config = sized_config(total, 0);
        let (cold, _) = agent.apply(&config);
        eprintln!("{total} items applied cold in {:.0} ms", ms(cold));
        let base = config.network_acls[0].clone();
        let n = base.items.len() as u32;
        // Item 101 alternates between two ports.
        let value = medians(|rep| {
            let mut acl = base.clone();
            acl.items[100].start_port = Some(30000 + rep % 2);
            acl.items[100].end_port = Some(30000 + rep % 2);
            agent.set_acl(&acl)
        });
        row("update (a port)", value, agent.steps(20, None), total);
        // An item is added, then deleted.
        let extra = item(
            n + 100,
            Allow,
            Ingress,
            Udp,
            &["10.251.1.0/24"],
            Some((7000, 7000)),
        );
        let (mut add, mut del) = (Vec::new(), Vec::new());
        for rep in 0..40u32 {
            let mut acl = base.clone();
            if rep % 2 == 0 {
                acl.items.push(extra.clone());
                add.push(agent.set_acl(&acl));
            } else {
                del.push(agent.set_acl(&acl));
            }
        }
        let split = |v: Vec<(Duration, Duration)>| {
            (
                median(v.iter().map(|x| ms(x.0)).collect()),
                median(v.iter().map(|x| ms(x.1)).collect()),
            )
        };
        // The agent's last 40 applies alternate: add, delete.
        row("add", split(add), agent.steps(40, Some(0)), total);
        row("delete", split(del), agent.steps(40, Some(1)), total);
        // Item 101 moves to the end of the list and back (renumbered).
        let value = medians(|rep| {
            let mut acl = base.clone();
            if rep % 2 == 0 {
                acl.items[100].number = n + 200;
            }
            agent.set_acl(&acl)
        });
        row("move / renumber", value, agent.steps(20, None), total);
        // Item 101 turns from allow to deny and back.
        let value = medians(|rep| {
            let mut acl = base.clone();
            if rep % 2 == 0 {
                acl.items[100].action = Deny as i32;
            }
            agent.set_acl(&acl)
        });
        row("flip action", value, agent.steps(20, None), total);
        // The same changes as edits (EditNetworkAcl, what the manager
        // sends for a one-item change): only the item travels.
        let value = medians(|rep| {
            let mut one = base.items[100].clone();
            one.start_port = Some(30000 + rep % 2);
            one.end_port = Some(30000 + rep % 2);
            agent.edit_acl(&edit_of(&base, vec![one]), &[])
        });
        row("edit: update (a port)", value, agent.steps(20, None), total);
        let mut extra_item = extra.clone();
        extra_item.id = "item-extra".into();
        let (mut add, mut del) = (Vec::new(), Vec::new());
        for rep in 0..40u32 {
            if rep % 2 == 0 {
                add.push(agent.edit_acl(&edit_of(&base, vec![extra_item.clone()]), &[]));
            } else {
                del.push(agent.edit_acl(&edit_of(&base, vec![]), &[extra_item.id.clone()]));
            }
        }
        row("edit: add", split(add), agent.steps(40, Some(0)), total);
        row("edit: delete", split(del), agent.steps(40, Some(1)), total);
        let value = medians(|rep| {
            let mut one = base.items[100].clone();
            if rep % 2 == 0 {
                one.number = n + 200;
            }
            agent.edit_acl(&edit_of(&base, vec![one]), &[])
        });
        row("edit: move / renumber", value, agent.steps(20, None), total);
        let value = medians(|rep| {
            let mut one = base.items[100].clone();
            if rep % 2 == 0 {
                one.action = Deny as i32;
            }
            agent.edit_acl(&edit_of(&base, vec![one]), &[])
        });
        row("edit: flip action", value, agent.steps(20, None), total);
        // The tier's list is replaced by another list of the same size
        // (every item's port differs; the items keep their ids, so their
        // counts are carried), and back.
        let other = sized_config(total, 1).network_acls[0].clone();
        let value = medians(|rep| agent.set_acl(if rep % 2 == 0 { &other } else { &base }));
        row(
            "replace the tier's list (every item differs)",
            value,
            agent.steps(20, None),
            total,
        );
        // CloudStack's replaceNetworkACLList: the tier gets another list,
        // whose items have ids of their own (no count is carried).
        let mut another = other.clone();
        another.acl_id = format!("{}-other", base.acl_id);
        for item in &mut another.items {
            item.id = format!("other-{}", item.number);
        }
        let value = medians(|rep| agent.set_acl(if rep % 2 == 0 { &another } else { &base }));
        row(
            "replace the tier's list by another list (new ids)",
            value,
            agent.steps(20, None),
            total,
        );
    }
    for (name, values) in &rows {
        let cells: Vec<String> = values
            .iter()
            .map(|(w, a)| format!("{w:.1} / {a:.1}"))
            .collect();
        let _ = writeln!(report, "| {name} | {} |", cells.join(" | "));
    }
    let _ = writeln!(
        report,
        "\n| change | items | agent steps, medians of its last 20 `applied` log lines (us) |\n|---|---|---|\n{breakdown}"
    );
    if std::env::var("ROUTER_BENCH").is_ok_and(|v| v == "changes") {
        return;
    }
    bench_nat_changes(report, &mut agent);
}

/// Port forwarding and static NAT changes beside 10,000 port forwards
/// (9,999 and one that comes and goes; the agent's bound is 10,000) and
/// 200 static NATs, beside 1,000 ACL items: a forward added, deleted,
/// pointed elsewhere and moved to another public port, a static NAT
/// pointed elsewhere, added and deleted (`ROUTER_BENCH=nat` runs them
/// alone).
fn bench_nat_changes(report: &mut String, agent: &mut Agent) {
    let mut config = sized_config(1000, 0);
    for k in 0..201u32 {
        let ip = format!("198.51.100.{}", 20 + k);
        config.public_ips.push(pb::PublicIp {
            add: true,
            ip_address: ip.clone(),
            prefix_length: 24,
            gateway: "198.51.100.1".into(),
            device_index: 1,
            ..Default::default()
        });
        // The last address is kept free for the static NAT that comes
        // and goes.
        if k < 200 {
            config.static_nat_rules.push(pb::StaticNatRule {
                id: format!("snat-{k}"),
                public_ip: ip,
                private_ip: format!("10.1.1.{}", 20 + k),
            });
        }
    }
    let forwards = router_config(1, 0, 9_999, 0).port_forwarding_rules;
    config.port_forwarding_rules = forwards
        .into_iter()
        .map(|mut f| {
            f.private_ip = format!("10.1.1.{}", 10 + (f.public_start_port % 200));
            f
        })
        .collect();
    agent.apply(&config);
    let pfs = config.port_forwarding_rules.clone();
    let snats = config.static_nat_rules.clone();
    let _ = writeln!(
        report,
        "\n| NAT change, 10,000 port forwards and 200 static NATs | RPC wall / agent apply, ms | agent steps, medians (us) |\n|---|---|---|"
    );
    let pf = |agent: &mut Agent, rules: Vec<pb::PortForwardingRule>| {
        agent.generation += 1;
        let generation = agent.generation;
        let started = Instant::now();
        let r = agent.call(move |mut c| async move {
            c.set_port_forwarding_rules(pb::SetPortForwardingRulesRequest { generation, rules })
                .await
        });
        (started.elapsed(), Duration::from_micros(r.apply_micros))
    };
    let snat = |agent: &mut Agent, rules: Vec<pb::StaticNatRule>| {
        agent.generation += 1;
        let generation = agent.generation;
        let started = Instant::now();
        let r = agent.call(move |mut c| async move {
            c.set_static_nat_rules(pb::SetStaticNatRulesRequest { generation, rules })
                .await
        });
        (started.elapsed(), Duration::from_micros(r.apply_micros))
    };
    // What the agent's apply time leaves out of the RPC: the 10,000 rules
    // encoded by the client and decoded by the agent (prost, timed here in
    // the bench's process).
    let request = pb::SetPortForwardingRulesRequest {
        generation: 1,
        rules: pfs.clone(),
    };
    let (mut encode, mut decode, mut size) = (Vec::new(), Vec::new(), 0);
    for _ in 0..20 {
        let started = Instant::now();
        let bytes = prost::Message::encode_to_vec(&request);
        encode.push(ms(started.elapsed()));
        let started = Instant::now();
        let back: pb::SetPortForwardingRulesRequest =
            prost::Message::decode(bytes.as_slice()).unwrap();
        decode.push(ms(started.elapsed()));
        assert_eq!(back.rules.len(), pfs.len());
        size = bytes.len();
    }
    let coding = format!("{:.1} / {:.1}", median(encode), median(decode));
    eprintln!("request of {size} bytes encoded / decoded: {coding} ms");
    let _ = writeln!(
        report,
        "| the request alone ({size} bytes), encoded / decoded (prost) | {coding} | |"
    );
    let split = |v: &[(Duration, Duration)], parity: usize| {
        let half: Vec<&(Duration, Duration)> = v.iter().skip(parity).step_by(2).collect();
        (
            median(half.iter().map(|x| ms(x.0)).collect()),
            median(half.iter().map(|x| ms(x.1)).collect()),
        )
    };
    let mut rows: Vec<(&str, (f64, f64), String)> = Vec::new();
    // A forward is added at the end of the list, then deleted.
    let extra = pb::PortForwardingRule {
        id: "pf-extra".into(),
        public_ip: "203.0.113.11".into(),
        protocol: pb::Protocol::Tcp as i32,
        public_start_port: 9000,
        private_ip: "10.1.1.99".into(),
        private_start_port: 80,
        ..Default::default()
    };
    let runs: Vec<(Duration, Duration)> = (0..40u32)
        .map(|rep| {
            let mut rules = pfs.clone();
            if rep % 2 == 0 {
                rules.push(extra.clone());
            }
            pf(agent, rules)
        })
        .collect();
    rows.push((
        "port forward added",
        split(&runs, 0),
        agent.steps(40, Some(0)),
    ));
    rows.push((
        "port forward deleted",
        split(&runs, 1),
        agent.steps(40, Some(1)),
    ));
    let value = medians(|rep| {
        let mut rules = pfs.clone();
        rules[100].private_ip = format!("10.1.1.{}", 230 + rep % 2);
        pf(agent, rules)
    });
    rows.push((
        "port forward's private address changed",
        value,
        agent.steps(20, None),
    ));
    // Forward 101 moves to another public port and back.
    let value = medians(|rep| {
        let mut rules = pfs.clone();
        if rep % 2 == 0 {
            rules[100].public_start_port = 30_000;
        }
        pf(agent, rules)
    });
    rows.push((
        "port forward moved to another public port",
        value,
        agent.steps(20, None),
    ));
    let value = medians(|rep| {
        let mut rules = snats.clone();
        rules[10].private_ip = format!("10.1.1.{}", 240 + rep % 2);
        snat(agent, rules)
    });
    rows.push((
        "static NAT's private address changed",
        value,
        agent.steps(20, None),
    ));
    let runs: Vec<(Duration, Duration)> = (0..40u32)
        .map(|rep| {
            let mut rules = snats.clone();
            if rep % 2 == 0 {
                rules.push(pb::StaticNatRule {
                    id: "snat-extra".into(),
                    public_ip: "198.51.100.220".into(),
                    private_ip: "10.1.1.250".into(),
                });
            }
            snat(agent, rules)
        })
        .collect();
    rows.push((
        "static NAT added",
        split(&runs, 0),
        agent.steps(40, Some(0)),
    ));
    rows.push((
        "static NAT deleted",
        split(&runs, 1),
        agent.steps(40, Some(1)),
    ));
    for (name, (w, a), steps) in rows {
        eprintln!("{name}: {w:.1} / {a:.1} ms");
        eprintln!("  agent steps (medians, us): {steps}");
        let _ = writeln!(report, "| {name} | {w:.1} / {a:.1} | {steps} |");
    }
    let _ = writeln!(report);
}

/// Which firewall the router runs for a throughput sample.
#[derive(Clone, Debug)]
enum Ruleset {
    /// The agent (this build, or with `Some` the build at that path) with
    /// no items (`None`: one allow-all item) or with 10,000 items of a
    /// generator.
    Agent(Option<Generator>, Option<String>),
    NftLinear,
    IptablesLegacy,
    IptablesNft,
}

/// Items of the generated lists (the benchmark's two allows come after).
const GENERATED: u32 = 10_000 - 2;

/// A generator's 10,000-item policy: its items, then UDP 5201 from
/// anywhere (behind every deny of UDP 5201 the list has) and TCP 5201 from
/// the client tier (iperf3's control and bulk connections).
fn generated_policy(generator: Generator) -> Vec<pb::AclItem> {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut items = generator.items(GENERATED, 7);
    items.push(bench_allow(GENERATED + 1));
    items.push(item(
        GENERATED + 2,
        Allow,
        Ingress,
        Tcp,
        &["10.1.2.0/24"],
        Some((5201, 5201)),
    ));
    items
}

impl Ruleset {
    fn label(&self) -> String {
        let build = |other: &Option<String>| match other {
            Some(path) => format!("vr-agent ({path})"),
            None => "vr-agent".into(),
        };
        match self {
            Ruleset::Agent(None, other) => format!("{}, no ACL items (allow all)", build(other)),
            Ruleset::Agent(Some(g), other) => {
                format!("{}, 10,000 items: {}", build(other), g.name())
            }
            Ruleset::NftLinear => "linear nft chain, 10,000 rules".into(),
            Ruleset::IptablesLegacy => "linear iptables-legacy-restore, 10,000 rules".into(),
            Ruleset::IptablesNft => "linear iptables-nft-restore, 10,000 rules".into(),
        }
    }
}

/// The same policy as `policy(10_000)`, as linear rules after an
/// established/related shortcut (CloudStack's FORWARD chain starts the same).
fn linear_nft(n: u32) -> String {
    let mut s = String::from(
        "table inet vpc\ndelete table inet vpc\ntable inet vpc {\n chain forward {\n  type filter hook forward priority filter; policy drop;\n  ct state established,related accept\n",
    );
    for i in 0..n - 2 {
        let it = filler(i, 0);
        let proto = if it.protocol == pb::Protocol::Tcp as i32 {
            "tcp"
        } else {
            "udp"
        };
        let _ = writeln!(
            s,
            "  oifname \"eth3\" ip saddr {} {proto} dport {} accept",
            it.cidrs[0],
            it.start_port.unwrap()
        );
    }
    s.push_str("  oifname \"eth3\" ip saddr 10.1.2.0/24 tcp dport 5201 accept\n  oifname \"eth3\" ip saddr 10.1.2.0/24 udp dport 5201 accept\n  oifname \"eth2\" accept\n }\n}\n");
    s
}

fn linear_iptables(n: u32) -> String {
    let mut s = String::from(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:ACL_INBOUND_eth3 - [0:0]\n-A FORWARD -m state --state RELATED,ESTABLISHED -j ACCEPT\n-A FORWARD -o eth3 -j ACL_INBOUND_eth3\n-A FORWARD -o eth2 -j ACCEPT\n",
    );
    for i in 0..n - 2 {
        let it = filler(i, 0);
        let proto = if it.protocol == pb::Protocol::Tcp as i32 {
            "tcp"
        } else {
            "udp"
        };
        let _ = writeln!(
            s,
            "-A ACL_INBOUND_eth3 -s {} -p {proto} --dport {} -j ACCEPT",
            it.cidrs[0],
            it.start_port.unwrap()
        );
    }
    s.push_str("-A ACL_INBOUND_eth3 -s 10.1.2.0/24 -p tcp --dport 5201 -j ACCEPT\n-A ACL_INBOUND_eth3 -s 10.1.2.0/24 -p udp --dport 5201 -j ACCEPT\n-A ACL_INBOUND_eth3 -j DROP\nCOMMIT\n");
    s
}

struct FlowLab {
    lab: Lab,
    r: Netns,
    client: Netns,
    server: Netns,
}

impl FlowLab {
    /// A router namespace with the client's namespace on its NIC
    /// `client_nic` and the server VM (10.1.3.5) on eth3, each with its
    /// address and a default route through the router.
    fn new(name: &str, client_nic: (&str, u32), client: (&str, &str)) -> FlowLab {
        let lab = Lab::new(name).unwrap();
        let r = lab.netns("r").unwrap();
        let client_ns = lab.netns("c").unwrap();
        let server = lab.netns("s").unwrap();
        let (nic, index) = client_nic;
        lab.veth_with_mac(&r, nic, Some(&mac(index)), &client_ns, "eth0", None)
            .unwrap();
        lab.veth_with_mac(&r, "eth3", Some(&mac(3)), &server, "eth0", None)
            .unwrap();
        for (ns, cidr, gw) in [
            (&client_ns, client.0, client.1),
            (&server, "10.1.3.5/24", "10.1.3.1"),
        ] {
            lab.addr_add(ns, "eth0", cidr).unwrap();
            lab.link_up(ns, "eth0").unwrap();
            lab.route_add(ns, &["default", "via", gw]).unwrap();
        }
        FlowLab {
            lab,
            r,
            client: client_ns,
            server,
        }
    }
}

/// Tier 1 (eth2, 10.1.1.0/24) holds the client, tier 2 (eth3, 10.1.2.0/24)
/// the iperf3 server, so traffic enters tier 2 through its ingress ACL.
fn flow_lab(ruleset: &Ruleset) -> (FlowLab, Option<Agent>) {
    let flows = FlowLab::new("bench_flow", ("eth2", 2), ("10.1.2.5/24", "10.1.2.1"));
    let agent = match ruleset {
        Ruleset::Agent(n, other) => {
            let binary = other.as_deref().unwrap_or(THIS_AGENT);
            let mut agent = Agent::start_binary(&flows.lab, &flows.r, "agent", binary);
            let mut config = router_config(2, 0, 0, 0);
            config.nics.retain(|n| n.device_index != 1);
            config.public_ips.clear();
            config.source_nat_rules.clear();
            // Tier index 2 is 10.1.1.0/24 in `tier()`; shift so the client tier
            // is 10.1.2.0/24 and the server tier 10.1.3.0/24.
            for g in &mut config.guest_networks {
                let k = g.device_index;
                g.cidr = format!("10.1.{k}.0/24");
                g.gateway = format!("10.1.{k}.1");
            }
            config.network_acls = vec![pb::NetworkAcl {
                device_index: 3,
                mac_address: mac(3),
                items: match n {
                    None => {
                        use pb::{AclAction::*, Protocol::*, TrafficType::*};
                        vec![item(1, Allow, Ingress, All, &["10.1.2.0/24"], None)]
                    }
                    Some(generator) => generated_policy(*generator),
                },
                ..Default::default()
            }];
            agent.apply(&config);
            Some(agent)
        }
        other => {
            for (ns, cidr) in [("eth2", "10.1.2.1/24"), ("eth3", "10.1.3.1/24")] {
                flows.lab.addr_add(&flows.r, ns, cidr).unwrap();
                flows.lab.link_up(&flows.r, ns).unwrap();
            }
            flows
                .lab
                .sysctl(&flows.r, "net.ipv4.ip_forward", "1")
                .unwrap();
            let (tool, text) = match other {
                Ruleset::NftLinear => ("nft", linear_nft(10_000)),
                Ruleset::IptablesLegacy => ("iptables-legacy-restore", linear_iptables(10_000)),
                _ => ("iptables-nft-restore", linear_iptables(10_000)),
            };
            let file = flows.lab.dir().join("rules");
            std::fs::write(&file, text).unwrap();
            let path = file.display().to_string();
            let argv: Vec<&str> = if tool == "nft" {
                vec!["nft", "-f", &path]
            } else {
                vec![tool, &path]
            };
            flows
                .lab
                .exec_timeout(&flows.r, &argv, Duration::from_secs(60))
                .unwrap();
            None
        }
    };
    (flows, agent)
}

/// TCP bulk throughput (Gbit/s), or with `udp` iperf3's 64-byte UDP rate
/// (kpps; one flow that iperf3's handshake makes ESTABLISHED).
/// `server` is the server VM's address, or the public address of a port
/// forward to it.
fn iperf(flows: &FlowLab, server: &str, udp: bool) -> f64 {
    let listener = flows
        .lab
        .spawn(&flows.server, "iperf3-server", &["iperf3", "-s", "-1"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut argv = vec!["iperf3", "-c", server, "-t", "3", "-J"];
    if udp {
        argv.extend(["-u", "-b", "0", "-l", "64"]);
    }
    let out = flows
        .lab
        .exec_timeout(&flows.client, &argv, Duration::from_secs(20))
        .unwrap();
    drop(listener);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("iperf3 JSON");
    if udp {
        let sum = &json["end"]["sum"];
        let received = sum["packets"].as_f64().unwrap() - sum["lost_packets"].as_f64().unwrap();
        received / sum["seconds"].as_f64().unwrap() / 1000.0
    } else {
        json["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap()
            / 1e9
    }
}

/// A raw IPv4 socket that sends headers we write (IPPROTO_RAW implies
/// IP_HDRINCL); the kernel fills in the checksum and total length.
struct RawSender(std::os::fd::OwnedFd);

impl RawSender {
    fn open() -> RawSender {
        use std::os::fd::FromRawFd;
        // SAFETY: socket() returns a new descriptor or -1, checked below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        RawSender(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
    }

    fn send(&self, packet: &[u8], to: std::net::Ipv4Addr) {
        use std::os::fd::AsRawFd;
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(to).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: packet and addr outlive the call; the lengths are theirs.
        unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
    }
}

/// An IPv4 UDP datagram with a 64-byte payload from `source:port` to
/// `to`:5201 (UDP checksum 0: none, which IPv4 allows).
fn datagram(source: std::net::Ipv4Addr, port: u16, to: std::net::Ipv4Addr) -> [u8; 92] {
    let mut p = [0u8; 92];
    p[0] = 0x45;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&source.octets());
    p[16..20].copy_from_slice(&to.octets());
    p[20..22].copy_from_slice(&port.to_be_bytes());
    p[22..24].copy_from_slice(&5201u16.to_be_bytes());
    p[24..26].copy_from_slice(&72u16.to_be_bytes());
    p[28..].fill(0x5a);
    p
}

/// Where the datagrams of [`new_flow_rate`] come from and go.
#[derive(Clone, Copy)]
struct Traffic {
    /// The sources are `.2` to `.254` of this /24.
    sources: [u8; 3],
    /// Where they are sent (port 5201).
    to: std::net::Ipv4Addr,
}

/// From the client tier to the server VM, between two tiers.
const BETWEEN_TIERS: Traffic = Traffic {
    sources: [10, 1, 2],
    to: std::net::Ipv4Addr::new(10, 1, 3, 5),
};

/// Thousands of datagrams per second that reach the receiver when every
/// datagram is a new flow: 64-byte UDP datagrams to `traffic.to`:5201, each
/// from the next of 253 source addresses and, every 253 datagrams, the next
/// of 64,000 source ports (16 million flows, more than a run sends, so no
/// datagram finds a conntrack entry and each walks the ACL and the NAT
/// chains as a new flow's first packet does). Sent on a raw socket: one
/// socket, no binding per flow. The receiver listens on the server's 5201.
///
/// Also returns the datagrams sent per second of the sender thread's CPU
/// time (thousands). The router's whole path for a datagram (prerouting,
/// conntrack, the forward chain and its ACLs, the server's receive) runs
/// in the softirq the send raises, on the sender's thread: its CPU time per
/// datagram is the per-packet cost, which the other processes on a loaded
/// machine do not change the way they change the wall-clock rate.
fn new_flow_rate(flows: &FlowLab, traffic: Traffic) -> (f64, f64) {
    use std::net::UdpSocket;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (stop, received, server) = (stop.clone(), received.clone(), flows.server.clone());
        std::thread::spawn(move || {
            vpc_integration::run_in_netns(&server, move || {
                let socket = UdpSocket::bind("0.0.0.0:5201").unwrap();
                socket
                    .set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if socket.recv(&mut buf).is_ok() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            })
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let client = flows.client.clone();
    let (warmup, measure) = (Duration::from_millis(500), Duration::from_secs(3));
    let sender_stop = stop.clone();
    // Set by the main thread at the window's start and end: the sender
    // notes its datagram count and CPU time there.
    let marks = Arc::new(AtomicU64::new(0));
    let sender_marks = marks.clone();
    let sender = std::thread::spawn(move || {
        vpc_integration::run_in_netns(&client, move || {
            let raw = RawSender::open();
            let [a, b, c] = traffic.sources;
            let to = traffic.to;
            let mut k = 0u32;
            let mut noted = Vec::new();
            while !sender_stop.load(Ordering::Relaxed) {
                if sender_marks.load(Ordering::Relaxed) as usize > noted.len() {
                    noted.push((k, thread_cpu()));
                }
                let host = 2 + (k % 253) as u8;
                let port = 1024 + ((k / 253) % 64_000) as u16;
                raw.send(
                    &datagram(std::net::Ipv4Addr::new(a, b, c, host), port, to),
                    to,
                );
                k = k.wrapping_add(1);
            }
            Ok(noted)
        })
    });
    std::thread::sleep(warmup);
    marks.store(1, Ordering::Relaxed);
    let before = received.load(Ordering::Relaxed);
    std::thread::sleep(measure);
    marks.store(2, Ordering::Relaxed);
    let after = received.load(Ordering::Relaxed);
    // Let the sender note the end before it stops.
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let noted = sender.join().unwrap().unwrap();
    receiver.join().unwrap().unwrap();
    let per_cpu = match noted[..] {
        [(k0, t0), (k1, t1), ..] => k1.wrapping_sub(k0) as f64 / (t1 - t0).as_secs_f64() / 1000.0,
        _ => f64::NAN,
    };
    (
        (after - before) as f64 / measure.as_secs_f64() / 1000.0,
        per_cpu,
    )
}

/// The calling thread's CPU time.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: t is a valid timespec the call fills in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The machine the benchmark runs on, for the report.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{} CPUs ({cpu}), kernel {}, load average at the end {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn bench_flows(report: &mut String) {
    // With ROUTER_BENCH_AGENT, each agent row is followed by the same
    // row with that build.
    let mut cases = Vec::new();
    for generator in [
        None,
        Some(Generator::OneAction),
        Some(Generator::Realistic),
        Some(Generator::Adversarial),
    ] {
        cases.push(Ruleset::Agent(generator, None));
        if let Some(other) = other_agent() {
            cases.push(Ruleset::Agent(generator, Some(other)));
        }
    }
    cases.extend([
        Ruleset::NftLinear,
        Ruleset::IptablesLegacy,
        Ruleset::IptablesNft,
    ]);
    flow_table(
        report,
        FlowTable {
            title: "Between two tiers",
            case: "router ruleset",
            new_flows: "new flows: UDP 64 B, a new flow per datagram, kpps",
            bulk: "TCP bulk Gbit/s",
            versus: "no items",
            labels: cases.iter().map(|c| c.label()).collect(),
            traffic: BETWEEN_TIERS,
            server: "10.1.3.5",
        },
        |k| flow_lab(&cases[k]),
    );
}

/// What a table of [`flow_table`] measures and how it is headed.
struct FlowTable {
    title: &'static str,
    /// The first column's heading, and one label per case.
    case: &'static str,
    labels: Vec<String>,
    new_flows: &'static str,
    bulk: &'static str,
    /// What the first case is called in the "vs" columns.
    versus: &'static str,
    traffic: Traffic,
    /// Where iperf3 connects.
    server: &'static str,
}

/// The new-flow rate and TCP bulk of every case (a fresh lab from `lab`
/// each time), medians of [`flow_reps`] interleaved runs, as a table relative
/// to the first case.
fn flow_table(
    report: &mut String,
    table: FlowTable,
    lab: impl Fn(usize) -> (FlowLab, Option<Agent>),
) {
    let n = table.labels.len();
    let mut tcp: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut udp: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut per_cpu: Vec<Vec<f64>> = vec![Vec::new(); n];
    let reps = flow_reps();
    for _ in 0..reps {
        for k in 0..n {
            let (flows, agent) = lab(k);
            // New flows first, while the namespaces' conntrack tables are
            // empty; then iperf3's few connections.
            let (rate, cpu) = new_flow_rate(&flows, table.traffic);
            udp[k].push(rate);
            per_cpu[k].push(cpu);
            tcp[k].push(iperf(&flows, table.server, false));
            drop(agent);
        }
    }
    let base = (
        median(tcp[0].clone()),
        median(udp[0].clone()),
        median(per_cpu[0].clone()),
    );
    let _ = writeln!(
        report,
        "## {} (median of {reps}, interleaved)\n",
        table.title
    );
    let _ = writeln!(
        report,
        "| {} | {} | vs {} | new flows per second of sender CPU (the path's cost), k | vs {} | {} | vs {} |\n|---|---|---|---|---|---|---|",
        table.case, table.new_flows, table.versus, table.versus, table.bulk, table.versus
    );
    for (k, label) in table.labels.iter().enumerate() {
        let (t, u, c) = (
            median(tcp[k].clone()),
            median(udp[k].clone()),
            median(per_cpu[k].clone()),
        );
        let _ = writeln!(
            report,
            "| {label} | {u:.1} | {:.0}% | {c:.1} | {:.0}% | {t:.2} | {:.0}% |",
            100.0 * u / base.1,
            100.0 * c / base.2,
            100.0 * t / base.0
        );
    }
    let _ = writeln!(report, "\nMachine: {}\n", machine());
}

/// The agent's router between a public client and a server VM, with
/// `forwards` (at least 2) port forwards on 203.0.113.11: UDP and TCP 5201 to the server
/// (10.1.3.5) and the rest TCP to other addresses of its tier, one in ten
/// only for some source CIDRs. The client (203.0.113.50) sits on the
/// public NIC; its new flows come from 198.51.100.0/24, whose way back is
/// the public NIC's, as traffic from the Internet's is.
fn forward_lab(forwards: u32) -> (FlowLab, Agent) {
    let flows = FlowLab::new("bench_pf", ("eth1", 1), ("203.0.113.50/24", "203.0.113.11"));
    let mut agent = Agent::start(&flows.lab, &flows.r, "agent");
    let mut config = router_config(2, 0, 0, 0);
    config.nics.retain(|n| n.device_index != 2);
    config.guest_networks.retain(|g| g.device_index == 3);
    for g in &mut config.guest_networks {
        g.cidr = "10.1.3.0/24".into();
        g.gateway = "10.1.3.1".into();
    }
    config.network_acls = vec![pb::NetworkAcl {
        device_index: 3,
        mac_address: mac(3),
        items: {
            use pb::{AclAction::*, Protocol::*, TrafficType::*};
            vec![item(1, Allow, Ingress, All, &["0.0.0.0/0"], None)]
        },
        ..Default::default()
    }];
    let to_server = |protocol: pb::Protocol| pb::PortForwardingRule {
        id: format!("pf-5201-{}", protocol as i32),
        public_ip: "203.0.113.11".into(),
        protocol: protocol as i32,
        public_start_port: 5201,
        private_ip: "10.1.3.5".into(),
        private_start_port: 5201,
        ..Default::default()
    };
    config.port_forwarding_rules = vec![to_server(pb::Protocol::Udp), to_server(pb::Protocol::Tcp)];
    for f in 0..forwards.saturating_sub(2) {
        config.port_forwarding_rules.push(pb::PortForwardingRule {
            id: format!("pf-{f}"),
            public_ip: "203.0.113.11".into(),
            protocol: pb::Protocol::Tcp as i32,
            public_start_port: 10_000 + f,
            private_ip: format!("10.1.3.{}", 10 + f % 240),
            private_start_port: 80,
            source_cidrs: if f % 10 == 0 {
                vec![format!("192.0.2.{}/32", f % 250)]
            } else {
                vec![]
            },
            ..Default::default()
        });
    }
    agent.apply(&config);
    (flows, agent)
}

/// New flows and TCP bulk through a port forward, with 2 (UDP and TCP
/// 5201) or 10,000 port forwards on the router (issue 17: NAT maps at
/// 10,000 rules cost no measurable forwarding rate).
fn bench_forward_flows(report: &mut String) {
    let cases = [2u32, 10_000];
    flow_table(
        report,
        FlowTable {
            title: "Through a port forward",
            case: "port forwards on the router",
            new_flows: "new flows: UDP 64 B through the forward, a new flow per datagram, kpps",
            bulk: "TCP bulk through the forward, Gbit/s",
            versus: "2",
            labels: cases.iter().map(|c| c.to_string()).collect(),
            traffic: Traffic {
                sources: [198, 51, 100],
                to: std::net::Ipv4Addr::new(203, 0, 113, 11),
            },
            server: "203.0.113.11",
        },
        |k| {
            let (flows, agent) = forward_lab(cases[k]);
            (flows, Some(agent))
        },
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing we
    // need. Run only when asked to benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    require_root();
    let only = std::env::var("ROUTER_BENCH").unwrap_or_default();
    let mut report = String::from("# vr-agent router benchmark\n\n");
    if only.is_empty() || only == "apply" {
        bench_apply(&mut report);
    }
    // One-item changes alone (ROUTER_BENCH_SIZES picks the sizes).
    if only == "changes" {
        bench_changes(&mut report);
    }
    // NAT changes alone.
    if only == "nat" {
        let lab = Lab::new("bench_nat").unwrap();
        let (r, _sink) = router_ns(&lab, TIERS + 1);
        let mut agent = Agent::start(&lab, &r, "agent");
        bench_nat_changes(&mut report, &mut agent);
    }
    if only.is_empty() || only == "flows" {
        bench_flows(&mut report);
    }
    if only.is_empty() || only == "flows" || only == "forwards" {
        bench_forward_flows(&mut report);
    }
    println!("{report}");
    if let Ok(path) = std::env::var("ROUTER_BENCH_REPORT") {
        std::fs::write(Path::new(&path), &report).unwrap();
    }
}
