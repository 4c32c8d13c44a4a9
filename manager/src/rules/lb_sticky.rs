//! Stickiness policies of load balancer rules (createLBStickinessPolicy),
//! checked as CloudStack checks them for the VR's HAProxy provider: the
//! method must be one the provider lists (LbCookie, AppCookie, SourceBased),
//! each `param` one of the method's, with a value unless it is a flag, and
//! the values in the formats `validateLbRule` of the VR element demands.
//! The texts are CloudStack's. On top, what this router writes into
//! HAProxy's file must be one token: cookie names and domains are narrowed
//! here, so the router never refuses what the API accepted.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::orchestration::model::StickinessMethod;

/// `(name, flag)` of each method's parameters, as the VR advertises them.
fn method_params(method: StickinessMethod) -> &'static [(&'static str, bool)] {
    match method {
        StickinessMethod::LbCookie => &[
            ("cookie-name", false),
            ("mode", false),
            ("nocache", true),
            ("indirect", true),
            ("postonly", true),
            ("domain", false),
        ],
        StickinessMethod::AppCookie => &[
            ("cookie-name", false),
            ("length", false),
            ("holdtime", false),
            ("request-learn", true),
            ("prefix", true),
            ("mode", false),
        ],
        StickinessMethod::SourceBased => &[("tablesize", false), ("expire", false)],
    }
}

/// Digits (at most 9: CloudStack parses an int) followed by one of `units`;
/// also bare digits when `bare`.
fn amount(value: &str, units: &str, bare: bool) -> bool {
    let digits = |d: &str| !d.is_empty() && d.len() <= 9 && d.bytes().all(|b| b.is_ascii_digit());
    match value.strip_suffix(|c: char| units.contains(c)) {
        Some(d) => digits(d),
        None => bare && digits(value),
    }
}

fn cookie_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn domain(value: &str) -> bool {
    let name = value.strip_prefix('.').unwrap_or(value);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A checked policy: its method and its `(name, value)` pairs, names in
/// lower case, flags as `true`/`false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedPolicy {
    pub method: StickinessMethod,
    pub params: Vec<(String, String)>,
}

