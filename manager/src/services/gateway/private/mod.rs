//! Private gateways: createPrivateGateway, deletePrivateGateway and
//! listPrivateGateways (reference §2.6, §3.6).
//!
//! A gateway is a private network (traffic type PrivateGateway, designed by
//! the private gateway guru on the VLAN the root admin gives) plus a router
//! NIC on it holding the gateway's address, with an ACL list
//! (`default_deny` unless told otherwise). createPrivateGateway stores the
//! network and the gateway (Creating) during the request; its job plugs the
//! NIC (PlugNic, IpAssoc, SetSourceNat when asked, SetNetworkAcl) and makes
//! it Ready, or removes every row again when the router refuses.
//!
//! One command per file ([`create`], [`delete`], [`list`]; create's store
//! reads in [`lookups`], its job's change in [`joins`]); this file holds
//! what they share: the response object and the gateway's rows.

mod create;
mod delete;
mod joins;
mod list;
mod lookups;

use ipnet::Ipv4Net;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{OWNER_FIELDS, put_owner};
use crate::error::Error;
use crate::server::registry::{FieldSpec, field};
use crate::services::related::Related;
use crate::store::{Db, Exec, Page, gateway, network, router};

pub use create::CreatePrivateGateway;
pub use delete::DeletePrivateGateway;
pub use list::ListPrivateGateways;

const GATEWAY_FIELDS: &[&[FieldSpec]] = &[
    &[
        field("id", "string", "the ID of the private gateway"),
        field("gateway", "string", "the next hop on the private network"),
        field("netmask", "string", "the netmask of the private network"),
        field(
            "ipaddress",
            "string",
            "the router's address on the private network",
        ),
        field("zoneid", "string", "the zone of the gateway"),
        field("zonename", "string", "the name of the zone"),
        field(
            "vlan",
            "string",
            "the VLAN of the private network (admins only)",
        ),
        field("vpcid", "string", "the VPC of the gateway"),
        field("vpcname", "string", "the name of the VPC"),
        field(
            "physicalnetworkid",
            "string",
            "the physical network carrying it",
        ),
        field("state", "string", "Creating, Ready or Deleting"),
        field(
            "sourcenatsupported",
            "boolean",
            "whether traffic leaving through it is source-NATed",
        ),
        field("aclid", "string", "the ACL list of the gateway"),
        field("aclname", "string", "the name of the ACL list"),
    ],
    OWNER_FIELDS,
];

/// The subnet of a stored gateway.
fn subnet_of(g: &gateway::PrivateGateway) -> Option<Ipv4Net> {
    let prefix = ipnet::ipv4_mask_to_prefix(g.netmask).ok()?;
    Ipv4Net::new(g.gateway, prefix).ok().map(|n| n.trunc())
}

/// A broadcast URI in the rules' VLAN form (`vlan://N` whatever the scheme).
fn vlan_form(uri: &str) -> std::string::String {
    format!("vlan://{}", uri.rsplit("://").next().unwrap_or(uri))
}

/// `privategateway` of a response; `full` adds the VLAN (admins only).
/// `related` holds the page's rows ([`Related::for_gateways`]).
fn gateway_view(
    related: &Related,
    g: &gateway::PrivateGateway,
    full: bool,
) -> Result<Value, Error> {
    let v = related
        .vpc(g.vpc_id)
        .ok_or_else(|| Error::internal(format!("VPC {} is gone", g.vpc_id)))?;
    let mut view = json!({
        "id": g.uuid,
        "gateway": g.gateway,
        "netmask": g.netmask,
        "ipaddress": g.ip4_address,
        "vpcid": v.uuid,
        "vpcname": v.name,
        "state": g.state,
        "sourcenatsupported": g.source_nat,
        "hasannotations": false,
    });
    if let Some(z) = related.zone_row(v.zone_id) {
        view["zoneid"] = json!(z.uuid);
        view["zonename"] = json!(z.name);
    }
    if let Some(n) = related.network(g.network_id)
        && let Some(pid) = n.physical_network_id
        && let Some(p) = related.physical_network(pid)
    {
        view["physicalnetworkid"] = json!(p.uuid);
    }
    if let Some(id) = g.network_acl_id
        && let Some(l) = related.acl_list(id)
    {
        view["aclid"] = json!(l.uuid);
        view["aclname"] = json!(l.name);
    }
    if full {
        view["vlan"] = json!(g.broadcast_uri.rsplit("://").next().unwrap_or_default());
        view["broadcasturi"] = json!(g.broadcast_uri);
    }
    put_owner(related, &mut view, g.account_id, g.domain_id);
    Ok(view)
}

/// Removes a gateway's rows: its router NIC, its static routes, the gateway
/// and its private network.
async fn remove_rows(db: &Db, g: &gateway::PrivateGateway) -> Result<(), Error> {
    let mut tx = db.begin().await?;
    for nic in router_nics(&mut tx, g).await? {
        router::remove_nic(&mut tx, nic.id).await?;
    }
    gateway::remove_routes(
        &mut tx,
        &gateway::RouteFilter {
            vpc_gateway_id: Some(g.id),
            ..Default::default()
        },
    )
    .await?;
    gateway::remove(&mut tx, g.id).await?;
    network::remove(&mut tx, g.network_id).await?;
    tx.commit().await?;
    Ok(())
}

/// The router NICs on the gateway's private network.
async fn router_nics<'a>(
    ex: impl Into<Exec<'a>>,
    g: &gateway::PrivateGateway,
) -> Result<Vec<router::Nic>, Error> {
    Ok(router::list_nics(
        ex,
        &router::NicFilter {
            network_id: Some(g.network_id),
            role: Some(router::ROLE_PRIVATE.into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items
    .into_iter()
    .filter(|n| n.router_id.is_some())
    .collect())
}

/// The live gateway of a job, by row id.
async fn job_gateway(db: &Db, id: i64) -> Result<gateway::PrivateGateway, Error> {
    gateway::get_by_id(db, id)
        .await?
        .filter(|g| g.removed.is_none())
        .ok_or_else(|| Error::invalid("The private gateway was deleted meanwhile"))
}

fn gateway_uuid(g: &gateway::PrivateGateway) -> Result<Uuid, Error> {
    Ok(g.uuid)
}

/// The static routes through a gateway (none may remain when it goes).
async fn routes_via(db: &Db, g: &gateway::PrivateGateway) -> Result<usize, Error> {
    let n = gateway::count_routes_via(db, g.id).await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_uris_compare_as_vlans() {
        assert_eq!(vlan_form("vlan://500"), "vlan://500");
        assert_eq!(vlan_form("vxlan://500"), "vlan://500");
        assert_eq!(vlan_form("500"), "vlan://500");
    }
}
