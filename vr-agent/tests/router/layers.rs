//! Layered ACL lookups, proven with real packets: a list whose items
//! alternate between allow and deny over overlapping sources and ports (each
//! item overlaps the one before with the other action, so every item needs
//! its own layer) decides each probe as first match over the numbered list.

use std::time::Duration;

use vpc_integration::{TcpEchoServer, tcp_connect};
use vpc_proto::v1 as pb;
use vr_agent::model::{AclRule, Action, Direction, Router};
use vr_agent::plan::acl::Compiled;
use vr_agent::plan::acl::eval::{Packet, first_match, walk};
use vr_agent::testing::item;

use crate::fixture::{RouterLab, addr};

const SHORT: Duration = Duration::from_millis(700);

#[test]
fn alternating_overlapping_items_decide_each_probe_as_first_match() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let (mut r, mut config, servers) = lab_without_acls("acl_layers", 7000..=7006);

    // vm2 is 10.1.2.5 and vm3 10.1.2.6, both in tier eth3; vm1 in eth2.
    let items = vec![
        item(1, Deny, Ingress, Tcp, &["10.1.2.5/32"], Some((7000, 7001))),
        item(2, Allow, Ingress, Tcp, &["10.1.2.4/30"], Some((7000, 7003))),
        item(3, Deny, Ingress, Tcp, &["10.1.2.0/24"], Some((7002, 7004))),
        item(4, Allow, Ingress, Tcp, &["10.1.0.0/16"], Some((7000, 7005))),
        item(5, Deny, Ingress, All, &["10.1.2.6/32"], None),
        item(6, Allow, Ingress, Tcp, &["10.1.2.0/24"], Some((7006, 7006))),
    ];
    r.set_acl(2, items.clone());

    // What the list says, by the plain first-match reading, and the layers
    // the compiler made of it.
    config.network_acls = vec![pb::NetworkAcl {
        device_index: 2,
        mac_address: vr_agent::testing::mac(2),
        items,
        ..Default::default()
    }];
    let router = Router::from_config(&config).expect("valid");
    let acl = &router.acls[&2];
    let rules: Vec<_> = acl.rules(Direction::Ingress).collect();
    assert_eq!(acl.ingress.layers, 6, "each item overlaps the one before");

    let expected_by_hand = [
        // (vm, port, allowed)
        ("vm2", 7000, false),
        ("vm2", 7001, false),
        ("vm2", 7002, true),
        ("vm2", 7003, true),
        ("vm2", 7004, false),
        ("vm2", 7005, true),
        ("vm2", 7006, true),
        ("vm3", 7000, true),
        ("vm3", 7001, true),
        ("vm3", 7002, true),
        ("vm3", 7003, true),
        ("vm3", 7004, false),
        ("vm3", 7005, true),
        ("vm3", 7006, false),
    ];
    let wrong = probe_by_hand(&r, &rules, &acl.ingress, &expected_by_hand);
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", r.state().live_ruleset);
    drop(servers);
}

#[test]
fn a_list_past_the_element_bound_is_refused_naming_its_items_and_the_old_rules_stay() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    // One element per item and CIDR, so that a small list crosses it.
    let mut r = RouterLab::start("acl_bound");
    r.restart_with_flags(&["--max-acl-elements-per-item", "1"]);
    let mut config = r.base_config();
    config.network_acls.clear();
    r.apply_config(config);
    let _web = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:7000")).unwrap();
    let web = addr("10.1.1.5:7000");
    let allow = item(
        10,
        Allow,
        Ingress,
        Tcp,
        &["10.1.2.0/24"],
        Some((7000, 7000)),
    );
    r.set_acl(2, vec![allow.clone()]);
    assert!(tcp_connect(&r.vm2, web, SHORT).unwrap());
    let before = r.state();

    // ICMP type 0 code 0 from the VPC, then any ICMP from tier 2: the second
    // box is cut in two around the first, three elements for two entries.
    let mut echo_reply = item(1, Allow, Ingress, Icmp, &["10.1.0.0/16"], None);
    echo_reply.icmp_type = Some(0);
    echo_reply.icmp_code = Some(0);
    let any_icmp = item(2, Allow, Ingress, Icmp, &["10.1.2.0/24"], None);
    let generation = r.next_generation();
    let acl = pb::NetworkAcl {
        device_index: 2,
        mac_address: vr_agent::testing::mac(2),
        items: vec![echo_reply, any_icmp],
        ..Default::default()
    };
    let err = r
        .call(move |mut c| async move {
            c.set_network_acl(pb::SetNetworkAclRequest {
                generation,
                acl: Some(acl),
            })
            .await
        })
        .expect_err("over the element bound");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("acl.items"), "{err:?}");
    assert!(err.message().contains("items 2"), "{err:?}");

    // Nothing changed: the same desired state and table, and the old rule
    // still lets vm2 in.
    let after = r.state();
    assert_eq!(after.config, before.config);
    assert_eq!(after.generation, before.generation);
    assert_eq!(after.live_ruleset, before.live_ruleset);
    assert!(tcp_connect(&r.vm2, web, SHORT).unwrap());
}

