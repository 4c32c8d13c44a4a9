//! Which domains and zones may use a VPC offering (CloudStack keeps them as
//! `vpc_offering_details` rows `domainid` / `zoneid`): `domainid` and
//! `zoneid` of createVPCOffering and updateVPCOffering, the `domainid`,
//! `domain`, `zoneid`, `zone` fields of the offering, and the check
//! createVPC makes (DomainChecker: an account may use an offering
//! restricted to its domain or a domain above it, in a zone it is
//! restricted to; the root admin any offering).

use serde_json::{Value, json};

use crate::error::Error;
use crate::server::command::{Arg, Text};
use crate::store::{Db, domain, offering, zone};

/// `domainid` of createVPCOffering and updateVPCOffering.
pub(super) const DOMAINS: Arg<Text> = Arg::opt(
    "domainid",
    "the IDs of the domains (comma-separated) whose accounts may use the offering; \
     public: every domain",
);
/// `zoneid` of createVPCOffering and updateVPCOffering.
pub(super) const ZONES: Arg<Text> = Arg::opt(
    "zoneid",
    "the IDs of the zones (comma-separated) where the offering may be used; all: every zone",
);

/// The text of an unknown domain or zone (CloudStack's, the same for the
/// create and the update commands).
fn invalid(what: &str) -> Error {
    Error::invalid(format!(
        "Failed to create VPC offering because invalid {what} has been specified."
    ))
}

/// The UUIDs of a comma-separated `domainid` / `zoneid`; None for the one
/// word meaning "no restriction" (`public`, `all`), which CloudStack
/// accepts only alone.
fn split_ids(text: &str, unrestricted: &str, what: &str) -> Result<Option<Vec<uuid::Uuid>>, Error> {
    let text = text.trim();
    if !text.contains(',') && text == unrestricted {
        return Ok(None);
    }
    text.split(',')
        .map(|id| uuid::Uuid::parse_str(id.trim()).map_err(|_| invalid(what)))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Keeps the domains no other listed domain contains (CloudStack's
/// filterChildSubDomains): a parent already admits its subdomains.
fn without_subdomains(domains: Vec<(i64, String)>) -> Vec<i64> {
    let mut kept: Vec<i64> = domains
        .iter()
        .filter(|(id, path)| {
            !domains
                .iter()
                .any(|(other, above)| other != id && path.starts_with(above.as_str()))
        })
        .map(|(id, _)| *id)
        .collect();
    kept.sort_unstable();
    kept.dedup();
    kept
}

/// The domains `domainid` names (empty: every domain); None when absent.
pub(super) async fn parse_domains(db: &Db, text: Option<&str>) -> Result<Option<Vec<i64>>, Error> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let Some(ids) = split_ids(text, "public", "domain")? else {
        return Ok(Some(Vec::new()));
    };
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        let d = domain::get_by_uuid(db, id)
            .await?
            .filter(|d| d.removed.is_none())
            .ok_or_else(|| invalid("domain"))?;
        found.push((d.id, d.path));
    }
    Ok(Some(without_subdomains(found)))
}

/// The zones `zoneid` names (empty: every zone); None when absent.
pub(super) async fn parse_zones(db: &Db, text: Option<&str>) -> Result<Option<Vec<i64>>, Error> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let Some(ids) = split_ids(text, "all", "zone")? else {
        return Ok(Some(Vec::new()));
    };
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        let z = zone::get_by_uuid(db, id)
            .await?
            .filter(|z| z.removed.is_none())
            .ok_or_else(|| invalid("zone"))?;
        found.push(z.id);
    }
    found.sort_unstable();
    found.dedup();
    Ok(Some(found))
}

/// The domains and zones an offering is restricted to.
pub(super) struct Scope {
    pub domains: Vec<offering::ScopeEntry>,
    pub zones: Vec<offering::ScopeEntry>,
}

impl Scope {
    /// The stored restrictions of the offering `id`.
    pub async fn load(db: &Db, id: i64) -> Result<Scope, Error> {
        Ok(Scope {
            domains: offering::vpc_offering_domains(db, id).await?,
            zones: offering::vpc_offering_zones(db, id).await?,
        })
    }

    /// Adds `domainid`, `domain`, `zoneid` and `zone` to an offering's
    /// view, comma-separated as CloudStack's offering view joins them;
    /// absent when the offering is not restricted.
    pub fn add_to(&self, view: &mut Value) {
        for (entries, id_key, name_key) in [
            (&self.domains, "domainid", "domain"),
            (&self.zones, "zoneid", "zone"),
        ] {
            if entries.is_empty() {
                continue;
            }
            let ids: Vec<String> = entries.iter().map(|e| e.uuid.to_string()).collect();
            let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
            view[id_key] = json!(ids.join(","));
            view[name_key] = json!(names.join(","));
        }
    }
}

/// createVPC: may an account of the domain at `domain_path` (a root admin
/// when `root`) use the offering in zone `zone_id`? CloudStack's
/// DomainChecker, and its 531 text when not.
pub async fn check_vpc_offering_access(
    db: &Db,
    o: &offering::VpcOffering,
    account_name: &str,
    root: bool,
    domain_path: &str,
    zone_id: i64,
) -> Result<(), Error> {
    let scope = Scope::load(db, o.id).await?;
    let in_domain = root
        || scope.domains.is_empty()
        || scope
            .domains
            .iter()
            .any(|d| domain_path.starts_with(d.path.as_str()));
    let in_zone = scope.zones.is_empty() || scope.zones.iter().any(|z| z.id == zone_id);
    if in_domain && in_zone {
        return Ok(());
    }
    Err(Error::permission_denied(format!(
        "There's no way to confirm Account {account_name} has access to VPC offering {} ({})",
        o.name, o.uuid
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_of_a_listed_domain_are_dropped() {
        let kept = without_subdomains(vec![
            (3, "/a/b/".into()),
            (2, "/a/".into()),
            (4, "/c/".into()),
            (2, "/a/".into()),
        ]);
        assert_eq!(kept, [2, 4]);
        assert_eq!(
            without_subdomains(vec![(5, "/ab/".into()), (2, "/a/".into())]),
            [2, 5]
        );
    }

    #[test]
    fn public_and_all_lift_the_restriction_only_alone() {
        assert_eq!(split_ids(" public ", "public", "domain").unwrap(), None);
        assert_eq!(split_ids("all", "all", "zone").unwrap(), None);
        let id = uuid::Uuid::new_v4();
        assert_eq!(
            split_ids(&format!("{id}, {id}"), "public", "domain").unwrap(),
            Some(vec![id, id])
        );
        let refused = split_ids(&format!("public,{id}"), "public", "domain").unwrap_err();
        let refused = crate::api::ApiError::from(refused);
        assert_eq!(refused.code, 431);
        assert_eq!(
            refused.text,
            "Failed to create VPC offering because invalid domain has been specified."
        );
    }
}
