//! Global configuration and resource limits (CloudStack reference §2.10,
//! §3.9): `listConfigurations`, `updateConfiguration`, `updateResourceLimit`,
//! `listResourceLimits`.
//!
//! Only global configuration values are stored. `listConfigurations` takes
//! `zoneid`, `accountid` or `domainid` like CloudStack and then lists the keys
//! of that scope, but with their global value, since no per-zone, per-domain
//! or per-account value can be set here; `updateConfiguration` refuses those
//! parameters rather than silently changing the global value.

use serde_json::{Value, json};

use crate::api::{ApiError, Params};
use crate::handler;
use crate::server::registry::{
    ADMINS, ALL, CommandSpec, FieldSpec, Kind, ParamSpec, ParamType::*, ROOT, field, opt, req,
};
use crate::server::{Ctx, Reply, Role, page};
use crate::store::{Page, account, bootstrap, config, domain, limit, zone};

/// Longest configuration value accepted (CloudStack's column is 4096 wide).
const MAX_VALUE_LENGTH: u32 = 4096;

/// Largest `default.page.size`: it bounds every unpaged list answer.
const MAX_PAGE_SIZE: i64 = 5000;

/// What a configuration key's value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    /// A decimal integer within the bounds (inclusive).
    Integer { min: i64, max: i64 },
    /// `true` or `false`, any case; stored lower-cased.
    Boolean,
    /// A DNS domain such as `cloud.internal`.
    DnsSuffix,
    /// Comma-separated IPv4 CIDRs, possibly none.
    CidrList,
    /// One of a fixed set of words (exact spelling, any case accepted).
    OneOf(&'static [&'static str]),
    /// Free text.
    Text,
}

const SESSION_KEY_LOCATIONS: &[&str] =
    &["CookieAndParameter", "CookieOrParameter", "ParameterOnly"];

/// The rule for `name`. Keys the table does not name take free text.
fn kind_of(name: &str) -> ValueKind {
    const INT: i64 = i32::MAX as i64;
    match name {
        "vpc.max.networks" => ValueKind::Integer { min: 1, max: INT },
        "vpc.cleanup.interval" | "network.gc.interval" => ValueKind::Integer { min: 1, max: INT },
        "network.gc.wait" => ValueKind::Integer { min: 0, max: INT },
        "router.aggregation.command.each.timeout" => ValueKind::Integer { min: 1, max: INT },
        "default.page.size" => ValueKind::Integer {
            min: 1,
            max: MAX_PAGE_SIZE,
        },
        "network.guest.cidr.limit" => ValueKind::Integer { min: 0, max: 32 },
        "router.extra.public.nics" => ValueKind::Integer { min: 0, max: 5 },
        "vr.public.interface.max.mtu" => ValueKind::Integer {
            min: 68,
            max: 65535,
        },
        "allow.non.rfc1918.compliant.ips"
        | "network.rolling.restart"
        | "vpc.tier.name.prepend"
        | "routed.network.vpc.enabled"
        | "enforce.post.requests.and.timestamps" => ValueKind::Boolean,
        "guest.domain.suffix" => ValueKind::DnsSuffix,
        "denied.routes" => ValueKind::CidrList,
        "api.sessionkey.check.locations" => ValueKind::OneOf(SESSION_KEY_LOCATIONS),
        // Default resource limits: a count, or -1 for unlimited.
        n if n.starts_with("max.account.")
            || n.starts_with("max.domain.")
            || n.starts_with("max.project.") =>
        {
            ValueKind::Integer {
                min: limit::UNLIMITED,
                max: i64::MAX,
            }
        }
        _ => ValueKind::Text,
    }
}

/// CloudStack's `type` of a configuration (the Java type of its key).
fn type_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Integer { .. } => "Number",
        ValueKind::Boolean => "Boolean",
        _ => "String",
    }
}

