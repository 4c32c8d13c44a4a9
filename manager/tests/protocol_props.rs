//! Property tests of the CloudStack protocol core: hostile input never
//! panics, the signed string is always lower-case, and what a client signs
//! always verifies.

use proptest::prelude::*;
use serde_json::json;
use vpc_manager::api::signature::{Canonicalisation, canonical_query_with};
use vpc_manager::api::{Format, Params, canonical_query, parse_expires, sign, verify};

/// Parameter names as clients send them (printable ASCII, no `=`/`&`).
fn ascii_name() -> impl Strategy<Value = String> {
    "[!-%'-<>-~]{1,16}"
}

/// Names that look like, or almost look like, map entries.
fn map_like_name() -> impl Strategy<Value = String> {
    "(tags|TAGS|Tags|details)(\\[[0-9a-z\\-]{0,3}\\]?)?(\\.[a-zA-Z\\[\\]]{0,4})?"
}

fn pairs_of(name: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((name, any::<String>()), 0..12)
}

proptest! {
    #[test]
    fn parse_query_never_panics(q in any::<String>()) {
        let p = Params::parse_query(&q);
        let _ = p.validate();
        prop_assert!(p.names().count() <= p.raw_pairs().len());
    }

    #[test]
    fn parse_query_of_url_like_text_never_panics(q in "[a-zA-Z0-9%=&+\\[\\]._~-]{0,80}") {
        let p = Params::parse_query(&q);
        let _ = p.validate();
        let _ = p.map("tags");
    }

    #[test]
    fn map_never_panics_and_agrees_with_validate(pairs in pairs_of(map_like_name())) {
        let p = Params::from_pairs(pairs);
        let valid = p.validate().is_ok();
        for name in ["tags", "details", "TAGS"] {
            let m = p.map(name);
            if valid {
                prop_assert!(m.is_ok(), "{:?}", m);
            }
            if let Ok(entries) = m {
                for entry in entries {
                    for key in entry.keys() {
                        prop_assert_eq!(key.clone(), key.to_lowercase());
                    }
                }
            }
        }
    }

    #[test]
    fn typed_accessors_never_panic(value in any::<String>(), name in "[a-zA-Z]{1,8}") {
        let p = Params::from_pairs(vec![(name.clone(), value)]);
        let _ = p.string(&name);
        let _ = p.string_max(&name, 3);
        let _ = p.required_string("createVPC", &name);
        let _ = p.boolean(&name);
        let _ = p.integer(&name);
        let _ = p.long(&name);
        let _ = p.uuid(&name);
        let _ = p.required_uuid("deleteVPC", &name);
        let _ = p.list(&name);
        let _ = p.uuid_list(&name);
        let _ = p.map(&name);
        let _ = p.date(&name);
    }

    #[test]
    fn canonical_query_never_panics(pairs in pairs_of(any::<String>())) {
        let out = canonical_query(&pairs);
        prop_assert_eq!(out.clone(), out.to_lowercase());
    }

    #[test]
    fn canonical_query_is_lower_case_ascii(pairs in pairs_of(ascii_name())) {
        for how in [Canonicalisation::Java, Canonicalisation::TildeUnescaped] {
            let out = canonical_query_with(&pairs, how);
            prop_assert!(out.is_ascii(), "{}", out);
            prop_assert!(!out.bytes().any(|b| b.is_ascii_uppercase()), "{}", out);
        }
    }

    #[test]
    fn what_is_signed_verifies(secret in any::<String>(), pairs in pairs_of(ascii_name())) {
        let signature = sign(&secret, &pairs);
        prop_assert!(verify(&secret, &pairs, &signature));
        // A signature travelling with the parameters is ignored by the check.
        let mut with_sig = pairs.clone();
        with_sig.push(("signature".to_string(), signature.clone()));
        prop_assert!(verify(&secret, &with_sig, &signature));
    }

    #[test]
    fn a_signature_only_verifies_its_own_string(
        secret in "[a-zA-Z0-9]{1,20}",
        signed in prop::collection::vec(("[abAB]{1,2}", "[abAB~ ]{0,2}"), 0..4),
        received in prop::collection::vec(("[abAB]{1,2}", "[abAB~ ]{0,2}"), 0..4),
    ) {
        // Small alphabets so that different requests often share a signed
        // string (names and values differing only in case do).
        let signature = sign(&secret, &signed);
        let same_string = canonical_query(&signed) == canonical_query(&received)
            || canonical_query(&signed)
                == canonical_query_with(&received, Canonicalisation::TildeUnescaped);
        prop_assert_eq!(verify(&secret, &received, &signature), same_string);
    }

    #[test]
    fn parse_expires_never_panics(s in any::<String>()) {
        let _ = parse_expires(&s);
    }

    #[test]
    fn expires_forms_round_trip(secs in 0i64..4_102_444_800, micros in 0u32..1_000_000) {
        let t = chrono::DateTime::from_timestamp(secs, micros * 1000).unwrap();
        let whole = chrono::DateTime::from_timestamp(secs, 0).unwrap();
        prop_assert_eq!(parse_expires(&t.format("%Y-%m-%dT%H:%M:%S%z").to_string()), Some(whole));
        prop_assert_eq!(parse_expires(&t.format("%Y-%m-%dT%H:%M:%SZ").to_string()), Some(whole));
        prop_assert_eq!(parse_expires(&t.to_rfc3339()), Some(t));
        prop_assert_eq!(parse_expires(&t.format("%Y-%m-%dT%H:%M:%S%.6f%z").to_string()), Some(t));
    }

    #[test]
    fn rendering_arbitrary_text_never_panics(key in any::<String>(), text in any::<String>()) {
        let tree = json!({"xresponse": {key: text}});
        let xml = Format::Xml.render(&tree);
        prop_assert!(xml.starts_with("<?xml"));
        let back: serde_json::Value = serde_json::from_str(&Format::Json.render(&tree)).unwrap();
        prop_assert_eq!(back, tree);
    }
}
