//! `listNetworkACLs`: the items of the lists the caller may see, or of the
//! list (or tier) it names.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;
use vpc_proto::v1 as pb;

use super::super::{check_vpc_access, item_view, list_param, tier_param, vpc_of};
use super::rows::{action_text, traffic_text};
use super::{FOR_DISPLAY, item_spec};
use crate::error::Error;
use crate::rules::acl::{AclProtocol, Action, TrafficType};
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::{Ctx, Reply, page_of};
use crate::services::owner::ListArgs;
use crate::store::{Page, acl, vpc};

const ID: Arg<Id> = Arg::opt("id", "the ID of the ACL item");
const TIER: Arg<Id> = Arg::opt("networkid", "only items of the list of this tier");
const ACL: Arg<Id> = Arg::opt("aclid", "only items of this ACL list");
const TRAFFIC_TYPE: Arg<Text> = Arg::opt("traffictype", "only Ingress or Egress items");
const ACTION: Arg<Text> = Arg::opt("action", "only Allow or Deny items");
const PROTOCOL: Arg<Text> = Arg::opt("protocol", "only items of this protocol");

/// `listNetworkACLs`.
pub struct ListAclItems {
    id: Option<Uuid>,
    tier: Option<Uuid>,
    acl: Option<Uuid>,
    traffic_type: Option<String>,
    action: Option<String>,
    protocol: Option<String>,
    list: ListArgs,
}

impl Command for ListAclItems {
    const NAME: &'static str = "listNetworkACLs";

