//! Site-to-site VPN with real packets: the upstream namespace plays the
//! customer gateway, running a plain strongSwan configured by the test (not
//! by the agent) with the on-premises subnet 10.9.0.0/16 behind it. The
//! router's charon (userspace IPsec here: this kernel has no ESP) brings the
//! tunnel up; VMs and the peer see each other's real addresses; the tier's
//! ingress ACL still decides; the tunnel survives an agent restart; a
//! charon that dies is restarted by the reconcile loop; a
//! proposal mismatch and a wrong key are errors with charon's reason; a
//! reset re-initiates; removing the connection stops charon and closes the
//! IKE ports.

use std::path::Path;
use std::time::{Duration, Instant};

use vpc_integration::{ProcessHandle, TcpEchoServer, tcp_probe};
use vpc_proto::v1 as pb;

use super::SHORT;
use super::fixture::{RouterLab, addr, allow_all_ingress};

const CONN: &str = "3f1c2a52-0001-4b8e-8d1f-5e0a00000001";
const PEER: &str = "203.0.113.1";
const PEER_HOST: &str = "10.9.0.1";

/// The router's VPN towards the upstream peer with key `psk`.
fn vpn(psk: &str, reset_serial: u64) -> pb::Vpn {
    pb::Vpn {
        public_ip: "203.0.113.10".into(),
        connections: vec![pb::VpnConnection {
            id: CONN.into(),
            peer_address: PEER.into(),
            local_cidrs: vec!["10.1.0.0/16".into()],
            remote_cidrs: vec!["10.9.0.0/16".into()],
            psk: psk.into(),
            ike_proposals: vec!["aes128-sha1-modp1536".into()],
            esp_proposals: vec!["aes128-sha1".into()],
            ike_lifetime_seconds: 86_400,
            esp_lifetime_seconds: 3_600,
            dpd: true,
            ike_version: "ikev2".into(),
            reset_serial,
            ..Default::default()
        }],
    }
}

