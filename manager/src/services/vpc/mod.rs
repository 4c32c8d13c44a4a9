//! VPCs (CloudStack reference §2.3, §3.2, §3.3): `createVPC` (async-create:
//! the row now, the router and source-NAT address in the job), `updateVPC`,
//! `deleteVPC`, `restartVPC`, `listVPCs`; and the VPC routers (`router`).

mod router;
mod views;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde_json::json;

use crate::api::Params;
use crate::error::Error;
use crate::provision;
use crate::server::jobs::{JobBody, vpc_sync};
use crate::server::registry::{ALL, CommandSpec, FieldSpec, Kind, ParamType::*, field, opt, req};
use crate::server::{Ctx, Reply, counted_page, page};
use crate::services::offering::gives_all;
use crate::services::owner;
use crate::services::related::{Related, services_by_offering};
use crate::services::zone::required_zone;
use crate::store::{self, Db, Page, account, config, network, offering, vpc, zone};
use crate::{handler, job_body, rules};

pub use views::vpc_view;

fn vpc_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the VPC"),
        field("name", "string", "the name of the VPC"),
        field("displaytext", "string", "the description of the VPC"),
        field(
            "state",
            "string",
            "Enabled, or Inactive while it is deleted",
        ),
        field("zoneid", "string", "the zone of the VPC"),
        field("zonename", "string", "the name of the zone"),
        field("cidr", "string", "the super CIDR of the VPC's tiers"),
        field("vpcofferingid", "string", "the offering of the VPC"),
        field("vpcofferingname", "string", "the name of the offering"),
        field(
            "service",
            "list",
            "the services of the offering, with providers",
        ),
        field("network", "list", "the tiers of the VPC"),
        field(
            "restartrequired",
            "boolean",
            "whether the VPC needs a restart",
        ),
        field("networkdomain", "string", "the DNS domain of the tiers"),
        field("account", "string", "the owner account"),
        field("domainid", "string", "the owner's domain"),
        field("domain", "string", "the name of the owner's domain"),
        field("created", "date", "when the VPC was created"),
        field("publicmtu", "integer", "the MTU of the router's public NIC"),
        field("dns1", "string", "the first IPv4 DNS server of the VPC"),
        field("dns2", "string", "the second IPv4 DNS server of the VPC"),
    ]
}

/// `publicmtu` (createVPC, updateVPC): the MTU of the router's public NIC.
/// Its range depends on `vr.public.interface.max.mtu`, so the handler
/// checks it ([`rules::vpc::check_public_mtu`]); the registry checks the type.
fn public_mtu_param() -> crate::server::registry::ParamSpec {
    opt(
        "publicmtu",
        Integer,
        "MTU of the router's public NIC, 68 to vr.public.interface.max.mtu (default 1500)",
    )
}

/// `dns1`/`dns2` of createVPC: the upstream resolvers of the router's DNS
/// (also handed to VMs after the router), instead of the zone's.
fn dns_param(name: &'static str, description: &'static str) -> crate::server::registry::ParamSpec {
    opt(name, String, description)
}

