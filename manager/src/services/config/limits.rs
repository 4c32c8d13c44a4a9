//! Resource limits of accounts and domains: `updateResourceLimit`,
//! `listResourceLimits`.

use serde_json::{Value, json};

use super::{page_of, paging};
use crate::api::Params;
use crate::error::Error;
use crate::handler;
use crate::server::registry::{
    ADMINS, ALL, CommandSpec, FieldSpec, Kind, ParamType::*, field, opt, req,
};
use crate::server::{Ctx, Reply, Role, page};
use crate::store::{account, bootstrap, domain, limit};

fn limit_fields() -> Vec<FieldSpec> {
    vec![
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
    ]
}

/// The resource limit commands.
pub(super) fn commands() -> Vec<CommandSpec> {
    let mut list_limits = vec![
        opt("id", Long, "only the limit row with this ID"),
        opt("resourcetype", Integer, "only this resource type code"),
        opt(
            "resourcetypename",
            String,
            "only this resource type name; wins over resourcetype",
        ),
        opt(
            "account",
            String,
            "the limits of this account (with domainid)",
        ),
        opt(
            "domainid",
            Uuid,
            "the limits of this domain, or of the account in it",
        ),
        opt("isrecursive", Boolean, "accepted; limits are not recursive"),
        opt(
            "listall",
            Boolean,
            "accepted; limits are per account or domain",
        ),
    ];
    list_limits.extend(paging());
    vec![
        CommandSpec {
            name: "updateResourceLimit",
            description: "Sets the limit of a resource type for an account or a domain",
            kind: Kind::Sync,
            roles: ADMINS,
            params: vec![
                req(
                    "resourcetype",
                    Integer,
                    "the resource type code: 6 network, 7 vpc, ... (0 to 11)",
                ),
                opt("max", Long, "the limit; -1 (the default) means unlimited"),
                opt("account", String, "the account (with domainid)"),
                opt("domainid", Uuid, "the domain, or the domain of the account"),
            ],
            object: "resourcelimit",
            response: limit_fields(),
            since: "",
            handler: update_resource_limit,
            job: None,
        },
        CommandSpec {
            name: "listResourceLimits",
            description: "Lists the limits in force for an account or a domain",
            kind: Kind::Sync,
            roles: ALL,
            params: list_limits,
            object: "resourcelimit",
            response: limit_fields(),
            since: "",
            handler: list_resource_limits,
            job: None,
        },
    ]
}

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

fn bad_resource_type(value: impl std::fmt::Display) -> Error {
    let known: Vec<std::string::String> = limit::RESOURCE_TYPES
        .iter()
        .map(|(code, name, _)| format!("{code} ({name})"))
        .collect();
    Error::invalid(format!(
        "{value} is not a valid resource type; valid types are {}",
        known.join(", ")
    ))
}

async fn live_domain(ctx: &Ctx, uuid: &str) -> Result<Option<domain::Domain>, Error> {
    Ok(domain::get_by_uuid(&ctx.app.db, uuid)
        .await?
        .filter(|d| d.removed.is_none()))
}

async fn domain_of(ctx: &Ctx, a: &account::Account) -> Result<domain::Domain, Error> {
    domain::get_by_id(&ctx.app.db, a.domain_id)
        .await?
        .ok_or_else(|| Error::internal("account without domain"))
}

handler!(update_resource_limit, |ctx, params| {
    let caller = &ctx.caller;
    let code = i64::from(
        params
            .integer("resourcetype")?
            .ok_or_else(|| Error::missing_param(ctx.command, "resourcetype"))?,
    );
    let type_name = limit::type_name(code).ok_or_else(|| bad_resource_type(code))?;
    let max = params.long("max")?.unwrap_or(limit::UNLIMITED);
    if max < limit::UNLIMITED {
        return Err(Error::invalid(
            "max must be -1 for no limit, or a limit of 0 or more",
        ));
    }
    let account_name = params.string("account")?.filter(|s| !s.is_empty());
    let d = match params.uuid("domainid")? {
        Some(id) => {
            let id = id.to_string();
            Some(
                live_domain(ctx, &id)
                    .await?
                    .ok_or_else(|| Error::invalid_id("domainid", &id))?,
            )
        }
        None => None,
    };
    let db = &ctx.app.db;
    let owner = match (account_name, d) {
        (Some(_), None) => {
            return Err(Error::invalid(
                "account must be given together with domainid",
            ));
        }
        (None, None) => {
            return Err(Error::invalid(
                "Give account and domainid to set an account's limit, or domainid alone to set \
                 a domain's",
            ));
        }
        (Some(name), Some(d)) => {
            let a = account::get_by_name(db, d.id, &name)
                .await?
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "Unable to find account {name} in domain {}",
                        d.uuid
                    ))
                })?;
            if a.account_name == bootstrap::SYSTEM_ACCOUNT && d.parent_id.is_none() {
                return Err(Error::invalid(
                    "The limits of the system account cannot be changed",
                ));
            }
            if !caller.covers(a.id, &a.domain_path)
                || (a.account_type == account::TYPE_ADMIN && !caller.is_root_admin())
            {
                return Err(denied(ctx, &format!("the limits of account {}", a.uuid)));
            }
            if caller.role == Role::DomainAdmin && a.id == caller.account_id {
                return Err(denied(ctx, "the limits of its own account"));
            }
            if a.account_type == account::TYPE_ADMIN && max != limit::UNLIMITED {
                return Err(Error::invalid(
                    "Root admin accounts are always unlimited: only max=-1 is accepted",
                ));
            }
            limit::set_for_account(db, a.id, type_name, max).await?;
            Owner::Account(a, d)
        }
        (None, Some(d)) => {
            if !caller.covers_domain(&d.path) {
                return Err(denied(ctx, &format!("the limits of domain {}", d.uuid)));
            }
            let Some(parent_id) = d.parent_id else {
                return Err(denied(ctx, "the limits of the ROOT domain"));
            };
            if caller.role == Role::DomainAdmin && d.id == caller.domain_id {
                return Err(denied(ctx, "the limits of its own domain"));
            }
            let parent_max = limit::effective_for_domain(db, parent_id, type_name).await?;
            if parent_max != limit::UNLIMITED && max > parent_max {
                return Err(Error::invalid(format!(
                    "The parent of domain {} allows at most {parent_max} of {type_name}; give a \
                     max of {parent_max} or less",
                    d.name
                )));
            }
            limit::set_for_domain(db, d.id, type_name, max).await?;
            Owner::Domain(d)
        }
    };
    Ok(Reply::Object(limit_view(&owner, code, max)))
});