/// Starts the peer's own charon in the upstream namespace, answering the
/// router with key "open sesame" (passive: the router initiates).
fn start_peer(r: &RouterLab) -> ProcessHandle {
    let dir = r.lab.dir().join("peer");
    std::fs::create_dir_all(dir.join("run")).unwrap();
    r.lab
        .addr_add(&r.up, "lo", &format!("{PEER_HOST}/32"))
        .unwrap();
    let conf = format!(
        "charon {{\n  load = random nonce openssl aes sha1 sha2 hmac gmp kdf pem pkcs1 pubkey \
         kernel-libipsec kernel-netlink socket-default vici updown\n  plugins {{\n    vici {{\n      \
         socket = unix://{d}/charon.vici\n    }}\n  }}\n  filelog {{\n    peer {{\n      path = {d}/charon.log\n      \
         default = 1\n      ike = 2\n    }}\n  }}\n}}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("strongswan.conf"), conf).unwrap();
    let peer_conf = format!(
        "connections {{\n  router {{\n    version = 2\n    local_addrs = {PEER}\n    remote_addrs = 203.0.113.10\n    \
         proposals = aes128-sha1-modp1536\n    local {{\n      auth = psk\n      id = {PEER}\n    }}\n    \
         remote {{\n      auth = psk\n      id = 203.0.113.10\n    }}\n    children {{\n      router {{\n        \
         local_ts = 10.9.0.0/16\n        remote_ts = 10.1.0.0/16\n        esp_proposals = aes128-sha1\n      }}\n    }}\n  }}\n}}\n\
         secrets {{\n  ike-router {{\n    id-1 = {PEER}\n    id-2 = 203.0.113.10\n    secret = \"open sesame\"\n  }}\n}}\n"
    );
    std::fs::write(dir.join("swanctl.conf"), peer_conf).unwrap();
    let script = format!(
        "mount --bind {d}/run /run && STRONGSWAN_CONF={d}/strongswan.conf exec /usr/lib/ipsec/charon",
        d = dir.display()
    );
    let peer = r
        .lab
        .spawn(
            &r.up,
            "peer-charon",
            &["unshare", "-m", "sh", "-c", &script],
        )
        .unwrap();
    let socket = dir.join("charon.vici");
    let started = Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            peer.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    swanctl(
        r,
        &dir,
        &[
            "--load-all",
            "--file",
            &dir.join("swanctl.conf").display().to_string(),
        ],
    );
    peer
}

fn swanctl(r: &RouterLab, dir: &Path, args: &[&str]) -> String {
    let uri = format!("unix://{}", dir.join("charon.vici").display());
    let mut argv = vec!["swanctl"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--uri", &uri]);
    let out = r.lab.exec(&r.up, &argv).unwrap();
    out.stdout
}

/// Polls GetState until the connection reaches `state`; returns its status
/// and the time it took.
fn wait_for(r: &RouterLab, state: pb::VpnConnectionState) -> (pb::VpnConnectionStatus, Duration) {
    let started = Instant::now();
    loop {
        let s = r.state();
        if let Some(c) = s.vpn.iter().find(|c| c.id == CONN)
            && c.state == state as i32
        {
            return (c.clone(), started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(20) {
            let log = std::fs::read_to_string(r.state_dir.join("vpn/charon.log"));
            panic!(
                "connection not {state:?}: {:?}\ncharon's log: {log:?}\n{}",
                s.vpn,
                r.agent_log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ruleset(r: &RouterLab) -> String {
    r.lab
        .exec(&r.r, &["nft", "list", "table", "inet", "vpc"])
        .unwrap()
        .stdout
}

#[test]
fn a_tunnel_to_an_on_premises_strongswan_carries_real_addresses_both_ways() {
    let mut r = RouterLab::start("vpn_onprem");
    let _peer = start_peer(&r);
    let mut config = r.base_config();
    assert!(!ruleset(&r).contains("udp dport { 500, 4500 }"));
    config.network_acls.retain(|a| a.device_index != 2);
    config.network_acls.push(allow_all_ingress(2));
    config.vpn = Some(vpn("open sesame", 0));
    let started = Instant::now();
    r.apply_config(config.clone());
    wait_for(&r, pb::VpnConnectionState::Up);
    eprintln!(
        "VPN connection up {} ms after ApplyConfig (userspace IPsec)",
        started.elapsed().as_millis()
    );
    let rules = ruleset(&r);
    assert!(
        rules.contains("ip daddr 203.0.113.10 udp dport { 500, 4500 } accept"),
        "{rules}"
    );

    // vm1 reaches the peer's host; the peer sees vm1's own address.
    let echo = TcpEchoServer::start(&r.up, addr(&format!("{PEER_HOST}:7100"))).unwrap();
    let seen = tcp_probe(&r.vm1, addr(&format!("{PEER_HOST}:7100")), SHORT * 4)
        .expect("vm1 reaches the on-premises host through the tunnel");
    assert_eq!(seen.seen_as.ip().to_string(), "10.1.1.5", "no source NAT");
    drop(echo);
    assert!(
        r.lab
            .ping_ok(&r.vm1, PEER_HOST.parse::<std::net::Ipv4Addr>().unwrap())
    );

    // The peer reaches vm1 (the tier lets every ingress packet in) as itself:
    // its charon routes 10.1.0.0/16 into its tunnel from 10.9.0.1.
    let _vm_echo = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:7200")).unwrap();
    let seen = tcp_probe(&r.up, addr("10.1.1.5:7200"), SHORT * 4)
        .expect("the on-premises host reaches vm1 through the tunnel");
    assert_eq!(
        seen.seen_as.ip().to_string(),
        PEER_HOST,
        "the VM sees the peer's address"
    );

    // An agent restart keeps the tunnel: the new agent adopts the running
    // charon (its own process group) and reports the same connection.
    r.kill_agent();
    r.spawn_agent();
    wait_for(&r, pb::VpnConnectionState::Up);
    let seen = tcp_probe(&r.up, addr("10.1.1.5:7200"), SHORT * 4)
        .expect("the tunnel survives an agent restart");
    assert_eq!(seen.seen_as.ip().to_string(), PEER_HOST);

    // A charon that dies is restarted by the reconcile loop with the same
    // connections (the pid is the one the test's agent started).
    let pid_file = r.state_dir.join("vpn/run/charon.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let started = Instant::now();
    loop {
        let s = r.state();
        let restarted = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .is_some_and(|p| p != pid);
        if restarted
            && s.vpn
                .iter()
                .any(|c| c.state == pb::VpnConnectionState::Up as i32)
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", s.vpn);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        r.state().repairs.unwrap().drift_found > 0,
        "counted as drift"
    );

    // Reset: the router tears the SA down and initiates again.
    config.vpn = Some(vpn("open sesame", 1));
    r.apply_config(config.clone());
    let (_, took) = wait_for(&r, pb::VpnConnectionState::Up);
    eprintln!(
        "VPN connection up again {} ms after the reset",
        took.as_millis()
    );

    // Proposals the peer does not accept: an error naming them.
    let mut mismatched = vpn("open sesame", 2);
    mismatched.connections[0].ike_proposals = vec!["aes256-sha512-modp4096".into()];
    config.vpn = Some(mismatched);
    r.apply_config(config.clone());
    let (status, _) = wait_for(&r, pb::VpnConnectionState::Error);
    assert!(status.reason.contains("NO_PROPOSAL_CHOSEN"), "{status:?}");

    // A wrong key: an error with charon's reason.
    config.vpn = Some(vpn("wrong key", 3));
    r.apply_config(config.clone());
    let (status, _) = wait_for(&r, pb::VpnConnectionState::Error);
    assert!(
        status.reason.contains("AUTHENTICATION_FAILED") || status.reason.contains("MAC"),
        "{status:?}"
    );

    // No connection: charon stops, the IKE ports close, the SNAT exemption goes.
    config.vpn = None;
    r.apply_config(config);
    let rules = ruleset(&r);
    assert!(!rules.contains("udp dport { 500, 4500 }"), "{rules}");
    assert!(!rules.contains("ip daddr 10.9.0.0/16"), "{rules}");
    assert!(r.state().vpn.is_empty());
    // The peer's host is now reached the ordinary way: source-NATed.
    let _echo = TcpEchoServer::start(&r.up, addr(&format!("{PEER_HOST}:7101"))).unwrap();
    let seen = tcp_probe(&r.vm1, addr(&format!("{PEER_HOST}:7101")), SHORT * 4).unwrap();
    assert_eq!(seen.seen_as.ip().to_string(), "203.0.113.10");
}
