//! Per-address firewall rules, which VPCs do not have (reference §3.5: the
//! `Firewall` service is unsupported in VPCs; inbound traffic to port
//! forwarding and static NAT targets is filtered by the tier's network ACL).
//! `createFirewallRule` and `deleteFirewallRule` are refused with a text
//! pointing at network ACLs ([`refused`]); `listFirewallRules` answers an
//! empty list ([`list`]).

mod list;
mod refused;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::server::registry::Registry;

pub use list::ListFirewallRules;
pub use refused::{CreateFirewallRule, DeleteFirewallRule};

/// Registers the firewall rule commands.
pub fn register(registry: &mut Registry) {
    registry.job::<CreateFirewallRule>();
    registry.job::<DeleteFirewallRule>();
    registry.sync::<ListFirewallRules>();
}

/// The job of the firewall commands, which is never stored: their requests
/// are refused before a job exists.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct NeverStored {}

/// What a job of a firewall command would answer, were one ever run.
fn no_firewall() -> Error {
    Error::invalid(
        "Firewall rules are not supported in VPCs: VPC tiers use network ACLs instead \
         (createNetworkACL)",
    )
}
