//! `disableStaticNat`: the job removes the address's mapping (an address
//! with static NAT has no other rule, so it also leaves its tier) and sends
//! the VPC's static NAT list without it.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Args, AsyncCommand, Command, Spec, Submission};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::services::ip::common::{self, IP, held_ip};
use crate::store::vlan;

use super::{Mapping, StaticNatMapping, check_has_static_nat};

/// `disableStaticNat`.
pub struct DisableStaticNat {
    ip: Uuid,
}

/// The job of `disableStaticNat` (the keys earlier versions stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisableStaticNatJob {
    /// The address's row id.
    pub ip: i64,
    /// The row id of its VPC.
    pub vpc: i64,
}

impl Command for DisableStaticNat {
    const NAME: &'static str = "disableStaticNat";

    fn spec() -> Spec {
        Spec::new("Removes the static NAT mapping of a public IP address")
            .roles(ALL)
            .param(IP)
            .returns("success", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DisableStaticNat {
            ip: args.need(&IP)?,
        })
    }
}

impl AsyncCommand for DisableStaticNat {
    /// An address without static NAT (an earlier run of this job disabled
    /// it, or the address is gone) is done.
    const RERUN: bool = true;
    type Job = DisableStaticNatJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<DisableStaticNatJob>, Error> {
        let ip = held_ip(ctx, IP.name(), self.ip).await?;
        check_has_static_nat(&ip)?;
        let v = common::vpc_of_ip(&ctx.app.db, &ip).await?;
        let job = DisableStaticNatJob {
            ip: ip.id,
            vpc: v.id,
        };
        Ok(Submission::new(job, ("IpAddress", ip.uuid), vpc_sync(v.id)))
    }

    async fn run(job: &JobCtx, payload: DisableStaticNatJob) -> Result<Value, Error> {
        let app = &job.app;
        let lock = app.network.lock(&app.db, payload.vpc).await?;
        let Some(ip) = vlan::ip_by_id(&app.db, payload.ip).await?.filter(|ip| {
            ip.state != vlan::IP_FREE && ip.vpc_id == Some(payload.vpc) && ip.one_to_one_nat
        }) else {
            return Ok(json!({ "success": true }));
        };
        lock.apply(&StaticNatMapping {
            ip_id: ip.id,
            to: Mapping {
                tier: None,
                vm: None,
            },
            back: Mapping::of(&ip),
        })
        .await?;
        Ok(json!({ "success": true }))
    }
}
