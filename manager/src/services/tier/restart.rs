//! `restartNetwork` of a VPC tier: the tier is sent to its router again
//! (CloudStack's restart without cleanup; with cleanup the whole VPC is
//! restarted instead).

use serde_json::{Value, json};
use uuid::Uuid;

use super::{job_tier, live_tier, sync_object};
use crate::error::Error;
use crate::provision::tier as tiers;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Flag, Id, IdJob, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ALL;
use crate::store::network;

const ID: Arg<Id> = Arg::req("id", "the ID of the network");
const CLEANUP: Arg<Flag> = Arg::opt(
    "cleanup",
    "true is refused for tiers: restart the whole VPC instead",
);
const MAKE_REDUNDANT: Arg<Flag> = Arg::opt("makeredundant", "not supported for tiers");
const LIVE_PATCH: Arg<Flag> = Arg::opt("livepatch", "accepted; the tier is re-sent anyway");

/// `restartNetwork`.
pub struct RestartNetwork {
    id: Uuid,
    cleanup: bool,
    make_redundant: bool,
}

impl Command for RestartNetwork {
    const NAME: &'static str = "restartNetwork";

    fn spec() -> Spec {
        Spec::new("Sends an implemented tier to its router again")
            .roles(ALL)
            .param(ID)
            .param(CLEANUP)
            .param(MAKE_REDUNDANT)
            .param(LIVE_PATCH)
            .returns("network", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(RestartNetwork {
            id: args.need(&ID)?,
            cleanup: args.get(&CLEANUP)? == Some(true),
            make_redundant: args.get(&MAKE_REDUNDANT)? == Some(true),
        })
    }
}

impl AsyncCommand for RestartNetwork {
    /// Safe to run again: it re-sends the tier's state, as the rows say.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let t = live_tier(ctx, self.id, ID.name()).await?;
        if self.cleanup {
            return Err(Error::invalid(format!(
                "Cannot restart a VPC tier with cleanup, please restart the whole VPC. (network tier {})",
                t.uuid
            )));
        }
        if self.make_redundant {
            return Err(Error::invalid(
                "Could not make the network redundant: redundant routers are not supported",
            ));
        }
        if t.state != network::STATE_IMPLEMENTED {
            return Err(Error::invalid(format!(
                "Network is not in the right state to be restarted. Correct states are: Implemented, \
                 Setup (network {} is {})",
                t.uuid, t.state
            )));
        }
        Ok(Submission::new(
            IdJob { id: t.id },
            ("Network", t.uuid),
            sync_object(&t),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let app = &job.app;
        let (t, vpc_id) = job_tier(&app.db, payload.id).await?;
        let lock = app.network.lock(&app.db, vpc_id).await?;
        tiers::resend_tier(&lock, t.id).await?;
        Ok(json!({ "success": true }))
    }
}