/// Checks `methodname` and the `param` map (`param[i].name`,
/// `param[i].value`) of a policy for rule `rule` (its UUID, for the texts);
/// `udp` when the rule balances UDP.
pub fn validate_policy(
    rule: &str,
    method_name: &str,
    param: &[BTreeMap<String, String>],
    udp: bool,
) -> Result<CheckedPolicy, Error> {
    let method = StickinessMethod::parse(method_name.trim()).ok_or_else(|| {
        Error::invalid(format!(
            "Failed to match Stickiness method name for LB rule:{rule}"
        ))
    })?;
    let known = method_params(method);
    let mut params: Vec<(String, String)> = Vec::new();
    for entry in param {
        let name = entry.get("name").map(|n| n.trim()).unwrap_or_default();
        let value = entry
            .get("value")
            .map(|v| v.trim())
            .filter(|v| !v.is_empty());
        let Some((canonical, flag)) = known
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .copied()
        else {
            return Err(Error::invalid(format!(
                "Failed : Stickiness policy does not support param name :{name}"
            )));
        };
        let value = match (value, flag) {
            (None, false) => {
                return Err(Error::invalid(format!(
                    "Failed : Value expected for the Param :{canonical}"
                )));
            }
            // A flag given without a value is set.
            (None, true) => "true".to_string(),
            (Some(v), _) => v.to_string(),
        };
        params.retain(|(n, _)| n != canonical);
        params.push((canonical.to_string(), value));
    }
    let cause = |what: String| {
        Error::invalid(format!(
            "Failed LB in validation rule id: {rule} Cause: {what}"
        ))
    };
    if udp && method != StickinessMethod::SourceBased {
        return Err(cause(format!(
            "{} stickiness needs http over tcp; the rule balances udp",
            method.as_str()
        )));
    }
    for (name, value) in &params {
        let flag = known.iter().any(|(n, f)| n == name && *f);
        let ok = match (method, name.as_str()) {
            _ if flag => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
            (_, "cookie-name") => cookie_name(value),
            (_, "domain") => domain(value),
            (StickinessMethod::LbCookie, "mode") => {
                matches!(value.as_str(), "insert" | "rewrite" | "prefix")
            }
            (_, "mode") => matches!(value.as_str(), "path-parameters" | "query-string"),
            (_, "length") => value.parse::<u32>().is_ok_and(|n| (1..=1024).contains(&n)),
            (_, "holdtime") => amount(value, "dhms", true),
            (_, "expire") => amount(value, "dhms", false),
            (_, "tablesize") => amount(value, "kmg", false),
            _ => true,
        };
        if !ok {
            let what = match name.as_str() {
                "expire" | "holdtime" => format!("{name} is not in timeformat: {value}"),
                "tablesize" => format!("{name} is not in size format: {value}"),
                "length" => format!("{name} is not a number: {value}"),
                _ if flag => format!("{name} is not true or false: {value}"),
                "cookie-name" => format!(
                    "cookie-name is not a cookie name (up to 64 letters, digits, '_' and '-'): \
                     {value}"
                ),
                "domain" => format!("domain is not a domain name: {value}"),
                _ => format!("{name} is not a valid value: {value}"),
            };
            return Err(cause(what));
        }
        if name == "prefix" && value.eq_ignore_ascii_case("true") {
            return Err(cause(
                "prefix is not supported by the VPC virtual router's HAProxy (whole cookie \
                 values only)"
                    .into(),
            ));
        }
    }
    Ok(CheckedPolicy { method, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<BTreeMap<String, String>> {
        pairs
            .iter()
            .map(|(n, v)| {
                let mut m = BTreeMap::new();
                m.insert("name".to_string(), n.to_string());
                if !v.is_empty() {
                    m.insert("value".to_string(), v.to_string());
                }
                m
            })
            .collect()
    }

    fn text(r: Result<CheckedPolicy, Error>) -> String {
        crate::api::ApiError::from(r.unwrap_err()).text
    }

    #[test]
    fn the_vr_methods_and_their_params_are_accepted() {
        let c = validate_policy(
            "r1",
            "lbcookie",
            &p(&[("cookie-name", "SRV"), ("nocache", "")]),
            false,
        )
        .unwrap();
        assert_eq!(c.method, StickinessMethod::LbCookie);
        assert_eq!(
            c.params,
            vec![
                ("cookie-name".to_string(), "SRV".to_string()),
                ("nocache".to_string(), "true".to_string())
            ]
        );
        validate_policy(
            "r1",
            "AppCookie",
            &p(&[("length", "52"), ("holdtime", "3h")]),
            false,
        )
        .unwrap();
        validate_policy(
            "r1",
            "SourceBased",
            &p(&[("tablesize", "200k"), ("expire", "30m")]),
            true,
        )
        .unwrap();
    }

    #[test]
    fn cloudstack_texts_for_refused_policies() {
        assert_eq!(
            text(validate_policy("r1", "Cookie", &[], false)),
            "Failed to match Stickiness method name for LB rule:r1"
        );
        assert_eq!(
            text(validate_policy(
                "r1",
                "LbCookie",
                &p(&[("holdtime", "3h")]),
                false
            )),
            "Failed : Stickiness policy does not support param name :holdtime"
        );
        assert_eq!(
            text(validate_policy(
                "r1",
                "LbCookie",
                &p(&[("cookie-name", "")]),
                false
            )),
            "Failed : Value expected for the Param :cookie-name"
        );
        assert_eq!(
            text(validate_policy(
                "r1",
                "SourceBased",
                &p(&[("expire", "30x")]),
                false
            )),
            "Failed LB in validation rule id: r1 Cause: expire is not in timeformat: 30x"
        );
        assert_eq!(
            text(validate_policy(
                "r1",
                "SourceBased",
                &p(&[("tablesize", "big")]),
                false
            )),
            "Failed LB in validation rule id: r1 Cause: tablesize is not in size format: big"
        );
        assert_eq!(
            text(validate_policy(
                "r1",
                "AppCookie",
                &p(&[("length", "x")]),
                false
            )),
            "Failed LB in validation rule id: r1 Cause: length is not a number: x"
        );
    }

    #[test]
    fn values_that_would_break_the_proxy_file_are_refused() {
        let t = text(validate_policy(
            "r1",
            "LbCookie",
            &p(&[("cookie-name", "a b\nserver x 1.2.3.4:80")]),
            false,
        ));
        assert!(t.contains("cookie-name is not a cookie name"), "{t}");
        let t = text(validate_policy(
            "r1",
            "LbCookie",
            &p(&[("domain", "a;b")]),
            false,
        ));
        assert!(t.contains("domain is not a domain name"), "{t}");
        let t = text(validate_policy("r1", "LbCookie", &[], true));
        assert!(t.contains("needs http over tcp"), "{t}");
    }
}
