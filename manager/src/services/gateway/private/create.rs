//! createPrivateGateway: the checks of a new gateway and its rows, stored
//! during the request; the job that plugs its NIC on the router (or removes
//! the rows again when the router refuses).

use ipnet::Ipv4Net;
use serde_json::json;
use uuid::Uuid;

use super::super::{log_revert, vpc_by_id, vpc_param, vpc_sync};
use super::{gateway_uuid, gateway_view, job_gateway, remove_rows, subnet_of, vlan_form};
use crate::api::Params;
use crate::error::Error;
use crate::orchestration::guru::NetworkSpec;
use crate::orchestration::{IsolationMethod, NetworkTraffic, RouterDriver, VpcProvider, wire};
use crate::provision::{self, state};
use crate::rules::{self, gateway as rule};
use crate::server::jobs::JobBody;
use crate::server::registry::Handler;
use crate::server::{App, Ctx, Reply};
use crate::services::related::Related;
use crate::store::{self, Db, Page, acl, gateway, network, router, vnet, vpc, zone};
use crate::{handler, job_body};

pub(super) const CREATE_GATEWAY: Handler = create_gateway;
pub(super) const CREATE_GATEWAY_JOB: JobBody = create_gateway_job;

/// The ACL list of a new gateway: `aclid`, which must be of the VPC or a
/// default list (431), or `default_deny`.
async fn acl_of_new_gateway(db: &Db, params: &Params, v: &vpc::Vpc) -> Result<acl::AclList, Error> {
    let Some(id) = params.uuid("aclid")? else {
        return acl::get_by_id(db, acl::DEFAULT_DENY_ID)
            .await?
            .ok_or_else(|| Error::internal("the default_deny ACL list is missing"));
    };
    let id = id.to_string();
    let list = acl::get_by_uuid(db, &id)
        .await?
        .filter(|l| l.removed.is_none())
        .ok_or_else(|| Error::invalid_id("aclid", &id))?;
    let list_vpc = match list.vpc_id {
        Some(vid) => Some(vpc_by_id(db, vid).await?.uuid),
        None => None,
    };
    rules::acl::check_list_in_vpc(&list.name, list_vpc.as_ref(), &v.uuid)?;
    Ok(list)
}

/// The physical network of a new gateway: `physicalnetworkid` (in the VPC's
/// zone), or the zone's only physical network carrying guest traffic.
async fn physical_network(
    db: &Db,
    params: &Params,
    v: &vpc::Vpc,
) -> Result<zone::PhysicalNetwork, Error> {
    if let Some(id) = params.uuid("physicalnetworkid")? {
        let id = id.to_string();
        return zone::physical_network_by_uuid(db, &id)
            .await?
            .filter(|p| p.removed.is_none() && p.zone_id == v.zone_id)
            .ok_or_else(|| Error::invalid_id("physicalnetworkid", &id));
    }
    let mut guest = Vec::new();
    for p in zone::physical_networks(db, v.zone_id).await? {
        if zone::traffic_types(db, p.id)
            .await?
            .iter()
            .any(|t| t.traffic_type == "Guest")
        {
            guest.push(p);
        }
    }
    if guest.len() != 1 {
        return Err(Error::invalid(format!(
            "Physical network can't be determined: the zone has {} physical networks \
             carrying guest traffic; give physicalnetworkid",
            guest.len()
        )));
    }
    Ok(guest.remove(0))
}

/// The gateways on the same physical network as a new one, for the rules.
async fn existing_gateways(
    db: &Db,
    physnet_id: i64,
    vpc_id: i64,
) -> Result<Vec<rule::ExistingGateway>, Error> {
    let mut existing = Vec::new();
    for g in gateway::list(db, &gateway::GatewayFilter::default(), Page::ALL)
        .await?
        .items
    {
        let same_net = network::get_by_id(db, g.network_id)
            .await?
            .is_some_and(|n| n.physical_network_id == Some(physnet_id));
        let (Some(cidr), Ok(ip)) = (subnet_of(&g), g.ip4_address.parse()) else {
            continue;
        };
        if same_net {
            existing.push(rule::ExistingGateway {
                same_vpc: g.vpc_id == vpc_id,
                vlan: vlan_form(&g.broadcast_uri),
                cidr,
                ip,
            });
        }
    }
    Ok(existing)
}

/// The CIDRs of the VPC's tiers.
async fn tier_cidrs(db: &Db, vpc_id: i64) -> Result<Vec<Ipv4Net>, Error> {
    Ok(network::tiers_of_vpc(db, vpc_id)
        .await?
        .iter()
        .filter_map(|n| n.cidr.as_deref()?.parse().ok())
        .collect())
}

