//! The rows a list's views refer to (owners, zones, tiers, VMs, addresses,
//! ranges, load balancers), cached per list: looked up once per id, and
//! preloaded for a whole page in one statement per table so the views of
//! the public IP, port forwarding and load balancer lists ask nothing per
//! row.

use std::collections::HashMap;

use super::common::live_rules_on_ip;
use crate::error::Error;
use crate::store::{Db, account, domain, network, rule, vlan, vm, vpc, zone};

/// Names of the objects response fields refer to, looked up once per list.
#[derive(Default)]
pub struct Names {
    accounts: HashMap<i64, Option<account::Account>>,
    domains: HashMap<i64, Option<domain::Domain>>,
    zones: HashMap<i64, Option<zone::Zone>>,
    networks: HashMap<i64, Option<network::Network>>,
    vpcs: HashMap<i64, Option<vpc::Vpc>>,
    vms: HashMap<i64, Option<vm::Vm>>,
    ips: HashMap<i64, Option<vlan::PublicIp>>,
    ranges: HashMap<i64, Option<vlan::VlanRange>>,
    load_balancers: HashMap<i64, Option<rule::LoadBalancer>>,
    /// Whether an address has live rules (not being revoked).
    has_rules: HashMap<i64, bool>,
}

/// The ids of the rows a page of a list refers to, for [`Names::preload`].
#[derive(Default)]
pub struct Wanted {
    pub accounts: Vec<i64>,
    pub domains: Vec<i64>,
    pub zones: Vec<i64>,
    pub networks: Vec<i64>,
    pub vpcs: Vec<i64>,
    pub vms: Vec<i64>,
    pub ips: Vec<i64>,
    pub ranges: Vec<i64>,
    pub load_balancers: Vec<i64>,
    /// Addresses whose live rules the views ask about.
    pub rules_on_ips: Vec<i64>,
}

/// Loads the rows of `ids` not in `cache` yet, in one statement, and
/// remembers the ids without a row too (so the view asks no more).
async fn fill<T>(
    cache: &mut HashMap<i64, Option<T>>,
    ids: &[i64],
    id_of: impl Fn(&T) -> i64,
    load: impl AsyncFnOnce(&[i64]) -> Result<Vec<T>, crate::store::StoreError>,
) -> Result<(), Error> {
    let mut missing: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !cache.contains_key(id))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    for row in load(&missing).await? {
        cache.insert(id_of(&row), Some(row));
    }
    for id in missing {
        cache.entry(id).or_insert(None);
    }
    Ok(())
}

macro_rules! cached {
    ($name:ident, $field:ident, $ty:ty, $fetch:expr) => {
        /// The row with this id (removed or not), looked up once.
        pub async fn $name(&mut self, db: &Db, id: i64) -> Result<Option<&$ty>, Error> {
            if !self.$field.contains_key(&id) {
                let row = $fetch(db, id).await?;
                self.$field.insert(id, row);
            }
            Ok(self.$field.get(&id).and_then(Option::as_ref))
        }
    };
}

impl Names {
    cached!(account, accounts, account::Account, account::get_by_id);
    cached!(domain, domains, domain::Domain, domain::get_by_id);
    cached!(zone, zones, zone::Zone, zone::get_by_id);
    cached!(network, networks, network::Network, network::get_by_id);
    cached!(vpc, vpcs, vpc::Vpc, vpc::get_by_id);
    cached!(vm, vms, vm::Vm, vm::get_by_id);
    cached!(ip, ips, vlan::PublicIp, vlan::ip_by_id);
    cached!(range, ranges, vlan::VlanRange, vlan::range_by_id);
    cached!(
        load_balancer,
        load_balancers,
        rule::LoadBalancer,
        rule::load_balancer
    );

    /// Loads every row `wanted` names that is not cached yet, one statement
    /// per table: the views of a page then find them all in the cache
    /// instead of asking once per row.
    pub async fn preload(&mut self, db: &Db, wanted: Wanted) -> Result<(), Error> {
        fill(
            &mut self.ips,
            &wanted.ips,
            |r| r.id,
            async |ids| vlan::ips_by_ids(db, ids).await,
        )
        .await?;
        // Addresses lead to zones; add them before the zones load.
        let mut zones = wanted.zones;
        zones.extend(
            wanted
                .ips
                .iter()
                .filter_map(|id| self.ips.get(id).and_then(Option::as_ref))
                .map(|ip| ip.zone_id),
        );
        fill(
            &mut self.zones,
            &zones,
            |r| r.id,
            async |ids| zone::by_ids(db, ids).await,
        )
        .await?;
        fill(
            &mut self.accounts,
            &wanted.accounts,
            |r| r.id,
            async |ids| account::by_ids(db, ids).await,
        )
        .await?;
        fill(
            &mut self.domains,
            &wanted.domains,
            |r| r.id,
            async |ids| domain::by_ids(db, ids).await,
        )
        .await?;
        fill(
            &mut self.networks,
            &wanted.networks,
            |r| r.id,
            async |ids| network::by_ids(db, ids).await,
        )
        .await?;
        fill(
            &mut self.vpcs,
            &wanted.vpcs,
            |r| r.id,
            async |ids| vpc::by_ids(db, ids).await,
        )
        .await?;
        fill(
            &mut self.vms,
            &wanted.vms,
            |r| r.id,
            async |ids| vm::by_ids(db, ids).await,
        )
        .await?;
        fill(
            &mut self.ranges,
            &wanted.ranges,
            |r| r.id,
            async |ids| vlan::ranges_by_ids(db, ids).await,
        )
        .await?;
        fill(
            &mut self.load_balancers,
            &wanted.load_balancers,
            |r| r.id,
            async |ids| rule::load_balancers(db, ids).await,
        )
        .await?;
        let asked: Vec<i64> = wanted
            .rules_on_ips
            .iter()
            .copied()
            .filter(|id| !self.has_rules.contains_key(id))
            .collect();
        if !asked.is_empty() {
            for id in &asked {
                self.has_rules.insert(*id, false);
            }
            for r in rule::live_on_ips(db, &asked).await? {
                if r.state != rule::STATE_REVOKE {
                    self.has_rules.insert(r.ip_address_id, true);
                }
            }
        }
        Ok(())
    }

    /// Whether address `ip_id` has live rules (not being revoked).
    pub async fn has_live_rules(&mut self, db: &Db, ip_id: i64) -> Result<bool, Error> {
        if let Some(has) = self.has_rules.get(&ip_id) {
            return Ok(*has);
        }
        let has = !live_rules_on_ip(db, ip_id).await?.is_empty();
        self.has_rules.insert(ip_id, has);
        Ok(has)
    }

    /// `account`, `domainid`, `domain` of an owner.
    pub async fn owner(
        &mut self,
        db: &Db,
        account_id: Option<i64>,
        domain_id: Option<i64>,
    ) -> Result<serde_json::Value, Error> {
        let account = match account_id {
            Some(id) => self.account(db, id).await?.map(|a| a.account_name.clone()),
            None => None,
        };
        let (domain_uuid, domain_name) = match domain_id {
            Some(id) => match self.domain(db, id).await? {
                Some(d) => (Some(d.uuid), Some(d.name.clone())),
                None => (None, None),
            },
            None => (None, None),
        };
        Ok(serde_json::json!({
            "account": account,
            "domainid": domain_uuid,
            "domain": domain_name,
        }))
    }
}
