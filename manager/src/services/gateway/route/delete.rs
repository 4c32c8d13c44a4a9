//! `deleteStaticRoute`: the job revokes the route, pushes the VPC's route
//! set without it, then removes it (a route still Staged never reached the
//! router and just goes).

use serde_json::{Value, json};
use uuid::Uuid;

use super::super::{check_vpc_access, vpc_by_id};
use super::{RouteMove, RouteUndo};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, IdJob, Spec, Submission};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::store::gateway;

const ID: Arg<Id> = Arg::req("id", "the ID of the static route");

/// `deleteStaticRoute`.
pub struct DeleteStaticRoute {
    id: Uuid,
}

impl Command for DeleteStaticRoute {
    const NAME: &'static str = "deleteStaticRoute";

    fn spec() -> Spec {
        Spec::new("Deletes a static route")
            .roles(ALL)
            .param(ID)
            .returns("staticroute", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteStaticRoute {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for DeleteStaticRoute {
    /// A route removed already is done; one left in Revoke is revoked again.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let id = self.id;
        let r = gateway::route_by_uuid(&ctx.app.db, id)
            .await?
            .filter(|r| r.removed.is_none())
            .ok_or_else(|| Error::invalid_id(ID.name(), id))?;
        check_vpc_access(ctx, &vpc_by_id(&ctx.app.db, r.vpc_id).await?)?;
        Ok(Submission::new(
            IdJob { id: r.id },
            ("StaticRoute", r.uuid),
            vpc_sync(r.vpc_id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let Some(r) = gateway::route_by_id(db, payload.id)
            .await?
            .filter(|r| r.removed.is_none())
        else {
            // Removed already (by an earlier run of this job, or meanwhile).
            return Ok(json!({ "success": true }));
        };
        let lock = job.app.network.lock(db, r.vpc_id).await?;
        if r.state == gateway::ROUTE_STAGED {
            // Never reached the router.
            gateway::remove_route(db, r.id).await?;
            return Ok(json!({ "success": true }));
        }
        // Revoke (off the router's state), then the VPC's route set; its
        // old state again when the router refuses.
        lock.apply(&RouteMove {
            row_id: r.id,
            to: gateway::ROUTE_REVOKE,
            what: "a revoked static route",
            undo: RouteUndo::Restore(r.state),
        })
        .await?;
        gateway::remove_route(db, r.id).await?;
        Ok(json!({ "success": true }))
    }
}
