//! The rows a list's views refer to (owners, zones, tiers, VMs, addresses,
//! ranges, load balancers), cached per list: looked up once per id, and
//! preloaded for a whole page in one statement per table so the views of
//! the public IP, port forwarding and load balancer lists ask nothing per
//! row.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::common::live_rules_on_ip;
use crate::error::Error;
use crate::store::{Db, StoreError, account, domain, network, rule, vlan, vm, vpc, zone};

/// Rows of one table by id, each looked up at most once; an id without a
/// row is remembered too, so a view asks no more.
struct Cached<T>(HashMap<i64, Option<T>>);

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Cached(HashMap::new())
    }
}

impl<T> Cached<T> {
    /// The row with this id, from the cache or else from `fetch`.
    async fn get(
        &mut self,
        id: i64,
        fetch: impl AsyncFnOnce(i64) -> Result<Option<T>, StoreError>,
    ) -> Result<Option<&T>, Error> {
        if let Entry::Vacant(slot) = self.0.entry(id) {
            slot.insert(fetch(id).await?);
        }
        Ok(self.known(id))
    }

    /// The row with this id if it is cached.
    fn known(&self, id: i64) -> Option<&T> {
        self.0.get(&id).and_then(Option::as_ref)
    }

    /// Loads the rows of `ids` not cached yet, in one statement.
    async fn fill(
        &mut self,
        ids: &[i64],
        id_of: impl Fn(&T) -> i64,
        load: impl AsyncFnOnce(&[i64]) -> Result<Vec<T>, StoreError>,
    ) -> Result<(), Error> {
        let mut missing: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !self.0.contains_key(id))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        for row in load(&missing).await? {
            self.0.insert(id_of(&row), Some(row));
        }
        for id in missing {
            self.0.entry(id).or_insert(None);
        }
        Ok(())
    }
}

/// Names of the objects response fields refer to, looked up once per list.
#[derive(Default)]
pub struct Names {
    accounts: Cached<account::Account>,
    domains: Cached<domain::Domain>,
    zones: Cached<zone::Zone>,
    networks: Cached<network::Network>,
    vpcs: Cached<vpc::Vpc>,
    vms: Cached<vm::Vm>,
    ips: Cached<vlan::PublicIp>,
    ranges: Cached<vlan::VlanRange>,
    load_balancers: Cached<rule::LoadBalancer>,
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

impl Names {
    /// An account (removed or not), looked up once.
    pub async fn account(&mut self, db: &Db, id: i64) -> Result<Option<&account::Account>, Error> {
        self.accounts
            .get(id, async |id| account::get_by_id(db, id).await)
            .await
    }

    /// A domain (removed or not), looked up once.
    pub async fn domain(&mut self, db: &Db, id: i64) -> Result<Option<&domain::Domain>, Error> {
        self.domains
            .get(id, async |id| domain::get_by_id(db, id).await)
            .await
    }

    /// A zone (removed or not), looked up once.
    pub async fn zone(&mut self, db: &Db, id: i64) -> Result<Option<&zone::Zone>, Error> {
        self.zones
            .get(id, async |id| zone::get_by_id(db, id).await)
            .await
    }

    /// A network (removed or not), looked up once.
    pub async fn network(&mut self, db: &Db, id: i64) -> Result<Option<&network::Network>, Error> {
        self.networks
            .get(id, async |id| network::get_by_id(db, id).await)
            .await
    }

    /// A VPC (removed or not), looked up once.
    pub async fn vpc(&mut self, db: &Db, id: i64) -> Result<Option<&vpc::Vpc>, Error> {
        self.vpcs
            .get(id, async |id| vpc::get_by_id(db, id).await)
            .await
    }

    /// A VM (removed or not), looked up once.
    pub async fn vm(&mut self, db: &Db, id: i64) -> Result<Option<&vm::Vm>, Error> {
        self.vms
            .get(id, async |id| vm::get_by_id(db, id).await)
            .await
    }

    /// A public address (released or not), looked up once.
    pub async fn ip(&mut self, db: &Db, id: i64) -> Result<Option<&vlan::PublicIp>, Error> {
        self.ips
            .get(id, async |id| vlan::ip_by_id(db, id).await)
            .await
    }

    /// A public address range, looked up once.
    pub async fn range(&mut self, db: &Db, id: i64) -> Result<Option<&vlan::VlanRange>, Error> {
        self.ranges
            .get(id, async |id| vlan::range_by_id(db, id).await)
            .await
    }

    /// A load balancer rule, looked up once.
    pub async fn load_balancer(
        &mut self,
        db: &Db,
        id: i64,
    ) -> Result<Option<&rule::LoadBalancer>, Error> {
        self.load_balancers
            .get(id, async |id| rule::load_balancer(db, id).await)
            .await
    }

    /// Loads every row `wanted` names that is not cached yet, one statement
    /// per table: the views of a page then find them all in the cache
    /// instead of asking once per row.
    pub async fn preload(&mut self, db: &Db, wanted: Wanted) -> Result<(), Error> {
        self.ips
            .fill(
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
                .filter_map(|id| self.ips.known(*id))
                .map(|ip| ip.zone_id),
        );
        self.zones
            .fill(&zones, |r| r.id, async |ids| zone::by_ids(db, ids).await)
            .await?;
        self.accounts
            .fill(
                &wanted.accounts,
                |r| r.id,
                async |ids| account::by_ids(db, ids).await,
            )
            .await?;
        self.domains
            .fill(
                &wanted.domains,
                |r| r.id,
                async |ids| domain::by_ids(db, ids).await,
            )
            .await?;
        self.networks
            .fill(
                &wanted.networks,
                |r| r.id,
                async |ids| network::by_ids(db, ids).await,
            )
            .await?;
        self.vpcs
            .fill(
                &wanted.vpcs,
                |r| r.id,
                async |ids| vpc::by_ids(db, ids).await,
            )
            .await?;
        self.vms
            .fill(&wanted.vms, |r| r.id, async |ids| vm::by_ids(db, ids).await)
            .await?;
        self.ranges
            .fill(
                &wanted.ranges,
                |r| r.id,
                async |ids| vlan::ranges_by_ids(db, ids).await,
            )
            .await?;
        self.load_balancers
            .fill(
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
