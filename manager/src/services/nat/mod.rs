//! NAT on VPC public IPs (reference §2.5, §3.5): static NAT
//! ([`static_nat`]) and port forwarding ([`forward`]).

pub mod forward;
pub mod static_nat;

use crate::server::registry::Registry;

/// Registers the NAT commands.
pub fn register(registry: &mut Registry) {
    static_nat::register(registry);
    forward::register(registry);
}
