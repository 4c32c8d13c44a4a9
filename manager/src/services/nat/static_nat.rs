//! Static NAT (reference §2.5, §3.5): `enableStaticNat` maps a VPC address
//! one-to-one to a VM's address in a tier (synchronously, as in CloudStack);
//! `disableStaticNat` removes the mapping. Both push the VPC's whole static
//! NAT list to the router.

use serde_json::json;

use crate::error::Error;
use crate::handler;
use crate::job_body;
use crate::provision;
use crate::rules;
use crate::server::Reply;
use crate::server::jobs::JobBody;
use crate::server::registry::{ALL, CommandSpec, Kind, ParamType::*, opt, req};
use crate::services::ip::common::{self, held_ip, vpc_sync};
use crate::store::{Page, vlan};

handler!(enable_static_nat, |ctx, params| {
    let db = &ctx.app.db;
    let ip_id = params
        .required_uuid(ctx.command, "ipaddressid")?
        .to_string();
    let vm_id = params
        .required_uuid(ctx.command, "virtualmachineid")?
        .to_string();
    let ip = held_ip(ctx, "ipaddressid", &ip_id).await?;
    let v = common::vpc_of_ip(db, &ip).await?;
    common::check_enabled(&v)?;
    let (target, asked, vmguestip) = common::nat_target(ctx, params, &ip, &vm_id).await?;

    let _guard = ctx.app.network.lock_vpc(v.id).await;
    // Re-read under the lock: another change may have come first.
    let ip = common::reload_ip(db, ip.id).await?;
    let tier = common::rule_tier(db, &ip, &v, asked.as_ref(), Some(&target)).await?;
    common::check_service(db, &tier, "StaticNat").await?;
    rules::ip::check_enable_static_nat(
        &common::rules_ip(&ip)?,
        &common::port_rules_on_ip(db, ip.id).await?,
    )?;
    let address = common::vm_target(db, &target, &tier, vmguestip.as_deref()).await?;
    let taken = vlan::list_ips(
        db,
        &vlan::PublicIpFilter {
            vm_id: Some(target.id),
            one_to_one_nat: Some(true),
            held_only: true,
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items
    .into_iter()
    .find(|other| other.vm_ip.as_deref() == Some(address.to_string().as_str()))
    .map(|other| common::address(&other.public_ip_address))
    .transpose()?;
    rules::ip::check_vm_static_nat_free(
        &target.name,
        common::address(&ip.public_ip_address)?,
        taken,
    )?;

    let address = address.to_string();
    let mut tx = db.begin().await?;
    vlan::set_static_nat(&mut tx, ip.id, Some(tier.id), Some((target.id, &address))).await?;
    let g = provision::bump(&mut tx, v.id).await?;
    tx.commit().await?;
    if let Err(e) = common::push_static_nats(&ctx.app, v.id, g).await {
        // The router kept its old list: so does the address.
        vlan::set_static_nat(db, ip.id, ip.associated_network_id, None).await?;
        return Err(e);
    }
    Ok(Reply::Success)
});

handler!(disable_static_nat, |ctx, params| {
    let db = &ctx.app.db;
    let ip_id = params
        .required_uuid(ctx.command, "ipaddressid")?
        .to_string();
    let ip = held_ip(ctx, "ipaddressid", &ip_id).await?;
    check_has_static_nat(&ip)?;
    let v = common::vpc_of_ip(db, &ip).await?;
    let job_id = ctx
        .submit_job(
            json!({ "ip": ip.id, "vpc": v.id }),
            Some(("IpAddress", &ip.uuid)),
            vpc_sync(v.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

fn check_has_static_nat(ip: &vlan::PublicIp) -> Result<(), Error> {
    if ip.one_to_one_nat {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "Specified IP address id is not associated with any vm Id: static nat is not enabled on \
         ip address {}",
        ip.public_ip_address
    )))
}

job_body!(disable_static_nat_job, |job, info| {
    let app = &job.app;
    let ip_id = info["ip"].as_i64().unwrap_or_default();
    let vpc_id = info["vpc"].as_i64().unwrap_or_default();
    let _guard = app.network.lock_vpc(vpc_id).await;
    let ip = common::reload_ip(&app.db, ip_id).await?;
    check_has_static_nat(&ip)?;
    // An address with static NAT has no other rule, so it leaves its tier.
    let mut tx = app.db.begin().await?;
    vlan::set_static_nat(&mut tx, ip.id, None, None).await?;
    let g = provision::bump(&mut tx, vpc_id).await?;
    tx.commit().await?;
    if let Err(e) = common::push_static_nats(app, vpc_id, g).await {
        let vm = ip.vm_id.zip(ip.vm_ip.as_deref());
        vlan::set_static_nat(&app.db, ip.id, ip.associated_network_id, vm).await?;
        return Err(e);
    }
    Ok(json!({ "success": true }))
});

/// The static NAT commands.
pub(super) fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec {
            name: "enableStaticNat",
            description: "Maps a public IP address of a VPC one-to-one to a VM address in a tier",
            kind: Kind::Sync,
            roles: ALL,
            params: vec![
                req("ipaddressid", Uuid, "the public IP address"),
                req("virtualmachineid", Uuid, "the VM to map it to"),
                opt(
                    "networkid",
                    Uuid,
                    "the tier of the VM; needed when the address is bound to no tier yet and \
                     the VM has NICs in several tiers of the VPC",
                ),
                opt(
                    "vmguestip",
                    String,
                    "the VM's address in the tier (its NIC address; secondary addresses are \
                     not supported)",
                ),
            ],
            object: "success",
            response: vec![],
            since: "",
            handler: enable_static_nat,
            job: None,
        },
        CommandSpec {
            name: "disableStaticNat",
            description: "Removes the static NAT mapping of a public IP address",
            kind: Kind::Async,
            roles: ALL,
            params: vec![req("ipaddressid", Uuid, "the public IP address")],
            object: "success",
            response: vec![],
            since: "",
            handler: disable_static_nat,
            job: None,
        },
    ]
}

/// The job bodies of the static NAT commands.
pub(super) fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![("disableStaticNat", disable_static_nat_job)]
}
