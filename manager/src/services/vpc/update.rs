//! `updateVPC`: name and description; the public NIC's MTU (through the
//! change protocol); a new source NAT address (which replaces the router,
//! as CloudStack restarts the VPC with cleanup).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::model::RouterState;
use crate::provision::change::RouterChange;
use crate::provision::{self, RouterElement};
use crate::rules;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission, Text};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::{ALL, fields};
use crate::services::args::{NEW_NAME, NEW_TEXT};
use crate::store::{self, Db, Page, Tx, vpc};

use super::{FOR_DISPLAY, PUBLIC_MTU, VPC_FIELDS, live_vpc, max_public_mtu, vpc_result};

const ID: Arg<Id> = Arg::req("id", "the ID of the VPC");
const SOURCE_NAT: Arg<Text> = Arg::opt(
    "sourcenatipaddress",
    "an address of the VPC to become its source NAT address (restarts the VPC)",
);
const CUSTOM_ID: Arg<Text> = Arg::opt("customid", "refused: ids are not changed")
    .refused("an object's id is chosen by the manager and never changes");

/// `updateVPC`.
pub struct UpdateVpc {
    id: Uuid,
    name: Option<String>,
    display_text: Option<String>,
    source_nat: Option<std::net::Ipv4Addr>,
    public_mtu: Option<i64>,
}

/// The job of `updateVPC`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateVpcJob {
    pub id: i64,
    pub name: Option<String>,
    #[serde(rename = "displaytext")]
    pub display_text: Option<String>,
    /// The row id of the public address to become the source NAT address.
    #[serde(rename = "sourcenat")]
    pub source_nat: Option<i64>,
    #[serde(rename = "publicmtu")]
    pub public_mtu: Option<i64>,
}

impl Command for UpdateVpc {
    const NAME: &'static str = "updateVPC";

    fn spec() -> Spec {
        Spec::new(
            "Renames a VPC, changes its description, its source NAT address or its public MTU",
        )
        .roles(ALL)
        .param(ID)
        .param(NEW_NAME)
        .param(NEW_TEXT)
        .param(SOURCE_NAT)
        .param(PUBLIC_MTU)
        .param(FOR_DISPLAY)
        .param(CUSTOM_ID)
        .returns("vpc", fields(VPC_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        let name = args.text(&NEW_NAME)?;
        if let Some(n) = &name {
            rules::check_name(NEW_NAME.name(), n)?;
        }
        let display_text = args.text(&NEW_TEXT)?;
        if let Some(t) = &display_text {
            rules::check_length(NEW_TEXT.name(), t, rules::MAX_DISPLAY_TEXT_LEN)?;
        }
        Ok(UpdateVpc {
            id: args.need(&ID)?,
            name,
            display_text,
            source_nat: args
                .text(&SOURCE_NAT)?
                .map(|a| rules::parse_ipv4(SOURCE_NAT.name(), &a))
                .transpose()?,
            public_mtu: args.params().long(PUBLIC_MTU.name())?,
        })
    }
}

impl AsyncCommand for UpdateVpc {
    /// It writes the same values again; an MTU in place is not pushed, and
    /// a new source NAT address restarts the VPC with cleanup again (as
    /// `restartVPC`, safe to run twice).
    const RERUN: bool = true;
    type Job = UpdateVpcJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<UpdateVpcJob>, Error> {
        let v = live_vpc(ctx, self.id, ID.name()).await?;
        let source_nat = match self.source_nat {
            None => None,
            Some(address) => Some(source_nat_candidate(&ctx.app.db, &v, address).await?),
        };
        let public_mtu = match self.public_mtu {
            Some(mtu) => Some(i64::from(rules::vpc::check_public_mtu(
                mtu,
                max_public_mtu(&ctx.app.db).await?,
            )?)),
            None => None,
        };
        let job = UpdateVpcJob {
            id: v.id,
            name: self.name,
            display_text: self.display_text,
            source_nat,
            public_mtu,
        };
        Ok(Submission::new(job, ("Vpc", v.uuid), vpc_sync(v.id)))
    }

    async fn run(job: &JobCtx, payload: UpdateVpcJob) -> Result<Value, Error> {
        let app = &job.app;
        let id = payload.id;
        let lock = app.network.lock(&app.db, id).await?;
        if !vpc::update(
            &app.db,
            id,
            payload.name.as_deref(),
            payload.display_text.as_deref(),
        )
        .await?
        {
            return Err(Error::invalid("The VPC was deleted meanwhile"));
        }
        if let Some(mtu) = payload.public_mtu {
            let Some(v) = vpc::get_by_id(&app.db, id)
                .await?
                .filter(|v| v.removed.is_none())
            else {
                return Err(Error::invalid("The VPC was deleted meanwhile"));
            };
            // CloudStack leaves an MTU that is already in place alone.
            if v.public_mtu != mtu {
                lock.apply(&PublicMtu {
                    vpc_id: id,
                    mtu,
                    old: v.public_mtu,
                })
                .await?;
            }
        }
        if let Some(ip) = payload.source_nat {
            let mut tx = app.db.begin().await?;
            store::vlan::set_source_nat(&mut tx, id, ip).await?;
            vpc::set_source_nat_ip(&mut tx, id, Some(ip)).await?;
            tx.commit().await?;
            // A new source NAT address means a new router (CloudStack
            // restarts the VPC with cleanup).
            provision::vpc::restart_vpc(&app.db, &app.network, id, true).await?;
        }
        vpc_result(&app.db, id).await
    }
}

/// The row id of `address` when it may become the VPC's source NAT
/// address: acquired for the VPC, with no static NAT and no rules.
async fn source_nat_candidate(
    db: &Db,
    v: &vpc::Vpc,
    address: std::net::Ipv4Addr,
) -> Result<i64, Error> {
    let ip = store::vlan::list_ips(
        db,
        &store::vlan::PublicIpFilter {
            vpc_id: Some(v.id),
            address: Some(address.to_string()),
            state: Some(store::vlan::IP_ALLOCATED.into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items
    .into_iter()
    .next()
    .ok_or_else(|| {
        Error::invalid(format!(
            "{address} is not a public address acquired for VPC {}",
            v.uuid
        ))
    })?;
    if ip.one_to_one_nat || ip.associated_network_id.is_some() {
        return Err(Error::invalid(format!(
            "{address} is in use by static NAT or rules and cannot become the source NAT address"
        )));
    }
    Ok(ip.id)
}

/// The MTU of the router's public NIC.
struct PublicMtu {
    vpc_id: i64,
    mtu: i64,
    old: i64,
}

impl RouterChange for PublicMtu {
    type Written = ();

    fn what(&self) -> &'static str {
        "the public MTU"
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        vpc::set_public_mtu(tx, self.vpc_id, self.mtu).await?;
        Ok(())
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        element.apply_public_nic(state, generation).await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        vpc::set_public_mtu(db, self.vpc_id, self.old).await?;
        Ok(())
    }
}
