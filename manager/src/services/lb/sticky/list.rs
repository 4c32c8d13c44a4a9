//! `listLBStickinessPolicies`: the stickiness object of one rule (named by
//! `lbruleid`, or found through a policy's `id`), with its policies, as
//! CloudStack lists it: one entry, whose `stickinesspolicy` may be empty.

use uuid::Uuid;

use super::{STICKY_FIELDS, sticky_view};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Int, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::services::lb::lb_by_uuid;
use crate::store::{lb_sticky, rule};

const LB_RULE: Arg<Id> = Arg::opt("lbruleid", "the ID of the load balancer rule");
const ID: Arg<Id> = Arg::opt("id", "the ID of the load balancer stickiness policy");
const FOR_DISPLAY: Arg<Flag> = Arg::opt(
    "fordisplay",
    "only policies shown (true) or hidden (false) to the end user",
);
const KEYWORD: Arg<Text> = Arg::opt("keyword", "accepted; a rule has one policy at most");
const PAGE: Arg<Int> = Arg::opt("page", "accepted; the list has one entry");
const PAGE_SIZE: Arg<Int> = Arg::opt("pagesize", "accepted; the list has one entry");

/// `listLBStickinessPolicies`.
pub struct ListLbStickinessPolicies {
    rule: Option<Uuid>,
    id: Option<Uuid>,
    display: Option<bool>,
}

impl Command for ListLbStickinessPolicies {
    const NAME: &'static str = "listLBStickinessPolicies";

    fn spec() -> Spec {
        Spec::new("Lists load balancer stickiness policies")
            .roles(ALL)
            .param(LB_RULE)
            .param(ID)
            .param(FOR_DISPLAY)
            .param(KEYWORD)
            .param(PAGE)
            .param(PAGE_SIZE)
            .returns("stickinesspolicies", STICKY_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        let _ = (args.get(&KEYWORD)?, args.get(&PAGE)?, args.get(&PAGE_SIZE)?);
        Ok(ListLbStickinessPolicies {
            rule: args.get(&LB_RULE)?,
            id: args.get(&ID)?,
            display: args.get(&FOR_DISPLAY)?,
        })
    }
}

impl SyncCommand for ListLbStickinessPolicies {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let rule_uuid = match (self.id, self.rule) {
            (None, None) => {
                return Err(Error::invalid(
                    "load balancer rule ID and stickiness policy ID can't be null",
                ));
            }
            (Some(id), asked) => {
                let policy = lb_sticky::by_uuid(db, id)
                    .await?
                    .ok_or_else(|| Error::invalid("stickiness policy ID doesn't exist"))?;
                let owner = rule::get_by_id(db, policy.load_balancer_id)
                    .await?
                    .filter(|r| r.removed.is_none())
                    .ok_or_else(|| Error::invalid("stickiness policy ID doesn't exist"))?;
                if asked.is_some_and(|a| a != owner.uuid) {
                    return Err(Error::invalid(format!(
                        "stickiness policy ID doesn't belong to lbId{}",
                        asked.map(|a| a.to_string()).unwrap_or_default()
                    )));
                }
                owner.uuid
            }
            (None, Some(rule)) => rule,
        };
        let r = lb_by_uuid(ctx, LB_RULE.name(), rule_uuid).await?;
        let policies: Vec<_> = lb_sticky::of_rule(db, r.id)
            .await?
            .into_iter()
            .filter(|p| self.id.is_none_or(|id| p.uuid == id))
            .filter(|p| self.display.is_none_or(|d| p.display == d))
            .collect();
        Ok(Reply::List {
            count: 1,
            items: vec![sticky_view(db, &r, &policies).await?],
        })
    }
}
