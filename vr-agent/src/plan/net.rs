//! Links, addresses, route tables and rules the router needs.
//!
//! The layout follows CloudStack's VPC router (reference §4.4–4.5): NIC N is
//! named `ethN`; every guest, public and private NIC has its own route table
//! 100+N, reached through `ip rule fwmark 100+N lookup 100+N`, so that replies
//! leave by the NIC their connection came in on (the nft planner sets the
//! marks). Tier CIDRs are `throw` routes in those tables, so traffic between
//! tiers falls through to the main table, which holds the connected tier
//! routes, the default route and the static routes.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::model::{Mac, Role, Router, dev_name};

/// The kernel's main route table.
pub const MAIN_TABLE: u32 = 254;
/// The priority of NIC 0's fwmark rule; NIC N's rule has priority this + N.
pub const RULE_PRIORITY_BASE: u32 = 1000;
/// One past the highest rule priority the agent owns: every IPv4 rule with a
/// priority in `RULE_PRIORITY_BASE..RULE_PRIORITY_END` belongs to the agent.
pub const RULE_PRIORITY_END: u32 = 2000;

/// Everything the kernel of the router's namespace should hold for routing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPlan {
    /// Every plugged NIC, by device index; each is set up.
    pub links: Vec<LinkSpec>,
    /// IPv4 addresses, by device index, in the order they are added (the
    /// first address of a subnet becomes the kernel's primary one).
    pub addresses: Vec<AddressSpec>,
    /// Routes, sorted by table, destination and kind.
    pub routes: Vec<RouteSpec>,
    /// Policy rules, sorted by priority.
    pub rules: Vec<RuleSpec>,
}

/// A NIC: the link with this MAC is named `name`, has `mtu` and is up.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkSpec {
    pub mac: Mac,
    pub name: String,
    /// None leaves the link's MTU as it is.
    pub mtu: Option<u32>,
}

/// An IPv4 address (with its network's prefix length) on a link.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddressSpec {
    pub link: String,
    pub address: Ipv4Net,
    /// True on public, private gateway and guest NICs: adding the address
    /// sends a gratuitous ARP so neighbours learn the router's MAC at once
    /// (upstream routers, and the VMs of a tier whose gateway moved to a
    /// replacement router, which would otherwise keep sending to the old
    /// MAC until their ARP entries expire, half a minute).
    pub announce: bool,
}

/// What a route does with the traffic it matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    /// Forward to `gateway` through `dev`.
    Via { gateway: Ipv4Addr, dev: String },
    /// The destination is on the link `dev` (scope link, no gateway).
    Link { dev: String },
    /// Not in this table: the lookup continues with the next rule.
    Throw,
}

/// One IPv4 route in one table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteSpec {
    pub table: u32,
    pub destination: Ipv4Net,
    pub kind: RouteKind,
}

/// `ip rule add fwmark <fwmark> lookup <table> priority <priority>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleSpec {
    pub fwmark: u32,
    pub table: u32,
    pub priority: u32,
}

/// The table as `ip route` names it.
fn table_name(table: u32) -> String {
    if table == MAIN_TABLE {
        "main".into()
    } else {
        table.to_string()
    }
}

impl fmt::Display for RouteSpec {
    /// `table 101 0.0.0.0/0 via 203.0.113.1 dev eth1`, `table 102 10.1.1.0/24
    /// dev eth2`, `table 101 throw 10.1.2.0/24`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = table_name(self.table);
        match &self.kind {
            RouteKind::Via { gateway, dev } => {
                write!(
                    f,
                    "table {table} {} via {gateway} dev {dev}",
                    self.destination
                )
            }
            RouteKind::Link { dev } => write!(f, "table {table} {} dev {dev}", self.destination),
            RouteKind::Throw => write!(f, "table {table} throw {}", self.destination),
        }
    }
}

