//! API errors as CloudStack reports them: an HTTP status that doubles as the
//! `errorcode`, a `cserrorcode` naming the Java exception class CloudStack
//! would have raised, and a human text (reference §1.6, §1.7).
//!
//! Every error the API returns is built by one of the constructors below, so
//! the mapping from "kind of failure" to codes lives in this one place.

use serde_json::{Map, Value, json};

use super::response;

/// `cserrorcode` of a bare `ServerApiException` (missing parameter, servlet
/// level failures such as authentication).
pub const CS_SERVER_API: u32 = 9999;
/// `cserrorcode` of `CloudRuntimeException` (internal errors).
pub const CS_CLOUD_RUNTIME: u32 = 4250;
/// `cserrorcode` of `InvalidParameterValueException`.
pub const CS_INVALID_PARAMETER_VALUE: u32 = 4350;
/// `cserrorcode` of `NetworkRuleConflictException`.
pub const CS_NETWORK_RULE_CONFLICT: u32 = 4360;
/// `cserrorcode` of `PermissionDeniedException`.
pub const CS_PERMISSION_DENIED: u32 = 4365;
/// `cserrorcode` of `ResourceAllocationException`.
pub const CS_RESOURCE_ALLOCATION: u32 = 4370;
/// `cserrorcode` of `ResourceInUseException`.
pub const CS_RESOURCE_IN_USE: u32 = 4375;
/// `cserrorcode` of `InsufficientCapacityException`.
pub const CS_INSUFFICIENT_CAPACITY: u32 = 4255;
/// `cserrorcode` of `InsufficientServerCapacityException` (no host to place on).
pub const CS_INSUFFICIENT_SERVER_CAPACITY: u32 = 4335;
/// `cserrorcode` of `InsufficientAddressCapacityException`.
pub const CS_INSUFFICIENT_ADDRESS_CAPACITY: u32 = 4320;
/// `cserrorcode` of `InsufficientVirtualNetworkCapacityException`.
pub const CS_INSUFFICIENT_NETWORK_CAPACITY: u32 = 4325;
/// `cserrorcode` of `UnavailableCommandException`.
pub const CS_UNAVAILABLE_COMMAND: u32 = 4555;

/// One failed API call, ready to be rendered as CloudStack's error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("(HTTP {code}, error code {cs_code}) {text}")]
pub struct ApiError {
    /// HTTP status of the answer, also sent as `errorcode`.
    pub code: u16,
    /// CloudStack's exception-class code, sent as `cserrorcode`.
    pub cs_code: u32,
    /// The message, sent as `errortext`.
    pub text: String,
    /// Entities the error is about, sent as `uuidList` (uuid, description).
    pub uuids: Vec<(String, String)>,
}

impl ApiError {
    /// An error with explicit codes; prefer the named constructors.
    pub fn new(code: u16, cs_code: u32, text: impl Into<String>) -> Self {
        Self {
            code,
            cs_code,
            text: text.into(),
            uuids: Vec::new(),
        }
    }

    /// Adds an entity to `uuidList`.
    pub fn with_uuid(mut self, uuid: impl Into<String>, description: impl Into<String>) -> Self {
        self.uuids.push((uuid.into(), description.into()));
        self
    }

    /// 400: a bad request, e.g. a state-changing command sent with GET while
    /// POST is enforced.
    pub fn bad_request(text: impl Into<String>) -> Self {
        Self::new(400, CS_SERVER_API, text)
    }

    /// 401: the signature, session or expiry check failed. CloudStack gives
    /// the same text whatever the reason, so callers learn nothing more.
    pub fn unauthorized() -> Self {
        Self::new(
            401,
            CS_SERVER_API,
            "unable to verify user credentials and/or request signature",
        )
    }

    /// 405: the HTTP method is not accepted (e.g. `login` with GET).
    pub fn method_not_allowed(text: impl Into<String>) -> Self {
        Self::new(405, CS_SERVER_API, text)
    }

    /// 430: a parameter name is malformed (map syntax such as `tags[x`).
    pub fn malformed(text: impl Into<String>) -> Self {
        Self::new(430, CS_SERVER_API, text)
    }

