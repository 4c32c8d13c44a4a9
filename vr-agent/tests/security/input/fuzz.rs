//! A fuzzer for the agent's validation of every RPC, run for a bounded time.
//!
//! Sequences of arbitrary commands (every RPC, with strings, numbers, enums
//! and repeated fields drawn from near-valid pools and from arbitrary data)
//! go through the agent's pure path: `update::apply` (the change, the size
//! bounds, the validation) and the planners. Nothing may panic, and every
//! accepted state must validate again to the same router.
//!
//! It runs for 30 seconds by default; `VR_AGENT_FUZZ_SECS=600 cargo test
//! -p vr-agent --test security fuzz -- --nocapture` runs it longer.

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use vpc_proto::v1 as pb;
use vr_agent::model::{Limits, Router};
use vr_agent::plan;
use vr_agent::plan::nft::NftOptions;
use vr_agent::testing::sample_config;
use vr_agent::update::{self, Change};

/// Default time budget, in seconds.
const DEFAULT_SECS: u64 = 30;

/// `valid` values most of the time, arbitrary text sometimes.
fn text(valid: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop::sample::select(valid).prop_map(str::to_string),
        1 => Just(String::new()),
        1 => any::<String>(),
        1 => "[0-9a-f:./ -]{0,24}",
    ]
    .boxed()
}

fn ip() -> BoxedStrategy<String> {
    text(&[
        "10.1.1.5",
        "10.1.1.6",
        "10.1.2.5",
        "10.1.2.6",
        "10.1.1.1",
        "203.0.113.10",
        "203.0.113.11",
        "203.0.113.12",
        "203.0.113.1",
        "172.16.0.10",
        "172.16.0.1",
        "169.254.3.7",
        "2001:db8::1",
        "10.1.1.255",
        "0.0.0.0",
    ])
}

fn cidr() -> BoxedStrategy<String> {
    text(&[
        "10.1.1.0/24",
        "10.1.2.0/24",
        "10.1.0.0/16",
        "192.168.50.0/24",
        "0.0.0.0/0",
        "198.51.100.0/24",
        "::/0",
        "2001:db8::/64",
        "10.1.1.5/24",
        "10.1.3.0/24",
    ])
}

fn mac_text() -> BoxedStrategy<String> {
    text(&[
        "02:00:00:00:00:00",
        "02:00:00:00:00:01",
        "02:00:00:00:00:02",
        "02:00:00:00:00:03",
        "02:00:00:00:00:04",
        "02:00:00:00:aa:05",
        "02:00:00:00:aa:06",
        "02:00:00:00:AA:07",
    ])
}

fn word() -> BoxedStrategy<String> {
    text(&[
        "web-1",
        "db-2",
        "tier1.vpc.internal",
        "vpc-1",
        "acl web",
        "vlan://100",
        "00:03:00:01",
    ])
}

fn index() -> BoxedStrategy<u32> {
    prop_oneof![6 => 0u32..6, 1 => any::<u32>()].boxed()
}

fn port() -> BoxedStrategy<u32> {
    prop_oneof![4 => 0u32..100, 2 => 60_000u32..66_000, 1 => any::<u32>()].boxed()
}

fn enum_value() -> BoxedStrategy<i32> {
    prop_oneof![8 => 0i32..6, 1 => any::<i32>()].boxed()
}

/// A repeated field: a few entries.
fn list<T: std::fmt::Debug + 'static>(item: BoxedStrategy<T>) -> BoxedStrategy<Vec<T>> {
    prop::collection::vec(item, 0..5).boxed()
}

/// A list that grows with use (ACL items, port forwards, leases): short
/// usually, sometimes past the fuzzer's bound of 100.
fn long_list<T: std::fmt::Debug + 'static>(item: BoxedStrategy<T>) -> BoxedStrategy<Vec<T>> {
    prop_oneof![
        6 => prop::collection::vec(item.clone(), 0..8),
        1 => prop::collection::vec(item, 90..110),
    ]
    .boxed()
}

fn nic() -> BoxedStrategy<pb::Nic> {
    (
        index(),
        mac_text(),
        enum_value(),
        port(),
        word(),
        ip(),
        0u32..40,
    )
        .prop_map(
            |(device_index, mac_address, role, mtu, network_id, ip_address, prefix_length)| {
                pb::Nic {
                    device_index,
                    mac_address,
                    role,
                    mtu: mtu.wrapping_mul(20),
                    network_id,
                    ip_address,
                    prefix_length,
                }
            },
        )
        .boxed()
}

