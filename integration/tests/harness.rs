//! Tests of the lab harness itself, against the real kernel. They must run as root.
//!
//! Tests run in parallel, so each builds its own lab and uses its own 10.2xx subnet:
//! 10.200 veth/ping, 10.201 DHCP, 10.202 TCP/UDP probes, 10.203 routing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vpc_integration::{
    DnsmasqConfig, Error, LAB_PREFIX, Lab, PingStats, Result, TcpEchoServer, UdpEchoServer,
    ip_netns, list_netns, process_exists, require_root, sweep_stale, tcp_connect, tcp_probe,
    udp_probe,
};

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

fn v4(text: &str) -> Ipv4Addr {
    text.parse().expect("valid IPv4 literal")
}

fn sock(text: &str) -> SocketAddr {
    text.parse().expect("valid socket address literal")
}

/// Namespaces currently on the host whose name starts with `prefix`.
fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    list_netns()
        .expect("ip netns list")
        .into_iter()
        .filter(|name| name.starts_with(prefix))
        .collect()
}

/// Asserts that nothing of a dropped lab is left: no namespace, no live process.
fn assert_lab_gone(prefix: &str, pids: &[u32]) {
    assert_eq!(namespaces_with_prefix(prefix), Vec::<String>::new());
    let alive: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| process_exists(p))
        .collect();
    assert!(alive.is_empty(), "processes still alive: {alive:?}");
}

/// Starts `sh -c 'sleep 1000 & echo $!'` in `ns` and returns the pid of the stray sleep,
/// which nothing in the lab tracks: only the namespace sweep at clean-up can find it.
fn start_stray_sleep(lab: &Lab, ns: &vpc_integration::Netns) -> Result<u32> {
    let out = lab.exec(ns, &["sh", "-c", "sleep 1000 & echo $!"])?;
    let pid = out.stdout.trim().parse().expect("sh printed a pid");
    assert!(process_exists(pid), "stray sleep {pid} should be running");
    Ok(pid)
}

#[test]
fn veth_pair_between_two_namespaces_carries_ping() -> Result<()> {
    require_root();
    let lab = Lab::new("veth_pair_between_two_namespaces_carries_ping")?;
    let a = lab.netns("a")?;
    let b = lab.netns("b")?;
    lab.veth(&a, "veth-a", &b, "veth-b")?;
    lab.addr_add(&a, "veth-a", "10.200.0.1/24")?;
    lab.addr_add(&b, "veth-b", "10.200.0.2/24")?;
    lab.link_up(&a, "veth-a")?;
    lab.link_up(&b, "veth-b")?;

    assert_eq!(lab.addresses(&b, "veth-b")?, ["10.200.0.2/24"]);
    let stats = lab.ping(&a, v4("10.200.0.2"), 3, Duration::from_secs(10))?;
    assert_eq!(
        stats,
        PingStats {
            transmitted: 3,
            received: 3
        }
    );

    let unassigned = v4("10.200.0.99");
    let stats = lab.ping(&a, unassigned, 2, Duration::from_secs(10))?;
    assert_eq!(stats.received, 0, "nobody owns {unassigned}");
    assert!(!lab.ping_ok(&a, unassigned));
    Ok(())
}

#[test]
fn interface_names_over_15_bytes_are_refused_before_ip_runs() -> Result<()> {
    require_root();
    let lab = Lab::new("interface_names_over_15_bytes_are_refused_before_ip_runs")?;
    let a = lab.netns("a")?;
    let b = lab.netns("b")?;
    let err = lab
        .veth(&a, "a-very-long-name", &b, "eth0")
        .expect_err("16-byte name accepted");
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
    assert!(err.to_string().contains("a-very-long-name"), "{err}");
    Ok(())
}

