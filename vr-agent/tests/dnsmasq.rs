//! The dnsmasq supervisor against real dnsmasq and udhcpc, in lab namespaces.
//!
//! Each test builds a router namespace whose `eth2` (10.1.1.1/24) is a veth to
//! a VM namespace, and runs the supervisor inside the router namespace (the
//! dnsmasq it spawns inherits the namespace of the spawning thread). Needs root.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;
use vpc_integration::{Lab, Netns, netns_pids, require_root, run_in_netns};
use vpc_proto::v1 as pb;
use vr_agent::apply::dnsmasq::Supervisor;
use vr_agent::model::Router;
use vr_agent::plan::dnsmasq::{TierFiles, plan};
use vr_agent::testing::{mac, tier};

const VM_MAC: &str = "02:00:0a:01:01:05";
const OTHER_MAC: &str = "02:00:0a:01:01:99";
const DOMAIN: &str = "tier1.vpc.internal";
const LEASE_TIMEOUT: Duration = Duration::from_secs(15);

fn entry(mac: &str, ip: &str, hostname: &str, default_gateway: bool) -> pb::DhcpEntry {
    pb::DhcpEntry {
        mac_address: mac.into(),
        ip_address: ip.into(),
        hostname: hostname.into(),
        default_gateway,
        ..Default::default()
    }
}

/// A router with guest tiers on `tiers` (eth2 = 10.1.1.0/24, eth3 =
/// 10.1.2.0/24, MTU 1500) and the given leases per tier.
fn router(tiers: &[(u32, Vec<pb::DhcpEntry>)]) -> Router {
    let config = pb::RouterConfig {
        router_name: "r-1-VM".into(),
        vpc_id: "vpc-1".into(),
        vpc_cidr: "10.1.0.0/16".into(),
        nics: tiers
            .iter()
            .map(|(index, _)| pb::Nic {
                device_index: *index,
                mac_address: mac(*index),
                role: pb::NicRole::Guest as i32,
                ..Default::default()
            })
            .collect(),
        guest_networks: tiers.iter().map(|(index, _)| tier(*index)).collect(),
        dhcp: tiers
            .iter()
            .map(|(index, entries)| pb::TierDhcp {
                device_index: *index,
                entries: entries.clone(),
            })
            .collect(),
        ..Default::default()
    };
    Router::from_config(&config).expect("valid test router")
}

/// A lab with a router and one VM per tier, and a supervisor for the router.
struct Fixture {
    // Dropped in this order: the supervisor's instances, its files, the lab.
    supervisor: Option<Supervisor>,
    dir: TempDir,
    lab: Lab,
    router: Netns,
    /// The VM on each tier, by device index.
    vms: Vec<(u32, Netns)>,
}

impl Fixture {
    /// Tiers eth2 (and more from `indexes`), each wired to a VM whose `eth0`
    /// has `VM_MAC`; the router holds each tier's gateway address.
    fn new(test: &str, indexes: &[u32]) -> Fixture {
        require_root();
        let lab = Lab::new(test).unwrap();
        let router = lab.netns("router").unwrap();
        let mut vms = Vec::new();
        for &index in indexes {
            let dev = format!("eth{index}");
            let vm = lab.netns(&format!("vm{index}")).unwrap();
            lab.veth_with_mac(&router, &dev, None, &vm, "eth0", Some(VM_MAC))
                .unwrap();
            lab.link_up(&router, &dev).unwrap();
            lab.link_up(&vm, "eth0").unwrap();
            lab.addr_add(&router, &dev, &format!("10.1.{}.1/24", index - 1))
                .unwrap();
            vms.push((index, vm));
        }
        let dir = tempfile::tempdir().unwrap();
        let supervisor = Supervisor::new(dir.path().to_owned(), PathBuf::from("dnsmasq"));
        Fixture {
            supervisor: Some(supervisor),
            dir,
            lab,
            router,
            vms,
        }
    }

    fn vm(&self, index: u32) -> &Netns {
        &self.vms.iter().find(|(i, _)| *i == index).unwrap().1
    }

    fn plan(&self, router: &Router) -> Vec<TierFiles> {
        plan(router, self.dir.path())
    }

