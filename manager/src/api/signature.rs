//! API-key request signing, byte-for-byte as CloudStack verifies it
//! (reference §1.2) and the `expires` timestamps of signatureVersion 3 (§1.3).
//!
//! The signed string is every parameter except `signature`, sorted by name as
//! sent, each value encoded like Java's `URLEncoder` with `+` turned into
//! `%20`, joined with `&`, and the whole string lower-cased. The signature is
//! the standard base64 of HMAC-SHA1 over it, keyed with the secret key.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// How values are percent-encoded in the signed string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canonicalisation {
    /// Java `URLEncoder` (+ `%20` for spaces): what CloudStack itself does.
    Java,
    /// As Java, but `~` left unescaped: what Go's `url.QueryEscape` and
    /// Python's `quote` produce, so values with `~` from those clients match.
    TildeUnescaped,
}

/// The lower-cased string CloudStack signs, with Java's encoding.
pub fn canonical_query(params: &[(String, String)]) -> String {
    canonical_query_with(params, Canonicalisation::Java)
}

/// The lower-cased string to sign, with the chosen value encoding.
///
/// `signature` (any case) is left out. A name sent twice counts once, with
/// its first value, as the Java server only signs each name's first value.
/// Names are not encoded: the server signs them as decoded by the servlet,
/// so `tags[0].key` stays as it is.
pub fn canonical_query_with(params: &[(String, String)], how: Canonicalisation) -> String {
    let mut seen = HashSet::with_capacity(params.len());
    let mut signed: Vec<&(String, String)> = Vec::with_capacity(params.len());
    for pair in params {
        let name = pair.0.as_str();
        if !name.eq_ignore_ascii_case("signature") && seen.insert(name) {
            signed.push(pair);
        }
    }
    // Byte order of the names as sent (`apiKey` sorts before `apikey`); the
    // names are unique now, so stability does not matter.
    signed.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

    let mut out = String::new();
    for (i, (name, value)) in signed.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        encode_value(value, how, &mut out);
    }
    out.to_lowercase()
}

