//! NAT on VPC public IPs (reference §2.5, §3.5): static NAT
//! ([`static_nat`]) and port forwarding ([`forward`]).

pub mod forward;
pub mod static_nat;

use crate::server::command::{Arg, Id};
use crate::server::registry::Registry;

/// `networkid` of the commands that map an address to a VM (port
/// forwarding, static NAT): the tier of the VM.
const VM_TIER: Arg<Id> = Arg::opt(
    "networkid",
    "the tier of the VM; needed when the address is bound to no tier yet and \
     the VM has NICs in several tiers of the VPC",
);

/// Registers the NAT commands.
pub fn register(registry: &mut Registry) {
    static_nat::register(registry);
    forward::register(registry);
}