/// The largest `publicmtu` (`vr.public.interface.max.mtu`).
async fn max_public_mtu(db: &Db) -> Result<i64, Error> {
    Ok(config::value_i64(db, "vr.public.interface.max.mtu")
        .await?
        .unwrap_or(vpc::DEFAULT_PUBLIC_MTU))
}

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let mut create_params = vec![
        req("name", String, "the name of the VPC"),
        req("zoneid", Uuid, "the zone of the VPC"),
        req("vpcofferingid", Uuid, "the VPC offering (Enabled)"),
        opt(
            "cidr",
            String,
            "the super CIDR of the VPC's tiers (RFC 1918 or 100.64.0.0/10)",
        ),
        opt(
            "cidrsize",
            Integer,
            "only for ROUTED offerings (not supported)",
        ),
        opt("displaytext", String, "the description; default the name"),
        opt("networkdomain", String, "the DNS domain of the tiers"),
        opt(
            "start",
            Boolean,
            "false: do not start the router now (default true)",
        ),
        public_mtu_param(),
        dns_param(
            "dns1",
            "the first IPv4 DNS server of the VPC (default the zone's dns1)",
        ),
        dns_param("dns2", "the second IPv4 DNS server of the VPC (needs dns1)"),
        opt(
            "sourcenatipaddress",
            String,
            "this free public address as the VPC's source NAT address",
        ),
        opt("fordisplay", Boolean, "accepted; every VPC is displayed"),
    ];
    create_params.extend(owner::owner_params());
    let mut list_params = vec![
        opt("id", Uuid, "the ID of the VPC"),
        opt("zoneid", Uuid, "only VPCs of this zone"),
        opt("name", String, "only VPCs of this name"),
        opt("displaytext", String, "only VPCs with this description"),
        opt("cidr", String, "only VPCs with this CIDR"),
        opt("vpcofferingid", Uuid, "only VPCs of this offering"),
        opt(
            "supportedservices",
            List,
            "only VPCs whose offering gives all these services",
        ),
        opt("state", String, "Enabled or Inactive"),
        opt(
            "restartrequired",
            Boolean,
            "only VPCs that need (or do not need) a restart",
        ),
        opt("fordisplay", Boolean, "accepted; every VPC is displayed"),
    ];
    list_params.extend(owner::list_params());
    let mut all = vec![
        CommandSpec {
            name: "createVPC",
            description: "Creates a VPC and starts its virtual router",
            kind: Kind::AsyncCreate,
            roles: ALL,
            params: create_params,
            object: "vpc",
            response: vpc_fields(),
            since: "",
            handler: create_vpc,
            job: None,
        },
        CommandSpec {
            name: "updateVPC",
            description: "Renames a VPC, changes its description, its source NAT address or its public MTU",
            kind: Kind::Async,
            roles: ALL,
            params: vec![
                req("id", Uuid, "the ID of the VPC"),
                opt("name", String, "the new name"),
                opt("displaytext", String, "the new description"),
                opt(
                    "sourcenatipaddress",
                    String,
                    "an address of the VPC to become its source NAT address (restarts the VPC)",
                ),
                public_mtu_param(),
                opt("fordisplay", Boolean, "accepted; every VPC is displayed"),
                opt("customid", String, "refused: ids are not changed")
                    .refused("an object's id is chosen by the manager and never changes"),
            ],
            object: "vpc",
            response: vpc_fields(),
            since: "",
            handler: update_vpc,
            job: None,
        },
        CommandSpec {
            name: "deleteVPC",
            description: "Deletes a VPC without tiers, with its router, addresses, gateways, routes and ACL lists",
            kind: Kind::Async,
            roles: ALL,
            params: vec![req("id", Uuid, "the ID of the VPC")],
            object: "vpc",
            response: vec![],
            since: "",
            handler: delete_vpc,
            job: None,
        },
        CommandSpec {
            name: "restartVPC",
            description: "Restarts a VPC: re-sends its whole configuration, or with cleanup replaces its router",
            kind: Kind::Async,
            roles: ALL,
            params: vec![
                req("id", Uuid, "the ID of the VPC"),
                opt(
                    "cleanup",
                    Boolean,
                    "true: start a new router, then destroy the old one",
                ),
                opt(
                    "makeredundant",
                    Boolean,
                    "accepted; redundant routers are not supported",
                ),
                opt(
                    "livepatch",
                    Boolean,
                    "accepted; the configuration is always re-sent",
                ),
            ],
            object: "vpc",
            response: vec![],
            since: "",
            handler: restart_vpc,
            job: None,
        },
        CommandSpec {
            name: "listVPCs",
            description: "Lists VPCs",
            kind: Kind::Sync,
            roles: ALL,
            params: list_params,
            object: "vpc",
            response: vpc_fields(),
            since: "",
            handler: list_vpcs,
            job: None,
        },
    ];
    all.extend(router::commands());
    all
}

/// The job body of every async command of this module.
pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    let mut bodies: Vec<(&'static str, JobBody)> = vec![
        ("createVPC", create_vpc_job),
        ("updateVPC", update_vpc_job),
        ("deleteVPC", delete_vpc_job),
        ("restartVPC", restart_vpc_job),
    ];
    bodies.extend(router::job_bodies());
    bodies
}