    /// Runs `f` on the supervisor from a thread inside the router namespace.
    fn in_router<T, F>(&mut self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(&mut Supervisor) -> T + Send + 'static,
    {
        let mut supervisor = self.supervisor.take().expect("a supervisor");
        let (supervisor, out) = run_in_netns(&self.router, move || {
            let out = f(&mut supervisor);
            Ok((supervisor, out))
        })
        .unwrap();
        self.supervisor = Some(supervisor);
        out
    }

    fn apply(&mut self, router: &Router) -> Vec<String> {
        let files = self.plan(router);
        self.in_router(move |s| s.apply(&files))
            .unwrap_or_else(|e| panic!("apply failed: {e}"))
    }

    fn status(&self) -> Vec<(u32, u32, u32)> {
        self.supervisor.as_ref().unwrap().status()
    }

    fn pid_of(&self, index: u32) -> u32 {
        let status = self.status();
        status.iter().find(|s| s.0 == index).unwrap().1
    }

    /// The dnsmasq processes running in the router namespace.
    fn dnsmasq_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = netns_pids(self.router.name())
            .unwrap()
            .into_iter()
            .map(|p| p as u32)
            .filter(|p| {
                fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "dnsmasq")
            })
            .collect();
        pids.sort_unstable();
        pids
    }

    fn lease(&self, index: u32) -> vpc_integration::Result<vpc_integration::Lease> {
        self.lab.dhcp_client(self.vm(index), "eth0", LEASE_TIMEOUT)
    }

    /// Runs udhcpc once more on the tier's VM, asking for option `name`
    /// (udhcpc does not ask for the MTU by default), and returns its value.
    fn option_env(&self, index: u32, name: &str) -> String {
        let script = self.lab.dir().join(format!("env-{index}.sh"));
        let result = self.lab.dir().join(format!("env-{index}.txt"));
        let text = format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"${name}\" > {}\nexit 0\n",
            result.display()
        );
        fs::write(&script, text).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let script = script.display().to_string();
        let argv = [
            "busybox", "udhcpc", "-i", "eth0", "-f", "-n", "-q", "-t", "5", "-T", "1", "-O", name,
            "-s", &script,
        ];
        self.lab
            .exec_timeout(self.vm(index), &argv, LEASE_TIMEOUT)
            .unwrap();
        fs::read_to_string(result).unwrap().trim().to_owned()
    }

    /// Stops everything and checks that no dnsmasq is left in the router.
    fn finish(mut self) {
        self.supervisor.as_mut().unwrap().stop_all();
        assert_eq!(
            self.dnsmasq_pids(),
            Vec::<u32>::new(),
            "dnsmasq left behind"
        );
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Also on a failed assertion: the lab then kills whatever is left.
        if let Some(supervisor) = self.supervisor.as_mut() {
            supervisor.stop_all();
        }
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn vm_gets_its_static_lease_with_gateway_dns_domain_and_mtu() {
    let mut fx = Fixture::new("dnsmasq_static_lease", &[2]);
    let changes = fx.apply(&router(&[(
        2,
        vec![entry(VM_MAC, "10.1.1.5", "web-1", true)],
    )]));
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("eth2: started dnsmasq")),
        "{changes:?}"
    );

    let lease = fx.lease(2).unwrap();
    assert_eq!(lease.ip, ip("10.1.1.5"));
    assert_eq!(lease.prefix_len, 24);
    assert_eq!(lease.router, Some(ip("10.1.1.1")));
    assert_eq!(lease.dns, [ip("10.1.1.1")]);
    assert_eq!(lease.domain.as_deref(), Some(DOMAIN));
    assert_eq!(fx.option_env(2, "mtu"), "1500");
    let leases = fs::read_to_string(fx.dir.path().join("eth2.leases")).unwrap();
    assert!(
        leases.starts_with("0 02:00:0a:01:01:05 10.1.1.5 web-1"),
        "infinite lease: {leases}"
    );
    fx.finish();
}

