//! The VMs behind a load balancer rule: `assignToLoadBalancerRule`,
//! `removeFromLoadBalancerRule` (each pushes the VPC's whole LB list with the
//! new backends) and `listLoadBalancerRuleInstances`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::rule::{lb_by_uuid, reload};
use crate::api::Params;
use crate::error::Error;
use crate::server::jobs::JobBody;
use crate::server::registry::{ALL, CommandSpec, Kind, ParamType::*, opt, req};
use crate::server::{Ctx, Reply, date, page, page_of};
use crate::services::ip::common::{self, Names, merge, vpc_sync};
use crate::services::ip::rule_flow;
use crate::store::{Db, Page, rule, vm};
use crate::{handler, job_body};

/// One member: the VM and its address in the rule's tier.
type Member = (i64, std::string::String);

/// The VMs named by `virtualmachineids` and `vmidipmap` (`vmid`, `vmip`),
/// each with its address in the rule's tier, checked: the caller's to use,
/// owned by the rule's account, with a NIC in the rule's tier.
async fn targets(
    ctx: &Ctx,
    params: &Params,
    r: &rule::Rule,
) -> Result<Vec<(vm::Vm, Member)>, Error> {
    let db = &ctx.app.db;
    let mut asked: Vec<(std::string::String, Option<std::string::String>)> = params
        .uuid_list("virtualmachineids")?
        .unwrap_or_default()
        .into_iter()
        .map(|id| (id.to_string(), None))
        .collect();
    for entry in params.map("vmidipmap")? {
        let vmid = entry.get("vmid").ok_or_else(|| {
            Error::invalid("each vmidipmap entry needs a vmid (and optionally a vmip)")
        })?;
        let parsed = uuid::Uuid::parse_str(vmid.trim())
            .map_err(|_| Error::invalid_id("vmidipmap", vmid))?
            .to_string();
        asked.push((parsed, entry.get("vmip").cloned()));
    }
    if asked.is_empty() {
        return Err(Error::invalid(
            "virtualmachineids or vmidipmap must name at least one virtual machine",
        ));
    }
    let tier = common::tier_by_id(db, r.network_id).await?;
    let mut out: Vec<(vm::Vm, Member)> = Vec::new();
    for (id, vmip) in asked {
        let target = common::vm_by_uuid(ctx, "virtualmachineids", &id).await?;
        common::check_same_owner(&target, r.account_id, &format!("rule {}", r.uuid))?;
        let address = common::vm_target(db, &target, &tier, vmip.as_deref()).await?;
        let member = (target.id, address.to_string());
        if !out.iter().any(|(_, m)| *m == member) {
            out.push((target, member));
        }
    }
    Ok(out)
}

/// Checks the members asked for against the rule's current ones (to add:
/// none may be assigned already; to remove: each must be) and submits the
/// job that changes them.
async fn submit_members(ctx: &Ctx, params: &Params, add: bool) -> Result<Reply, Error> {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let r = lb_by_uuid(ctx, "id", &id).await?;
    let vpc_id = rule_flow::vpc_of_rule(&ctx.app.db, &r).await?;
    let wanted = targets(ctx, params, &r).await?;
    let existing = rule::members_with_vms(&ctx.app.db, r.id).await?;
    for (target, (vm_id, ip)) in &wanted {
        if add && existing.iter().any(|m| &m.instance_ip == ip) {
            return Err(Error::invalid(format!(
                "Virtual machine {} ({ip}) is already assigned to load balancer rule {}",
                target.name, r.uuid
            )));
        }
        if !add
            && !existing
                .iter()
                .any(|m| &m.instance_ip == ip && m.vm_id.is_none_or(|v| v == *vm_id))
        {
            return Err(Error::invalid(format!(
                "Virtual machine {} ({ip}) is not assigned to load balancer rule {}",
                target.name, r.uuid
            )));
        }
    }
    let members: Vec<&Member> = wanted.iter().map(|(_, m)| m).collect();
    let job_id = ctx
        .submit_job(
            json!({ "rule": r.id, "vpc": vpc_id, "members": members }),
            Some(("LoadBalancerRule", &r.uuid)),
            vpc_sync(vpc_id),
        )
        .await?;
    Ok(Reply::Job { job_id })
}

