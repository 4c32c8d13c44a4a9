//! `updateNetwork`, `deleteNetwork` and `restartNetwork` of a VPC tier; all
//! async, serialized with the other jobs of the tier's VPC.

use serde_json::json;

use super::{network_result, tier_param};
use crate::error::Error;
use crate::provision::{self, tier as tiers};
use crate::server::jobs::{JobBody, vpc_sync};
use crate::server::registry::Handler;
use crate::server::{Reply, Role};
use crate::services::ip::common;
use crate::store::{Page, network, rule, vlan, vm, vnet, vpc};
use crate::{handler, job_body, rules};

/// The handlers and job bodies of this module.
pub(super) const UPDATE_NETWORK: Handler = update_network;
pub(super) const DELETE_NETWORK: Handler = delete_network;
pub(super) const RESTART_NETWORK: Handler = restart_network;
pub(super) const UPDATE_NETWORK_JOB: JobBody = update_network_job;
pub(super) const DELETE_NETWORK_JOB: JobBody = delete_network_job;
pub(super) const RESTART_NETWORK_JOB: JobBody = restart_network_job;

/// Submits the job of a change to tier `t` (`info` its parameters),
/// serialized with the other jobs of its VPC.
async fn submit_tier_job(
    ctx: &crate::server::Ctx,
    t: &network::Network,
    info: serde_json::Value,
) -> Result<Reply, Error> {
    let job_id = ctx
        .submit_job(info, Some(("Network", &t.uuid)), sync_object(t))
        .await?;
    Ok(Reply::Job { job_id })
}

fn sync_object(t: &network::Network) -> String {
    match t.vpc_id {
        Some(v) => vpc_sync(v),
        None => format!("network:{}", t.id),
    }
}

handler!(update_network, |ctx, params| {
    let t = tier_param(ctx, params, "id").await?;
    let name = params.string("name")?.filter(|n| !n.is_empty());
    if let Some(n) = &name {
        rules::check_name("name", n)?;
    }
    let display_text = params.string("displaytext")?.filter(|t| !t.is_empty());
    if let Some(d) = &display_text {
        rules::check_length("displaytext", d, rules::MAX_DISPLAY_TEXT_LEN)?;
    }
    if let Some(d) = params.string("networkdomain")?.filter(|d| !d.is_empty()) {
        let current = t.network_domain.clone().unwrap_or_default();
        if !d.eq_ignore_ascii_case(&current) {
            return Err(Error::invalid(format!(
                "The network domain of VPC tier {} can't be changed: it is its VPC's ({current})",
                t.uuid
            )));
        }
    }
    if let Some(o) = params.uuid("networkofferingid")? {
        let current =
            crate::store::offering::network_offering_by_id(&ctx.app.db, t.network_offering_id)
                .await?;
        if current.is_none_or(|c| c.uuid != o.to_string()) {
            return Err(Error::invalid(format!(
                "Changing the network offering of VPC tier {} is not supported",
                t.uuid
            )));
        }
    }
    submit_tier_job(
        ctx,
        &t,
        json!({ "id": t.id, "name": name, "displaytext": display_text }),
    )
    .await
});

job_body!(update_network_job, |job, info| {
    let db = &job.app.db;
    let id = info["id"].as_i64().unwrap_or_default();
    let updated =
        network::update(db, id, info["name"].as_str(), info["displaytext"].as_str()).await?;
    if !updated {
        return Err(Error::invalid("The network was deleted meanwhile"));
    }
    network_result(db, id, job.caller.role != Role::User).await
});

handler!(delete_network, |ctx, params| {
    let t = tier_param(ctx, params, "id").await?;
    let forced = params.boolean("forced")?.unwrap_or(false);
    if forced && !ctx.caller.is_root_admin() {
        return Err(Error::invalid(
            "Delete network with 'forced' option can only be called by root admins",
        ));
    }
    submit_tier_job(ctx, &t, json!({ "id": t.id, "forced": forced })).await
});

