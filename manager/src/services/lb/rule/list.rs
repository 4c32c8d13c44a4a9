//! `listLoadBalancerRules`: the rules the caller may see, filtered by
//! address, tier, zone, member VM, name and keyword.

use uuid::Uuid;

use super::super::{LB_FIELDS, lb_view};
use super::FOR_DISPLAY;
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply, counted_page};
use crate::services::ip::common::{Names, Wanted};
use crate::services::nat::forward::RuleListArgs;
use crate::services::owner::ListArgs;
use crate::store::{Db, Page, rule, vm, zone};

const ID: Arg<Id> = Arg::opt("id", "the ID of the rule");
const NAME: Arg<Text> = Arg::opt("name", "only the rule with this name");
const PUBLIC_IP: Arg<Id> = Arg::opt("publicipid", "only rules on this public IP address");
const NETWORK: Arg<Id> = Arg::opt("networkid", "only rules of this tier");
const VM: Arg<Id> = Arg::opt("virtualmachineid", "only rules balancing to this VM");
const ZONE: Arg<Id> = Arg::opt("zoneid", "only rules in this zone");

/// `listLoadBalancerRules`.
pub struct ListLoadBalancerRules {
    /// `id`, `publicipid`, `networkid` and the ownership filters.
    args: RuleListArgs,
    name: Option<String>,
    vm: Option<Uuid>,
    zone: Option<Uuid>,
}

impl Command for ListLoadBalancerRules {
    const NAME: &'static str = "listLoadBalancerRules";

    fn spec() -> Spec {
        Spec::new("Lists load balancer rules")
            .roles(ALL)
            .param(ID)
            .param(NAME)
            .param(PUBLIC_IP)
            .param(NETWORK)
            .param(VM)
            .param(ZONE)
            .param(FOR_DISPLAY)
            .params(ListArgs::specs())
            .returns("loadbalancerrule", LB_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListLoadBalancerRules {
            args: RuleListArgs {
                id: args.get(&ID)?,
                ip: args.get(&PUBLIC_IP)?.map(|id| (PUBLIC_IP.name(), id)),
                network: args.get(&NETWORK)?,
                list: ListArgs::parse(args)?,
            },
            name: args.text(&NAME)?,
            vm: args.get(&VM)?,
            zone: args.get(&ZONE)?,
        })
    }
}

impl SyncCommand for ListLoadBalancerRules {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let filter = self.args.filter(ctx, rule::PURPOSE_LOAD_BALANCING).await?;
        if let Some(id) = self.zone {
            zone::get_by_uuid(db, id)
                .await?
                .ok_or_else(|| Error::invalid_id(ZONE.name(), id))?;
        }
        let vm_id = match self.vm {
            Some(id) => Some(
                vm::get_by_uuid(db, id)
                    .await?
                    .ok_or_else(|| Error::invalid_id(VM.name(), id))?
                    .id,
            ),
            None => None,
        };
        let name = self.name.as_deref();
        let keyword = self.args.list.keyword.as_deref();
        let page = self.args.list.page(ctx).await?;
        let in_memory = name.is_some() || keyword.is_some() || vm_id.is_some();
        let listed = rule::list(db, &filter, if in_memory { Page::ALL } else { page }).await?;
        let mut rows = Vec::new();
        for r in listed.items {
            if !in_memory || matches(db, &r, name, keyword, vm_id).await? {
                rows.push(r);
            }
        }
        let (count, rows) = counted_page(rows, listed.total, in_memory, page);
        let mut names = Names::default();
        names
            .preload(
                db,
                Wanted {
                    ips: rows.iter().map(|r| r.ip_address_id).collect(),
                    networks: rows.iter().map(|r| r.network_id).collect(),
                    accounts: rows.iter().map(|r| r.account_id).collect(),
                    domains: rows.iter().map(|r| r.domain_id).collect(),
                    load_balancers: rows.iter().map(|r| r.id).collect(),
                    ..Wanted::default()
                },
            )
            .await?;
        let mut items = Vec::new();
        for r in &rows {
            items.push(lb_view(db, &mut names, r).await?);
        }
        Ok(Reply::List { count, items })
    }
}

/// Whether a rule matches the `name`, `keyword` and `virtualmachineid`
/// filters.
async fn matches(
    db: &Db,
    r: &rule::Rule,
    name: Option<&str>,
    keyword: Option<&str>,
    vm_id: Option<i64>,
) -> Result<bool, Error> {
    let lb_name = rule::load_balancer(db, r.id)
        .await?
        .map(|l| l.name)
        .unwrap_or_default();
    if name.is_some_and(|n| n != lb_name) {
        return Ok(false);
    }
    if keyword.is_some_and(|k| !lb_name.to_lowercase().contains(&k.to_lowercase())) {
        return Ok(false);
    }
    if let Some(vm_id) = vm_id {
        let members = rule::members_with_vms(db, r.id).await?;
        if !members.iter().any(|m| m.vm_id == Some(vm_id)) {
            return Ok(false);
        }
    }
    Ok(true)
}