/// Refuses an associated network: only isolated networks outside a VPC can
/// carry a private gateway, and this manager has none.
async fn refuse_associated(ctx: &Ctx, id: &str) -> Error {
    let found = network::get_by_uuid(&ctx.app.db, id).await;
    match found {
        Ok(Some(n)) if n.removed.is_none() && n.vpc_id.is_some() => Error::invalid(format!(
            "Associated network {id} is a VPC tier: a private gateway can only ride on an \
             isolated network outside a VPC; give a vlan instead"
        )),
        Ok(Some(n)) if n.removed.is_none() => Error::invalid(format!(
            "Associated network {id} is not an isolated guest network outside a VPC; \
             give a vlan instead"
        )),
        Ok(_) => Error::invalid_id("associatednetworkid", id),
        Err(e) => e.into(),
    }
}

handler!(create_gateway, |ctx, params| {
    let db = &ctx.app.db;
    let is_root = ctx.caller.is_root_admin();
    let vpc_id = params.required_uuid(ctx.command, "vpcid")?.to_string();
    let v = vpc_param(ctx, "vpcid", &vpc_id).await?;
    if v.state != vpc::STATE_ENABLED {
        return Err(Error::invalid(format!(
            "VPC {} is {}, not Enabled: it can't get a private gateway",
            v.uuid, v.state
        )));
    }
    let ip_address = params.required_string(ctx.command, "ipaddress")?;
    let next_hop = params.required_string(ctx.command, "gateway")?;
    let netmask = params.required_string(ctx.command, "netmask")?;
    let vlan = params.string("vlan")?.filter(|s| !s.trim().is_empty());
    let associated = params.uuid("associatednetworkid")?.map(|u| u.to_string());
    let request = rule::NewGateway {
        ip_address: &ip_address,
        gateway: &next_hop,
        netmask: &netmask,
        vlan: vlan.as_deref(),
        associated_network: associated.as_deref(),
        caller_is_root: is_root,
    };
    // Parameters first, before anything is looked up in the store.
    rule::validate_private_gateway(&request, &[], &[])?;
    if let Some(id) = &associated {
        return Err(refuse_associated(ctx, id).await);
    }
    let list = acl_of_new_gateway(db, params, &v).await?;
    let physnet = physical_network(db, params, &v).await?;
    let _guard = ctx.app.network.lock_vpc(v.id).await;
    let checked = rule::validate_private_gateway(
        &request,
        &existing_gateways(db, physnet.id, v.id).await?,
        &tier_cidrs(db, v.id).await?,
    )?;
    let vlan_id: u32 = checked
        .vlan
        .strip_prefix("vlan://")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            Error::invalid(format!(
                "A private gateway needs a VLAN id; {} is not one",
                checked.vlan
            ))
        })?;
    let ranges = match physnet
        .vnet_range
        .as_deref()
        .filter(|r| !r.trim().is_empty())
    {
        Some(r) => vnet::parse_range(r)?,
        None => Vec::new(),
    };
    rule::check_vlan_not_dynamic(vlan_id, &ranges)?;
    let isolation = IsolationMethod::parse(&physnet.isolation_method).ok_or_else(|| {
        Error::invalid(format!(
            "Physical network {} has the unknown isolation method {}",
            physnet.uuid, physnet.isolation_method
        ))
    })?;
    let guru = ctx
        .app
        .network
        .plugins
        .gurus
        .choose(isolation, NetworkTraffic::Private)
        .map_err(|e| Error::invalid(format!("Can't create the private network: {e}")))?;
    let name = format!("vpc-{}-privateNetwork", v.name);
    let designed = guru
        .design(&NetworkSpec {
            id: Uuid::new_v4(),
            name: name.clone(),
            traffic: NetworkTraffic::Private,
            isolation,
            physical_network_id: Uuid::parse_str(&physnet.uuid).ok(),
            cidr: Some(checked.cidr),
            gateway: Some(checked.gateway),
            vlan: Some(vlan_id),
            mtu: None,
            network_domain: None,
            vpc_cidr: None,
        })
        .map_err(|e| Error::invalid(format!("Can't create the private network: {e}")))?;
    let uri = designed
        .broadcast_uri
        .clone()
        .unwrap_or_else(|| checked.vlan.clone());
    let tier_on_vlan = network::list(
        db,
        &network::NetworkFilter {
            zone_id: Some(v.zone_id),
            traffic_type: Some(network::TRAFFIC_GUEST.into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items
    .into_iter()
    .find(|n| {
        n.physical_network_id == Some(physnet.id) && n.broadcast_uri.as_deref() == Some(&uri)
    });
    let bypass = is_root && params.boolean("bypassvlanoverlapcheck")? == Some(true);
    if let Some(n) = tier_on_vlan.filter(|_| !bypass) {
        return Err(Error::invalid(format!(
            "The VLAN {uri} is already used by network {} in the zone",
            n.uuid
        )));
    }
    let offering = store::offering::network_offering_by_unique_name(
        db,
        store::bootstrap::DEFAULT_VPC_TIER_OFFERING_NO_LB,
    )
    .await?
    .ok_or_else(|| Error::internal("the default VPC tier offering is missing"))?;
    let mut tx = db.begin().await?;
    // CloudStack leaves the VPC of a private network empty: it is no tier.
    let net = network::create(
        &mut tx,
        network::NewNetwork {
            name: name.clone(),
            display_text: name,
            zone_id: v.zone_id,
            physical_network_id: Some(physnet.id),
            vpc_id: None,
            account_id: v.account_id,
            domain_id: v.domain_id,
            network_offering_id: offering.id,
            cidr: Some(checked.cidr.to_string()),
            gateway: Some(checked.gateway.to_string()),
            netmask: Some(netmask.trim().to_string()),
            network_domain: None,
            broadcast_uri: Some(uri.clone()),
            vnet: Some(vlan_id.to_string()),
            network_acl_id: None,
            traffic_type: network::TRAFFIC_PRIVATE_GATEWAY.into(),
            guru_name: Some(designed.guru.to_string()),
        },
    )
    .await?;
    network::set_state(&mut tx, net.id, network::STATE_IMPLEMENTED).await?;
    let g = gateway::create(
        &mut tx,
        gateway::NewPrivateGateway {
            vpc_id: v.id,
            network_id: net.id,
            ip4_address: checked.ip.to_string(),
            gateway: checked.gateway.to_string(),
            netmask: netmask.trim().to_string(),
            broadcast_uri: uri,
            source_nat: params.boolean("sourcenatsupported")?.unwrap_or(false),
            network_acl_id: Some(list.id),
            account_id: v.account_id,
            domain_id: v.domain_id,
        },
    )
    .await?;
    tx.commit().await?;
    let submitted = ctx
        .submit_job(
            json!({ "id": g.id }),
            Some(("PrivateGateway", &g.uuid)),
            vpc_sync(v.id),
        )
        .await;
    match submitted {
        Ok(job_id) => Ok(Reply::Created { id: g.uuid, job_id }),
        Err(e) => {
            log_revert(
                "a gateway whose job was not submitted",
                remove_rows(db, &g).await,
            );
            Err(e)
        }
    }
});

/// After a failed creation: takes the gateway's NIC out of the router again,
/// as far as the driver plugged it (best effort; the rows go anyway).
async fn unplug_after_failure(app: &App, vpc_id: i64, id: Uuid) {
    let Ok(Some(s)) = state::load(&app.db, vpc_id).await else {
        return;
    };
    if let Some(view) = s.private_gateways.iter().find(|g| g.id == id) {
        let nic = wire::gateway_nic_view(view);
        log_revert(
            "the private gateway's NIC",
            app.network
                .element
                .driver()
                .unplug_nic(&s.router, &nic)
                .await,
        );
    }
}

job_body!(create_gateway_job, |job, info| {
    let app = &job.app;
    let db = &app.db;
    let g = job_gateway(db, info).await?;
    let _guard = app.network.lock_vpc(g.vpc_id).await;
    let id = gateway_uuid(&g)?;
    let router_row = provision::vpc_router(db, g.vpc_id).await?;
    let mut tx = db.begin().await?;
    let mut generation = None;
    if let Some(r) = &router_row {
        router::create_nic(
            &mut tx,
            router::NewNic {
                owner: router::NicOwner::Router(r.id),
                network_id: g.network_id,
                device_index: None,
                ip4_address: Some(g.ip4_address.clone()),
                netmask: Some(g.netmask.clone()),
                gateway: Some(g.gateway.clone()),
                role: router::ROLE_PRIVATE.into(),
            },
        )
        .await?;
        generation = provision::bump(&mut tx, g.vpc_id).await?;
    }
    tx.commit().await?;
    let pushed = provision::push(
        db,
        &app.network,
        g.vpc_id,
        generation,
        move |element, state, gen_| {
            Box::pin(async move { element.create_private_gateway(state, gen_, id).await })
        },
    )
    .await;
    if let Err(e) = pushed {
        unplug_after_failure(app, g.vpc_id, id).await;
        log_revert("a new private gateway", remove_rows(db, &g).await);
        return Err(e);
    }
    gateway::set_state(db, g.id, gateway::GATEWAY_READY).await?;
    let g = job_gateway(db, info).await?;
    let related = Related::for_gateways(db, std::slice::from_ref(&g)).await?;
    Ok(json!({ "privategateway": gateway_view(&related, &g, job.caller.is_root_admin())? }))
});
