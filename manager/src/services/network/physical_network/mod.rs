//! Physical networks, one command per file: `createPhysicalNetwork`
//! (async-create: the row now, the job reports it), `listPhysicalNetworks`,
//! `updatePhysicalNetwork`, `deletePhysicalNetwork`; and the checks of their
//! guest VLAN/VNI ranges, isolation methods and states.

mod create;
mod delete;
mod list;
mod update;

pub use create::CreatePhysicalNetwork;
pub use delete::DeletePhysicalNetwork;
pub use list::ListPhysicalNetworks;
pub use update::UpdatePhysicalNetwork;

use serde_json::{Value, json};

use super::{MAX_VLAN, zone_uuid_and_name};
use crate::error::Error;
use crate::server::command::{Arg, Texts};
use crate::server::registry::{FieldSpec, field};
use crate::store::{Db, zone};

/// Highest VXLAN network identifier CloudStack accepts.
const MAX_VXLAN: u64 = 16_777_214;
/// The only broadcast domain range of a physical network in an Advanced zone.
const BROADCAST_ZONE: &str = "ZONE";

/// `tags` of create and update: accepted, not kept yet.
const TAGS: Arg<Texts> = Arg::opt(
    "tags",
    "tags of the physical network (accepted, not kept yet)",
);

// ---------------------------------------------------------------- views

async fn physnet_view(db: &Db, pn: &zone::PhysicalNetwork) -> Result<Value, Error> {
    let (zone_uuid, zone_name) = zone_uuid_and_name(db, pn.zone_id).await?.unzip();
    Ok(json!({
        "id": pn.uuid,
        "name": pn.name,
        "zoneid": zone_uuid,
        "zonename": zone_name,
        "isolationmethods": pn.isolation_method,
        "vlan": pn.vnet_range,
        "state": pn.state,
        "broadcastdomainrange": BROADCAST_ZONE,
    }))
}

const PHYSNET_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the physical network"),
    field("name", "string", "the name of the physical network"),
    field("zoneid", "string", "the ID of the zone"),
    field("zonename", "string", "the name of the zone"),
    field(
        "isolationmethods",
        "string",
        "the isolation method of guest networks: VLAN or VXLAN",
    ),
    field("vlan", "string", "the guest VLAN or VNI range"),
    field("state", "string", "Enabled or Disabled"),
    field(
        "broadcastdomainrange",
        "string",
        "the broadcast domain range (always ZONE)",
    ),
];

// ---------------------------------------------------------------- checks

/// `VLAN` or `VXLAN` from the `isolationmethods` list (default VLAN).
fn isolation_method(methods: &[String]) -> Result<&'static str, Error> {
    match methods {
        [] => Ok("VLAN"),
        [one] if one.eq_ignore_ascii_case("vlan") => Ok("VLAN"),
        [one] if one.eq_ignore_ascii_case("vxlan") => Ok("VXLAN"),
        [one] => Err(Error::invalid(format!(
            "isolationmethods {one} is not supported: use VLAN or VXLAN"
        ))),
        _ => Err(Error::invalid(
            "Only one isolation method can be given for a physical network",
        )),
    }
}

