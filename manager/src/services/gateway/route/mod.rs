//! Static routes: createStaticRoute, deleteStaticRoute and listStaticRoutes
//! (reference §2.7, §3.7).
//!
//! A route goes through a Ready private gateway or to a next hop the VPC
//! reaches. Its CIDR is checked during the request (outside the VPC CIDR,
//! link-local and `denied.routes`; no overlap with the VPC's other routes,
//! 537) and stored Staged; the job makes it Add, pushes the VPC's whole
//! route set and makes it Active, or deletes it when the router refuses.
//! Deleting revokes the route, pushes the set without it, then removes it.
//!
//! One command per file ([`create`], [`delete`], [`list`]); this file holds
//! what they share: the response object, the checks' inputs and the push.

mod create;
mod delete;
mod list;

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{Value, json};

use super::{OWNER_FIELDS, put_owner};
use crate::error::Error;
use crate::orchestration::model::RouterState;
use crate::orchestration::{ElementResult, VpcProvider};
use crate::provision::RouterElement;
use crate::provision::change::RouterChange;
use crate::rules::route::{self as rule, GatewayState};
use crate::server::registry::{FieldSpec, field};
use crate::services::related::Related;
use crate::store::{Db, Page, Tx, gateway, vlan};

pub use create::CreateStaticRoute;
pub use delete::DeleteStaticRoute;
pub use list::ListStaticRoutes;

const ROUTE_FIELDS: &[&[FieldSpec]] = &[
    &[
        field("id", "string", "the ID of the static route"),
        field("state", "string", "Staged, Add, Active or Revoke"),
        field("cidr", "string", "the destination CIDR"),
        field("vpcid", "string", "the VPC of the route"),
        field(
            "vpcgatewayid",
            "string",
            "the private gateway the route goes through",
        ),
        field(
            "vpcgatewayip",
            "string",
            "the address of that private gateway",
        ),
        field(
            "nexthop",
            "string",
            "the next hop of a route without a gateway",
        ),
    ],
    OWNER_FIELDS,
    &[field("tags", "list", "the tags of the route")],
];

/// `staticroute` of a response; `related` holds the page's VPCs, gateways
/// and owners ([`Related::for_routes`]).
fn route_view(related: &Related, r: &gateway::StaticRoute) -> Result<Value, Error> {
    let v = related
        .vpc(r.vpc_id)
        .ok_or_else(|| Error::internal(format!("VPC {} is gone", r.vpc_id)))?;
    let mut view = json!({
        "id": r.uuid,
        "state": r.state,
        "cidr": r.cidr,
        "vpcid": v.uuid,
        "tags": [],
    });
    if let Some(id) = r.vpc_gateway_id
        && let Some(g) = related.private_gateway(id)
    {
        view["vpcgatewayid"] = json!(g.uuid);
        view["vpcgatewayip"] = json!(g.ip4_address);
    }
    if let Some(hop) = &r.next_hop {
        view["nexthop"] = json!(hop);
    }
    put_owner(related, &mut view, r.account_id, r.domain_id);
    Ok(view)
}

fn gateway_state(state: gateway::GatewayState) -> GatewayState {
    match state {
        gateway::GATEWAY_READY => GatewayState::Ready,
        gateway::GATEWAY_CREATING => GatewayState::Creating,
        _ => GatewayState::Deleting,
    }
}

fn subnet(gateway: Ipv4Addr, netmask: Ipv4Addr) -> Option<Ipv4Net> {
    let prefix = ipnet::ipv4_mask_to_prefix(netmask).ok()?;
    Ipv4Net::new(gateway, prefix).ok().map(|n| n.trunc())
}

/// The subnets a next hop may be in besides the VPC CIDR: those of the
/// VPC's private gateways and of the public ranges of its addresses.
async fn reachable_subnets(db: &Db, vpc_id: i64) -> Result<Vec<Ipv4Net>, Error> {
    let mut nets = Vec::new();
    let gateways = gateway::of_vpc(db, vpc_id).await?;
    nets.extend(gateways.iter().filter_map(|g| subnet(g.gateway, g.netmask)));
    let ips = vlan::list_ips(
        db,
        &vlan::PublicIpFilter {
            vpc_id: Some(vpc_id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    // The ranges of all the addresses in one statement, then in the
    // addresses' order as before (the first range of a subnet wins).
    let range_ids: Vec<i64> = ips.iter().map(|ip| ip.vlan_db_id).collect();
    let ranges = vlan::ranges_by_ids(db, &range_ids).await?;
    for ip in &ips {
        if let Some(range) = ranges.iter().find(|r| r.id == ip.vlan_db_id)
            && let Some(net) = subnet(range.gateway, range.netmask)
            && !nets.contains(&net)
        {
            nets.push(net);
        }
    }
    Ok(nets)
}

/// The VPC's routes that count for overlaps: all but the revoked ones.
async fn other_routes(db: &Db, vpc_id: i64) -> Result<Vec<rule::ExistingRoute>, Error> {
    Ok(gateway::list_routes(
        db,
        &gateway::RouteFilter {
            vpc_id: Some(vpc_id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items
    .iter()
    .filter(|r| r.state != gateway::ROUTE_REVOKE)
    .map(|r| rule::ExistingRoute { cidr: r.cidr })
    .collect())
}

/// The live route of a job.
async fn job_route(db: &Db, id: i64) -> Result<gateway::StaticRoute, Error> {
    gateway::route_by_id(db, id)
        .await?
        .filter(|r| r.removed.is_none())
        .ok_or_else(|| Error::invalid("The static route was deleted meanwhile"))
}

/// A route moving on the router: it takes state `to`, then the VPC's whole
/// set of live static routes goes to the router (its state as stored after
/// the change); when the router refuses, `undo` puts the route back.
struct RouteMove {
    row_id: i64,
    to: gateway::RouteState,
    what: &'static str,
    undo: RouteUndo,
}

/// How a route the router refused is put back.
enum RouteUndo {
    /// A new route leaves no trace.
    Remove,
    /// A revoked route takes its old state again.
    Restore(gateway::RouteState),
}

impl RouterChange for RouteMove {
    type Written = ();

    fn what(&self) -> &'static str {
        self.what
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        gateway::set_route_state(tx, self.row_id, self.to).await?;
        Ok(())
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        element
            .apply_static_routes(&state.router, generation, &state.static_routes)
            .await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        match &self.undo {
            RouteUndo::Remove => gateway::remove_route(db, self.row_id).await?,
            RouteUndo::Restore(old) => gateway::set_route_state(db, self.row_id, *old).await?,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn subnets_from_gateway_and_netmask() {
        assert_eq!(
            subnet(ip("172.16.0.1"), ip("255.255.255.0")),
            Some("172.16.0.0/24".parse().unwrap())
        );
        assert_eq!(subnet(ip("172.16.0.1"), ip("255.0.255.0")), None);
        assert_eq!(gateway_state(gateway::GATEWAY_READY), GatewayState::Ready);
        assert_eq!(
            gateway_state(gateway::GATEWAY_CREATING),
            GatewayState::Creating
        );
    }
}