    /// 431: an invalid parameter value (`InvalidParameterValueException`).
    pub fn param(text: impl Into<String>) -> Self {
        Self::new(431, CS_INVALID_PARAMETER_VALUE, text)
    }

    /// 431: a required parameter is absent or empty.
    ///
    /// CloudStack derives the command word from the response name minus its
    /// `response` suffix, so this is the lower-cased API name except for the
    /// two response-name quirks (see [`response::response_name`]).
    pub fn missing_param(command: &str, name: &str) -> Self {
        let response = response::response_name(command);
        let word = response
            .strip_suffix("response")
            .or_else(|| response.strip_suffix("Response"))
            .unwrap_or(&response);
        Self::new(
            431,
            CS_SERVER_API,
            format!("Unable to execute API command {word} due to missing parameter {name}"),
        )
    }

    /// 431: an id that is not a UUID or names no entity. Terraform and
    /// cloudstack-go match this exact text to detect deleted resources.
    pub fn invalid_id(name: &str, value: &str) -> Self {
        Self::param(format!(
            "Invalid parameter {name} value={value} due to incorrect long value format, \
             or entity does not exist or due to incorrect parameter annotation for the \
             field in api cmd class."
        ))
    }

    /// 431: a string parameter longer than its declared maximum.
    pub fn too_long(name: &str, max: usize) -> Self {
        Self::param(format!(
            "The value of parameter {name} is longer than the maximum allowed length of {max} characters"
        ))
    }

    /// 432: the command does not exist. Worded exactly like
    /// [`ApiError::not_allowed`] so that callers cannot probe which APIs exist.
    pub fn unknown_command(command: &str) -> Self {
        Self::not_allowed(command)
    }

    /// 432: the caller's role may not use the command.
    pub fn not_allowed(command: &str) -> Self {
        Self::new(
            432,
            CS_UNAVAILABLE_COMMAND,
            format!(
                "The API [{command}] does not exist or is not available for the account \
                 making this request."
            ),
        )
    }

    /// 503: the service accepts no new work (maintenance or shutdown).
    pub fn unavailable(text: impl Into<String>) -> Self {
        Self::new(503, CS_SERVER_API, text)
    }

    /// 530: an internal error (`CloudRuntimeException`).
    pub fn internal(text: impl Into<String>) -> Self {
        Self::new(530, CS_CLOUD_RUNTIME, text)
    }

    /// 531: the caller may not act on the entity (`PermissionDeniedException`).
    pub fn permission_denied(text: impl Into<String>) -> Self {
        Self::new(531, CS_PERMISSION_DENIED, text)
    }

    /// 535: a resource limit was reached (`ResourceAllocationException`).
    pub fn limit_exceeded(text: impl Into<String>) -> Self {
        Self::new(535, CS_RESOURCE_ALLOCATION, text)
    }

    /// 536: the entity is still in use (`ResourceInUseException`).
    pub fn in_use(text: impl Into<String>) -> Self {
        Self::new(536, CS_RESOURCE_IN_USE, text)
    }

    /// 537: the request conflicts with an existing rule
    /// (`NetworkRuleConflictException`).
    pub fn conflict(text: impl Into<String>) -> Self {
        Self::new(537, CS_NETWORK_RULE_CONFLICT, text)
    }

    /// The error body wrapped under `response_name` (the command's response
    /// name, or [`response::ERROR_RESPONSE`] when the command is unknown).
    ///
    /// Keys are inserted in CloudStack's order (`uuidList`, `errorcode`,
    /// `cserrorcode`, `errortext`); whether that order survives depends on
    /// serde_json's `preserve_order` feature.
    pub fn to_body(&self, response_name: &str) -> Value {
        let uuids: Vec<Value> = self
            .uuids
            .iter()
            .map(|(uuid, description)| json!({"uuid": uuid, "description": description}))
            .collect();
        let mut inner = Map::new();
        inner.insert("uuidList".into(), Value::Array(uuids));
        inner.insert("errorcode".into(), Value::from(self.code));
        inner.insert("cserrorcode".into(), Value::from(self.cs_code));
        inner.insert("errortext".into(), Value::from(self.text.clone()));
        let mut outer = Map::new();
        outer.insert(response_name.to_string(), Value::Object(inner));
        Value::Object(outer)
    }
}