    fn spec() -> Spec {
        let mut params = vec![
            ID.spec(),
            TIER.spec(),
            ACL.spec(),
            TRAFFIC_TYPE.spec(),
            ACTION.spec(),
            PROTOCOL.spec(),
            FOR_DISPLAY.spec(),
        ];
        params.extend(ListArgs::specs());
        item_spec("Lists the items of network ACL lists", params)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListAclItems {
            id: args.get(&ID)?,
            tier: args.get(&TIER)?,
            acl: args.get(&ACL)?,
            traffic_type: args.text(&TRAFFIC_TYPE)?,
            action: args.text(&ACTION)?,
            protocol: args.text(&PROTOCOL)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListAclItems {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let page = self.list.page(ctx).await?;
        let mut filter = acl::AclItemFilter {
            uuids: self.id.map(|u| vec![u]),
            traffic_type: self
                .traffic_type
                .map(|t| TrafficType::parse(Some(&t)).map(traffic_text))
                .transpose()?
                .map(str::to_string),
            action: self
                .action
                .map(|a| Action::parse(Some(&a)).map(action_text))
                .transpose()?
                .map(str::to_string),
            protocol: self
                .protocol
                .map(|p| AclProtocol::parse(&p).map(|p| p.as_string()))
                .transpose()?,
            ..Default::default()
        };
        // A list or tier named explicitly (and accessible) shows its items
        // whatever the ownership filters say; an item named by `id` shows
        // only when its VPC is in the caller's scope, as CloudStack filters
        // by-id lookups by the permitted VPCs. The built-in lists' items
        // (everyone's) show only when asked for, by list or by id.
        let by_id = filter.uuids.is_some();
        let mut named = false;
        if let Some(id) = self.acl {
            let list = list_param(db, ACL.name(), id).await?;
            if let Some(v) = vpc_of(db, &list).await? {
                check_vpc_access(ctx, &v)?;
            }
            filter.acl_id = Some(list.id);
            named = true;
        }
        if let Some(id) = self.tier {
            let (tier, _) = tier_param(ctx, TIER.name(), id).await?;
            match tier.network_acl_id {
                Some(acl_id) if filter.acl_id.is_none_or(|a| a == acl_id) => {
                    filter.acl_id = Some(acl_id);
                    named = true;
                }
                _ => {
                    return Ok(Reply::empty_list());
                }
            }
        }
        let keyword = self.list.keyword.as_ref().map(|k| k.to_lowercase());
        let mut lists: HashMap<i64, (acl::AclList, Option<vpc::Vpc>)> = HashMap::new();
        let mut shown = Vec::new();
        for item in acl::list_items(db, &filter, Page::ALL).await?.items {
            if let Some(k) = &keyword {
                let reason = item.reason.as_deref().unwrap_or_default().to_lowercase();
                if !reason.contains(k) && !item.protocol.to_lowercase().contains(k) {
                    continue;
                }
            }
            if let Entry::Vacant(e) = lists.entry(item.acl_id) {
                let Some(list) = acl::get_by_id(db, item.acl_id).await? else {
                    continue;
                };
                let v = vpc_of(db, &list).await?;
                e.insert((list, v));
            }
            let visible = match &lists[&item.acl_id].1 {
                None => named || by_id,
                Some(v) => named || scope.shows(v.account_id, v.domain_id, &v.domain_path),
            };
            if visible {
                shown.push(item);
            }
        }
        let count = shown.len() as u64;
        let shown = page_of(shown, page);
        let counts = hit_counts(ctx, &shown, &lists).await?;
        let items = shown
            .iter()
            .map(|i| {
                let mut view = item_view(i, &lists[&i.acl_id].0);
                if let Some((packets, bytes)) = counts.get(&i.id) {
                    view["packets"] = json!(packets);
                    view["bytes"] = json!(bytes);
                }
                view
            })
            .collect();
        Ok(Reply::List { count, items })
    }
}

/// How long a listing waits for one router's counters.
const COUNTERS_WAIT: Duration = Duration::from_secs(1);

/// The packets and bytes each shown item decided on its VPC's running
/// router (summed over the tiers and private gateways using its list), by
/// item key. Items of a list without a VPC (the built-in lists), of a VPC
/// without a running router, or of a router that does not answer within
/// [`COUNTERS_WAIT`] get no entry: the listing shows them without the
/// fields rather than waiting or failing.
async fn hit_counts(
    ctx: &Ctx,
    shown: &[acl::AclItem],
    lists: &HashMap<i64, (acl::AclList, Option<vpc::Vpc>)>,
) -> Result<HashMap<i64, (u64, u64)>, Error> {
    let db = &ctx.app.db;
    let mut by_vpc: BTreeMap<i64, Vec<&acl::AclItem>> = BTreeMap::new();
    for item in shown {
        if let Some(v) = &lists[&item.acl_id].1 {
            by_vpc.entry(v.id).or_default().push(item);
        }
    }
    let mut out = HashMap::new();
    for (vpc_id, items) in by_vpc {
        let Some(router) = crate::provision::running_router(db, vpc_id).await? else {
            continue;
        };
        // The agent is reached by the router's name: no need to load its
        // NICs and addresses for a counters read.
        let view = crate::provision::monitor::probe_view(&router);
        let asked =
            tokio::time::timeout(COUNTERS_WAIT, ctx.app.network.element.acl_counters(&view));
        let live = match asked.await {
            Ok(Ok(live)) => live,
            Ok(Err(e)) => {
                tracing::debug!(router = %view.name, error = %e, "ACL counters not read");
                continue;
            }
            Err(_) => {
                tracing::debug!(router = %view.name, "ACL counters not read in time");
                continue;
            }
        };
        for item in items {
            let list = lists[&item.acl_id].0.uuid.to_string();
            let uuid = item.uuid.to_string();
            let direction = match TrafficType::parse(Some(&item.traffic_type)) {
                Ok(TrafficType::Ingress) => pb::TrafficType::Ingress,
                Ok(TrafficType::Egress) => pb::TrafficType::Egress,
                Err(_) => continue,
            } as i32;
            let mut sum = (0u64, 0u64);
            for c in live.iter().filter(|c| {
                // Counts follow the item's id; by number for an agent that
                // had the item without one.
                let same = if c.item_id.is_empty() {
                    i64::from(c.number) == item.number
                } else {
                    c.item_id == uuid
                };
                c.acl_id == list && same && c.traffic_type == direction
            }) {
                sum.0 += c.packets;
                sum.1 += c.bytes;
            }
            out.insert(item.id, sum);
        }
    }
    Ok(out)
}
