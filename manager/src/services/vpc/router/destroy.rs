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
use crate::store::router;

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
    /// A router removed already is done: the answer is its row, Destroyed.
    const RERUN: bool = true;
    type Job = RouterJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<RouterJob>, Error> {
        let r = live_router_of(ctx, self.id).await?;
        Ok(submission(&r, false))
    }

    async fn run(job: &JobCtx, payload: RouterJob) -> Result<Value, Error> {
        let app = &job.app;
        let gone = router::get_by_id(&app.db, payload.id)
            .await?
            .filter(|r| r.removed.is_some());
        // The router as it was, then gone: CloudStack answers with the
        // destroyed router (one an earlier run of this job removed, too).
        let (r, _lock) = match gone {
            Some(r) => (r, None),
            None => {
                let (r, lock) = locked_router(app, payload.id).await?;
                (r, Some(lock))
            }
        };
        let related = Related::for_routers(&app.db, std::slice::from_ref(&r)).await?;
        let mut view = router_view(&related, &r, true, app.network.hypervisor());
        if r.removed.is_none() {
            provision::vpc::destroy_router(&app.db, &app.network, &r).await?;
        }
        view["state"] = Value::from("Destroyed");
        Ok(serde_json::json!({ "router": view }))
    }
}
