//! The life of a port forwarding or load balancer rule on the VPC's router,
//! the same for both kinds: the request stores a new rule in state Add and
//! its job pushes the VPC's whole list (Active on success, withdrawn on
//! failure); a deleted rule is revoked, pushed, then removed.

use std::future::Future;

use serde_json::{Value, json};

use super::common::{self, vpc_sync};
use crate::error::Error;
use crate::provision::Generation;
use crate::server::{App, Ctx, Reply};
use crate::store::{Db, rule};

/// The VPC of a rule (through its tier).
pub async fn vpc_of_rule(db: &Db, r: &rule::Rule) -> Result<i64, Error> {
    common::tier_by_id(db, r.network_id)
        .await?
        .vpc_id
        .ok_or_else(|| Error::internal("a rule's tier has no VPC"))
}

/// The rule and the VPC a rule job works on (its info's `rule` and `vpc`).
pub fn job_ids(info: &Value) -> (i64, i64) {
    (
        info["rule"].as_i64().unwrap_or_default(),
        info["vpc"].as_i64().unwrap_or_default(),
    )
}

/// Submits the job of a change to rule `r` (info `{rule, vpc}`), serialized
/// with the VPC's other jobs; `object` is the job's instance type.
pub async fn submit_rule_job(ctx: &Ctx, object: &str, r: &rule::Rule) -> Result<Reply, Error> {
    let vpc_id = vpc_of_rule(&ctx.app.db, r).await?;
    let job_id = ctx
        .submit_job(
            json!({ "rule": r.id, "vpc": vpc_id }),
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
            json!({ "rule": created.id, "vpc": vpc_id }),
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

/// Removes a rule that never reached the router, and unbinds its address
/// when nothing else uses it (best effort: the caller reports its error).
pub async fn withdraw(db: &Db, r: &rule::Rule, what: &str) {
    let undone = async {
        rule::remove(db, r.id).await?;
        common::unbind_if_unused(db, r.ip_address_id).await
    };
    if let Err(e) = undone.await {
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
    let g = common::bump(&app.db, vpc_id).await?;
    if let Err(e) = push(g).await {
        withdraw(&app.db, r, what).await;
        return Err(e);
    }
    rule::set_state(&app.db, r.id, rule::STATE_ACTIVE).await?;
    Ok(())
}

/// The job that deletes a rule (PF or LB): under the VPC's lock, withdraws
/// the rule from the router (see [`revoke`]); a rule deleted meanwhile (e.g.
/// with its address) leaves nothing to do.
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
    revoke(app, vpc_id, &r, |g| push(vpc_id, g)).await?;
    Ok(json!({ "success": true }))
}

/// Withdraws a rule (PF or LB) from the router: Revoke (off the router's
/// state), push the whole list, then remove the row and unbind the address
/// when it was its last rule. A failed push restores the rule's state.
pub async fn revoke<F, Fut>(app: &App, vpc_id: i64, r: &rule::Rule, push: F) -> Result<(), Error>
where
    F: FnOnce(Option<Generation>) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let mut tx = app.db.begin().await?;
    rule::set_state(&mut tx, r.id, rule::STATE_REVOKE).await?;
    let g = crate::provision::bump(&mut tx, vpc_id).await?;
    tx.commit().await?;
    if let Err(e) = push(g).await {
        rule::set_state(&app.db, r.id, &r.state).await?;
        return Err(e);
    }
    let mut tx = app.db.begin().await?;
    rule::remove(&mut tx, r.id).await?;
    common::unbind_if_unused(&mut tx, r.ip_address_id).await?;
    tx.commit().await?;
    Ok(())
}
