//! `deleteLBStickinessPolicy` (async): the job takes the policy off its
//! rule on the router, and puts it back when the router refuses.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{PolicyChange, StickyJob};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::services::lb::{lb_by_uuid, vpc_of_rule};
use crate::store::{lb_sticky, rule};

const ID: Arg<Id> = Arg::req("id", "the ID of the load balancer stickiness policy");

/// `deleteLBStickinessPolicy`.
pub struct DeleteLbStickinessPolicy {
    id: Uuid,
}

impl Command for DeleteLbStickinessPolicy {
    const NAME: &'static str = "deleteLBStickinessPolicy";

    fn spec() -> Spec {
        Spec::new("Deletes a load balancer stickiness policy")
            .roles(ALL)
            .param(ID)
            .returns("stickinesspolicies", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteLbStickinessPolicy {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for DeleteLbStickinessPolicy {
    /// A policy removed already is done.
    const RERUN: bool = true;
    type Job = StickyJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<StickyJob>, Error> {
        let db = &ctx.app.db;
        let policy = lb_sticky::by_uuid(db, self.id)
            .await?
            .ok_or_else(|| Error::invalid_id(ID.name(), self.id))?;
        let r = rule::get_by_id(db, policy.load_balancer_id)
            .await?
            .filter(|r| r.removed.is_none())
            .ok_or_else(|| Error::invalid_id(ID.name(), self.id))?;
        // The caller must be allowed the rule the policy belongs to.
        let r = lb_by_uuid(ctx, ID.name(), r.uuid).await?;
        let vpc = vpc_of_rule(db, &r).await?;
        Ok(Submission::new(
            StickyJob {
                policy: policy.id,
                rule: r.id,
                vpc,
            },
            ("LoadBalancerRule", policy.uuid),
            vpc_sync(vpc),
        ))
    }

    /// A policy deleted meanwhile (with its rule) leaves nothing to do.
    async fn run(job: &JobCtx, payload: StickyJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let lock = job.app.network.lock(db, payload.vpc).await?;
        if lb_sticky::by_id(db, payload.policy).await?.is_some() {
            lock.apply(&PolicyChange {
                policy: payload.policy,
                add: false,
            })
            .await?;
        }
        Ok(json!({ "success": true }))
    }
}
