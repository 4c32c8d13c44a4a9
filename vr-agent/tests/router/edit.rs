//! EditNetworkAcl with real packets: a few items added, moved and taken out
//! of the list a NIC holds, instead of the whole list; refused (ABORTED, and
//! nothing changes) when made against a generation or a list the agent does
//! not hold.

use std::time::Duration;

use vpc_integration::{TcpEchoServer, tcp_connect};
use vpc_proto::v1 as pb;
use vr_agent::testing::{item, mac};

use crate::fixture::{RouterLab, addr};

const SHORT: Duration = Duration::from_millis(700);

fn with_id(mut i: pb::AclItem, id: &str) -> pb::AclItem {
    i.id = id.into();
    i
}

/// The ids and numbers of the list NIC 2 holds, by number.
fn held(r: &RouterLab) -> Vec<(String, u32)> {
    let state = r.state();
    let config = state.config.expect("a desired state");
    config
        .network_acls
        .iter()
        .find(|a| a.device_index == 2)
        .map(|a| a.items.iter().map(|i| (i.id.clone(), i.number)).collect())
        .unwrap_or_default()
}

fn edit(
    r: &mut RouterLab,
    base: u64,
    acl_id: &str,
    items: Vec<pb::AclItem>,
    removed: &[&str],
) -> Result<pb::ApplyResponse, tonic::Status> {
    let generation = r.next_generation();
    let request = pb::EditNetworkAclRequest {
        generation,
        base_generation: base,
        acl: Some(pb::NetworkAcl {
            device_index: 2,
            mac_address: mac(2),
            acl_id: acl_id.into(),
            items,
            ..Default::default()
        }),
        removed: removed.iter().map(|s| s.to_string()).collect(),
    };
    r.call(move |mut c| async move { c.edit_network_acl(request).await })
}

#[test]
fn an_edit_changes_only_what_it_names_and_a_wrong_base_changes_nothing() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut r = RouterLab::start("acl_edit");
    let mut config = r.base_config();
    // vm1 (10.1.1.5) is on eth2, vm2 (10.1.2.5) on eth3.
    let from = ["10.1.2.0/24"];
    config.network_acls = vec![pb::NetworkAcl {
        device_index: 2,
        mac_address: mac(2),
        acl_id: "L".into(),
        acl_name: "web".into(),
        items: vec![
            with_id(
                item(10, Allow, Ingress, Tcp, &from, Some((7000, 7000))),
                "a",
            ),
            with_id(
                item(20, Allow, Ingress, Tcp, &from, Some((7001, 7001))),
                "b",
            ),
        ],
        ..Default::default()
    }];
    r.apply_config(config);
    let _s0 = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:7000")).unwrap();
    let _s1 = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:7001")).unwrap();
    let _s2 = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:7002")).unwrap();
    let port = |p: u16| addr(&format!("10.1.1.5:{p}"));
    assert!(tcp_connect(&r.vm2, port(7000), SHORT).unwrap());
    assert!(tcp_connect(&r.vm2, port(7001), SHORT).unwrap());
    assert!(!tcp_connect(&r.vm2, port(7002), SHORT).unwrap());

    // A deny before "a", an allow of 7002, and "b" taken out.
    let base = r.state().generation;
    edit(
        &mut r,
        base,
        "L",
        vec![
            with_id(item(5, Deny, Ingress, Tcp, &from, Some((7000, 7000))), "d"),
            with_id(
                item(30, Allow, Ingress, Tcp, &from, Some((7002, 7002))),
                "c",
            ),
        ],
        &["b"],
    )
    .unwrap_or_else(|e| panic!("EditNetworkAcl: {e:?}\n{}", r.agent_log()));
    assert_eq!(
        held(&r),
        [("d".into(), 5), ("a".into(), 10), ("c".into(), 30)]
    );
    assert!(
        !tcp_connect(&r.vm2, port(7000), SHORT).unwrap(),
        "the deny comes first"
    );
    assert!(
        !tcp_connect(&r.vm2, port(7001), SHORT).unwrap(),
        "b is gone"
    );
    assert!(
        tcp_connect(&r.vm2, port(7002), SHORT).unwrap(),
        "c lets 7002 in"
    );

    // "d" moves after "a" (an item replaces the one with its id).
    let base = r.state().generation;
    edit(
        &mut r,
        base,
        "L",
        vec![with_id(
            item(15, Deny, Ingress, Tcp, &from, Some((7000, 7000))),
            "d",
        )],
        &[],
    )
    .unwrap();
    assert_eq!(
        held(&r),
        [("a".into(), 10), ("d".into(), 15), ("c".into(), 30)]
    );
    assert!(
        tcp_connect(&r.vm2, port(7000), SHORT).unwrap(),
        "a matches first now"
    );

    // Made against an older generation, or another list: ABORTED, nothing
    // changes.
    let before = r.state();
    for (base, list) in [(base, "L"), (before.generation, "M")] {
        let err = edit(&mut r, base, list, vec![], &["a"]).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Aborted, "{err:?}");
    }
    let after = r.state();
    assert_eq!(after.generation, before.generation);
    assert_eq!(
        held(&r),
        [("a".into(), 10), ("d".into(), 15), ("c".into(), 30)]
    );
    assert!(tcp_connect(&r.vm2, port(7000), SHORT).unwrap());
}

