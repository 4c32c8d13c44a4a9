//! `ip -j` output, read with serde_json, and the accessors the tests use.

pub use serde_json::Value as Json;

/// Field access that reads like the `ip -j` keys it looks up.
pub trait JsonExt {
    /// A string field.
    fn str(&self, key: &str) -> Option<&str>;
    /// A number field.
    fn num(&self, key: &str) -> Option<f64>;
    /// The elements of an array (empty for anything else).
    fn items(&self) -> &[Json];
}

impl JsonExt for Json {
    fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Json::as_str)
    }
    fn num(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Json::as_f64)
    }
    fn items(&self) -> &[Json] {
        self.as_array().map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Parses `ip -j` output.
pub fn parse(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
