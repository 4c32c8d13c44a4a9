//! `deployVirtualMachine` (async-create, §2.9): the request checks, the VM
//! row and one NIC per tier with its address (the guru's reservation) in one
//! transaction under the VPC row lock; the job starts the VM.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::json;

use super::{power, sees_admin_fields, vm_result};
use crate::api::Params;
use crate::error::Error;
use crate::provision;
use crate::rules;
use crate::server::jobs::{JobBody, vpc_sync};
use crate::server::registry::Handler;
use crate::server::{Ctx, Reply};
use crate::services::owner;
use crate::services::zone::required_zone;
use crate::store::{self, network, router, vm, vpc};
use crate::{handler, job_body};

pub(super) const DEPLOY: Handler = deploy_vm;
pub(super) const DEPLOY_JOB: JobBody = deploy_vm_job;

/// The tiers asked for, in NIC order, each with the address asked for.
fn requested_networks(params: &Params) -> Result<Vec<(String, Option<Ipv4Addr>)>, Error> {
    let listed = params.uuid_list("networkids")?.unwrap_or_default();
    let mapped: Vec<BTreeMap<String, String>> = params.map("iptonetworklist")?;
    let ip = params
        .string("ipaddress")?
        .filter(|a| !a.is_empty())
        .map(|a| rules::parse_ipv4("ipaddress", &a))
        .transpose()?;
    let requested: Vec<(String, Option<Ipv4Addr>)> = match (listed.is_empty(), mapped.is_empty()) {
        (false, false) => {
            return Err(Error::invalid(
                "networkids and iptonetworklist can't be specified at the same time",
            ));
        }
        (true, true) => {
            return Err(Error::invalid(
                "networkids (or iptonetworklist) is required: a VM is deployed into VPC tiers",
            ));
        }
        (false, true) => listed
            .iter()
            .enumerate()
            .map(|(i, id)| (id.to_string(), if i == 0 { ip } else { None }))
            .collect(),
        (true, false) => {
            if ip.is_some() {
                return Err(Error::invalid(
                    "ipaddress can't be given with iptonetworklist: give iptonetworklist[i].ip",
                ));
            }
            let mut out = Vec::new();
            for entry in &mapped {
                let id = entry
                    .get("networkid")
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        Error::invalid("each iptonetworklist entry needs a networkid")
                    })?;
                let id = uuid::Uuid::parse_str(id)
                    .map_err(|_| Error::invalid_id("networkid", id))?
                    .to_string();
                let ip = entry
                    .get("ip")
                    .filter(|v| !v.is_empty())
                    .map(|a| rules::parse_ipv4("iptonetworklist.ip", a))
                    .transpose()?;
                out.push((id, ip));
            }
            out
        }
    };
    for (i, (id, _)) in requested.iter().enumerate() {
        if requested[..i].iter().any(|(other, _)| other == id) {
            return Err(Error::invalid(format!(
                "Network {id} is given more than once: a VM has one NIC per tier"
            )));
        }
    }
    Ok(requested)
}

/// The tiers of a new VM: live VPC tiers of the zone, usable by the caller
/// and owned by the VM's account, all in one VPC.
async fn tiers_of(
    ctx: &Ctx,
    zone_id: i64,
    owner: &owner::Owner,
    requested: &[(String, Option<Ipv4Addr>)],
) -> Result<Vec<(network::Network, Option<Ipv4Addr>)>, Error> {
    let mut tiers: Vec<(network::Network, Option<Ipv4Addr>)> = Vec::new();
    for (id, ip) in requested {
        let t = network::get_by_uuid(&ctx.app.db, id)
            .await?
            .filter(|t| {
                t.removed.is_none()
                    && t.traffic_type == network::TRAFFIC_GUEST
                    && t.vpc_id.is_some()
            })
            .ok_or_else(|| Error::invalid_id("networkids", id))?;
        owner::check_access(ctx, t.account_id, &t.domain_path, &format!("network {id}"))?;
        // CloudStack checks the VM's owner may use the network: a tier of
        // another account never gets a NIC of this VM.
        if t.account_id != owner.account_id {
            return Err(Error::permission_denied(format!(
                "Account {} does not have permission to use network {id}: it belongs to another \
                 account",
                owner.account_name
            )));
        }
        if t.zone_id != zone_id {
            return Err(Error::invalid(format!(
                "Network {id} is not in the zone of the VM"
            )));
        }
        if let Some((first, _)) = tiers.first()
            && first.vpc_id != t.vpc_id
        {
            return Err(Error::invalid(format!(
                "A VM can be in the tiers of one VPC only: network {id} is in another VPC than \
                 network {}",
                first.uuid
            )));
        }
        tiers.push((t, *ip));
    }
    Ok(tiers)
}

