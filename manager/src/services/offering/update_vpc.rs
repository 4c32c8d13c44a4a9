//! `updateVPCOffering` (root admin): name, description, state, sort key,
//! and the domains and zones that may use the offering (`domainid`,
//! `zoneid`: comma-separated IDs, `public` / `all` to lift the
//! restriction, absent to keep it). The default offering cannot be
//! disabled.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::scope::{DOMAINS, ZONES, parse_domains, parse_zones};
use super::views::VPC_OFFERING_FIELDS;
use super::{
    STATE, check_name_free, live_vpc_offering, offering_state, vpc_offering_result,
    vpc_offering_sync,
};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Int, Spec, Submission, Text};
use crate::server::jobs::JobCtx;
use crate::server::registry::ROOT;
use crate::store::offering;

const ID: Arg<Id> = Arg::req("id", "the ID of the VPC offering");
const NAME: Arg<Text> = Arg::opt("name", "the new name of the VPC offering");
const DISPLAY_TEXT: Arg<Text> = Arg::opt("displaytext", "the new description of the offering");
const SORT_KEY: Arg<Int> = Arg::opt("sortkey", "the position of the offering in lists");

/// `updateVPCOffering`.
pub struct UpdateVpcOffering {
    id: Uuid,
    name: Option<String>,
    display_text: Option<String>,
    state: Option<String>,
    sort_key: Option<i64>,
    domains: Option<String>,
    zones: Option<String>,
}

/// The job of `updateVPCOffering`: the checked values to store (its keys
/// are those of the previous version's job rows).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateVpcOfferingJob {
    pub id: i64,
    pub name: Option<String>,
    #[serde(rename = "displaytext")]
    pub display_text: Option<String>,
    pub state: Option<String>,
    #[serde(rename = "sortkey")]
    pub sort_key: Option<i64>,
    /// The domains (row ids) that may use it from now on, empty for every
    /// domain; None keeps them.
    #[serde(default, rename = "domainids", skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<i64>>,
    /// The zones, likewise.
    #[serde(default, rename = "zoneids", skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<i64>>,
}

impl Command for UpdateVpcOffering {
    const NAME: &'static str = "updateVPCOffering";

    fn spec() -> Spec {
        Spec::new(
            "Changes the name, description or state of a VPC offering, or the domains and \
             zones that may use it",
        )
        .roles(ROOT)
        .param(ID)
        .param(NAME)
        .param(DISPLAY_TEXT)
        .param(STATE)
        .param(SORT_KEY)
        .param(DOMAINS)
        .param(ZONES)
        .returns("vpcoffering", VPC_OFFERING_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateVpcOffering {
            id: args.need(&ID)?,
            // A blank name changes nothing.
            name: args.get(&NAME)?.filter(|n| !n.trim().is_empty()),
            display_text: args.text(&DISPLAY_TEXT)?,
            state: args.get(&STATE)?,
            // Read as 64-bit: the registry checked it is a 32-bit integer.
            sort_key: args.params().long(SORT_KEY.name())?,
            domains: args.get(&DOMAINS)?,
            zones: args.get(&ZONES)?,
        })
    }
}

impl AsyncCommand for UpdateVpcOffering {
    /// It writes the same values again.
    const RERUN: bool = true;
    type Job = UpdateVpcOfferingJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<UpdateVpcOfferingJob>, Error> {
        let o = live_vpc_offering(ctx, self.id, ID.name()).await?;
        if let Some(name) = &self.name {
            check_name_free(&ctx.app.db, name, Some(o.id)).await?;
        }
        let state = offering_state(self.state.as_deref())?;
        if o.is_default && state == Some(offering::STATE_DISABLED.as_str()) {
            return Err(Error::invalid(format!(
                "The default VPC offering {} cannot be disabled",
                o.uuid
            )));
        }
        let domains = parse_domains(&ctx.app.db, self.domains.as_deref()).await?;
        let zones = parse_zones(&ctx.app.db, self.zones.as_deref()).await?;
        let job = UpdateVpcOfferingJob {
            id: o.id,
            name: self.name,
            display_text: self.display_text,
            state: state.map(str::to_string),
            sort_key: self.sort_key,
            domains,
            zones,
        };
        Ok(Submission::new(
            job,
            ("VpcOffering", o.uuid),
            vpc_offering_sync(o.id),
        ))
    }

    async fn run(job: &JobCtx, payload: UpdateVpcOfferingJob) -> Result<Value, Error> {
        let db = &job.app.db;
        // The row and its domains and zones change together.
        let mut tx = db.begin().await?;
        let updated = offering::update_vpc_offering(
            &mut tx,
            payload.id,
            payload.name.as_deref(),
            payload.display_text.as_deref(),
            payload.state.as_deref(),
            payload.sort_key,
        )
        .await?;
        if !updated {
            return Err(Error::invalid("The VPC offering was deleted meanwhile"));
        }
        if let Some(domains) = &payload.domains {
            offering::set_vpc_offering_domains(&mut tx, payload.id, domains).await?;
        }
        if let Some(zones) = &payload.zones {
            offering::set_vpc_offering_zones(&mut tx, payload.id, zones).await?;
        }
        tx.commit().await?;
        vpc_offering_result(db, payload.id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_jobs_of_the_previous_version_keep_domains_and_zones() {
        let old: UpdateVpcOfferingJob = serde_json::from_str(
            r#"{"id":5,"name":null,"displaytext":"x","state":null,"sortkey":null}"#,
        )
        .unwrap();
        assert_eq!((old.domains, old.zones), (None, None));
        let new = UpdateVpcOfferingJob {
            domains: Some(vec![]),
            zones: Some(vec![3]),
            ..old
        };
        let row = serde_json::to_value(&new).unwrap();
        assert_eq!(row["domainids"], serde_json::json!([]));
        assert_eq!(row["zoneids"], serde_json::json!([3]));
    }
}
