//! Names of everything the driver creates: namespaces (any length), links
//! (at most IFNAMSIZ - 1 = 15 bytes) and the segment a NIC is plugged into.

use std::fmt;

use uuid::Uuid;

use super::error::{NetnsError, Result};

/// The longest link name the kernel accepts (IFNAMSIZ minus the NUL).
pub const IFNAME_MAX: usize = 15;

/// The longest router or VM name the driver accepts (it becomes a namespace
/// name, a directory name and part of a socket path).
const OBJECT_NAME_MAX: usize = 64;

/// The highest VXLAN network identifier (24 bits).
const VNI_MAX: u32 = (1 << 24) - 1;

/// An L2 segment of a zone: one bridge in the zone namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// A VLAN, emulated as its own bridge (this kernel has no 802.1Q links).
    Vlan(u16),
    /// A VXLAN segment: a bridge with a real VXLAN device as a port.
    Vxlan(u32),
    /// The untagged public network.
    Public,
    /// The link-local control network.
    Control,
}

impl Segment {
    /// Parses a broadcast URI: `vlan://N`, `vxlan://N`, `untagged` or
    /// `vlan://untagged` (CloudStack's spelling for the untagged public
    /// network). None is the control network.
    pub fn from_uri(uri: Option<&str>) -> Result<Segment> {
        let Some(uri) = uri else {
            return Ok(Segment::Control);
        };
        let bad = || NetnsError::Invalid(format!("unsupported broadcast URI {uri:?}"));
        if uri == "untagged" || uri == "vlan://untagged" {
            return Ok(Segment::Public);
        }
        if let Some(n) = uri.strip_prefix("vlan://") {
            let id: u16 = n.parse().map_err(|_| bad())?;
            return if (1..=4094).contains(&id) {
                Ok(Segment::Vlan(id))
            } else {
                Err(bad())
            };
        }
        if let Some(n) = uri.strip_prefix("vxlan://") {
            let vni: u32 = n.parse().map_err(|_| bad())?;
            return if (1..=VNI_MAX).contains(&vni) {
                Ok(Segment::Vxlan(vni))
            } else {
                Err(bad())
            };
        }
        Err(bad())
    }

    /// A short tag naming the segment in link names: `v100`, `x5000`, `pub`,
    /// `ctl`.
    pub fn tag(self) -> String {
        match self {
            Segment::Vlan(id) => format!("v{id}"),
            Segment::Vxlan(vni) => format!("x{vni}"),
            Segment::Public => "pub".into(),
            Segment::Control => "ctl".into(),
        }
    }

    /// The bridge of the segment in the zone namespace (`brv100`,
    /// `brx5000`, `brpub`, `brctl`).
    pub fn bridge(self) -> String {
        format!("br{}", self.tag())
    }

    /// The VXLAN device attached to the bridge (`vx5000`) and its VNI.
    pub fn vxlan_device(self) -> Option<(String, u32)> {
        match self {
            Segment::Vxlan(vni) => Some((format!("vx{vni}"), vni)),
            _ => None,
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Vlan(id) => write!(f, "vlan://{id}"),
            Segment::Vxlan(vni) => write!(f, "vxlan://{vni}"),
            Segment::Public => f.write_str("untagged"),
            Segment::Control => f.write_str("control"),
        }
    }
}

/// What a namespace with the driver's prefix is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsKind {
    /// The bridges of a zone (`zone-<zone8>`).
    Zone(String),
    /// The upstream ("internet") of a zone (`up-<zone8>`).
    Upstream(String),
    /// An on-premises network behind a private gateway (`op-<zone8>-<tag>`).
    OnPrem(String),
    /// A router or a VM, by its name.
    Guest(String),
}

