//! `deletePrivateGateway`: a Ready gateway that no static route uses leaves
//! the router (its NIC unplugged), then its rows go.

use serde_json::{Value, json};
use uuid::Uuid;

use super::super::{check_vpc_access, vpc_by_id};
use super::{gateway_uuid, remove_rows, routes_via};
use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::VpcProvider;
use crate::orchestration::model::{PrivateGatewayView, RouterState};
use crate::provision::change::RouterChange;
use crate::provision::{RouterElement, state};
use crate::rules::gateway as rule;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, IdJob, Spec, Submission};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::store::{Db, Tx, gateway};

const ID: Arg<Id> = Arg::req("id", "the ID of the private gateway");

/// `deletePrivateGateway`.
pub struct DeletePrivateGateway {
    id: Uuid,
}

impl Command for DeletePrivateGateway {
    const NAME: &'static str = "deletePrivateGateway";

    fn spec() -> Spec {
        Spec::new("Deletes a private gateway that no static route uses")
            .roles(ALL)
            .param(ID)
            .returns("privategateway", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeletePrivateGateway {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for DeletePrivateGateway {
    /// A gateway removed already is done; one left Deleting is deleted
    /// from the router again.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let g = gateway_param(ctx, self.id).await?;
        // Every gateway here sits on a VLAN the root admin gave (CloudStack's
        // private gateway offering specifies the VLAN).
        rule::check_gateway_deletable(
            g.uuid,
            routes_via(&ctx.app.db, &g).await?,
            ctx.caller.is_root_admin(),
            true,
        )?;
        if g.state != gateway::GATEWAY_READY {
            return Err(Error::invalid(format!(
                "Private gateway {} is {}; only a Ready gateway can be deleted",
                g.uuid, g.state
            )));
        }
        Ok(Submission::new(
            IdJob { id: g.id },
            ("PrivateGateway", g.uuid),
            vpc_sync(g.vpc_id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let app = &job.app;
        let db = &app.db;
        let Some(g) = gateway::get_by_id(db, payload.id)
            .await?
            .filter(|g| g.removed.is_none())
        else {
            // Removed already (by an earlier run of this job, or meanwhile).
            return Ok(json!({ "success": true }));
        };
        let lock = app.network.lock(db, g.vpc_id).await?;
        if g.state == gateway::GATEWAY_DELETING {
            // An earlier run was cut off after marking it: Ready again, so
            // the router's state below has it and the push deletes it.
            gateway::set_state(db, g.id, gateway::GATEWAY_READY).await?;
        }
        // Checked again: a route may have come meanwhile.
        rule::check_gateway_deletable(g.uuid, routes_via(db, &g).await?, true, false)?;
        let id = gateway_uuid(&g)?;
        // The gateway as the router has it, taken before it leaves the state.
        let view = state::load(db, g.vpc_id)
            .await?
            .and_then(|s| s.private_gateways.into_iter().find(|p| p.id == id));
        lock.apply(&GatewayLeaves { row_id: g.id, view }).await?;
        remove_rows(db, &g).await?;
        Ok(json!({ "success": true }))
    }
}

/// The live gateway named by `id`, which the caller may act on.
async fn gateway_param(ctx: &Ctx, id: Uuid) -> Result<gateway::PrivateGateway, Error> {
    let g = gateway::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|g| g.removed.is_none())
        .ok_or_else(|| Error::invalid_id(ID.name(), id))?;
    check_vpc_access(ctx, &vpc_by_id(&ctx.app.db, g.vpc_id).await?)?;
    Ok(g)
}

/// A gateway leaving the router: Deleting, then the router unplugs its NIC;
/// Ready again when the router refuses. A gateway the router's state does
/// not hold (its router is not running) has nothing to push.
struct GatewayLeaves {
    row_id: i64,
    view: Option<PrivateGatewayView>,
}

impl RouterChange for GatewayLeaves {
    type Written = ();

    fn what(&self) -> &'static str {
        "a private gateway being deleted"
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        gateway::set_state(tx, self.row_id, gateway::GATEWAY_DELETING).await?;
        Ok(())
    }

    fn reaches_router(&self, _: &()) -> bool {
        self.view.is_some()
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        match &self.view {
            Some(view) => {
                element
                    .delete_private_gateway(state, generation, view)
                    .await
            }
            None => Ok(()),
        }
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        gateway::set_state(db, self.row_id, gateway::GATEWAY_READY).await?;
        Ok(())
    }
}
