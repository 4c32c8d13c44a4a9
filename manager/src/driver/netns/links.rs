//! Plans of link operations: pure functions from what a namespace holds (as
//! `ip -j -d link show` reports it) to the ordered `ip` operations that plug
//! or unplug a port and keep the zone's bridges. [`super::ip`] executes them.

use std::fmt;

use super::names::Segment;

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// Lower-case MAC, for links that have one.
    pub mac: Option<String>,
    /// The bridge the link is a port of.
    pub master: Option<String>,
    /// `veth`, `bridge`, `vxlan` …; None for plain devices such as `lo`.
    pub kind: Option<String>,
}

impl Link {
    fn is(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }
}

/// One `ip` operation inside one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    AddBridge {
        ns: String,
        bridge: String,
    },
    /// A VXLAN device bound to the zone's loopback: a single host needs no
    /// underlay, and with `nolearning` and no FDB entries it floods nowhere;
    /// `bridge fdb append 00:00:00:00:00:00 dev vxN dst <host>` would join
    /// another host's segment.
    AddVxlan {
        ns: String,
        device: String,
        vni: u32,
    },
    /// A veth pair: `name` in `ns`, `peer` (with `peer_mac`) in `peer_ns`.
    AddVeth {
        ns: String,
        name: String,
        peer_ns: String,
        peer: String,
        peer_mac: Option<String>,
        mtu: u32,
    },
    SetMaster {
        ns: String,
        link: String,
        master: String,
    },
    Up {
        ns: String,
        link: String,
    },
    Delete {
        ns: String,
        link: String,
    },
    AddrReplace {
        ns: String,
        link: String,
        cidr: String,
    },
    RouteReplace {
        ns: String,
        dest: String,
        via: String,
    },
}

impl Op {
    /// The `ip` arguments (without the program name).
    pub fn args(&self) -> Vec<String> {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        match self {
            Op::AddBridge { ns, bridge } => {
                // STP off (the default): ports forward at once, no 30 s of
                // listening/learning before a new NIC passes traffic.
                s(&[
                    "-n",
                    ns,
                    "link",
                    "add",
                    bridge,
                    "type",
                    "bridge",
                    "stp_state",
                    "0",
                ])
            }
            Op::AddVxlan { ns, device, vni } => s(&[
                "-n",
                ns,
                "link",
                "add",
                device,
                "type",
                "vxlan",
                "id",
                &vni.to_string(),
                "dstport",
                "4789",
                "local",
                "127.0.0.1",
                "nolearning",
            ]),
            Op::AddVeth {
                ns,
                name,
                peer_ns,
                peer,
                peer_mac,
                mtu,
            } => {
                let mut a = s(&["-n", ns, "link", "add", name]);
                let mtu = mtu.to_string();
                if *mtu != *"0" {
                    a.extend(s(&["mtu", &mtu]));
                }
                a.extend(s(&["type", "veth", "peer", "name", peer]));
                if let Some(mac) = peer_mac {
                    a.extend(s(&["address", mac]));
                }
                if *mtu != *"0" {
                    a.extend(s(&["mtu", &mtu]));
                }
                a.extend(s(&["netns", peer_ns]));
                a
            }
            Op::SetMaster { ns, link, master } => {
                s(&["-n", ns, "link", "set", "dev", link, "master", master])
            }
            Op::Up { ns, link } => s(&["-n", ns, "link", "set", "dev", link, "up"]),
            Op::Delete { ns, link } => s(&["-n", ns, "link", "del", "dev", link]),
            Op::AddrReplace { ns, link, cidr } => {
                s(&["-n", ns, "addr", "replace", cidr, "dev", link])
            }
            Op::RouteReplace { ns, dest, via } => {
                s(&["-n", ns, "route", "replace", dest, "via", via])
            }
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ip {}", self.args().join(" "))
    }
}

/// One end of a segment: a veth from the zone's bridge into another
/// namespace (a router's or VM's NIC, the upstream, an on-premises network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub zone_ns: String,
    /// The zone-side end's name (unique in the zone).
    pub zone_port: String,
    pub segment: Segment,
    pub target_ns: String,
    /// The name of the end in `target_ns`.
    pub ifname: String,
    /// The MAC of the end in `target_ns`; None lets the kernel pick one, and
    /// then the end is recognised by its name.
    pub mac: Option<String>,
    /// 0 leaves the default.
    pub mtu: u32,
    /// Addresses (CIDR) the driver itself puts on the target end.
    pub addresses: Vec<String>,
    /// Whether the driver sets the target end up (a router's agent does it
    /// for its NICs; a VM's DHCP client does it too, harmlessly).
    pub up: bool,
}

