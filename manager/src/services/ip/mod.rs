//! Public IPs of VPCs (reference §2.5, §3.5): `associateIpAddress` acquires
//! an address for a VPC (the VPC's first becomes its source-NAT address) and
//! associates it on the router; `disassociateIpAddress` withdraws its rules
//! and gives it back; `listPublicIpAddresses`.
//!
//! An address belongs to the VPC, not to a tier, until its first port
//! forwarding, static NAT or load balancing rule binds it to one (see
//! [`common::rule_tier`]); it is unbound when its last rule goes.

pub mod common;
pub mod names;
pub mod rule_flow;
pub mod views;

use serde_json::json;

use crate::api::Params;
use crate::error::Error;
use crate::provision;
use crate::rules;
use crate::server::jobs::{JobBody, JobCtx};
use crate::server::registry::{ALL, CommandSpec, Kind, ParamType::*, opt};
use crate::server::{Ctx, Reply, page, page_of};
use crate::services::owner::{check_access, list_params, list_scope, owner, owner_params};
use crate::store::{Page, network, vlan, vpc, zone};
use crate::{handler, job_body};

use common::{Had, Names, Wanted, held_ip, live_rules_on_ip, vpc_sync};
use views::{ip_fields, ip_view};

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let mut associate_params = vec![
        opt(
            "vpcid",
            Uuid,
            "the VPC to acquire the address for; its first address becomes its source NAT address",
        ),
        opt(
            "networkid",
            Uuid,
            "a VPC tier: the address is acquired for the tier's VPC and bound to the tier",
        ),
        opt("zoneid", Uuid, "the zone; must be the VPC's"),
        opt(
            "ipaddress",
            String,
            "a specific free address of the zone to acquire",
        ),
        opt(
            "isportable",
            Boolean,
            "accepted; portable addresses are not supported",
        ),
        opt("regionid", Integer, "accepted; regions are not supported"),
        opt(
            "fordisplay",
            Boolean,
            "accepted; addresses are always shown",
        ),
    ];
    associate_params.extend(owner_params());
    let mut list = vec![
        opt("id", Uuid, "the ID of the address"),
        opt("ipaddress", String, "only this address"),
        opt("vpcid", Uuid, "only addresses of this VPC"),
        opt(
            "associatednetworkid",
            Uuid,
            "only addresses bound to this tier",
        ),
        opt(
            "networkid",
            Uuid,
            "only addresses bound to this tier (same as associatednetworkid)",
        ),
        opt("zoneid", Uuid, "only addresses of this zone"),
        opt("issourcenat", Boolean, "only (non-)source-NAT addresses"),
        opt(
            "isstaticnat",
            Boolean,
            "only addresses with (without) static NAT",
        ),
        opt(
            "allocatedonly",
            Boolean,
            "false: also the zone's free addresses (default true)",
        ),
        opt("state", String, "only addresses in this state"),
        opt(
            "forvirtualnetwork",
            Boolean,
            "true (all addresses serve virtual networks); false lists nothing",
        ),
        opt("vlanid", Uuid, "only addresses of this public IP range"),
        opt(
            "forloadbalancing",
            Boolean,
            "accepted for compatibility; not used",
        ),
        opt(
            "physicalnetworkid",
            Uuid,
            "accepted for compatibility; not used",
        ),
    ];
    list.extend(list_params());
    vec![
        CommandSpec {
            name: "associateIpAddress",
            description: "Acquires a public IP address for a VPC",
            kind: Kind::AsyncCreate,
            roles: ALL,
            params: associate_params,
            object: "ipaddress",
            response: ip_fields(),
            since: "",
            handler: associate_ip,
            job: None,
        },
        CommandSpec {
            name: "disassociateIpAddress",
            description: "Releases a public IP address: its rules are removed and the router \
                          gives it up",
            kind: Kind::Async,
            roles: ALL,
            params: vec![
                opt("id", Uuid, "the ID of the address (or ipaddress)"),
                opt("ipaddress", String, "the address itself (or id)"),
            ],
            object: "ipaddress",
            response: vec![],
            since: "",
            handler: disassociate_ip,
            job: None,
        },
        CommandSpec {
            name: "listPublicIpAddresses",
            description: "Lists public IP addresses",
            kind: Kind::Sync,
            roles: ALL,
            params: list,
            object: "publicipaddress",
            response: ip_fields(),
            since: "",
            handler: list_ips,
            job: None,
        },
    ]
}