/// Appends `value` percent-encoded like Java's `URLEncoder`, with spaces as
/// `%20`. Hex digits are upper-case here; the caller lower-cases everything.
fn encode_value(value: &str, how: Canonicalisation, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        let unreserved = b.is_ascii_alphanumeric()
            || matches!(b, b'.' | b'-' | b'*' | b'_')
            || (b == b'~' && how == Canonicalisation::TildeUnescaped);
        if unreserved {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// HMAC-SHA1 of `message` keyed with `secret`, base64 with padding.
fn mac_base64(secret: &str, message: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA1 accepts keys of any length");
    mac.update(message.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The `signature` a client would send for `params` (Java canonicalisation).
pub fn sign(secret: &str, params: &[(String, String)]) -> String {
    mac_base64(secret, &canonical_query(params))
}

/// Whether `signature` is valid for `params` under `secret`, compared in
/// constant time.
///
/// The Java canonicalisation is tried first; when a value holds `~`, the
/// variant that leaves it unescaped is accepted too (§1.2). Spaces in the
/// received signature are read as `+`: a client that forgot to escape the
/// base64 `+` in a query string has it decoded to a space, and base64 never
/// contains spaces, so this cannot make a wrong signature match.
pub fn verify(secret: &str, params: &[(String, String)], signature: &str) -> bool {
    let given = signature.replace(' ', "+");
    let matches = |how| {
        let expected = mac_base64(secret, &canonical_query_with(params, how));
        bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    };
    if matches(Canonicalisation::Java) {
        return true;
    }
    let has_tilde = params
        .iter()
        .any(|(n, v)| !n.eq_ignore_ascii_case("signature") && v.contains('~'));
    has_tilde && matches(Canonicalisation::TildeUnescaped)
}

/// Parses an `expires` value in the forms clients send (§1.3): RFC 3339 /
/// ISO-8601 with `Z` or `±hh:mm`, `±hhmm` as `cs` sends via
/// `%Y-%m-%dT%H:%M:%S%z`, each with optional fractional seconds.
///
/// A timestamp without an offset is refused: its meaning would depend on
/// the server's time zone.
pub fn parse_expires(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    // `%.f` also matches no fraction at all; `%z` takes `+0000`.
    DateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn first_reference_vector() {
        let p = pairs(&[
            ("apiKey", "AK123"),
            ("command", "listVPCs"),
            ("listall", "true"),
            ("response", "json"),
        ]);
        assert_eq!(
            canonical_query(&p),
            "apikey=ak123&command=listvpcs&listall=true&response=json"
        );
        assert_eq!(sign("SECRET", &p), "krVNZU0wQNDF/GzlZSu+3M8yLlc=");
        assert!(verify("SECRET", &p, "krVNZU0wQNDF/GzlZSu+3M8yLlc="));
    }

    #[test]
    fn second_reference_vector_with_expiry_and_tilde() {
        let p = pairs(&[
            ("apiKey", "AK123"),
            ("command", "createVPC"),
            ("name", "my vpc~1"),
            ("cidr", "10.0.0.0/16"),
            ("zoneid", "Z1"),
            ("vpcofferingid", "O1"),
            ("response", "json"),
            ("signatureVersion", "3"),
            ("expires", "2030-01-01T00:00:00+0000"),
        ]);
        assert_eq!(
            canonical_query(&p),
            "apikey=ak123&cidr=10.0.0.0%2f16&command=createvpc&expires=2030-01-01t00%3a00%3a00%2b0000\
             &name=my%20vpc%7e1&response=json&signatureversion=3&vpcofferingid=o1&zoneid=z1"
        );
        assert_eq!(sign("SECRET", &p), "THwM3t2xdmUwhvq+rBKvO2RkP/k=");
    }

    #[test]
    fn tilde_left_unescaped_by_go_and_python_is_accepted() {
        let p = pairs(&[("command", "listVPCs"), ("keyword", "a~b")]);
        assert_eq!(canonical_query(&p), "command=listvpcs&keyword=a%7eb");
        let alt = canonical_query_with(&p, Canonicalisation::TildeUnescaped);
        assert_eq!(alt, "command=listvpcs&keyword=a~b");
        let go_signature = mac_base64("k", &alt);
        assert!(verify("k", &p, &go_signature));
        assert!(verify("k", &p, &sign("k", &p)));
        assert!(!verify("other", &p, &go_signature));
    }

    #[test]
    fn non_ascii_is_encoded_from_utf8_bytes() {
        let p = pairs(&[("name", "Zürich €")]);
        assert_eq!(canonical_query(&p), "name=z%c3%bcrich%20%e2%82%ac");
    }

    #[test]
    fn star_and_java_unreserved_stay_plain_everything_else_is_escaped() {
        let p = pairs(&[("v", "a*b.c-d_e"), ("w", "+&=/?%")]);
        assert_eq!(canonical_query(&p), "v=a*b.c-d_e&w=%2b%26%3d%2f%3f%25");
    }

    #[test]
    fn signature_is_excluded_in_any_case_and_names_sort_as_sent() {
        let p = pairs(&[
            ("zoneid", "1"),
            ("Signature", "x"),
            ("signature", "y"),
            ("apikey", "2"),
            ("apiKey", "3"),
        ]);
        // 'K' (0x4b) sorts before 'k' (0x6b).
        assert_eq!(canonical_query(&p), "apikey=3&apikey=2&zoneid=1");
    }

    #[test]
    fn repeated_names_are_signed_once_with_the_first_value() {
        let p = pairs(&[("a", "1"), ("a", "2")]);
        assert_eq!(canonical_query(&p), "a=1");
    }

    #[test]
    fn map_names_are_not_encoded() {
        let p = pairs(&[("tags[0].key", "Env")]);
        assert_eq!(canonical_query(&p), "tags[0].key=env");
    }

    #[test]
    fn wrong_or_truncated_signatures_fail() {
        let p = pairs(&[("command", "listVPCs")]);
        let good = sign("s", &p);
        assert!(verify("s", &p, &good));
        assert!(!verify("s", &p, &good[..good.len() - 1]));
        assert!(!verify("s", &p, ""));
        assert!(!verify("t", &p, &good));
    }

    #[test]
    fn unescaped_plus_decoded_as_space_still_verifies() {
        let p = pairs(&[
            ("apiKey", "AK123"),
            ("command", "listVPCs"),
            ("listall", "true"),
            ("response", "json"),
        ]);
        assert!(verify("SECRET", &p, "krVNZU0wQNDF/GzlZSu 3M8yLlc="));
    }

    #[test]
    fn expires_forms() {
        let want = "2025-01-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        for s in [
            "2025-01-01T10:00:00Z",
            "2025-01-01T10:00:00+00:00",
            "2025-01-01T10:00:00+0000",
            "2025-01-01T12:00:00+0200",
            "2025-01-01T05:00:00-05:00",
        ] {
            assert_eq!(parse_expires(s), Some(want), "{s}");
        }
        let micro = parse_expires("2025-01-01T10:00:00.123456Z").unwrap();
        assert_eq!(micro.timestamp_subsec_micros(), 123_456);
        let micro = parse_expires("2025-01-01T10:00:00.5+0000").unwrap();
        assert_eq!(micro.timestamp_subsec_millis(), 500);
        for bad in [
            "",
            "2025-01-01",
            "2025-01-01T10:00:00",
            "tomorrow",
            "2025-13-01T00:00:00Z",
        ] {
            assert_eq!(parse_expires(bad), None, "{bad}");
        }
    }
}
