//! `startRouter`: starts a VPC's router with its whole configuration.

use serde_json::Value;
use uuid::Uuid;

use super::{
    ID, ROUTER_FIELDS, RouterJob, live_router_of, locked_router, router_result, submission,
};
use crate::error::Error;
use crate::provision;
use crate::server::Ctx;
use crate::server::command::{Args, AsyncCommand, Command, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ADMINS;
use crate::store::router;

/// `startRouter`.
pub struct StartRouter {
    id: Uuid,
}

impl Command for StartRouter {
    const NAME: &'static str = "startRouter";

    fn spec() -> Spec {
        Spec::new("Starts a VPC virtual router with its whole configuration")
            .roles(ADMINS)
            .param(ID)
            .returns("router", ROUTER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(StartRouter {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for StartRouter {
    /// Starting a running router again gives it its whole state once more
    /// (the driver's start is idempotent).
    const RERUN: bool = true;
    type Job = RouterJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<RouterJob>, Error> {
        let r = live_router_of(ctx, self.id).await?;
        if r.state == router::STATE_RUNNING {
            return Err(Error::invalid(format!(
                "Router {} is already Running",
                r.uuid
            )));
        }
        Ok(submission(&r, false))
    }

    async fn run(job: &JobCtx, payload: RouterJob) -> Result<Value, Error> {
        let app = &job.app;
        let (r, _lock) = locked_router(app, payload.id).await?;
        provision::vpc::start_router(&app.db, &app.network, &r).await?;
        router_result(app, r.id).await
    }
}
