//! `deletePortForwardingRule`: the job revokes the rule, sends the VPC's
//! port forwarding list without it, then removes it (unbinding its address
//! when it was the address's last rule).

use serde_json::Value;
use uuid::Uuid;

use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Args, AsyncCommand, Command, Spec, Submission};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::services::ip::push::RuleLists;
use crate::services::ip::rule_flow::{self, RuleJob};

use super::{INSTANCE, RULE_ID, pf_by_uuid};

/// `deletePortForwardingRule`.
pub struct DeletePortForwardingRule {
    id: Uuid,
}

impl Command for DeletePortForwardingRule {
    const NAME: &'static str = "deletePortForwardingRule";

    fn spec() -> Spec {
        Spec::new("Deletes a port forwarding rule")
            .roles(ALL)
            .param(RULE_ID)
            .returns("portforwardingrule", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeletePortForwardingRule {
            id: args.need(&RULE_ID)?,
        })
    }
}

impl AsyncCommand for DeletePortForwardingRule {
    /// A rule removed already is done; one left in Revoke is revoked
    /// again ([`rule_flow::delete_rule`]).
    const RERUN: bool = true;
    type Job = RuleJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<RuleJob>, Error> {
        let r = pf_by_uuid(ctx, RULE_ID.name(), self.id).await?;
        let vpc_id = rule_flow::vpc_of_rule(&ctx.app.db, &r).await?;
        let job = RuleJob {
            rule: r.id,
            vpc: vpc_id,
        };
        Ok(Submission::new(job, (INSTANCE, r.uuid), vpc_sync(vpc_id)))
    }

    async fn run(job: &JobCtx, payload: RuleJob) -> Result<Value, Error> {
        rule_flow::delete_rule(&job.app, payload, RuleLists::PORT_FORWARDS).await
    }
}
