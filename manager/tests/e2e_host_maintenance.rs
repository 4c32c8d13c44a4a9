//! Maintenance and moves between hosts through the API (issue 12): a zone
//! on VXLAN, three host agents on a shared fabric, the VPC's router on
//! host 1, a VM of tier A on host 2 and one of tier B on host 3.
//!
//! While a VM pings the internet and the other VM (across hosts, through
//! the router) ten times a second, prepareHostForMaintenance of host 1
//! moves the router make-before-break to another host: host 1 ends in
//! Maintenance, the router runs elsewhere, both probes pass again, and the
//! outage (lost pings, the longest gap between replies) is printed as a
//! measurement. Then migrateVirtualMachine moves the host-3 VM to host 1
//! (after cancelHostMaintenance): the flood lists of the tiers on every
//! host's VTEP follow at once, and the VMs still talk.
//!
//! `cargo test -p vpc-manager --test e2e_host_maintenance -- --nocapture`
//! prints the outage.

mod support;

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::api::{Client, job_ok};
use support::e2e::{E2e, ping_ok};
use support::fabric::{FabricOptions, eventually, fabric_zone, flood_list, lease_ip};
use vpc_integration::Netns;
use vpc_manager::settings::AgentTransport;

/// A ping running in a namespace, ten per second, with a timestamp on
/// every reply (`-D`) and a line for every unanswered one (`-O`).
struct ContinuousPing {
    what: String,
    child: Option<Child>,
}

/// What a continuous ping saw.
#[derive(Debug)]
struct Outage {
    sent: u32,
    received: u32,
    /// The longest time between two consecutive replies.
    longest_gap: Duration,
    /// Replies after the longest gap (the probe passes again).
    replies_after_gap: u32,
}

impl ContinuousPing {
    fn start(ns: &Netns, to: Ipv4Addr, what: &str) -> ContinuousPing {
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "ping", "-D", "-O", "-n"])
            .args(["-i", "0.1", "-W", "1", "-c", "6000", &to.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ping starts");
        ContinuousPing {
            what: what.to_string(),
            child: Some(child),
        }
    }

    /// Stops the ping (SIGINT by pid: `ip netns exec` became the ping, which
    /// prints its summary) and reads what it saw.
    fn finish(mut self) -> Outage {
        let child = self.child.take().expect("running");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let out = child.wait_with_output().expect("ping output");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        parse_ping(&text).unwrap_or_else(|| panic!("{}: no ping summary in\n{text}", self.what))
    }
}

impl Drop for ContinuousPing {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads `ping -D` output: reply timestamps and the summary line.
fn parse_ping(text: &str) -> Option<Outage> {
    let mut replies: Vec<f64> = Vec::new();
    let (mut sent, mut received) = (None, None);
    for line in text.lines() {
        if line.contains("bytes from")
            && let Some(ts) = line
                .strip_prefix('[')
                .and_then(|l| l.split(']').next())
                .and_then(|t| t.parse::<f64>().ok())
        {
            replies.push(ts);
        }
        if line.contains("packets transmitted") {
            let mut words = line.split_whitespace();
            sent = words.next().and_then(|w| w.parse().ok());
            received = line
                .split(", ")
                .nth(1)
                .and_then(|p| p.split_whitespace().next())
                .and_then(|w| w.parse().ok());
        }
    }
    let mut longest = 0.0f64;
    let mut at = 0;
    for (i, pair) in replies.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        if gap > longest {
            longest = gap;
            at = i + 1;
        }
    }
    Some(Outage {
        sent: sent?,
        received: received?,
        longest_gap: Duration::from_secs_f64(longest),
        replies_after_gap: u32::try_from(replies.len().saturating_sub(at)).unwrap_or(0),
    })
}

