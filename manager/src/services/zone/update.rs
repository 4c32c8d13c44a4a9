//! `updateZone`: the zone's allocation state (a Disabled zone takes new
//! VPCs and tiers from root admins only).

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::store::zone;

use super::{ALLOCATION_STATE, ZONE_FIELDS, allocation_state, reloaded, zone_by_id, zone_view};

const ID: Arg<Id> = Arg::req("id", "the ID of the zone");

/// `updateZone`.
pub struct UpdateZone {
    id: Uuid,
    allocation_state: Option<String>,
}

impl Command for UpdateZone {
    const NAME: &'static str = "updateZone";

    fn spec() -> Spec {
        Spec::new("Updates a zone")
            .roles(ROOT)
            .param(ID)
            .param(ALLOCATION_STATE)
            .returns("zone", ZONE_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateZone {
            id: args.need(&ID)?,
            allocation_state: args.get(&ALLOCATION_STATE)?,
        })
    }
}

impl SyncCommand for UpdateZone {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let z = zone_by_id(ctx, self.id, ID.name()).await?;
        if let Some(state) = allocation_state(self.allocation_state.as_deref())? {
            zone::set_allocation_state(&ctx.app.db, z.id, state).await?;
        }
        Ok(Reply::Object(zone_view(ctx, &reloaded(ctx, z.id).await?)))
    }
}