#[test]
fn vm_resolves_another_vm_by_name_through_the_router() {
    let mut fx = Fixture::new("dnsmasq_dns_names", &[2]);
    fx.apply(&router(&[(
        2,
        vec![
            entry(VM_MAC, "10.1.1.5", "web-1", true),
            // Never started: the router still answers for it.
            entry(OTHER_MAC, "10.1.1.6", "web-2", true),
        ],
    )]));
    fx.lease(2).unwrap();
    let vm = fx.vm(2).clone();
    let out = fx
        .lab
        .exec(
            &vm,
            &[
                "busybox",
                "nslookup",
                "web-2.tier1.vpc.internal",
                "10.1.1.1",
            ],
        )
        .unwrap();
    assert!(out.stdout.contains("Address: 10.1.1.6"), "{}", out.stdout);
    // The short name resolves too (expand-hosts and the names file).
    let out = fx
        .lab
        .exec(&vm, &["busybox", "nslookup", "web-1", "10.1.1.1"])
        .unwrap();
    assert!(out.stdout.contains("Address: 10.1.1.5"), "{}", out.stdout);
    // Names of the tier's domain are never forwarded: unknown ones fail.
    let out = fx
        .lab
        .exec_unchecked(
            &vm,
            &["busybox", "nslookup", "nope.tier1.vpc.internal", "10.1.1.1"],
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(!out.stdout.contains("Address: 10.1.1."), "{}", out.stdout);
    fx.finish();
}

#[test]
fn adding_an_entry_reloads_without_restart() {
    let mut fx = Fixture::new("dnsmasq_reload", &[2]);
    fx.apply(&router(&[(
        2,
        vec![entry(OTHER_MAC, "10.1.1.6", "web-2", true)],
    )]));
    let pid = fx.pid_of(2);

    let changes = fx.apply(&router(&[(
        2,
        vec![
            entry(OTHER_MAC, "10.1.1.6", "web-2", true),
            entry(VM_MAC, "10.1.1.7", "web-3", true),
        ],
    )]));
    assert_eq!(
        changes,
        [format!(
            "eth2: reloaded hosts with SIGHUP (pid {pid}, 2 hosts)"
        )]
    );
    assert_eq!(fx.status(), [(2, pid, 2)]);
    assert_eq!(fx.lease(2).unwrap().ip, ip("10.1.1.7"));
    assert_eq!(fx.pid_of(2), pid);
    assert_eq!(fx.dnsmasq_pids(), [pid]);
    // The same state again changes nothing.
    let files = fx.plan(&router(&[(
        2,
        vec![
            entry(OTHER_MAC, "10.1.1.6", "web-2", true),
            entry(VM_MAC, "10.1.1.7", "web-3", true),
        ],
    )]));
    assert_eq!(
        fx.in_router(move |s| s.apply(&files)).unwrap(),
        Vec::<String>::new()
    );
    fx.finish();
}

#[test]
fn unknown_mac_gets_no_lease() {
    let mut fx = Fixture::new("dnsmasq_unknown_mac", &[2]);
    fx.apply(&router(&[(
        2,
        vec![entry(OTHER_MAC, "10.1.1.6", "web-2", true)],
    )]));
    let result = fx.lease(2);
    assert!(
        result.is_err(),
        "a VM missing from the hosts file got {result:?}"
    );
    let log = fs::read_to_string(fx.dir.path().join("eth2.log")).unwrap();
    assert!(log.contains("no address available"), "{log}");
    fx.finish();
}

#[test]
fn non_default_nic_gets_an_address_and_mtu_only() {
    let mut fx = Fixture::new("dnsmasq_nondefault", &[2]);
    fx.apply(&router(&[(
        2,
        vec![entry(VM_MAC, "10.1.1.5", "web-1", false)],
    )]));
    let lease = fx.lease(2).unwrap();
    assert_eq!(lease.ip, ip("10.1.1.5"));
    assert_eq!(lease.router, None);
    assert_eq!(lease.dns, Vec::<Ipv4Addr>::new());
    assert_eq!(lease.domain, None);
    fx.finish();
}

#[test]
fn address_given_to_a_new_vm_is_leased_to_it() {
    let mut fx = Fixture::new("dnsmasq_address_reuse", &[2]);
    fx.apply(&router(&[(
        2,
        vec![entry(VM_MAC, "10.1.1.5", "web-1", true)],
    )]));
    assert_eq!(fx.lease(2).unwrap().ip, ip("10.1.1.5"));
    // dnsmasq records a lease in its lease file after answering the client;
    // a VM is replaced long after that, so wait for it as time would.
    let leases = fx.dir.path().join("eth2.leases");
    let started = std::time::Instant::now();
    while !fs::read_to_string(&leases)
        .unwrap_or_default()
        .contains(VM_MAC)
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "lease never written"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // The VM is destroyed and a new one (another MAC) gets its address; the
    // old infinite lease must not keep the address from it.
    let changes = fx.apply(&router(&[(
        2,
        vec![entry(OTHER_MAC, "10.1.1.5", "web-9", true)],
    )]));
    let pid = fx.pid_of(2);
    assert_eq!(
        changes,
        [
            format!("eth2: reloaded hosts with SIGHUP (pid {pid}, 1 hosts)"),
            format!("eth2: released the lease of 10.1.1.5 to {VM_MAC}"),
        ]
    );
    let vm = fx.vm(2).clone();
    fx.lab
        .ip(&vm, &["link", "set", "dev", "eth0", "address", OTHER_MAC])
        .unwrap();
    assert_eq!(fx.lease(2).unwrap().ip, ip("10.1.1.5"));
    let leases = fs::read_to_string(fx.dir.path().join("eth2.leases")).unwrap();
    assert!(!leases.contains(VM_MAC), "{leases}");
    fx.finish();
}

#[test]
fn new_supervisor_adopts_running_instance() {
    let mut fx = Fixture::new("dnsmasq_adopt", &[2]);
    let state = router(&[(2, vec![entry(VM_MAC, "10.1.1.5", "web-1", true)])]);
    fx.apply(&state);
    let pid = fx.pid_of(2);

    // The agent restarts: the old supervisor goes away without stopping dnsmasq.
    drop(fx.supervisor.take());
    assert_eq!(fx.dnsmasq_pids(), [pid]);
    fx.supervisor = Some(Supervisor::new(fx.dir.path().to_owned(), "dnsmasq".into()));
    assert_eq!(fx.status(), [(2, pid, 1)]);

    let changes = fx.apply(&state);
    assert_eq!(
        changes,
        [format!("eth2: adopted running dnsmasq (pid {pid})")]
    );
    assert_eq!(fx.dnsmasq_pids(), [pid]);
    assert_eq!(fx.lease(2).unwrap().ip, ip("10.1.1.5"));

    // An adopted instance is reloaded, not restarted, when a VM is added.
    let changes = fx.apply(&router(&[(
        2,
        vec![
            entry(VM_MAC, "10.1.1.5", "web-1", true),
            entry(OTHER_MAC, "10.1.1.6", "web-2", true),
        ],
    )]));
    assert_eq!(
        changes,
        [format!(
            "eth2: reloaded hosts with SIGHUP (pid {pid}, 2 hosts)"
        )]
    );
    assert_eq!(fx.dnsmasq_pids(), [pid]);
    fx.finish();
}

#[test]
fn dead_instance_is_restarted_by_check() {
    let mut fx = Fixture::new("dnsmasq_check", &[2]);
    fx.apply(&router(&[(
        2,
        vec![entry(VM_MAC, "10.1.1.5", "web-1", true)],
    )]));
    let pid = fx.pid_of(2);
    assert_eq!(fx.in_router(|s| s.check()), Vec::<String>::new());

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The kill is asynchronous: wait until the process has exited.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while vpc_integration::process_exists(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "pid {pid} survived SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = fx.in_router(|s| s.check());
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(
        report[0].starts_with(&format!("eth2: dnsmasq (pid {pid}) died")),
        "{report:?}"
    );
    let new_pid = fx.pid_of(2);
    assert_ne!(new_pid, pid);
    assert_eq!(fx.dnsmasq_pids(), [new_pid]);
    let recorded = fs::read_to_string(fx.dir.path().join("eth2.pid")).unwrap();
    assert_eq!(recorded.trim(), new_pid.to_string());
    assert_eq!(fx.lease(2).unwrap().ip, ip("10.1.1.5"));
    fx.finish();
}

#[test]
fn removed_tier_stops_its_dnsmasq() {
    let mut fx = Fixture::new("dnsmasq_remove_tier", &[2, 3]);
    let both = router(&[
        (2, vec![entry(VM_MAC, "10.1.1.5", "web-1", true)]),
        (3, vec![entry(VM_MAC, "10.1.2.5", "app-1", true)]),
    ]);
    fx.apply(&both);
    // Two instances share the namespace (ports 53 and 67), each on its NIC.
    assert_eq!(fx.lease(2).unwrap().ip, ip("10.1.1.5"));
    assert_eq!(fx.lease(3).unwrap().ip, ip("10.1.2.5"));
    let (pid2, pid3) = (fx.pid_of(2), fx.pid_of(3));
    let mut both_pids = vec![pid2, pid3];
    both_pids.sort_unstable();
    assert_eq!(fx.dnsmasq_pids(), both_pids);

    let changes = fx.apply(&router(&[(
        2,
        vec![entry(VM_MAC, "10.1.1.5", "web-1", true)],
    )]));
    // eth2 forgets app-1's name (every tier answers for all tiers' VMs).
    assert_eq!(
        changes,
        [
            format!("eth2: reloaded hosts with SIGHUP (pid {pid2}, 1 hosts)"),
            "eth3: stopped dnsmasq".to_string()
        ]
    );
    assert_eq!(fx.dnsmasq_pids(), [pid2]);
    assert_eq!(fx.status(), [(2, pid2, 1)]);
    let left: Vec<String> = fs::read_dir(fx.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("eth3"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    fx.finish();
}

#[test]
fn bad_configuration_fails_with_the_log_tail() {
    let mut fx = Fixture::new("dnsmasq_bad_conf", &[2]);
    let mut files = fx.plan(&router(&[(2, vec![])]));
    files[0].conf.push_str("no-such-option\n");
    let err = fx
        .in_router(move |s| s.apply(&files))
        .unwrap_err()
        .to_string();
    assert!(err.contains("exited at start"), "{err}");
    assert!(err.contains("bad option"), "{err}");
    assert_eq!(fx.status(), []);
    assert_eq!(fx.dnsmasq_pids(), Vec::<u32>::new());
    fx.finish();
}
