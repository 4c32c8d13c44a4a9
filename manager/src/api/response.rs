//! Response envelopes (reference §1.6): every body is a one-key object named
//! after the command, holding a single object, a list with its total count,
//! a success flag, or an accepted job.
//!
//! The tree is a `serde_json::Value`. The workspace does not enable
//! serde_json's `preserve_order` feature, so objects render with their keys
//! sorted; no client depends on key order, and the builders here insert keys
//! in CloudStack's order so that enabling the feature later gives CloudStack's
//! layout without further change.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::params::Params;
use super::xml;

/// Response name used when the command is unknown.
pub const ERROR_RESPONSE: &str = "errorresponse";

/// CloudStack release whose API this service reproduces; sent in XML bodies.
pub const CLOUD_STACK_VERSION: &str = "4.22.0.0";

/// The response name of `command`: the name lower-cased plus `response`,
/// except for two commands CloudStack answers under another name.
pub fn response_name(command: &str) -> String {
    match command {
        "updateNetworkACLItem" => "createnetworkaclresponse".to_string(),
        "moveNetworkAclItem" => "moveNetworkAclItemResponse".to_string(),
        _ => format!("{}response", command.to_lowercase()),
    }
}

/// Wraps `inner` under the command's response name.
fn envelope(command: &str, inner: Map<String, Value>) -> Value {
    let mut outer = Map::new();
    outer.insert(response_name(command), Value::Object(inner));
    Value::Object(outer)
}

/// A single object: `{"<resp>": {"<object_name>": item}}`.
pub fn object(command: &str, object_name: &str, item: Value) -> Value {
    let mut inner = Map::new();
    inner.insert(object_name.to_string(), item);
    envelope(command, inner)
}

/// A list page: `{"<resp>": {"count": count, "<object_name>": [items]}}`.
///
/// `count` is the total number of matches, not the page size. With no match
/// at all the body is `{"<resp>": {}}`; when matches exist but the page is
/// empty it is `{"<resp>": {"count": count}}` with no array.
pub fn list(command: &str, object_name: &str, count: u64, items: Vec<Value>) -> Value {
    let mut inner = Map::new();
    if count > 0 {
        inner.insert("count".into(), Value::from(count));
        if !items.is_empty() {
            inner.insert(object_name.to_string(), Value::Array(items));
        }
    }
    envelope(command, inner)
}

/// A synchronous success: `{"<resp>": {"success": true}}`, with
/// `displaytext` when given.
pub fn success(command: &str, displaytext: Option<&str>) -> Value {
    let mut inner = Map::new();
    inner.insert("success".into(), Value::Bool(true));
    if let Some(text) = displaytext {
        inner.insert("displaytext".into(), Value::from(text));
    }
    envelope(command, inner)
}

/// An accepted asynchronous command: `{"<resp>": {"jobid": jobid}}`.
pub fn job(command: &str, jobid: &str) -> Value {
    let mut inner = Map::new();
    inner.insert("jobid".into(), Value::from(jobid));
    envelope(command, inner)
}

/// An accepted async-create command, whose entity already exists:
/// `{"<resp>": {"id": id, "jobid": jobid}}`.
pub fn async_create(command: &str, id: &str, jobid: &str) -> Value {
    let mut inner = Map::new();
    inner.insert("id".into(), Value::from(id));
    inner.insert("jobid".into(), Value::from(jobid));
    envelope(command, inner)
}

/// A date as CloudStack writes it, `yyyy-MM-dd'T'HH:mm:ssZ`, e.g.
/// `2025-10-30T19:21:39+0000`.
pub fn format_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%z").to_string()
}

/// Drops every `null` object field, at any depth, as Gson does by default.
/// `null` array elements are kept (Gson writes them).
pub fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// The body format a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `response=json`.
    Json,
    /// CloudStack's default when `response` is absent or anything but json.
    Xml,
}

impl Format {
    /// The format named by a `response` parameter value.
    pub fn from_response_param(value: Option<&str>) -> Self {
        match value {
            Some(v) if v.trim().eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Xml,
        }
    }

