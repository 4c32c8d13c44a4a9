//! The rule flow of the old command shape, kept with its signatures only for
//! the modules that still call it while they move to the change protocol
//! on their own branches: `services/lb` (`push_lb_rules`, `job_ids`,
//! `submit_created`, `push_created`, `submit_rule_job`, `delete_job`),
//! `services/vm/power.rs` and `services/tier/lifecycle.rs`
//! (`push_nat_and_lb`). Their callers bump the router's generation in a
//! transaction of their own (holding the VPC's lock), so these cannot take
//! a [`crate::provision::change::VpcLock`]: they are the old protocol,
//! unchanged. Delete this file once no module calls it; the IP and NAT
//! commands use [`super::rule_flow`] and [`super::push`].

use std::future::Future;

use serde::Deserialize;
use serde_json::{Value, json};

use super::common;
use super::push::{send_lb_rules, send_nat_and_lb};
use super::rule_flow::{RuleJob, vpc_of_rule};
use crate::error::Error;
use crate::provision::{self, Generation};
use crate::server::jobs::vpc_sync;
use crate::server::{App, Ctx, Reply};
use crate::store::{Db, rule};

/// Pushes the VPC's whole load balancer list under generation `g`, bumped
/// by the caller (old protocol; see the module doc).
pub async fn push_lb_rules(app: &App, vpc_id: i64, g: Option<Generation>) -> Result<(), Error> {
    provision::push(&app.db, &app.network, vpc_id, g, send_lb_rules).await
}

/// Pushes the VPC's port forwarding, static NAT and load balancer lists
/// under generation `g`, bumped by the caller (old protocol; see the module
/// doc).
pub async fn push_nat_and_lb(app: &App, vpc_id: i64, g: Option<Generation>) -> Result<(), Error> {
    provision::push(&app.db, &app.network, vpc_id, g, send_nat_and_lb).await
}

/// The rule and the VPC of a rule job's info (zeros when unreadable, as
/// before).
pub fn job_ids(info: &Value) -> (i64, i64) {
    RuleJob::deserialize(info)
        .map(|j| (j.rule, j.vpc))
        .unwrap_or_default()
}

/// Submits the job of a change to rule `r` (info `{rule, vpc}`), serialized
/// with the VPC's other jobs; `object` is the job's instance type.
pub async fn submit_rule_job(ctx: &Ctx, object: &str, r: &rule::Rule) -> Result<Reply, Error> {
    let vpc_id = vpc_of_rule(&ctx.app.db, r).await?;
    let job_id = ctx
        .submit_job(
            json!(RuleJob {
                rule: r.id,
                vpc: vpc_id
            }),
            Some((object, &r.uuid)),
            vpc_sync(vpc_id),
        )
        .await?;
    Ok(Reply::Job { job_id })
}

/// Submits the job that pushes a rule its request stored (async-create);
/// when no job can be submitted the rule is withdrawn. `what` names the kind
/// of rule in the log.
pub async fn submit_created(
    ctx: &Ctx,
    object: &str,
    what: &str,
    created: rule::Rule,
    vpc_id: i64,
) -> Result<Reply, Error> {
    let submitted = ctx
        .submit_job(
            json!(RuleJob {
                rule: created.id,
                vpc: vpc_id
            }),
            Some((object, &created.uuid)),
            vpc_sync(vpc_id),
        )
        .await;
    match submitted {
        Ok(job_id) => Ok(Reply::Created {
            id: created.uuid,
            job_id,
        }),
        Err(e) => {
            withdraw(&ctx.app.db, &created, what).await;
            Err(e)
        }
    }
}

/// Removes a rule that never reached the router (best effort: the caller
/// reports its error).
async fn withdraw(db: &Db, r: &rule::Rule, what: &str) {
    if let Err(e) = super::rule_flow::withdraw_rule(db, r).await {
        tracing::error!(rule = %r.uuid, error = %e, "removing a {what} rule failed");
    }
}

/// The job of a new rule `r` (the caller holds the VPC's lock): pushes the
/// VPC's list with it; Active once the router has it, withdrawn (and the
/// push's error returned) when not.
pub async fn push_created<F, Fut>(
    app: &App,
    vpc_id: i64,
    r: &rule::Rule,
    what: &str,
    push: F,
) -> Result<(), Error>
where
    F: FnOnce(Option<Generation>) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let mut tx = app.db.begin().await?;
    let g = provision::bump(&mut tx, vpc_id).await?;
    tx.commit().await?;
    if let Err(e) = push(g).await {
        withdraw(&app.db, r, what).await;
        return Err(e);
    }
    rule::set_state(&app.db, r.id, rule::STATE_ACTIVE).await?;
    Ok(())
}

/// The job that deletes a rule (PF or LB): under the VPC's lock, withdraws
/// the rule from the router; a rule deleted meanwhile (e.g. with its
/// address) leaves nothing to do.
pub async fn delete_job<F, Fut>(app: &App, info: &Value, push: F) -> Result<Value, Error>
where
    F: FnOnce(i64, Option<Generation>) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let (id, vpc_id) = job_ids(info);
    let _guard = app.network.lock_vpc(vpc_id).await;
    let Some(r) = rule::get_by_id(&app.db, id)
        .await?
        .filter(|r| r.removed.is_none())
    else {
        return Ok(json!({ "success": true }));
    };
    let mut tx = app.db.begin().await?;
    rule::set_state(&mut tx, r.id, rule::STATE_REVOKE).await?;
    let g = provision::bump(&mut tx, vpc_id).await?;
    tx.commit().await?;
    if let Err(e) = push(vpc_id, g).await {
        rule::set_state(&app.db, r.id, &r.state).await?;
        return Err(e);
    }
    let mut tx = app.db.begin().await?;
    rule::remove(&mut tx, r.id).await?;
    common::unbind_if_unused(&mut tx, r.ip_address_id).await?;
    tx.commit().await?;
    Ok(json!({ "success": true }))
}
