//! The VPC virtual router agent as a library: the validated model of a
//! router's desired state, the pure planners that turn it into kernel state,
//! and the executors that apply the plans. The `vr-agent` binary wires these
//! to the gRPC service.

pub mod apply;
pub mod model;
pub mod plan;

#[doc(hidden)]
pub mod testing;
