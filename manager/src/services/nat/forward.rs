//! Port forwarding rules on VPC public IPs (reference §2.5, §3.5):
//! create (async-create: checked and stored in state Add during the request,
//! pushed by the job, Active once the router has it), update, delete, list.
//! Every change pushes the VPC's whole port forwarding list; a failed push
//! undoes the change and fails the job.

use serde_json::{Value, json};

use crate::api::Params;
use crate::error::Error;
use crate::rules;
use crate::rules::ip::{PortRule, RulePurpose};
use crate::server::jobs::JobBody;
use crate::server::registry::{ALL, CommandSpec, FieldSpec, Kind, ParamType::*, field, opt, req};
use crate::server::{Ctx, Reply, page};
use crate::services::ip::common::{self, Names, Wanted, held_ip, vpc_sync};
use crate::services::ip::rule_flow;
use crate::services::owner::{check_access, list_params, list_scope};
use crate::store::{Db, rule, vlan, vm};
use crate::{handler, job_body};

/// A port forwarding rule as the API shows it (FirewallRuleResponse: ports
/// and `cidrlist` are strings, as cloudstack-go expects).
pub async fn pf_view(db: &Db, names: &mut Names, r: &rule::Rule) -> Result<Value, Error> {
    let ip = names
        .ip(db, r.ip_address_id)
        .await?
        .map(|ip| (ip.uuid.clone(), ip.public_ip_address.clone()));
    let tier = names
        .network(db, r.network_id)
        .await?
        .map(|n| n.uuid.clone());
    let target = match r.vm_id {
        Some(id) => names
            .vm(db, id)
            .await?
            .map(|v| (v.uuid.clone(), v.name.clone(), v.display_name.clone())),
        None => None,
    };
    let text = |p: Option<i64>| p.map(|p| p.to_string());
    Ok(json!({
        "id": r.uuid,
        "privateport": text(r.dest_start_port),
        "privateendport": text(r.dest_end_port.or(r.dest_start_port)),
        "protocol": r.protocol,
        "publicport": text(r.start_port),
        "publicendport": text(r.end_port.or(r.start_port)),
        "virtualmachineid": target.as_ref().map(|t| t.0.clone()),
        "virtualmachinename": target.as_ref().map(|t| t.1.clone()),
        "virtualmachinedisplayname": target.as_ref().map(|t| t.2.clone()),
        "ipaddressid": ip.as_ref().map(|i| i.0.clone()),
        "ipaddress": ip.as_ref().map(|i| i.1.clone()),
        "state": r.state,
        "cidrlist": r.source_cidrs.clone().unwrap_or_default(),
        "vmguestip": r.dest_ip,
        "networkid": tier,
        "fordisplay": true,
        "tags": [],
    }))
}

fn pf_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the rule"),
        field("privateport", "string", "the first port on the VM"),
        field("privateendport", "string", "the last port on the VM"),
        field("protocol", "string", "tcp or udp"),
        field("publicport", "string", "the first public port"),
        field("publicendport", "string", "the last public port"),
        field("virtualmachineid", "string", "the VM the rule forwards to"),
        field("virtualmachinename", "string", "the name of that VM"),
        field(
            "virtualmachinedisplayname",
            "string",
            "the display name of that VM",
        ),
        field("ipaddressid", "string", "the public IP address of the rule"),
        field("ipaddress", "string", "that address"),
        field("state", "string", "Add (being applied), Active or Revoke"),
        field(
            "cidrlist",
            "string",
            "the source CIDRs allowed, comma-separated",
        ),
        field("vmguestip", "string", "the VM address the rule forwards to"),
        field("networkid", "string", "the tier of the rule"),
        field("fordisplay", "boolean", "always true"),
        field("tags", "list", "resource tags (none)"),
    ]
}

/// The live port forwarding rule named by `uuid`, which the caller may change.
async fn pf_by_uuid(ctx: &Ctx, name: &str, uuid: &str) -> Result<rule::Rule, Error> {
    let r = rule::get_by_uuid(&ctx.app.db, uuid)
        .await?
        .filter(|r| r.removed.is_none() && r.purpose == rule::PURPOSE_PORT_FORWARDING)
        .ok_or_else(|| Error::invalid_id(name, uuid))?;
    check_access(
        ctx,
        r.account_id,
        &r.domain_path,
        &format!("port forwarding rule {}", r.uuid),
    )?;
    Ok(r)
}

/// A live rule again, by internal id (jobs re-read what the request stored).
async fn reload(db: &Db, id: i64) -> Result<rule::Rule, Error> {
    rule::get_by_id(db, id)
        .await?
        .filter(|r| r.removed.is_none())
        .ok_or_else(|| Error::invalid("The rule was deleted meanwhile"))
}