/// Creates the segment's bridge (and VXLAN device) when missing.
pub fn ensure_segment(zone_ns: &str, zone: &[Link], segment: Segment) -> Vec<Op> {
    let mut ops = Vec::new();
    let ns = zone_ns.to_string();
    let bridge = segment.bridge();
    if !zone.iter().any(|l| l.name == bridge) {
        ops.push(Op::AddBridge {
            ns: ns.clone(),
            bridge: bridge.clone(),
        });
        ops.push(Op::Up {
            ns: ns.clone(),
            link: bridge.clone(),
        });
    }
    if let Some((device, vni)) = segment.vxlan_device() {
        let existing = zone.iter().find(|l| l.name == device);
        if existing.is_none() {
            ops.push(Op::AddVxlan {
                ns: ns.clone(),
                device: device.clone(),
                vni,
            });
        }
        if existing.and_then(|l| l.master.as_deref()) != Some(bridge.as_str()) {
            ops.push(Op::SetMaster {
                ns: ns.clone(),
                link: device.clone(),
                master: bridge,
            });
            ops.push(Op::Up { ns, link: device });
        }
    }
    ops
}

/// Plugs `port`: creates its segment and veth, or, when the target end
/// already exists, only puts the zone end back on the right bridge. Plugging
/// twice is a no-op.
pub fn plug(zone: &[Link], target: &[Link], port: &Port) -> Vec<Op> {
    let mut ops = ensure_segment(&port.zone_ns, zone, port.segment);
    let bridge = port.segment.bridge();
    let zone_end = zone.iter().find(|l| l.name == port.zone_port);
    let target_end = target.iter().find(|l| match &port.mac {
        Some(mac) => l.mac.as_deref() == Some(mac.as_str()) && l.is("veth"),
        None => l.name == port.ifname,
    });
    let (zns, tns) = (port.zone_ns.clone(), port.target_ns.clone());
    let ifname = match (target_end, zone_end) {
        (Some(t), Some(z)) => {
            if z.master.as_deref() != Some(bridge.as_str()) {
                ops.push(Op::SetMaster {
                    ns: zns.clone(),
                    link: z.name.clone(),
                    master: bridge,
                });
                ops.push(Op::Up {
                    ns: zns,
                    link: z.name.clone(),
                });
            }
            t.name.clone()
        }
        (target_end, zone_end) => {
            // Half a port (its peer went elsewhere) is replaced whole; so is
            // a stale link holding the NIC's name with another MAC.
            if let Some(z) = zone_end {
                ops.push(Op::Delete {
                    ns: zns.clone(),
                    link: z.name.clone(),
                });
            }
            let squatter = target_end.or_else(|| target.iter().find(|l| l.name == port.ifname));
            if let Some(t) = squatter {
                ops.push(Op::Delete {
                    ns: tns.clone(),
                    link: t.name.clone(),
                });
            }
            ops.push(Op::AddVeth {
                ns: zns.clone(),
                name: port.zone_port.clone(),
                peer_ns: tns.clone(),
                peer: port.ifname.clone(),
                peer_mac: port.mac.clone(),
                mtu: port.mtu,
            });
            ops.push(Op::SetMaster {
                ns: zns.clone(),
                link: port.zone_port.clone(),
                master: bridge,
            });
            ops.push(Op::Up {
                ns: zns,
                link: port.zone_port.clone(),
            });
            port.ifname.clone()
        }
    };
    for cidr in &port.addresses {
        ops.push(Op::AddrReplace {
            ns: tns.clone(),
            link: ifname.clone(),
            cidr: cidr.clone(),
        });
    }
    if port.up {
        ops.push(Op::Up {
            ns: tns,
            link: ifname,
        });
    }
    ops
}

/// Removes the port of the NIC with `mac`: deleting either end of a veth
/// deletes both, so one operation suffices.
pub fn unplug(
    zone_ns: &str,
    zone: &[Link],
    target_ns: &str,
    target: &[Link],
    mac: &str,
    zone_port: &str,
) -> Vec<Op> {
    if zone.iter().any(|l| l.name == zone_port) {
        return vec![Op::Delete {
            ns: zone_ns.into(),
            link: zone_port.into(),
        }];
    }
    target
        .iter()
        .filter(|l| l.mac.as_deref() == Some(mac) && l.is("veth"))
        .map(|l| Op::Delete {
            ns: target_ns.into(),
            link: l.name.clone(),
        })
        .collect()
}