fn is_dns_suffix(value: &str) -> bool {
    value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks `value` for key `name` and returns it in the form stored.
fn checked_value(name: &str, value: &str) -> Result<std::string::String, ApiError> {
    let bad = |why: std::string::String| {
        ApiError::param(format!(
            "The value {value:?} is not valid for configuration {name}: {why}"
        ))
    };
    match kind_of(name) {
        ValueKind::Integer { min, max } => {
            let n: i64 = value
                .trim()
                .parse()
                .map_err(|_| bad("an integer is expected".into()))?;
            if n < min || n > max {
                return Err(bad(format!("it must be between {min} and {max}")));
            }
            Ok(n.to_string())
        }
        ValueKind::Boolean => match value.trim().to_ascii_lowercase().as_str() {
            v @ ("true" | "false") => Ok(v.to_string()),
            _ => Err(bad("true or false is expected".into())),
        },
        ValueKind::DnsSuffix => {
            let v = value.trim();
            if is_dns_suffix(v) {
                Ok(v.to_string())
            } else {
                Err(bad(
                    "a DNS domain is expected: dot-separated labels of letters, digits and \
                     hyphens"
                        .into(),
                ))
            }
        }
        ValueKind::CidrList => {
            let mut items = Vec::new();
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let net: ipnet::Ipv4Net = item
                    .parse()
                    .map_err(|_| bad(format!("{item} is not an IPv4 CIDR")))?;
                items.push(net.to_string());
            }
            Ok(items.join(","))
        }
        ValueKind::OneOf(words) => words
            .iter()
            .find(|w| w.eq_ignore_ascii_case(value.trim()))
            .map(|w| w.to_string())
            .ok_or_else(|| bad(format!("one of {} is expected", words.join(", ")))),
        ValueKind::Text => Ok(value.to_string()),
    }
}

/// The `configuration` object; `scope` is what the values shown apply to.
fn config_view(c: &config::Config, scope: &str) -> Value {
    let kind = kind_of(&c.name);
    let mut view = json!({
        "category": c.category,
        "name": c.name,
        "value": c.effective(),
        "defaultvalue": c.default_value,
        "scope": scope,
        "description": c.description,
        "isdynamic": c.is_dynamic,
        "component": c.component,
        "type": type_name(kind),
    });
    if let ValueKind::OneOf(words) = kind {
        view["options"] = json!(words.join(","));
    }
    view
}

fn config_fields() -> Vec<FieldSpec> {
    vec![
        field("category", "string", "the category of the configuration"),
        field("name", "string", "the name of the configuration"),
        field("value", "string", "the value in force"),
        field("defaultvalue", "string", "the default value"),
        field("scope", "string", "the scope the value applies to"),
        field("description", "string", "what the configuration does"),
        field(
            "isdynamic",
            "boolean",
            "true when a change applies without a restart",
        ),
        field("component", "string", "the component that reads it"),
        field("type", "string", "Number, Boolean or String"),
        field("options", "string", "the accepted values, when fixed"),
    ]
}

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

fn paging() -> Vec<ParamSpec> {
    vec![
        opt("keyword", String, "a substring to match"),
        opt("page", Integer, "the page to return"),
        opt("pagesize", Integer, "the number of objects per page"),
    ]
}

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let mut list_configurations = vec![
        opt("name", String, "a substring of the configuration names"),
        opt("category", String, "only configurations of this category"),
        opt(
            "zoneid",
            Uuid,
            "the zone-scoped keys; values are the global ones",
        ),
        opt(
            "accountid",
            Uuid,
            "the account-scoped keys; values are the global ones",
        ),
        opt(
            "domainid",
            Uuid,
            "the domain-scoped keys; values are the global ones",
        ),
    ];
    list_configurations.extend(paging());
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
            name: "listConfigurations",
            description: "Lists the global configuration keys and their values",
            kind: Kind::Sync,
            roles: ROOT,
            params: list_configurations,
            object: "configuration",
            response: config_fields(),
            since: "",
            handler: list_configurations_handler,
        },
        CommandSpec {
            name: "updateConfiguration",
            description: "Sets a global configuration value; an empty value restores the default",
            kind: Kind::Sync,
            roles: ROOT,
            params: vec![
                req("name", String, "the name of the configuration"),
                ParamSpec {
                    length: MAX_VALUE_LENGTH,
                    ..opt(
                        "value",
                        String,
                        "the new value; absent or empty restores the default",
                    )
                },
                opt("zoneid", Uuid, "refused: only global values are stored"),
                opt("accountid", Uuid, "refused: only global values are stored"),
                opt("domainid", Uuid, "refused: only global values are stored"),
            ],
            object: "configuration",
            response: config_fields(),
            since: "",
            handler: update_configuration,
        },
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
        },
    ]
}

fn denied(ctx: &Ctx, what: &str) -> ApiError {
    ApiError::permission_denied(format!(
        "Account {} does not have permission to change or see {what}",
        ctx.caller.account_name
    ))
}

