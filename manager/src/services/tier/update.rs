//! `updateNetwork` of a VPC tier: its name and description. A tier keeps
//! its VPC's network domain and its offering.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{NETWORK_FIELDS, live_tier, network_result, sees_admin_fields, sync_object};
use crate::error::Error;
use crate::rules;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission, Text};
use crate::server::jobs::JobCtx;
use crate::server::registry::{ALL, fields};
use crate::services::args::{NEW_NAME, NEW_TEXT};
use crate::store::{network, offering};

const ID: Arg<Id> = Arg::req("id", "the ID of the network");
const NETWORK_DOMAIN: Arg<Text> =
    Arg::opt("networkdomain", "the DNS domain: a tier keeps its VPC's");
const OFFERING: Arg<Id> = Arg::opt(
    "networkofferingid",
    "a new offering: not supported for tiers",
);

/// `updateNetwork`.
pub struct UpdateNetwork {
    id: Uuid,
    name: Option<String>,
    display_text: Option<String>,
    network_domain: Option<String>,
    offering: Option<Uuid>,
}

/// The job of `updateNetwork`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateNetworkJob {
    /// The tier's row id.
    pub id: i64,
    pub name: Option<String>,
    #[serde(rename = "displaytext")]
    pub display_text: Option<String>,
}

impl Command for UpdateNetwork {
    const NAME: &'static str = "updateNetwork";

    fn spec() -> Spec {
        Spec::new("Renames a tier or changes its description")
            .roles(ALL)
            .param(ID)
            .param(NEW_NAME)
            .param(NEW_TEXT)
            .param(NETWORK_DOMAIN)
            .param(OFFERING)
            .returns("network", fields(NETWORK_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateNetwork {
            id: args.need(&ID)?,
            name: args.text(&NEW_NAME)?,
            display_text: args.text(&NEW_TEXT)?,
            network_domain: args.text(&NETWORK_DOMAIN)?,
            offering: args.get(&OFFERING)?,
        })
    }
}

impl AsyncCommand for UpdateNetwork {
    /// It writes the same values again.
    const RERUN: bool = true;
    type Job = UpdateNetworkJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<UpdateNetworkJob>, Error> {
        let t = live_tier(ctx, self.id, ID.name()).await?;
        if let Some(n) = &self.name {
            rules::check_name(NEW_NAME.name(), n)?;
        }
        if let Some(d) = &self.display_text {
            rules::check_length(NEW_TEXT.name(), d, rules::MAX_DISPLAY_TEXT_LEN)?;
        }
        if let Some(d) = &self.network_domain {
            let current = t.network_domain.clone().unwrap_or_default();
            if !d.eq_ignore_ascii_case(&current) {
                return Err(Error::invalid(format!(
                    "The network domain of VPC tier {} can't be changed: it is its VPC's ({current})",
                    t.uuid
                )));
            }
        }
        if let Some(o) = self.offering {
            let current =
                offering::network_offering_by_id(&ctx.app.db, t.network_offering_id).await?;
            if current.is_none_or(|c| c.uuid != o) {
                return Err(Error::invalid(format!(
                    "Changing the network offering of VPC tier {} is not supported",
                    t.uuid
                )));
            }
        }
        let job = UpdateNetworkJob {
            id: t.id,
            name: self.name,
            display_text: self.display_text,
        };
        Ok(Submission::new(job, ("Network", t.uuid), sync_object(&t)))
    }

    async fn run(job: &JobCtx, payload: UpdateNetworkJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let updated = network::update(
            db,
            payload.id,
            payload.name.as_deref(),
            payload.display_text.as_deref(),
        )
        .await?;
        if !updated {
            return Err(Error::invalid("The network was deleted meanwhile"));
        }
        network_result(db, payload.id, sees_admin_fields(job.caller.role)).await
    }
}
