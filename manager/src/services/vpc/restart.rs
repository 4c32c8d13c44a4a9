//! `restartVPC`: re-sends a VPC's whole configuration to its router, or
//! with `cleanup` replaces the router.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::provision;
use crate::rules;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Flag, Id, Spec, Submission};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::store::vpc;

use super::live_vpc;

const ID: Arg<Id> = Arg::req("id", "the ID of the VPC");

const CLEANUP: Arg<Flag> = Arg::opt(
    "cleanup",
    "true: start a new router, then destroy the old one",
);
const MAKE_REDUNDANT: Arg<Flag> = Arg::opt(
    "makeredundant",
    "accepted; redundant routers are not supported",
);
const LIVE_PATCH: Arg<Flag> =
    Arg::opt("livepatch", "accepted; the configuration is always re-sent");

/// `restartVPC`.
pub struct RestartVpc {
    id: Uuid,
    cleanup: bool,
    make_redundant: bool,
}

/// The job of `restartVPC`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestartVpcJob {
    pub id: i64,
    /// Replace the router rather than re-send its configuration.
    pub cleanup: bool,
}

impl Command for RestartVpc {
    const NAME: &'static str = "restartVPC";

    fn spec() -> Spec {
        Spec::new(
            "Restarts a VPC: re-sends its whole configuration, or with cleanup replaces its router",
        )
        .roles(ALL)
        .param(ID)
        .param(CLEANUP)
        .param(MAKE_REDUNDANT)
        .param(LIVE_PATCH)
        .returns("vpc", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(RestartVpc {
            id: args.need(&ID)?,
            cleanup: args.get(&CLEANUP)?.unwrap_or(false),
            make_redundant: args.get(&MAKE_REDUNDANT)? == Some(true),
        })
    }
}

impl AsyncCommand for RestartVpc {
    /// Safe to run again: it replaces the router or re-sends its whole state, as the rows say.
    const RERUN: bool = true;
    type Job = RestartVpcJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<RestartVpcJob>, Error> {
        let v = live_vpc(ctx, self.id, ID.name()).await?;
        let state = if v.state == vpc::STATE_ENABLED {
            rules::vpc::VpcState::Enabled
        } else {
            rules::vpc::VpcState::Inactive
        };
        rules::vpc::check_vpc_enabled(v.uuid, state)?;
        if self.make_redundant {
            return Err(Error::invalid(
                "Redundant VPC routers are not supported; restart without makeredundant",
            ));
        }
        let job = RestartVpcJob {
            id: v.id,
            cleanup: self.cleanup,
        };
        Ok(Submission::new(job, ("Vpc", v.uuid), vpc_sync(v.id)))
    }

    async fn run(job: &JobCtx, payload: RestartVpcJob) -> Result<Value, Error> {
        let app = &job.app;
        let _lock = app.network.lock(&app.db, payload.id).await?;
        provision::vpc::restart_vpc(&app.db, &app.network, payload.id, payload.cleanup).await?;
        Ok(json!({ "success": true }))
    }
}