#[test]
fn router_namespace_forwards_between_two_subnets() -> Result<()> {
    require_root();
    let lab = Lab::new("router_namespace_forwards_between_two_subnets")?;
    let left = lab.netns("left")?;
    let router = lab.netns("router")?;
    let right = lab.netns("right")?;
    lab.veth(&left, "eth0", &router, "left")?;
    // Built inside the router first, then moved: exercises move_link.
    lab.veth(&router, "right", &router, "to-right")?;
    lab.move_link(&router, "to-right", &right)?;
    lab.addr_add(&left, "eth0", "10.203.1.2/24")?;
    lab.addr_add(&router, "left", "10.203.1.1/24")?;
    lab.addr_add(&router, "right", "10.203.2.1/24")?;
    lab.addr_add(&right, "to-right", "10.203.2.2/24")?;
    for (ns, link) in [
        (&left, "eth0"),
        (&router, "left"),
        (&router, "right"),
        (&right, "to-right"),
    ] {
        lab.link_up(ns, link)?;
    }
    lab.route_add(&left, &["default", "via", "10.203.1.1"])?;
    lab.route_add(&right, &["10.203.1.0/24", "via", "10.203.2.1"])?;

    assert!(
        !lab.ping_ok(&left, v4("10.203.2.2")),
        "forwarding is off by default"
    );
    lab.sysctl(&router, "net.ipv4.ip_forward", "1")?;
    let stats = lab.ping(&left, v4("10.203.2.2"), 2, Duration::from_secs(10))?;
    assert!(stats.all_received(), "{stats:?}");

    let err = lab
        .sysctl(&router, "kernel.hostname", "nope")
        .expect_err("a host-wide sysctl was accepted");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    Ok(())
}

#[test]
fn tcp_echo_reports_the_client_real_address() -> Result<()> {
    require_root();
    let lab = Lab::new("tcp_echo_reports_the_client_real_address")?;
    let server_ns = lab.netns("server")?;
    let client_ns = lab.netns("client")?;
    lab.veth(&server_ns, "eth0", &client_ns, "eth0")?;
    lab.addr_add(&server_ns, "eth0", "10.202.0.1/24")?;
    lab.addr_add(&client_ns, "eth0", "10.202.0.2/24")?;
    lab.link_up(&server_ns, "eth0")?;
    lab.link_up(&client_ns, "eth0")?;
    let client_ip = IpAddr::V4(v4("10.202.0.2"));

    let tcp = TcpEchoServer::start(&server_ns, sock("0.0.0.0:7000"))?;
    assert_eq!(tcp.addr().port(), 7000);
    let result = tcp_probe(&client_ns, sock("10.202.0.1:7000"), PROBE_TIMEOUT)?;
    assert_eq!(result.seen_as.ip(), client_ip);
    assert_eq!(result.seen_as, result.local, "no NAT between the two");
    assert!(tcp.peers().contains(&result.seen_as), "{:?}", tcp.peers());

    assert!(tcp_connect(
        &client_ns,
        sock("10.202.0.1:7000"),
        PROBE_TIMEOUT
    )?);
    assert!(!tcp_connect(
        &client_ns,
        sock("10.202.0.1:7001"),
        PROBE_TIMEOUT
    )?);

    let udp = UdpEchoServer::start(&server_ns, sock("0.0.0.0:7000"))?;
    let result = udp_probe(&client_ns, sock("10.202.0.1:7000"), PROBE_TIMEOUT)?;
    assert_eq!(result.seen_as.ip(), client_ip);
    assert_eq!(result.seen_as, result.local);
    assert!(udp.peers().contains(&result.seen_as), "{:?}", udp.peers());
    Ok(())
}

