//! Plans of link operations: pure functions from what a namespace holds (as
//! `ip -j -d link show` and `bridge -j fdb show` report it) to the ordered
//! `ip` / `bridge` operations that plug or unplug a port, keep the zone's
//! bridges, join a zone to the fabric between hosts and keep a VXLAN
//! segment's flood list. [`super::ip`] executes them.

use std::fmt;
use std::net::Ipv4Addr;

use super::names::{self, Segment};

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
    /// The local address a VXLAN device binds to.
    pub vxlan_local: Option<String>,
}

impl Link {
    fn is(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }
}

/// The bytes VXLAN adds to every frame on an IPv4 underlay: outer IPv4 (20),
/// UDP (8), VXLAN (8) and the inner Ethernet header (14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// The MTU of a VXLAN segment over an underlay of `underlay_mtu`.
pub fn vxlan_mtu(underlay_mtu: u32) -> u32 {
    underlay_mtu.saturating_sub(VXLAN_OVERHEAD)
}

/// The MTU of a port: what its NIC asks for (0: nothing), never above the
/// segment's (0: the segment has no limit of its own).
pub fn port_mtu(requested: u32, segment: u32) -> u32 {
    match (requested, segment) {
        (0, s) => s,
        (r, 0) => r,
        (r, s) => r.min(s),
    }
}

/// A host's VXLAN tunnel end point: where its VXLAN devices bind and the
/// MTU of its VXLAN segments. Without one (a single host), VXLAN devices
/// bind to the zone's loopback and flood nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vtep {
    /// The host's underlay address.
    pub local: Ipv4Addr,
    /// The segments' MTU: the underlay's minus [`VXLAN_OVERHEAD`].
    pub mtu: u32,
}

/// The all-zero MAC of a VXLAN device's default FDB entries: frames for
/// unknown, broadcast and multicast destinations go to each such entry's
/// `dst` (head-end replication).
pub const FLOOD_MAC: &str = "00:00:00:00:00:00";

/// One entry of a VXLAN device's forwarding database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: String,
    /// The remote VTEP, for the device's own entries.
    pub dst: Option<String>,
    /// Set on the bridge's entries (learned MACs), which are not ours to keep.
    pub master: Option<String>,
}