job_body!(delete_network_job, |job, info| {
    let app = &job.app;
    let db = &app.db;
    let id = info["id"].as_i64().unwrap_or_default();
    let forced = info["forced"].as_bool().unwrap_or(false);
    let t = network::get_by_id(db, id)
        .await?
        .filter(|t| t.removed.is_none())
        .ok_or_else(|| Error::invalid("The network was deleted meanwhile"))?;
    let vpc_id = t
        .vpc_id
        .ok_or_else(|| Error::invalid(format!("Network {} is not a VPC tier", t.uuid)))?;
    let _guard = app.network.lock_vpc(vpc_id).await;
    // CloudStack refuses while any VM of the tier is not expunged; the
    // command then fails with "Failed to delete network" (530).
    if let Some(v) = vm::vms_on_network(db, t.id).await?.first() {
        return Err(Error::internal(format!(
            "Failed to delete network {}: can't delete the network, not all user vms are \
             expunged. Vm {} is in {} state",
            t.uuid, v.uuid, v.state
        )));
    }
    if t.state == network::STATE_IMPLEMENTED
        && let Err(e) = tiers::destroy_tier(app, t.id).await
    {
        if !forced {
            return Err(e);
        }
        tracing::warn!(network = %t.uuid, error = %e, "forced delete: the router was not cleaned up");
    }
    tiers::trash_tier(app, &t).await?;

    let mut tx = db.begin().await?;
    vpc::lock(&mut tx, vpc_id).await?;
    let rules_of_tier = rule::remove_all(
        &mut tx,
        &rule::RuleFilter {
            network_id: Some(t.id),
            ..Default::default()
        },
    )
    .await?;
    let ips = vlan::list_ips(
        &mut tx,
        &vlan::PublicIpFilter {
            associated_network_id: Some(t.id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    for ip in &ips {
        vlan::set_association(&mut tx, ip.id, None, false).await?;
    }
    network::set_acl(&mut tx, t.id, None).await?;
    // Whatever vnet is still recorded for the tier goes back (a forced
    // delete of a tier whose shutdown failed).
    vnet::release_for_network(&mut tx, t.id).await?;
    network::remove(&mut tx, t.id).await?;
    // Addresses only leave the tier; removed rules also leave the router.
    let changed_rules = rules_of_tier > 0;
    let generation = if changed_rules {
        provision::bump(&mut tx, vpc_id).await?
    } else {
        None
    };
    tx.commit().await?;

    if changed_rules && let Err(e) = common::push_nat_and_lb(app, vpc_id, generation).await {
        // The tier is gone; the router keeps stale rules until the VPC is
        // restarted, which the flag asks for.
        tracing::warn!(network = %t.uuid, error = %e, "withdrawing a deleted tier's rules failed");
        vpc::set_restart_required(db, vpc_id, true).await?;
    }
    Ok(json!({ "success": true }))
});

handler!(restart_network, |ctx, params| {
    let t = tier_param(ctx, params, "id").await?;
    if params.boolean("cleanup")? == Some(true) {
        return Err(Error::invalid(format!(
            "Cannot restart a VPC tier with cleanup, please restart the whole VPC. (network tier {})",
            t.uuid
        )));
    }
    if params.boolean("makeredundant")? == Some(true) {
        return Err(Error::invalid(
            "Could not make the network redundant: redundant routers are not supported",
        ));
    }
    if t.state != network::STATE_IMPLEMENTED {
        return Err(Error::invalid(format!(
            "Network is not in the right state to be restarted. Correct states are: Implemented, \
             Setup (network {} is {})",
            t.uuid, t.state
        )));
    }
    submit_tier_job(ctx, &t, json!({ "id": t.id })).await
});

job_body!(restart_network_job, |job, info| {
    let app = &job.app;
    let id = info["id"].as_i64().unwrap_or_default();
    let t = network::get_by_id(&app.db, id)
        .await?
        .filter(|t| t.removed.is_none())
        .ok_or_else(|| Error::invalid("The network was deleted meanwhile"))?;
    let vpc_id = t
        .vpc_id
        .ok_or_else(|| Error::invalid(format!("Network {} is not a VPC tier", t.uuid)))?;
    let _guard = app.network.lock_vpc(vpc_id).await;
    tiers::resend_tier(app, t.id).await?;
    Ok(json!({ "success": true }))
});