#[test]
fn a_sharded_list_decides_probes_inside_and_outside_its_shards_as_first_match() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let (mut r, mut config, servers) = lab_without_acls("acl_shards", 7000..=7003);

    // 300 allow items from vm2 (10.1.2.5) and 300 deny items from vm3
    // (10.1.2.6), on ports no probe uses: each lookup holds more than a
    // set's worth, so each is split and dispatched on the address, vm2's
    // host a set of the allow lookup and vm3's one of the deny lookup.
    let host = |h: &str| format!("10.1.2.{h}/32");
    let mut items: Vec<pb::AclItem> = (0..300u32)
        .map(|i| {
            item(
                i + 1,
                Allow,
                Ingress,
                Tcp,
                &[&host("5")],
                Some((20000 + i, 20000 + i)),
            )
        })
        .collect();
    items.extend((0..300u32).map(|i| {
        let port = 30000 + i;
        item(
            301 + i,
            Deny,
            Ingress,
            Tcp,
            &[&host("6")],
            Some((port, port)),
        )
    }));
    items.extend([
        // In the allow lookup's set of vm2's host.
        item(601, Allow, Ingress, Tcp, &[&host("5")], Some((7000, 7000))),
        // In the deny lookup's set of vm3's host.
        item(602, Deny, Ingress, Tcp, &[&host("6")], Some((7000, 7000))),
        // In the deny lookup's main set: vm2 is outside its shards.
        item(603, Deny, Ingress, Tcp, &[&host("5")], Some((7001, 7001))),
        // Behind both denies: a later layer, not split.
        item(
            604,
            Allow,
            Ingress,
            Tcp,
            &["10.1.2.0/24"],
            Some((7000, 7002)),
        ),
    ]);
    r.set_acl(2, items.clone());
    let live = r.state().live_ruleset;
    for text in [
        "ip saddr . meta l4proto vmap @acl_inbound_eth2_l0_allow_v4_ports_shards",
        "ip saddr . meta l4proto vmap @acl_inbound_eth2_l0_deny_v4_ports_shards",
        "10.1.2.5 . 0-255 : jump ACL_INBOUND_eth2_l0_allow_v4_ports_0a010205_32",
        "10.1.2.6 . 0-255 : jump ACL_INBOUND_eth2_l0_deny_v4_ports_0a010206_32",
    ] {
        assert!(live.contains(text), "{text}\n{live}");
    }

    config.network_acls = vec![pb::NetworkAcl {
        device_index: 2,
        mac_address: vr_agent::testing::mac(2),
        items,
        ..Default::default()
    }];
    let router = Router::from_config(&config).expect("valid");
    let acl = &router.acls[&2];
    let rules: Vec<_> = acl.rules(Direction::Ingress).collect();
    let expected_by_hand = [
        // (vm, port, allowed): vm2 inside the allow lookup's shard, vm3
        // inside the deny lookup's.
        ("vm2", 7000, true),
        ("vm2", 7001, false),
        ("vm2", 7002, true),
        ("vm2", 7003, false),
        ("vm3", 7000, false),
        ("vm3", 7001, true),
        ("vm3", 7003, false),
    ];
    let wrong = probe_by_hand(&r, &rules, &acl.ingress, &expected_by_hand);
    assert!(wrong.is_empty(), "{wrong:#?}\n{live}");

    // The items that decided in a shard's set counted their packets.
    let state = r
        .call(|mut c| async move {
            c.get_state(pb::GetStateRequest {
                acl_counters_only: true,
                ..Default::default()
            })
            .await
        })
        .expect("GetState");
    let packets = |number: u32| {
        state
            .acl_counters
            .iter()
            .find(|c| c.device_index == 2 && c.number == number)
            .map_or(0, |c| c.packets)
    };
    for number in [601, 602, 603, 604] {
        assert!(
            packets(number) > 0,
            "item {number}: {:?}",
            state.acl_counters
        );
    }
    assert_eq!(packets(1), 0);
    drop(servers);
}

/// Checks each `(vm, port, allowed)` of a table written by hand against the
/// plain first-match reading of `rules` and the walk of the compiled
/// `chain`, then connects from that VM (vm2 is 10.1.2.5, vm3 10.1.2.6) to
/// the port on vm1; returns the probes whose outcome differs from the table.
fn probe_by_hand(
    r: &RouterLab,
    rules: &[&AclRule],
    chain: &Compiled,
    expected: &[(&str, u16, bool)],
) -> Vec<String> {
    let mut wrong = Vec::new();
    for &(vm, port, allowed) in expected {
        let (ns, source) = match vm {
            "vm2" => (&r.vm2, [10, 1, 2, 5]),
            _ => (&r.vm3, [10, 1, 2, 6]),
        };
        let packet = Packet {
            v6: false,
            addr: u32::from(std::net::Ipv4Addr::from(source)) as u128,
            protocol: 6,
            port,
            icmp: (0, 0),
        };
        let listed = first_match(rules, &packet) == Some(Action::Allow);
        assert_eq!(listed, allowed, "{vm} -> {port}: the table above is wrong");
        assert_eq!(walk(chain, &packet), first_match(rules, &packet));
        let target = addr(&format!("10.1.1.5:{port}"));
        let measured = tcp_connect(ns, target, SHORT).unwrap();
        if measured != allowed {
            wrong.push(format!(
                "{vm} -> {port}: allowed {allowed}, measured {measured}"
            ));
        }
    }
    wrong
}

/// A router lab with no ACL list on any tier and TCP echo servers on vm1
/// at `ports`; the config applied, for the test to change.
fn lab_without_acls(
    name: &str,
    ports: std::ops::RangeInclusive<u16>,
) -> (RouterLab, pb::RouterConfig, Vec<TcpEchoServer>) {
    let mut r = RouterLab::start(name);
    let mut config = r.base_config();
    config.network_acls.clear();
    r.apply_config(config.clone());
    let servers = ports
        .map(|port| TcpEchoServer::start(&r.vm1, addr(&format!("0.0.0.0:{port}"))).unwrap())
        .collect();
    (r, config, servers)
}