/// The live VPC named by parameter `name`, which the caller may act on.
pub async fn vpc_param(ctx: &Ctx, params: &Params, name: &str) -> Result<vpc::Vpc, Error> {
    let id = params.required_uuid(ctx.command, name)?.to_string();
    let v = vpc::get_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid_id(name, &id))?;
    owner::check_access(ctx, v.account_id, &v.domain_path, &format!("VPC {id}"))?;
    Ok(v)
}

async fn vpc_result(db: &Db, id: i64) -> Result<serde_json::Value, Error> {
    let v = vpc::get_by_id(db, id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid("The VPC was deleted meanwhile"))?;
    let related = Related::for_vpcs(db, std::slice::from_ref(&v), true).await?;
    Ok(json!({ "vpc": vpc_view(&related, &v, true) }))
}

handler!(create_vpc, |ctx, params| {
    let db = &ctx.app.db;
    // Every VPC service is the VPC virtual router's: without it no VPC works.
    if !ctx
        .app
        .network
        .plugins
        .element_enabled(crate::orchestration::VPC_VIRTUAL_ROUTER)
    {
        return Err(Error::invalid(
            "The VpcVirtualRouter network element is not enabled (network_elements in the \
             settings); no provider can serve a VPC",
        ));
    }
    let owner = owner::owner(ctx, params).await?;
    let settings = provision::rules_config(db).await?;
    let cidr = params.string("cidr")?;
    rules::vpc::check_cidr_or_size(
        cidr.as_deref(),
        params.long("cidrsize")?,
        false,
        ctx.caller.is_root_admin(),
    )?;
    let name = params.required_string(ctx.command, "name")?;
    let display_text = params.string("displaytext")?;
    let network_domain = params.string("networkdomain")?;
    let checked = rules::vpc::validate_new_vpc(
        &rules::vpc::NewVpc {
            name: &name,
            display_text: display_text.as_deref(),
            cidr: cidr.as_deref().unwrap_or_default(),
            network_domain: network_domain.as_deref(),
        },
        &settings,
    )?;
    let z = required_zone(ctx, params, "zoneid").await?;
    rules::vpc::check_zone_usable(
        &z.name,
        z.allocation_state == "Enabled",
        ctx.caller.is_root_admin(),
    )?;
    let offering_id = params
        .required_uuid(ctx.command, "vpcofferingid")?
        .to_string();
    let o = offering::vpc_offering_by_uuid(db, &offering_id)
        .await?
        .filter(|o| o.removed.is_none())
        .ok_or_else(|| Error::invalid_id("vpcofferingid", &offering_id))?;
    let state = if o.state == offering::STATE_ENABLED {
        rules::vpc::OfferingState::Enabled
    } else {
        rules::vpc::OfferingState::Disabled
    };
    rules::vpc::check_offering_enabled(&o.uuid, state)?;
    let services = offering::vpc_offering_services(db, o.id).await?;
    rules::vpc::check_dns(
        params.string("dns1")?.as_deref(),
        params.string("dns2")?.as_deref(),
        services.iter().any(|s| s.service == "Dns"),
    )?;
    let dns = |name: &str| -> Result<Option<std::string::String>, Error> {
        params
            .string(name)?
            .filter(|d| !d.trim().is_empty())
            .map(|d| rules::parse_ipv4(name, d.trim()).map(|a| a.to_string()))
            .transpose()
    };
    let (dns1, dns2) = (dns("dns1")?, dns("dns2")?);
    let max_mtu = max_public_mtu(db).await?;
    // Not given: CloudStack's 1500, within the zone's maximum.
    let public_mtu = match params.long("publicmtu")? {
        Some(mtu) => i64::from(rules::vpc::check_public_mtu(mtu, max_mtu)?),
        None => vpc::DEFAULT_PUBLIC_MTU.min(max_mtu),
    };
    let source_nat: Option<Ipv4Addr> = params
        .string("sourcenatipaddress")?
        .filter(|a| !a.is_empty())
        .map(|a| rules::parse_ipv4("sourcenatipaddress", &a))
        .transpose()?;
    let network_domain = match checked.network_domain {
        Some(d) => d,
        None => default_domain(db, owner.account_id).await?,
    };
    let start = params.boolean("start")?.unwrap_or(true);

    let mut tx = db.begin().await?;
    owner::check_limit(&mut tx, owner.account_id, "vpc", 1).await?;
    let created = vpc::create(
        &mut tx,
        vpc::NewVpc {
            name: checked.name,
            display_text: checked.display_text,
            zone_id: z.id,
            cidr: checked.cidr.to_string(),
            account_id: owner.account_id,
            domain_id: owner.domain_id,
            vpc_offering_id: o.id,
            network_domain: Some(network_domain),
        },
    )
    .await?;
    if dns1.is_some() {
        vpc::set_dns(&mut tx, created.id, dns1.as_deref(), dns2.as_deref()).await?;
    }
    if public_mtu != created.public_mtu {
        vpc::set_public_mtu(&mut tx, created.id, public_mtu).await?;
    }
    provision::vpc::ensure_router(&mut tx, &created).await?;
    tx.commit().await?;
    let submitted = ctx
        .submit_job(
            json!({
                "id": created.id,
                "start": start,
                "sourcenatipaddress": source_nat.map(|a| a.to_string()),
            }),
            Some(("Vpc", &created.uuid)),
            vpc_sync(created.id),
        )
        .await;
    let job_id = match submitted {
        Ok(job_id) => job_id,
        Err(e) => {
            if let Err(undo) = provision::vpc::destroy_vpc(db, &ctx.app.network, created.id).await {
                tracing::error!(error = %undo, "removing a VPC whose job could not be submitted");
            }
            return Err(e);
        }
    };
    Ok(Reply::Created {
        id: created.uuid,
        job_id,
    })
});

