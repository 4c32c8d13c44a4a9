//! A load balancer rule's stickiness policy: its method and CloudStack's
//! parameter map, checked and turned into [`Stickiness`].
//!
//! Every value ends up in HAProxy's configuration file, where a space starts
//! a new argument and a newline a new directive: so each value has a narrow
//! grammar (a cookie token, a number with a unit, a domain name), and an
//! unknown parameter is refused rather than ignored. The time and size
//! formats are CloudStack's (`validateLbRule` in the VR element): digits,
//! then one unit letter.

use std::collections::HashMap;

use vpc_proto::v1 as pb;

use super::{Invalid, Result, bad, text};
use crate::model::{CookieMode, Stickiness, UrlMode};

/// The longest cookie name accepted.
const MAX_COOKIE_LEN: usize = 64;

/// The policy of rule `field`, or `None` when it has none.
pub(super) fn stickiness(
    field: &str,
    wire: Option<&pb::LbStickiness>,
    protocol_is_tcp: bool,
    public: (&str, u32),
) -> Result<Option<Stickiness>> {
    let Some(wire) = wire else {
        return Ok(None);
    };
    let f = |name: &str| format!("{field}.{name}");
    let params = Params {
        field: f("params"),
        map: &wire.params,
    };
    let sticky = match pb::LbStickinessMethod::try_from(wire.method) {
        Ok(pb::LbStickinessMethod::Unspecified) => return Ok(None),
        Ok(pb::LbStickinessMethod::LbCookie) => {
            params.only(&[
                "cookie-name",
                "mode",
                "nocache",
                "indirect",
                "postonly",
                "domain",
            ])?;
            let mode = match params.get("mode") {
                None | Some("insert") => CookieMode::Insert,
                Some("rewrite") => CookieMode::Rewrite,
                Some("prefix") => CookieMode::Prefix,
                Some(other) => {
                    return Err(params.refuse("mode", other, "insert, rewrite or prefix"));
                }
            };
            Stickiness::LbCookie {
                cookie: params.cookie("cookie-name", &default_cookie("lbcooki_", public))?,
                mode,
                nocache: params.flag("nocache")?,
                indirect: params.flag("indirect")?,
                postonly: params.flag("postonly")?,
                domain: params.domain("domain")?,
            }
        }
        Ok(pb::LbStickinessMethod::AppCookie) => {
            params.only(&[
                "cookie-name",
                "length",
                "holdtime",
                "request-learn",
                "prefix",
                "mode",
            ])?;
            let length = match params.get("length") {
                None => 52,
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1024).contains(n))
                    .ok_or_else(|| params.refuse("length", v, "a number from 1 to 1024"))?,
            };
            // HAProxy 2 dropped `appsession` and its prefix match; a stick
            // table matches whole cookie values only.
            if params.flag("prefix")? {
                return Err(bad(
                    params.name("prefix"),
                    "is not supported by this router's HAProxy (whole cookie values only)",
                ));
            }
            let mode = match params.get("mode") {
                None | Some("path-parameters") => UrlMode::PathParameters,
                Some("query-string") => UrlMode::QueryString,
                Some(other) => {
                    return Err(params.refuse("mode", other, "path-parameters or query-string"));
                }
            };
            Stickiness::AppCookie {
                cookie: params.cookie("cookie-name", &default_cookie("appcookie_", public))?,
                length,
                holdtime: params.amount("holdtime", "3h", "smhd", true)?,
                request_learn: params.flag("request-learn")?,
                mode,
            }
        }
        Ok(pb::LbStickinessMethod::SourceBased) => {
            params.only(&["tablesize", "expire"])?;
            Stickiness::SourceBased {
                table_size: params.amount("tablesize", "200k", "kmg", false)?,
                expire: params.amount("expire", "30m", "smhd", false)?,
            }
        }
        Err(_) => {
            return Err(bad(
                f("method"),
                "is not LB_COOKIE, APP_COOKIE or SOURCE_BASED",
            ));
        }
    };
    if !protocol_is_tcp && !matches!(sticky, Stickiness::SourceBased { .. }) {
        return Err(bad(
            f("method"),
            "cookie stickiness needs HTTP over TCP; a UDP rule may only be SOURCE_BASED",
        ));
    }
    Ok(Some(sticky))
}

