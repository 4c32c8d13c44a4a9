//! `deleteVPCOffering` (root admin): not the default offering, and not one a
//! VPC uses (counted again in the job).

use serde_json::{Value, json};
use uuid::Uuid;

use super::{live_vpc_offering, vpc_offering_sync};
use crate::error::Error;
use crate::rules;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, IdJob, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ROOT;
use crate::store::{Page, offering, vpc};

const ID: Arg<Id> = Arg::req("id", "the ID of the VPC offering");

/// `deleteVPCOffering`.
pub struct DeleteVpcOffering {
    id: Uuid,
}

impl Command for DeleteVpcOffering {
    const NAME: &'static str = "deleteVPCOffering";

    fn spec() -> Spec {
        Spec::new("Deletes a VPC offering that is not the default and no VPC uses")
            .roles(ROOT)
            .param(ID)
            .returns("vpcoffering", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteVpcOffering {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for DeleteVpcOffering {
    /// An offering removed already is done.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let o = live_vpc_offering(ctx, self.id, ID.name()).await?;
        // The default offering is refused at once; users are counted in the job.
        rules::vpc::check_offering_deletable(o.uuid, o.is_default, 0)?;
        Ok(Submission::new(
            IdJob { id: o.id },
            ("VpcOffering", o.uuid),
            vpc_offering_sync(o.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let Some(o) = offering::vpc_offering_by_id(db, payload.id)
            .await?
            .filter(|o| o.removed.is_none())
        else {
            // Deleted already (by an earlier run of this job, or meanwhile).
            return Ok(json!({ "success": true }));
        };
        // Counted in the job, so VPCs created while it waited are seen.
        let users = vpc::list(
            db,
            &vpc::VpcFilter {
                vpc_offering_id: Some(o.id),
                ..Default::default()
            },
            Page::first(1),
        )
        .await?
        .total;
        rules::vpc::check_offering_deletable(
            o.uuid,
            o.is_default,
            usize::try_from(users).unwrap_or(usize::MAX),
        )?;
        offering::remove_vpc_offering(db, o.id).await?;
        Ok(json!({ "success": true }))
    }
}
