//! Load balancer rules: create (async-create: checked and stored during the
//! request, pushed by the job), update, delete, list.

use serde_json::json;

use super::{lb_fields, lb_view};
use crate::error::Error;
use crate::rules;
use crate::rules::ip::{PortRule, RulePurpose};
use crate::server::jobs::JobBody;
use crate::server::registry::{ALL, CommandSpec, Kind, ParamType::*, opt, req};
use crate::server::{Ctx, Reply, counted_page, page};
use crate::services::ip::common::{self, Names, Wanted, held_ip, vpc_sync};
use crate::services::ip::rule_flow;
use crate::services::nat::forward::rule_filter;
use crate::services::owner::{check_access, list_params};
use crate::store::{Db, Page, network, rule, vlan, vm};
use crate::{handler, job_body};

/// The live load balancer rule named by `uuid`, which the caller may change.
pub async fn lb_by_uuid(ctx: &Ctx, name: &str, uuid: &str) -> Result<rule::Rule, Error> {
    let r = rule::get_by_uuid(&ctx.app.db, uuid)
        .await?
        .filter(|r| r.removed.is_none() && r.purpose == rule::PURPOSE_LOAD_BALANCING)
        .ok_or_else(|| Error::invalid_id(name, uuid))?;
    check_access(
        ctx,
        r.account_id,
        &r.domain_path,
        &format!("load balancer rule {}", r.uuid),
    )?;
    Ok(r)
}

/// A live rule again, by internal id.
pub async fn reload(db: &Db, id: i64) -> Result<rule::Rule, Error> {
    rule::get_by_id(db, id)
        .await?
        .filter(|r| r.removed.is_none())
        .ok_or_else(|| Error::invalid("The load balancer rule was deleted meanwhile"))
}

/// The tier that already serves public load balancing in the VPC, if any
/// (only one may, §2.5).
async fn lb_tier_of_vpc(db: &Db, vpc_id: i64) -> Result<Option<network::Network>, Error> {
    let filter = rule::RuleFilter {
        vpc_id: Some(vpc_id),
        purpose: Some(rule::PURPOSE_LOAD_BALANCING.into()),
        ..Default::default()
    };
    let first = rule::list(db, &filter, Page::ALL)
        .await?
        .items
        .into_iter()
        .find(|r| r.state != rule::STATE_REVOKE);
    match first {
        Some(r) => Ok(Some(common::tier_by_id(db, r.network_id).await?)),
        None => Ok(None),
    }
}

