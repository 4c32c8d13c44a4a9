//! Every list is bounded, and so is a request's size.

use prost::Message;
use vpc_proto::v1 as pb;
use vr_agent::model::Limits;
use vr_agent::testing::{item, mac};

use super::agent::{AgentLab, one_tier};

/// The gRPC message bound the agent uses when no flag is given.
const DEFAULT_MAX_REQUEST_BYTES: usize = vr_agent::endpoint::DEFAULT_MAX_REQUEST_BYTES;

fn full_acl(items: usize) -> pb::SetNetworkAclRequest {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    pb::SetNetworkAclRequest {
        generation: u64::MAX,
        acl: Some(pb::NetworkAcl {
            device_index: 2,
            mac_address: mac(2),
            acl_id: "6f1c4b1e-9d6a-4c4e-8f3e-0a6f1f8b7c21".into(),
            acl_name: "a list named with the longest name a user would give it".into(),
            items: (0..items)
                .map(|n| pb::AclItem {
                    id: "6f1c4b1e-9d6a-4c4e-8f3e-0a6f1f8b7c21".into(),
                    ..item(
                        n as u32 + 1,
                        Allow,
                        Ingress,
                        Tcp,
                        &["198.51.100.0/24", "203.0.113.128/25"],
                        Some((10_000, 20_000)),
                    )
                })
                .collect(),
            ..Default::default()
        }),
    }
}

fn full_forwards(rules: usize) -> pb::SetPortForwardingRulesRequest {
    pb::SetPortForwardingRulesRequest {
        generation: u64::MAX,
        rules: (0..rules)
            .map(|n| pb::PortForwardingRule {
                id: "6f1c4b1e-9d6a-4c4e-8f3e-0a6f1f8b7c21".into(),
                public_ip: "203.0.113.255".into(),
                protocol: pb::Protocol::Tcp as i32,
                public_start_port: 60_000 + n as u32,
                public_end_port: 60_000 + n as u32,
                private_ip: "10.255.255.254".into(),
                private_start_port: 60_000,
                private_end_port: 60_000,
                source_cidrs: vec!["198.51.100.0/24".into()],
            })
            .collect(),
    }
}

fn full_leases(entries: usize) -> pb::SetDhcpEntriesRequest {
    pb::SetDhcpEntriesRequest {
        generation: u64::MAX,
        dhcp: Some(pb::TierDhcp {
            device_index: 99,
            entries: (0..entries)
                .map(|n| pb::DhcpEntry {
                    mac_address: "02:00:00:00:aa:05".into(),
                    ip_address: "10.255.255.254".into(),
                    hostname: format!("{}-{n}", "v".repeat(56)),
                    default_gateway: true,
                    ip6_address: "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe".into(),
                    duid: vec!["ab"; 18].join(":"),
                })
                .collect(),
        }),
    }
}

#[test]
fn a_full_list_at_each_default_bound_fits_in_one_request() {
    let limits = Limits::default();
    let sizes = [
        ("ACL items", full_acl(limits.acl_items).encoded_len()),
        (
            "port forwards",
            full_forwards(limits.port_forwards).encoded_len(),
        ),
        (
            "DHCP entries",
            full_leases(limits.dhcp_entries).encoded_len(),
        ),
    ];
    for (what, bytes) in sizes {
        println!("{what}: {bytes} bytes at the default bound");
        assert!(
            bytes < DEFAULT_MAX_REQUEST_BYTES,
            "{what}: {bytes} bytes do not fit in {DEFAULT_MAX_REQUEST_BYTES}"
        );
    }
}

fn refused_naming(result: Result<pb::ApplyResponse, tonic::Status>, words: &[&str]) {
    let status = result.expect_err("accepted past its bound");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    for word in words {
        assert!(
            status.message().contains(word),
            "{word:?} missing from {:?}",
            status.message()
        );
    }
}

/// The real agent with small bounds: one entry past each bound is refused
/// with INVALID_ARGUMENT naming the list and the flag, and the state stays.
#[test]
fn lists_past_their_bounds_and_oversized_requests_are_refused_naming_the_bound() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let flags = [
        "--max-acl-items",
        "5",
        "--max-port-forwards",
        "2",
        "--max-dhcp-entries",
        "3",
        "--max-request-bytes",
        "65536",
    ];
    let mut r = AgentLab::start("sec_bounds", &flags);
    let applied = r
        .apply_config(one_tier())
        .unwrap_or_else(|e| panic!("{e:?}\n{}", r.log()));

    let items = |n: u32| {
        (1..=n)
            .map(|k| item(k, Allow, Ingress, All, &[], None))
            .collect()
    };
    let acl = |items| pb::NetworkAcl {
        device_index: 2,
        mac_address: mac(2),
        items,
        ..Default::default()
    };
    let generation = r.next_generation();
    let at_bound = acl(items(5));
    r.call(move |mut c| async move {
        c.set_network_acl(pb::SetNetworkAclRequest {
            generation,
            acl: Some(at_bound),
        })
        .await
    })
    .expect("a list at its bound is accepted");
    let generation = r.next_generation();
    let past = acl(items(6));
    refused_naming(
        r.call(move |mut c| async move {
            c.set_network_acl(pb::SetNetworkAclRequest {
                generation,
                acl: Some(past),
            })
            .await
        }),
        &["acl.items", "bound of 5", "--max-acl-items"],
    );

    let generation = r.next_generation();
    let mut forwards = full_forwards(3);
    forwards.generation = generation;
    refused_naming(
        r.call(move |mut c| async move { c.set_port_forwarding_rules(forwards).await }),
        &["rules", "bound of 2", "--max-port-forwards"],
    );

    let generation = r.next_generation();
    let mut leases = full_leases(4);
    leases.generation = generation;
    leases.dhcp.as_mut().unwrap().device_index = 2;
    refused_naming(
        r.call(move |mut c| async move { c.set_dhcp_entries(leases).await }),
        &["dhcp.entries", "bound of 3", "--max-dhcp-entries"],
    );

    // 90 kB of ACL items in one request, past --max-request-bytes.
    let mut config = one_tier();
    config.network_acls = vec![full_acl(1000).acl.unwrap()];
    assert!(config.encoded_len() > 65536);
    refused_naming(r.apply_config(config), &["65536", "--max-request-bytes"]);

    // CloudStack numbers ACL items from 1.
    let generation = r.next_generation();
    let zero = acl(vec![item(0, Allow, Ingress, All, &[], None)]);
    refused_naming(
        r.call(move |mut c| async move {
            c.set_network_acl(pb::SetNetworkAclRequest {
                generation,
                acl: Some(zero),
            })
            .await
        }),
        &["acl.items[0].number"],
    );

    let state = r.state().unwrap();
    assert_eq!(state.config.unwrap().network_acls[0].items.len(), 5);
    assert!(state.generation > applied.generation);
    assert!(r.agent().is_running(), "{}", r.log());
}