/// The account's network domain, else `cs<hex id>.<guest.domain.suffix>`.
async fn default_domain(db: &Db, account_id: i64) -> Result<std::string::String, Error> {
    if let Some(d) = account::get_by_id(db, account_id)
        .await?
        .and_then(|a| a.network_domain)
        .filter(|d| !d.is_empty())
    {
        return Ok(d);
    }
    let suffix = config::value(db, "guest.domain.suffix")
        .await?
        .unwrap_or_else(|| "cloud.internal".into());
    Ok(rules::vpc::default_network_domain(
        u64::try_from(account_id).unwrap_or_default(),
        &suffix,
    ))
}

job_body!(create_vpc_job, |job, info| {
    let app = &job.app;
    let id = info["id"].as_i64().unwrap_or_default();
    let source_nat = info["sourcenatipaddress"]
        .as_str()
        .and_then(|a| a.parse().ok());
    let _guard = app.network.lock_vpc(id).await;
    let started = if info["start"].as_bool().unwrap_or(true) {
        provision::vpc::start_vpc(&app.db, &app.network, id, source_nat).await
    } else {
        Ok(())
    };
    if let Err(e) = started {
        // CloudStack destroys a VPC whose start failed.
        if let Err(undo) = provision::vpc::destroy_vpc(&app.db, &app.network, id).await {
            tracing::error!(error = %undo, "destroying a VPC whose start failed");
        }
        return Err(e);
    }
    vpc_result(&app.db, id).await
});