/// The cookie name CloudStack's VR uses when a policy names none
/// (`HAProxyConfigurator.getLbSubRuleForStickiness`): a prefix
/// (`lbcooki_` for LbCookie, `appcookie_` for AppCookie), Java's
/// `String.hashCode` of the rule's public address as text, `_`, and the
/// public port; e.g. `lbcooki_-1532186163_80`. Only letters, digits, `_`
/// and `-`, so it is a valid cookie token.
fn default_cookie(prefix: &str, (address, port): (&str, u32)) -> String {
    format!("{prefix}{}_{port}", java_string_hash(address))
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16
/// units, in wrapping 32-bit arithmetic.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The parameter map of one policy, with the field name errors carry.
struct Params<'a> {
    field: String,
    map: &'a HashMap<String, String>,
}

impl Params<'_> {
    fn name(&self, key: &str) -> String {
        format!("{}[{key}]", self.field)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    fn refuse(&self, key: &str, value: &str, wanted: &str) -> Invalid {
        bad(
            self.name(key),
            format!("{} is not {wanted}", text::shown(value)),
        )
    }

    /// Refuses a parameter the method does not take.
    fn only(&self, known: &[&str]) -> Result<()> {
        let mut unknown: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(k) => Err(bad(
                self.name(&text::shown(k)),
                format!("is not a parameter of this method ({})", known.join(", ")),
            )),
        }
    }

    /// A boolean parameter: absent is false; CloudStack sends `true`/`false`.
    fn flag(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(self.refuse(key, v, "true or false")),
        }
    }

    /// A cookie domain: a domain name, with a leading dot when any host
    /// under it may send the cookie back.
    fn domain(&self, key: &str) -> Result<Option<String>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let (dot, name) = match v.strip_prefix('.') {
            Some(rest) => (".", rest),
            None => ("", v),
        };
        let name = text::domain(&self.name(key), name)?;
        Ok(Some(format!("{dot}{name}")))
    }

    /// A cookie name: a token of RFC 6265 narrowed to letters, digits, `_`
    /// and `-`, so it is safe as one HAProxy argument.
    fn cookie(&self, key: &str, default: &str) -> Result<String> {
        let Some(v) = self.get(key) else {
            return Ok(default.to_string());
        };
        let ok = !v.is_empty()
            && v.len() <= MAX_COOKIE_LEN
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if ok {
            Ok(v.to_string())
        } else {
            Err(self.refuse(
                key,
                v,
                "a cookie name (up to 64 letters, digits, '_' and '-')",
            ))
        }
    }

    /// Digits and one unit from `units` (`30m`, `200k`); a bare number too
    /// when `bare` (CloudStack accepts a plain `holdtime`).
    fn amount(&self, key: &str, default: &str, units: &str, bare: bool) -> Result<String> {
        let Some(v) = self.get(key) else {
            return Ok(default.to_string());
        };
        let digits = v.strip_suffix(|c: char| units.contains(c));
        let ok = match digits {
            Some(d) => !d.is_empty() && d.len() <= 9 && d.chars().all(|c| c.is_ascii_digit()),
            None => bare && !v.is_empty() && v.len() <= 9 && v.chars().all(|c| c.is_ascii_digit()),
        };
        if ok {
            Ok(v.to_string())
        } else {
            let units: Vec<String> = units.chars().map(String::from).collect();
            Err(self.refuse(
                key,
                v,
                &format!("a number followed by one of {}", units.join(", ")),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_string_hash_matches_javas_string_hash_code() {
        // Values Java's "hello".hashCode() and friends return.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("198.51.100.10"), 1_087_838_576);
        // Wraps to negative as Java's int does.
        assert_eq!(java_string_hash("TESTCOOKIE"), -1_628_764_810);
    }

    #[test]
    fn unnamed_cookies_get_cloudstacks_default_names() {
        assert_eq!(
            default_cookie("lbcooki_", ("198.51.100.10", 80)),
            "lbcooki_1087838576_80"
        );
        assert_eq!(
            default_cookie("appcookie_", ("TESTCOOKIE", 8080)),
            "appcookie_-1628764810_8080"
        );
        let map: HashMap<String, String> = HashMap::new();
        let wire = pb::LbStickiness {
            method: pb::LbStickinessMethod::LbCookie as i32,
            params: map,
        };
        let got = stickiness("lb", Some(&wire), true, ("198.51.100.10", 80)).unwrap();
        match got {
            Some(Stickiness::LbCookie { cookie, .. }) => {
                assert_eq!(cookie, "lbcooki_1087838576_80");
            }
            other => panic!("{other:?}"),
        }
    }
}