/// The job body of every async command of this module.
pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("associateIpAddress", associate_ip_job),
        ("disassociateIpAddress", disassociate_ip_job),
    ]
}

/// A live VPC by UUID that the caller may use.
async fn vpc_by_uuid(ctx: &Ctx, name: &str, uuid: &str) -> Result<vpc::Vpc, Error> {
    let v = vpc::get_by_uuid(&ctx.app.db, uuid)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid_id(name, uuid))?;
    check_access(
        ctx,
        v.account_id,
        &v.domain_path,
        &format!("VPC {}", v.uuid),
    )?;
    Ok(v)
}

/// The VPC (and tier) an address is acquired for, from `vpcid`/`networkid`.
async fn target_of(
    ctx: &Ctx,
    params: &Params,
) -> Result<(vpc::Vpc, Option<network::Network>), Error> {
    let tier = common::tier_param(ctx, params, "networkid").await?;
    let asked = match params.uuid("vpcid")? {
        Some(id) => Some(vpc_by_uuid(ctx, "vpcid", &id.to_string()).await?),
        None => None,
    };
    let v = match (&tier, asked) {
        (Some(t), asked) => {
            let vpc_id = t.vpc_id.ok_or_else(|| {
                Error::invalid(format!(
                    "Network {} is not a VPC tier; only VPC networks exist here",
                    t.uuid
                ))
            })?;
            let v = vpc::get_by_id(&ctx.app.db, vpc_id)
                .await?
                .filter(|v| v.removed.is_none())
                .ok_or_else(|| Error::invalid("The VPC of the network is gone"))?;
            if let Some(asked) = asked
                && asked.id != v.id
            {
                return Err(Error::invalid(format!(
                    "Network {} is a tier of VPC {}, not of vpcid {}",
                    t.uuid, v.uuid, asked.uuid
                )));
            }
            v
        }
        (None, Some(v)) => v,
        (None, None) => {
            return Err(Error::invalid(
                "vpcid is required to acquire a public ip address (or networkid of a VPC tier): \
                 addresses are acquired for VPCs",
            ));
        }
    };
    Ok((v, tier))
}

/// 533 (InsufficientAddressCapacityException) when no address is free.
fn no_free_address(zone: &str, asked: Option<std::net::Ipv4Addr>) -> Error {
    match asked {
        Some(a) => Error::invalid(format!(
            "ip address {a} is not a free public address of zone {zone}"
        )),
        None => Error::insufficient(
            crate::error::Capacity::PublicAddress,
            format!("Insufficient address capacity: no free public ip address in zone {zone}"),
        ),
    }
}

handler!(associate_ip, |ctx, params| {
    let db = &ctx.app.db;
    let (v, tier) = target_of(ctx, params).await?;
    common::check_enabled(&v)?;
    if let Some(zone_id) = params.uuid("zoneid")? {
        let z = zone::get_by_uuid(db, &zone_id.to_string())
            .await?
            .filter(|z| z.removed.is_none())
            .ok_or_else(|| Error::invalid_id("zoneid", &zone_id.to_string()))?;
        if z.id != v.zone_id {
            return Err(Error::invalid(format!(
                "VPC {} is in another zone than zoneid {}",
                v.uuid, z.uuid
            )));
        }
    }
    // The address belongs to the VPC's owner; `account`/`domainid` may only
    // name that owner.
    if params.string("account")?.is_some_and(|a| !a.is_empty()) {
        let asked = owner(ctx, params).await?;
        if asked.account_id != v.account_id {
            return Err(Error::invalid(format!(
                "VPC {} belongs to another account than {}; addresses of a VPC belong to its owner",
                v.uuid, asked.account_name
            )));
        }
    }
    let asked = params
        .string("ipaddress")?
        .filter(|a| !a.is_empty())
        .map(|a| rules::parse_ipv4("ipaddress", &a))
        .transpose()?;
    let zone_uuid = zone::get_by_id(db, v.zone_id)
        .await?
        .map(|z| z.uuid)
        .unwrap_or_default();

    let _guard = ctx.app.network.lock_vpc(v.id).await;
    // §3.5: the VPC's first address becomes its source NAT address.
    let source_nat = v.source_nat_ip_id.is_none();
    let mut tx = db.begin().await?;
    crate::services::owner::check_limit(&mut tx, v.account_id, "public_ip", 1).await?;
    let ip = vlan::allocate_ip(
        &mut tx,
        v.zone_id,
        asked,
        vlan::IpOwner {
            account_id: v.account_id,
            domain_id: v.domain_id,
            vpc_id: Some(v.id),
            source_nat,
        },
    )
    .await?
    .ok_or_else(|| no_free_address(&zone_uuid, asked))?;
    if source_nat {
        vpc::set_source_nat_ip(&mut tx, v.id, Some(ip.id)).await?;
    }
    if let Some(t) = &tier {
        vlan::set_association(&mut tx, ip.id, Some(t.id), false).await?;
    }
    tx.commit().await?;
    drop(_guard);

    let submitted = ctx
        .submit_job(
            json!({ "ip": ip.id, "vpc": v.id, "sourcenat": source_nat }),
            Some(("IpAddress", &ip.uuid)),
            vpc_sync(v.id),
        )
        .await;
    let job_id = match submitted {
        Ok(job_id) => job_id,
        Err(e) => {
            give_back(db, ip.id, v.id, source_nat).await;
            return Err(e);
        }
    };
    Ok(Reply::Created {
        id: ip.uuid,
        job_id,
    })
});

