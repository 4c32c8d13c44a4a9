//! `deleteHost`: removes a host in Maintenance; any other host only when
//! `forced`, as CloudStack's: the routers and VMs recorded on it are then
//! Stopped with no host.

use uuid::Uuid;

use super::host_by_id;
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::store::host;

const ID: Arg<Id> = Arg::req("id", "the host ID");
const FORCED: Arg<Flag> = Arg::opt(
    "forced",
    "Force delete the host: the routers and VMs on it are stopped",
);
const FORCED_DESTROY_LOCAL_STORAGE: Arg<Flag> = Arg::opt(
    "forcedestroylocalstorage",
    "accepted; hosts here have no local storage",
);

/// `deleteHost`.
pub struct DeleteHost {
    id: Uuid,
    forced: bool,
}

impl Command for DeleteHost {
    const NAME: &'static str = "deleteHost";

    fn spec() -> Spec {
        Spec::new("Deletes a host.")
            .roles(ROOT)
            .param(ID)
            .param(FORCED)
            .param(FORCED_DESTROY_LOCAL_STORAGE)
            .returns("host", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteHost {
            id: args.need(&ID)?,
            forced: args.get(&FORCED)?.unwrap_or(false),
        })
    }
}

impl SyncCommand for DeleteHost {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let h = host_by_id(ctx, self.id, ID.name()).await?;
        if h.resource_state != host::RESOURCE_MAINTENANCE && !self.forced {
            return Err(Error::internal(format!(
                "Host {} cannot be deleted as it is not in maintenance mode. Either put the host \
                 into maintenance or perform a forced deletion.",
                h.uuid
            )));
        }
        host::remove(&ctx.app.db, h.id).await?;
        Ok(Reply::Success)
    }
}
