//! Bounds on the size of every list in the desired state and in a request.
//!
//! A request is refused (INVALID_ARGUMENT naming the list and the bound)
//! before anything else is done with it, so a huge list costs a count, not a
//! validation pass or a plan. The three lists that grow with a tenant's use
//! (ACL items, port forwards, DHCP entries) have bounds the operator sets with
//! flags; the others are fixed here, far above what a VPC router holds.

use vpc_proto::v1 as pb;

use super::{Result, bad};
use crate::model::MAX_DEVICE_INDEX;

/// NICs, tiers, ACL lists, lease lists and source NAT rules: one per device
/// index at most.
const PER_NIC: usize = MAX_DEVICE_INDEX as usize + 1;
/// Public and private gateway IPs of one router.
pub const MAX_PUBLIC_IPS: usize = 1024;
/// Static routes of a VPC.
pub const MAX_STATIC_ROUTES: usize = 1024;
/// Static NAT mappings (one per public IP).
pub const MAX_STATIC_NATS: usize = MAX_PUBLIC_IPS;
/// Load balancer rules, and backends of one rule.
pub const MAX_LOAD_BALANCERS: usize = 4096;
pub const MAX_LB_BACKENDS: usize = 1024;
/// CIDRs of one ACL item or one rule's source list.
pub const MAX_CIDRS: usize = 1024;
/// DNS servers of one tier (CloudStack has dns1, dns2, ip6dns1, ip6dns2).
pub const MAX_DNS_SERVERS: usize = 16;

/// The bounds the operator sets (`vr-agent --max-acl-items`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Items of one NIC's ACL list.
    pub acl_items: usize,
    /// Port forwarding rules of the router.
    pub port_forwards: usize,
    /// Static leases of one tier.
    pub dhcp_entries: usize,
    /// nft set elements an ACL list may need per item and CIDR (see
    /// [`crate::plan::acl`]); a list needing more is refused naming the
    /// items being cut.
    pub acl_elements_per_entry: usize,
}

impl Default for Limits {
    /// 20,000 ACL items per list (twice the largest list the benchmarks
    /// measure), 10,000 port forwards, 16,384 leases per tier (a /18 tier
    /// full of VMs), 4 set elements per ACL item and CIDR.
    fn default() -> Self {
        Self {
            acl_items: 20_000,
            port_forwards: 10_000,
            dhcp_entries: 16_384,
            acl_elements_per_entry: crate::plan::acl::ELEMENTS_PER_ENTRY,
        }
    }
}

/// Refuses `list` when it has more than `max` entries.
pub(super) fn at_most<T>(field: &str, list: &[T], max: usize, flag: Option<&str>) -> Result<()> {
    if list.len() <= max {
        return Ok(());
    }
    let set_by = flag.map_or(String::new(), |f| format!(" (set by {f})"));
    Err(bad(
        field,
        format!("{} entries exceed the bound of {max}{set_by}", list.len()),
    ))
}

impl Limits {
    /// Checks the size of every list of a desired state.
    pub fn check(&self, config: &pb::RouterConfig) -> Result<()> {
        at_most("nics", &config.nics, PER_NIC, None)?;
        at_most("guest_networks", &config.guest_networks, PER_NIC, None)?;
        for (i, g) in config.guest_networks.iter().enumerate() {
            let f = |name: &str| format!("guest_networks[{i}].{name}");
            at_most(&f("dns_servers"), &g.dns_servers, MAX_DNS_SERVERS, None)?;
            at_most(&f("dns6_servers"), &g.dns6_servers, MAX_DNS_SERVERS, None)?;
        }
        at_most("public_ips", &config.public_ips, MAX_PUBLIC_IPS, None)?;
        at_most("source_nat_rules", &config.source_nat_rules, PER_NIC, None)?;
        for (i, r) in config.source_nat_rules.iter().enumerate() {
            let field = format!("source_nat_rules[{i}].source_cidrs");
            at_most(&field, &r.source_cidrs, MAX_CIDRS, None)?;
        }
        at_most(
            "static_routes",
            &config.static_routes,
            MAX_STATIC_ROUTES,
            None,
        )?;
        at_most("network_acls", &config.network_acls, PER_NIC, None)?;
        for (i, acl) in config.network_acls.iter().enumerate() {
            self.check_acl(&format!("network_acls[{i}]"), acl)?;
        }
        self.check_port_forwards("port_forwarding_rules", &config.port_forwarding_rules)?;
        at_most(
            "static_nat_rules",
            &config.static_nat_rules,
            MAX_STATIC_NATS,
            None,
        )?;
        self.check_load_balancers("load_balancer_rules", &config.load_balancer_rules)?;
        at_most("dhcp", &config.dhcp, PER_NIC, None)?;
        for (i, d) in config.dhcp.iter().enumerate() {
            self.check_dhcp(&format!("dhcp[{i}]"), d)?;
        }
        at_most("vm_data", &config.vm_data, PER_NIC, None)?;
        for (i, d) in config.vm_data.iter().enumerate() {
            self.check_vm_data(&format!("vm_data[{i}]"), d)?;
        }
        Ok(())
    }

