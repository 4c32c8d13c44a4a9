//! The agent's nftables table, planned from the desired state.
//!
//! The agent owns `table inet vpc` and nothing else. The plan is a [`Ruleset`]:
//! chains, each owning the named sets its rules look up. [`Ruleset::render_full`]
//! replaces the whole table in one transaction (first apply, restart, repair);
//! [`Ruleset::render_update`] rebuilds only the chains whose content changed, in
//! one transaction, so changing one tier's ACL does not reload every other
//! tier's sets.
//!
//! Layout (reference: DESIGN §3, CloudStack's router §4.5–4.7):
//! - `raw_prerouting`: forged source addresses dropped before conntrack.
//! - `mangle_prerouting`: connmark restore for replies, NIC mark for new
//!   connections, so replies leave by the NIC their connection came in on.
//! - `nat_prerouting`: static NAT, port forwarding maps, load balancers.
//! - `filter_forward`: established/related first, then each packet walks the
//!   egress ACL of the NIC it came from and the ingress ACL of the NIC it goes
//!   to, chosen by verdict maps on the interface name.
//! - `filter_input`: DHCP and DNS from the tiers, ICMP, the agent port from
//!   control NICs.
//! - `nat_postrouting`: static NAT out, source NAT per public or private
//!   gateway NIC, hairpin NAT inside a tier.
//! - `ACL_INBOUND_ethN` / `ACL_OUTBOUND_ethN` per tier and private gateway NIC,
//!   with a subchain `ACL_…_l<layer>_<action>_<shape>_<prefix>` per set of a
//!   lookup split by address (see [`acl`]).
//! - `LB_PROXY_<rule>_<k>`: a backend tier's ingress ACL for the clients of a
//!   rule HAProxy serves (see [`proxy`]).

mod acl;
pub mod antispoof;
mod base;
pub mod counters;
mod items;
mod proxy;
mod render;
pub use acl::SHARD_ELEMENTS;
pub use items::ItemIndex;
pub use render::{Carry, CarryNeeds, ChainChanges, ChainRebuild, ElementDelta};
pub mod shape;

use ipnet::Ipv4Net;

use crate::model::*;
use crate::plan::acl::Compiled;

/// `table inet vpc`: the only table the agent touches.
pub const TABLE: &str = "vpc";
/// `type filter hook prerouting priority raw`: drops forged sources.
pub const CHAIN_ANTISPOOF: &str = "raw_prerouting";
/// `type filter hook prerouting priority mangle`: marks and connmarks.
pub const CHAIN_MANGLE: &str = "mangle_prerouting";
/// `type nat hook prerouting priority dstnat`: static NAT, PF, LB.
pub const CHAIN_DSTNAT: &str = "nat_prerouting";
/// `type filter hook forward priority filter; policy drop`: ACL dispatch.
pub const CHAIN_FORWARD: &str = "filter_forward";
/// `type filter hook input priority filter; policy drop`: what the router serves.
pub const CHAIN_INPUT: &str = "filter_input";
/// `type nat hook postrouting priority srcnat`: SNAT.
pub const CHAIN_SRCNAT: &str = "nat_postrouting";

/// The ingress ACL chain of a NIC (traffic going into its network).
pub fn inbound_chain(index: u32) -> String {
    format!("ACL_INBOUND_{}", dev_name(index))
}

/// The egress ACL chain of a NIC (traffic coming out of its network).
pub fn outbound_chain(index: u32) -> String {
    format!("ACL_OUTBOUND_{}", dev_name(index))
}

/// Options that do not come from the desired state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftOptions {
    /// The agent's own TCP port, accepted on control NICs.
    pub agent_port: Option<u16>,
    /// Accept the agent's port on every NIC while the router has no control
    /// NIC; otherwise it is reachable only from inside the namespace then.
    pub open_agent_port_before_control: bool,
}

/// A named set or map owned by one chain.
#[derive(Debug, Clone)]
pub struct Set {
    pub name: String,
    /// `set` or `map`.
    pub kind: &'static str,
    /// The body before the elements, e.g. `type ipv4_addr; flags interval;`.
    pub spec: String,
    /// Shared: a set that stays across a change is the same allocation in
    /// both plans (no copy, and equal at a pointer's compare).
    pub elements: std::sync::Arc<[String]>,
}

impl PartialEq for Set {
    /// Elements shared by both are equal without a look at them (`Arc`
    /// skips the elementwise compare only for sized contents).
    fn eq(&self, other: &Set) -> bool {
        self.name == other.name
            && self.kind == other.kind
            && self.spec == other.spec
            && (std::sync::Arc::ptr_eq(&self.elements, &other.elements)
                || self.elements == other.elements)
    }
}

impl Eq for Set {}

