//! The job's change of createPrivateGateway: the gateway joins the router
//! (its NIC row, then PlugNic, IpAssoc, SetSourceNat, SetNetworkAcl), or
//! leaves no trace when the router refuses.

use uuid::Uuid;

use super::remove_rows;
use crate::error::Error;
use crate::orchestration::model::RouterState;
use crate::orchestration::{ElementResult, RouterDriver, VpcProvider, wire};
use crate::provision::change::RouterChange;
use crate::provision::{self, RouterElement, state};
use crate::server::App;
use crate::store::{Db, Tx, gateway, router};

/// A new gateway joining the router: its NIC row (when the VPC has a
/// router), then PlugNic, IpAssoc, SetSourceNat when asked and
/// SetNetworkAcl. Undone by unplugging what the driver plugged and removing
/// every row of the gateway.
pub(super) struct GatewayJoins<'a> {
    pub app: &'a App,
    /// The gateway's UUID, as the router's state names it.
    pub id: Uuid,
    pub gateway: &'a gateway::PrivateGateway,
}

impl RouterChange for GatewayJoins<'_> {
    type Written = ();

    fn what(&self) -> &'static str {
        "a new private gateway"
    }

    /// The NIC row is made once: an earlier run of the job may have made
    /// it already.
    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        let g = self.gateway;
        if !super::router_nics(&mut *tx, g).await?.is_empty() {
            return Ok(());
        }
        if let Some(r) = provision::vpc_router(&mut *tx, g.vpc_id).await? {
            router::create_nic(
                tx,
                router::NewNic {
                    owner: router::NicOwner::Router(r.id),
                    network_id: g.network_id,
                    device_index: None,
                    ip4_address: Some(g.ip4_address),
                    netmask: Some(g.netmask),
                    gateway: Some(g.gateway),
                    role: router::ROLE_PRIVATE.into(),
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        element
            .create_private_gateway(state, generation, self.id)
            .await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        unplug_after_failure(self.app, self.gateway.vpc_id, self.id).await;
        remove_rows(db, self.gateway).await
    }
}

/// After a failed creation: takes the gateway's NIC out of the router again,
/// as far as the driver plugged it (best effort: the rows go anyway, and
/// the error of the push is the job's).
async fn unplug_after_failure(app: &App, vpc_id: i64, id: Uuid) {
    let Ok(Some(s)) = state::load(&app.db, vpc_id).await else {
        return;
    };
    if let Some(view) = s.private_gateways.iter().find(|g| g.id == id) {
        let nic = wire::gateway_nic_view(view);
        if let Err(e) = app
            .network
            .element
            .driver()
            .unplug_nic(&s.router, &nic)
            .await
        {
            tracing::error!(error = %e, "unplugging the NIC of a private gateway the router refused");
        }
    }
}
