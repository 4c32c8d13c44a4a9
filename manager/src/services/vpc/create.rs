//! `createVPC` (async-create, CloudStack reference §2.3): the VPC's row and
//! its router's row in the request, the router and the source NAT address
//! in the job; a VPC whose start fails is destroyed (as CloudStack does).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::Error;
use crate::provision;
use crate::rules;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Flag, Id, Int, Spec, Submission, Text,
};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::{ALL, fields};
use crate::server::{App, Ctx};
use crate::services::owner::{self, OwnerArgs};
use crate::services::zone::zone_by_id;
use crate::store::{Db, account, config, offering, vpc};

use super::{DNS1, DNS2, FOR_DISPLAY, PUBLIC_MTU, VPC_FIELDS, max_public_mtu, vpc_result};

const NAME: Arg<Text> = Arg::req("name", "the name of the VPC");
const ZONE: Arg<Id> = Arg::req("zoneid", "the zone of the VPC");
const OFFERING: Arg<Id> = Arg::req("vpcofferingid", "the VPC offering (Enabled)");
const CIDR: Arg<Text> = Arg::opt(
    "cidr",
    "the super CIDR of the VPC's tiers (RFC 1918 or 100.64.0.0/10)",
);
const CIDR_SIZE: Arg<Int> = Arg::opt("cidrsize", "only for ROUTED offerings (not supported)");
const DISPLAY_TEXT: Arg<Text> = Arg::opt("displaytext", "the description; default the name");
const NETWORK_DOMAIN: Arg<Text> = Arg::opt("networkdomain", "the DNS domain of the tiers");
const START: Arg<Flag> = Arg::opt("start", "false: do not start the router now (default true)");
const SOURCE_NAT: Arg<Text> = Arg::opt(
    "sourcenatipaddress",
    "this free public address as the VPC's source NAT address",
);

/// `createVPC`.
pub struct CreateVpc {
    name: String,
    zone: Uuid,
    offering: Uuid,
    cidr: Option<String>,
    cidr_size: Option<i64>,
    display_text: Option<String>,
    network_domain: Option<String>,
    start: bool,
    public_mtu: Option<i64>,
    dns1: Option<String>,
    dns2: Option<String>,
    source_nat: Option<Ipv4Addr>,
    owner: OwnerArgs,
}

/// The job of `createVPC`: start the VPC's router (unless `start=false`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateVpcJob {
    /// The VPC's row id.
    pub id: i64,
    pub start: bool,
    #[serde(rename = "sourcenatipaddress")]
    pub source_nat: Option<Ipv4Addr>,
}

impl Command for CreateVpc {
    const NAME: &'static str = "createVPC";

