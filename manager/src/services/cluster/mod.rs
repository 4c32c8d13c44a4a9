//! The managers of the cluster: `listManagementServers` ([`list`]).

mod list;

use crate::server::registry::Registry;

pub use list::ListManagementServers;

/// Registers the cluster commands.
pub fn register(registry: &mut Registry) {
    registry.sync::<ListManagementServers>();
}