/// Undoes an acquisition (best effort: the caller reports the first error).
async fn give_back(db: &crate::store::Db, ip_id: i64, vpc_id: i64, source_nat: bool) {
    if let Err(e) = vlan::release_ip(db, ip_id).await {
        tracing::error!(error = %e, "giving back a public ip address failed");
    }
    if source_nat && let Err(e) = vpc::set_source_nat_ip(db, vpc_id, None).await {
        tracing::error!(error = %e, "clearing a VPC's source nat address failed");
    }
}

job_body!(associate_ip_job, |job, info| {
    let app = &job.app;
    let ip_id = info["ip"].as_i64().unwrap_or_default();
    let vpc_id = info["vpc"].as_i64().unwrap_or_default();
    let _guard = app.network.lock_vpc(vpc_id).await;
    let ip = common::reload_ip(&app.db, ip_id).await?;
    let g = common::bump(&app.db, vpc_id).await?;
    if let Err(e) = common::push_ip(app, vpc_id, &ip.uuid, g).await {
        // The router did not take the address: it goes back to the pool.
        give_back(
            &app.db,
            ip.id,
            vpc_id,
            info["sourcenat"].as_bool().unwrap_or(false),
        )
        .await;
        return Err(e);
    }
    let ip = common::reload_ip(&app.db, ip_id).await?;
    let view = ip_view(&app.db, &job.caller, &mut Names::default(), &ip).await?;
    Ok(json!({ "ipaddress": view }))
});

/// The held address named by `id` or `ipaddress` (exactly one).
async fn address_param(ctx: &Ctx, params: &Params) -> Result<vlan::PublicIp, Error> {
    let id = params.uuid("id")?;
    let address = params.string("ipaddress")?.filter(|a| !a.is_empty());
    match (id, address) {
        (Some(id), None) => held_ip(ctx, "id", &id.to_string()).await,
        (None, Some(address)) => {
            rules::parse_ipv4("ipaddress", &address)?;
            let found = vlan::list_ips(
                &ctx.app.db,
                &vlan::PublicIpFilter {
                    address: Some(address.trim().to_string()),
                    held_only: true,
                    ..Default::default()
                },
                Page::ALL,
            )
            .await?
            .items
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::invalid(format!("ip address {address} is not an acquired address"))
            })?;
            common::check_ip_access(ctx, &found).await?;
            Ok(found)
        }
        (Some(_), Some(_)) => Err(Error::invalid(
            "id and ipaddress are mutually exclusive: give one of them",
        )),
        (None, None) => Err(Error::invalid(
            "Either id or ipaddress must be given to release an ip address",
        )),
    }
}

/// §3.5: the source NAT address stays while its VPC exists.
async fn check_releasable(db: &crate::store::Db, ip: &vlan::PublicIp) -> Result<(), Error> {
    let vpc_exists = match ip.vpc_id {
        Some(id) => vpc::get_by_id(db, id)
            .await?
            .is_some_and(|v| v.removed.is_none()),
        None => false,
    };
    rules::ip::check_release(&common::rules_ip(ip)?, vpc_exists)
}