/// The rows of `items` that `page` selects.
fn page_of<T>(items: Vec<T>, page: Page) -> Vec<T> {
    let skip = usize::try_from(page.offset.max(0)).unwrap_or(usize::MAX);
    let take = page.limit.map_or(usize::MAX, |l| {
        usize::try_from(l.max(0)).unwrap_or(usize::MAX)
    });
    items.into_iter().skip(skip).take(take).collect()
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// The scope named by `zoneid`, `accountid` or `domainid` (at most one, and
/// it must exist): `Zone`, `Account` or `Domain` as declared in the store.
async fn scope_param(ctx: &Ctx, params: &Params) -> Result<Option<&'static str>, ApiError> {
    let given: Vec<&str> = ["zoneid", "accountid", "domainid"]
        .into_iter()
        .filter(|n| params.get(n).is_some_and(|v| !v.is_empty()))
        .collect();
    if given.len() > 1 {
        return Err(ApiError::param(
            "Give at most one of zoneid, accountid and domainid: each names a scope",
        ));
    }
    let db = &ctx.app.db;
    if let Some(id) = params.uuid("zoneid")? {
        let id = id.to_string();
        zone::get_by_uuid(db, &id)
            .await?
            .filter(|z| z.removed.is_none())
            .ok_or_else(|| ApiError::invalid_id("zoneid", &id))?;
        return Ok(Some("Zone"));
    }
    if let Some(id) = params.uuid("accountid")? {
        let id = id.to_string();
        account::get_by_uuid(db, &id)
            .await?
            .filter(|a| a.removed.is_none())
            .ok_or_else(|| ApiError::invalid_id("accountid", &id))?;
        return Ok(Some("Account"));
    }
    if let Some(id) = params.uuid("domainid")? {
        let id = id.to_string();
        domain::get_by_uuid(db, &id)
            .await?
            .filter(|d| d.removed.is_none())
            .ok_or_else(|| ApiError::invalid_id("domainid", &id))?;
        return Ok(Some("Domain"));
    }
    Ok(None)
}

handler!(list_configurations_handler, |ctx, params| {
    let scope = scope_param(ctx, params).await?;
    let name = params.string("name")?.filter(|s| !s.is_empty());
    let category = params.string("category")?.filter(|s| !s.is_empty());
    let keyword = params.string("keyword")?.filter(|s| !s.is_empty());
    let paging = page(ctx, params).await?;
    // A few dozen rows: filter them here, with CloudStack's matching rules
    // (name and keyword are substrings, the category is exact).
    let all = config::list(&ctx.app.db, &config::ConfigFilter::default(), Page::ALL).await?;
    let matching: Vec<config::Config> = all
        .items
        .into_iter()
        .filter(|c| scope.is_none_or(|s| c.scope.eq_ignore_ascii_case(s)))
        .filter(|c| name.as_deref().is_none_or(|n| contains_ci(&c.name, n)))
        .filter(|c| {
            category
                .as_deref()
                .is_none_or(|k| c.category.eq_ignore_ascii_case(k))
        })
        .filter(|c| {
            keyword.as_deref().is_none_or(|k| {
                [
                    Some(c.name.as_str()),
                    Some(c.category.as_str()),
                    Some(c.description.as_str()),
                    Some(c.component.as_str()),
                    c.effective(),
                ]
                .into_iter()
                .flatten()
                .any(|field| contains_ci(field, k))
            })
        })
        .collect();
    let count = matching.len() as u64;
    let shown = scope.unwrap_or("global").to_ascii_lowercase();
    let items = page_of(matching, paging)
        .iter()
        .map(|c| config_view(c, &shown))
        .collect();
    Ok(Reply::List { count, items })
});

handler!(update_configuration, |ctx, params| {
    let name = params.required_string(ctx.command, "name")?;
    for scoped in ["zoneid", "accountid", "domainid"] {
        if params.get(scoped).is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::param(format!(
                "{scoped} is not supported: this manager stores global configuration values only"
            )));
        }
    }
    let db = &ctx.app.db;
    if config::get(db, &name).await?.is_none() {
        return Err(ApiError::param(format!(
            "The configuration {name} does not exist"
        )));
    }
    let value = params
        .string_max("value", MAX_VALUE_LENGTH as usize)?
        .filter(|v| !v.is_empty());
    let stored = match value {
        Some(v) => Some(checked_value(&name, &v)?),
        None => None,
    };
    let updated = config::update(db, &name, stored.as_deref())
        .await?
        .ok_or_else(|| ApiError::param(format!("The configuration {name} does not exist")))?;
    tracing::info!(name = %name, value = ?updated.value, by = %ctx.caller.account_name, "configuration updated");
    Ok(Reply::Object(config_view(&updated, "global")))
});

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

fn bad_resource_type(value: impl std::fmt::Display) -> ApiError {
    let known: Vec<std::string::String> = limit::RESOURCE_TYPES
        .iter()
        .map(|(code, name, _)| format!("{code} ({name})"))
        .collect();
    ApiError::param(format!(
        "{value} is not a valid resource type; valid types are {}",
        known.join(", ")
    ))
}

