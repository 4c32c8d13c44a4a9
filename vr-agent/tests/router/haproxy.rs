//! The rules the in-kernel balancer cannot serve, with real packets: least
//! connections and cookie stickiness go through the router's HAProxy, which
//! the agent starts, reloads, stops and restarts; round robin and source
//! stay in nftables with no proxy running.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use vpc_integration::{Netns, TcpEchoServer, netns_pids, run_in_netns, tcp_probe};
use vpc_proto::v1 as pb;

use crate::fixture::{RouterLab, addr, allow_all_ingress};

const SHORT: Duration = Duration::from_millis(700);
const LB: &str = "203.0.113.11:80";

/// The pid of the router's HAProxy master, if one runs with the agent's
/// configuration. The master re-executes itself after each load, which
/// hides its command line for an instant: a miss is looked at again.
fn haproxy_pid(r: &RouterLab) -> Option<u32> {
    (0..10).find_map(|attempt| {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        haproxy_pid_once(r)
    })
}

fn haproxy_pid_once(r: &RouterLab) -> Option<u32> {
    let dir: PathBuf = r.state_dir.join("haproxy");
    let pid: u32 = std::fs::read_to_string(dir.join("haproxy.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let conf = dir.join("haproxy.cfg");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    (!zombie
        && cmdline
            .split(|b| *b == 0)
            .any(|a| a == conf.as_os_str().as_encoded_bytes()))
    .then_some(pid)
}

/// Any process in the router namespace whose binary is haproxy.
fn haproxy_runs_in(r: &RouterLab) -> bool {
    netns_pids(r.r.name()).unwrap().into_iter().any(|pid| {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .is_ok_and(|x| x.to_string_lossy().ends_with("/haproxy"))
    })
}

/// A connection to the balancer kept open; returns the backend's greeting.
fn hold(ns: &Netns) -> (TcpStream, String) {
    run_in_netns(ns, || {
        let mut s = TcpStream::connect_timeout(&addr(LB), SHORT).expect("connect");
        s.set_read_timeout(Some(SHORT)).unwrap();
        let mut buf = [0u8; 128];
        let n = s.read(&mut buf).expect("greeting");
        Ok((s, String::from_utf8_lossy(&buf[..n]).into_owned()))
    })
    .unwrap()
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn leastconn_sends_new_connections_to_the_backend_with_fewest() {
    let mut r = RouterLab::start("lb_leastconn");
    let mut config = r.base_config();
    config.network_acls = vec![allow_all_ingress(2), allow_all_ingress(3)];
    config.load_balancer_rules[0].algorithm = pb::LbAlgorithm::LeastConn as i32;
    r.apply_config(config);
    assert!(haproxy_pid(&r).is_some(), "{}", r.agent_log());
    let nft = r.state().live_ruleset;
    assert!(
        !nft.contains("dnat ip to numgen") && !nft.contains("jhash"),
        "nft does not balance a leastconn rule:\n{nft}"
    );
    let a = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:8080")).unwrap();
    let b = TcpEchoServer::start(&r.vm2, addr("0.0.0.0:8081")).unwrap();

    let (held, _) = hold(&r.up);
    wait_until("the held connection", SHORT, || {
        a.peers().len() + b.peers().len() == 1
    });
    let held_on_a = a.peers().len() == 1;
    for _ in 0..5 {
        tcp_probe(&r.up, addr(LB), SHORT).expect("balanced by haproxy");
        // HAProxy counts a connection until it has seen the backend close
        // it: give it that moment, so only the held one stays counted.
        std::thread::sleep(Duration::from_millis(100));
    }
    let (on_a, on_b) = (a.peers().len(), b.peers().len());
    if held_on_a {
        assert_eq!(
            (on_a, on_b),
            (1, 5),
            "every new connection avoids the busy backend"
        );
    } else {
        assert_eq!(
            (on_a, on_b),
            (5, 1),
            "every new connection avoids the busy backend"
        );
    }
    drop(held);
}

/// One HTTP GET through the balancer from `up`, sending `cookie` if given;
/// returns the body and the cookie the balancer set (if any).
fn get(r: &RouterLab, cookie: Option<&str>) -> (String, Option<String>) {
    let mut argv = vec!["curl", "-s", "-m", "3", "-D", "-"];
    let header;
    if let Some(c) = cookie {
        header = format!("Cookie: {c}");
        argv.extend(["-H", header.as_str()]);
    }
    let url = format!("http://{LB}/who");
    argv.push(&url);
    let out = r
        .lab
        .exec_unchecked(&r.up, &argv, Duration::from_secs(5))
        .unwrap();
    let text = out.stdout;
    let set = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string());
    let body = text
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    (body, set)
}

#[test]
fn lb_cookie_keeps_a_client_on_the_backend_its_cookie_names() {
    let mut r = RouterLab::start("lb_cookie");
    // A web server on each backend that answers /who with its name.
    let mut servers = Vec::new();
    for (ns, name, port) in [(&r.vm1, "vm1", "8080"), (&r.vm2, "vm2", "8081")] {
        let dir = r.lab.dir().join(format!("www-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("who"), name).unwrap();
        let dir = dir.display().to_string();
        let argv = [
            "python3",
            "-m",
            "http.server",
            port,
            "--bind",
            "0.0.0.0",
            "--directory",
            &dir,
        ];
        servers.push(r.lab.spawn(ns, &format!("www-{name}"), &argv).unwrap());
    }
    let mut config = r.base_config();
    config.network_acls = vec![allow_all_ingress(2), allow_all_ingress(3)];
    config.load_balancer_rules[0].stickiness = Some(pb::LbStickiness {
        method: pb::LbStickinessMethod::LbCookie as i32,
        params: [("cookie-name", "SRV"), ("nocache", "true")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    });
    r.apply_config(config);
    assert!(haproxy_pid(&r).is_some(), "{}", r.agent_log());
    wait_until("the web servers", Duration::from_secs(5), || {
        !get(&r, None).0.is_empty()
    });

    // Without a cookie, round robin reaches both backends.
    let bodies: Vec<String> = (0..4).map(|_| get(&r, None).0).collect();
    assert!(
        bodies.iter().any(|b| b == "vm1") && bodies.iter().any(|b| b == "vm2"),
        "{bodies:?}"
    );
    // With the cookie of the first answer, every request reaches its backend.
    let (first, cookie) = get(&r, None);
    let cookie = cookie.expect("the balancer sets its cookie");
    assert!(cookie.starts_with("SRV="), "{cookie}");
    for _ in 0..6 {
        assert_eq!(get(&r, Some(&cookie)).0, first, "cookie {cookie}");
    }
}

#[test]
fn kernel_rules_run_no_haproxy_and_the_proxy_stops_when_its_last_rule_goes() {
    let mut r = RouterLab::start("lb_noproxy");
    let mut config = r.base_config();
    config.network_acls = vec![allow_all_ingress(2), allow_all_ingress(3)];
    r.apply_config(config.clone());
    config.load_balancer_rules[0].algorithm = pb::LbAlgorithm::Source as i32;
    // SourceBased stickiness is a source hash: still the kernel's.
    config.load_balancer_rules[0].stickiness = Some(pb::LbStickiness {
        method: pb::LbStickinessMethod::SourceBased as i32,
        params: Default::default(),
    });
    r.apply_config(config.clone());
    assert_eq!(haproxy_pid(&r), None);
    assert!(!haproxy_runs_in(&r), "no haproxy for kernel rules");
    let a = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:8080")).unwrap();
    let b = TcpEchoServer::start(&r.vm2, addr("0.0.0.0:8081")).unwrap();
    for _ in 0..4 {
        tcp_probe(&r.up, addr(LB), SHORT).expect("balanced by nft");
    }
    let (on_a, on_b) = (a.peers().len(), b.peers().len());
    assert!(on_a == 4 || on_b == 4, "source hash: {on_a}/{on_b}");
    assert!(r.state().live_ruleset.contains("jhash ip saddr mod 2"));

    config.load_balancer_rules[0].algorithm = pb::LbAlgorithm::LeastConn as i32;
    config.load_balancer_rules[0].stickiness = None;
    r.apply_config(config.clone());
    let pid = haproxy_pid(&r).unwrap_or_else(|| {
        let dir = r.state_dir.join("haproxy");
        panic!(
            "no haproxy for the leastconn rule; pid file {:?}, log:\n{}\nagent:\n{}",
            std::fs::read_to_string(dir.join("haproxy.pid")),
            std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default(),
            r.agent_log()
        )
    });
    config.load_balancer_rules[0].algorithm = pb::LbAlgorithm::RoundRobin as i32;
    r.apply_config(config);
    assert_eq!(haproxy_pid(&r), None);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s
                .rsplit_once(')')
                .is_some_and(|(_, x)| x.trim_start().starts_with('Z'))),
        "haproxy {pid} stopped"
    );
    tcp_probe(&r.up, addr(LB), SHORT).expect("back in the kernel");
}

#[test]
fn killed_haproxy_is_restarted_and_a_new_agent_adopts_it() {
    let mut r = RouterLab::start("lb_restart");
    let mut config = r.base_config();
    config.network_acls = vec![allow_all_ingress(2), allow_all_ingress(3)];
    config.load_balancer_rules[0].algorithm = pb::LbAlgorithm::LeastConn as i32;
    r.apply_config(config);
    let _a = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:8080")).unwrap();
    let _b = TcpEchoServer::start(&r.vm2, addr("0.0.0.0:8081")).unwrap();
    let first = haproxy_pid(&r).unwrap();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("a new haproxy", Duration::from_secs(5), || {
        haproxy_pid(&r).is_some_and(|p| p != first)
    });
    // The killed master's worker exits on its own; until it has, a
    // connection may still reach its closing listener.
    wait_until("balancing again", Duration::from_secs(5), || {
        tcp_probe(&r.up, addr(LB), SHORT).is_ok()
    });

    // An agent restart keeps the running proxy: no new pid, no outage.
    let second = haproxy_pid(&r).unwrap();
    let (mut held, _) = hold(&r.up);
    r.kill_agent();
    r.spawn_agent();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(haproxy_pid(&r), Some(second), "{}", r.agent_log());
    held.write_all(b"still\n").unwrap();
    let mut buf = [0u8; 6];
    held.read_exact(&mut buf)
        .expect("the held connection survives");
    assert_eq!(&buf, b"still\n");

    // A changed rule reloads the same master; the held connection, on a
    // worker of the old configuration, keeps working.
    let mut config = r.base_config();
    config.network_acls = vec![allow_all_ingress(2), allow_all_ingress(3)];
    config.load_balancer_rules[0].algorithm = pb::LbAlgorithm::LeastConn as i32;
    config.load_balancer_rules[0].stickiness = Some(pb::LbStickiness {
        method: pb::LbStickinessMethod::SourceBased as i32,
        params: Default::default(),
    });
    r.apply_config(config);
    let cfg = std::fs::read_to_string(r.state_dir.join("haproxy/haproxy.cfg")).unwrap();
    assert!(cfg.contains("stick on src"), "{cfg}");
    assert_eq!(haproxy_pid(&r), Some(second), "reloaded, not restarted");
    held.write_all(b"again\n").unwrap();
    held.read_exact(&mut buf)
        .expect("the held connection survives a reload");
    assert_eq!(&buf, b"again\n");
    tcp_probe(&r.up, addr(LB), SHORT).expect("the new configuration balances");
}

#[test]
fn leastconn_on_udp_and_cookies_on_udp_are_refused() {
    let mut r = RouterLab::start("lb_refused");
    let mut config = r.base_config();
    config.load_balancer_rules[0].protocol = pb::Protocol::Udp as i32;
    config.load_balancer_rules[0].algorithm = pb::LbAlgorithm::LeastConn as i32;
    let err = r.try_apply_config(config.clone()).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("load_balancer_rules[0].algorithm"),
        "{}",
        err.message()
    );

    config.load_balancer_rules[0].algorithm = pb::LbAlgorithm::RoundRobin as i32;
    config.load_balancer_rules[0].stickiness = Some(pb::LbStickiness {
        method: pb::LbStickinessMethod::LbCookie as i32,
        params: Default::default(),
    });
    let err = r.try_apply_config(config.clone()).unwrap_err();
    assert!(
        err.message()
            .contains("load_balancer_rules[0].stickiness.method"),
        "{}",
        err.message()
    );

    // A cookie name that would break out of HAProxy's line.
    config.load_balancer_rules[0].protocol = pb::Protocol::Tcp as i32;
    config.load_balancer_rules[0].stickiness = Some(pb::LbStickiness {
        method: pb::LbStickinessMethod::LbCookie as i32,
        params: [(
            "cookie-name".to_string(),
            "a\n  server x 1.2.3.4:80".to_string(),
        )]
        .into_iter()
        .collect(),
    });
    let err = r.try_apply_config(config).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("params[cookie-name]"),
        "{}",
        err.message()
    );
    assert_eq!(haproxy_pid(&r), None, "nothing was started");
}

