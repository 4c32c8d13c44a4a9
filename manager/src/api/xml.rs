//! The XML rendering CloudStack gives when `response` is not `json`: the same
//! tree as the JSON body, an element per key, arrays as repeated elements
//! named after their key, scalars as text.
//!
//! ```text
//! <?xml version="1.0" encoding="UTF-8"?><listvpcsresponse cloud-stack-version="4.22.0.0">
//! <count>1</count><vpc><id>…</id></vpc></listvpcsresponse>
//! ```
//! (one line in reality: CloudStack writes no whitespace between elements).

use serde_json::Value;

use super::response::CLOUD_STACK_VERSION;

/// The declaration every XML body starts with.
pub const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// Renders a response tree `{"<resp>": {...}}` as CloudStack's XML. `null`
/// values are skipped; strip them first for JSON parity.
pub fn render(tree: &Value) -> String {
    let mut out = String::from(DECLARATION);
    let root_attr = format!(r#" cloud-stack-version="{}""#, escape(CLOUD_STACK_VERSION));
    match tree {
        Value::Object(map) => {
            for (name, value) in map {
                element(&mut out, name, value, &root_attr);
            }
        }
        other => element(&mut out, "response", other, &root_attr),
    }
    out
}

/// Writes `value` under element `name`; arrays repeat the element.
fn element(out: &mut String, name: &str, value: &Value, attrs: &str) {
    match value {
        Value::Null => {}
        Value::Array(items) => {
            for item in items {
                element(out, name, item, attrs);
            }
        }
        _ => {
            let tag = element_name(name);
            out.push('<');
            out.push_str(&tag);
            out.push_str(attrs);
            out.push('>');
            match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        element(out, k, v, "");
                    }
                }
                Value::String(s) => out.push_str(&escape(s)),
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Value::Number(n) => out.push_str(&n.to_string()),
                Value::Null | Value::Array(_) => unreachable!("handled above"),
            }
            out.push_str("</");
            out.push_str(&tag);
            out.push('>');
        }
    }
}

/// A valid XML element name for `key`. Our own keys are always valid; keys
/// coming from user data (e.g. a details map) have other characters replaced
/// by `_` so the document stays well-formed.
fn element_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_');
    if !starts_well {
        name.insert(0, '_');
    }
    name
}

/// Escapes text and attribute values; drops characters XML 1.0 forbids
/// (control characters other than tab, newline and carriage return).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if u32::from(c) < 0x20 => {}
            '\u{fffe}' | '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{error::ApiError, response};
    use serde_json::json;

    // Keys are written in sorted order below so the expectations hold with
    // and without serde_json's `preserve_order` feature.
    #[test]
    fn list_renders_repeated_elements() {
        let tree = response::list(
            "listVPCs",
            "vpc",
            2,
            vec![
                json!({"id": "a", "name": "x & <y>", "restartrequired": false}),
                json!({"count": 3, "id": "b", "tags": [{"key": "k1"}, {"key": "k2"}]}),
            ],
        );
        let expected = concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<listvpcsresponse cloud-stack-version="4.22.0.0"><count>2</count>"#,
            "<vpc><id>a</id><name>x &amp; &lt;y&gt;</name><restartrequired>false</restartrequired></vpc>",
            "<vpc><count>3</count><id>b</id><tags><key>k1</key></tags><tags><key>k2</key></tags></vpc>",
            "</listvpcsresponse>"
        );
        assert_eq!(render(&tree), expected);
    }

    #[test]
    fn empty_list_is_an_empty_element() {
        let tree = response::list("listVPCs", "vpc", 0, vec![]);
        assert_eq!(
            render(&tree),
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<listvpcsresponse cloud-stack-version="4.22.0.0"></listvpcsresponse>"#
            )
        );
    }

    #[test]
    fn error_renders_codes_and_text() {
        let body = ApiError::invalid_id("id", "x\"y").to_body("deletevpcresponse");
        let xml = render(&body);
        assert!(xml.starts_with(concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<deletevpcresponse cloud-stack-version="4.22.0.0">"#
        )));
        assert!(xml.contains("<errorcode>431</errorcode>"));
        assert!(xml.contains("<cserrorcode>4350</cserrorcode>"));
        assert!(xml.contains("<errortext>Invalid parameter id value=x&quot;y due to"));
        // An empty uuidList produces no element, like any empty array.
        assert!(!xml.contains("uuidList"));
        assert!(xml.ends_with("</deletevpcresponse>"));
    }

    #[test]
    fn odd_keys_and_control_characters_stay_well_formed() {
        let tree = json!({"r": {"details": {"9x": 1, "a b": "v\u{1}w", "n": null}}});
        assert_eq!(
            render(&tree),
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<r cloud-stack-version="4.22.0.0"><details><_9x>1</_9x><a_b>vw</a_b></details></r>"#
            )
        );
    }
}