async fn live_domain(ctx: &Ctx, uuid: &str) -> Result<Option<domain::Domain>, ApiError> {
    Ok(domain::get_by_uuid(&ctx.app.db, uuid)
        .await?
        .filter(|d| d.removed.is_none()))
}

async fn domain_of(ctx: &Ctx, a: &account::Account) -> Result<domain::Domain, ApiError> {
    domain::get_by_id(&ctx.app.db, a.domain_id)
        .await?
        .ok_or_else(|| ApiError::internal("account without domain"))
}

handler!(update_resource_limit, |ctx, params| {
    let caller = &ctx.caller;
    let code = i64::from(
        params
            .integer("resourcetype")?
            .ok_or_else(|| ApiError::missing_param(ctx.command, "resourcetype"))?,
    );
    let type_name = limit::type_name(code).ok_or_else(|| bad_resource_type(code))?;
    let max = params.long("max")?.unwrap_or(limit::UNLIMITED);
    if max < limit::UNLIMITED {
        return Err(ApiError::param(
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
                    .ok_or_else(|| ApiError::invalid_id("domainid", &id))?,
            )
        }
        None => None,
    };
    let db = &ctx.app.db;
    let owner = match (account_name, d) {
        (Some(_), None) => {
            return Err(ApiError::param(
                "account must be given together with domainid",
            ));
        }
        (None, None) => {
            return Err(ApiError::param(
                "Give account and domainid to set an account's limit, or domainid alone to set \
                 a domain's",
            ));
        }
        (Some(name), Some(d)) => {
            let a = account::get_by_name(db, d.id, &name)
                .await?
                .ok_or_else(|| {
                    ApiError::param(format!(
                        "Unable to find account {name} in domain {}",
                        d.uuid
                    ))
                })?;
            if a.account_name == bootstrap::SYSTEM_ACCOUNT && d.parent_id.is_none() {
                return Err(ApiError::param(
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
                return Err(ApiError::param(
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
                return Err(ApiError::param(format!(
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
fn wanted_types(params: &Params) -> Result<Vec<i64>, ApiError> {
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
            .ok_or_else(|| ApiError::internal("caller's account is gone"))?;
        let d = domain_of(ctx, &a).await?;
        Ok::<Owner, ApiError>(Owner::Account(a, d))
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
                        .ok_or_else(|| ApiError::internal("caller's domain is gone"))?,
                };
                let a = account::get_by_name(db, d.id, &name)
                    .await?
                    .ok_or_else(|| {
                        ApiError::param(format!(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_take_integers_in_range() {
        assert_eq!(checked_value("vpc.max.networks", " 5 ").unwrap(), "5");
        for bad in ["abc", "0", "1.5", ""] {
            assert_eq!(
                checked_value("vpc.max.networks", bad).unwrap_err().code,
                431
            );
        }
        assert!(checked_value("network.guest.cidr.limit", "32").is_ok());
        assert!(checked_value("network.guest.cidr.limit", "33").is_err());
        assert!(checked_value("default.page.size", "5000").is_ok());
        assert!(checked_value("default.page.size", "0").is_err());
        assert_eq!(checked_value("max.account.vpcs", "-1").unwrap(), "-1");
        assert!(checked_value("max.domain.vpcs", "-2").is_err());
    }

    #[test]
    fn booleans_words_and_domains() {
        assert_eq!(
            checked_value("allow.non.rfc1918.compliant.ips", "TRUE").unwrap(),
            "true"
        );
        assert!(checked_value("allow.non.rfc1918.compliant.ips", "yes").is_err());
        assert_eq!(
            checked_value("api.sessionkey.check.locations", "parameteronly").unwrap(),
            "ParameterOnly"
        );
        assert!(checked_value("guest.domain.suffix", "corp.example-1.org").is_ok());
        for bad in ["a..b", "-a.b", "a_b.c", "a b", ".a"] {
            assert!(checked_value("guest.domain.suffix", bad).is_err(), "{bad}");
        }
        assert_eq!(
            checked_value("denied.routes", "10.0.0.0/8, 192.168.1.0/24").unwrap(),
            "10.0.0.0/8,192.168.1.0/24"
        );
        assert!(checked_value("denied.routes", "10.0.0.0/33").is_err());
        assert_eq!(
            checked_value("vpc.tier.name.prepend.delimiter", "-").unwrap(),
            "-"
        );
    }

    #[test]
    fn pages_are_cut_from_the_list() {
        let v: Vec<i32> = (0..10).collect();
        assert_eq!(page_of(v.clone(), Page::new(2, 3)), vec![3, 4, 5]);
        assert_eq!(page_of(v.clone(), Page::ALL).len(), 10);
        assert!(page_of(v, Page::new(5, 3)).is_empty());
    }
}