handler!(update_vpc, |ctx, params| {
    let v = vpc_param(ctx, params, "id").await?;
    let name = params.string("name")?.filter(|n| !n.is_empty());
    if let Some(n) = &name {
        rules::check_name("name", n)?;
    }
    let display_text = params.string("displaytext")?.filter(|t| !t.is_empty());
    if let Some(t) = &display_text {
        rules::check_length("displaytext", t, rules::MAX_DISPLAY_TEXT_LEN)?;
    }
    let source_nat = params
        .string("sourcenatipaddress")?
        .filter(|a| !a.is_empty())
        .map(|a| rules::parse_ipv4("sourcenatipaddress", &a))
        .transpose()?;
    let new_source_nat = match source_nat {
        None => None,
        Some(address) => {
            let ip = store::vlan::list_ips(
                &ctx.app.db,
                &store::vlan::PublicIpFilter {
                    vpc_id: Some(v.id),
                    address: Some(address.to_string()),
                    state: Some(store::vlan::IP_ALLOCATED.into()),
                    ..Default::default()
                },
                Page::ALL,
            )
            .await?
            .items
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{address} is not a public address acquired for VPC {}",
                    v.uuid
                ))
            })?;
            if ip.one_to_one_nat || ip.associated_network_id.is_some() {
                return Err(Error::invalid(format!(
                    "{address} is in use by static NAT or rules and cannot become the source NAT address"
                )));
            }
            Some(ip.id)
        }
    };
    let public_mtu = match params.long("publicmtu")? {
        Some(mtu) => Some(rules::vpc::check_public_mtu(
            mtu,
            max_public_mtu(&ctx.app.db).await?,
        )?),
        None => None,
    };
    let job_id = ctx
        .submit_job(
            json!({
                "id": v.id,
                "name": name,
                "displaytext": display_text,
                "sourcenat": new_source_nat,
                "publicmtu": public_mtu,
            }),
            Some(("Vpc", &v.uuid)),
            vpc_sync(v.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(update_vpc_job, |job, info| {
    let app = &job.app;
    let id = info["id"].as_i64().unwrap_or_default();
    let _guard = app.network.lock_vpc(id).await;
    if !vpc::update(
        &app.db,
        id,
        info["name"].as_str(),
        info["displaytext"].as_str(),
    )
    .await?
    {
        return Err(Error::invalid("The VPC was deleted meanwhile"));
    }
    if let Some(mtu) = info["publicmtu"].as_i64() {
        set_public_mtu(app, id, mtu).await?;
    }
    if let Some(ip) = info["sourcenat"].as_i64() {
        let mut tx = app.db.begin().await?;
        store::vlan::set_source_nat(&mut tx, id, ip).await?;
        vpc::set_source_nat_ip(&mut tx, id, Some(ip)).await?;
        tx.commit().await?;
        // A new source NAT address means a new router (CloudStack restarts
        // the VPC with cleanup).
        provision::vpc::restart_vpc(&app.db, &app.network, id, true).await?;
    }
    vpc_result(&app.db, id).await
});

/// updateVPC `publicmtu`, through the change protocol: the row and the
/// router's generation in one transaction, then the public NIC to the
/// router; if the router refuses, the old MTU is put back and the job fails.
/// The caller holds the VPC's lock.
async fn set_public_mtu(app: &crate::server::context::App, id: i64, mtu: i64) -> Result<(), Error> {
    let db = &app.db;
    let Some(v) = vpc::get_by_id(db, id)
        .await?
        .filter(|v| v.removed.is_none())
    else {
        return Err(Error::invalid("The VPC was deleted meanwhile"));
    };
    // CloudStack leaves an MTU that is already in place alone.
    if v.public_mtu == mtu {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    vpc::set_public_mtu(&mut tx, id, mtu).await?;
    let generation = provision::bump(&mut tx, id).await?;
    tx.commit().await?;
    let pushed = provision::push(db, &app.network, id, generation, |element, state, g| {
        Box::pin(element.apply_public_nic(state, g))
    })
    .await;
    if let Err(e) = pushed {
        provision::log_revert(
            "the public MTU",
            vpc::set_public_mtu(db, id, v.public_mtu).await,
        );
        return Err(e);
    }
    Ok(())
}

handler!(delete_vpc, |ctx, params| {
    let v = vpc_param(ctx, params, "id").await?;
    let job_id = ctx
        .submit_job(
            json!({ "id": v.id }),
            Some(("Vpc", &v.uuid)),
            vpc_sync(v.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(delete_vpc_job, |job, info| {
    let app = &job.app;
    let id = info["id"].as_i64().unwrap_or_default();
    let _guard = app.network.lock_vpc(id).await;
    let Some(v) = vpc::get_by_id(&app.db, id)
        .await?
        .filter(|v| v.removed.is_none())
    else {
        return Ok(json!({ "success": true }));
    };
    // Counted in the job: tiers created while it waited count too.
    let tiers = network::count_tiers(&app.db, id).await?;
    rules::vpc::check_vpc_deletable(&v.uuid, usize::try_from(tiers).unwrap_or(usize::MAX))?;
    vpc::set_state(&app.db, id, vpc::STATE_INACTIVE).await?;
    provision::vpc::destroy_vpc(&app.db, &app.network, id)
        .await
        .map_err(|e| {
            Error::internal(format!(
                "VPC {} is Inactive; its cleanup failed and is retried every vpc.cleanup.interval: {}",
                v.uuid, e.text()
            ))
        })?;
    Ok(json!({ "success": true }))
});

handler!(restart_vpc, |ctx, params| {
    let v = vpc_param(ctx, params, "id").await?;
    let state = if v.state == vpc::STATE_ENABLED {
        rules::vpc::VpcState::Enabled
    } else {
        rules::vpc::VpcState::Inactive
    };
    rules::vpc::check_vpc_enabled(&v.uuid, state)?;
    if params.boolean("makeredundant")? == Some(true) {
        return Err(Error::invalid(
            "Redundant VPC routers are not supported; restart without makeredundant",
        ));
    }
    let job_id = ctx
        .submit_job(
            json!({ "id": v.id, "cleanup": params.boolean("cleanup")?.unwrap_or(false) }),
            Some(("Vpc", &v.uuid)),
            vpc_sync(v.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(restart_vpc_job, |job, info| {
    let app = &job.app;
    let id = info["id"].as_i64().unwrap_or_default();
    let _guard = app.network.lock_vpc(id).await;
    provision::vpc::restart_vpc(
        &app.db,
        &app.network,
        id,
        info["cleanup"].as_bool().unwrap_or(false),
    )
    .await?;
    Ok(json!({ "success": true }))
});

handler!(list_vpcs, |ctx, params| {
    let db = &ctx.app.db;
    let scope = owner::list_scope(ctx, params).await?;
    let zone_id = match params.uuid("zoneid")? {
        Some(z) => match zone::get_by_uuid(db, &z.to_string()).await? {
            Some(z) => Some(z.id),
            None => {
                return Ok(Reply::List {
                    count: 0,
                    items: vec![],
                });
            }
        },
        None => None,
    };
    let offering_id = match params.uuid("vpcofferingid")? {
        Some(o) => match offering::vpc_offering_by_uuid(db, &o.to_string()).await? {
            Some(o) => Some(o.id),
            None => {
                return Ok(Reply::List {
                    count: 0,
                    items: vec![],
                });
            }
        },
        None => None,
    };
    let filter = vpc::VpcFilter {
        uuids: params.uuid("id")?.map(|u| vec![u.to_string()]),
        name: params.string("name")?.filter(|n| !n.is_empty()),
        keyword: params.string("keyword")?.filter(|k| !k.is_empty()),
        zone_id,
        account_id: scope.account_id,
        domain_id: scope.domain_id,
        domain_path_prefix: scope.domain_path_prefix,
        state: params.string("state")?.filter(|s| !s.is_empty()),
        vpc_offering_id: offering_id,
        restart_required: params.boolean("restartrequired")?,
        ..Default::default()
    };
    let display_text = params.string("displaytext")?.filter(|t| !t.is_empty());
    let cidr = params.string("cidr")?.filter(|c| !c.is_empty());
    let wanted = params.list("supportedservices")?;
    let in_memory = display_text.is_some() || cidr.is_some() || wanted.is_some();
    let page = page(ctx, params).await?;
    let listed = vpc::list(db, &filter, if in_memory { Page::ALL } else { page }).await?;
    // The services of every offering the rows use, in one statement, for
    // the `supportedservices` filter.
    let offered = match &wanted {
        Some(_) => {
            let ids: Vec<i64> = listed.items.iter().map(|v| v.vpc_offering_id).collect();
            services_by_offering(offering::vpc_offerings_services(db, &ids).await?)
        }
        None => HashMap::new(),
    };
    let mut rows = Vec::new();
    for v in listed.items {
        if display_text.as_ref().is_some_and(|t| *t != v.display_text)
            || cidr.as_ref().is_some_and(|c| *c != v.cidr)
        {
            continue;
        }
        if let Some(wanted) = &wanted {
            let services = offered
                .get(&v.vpc_offering_id)
                .map_or(&[][..], Vec::as_slice);
            if !gives_all(services, wanted) {
                continue;
            }
        }
        rows.push(v);
    }
    let (count, rows) = counted_page(rows, listed.total, in_memory, page);
    let related = Related::for_vpcs(db, &rows, true).await?;
    let items = rows.iter().map(|v| vpc_view(&related, v, true)).collect();
    Ok(Reply::List { count, items })
});