impl fmt::Display for RuleSpec {
    /// As `ip rule` prints it: `priority 1001 fwmark 0x65 lookup 101`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "priority {} fwmark {:#x} lookup {}",
            self.priority,
            self.fwmark,
            table_name(self.table)
        )
    }
}

/// The default route's destination.
fn any() -> Ipv4Net {
    Ipv4Net::default()
}

/// Plans the links, addresses, routes and rules of `router`.
pub fn plan(router: &Router) -> NetPlan {
    let mut plan = NetPlan::default();
    let tier_cidrs = router.tier_cidrs();

    for nic in router.nics.values() {
        let dev = nic.dev();
        plan.links.push(LinkSpec {
            mac: nic.mac,
            name: dev.clone(),
            mtu: nic.mtu,
        });
        let announce = matches!(nic.role, Role::Public | Role::Private | Role::Guest);
        let mut add = |address: Ipv4Net| {
            plan.addresses.push(AddressSpec {
                link: dev.clone(),
                address,
                announce,
            });
        };
        match nic.role {
            Role::Guest => {
                if let Some(tier) = router.tiers.get(&nic.index) {
                    add(tier.gateway_net());
                }
            }
            Role::Public | Role::Private => {
                for ip in router.ips_on(nic.index) {
                    add(ip.net());
                }
            }
            Role::Control => {
                if let Some(address) = nic.control_address {
                    add(address);
                }
            }
        }

        let table = nic.table();
        let mut route = |destination: Ipv4Net, kind: RouteKind| {
            plan.routes.push(RouteSpec {
                table,
                destination,
                kind,
            });
        };
        match nic.role {
            Role::Guest => {
                let own = router.tiers.get(&nic.index).map(|t| t.cidr);
                if let Some(cidr) = own {
                    route(cidr, RouteKind::Link { dev: dev.clone() });
                }
                for cidr in tier_cidrs.iter().filter(|c| Some(**c) != own) {
                    route(*cidr, RouteKind::Throw);
                }
            }
            Role::Public | Role::Private => {
                let ips = router.ips_on(nic.index);
                let subnets: BTreeSet<Ipv4Net> = ips.iter().map(|ip| ip.subnet()).collect();
                for subnet in subnets {
                    route(subnet, RouteKind::Link { dev: dev.clone() });
                }
                for cidr in &tier_cidrs {
                    route(*cidr, RouteKind::Throw);
                }
                // ips_on puts the source-NAT IP first, so a NIC holding it
                // uses its gateway, as the main table does.
                if let Some(first) = ips.first() {
                    route(
                        any(),
                        RouteKind::Via {
                            gateway: first.gateway,
                            dev: dev.clone(),
                        },
                    );
                }
            }
            Role::Control => {}
        }
        if nic.is_routed() {
            plan.rules.push(RuleSpec {
                fwmark: table,
                table,
                priority: RULE_PRIORITY_BASE + nic.index,
            });
        }
    }

    // The model refuses static routes overlapping 169.254.0.0/16, so none is a
    // default route that could clash with this one.
    if let Some(snat) = router.source_nat_ip() {
        plan.routes.push(RouteSpec {
            table: MAIN_TABLE,
            destination: any(),
            kind: RouteKind::Via {
                gateway: snat.gateway,
                dev: dev_name(snat.index),
            },
        });
    }
    for r in &router.static_routes {
        plan.routes.push(RouteSpec {
            table: MAIN_TABLE,
            destination: r.cidr,
            kind: RouteKind::Via {
                gateway: r.next_hop,
                dev: dev_name(r.index),
            },
        });
    }

    plan.routes.sort();
    plan.routes.dedup();
    plan.rules.sort_by_key(|r| (r.priority, r.fwmark, r.table));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpc_proto::v1 as pb;

    const ETH1: &str = "02:00:00:00:00:01";
    const ETH2: &str = "02:00:00:00:00:02";
    const ETH3: &str = "02:00:00:00:00:03";
    const ETH4: &str = "02:00:00:00:00:04";

    fn nic(index: u32, mac: &str, role: pb::NicRole, mtu: u32) -> pb::Nic {
        pb::Nic {
            device_index: index,
            mac_address: mac.into(),
            role: role as i32,
            mtu,
            ..Default::default()
        }
    }

    fn tier(index: u32, mac: &str, cidr: &str, gateway: &str) -> pb::GuestNetwork {
        pb::GuestNetwork {
            device_index: index,
            mac_address: mac.into(),
            cidr: cidr.into(),
            gateway: gateway.into(),
            ..Default::default()
        }
    }

    fn ip(index: u32, address: &str, gateway: &str, source_nat: bool) -> pb::PublicIp {
        pb::PublicIp {
            add: true,
            ip_address: address.into(),
            prefix_length: 24,
            gateway: gateway.into(),
            device_index: index,
            source_nat,
            ..Default::default()
        }
    }

    /// A public NIC with the source-NAT IP, two tiers and a private gateway
    /// with one static route.
    fn config() -> pb::RouterConfig {
        pb::RouterConfig {
            nics: vec![
                nic(1, ETH1, pb::NicRole::Public, 0),
                nic(2, ETH2, pb::NicRole::Guest, 1450),
                nic(3, ETH3, pb::NicRole::Guest, 0),
                nic(4, ETH4, pb::NicRole::Private, 0),
            ],
            guest_networks: vec![
                tier(2, ETH2, "10.1.1.0/24", "10.1.1.1"),
                tier(3, ETH3, "10.1.2.0/24", "10.1.2.1"),
            ],
            public_ips: vec![
                ip(1, "203.0.113.10", "203.0.113.1", true),
                ip(4, "172.16.0.10", "172.16.0.1", false),
            ],
            static_routes: vec![pb::StaticRoute {
                cidr: "192.168.50.0/24".into(),
                next_hop: "172.16.0.1".into(),
                gateway_ip: "172.16.0.10".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn router(config: &pb::RouterConfig) -> Router {
        Router::from_config(config).expect("valid config")
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn via(table: u32, destination: &str, gateway: &str, dev: &str) -> RouteSpec {
        RouteSpec {
            table,
            destination: net(destination),
            kind: RouteKind::Via {
                gateway: gateway.parse().unwrap(),
                dev: dev.into(),
            },
        }
    }

    fn link(table: u32, destination: &str, dev: &str) -> RouteSpec {
        RouteSpec {
            table,
            destination: net(destination),
            kind: RouteKind::Link { dev: dev.into() },
        }
    }

    fn throw(table: u32, destination: &str) -> RouteSpec {
        RouteSpec {
            table,
            destination: net(destination),
            kind: RouteKind::Throw,
        }
    }

    fn addr(link: &str, address: &str, announce: bool) -> AddressSpec {
        AddressSpec {
            link: link.into(),
            address: net(address),
            announce,
        }
    }

    #[test]
    fn links_are_every_nic_named_by_device_index() {
        let plan = plan(&router(&config()));
        let links: Vec<(String, String, Option<u32>)> = plan
            .links
            .iter()
            .map(|l| (l.mac.to_string(), l.name.clone(), l.mtu))
            .collect();
        assert_eq!(
            links,
            vec![
                (ETH1.into(), "eth1".into(), None),
                (ETH2.into(), "eth2".into(), Some(1450)),
                (ETH3.into(), "eth3".into(), None),
                (ETH4.into(), "eth4".into(), None),
            ]
        );
    }

    #[test]
    fn addresses_are_tier_gateways_and_held_ips() {
        let plan = plan(&router(&config()));
        assert_eq!(
            plan.addresses,
            vec![
                addr("eth1", "203.0.113.10/24", true),
                addr("eth2", "10.1.1.1/24", true),
                addr("eth3", "10.1.2.1/24", true),
                addr("eth4", "172.16.0.10/24", true),
            ]
        );
    }

    #[test]
    fn routes_fill_one_table_per_nic_and_the_main_table() {
        let plan = plan(&router(&config()));
        assert_eq!(
            plan.routes,
            vec![
                via(101, "0.0.0.0/0", "203.0.113.1", "eth1"),
                throw(101, "10.1.1.0/24"),
                throw(101, "10.1.2.0/24"),
                link(101, "203.0.113.0/24", "eth1"),
                link(102, "10.1.1.0/24", "eth2"),
                throw(102, "10.1.2.0/24"),
                throw(103, "10.1.1.0/24"),
                link(103, "10.1.2.0/24", "eth3"),
                via(104, "0.0.0.0/0", "172.16.0.1", "eth4"),
                throw(104, "10.1.1.0/24"),
                throw(104, "10.1.2.0/24"),
                link(104, "172.16.0.0/24", "eth4"),
                via(254, "0.0.0.0/0", "203.0.113.1", "eth1"),
                via(254, "192.168.50.0/24", "172.16.0.1", "eth4"),
            ]
        );
    }

    #[test]
    fn every_routed_nic_gets_a_fwmark_rule() {
        let plan = plan(&router(&config()));
        let rule = |n: u32| RuleSpec {
            fwmark: 100 + n,
            table: 100 + n,
            priority: 1000 + n,
        };
        assert_eq!(plan.rules, vec![rule(1), rule(2), rule(3), rule(4)]);
    }

    #[test]
    fn control_nic_gets_its_address_but_no_table_or_rule() {
        let mut config = config();
        config.nics.push(pb::Nic {
            ip_address: "169.254.3.7".into(),
            prefix_length: 16,
            ..nic(0, "02:00:00:00:00:00", pb::NicRole::Control, 0)
        });
        let plan = plan(&router(&config));
        assert_eq!(plan.links[0].name, "eth0");
        assert_eq!(plan.addresses[0], addr("eth0", "169.254.3.7/16", false));
        assert!(plan.routes.iter().all(|r| r.table != 100));
        assert!(plan.rules.iter().all(|r| r.table != 100));
    }

    #[test]
    fn source_nat_ip_comes_first_and_gives_the_nic_its_default_route() {
        let mut config = config();
        // A second public IP listed before the source-NAT IP, on another
        // subnet with its own gateway.
        config
            .public_ips
            .insert(0, ip(1, "198.51.100.20", "198.51.100.1", false));
        let plan = plan(&router(&config));
        let on_eth1: Vec<&AddressSpec> =
            plan.addresses.iter().filter(|a| a.link == "eth1").collect();
        assert_eq!(
            on_eth1,
            vec![
                &addr("eth1", "203.0.113.10/24", true),
                &addr("eth1", "198.51.100.20/24", true)
            ]
        );
        let table_101: Vec<&RouteSpec> = plan.routes.iter().filter(|r| r.table == 101).collect();
        assert_eq!(
            table_101,
            vec![
                &via(101, "0.0.0.0/0", "203.0.113.1", "eth1"),
                &throw(101, "10.1.1.0/24"),
                &throw(101, "10.1.2.0/24"),
                &link(101, "198.51.100.0/24", "eth1"),
                &link(101, "203.0.113.0/24", "eth1"),
            ]
        );
    }

    #[test]
    fn without_a_source_nat_ip_the_main_table_has_no_default_route() {
        let mut config = config();
        config.public_ips.retain(|p| !p.source_nat);
        let plan = plan(&router(&config));
        assert!(
            !plan
                .routes
                .iter()
                .any(|r| r.table == MAIN_TABLE && r.destination == any())
        );
        // The public NIC's table keeps its throws but has no default either.
        assert_eq!(plan.routes.iter().filter(|r| r.table == 101).count(), 2);
    }

    #[test]
    fn the_plan_is_deterministic() {
        let a = plan(&router(&config()));
        let mut reversed = config();
        reversed.nics.reverse();
        reversed.guest_networks.reverse();
        reversed.public_ips.reverse();
        assert_eq!(a, plan(&router(&reversed)));
    }
}