/// Removes the veths of `target` whose MAC is not in `keep` (NICs unplugged
/// while the manager was away).
pub fn prune(target_ns: &str, target: &[Link], keep: &[String]) -> Vec<Op> {
    target
        .iter()
        .filter(|l| l.is("veth") && !l.mac.as_ref().is_some_and(|m| keep.contains(m)))
        .map(|l| Op::Delete {
            ns: target_ns.into(),
            link: l.name.clone(),
        })
        .collect()
}

/// Deletes every veth of a namespace about to go, so the zone-side ends
/// disappear now rather than when the kernel frees the namespace.
pub fn detach_all(ns: &str, links: &[Link]) -> Vec<Op> {
    links
        .iter()
        .filter(|l| l.is("veth"))
        .map(|l| Op::Delete {
            ns: ns.into(),
            link: l.name.clone(),
        })
        .collect()
}

/// Removes bridges left without ports (their VXLAN device does not count).
pub fn collect_bridges(zone_ns: &str, zone: &[Link]) -> Vec<Op> {
    let mut ops = Vec::new();
    for bridge in zone.iter().filter(|l| l.is("bridge")) {
        let ports: Vec<&Link> = zone
            .iter()
            .filter(|l| l.master.as_deref() == Some(bridge.name.as_str()))
            .collect();
        if ports.iter().any(|p| !p.is("vxlan")) {
            continue;
        }
        for p in ports {
            ops.push(Op::Delete {
                ns: zone_ns.into(),
                link: p.name.clone(),
            });
        }
        ops.push(Op::Delete {
            ns: zone_ns.into(),
            link: bridge.name.clone(),
        });
    }
    ops
}

