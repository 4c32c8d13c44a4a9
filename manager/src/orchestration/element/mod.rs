//! Network elements: what provides a network's services. The VPC virtual
//! router element turns each change into agent commands; every command carries
//! the generation the caller gives it (the caller bumps the router's generation
//! in the database transaction of the change; the element never invents one).
//!
//! - `capabilities`: the traits an element implements, one per service.
//! - `vpc_router`: the VPC virtual router, the one element for VPC services.

mod capabilities;
mod vpc_router;

pub use capabilities::{
    Dhcp, Dns, Gateway, Lb, NetworkAcl, NetworkElement, PortForwarding, SourceNat, StaticNat,
    UserData, VpcProvider,
};
pub use vpc_router::{VPC_VIRTUAL_ROUTER, VpcVirtualRouterElement};

use super::agent::{AgentError, DriverError};

/// Why an element operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElementError {
    #[error("{rpc} on router {router} failed: {source}")]
    Agent {
        router: String,
        rpc: &'static str,
        #[source]
        source: AgentError,
    },
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// Refused before anything was sent: the element cannot do this.
    #[error("{0}")]
    Unsupported(String),
    /// Refused before anything was sent: the input is inconsistent.
    #[error("{0}")]
    Invalid(String),
    #[error("the agent of router {router} gave an unexpected answer to {rpc}")]
    UnexpectedReply { router: String, rpc: &'static str },
}

/// Result of element operations.
pub type ElementResult<T = ()> = Result<T, ElementError>;
