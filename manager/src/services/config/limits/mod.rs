//! Resource limits of accounts and domains, one command per file:
//! `updateResourceLimit` ([`update`]) and `listResourceLimits` ([`list`]);
//! here, the `resourcelimit` object and what both commands look up.

mod list;
mod update;

use serde_json::{Value, json};

use crate::error::Error;
use crate::server::Ctx;
use crate::server::registry::{FieldSpec, field};
use crate::store::{account, domain, limit};
use uuid::Uuid;

pub use list::ListResourceLimits;
pub use update::UpdateResourceLimit;

/// The documented fields of a limit.
const LIMIT_FIELDS: &[FieldSpec] = &[
    field("account", "string", "the account of the limit"),
    field("domainid", "string", "the ID of the domain of the limit"),
    field("domain", "string", "the name of the domain of the limit"),
    field(
        "domainpath",
        "string",
        "the path of the domain of the limit",
    ),
    field(
        "resourcetype",
        "string",
        "the resource type code (7 for vpc)",
    ),
    field("resourcetypename", "string", "the resource type name"),
    field("max", "long", "the limit; -1 means unlimited"),
];

/// The refusal for limits the caller may not change or see (531).
fn denied(ctx: &Ctx, what: &str) -> Error {
    Error::permission_denied(format!(
        "Account {} does not have permission to change or see {what}",
        ctx.caller.account_name
    ))
}

/// Whose limits: an account or a domain.
enum Owner {
    Account(account::Account, domain::Domain),
    Domain(domain::Domain),
}

/// The `resourcelimit` object: `max` of type `code` for `owner`.
fn limit_view(owner: &Owner, code: i64, max: i64) -> Value {
    let (account, d) = match owner {
        Owner::Account(a, d) => (Some(a.account_name.as_str()), d),
        Owner::Domain(d) => (None, d),
    };
    json!({
        "account": account,
        "domainid": d.uuid,
        "domain": d.name,
        "domainpath": d.display_path(),
        "resourcetype": code.to_string(),
        "resourcetypename": limit::type_name(code),
        "max": max,
    })
}

/// 431 for a resource type that is not one of CloudStack's codes or names.
fn bad_resource_type(value: impl std::fmt::Display) -> Error {
    let known: Vec<String> = limit::RESOURCE_TYPES
        .iter()
        .map(|(code, name, _)| format!("{code} ({name})"))
        .collect();
    Error::invalid(format!(
        "{value} is not a valid resource type; valid types are {}",
        known.join(", ")
    ))
}

/// The domain `uuid` unless removed.
async fn live_domain(ctx: &Ctx, uuid: Uuid) -> Result<Option<domain::Domain>, Error> {
    Ok(domain::get_by_uuid(&ctx.app.db, uuid)
        .await?
        .filter(|d| d.removed.is_none()))
}

/// The domain of account `a`.
async fn domain_of(ctx: &Ctx, a: &account::Account) -> Result<domain::Domain, Error> {
    domain::get_by_id(&ctx.app.db, a.domain_id)
        .await?
        .ok_or_else(|| Error::internal("account without domain"))
}