/// A chain with its rules and the sets they use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    /// For base chains: `type filter hook forward priority filter; policy drop;`.
    pub hook: Option<String>,
    pub sets: Vec<Set>,
    pub rules: Vec<String>,
    /// Regular chains that only this chain's maps reach (by `jump`):
    /// created, rebuilt and deleted with it, their rules using its sets.
    /// An ACL chain's sharded lookups dispatch to them (see [`acl`]).
    pub subchains: Vec<Subchain>,
}

/// A regular chain owned by a [`Chain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subchain {
    pub name: String,
    pub rules: Vec<String>,
}

/// The whole planned table: regular (ACL) chains first, so that jumps to them
/// resolve when the base chains are added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: Vec<Chain>,
}

/// Plans the table for `router`.
pub fn plan(router: &Router, options: &NftOptions) -> Ruleset {
    plan_from(router, options, None)
}

/// Plans the table for `router`, reusing the ACL chains of `previous` (a
/// router and the ruleset planned for it) for NICs whose ACL did not change.
pub fn plan_from(
    router: &Router,
    options: &NftOptions,
    previous: Option<(&Router, &Ruleset)>,
) -> Ruleset {
    let mut chains = Vec::new();
    for nic in router.nics.values().filter(|n| has_acl_chains(n)) {
        let unchanged = previous.filter(|(old, _)| {
            old.nics.get(&nic.index) == Some(nic)
                && old.acls.get(&nic.index) == router.acls.get(&nic.index)
        });
        if let Some((_, old_rules)) = unchanged {
            let names = [inbound_chain(nic.index), outbound_chain(nic.index)];
            let reused: Vec<&Chain> = names
                .iter()
                .filter_map(|name| old_rules.chains.iter().find(|c| &c.name == name))
                .collect();
            if reused.len() == 2 {
                chains.extend(reused.into_iter().cloned());
                continue;
            }
        }
        let acl = router.acls.get(&nic.index);
        // The NIC's list before, with its chains, to render from.
        let old_acl = previous.and_then(|(old, rules)| {
            let acl = old.acls.get(&nic.index)?;
            (old.nics.get(&nic.index) == Some(nic)).then_some((&**acl, rules))
        });
        // Numbers are unique in a list: a lookup of a direction's item
        // in all its rules finds that item.
        fn ids_of(acl: Option<&crate::model::Acl>) -> acl::Ids<'_> {
            acl::Ids(acl.map_or(&[], |a| a.rules.as_slice()))
        }
        for direction in [Direction::Ingress, Direction::Egress] {
            let empty = Compiled::default();
            let compiled = acl.map_or(&empty, |a| a.compiled(direction));
            let has_items = acl.is_some_and(|a| a.rules(direction).next().is_some());
            let ids = ids_of(acl.map(|a| &**a));
            let name = match direction {
                Direction::Ingress => inbound_chain(nic.index),
                Direction::Egress => outbound_chain(nic.index),
            };
            let before = match old_acl {
                Some((old, rules)) => {
                    rules
                        .chains
                        .iter()
                        .find(|c| c.name == name)
                        .map(|chain| acl::Before {
                            compiled: old.compiled(direction),
                            ids: ids_of(Some(old)),
                            chain,
                        })
                }
                None => None,
            };
            chains.push(acl::acl_chain(
                nic.index,
                direction,
                compiled,
                has_items,
                ids,
                before.as_ref(),
            ));
        }
    }
    chains.extend(proxy::chains(router));
    chains.push(antispoof::chain(router));
    let nats = base::StaticNatSets::from_previous(router, previous);
    chains.push(base::mangle(router, nats));
    chains.push(base::dstnat(router, previous, nats));
    chains.push(base::forward(router, nats));
    chains.push(base::input(router, options));
    chains.push(base::srcnat(router, nats));
    Ruleset { chains }
}

fn has_acl_chains(nic: &Nic) -> bool {
    matches!(nic.role, Role::Guest | Role::Private)
}

fn quoted_list<I: IntoIterator<Item = String>>(items: I) -> String {
    let items: Vec<String> = items.into_iter().collect();
    if items.len() == 1 {
        return items.into_iter().next().expect("one");
    }
    format!("{{ {} }}", items.join(", "))
}

fn ifname(index: u32) -> String {
    format!("\"{}\"", dev_name(index))
}

fn cidr_list(nets: &[Ipv4Net]) -> String {
    quoted_list(
        Ipv4Net::aggregate(&nets.to_vec())
            .into_iter()
            .map(|n| n.to_string()),
    )
}

impl Ruleset {
    /// Number of rules and set elements, for logs.
    pub fn size(&self) -> (usize, usize) {
        let rules = self
            .chains
            .iter()
            .map(|c| c.rules.len() + c.subchains.iter().map(|s| s.rules.len()).sum::<usize>())
            .sum();
        let elements = self
            .chains
            .iter()
            .flat_map(|c| &c.sets)
            .map(|s| s.elements.len())
            .sum();
        (rules, elements)
    }
}
