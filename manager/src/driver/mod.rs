//! Where routers and VMs run. The one real [`RouterDriver`] is [`NetnsDriver`]:
//! routers and VMs as network namespaces on the manager's host (DESIGN §4).
//!
//! [`RouterDriver`]: crate::orchestration::agent::RouterDriver

pub mod netns;

pub use netns::{
    NetnsDriver, OnPrem, TlsProvider, connect_in_netns, default_agent_path, tls_from_pki,
};
