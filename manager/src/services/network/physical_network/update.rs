//! `updatePhysicalNetwork`: the guest VLAN/VNI range or the state.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::{live_physnet, physnet_sync};
use super::{PHYSNET_FIELDS, TAGS, physnet_state, physnet_view, vnet_param};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission, Text};
use crate::server::jobs::JobCtx;
use crate::server::registry::ROOT;
use crate::store::zone;

const ID: Arg<Id> = Arg::req("id", "the ID of the physical network");
const VLAN: Arg<Text> = Arg::opt(
    "vlan",
    "the new guest VLAN/VNI range, e.g. 100-199 or 100-199,300-310",
);
const STATE: Arg<Text> = Arg::opt("state", "Enabled or Disabled");

/// `updatePhysicalNetwork`.
pub struct UpdatePhysicalNetwork {
    id: Uuid,
    vlan: Option<String>,
    state: Option<String>,
}

/// The job of `updatePhysicalNetwork`: the checked values to store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdatePhysicalNetworkJob {
    pub id: i64,
    pub vnet_range: Option<String>,
    pub state: Option<String>,
}

impl Command for UpdatePhysicalNetwork {
    const NAME: &'static str = "updatePhysicalNetwork";

    fn spec() -> Spec {
        Spec::new("Changes the guest VLAN/VNI range or the state of a physical network")
            .roles(ROOT)
            .param(ID)
            .param(VLAN)
            .param(STATE)
            .param(TAGS)
            .returns("physicalnetwork", PHYSNET_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdatePhysicalNetwork {
            id: args.need(&ID)?,
            vlan: args.get(&VLAN)?,
            state: args.get(&STATE)?,
        })
    }
}

impl AsyncCommand for UpdatePhysicalNetwork {
    /// It writes the same values again.
    const RERUN: bool = true;
    type Job = UpdatePhysicalNetworkJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<UpdatePhysicalNetworkJob>, Error> {
        let pn = live_physnet(ctx, self.id, ID.name()).await?;
        let vnet_range = vnet_param(&pn.isolation_method, self.vlan.as_deref())?;
        let state = physnet_state(self.state.as_deref())?;
        let job = UpdatePhysicalNetworkJob {
            id: pn.id,
            vnet_range,
            state: state.map(str::to_string),
        };
        Ok(Submission::new(
            job,
            ("PhysicalNetwork", pn.uuid),
            physnet_sync(pn.id),
        ))
    }

    async fn run(job: &JobCtx, payload: UpdatePhysicalNetworkJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let id = payload.id;
        let updated = zone::update_physical_network(
            db,
            id,
            payload.vnet_range.as_deref(),
            payload.state.as_deref(),
        )
        .await?;
        if !updated {
            return Err(Error::invalid("The physical network was deleted"));
        }
        let pn = zone::physical_network_by_id(db, id)
            .await?
            .ok_or_else(|| Error::internal("physical network vanished"))?;
        Ok(json!({ "physicalnetwork": physnet_view(db, &pn).await? }))
    }
}