/// Checks a guest VLAN/VNI range such as `100-199,300-310` (single ids too)
/// for the isolation method and returns it in canonical form. The pieces may
/// not overlap.
pub fn parse_vnet_range(method: &str, text: &str) -> Result<String, Error> {
    let max = if method == "VXLAN" {
        MAX_VXLAN
    } else {
        MAX_VLAN
    };
    let bad = |why: &str| {
        Error::invalid(format!(
            "Invalid {method} range {text}: {why}; write start-end pairs separated by \
             commas, ids from 1 to {max}"
        ))
    };
    let mut pieces: Vec<(u64, u64)> = Vec::new();
    for piece in text.split(',').map(str::trim) {
        if piece.is_empty() {
            return Err(bad("an empty piece"));
        }
        let (start, end) = match piece.split_once('-') {
            Some((s, e)) => (s.trim(), e.trim()),
            None => (piece, piece),
        };
        let number = |s: &str| -> Result<u64, Error> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("{s:?} is not a number")));
            }
            match s.parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(bad(&format!("{s} is out of range"))),
            }
        };
        let (start, end) = (number(start)?, number(end)?);
        if start > end {
            return Err(bad(&format!("{start} is greater than {end}")));
        }
        pieces.push((start, end));
    }
    let mut sorted = pieces.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[1].0 <= w[0].1) {
        return Err(bad("the pieces overlap"));
    }
    Ok(pieces
        .iter()
        .map(|(s, e)| {
            if s == e {
                s.to_string()
            } else {
                format!("{s}-{e}")
            }
        })
        .collect::<Vec<_>>()
        .join(","))
}

/// A guest range as sent (empty means not given), checked and canonical.
fn vnet_param(method: &str, text: Option<&str>) -> Result<Option<String>, Error> {
    text.filter(|v| !v.is_empty())
        .map(|v| parse_vnet_range(method, v))
        .transpose()
}

/// `Enabled` or `Disabled` (any case); empty means not given.
fn physnet_state(text: Option<&str>) -> Result<Option<&'static str>, Error> {
    match text {
        None | Some("") => Ok(None),
        Some(s) if s.eq_ignore_ascii_case("enabled") => Ok(Some("Enabled")),
        Some(s) if s.eq_ignore_ascii_case("disabled") => Ok(Some("Disabled")),
        Some(s) => Err(Error::invalid(format!(
            "state {s} is neither Enabled nor Disabled"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: Error) -> u16 {
        crate::api::ApiError::from(e).code
    }

    #[test]
    fn vnet_ranges_are_checked_and_canonical() {
        assert_eq!(parse_vnet_range("VLAN", "100-199").unwrap(), "100-199");
        assert_eq!(
            parse_vnet_range("VLAN", " 100-199 , 300-310,400").unwrap(),
            "100-199,300-310,400"
        );
        assert_eq!(
            parse_vnet_range("VXLAN", "5000-20000").unwrap(),
            "5000-20000"
        );
        for bad in [
            "",
            "0-10",
            "100-4095",
            "a-b",
            "200-100",
            "1-10,5-20",
            "1-",
            "1,,2",
            "-5",
        ] {
            assert_eq!(
                code(parse_vnet_range("VLAN", bad).unwrap_err()),
                431,
                "{bad}"
            );
        }
        assert!(parse_vnet_range("VXLAN", "1-16777214").is_ok());
        assert!(parse_vnet_range("VXLAN", "1-16777215").is_err());
    }

    #[test]
    fn an_empty_guest_range_is_not_given() {
        assert_eq!(vnet_param("VLAN", None).unwrap(), None);
        assert_eq!(vnet_param("VLAN", Some("")).unwrap(), None);
        assert_eq!(
            vnet_param("VLAN", Some("10-20")).unwrap().as_deref(),
            Some("10-20")
        );
    }

    #[test]
    fn one_isolation_method_of_two_is_taken() {
        assert_eq!(isolation_method(&[]).unwrap(), "VLAN");
        assert_eq!(isolation_method(&["vxlan".into()]).unwrap(), "VXLAN");
        assert_eq!(code(isolation_method(&["GRE".into()]).unwrap_err()), 431);
        assert_eq!(
            code(isolation_method(&["VLAN".into(), "VXLAN".into()]).unwrap_err()),
            431
        );
    }

    #[test]
    fn states_are_enabled_or_disabled_in_any_case() {
        assert_eq!(physnet_state(Some("")).unwrap(), None);
        assert_eq!(physnet_state(Some("ENABLED")).unwrap(), Some("Enabled"));
        assert_eq!(physnet_state(Some("disabled")).unwrap(), Some("Disabled"));
        assert_eq!(code(physnet_state(Some("Off")).unwrap_err()), 431);
    }
}
