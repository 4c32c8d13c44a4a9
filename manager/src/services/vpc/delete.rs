//! `deleteVPC`: a VPC without tiers goes with its router, addresses,
//! gateways, routes and ACL lists.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::provision;
use crate::rules;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, IdJob, Spec, Submission};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::store::{network, vpc};

use super::live_vpc;

const ID: Arg<Id> = Arg::req("id", "the ID of the VPC");

/// `deleteVPC`.
pub struct DeleteVpc {
    id: Uuid,
}

impl Command for DeleteVpc {
    const NAME: &'static str = "deleteVPC";

    fn spec() -> Spec {
        Spec::new("Deletes a VPC without tiers, with its router, addresses, gateways, routes and ACL lists").roles(ALL).param(ID).returns("vpc", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteVpc {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for DeleteVpc {
    /// A VPC removed already is done; [`provision::vpc::destroy_vpc`] is
    /// safe to run again after a partial cleanup.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let v = live_vpc(ctx, self.id, ID.name()).await?;
        Ok(Submission::new(
            IdJob { id: v.id },
            ("Vpc", v.uuid),
            vpc_sync(v.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let app = &job.app;
        let id = payload.id;
        let _lock = app.network.lock(&app.db, id).await?;
        let Some(v) = vpc::get_by_id(&app.db, id)
            .await?
            .filter(|v| v.removed.is_none())
        else {
            return Ok(json!({ "success": true }));
        };
        // Counted in the job: tiers created while it waited count too.
        let tiers = network::count_tiers(&app.db, id).await?;
        rules::vpc::check_vpc_deletable(v.uuid, usize::try_from(tiers).unwrap_or(usize::MAX))?;
        vpc::set_state(&app.db, id, vpc::STATE_INACTIVE).await?;
        provision::vpc::destroy_vpc(&app.db, &app.network, id)
            .await
            .map_err(|e| {
                Error::internal(format!(
                    "VPC {} is Inactive; its cleanup failed and is retried every vpc.cleanup.interval: {}",
                    v.uuid,
                    e.text()
                ))
            })?;
        Ok(json!({ "success": true }))
    }
}