handler!(assign, |ctx, params| {
    submit_members(ctx, params, true).await
});

handler!(remove, |ctx, params| {
    submit_members(ctx, params, false).await
});

fn members_of(info: &Value) -> Vec<Member> {
    serde_json::from_value(info["members"].clone()).unwrap_or_default()
}

/// Adds (or removes) members, pushes the VPC's LB list, and undoes the
/// change when the router refuses it.
async fn change_members(
    job: &crate::server::jobs::JobCtx,
    info: &Value,
    add: bool,
) -> Result<Value, Error> {
    let app = &job.app;
    let (id, vpc_id) = rule_flow::job_ids(info);
    let _guard = app.network.lock_vpc(vpc_id).await;
    let r = reload(&app.db, id).await?;
    let mut changed: Vec<Member> = Vec::new();
    let mut tx = app.db.begin().await?;
    for (vm_id, ip) in members_of(info) {
        let done = if add {
            rule::add_vm_member(&mut tx, id, &ip, vm_id).await?
        } else {
            rule::remove_member(&mut tx, id, &ip).await?
        };
        if done {
            changed.push((vm_id, ip));
        }
    }
    rule::set_state(&mut tx, id, rule::STATE_ADD).await?;
    let g = crate::provision::bump(&mut tx, vpc_id).await?;
    tx.commit().await?;
    if let Err(e) = common::push_lb_rules(app, vpc_id, g).await {
        let mut tx = app.db.begin().await?;
        for (vm_id, ip) in &changed {
            if add {
                rule::remove_member(&mut tx, id, ip).await?;
            } else {
                rule::add_vm_member(&mut tx, id, ip, *vm_id).await?;
            }
        }
        rule::set_state(&mut tx, id, &r.state).await?;
        tx.commit().await?;
        return Err(e);
    }
    rule::set_state(&app.db, id, rule::STATE_ACTIVE).await?;
    Ok(json!({ "success": true }))
}

job_body!(assign_job, |job, info| {
    change_members(job, info, true).await
});

job_body!(remove_job, |job, info| {
    change_members(job, info, false).await
});

/// A VM as listLoadBalancerRuleInstances shows it (the main fields of
/// CloudStack's UserVmResponse, with its NICs).
async fn vm_view(db: &Db, names: &mut Names, v: &vm::Vm) -> Result<Value, Error> {
    let zone = names
        .zone(db, v.zone_id)
        .await?
        .map(|z| (z.uuid.clone(), z.name.clone()));
    let mut nics = Vec::new();
    for n in common::vm_nics(db, v.id).await? {
        let network = names
            .network(db, n.network_id)
            .await?
            .map(|t| t.uuid.clone());
        nics.push(json!({
            "id": n.uuid,
            "networkid": network,
            "ipaddress": n.ip4_address,
            "netmask": n.netmask,
            "gateway": n.gateway,
            "macaddress": n.mac_address,
            "isdefault": n.device_index == 0,
            "traffictype": "Guest",
            "type": "Isolated",
        }));
    }
    let view = json!({
        "id": v.uuid,
        "name": v.name,
        "displayname": v.display_name,
        "state": v.state,
        "zoneid": zone.as_ref().map(|z| z.0.clone()),
        "zonename": zone.as_ref().map(|z| z.1.clone()),
        "created": date(v.created),
        "nic": nics,
    });
    let owner = names
        .owner(db, Some(v.account_id), Some(v.domain_id))
        .await?;
    Ok(merge(view, owner))
}

