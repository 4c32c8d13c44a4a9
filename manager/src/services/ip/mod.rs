//! Public IPs of VPCs (reference §2.5, §3.5), one command per file:
//! `associateIpAddress` acquires an address for a VPC (the VPC's first
//! becomes its source-NAT address) and associates it on the router;
//! `disassociateIpAddress` withdraws its rules and gives it back;
//! `listPublicIpAddresses`.
//!
//! An address belongs to the VPC, not to a tier, until its first port
//! forwarding, static NAT or load balancing rule binds it to one (see
//! [`common::rule_tier`]); it is unbound when its last rule goes. What the
//! NAT and LB commands share with these is here too: [`common`] (ids and
//! ownership), [`push`] (what the router gets), [`rule_flow`] (the life of
//! a rule).

mod associate;
mod disassociate;
mod list;

pub mod common;
pub mod names;
pub mod push;
pub mod rule_flow;
pub mod views;

use crate::server::registry::Registry;

pub use associate::{AssociateIpAddress, AssociateIpJob};
pub use disassociate::DisassociateIpAddress;
pub use list::ListPublicIpAddresses;

/// Registers the public IP commands.
pub fn register(registry: &mut Registry) {
    registry.job::<AssociateIpAddress>();
    registry.job::<DisassociateIpAddress>();
    registry.sync::<ListPublicIpAddresses>();
}
