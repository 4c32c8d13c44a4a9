//! Resource tags (CloudStack's `createTags`, `deleteTags`, `listTags`), and
//! what the tagged resources' lists do with them: `tags` in every object
//! ([`attach`]) and the `tags[i].key`/`tags[i].value` filter ([`narrow`]).
//!
//! The taggable types are those of the VPC life cycle, named as CloudStack's
//! `ResourceObjectType` (matched without regard to case): `Vpc`, `Network`
//! (a tier), `UserVm`, `PublicIpAddress`, `NetworkACLList`, `StaticRoute`
//! and `PrivateGateway`. A tag belongs to its resource's owner; an ACL list,
//! route or gateway is owned by its VPC's account, a built-in ACL list by
//! the system in ROOT (only the root admin may tag it).

mod create;
mod delete;
mod list;

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Map};
use crate::server::registry::Registry;
use crate::store::{Db, account, acl, domain, gateway, network, tag, vlan, vm, vpc};

pub use create::CreateTags;
pub use delete::DeleteTags;
pub use list::ListTags;

/// Registers the tag commands.
pub fn register(registry: &mut Registry) {
    registry.job::<CreateTags>();
    registry.job::<DeleteTags>();
    registry.sync::<ListTags>();
}

/// The `tags` filter of a tagged resource's list command.
pub const TAGS_FILTER: Arg<Map> = Arg::opt(
    "tags",
    "only resources with a tag matching one of these (tags[0].key, tags[0].value)",
);

/// A type of resource that takes tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    Vpc,
    Network,
    UserVm,
    PublicIpAddress,
    NetworkAclList,
    StaticRoute,
    PrivateGateway,
}

impl ResourceType {
    const ALL: [ResourceType; 7] = [
        ResourceType::Vpc,
        ResourceType::Network,
        ResourceType::UserVm,
        ResourceType::PublicIpAddress,
        ResourceType::NetworkAclList,
        ResourceType::StaticRoute,
        ResourceType::PrivateGateway,
    ];

    /// CloudStack's name of the type (`resourcetype`).
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Vpc => "Vpc",
            ResourceType::Network => "Network",
            ResourceType::UserVm => "UserVm",
            ResourceType::PublicIpAddress => "PublicIpAddress",
            ResourceType::NetworkAclList => "NetworkACLList",
            ResourceType::StaticRoute => "StaticRoute",
            ResourceType::PrivateGateway => "PrivateGateway",
        }
    }

    /// The type named `text`, in any case (CloudStack's getResourceType).
    pub fn parse(text: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| Error::invalid(format!("Invalid resource type {}", text.trim())))
    }
}

/// A live resource a tag can be put on, with its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub id: i64,
    pub uuid: Uuid,
    pub account_id: i64,
    pub domain_id: i64,
    pub domain_path: String,
}

/// The live resource of `kind` with API id `uuid`, if any.
pub async fn find(db: &Db, kind: ResourceType, uuid: Uuid) -> Result<Option<Resource>, Error> {
    let owned = |id, account_id, domain_id, domain_path: &str| Resource {
        id,
        uuid,
        account_id,
        domain_id,
        domain_path: domain_path.to_string(),
    };
    Ok(match kind {
        ResourceType::Vpc => vpc::get_by_uuid(db, uuid)
            .await?
            .filter(|v| v.removed.is_none())
            .map(|v| owned(v.id, v.account_id, v.domain_id, &v.domain_path)),
        ResourceType::Network => network::get_by_uuid(db, uuid)
            .await?
            .filter(|n| n.removed.is_none() && n.vpc_id.is_some())
            .map(|n| owned(n.id, n.account_id, n.domain_id, &n.domain_path)),
        ResourceType::UserVm => vm::get_by_uuid(db, uuid)
            .await?
            .filter(|v| v.removed.is_none())
            .map(|v| owned(v.id, v.account_id, v.domain_id, &v.domain_path)),
        ResourceType::PublicIpAddress => {
            let ip = vlan::ip_by_uuid(db, uuid)
                .await?
                .filter(|ip| ip.state != vlan::IP_FREE);
            match ip {
                Some(ip) => match (ip.account_id, ip.domain_id) {
                    (Some(a), Some(d)) => {
                        let path = domain_path(db, d).await?;
                        Some(owned(ip.id, a, d, &path))
                    }
                    _ => None,
                },
                None => None,
            }
        }
        ResourceType::NetworkAclList => {
            match acl::get_by_uuid(db, uuid)
                .await?
                .filter(|l| l.removed.is_none())
            {
                Some(l) => match l.vpc_id {
                    Some(vpc_id) => vpc_owner(db, vpc_id)
                        .await?
                        .map(|v| owned(l.id, v.account_id, v.domain_id, &v.domain_path)),
                    None => {
                        let (account_id, domain_id, path) = system_owner(db).await?;
                        Some(owned(l.id, account_id, domain_id, &path))
                    }
                },
                None => None,
            }
        }
        ResourceType::StaticRoute => gateway::route_by_uuid(db, uuid)
            .await?
            .filter(|r| r.removed.is_none())
            .map(|r| owned(r.id, r.account_id, r.domain_id, &r.domain_path)),
        ResourceType::PrivateGateway => gateway::get_by_uuid(db, uuid)
            .await?
            .filter(|g| g.removed.is_none())
            .map(|g| owned(g.id, g.account_id, g.domain_id, &g.domain_path)),
    })
}