handler!(disassociate_ip, |ctx, params| {
    let ip = address_param(ctx, params).await?;
    check_releasable(&ctx.app.db, &ip).await?;
    let sync = match ip.vpc_id {
        Some(id) => vpc_sync(id),
        None => format!("ipaddress:{}", ip.id),
    };
    let job_id = ctx
        .submit_job(json!({ "ip": ip.id }), Some(("IpAddress", &ip.uuid)), sync)
        .await?;
    Ok(Reply::Job { job_id })
});

/// Releasing: the address's rules go and it turns Releasing (off the router's
/// state, and never handed out) in one transaction; the router drops the
/// rules and the address; then it is Free. When the router fails, the
/// address stays Releasing and a new disassociateIpAddress finishes the job.
async fn release(job: &JobCtx, ip_id: i64) -> Result<(), Error> {
    let app = &job.app;
    let Some(ip) = vlan::ip_by_id(&app.db, ip_id)
        .await?
        .filter(|ip| ip.state != vlan::IP_FREE)
    else {
        return Ok(());
    };
    check_releasable(&app.db, &ip).await?;
    let Some(vpc_id) = ip.vpc_id else {
        vlan::release_ip(&app.db, ip.id).await?;
        return Ok(());
    };
    let rules_of_ip = live_rules_on_ip(&app.db, ip.id).await?;
    let had = Had {
        port_forwards: rules_of_ip
            .iter()
            .any(|r| r.purpose == crate::store::rule::PURPOSE_PORT_FORWARDING),
        load_balancers: rules_of_ip
            .iter()
            .any(|r| r.purpose == crate::store::rule::PURPOSE_LOAD_BALANCING),
        static_nat: ip.one_to_one_nat,
    };
    let mut tx = app.db.begin().await?;
    for r in &rules_of_ip {
        crate::store::rule::remove(&mut tx, r.id).await?;
    }
    vlan::set_ip_state(&mut tx, ip.id, vlan::IP_RELEASING).await?;
    let g = provision::bump(&mut tx, vpc_id).await?;
    tx.commit().await?;
    common::push_release(app, vpc_id, &ip, had, g).await?;
    vlan::release_ip(&app.db, ip.id).await?;
    Ok(())
}

job_body!(disassociate_ip_job, |job, info| {
    let ip_id = info["ip"].as_i64().unwrap_or_default();
    let vpc_id = vlan::ip_by_id(&job.app.db, ip_id)
        .await?
        .and_then(|ip| ip.vpc_id);
    let _guard = match vpc_id {
        Some(id) => Some(job.app.network.lock_vpc(id).await),
        None => None,
    };
    release(job, ip_id).await?;
    Ok(json!({ "success": true }))
});

