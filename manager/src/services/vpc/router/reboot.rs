//! `rebootRouter`: reboots a VPC's router and re-sends its whole configuration;
//! forced, a forced stop (even when the router cannot be stopped) then a
//! start.

use serde_json::Value;
use uuid::Uuid;

use super::{
    ID, ROUTER_FIELDS, RouterJob, live_router, live_router_of, locked_router, router_result,
    submission,
};
use crate::error::Error;
use crate::provision;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Flag, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ADMINS;
use crate::store::router;

const FORCED: Arg<Flag> = Arg::opt(
    "forced",
    "true: a forced stop (even when the router cannot be stopped), then a start",
);

/// `rebootRouter`.
pub struct RebootRouter {
    id: Uuid,
    forced: bool,
}

impl Command for RebootRouter {
    const NAME: &'static str = "rebootRouter";

    fn spec() -> Spec {
        Spec::new("Reboots a VPC virtual router and re-sends its whole configuration")
            .roles(ADMINS)
            .param(ID)
            .param(FORCED)
            .returns("router", ROUTER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(RebootRouter {
            id: args.need(&ID)?,
            forced: args.get(&FORCED)?.unwrap_or(false),
        })
    }
}

impl AsyncCommand for RebootRouter {
    /// A second reboot gives the router its whole state once more.
    const RERUN: bool = true;
    type Job = RouterJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<RouterJob>, Error> {
        let r = live_router_of(ctx, self.id).await?;
        if r.state != router::STATE_RUNNING {
            return Err(Error::invalid(format!(
                "Router {} is {}; only a Running router can be rebooted",
                r.uuid, r.state
            )));
        }
        Ok(submission(&r, self.forced))
    }

    async fn run(job: &JobCtx, payload: RouterJob) -> Result<Value, Error> {
        let app = &job.app;
        let (r, _lock) = locked_router(app, payload.id).await?;
        if payload.forced {
            super::stop(app, &r, true).await?;
            let stopped = live_router(&app.db, r.id).await?;
            provision::vpc::start_router(&app.db, &app.network, &stopped).await?;
        } else {
            provision::vpc::reboot_router(&app.db, &app.network, &r).await?;
        }
        router_result(app, r.id).await
    }
}
