//! The site-to-site VPN: the gateway's address must be one of the router's
//! public IPs, and every string of a connection is checked here, before it
//! can reach swanctl.conf: strongSwan reads quoted values, so nothing may
//! hold a quote, a backslash, a brace or a control character, and names and
//! proposals keep to small alphabets.

use std::collections::BTreeSet;

use vpc_proto::v1 as pb;

use super::{Result, bad, ipv4, network4, shown};
use crate::model::{IkeVersion, Router, Vpn, VpnConnection};

/// The most connections one router serves (CloudStack's default limit is 4
/// per VPN gateway; an admin may raise it).
pub const MAX_CONNECTIONS: usize = 64;
/// The most subnets one side of a connection has.
pub const MAX_CIDRS: usize = 64;
/// The most proposals one policy lists.
pub const MAX_PROPOSALS: usize = 16;
/// The longest key.
pub const MAX_PSK_LEN: usize = 256;
/// The longest lifetime accepted (a day, CloudStack's bound, with room).
pub const MAX_LIFETIME: u64 = 7 * 86_400;

/// The validated VPN, or None when it has no connection.
pub(super) fn vpn(router: &Router, vpn: Option<&pb::Vpn>) -> Result<Option<Vpn>> {
    let Some(v) = vpn.filter(|v| !v.connections.is_empty()) else {
        return Ok(None);
    };
    let public_ip = ipv4("vpn.public_ip", &v.public_ip)?;
    let held = router
        .public_ips
        .iter()
        .find(|p| p.address == public_ip && !p.private_gateway)
        .ok_or_else(|| {
            bad(
                "vpn.public_ip",
                format!("{public_ip} is not a public IP of the router"),
            )
        })?;
    if v.connections.len() > MAX_CONNECTIONS {
        return Err(bad(
            "vpn.connections",
            format!("at most {MAX_CONNECTIONS} connections"),
        ));
    }
    let mut ids = BTreeSet::new();
    let mut connections = Vec::with_capacity(v.connections.len());
    for (i, c) in v.connections.iter().enumerate() {
        let f = |name: &str| format!("vpn.connections[{i}].{name}");
        let conn = connection(&f, c)?;
        if !ids.insert(conn.id.clone()) {
            return Err(bad(f("id"), format!("{} is given twice", conn.id)));
        }
        connections.push(conn);
    }
    Ok(Some(Vpn {
        public_ip,
        index: held.index,
        connections,
    }))
}

fn connection(f: &dyn Fn(&str) -> String, c: &pb::VpnConnection) -> Result<VpnConnection> {
    if !is_uuid(&c.id) {
        return Err(bad(f("id"), format!("{} is not a UUID", shown(&c.id))));
    }
    let id = c.id.to_ascii_lowercase();
    let peer = peer(&f("peer_address"), &c.peer_address)?;
    let local = cidrs(&f("local_cidrs"), &c.local_cidrs)?;
    let remote = cidrs(&f("remote_cidrs"), &c.remote_cidrs)?;
    psk(&f("psk"), &c.psk)?;
    let ike_proposals = proposals(&f("ike_proposals"), &c.ike_proposals)?;
    let esp_proposals = proposals(&f("esp_proposals"), &c.esp_proposals)?;
    let lifetime = |name: &str, v: u64| {
        if v == 0 || v > MAX_LIFETIME {
            Err(bad(
                f(name),
                format!("{v} is not within 1..={MAX_LIFETIME} seconds"),
            ))
        } else {
            Ok(v)
        }
    };
    let ike_version = match c.ike_version.as_str() {
        "" | "ike" => IkeVersion::Any,
        "ikev1" => IkeVersion::V1,
        "ikev2" => IkeVersion::V2,
        other => {
            return Err(bad(
                f("ike_version"),
                format!("{} is not ike, ikev1 or ikev2", shown(other)),
            ));
        }
    };
    Ok(VpnConnection {
        id,
        peer,
        local,
        remote,
        psk: c.psk.clone(),
        ike_proposals,
        esp_proposals,
        ike_lifetime: lifetime("ike_lifetime_seconds", c.ike_lifetime_seconds)?,
        esp_lifetime: lifetime("esp_lifetime_seconds", c.esp_lifetime_seconds)?,
        dpd: c.dpd,
        ike_version,
        passive: c.passive,
        force_encap: c.force_encap,
        split_connections: c.split_connections,
        reset_serial: c.reset_serial,
    })
}

/// The hyphenated UUID form (8-4-4-4-12 hex digits): it names the
/// connection in swanctl.conf.
fn is_uuid(value: &str) -> bool {
    value.len() == 36
        && value.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// An IPv4 address or a DNS name (strongSwan resolves it).
fn peer(field: &str, value: &str) -> Result<String> {
    if let Ok(a) = value.parse::<std::net::Ipv4Addr>() {
        return Ok(a.to_string());
    }
    let is_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let all_digits = value
        .split('.')
        .all(|l| l.chars().all(|c| c.is_ascii_digit()));
    if value.len() <= 253 && !all_digits && value.split('.').all(is_label) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(bad(
            field,
            format!("{} is neither an IPv4 address nor a DNS name", shown(value)),
        ))
    }
}