/// Parses `ip -j -d link show`.
pub fn parse_links(json: &str) -> Result<Vec<Link>, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("ip -j link show: {e}: {json}"))?;
    let items = value
        .as_array()
        .ok_or_else(|| format!("ip -j link show: not a list: {json}"))?;
    let text = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
    Ok(items
        .iter()
        .filter_map(|l| {
            Some(Link {
                name: text(l, "ifname")?,
                mac: text(l, "address")
                    .filter(|a| a.len() == 17)
                    .map(|a| a.to_ascii_lowercase()),
                master: text(l, "master"),
                kind: l.get("linkinfo").and_then(|i| text(i, "info_kind")),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, mac: Option<&str>, master: Option<&str>, kind: Option<&str>) -> Link {
        Link {
            name: name.into(),
            mac: mac.map(String::from),
            master: master.map(String::from),
            kind: kind.map(String::from),
        }
    }

    fn lines(ops: &[Op]) -> Vec<String> {
        ops.iter().map(|o| o.to_string()).collect()
    }

    fn router_port(segment: Segment) -> Port {
        Port {
            zone_ns: "z".into(),
            zone_port: "v020000000102".into(),
            segment,
            target_ns: "r".into(),
            ifname: "eth2".into(),
            mac: Some("02:00:00:00:01:02".into()),
            mtu: 0,
            addresses: vec![],
            up: false,
        }
    }

    #[test]
    fn first_port_of_a_vxlan_segment_creates_bridge_vxlan_and_veth() {
        let ops = plug(&[], &[], &router_port(Segment::Vxlan(5000)));
        assert_eq!(
            lines(&ops),
            [
                "ip -n z link add brx5000 type bridge stp_state 0",
                "ip -n z link set dev brx5000 up",
                "ip -n z link add vx5000 type vxlan id 5000 dstport 4789 local 127.0.0.1 nolearning",
                "ip -n z link set dev vx5000 master brx5000",
                "ip -n z link set dev vx5000 up",
                "ip -n z link add v020000000102 type veth peer name eth2 address 02:00:00:00:01:02 netns r",
                "ip -n z link set dev v020000000102 master brx5000",
                "ip -n z link set dev v020000000102 up",
            ]
        );
    }

    #[test]
    fn plugging_a_plugged_nic_again_changes_nothing() {
        let zone = [
            link("brv100", None, None, Some("bridge")),
            link("v020000000102", None, Some("brv100"), Some("veth")),
        ];
        let target = [link("eth2", Some("02:00:00:00:01:02"), None, Some("veth"))];
        assert!(plug(&zone, &target, &router_port(Segment::Vlan(100))).is_empty());
    }

    #[test]
    fn a_plugged_nic_moves_to_its_new_bridge_and_a_stale_name_is_replaced() {
        let zone = [
            link("brv100", None, None, Some("bridge")),
            link("brv200", None, None, Some("bridge")),
            link("v020000000102", None, Some("brv100"), Some("veth")),
        ];
        let target = [link("eth2", Some("02:00:00:00:01:02"), None, Some("veth"))];
        assert_eq!(
            lines(&plug(&zone, &target, &router_port(Segment::Vlan(200)))),
            [
                "ip -n z link set dev v020000000102 master brv200",
                "ip -n z link set dev v020000000102 up",
            ]
        );
        let squatter = [link("eth2", Some("02:00:00:00:09:09"), None, Some("veth"))];
        let ops = lines(&plug(
            &zone[..2],
            &squatter,
            &router_port(Segment::Vlan(200)),
        ));
        assert_eq!(ops[0], "ip -n r link del dev eth2");
        assert!(ops[1].contains("link add v020000000102 type veth peer name eth2"));
    }

    #[test]
    fn an_upstream_port_gets_its_addresses_and_comes_up() {
        let port = Port {
            zone_ns: "z".into(),
            zone_port: "up-pub".into(),
            segment: Segment::Public,
            target_ns: "u".into(),
            ifname: "eth-pub".into(),
            mac: None,
            mtu: 1400,
            addresses: vec!["203.0.113.1/24".into()],
            up: true,
        };
        assert_eq!(
            lines(&plug(&[], &[], &port))[2..],
            [
                "ip -n z link add up-pub mtu 1400 type veth peer name eth-pub mtu 1400 netns u",
                "ip -n z link set dev up-pub master brpub",
                "ip -n z link set dev up-pub up",
                "ip -n u addr replace 203.0.113.1/24 dev eth-pub",
                "ip -n u link set dev eth-pub up",
            ]
        );
        // A second public range only adds its gateway address.
        let zone = [
            link("brpub", None, None, Some("bridge")),
            link("up-pub", None, Some("brpub"), Some("veth")),
        ];
        let target = [link(
            "eth-pub",
            Some("aa:bb:cc:dd:ee:ff"),
            None,
            Some("veth"),
        )];
        let mut second = port.clone();
        second.addresses = vec!["198.51.100.1/24".into()];
        assert_eq!(
            lines(&plug(&zone, &target, &second)),
            [
                "ip -n u addr replace 198.51.100.1/24 dev eth-pub",
                "ip -n u link set dev eth-pub up",
            ]
        );
    }

    #[test]
    fn unplug_deletes_one_end_and_empty_bridges_go_with_their_vxlan_device() {
        let zone = [
            link("brx7", None, None, Some("bridge")),
            link("vx7", None, Some("brx7"), Some("vxlan")),
            link("brv100", None, None, Some("bridge")),
            link("v020000000102", None, Some("brv100"), Some("veth")),
            link("brpub", None, None, Some("bridge")),
            link("up-pub", None, Some("brpub"), Some("veth")),
        ];
        assert_eq!(
            lines(&unplug(
                "z",
                &zone,
                "r",
                &[],
                "02:00:00:00:01:02",
                "v020000000102"
            )),
            ["ip -n z link del dev v020000000102"]
        );
        assert_eq!(
            lines(&collect_bridges("z", &zone)),
            ["ip -n z link del dev vx7", "ip -n z link del dev brx7"]
        );
        // Only the target end left (zone end renamed by hand): found by MAC.
        let target = [link("eth2", Some("02:00:00:00:01:02"), None, Some("veth"))];
        assert_eq!(
            lines(&unplug(
                "z",
                &[],
                "r",
                &target,
                "02:00:00:00:01:02",
                "v020000000102"
            )),
            ["ip -n r link del dev eth2"]
        );
    }

    #[test]
    fn prune_keeps_the_nics_of_the_view_and_loopback() {
        let target = [
            link("lo", Some("00:00:00:00:00:00"), None, None),
            link("eth1", Some("02:00:00:00:00:01"), None, Some("veth")),
            link("eth5", Some("02:00:00:00:00:05"), None, Some("veth")),
        ];
        assert_eq!(
            lines(&prune("r", &target, &["02:00:00:00:00:01".into()])),
            ["ip -n r link del dev eth5"]
        );
    }

    #[test]
    fn ip_json_is_parsed_with_kind_master_and_lower_case_mac() {
        let json = r#"[{"ifindex":1,"ifname":"lo","address":"00:00:00:00:00:00"},
            {"ifindex":3,"ifname":"v1","address":"02:AA:00:00:00:01","master":"br0",
             "linkinfo":{"info_kind":"veth"}},
            {"ifindex":4,"ifname":"br0","linkinfo":{"info_kind":"bridge"}}]"#;
        let links = parse_links(json).unwrap();
        assert_eq!(
            links[1],
            link("v1", Some("02:aa:00:00:00:01"), Some("br0"), Some("veth"))
        );
        assert_eq!(links[2].kind.as_deref(), Some("bridge"));
        assert!(parse_links("nope").is_err());
    }
}