handler!(create_pf, |ctx, params| {
    let db = &ctx.app.db;
    let ip_id = params
        .required_uuid(ctx.command, "ipaddressid")?
        .to_string();
    let vm_id = params
        .required_uuid(ctx.command, "virtualmachineid")?
        .to_string();
    let protocol = params.required_string(ctx.command, "protocol")?;
    let public_port = params
        .long("publicport")?
        .ok_or_else(|| Error::missing_param(ctx.command, "publicport"))?;
    let private_port = params
        .long("privateport")?
        .ok_or_else(|| Error::missing_param(ctx.command, "privateport"))?;
    let cidrs = params.list("cidrlist")?.unwrap_or_default();
    let cidr_refs: Vec<&str> = cidrs.iter().map(|c| c.as_str()).collect();
    let ip = held_ip(ctx, "ipaddressid", &ip_id).await?;
    let v = common::vpc_of_ip(db, &ip).await?;
    // §2.5: VPC addresses have no firewall, so openfirewall=true is refused.
    let checked = rules::nat::validate_port_forward(&rules::nat::NewPortForward {
        protocol: &protocol,
        public_port,
        public_end_port: params.long("publicendport")?,
        private_port,
        private_end_port: params.long("privateendport")?,
        open_firewall: params.boolean("openfirewall")?,
        source_cidrs: &cidr_refs,
    })?;
    common::check_enabled(&v)?;
    let (target, asked, vmguestip) = common::nat_target(ctx, params, &ip, &vm_id).await?;

    let _guard = ctx.app.network.lock_vpc(v.id).await;
    let ip = common::reload_ip(db, ip.id).await?;
    // The address's purpose and ports first: CloudStack reports a conflict
    // (537) before looking at tiers.
    rules::ip::check_new_port_rule(
        &common::rules_ip(&ip)?,
        &PortRule {
            purpose: RulePurpose::PortForwarding,
            protocol: checked.protocol,
            public: checked.public,
        },
        &common::port_rules_on_ip(db, ip.id).await?,
    )?;
    let tier = common::rule_tier(db, &ip, &v, asked.as_ref(), Some(&target)).await?;
    common::check_service(db, &tier, "PortForwarding").await?;
    let address = common::vm_target(db, &target, &tier, vmguestip.as_deref()).await?;
    let bind = ip.associated_network_id.is_none();
    let mut tx = db.begin().await?;
    let created = rule::create(
        &mut tx,
        rule::NewRule {
            ip_address_id: ip.id,
            network_id: tier.id,
            purpose: rule::PURPOSE_PORT_FORWARDING.into(),
            protocol: checked.protocol.as_str().into(),
            start_port: Some(i64::from(checked.public.start)),
            end_port: Some(i64::from(checked.public.end)),
            dest_ip: Some(address.to_string()),
            dest_start_port: Some(i64::from(checked.private.start)),
            dest_end_port: Some(i64::from(checked.private.end)),
            source_cidrs: checked.source_cidrs.iter().map(|c| c.to_string()).collect(),
            account_id: ip.account_id.unwrap_or_default(),
            domain_id: ip.domain_id.unwrap_or_default(),
        },
    )
    .await?;
    rule::set_vm(&mut tx, created.id, Some(target.id)).await?;
    if bind {
        // §3.5: the address's first rule binds it to the tier.
        vlan::set_association(&mut tx, ip.id, Some(tier.id), false).await?;
    }
    tx.commit().await?;
    drop(_guard);
    rule_flow::submit_created(ctx, "FirewallRule", "port forwarding", created, v.id).await
});

job_body!(create_pf_job, |job, info| {
    let app = &job.app;
    let (id, vpc_id) = rule_flow::job_ids(info);
    let _guard = app.network.lock_vpc(vpc_id).await;
    let r = reload(&app.db, id).await?;
    rule_flow::push_created(app, vpc_id, &r, "port forwarding", |g| {
        common::push_port_forwards(app, vpc_id, g)
    })
    .await?;
    let r = reload(&app.db, id).await?;
    let view = pf_view(&app.db, &mut Names::default(), &r).await?;
    Ok(json!({ "portforwardingrule": view }))
});

handler!(delete_pf, |ctx, params| {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let r = pf_by_uuid(ctx, "id", &id).await?;
    rule_flow::submit_rule_job(ctx, "FirewallRule", &r).await
});

job_body!(delete_pf_job, |job, info| {
    let app = &job.app;
    rule_flow::delete_job(app, info, |vpc_id, g| {
        common::push_port_forwards(app, vpc_id, g)
    })
    .await
});

