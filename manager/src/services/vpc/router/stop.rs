//! `stopRouter`: stops a VPC's router; forced, a router that cannot be stopped is marked
//! Stopped all the same.

use serde_json::Value;
use uuid::Uuid;

use super::{
    ID, ROUTER_FIELDS, RouterJob, live_router_of, locked_router, router_result, submission,
};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Flag, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ADMINS;
use crate::store::router;

const FORCED: Arg<Flag> = Arg::opt(
    "forced",
    "true: the router is marked Stopped even when it could not be stopped",
);

/// `stopRouter`.
pub struct StopRouter {
    id: Uuid,
    forced: bool,
}

impl Command for StopRouter {
    const NAME: &'static str = "stopRouter";

    fn spec() -> Spec {
        Spec::new("Stops a VPC virtual router")
            .roles(ADMINS)
            .param(ID)
            .param(FORCED)
            .returns("router", ROUTER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(StopRouter {
            id: args.need(&ID)?,
            forced: args.get(&FORCED)?.unwrap_or(false),
        })
    }
}

impl AsyncCommand for StopRouter {
    /// Stopping a stopped router again changes nothing.
    const RERUN: bool = true;
    type Job = RouterJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<RouterJob>, Error> {
        let r = live_router_of(ctx, self.id).await?;
        if r.state == router::STATE_STOPPED {
            return Err(Error::invalid(format!(
                "Router {} is already Stopped",
                r.uuid
            )));
        }
        Ok(submission(&r, self.forced))
    }

    async fn run(job: &JobCtx, payload: RouterJob) -> Result<Value, Error> {
        let app = &job.app;
        let (r, _lock) = locked_router(app, payload.id).await?;
        super::stop(app, &r, payload.forced).await?;
        router_result(app, r.id).await
    }
}