fn cidrs(field: &str, values: &[String]) -> Result<Vec<ipnet::Ipv4Net>> {
    if values.is_empty() {
        return Err(bad(field, "at least one CIDR is required"));
    }
    if values.len() > MAX_CIDRS {
        return Err(bad(field, format!("at most {MAX_CIDRS} CIDRs")));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| network4(&format!("{field}[{i}]"), v))
        .collect()
}

/// The key goes into a quoted value: no quote, backslash or control
/// character. The message never repeats it.
fn psk(field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_PSK_LEN {
        return Err(bad(
            field,
            format!("must have 1 to {MAX_PSK_LEN} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return Err(bad(
            field,
            "must not hold a double quote, a backslash or a control character",
        ));
    }
    Ok(())
}

/// strongSwan proposals: algorithm names joined by hyphens
/// (`aes128-sha1-modp1536`).
fn proposals(field: &str, values: &[String]) -> Result<Vec<String>> {
    if values.is_empty() {
        return Err(bad(field, "at least one proposal is required"));
    }
    if values.len() > MAX_PROPOSALS {
        return Err(bad(field, format!("at most {MAX_PROPOSALS} proposals")));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ok = !v.is_empty()
                && v.len() <= 128
                && v.split('-').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                });
            if ok {
                Ok(v.clone())
            } else {
                Err(bad(
                    format!("{field}[{i}]"),
                    format!("{} is not a strongSwan proposal", shown(v)),
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_config;

    fn sample_vpn() -> pb::Vpn {
        pb::Vpn {
            public_ip: "203.0.113.10".into(),
            connections: vec![pb::VpnConnection {
                id: "3f1c2a52-0001-4b8e-8d1f-5e0a00000001".into(),
                peer_address: "198.51.100.20".into(),
                local_cidrs: vec!["10.1.0.0/16".into()],
                remote_cidrs: vec!["10.9.0.0/16".into()],
                psk: "a secret".into(),
                ike_proposals: vec!["aes128-sha1-modp1536".into()],
                esp_proposals: vec!["aes128-sha1".into()],
                ike_lifetime_seconds: 86_400,
                esp_lifetime_seconds: 3_600,
                ike_version: "ike".into(),
                ..Default::default()
            }],
        }
    }

    fn with(v: pb::Vpn) -> std::result::Result<Router, crate::model::Invalid> {
        let mut config = sample_config();
        config.vpn = Some(v);
        Router::from_config(&config)
    }

    #[test]
    fn a_vpn_on_a_public_ip_of_the_router_is_kept() {
        let config = sample_config();
        let ip = config.public_ips[0].ip_address.clone();
        let mut v = sample_vpn();
        v.public_ip = ip.clone();
        let router = with(v).unwrap();
        let vpn = router.vpn.unwrap();
        assert_eq!(vpn.public_ip.to_string(), ip);
        assert_eq!(vpn.connections[0].remote[0].to_string(), "10.9.0.0/16");
        assert!(!format!("{:?}", vpn.connections[0]).contains("a secret"));
    }

    #[test]
    fn a_vpn_without_connections_is_none() {
        let mut v = sample_vpn();
        v.connections.clear();
        v.public_ip = String::new();
        assert_eq!(with(v).unwrap().vpn, None);
    }

    #[test]
    fn every_string_is_checked_before_it_reaches_a_file() {
        let config = sample_config();
        let ip = config.public_ips[0].ip_address.clone();
        type Breaks = Box<dyn Fn(&mut pb::VpnConnection)>;
        let cases: Vec<(Breaks, &str)> = vec![
            (
                Box::new(|c| c.psk = "x\"}\n".into()),
                "vpn.connections[0].psk",
            ),
            (Box::new(|c| c.psk.clear()), "vpn.connections[0].psk"),
            (
                Box::new(|c| c.id = "../etc".into()),
                "vpn.connections[0].id",
            ),
            (
                Box::new(|c| c.peer_address = "a b".into()),
                "vpn.connections[0].peer_address",
            ),
            (
                Box::new(|c| c.ike_proposals = vec!["aes128\"".into()]),
                "vpn.connections[0].ike_proposals[0]",
            ),
            (
                Box::new(|c| c.remote_cidrs = vec!["10.0.0.0/33".into()]),
                "vpn.connections[0].remote_cidrs[0]",
            ),
            (
                Box::new(|c| c.ike_version = "ikev3".into()),
                "vpn.connections[0].ike_version",
            ),
            (
                Box::new(|c| c.esp_lifetime_seconds = 0),
                "vpn.connections[0].esp_lifetime_seconds",
            ),
        ];
        for (change, field) in cases {
            let mut v = sample_vpn();
            v.public_ip = ip.clone();
            change(&mut v.connections[0]);
            let e = with(v).unwrap_err();
            assert_eq!(e.field, field);
            assert!(!e.message.contains("x\"}"), "{}", e.message);
        }
    }

    #[test]
    fn the_gateway_address_must_be_the_routers() {
        let mut v = sample_vpn();
        v.public_ip = "198.51.100.99".into();
        let e = with(v).unwrap_err();
        assert_eq!(e.field, "vpn.public_ip");
    }
}