#[test]
fn clients_of_a_proxied_rule_pass_the_backend_tiers_ingress_acls() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut r = RouterLab::start("lb_proxy_acl");
    let mut config = r.base_config();
    // One backend, 10.1.1.5:8080 in tier eth2: its ingress ACL decides.
    config.load_balancer_rules[0].backends.truncate(1);
    config.load_balancer_rules[0].algorithm = pb::LbAlgorithm::LeastConn as i32;
    let deny_upstream = |action| pb::NetworkAcl {
        device_index: 2,
        mac_address: vr_agent::testing::mac(2),
        items: vec![
            vr_agent::testing::item(
                10,
                action,
                Ingress,
                Tcp,
                &["203.0.113.0/24"],
                Some((8080, 8080)),
            ),
            vr_agent::testing::item(20, Allow, Ingress, All, &[], None),
        ],
        ..Default::default()
    };
    config.network_acls = vec![deny_upstream(Deny), allow_all_ingress(3)];
    r.apply_config(config.clone());
    let _a = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:8080")).unwrap();
    assert!(
        tcp_probe(&r.up, addr(LB), SHORT).is_err(),
        "item 10 denies the upstream clients the backend's port"
    );
    assert!(
        r.state().live_ruleset.contains("LB_PROXY_0_0"),
        "{}",
        r.state().live_ruleset
    );
    config.network_acls = vec![deny_upstream(Allow), allow_all_ingress(3)];
    r.apply_config(config);
    tcp_probe(&r.up, addr(LB), SHORT).expect("item 10 allows them now");
}
