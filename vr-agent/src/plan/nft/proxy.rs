//! The tiers' ingress ACLs for the load balancer rules HAProxy serves.
//!
//! A DNAT-balanced connection walks the backend tier's `ACL_INBOUND_ethN` in
//! the forward chain. HAProxy's connections start in the router itself and
//! never pass there, so the same ACL is applied where the client reaches
//! HAProxy, in the input chain: for each backend tier and port of a proxied
//! rule, a chain `LB_PROXY_<rule>_<k>` reads the tier's ingress items in
//! number order (those that match TCP to that port) as `ip saddr … return`
//! (Allow) or `drop` (Deny), then drops (ingress defaults to deny). The
//! client must pass the ACL of every backend it could be sent to: stricter
//! than the kernel path (which checks only the backend chosen) when the
//! backends' tiers disagree, equal when they share a tier.

use std::collections::BTreeSet;

use ipnet::{IpNet, Ipv4Net};

use super::{Chain, cidr_list};
use crate::model::*;

/// TCP's protocol number.
const TCP: u8 = 6;

/// The chain of backend group `k` of proxied rule `rule`.
fn chain_name(rule: usize, k: usize) -> String {
    format!("LB_PROXY_{rule}_{k}")
}

/// (tier index, port) of each distinct backend group of `lb`.
fn groups(router: &Router, lb: &LoadBalancer) -> Vec<(u32, u16)> {
    let set: BTreeSet<(u32, u16)> = lb
        .backends
        .iter()
        .filter_map(|(ip, port)| router.tier_of(*ip).map(|t| (t.index, *port)))
        .collect();
    set.into_iter().collect()
}

/// The rules served by HAProxy, with their index in the router's list.
fn proxied(router: &Router) -> impl Iterator<Item = (usize, &LoadBalancer)> {
    router
        .load_balancers
        .iter()
        .enumerate()
        .filter(|(_, lb)| lb.needs_proxy() && !lb.backends.is_empty())
}

/// The ACL chains of every proxied rule.
pub(super) fn chains(router: &Router) -> Vec<Chain> {
    let mut out = Vec::new();
    for (n, lb) in proxied(router) {
        for (k, (tier, port)) in groups(router, lb).into_iter().enumerate() {
            let mut rules = Vec::new();
            if let Some(acl) = router.acls.get(&tier) {
                for item in acl.rules(Direction::Ingress) {
                    let applies = match item.matches {
                        Match::All => true,
                        Match::Protocol(p) => p == TCP,
                        Match::Ports {
                            protocol,
                            first,
                            last,
                        } => protocol == TCP && first <= port && port <= last,
                        Match::Icmp { .. } => false,
                    };
                    let v4: Vec<Ipv4Net> = item
                        .cidrs
                        .iter()
                        .filter_map(|c| match c {
                            IpNet::V4(n) => Some(*n),
                            IpNet::V6(_) => None,
                        })
                        .collect();
                    if !applies || v4.is_empty() {
                        continue;
                    }
                    let verdict = match item.action {
                        Action::Allow => "return",
                        Action::Deny => "drop",
                    };
                    rules.push(format!("ip saddr {} {verdict}", cidr_list(&v4)));
                }
            }
            rules.push("drop".into());
            out.push(Chain {
                name: chain_name(n, k),
                hook: None,
                sets: Vec::new(),
                rules,
                subchains: Vec::new(),
            });
        }
    }
    out
}

/// The input rules of the proxied rules: each backend group's ACL, then
/// accept (all limited to the rule's source CIDRs).
pub(super) fn input_rules(router: &Router) -> Vec<String> {
    let mut rules = Vec::new();
    for (n, lb) in proxied(router) {
        let sources = if lb.sources.is_empty() {
            String::new()
        } else {
            format!("ip saddr {} ", cidr_list(&lb.sources))
        };
        let head = format!(
            "{sources}ip daddr {} tcp dport {}",
            lb.public_ip, lb.public_port
        );
        for k in 0..groups(router, lb).len() {
            rules.push(format!("{head} jump {}", chain_name(n, k)));
        }
        rules.push(format!("{head} accept"));
    }
    rules
}
