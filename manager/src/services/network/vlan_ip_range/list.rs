//! `listVlanIpRanges`: filtered in memory (a zone has few ranges).

use uuid::Uuid;

use super::super::{Paging, physnet_param, zone_param};
use super::{RANGE_FIELDS, normalize_public_vlan, range_view};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand, Text};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply, page_of};
use crate::store::{Page, vlan};

const ID: Arg<Id> = Arg::opt("id", "the ID of the public IP range");
const ZONE: Arg<Id> = Arg::opt("zoneid", "only the ranges of this zone");
const PHYSNET: Arg<Id> = Arg::opt(
    "physicalnetworkid",
    "only the ranges of this physical network",
);
const VLAN: Arg<Text> = Arg::opt(
    "vlan",
    "only the ranges of this VLAN (a number, vlan://<n> or untagged)",
);
const FOR_VIRTUAL_NETWORK: Arg<Flag> = Arg::opt(
    "forvirtualnetwork",
    "true: ranges of virtual networks (all ranges are)",
);

/// `listVlanIpRanges`.
pub struct ListVlanIpRanges {
    id: Option<Uuid>,
    zone: Option<Uuid>,
    physnet: Option<Uuid>,
    vlan: Option<String>,
    for_virtual_network: Option<bool>,
    paging: Paging,
}

impl Command for ListVlanIpRanges {
    const NAME: &'static str = "listVlanIpRanges";

    fn spec() -> Spec {
        Spec::new("Lists public IP ranges")
            .roles(ROOT)
            .param(ID)
            .param(ZONE)
            .param(PHYSNET)
            .param(VLAN)
            .param(FOR_VIRTUAL_NETWORK)
            .params(Paging::specs())
            .returns("vlaniprange", RANGE_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListVlanIpRanges {
            id: args.get(&ID)?,
            zone: args.get(&ZONE)?,
            physnet: args.get(&PHYSNET)?,
            vlan: args.text(&VLAN)?,
            for_virtual_network: args.get(&FOR_VIRTUAL_NETWORK)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListVlanIpRanges {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        // Every range serves virtual networks: none is of the other kind.
        if self.for_virtual_network == Some(false) {
            return Ok(Reply::empty_list());
        }
        let zone_id = zone_param(ctx, self.zone, ZONE.name()).await?.map(|z| z.id);
        let physnet_id = physnet_param(ctx, self.physnet, PHYSNET.name())
            .await?
            .map(|p| p.id);
        let uuid = self.id;
        let vlan_id = self
            .vlan
            .map(|v| normalize_public_vlan(Some(&v)))
            .transpose()?;
        let keyword = self.paging.keyword.as_deref().map(str::to_lowercase);
        let page = self.paging.page(ctx).await?;
        let matching: Vec<vlan::VlanRange> = vlan::list_ranges(db, zone_id, Page::ALL)
            .await?
            .items
            .into_iter()
            .filter(|r| uuid.as_ref().is_none_or(|u| &r.uuid == u))
            .filter(|r| physnet_id.is_none_or(|p| r.physical_network_id == Some(p)))
            .filter(|r| vlan_id.as_ref().is_none_or(|v| &r.vlan_id == v))
            .filter(|r| {
                keyword.as_deref().is_none_or(|k| {
                    [
                        r.vlan_id.clone(),
                        r.start_ip.to_string(),
                        r.end_ip.to_string(),
                        r.gateway.to_string(),
                    ]
                    .iter()
                    .any(|f| f.to_lowercase().contains(k))
                })
            })
            .collect();
        let count = matching.len() as u64;
        let mut items = Vec::new();
        for r in page_of(matching, page) {
            items.push(range_view(db, &r).await?);
        }
        Ok(Reply::List { count, items })
    }
}
