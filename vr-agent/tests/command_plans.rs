//! Snapshot of what each command plans: the sample router, changed by one
//! command, rendered as the nft update the agent would send, the net plan
//! (links, addresses, routes, rules) and the dnsmasq files. A change in any
//! planner shows up here, per command, for review.

use std::fmt::Write as _;
use std::path::Path;

use vpc_proto::v1 as pb;
use vr_agent::model::{Limits, Router};
use vr_agent::plan::{dnsmasq, net, nft};
use vr_agent::testing::{item, mac, sample_config, tier};
use vr_agent::update::{Change, apply};

fn render(config: &pb::RouterConfig) -> (Router, nft::Ruleset) {
    let router = Router::from_config(config).expect("valid");
    let rules = nft::plan(&router, &nft::NftOptions::default());
    (router, rules)
}

/// The planned differences a command makes to the sample router.
fn planned(change: Change) -> String {
    let base = sample_config();
    let (base_router, base_rules) = render(&base);
    let (config, router) =
        apply(&base, &base_router, change, &Limits::default()).expect("command accepted");
    let rules = nft::plan(&router, &nft::NftOptions::default());
    assert_eq!(
        rules,
        render(&config).1,
        "the incremental and full routers plan alike"
    );

    let mut out = String::new();
    out.push_str("# nft\n");
    out.push_str(
        rules
            .render_update(&base_rules)
            .as_deref()
            .unwrap_or("(no change)\n"),
    );

    let (before, after) = (net::plan(&base_router), net::plan(&router));
    out.push_str("# net plan\n");
    let lines = |plan: &net::NetPlan| -> Vec<String> {
        let mut v: Vec<String> = plan.links.iter().map(|l| format!("link {l:?}")).collect();
        v.extend(plan.addresses.iter().map(|a| format!("address {a:?}")));
        v.extend(plan.routes.iter().map(|r| format!("route {r}")));
        v.extend(plan.rules.iter().map(|r| format!("rule {r}")));
        v
    };
    let (old, new) = (lines(&before), lines(&after));
    for line in old.iter().filter(|l| !new.contains(l)) {
        let _ = writeln!(out, "- {line}");
    }
    for line in new.iter().filter(|l| !old.contains(l)) {
        let _ = writeln!(out, "+ {line}");
    }

    out.push_str("# dnsmasq\n");
    let dir = Path::new("/var/lib/vr-agent/dnsmasq");
    let (old, new) = (
        dnsmasq::plan(&base_router, dir),
        dnsmasq::plan(&router, dir),
    );
    for files in &new {
        match old.iter().find(|o| o.index == files.index) {
            Some(o) if o == files => {}
            Some(_) => {
                let _ = writeln!(
                    out,
                    "changed eth{}:\n{}{}",
                    files.index, files.hosts, files.names
                );
            }
            None => {
                let _ = writeln!(out, "new eth{}:\n{}", files.index, files.conf);
            }
        }
    }
    for files in old
        .iter()
        .filter(|o| !new.iter().any(|n| n.index == o.index))
    {
        let _ = writeln!(out, "removed eth{}", files.index);
    }
    out
}

#[test]
fn plug_nic() {
    let nic = pb::Nic {
        device_index: 5,
        mac_address: mac(5),
        role: pb::NicRole::Guest as i32,
        mtu: 9000,
        ..Default::default()
    };
    insta::assert_snapshot!(planned(Change::PlugNic(Some(nic))));
}

#[test]
fn unplug_nic() {
    insta::assert_snapshot!(planned(Change::UnplugNic {
        index: 3,
        mac: mac(3)
    }));
}

#[test]
fn setup_guest_network() {
    let mut network = tier(3);
    network.domain_name = "db.vpc.internal".into();
    network.dns_servers = vec!["198.51.100.53".into()];
    insta::assert_snapshot!(planned(Change::SetupGuestNetwork(Some(network))));
}

#[test]
fn destroy_guest_network() {
    insta::assert_snapshot!(planned(Change::DestroyGuestNetwork { index: 2 }));
}

