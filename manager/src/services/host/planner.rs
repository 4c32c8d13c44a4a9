//! Where a new router or VM goes (CloudStack's deployment planner, pure):
//! on an Up and Enabled host of its zone, the one with the fewest routers
//! and VMs; a router preferably on a host that serves no other VPC yet, so
//! different VPCs' routers spread over the hosts. An admin's `hostid` wins
//! when that host is Up and Enabled; otherwise nothing is placed.

use std::collections::{BTreeSet, HashMap};

use crate::store::host;

/// A host as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The host (internal id).
    pub id: i64,
    /// Its agent answers (`Up`).
    pub up: bool,
    /// The admin allows new placements (`Enabled`).
    pub enabled: bool,
    /// Live routers on it.
    pub routers: i64,
    /// Live VMs on it.
    pub vms: i64,
    /// The VPCs whose routers run on it.
    pub vpcs: BTreeSet<i64>,
}

impl Candidate {
    fn usable(&self) -> bool {
        self.up && self.enabled
    }

    fn load(&self) -> i64 {
        self.routers + self.vms
    }
}

/// What is placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placing {
    /// A router of this VPC.
    Router { vpc: Option<i64> },
    /// A VM.
    Vm,
}

/// The outcome of planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// On this host.
    On(i64),
    /// The zone has no host at all: the manager's default backend runs it
    /// (a database from before hosts, or the simulated driver).
    Default,
    /// Hosts exist, but none may take it (or not the one asked for).
    NoCapacity,
}

/// Places `what` among `hosts` (the live hosts of its zone), on `wanted`
/// if an admin named one.
pub fn place(hosts: &[Candidate], what: Placing, wanted: Option<i64>) -> Plan {
    if let Some(id) = wanted {
        return match hosts.iter().find(|h| h.id == id) {
            Some(h) if h.usable() => Plan::On(h.id),
            _ => Plan::NoCapacity,
        };
    }
    if hosts.is_empty() {
        return Plan::Default;
    }
    let other_vpcs = |h: &Candidate| match what {
        Placing::Router { vpc } => h.vpcs.iter().filter(|v| Some(**v) != vpc).count(),
        Placing::Vm => 0,
    };
    hosts
        .iter()
        .filter(|h| h.usable())
        .min_by_key(|h| (other_vpcs(h), h.load(), h.id))
        .map_or(Plan::NoCapacity, |h| Plan::On(h.id))
}

/// The candidates of a zone from its host rows, the routers and VMs on
/// each (`loads`: host → (routers, VMs)) and the VPCs of its routers
/// (`(host, vpc)` pairs).
pub fn candidates(
    hosts: &[host::Host],
    loads: &HashMap<i64, (i64, i64)>,
    router_vpcs: &[(i64, i64)],
) -> Vec<Candidate> {
    hosts
        .iter()
        .filter(|h| h.removed.is_none())
        .map(|h| {
            let (routers, vms) = loads.get(&h.id).copied().unwrap_or_default();
            Candidate {
                id: h.id,
                up: h.status == host::STATUS_UP,
                enabled: h.resource_state == host::RESOURCE_ENABLED,
                routers,
                vms,
                vpcs: router_vpcs
                    .iter()
                    .filter(|(on, _)| *on == h.id)
                    .map(|(_, vpc)| *vpc)
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: i64, routers: i64, vms: i64, vpcs: &[i64]) -> Candidate {
        Candidate {
            id,
            up: true,
            enabled: true,
            routers,
            vms,
            vpcs: vpcs.iter().copied().collect(),
        }
    }

    #[test]
    fn a_vm_goes_to_the_host_with_the_fewest_routers_and_vms() {
        let hosts = [
            host(1, 1, 3, &[7]),
            host(2, 2, 0, &[8, 9]),
            host(3, 0, 5, &[]),
        ];
        assert_eq!(place(&hosts, Placing::Vm, None), Plan::On(2));
    }

    #[test]
    fn equal_loads_go_to_the_lowest_host_id() {
        let hosts = [host(4, 1, 1, &[]), host(2, 0, 2, &[]), host(3, 2, 0, &[])];
        assert_eq!(place(&hosts, Placing::Vm, None), Plan::On(2));
    }

    #[test]
    fn a_router_avoids_hosts_serving_other_vpcs_even_when_they_are_lighter() {
        // Host 1 is empty of VMs but runs VPC 7's router; host 2 carries
        // VMs only: VPC 8's router goes to host 2.
        let hosts = [host(1, 1, 0, &[7]), host(2, 0, 4, &[])];
        assert_eq!(
            place(&hosts, Placing::Router { vpc: Some(8) }, None),
            Plan::On(2)
        );
        // Its own VPC's routers do not count against a host.
        assert_eq!(
            place(&hosts, Placing::Router { vpc: Some(7) }, None),
            Plan::On(1)
        );
    }

    #[test]
    fn routers_of_many_vpcs_spread_evenly_over_the_hosts() {
        let mut hosts = vec![host(1, 0, 0, &[]), host(2, 0, 0, &[]), host(3, 0, 0, &[])];
        for vpc in 0..300 {
            let Plan::On(id) = place(&hosts, Placing::Router { vpc: Some(vpc) }, None) else {
                panic!("no host for VPC {vpc}");
            };
            let h = hosts.iter_mut().find(|h| h.id == id).unwrap();
            h.routers += 1;
            h.vpcs.insert(vpc);
        }
        let counts: Vec<i64> = hosts.iter().map(|h| h.routers).collect();
        assert_eq!(counts, vec![100, 100, 100]);
    }

    #[test]
    fn hosts_that_are_down_disabled_or_in_maintenance_take_nothing() {
        let mut down = host(1, 0, 0, &[]);
        down.up = false;
        let mut disabled = host(2, 0, 0, &[]);
        disabled.enabled = false;
        let busy = host(3, 50, 50, &[1, 2, 3]);
        let hosts = [down.clone(), disabled.clone(), busy];
        assert_eq!(place(&hosts, Placing::Vm, None), Plan::On(3));
        assert_eq!(
            place(&[down, disabled], Placing::Vm, None),
            Plan::NoCapacity
        );
    }

    #[test]
    fn a_zone_without_hosts_uses_the_default_backend() {
        assert_eq!(
            place(&[], Placing::Router { vpc: Some(1) }, None),
            Plan::Default
        );
    }

    #[test]
    fn an_admins_host_wins_only_when_it_is_up_and_enabled() {
        let mut disabled = host(2, 0, 0, &[]);
        disabled.enabled = false;
        let hosts = [host(1, 0, 0, &[]), disabled, host(3, 9, 9, &[4])];
        assert_eq!(place(&hosts, Placing::Vm, Some(3)), Plan::On(3));
        assert_eq!(place(&hosts, Placing::Vm, Some(2)), Plan::NoCapacity);
        assert_eq!(place(&hosts, Placing::Vm, Some(42)), Plan::NoCapacity);
        assert_eq!(place(&[], Placing::Vm, Some(1)), Plan::NoCapacity);
    }
}
