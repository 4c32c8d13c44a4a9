//! The driver's views to and from the `vpc.host.v1` messages. Pure: the
//! manager encodes what it loaded from the database; the host agent decodes
//! and checks every field that reaches a namespace name, a command line or a
//! file before anything runs, and names the field that is wrong.
//!
//! Kept whole because each conversion to the protocol sits beside its checked way back; the last
//! 175 lines are their tests.

use std::net::{IpAddr, Ipv4Addr};

use uuid::Uuid;
use vpc_proto::host::v1 as pb;

use crate::driver::netns::names::{self, Segment};
use crate::orchestration::model::{NicRole, RouterNicView, RouterView, VmNicView, VmView};

/// A field the host agent cannot accept; shown as `field: why`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct FieldError {
    /// The field's path in the request (`router.nics[1].mac_address`).
    pub field: String,
    pub why: String,
}

fn bad(field: impl Into<String>, why: impl std::fmt::Display) -> FieldError {
    FieldError {
        field: field.into(),
        why: why.to_string(),
    }
}

/// The longest host name the DHCP client sends (RFC 1035's 253 bytes).
const HOSTNAME_MAX: usize = 253;

fn opt_ip(ip: Option<IpAddr>) -> String {
    ip.map(|i| i.to_string()).unwrap_or_default()
}

fn opt_v4(ip: Option<Ipv4Addr>) -> String {
    ip.map(|i| i.to_string()).unwrap_or_default()
}

/// The message of a router view.
pub fn router_to_proto(view: &RouterView) -> pb::Router {
    pb::Router {
        id: view.id.to_string(),
        name: view.name.clone(),
        zone_id: view.zone_id.to_string(),
        generation: view.generation,
        nics: view.nics.iter().map(router_nic_to_proto).collect(),
    }
}

/// The message of a router NIC.
pub fn router_nic_to_proto(nic: &RouterNicView) -> pb::RouterNic {
    pb::RouterNic {
        device_index: nic.device_index,
        mac_address: nic.mac.clone(),
        role: role_to_proto(nic.role) as i32,
        network_id: nic.network_id.to_string(),
        ip_address: opt_ip(nic.ip),
        prefix_length: u32::from(nic.prefix),
        gateway: opt_ip(nic.gateway),
        mtu: nic.mtu,
        broadcast_uri: nic.broadcast_uri.clone(),
    }
}

/// The message of a VM view.
pub fn vm_to_proto(view: &VmView) -> pb::Vm {
    pb::Vm {
        id: view.id.to_string(),
        hostname: view.hostname.clone(),
        instance_name: view.instance_name.clone(),
        zone_id: view.zone_id.to_string(),
        nics: view
            .nics
            .iter()
            .map(|n| pb::VmNic {
                device_index: n.device_index,
                mac_address: n.mac.clone(),
                network_id: n.network_id.to_string(),
                broadcast_uri: n.broadcast_uri.clone(),
                ip_address: opt_v4(n.ip),
                prefix_length: u32::from(n.prefix),
                gateway: opt_v4(n.gateway),
                default: n.default,
            })
            .collect(),
    }
}

fn role_to_proto(role: NicRole) -> pb::NicRole {
    match role {
        NicRole::Guest => pb::NicRole::Guest,
        NicRole::Public => pb::NicRole::Public,
        NicRole::Private => pb::NicRole::Private,
        NicRole::Control => pb::NicRole::Control,
    }
}

/// A checked `SetFloodList`: the zone, the VXLAN segment's broadcast URI
/// and the remote VTEPs (unicast IPv4 addresses, duplicates dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodList {
    pub zone_id: Uuid,
    pub broadcast_uri: String,
    pub remote_vteps: Vec<Ipv4Addr>,
}

/// The most VTEPs one flood list takes (one per host of a zone).
const FLOOD_LIST_MAX: usize = 1024;