async fn domain_path(db: &Db, domain_id: i64) -> Result<String, Error> {
    Ok(domain::get_by_id(db, domain_id)
        .await?
        .ok_or_else(|| Error::internal("a holder's domain is gone"))?
        .path)
}

async fn vpc_owner(db: &Db, vpc_id: i64) -> Result<Option<vpc::Vpc>, Error> {
    Ok(vpc::get_by_id(db, vpc_id)
        .await?
        .filter(|v| v.removed.is_none()))
}

/// The owner CloudStack gives objects of nobody: the system account in ROOT.
async fn system_owner(db: &Db) -> Result<(i64, i64, String), Error> {
    let root = domain::root(db).await?;
    let system = account::get_by_name(db, root.id, crate::store::bootstrap::SYSTEM_ACCOUNT)
        .await?
        .ok_or_else(|| Error::internal("the system account is gone"))?;
    Ok((system.id, root.id, root.path))
}

/// The (key, value) pairs of a `tags` map parameter; a pair without a key is
/// skipped, as CloudStack's maps skip incomplete entries.
pub fn pairs(map: &[BTreeMap<String, String>]) -> Vec<(String, Option<String>)> {
    map.iter()
        .filter_map(|entry| {
            let key = entry.get("key")?.trim();
            (!key.is_empty()).then(|| (key.to_string(), entry.get("value").cloned()))
        })
        .collect()
}

/// What a list's `tags` filter leaves: `Ok(None)` when there is no filter,
/// `Ok(Some(uuids))` for the resources (among `by_id`, when given) that
/// carry a matching tag (possibly none).
pub async fn narrow(
    db: &Db,
    kind: ResourceType,
    filter: Option<&[BTreeMap<String, String>]>,
    by_id: Option<Vec<Uuid>>,
) -> Result<Option<Vec<Uuid>>, Error> {
    let Some(filter) = filter else {
        return Ok(by_id);
    };
    let wanted = pairs(filter);
    if wanted.is_empty() {
        return Ok(by_id);
    }
    let tagged: Vec<Uuid> = tag::resources_matching(db, kind.name(), &wanted)
        .await?
        .iter()
        .filter_map(|u| u.parse().ok())
        .collect();
    Ok(Some(match by_id {
        Some(ids) => ids.into_iter().filter(|u| tagged.contains(u)).collect(),
        None => tagged,
    }))
}

/// A tag as `listTags` and the resources' `tags` show it.
fn tag_view(t: &tag::Tag) -> Value {
    let mut v = json!({
        "key": t.key,
        "value": t.value,
        "resourcetype": t.resource_type,
        "resourceid": t.resource_uuid,
        "account": t.account_name,
        "domainid": t.domain_uuid,
        "domain": t.domain_name,
        "customer": t.customer,
    });
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    v
}

/// Fills `tags` of every object of a list page (each with its `id`) with
/// the tags of its resource, in one query.
pub async fn attach(db: &Db, kind: ResourceType, items: &mut [Value]) -> Result<(), Error> {
    let ids: Vec<String> = items
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let filter = tag::TagFilter {
        resource_type: Some(kind.name().to_string()),
        resource_uuids: Some(ids),
        ..Default::default()
    };
    let mut by_resource: HashMap<String, Vec<Value>> = HashMap::new();
    for t in tag::list(db, &filter).await? {
        by_resource
            .entry(t.resource_uuid.clone())
            .or_default()
            .push(tag_view(&t));
    }
    for item in items.iter_mut() {
        let Some(id) = item["id"].as_str().map(str::to_string) else {
            continue;
        };
        item["tags"] = Value::Array(by_resource.remove(&id).unwrap_or_default());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_types_parse_in_any_case() {
        assert_eq!(ResourceType::parse("vpc").unwrap(), ResourceType::Vpc);
        assert_eq!(ResourceType::parse("USERVM").unwrap(), ResourceType::UserVm);
        assert_eq!(
            ResourceType::parse("networkacllist").unwrap(),
            ResourceType::NetworkAclList
        );
        let e = crate::api::ApiError::from(ResourceType::parse("Spaceship").unwrap_err());
        assert_eq!(e.code, 431);
        assert!(
            e.text.contains("Invalid resource type Spaceship"),
            "{}",
            e.text
        );
    }

    #[test]
    fn pairs_skip_entries_without_a_key() {
        let map = vec![
            BTreeMap::from([
                ("key".to_string(), "env".to_string()),
                ("value".to_string(), "prod".to_string()),
            ]),
            BTreeMap::from([("value".to_string(), "orphan".to_string())]),
            BTreeMap::from([("key".to_string(), "team".to_string())]),
        ];
        assert_eq!(
            pairs(&map),
            vec![
                ("env".to_string(), Some("prod".to_string())),
                ("team".to_string(), None)
            ]
        );
    }
}