/// The names of one driver (all share its prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Result<Names> {
        if prefix.is_empty() || !prefix.bytes().all(name_byte) {
            return Err(NetnsError::Invalid(format!(
                "namespace prefix {prefix:?} must be non-empty letters, digits, '.', '_' or '-'"
            )));
        }
        Ok(Names {
            prefix: prefix.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix><router name>`.
    pub fn router_ns(&self, router: &str) -> String {
        format!("{}{router}", self.prefix)
    }

    /// `<prefix><instance name>`.
    pub fn vm_ns(&self, instance: &str) -> String {
        format!("{}{instance}", self.prefix)
    }

    /// `<prefix>zone-<first 8 hex digits of the zone UUID>`.
    pub fn zone_ns(&self, zone: &Uuid) -> String {
        format!("{}zone-{}", self.prefix, zone8(zone))
    }

    /// `<prefix>up-<zone8>`.
    pub fn upstream_ns(&self, zone: &Uuid) -> String {
        format!("{}up-{}", self.prefix, zone8(zone))
    }

    /// `<prefix>op-<zone8>-<segment tag>`.
    pub fn onprem_ns(&self, zone: &Uuid, segment: Segment) -> String {
        format!("{}op-{}-{}", self.prefix, zone8(zone), segment.tag())
    }

    /// What a namespace name is, or None when it lacks the prefix.
    pub fn classify(&self, ns: &str) -> Option<NsKind> {
        let rest = ns.strip_prefix(&self.prefix)?;
        let zone_part = |s: &str| s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if let Some(z) = rest.strip_prefix("zone-").filter(|z| zone_part(z)) {
            return Some(NsKind::Zone(z.to_string()));
        }
        if let Some(z) = rest.strip_prefix("up-").filter(|z| zone_part(z)) {
            return Some(NsKind::Upstream(z.to_string()));
        }
        if let Some((z, tag)) = rest.strip_prefix("op-").and_then(|r| r.split_once('-'))
            && zone_part(z)
            && !tag.is_empty()
        {
            return Some(NsKind::OnPrem(z.to_string()));
        }
        Some(NsKind::Guest(rest.to_string()))
    }
}

/// The first 8 hex digits of a zone UUID.
pub fn zone8(zone: &Uuid) -> String {
    zone.simple().to_string()[..8].to_string()
}

fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// Refuses router and VM names that cannot be a namespace, directory and
/// socket path component.
pub fn check_object_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > OBJECT_NAME_MAX
        || name.starts_with('.')
        || !name.bytes().all(name_byte)
    {
        return Err(NetnsError::Invalid(format!(
            "{what} name {name:?} must be 1-{OBJECT_NAME_MAX} letters, digits, '.', '_' or '-' \
             and not start with '.'"
        )));
    }
    Ok(())
}

/// Normalizes a MAC to lower-case `aa:bb:cc:dd:ee:ff`.
pub fn normalize_mac(mac: &str) -> Result<String> {
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(NetnsError::Invalid(format!("bad MAC address {mac:?}")));
    }
    Ok(mac.to_ascii_lowercase())
}

/// The zone-side end of a NIC's veth: `v` and the 12 hex digits of the NIC's
/// MAC. MACs are unique in a zone, so the name is too, and it can be found
/// again from the NIC alone (after a manager restart).
pub fn zone_port(mac: &str) -> Result<String> {
    Ok(format!("v{}", normalize_mac(mac)?.replace(':', "")))
}

/// Whether a zone link is the port of a router's or VM's NIC ([`zone_port`]).
pub fn is_nic_port(link: &str) -> bool {
    link.len() == 13 && link.starts_with('v') && link[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The name of NIC `device_index` inside a router or VM namespace: the name
/// the agent gives it anyway (`eth<N>`), so it never has to rename it.
pub fn nic_ifname(device_index: u32) -> String {
    format!("eth{device_index}")
}

/// The zone-side port of the upstream namespace on a public segment.
pub fn upstream_zone_port(segment: Segment) -> String {
    format!("up-{}", segment.tag())
}

/// The upstream namespace's link on a public segment.
pub fn upstream_link(segment: Segment) -> String {
    format!("eth-{}", segment.tag())
}

/// The zone-side port of an on-premises namespace.
pub fn onprem_zone_port(segment: Segment) -> String {
    format!("op-{}", segment.tag())
}

/// Whether a network namespace of that name exists (`ip netns` names).
pub fn netns_exists(ns: &str) -> bool {
    !ns.is_empty() && !ns.contains('/') && super::ip::exists(ns)
}

/// The zone end of the underlay link: it carries the host's underlay
/// address, which the zone's VXLAN devices bind to.
pub const UNDERLAY_LINK: &str = "ul0";

/// The fabric's bridge of the underlay (in the `--underlay-netns`).
pub const UNDERLAY_BRIDGE: &str = "underlay";

/// The zone end of a spanning segment's uplink onto the fabric.
const UPLINK_PREFIX: &str = "fab-";

/// Whether a segment reaches other hosts through a fabric bridge of its
/// own: VLANs and the public network do (in the lab, where this kernel has
/// no 802.1Q links, a VLAN is its own fabric bridge; a real deployment would
/// trunk it on the physical NIC); VXLAN crosses the underlay as UDP, and
/// the control network is local to each host.
pub fn spans_by_fabric(segment: Segment) -> bool {
    matches!(segment, Segment::Vlan(_) | Segment::Public)
}

/// The zone end of the uplink of `segment`: `fab-v100`, `fab-pub`.
pub fn uplink_zone_end(segment: Segment) -> String {
    format!("{UPLINK_PREFIX}{}", segment.tag())
}

/// Whether a zone link is an uplink onto the fabric ([`uplink_zone_end`]).
pub fn is_uplink(link: &str) -> bool {
    link.starts_with(UPLINK_PREFIX)
}

/// The fabric end of one host's link for one zone: `h` and six hex digits
/// of a hash of the zone namespace's name (every host agent has its own
/// prefix, so the ends of different hosts differ in the shared fabric
/// namespace), then `ul` for the underlay or the segment's tag. 12 bytes at
/// most.
pub fn fabric_port(zone_ns: &str, segment: Option<Segment>) -> String {
    // FNV-1a: stable across runs and builds (a restarted host agent must
    // find its ports again), unlike std's randomly keyed hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for b in zone_ns.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let tail = segment.map_or_else(|| "ul".to_string(), Segment::tag);
    format!("h{:06x}{tail}", hash & 0x00ff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_uris_map_to_segments_and_bridges() {
        let seg = |u| Segment::from_uri(Some(u)).unwrap();
        assert_eq!(seg("vlan://100").bridge(), "brv100");
        assert_eq!(seg("vxlan://5000").bridge(), "brx5000");
        assert_eq!(
            seg("vxlan://5000").vxlan_device(),
            Some(("vx5000".into(), 5000))
        );
        assert_eq!(seg("untagged"), Segment::Public);
        assert_eq!(seg("vlan://untagged").bridge(), "brpub");
        assert_eq!(Segment::from_uri(None).unwrap().bridge(), "brctl");
        for bad in [
            "vlan://0",
            "vlan://4095",
            "vxlan://16777216",
            "lswitch:x",
            "vlan://a",
        ] {
            assert!(Segment::from_uri(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_link_name_fits_ifnamsiz_at_the_extremes() {
        let longest = [
            Segment::from_uri(Some("vxlan://16777215")).unwrap(),
            Segment::Vlan(4094),
            Segment::Public,
            Segment::Control,
        ];
        for s in longest {
            for name in [
                s.bridge(),
                upstream_zone_port(s),
                upstream_link(s),
                onprem_zone_port(s),
            ] {
                assert!(name.len() <= IFNAME_MAX, "{name}");
            }
            if let Some((vx, _)) = s.vxlan_device() {
                assert!(vx.len() <= IFNAME_MAX);
            }
        }
        for segment in [None, Some(Segment::Vlan(4094)), Some(Segment::Public)] {
            let port = fabric_port("a-long-prefix-zone-1a2b3c4d", segment);
            assert!(port.len() <= IFNAME_MAX, "{port}");
            assert!(!is_nic_port(&port));
        }
        assert!(uplink_zone_end(Segment::Vlan(4094)).len() <= IFNAME_MAX);
        assert!(is_uplink("fab-pub") && !is_nic_port("fab-v100") && !is_uplink("v02abcd0011ff"));
        let port = zone_port("02:AB:cd:00:11:ff").unwrap();
        assert_eq!(port, "v02abcd0011ff");
        assert!(is_nic_port(&port) && !is_nic_port("vx5000") && !is_nic_port("up-pub"));
        assert!(port.len() <= IFNAME_MAX);
        assert!(zone_port("02:ab").is_err());
    }

    #[test]
    fn namespaces_carry_the_prefix_and_are_classified_back() {
        let n = Names::new("vpc-").unwrap();
        let zone: Uuid = "1a2b3c4d-0000-4000-8000-000000000000".parse().unwrap();
        assert_eq!(n.router_ns("r-4-VM"), "vpc-r-4-VM");
        assert_eq!(n.vm_ns("i-3-7-VM"), "vpc-i-3-7-VM");
        assert_eq!(n.zone_ns(&zone), "vpc-zone-1a2b3c4d");
        assert_eq!(n.upstream_ns(&zone), "vpc-up-1a2b3c4d");
        assert_eq!(n.onprem_ns(&zone, Segment::Vlan(42)), "vpc-op-1a2b3c4d-v42");
        assert_eq!(
            n.classify("vpc-zone-1a2b3c4d"),
            Some(NsKind::Zone("1a2b3c4d".into()))
        );
        assert_eq!(
            n.classify("vpc-up-1a2b3c4d"),
            Some(NsKind::Upstream("1a2b3c4d".into()))
        );
        assert_eq!(
            n.classify("vpc-op-1a2b3c4d-v42"),
            Some(NsKind::OnPrem("1a2b3c4d".into()))
        );
        assert_eq!(
            n.classify("vpc-r-4-VM"),
            Some(NsKind::Guest("r-4-VM".into()))
        );
        assert_eq!(n.classify("other-r-4-VM"), None);
        assert!(Names::new("").is_err());
        assert!(Names::new("a/b").is_err());
    }

    #[test]
    fn fabric_ports_differ_between_hosts_and_zones_and_are_stable() {
        let a = fabric_port("h1-zone-1a2b3c4d", Some(Segment::Vlan(100)));
        assert_eq!(a, fabric_port("h1-zone-1a2b3c4d", Some(Segment::Vlan(100))));
        assert!(a.ends_with("v100") && a.starts_with('h'), "{a}");
        assert_ne!(a, fabric_port("h2-zone-1a2b3c4d", Some(Segment::Vlan(100))));
        assert_ne!(a, fabric_port("h1-zone-1a2b3c4e", Some(Segment::Vlan(100))));
        assert!(fabric_port("h1-zone-1a2b3c4d", None).ends_with("ul"));
        assert!(spans_by_fabric(Segment::Public) && spans_by_fabric(Segment::Vlan(7)));
        assert!(!spans_by_fabric(Segment::Vxlan(7)) && !spans_by_fabric(Segment::Control));
    }

    #[test]
    fn object_names_that_would_escape_a_path_are_refused() {
        assert!(check_object_name("router", "r-4-VM").is_ok());
        for bad in ["", "..", "a/b", ".hidden", "a b", &"x".repeat(65)] {
            assert!(check_object_name("router", bad).is_err(), "{bad:?}");
        }
    }
}
