//! `createPhysicalNetwork` (async-create, as in CloudStack): the row exists
//! (and its id is answered) before the job runs; the job reports it.

use serde_json::{Value, json};
use uuid::Uuid;

use super::super::{live_zone, physnet_sync};
use super::{BROADCAST_ZONE, PHYSNET_FIELDS, TAGS, isolation_method, physnet_view, vnet_param};
use crate::error::Error;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Id, IdJob, Spec, Submission, Text, Texts,
};
use crate::server::jobs::JobCtx;
use crate::server::registry::ROOT;
use crate::server::{App, Ctx};
use crate::store::{self, zone};

const ZONE: Arg<Id> = Arg::req("zoneid", "the ID of the zone");
const NAME: Arg<Text> = Arg::req("name", "the name of the physical network");
const ISOLATION: Arg<Texts> = Arg::opt(
    "isolationmethods",
    "the isolation method of guest networks: VLAN (default) or VXLAN",
);
const VLAN: Arg<Text> = Arg::opt(
    "vlan",
    "the guest VLAN/VNI range, e.g. 100-199 or 100-199,300-310",
);
const BROADCAST: Arg<Text> = Arg::opt(
    "broadcastdomainrange",
    "the broadcast domain range; only ZONE in Advanced zones",
);

/// `createPhysicalNetwork`.
pub struct CreatePhysicalNetwork {
    zone: Uuid,
    name: String,
    isolation: Vec<String>,
    vlan: Option<String>,
    broadcast: Option<String>,
}

impl Command for CreatePhysicalNetwork {
    const NAME: &'static str = "createPhysicalNetwork";

    fn spec() -> Spec {
        Spec::new("Creates a physical network in a zone")
            .roles(ROOT)
            .param(ZONE)
            .param(NAME)
            .param(ISOLATION)
            .param(VLAN)
            .param(BROADCAST)
            .param(TAGS)
            .returns("physicalnetwork", PHYSNET_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreatePhysicalNetwork {
            zone: args.need(&ZONE)?,
            name: args.need(&NAME)?,
            isolation: args.get(&ISOLATION)?.unwrap_or_default(),
            vlan: args.get(&VLAN)?,
            broadcast: args.text(&BROADCAST)?,
        })
    }
}

impl AsyncCommand for CreatePhysicalNetwork {
    /// The row comes from `submit`; the job only reads it.
    const RERUN: bool = true;
    const CREATES: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let z = live_zone(ctx, self.zone, ZONE.name()).await?;
        let method = isolation_method(&self.isolation)?;
        let vnet = vnet_param(method, self.vlan.as_deref())?;
        if let Some(range) = &self.broadcast
            && !range.eq_ignore_ascii_case(BROADCAST_ZONE)
        {
            return Err(Error::invalid(format!(
                "broadcastdomainrange {range} is not supported: physical networks of \
                 Advanced zones have the range ZONE"
            )));
        }
        let name = self.name;
        let created =
            zone::create_physical_network(&ctx.app.db, z.id, &name, method, vnet.as_deref(), &[])
                .await
                .map_err(|e| match e {
                    store::StoreError::Duplicate(_) => Error::invalid(format!(
                        "A physical network named {name} exists in zone {} already",
                        z.uuid
                    )),
                    other => other.into(),
                })?;
        Ok(Submission::created(
            IdJob { id: created.id },
            ("PhysicalNetwork", created.uuid),
            physnet_sync(created.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let created = zone::physical_network_by_id(db, payload.id)
            .await?
            .filter(|p| p.removed.is_none())
            .ok_or_else(|| {
                Error::invalid("The physical network was deleted before its creation finished")
            })?;
        Ok(json!({ "physicalnetwork": physnet_view(db, &created).await? }))
    }

    /// Without its job the row would stay half-created (the API answered no
    /// id for it, or its job failed), so it goes again.
    async fn abandon(app: &App, payload: IdJob) -> Result<(), Error> {
        zone::remove_physical_network(&app.db, payload.id).await?;
        Ok(())
    }
}
