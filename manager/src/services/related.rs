//! What a page of a list refers to, loaded once for the whole page.
//!
//! A list view shows, beside each row, fields of the rows it points at: its
//! zone's name, its offering and the offering's services, its owner's
//! account and domain, a VPC's tiers, a router's NICs and their networks.
//! Looking those up row by row cost several statements per row (about
//! 3,000 for a page of 500 VPCs). [`Related`] collects the ids of a page's
//! rows first and loads each table in one statement keyed by those ids; the
//! views then read from its maps, so a page costs the same few statements
//! whatever its size. A single object (the result of a create job) goes
//! through the same path as a page of one.
//!
//! Kept whole because the loaders of a page's related rows and the accessors the views read are one
//! cache.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::services::owner::owner_view;
use crate::store::offering::{NetworkOffering, OfferingService, ServiceProvider, VpcOffering};
use crate::store::{
    Db, account, acl, batch, domain, gateway, host, network, offering, router, vm, vpc, zone,
};

/// The rows a page of a list refers to, by internal id.
#[derive(Debug, Default)]
pub struct Related {
    zones: HashMap<i64, zone::Zone>,
    vpc_offerings: HashMap<i64, VpcOffering>,
    /// The services of each VPC offering, in the offering's order.
    vpc_offering_services: HashMap<i64, Vec<ServiceProvider>>,
    network_offerings: HashMap<i64, NetworkOffering>,
    /// The services of each network offering, in the offering's order.
    network_offering_services: HashMap<i64, Vec<ServiceProvider>>,
    physical_networks: HashMap<i64, zone::PhysicalNetwork>,
    acl_lists: HashMap<i64, acl::AclList>,
    accounts: HashMap<i64, account::Account>,
    domains: HashMap<i64, domain::Domain>,
    vpcs: HashMap<i64, vpc::Vpc>,
    /// The live tiers of each VPC, by creation order.
    tiers: HashMap<i64, Vec<network::Network>>,
    networks: HashMap<i64, network::Network>,
    /// The live NICs of each router, by device index.
    router_nics: HashMap<i64, Vec<router::Nic>>,
    service_offerings: HashMap<i64, vm::ServiceOffering>,
    templates: HashMap<i64, vm::Template>,
    /// The live NICs of each VM, by device index.
    vm_nics: HashMap<i64, Vec<router::Nic>>,
    private_gateways: HashMap<i64, gateway::PrivateGateway>,
    /// The hosts routers and VMs run on.
    hosts: HashMap<i64, host::Host>,
}

