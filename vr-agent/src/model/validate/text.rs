//! The grammars of the protocol's free-text fields.
//!
//! Strings from the manager end up in files the agent writes (dnsmasq's
//! configuration, hosts and names files), in its logs and in error messages.
//! A newline in one of them once added a `dhcp-script=` directive to a tier's
//! dnsmasq configuration, which ran a chosen program as root. So every string
//! field of `vpc.agent.v1` has a grammar here (or is parsed as an address,
//! a CIDR or a MAC by its validator), and none of the grammars admits a line
//! break, a comment sign, a quote or a field separator.

use super::{Result, bad};

/// The longest identifier: a UUID is 36 characters.
pub const MAX_ID_LEN: usize = 64;
/// The longest name (CloudStack keeps names in `varchar(255)` columns).
pub const MAX_NAME_LEN: usize = 255;
/// The longest DUID: a 2-byte type and at most 128 bytes (RFC 8415 §11.1).
pub const MAX_DUID_BYTES: usize = 130;
/// How much of a refused value an error message quotes.
const SHOWN_CHARS: usize = 48;

/// `value` for an error message: quoted and escaped (`{:?}`), cut after
/// [`SHOWN_CHARS`] characters so a megabyte of input is not echoed back.
pub fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &value[..cut], value.len()),
    }
}

/// An identifier of something the manager holds (a UUID, or a short name such
/// as `pf-ssh`): empty, or 1 to 64 of `[A-Za-z0-9._-]` starting with a letter
/// or digit. Empty is allowed: the ids are informational.
pub(crate) fn identifier(field: &str, value: &str) -> Result<()> {
    let ok = value.is_empty()
        || (value.len() <= MAX_ID_LEN
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            format!(
                "{} is not an identifier (a UUID, or up to {MAX_ID_LEN} letters, digits, \
                 '.', '_' and '-' starting with a letter or digit)",
                shown(value)
            ),
        ))
    }
}

/// A name a user chose (an ACL list, a load balancer rule) or the router's
/// name: at most 255 characters, any script, but no control character, no
/// line or paragraph separator and no bidirectional override (which would
/// make a log line read differently from what it holds).
pub(crate) fn name(field: &str, value: &str) -> Result<()> {
    let forbidden = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                    | '\u{2066}'..='\u{2069}' | '\u{feff}'
            )
    };
    if value.chars().count() > MAX_NAME_LEN {
        return Err(bad(
            field,
            format!("is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if let Some(c) = value.chars().find(|c| forbidden(*c)) {
        return Err(bad(
            field,
            format!(
                "{} holds the character U+{:04X}, which a name may not hold (control \
                 characters, line separators, direction overrides)",
                shown(value),
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

/// A network's broadcast URI as CloudStack spells it (`vlan://100`,
/// `vxlan://5000`, `vlan://untagged`, `untagged`) or a bare VLAN id: empty, or
/// an optional lower-case scheme and `://`, then 1 to 64 of `[A-Za-z0-9._-]`.
pub(crate) fn broadcast_uri(field: &str, value: &str) -> Result<()> {
    let rest = match value.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme.len() <= 16
                && scheme.chars().all(|c| c.is_ascii_lowercase()) =>
        {
            rest
        }
        Some(_) => "",
        None => value,
    };
    let ok = value.is_empty()
        || (!rest.is_empty()
            && rest.len() <= MAX_ID_LEN
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            format!(
                "{} is not a VLAN or broadcast URI (e.g. vlan://100, vxlan://5000, untagged)",
                shown(value)
            ),
        ))
    }
}

/// A DHCPv6 DUID: empty, or 2 to 130 bytes as two hex digits each, joined by
/// colons (`00:03:00:01:02:00:00:00:aa:05`).
pub(crate) fn duid(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Ok(());
    }
    let bytes: Vec<&str> = value.split(':').collect();
    let ok = (2..=MAX_DUID_BYTES).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            format!(
                "{} is not a DUID (2 to {MAX_DUID_BYTES} hex bytes joined by ':')",
                shown(value)
            ),
        ))
    }
}