handler!(deploy_vm, |ctx, params| {
    let db = &ctx.app.db;
    let z = required_zone(ctx, params, "zoneid").await?;
    let offering_id = params
        .required_uuid(ctx.command, "serviceofferingid")?
        .to_string();
    let o = vm::offering_by_uuid(db, &offering_id)
        .await?
        .filter(|o| o.removed.is_none())
        .ok_or_else(|| Error::invalid_id("serviceofferingid", &offering_id))?;
    let template_id = params.required_uuid(ctx.command, "templateid")?.to_string();
    let t = vm::template_by_uuid(db, &template_id)
        .await?
        .filter(|t| t.removed.is_none())
        .ok_or_else(|| Error::invalid_id("templateid", &template_id))?;
    let owner = owner::owner(ctx, params).await?;
    let requested = requested_networks(params)?;
    let tiers = tiers_of(ctx, z.id, &owner, &requested).await?;
    let vpc_id = tiers
        .first()
        .and_then(|(t, _)| t.vpc_id)
        .ok_or_else(|| Error::internal("a VM without tiers"))?;
    let name = match params.string("name")?.filter(|n| !n.is_empty()) {
        Some(n) => {
            super::check_host_name(&n)?;
            n
        }
        None => format!("VM-{}", store::new_uuid()),
    };
    let display_name = params
        .string("displayname")?
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| name.clone());
    rules::check_length("displayname", &display_name, rules::MAX_DISPLAY_TEXT_LEN)?;
    let start = params.boolean("startvm")?.unwrap_or(true);
    let mac = params
        .string("macaddress")?
        .filter(|m| !m.is_empty())
        .map(|m| rules::parse_mac("macaddress", &m))
        .transpose()?;

    let mut tx = db.begin().await?;
    vpc::lock(&mut tx, vpc_id).await?;
    let live = vpc::get_by_id(&mut tx, vpc_id)
        .await?
        .filter(|v| v.removed.is_none() && v.state == vpc::STATE_ENABLED);
    if live.is_none() {
        return Err(Error::invalid(
            "The VPC of the VM's tiers is being deleted: no VM can join it",
        ));
    }
    owner::check_limit(&mut tx, owner.account_id, "user_vm", 1).await?;
    owner::check_limit(&mut tx, owner.account_id, "cpu", o.cpu).await?;
    owner::check_limit(&mut tx, owner.account_id, "memory", o.ram_size).await?;
    if vm::name_taken(&mut tx, owner.account_id, &name, None).await? {
        return Err(Error::invalid(format!(
            "The vm with hostName {name} already exists in account {}",
            owner.account_name
        )));
    }
    let created = vm::create(
        &mut tx,
        vm::NewVm {
            name,
            display_name,
            zone_id: z.id,
            account_id: owner.account_id,
            domain_id: owner.domain_id,
            service_offering_id: o.id,
            template_id: t.id,
            state: vm::STATE_STOPPED.into(),
        },
    )
    .await?;
    for (i, (tier, ip)) in tiers.iter().enumerate() {
        let index = i64::try_from(i).unwrap_or(i64::MAX);
        let nic =
            provision::tier::reserve_nic(&ctx.app, &mut tx, tier, &created, index, *ip).await?;
        // `macaddress` is the default (first) NIC's, as in CloudStack.
        if let (0, Some(mac)) = (i, &mac) {
            match router::set_nic_mac(&mut tx, nic.id, mac).await {
                Err(store::StoreError::Duplicate(_)) => {
                    return Err(Error::invalid(format!(
                        "macaddress {mac} is in use by another NIC; give an unused one"
                    )));
                }
                other => other?,
            }
        }
    }
    tx.commit().await?;

    let submitted = ctx
        .submit_job(
            json!({ "id": created.id, "start": start }),
            Some(("VirtualMachine", &created.uuid)),
            vpc_sync(vpc_id),
        )
        .await;
    let job_id = match submitted {
        Ok(job_id) => job_id,
        Err(e) => {
            if let Err(undo) = vm::expunge(db, created.id).await {
                tracing::error!(error = %undo, "expunging a VM whose job could not be submitted");
            }
            return Err(e);
        }
    };
    Ok(Reply::Created {
        id: created.uuid,
        job_id,
    })
});

job_body!(deploy_vm_job, |job, info| {
    let app = &job.app;
    let id = info["id"].as_i64().unwrap_or_default();
    if info["start"].as_bool().unwrap_or(true)
        && let Err(e) = power::start(app, id).await
    {
        // A VM that could not start on deployment is not kept: its name and
        // addresses are free again.
        if let Err(undo) = vm::expunge(&app.db, id).await {
            tracing::error!(error = %undo, "expunging a VM that failed to start");
        }
        return Err(e);
    }
    vm_result(&app.db, id, sees_admin_fields(job.caller.role)).await
});
