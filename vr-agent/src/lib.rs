//! The VPC virtual router agent as a library: the validated model of a
//! router's desired state, the pure planners that turn it into kernel state,
//! the executors that apply the plans, and the gRPC service. The `vr-agent`
//! binary wires them together.

pub mod accounts;
pub mod agent;
pub mod apply;
pub mod endpoint;
pub mod health;
pub mod metadata;
pub mod model;
pub mod netns;
pub mod plan;
pub mod service;
pub mod state;
pub mod status;
pub mod update;
pub mod vpn;

#[doc(hidden)]
pub mod testing;
