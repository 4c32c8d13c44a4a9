//! The `vpc.agent.v1` protocol: prost messages, the tonic `VirtualRouter`
//! client and server, and the file descriptor set for gRPC reflection; and
//! the `vpc.host.v1` protocol of the host agent ([`host`]).

/// Generated code of package `vpc.agent.v1`.
pub mod agent {
    /// Version 1 of the agent protocol.
    pub mod v1 {
        tonic::include_proto!("vpc.agent.v1");
    }
}

pub use agent::v1;

pub mod channel;

/// The encoded `FileDescriptorSet` of the agent protocol, for a reflection
/// service (`tonic_reflection`'s `register_encoded_file_descriptor_set`).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("vpc_agent_v1_descriptor");

/// The fully qualified name of the router service, as reflection lists it.
pub const VIRTUAL_ROUTER_SERVICE: &str = "vpc.agent.v1.VirtualRouter";

/// Generated code of package `vpc.host.v1`: the host agent's protocol.
pub mod host {
    /// Version 1 of the host agent protocol.
    pub mod v1 {
        tonic::include_proto!("vpc.host.v1");
    }
}

/// The encoded `FileDescriptorSet` of the host agent protocol, for a
/// reflection service.
pub const HOST_FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("vpc_host_v1_descriptor");

/// The fully qualified name of the host agent service, as reflection lists it.
pub const HOST_AGENT_SERVICE: &str = "vpc.host.v1.HostAgent";
