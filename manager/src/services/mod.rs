//! The API commands, one module per resource.

pub mod acl;
pub mod args;
pub mod cluster;
pub mod config;
pub mod event;
pub mod firewall;
pub mod gateway;
pub mod host;
pub mod identity;
pub mod ip;
pub mod lb;
pub mod meta;
pub mod nat;
pub mod network;
pub mod offering;
pub mod owner;
pub mod related;
pub mod sshkey;
pub mod tags;
pub mod tier;
pub mod userdata;
pub mod vm;
pub mod vpc;
pub mod vpn;
pub mod zone;

use crate::server::registry::Registry;

/// The registry of every command: each resource registers its own, one
/// line per command.
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    meta::register(&mut registry);
    identity::register(&mut registry);
    zone::register(&mut registry);
    cluster::register(&mut registry);
    config::register(&mut registry);
    network::register(&mut registry);
    offering::register(&mut registry);
    vpc::register(&mut registry);
    tier::register(&mut registry);
    vm::register(&mut registry);
    acl::register(&mut registry);
    gateway::register(&mut registry);
    host::register(&mut registry);
    ip::register(&mut registry);
    nat::register(&mut registry);
    lb::register(&mut registry);
    firewall::register(&mut registry);
    sshkey::register(&mut registry);
    userdata::register(&mut registry);
    vpn::register(&mut registry);
    tags::register(&mut registry);
    event::register(&mut registry);
    registry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::registry::Kind;

    #[test]
    fn every_async_command_has_a_job_body_and_documented_parameters() {
        for spec in registry().all() {
            if spec.kind != Kind::Sync {
                assert!(spec.job.is_some(), "{} has no job body", spec.name);
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