#[test]
fn ping_output_gives_the_losses_and_the_longest_gap() {
    let text = "PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data.\n\
        [100.000] 64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.1 ms\n\
        [100.100] 64 bytes from 10.0.0.1: icmp_seq=2 ttl=64 time=0.1 ms\n\
        no answer yet for icmp_seq=3\n\
        [100.900] 64 bytes from 10.0.0.1: icmp_seq=10 ttl=64 time=0.1 ms\n\
        [101.000] 64 bytes from 10.0.0.1: icmp_seq=11 ttl=64 time=0.1 ms\n\n\
        --- 10.0.0.1 ping statistics ---\n\
        11 packets transmitted, 4 received, 63.6364% packet loss, time 1000ms\n";
    let o = parse_ping(text).unwrap();
    assert_eq!((o.sent, o.received), (11, 4));
    assert!((o.longest_gap.as_secs_f64() - 0.8).abs() < 1e-6, "{o:?}");
    assert_eq!(o.replies_after_gap, 2);
}

/// The host (index into `hosts`) whose API id is `id`.
fn host_index(hosts: &[String], id: &Value) -> usize {
    hosts
        .iter()
        .position(|h| Some(h.as_str()) == id.as_str())
        .unwrap_or_else(|| panic!("{id} is none of {hosts:?}"))
}