/// updatePortForwardingRule's new destination, checked.
async fn new_destination(
    ctx: &Ctx,
    params: &Params,
    r: &rule::Rule,
) -> Result<(std::string::String, i64, i64, Option<i64>), Error> {
    let db = &ctx.app.db;
    let old_start = r.dest_start_port.unwrap_or_default();
    let old_end = r.dest_end_port.unwrap_or(old_start);
    let start = params.long("privateport")?.unwrap_or(old_start);
    let end = match (params.long("privateendport")?, params.long("privateport")?) {
        (Some(end), _) => end,
        // A new start keeps the range's length.
        (None, Some(start)) => start + (old_end - old_start),
        (None, None) => old_end,
    };
    let private = rules::PortRange::new("privateport", start, Some(end), 1)?;
    let public = rules::PortRange::new(
        "publicport",
        r.start_port.unwrap_or_default(),
        r.end_port,
        1,
    )?;
    if private.len() != public.len() {
        return Err(Error::invalid(format!(
            "Public port range {public} and private port range {private} must have the same \
             number of ports ({} vs {})",
            public.len(),
            private.len()
        )));
    }
    let vmguestip = params.string("vmguestip")?.filter(|v| !v.is_empty());
    let tier = common::tier_by_id(db, r.network_id).await?;
    let target = match params.uuid("virtualmachineid")? {
        Some(id) => {
            let target = common::vm_by_uuid(ctx, "virtualmachineid", &id.to_string()).await?;
            common::check_same_owner(&target, r.account_id, &format!("rule {}", r.uuid))?;
            Some(target)
        }
        None if vmguestip.is_some() => match r.vm_id {
            Some(id) => vm::get_by_id(db, id).await?,
            None => None,
        },
        None => None,
    };
    let (dest_ip, vm_id) = match &target {
        Some(target) => (
            common::vm_target(db, target, &tier, vmguestip.as_deref())
                .await?
                .to_string(),
            Some(target.id),
        ),
        None => (r.dest_ip.clone().unwrap_or_default(), r.vm_id),
    };
    Ok((
        dest_ip,
        i64::from(private.start),
        i64::from(private.end),
        vm_id,
    ))
}

