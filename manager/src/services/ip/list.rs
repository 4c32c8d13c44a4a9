//! `listPublicIpAddresses`: the addresses the caller may see, and with
//! `allocatedonly=false` the zone's free ones too.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply, page_of};
use crate::services::owner::{ListArgs, check_access};
use crate::services::tags::{self, ResourceType, TAGS_FILTER};
use crate::store::{Page, Scope, network, vlan, vpc, zone};

use super::common::{Names, Wanted};
use super::views::{IP_FIELDS, ip_view};

const ID: Arg<Id> = Arg::opt("id", "the ID of the address");
const ADDRESS: Arg<Text> = Arg::opt("ipaddress", "only this address");
const VPC: Arg<Id> = Arg::opt("vpcid", "only addresses of this VPC");
const ASSOCIATED_NETWORK: Arg<Id> =
    Arg::opt("associatednetworkid", "only addresses bound to this tier");
const NETWORK: Arg<Id> = Arg::opt(
    "networkid",
    "only addresses bound to this tier (same as associatednetworkid)",
);
const ZONE: Arg<Id> = Arg::opt("zoneid", "only addresses of this zone");
const SOURCE_NAT: Arg<Flag> = Arg::opt("issourcenat", "only (non-)source-NAT addresses");
const STATIC_NAT: Arg<Flag> = Arg::opt("isstaticnat", "only addresses with (without) static NAT");
const ALLOCATED_ONLY: Arg<Flag> = Arg::opt(
    "allocatedonly",
    "false: also the zone's free addresses (default true)",
);
const STATE: Arg<Text> = Arg::opt("state", "only addresses in this state");
const FOR_VIRTUAL_NETWORK: Arg<Flag> = Arg::opt(
    "forvirtualnetwork",
    "true (all addresses serve virtual networks); false lists nothing",
);
const RANGE: Arg<Id> = Arg::opt("vlanid", "only addresses of this public IP range");
const FOR_LOAD_BALANCING: Arg<Flag> =
    Arg::opt("forloadbalancing", "accepted for compatibility; not used");
const PHYSICAL_NETWORK: Arg<Id> =
    Arg::opt("physicalnetworkid", "accepted for compatibility; not used");

/// `listPublicIpAddresses`.
pub struct ListPublicIpAddresses {
    id: Option<Uuid>,
    address: Option<String>,
    vpc: Option<Uuid>,
    associated_network: Option<Uuid>,
    network: Option<Uuid>,
    zone: Option<Uuid>,
    source_nat: Option<bool>,
    static_nat: Option<bool>,
    allocated_only: Option<bool>,
    state: Option<String>,
    for_virtual_network: Option<bool>,
    range: Option<Uuid>,
    tags: Option<Vec<std::collections::BTreeMap<String, String>>>,
    list: ListArgs,
}

impl Command for ListPublicIpAddresses {
    const NAME: &'static str = "listPublicIpAddresses";