/// Checks a `FloodListRequest`.
pub fn flood_list_from_proto(r: &pb::FloodListRequest) -> Result<FloodList, FieldError> {
    let zone_id = uuid("zone_id", &r.zone_id)?;
    let is_vxlan = matches!(
        crate::driver::netns::Segment::from_uri(Some(&r.broadcast_uri)),
        Ok(crate::driver::netns::Segment::Vxlan(_))
    );
    if !is_vxlan {
        return Err(bad(
            "broadcast_uri",
            format!("{:?} is not a VXLAN segment (vxlan://N)", r.broadcast_uri),
        ));
    }
    if r.remote_vteps.len() > FLOOD_LIST_MAX {
        return Err(bad(
            "remote_vteps",
            format!("more than {FLOOD_LIST_MAX} VTEPs"),
        ));
    }
    let mut remote_vteps = Vec::new();
    for (i, text) in r.remote_vteps.iter().enumerate() {
        let field = format!("remote_vteps[{i}]");
        let vtep = v4(&field, text)?.ok_or_else(|| bad(&field, "empty"))?;
        if vtep.is_unspecified() || vtep.is_loopback() || vtep.is_multicast() || vtep.is_broadcast()
        {
            return Err(bad(&field, format!("{vtep} is not a unicast address")));
        }
        if !remote_vteps.contains(&vtep) {
            remote_vteps.push(vtep);
        }
    }
    Ok(FloodList {
        zone_id,
        broadcast_uri: r.broadcast_uri.clone(),
        remote_vteps,
    })
}

fn uuid(field: &str, text: &str) -> Result<Uuid, FieldError> {
    text.parse()
        .map_err(|_| bad(field, format!("{text:?} is not a UUID")))
}

fn ip(field: &str, text: &str) -> Result<Option<IpAddr>, FieldError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| bad(field, format!("{text:?} is not an IP address")))
}

fn v4(field: &str, text: &str) -> Result<Option<Ipv4Addr>, FieldError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| bad(field, format!("{text:?} is not an IPv4 address")))
}

fn prefix(field: &str, value: u32, max: u32) -> Result<u8, FieldError> {
    u8::try_from(value)
        .ok()
        .filter(|p| u32::from(*p) <= max)
        .ok_or_else(|| bad(field, format!("{value} is not a prefix length (0-{max})")))
}

fn mac(field: &str, text: &str) -> Result<String, FieldError> {
    names::normalize_mac(text).map_err(|e| bad(field, e))
}

fn broadcast_uri(field: &str, uri: &Option<String>) -> Result<Option<String>, FieldError> {
    if let Some(u) = uri {
        Segment::from_uri(Some(u)).map_err(|e| bad(field, e))?;
    }
    Ok(uri.clone())
}

