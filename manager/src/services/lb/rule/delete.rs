//! `deleteLoadBalancerRule`: the job revokes the rule (off the router's
//! state), pushes the VPC's load balancer list without it, then removes it
//! and unbinds its address when it was the address's last rule; the rule's
//! stickiness policy is removed with it.

use serde_json::{Value, json};
use uuid::Uuid;

use super::super::{RuleJob, lb_by_uuid, vpc_of_rule};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::services::ip::push::RuleLists;
use crate::services::ip::rule_flow;
use crate::store::{lb_sticky, rule};

const ID: Arg<Id> = Arg::req("id", "the ID of the rule");

/// `deleteLoadBalancerRule`.
pub struct DeleteLoadBalancerRule {
    id: Uuid,
}

impl Command for DeleteLoadBalancerRule {
    const NAME: &'static str = "deleteLoadBalancerRule";

    fn spec() -> Spec {
        Spec::new("Deletes a load balancer rule")
            .roles(ALL)
            .param(ID)
            .returns("loadbalancer", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteLoadBalancerRule {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for DeleteLoadBalancerRule {
    /// A rule removed already is done; one left in Revoke is revoked
    /// again ([`rule_flow::revoke`]).
    const RERUN: bool = true;
    type Job = RuleJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<RuleJob>, Error> {
        let r = lb_by_uuid(ctx, ID.name(), self.id).await?;
        let vpc_id = vpc_of_rule(&ctx.app.db, &r).await?;
        Ok(Submission::new(
            RuleJob {
                rule_id: r.id,
                vpc_id,
            },
            ("LoadBalancerRule", r.uuid),
            vpc_sync(vpc_id),
        ))
    }

    /// A rule deleted meanwhile (e.g. with its address) leaves nothing to do.
    async fn run(job: &JobCtx, payload: RuleJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let lock = job.app.network.lock(db, payload.vpc_id).await?;
        let Some(r) = rule::get_by_id(db, payload.rule_id)
            .await?
            .filter(|r| r.removed.is_none())
        else {
            return Ok(json!({ "success": true }));
        };
        rule_flow::revoke(&lock, &r, RuleLists::LOAD_BALANCERS).await?;
        // Its stickiness policy goes with it, as in CloudStack.
        lb_sticky::remove_of_rule(db, r.id).await?;
        Ok(json!({ "success": true }))
    }
}