fn guest_network() -> BoxedStrategy<pb::GuestNetwork> {
    (
        (index(), mac_text(), word(), cidr(), ip(), word()),
        (list(ip()), any::<bool>(), port(), cidr(), ip(), list(ip())),
    )
        .prop_map(|(a, b)| pb::GuestNetwork {
            device_index: a.0,
            mac_address: a.1,
            network_id: a.2,
            cidr: a.3,
            gateway: a.4,
            domain_name: a.5,
            dns_servers: b.0,
            external_dns_only: b.1,
            mtu: b.2.wrapping_mul(20),
            ip6_cidr: b.3,
            ip6_gateway: b.4,
            dns6_servers: b.5,
        })
        .boxed()
}

fn public_ip() -> BoxedStrategy<pb::PublicIp> {
    (
        (any::<bool>(), ip(), 0u32..40, ip(), index()),
        (
            mac_text(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            word(),
        ),
    )
        .prop_map(|(a, b)| pb::PublicIp {
            add: a.0,
            ip_address: a.1,
            prefix_length: a.2,
            gateway: a.3,
            device_index: a.4,
            mac_address: b.0,
            source_nat: b.1,
            one_to_one_nat: b.2,
            private_gateway: b.3,
            vlan: b.4,
        })
        .boxed()
}

fn acl_item() -> BoxedStrategy<pb::AclItem> {
    let icmp = prop::option::of(prop_oneof![-2i32..300, any::<i32>()]);
    (
        (
            prop_oneof![0u32..60, any::<u32>()],
            enum_value(),
            enum_value(),
            enum_value(),
        ),
        (
            port(),
            list(cidr()),
            prop::option::of(port()),
            prop::option::of(port()),
        ),
        (icmp.clone(), icmp, word()),
    )
        .prop_map(|(a, b, c)| pb::AclItem {
            number: a.0,
            action: a.1,
            traffic_type: a.2,
            protocol: a.3,
            protocol_number: b.0,
            cidrs: b.1,
            start_port: b.2,
            end_port: b.3,
            icmp_type: c.0,
            icmp_code: c.1,
            id: c.2,
        })
        .boxed()
}

fn network_acl() -> BoxedStrategy<pb::NetworkAcl> {
    (
        index(),
        mac_text(),
        any::<bool>(),
        word(),
        word(),
        list(acl_item()),
    )
        .prop_map(
            |(device_index, mac_address, private_gateway, acl_id, acl_name, items)| {
                pb::NetworkAcl {
                    device_index,
                    mac_address,
                    private_gateway,
                    acl_id,
                    acl_name,
                    items,
                }
            },
        )
        .boxed()
}

fn port_forward() -> BoxedStrategy<pb::PortForwardingRule> {
    (
        (word(), ip(), enum_value(), port(), port()),
        (ip(), port(), port(), list(cidr())),
    )
        .prop_map(|(a, b)| pb::PortForwardingRule {
            id: a.0,
            public_ip: a.1,
            protocol: a.2,
            public_start_port: a.3,
            public_end_port: a.4,
            private_ip: b.0,
            private_start_port: b.1,
            private_end_port: b.2,
            source_cidrs: b.3,
        })
        .boxed()
}

fn load_balancer() -> BoxedStrategy<pb::LoadBalancerRule> {
    let backend = (ip(), port(), word())
        .prop_map(|(ip_address, port, vm_id)| pb::LbBackend {
            ip_address,
            port,
            vm_id,
        })
        .boxed();
    let sticky_param = text(&[
        "cookie-name",
        "mode",
        "nocache",
        "domain",
        "length",
        "holdtime",
        "tablesize",
        "expire",
    ]);
    let sticky_value = text(&["SRV", "insert", "true", "30m", "200k", ".example.org", "52"]);
    let stickiness = prop::option::of(
        (
            enum_value(),
            prop::collection::hash_map(sticky_param, sticky_value, 0..4),
        )
            .prop_map(|(method, params)| pb::LbStickiness { method, params }),
    )
    .boxed();
    (
        (word(), word(), ip(), enum_value(), port()),
        (
            port(),
            enum_value(),
            list(backend),
            list(cidr()),
            stickiness,
        ),
    )
        .prop_map(|(a, b)| pb::LoadBalancerRule {
            id: a.0,
            name: a.1,
            public_ip: a.2,
            protocol: a.3,
            public_port: a.4,
            private_port: b.0,
            algorithm: b.1,
            backends: b.2,
            source_cidrs: b.3,
            stickiness: b.4,
        })
        .boxed()
}

fn tier_dhcp() -> BoxedStrategy<pb::TierDhcp> {
    let entry = ((mac_text(), ip(), word()), (any::<bool>(), ip(), word()))
        .prop_map(|(a, b)| pb::DhcpEntry {
            mac_address: a.0,
            ip_address: a.1,
            hostname: a.2,
            default_gateway: b.0,
            ip6_address: b.1,
            duid: b.2,
        })
        .boxed();
    (index(), long_list(entry))
        .prop_map(|(device_index, entries)| pb::TierDhcp {
            device_index,
            entries,
        })
        .boxed()
}

fn tier_vm_data() -> BoxedStrategy<pb::TierVmData> {
    let entry = (word(), word())
        .prop_map(|(name, value)| pb::MetadataEntry { name, value })
        .boxed();
    let vm = (
        (mac_text(), ip(), word()),
        (list(entry), list(word()), word()),
    )
        .prop_map(|(a, b)| pb::VmData {
            mac_address: a.0,
            ip_address: a.1,
            user_data: a.2.into_bytes(),
            metadata: b.0,
            public_keys: b.1,
            password: b.2,
        })
        .boxed();
    (index(), long_list(vm))
        .prop_map(|(device_index, vms)| pb::TierVmData { device_index, vms })
        .boxed()
}

fn route() -> BoxedStrategy<pb::StaticRoute> {
    (cidr(), ip(), ip(), word())
        .prop_map(|(cidr, next_hop, gateway_ip, id)| pb::StaticRoute {
            cidr,
            next_hop,
            gateway_ip,
            id,
        })
        .boxed()
}

fn snat() -> BoxedStrategy<pb::SourceNatRule> {
    (index(), ip(), list(cidr()))
        .prop_map(|(device_index, nat_ip, source_cidrs)| pb::SourceNatRule {
            device_index,
            nat_ip,
            source_cidrs,
        })
        .boxed()
}

fn static_nat() -> BoxedStrategy<pb::StaticNatRule> {
    (word(), ip(), ip())
        .prop_map(|(id, public_ip, private_ip)| pb::StaticNatRule {
            id,
            public_ip,
            private_ip,
        })
        .boxed()
}

fn vpn() -> BoxedStrategy<pb::Vpn> {
    let proposal = text(&[
        "aes128-sha1-modp1536",
        "aes256-sha256",
        "3des-md5-modp1024",
        "aes\"}",
    ]);
    let connection = (
        (
            text(&[
                "3f1c2a52-0001-4b8e-8d1f-5e0a00000001",
                "3F1C2A52-0001-4B8E-8D1F-5E0A00000002",
            ]),
            text(&["198.51.100.20", "vpn.example.org", "a\"b"]),
            list(cidr()),
            list(cidr()),
            text(&["open sesame", "x\"}\n", ""]),
        ),
        (
            list(proposal.clone()),
            list(proposal),
            any::<u64>(),
            prop_oneof![Just(3600u64), any::<u64>()],
            text(&["ike", "ikev1", "ikev2", "ikev3"]),
            any::<(bool, bool, bool, bool, u64)>(),
        ),
    )
        .prop_map(|(a, b)| pb::VpnConnection {
            id: a.0,
            peer_address: a.1,
            local_cidrs: a.2,
            remote_cidrs: a.3,
            psk: a.4,
            ike_proposals: b.0,
            esp_proposals: b.1,
            ike_lifetime_seconds: b.2,
            esp_lifetime_seconds: b.3,
            ike_version: b.4,
            dpd: b.5.0,
            passive: b.5.1,
            force_encap: b.5.2,
            split_connections: b.5.3,
            reset_serial: b.5.4,
        })
        .boxed();
    (ip(), list(connection))
        .prop_map(|(public_ip, connections)| pb::Vpn {
            public_ip,
            connections,
        })
        .boxed()
}

fn config() -> BoxedStrategy<pb::RouterConfig> {
    (
        (word(), word(), cidr(), list(nic()), list(guest_network())),
        (
            list(public_ip()),
            list(snat()),
            list(route()),
            list(network_acl()),
        ),
        (
            list(port_forward()),
            list(static_nat()),
            list(load_balancer()),
            list(tier_dhcp()),
            list(tier_vm_data()),
            prop::option::of(vpn()),
        ),
    )
        .prop_map(|(a, b, c)| pb::RouterConfig {
            router_name: a.0,
            vpc_id: a.1,
            vpc_cidr: a.2,
            nics: a.3,
            guest_networks: a.4,
            public_ips: b.0,
            source_nat_rules: b.1,
            static_routes: b.2,
            network_acls: b.3,
            port_forwarding_rules: c.0,
            static_nat_rules: c.1,
            load_balancer_rules: c.2,
            dhcp: c.3,
            vm_data: c.4,
            vpn: c.5,
        })
        .boxed()
}

/// One command of any RPC; `None` payloads (a missing required message)
/// included.
fn change() -> BoxedStrategy<Change> {
    prop_oneof![
        prop::option::of(nic()).prop_map(Change::PlugNic),
        (index(), mac_text()).prop_map(|(index, mac)| Change::UnplugNic { index, mac }),
        prop::option::of(guest_network()).prop_map(Change::SetupGuestNetwork),
        index().prop_map(|index| Change::DestroyGuestNetwork { index }),
        list(public_ip()).prop_map(Change::IpAssoc),
        list(snat()).prop_map(Change::SetSourceNat),
        list(route()).prop_map(Change::SetStaticRoutes),
        prop::option::of(network_acl()).prop_map(Change::SetNetworkAcl),
        long_list(port_forward()).prop_map(Change::SetPortForwarding),
        list(static_nat()).prop_map(Change::SetStaticNat),
        list(load_balancer()).prop_map(Change::SetLoadBalancers),
        prop::option::of(tier_dhcp()).prop_map(Change::SetDhcpEntries),
        prop::option::of(tier_vm_data()).prop_map(Change::SetVmData),
        prop::option::of(vpn()).prop_map(Change::SetVpn),
        prop::option::of(config()).prop_map(Change::ApplyConfig),
    ]
    .boxed()
}

/// Runs `changes` from the sample router (or an empty one): no panic, and
/// every accepted state validates again to the router `apply` returned and
/// can be planned.
fn run(
    from_sample: bool,
    changes: Vec<Change>,
    limits: &Limits,
    accepted: &std::cell::Cell<(u64, u64)>,
) -> Result<(), TestCaseError> {
    let mut config = if from_sample {
        sample_config()
    } else {
        pb::RouterConfig::default()
    };
    let mut router = Router::from_config(&config).expect("the start is valid");
    for change in changes {
        let rpc = change.rpc();
        let (yes, all) = accepted.get();
        let result = update::apply(&config, &router, change, limits);
        accepted.set((yes + u64::from(result.is_ok()), all + 1));
        if let Ok((next, next_router)) = result {
            let again = Router::from_config(&next);
            prop_assert_eq!(
                again.as_ref(),
                Ok(&next_router),
                "{} accepted a state that does not re-validate",
                rpc
            );
            limits.check(&next).map_err(|e| {
                TestCaseError::fail(format!("{rpc} accepted a state past a bound: {e}"))
            })?;
            plan::dnsmasq::plan(&next_router, Path::new("/run/vr-agent/dnsmasq"));
            plan::nft::plan(&next_router, &NftOptions::default()).render_full();
            plan::net::plan(&next_router);
            if let Some(cfg) = plan::haproxy::plan(&next_router, "nobody", "nogroup") {
                // Every value is one token: no line may start a directive
                // the planner did not write.
                const DIRECTIVES: &[&str] = &[
                    "#",
                    "global",
                    "maxconn",
                    "user",
                    "group",
                    "defaults",
                    "timeout",
                    "listen",
                    "bind",
                    "mode",
                    "balance",
                    "cookie",
                    "stick-table",
                    "stick",
                    "server",
                ];
                for line in cfg.lines().filter(|l| !l.trim().is_empty()) {
                    let first = line.split_whitespace().next().unwrap_or("");
                    prop_assert!(
                        DIRECTIVES.contains(&first) && !line.contains(['\r', '"', '\'', '\\']),
                        "haproxy line {:?}",
                        line
                    );
                }
            }
            config = next;
            router = next_router;
        }
    }
    Ok(())
}

fn budget() -> Duration {
    let secs = std::env::var("VR_AGENT_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    Duration::from_secs(secs)
}

#[test]
fn fuzzing_every_rpc_through_validation_finds_no_panic_and_no_state_that_fails_to_revalidate() {
    // Small bounds, so that the fuzzer also crosses them.
    let limits = Limits {
        acl_items: 100,
        port_forwards: 100,
        dhcp_entries: 100,
        ..Limits::default()
    };
    let strategy = (any::<bool>(), prop::collection::vec(change(), 1..12));
    let budget = budget();
    let started = Instant::now();
    let (mut batches, mut sequences) = (0u64, 0u64);
    let checking = std::cell::Cell::new(Duration::ZERO);
    let accepted = std::cell::Cell::new((0u64, 0u64));
    while started.elapsed() < budget {
        // Batches of fresh random cases until the time is up; a failure
        // shrinks within its batch and fails the test.
        let mut runner = TestRunner::new(Config {
            cases: 16,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&strategy, |(from_sample, changes)| {
                let t = Instant::now();
                let out = run(from_sample, changes, &limits, &accepted);
                checking.set(checking.get() + t.elapsed());
                out
            })
            .unwrap();
        batches += 1;
        sequences += 16;
    }
    let (yes, all) = accepted.get();
    println!(
        "{sequences} command sequences in {batches} batches, {all} commands, {yes} accepted, \
         {:?} ({:?} checking, the rest generating)",
        started.elapsed(),
        checking.get()
    );
    assert!(sequences > 0);
}