/// The router view of a request, every field checked.
pub fn router_from_proto(
    field: &str,
    router: Option<&pb::Router>,
) -> Result<RouterView, FieldError> {
    let r = router.ok_or_else(|| bad(field, "missing"))?;
    names::check_object_name("router", &r.name).map_err(|e| bad(format!("{field}.name"), e))?;
    let nics = r
        .nics
        .iter()
        .enumerate()
        .map(|(i, n)| router_nic_from_proto(&format!("{field}.nics[{i}]"), Some(n)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RouterView {
        id: uuid(&format!("{field}.id"), &r.id)?,
        name: r.name.clone(),
        zone_id: uuid(&format!("{field}.zone_id"), &r.zone_id)?,
        generation: r.generation,
        nics,
        host: None,
    })
}

/// The router NIC view of a request, every field checked.
pub fn router_nic_from_proto(
    field: &str,
    nic: Option<&pb::RouterNic>,
) -> Result<RouterNicView, FieldError> {
    let n = nic.ok_or_else(|| bad(field, "missing"))?;
    let role = match pb::NicRole::try_from(n.role) {
        Ok(pb::NicRole::Guest) => NicRole::Guest,
        Ok(pb::NicRole::Public) => NicRole::Public,
        Ok(pb::NicRole::Private) => NicRole::Private,
        Ok(pb::NicRole::Control) => NicRole::Control,
        _ => {
            return Err(bad(
                format!("{field}.role"),
                format!("{} is no NIC role", n.role),
            ));
        }
    };
    let address = ip(&format!("{field}.ip_address"), &n.ip_address)?;
    let max = if matches!(address, Some(IpAddr::V6(_))) {
        128
    } else {
        32
    };
    Ok(RouterNicView {
        device_index: n.device_index,
        mac: mac(&format!("{field}.mac_address"), &n.mac_address)?,
        role,
        network_id: uuid(&format!("{field}.network_id"), &n.network_id)?,
        ip: address,
        prefix: prefix(&format!("{field}.prefix_length"), n.prefix_length, max)?,
        gateway: ip(&format!("{field}.gateway"), &n.gateway)?,
        mtu: n.mtu,
        broadcast_uri: broadcast_uri(&format!("{field}.broadcast_uri"), &n.broadcast_uri)?,
    })
}

/// The VM view of a request, every field checked.
pub fn vm_from_proto(field: &str, vm: Option<&pb::Vm>) -> Result<VmView, FieldError> {
    let v = vm.ok_or_else(|| bad(field, "missing"))?;
    names::check_object_name("VM", &v.instance_name)
        .map_err(|e| bad(format!("{field}.instance_name"), e))?;
    // The driver passes a host name to the DHCP client only when it is
    // one; still, nothing that cannot sit in an argument gets that far.
    if v.hostname.len() > HOSTNAME_MAX || v.hostname.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad(
            format!("{field}.hostname"),
            format!("at most {HOSTNAME_MAX} bytes without control characters"),
        ));
    }
    let mut nics = Vec::with_capacity(v.nics.len());
    for (i, n) in v.nics.iter().enumerate() {
        let f = format!("{field}.nics[{i}]");
        nics.push(VmNicView {
            device_index: n.device_index,
            mac: mac(&format!("{f}.mac_address"), &n.mac_address)?,
            network_id: uuid(&format!("{f}.network_id"), &n.network_id)?,
            broadcast_uri: broadcast_uri(&format!("{f}.broadcast_uri"), &n.broadcast_uri)?,
            ip: v4(&format!("{f}.ip_address"), &n.ip_address)?,
            prefix: prefix(&format!("{f}.prefix_length"), n.prefix_length, 32)?,
            gateway: v4(&format!("{f}.gateway"), &n.gateway)?,
            default: n.default,
        });
    }
    Ok(VmView {
        id: uuid(&format!("{field}.id"), &v.id)?,
        hostname: v.hostname.clone(),
        instance_name: v.instance_name.clone(),
        zone_id: uuid(&format!("{field}.zone_id"), &v.zone_id)?,
        nics,
        host: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_list_takes_a_vxlan_segment_and_unicast_vteps_naming_a_bad_field() {
        let request = |uri: &str, vteps: &[&str]| pb::FloodListRequest {
            zone_id: Uuid::from_u128(7).to_string(),
            broadcast_uri: uri.into(),
            remote_vteps: vteps.iter().map(|v| v.to_string()).collect(),
        };
        let ok = flood_list_from_proto(&request(
            "vxlan://5000",
            &["10.250.0.2", "10.250.0.3", "10.250.0.2"],
        ))
        .unwrap();
        assert_eq!(ok.zone_id, Uuid::from_u128(7));
        assert_eq!(
            ok.remote_vteps,
            [Ipv4Addr::new(10, 250, 0, 2), Ipv4Addr::new(10, 250, 0, 3)]
        );
        assert!(
            flood_list_from_proto(&request("vxlan://5000", &[]))
                .unwrap()
                .remote_vteps
                .is_empty()
        );
        for (uri, vteps, field) in [
            ("vlan://100", &["10.250.0.2"][..], "broadcast_uri"),
            ("vxlan://0", &[][..], "broadcast_uri"),
            (
                "vxlan://5000",
                &["10.250.0.2", "nope"][..],
                "remote_vteps[1]",
            ),
            ("vxlan://5000", &["224.0.0.1"][..], "remote_vteps[0]"),
            ("vxlan://5000", &["127.0.0.1"][..], "remote_vteps[0]"),
            ("vxlan://5000", &[""][..], "remote_vteps[0]"),
        ] {
            let e = flood_list_from_proto(&request(uri, vteps)).unwrap_err();
            assert_eq!(e.field, field, "{uri} {vteps:?}: {e}");
        }
        let mut no_zone = request("vxlan://5000", &[]);
        no_zone.zone_id = "x".into();
        assert_eq!(
            flood_list_from_proto(&no_zone).unwrap_err().field,
            "zone_id"
        );
    }

    fn router() -> RouterView {
        RouterView {
            id: Uuid::from_u128(1),
            name: "r-4-VM".into(),
            zone_id: Uuid::from_u128(2),
            generation: 9,
            nics: vec![
                RouterNicView {
                    device_index: 0,
                    mac: "0e:00:a9:fe:00:04".into(),
                    role: NicRole::Control,
                    network_id: Uuid::from_u128(3),
                    ip: Some("169.254.0.4".parse().unwrap()),
                    prefix: 16,
                    gateway: None,
                    mtu: 0,
                    broadcast_uri: None,
                },
                RouterNicView {
                    device_index: 2,
                    mac: "02:00:00:00:01:02".into(),
                    role: NicRole::Guest,
                    network_id: Uuid::from_u128(4),
                    ip: Some("10.1.1.1".parse().unwrap()),
                    prefix: 24,
                    gateway: Some("10.1.1.1".parse().unwrap()),
                    mtu: 1450,
                    broadcast_uri: Some("vxlan://5000".into()),
                },
            ],
            host: None,
        }
    }

    fn vm() -> VmView {
        VmView {
            id: Uuid::from_u128(5),
            hostname: "web-1".into(),
            instance_name: "i-2-5-VM".into(),
            zone_id: Uuid::from_u128(2),
            nics: vec![VmNicView {
                device_index: 0,
                mac: "02:00:00:00:02:01".into(),
                network_id: Uuid::from_u128(4),
                broadcast_uri: Some("vlan://100".into()),
                ip: Some("10.1.1.5".parse().unwrap()),
                prefix: 24,
                gateway: Some("10.1.1.1".parse().unwrap()),
                default: true,
            }],
            host: None,
        }
    }

    #[test]
    fn router_and_vm_views_survive_the_wire_unchanged() {
        let r = router();
        let back = router_from_proto("router", Some(&router_to_proto(&r))).unwrap();
        assert_eq!(back, r);
        let v = vm();
        assert_eq!(vm_from_proto("vm", Some(&vm_to_proto(&v))).unwrap(), v);
    }

    #[test]
    fn a_router_name_that_is_no_file_name_is_refused_naming_the_field() {
        let mut m = router_to_proto(&router());
        m.name = "../etc".into();
        let err = router_from_proto("router", Some(&m)).unwrap_err();
        assert_eq!(err.field, "router.name");
        assert!(
            err.to_string().starts_with("router.name: router name"),
            "{err}"
        );
    }

    #[test]
    fn bad_nic_fields_are_refused_naming_the_nic_and_field() {
        type Spoil = fn(&mut pb::RouterNic);
        let cases: [(Spoil, &str); 6] = [
            (
                |n| n.mac_address = "02:00:zz:00:00:01".into(),
                "mac_address",
            ),
            (
                |n| n.broadcast_uri = Some("vlan://5000".into()),
                "broadcast_uri",
            ),
            (|n| n.ip_address = "10.1.1.300".into(), "ip_address"),
            (|n| n.prefix_length = 33, "prefix_length"),
            (|n| n.network_id = "tier-1".into(), "network_id"),
            (|n| n.role = 0, "role"),
        ];
        for (spoil, field) in cases {
            let mut m = router_to_proto(&router());
            spoil(&mut m.nics[1]);
            let err = router_from_proto("router", Some(&m)).unwrap_err();
            assert_eq!(err.field, format!("router.nics[1].{field}"), "{err}");
        }
    }

    #[test]
    fn a_missing_message_and_a_bad_vm_are_refused_naming_the_field() {
        assert_eq!(
            router_from_proto("router", None).unwrap_err().field,
            "router"
        );
        let mut m = vm_to_proto(&vm());
        m.instance_name = "i 2".into();
        assert_eq!(
            vm_from_proto("vm", Some(&m)).unwrap_err().field,
            "vm.instance_name"
        );
        let mut m = vm_to_proto(&vm());
        m.hostname = "web\n-x".into();
        assert_eq!(
            vm_from_proto("vm", Some(&m)).unwrap_err().field,
            "vm.hostname"
        );
        let mut m = vm_to_proto(&vm());
        m.zone_id = String::new();
        assert_eq!(
            vm_from_proto("vm", Some(&m)).unwrap_err().field,
            "vm.zone_id"
        );
    }
}
