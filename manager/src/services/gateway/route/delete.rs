//! `deleteStaticRoute`: the job revokes the route, pushes the VPC's route
//! set without it, then removes it (a route still Staged never reached the
//! router and just goes).

use serde_json::{Value, json};
use uuid::Uuid;

use super::super::{RowJob, check_vpc_access, vpc_by_id};
use super::{RouteMove, RouteUndo, job_route};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission};
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
        Spec {
            description: "Deletes a static route",
            roles: ALL,
            params: vec![ID.spec()],
            object: "staticroute",
            response: vec![],
            since: "",
        }
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteStaticRoute {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for DeleteStaticRoute {
    type Job = RowJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<RowJob>, Error> {
        let id = self.id;
        let r = gateway::route_by_uuid(&ctx.app.db, id)
            .await?
            .filter(|r| r.removed.is_none())
            .ok_or_else(|| Error::invalid_id(ID.name(), id))?;
        check_vpc_access(ctx, &vpc_by_id(&ctx.app.db, r.vpc_id).await?)?;
        Ok(Submission::new(
            RowJob { id: r.id },
            ("StaticRoute", r.uuid),
            vpc_sync(r.vpc_id),
        ))
    }

    async fn run(job: &JobCtx, payload: RowJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let r = job_route(db, payload.id).await?;
        let lock = job.app.network.lock(db, r.vpc_id).await;
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