#[test]
fn namespace_behind_bridge_gets_dhcp_lease_from_dnsmasq() -> Result<()> {
    require_root();
    let lab = Lab::new("namespace_behind_bridge_gets_dhcp_lease_from_dnsmasq")?;
    let switch = lab.netns("switch")?;
    let server = lab.netns("server")?;
    let client = lab.netns("client")?;
    let roamer = lab.netns("roamer")?;
    lab.bridge(&switch, "br0")?;
    lab.link_up(&switch, "br0")?;

    let static_mac = "02:00:0a:c9:00:32";
    lab.veth(&server, "eth0", &switch, "port-server")?;
    lab.veth_with_mac(
        &client,
        "eth0",
        Some(static_mac),
        &switch,
        "port-client",
        None,
    )?;
    lab.veth(&roamer, "eth0", &switch, "port-roamer")?;
    for (ns, port) in [
        (&server, "port-server"),
        (&client, "port-client"),
        (&roamer, "port-roamer"),
    ] {
        lab.set_master(&switch, port, "br0")?;
        lab.link_up(&switch, port)?;
        lab.link_up(ns, "eth0")?;
    }
    assert_eq!(lab.link_mac(&client, "eth0")?, static_mac);
    lab.addr_add(&server, "eth0", "10.201.0.1/24")?;

    let mut config = DnsmasqConfig::new(
        "eth0",
        v4("10.201.0.100"),
        v4("10.201.0.150"),
        v4("255.255.255.0"),
    );
    config.router = Some(v4("10.201.0.1"));
    config.dns_servers = vec![v4("10.201.0.53")];
    config.domain = Some("lab.test".into());
    config.hosts = vec![(static_mac.into(), v4("10.201.0.50"), "client1".into())];
    let dnsmasq = lab.dnsmasq(&server, &config)?;

    let started = Instant::now();
    let lease = lab.dhcp_client(&client, "eth0", Duration::from_secs(15))?;
    eprintln!("static lease in {:?}: {lease:?}", started.elapsed());
    assert_eq!(lease.ip, v4("10.201.0.50"));
    assert_eq!(lease.prefix_len, 24);
    assert_eq!(lease.router, Some(v4("10.201.0.1")));
    assert_eq!(lease.dns, [v4("10.201.0.53")]);
    assert_eq!(lease.domain.as_deref(), Some("lab.test"));
    assert_eq!(lab.addresses(&client, "eth0")?, ["10.201.0.50/24"]);
    let routes = lab.ip(&client, &["route", "show", "default"])?.stdout;
    assert!(routes.contains("via 10.201.0.1"), "routes: {routes}");
    assert!(lab.ping_ok(&client, v4("10.201.0.1")));

    let lease = lab.dhcp_client(&roamer, "eth0", Duration::from_secs(15))?;
    let octets = lease.ip.octets();
    assert!(
        octets[..3] == [10, 201, 0] && (100..=150).contains(&octets[3]),
        "dynamic lease {} outside the range",
        lease.ip
    );
    assert_eq!(
        lab.addresses(&roamer, "eth0")?,
        [format!("{}/24", lease.ip)]
    );
    assert!(
        dnsmasq.leases().contains(static_mac),
        "{}",
        dnsmasq.leases()
    );
    assert!(dnsmasq.process().is_running());
    Ok(())
}

#[test]
fn lab_leaves_no_namespace_or_process_after_drop() -> Result<()> {
    require_root();
    let lab = Lab::new("lab_leaves_no_namespace_or_process_after_drop")?;
    let a = lab.netns("a")?;
    let b = lab.netns("b")?;
    let sleeper = lab.spawn(&a, "sleeper", &["sleep", "1000"])?;
    let stray = start_stray_sleep(&lab, &b)?;
    assert!(sleeper.is_running());
    let prefix = lab.prefix().to_owned();
    assert_eq!(namespaces_with_prefix(&prefix).len(), 2);
    let mut pids = lab.spawned_pids();
    assert_eq!(pids, [sleeper.pid()]);
    pids.push(stray);

    // The handle outlives the lab on purpose: the lab must not wait for it.
    drop(lab);
    assert_lab_gone(&prefix, &pids);
    assert!(!sleeper.is_running());
    Ok(())
}

#[test]
fn lab_cleans_up_after_a_panicking_test() {
    require_root();
    let recorded: Arc<Mutex<(String, Vec<u32>)>> = Arc::default();
    let inner = Arc::clone(&recorded);
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        let lab = Lab::new("lab_cleans_up_after_a_panicking_test").unwrap();
        let ns = lab.netns("doomed").unwrap();
        let tracked = lab.spawn(&ns, "tracked", &["sleep", "1000"]).unwrap();
        // Forgotten handle: only the lab can stop this one.
        let leaked = lab.spawn(&ns, "leaked", &["sleep", "1000"]).unwrap();
        let stray = start_stray_sleep(&lab, &ns).unwrap();
        {
            let mut recorded = inner.lock().unwrap();
            recorded.0 = lab.prefix().to_owned();
            recorded.1 = vec![tracked.pid(), leaked.pid(), stray];
        }
        std::mem::forget(leaked);
        panic!("deliberate panic with a live lab");
    }));
    assert!(outcome.is_err(), "the closure was supposed to panic");
    let (prefix, pids) = recorded.lock().unwrap().clone();
    assert!(prefix.starts_with(LAB_PREFIX));
    assert_eq!(pids.len(), 3);
    assert_lab_gone(&prefix, &pids);
}

