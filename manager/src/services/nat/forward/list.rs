//! `listPortForwardingRules`.

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::services::ip::common::{Names, Wanted};
use crate::services::owner::ListArgs;
use crate::store::rule;

use super::{FOR_DISPLAY, PF_FIELDS, RuleListArgs, pf_view};

const ID: Arg<Id> = Arg::opt("id", "the ID of the rule");
const IP: Arg<Id> = Arg::opt("ipaddressid", "only rules on this public IP address");
const NETWORK: Arg<Id> = Arg::opt("networkid", "only rules of this tier");

/// `listPortForwardingRules`.
pub struct ListPortForwardingRules {
    args: RuleListArgs,
}

impl Command for ListPortForwardingRules {
    const NAME: &'static str = "listPortForwardingRules";

    fn spec() -> Spec {
        Spec::new("Lists port forwarding rules")
            .roles(ALL)
            .param(ID)
            .param(IP)
            .param(NETWORK)
            .param(FOR_DISPLAY)
            .params(ListArgs::specs())
            .returns("portforwardingrule", PF_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListPortForwardingRules {
            args: RuleListArgs {
                id: args.get(&ID)?,
                ip: args.get(&IP)?.map(|id| (IP.name(), id)),
                network: args.get(&NETWORK)?,
                list: ListArgs::parse(args)?,
            },
        })
    }
}

impl SyncCommand for ListPortForwardingRules {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let filter = self.args.filter(ctx, rule::PURPOSE_PORT_FORWARDING).await?;
        let page = self.args.list.page(ctx).await?;
        let listed = rule::list(db, &filter, page).await?;
        let mut names = Names::default();
        let rows = &listed.items;
        names
            .preload(
                db,
                Wanted {
                    ips: rows.iter().map(|r| r.ip_address_id).collect(),
                    networks: rows.iter().map(|r| r.network_id).collect(),
                    vms: rows.iter().filter_map(|r| r.vm_id).collect(),
                    ..Wanted::default()
                },
            )
            .await?;
        let mut items = Vec::new();
        for r in rows {
            items.push(pf_view(db, &mut names, r).await?);
        }
        Ok(Reply::List {
            count: listed.total as u64,
            items,
        })
    }
}
