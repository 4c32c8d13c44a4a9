//! Global configuration keys, one command per file: `listConfigurations`
//! ([`list`]) and `updateConfiguration` ([`update`]); here, the rules a
//! key's value must follow and the `configuration` object.

mod list;
mod update;

use serde_json::{Value, json};

use crate::error::Error;
use crate::server::registry::{FieldSpec, field};
use crate::store::{config, limit};

pub use list::ListConfigurations;
pub use update::UpdateConfiguration;

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
    /// A decimal number from 1 to 1000 (a multiplier such as `2.5`).
    Multiplier,
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
        "network.acl.max.items" => ValueKind::Integer { min: 1, max: INT },
        "vm.userdata.max.length" => ValueKind::Integer {
            min: 1,
            max: crate::services::userdata::MAX_POST_LENGTH as i64,
        },
        // CloudStack refuses fewer than 6 characters.
        "vm.password.length" => ValueKind::Integer { min: 6, max: 255 },
        "vpc.cleanup.interval" | "network.gc.interval" => ValueKind::Integer { min: 1, max: INT },
        "network.gc.wait" => ValueKind::Integer { min: 0, max: INT },
        "incorrect.login.attempts.allowed" => ValueKind::Integer { min: 0, max: INT },
        "job.expire.minutes" => ValueKind::Integer { min: 1, max: INT },
        "cluster.heartbeat.interval" => ValueKind::Integer { min: 100, max: INT },
        "cluster.heartbeat.threshold" => ValueKind::Integer {
            min: 1000,
            max: INT,
        },
        "router.check.interval" => ValueKind::Integer { min: 0, max: INT },
        "ping.interval" => ValueKind::Integer { min: 1, max: 3600 },
        "ping.timeout" => ValueKind::Multiplier,
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
        | "enforce.post.requests.and.timestamps"
        | "global.allow.expose.host.hostname" => ValueKind::Boolean,
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
        ValueKind::Multiplier => "Float",
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
fn checked_value(name: &str, value: &str) -> Result<String, Error> {
    let bad = |why: String| {
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
        ValueKind::Multiplier => {
            let n: f64 = value
                .trim()
                .parse()
                .map_err(|_| bad("a decimal number is expected".into()))?;
            if !(1.0..=1000.0).contains(&n) {
                return Err(bad("it must be between 1 and 1000".into()));
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

const CONFIG_FIELDS: &[FieldSpec] = &[
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
];

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
