//! The API commands, one module per resource.

pub mod identity;
pub mod meta;
pub mod zone;

use crate::server::jobs::JobBody;
use crate::server::registry::{CommandSpec, Registry};

/// Every command of the manager.
pub fn commands() -> Vec<CommandSpec> {
    let mut all = meta::commands();
    all.extend(identity::commands());
    all.extend(zone::commands());
    all
}

/// The registry of every command.
pub fn registry() -> Registry {
    Registry::new(commands())
}

/// The job body of every async command.
pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    identity::job_bodies()
}
