//! `deleteZone`: a zone without physical networks.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::store::zone;

use super::zone_by_id;

const ID: Arg<Id> = Arg::req("id", "the ID of the zone");

/// `deleteZone`.
pub struct DeleteZone {
    id: Uuid,
}

impl Command for DeleteZone {
    const NAME: &'static str = "deleteZone";

    fn spec() -> Spec {
        Spec::new("Deletes a zone that has no physical networks")
            .roles(ROOT)
            .param(ID)
            .returns("zone", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteZone {
            id: args.need(&ID)?,
        })
    }
}

impl SyncCommand for DeleteZone {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let z = zone_by_id(ctx, self.id, ID.name()).await?;
        if !zone::physical_networks(&ctx.app.db, z.id).await?.is_empty() {
            return Err(Error::in_use(format!(
                "The zone {} still has physical networks; delete them first",
                z.uuid
            )));
        }
        zone::remove(&ctx.app.db, z.id).await?;
        Ok(Reply::Success)
    }
}
