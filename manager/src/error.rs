//! The domain error: what went wrong in the manager's terms. Services,
//! business rules and the provisioning layer return it; only the API layer
//! turns it into CloudStack's codes and texts, in one place
//! (`impl From<Error> for ApiError` in [`crate::api::error`]).
//!
//! The texts are the ones the API shows (CloudStack's wording where clients
//! match it), so a variant says *what kind* of failure it is and carries the
//! message unchanged.

use crate::api::ApiError;
use crate::store::StoreError;

/// Which capacity ran out (CloudStack's `Insufficient*CapacityException`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// No free public address in the zone.
    PublicAddress,
    /// No free guest address in a tier, or no free guest vnet.
    GuestNetwork,
    /// No free public address for a VPC's source NAT.
    SourceNat,
    /// No Up and Enabled host to place a router or VM on.
    Server,
}

/// A failed operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A value the request gave is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// A parameter names an entity that does not exist (or that the caller
    /// may not see: the two answer alike). The text is the one Terraform
    /// and cloudstack-go match to notice a deleted resource.
    #[error(
        "Invalid parameter {param} value={value} due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class."
    )]
    NotFound { param: String, value: String },
    /// The caller may not act on the entity.
    #[error("{0}")]
    PermissionDenied(String),
    /// A resource limit of the owner was reached.
    #[error("{0}")]
    LimitExceeded(String),
    /// A pool ran out.
    #[error("{text}")]
    InsufficientCapacity { capacity: Capacity, text: String },
    /// The entity is still in use.
    #[error("{0}")]
    InUse(String),
    /// The request conflicts with an existing rule.
    #[error("{0}")]
    Conflict(String),
    /// The router (or what runs it) did not take the change.
    #[error("{0}")]
    Router(String),
    /// Anything else: a broken invariant, a store failure.
    #[error("{0}")]
    Internal(String),
    /// The API layer refused the request while a command read it (a
    /// missing or malformed parameter): passed through as it is.
    #[error("{0}")]
    Request(ApiError),
}

/// The result of a domain operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A value of the request is not acceptable.
    pub fn invalid(text: impl Into<String>) -> Self {
        Error::Invalid(text.into())
    }

    /// The entity `value` of parameter `param` does not exist.
    pub fn invalid_id(param: &str, value: impl std::fmt::Display) -> Self {
        Error::NotFound {
            param: param.to_string(),
            value: value.to_string(),
        }
    }

    /// The caller may not act on the entity.
    pub fn permission_denied(text: impl Into<String>) -> Self {
        Error::PermissionDenied(text.into())
    }

    /// A resource limit was reached.
    pub fn limit_exceeded(text: impl Into<String>) -> Self {
        Error::LimitExceeded(text.into())
    }

    /// The entity is still in use.
    pub fn in_use(text: impl Into<String>) -> Self {
        Error::InUse(text.into())
    }

    /// The request conflicts with an existing rule.
    pub fn conflict(text: impl Into<String>) -> Self {
        Error::Conflict(text.into())
    }

    /// A pool ran out.
    pub fn insufficient(capacity: Capacity, text: impl Into<String>) -> Self {
        Error::InsufficientCapacity {
            capacity,
            text: text.into(),
        }
    }

    /// The router did not take the change.
    pub fn router(text: impl Into<String>) -> Self {
        Error::Router(text.into())
    }

    /// An internal failure.
    pub fn internal(text: impl Into<String>) -> Self {
        Error::Internal(text.into())
    }

    /// A required parameter is absent or empty (the API layer's refusal).
    pub fn missing_param(command: &str, name: &str) -> Self {
        Error::Request(ApiError::missing_param(command, name))
    }

    /// A string parameter is longer than its maximum.
    pub fn too_long(name: &str, max: usize) -> Self {
        Error::Request(ApiError::too_long(name, max))
    }

    /// The message, as the API shows it.
    pub fn text(&self) -> String {
        match self {
            Error::Request(e) => e.text.clone(),
            other => other.to_string(),
        }
    }
}