/// Deletes hand-made namespaces even if an assertion fails first.
struct HandMadeNamespaces(Vec<String>);

impl Drop for HandMadeNamespaces {
    fn drop(&mut self) {
        let existing = list_netns().unwrap_or_default();
        for name in self.0.iter().filter(|n| existing.contains(n)) {
            let _ = ip_netns(&["del", name]);
        }
    }
}

#[test]
fn sweep_removes_only_stale_lab_namespaces() -> Result<()> {
    require_root();
    // Make sure this process's one-time sweep has run, so it does not race with ours.
    let _lab = Lab::new("sweep_removes_only_stale_lab_namespaces")?;
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("read pid_max")
        .trim()
        .parse()
        .expect("pid_max is a number");
    let me = std::process::id();
    // A previous run killed mid-test could not delete its foreign-prefix namespace and
    // the sweep never will: remove those whose test process is gone.
    for name in list_netns()? {
        let owner = name
            .strip_prefix("vpcsweeptest-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if owner.is_some_and(|pid| !process_exists(pid)) {
            ip_netns(&["del", &name])?;
        }
    }
    let stale = format!("{LAB_PREFIX}{}-0-stale", pid_max + 1);
    let other_prefix = format!("vpcsweeptest-{me}-keep");
    let alive = format!("{LAB_PREFIX}{me}-999-alive");
    let guard = HandMadeNamespaces(vec![stale.clone(), other_prefix.clone(), alive.clone()]);
    for name in &guard.0 {
        ip_netns(&["add", name])?;
    }

    let removed = sweep_stale()?;
    let remaining = list_netns()?;
    assert!(!remaining.contains(&stale), "stale namespace survived");
    assert!(
        remaining.contains(&other_prefix),
        "foreign namespace removed"
    );
    assert!(remaining.contains(&alive), "live owner's namespace removed");
    assert!(!removed.contains(&other_prefix) && !removed.contains(&alive));
    drop(guard);
    assert!(!list_netns()?.contains(&alive));
    Ok(())
}

#[test]
fn command_timeout_kills_and_reports() -> Result<()> {
    require_root();
    let lab = Lab::new("command_timeout_kills_and_reports")?;
    let ns = lab.netns("slow")?;
    let started = Instant::now();
    let err = lab
        .exec_timeout(&ns, &["sleep", "30"], Duration::from_millis(300))
        .expect_err("sleep 30 finished within 300 ms");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.is_timeout(), "{err}");
    let message = err.to_string();
    assert!(message.contains("sleep 30"), "{message}");
    assert!(message.contains(ns.name()), "{message}");
    // The killed command leaves nothing behind in the namespace.
    assert_eq!(vpc_integration::netns_pids(ns.name())?, Vec::<i32>::new());
    Ok(())
}

#[test]
fn process_dies_with_its_handle_and_close_is_idempotent() -> Result<()> {
    require_root();
    let lab = Lab::new("process_dies_with_its_handle_and_close_is_idempotent")?;
    let ns = lab.netns("p")?;
    let printer = lab.spawn(&ns, "printer", &["sh", "-c", "echo hello; exec sleep 1000"])?;
    printer.wait_for_log("hello", PROBE_TIMEOUT)?;
    let pid = printer.pid();
    drop(printer);
    assert!(!process_exists(pid), "pid {pid} outlived its handle");

    let prefix = lab.prefix().to_owned();
    lab.close().map_err(|mut errors| errors.remove(0))?;
    lab.close().map_err(|mut errors| errors.remove(0))?;
    assert_lab_gone(&prefix, &[pid]);
    assert!(matches!(lab.netns("late"), Err(Error::Closed(_))));
    Ok(())
}