/// A crash after an edit was answered and before its journal record was
/// synced (the agent's test hook holds every append back): the kernel had
/// the edit, the restarted agent reports the generation before it, so that
/// the manager resyncs, and applies the list persisted then in one
/// transaction, without a lost packet of what both lists allow; the resync
/// brings the edit back.
#[test]
fn a_crash_before_the_journal_sync_reports_the_older_generation_and_keeps_packets_flowing() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut r = RouterLab::start("journal_crash");
    r.restart_with_flags(&["--test-journal-delay-ms", "20000"]);
    let mut config = r.base_config();
    let from = ["10.1.2.0/24"];
    config.network_acls = vec![pb::NetworkAcl {
        device_index: 2,
        mac_address: mac(2),
        acl_id: "L".into(),
        items: vec![
            with_id(item(1, Allow, Ingress, Icmp, &from, None), "ping"),
            with_id(
                item(10, Allow, Ingress, Tcp, &from, Some((7000, 7000))),
                "a",
            ),
        ],
        ..Default::default()
    }];
    // A whole configuration is a snapshot, written before it is answered.
    r.apply_config(config.clone());
    let persisted = r.state().generation;
    let _s0 = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:7000")).unwrap();
    let _s1 = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:7001")).unwrap();
    let port = |p: u16| addr(&format!("10.1.1.5:{p}"));
    assert!(!tcp_connect(&r.vm2, port(7001), SHORT).unwrap());

    let added = with_id(
        item(20, Allow, Ingress, Tcp, &from, Some((7001, 7001))),
        "b",
    );
    let answered = edit(&mut r, persisted, "L", vec![added.clone()], &[])
        .unwrap_or_else(|e| panic!("EditNetworkAcl: {e:?}\n{}", r.agent_log()));
    assert!(answered.generation > persisted);
    assert!(
        tcp_connect(&r.vm2, port(7001), SHORT).unwrap(),
        "the kernel has the edit once it is answered"
    );
    let journal = r.state_dir.join(vr_agent::state::JOURNAL_FILE);
    assert_eq!(
        std::fs::metadata(&journal).map(|m| m.len()).unwrap_or(0),
        0,
        "the record is still held back"
    );

    let ping = r
        .lab
        .spawn(
            &r.vm2,
            "ping",
            &["ping", "-n", "-i", "0.02", "-w", "4", "10.1.1.5"],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    r.kill_agent();
    r.flags.clear();
    r.spawn_agent();
    let state = r.state();
    assert_eq!(
        state.generation, persisted,
        "the restarted agent reports what it persisted"
    );
    assert!(state.last_error.is_empty(), "{}", state.last_error);
    assert!(
        !tcp_connect(&r.vm2, port(7001), SHORT).unwrap(),
        "the list persisted is the one applied"
    );
    assert!(tcp_connect(&r.vm2, port(7000), SHORT).unwrap());
    while ping.is_running() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = ping.log();
    assert!(
        log.contains(" 0% packet loss"),
        "a packet was lost during the restart:\n{log}"
    );

    // The manager's resync: the whole configuration at its generation.
    config.network_acls[0].items.push(added);
    r.apply_config(config);
    assert!(tcp_connect(&r.vm2, port(7001), SHORT).unwrap());
}
