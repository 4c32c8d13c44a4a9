//! Site-to-site VPN (CloudStack's `Site2SiteVpnService`), one resource per
//! file:
//!
//! - [`gateway`]: createVpnGateway, listVpnGateways, deleteVpnGateway: the
//!   VPC's end of its tunnels, on the VPC's source NAT address;
//! - [`customer`]: createVpnCustomerGateway, updateVpnCustomerGateway,
//!   deleteVpnCustomerGateway, listVpnCustomerGateways: the far end as its
//!   owner describes it (address, subnets, key, policies);
//! - [`connection`]: createVpnConnection, resetVpnConnection,
//!   deleteVpnConnection, listVpnConnections: a tunnel between the two, which
//!   reaches the VPC's router through the change protocol.
//!
//! This file holds what they share: the lookups of a parameter's row (with
//! the owner check), the limits, and [`views`] (the response objects).
//!
//! The pre-shared key is a secret: it is never logged (the store's rows do
//! not print it), and a response shows it only to the account that owns the
//! gateway (CloudStack shows it to whoever may list the row; here an admin
//! listing other accounts' gateways sees everything else).

mod connection;
mod customer;
mod gateway;
mod live;
mod views;

use uuid::Uuid;

use crate::error::Error;
use crate::rules::vpn as rule;
use crate::server::Ctx;
use crate::server::registry::Registry;
use crate::services::owner;
use crate::store::{Db, config, vpn};

pub use connection::{
    CreateVpnConnection, DeleteVpnConnection, ListVpnConnections, ResetVpnConnection,
};
pub use customer::{
    CreateVpnCustomerGateway, DeleteVpnCustomerGateway, ListVpnCustomerGateways,
    UpdateVpnCustomerGateway,
};
pub use gateway::{CreateVpnGateway, DeleteVpnGateway, ListVpnGateways};

/// Registers the site-to-site VPN commands.
pub fn register(registry: &mut Registry) {
    registry.job::<CreateVpnGateway>();
    registry.sync::<ListVpnGateways>();
    registry.job::<DeleteVpnGateway>();
    registry.job::<CreateVpnCustomerGateway>();
    registry.job::<UpdateVpnCustomerGateway>();
    registry.job::<DeleteVpnCustomerGateway>();
    registry.sync::<ListVpnCustomerGateways>();
    registry.job::<CreateVpnConnection>();
    registry.job::<ResetVpnConnection>();
    registry.job::<DeleteVpnConnection>();
    registry.sync::<ListVpnConnections>();
}

/// The sync object of jobs on one customer gateway.
fn customer_gateway_sync(id: i64) -> String {
    format!("s2scustomergateway:{id}")
}

/// CloudStack's `site2site.vpn.customergateway.subnets.limit`.
async fn subnets_limit(db: &Db) -> Result<i64, Error> {
    Ok(
        config::value_i64(db, "site2site.vpn.customergateway.subnets.limit")
            .await?
            .unwrap_or(rule::DEFAULT_SUBNETS_LIMIT),
    )
}

/// CloudStack's `site2site.vpn.vpngateway.connection.limit`.
async fn connection_limit(db: &Db) -> Result<i64, Error> {
    Ok(
        config::value_i64(db, "site2site.vpn.vpngateway.connection.limit")
            .await?
            .unwrap_or(rule::DEFAULT_CONNECTION_LIMIT),
    )
}

/// The live VPN gateway named by parameter `param`, which the caller may act
/// on (431 when it names none, 531 when it is someone else's).
async fn vpn_gateway_param(ctx: &Ctx, param: &str, id: Uuid) -> Result<vpn::VpnGateway, Error> {
    let g = vpn::gateway_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|g| g.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))?;
    owner::check_access(ctx, g.account_id, &g.domain_path, "this VPN gateway")?;
    Ok(g)
}

/// The live customer gateway named by parameter `param`, which the caller
/// may act on.
async fn customer_gateway_param(
    ctx: &Ctx,
    param: &str,
    id: Uuid,
) -> Result<vpn::CustomerGateway, Error> {
    let g = vpn::customer_gateway_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|g| g.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))?;
    owner::check_access(
        ctx,
        g.account_id,
        &g.domain_path,
        "this VPN customer gateway",
    )?;
    Ok(g)
}

/// The live connection named by parameter `param`, which the caller may act
/// on.
async fn connection_param(ctx: &Ctx, param: &str, id: Uuid) -> Result<vpn::Connection, Error> {
    let c = vpn::connection_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|c| c.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))?;
    owner::check_access(ctx, c.account_id, &c.domain_path, "this VPN connection")?;
    Ok(c)
}