handler!(update_pf, |ctx, params| {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let r = pf_by_uuid(ctx, "id", &id).await?;
    let vpc_id = rule_flow::vpc_of_rule(&ctx.app.db, &r).await?;
    let (dest_ip, start, end, vm_id) = new_destination(ctx, params, &r).await?;
    let job_id = ctx
        .submit_job(
            json!({
                "rule": r.id, "vpc": vpc_id, "destip": dest_ip,
                "start": start, "end": end, "vm": vm_id,
            }),
            Some(("FirewallRule", &r.uuid)),
            vpc_sync(vpc_id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(update_pf_job, |job, info| {
    let app = &job.app;
    let (id, vpc_id) = rule_flow::job_ids(info);
    let _guard = app.network.lock_vpc(vpc_id).await;
    let old = reload(&app.db, id).await?;
    let mut tx = app.db.begin().await?;
    rule::set_destination(
        &mut tx,
        id,
        info["destip"].as_str().unwrap_or_default(),
        info["start"].as_i64().unwrap_or_default(),
        info["end"].as_i64().unwrap_or_default(),
        info["vm"].as_i64(),
    )
    .await?;
    rule::set_state(&mut tx, id, rule::STATE_ADD).await?;
    let g = crate::provision::bump(&mut tx, vpc_id).await?;
    tx.commit().await?;
    if let Err(e) = common::push_port_forwards(app, vpc_id, g).await {
        let mut tx = app.db.begin().await?;
        rule::set_destination(
            &mut tx,
            id,
            old.dest_ip.as_deref().unwrap_or_default(),
            old.dest_start_port.unwrap_or_default(),
            old.dest_end_port.unwrap_or_default(),
            old.vm_id,
        )
        .await?;
        rule::set_state(&mut tx, id, &old.state).await?;
        tx.commit().await?;
        return Err(e);
    }
    rule::set_state(&app.db, id, rule::STATE_ACTIVE).await?;
    let r = reload(&app.db, id).await?;
    let view = pf_view(&app.db, &mut Names::default(), &r).await?;
    Ok(json!({ "portforwardingrule": view }))
});

/// The rule filter of a rule list: ownership scope, `id`, `ipaddressid`,
/// `networkid`.
pub async fn rule_filter(
    ctx: &Ctx,
    params: &Params,
    purpose: &str,
    ip_param: &str,
) -> Result<rule::RuleFilter, Error> {
    let scope = list_scope(ctx, params).await?;
    let mut filter = rule::RuleFilter {
        purpose: Some(purpose.to_string()),
        account_id: scope.account_id,
        domain_id: scope.domain_id,
        domain_path_prefix: scope.domain_path_prefix,
        ..Default::default()
    };
    if let Some(id) = params.uuid("id")? {
        filter.uuids = Some(vec![id.to_string()]);
    }
    if let Some(id) = params.uuid(ip_param)? {
        filter.ip_address_id = Some(held_ip(ctx, ip_param, &id.to_string()).await?.id);
    }
    if let Some(id) = params.uuid("networkid")? {
        filter.network_id = Some(
            common::tier_by_uuid(ctx, "networkid", &id.to_string())
                .await?
                .id,
        );
    }
    Ok(filter)
}

handler!(list_pf, |ctx, params| {
    let db = &ctx.app.db;
    let filter = rule_filter(ctx, params, rule::PURPOSE_PORT_FORWARDING, "ipaddressid").await?;
    let page = page(ctx, params).await?;
    let listed = rule::list(db, &filter, page).await?;
    let mut names = Names::default();
    let rows = &listed.items;
    names
        .preload(
            db,
            Wanted {
                ips: rows.iter().map(|r| r.ip_address_id).collect(),
                networks: rows.iter().map(|r| r.network_id).collect(),
                vms: rows.iter().filter_map(|r| r.vm_id).collect(),
                ..Wanted::default()
            },
        )
        .await?;
    let mut items = Vec::new();
    for r in rows {
        items.push(pf_view(db, &mut names, r).await?);
    }
    Ok(Reply::List {
        count: listed.total as u64,
        items,
    })
});

/// The port forwarding commands.
pub(super) fn commands() -> Vec<CommandSpec> {
    let mut list = vec![
        opt("id", Uuid, "the ID of the rule"),
        opt("ipaddressid", Uuid, "only rules on this public IP address"),
        opt("networkid", Uuid, "only rules of this tier"),
        opt("fordisplay", Boolean, "accepted; rules are always shown"),
    ];
    list.extend(list_params());
    vec![
        CommandSpec {
            name: "createPortForwardingRule",
            description: "Forwards ports of a VPC public IP address to a VM in a tier",
            kind: Kind::AsyncCreate,
            roles: ALL,
            params: vec![
                req("ipaddressid", Uuid, "the public IP address"),
                req("privateport", Integer, "the first port on the VM"),
                req("publicport", Integer, "the first public port"),
                req("protocol", String, "tcp or udp"),
                req("virtualmachineid", Uuid, "the VM to forward to"),
                opt(
                    "privateendport",
                    Integer,
                    "the last port on the VM (default privateport)",
                ),
                opt(
                    "publicendport",
                    Integer,
                    "the last public port (default publicport)",
                ),
                opt(
                    "cidrlist",
                    List,
                    "source CIDRs allowed to use the rule (default 0.0.0.0/0)",
                ),
                opt(
                    "networkid",
                    Uuid,
                    "the tier of the VM; needed when the address is bound to no tier yet and \
                     the VM has NICs in several tiers of the VPC",
                ),
                opt(
                    "vmguestip",
                    String,
                    "the VM's address in the tier (its NIC address)",
                ),
                opt(
                    "openfirewall",
                    Boolean,
                    "must be false or absent: VPC addresses have no firewall; the tier's \
                     network ACL filters the traffic",
                ),
                opt("fordisplay", Boolean, "accepted; rules are always shown"),
            ],
            object: "portforwardingrule",
            response: pf_fields(),
            since: "",
            handler: create_pf,
            job: None,
        },
        CommandSpec {
            name: "updatePortForwardingRule",
            description: "Changes where a port forwarding rule forwards to",
            kind: Kind::Async,
            roles: ALL,
            params: vec![
                req("id", Uuid, "the ID of the rule"),
                opt("privateport", Integer, "the new first port on the VM"),
                opt("privateendport", Integer, "the new last port on the VM"),
                opt("virtualmachineid", Uuid, "the new VM (in the rule's tier)"),
                opt("vmguestip", String, "the VM's address in the tier"),
                opt("fordisplay", Boolean, "accepted; rules are always shown"),
                opt("customid", String, "accepted; ids cannot be changed"),
            ],
            object: "portforwardingrule",
            response: pf_fields(),
            since: "",
            handler: update_pf,
            job: None,
        },
        CommandSpec {
            name: "deletePortForwardingRule",
            description: "Deletes a port forwarding rule",
            kind: Kind::Async,
            roles: ALL,
            params: vec![req("id", Uuid, "the ID of the rule")],
            object: "portforwardingrule",
            response: vec![],
            since: "",
            handler: delete_pf,
            job: None,
        },
        CommandSpec {
            name: "listPortForwardingRules",
            description: "Lists port forwarding rules",
            kind: Kind::Sync,
            roles: ALL,
            params: list,
            object: "portforwardingrule",
            response: pf_fields(),
            since: "",
            handler: list_pf,
            job: None,
        },
    ]
}

/// The job bodies of the port forwarding commands.
pub(super) fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("createPortForwardingRule", create_pf_job),
        ("updatePortForwardingRule", update_pf_job),
        ("deletePortForwardingRule", delete_pf_job),
    ]
}
