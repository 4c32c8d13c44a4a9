//! The store reads behind the checks of a new private gateway
//! (createPrivateGateway): its ACL list, its physical network, the gateways
//! and tier CIDRs it must not clash with, and the refusal of an associated
//! network.

use ipnet::Ipv4Net;
use uuid::Uuid;

use super::super::vpc_by_id;
use super::{subnet_of, vlan_form};
use crate::error::Error;
use crate::rules::{self, gateway as rule};
use crate::server::Ctx;
use crate::store::{Db, Page, acl, gateway, network, vpc, zone};

/// The ACL list of a new gateway: `aclid`, which must be of the VPC or a
/// default list (431), or `default_deny`.
pub(super) async fn acl_of_new_gateway(
    db: &Db,
    param: &str,
    asked: Option<Uuid>,
    v: &vpc::Vpc,
) -> Result<acl::AclList, Error> {
    let Some(id) = asked else {
        return acl::get_by_id(db, acl::DEFAULT_DENY_ID)
            .await?
            .ok_or_else(|| Error::internal("the default_deny ACL list is missing"));
    };
    let list = acl::get_by_uuid(db, id)
        .await?
        .filter(|l| l.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))?;
    let list_vpc = match list.vpc_id {
        Some(vid) => Some(vpc_by_id(db, vid).await?.uuid),
        None => None,
    };
    rules::acl::check_list_in_vpc(&list.name, list_vpc.as_ref(), &v.uuid)?;
    Ok(list)
}

/// The physical network of a new gateway: `physicalnetworkid` (in the VPC's
/// zone), or the zone's only physical network carrying guest traffic.
pub(super) async fn physical_network(
    db: &Db,
    param: &str,
    asked: Option<Uuid>,
    v: &vpc::Vpc,
) -> Result<zone::PhysicalNetwork, Error> {
    if let Some(id) = asked {
        return zone::physical_network_by_uuid(db, id)
            .await?
            .filter(|p| p.removed.is_none() && p.zone_id == v.zone_id)
            .ok_or_else(|| Error::invalid_id(param, id));
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
pub(super) async fn existing_gateways(
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
        let (Some(cidr), ip) = (subnet_of(&g), g.ip4_address) else {
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
pub(super) async fn tier_cidrs(db: &Db, vpc_id: i64) -> Result<Vec<Ipv4Net>, Error> {
    Ok(network::tiers_of_vpc(db, vpc_id)
        .await?
        .iter()
        .filter_map(|n| n.cidr)
        .collect())
}

/// Refuses an associated network: only isolated networks outside a VPC can
/// carry a private gateway, and this manager has none.
pub(super) async fn refuse_associated(ctx: &Ctx, param: &str, id: Uuid) -> Error {
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
        Ok(_) => Error::invalid_id(param, id),
        Err(e) => e.into(),
    }
}