impl From<ApiError> for Error {
    fn from(error: ApiError) -> Self {
        Error::Request(error)
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            // The database's text names its constraint and table: logged
            // for the operator, never shown to the client.
            StoreError::Duplicate(what) => {
                tracing::warn!(error = %what, "unique constraint refused a write");
                Error::invalid(
                    "The request conflicts with an object that exists already: a value that \
                     must be unique is taken. Try again, or choose another value",
                )
            }
            StoreError::Overlap(constraint) => overlap(&constraint),
            StoreError::Conflict(text) => Error::InUse(text),
            StoreError::NotFound { what, key } => {
                Error::invalid(format!("{what} {key} does not exist"))
            }
            other => {
                tracing::error!(error = %other, "store error");
                Error::internal(
                    "Internal error executing command, please contact your system administrator",
                )
            }
        }
    }
}

/// The error for a write the database refused as overlapping a live row
/// (migration 0013's constraints). The services check the same under the
/// VPC's lock first, with the request's values in the text; this is the
/// backstop, so its texts say what overlapped without the values.
fn overlap(constraint: &str) -> Error {
    tracing::warn!(constraint, "exclusion constraint refused a write");
    match constraint {
        "networks_tier_cidrs_disjoint" => {
            Error::invalid("Network cidr overlaps with the cidr of another tier of the VPC")
        }
        "static_routes_cidrs_disjoint" => Error::conflict(
            "New static route cidr conflicts with an existing static route of the VPC",
        ),
        "firewall_rules_ports_disjoint" => Error::conflict(
            "The range specified conflicts with a rule on the same ports and protocol of the ip \
             address",
        ),
        _ => Error::invalid(
            "The request conflicts with an object that exists already: a value overlaps one \
             that is taken. Try again, or choose another value",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unique_constraint_refusal_names_no_constraint_or_table() {
        let raw = "duplicate key value violates unique constraint \"network_acl_item_number_live\"";
        let e = ApiError::from(Error::from(StoreError::Duplicate(raw.to_string())));
        assert_eq!(e.code, 431);
        for leak in ["network_acl_item", "constraint", "duplicate key", "UNIQUE"] {
            assert!(!e.text.contains(leak), "{leak} in {}", e.text);
        }
        assert!(e.text.contains("exists already"), "{}", e.text);
    }

    #[test]
    fn an_overlap_the_database_refused_gets_the_services_kind_of_error() {
        let code = |c: &str| ApiError::from(Error::from(StoreError::Overlap(c.into()))).code;
        assert_eq!(code("networks_tier_cidrs_disjoint"), 431);
        assert_eq!(code("static_routes_cidrs_disjoint"), 537);
        assert_eq!(code("firewall_rules_ports_disjoint"), 537);
        let other = ApiError::from(Error::from(StoreError::Overlap("x_disjoint".into())));
        assert_eq!(other.code, 431);
        assert!(!other.text.contains("x_disjoint"), "{}", other.text);
    }

    #[test]
    fn not_found_is_the_text_terraform_matches() {
        let e = ApiError::from(Error::invalid_id("id", "abc"));
        assert_eq!(e, ApiError::invalid_id("id", "abc"));
    }

    #[test]
    fn every_kind_maps_to_cloudstacks_codes() {
        let cases = [
            (Error::invalid("x"), 431, 4350),
            (Error::permission_denied("x"), 531, 4365),
            (Error::limit_exceeded("x"), 535, 4370),
            (Error::insufficient(Capacity::PublicAddress, "x"), 533, 4320),
            (Error::insufficient(Capacity::GuestNetwork, "x"), 533, 4325),
            (Error::insufficient(Capacity::SourceNat, "x"), 533, 4255),
            (Error::in_use("x"), 536, 4375),
            (Error::conflict("x"), 537, 4360),
            (Error::router("x"), 530, 4250),
            (Error::internal("x"), 530, 4250),
            (Error::missing_param("createVPC", "name"), 431, 9999),
        ];
        for (e, code, cs) in cases {
            let text = e.text();
            let api = ApiError::from(e);
            assert_eq!((api.code, api.cs_code), (code, cs), "{api}");
            assert_eq!(api.text, text);
        }
    }
}
