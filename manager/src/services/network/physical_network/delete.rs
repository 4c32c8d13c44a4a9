//! `deletePhysicalNetwork`: only one without public IP ranges.

use serde_json::{Value, json};
use uuid::Uuid;

use super::super::{live_physnet, physnet_sync};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, IdJob, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ROOT;
use crate::store::{self, zone};

const ID: Arg<Id> = Arg::req("id", "the ID of the physical network");

/// `deletePhysicalNetwork`.
pub struct DeletePhysicalNetwork {
    id: Uuid,
}

impl Command for DeletePhysicalNetwork {
    const NAME: &'static str = "deletePhysicalNetwork";

    fn spec() -> Spec {
        Spec::new("Deletes a physical network that has no public IP ranges")
            .roles(ROOT)
            .param(ID)
            .returns("physicalnetwork", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeletePhysicalNetwork {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for DeletePhysicalNetwork {
    /// A network removed already is done (its removal changes no row).
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let pn = live_physnet(ctx, self.id, ID.name()).await?;
        Ok(Submission::new(
            IdJob { id: pn.id },
            ("PhysicalNetwork", pn.uuid),
            physnet_sync(pn.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let id = payload.id;
        let uuid = zone::physical_network_by_id(db, id)
            .await?
            .map(|p| p.uuid.to_string())
            .unwrap_or_default();
        // Counted in the store's transaction: a range added while the job
        // waited keeps the network.
        zone::remove_physical_network(db, id)
            .await
            .map_err(|e| match e {
                store::StoreError::Conflict(why) => Error::in_use(format!(
                    "The physical network {uuid} cannot be deleted: {why}; delete them first"
                )),
                other => other.into(),
            })?;
        Ok(json!({ "success": true }))
    }
}