/// The resource types a listResourceLimits call asks for.
fn wanted_types(params: &Params) -> Result<Vec<i64>, Error> {
    if let Some(name) = params.string("resourcetypename")?.filter(|s| !s.is_empty()) {
        let code =
            limit::type_code(&name.to_ascii_lowercase()).ok_or_else(|| bad_resource_type(&name))?;
        return Ok(vec![code]);
    }
    if let Some(code) = params.integer("resourcetype")? {
        let code = i64::from(code);
        limit::type_name(code).ok_or_else(|| bad_resource_type(code))?;
        return Ok(vec![code]);
    }
    Ok(limit::RESOURCE_TYPES.iter().map(|t| t.0).collect())
}

handler!(list_resource_limits, |ctx, params| {
    let caller = &ctx.caller;
    let db = &ctx.app.db;
    let codes = wanted_types(params)?;
    let empty = Reply::List {
        count: 0,
        items: vec![],
    };
    let own_account = || async {
        let a = account::get_by_id(db, caller.account_id)
            .await?
            .ok_or_else(|| Error::internal("caller's account is gone"))?;
        let d = domain_of(ctx, &a).await?;
        Ok::<Owner, Error>(Owner::Account(a, d))
    };
    // As in CloudStack: users always get their own account's limits; admins
    // those of the account or domain given, by default their own account's.
    let owner = if caller.role == Role::User {
        own_account().await?
    } else {
        let d = match params.uuid("domainid")? {
            Some(id) => match live_domain(ctx, &id.to_string()).await? {
                Some(d) => Some(d),
                None => return Ok(empty),
            },
            None => None,
        };
        if let Some(d) = &d
            && !caller.covers_domain(&d.path)
        {
            return Err(denied(ctx, &format!("the limits of domain {}", d.uuid)));
        }
        match (params.string("account")?.filter(|s| !s.is_empty()), d) {
            (Some(name), d) => {
                let d = match d {
                    Some(d) => d,
                    None => domain::get_by_id(db, caller.domain_id)
                        .await?
                        .ok_or_else(|| Error::internal("caller's domain is gone"))?,
                };
                let a = account::get_by_name(db, d.id, &name)
                    .await?
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "Unable to find account {name} in domain {}",
                            d.uuid
                        ))
                    })?;
                if !caller.covers(a.id, &a.domain_path) {
                    return Err(denied(ctx, &format!("the limits of account {}", a.uuid)));
                }
                Owner::Account(a, d)
            }
            (None, Some(d)) => Owner::Domain(d),
            (None, None) => own_account().await?,
        }
    };
    let wanted_id = params.long("id")?;
    let mut rows = Vec::new();
    for code in codes {
        let name = limit::type_name(code).unwrap_or_default();
        let (row, max) = match &owner {
            Owner::Account(a, _) => (
                limit::get_for_account(db, a.id, name).await?,
                limit::effective_for_account(db, a.id, name).await?,
            ),
            Owner::Domain(d) => (
                limit::get_for_domain(db, d.id, name).await?,
                limit::effective_for_domain(db, d.id, name).await?,
            ),
        };
        if wanted_id.is_some_and(|id| row.as_ref().map(|r| r.id) != Some(id)) {
            continue;
        }
        rows.push(limit_view(&owner, code, max));
    }
    let count = rows.len() as u64;
    let items = page_of(rows, page(ctx, params).await?);
    Ok(Reply::List { count, items })
});
