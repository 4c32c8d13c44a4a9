//! Port-forward changes journaled as splices: replayed by a restarted
//! agent, and dropped with their generation when the agent crashes before
//! the record is synced.

use std::time::Duration;

use vpc_integration::{tcp_connect, tcp_probe};
use vpc_proto::v1 as pb;

use super::SHORT;
use super::fixture::{RouterLab, addr, allow_all_ingress};

/// A forward of 203.0.113.11:`port` to 10.1.1.5 on the same port.
fn forward(id: &str, port: u32) -> pb::PortForwardingRule {
    pb::PortForwardingRule {
        id: id.into(),
        public_ip: "203.0.113.11".into(),
        protocol: pb::Protocol::Tcp as i32,
        public_start_port: port,
        private_ip: "10.1.1.5".into(),
        private_start_port: port,
        ..Default::default()
    }
}

fn set_forwards(r: &mut RouterLab, rules: Vec<pb::PortForwardingRule>) -> u64 {
    let generation = r.next_generation();
    r.call(move |mut c| async move {
        c.set_port_forwarding_rules(pb::SetPortForwardingRulesRequest { generation, rules })
            .await
    })
    .unwrap_or_else(|e| panic!("SetPortForwardingRules: {e:?}\n{}", r.agent_log()))
    .generation
}

/// Whether 203.0.113.11:`port` reaches a VM from upstream.
fn forwarded(r: &RouterLab, port: u16) -> bool {
    tcp_connect(&r.up, addr(&format!("203.0.113.11:{port}")), SHORT).unwrap()
}

fn restart(r: &mut RouterLab) {
    r.kill_agent();
    r.flags.clear();
    r.spawn_agent();
}

#[test]
fn forward_changes_replay_after_a_restart_and_a_crash_before_the_sync_keeps_the_older_ones() {
    let mut r = RouterLab::start("nat_journal");
    let mut config = r.base_config();
    config.network_acls = vec![allow_all_ingress(2), allow_all_ingress(3)];
    config.port_forwarding_rules = (0..6)
        .map(|k| forward(&format!("pf-{k}"), 7100 + k))
        .collect();
    // A whole configuration is a snapshot.
    r.apply_config(config.clone());
    let _servers: Vec<_> = (7100..7110)
        .map(|p| {
            vpc_integration::TcpEchoServer::start(&r.vm1, addr(&format!("0.0.0.0:{p}"))).unwrap()
        })
        .collect();
    assert!(forwarded(&r, 7100) && !forwarded(&r, 7108));

    // A forward deleted from the middle, one added there, one pointed at
    // another port: each a journal record.
    let mut rules = config.port_forwarding_rules.clone();
    rules.remove(2);
    set_forwards(&mut r, rules.clone());
    rules.insert(3, forward("pf-8", 7108));
    set_forwards(&mut r, rules.clone());
    rules[0].public_start_port = 7109;
    rules[0].private_start_port = 7109;
    let last = set_forwards(&mut r, rules.clone());
    // The writer syncs the records in the background (a few ms each).
    std::thread::sleep(Duration::from_secs(1));
    let journal = r.state_dir.join(vr_agent::state::JOURNAL_FILE);
    assert!(
        std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0),
        "the changes were journaled, not snapshotted"
    );
    restart(&mut r);
    assert_eq!(
        r.state().generation,
        last,
        "the journal replays to the last change"
    );
    let reached: Vec<u16> = (7100..7110).filter(|&p| forwarded(&r, p)).collect();
    assert_eq!(
        reached,
        [7101, 7103, 7104, 7105, 7108, 7109],
        "{}",
        r.agent_log()
    );

    // Records held back (the agent's test hook), then a crash: the agent
    // comes back with the forwards and the generation it had persisted.
    r.restart_with_flags(&["--test-journal-delay-ms", "20000"]);
    let mut more = rules.clone();
    more.push(forward("pf-7", 7107));
    let answered = set_forwards(&mut r, more);
    assert!(answered > last);
    assert!(
        forwarded(&r, 7107),
        "the kernel has the change once answered"
    );
    std::thread::sleep(Duration::from_millis(200));
    restart(&mut r);
    let state = r.state();
    assert_eq!(
        state.generation, last,
        "the restarted agent reports what it persisted"
    );
    assert!(state.last_error.is_empty(), "{}", state.last_error);
    assert!(
        !forwarded(&r, 7107),
        "the forwards persisted are the ones applied"
    );
    assert!(forwarded(&r, 7109));
    // Probed through: the forward still reaches the VM, seen from upstream.
    let seen = tcp_probe(&r.up, addr("203.0.113.11:7108"), SHORT).expect("forwarded");
    assert_eq!(seen.seen_as.ip().to_string(), "203.0.113.1");
}