handler!(list_instances, |ctx, params| {
    let db = &ctx.app.db;
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let r = lb_by_uuid(ctx, "id", &id).await?;
    let page = page(ctx, params).await?;
    let members = rule::members_with_vms(db, r.id).await?;
    // The member VMs in the order they joined, with their addresses.
    let mut assigned: BTreeMap<i64, Vec<std::string::String>> = BTreeMap::new();
    let mut order = Vec::new();
    for m in &members {
        if let Some(vm_id) = m.vm_id {
            if !assigned.contains_key(&vm_id) {
                order.push(vm_id);
            }
            assigned
                .entry(vm_id)
                .or_default()
                .push(m.instance_ip.clone());
        }
    }
    let vms: Vec<vm::Vm> = if params.boolean("applied")? == Some(false) {
        // The VMs that could join: the rule owner's VMs in the rule's tier.
        vm::list(
            db,
            &vm::VmFilter {
                network_id: Some(r.network_id),
                account_id: Some(r.account_id),
                ..Default::default()
            },
            Page::ALL,
        )
        .await?
        .items
        .into_iter()
        .filter(|v| {
            !assigned.contains_key(&v.id)
                && ![vm::STATE_DESTROYED, vm::STATE_EXPUNGING, vm::STATE_ERROR]
                    .contains(&v.state.as_str())
        })
        .collect()
    } else {
        let mut out = Vec::new();
        for vm_id in order {
            if let Some(v) = vm::get_by_id(db, vm_id).await? {
                out.push(v);
            }
        }
        out
    };
    let keyword = params.string("keyword")?.filter(|k| !k.is_empty());
    let vms: Vec<vm::Vm> = vms
        .into_iter()
        .filter(|v| {
            keyword
                .as_ref()
                .is_none_or(|k| v.name.to_lowercase().contains(&k.to_lowercase()))
        })
        .collect();
    let count = vms.len() as u64;
    let mut names = Names::default();
    let mut items = Vec::new();
    let with_ips = params.boolean("lbvmips")? == Some(true);
    for v in page_of(vms, page) {
        let view = vm_view(db, &mut names, &v).await?;
        items.push(if with_ips {
            json!({
                "loadbalancerruleinstance": view,
                "lbvmipaddresses": assigned.get(&v.id).cloned().unwrap_or_default(),
            })
        } else {
            view
        });
    }
    if !with_ips {
        return Ok(Reply::List { count, items });
    }
    // With lbvmips the items are CloudStack's LoadBalancerRuleVmMapResponse.
    if count == 0 {
        return Ok(Reply::Raw(json!({})));
    }
    Ok(Reply::Raw(json!({ "count": count, "lbrulevmidip": items })))
});

/// The member commands.
pub(super) fn commands() -> Vec<CommandSpec> {
    let members = || {
        vec![
            req("id", Uuid, "the ID of the load balancer rule"),
            opt(
                "virtualmachineids",
                List,
                "the VMs (their addresses in the rule's tier)",
            ),
            opt(
                "vmidipmap",
                Map,
                "VMs and addresses, as vmidipmap[i].vmid and vmidipmap[i].vmip",
            ),
        ]
    };
    vec![
        CommandSpec {
            name: "assignToLoadBalancerRule",
            description: "Adds VMs of the rule's tier to a load balancer rule",
            kind: Kind::Async,
            roles: ALL,
            params: members(),
            object: "loadbalancer",
            response: vec![],
            since: "",
            handler: assign,
            job: None,
        },
        CommandSpec {
            name: "removeFromLoadBalancerRule",
            description: "Removes VMs from a load balancer rule",
            kind: Kind::Async,
            roles: ALL,
            params: members(),
            object: "loadbalancer",
            response: vec![],
            since: "",
            handler: remove,
            job: None,
        },
        CommandSpec {
            name: "listLoadBalancerRuleInstances",
            description: "Lists the VMs of a load balancer rule (applied=false: the VMs that \
                          could join it)",
            kind: Kind::Sync,
            roles: ALL,
            params: vec![
                req("id", Uuid, "the ID of the load balancer rule"),
                opt(
                    "applied",
                    Boolean,
                    "true (default): the rule's VMs; false: the other VMs of its tier",
                ),
                opt(
                    "lbvmips",
                    Boolean,
                    "true: each VM with its addresses in the rule (lbrulevmidip)",
                ),
                opt("keyword", String, "a substring of the VM name"),
                opt("page", Integer, "the page to return"),
                opt("pagesize", Integer, "the number of VMs per page"),
            ],
            object: "loadbalancerruleinstance",
            response: vec![],
            since: "",
            handler: list_instances,
            job: None,
        },
    ]
}

/// The job bodies of the member commands.
pub(super) fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("assignToLoadBalancerRule", assign_job),
        ("removeFromLoadBalancerRule", remove_job),
    ]
}