handler!(list_ips, |ctx, params| {
    let db = &ctx.app.db;
    let scope = list_scope(ctx, params).await?;
    let page = page(ctx, params).await?;
    if params.boolean("forvirtualnetwork")? == Some(false) {
        return Ok(Reply::List {
            count: 0,
            items: vec![],
        });
    }
    let mut filter = vlan::PublicIpFilter {
        source_nat: params.boolean("issourcenat")?,
        one_to_one_nat: params.boolean("isstaticnat")?,
        state: params.string("state")?.filter(|s| !s.is_empty()),
        ..Default::default()
    };
    if let Some(id) = params.uuid("id")? {
        filter.uuid = Some(id.to_string());
    }
    if let Some(a) = params.string("ipaddress")?.filter(|a| !a.is_empty()) {
        filter.address = Some(a.trim().to_string());
    }
    if let Some(id) = params.uuid("vpcid")? {
        let id = id.to_string();
        let v = vpc::get_by_uuid(db, &id)
            .await?
            .ok_or_else(|| Error::invalid_id("vpcid", &id))?;
        check_access(
            ctx,
            v.account_id,
            &v.domain_path,
            &format!("VPC {}", v.uuid),
        )?;
        filter.vpc_id = Some(v.id);
    }
    for name in ["associatednetworkid", "networkid"] {
        if let Some(id) = params.uuid(name)? {
            let id = id.to_string();
            let n = network::get_by_uuid(db, &id)
                .await?
                .ok_or_else(|| Error::invalid_id(name, &id))?;
            check_access(
                ctx,
                n.account_id,
                &n.domain_path,
                &format!("network {}", n.uuid),
            )?;
            filter.associated_network_id = Some(n.id);
        }
    }
    if let Some(id) = params.uuid("zoneid")? {
        let id = id.to_string();
        let z = zone::get_by_uuid(db, &id)
            .await?
            .ok_or_else(|| Error::invalid_id("zoneid", &id))?;
        filter.zone_id = Some(z.id);
    }
    let vlan_range = match params.uuid("vlanid")? {
        Some(id) => {
            let id = id.to_string();
            Some(
                vlan::range_by_uuid(db, &id)
                    .await?
                    .ok_or_else(|| Error::invalid_id("vlanid", &id))?
                    .id,
            )
        }
        None => None,
    };
    filter.account_id = scope.account_id;
    filter.domain_id = scope.domain_id;
    filter.domain_path_prefix = scope.domain_path_prefix.clone();
    filter.held_only = true;
    // allocatedonly=false also shows the zone's free addresses, which nobody
    // owns, after the held ones the caller may see.
    let with_free = params.boolean("allocatedonly")? == Some(false);
    let (count, rows) = if with_free || vlan_range.is_some() {
        let mut rows = vlan::list_ips(db, &filter, Page::ALL).await?.items;
        if with_free {
            let free = vlan::PublicIpFilter {
                state: Some(vlan::IP_FREE.into()),
                account_id: None,
                domain_id: None,
                domain_path_prefix: None,
                held_only: false,
                ..filter.clone()
            };
            if filter.state.as_deref().is_none_or(|s| s == vlan::IP_FREE) {
                rows.extend(vlan::list_ips(db, &free, Page::ALL).await?.items);
            }
        }
        rows.retain(|ip| vlan_range.is_none_or(|r| r == ip.vlan_db_id));
        (rows.len() as u64, page_of(rows, page))
    } else {
        let listed = vlan::list_ips(db, &filter, page).await?;
        (listed.total as u64, listed.items)
    };
    let mut names = Names::default();
    names
        .preload(
            db,
            Wanted {
                accounts: rows.iter().filter_map(|ip| ip.account_id).collect(),
                domains: rows.iter().filter_map(|ip| ip.domain_id).collect(),
                zones: rows.iter().map(|ip| ip.zone_id).collect(),
                networks: rows
                    .iter()
                    .filter_map(|ip| ip.associated_network_id)
                    .collect(),
                vpcs: rows.iter().filter_map(|ip| ip.vpc_id).collect(),
                vms: rows.iter().filter_map(|ip| ip.vm_id).collect(),
                ranges: rows.iter().map(|ip| ip.vlan_db_id).collect(),
                rules_on_ips: rows
                    .iter()
                    .filter(|ip| !ip.one_to_one_nat)
                    .map(|ip| ip.id)
                    .collect(),
                ..Wanted::default()
            },
        )
        .await?;
    let mut items = Vec::new();
    for ip in &rows {
        items.push(ip_view(db, &ctx.caller, &mut names, ip).await?);
    }
    Ok(Reply::List { count, items })
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_pool_is_a_capacity_error_a_taken_address_a_parameter_error() {
        let e = crate::api::ApiError::from(no_free_address("z1", None));
        assert_eq!((e.code, e.cs_code), (533, 4320));
        assert!(
            e.text.contains("Insufficient address capacity"),
            "{}",
            e.text
        );
        let e =
            crate::api::ApiError::from(no_free_address("z1", Some("203.0.113.9".parse().unwrap())));
        assert_eq!(e.code, 431);
        assert!(e.text.contains("203.0.113.9 is not a free"), "{}", e.text);
    }

    #[test]
    fn pages_of_rows_filtered_in_memory() {
        let rows: Vec<u32> = (1..=5).collect();
        assert_eq!(page_of(rows.clone(), Page::new(2, 2)), [3, 4]);
        assert_eq!(page_of(rows.clone(), Page::new(3, 2)), [5]);
        assert_eq!(page_of(rows, Page::ALL).len(), 5);
    }
}