/// A host name: one RFC 1123 label, 1 to 63 letters, digits and inner
/// hyphens; kept lower-case (DNS is case-insensitive, dnsmasq matches so).
pub(crate) fn hostname(field: &str, value: &str) -> Result<String> {
    if is_label(value) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(bad(
            field,
            format!(
                "{} is not a host name (letters, digits, inner hyphens, at most 63)",
                shown(value)
            ),
        ))
    }
}

/// A DNS domain: empty, or RFC 1123 labels joined by dots, at most 253
/// characters; kept lower-case.
pub(crate) fn domain(field: &str, value: &str) -> Result<String> {
    if value.is_empty() {
        return Ok(String::new());
    }
    if value.len() <= 253 && value.split('.').all(is_label) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(bad(field, format!("{} is not a DNS domain", shown(value))))
    }
}

fn is_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// An optional IPv6 address (carried for dual-stack tiers).
pub(crate) fn ipv6(field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.parse::<std::net::Ipv6Addr>().is_ok() {
        Ok(())
    } else {
        Err(bad(
            field,
            format!("{} is not an IPv6 address", shown(value)),
        ))
    }
}

/// An optional IPv6 network (carried for dual-stack tiers).
pub(crate) fn ipv6_net(field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.parse::<ipnet::Ipv6Net>().is_ok() {
        Ok(())
    } else {
        Err(bad(field, format!("{} is not an IPv6 CIDR", shown(value))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_uuids_or_short_words_and_nothing_that_breaks_a_line() {
        for ok in [
            "",
            "6f1c4b1e-9d6a-4c4e-8f3e-0a6f1f8b7c21",
            "pf-ssh",
            "tier_1.a",
        ] {
            identifier("id", ok).unwrap();
        }
        for no in [
            "a\ndhcp-script=/x",
            "a\r",
            "a\0",
            "-rf",
            ".hidden",
            "a b",
            "a#b",
            "a=b",
            "a,b",
            "\"a\"",
            "é",
            &"a".repeat(65),
        ] {
            let err = identifier("nics[0].network_id", no).unwrap_err();
            assert_eq!(err.field, "nics[0].network_id", "{no:?}");
        }
    }

    #[test]
    fn names_take_any_script_but_no_control_or_direction_characters() {
        for ok in ["", "web ACL (prod)", "règles d'accès", "ウェブ", "a#b=c,d"] {
            name("acl_name", ok).unwrap();
        }
        for no in [
            "a\nb",
            "a\rb",
            "a\0b",
            "a\u{2028}b",
            "a\u{202e}b",
            "a\u{85}b",
            "\t",
        ] {
            assert!(name("acl_name", no).is_err(), "{no:?}");
        }
        assert!(name("n", &"é".repeat(255)).is_ok());
        assert!(name("n", &"é".repeat(256)).is_err());
    }

    #[test]
    fn broadcast_uris_duids_and_ipv6_fields_have_their_grammar() {
        for ok in [
            "",
            "vlan://100",
            "vxlan://5000",
            "vlan://untagged",
            "untagged",
            "42",
        ] {
            broadcast_uri("vlan", ok).unwrap();
        }
        for no in [
            "vlan://",
            "://1",
            "VLAN://1",
            "vlan://1\n",
            "vlan://1/2",
            "a b",
        ] {
            assert!(broadcast_uri("vlan", no).is_err(), "{no:?}");
        }
        duid("duid", "").unwrap();
        duid("duid", "00:03:00:01:02:00:00:00:aa:05").unwrap();
        for no in ["00", "0:03", "00:0g", "00:03\n", "00:03:", "00-03"] {
            assert!(duid("duid", no).is_err(), "{no:?}");
        }
        assert!(duid("duid", &vec!["ab"; 131].join(":")).is_err());
        ipv6("a", "2001:db8::1").unwrap();
        ipv6_net("a", "2001:db8::/64").unwrap();
        assert!(ipv6("a", "10.0.0.1").is_err());
        assert!(ipv6_net("a", "2001:db8::/64\nx").is_err());
    }

    #[test]
    fn refused_values_are_quoted_escaped_and_cut() {
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        let long = shown(&"x".repeat(10_000));
        assert!(long.len() < 80, "{long}");
        assert!(long.ends_with("(10000 bytes)"), "{long}");
    }
}