    fn spec() -> Spec {
        Spec::new("Lists public IP addresses")
            .roles(ALL)
            .param(ID)
            .param(ADDRESS)
            .param(VPC)
            .param(ASSOCIATED_NETWORK)
            .param(NETWORK)
            .param(ZONE)
            .param(SOURCE_NAT)
            .param(STATIC_NAT)
            .param(ALLOCATED_ONLY)
            .param(STATE)
            .param(FOR_VIRTUAL_NETWORK)
            .param(RANGE)
            .param(FOR_LOAD_BALANCING)
            .param(PHYSICAL_NETWORK)
            .param(TAGS_FILTER)
            .params(ListArgs::specs())
            .returns("publicipaddress", IP_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListPublicIpAddresses {
            id: args.get(&ID)?,
            address: args.text(&ADDRESS)?,
            vpc: args.get(&VPC)?,
            associated_network: args.get(&ASSOCIATED_NETWORK)?,
            network: args.get(&NETWORK)?,
            zone: args.get(&ZONE)?,
            source_nat: args.get(&SOURCE_NAT)?,
            static_nat: args.get(&STATIC_NAT)?,
            allocated_only: args.get(&ALLOCATED_ONLY)?,
            state: args.text(&STATE)?,
            for_virtual_network: args.get(&FOR_VIRTUAL_NETWORK)?,
            range: args.get(&RANGE)?,
            tags: args.get(&TAGS_FILTER)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListPublicIpAddresses {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let page = self.list.page(ctx).await?;
        if self.for_virtual_network == Some(false) {
            return Ok(Reply::empty_list());
        }
        let tagged = tags::narrow(
            db,
            ResourceType::PublicIpAddress,
            self.tags.as_deref(),
            None,
        )
        .await?;
        let mut filter = vlan::PublicIpFilter {
            uuids: tagged,
            source_nat: self.source_nat,
            one_to_one_nat: self.static_nat,
            state: self.state,
            uuid: self.id,
            address: self.address.map(|a| a.trim().to_string()),
            ..Default::default()
        };
        if let Some(id) = self.vpc {
            let v = vpc::get_by_uuid(db, id)
                .await?
                .ok_or_else(|| Error::invalid_id(VPC.name(), id))?;
            check_access(
                ctx,
                v.account_id,
                &v.domain_path,
                &format!("VPC {}", v.uuid),
            )?;
            filter.vpc_id = Some(v.id);
        }
        // Both name the tier; the later one wins when both are given.
        for (name, id) in [
            (ASSOCIATED_NETWORK.name(), self.associated_network),
            (NETWORK.name(), self.network),
        ] {
            if let Some(id) = id {
                let n = network::get_by_uuid(db, id)
                    .await?
                    .ok_or_else(|| Error::invalid_id(name, id))?;
                check_access(
                    ctx,
                    n.account_id,
                    &n.domain_path,
                    &format!("network {}", n.uuid),
                )?;
                filter.associated_network_id = Some(n.id);
            }
        }
        if let Some(id) = self.zone {
            let z = zone::get_by_uuid(db, id)
                .await?
                .ok_or_else(|| Error::invalid_id(ZONE.name(), id))?;
            filter.zone_id = Some(z.id);
        }
        let vlan_range = match self.range {
            Some(id) => Some(
                vlan::range_by_uuid(db, id)
                    .await?
                    .ok_or_else(|| Error::invalid_id(RANGE.name(), id))?
                    .id,
            ),
            None => None,
        };
        filter.scope = scope.clone();
        filter.held_only = true;
        // allocatedonly=false also shows the zone's free addresses, which
        // nobody owns, after the held ones the caller may see.
        let with_free = self.allocated_only == Some(false);
        let (count, rows) = if with_free || vlan_range.is_some() {
            let mut rows = vlan::list_ips(db, &filter, Page::ALL).await?.items;
            if with_free {
                let free = vlan::PublicIpFilter {
                    state: Some(vlan::IP_FREE.into()),
                    scope: Scope::default(),
                    held_only: false,
                    ..filter.clone()
                };
                if filter.state.as_deref().is_none_or(|s| s == vlan::IP_FREE) {
                    rows.extend(vlan::list_ips(db, &free, Page::ALL).await?.items);
                }
            }
            rows.retain(|ip| vlan_range.is_none_or(|r| r == ip.vlan_db_id));
            (rows.len() as u64, page_of(rows, page))
        } else {
            let listed = vlan::list_ips(db, &filter, page).await?;
            (listed.total as u64, listed.items)
        };
        let mut names = Names::default();
        names.preload(db, wanted(&rows)).await?;
        let mut items = Vec::new();
        for ip in &rows {
            items.push(ip_view(db, &ctx.caller, &mut names, ip).await?);
        }
        tags::attach(db, ResourceType::PublicIpAddress, &mut items).await?;
        Ok(Reply::List { count, items })
    }
}

/// The names the views of `rows` show, read in one query per kind.
fn wanted(rows: &[vlan::PublicIp]) -> Wanted {
    Wanted {
        accounts: rows.iter().filter_map(|ip| ip.account_id).collect(),
        domains: rows.iter().filter_map(|ip| ip.domain_id).collect(),
        zones: rows.iter().map(|ip| ip.zone_id).collect(),
        networks: rows
            .iter()
            .filter_map(|ip| ip.associated_network_id)
            .collect(),
        vpcs: rows.iter().filter_map(|ip| ip.vpc_id).collect(),
        vms: rows.iter().filter_map(|ip| ip.vm_id).collect(),
        ranges: rows.iter().map(|ip| ip.vlan_db_id).collect(),
        rules_on_ips: rows
            .iter()
            .filter(|ip| !ip.one_to_one_nat)
            .map(|ip| ip.id)
            .collect(),
        ..Wanted::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_rows_filtered_in_memory() {
        let rows: Vec<u32> = (1..=5).collect();
        assert_eq!(page_of(rows.clone(), Page::new(2, 2)), [3, 4]);
        assert_eq!(page_of(rows.clone(), Page::new(3, 2)), [5]);
        assert_eq!(page_of(rows, Page::ALL).len(), 5);
    }
}
