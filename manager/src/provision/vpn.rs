//! The VPN part of a router's state: the VPC's VPN gateway with its live
//! connections, each with its customer gateway's values, read from the
//! store (`store::vpn`) for the state loader ([`super::state`]).

use crate::error::Error;
use crate::orchestration::model::{VpnConnectionView, VpnView};
use crate::rules::vpn as rule;
use crate::store::{Db, vlan, vpn};

/// The VPC's VPN, or None when it has no VPN gateway.
pub async fn load(db: &Db, vpc_id: i64) -> Result<Option<VpnView>, Error> {
    let Some(g) = vpn::gateway_of_vpc(db, vpc_id).await? else {
        return Ok(None);
    };
    let ip = vlan::ip_by_id(db, g.addr_id)
        .await?
        .ok_or_else(|| Error::internal("a VPN gateway's address is gone"))?;
    let mut connections = Vec::new();
    for c in vpn::connections_of_gateway(db, g.id).await? {
        let Some(cg) = vpn::customer_gateway_by_id(db, c.customer_gateway_id).await? else {
            continue;
        };
        connections.push(connection_view(&c, &cg)?);
    }
    Ok(Some(VpnView {
        public_ip: ip.public_ip_address,
        connections,
    }))
}

/// A stored connection as the router gets it: policies in strongSwan's
/// proposal syntax.
fn connection_view(
    c: &vpn::Connection,
    cg: &vpn::CustomerGateway,
) -> Result<VpnConnectionView, Error> {
    let bad =
        |what: &str| Error::internal(format!("customer gateway {} has a bad {what}", cg.uuid));
    let proposals = |kind, policy: &str, what: &str| {
        rule::parse_policy(kind, policy)
            .map(|ps| ps.iter().map(rule::strongswan_proposal).collect::<Vec<_>>())
            .ok_or_else(|| bad(what))
    };
    Ok(VpnConnectionView {
        id: c.uuid,
        peer: cg.gateway_ip.clone(),
        remote_cidrs: rule::parse_cidr_list(&cg.guest_cidr_list).ok_or_else(|| bad("CIDR list"))?,
        psk: cg.ipsec_psk.clone(),
        ike_proposals: proposals(rule::PolicyKind::Ike, &cg.ike_policy, "IKE policy")?,
        esp_proposals: proposals(rule::PolicyKind::Esp, &cg.esp_policy, "ESP policy")?,
        ike_lifetime: u64::try_from(cg.ike_lifetime).unwrap_or(0),
        esp_lifetime: u64::try_from(cg.esp_lifetime).unwrap_or(0),
        dpd: cg.dpd,
        ike_version: cg.ike_version.clone(),
        passive: c.passive,
        force_encap: cg.force_encap,
        split_connections: cg.split_connections,
        reset_serial: u64::try_from(c.resets).unwrap_or(0),
    })
}
