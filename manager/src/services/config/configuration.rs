//! Global configuration keys: `listConfigurations`, `updateConfiguration`,
//! and the rules a key's value must follow.

use serde_json::{Value, json};

use super::{page_of, paging};
use crate::api::Params;
use crate::error::Error;
use crate::handler;
use crate::server::registry::{
    CommandSpec, FieldSpec, Kind, ParamSpec, ParamType::*, ROOT, field, opt, req,
};
use crate::server::{Ctx, Reply, page};
use crate::store::{Page, account, config, domain, limit, zone};

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
        "incorrect.login.attempts.allowed" => ValueKind::Integer { min: 0, max: INT },
        "job.expire.minutes" => ValueKind::Integer { min: 1, max: INT },
        "router.check.interval" => ValueKind::Integer { min: 0, max: INT },
        "default.page.size" => ValueKind::Integer {
            min: 1,
            max: MAX_PAGE_SIZE,
        },
        "network.guest.cidr.limit" => ValueKind::Integer { min: 0, max: 32 },
        // An IPv4 link's MTU: 68 (RFC 791) up to the largest a link takes.
        "vr.public.interface.max.mtu" => ValueKind::Integer {
            min: 68,
            max: 65535,
        },
        "allow.non.rfc1918.compliant.ips"
        | "vpc.tier.name.prepend"
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
fn checked_value(name: &str, value: &str) -> Result<std::string::String, Error> {
    let bad = |why: std::string::String| {
        Error::invalid(format!(
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

/// The configuration commands.
pub(super) fn commands() -> Vec<CommandSpec> {
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
            job: None,
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
            job: None,
        },
    ]
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// The scope named by `zoneid`, `accountid` or `domainid` (at most one, and
/// it must exist): `Zone`, `Account` or `Domain` as declared in the store.
async fn scope_param(ctx: &Ctx, params: &Params) -> Result<Option<&'static str>, Error> {
    let given: Vec<&str> = ["zoneid", "accountid", "domainid"]
        .into_iter()
        .filter(|n| params.get(n).is_some_and(|v| !v.is_empty()))
        .collect();
    if given.len() > 1 {
        return Err(Error::invalid(
            "Give at most one of zoneid, accountid and domainid: each names a scope",
        ));
    }
    let db = &ctx.app.db;
    if let Some(id) = params.uuid("zoneid")? {
        let id = id.to_string();
        zone::get_by_uuid(db, &id)
            .await?
            .filter(|z| z.removed.is_none())
            .ok_or_else(|| Error::invalid_id("zoneid", &id))?;
        return Ok(Some("Zone"));
    }
    if let Some(id) = params.uuid("accountid")? {
        let id = id.to_string();
        account::get_by_uuid(db, &id)
            .await?
            .filter(|a| a.removed.is_none())
            .ok_or_else(|| Error::invalid_id("accountid", &id))?;
        return Ok(Some("Account"));
    }
    if let Some(id) = params.uuid("domainid")? {
        let id = id.to_string();
        domain::get_by_uuid(db, &id)
            .await?
            .filter(|d| d.removed.is_none())
            .ok_or_else(|| Error::invalid_id("domainid", &id))?;
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
            return Err(Error::invalid(format!(
                "{scoped} is not supported: this manager stores global configuration values only"
            )));
        }
    }
    let db = &ctx.app.db;
    if config::get(db, &name).await?.is_none() {
        return Err(Error::invalid(format!(
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
        .ok_or_else(|| Error::invalid(format!("The configuration {name} does not exist")))?;
    tracing::info!(name = %name, value = ?updated.value, by = %ctx.caller.account_name, "configuration updated");
    Ok(Reply::Object(config_view(&updated, "global")))
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_take_integers_in_range() {
        assert_eq!(checked_value("vpc.max.networks", " 5 ").unwrap(), "5");
        for bad in ["abc", "0", "1.5", ""] {
            assert_eq!(
                checked_value("vpc.max.networks", bad)
                    .map_err(crate::api::ApiError::from)
                    .unwrap_err()
                    .code,
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
}