    /// Checks one NIC's ACL list (`field` names the list).
    pub fn check_acl(&self, field: &str, acl: &pb::NetworkAcl) -> Result<()> {
        at_most(
            &format!("{field}.items"),
            &acl.items,
            self.acl_items,
            Some("--max-acl-items"),
        )?;
        // The field is named only for an item past the bound: a list of
        // 10,000 items is checked without writing 10,000 names.
        for (k, item) in acl.items.iter().enumerate() {
            if item.cidrs.len() > MAX_CIDRS {
                at_most(
                    &format!("{field}.items[{k}].cidrs"),
                    &item.cidrs,
                    MAX_CIDRS,
                    None,
                )?;
            }
        }
        Ok(())
    }

    /// [`Limits::check_acl`] for an edit that leaves `len` items in the
    /// list, of which `added` (each with its index in the list) are new:
    /// the items that stay were checked when they came.
    pub fn check_acl_edit(
        &self,
        field: &str,
        len: usize,
        added: &[(usize, &pb::AclItem)],
    ) -> Result<()> {
        if len > self.acl_items {
            return Err(bad(
                format!("{field}.items"),
                format!(
                    "{len} entries exceed the bound of {} (set by --max-acl-items)",
                    self.acl_items
                ),
            ));
        }
        for (k, item) in added {
            at_most(
                &format!("{field}.items[{k}].cidrs"),
                &item.cidrs,
                MAX_CIDRS,
                None,
            )?;
        }
        Ok(())
    }

    /// Checks a port forwarding rule list.
    pub fn check_port_forwards(&self, field: &str, rules: &[pb::PortForwardingRule]) -> Result<()> {
        at_most(
            field,
            rules,
            self.port_forwards,
            Some("--max-port-forwards"),
        )?;
        // The field is named for the rule over the bound alone (10,000
        // forwards arrive with every change).
        match rules.iter().position(|r| r.source_cidrs.len() > MAX_CIDRS) {
            Some(i) => at_most(
                &format!("{field}[{i}].source_cidrs"),
                &rules[i].source_cidrs,
                MAX_CIDRS,
                None,
            ),
            None => Ok(()),
        }
    }

    /// Checks a load balancer rule list.
    pub fn check_load_balancers(&self, field: &str, rules: &[pb::LoadBalancerRule]) -> Result<()> {
        at_most(field, rules, MAX_LOAD_BALANCERS, None)?;
        for (i, r) in rules.iter().enumerate() {
            let f = |name: &str| format!("{field}[{i}].{name}");
            at_most(&f("backends"), &r.backends, MAX_LB_BACKENDS, None)?;
            at_most(&f("source_cidrs"), &r.source_cidrs, MAX_CIDRS, None)?;
        }
        Ok(())
    }

    /// Checks one tier's lease list.
    pub fn check_dhcp(&self, field: &str, dhcp: &pb::TierDhcp) -> Result<()> {
        at_most(
            &format!("{field}.entries"),
            &dhcp.entries,
            self.dhcp_entries,
            Some("--max-dhcp-entries"),
        )
    }

    /// Checks a list of public IPs to associate or disassociate.
    pub fn check_public_ips(&self, field: &str, ips: &[pb::PublicIp]) -> Result<()> {
        at_most(field, ips, MAX_PUBLIC_IPS, None)
    }

    /// Checks a static route list.
    pub fn check_static_routes(&self, field: &str, routes: &[pb::StaticRoute]) -> Result<()> {
        at_most(field, routes, MAX_STATIC_ROUTES, None)
    }

    /// Checks a static NAT list.
    pub fn check_static_nats(&self, field: &str, rules: &[pb::StaticNatRule]) -> Result<()> {
        at_most(field, rules, MAX_STATIC_NATS, None)
    }

    /// Checks a source NAT list.
    pub fn check_source_nats(&self, field: &str, rules: &[pb::SourceNatRule]) -> Result<()> {
        at_most(field, rules, PER_NIC, None)?;
        for (i, r) in rules.iter().enumerate() {
            let f = format!("{field}[{i}].source_cidrs");
            at_most(&f, &r.source_cidrs, MAX_CIDRS, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_config;

    #[test]
    fn the_sample_fits_and_one_item_past_a_bound_is_refused_naming_the_list_and_flag() {
        let limits = Limits::default();
        limits.check(&sample_config()).unwrap();
        let small = Limits {
            acl_items: 4,
            ..limits
        };
        let err = small.check(&sample_config()).unwrap_err();
        assert_eq!(err.field, "network_acls[0].items");
        assert!(
            err.message.contains("5 entries exceed the bound of 4"),
            "{err}"
        );
        assert!(err.message.contains("--max-acl-items"), "{err}");

        let mut config = sample_config();
        config.port_forwarding_rules[0].source_cidrs = vec!["10.0.0.0/8".into(); MAX_CIDRS + 1];
        let err = limits.check(&config).unwrap_err();
        assert_eq!(err.field, "port_forwarding_rules[0].source_cidrs");

        let mut acl = sample_config().network_acls[0].clone();
        acl.items[3].cidrs = vec!["10.0.0.0/8".into(); MAX_CIDRS + 1];
        let err = limits.check_acl("acl", &acl).unwrap_err();
        assert_eq!(err.field, "acl.items[3].cidrs");
        acl.items[3].cidrs.truncate(MAX_CIDRS);
        limits.check_acl("acl", &acl).unwrap();
    }
}
