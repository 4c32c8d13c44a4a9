//! NAT on VPC public IPs (reference §2.5, §3.5): static NAT
//! ([`static_nat`]) and port forwarding ([`forward`]).

pub mod forward;
pub mod static_nat;

use crate::server::jobs::JobBody;
use crate::server::registry::CommandSpec;

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let mut all = static_nat::commands();
    all.extend(forward::commands());
    all
}

/// The job body of every async command of this module.
pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    let mut all = static_nat::job_bodies();
    all.extend(forward::job_bodies());
    all
}
