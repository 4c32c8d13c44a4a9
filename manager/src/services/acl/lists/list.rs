//! `listNetworkACLLists`: the caller's lists and the built-in ones.

use std::collections::HashMap;

use uuid::Uuid;

use super::super::{list_view, tier_param};
use super::{FOR_DISPLAY, LIST_FIELDS, vpc_param};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply, page_of};
use crate::services::owner::ListArgs;
use crate::services::tags::{self, ResourceType, TAGS_FILTER};
use crate::store::{Page, acl, vpc};

const ID: Arg<Id> = Arg::opt("id", "the ID of the ACL list");
const NAME: Arg<Text> = Arg::opt("name", "the name of the ACL list");
const VPC: Arg<Id> = Arg::opt("vpcid", "only lists of this VPC (and the default lists)");
const TIER: Arg<Id> = Arg::opt("networkid", "only the list attached to this tier");

/// `listNetworkACLLists`.
pub struct ListAclLists {
    id: Option<Uuid>,
    name: Option<String>,
    vpc: Option<Uuid>,
    tier: Option<Uuid>,
    tags: Option<Vec<std::collections::BTreeMap<String, String>>>,
    list: ListArgs,
}

impl Command for ListAclLists {
    const NAME: &'static str = "listNetworkACLLists";

    fn spec() -> Spec {
        Spec::new("Lists network ACL lists, the default lists included")
            .roles(ALL)
            .param(ID)
            .param(NAME)
            .param(VPC)
            .param(TIER)
            .param(FOR_DISPLAY)
            .param(TAGS_FILTER)
            .params(ListArgs::specs())
            .returns("networkacllist", LIST_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListAclLists {
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            vpc: args.get(&VPC)?,
            tier: args.get(&TIER)?,
            tags: args.get(&TAGS_FILTER)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListAclLists {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let page = self.list.page(ctx).await?;
        let tagged = tags::narrow(
            &ctx.app.db,
            ResourceType::NetworkAclList,
            self.tags.as_deref(),
            self.id.map(|u| vec![u]),
        )
        .await?;
        let mut filter = acl::AclFilter {
            include_builtin: true,
            name: self.name,
            keyword: self.list.keyword.clone(),
            uuids: tagged,
            ..Default::default()
        };
        // A VPC or tier named explicitly (and accessible) shows its lists
        // whatever the ownership filters say.
        let mut named_vpc = false;
        if let Some(id) = self.vpc {
            filter.vpc_id = Some(vpc_param(ctx, VPC.name(), id).await?.id);
            named_vpc = true;
        }
        if let Some(id) = self.tier {
            let (tier, _) = tier_param(ctx, TIER.name(), id).await?;
            let Some(acl_id) = tier.network_acl_id else {
                return Ok(Reply::empty_list());
            };
            filter.id = Some(acl_id);
            named_vpc = true;
        }
        let lists = acl::list(db, &filter, Page::ALL).await?.items;
        // The VPCs of every list in one statement: a list is shown when its
        // VPC is, and its view names the VPC.
        let vpc_ids: Vec<i64> = lists.iter().filter_map(|l| l.vpc_id).collect();
        let vpcs: HashMap<i64, vpc::Vpc> = vpc::by_ids(db, &vpc_ids)
            .await?
            .into_iter()
            .map(|v| (v.id, v))
            .collect();
        let mut shown = Vec::new();
        for list in lists {
            let visible = match list.vpc_id {
                None => true,
                Some(vpc_id) => vpcs.get(&vpc_id).is_some_and(|v| {
                    named_vpc || scope.shows(v.account_id, v.domain_id, &v.domain_path)
                }),
            };
            if visible {
                shown.push(list);
            }
        }
        let count = shown.len() as u64;
        let items = page_of(shown, page)
            .iter()
            .map(|list| list_view(list, list.vpc_id.and_then(|id| vpcs.get(&id))))
            .collect();
        let mut items: Vec<serde_json::Value> = items;
        tags::attach(&ctx.app.db, ResourceType::NetworkAclList, &mut items).await?;
        Ok(Reply::List { count, items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_in_memory_skips_and_takes() {
        let rows: Vec<i32> = (1..=7).collect();
        assert_eq!(page_of(rows.clone(), Page::new(2, 3)), vec![4, 5, 6]);
        assert_eq!(page_of(rows.clone(), Page::new(3, 3)), vec![7]);
        assert_eq!(page_of(rows, Page::ALL).len(), 7);
    }
}