handler!(create_lb, |ctx, params| {
    let db = &ctx.app.db;
    let name = params.required_string(ctx.command, "name")?;
    let algorithm = params.required_string(ctx.command, "algorithm")?;
    let public_port = params
        .long("publicport")?
        .ok_or_else(|| Error::missing_param(ctx.command, "publicport"))?;
    let private_port = params
        .long("privateport")?
        .ok_or_else(|| Error::missing_param(ctx.command, "privateport"))?;
    let description = params.string("description")?;
    let protocol = params.string("protocol")?;
    let checked = rules::lb::validate_load_balancer(&rules::lb::NewLoadBalancer {
        name: &name,
        description: description.as_deref(),
        algorithm: &algorithm,
        protocol: protocol.as_deref(),
        public_port,
        private_port,
    })?;
    let transport = checked.protocol.vpc_router_transport()?;
    if params.boolean("openfirewall")? == Some(true) {
        return Err(Error::invalid(
            "openfirewall=true is not supported for ip addresses of a VPC: there is no \
             firewall service, use the tier's network ACL instead",
        ));
    }
    let cidrs = params
        .list("cidrlist")?
        .unwrap_or_default()
        .iter()
        .map(|c| rules::parse_ipv4_cidr("cidrlist", c).map(|c| c.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let ip_id = params.uuid("publicipid")?.ok_or_else(|| {
        Error::invalid(
            "publicipid is required: the VPC virtual router balances on a public ip address \
             acquired for the VPC (associateIpAddress vpcid=...)",
        )
    })?;
    let ip = held_ip(ctx, "publicipid", &ip_id.to_string()).await?;
    let v = common::vpc_of_ip(db, &ip).await?;
    common::check_enabled(&v)?;
    let asked = common::tier_param(ctx, params, "networkid").await?;

    let _guard = ctx.app.network.lock_vpc(v.id).await;
    let ip = common::reload_ip(db, ip.id).await?;
    // The address's purpose and ports first: CloudStack reports a conflict
    // (537) before looking at tiers.
    let public = rules::PortRange::new("publicport", public_port, None, 1)?;
    rules::ip::check_new_port_rule(
        &common::rules_ip(&ip)?,
        &PortRule {
            purpose: RulePurpose::LoadBalancing,
            protocol: transport,
            public,
        },
        &common::port_rules_on_ip(db, ip.id).await?,
    )?;
    let tier = common::rule_tier(db, &ip, &v, asked.as_ref(), None).await?;
    common::check_service(db, &tier, "Lb").await?;
    let lb_tier = lb_tier_of_vpc(db, v.id).await?;
    rules::lb::check_public_lb_tier(
        lb_tier.as_ref().map(|t| t.name.clone()).as_ref(),
        &tier.name,
    )?;
    let bind = ip.associated_network_id.is_none();
    let mut tx = db.begin().await?;
    let (created, _) = rule::create_load_balancer(
        &mut tx,
        rule::NewRule {
            ip_address_id: ip.id,
            network_id: tier.id,
            protocol: transport.as_str().into(),
            source_cidrs: cidrs,
            account_id: ip.account_id.unwrap_or_default(),
            domain_id: ip.domain_id.unwrap_or_default(),
            ..Default::default()
        },
        &name,
        checked.algorithm.as_str(),
        i64::from(checked.public_port),
        i64::from(checked.private_port),
    )
    .await?;
    if bind {
        // §3.5: the address's first rule binds it to the tier.
        vlan::set_association(&mut tx, ip.id, Some(tier.id), false).await?;
    }
    tx.commit().await?;
    drop(_guard);
    rule_flow::submit_created(ctx, "LoadBalancerRule", "load balancer", created, v.id).await
});

job_body!(create_lb_job, |job, info| {
    let app = &job.app;
    let (id, vpc_id) = rule_flow::job_ids(info);
    let _guard = app.network.lock_vpc(vpc_id).await;
    let r = reload(&app.db, id).await?;
    rule_flow::push_created(app, vpc_id, &r, "load balancer", |g| {
        common::push_lb_rules(app, vpc_id, g)
    })
    .await?;
    let r = reload(&app.db, id).await?;
    let view = lb_view(&app.db, &mut Names::default(), &r).await?;
    Ok(json!({ "loadbalancer": view }))
});

handler!(update_lb, |ctx, params| {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let r = lb_by_uuid(ctx, "id", &id).await?;
    let name = params.string("name")?.filter(|n| !n.is_empty());
    if let Some(name) = &name {
        rules::check_name("name", name)?;
    }
    let algorithm = match params.string("algorithm")?.filter(|a| !a.is_empty()) {
        Some(a) => Some(rules::lb::Algorithm::parse(&a)?.as_str()),
        None => None,
    };
    if let Some(d) = params.string("description")? {
        rules::check_length("description", &d, rules::MAX_DISPLAY_TEXT_LEN)?;
    }
    let vpc_id = rule_flow::vpc_of_rule(&ctx.app.db, &r).await?;
    let job_id = ctx
        .submit_job(
            json!({ "rule": r.id, "vpc": vpc_id, "name": name, "algorithm": algorithm }),
            Some(("LoadBalancerRule", &r.uuid)),
            vpc_sync(vpc_id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(update_lb_job, |job, info| {
    let app = &job.app;
    let (id, vpc_id) = rule_flow::job_ids(info);
    let _guard = app.network.lock_vpc(vpc_id).await;
    let r = reload(&app.db, id).await?;
    let old = rule::load_balancer(&app.db, id)
        .await?
        .ok_or_else(|| Error::internal("a load balancer rule lost its balancer row"))?;
    let mut tx = app.db.begin().await?;
    rule::update_load_balancer(
        &mut tx,
        id,
        info["name"].as_str(),
        info["algorithm"].as_str(),
    )
    .await?;
    rule::set_state(&mut tx, id, rule::STATE_ADD).await?;
    let g = crate::provision::bump(&mut tx, vpc_id).await?;
    tx.commit().await?;
    if let Err(e) = common::push_lb_rules(app, vpc_id, g).await {
        let mut tx = app.db.begin().await?;
        rule::update_load_balancer(&mut tx, id, Some(&old.name), Some(&old.algorithm)).await?;
        rule::set_state(&mut tx, id, &r.state).await?;
        tx.commit().await?;
        return Err(e);
    }
    rule::set_state(&app.db, id, rule::STATE_ACTIVE).await?;
    let r = reload(&app.db, id).await?;
    let view = lb_view(&app.db, &mut Names::default(), &r).await?;
    Ok(json!({ "loadbalancer": view }))
});

handler!(delete_lb, |ctx, params| {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let r = lb_by_uuid(ctx, "id", &id).await?;
    rule_flow::submit_rule_job(ctx, "LoadBalancerRule", &r).await
});

job_body!(delete_lb_job, |job, info| {
    let app = &job.app;
    rule_flow::delete_job(app, info, |vpc_id, g| common::push_lb_rules(app, vpc_id, g)).await
});

/// Whether a rule matches listLoadBalancerRules' `name`, `keyword` and
/// `virtualmachineid` filters.
async fn matches(
    db: &Db,
    r: &rule::Rule,
    name: Option<&str>,
    keyword: Option<&str>,
    vm_id: Option<i64>,
) -> Result<bool, Error> {
    let lb_name = rule::load_balancer(db, r.id)
        .await?
        .map(|l| l.name)
        .unwrap_or_default();
    if name.is_some_and(|n| n != lb_name) {
        return Ok(false);
    }
    if keyword.is_some_and(|k| !lb_name.to_lowercase().contains(&k.to_lowercase())) {
        return Ok(false);
    }
    if let Some(vm_id) = vm_id {
        let members = rule::members_with_vms(db, r.id).await?;
        if !members.iter().any(|m| m.vm_id == Some(vm_id)) {
            return Ok(false);
        }
    }
    Ok(true)
}

handler!(list_lb, |ctx, params| {
    let db = &ctx.app.db;
    let filter = rule_filter(ctx, params, rule::PURPOSE_LOAD_BALANCING, "publicipid").await?;
    if let Some(id) = params.uuid("zoneid")? {
        let id = id.to_string();
        crate::store::zone::get_by_uuid(db, &id)
            .await?
            .ok_or_else(|| Error::invalid_id("zoneid", &id))?;
    }
    let vm_id = match params.uuid("virtualmachineid")? {
        Some(id) => Some(
            vm::get_by_uuid(db, &id.to_string())
                .await?
                .ok_or_else(|| Error::invalid_id("virtualmachineid", &id.to_string()))?
                .id,
        ),
        None => None,
    };
    let name = params.string("name")?.filter(|n| !n.is_empty());
    let keyword = params.string("keyword")?.filter(|k| !k.is_empty());
    let page = page(ctx, params).await?;
    let in_memory = name.is_some() || keyword.is_some() || vm_id.is_some();
    let listed = rule::list(db, &filter, if in_memory { Page::ALL } else { page }).await?;
    let mut rows = Vec::new();
    for r in listed.items {
        if !in_memory || matches(db, &r, name.as_deref(), keyword.as_deref(), vm_id).await? {
            rows.push(r);
        }
    }
    let (count, rows) = counted_page(rows, listed.total, in_memory, page);
    let mut names = Names::default();
    names
        .preload(
            db,
            Wanted {
                ips: rows.iter().map(|r| r.ip_address_id).collect(),
                networks: rows.iter().map(|r| r.network_id).collect(),
                accounts: rows.iter().map(|r| r.account_id).collect(),
                domains: rows.iter().map(|r| r.domain_id).collect(),
                load_balancers: rows.iter().map(|r| r.id).collect(),
                ..Wanted::default()
            },
        )
        .await?;
    let mut items = Vec::new();
    for r in &rows {
        items.push(lb_view(db, &mut names, r).await?);
    }
    Ok(Reply::List { count, items })
});

/// The load balancer rule commands.
pub(super) fn commands() -> Vec<CommandSpec> {
    let mut list = vec![
        opt("id", Uuid, "the ID of the rule"),
        opt("name", String, "only the rule with this name"),
        opt("publicipid", Uuid, "only rules on this public IP address"),
        opt("networkid", Uuid, "only rules of this tier"),
        opt("virtualmachineid", Uuid, "only rules balancing to this VM"),
        opt("zoneid", Uuid, "only rules in this zone"),
        opt("fordisplay", Boolean, "accepted; rules are always shown"),
    ];
    list.extend(list_params());
    vec![
        CommandSpec {
            name: "createLoadBalancerRule",
            description: "Creates a public load balancer rule on a VPC public IP address",
            kind: Kind::AsyncCreate,
            roles: ALL,
            params: vec![
                req("name", String, "the name of the rule"),
                req(
                    "algorithm",
                    String,
                    "roundrobin or source (leastconn is not supported by the VPC virtual \
                     router)",
                ),
                req("privateport", Integer, "the port on the VMs"),
                req("publicport", Integer, "the public port"),
                opt(
                    "publicipid",
                    Uuid,
                    "the public IP address (required for VPC addresses)",
                ),
                opt(
                    "networkid",
                    Uuid,
                    "the tier of the VMs; needed when the address is bound to no tier yet",
                ),
                opt("protocol", String, "tcp (default) or udp"),
                opt(
                    "cidrlist",
                    List,
                    "source CIDRs balanced (default: everyone)",
                ),
                opt("description", String, "accepted; not stored"),
                opt(
                    "openfirewall",
                    Boolean,
                    "must be false or absent: VPC addresses have no firewall",
                ),
                opt("zoneid", Uuid, "accepted; the zone of the address is used"),
                opt(
                    "account",
                    String,
                    "accepted; the address's owner owns the rule",
                ),
                opt(
                    "domainid",
                    Uuid,
                    "accepted; the address's owner owns the rule",
                ),
                opt("fordisplay", Boolean, "accepted; rules are always shown"),
            ],
            object: "loadbalancer",
            response: lb_fields(),
            since: "",
            handler: create_lb,
            job: None,
        },
        CommandSpec {
            name: "updateLoadBalancerRule",
            description: "Changes the name or algorithm of a load balancer rule",
            kind: Kind::Async,
            roles: ALL,
            params: vec![
                req("id", Uuid, "the ID of the rule"),
                opt("name", String, "the new name"),
                opt("algorithm", String, "roundrobin or source"),
                opt("description", String, "accepted; not stored"),
                opt("fordisplay", Boolean, "accepted; rules are always shown"),
                opt("customid", String, "accepted; ids cannot be changed"),
            ],
            object: "loadbalancer",
            response: lb_fields(),
            since: "",
            handler: update_lb,
            job: None,
        },
        CommandSpec {
            name: "deleteLoadBalancerRule",
            description: "Deletes a load balancer rule",
            kind: Kind::Async,
            roles: ALL,
            params: vec![req("id", Uuid, "the ID of the rule")],
            object: "loadbalancer",
            response: vec![],
            since: "",
            handler: delete_lb,
            job: None,
        },
        CommandSpec {
            name: "listLoadBalancerRules",
            description: "Lists load balancer rules",
            kind: Kind::Sync,
            roles: ALL,
            params: list,
            object: "loadbalancerrule",
            response: lb_fields(),
            since: "",
            handler: list_lb,
            job: None,
        },
    ]
}

/// The job bodies of the load balancer rule commands.
pub(super) fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("createLoadBalancerRule", create_lb_job),
        ("updateLoadBalancerRule", update_lb_job),
        ("deleteLoadBalancerRule", delete_lb_job),
    ]
}
