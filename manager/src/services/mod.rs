//! The API commands, one module per resource.

pub mod acl;
pub mod config;
pub mod firewall;
pub mod gateway;
pub mod identity;
pub mod ip;
pub mod lb;
pub mod meta;
pub mod nat;
pub mod network;
pub mod offering;
pub mod owner;
pub mod related;
pub mod tier;
pub mod vm;
pub mod vpc;
pub mod zone;

/// A module's commands and its job bodies.
type Module = (
    fn() -> Vec<CommandSpec>,
    fn() -> Vec<(&'static str, JobBody)>,
);

/// The VPC feature modules.
const VPC_MODULES: &[Module] = &[
    (vpc::commands, vpc::job_bodies),
    (tier::commands, tier::job_bodies),
    (vm::commands, vm::job_bodies),
    (acl::commands, acl::job_bodies),
    (ip::commands, ip::job_bodies),
    (nat::commands, nat::job_bodies),
];

use crate::server::jobs::JobBody;
use crate::server::registry::{CommandSpec, Registry};

/// Every command of the manager.
pub fn commands() -> Vec<CommandSpec> {
    let mut all = meta::commands();
    all.extend(identity::commands());
    all.extend(zone::commands());
    all.extend(network::commands());
    all.extend(offering::commands());
    all.extend(config::commands());
    for (commands, _) in VPC_MODULES {
        all.extend(commands());
    }
    all
}

/// The registry of every command.
pub fn registry() -> Registry {
    let mut registry = Registry::new(commands());
    vpc::register(&mut registry);
    gateway::register(&mut registry);
    firewall::register(&mut registry);
    lb::register(&mut registry);
    registry
}

/// The job body of every async command.
pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    let mut bodies = identity::job_bodies();
    bodies.extend(network::job_bodies());
    bodies.extend(offering::job_bodies());
    for (_, job_bodies) in VPC_MODULES {
        bodies.extend(job_bodies());
    }
    bodies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::registry::Kind;

    #[test]
    fn every_async_command_has_a_job_body_and_documented_parameters() {
        let bodies: Vec<&str> = job_bodies().into_iter().map(|(name, _)| name).collect();
        for spec in registry().all() {
            if spec.kind != Kind::Sync {
                assert!(
                    spec.job.is_some() || bodies.contains(&spec.name),
                    "{} has no job body",
                    spec.name
                );
            }
            assert!(
                !spec.description.is_empty(),
                "{} has no description",
                spec.name
            );
            for p in &spec.params {
                assert!(
                    !p.description.is_empty(),
                    "{}.{} has no description",
                    spec.name,
                    p.name
                );
            }
        }
    }
}