/// One `ip` operation inside one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A bridge; `mtu` 0 leaves the default.
    AddBridge {
        ns: String,
        bridge: String,
        mtu: u32,
    },
    /// A VXLAN device bound to `local`, the host's underlay address, or,
    /// without one, to the zone's loopback: a single host needs no underlay,
    /// and with `nolearning` and no FDB entries it floods nowhere. The flood
    /// list ([`Op::FdbAppend`]) joins other hosts' VTEPs; `nolearning`
    /// because the manager, not the data plane, knows where each VTEP is
    /// (the bridge above still learns the VMs' MACs).
    AddVxlan {
        ns: String,
        device: String,
        vni: u32,
        local: Option<Ipv4Addr>,
        mtu: u32,
    },
    /// `bridge fdb append 00:00:00:00:00:00 dev <device> dst <dst>`: one
    /// more VTEP in the segment's flood list.
    FdbAppend {
        ns: String,
        device: String,
        dst: String,
    },
    /// Removes one VTEP from the flood list.
    FdbDel {
        ns: String,
        device: String,
        dst: String,
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
    /// The program that runs the operation: `ip`, or `bridge` for FDB entries.
    pub fn program(&self) -> &'static str {
        match self {
            Op::FdbAppend { .. } | Op::FdbDel { .. } => "bridge",
            _ => "ip",
        }
    }

    /// The program's arguments (without its name).
    pub fn args(&self) -> Vec<String> {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        match self {
            Op::AddBridge { ns, bridge, mtu } => {
                let mut a = s(&["-n", ns, "link", "add", bridge]);
                if *mtu != 0 {
                    a.extend(s(&["mtu", &mtu.to_string()]));
                }
                // STP off (the default): ports forward at once, no 30 s of
                // listening/learning before a new NIC passes traffic.
                a.extend(s(&["type", "bridge", "stp_state", "0"]));
                a
            }
            Op::AddVxlan {
                ns,
                device,
                vni,
                local,
                mtu,
            } => {
                let mut a = s(&["-n", ns, "link", "add", device]);
                if *mtu != 0 {
                    a.extend(s(&["mtu", &mtu.to_string()]));
                }
                let local = local.map_or("127.0.0.1".to_string(), |l| l.to_string());
                a.extend(s(&[
                    "type",
                    "vxlan",
                    "id",
                    &vni.to_string(),
                    "dstport",
                    "4789",
                    "local",
                    &local,
                    "nolearning",
                ]));
                a
            }
            Op::FdbAppend { ns, device, dst } => s(&[
                "-n", ns, "fdb", "append", FLOOD_MAC, "dev", device, "dst", dst,
            ]),
            Op::FdbDel { ns, device, dst } => {
                s(&["-n", ns, "fdb", "del", FLOOD_MAC, "dev", device, "dst", dst])
            }
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
        write!(f, "{} {}", self.program(), self.args().join(" "))
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
    /// The host's VTEP, for VXLAN segments that span hosts.
    pub vtep: Option<Vtep>,
    /// The zone end stays down and outside the segment's bridge: the
    /// target end exists (configurable) but reaches no one (a router in
    /// standby during its move between hosts).
    pub standby: bool,
}

/// The MTU of `segment` on a host with `vtep`: a VXLAN segment over an
/// underlay carries the underlay's MTU minus the encapsulation; every other
/// segment (0) keeps the default.
pub fn segment_mtu(segment: Segment, vtep: Option<Vtep>) -> u32 {
    match (segment, vtep) {
        (Segment::Vxlan(_), Some(v)) => v.mtu,
        _ => 0,
    }
}

/// Creates the segment's bridge (and VXLAN device) when missing.
pub fn ensure_segment(
    zone_ns: &str,
    zone: &[Link],
    segment: Segment,
    vtep: Option<Vtep>,
) -> Vec<Op> {
    let mut ops = Vec::new();
    let ns = zone_ns.to_string();
    let bridge = segment.bridge();
    let mtu = segment_mtu(segment, vtep);
    if !zone.iter().any(|l| l.name == bridge) {
        ops.push(Op::AddBridge {
            ns: ns.clone(),
            bridge: bridge.clone(),
            mtu,
        });
        ops.push(Op::Up {
            ns: ns.clone(),
            link: bridge.clone(),
        });
    }
    if let Some((device, vni)) = segment.vxlan_device() {
        let mut existing = zone.iter().find(|l| l.name == device);
        // A device bound elsewhere (the host agent started again with
        // another underlay, or with one for the first time) is replaced:
        // the kernel cannot change a VXLAN device's local address. Its
        // flood list goes with it until the manager sends it again.
        let local = vtep.map_or_else(|| "127.0.0.1".to_string(), |v| v.local.to_string());
        if let Some(old) = existing
            && old.vxlan_local.as_deref().is_some_and(|l| l != local)
        {
            ops.push(Op::Delete {
                ns: ns.clone(),
                link: device.clone(),
            });
            existing = None;
        }
        if existing.is_none() {
            ops.push(Op::AddVxlan {
                ns: ns.clone(),
                device: device.clone(),
                vni,
                local: vtep.map(|v| v.local),
                mtu,
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
    let mut ops = ensure_segment(&port.zone_ns, zone, port.segment, port.vtep);
    let mtu = port_mtu(port.mtu, segment_mtu(port.segment, port.vtep));
    let bridge = port.segment.bridge();
    let zone_end = zone.iter().find(|l| l.name == port.zone_port);
    let target_end = target.iter().find(|l| match &port.mac {
        Some(mac) => l.mac.as_deref() == Some(mac.as_str()) && l.is("veth"),
        None => l.name == port.ifname,
    });
    let (zns, tns) = (port.zone_ns.clone(), port.target_ns.clone());
    let ifname = match (target_end, zone_end) {
        (Some(t), Some(z)) => {
            if !port.standby && z.master.as_deref() != Some(bridge.as_str()) {
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
                mtu,
            });
            if !port.standby {
                ops.push(Op::SetMaster {
                    ns: zns.clone(),
                    link: port.zone_port.clone(),
                    master: bridge,
                });
                ops.push(Op::Up {
                    ns: zns,
                    link: port.zone_port.clone(),
                });
            }
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
        // A segment's VXLAN device and its uplink onto the fabric are not
        // members: a bridge left with only those goes, and they with it.
        if ports
            .iter()
            .any(|p| !p.is("vxlan") && !names::is_uplink(&p.name))
        {
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

/// A veth joining a zone to the fabric between hosts: the underlay link
/// (an address, no bridge in the zone) or a spanning segment's uplink (the
/// zone's bridge of the segment to the fabric's bridge of the same segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    /// The namespace holding the fabric's bridges (`--underlay-netns`).
    pub fabric_ns: String,
    pub fabric_bridge: String,
    /// The fabric end's name, unique among every host's ports there.
    pub fabric_port: String,
    pub zone_ns: String,
    pub zone_end: String,
    /// The zone's bridge the zone end joins (None for the underlay link).
    pub zone_bridge: Option<String>,
    /// The zone end's address (the underlay address).
    pub address: Option<String>,
    /// 0 leaves the default.
    pub mtu: u32,
}

/// Joins a zone to the fabric: creates the fabric's bridge when missing
/// (in the lab the fabric is a namespace the host agents share; each adds
/// the segments it needs), then the veth, or puts an existing one back on
/// its bridges. Joining twice is a no-op.
pub fn uplink(fabric: &[Link], zone: &[Link], u: &Uplink) -> Vec<Op> {
    let mut ops = Vec::new();
    if !fabric.iter().any(|l| l.name == u.fabric_bridge) {
        ops.push(Op::AddBridge {
            ns: u.fabric_ns.clone(),
            bridge: u.fabric_bridge.clone(),
            mtu: 0,
        });
        ops.push(Op::Up {
            ns: u.fabric_ns.clone(),
            link: u.fabric_bridge.clone(),
        });
    }
    let fabric_end = fabric.iter().find(|l| l.name == u.fabric_port);
    let zone_end = zone.iter().find(|l| l.name == u.zone_end);
    match (fabric_end, zone_end) {
        (Some(_), Some(_)) => {}
        (fabric_end, zone_end) => {
            // Half a pair (the other end's namespace went) is replaced whole.
            if fabric_end.is_some() {
                ops.push(Op::Delete {
                    ns: u.fabric_ns.clone(),
                    link: u.fabric_port.clone(),
                });
            }
            if zone_end.is_some() {
                ops.push(Op::Delete {
                    ns: u.zone_ns.clone(),
                    link: u.zone_end.clone(),
                });
            }
            ops.push(Op::AddVeth {
                ns: u.fabric_ns.clone(),
                name: u.fabric_port.clone(),
                peer_ns: u.zone_ns.clone(),
                peer: u.zone_end.clone(),
                peer_mac: None,
                mtu: u.mtu,
            });
        }
    }
    let fresh = fabric_end.is_none() || zone_end.is_none();
    if fresh || fabric_end.and_then(|l| l.master.as_deref()) != Some(u.fabric_bridge.as_str()) {
        ops.push(Op::SetMaster {
            ns: u.fabric_ns.clone(),
            link: u.fabric_port.clone(),
            master: u.fabric_bridge.clone(),
        });
        ops.push(Op::Up {
            ns: u.fabric_ns.clone(),
            link: u.fabric_port.clone(),
        });
    }
    if let Some(bridge) = &u.zone_bridge
        && (fresh || zone_end.and_then(|l| l.master.as_deref()) != Some(bridge.as_str()))
    {
        ops.push(Op::SetMaster {
            ns: u.zone_ns.clone(),
            link: u.zone_end.clone(),
            master: bridge.clone(),
        });
    }
    if let Some(cidr) = &u.address {
        ops.push(Op::AddrReplace {
            ns: u.zone_ns.clone(),
            link: u.zone_end.clone(),
            cidr: cidr.clone(),
        });
    }
    if fresh || u.address.is_some() {
        ops.push(Op::Up {
            ns: u.zone_ns.clone(),
            link: u.zone_end.clone(),
        });
    }
    ops
}

/// Makes the flood list of `device` exactly `wanted`: appends the VTEPs
/// missing from its all-zero entries and deletes the others. Entries for
/// other MACs (the bridge's learned ones) are left alone.
pub fn flood_list(ns: &str, device: &str, current: &[FdbEntry], wanted: &[Ipv4Addr]) -> Vec<Op> {
    let present: Vec<&str> = current
        .iter()
        .filter(|e| e.mac == FLOOD_MAC && e.master.is_none())
        .filter_map(|e| e.dst.as_deref())
        .collect();
    let wanted: Vec<String> = {
        let mut w: Vec<String> = wanted.iter().map(Ipv4Addr::to_string).collect();
        w.sort();
        w.dedup();
        w
    };
    let mut ops: Vec<Op> = present
        .iter()
        .filter(|dst| !wanted.iter().any(|w| w == *dst))
        .map(|dst| Op::FdbDel {
            ns: ns.into(),
            device: device.into(),
            dst: dst.to_string(),
        })
        .collect();
    ops.extend(
        wanted
            .iter()
            .filter(|w| !present.contains(&w.as_str()))
            .map(|dst| Op::FdbAppend {
                ns: ns.into(),
                device: device.into(),
                dst: dst.clone(),
            }),
    );
    ops
}

/// The flood list of a VXLAN device: the `dst` of its all-zero entries.
pub fn flood_targets(entries: &[FdbEntry]) -> Vec<String> {
    let mut out: Vec<String> = entries
        .iter()
        .filter(|e| e.mac == FLOOD_MAC && e.master.is_none())
        .filter_map(|e| e.dst.clone())
        .collect();
    out.sort();
    out
}

/// Parses `bridge -j fdb show`.
pub fn parse_fdb(json: &str) -> Result<Vec<FdbEntry>, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("bridge -j fdb show: {e}: {json}"))?;
    let items = value
        .as_array()
        .ok_or_else(|| format!("bridge -j fdb show: not a list: {json}"))?;
    let text = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
    Ok(items
        .iter()
        .filter_map(|e| {
            Some(FdbEntry {
                mac: text(e, "mac")?.to_ascii_lowercase(),
                dst: text(e, "dst"),
                master: text(e, "master"),
            })
        })
        .collect())
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
                vxlan_local: l
                    .get("linkinfo")
                    .and_then(|i| i.get("info_data"))
                    .and_then(|d| text(d, "local")),
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
            vxlan_local: None,
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
            vtep: None,
            standby: false,
        }
    }

    const VTEP: Vtep = Vtep {
        local: Ipv4Addr::new(10, 250, 0, 1),
        mtu: 1450,
    };

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
    fn a_standby_port_stays_off_its_bridge_until_plugged_again_without_standby() {
        let mut port = router_port(Segment::Vxlan(5001));
        port.standby = true;
        let ops = lines(&plug(&[], &[], &port));
        assert!(ops.iter().any(|o| o.contains("type veth peer name eth2")));
        assert!(
            !ops.iter()
                .any(|o| o.contains("v020000000102 master") || o.ends_with("dev v020000000102 up")),
            "{ops:?}"
        );
        // Both ends now exist; the zone end on no bridge.
        let bridge = Segment::Vxlan(5001).bridge();
        let zone = [
            link(&bridge, None, None, Some("bridge")),
            link("vx5001", None, Some(&bridge), Some("vxlan")),
            link(
                "v020000000102",
                Some("02:00:00:00:01:02"),
                None,
                Some("veth"),
            ),
        ];
        let target = [link("eth2", Some("02:00:00:00:01:02"), None, Some("veth"))];
        assert!(lines(&plug(&zone, &target, &port)).is_empty());
        port.standby = false;
        assert_eq!(
            lines(&plug(&zone, &target, &port)),
            [
                format!("ip -n z link set dev v020000000102 master {bridge}"),
                "ip -n z link set dev v020000000102 up".to_string(),
            ]
        );
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
            vtep: None,
            standby: false,
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
    fn with_an_underlay_a_vxlan_segment_binds_the_host_address_and_carries_its_mtu() {
        let mut port = router_port(Segment::Vxlan(5000));
        port.vtep = Some(VTEP);
        assert_eq!(
            lines(&plug(&[], &[], &port)),
            [
                "ip -n z link add brx5000 mtu 1450 type bridge stp_state 0",
                "ip -n z link set dev brx5000 up",
                "ip -n z link add vx5000 mtu 1450 type vxlan id 5000 dstport 4789 local 10.250.0.1 nolearning",
                "ip -n z link set dev vx5000 master brx5000",
                "ip -n z link set dev vx5000 up",
                "ip -n z link add v020000000102 mtu 1450 type veth peer name eth2 address 02:00:00:00:01:02 mtu 1450 netns r",
                "ip -n z link set dev v020000000102 master brx5000",
                "ip -n z link set dev v020000000102 up",
            ]
        );
        // A NIC asking for less keeps it; asking for more gets the segment's.
        port.mtu = 1400;
        assert!(lines(&plug(&[], &[], &port))[5].contains(" mtu 1400 "));
        port.mtu = 9000;
        assert!(lines(&plug(&[], &[], &port))[5].contains(" mtu 1450 "));
        // A device left bound to the loopback by a run without underlay is
        // replaced; one on the right address stays.
        let mut loopback = link("vx5000", None, Some("brx5000"), Some("vxlan"));
        loopback.vxlan_local = Some("127.0.0.1".into());
        let zone = [
            link("brx5000", None, None, Some("bridge")),
            loopback.clone(),
        ];
        assert_eq!(
            lines(&ensure_segment(
                "z",
                &zone,
                Segment::Vxlan(5000),
                Some(VTEP)
            ))[..2],
            [
                "ip -n z link del dev vx5000",
                "ip -n z link add vx5000 mtu 1450 type vxlan id 5000 dstport 4789 local 10.250.0.1 nolearning",
            ]
        );
        assert!(ensure_segment("z", &zone, Segment::Vxlan(5000), None).is_empty());
        // VLAN segments and hosts without an underlay keep the default.
        let mut vlan = router_port(Segment::Vlan(100));
        vlan.vtep = Some(VTEP);
        assert!(
            !lines(&plug(&[], &[], &vlan))
                .iter()
                .any(|l| l.contains("mtu"))
        );
    }

    #[test]
    fn mtu_planning_subtracts_the_vxlan_overhead_and_keeps_the_smaller() {
        assert_eq!(vxlan_mtu(1500), 1450);
        assert_eq!(vxlan_mtu(9000), 8950);
        assert_eq!(vxlan_mtu(20), 0);
        assert_eq!(port_mtu(0, 1450), 1450);
        assert_eq!(port_mtu(1400, 1450), 1400);
        assert_eq!(port_mtu(1500, 1450), 1450);
        assert_eq!(port_mtu(1500, 0), 1500);
        assert_eq!(port_mtu(0, 0), 0);
        assert_eq!(segment_mtu(Segment::Vxlan(1), Some(VTEP)), 1450);
        assert_eq!(segment_mtu(Segment::Vxlan(1), None), 0);
        assert_eq!(segment_mtu(Segment::Public, Some(VTEP)), 0);
    }

    fn fdb(mac: &str, dst: Option<&str>, master: Option<&str>) -> FdbEntry {
        FdbEntry {
            mac: mac.into(),
            dst: dst.map(String::from),
            master: master.map(String::from),
        }
    }

    #[test]
    fn a_flood_list_adds_the_missing_vteps_and_deletes_the_extras_only() {
        let current = [
            fdb(FLOOD_MAC, Some("10.250.0.2"), None),
            fdb(FLOOD_MAC, Some("10.250.0.9"), None),
            // Learned by the bridge: not the flood list's business.
            fdb("02:00:00:00:01:01", None, Some("brx5000")),
            fdb("02:00:00:00:01:02", Some("10.250.0.7"), None),
        ];
        let wanted: [Ipv4Addr; 3] = [
            "10.250.0.3".parse().unwrap(),
            "10.250.0.2".parse().unwrap(),
            "10.250.0.3".parse().unwrap(),
        ];
        assert_eq!(
            lines(&flood_list("z", "vx5000", &current, &wanted)),
            [
                "bridge -n z fdb del 00:00:00:00:00:00 dev vx5000 dst 10.250.0.9",
                "bridge -n z fdb append 00:00:00:00:00:00 dev vx5000 dst 10.250.0.3",
            ]
        );
        assert!(flood_list("z", "vx5000", &current[..1], &wanted[1..2]).is_empty());
        assert_eq!(
            lines(&flood_list("z", "vx5000", &current, &[])),
            [
                "bridge -n z fdb del 00:00:00:00:00:00 dev vx5000 dst 10.250.0.2",
                "bridge -n z fdb del 00:00:00:00:00:00 dev vx5000 dst 10.250.0.9",
            ]
        );
        assert_eq!(flood_targets(&current), ["10.250.0.2", "10.250.0.9"]);
    }

    #[test]
    fn bridge_fdb_json_is_parsed_with_dst_and_master() {
        let json = r#"[{"mac":"00:00:00:00:00:00","ifname":"vx5000","dst":"10.250.0.2",
            "flags":[],"state":"permanent"},
            {"mac":"02:AA:00:00:00:01","ifname":"vx5000","master":"brx5000","state":""}]"#;
        let entries = parse_fdb(json).unwrap();
        assert_eq!(entries[0], fdb(FLOOD_MAC, Some("10.250.0.2"), None));
        assert_eq!(entries[1], fdb("02:aa:00:00:00:01", None, Some("brx5000")));
        assert!(parse_fdb("{}").is_err());
    }

    fn vlan_uplink() -> Uplink {
        Uplink {
            fabric_ns: "f".into(),
            fabric_bridge: "brv100".into(),
            fabric_port: "h0a0b0cv100".into(),
            zone_ns: "z".into(),
            zone_end: "fab-v100".into(),
            zone_bridge: Some("brv100".into()),
            address: None,
            mtu: 0,
        }
    }

    #[test]
    fn a_spanning_segment_gets_one_uplink_onto_the_fabric_bridge_once() {
        let u = vlan_uplink();
        assert_eq!(
            lines(&uplink(&[], &[], &u)),
            [
                "ip -n f link add brv100 type bridge stp_state 0",
                "ip -n f link set dev brv100 up",
                "ip -n f link add h0a0b0cv100 type veth peer name fab-v100 netns z",
                "ip -n f link set dev h0a0b0cv100 master brv100",
                "ip -n f link set dev h0a0b0cv100 up",
                "ip -n z link set dev fab-v100 master brv100",
                "ip -n z link set dev fab-v100 up",
            ]
        );
        let fabric = [
            link("brv100", None, None, Some("bridge")),
            link("h0a0b0cv100", None, Some("brv100"), Some("veth")),
        ];
        let zone = [
            link("brv100", None, None, Some("bridge")),
            link("fab-v100", None, Some("brv100"), Some("veth")),
        ];
        assert!(uplink(&fabric, &zone, &u).is_empty());
        // The zone end alone (the fabric namespace was rebuilt): replaced.
        let ops = lines(&uplink(&fabric[..1], &zone, &u));
        assert_eq!(ops[0], "ip -n z link del dev fab-v100");
        assert!(ops[1].starts_with("ip -n f link add h0a0b0cv100 type veth"));
        // An uplink is not a member: a bridge left with it alone goes.
        assert_eq!(
            lines(&collect_bridges("z", &zone)),
            [
                "ip -n z link del dev fab-v100",
                "ip -n z link del dev brv100"
            ]
        );
    }

    #[test]
    fn the_underlay_link_carries_the_host_address_and_joins_no_zone_bridge() {
        let u = Uplink {
            fabric_bridge: "underlay".into(),
            fabric_port: "h0a0b0cul".into(),
            zone_end: "ul0".into(),
            zone_bridge: None,
            address: Some("10.250.0.1/24".into()),
            mtu: 1500,
            ..vlan_uplink()
        };
        let fabric = [link("underlay", None, None, Some("bridge"))];
        assert_eq!(
            lines(&uplink(&fabric, &[], &u)),
            [
                "ip -n f link add h0a0b0cul mtu 1500 type veth peer name ul0 mtu 1500 netns z",
                "ip -n f link set dev h0a0b0cul master underlay",
                "ip -n f link set dev h0a0b0cul up",
                "ip -n z addr replace 10.250.0.1/24 dev ul0",
                "ip -n z link set dev ul0 up",
            ]
        );
    }

    #[test]
    fn ip_json_is_parsed_with_kind_master_and_lower_case_mac() {
        let vx = r#"[{"ifname":"vx7","linkinfo":{"info_kind":"vxlan",
            "info_data":{"id":7,"local":"10.250.0.1","port":4789}}}]"#;
        assert_eq!(
            parse_links(vx).unwrap()[0].vxlan_local.as_deref(),
            Some("10.250.0.1")
        );
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