/// The distinct ids `f` gives for `rows`.
fn ids<T>(rows: &[T], f: impl Fn(&T) -> Option<i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = rows.iter().filter_map(f).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Keys rows by their id.
fn by_id<T>(rows: Vec<T>, id: impl Fn(&T) -> i64) -> HashMap<i64, T> {
    rows.into_iter().map(|row| (id(&row), row)).collect()
}

/// The services of each offering, in the offering's order (also for the
/// `supportedservices` filter of the lists).
pub fn services_by_offering(rows: Vec<OfferingService>) -> HashMap<i64, Vec<ServiceProvider>> {
    let mut out: HashMap<i64, Vec<ServiceProvider>> = HashMap::new();
    for s in rows {
        out.entry(s.offering_id).or_default().push(ServiceProvider {
            service: s.service,
            provider: s.provider,
        });
    }
    out
}

/// Groups rows under the key `f` gives, keeping their order.
fn grouped<T>(rows: Vec<T>, f: impl Fn(&T) -> Option<i64>) -> HashMap<i64, Vec<T>> {
    let mut out: HashMap<i64, Vec<T>> = HashMap::new();
    for row in rows {
        if let Some(key) = f(&row) {
            out.entry(key).or_default().push(row);
        }
    }
    out
}

impl Related {
    /// What a page of VPCs shows: zones, offerings with their services,
    /// owners and (with `with_tiers`) tiers. Seven statements at most.
    pub async fn for_vpcs(db: &Db, vpcs: &[vpc::Vpc], with_tiers: bool) -> Result<Self, Error> {
        let mut r = Related::default();
        if vpcs.is_empty() {
            return Ok(r);
        }
        r.load_zones(db, &ids(vpcs, |v| Some(v.zone_id))).await?;
        let offerings = ids(vpcs, |v| Some(v.vpc_offering_id));
        r.vpc_offerings = by_id(offering::vpc_offerings_by_ids(db, &offerings).await?, |o| {
            o.id
        });
        r.vpc_offering_services =
            services_by_offering(offering::vpc_offerings_services(db, &offerings).await?);
        r.load_owners(
            db,
            &ids(vpcs, |v| Some(v.account_id)),
            &ids(vpcs, |v| Some(v.domain_id)),
        )
        .await?;
        if with_tiers {
            let tiers = network::tiers_of_vpcs(db, &ids(vpcs, |v| Some(v.id))).await?;
            r.tiers = grouped(tiers, |n| n.vpc_id);
        }
        Ok(r)
    }

    /// What a page of routers shows: zones, VPCs, NICs and their networks,
    /// owners. Six statements at most.
    pub async fn for_routers(db: &Db, routers: &[router::Router]) -> Result<Self, Error> {
        let mut r = Related::default();
        if routers.is_empty() {
            return Ok(r);
        }
        r.load_zones(db, &ids(routers, |x| Some(x.zone_id))).await?;
        r.vpcs = by_id(vpc::by_ids(db, &ids(routers, |x| x.vpc_id)).await?, |v| {
            v.id
        });
        let nics = router::nics_of_routers(db, &ids(routers, |x| Some(x.id))).await?;
        let networks = ids(&nics, |n| Some(n.network_id));
        r.networks = by_id(network::by_ids(db, &networks).await?, |n| n.id);
        r.router_nics = grouped(nics, |n| n.router_id);
        r.hosts = by_id(host::by_ids(db, &ids(routers, |x| x.host_id)).await?, |h| {
            h.id
        });
        r.load_owners(
            db,
            &ids(routers, |x| Some(x.account_id)),
            &ids(routers, |x| Some(x.domain_id)),
        )
        .await?;
        Ok(r)
    }

    /// What a page of tiers shows: zones, network offerings with their
    /// services, VPCs, ACL lists, physical networks, owners. Eight
    /// statements at most.
    pub async fn for_networks(db: &Db, tiers: &[network::Network]) -> Result<Self, Error> {
        let mut r = Related::default();
        if tiers.is_empty() {
            return Ok(r);
        }
        r.load_zones(db, &ids(tiers, |t| Some(t.zone_id))).await?;
        let offerings = ids(tiers, |t| Some(t.network_offering_id));
        r.network_offerings = by_id(
            offering::network_offerings_by_ids(db, &offerings).await?,
            |o| o.id,
        );
        r.network_offering_services =
            services_by_offering(offering::network_offerings_services(db, &offerings).await?);
        r.vpcs = by_id(vpc::by_ids(db, &ids(tiers, |t| t.vpc_id)).await?, |v| v.id);
        let lists = ids(tiers, |t| t.network_acl_id);
        if !lists.is_empty() {
            r.acl_lists = by_id(batch::acl_lists(db, &lists).await?, |l| l.id);
        }
        let physical = ids(tiers, |t| t.physical_network_id);
        r.physical_networks = by_id(zone::physical_networks_by_ids(db, &physical).await?, |p| {
            p.id
        });
        r.load_owners(
            db,
            &ids(tiers, |t| Some(t.account_id)),
            &ids(tiers, |t| Some(t.domain_id)),
        )
        .await?;
        Ok(r)
    }

    /// What a page of VMs shows: zones, service offerings, templates,
    /// owners, NICs with their tiers and the tiers' VPCs. Eight statements
    /// at most.
    pub async fn for_vms(db: &Db, vms: &[vm::Vm]) -> Result<Self, Error> {
        let mut r = Related::default();
        if vms.is_empty() {
            return Ok(r);
        }
        r.load_zones(db, &ids(vms, |v| Some(v.zone_id))).await?;
        let offerings = ids(vms, |v| Some(v.service_offering_id));
        r.service_offerings = by_id(vm::offerings_by_ids(db, &offerings).await?, |o| o.id);
        let templates = ids(vms, |v| Some(v.template_id));
        r.templates = by_id(vm::templates_by_ids(db, &templates).await?, |t| t.id);
        let nics = router::nics_of_vms(db, &ids(vms, |v| Some(v.id))).await?;
        let networks = ids(&nics, |n| Some(n.network_id));
        r.networks = by_id(network::by_ids(db, &networks).await?, |n| n.id);
        let vpcs: Vec<i64> = r.networks.values().filter_map(|n| n.vpc_id).collect();
        r.vpcs = by_id(vpc::by_ids(db, &vpcs).await?, |v| v.id);
        r.vm_nics = grouped(nics, |n| n.vm_id);
        r.hosts = by_id(host::by_ids(db, &ids(vms, |v| v.host_id)).await?, |h| h.id);
        r.load_owners(
            db,
            &ids(vms, |v| Some(v.account_id)),
            &ids(vms, |v| Some(v.domain_id)),
        )
        .await?;
        Ok(r)
    }

    /// What a page of static routes shows: VPCs, private gateways, owners.
    /// Four statements at most.
    pub async fn for_routes(db: &Db, routes: &[gateway::StaticRoute]) -> Result<Self, Error> {
        let mut r = Related::default();
        if routes.is_empty() {
            return Ok(r);
        }
        r.vpcs = by_id(
            vpc::by_ids(db, &ids(routes, |x| Some(x.vpc_id))).await?,
            |v| v.id,
        );
        let gateways = ids(routes, |x| x.vpc_gateway_id);
        r.private_gateways = by_id(gateway::by_ids(db, &gateways).await?, |g| g.id);
        r.load_owners(
            db,
            &ids(routes, |x| Some(x.account_id)),
            &ids(routes, |x| Some(x.domain_id)),
        )
        .await?;
        Ok(r)
    }

    /// What a page of private gateways shows: VPCs and their zones, the
    /// gateways' networks and their physical networks, ACL lists, owners.
    /// Seven statements at most.
    pub async fn for_gateways(
        db: &Db,
        gateways: &[gateway::PrivateGateway],
    ) -> Result<Self, Error> {
        let mut r = Related::default();
        if gateways.is_empty() {
            return Ok(r);
        }
        r.vpcs = by_id(
            vpc::by_ids(db, &ids(gateways, |g| Some(g.vpc_id))).await?,
            |v| v.id,
        );
        let zones: Vec<i64> = r.vpcs.values().map(|v| v.zone_id).collect();
        r.load_zones(db, &zones).await?;
        let networks = ids(gateways, |g| Some(g.network_id));
        r.networks = by_id(network::by_ids(db, &networks).await?, |n| n.id);
        let physical: Vec<i64> = r
            .networks
            .values()
            .filter_map(|n| n.physical_network_id)
            .collect();
        r.physical_networks = by_id(zone::physical_networks_by_ids(db, &physical).await?, |p| {
            p.id
        });
        let lists = ids(gateways, |g| g.network_acl_id);
        if !lists.is_empty() {
            r.acl_lists = by_id(batch::acl_lists(db, &lists).await?, |l| l.id);
        }
        r.load_owners(
            db,
            &ids(gateways, |g| Some(g.account_id)),
            &ids(gateways, |g| Some(g.domain_id)),
        )
        .await?;
        Ok(r)
    }

    async fn load_zones(&mut self, db: &Db, ids: &[i64]) -> Result<(), Error> {
        self.zones = by_id(zone::by_ids(db, ids).await?, |z| z.id);
        Ok(())
    }

    async fn load_owners(
        &mut self,
        db: &Db,
        account_ids: &[i64],
        domain_ids: &[i64],
    ) -> Result<(), Error> {
        self.accounts = by_id(account::by_ids(db, account_ids).await?, |a| a.id);
        self.domains = by_id(domain::by_ids(db, domain_ids).await?, |d| d.id);
        Ok(())
    }

    /// A zone's UUID and name; empty when the zone row is gone.
    pub fn zone(&self, id: i64) -> (String, String) {
        self.zones
            .get(&id)
            .map(|z| (z.uuid.to_string(), z.name.clone()))
            .unwrap_or_default()
    }

    /// The host a router or VM runs on, if it has one.
    pub fn host(&self, id: Option<i64>) -> Option<&host::Host> {
        id.and_then(|id| self.hosts.get(&id))
    }

    /// A zone, removed or not.
    pub fn zone_row(&self, id: i64) -> Option<&zone::Zone> {
        self.zones.get(&id)
    }

    /// A network offering, removed or not.
    pub fn network_offering(&self, id: i64) -> Option<&NetworkOffering> {
        self.network_offerings.get(&id)
    }

    /// The services of a network offering, in the offering's order.
    pub fn network_offering_services(&self, id: i64) -> &[ServiceProvider] {
        self.network_offering_services
            .get(&id)
            .map_or(&[], Vec::as_slice)
    }

    /// A physical network, removed or not.
    pub fn physical_network(&self, id: i64) -> Option<&zone::PhysicalNetwork> {
        self.physical_networks.get(&id)
    }

    /// An ACL list, removed or not.
    pub fn acl_list(&self, id: i64) -> Option<&acl::AclList> {
        self.acl_lists.get(&id)
    }

    /// An account, removed or not.
    pub fn account(&self, id: i64) -> Option<&account::Account> {
        self.accounts.get(&id)
    }

    /// A domain, removed or not.
    pub fn domain(&self, id: i64) -> Option<&domain::Domain> {
        self.domains.get(&id)
    }

    /// A service offering, removed or not.
    pub fn service_offering(&self, id: i64) -> Option<&vm::ServiceOffering> {
        self.service_offerings.get(&id)
    }

    /// A template, removed or not.
    pub fn template(&self, id: i64) -> Option<&vm::Template> {
        self.templates.get(&id)
    }

    /// The live NICs of a VM, by device index.
    pub fn vm_nics(&self, vm_id: i64) -> &[router::Nic] {
        self.vm_nics.get(&vm_id).map_or(&[], Vec::as_slice)
    }

    /// A private gateway, removed or not.
    pub fn private_gateway(&self, id: i64) -> Option<&gateway::PrivateGateway> {
        self.private_gateways.get(&id)
    }

    /// A VPC offering.
    pub fn vpc_offering(&self, id: i64) -> Option<&VpcOffering> {
        self.vpc_offerings.get(&id)
    }

    /// The services of a VPC offering, in the offering's order.
    pub fn vpc_offering_services(&self, id: i64) -> &[ServiceProvider] {
        self.vpc_offering_services
            .get(&id)
            .map_or(&[], Vec::as_slice)
    }

    /// A VPC, removed or not.
    pub fn vpc(&self, id: i64) -> Option<&vpc::Vpc> {
        self.vpcs.get(&id)
    }

    /// The live tiers of a VPC, by creation order.
    pub fn tiers(&self, vpc_id: i64) -> &[network::Network] {
        self.tiers.get(&vpc_id).map_or(&[], Vec::as_slice)
    }

    /// A network, removed or not.
    pub fn network(&self, id: i64) -> Option<&network::Network> {
        self.networks.get(&id)
    }

    /// The live NICs of a router, by device index.
    pub fn router_nics(&self, router_id: i64) -> &[router::Nic] {
        self.router_nics.get(&router_id).map_or(&[], Vec::as_slice)
    }

    /// The owner fields (`account`, `domainid`, `domain`, `domainpath`);
    /// `account` is empty, not absent, when the account is not found.
    pub fn owner_fields(&self, account_id: i64, domain_id: i64) -> Map<String, Value> {
        let mut m = owner_view(self.account(account_id), self.domain(domain_id));
        m.entry("account").or_insert_with(|| json!(""));
        m
    }
}
