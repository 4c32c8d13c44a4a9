//! `destroyRouter`: destroys a VPC's router, as CloudStack does: the router
//! and its NICs are gone; the VPC keeps its rows. The next start or
//! restart of the VPC (`restartVPC`, with or without cleanup) deploys a new
//! router with a NIC on every tier and private gateway and the whole
//! configuration.

use serde_json::Value;
use uuid::Uuid;

use super::{ID, ROUTER_FIELDS, RouterJob, live_router_of, locked_router, submission};
use crate::error::Error;
use crate::provision;
use crate::server::Ctx;
use crate::server::command::{Args, AsyncCommand, Command, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ADMINS;
use crate::services::related::Related;

use super::super::views::router_view;

/// `destroyRouter`.
pub struct DestroyRouter {
    id: Uuid,
}

impl Command for DestroyRouter {
    const NAME: &'static str = "destroyRouter";

    fn spec() -> Spec {
        Spec::new("Destroys a router.")
            .roles(ADMINS)
            .param(ID)
            .returns("router", ROUTER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DestroyRouter {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for DestroyRouter {
    type Job = RouterJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<RouterJob>, Error> {
        let r = live_router_of(ctx, self.id).await?;
        Ok(submission(&r, false))
    }

    async fn run(job: &JobCtx, payload: RouterJob) -> Result<Value, Error> {
        let app = &job.app;
        let (r, _lock) = locked_router(app, payload.id).await?;
        // The router as it was, then gone: CloudStack answers with the
        // destroyed router.
        let related = Related::for_routers(&app.db, std::slice::from_ref(&r)).await?;
        let mut view = router_view(&related, &r, true, app.network.hypervisor());
        provision::vpc::destroy_router(&app.db, &app.network, &r).await?;
        view["state"] = Value::from("Destroyed");
        Ok(serde_json::json!({ "router": view }))
    }
}