    /// The format a request asked for with its `response` parameter.
    pub fn from_params(params: &Params) -> Self {
        Self::from_response_param(params.get("response"))
    }

    /// The `Content-Type` header of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json; charset=UTF-8",
            Format::Xml => "text/xml; charset=UTF-8",
        }
    }

    /// Renders a response tree (nulls are dropped first).
    pub fn render(self, tree: &Value) -> String {
        let tree = strip_nulls(tree.clone());
        match self {
            Format::Json => tree.to_string(),
            Format::Xml => xml::render(&tree),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn response_names_with_quirks() {
        assert_eq!(response_name("createVPC"), "createvpcresponse");
        assert_eq!(response_name("listVPCs"), "listvpcsresponse");
        assert_eq!(
            response_name("updateNetworkACLItem"),
            "createnetworkaclresponse"
        );
        assert_eq!(
            response_name("moveNetworkAclItem"),
            "moveNetworkAclItemResponse"
        );
    }

    #[test]
    fn single_object() {
        assert_eq!(
            object("createNetwork", "network", json!({"id": "n1"})),
            json!({"createnetworkresponse": {"network": {"id": "n1"}}})
        );
    }

    #[test]
    fn list_shapes() {
        let two = list(
            "listVPCs",
            "vpc",
            2,
            vec![json!({"id": "a"}), json!({"id": "b"})],
        );
        assert_eq!(
            two,
            json!({"listvpcsresponse": {"count": 2, "vpc": [{"id": "a"}, {"id": "b"}]}})
        );
        assert_eq!(
            list("listVPCs", "vpc", 0, vec![]),
            json!({"listvpcsresponse": {}})
        );
        assert_eq!(
            list("listVPCs", "vpc", 7, vec![]),
            json!({"listvpcsresponse": {"count": 7}})
        );
    }

    #[test]
    fn success_job_and_async_create() {
        assert_eq!(
            success("enableStaticNat", None),
            json!({"enablestaticnatresponse": {"success": true}})
        );
        assert_eq!(
            success("x", Some("done")),
            json!({"xresponse": {"success": true, "displaytext": "done"}})
        );
        assert_eq!(
            job("deleteVPC", "j1"),
            json!({"deletevpcresponse": {"jobid": "j1"}})
        );
        assert_eq!(
            async_create("createVPC", "v1", "j1"),
            json!({"createvpcresponse": {"id": "v1", "jobid": "j1"}})
        );
    }

    #[test]
    fn dates_use_a_four_digit_offset() {
        let t = "2025-10-30T19:21:39Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(format_date(t), "2025-10-30T19:21:39+0000");
    }

    #[test]
    fn nulls_are_stripped_recursively() {
        let v = json!({"a": null, "b": {"c": null, "d": [ {"e": null, "f": 1}, null ]}});
        assert_eq!(strip_nulls(v), json!({"b": {"d": [ {"f": 1}, null ]}}));
    }

    #[test]
    fn format_selection_and_rendering() {
        assert_eq!(Format::from_response_param(Some("JSON")), Format::Json);
        assert_eq!(Format::from_response_param(Some("xml")), Format::Xml);
        assert_eq!(Format::from_response_param(None), Format::Xml);
        let p = Params::parse_query("command=listVPCs&Response=Json");
        assert_eq!(Format::from_params(&p), Format::Json);
        assert_eq!(
            Format::Json.content_type(),
            "application/json; charset=UTF-8"
        );
        assert_eq!(Format::Xml.content_type(), "text/xml; charset=UTF-8");
        let body = json!({"deletevpcresponse": {"jobid": "j1", "x": null}});
        assert_eq!(
            Format::Json.render(&body),
            r#"{"deletevpcresponse":{"jobid":"j1"}}"#
        );
        assert!(Format::Xml.render(&body).ends_with(
            r#"<deletevpcresponse cloud-stack-version="4.22.0.0"><jobid>j1</jobid></deletevpcresponse>"#
        ));
    }
}