#[test]
fn ip_assoc() {
    let add = pb::PublicIp {
        add: true,
        ip_address: "203.0.113.20".into(),
        prefix_length: 24,
        gateway: "203.0.113.1".into(),
        device_index: 1,
        ..Default::default()
    };
    let remove = pb::PublicIp {
        add: false,
        ip_address: "203.0.113.12".into(),
        ..Default::default()
    };
    insta::assert_snapshot!(planned(Change::IpAssoc(vec![add, remove])));
}

#[test]
fn set_source_nat() {
    let rule = pb::SourceNatRule {
        device_index: 1,
        nat_ip: "203.0.113.11".into(),
        source_cidrs: vec!["10.1.1.0/24".into()],
    };
    insta::assert_snapshot!(planned(Change::SetSourceNat(vec![rule])));
}

#[test]
fn set_static_routes() {
    let route = |cidr: &str| pb::StaticRoute {
        cidr: cidr.into(),
        next_hop: "172.16.0.1".into(),
        gateway_ip: "172.16.0.10".into(),
        // Ids are identifiers: no `/` (see model::validate::text).
        id: cidr.replace('/', "-"),
    };
    insta::assert_snapshot!(planned(Change::SetStaticRoutes(vec![
        route("192.168.60.0/24"),
        route("192.168.70.0/23")
    ])));
}

#[test]
fn set_network_acl() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut acl = sample_config().network_acls[0].clone();
    acl.items
        .push(item(35, Deny, Ingress, Number, &["10.1.2.0/24"], None));
    acl.items.last_mut().unwrap().protocol_number = 47;
    acl.items.push(pb::AclItem {
        icmp_type: Some(8),
        icmp_code: Some(-1),
        ..item(
            36,
            Allow,
            Ingress,
            Icmp,
            &["10.1.2.0/24", "2001:db8::/64"],
            None,
        )
    });
    insta::assert_snapshot!(planned(Change::SetNetworkAcl(Some(acl))));
}

#[test]
fn set_port_forwarding_rules() {
    let rule = pb::PortForwardingRule {
        id: "pf-web".into(),
        public_ip: "203.0.113.11".into(),
        protocol: pb::Protocol::Tcp as i32,
        public_start_port: 8000,
        public_end_port: 8002,
        private_ip: "10.1.1.5".into(),
        private_start_port: 9000,
        private_end_port: 9002,
        ..Default::default()
    };
    insta::assert_snapshot!(planned(Change::SetPortForwarding(vec![rule])));
}

#[test]
fn set_static_nat_rules() {
    insta::assert_snapshot!(planned(Change::SetStaticNat(vec![])));
}

#[test]
fn set_load_balancer_rules() {
    let mut lb = sample_config().load_balancer_rules[0].clone();
    lb.algorithm = pb::LbAlgorithm::Source as i32;
    lb.source_cidrs = vec!["198.51.100.0/24".into()];
    insta::assert_snapshot!(planned(Change::SetLoadBalancers(vec![lb])));
}

#[test]
fn set_dhcp_entries() {
    let entry = |mac: &str, ip: &str, name: &str, default_gateway| pb::DhcpEntry {
        mac_address: mac.into(),
        ip_address: ip.into(),
        hostname: name.into(),
        default_gateway,
        ..Default::default()
    };
    let dhcp = pb::TierDhcp {
        device_index: 3,
        entries: vec![
            entry("02:00:00:00:bb:05", "10.1.2.5", "db-1", true),
            entry("02:00:00:00:bb:06", "10.1.2.6", "db-2", false),
        ],
    };
    insta::assert_snapshot!(planned(Change::SetDhcpEntries(Some(dhcp))));
}

#[test]
fn apply_config() {
    let mut config = sample_config();
    config.network_acls.clear();
    config.port_forwarding_rules.clear();
    insta::assert_snapshot!(planned(Change::ApplyConfig(Some(config))));
}
