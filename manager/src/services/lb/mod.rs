//! (being written)

use crate::server::jobs::JobBody;
use crate::server::registry::CommandSpec;

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    vec![]
}

/// The job body of every async command of this module.
pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![]
}