/// The one place a domain error becomes CloudStack's codes: the HTTP
/// status (also `errorcode`) and the exception class (`cserrorcode`).
impl From<crate::error::Error> for ApiError {
    fn from(error: crate::error::Error) -> Self {
        use crate::error::{Capacity, Error};
        match error {
            Error::Request(e) => e,
            e @ Error::NotFound { .. } => ApiError::param(e.to_string()),
            Error::Invalid(text) => ApiError::param(text),
            Error::PermissionDenied(text) => ApiError::permission_denied(text),
            Error::LimitExceeded(text) => ApiError::limit_exceeded(text),
            Error::InsufficientCapacity { capacity, text } => {
                let cs_code = match capacity {
                    Capacity::PublicAddress => CS_INSUFFICIENT_ADDRESS_CAPACITY,
                    Capacity::GuestNetwork => CS_INSUFFICIENT_NETWORK_CAPACITY,
                    Capacity::SourceNat => CS_INSUFFICIENT_CAPACITY,
                    Capacity::Server => CS_INSUFFICIENT_SERVER_CAPACITY,
                };
                ApiError::new(533, cs_code, text)
            }
            Error::InUse(text) => ApiError::in_use(text),
            Error::Conflict(text) => ApiError::conflict(text),
            Error::Router(text) | Error::Internal(text) => ApiError::internal(text),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        crate::error::Error::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_param_names_the_lower_cased_command() {
        let e = ApiError::missing_param("createVPC", "zoneid");
        assert_eq!((e.code, e.cs_code), (431, 9999));
        assert_eq!(
            e.text,
            "Unable to execute API command createvpc due to missing parameter zoneid"
        );
    }

    #[test]
    fn missing_param_follows_the_response_name_quirk() {
        let e = ApiError::missing_param("updateNetworkACLItem", "id");
        assert!(
            e.text.contains("command createnetworkacl due"),
            "{}",
            e.text
        );
    }

    #[test]
    fn invalid_id_text_is_what_terraform_matches() {
        let e = ApiError::invalid_id("id", "abc");
        assert_eq!((e.code, e.cs_code), (431, 4350));
        assert!(e.text.starts_with(
            "Invalid parameter id value=abc due to incorrect long value format, or entity does not exist"
        ));
        assert!(e.text.ends_with("for the field in api cmd class."));
    }

    #[test]
    fn codes_match_cloudstack() {
        let cases = [
            (ApiError::unauthorized(), 401, 9999),
            (ApiError::malformed("x"), 430, 9999),
            (ApiError::param("x"), 431, 4350),
            (ApiError::too_long("name", 255), 431, 4350),
            (ApiError::unknown_command("fooBar"), 432, 4555),
            (ApiError::internal("x"), 530, 4250),
            (ApiError::permission_denied("x"), 531, 4365),
            (ApiError::limit_exceeded("x"), 535, 4370),
            (ApiError::in_use("x"), 536, 4375),
            (ApiError::conflict("x"), 537, 4360),
            (ApiError::unavailable("x"), 503, 9999),
            (ApiError::method_not_allowed("x"), 405, 9999),
        ];
        for (e, code, cs) in cases {
            assert_eq!((e.code, e.cs_code), (code, cs), "{e}");
        }
        assert_eq!(
            ApiError::unauthorized().text,
            "unable to verify user credentials and/or request signature"
        );
        assert!(
            ApiError::not_allowed("createVPC").text.starts_with(
                "The API [createVPC] does not exist or is not available for the account"
            )
        );
    }

    #[test]
    fn body_carries_all_fields() {
        let e = ApiError::in_use("busy").with_uuid("u-1", "vpc");
        let body = e.to_body("deletevpcresponse");
        assert_eq!(
            body,
            json!({"deletevpcresponse": {
                "uuidList": [{"uuid": "u-1", "description": "vpc"}],
                "errorcode": 536, "cserrorcode": 4375, "errortext": "busy"}})
        );
        assert_eq!(
            ApiError::param("bad").to_body("errorresponse")["errorresponse"]["uuidList"],
            json!([])
        );
    }

    #[test]
    fn display_reads_like_cloudmonkey() {
        assert_eq!(
            ApiError::param("bad").to_string(),
            "(HTTP 431, error code 4350) bad"
        );
    }
}