    fn spec() -> Spec {
        Spec::new("Creates a VPC and starts its virtual router")
            .roles(ALL)
            .param(NAME)
            .param(ZONE)
            .param(OFFERING)
            .param(CIDR)
            .param(CIDR_SIZE)
            .param(DISPLAY_TEXT)
            .param(NETWORK_DOMAIN)
            .param(START)
            .param(PUBLIC_MTU)
            .param(DNS1)
            .param(DNS2)
            .param(SOURCE_NAT)
            .param(FOR_DISPLAY)
            .params(OwnerArgs::specs())
            .returns("vpc", fields(VPC_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        let params = args.params();
        Ok(CreateVpc {
            name: args.need(&NAME)?,
            zone: args.need(&ZONE)?,
            offering: args.need(&OFFERING)?,
            cidr: args.get(&CIDR)?,
            cidr_size: params.long(CIDR_SIZE.name())?,
            display_text: args.get(&DISPLAY_TEXT)?,
            network_domain: args.get(&NETWORK_DOMAIN)?,
            start: args.get(&START)?.unwrap_or(true),
            public_mtu: params.long(PUBLIC_MTU.name())?,
            dns1: args.get(&DNS1)?,
            dns2: args.get(&DNS2)?,
            source_nat: args
                .text(&SOURCE_NAT)?
                .map(|a| rules::parse_ipv4(SOURCE_NAT.name(), &a))
                .transpose()?,
            owner: OwnerArgs::parse(args)?,
        })
    }
}

impl AsyncCommand for CreateVpc {
    const CREATES: bool = true;
    /// The start finds the router, source NAT address and public NIC an
    /// earlier run made, and starting a running router again gives it its
    /// whole state once more.
    const RERUN: bool = true;
    type Job = CreateVpcJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<CreateVpcJob>, Error> {
        let db = &ctx.app.db;
        // Every VPC service is the VPC virtual router's: without it no VPC works.
        if !ctx
            .app
            .network
            .plugins
            .element_enabled(crate::orchestration::VPC_VIRTUAL_ROUTER)
        {
            return Err(Error::invalid(
                "The VpcVirtualRouter network element is not enabled (network_elements in the \
                 settings); no provider can serve a VPC",
            ));
        }
        let owner = self.owner.resolve(ctx).await?;
        let settings = provision::rules_config(db).await?;
        rules::vpc::check_cidr_or_size(
            self.cidr.as_deref(),
            self.cidr_size,
            false,
            ctx.caller.is_root_admin(),
        )?;
        let checked = rules::vpc::validate_new_vpc(
            &rules::vpc::NewVpc {
                name: &self.name,
                display_text: self.display_text.as_deref(),
                cidr: self.cidr.as_deref().unwrap_or_default(),
                network_domain: self.network_domain.as_deref(),
            },
            &settings,
        )?;
        let z = zone_by_id(ctx, self.zone, ZONE.name()).await?;
        rules::vpc::check_zone_usable(
            &z.name,
            z.allocation_state == "Enabled",
            ctx.caller.is_root_admin(),
        )?;
        let offering_id = self.offering;
        let o = offering::vpc_offering_by_uuid(db, offering_id)
            .await?
            .filter(|o| o.removed.is_none())
            .ok_or_else(|| Error::invalid_id(OFFERING.name(), offering_id))?;
        let state = if o.state == offering::STATE_ENABLED {
            rules::vpc::OfferingState::Enabled
        } else {
            rules::vpc::OfferingState::Disabled
        };
        rules::vpc::check_offering_enabled(o.uuid, state)?;
        // The owner's domain and the zone must be among the offering's.
        let owner_account = account::get_by_id(db, owner.account_id)
            .await?
            .ok_or_else(|| Error::internal("the VPC's owner account is gone"))?;
        crate::services::offering::check_vpc_offering_access(
            db,
            &o,
            &owner.account_name,
            owner_account.account_type == account::TYPE_ADMIN,
            &owner.domain_path,
            z.id,
        )
        .await?;
        let services = offering::vpc_offering_services(db, o.id).await?;
        rules::vpc::check_dns(
            self.dns1.as_deref(),
            self.dns2.as_deref(),
            services.iter().any(|s| s.service == "Dns"),
        )?;
        let dns = |name: &str, value: &Option<String>| -> Result<Option<String>, Error> {
            value
                .as_deref()
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(|d| rules::parse_ipv4(name, d).map(|a| a.to_string()))
                .transpose()
        };
        let dns1 = dns(DNS1.name(), &self.dns1)?;
        let dns2 = dns(DNS2.name(), &self.dns2)?;
        let max_mtu = max_public_mtu(db).await?;
        // Not given: CloudStack's 1500, within the zone's maximum.
        let public_mtu = match self.public_mtu {
            Some(mtu) => i64::from(rules::vpc::check_public_mtu(mtu, max_mtu)?),
            None => vpc::DEFAULT_PUBLIC_MTU.min(max_mtu),
        };
        let network_domain = match checked.network_domain {
            Some(d) => d,
            None => default_domain(db, owner.account_id).await?,
        };

        let mut tx = db.begin().await?;
        owner::check_limit(&mut tx, owner.account_id, "vpc", 1).await?;
        let created = vpc::create(
            &mut tx,
            vpc::NewVpc {
                name: checked.name,
                display_text: checked.display_text,
                zone_id: z.id,
                cidr: checked.cidr.to_string(),
                account_id: owner.account_id,
                domain_id: owner.domain_id,
                vpc_offering_id: o.id,
                network_domain: Some(network_domain),
            },
        )
        .await?;
        if dns1.is_some() {
            vpc::set_dns(&mut tx, created.id, dns1.as_deref(), dns2.as_deref()).await?;
        }
        if public_mtu != created.public_mtu {
            vpc::set_public_mtu(&mut tx, created.id, public_mtu).await?;
        }
        // A VPC that starts gets its router, public NIC and source NAT
        // address together in the job, so no list ever shows a router
        // without its public address (Libcloud reads `publicip` of every
        // router). One that does not start gets its router now, Stopped,
        // for its first tier to plug into.
        if !self.start {
            provision::vpc::ensure_router(&mut tx, &created).await?;
        }
        tx.commit().await?;
        let job = CreateVpcJob {
            id: created.id,
            start: self.start,
            source_nat: self.source_nat,
        };
        Ok(Submission::created(
            job,
            ("Vpc", created.uuid),
            vpc_sync(created.id),
        ))
    }

    async fn run(job: &JobCtx, payload: CreateVpcJob) -> Result<Value, Error> {
        let app = &job.app;
        let id = payload.id;
        let _lock = app.network.lock(&app.db, id).await?;
        let started = if payload.start {
            provision::vpc::start_vpc(&app.db, &app.network, id, payload.source_nat).await
        } else {
            Ok(())
        };
        if let Err(e) = started {
            // CloudStack destroys a VPC whose start failed.
            if let Err(undo) = provision::vpc::destroy_vpc(&app.db, &app.network, id).await {
                tracing::error!(error = %undo, "destroying a VPC whose start failed");
            }
            return Err(e);
        }
        vpc_result(&app.db, id).await
    }

    /// The VPC is destroyed, as when its start fails: its router is removed
    /// through the driver, its rows go.
    async fn abandon(app: &App, payload: CreateVpcJob) -> Result<(), Error> {
        let _lock = app.network.lock(&app.db, payload.id).await?;
        provision::vpc::destroy_vpc(&app.db, &app.network, payload.id).await
    }
}

/// The account's network domain, else `cs<hex id>.<guest.domain.suffix>`.
async fn default_domain(db: &Db, account_id: i64) -> Result<String, Error> {
    if let Some(d) = account::get_by_id(db, account_id)
        .await?
        .and_then(|a| a.network_domain)
        .filter(|d| !d.is_empty())
    {
        return Ok(d);
    }
    let suffix = config::value(db, "guest.domain.suffix")
        .await?
        .unwrap_or_else(|| "cloud.internal".into());
    Ok(rules::vpc::default_network_domain(
        u64::try_from(account_id).unwrap_or_default(),
        &suffix,
    ))
}
