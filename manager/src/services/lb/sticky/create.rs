//! `createLBStickinessPolicy` (async-create): the policy is checked and
//! stored (state Add) during the request; the job sends the rule with it to
//! the router and makes it Active, or removes it when the router refuses.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{PolicyChange, STICKY_FIELDS, StickyJob, sticky_view};
use crate::error::Error;
use crate::rules;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Flag, Id, Map, Spec, Submission, Text,
};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::server::{App, Ctx};
use crate::services::lb::{lb_by_uuid, push_lb_list, vpc_of_rule};
use crate::store::{lb_sticky, rule};

const LB_RULE: Arg<Id> = Arg::req("lbruleid", "the ID of the load balancer rule");
const NAME: Arg<Text> = Arg::req("name", "the name of the load balancer stickiness policy");
const METHOD: Arg<Text> = Arg::req(
    "methodname",
    "the stickiness method: LbCookie, AppCookie or SourceBased",
);
const DESCRIPTION: Arg<Text> = Arg::opt(
    "description",
    "the description of the load balancer stickiness policy",
);
const PARAM: Arg<Map> = Arg::opt(
    "param",
    "the method's parameters, as param[i].name and param[i].value",
);
const FOR_DISPLAY: Arg<Flag> = Arg::opt(
    "fordisplay",
    "whether the policy is shown to the end user (default true)",
);

/// `createLBStickinessPolicy`.
pub struct CreateLbStickinessPolicy {
    rule: Uuid,
    name: String,
    method: String,
    description: Option<String>,
    param: Vec<std::collections::BTreeMap<String, String>>,
    display: bool,
}

impl Command for CreateLbStickinessPolicy {
    const NAME: &'static str = "createLBStickinessPolicy";

    fn spec() -> Spec {
        Spec::new("Creates a load balancer stickiness policy")
            .roles(ALL)
            .param(LB_RULE)
            .param(NAME)
            .param(METHOD)
            .param(DESCRIPTION)
            .param(PARAM)
            .param(FOR_DISPLAY)
            .returns("stickinesspolicies", STICKY_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateLbStickinessPolicy {
            rule: args.need(&LB_RULE)?,
            name: args.need(&NAME)?,
            method: args.need(&METHOD)?,
            description: args.get(&DESCRIPTION)?,
            param: args.get(&PARAM)?.unwrap_or_default(),
            display: args.get(&FOR_DISPLAY)?.unwrap_or(true),
        })
    }
}

impl AsyncCommand for CreateLbStickinessPolicy {
    /// The policy's row comes from `submit`; an Active one is not pushed
    /// again.
    const RERUN: bool = true;
    const CREATES: bool = true;
    type Job = StickyJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<StickyJob>, Error> {
        let db = &ctx.app.db;
        let r = lb_by_uuid(ctx, LB_RULE.name(), self.rule).await?;
        if r.state == rule::STATE_REVOKE {
            return Err(Error::invalid(format!(
                "Failed:  LB rule id: {} is in deleting state: ",
                r.uuid
            )));
        }
        rules::check_name(NAME.name(), &self.name)?;
        let checked = rules::lb_sticky::validate_policy(
            &r.uuid.to_string(),
            &self.method,
            &self.param,
            r.protocol.eq_ignore_ascii_case("udp"),
        )?;
        let vpc_id = vpc_of_rule(db, &r).await?;
        let _lock = ctx.app.network.lock(db, vpc_id).await?;
        // One policy per rule (the VR's HAProxy takes one per listener).
        if lb_sticky::of_rule(db, r.id).await?.is_some() {
            return Err(Error::invalid(format!(
                "Failed to create Stickiness policy: Already policy attached {}",
                r.uuid
            )));
        }
        let id = lb_sticky::create(
            db,
            lb_sticky::NewPolicy {
                load_balancer_id: r.id,
                name: &self.name,
                description: self.description.as_deref(),
                method_name: checked.method.as_str(),
                params: &checked.params,
                display: self.display,
            },
        )
        .await?;
        let created = lb_sticky::by_id(db, id)
            .await?
            .ok_or_else(|| Error::internal("the new stickiness policy is gone"))?;
        Ok(Submission::created(
            StickyJob {
                policy: id,
                rule: r.id,
                vpc: vpc_id,
            },
            ("LoadBalancerRule", created.uuid),
            vpc_sync(vpc_id),
        ))
    }

    async fn run(job: &JobCtx, payload: StickyJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let lock = job.app.network.lock(db, payload.vpc).await?;
        let Some(p) = lb_sticky::by_id(db, payload.policy).await? else {
            return Err(Error::invalid(
                "The stickiness policy was deleted meanwhile",
            ));
        };
        // An Active policy is one an earlier run of this job pushed.
        if p.state != "Active" {
            lock.apply(&PolicyChange {
                policy: payload.policy,
                add: true,
            })
            .await?;
        }
        let r = crate::services::lb::reload(db, payload.rule).await?;
        let policies: Vec<_> = lb_sticky::by_id(db, payload.policy)
            .await?
            .into_iter()
            .collect();
        Ok(json!({ "stickinesspolicies": sticky_view(db, &r, &policies).await? }))
    }

    /// A policy its job never made Active goes, and the router gets the
    /// VPC's list again (the job may have pushed it before its manager
    /// died).
    async fn abandon(app: &App, payload: StickyJob) -> Result<(), Error> {
        let db = &app.db;
        let lock = app.network.lock(db, payload.vpc).await?;
        let Some(p) = lb_sticky::by_id(db, payload.policy)
            .await?
            .filter(|p| p.state == "Add")
        else {
            return Ok(());
        };
        lb_sticky::remove(db, p.id).await?;
        lock.push_stored(
            "the load balancer list without an abandoned stickiness policy",
            |e, s, g| Box::pin(push_lb_list(e, s, g)),
        )
        .await
    }
}