async fn router_of(admin: &Client, vpc: &str) -> Value {
    admin.ok("listRouters", &[("vpcid", vpc)]).await["router"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_moves_the_router_off_its_host_and_flood_lists_follow_a_moved_vm() {
    let lab = E2e::start(AgentTransport::Unix).await;
    let admin = lab.admin();
    let (fabric, zone, added) = fabric_zone(
        &admin,
        FabricOptions {
            hosts: 3,
            ..FabricOptions::default()
        },
        "mx",
        "5100-5199",
    )
    .await;
    let hosts: Vec<String> = added
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect();
    let offering =
        admin.ok("listVPCOfferings", &[("isdefault", "true")]).await["vpcoffering"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
    let vpc_id = job_ok(
        &admin,
        "createVPC",
        &[
            ("name", "moving"),
            ("cidr", "10.72.0.0/16"),
            ("zoneid", &zone),
            ("vpcofferingid", &offering),
        ],
    )
    .await["vpc"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let router = router_of(&admin, &vpc_id).await;
    assert_eq!(router["hostid"], hosts[0].as_str(), "{router}");
    let router_name = router["name"].as_str().unwrap().to_string();

    let allow = admin
        .ok("listNetworkACLLists", &[("name", "default_allow")])
        .await["networkacllist"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut tiers = Vec::new();
    for (name, gateway) in [("a", "10.72.1.1"), ("b", "10.72.2.1")] {
        let t = admin
            .ok(
                "createNetwork",
                &[
                    ("name", name),
                    ("displaytext", name),
                    ("zoneid", &zone),
                    ("vpcid", &vpc_id),
                    ("networkofferingid", &lab.tier_offering),
                    ("gateway", gateway),
                    ("netmask", "255.255.255.0"),
                    ("aclid", &allow),
                ],
            )
            .await["network"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        tiers.push(t);
    }
    let mut vms = Vec::new();
    for (tier, name, host) in [(&tiers[0], "vma", &hosts[1]), (&tiers[1], "vmb", &hosts[2])] {
        let vm = job_ok(
            &admin,
            "deployVirtualMachine",
            &[
                ("zoneid", &zone),
                ("serviceofferingid", &lab.service_offering),
                ("templateid", &lab.template),
                ("networkids", tier),
                ("name", name),
                ("hostid", host),
            ],
        )
        .await["virtualmachine"]
            .clone();
        vms.push(vm);
    }
    let inst_a = vms[0]["instancename"].as_str().unwrap().to_string();
    let inst_b = vms[1]["instancename"].as_str().unwrap().to_string();
    let mut leases = Vec::new();
    for (h, inst) in [(1, &inst_a), (2, &inst_b)] {
        let host = &fabric.hosts[h];
        eventually(
            Duration::from_secs(60),
            &format!("a lease for {inst}"),
            async || host.lease(inst, 0).and_then(|l| lease_ip(&l)).is_some(),
        )
        .await;
        leases.push(lease_ip(&host.lease(inst, 0).unwrap()).unwrap());
    }
    let vni = |tier: &str| {
        let (admin, tier) = (&admin, tier.to_string());
        async move {
            admin.ok("listNetworks", &[("id", &tier)]).await["network"][0]["broadcasturi"]
                .as_str()
                .and_then(|u| u.strip_prefix("vxlan://"))
                .expect("a VXLAN tier")
                .to_string()
        }
    };
    let (vni_a, vni_b) = (vni(&tiers[0]).await, vni(&tiers[1]).await);
    let zone_uuid: uuid::Uuid = zone.parse().unwrap();
    let zone_ns: Vec<String> = fabric.hosts.iter().map(|h| h.zone_ns(&zone_uuid)).collect();
    let ul: Vec<String> = fabric
        .hosts
        .iter()
        .map(|h| h.underlay.to_string())
        .collect();
    let upstream = Ipv4Addr::new(198, 51, 100, 1);
    let ns_a = Netns::existing(&fabric.hosts[1].ns(&inst_a));
    assert!(ping_ok(&ns_a, upstream).await, "A to the internet");
    assert!(ping_ok(&ns_a, leases[1]).await, "A to B across hosts");

    // Maintenance of host 1 under traffic.
    let to_internet = ContinuousPing::start(&ns_a, upstream, "A to the internet");
    let to_b = ContinuousPing::start(&ns_a, leases[1], "A to B");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let done = job_ok(&admin, "prepareHostForMaintenance", &[("id", &hosts[0])]).await;
    let took = started.elapsed();
    assert_eq!(done["host"]["resourcestate"], "Maintenance", "{done}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let internet = to_internet.finish();
    let vm_to_vm = to_b.finish();
    println!(
        "prepareHostForMaintenance with the router on the host: the job took {took:?}; \
         A to the internet: {} of {} pings lost, longest gap between replies {:?}; \
         A to B (across hosts, through the router): {} of {} lost, longest gap {:?} \
         (pings every 100 ms)",
        internet.sent - internet.received,
        internet.sent,
        internet.longest_gap,
        vm_to_vm.sent - vm_to_vm.received,
        vm_to_vm.sent,
        vm_to_vm.longest_gap,
    );
    assert!(
        internet.replies_after_gap > 10,
        "the internet answers again after the switch: {internet:?}"
    );
    assert!(
        vm_to_vm.replies_after_gap > 10,
        "B answers again after the switch: {vm_to_vm:?}"
    );

    let router = router_of(&admin, &vpc_id).await;
    assert_eq!(router["state"], "Running", "{router}");
    assert_ne!(router["hostid"], hosts[0].as_str(), "{router}");
    let r_host = host_index(&hosts, &router["hostid"]);
    assert!(
        Netns::existing(&fabric.hosts[r_host].ns(&router_name))
            .path()
            .exists(),
        "the router's namespace on its new host"
    );
    assert!(
        !Netns::existing(&fabric.hosts[0].ns(&router_name))
            .path()
            .exists(),
        "no router left on host 1"
    );
    let listed = admin.ok("listHosts", &[("id", &hosts[0])]).await;
    assert_eq!(
        listed["host"][0]["resourcestate"], "Maintenance",
        "{listed}"
    );
    assert!(ping_ok(&ns_a, upstream).await, "A to the internet after");
    assert!(ping_ok(&ns_a, leases[1]).await, "A to B after");
    // Host 1 left both tiers; the router's new host is in each.
    assert!(flood_list(&zone_ns[0], &vni_a).is_empty());
    assert!(flood_list(&zone_ns[0], &vni_b).is_empty());
    for (tier_vni, vm_host) in [(&vni_a, 1), (&vni_b, 2)] {
        if r_host != vm_host {
            assert_eq!(
                flood_list(&zone_ns[r_host], tier_vni),
                [ul[vm_host].clone()]
            );
            assert_eq!(
                flood_list(&zone_ns[vm_host], tier_vni),
                [ul[r_host].clone()]
            );
        }
    }

    // A maintenance host takes no VM.
    let (code, _) = support::api::refused(
        &admin,
        "deployVirtualMachine",
        &[
            ("zoneid", &zone),
            ("serviceofferingid", &lab.service_offering),
            ("templateid", &lab.template),
            ("networkids", &tiers[0]),
            ("name", "nope"),
            ("hostid", &hosts[0]),
        ],
    )
    .await;
    assert_eq!(code, 533, "no capacity on a host in maintenance");

    // Back to Enabled; the VM of host 3 moves to host 1.
    let back = job_ok(&admin, "cancelHostMaintenance", &[("id", &hosts[0])]).await;
    assert_eq!(back["host"]["resourcestate"], "Enabled", "{back}");
    let moved = job_ok(
        &admin,
        "migrateVirtualMachine",
        &[
            ("virtualmachineid", vms[1]["id"].as_str().unwrap()),
            ("hostid", &hosts[0]),
        ],
    )
    .await;
    assert_eq!(
        moved["virtualmachine"]["hostid"],
        hosts[0].as_str(),
        "{moved}"
    );
    assert_eq!(moved["virtualmachine"]["state"], "Running", "{moved}");
    // Tier B's members now: the router's host and host 1; host 3 left.
    // Checked at once: the move sent the lists, not the 1 s loop.
    assert_eq!(flood_list(&zone_ns[0], &vni_b), [ul[r_host].clone()]);
    assert_eq!(flood_list(&zone_ns[r_host], &vni_b), [ul[0].clone()]);
    if r_host != 2 {
        assert!(flood_list(&zone_ns[2], &vni_b).is_empty());
    }
    let host1 = &fabric.hosts[0];
    eventually(
        Duration::from_secs(60),
        "a lease for the moved VM on host 1",
        async || host1.lease(&inst_b, 0).and_then(|l| lease_ip(&l)).is_some(),
    )
    .await;
    let moved_ip = lease_ip(&host1.lease(&inst_b, 0).unwrap()).unwrap();
    assert_eq!(moved_ip, leases[1], "the same address after the move");
    assert!(
        !Netns::existing(&fabric.hosts[2].ns(&inst_b))
            .path()
            .exists(),
        "nothing of the VM left on host 3"
    );
    let ns_b = Netns::existing(&host1.ns(&inst_b));
    assert!(ping_ok(&ns_a, leases[1]).await, "A to the moved B");
    assert!(ping_ok(&ns_b, leases[0]).await, "the moved B to A");
    assert!(
        ping_ok(&ns_b, upstream).await,
        "the moved B to the internet"
    );
    drop(fabric);
    lab.finish().await;
}

/// Whether namespace `ns` exists and holds address `ip` on one of its links.
fn has_address(ns: &str, ip: &str) -> bool {
    Command::new("ip")
        .args(["-n", ns, "-o", "addr", "show"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .any(|w| w.split('/').next() == Some(ip))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_whose_switch_fails_after_the_old_router_went_starts_the_router_again_at_once() {
    let lab = E2e::start(AgentTransport::Unix).await;
    let admin = lab.admin();
    let (mut fabric, zone, added) = fabric_zone(
        &admin,
        FabricOptions {
            hosts: 2,
            ..FabricOptions::default()
        },
        "mf",
        "5200-5299",
    )
    .await;
    let hosts: Vec<String> = added
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect();
    let offering =
        admin.ok("listVPCOfferings", &[("isdefault", "true")]).await["vpcoffering"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
    let vpc_id = job_ok(
        &admin,
        "createVPC",
        &[
            ("name", "switchfails"),
            ("cidr", "10.73.0.0/16"),
            ("zoneid", &zone),
            ("vpcofferingid", &offering),
        ],
    )
    .await["vpc"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let router = router_of(&admin, &vpc_id).await;
    assert_eq!(router["hostid"], hosts[0].as_str(), "{router}");
    let router_name = router["name"].as_str().unwrap().to_string();
    let router_id = router["id"].as_str().unwrap().to_string();
    let public_ip = router["publicip"]
        .as_str()
        .expect("a public IP")
        .to_string();
    let allow = admin
        .ok("listNetworkACLLists", &[("name", "default_allow")])
        .await["networkacllist"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tier = admin
        .ok(
            "createNetwork",
            &[
                ("name", "a"),
                ("displaytext", "a"),
                ("zoneid", &zone),
                ("vpcid", &vpc_id),
                ("networkofferingid", &lab.tier_offering),
                ("gateway", "10.73.1.1"),
                ("netmask", "255.255.255.0"),
                ("aclid", &allow),
            ],
        )
        .await["network"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let vm = job_ok(
        &admin,
        "deployVirtualMachine",
        &[
            ("zoneid", &zone),
            ("serviceofferingid", &lab.service_offering),
            ("templateid", &lab.template),
            ("networkids", &tier),
            ("name", "vmf"),
            ("hostid", &hosts[0]),
        ],
    )
    .await["virtualmachine"]
        .clone();
    let inst = vm["instancename"].as_str().unwrap().to_string();
    {
        let host1 = &fabric.hosts[0];
        eventually(Duration::from_secs(60), "a lease for the VM", async || {
            host1.lease(&inst, 0).and_then(|l| lease_ip(&l)).is_some()
        })
        .await;
    }
    let ns_vm = Netns::existing(&fabric.hosts[0].ns(&inst));
    let router_ns_1 = fabric.hosts[0].ns(&router_name);
    let data_dir_1 = fabric.hosts[0].data_dir.display().to_string();
    let upstream = Ipv4Addr::new(198, 51, 100, 1);
    assert!(
        ping_ok(&ns_vm, upstream).await,
        "the VM reaches the internet"
    );

    // migrateSystemVm to host 2, whose host agent is killed (SIGKILL) once
    // its standby router took its configuration (its public address is
    // there): after the old router is destroyed, before the switch
    // (ActivateRouter on host 2) can happen. A real failure, timed by
    // watching host 2's namespace, not injected.
    let started = admin
        .ok(
            "migrateSystemVm",
            &[("virtualmachineid", &router_id), ("hostid", &hosts[1])],
        )
        .await;
    let job_id = started["jobid"].as_str().unwrap().to_string();
    let target_ns = fabric.hosts[1].ns(&router_name);
    let watch = Instant::now();
    while !has_address(&target_ns, &public_ip) {
        assert!(
            watch.elapsed() < Duration::from_secs(60),
            "the standby router on host 2 never took its configuration"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fabric.hosts[1].kill();
    let killed_at = Instant::now();
    let done = loop {
        let job = admin.ok("queryAsyncJobResult", &[("jobid", &job_id)]).await;
        if job["jobstatus"] != 0 {
            break job;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "the move did not end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = killed_at.elapsed();
    println!("the failed move ended {took:?} after host 2's agent was killed: {done}");
    // The move failed, and says the router was started again.
    assert_eq!(done["jobstatus"], 2, "{done}");
    let text = done["jobresult"]["errortext"].as_str().unwrap_or_default();
    assert!(text.contains("started again on its host"), "{done}");
    // It runs again at once on host 1, the database consistent with it.
    let router = router_of(&admin, &vpc_id).await;
    assert_eq!(router["state"], "Running", "{router}");
    assert_eq!(router["hostid"], hosts[0].as_str(), "{router}");
    assert!(
        Netns::existing(&router_ns_1).path().exists(),
        "the router's namespace on host 1 again"
    );
    let stored = vpc_manager::store::router::get_by_uuid(&lab.m.app.db, router_id.parse().unwrap())
        .await
        .unwrap()
        .expect("the router's row");
    let endpoint = stored.agent_endpoint.clone().unwrap_or_default();
    assert!(
        endpoint.contains(&data_dir_1),
        "its agent endpoint is host 1's: {endpoint}"
    );
    assert!(
        ping_ok(&ns_vm, upstream).await,
        "the VM reaches the internet again"
    );

    // Host 2's agent started again takes the standby copy back, still in
    // standby: the VM keeps reaching the internet through host 1's router.
    fabric.hosts[1].restart().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        ping_ok(&ns_vm, upstream).await,
        "no second router on the segments"
    );
    drop(fabric);
    lab.finish().await;
}
