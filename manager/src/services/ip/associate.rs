//! `associateIpAddress` (async-create, reference §3.5): the address is
//! taken from the zone's pool for the VPC during the request (the VPC's
//! first becomes its source NAT address); the job associates it on the
//! router ([`AcquiredIp`]) and gives it back when the router refuses.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{Capacity, Error};
use crate::orchestration::ElementResult;
use crate::orchestration::model::RouterState;
use crate::provision::RouterElement;
use crate::provision::change::RouterChange;
use crate::rules;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Flag, Id, Int, Spec, Submission, Text,
};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::server::{App, Ctx};
use crate::services::owner::{self, OwnerArgs};
use crate::services::vpc::live_vpc;
use crate::store::{Db, Tx, network, vlan, vpc, zone};

use super::common::{self, Names};
use super::push::send_ip;
use super::views::{IP_FIELDS, ip_view};

const VPC: Arg<Id> = Arg::opt(
    "vpcid",
    "the VPC to acquire the address for; its first address becomes its source NAT address",
);
const NETWORK: Arg<Id> = Arg::opt(
    "networkid",
    "a VPC tier: the address is acquired for the tier's VPC and bound to the tier",
);
const ZONE: Arg<Id> = Arg::opt("zoneid", "the zone; must be the VPC's");
const ADDRESS: Arg<Text> = Arg::opt(
    "ipaddress",
    "a specific free address of the zone to acquire",
);
const PORTABLE: Arg<Flag> = Arg::opt(
    "isportable",
    "accepted; portable addresses are not supported",
);
const REGION: Arg<Int> = Arg::opt("regionid", "accepted; regions are not supported");
const FOR_DISPLAY: Arg<Flag> = Arg::opt("fordisplay", "accepted; addresses are always shown");

/// `associateIpAddress`.
pub struct AssociateIpAddress {
    vpc: Option<Uuid>,
    network: Option<Uuid>,
    zone: Option<Uuid>,
    /// Parsed as an address after the VPC checks (the order of errors).
    address: Option<String>,
    owner: OwnerArgs,
}

/// The job of `associateIpAddress`: associate the acquired address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociateIpJob {
    /// The address's row id.
    pub ip: i64,
    /// The row id of its VPC.
    pub vpc: i64,
    /// Whether it became the VPC's source NAT address (undone with it).
    #[serde(rename = "sourcenat")]
    pub source_nat: bool,
    /// When the request allocated it (`allocated` of its row): a job run
    /// again after the address was given back and taken by another request
    /// must not take it for its own. Absent in jobs of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<i64>,
}

impl Command for AssociateIpAddress {
    const NAME: &'static str = "associateIpAddress";

    fn spec() -> Spec {
        Spec::new("Acquires a public IP address for a VPC")
            .roles(ALL)
            .param(VPC)
            .param(NETWORK)
            .param(ZONE)
            .param(ADDRESS)
            .param(PORTABLE)
            .param(REGION)
            .param(FOR_DISPLAY)
            .params(OwnerArgs::specs())
            .returns("ipaddress", IP_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(AssociateIpAddress {
            vpc: args.get(&VPC)?,
            network: args.get(&NETWORK)?,
            zone: args.get(&ZONE)?,
            address: args.text(&ADDRESS)?,
            owner: OwnerArgs::parse(args)?,
        })
    }
}

impl AsyncCommand for AssociateIpAddress {
    const CREATES: bool = true;
    /// The address comes from `submit`; a run finds it still the job's
    /// (same VPC, same allocation) or fails, and IpAssoc of an address the
    /// router holds changes nothing.
    const RERUN: bool = true;
    type Job = AssociateIpJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<AssociateIpJob>, Error> {
        let db = &ctx.app.db;
        let (v, tier) = target_of(ctx, self.vpc, self.network).await?;
        common::check_enabled(&v)?;
        if let Some(zone_id) = self.zone {
            let z = zone::get_by_uuid(db, zone_id)
                .await?
                .filter(|z| z.removed.is_none())
                .ok_or_else(|| Error::invalid_id(ZONE.name(), zone_id.to_string()))?;
            if z.id != v.zone_id {
                return Err(Error::invalid(format!(
                    "VPC {} is in another zone than zoneid {}",
                    v.uuid, z.uuid
                )));
            }
        }
        // The address belongs to the VPC's owner; `account`/`domainid` may
        // only name that owner.
        if self.owner.account.is_some() {
            let asked = self.owner.resolve(ctx).await?;
            if asked.account_id != v.account_id {
                return Err(Error::invalid(format!(
                    "VPC {} belongs to another account than {}; addresses of a VPC belong to its owner",
                    v.uuid, asked.account_name
                )));
            }
        }
        let asked = self
            .address
            .map(|a| rules::parse_ipv4(ADDRESS.name(), &a))
            .transpose()?;
        let zone_uuid = zone::get_by_id(db, v.zone_id)
            .await?
            .map(|z| z.uuid.to_string())
            .unwrap_or_default();

        // Under the VPC's lock: two first addresses must not both become
        // its source NAT address.
        let _lock = ctx.app.network.lock(db, v.id).await?;
        // §3.5: the VPC's first address becomes its source NAT address.
        let source_nat = v.source_nat_ip_id.is_none();
        let mut tx = db.begin().await?;
        owner::check_limit(&mut tx, v.account_id, "public_ip", 1).await?;
        let ip = vlan::allocate_ip(
            &mut tx,
            v.zone_id,
            asked,
            vlan::IpOwner {
                account_id: v.account_id,
                domain_id: v.domain_id,
                vpc_id: Some(v.id),
                source_nat,
            },
        )
        .await?
        .ok_or_else(|| no_free_address(&zone_uuid, asked))?;
        if source_nat {
            vpc::set_source_nat_ip(&mut tx, v.id, Some(ip.id)).await?;
        }
        if let Some(t) = &tier {
            vlan::set_association(&mut tx, ip.id, Some(t.id), false).await?;
        }
        tx.commit().await?;
        let job = AssociateIpJob {
            ip: ip.id,
            vpc: v.id,
            source_nat,
            allocated: ip.allocated,
        };
        Ok(Submission::created(
            job,
            ("IpAddress", ip.uuid),
            vpc_sync(v.id),
        ))
    }

    async fn run(job: &JobCtx, payload: AssociateIpJob) -> Result<Value, Error> {
        let app = &job.app;
        let lock = app.network.lock(&app.db, payload.vpc).await?;
        let ip = common::reload_ip(&app.db, payload.ip).await?;
        if ip.vpc_id != Some(payload.vpc)
            || payload.allocated.is_some_and(|at| ip.allocated != Some(at))
        {
            // Given back (the router refused it on an earlier run of this
            // job) and acquired again by another request.
            return Err(Error::invalid("The ip address was released meanwhile"));
        }
        lock.apply(&AcquiredIp {
            job: payload,
            uuid: ip.uuid,
        })
        .await?;
        let ip = common::reload_ip(&app.db, payload.ip).await?;
        let view = ip_view(&app.db, &job.caller, &mut Names::default(), &ip).await?;
        Ok(json!({ "ipaddress": view }))
    }

    /// The address goes back to the pool, as when the router refuses it
    /// (`AbandonedIp`).
    async fn abandon(app: &App, payload: AssociateIpJob) -> Result<(), Error> {
        let lock = app.network.lock(&app.db, payload.vpc).await?;
        lock.apply(&AbandonedIp { job: payload }).await
    }
}

/// An address the request acquired, associated on the router (IpAssoc
/// add=true); given back to the pool when the router refuses it.
struct AcquiredIp {
    job: AssociateIpJob,
    uuid: Uuid,
}

impl RouterChange for AcquiredIp {
    type Written = ();

    fn what(&self) -> &'static str {
        "a new public address"
    }

    /// The request took the address already.
    async fn write(&self, _tx: &mut Tx) -> Result<(), Error> {
        Ok(())
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        send_ip(element, state, generation, self.uuid).await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        give_back(db, &self.job).await
    }
}

/// An acquisition whose job never ran or whose manager died: the job
/// fails, so the address goes back to the pool as when the router refuses
/// it. The router may hold the address already, and IpAssoc add=false is
/// refused for an address it does not hold, so it gets its whole state
/// again. Nothing comes back when it refuses that: the protocol's second
/// generation makes the monitor send the state later.
struct AbandonedIp {
    job: AssociateIpJob,
}

impl RouterChange for AbandonedIp {
    type Written = ();

    fn what(&self) -> &'static str {
        "an abandoned public address"
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        vlan::release_ip(&mut *tx, self.job.ip).await?;
        if self.job.source_nat {
            vpc::set_source_nat_ip(tx, self.job.vpc, None).await?;
        }
        Ok(())
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        element.resync(state, generation).await
    }

    async fn undo(&self, _db: &Db, _: &()) -> Result<(), Error> {
        Ok(())
    }
}

/// Undoes an acquisition: the address goes back to the pool and, when it
/// was the VPC's source NAT address, the VPC has none again. Both are
/// tried; the first error is returned.
async fn give_back(db: &Db, job: &AssociateIpJob) -> Result<(), Error> {
    let released = vlan::release_ip(db, job.ip).await;
    let cleared = if job.source_nat {
        vpc::set_source_nat_ip(db, job.vpc, None).await.map(|_| ())
    } else {
        Ok(())
    };
    released?;
    cleared?;
    Ok(())
}

/// The VPC (and tier) an address is acquired for, from `vpcid`/`networkid`.
async fn target_of(
    ctx: &Ctx,
    vpc_id: Option<Uuid>,
    network_id: Option<Uuid>,
) -> Result<(vpc::Vpc, Option<network::Network>), Error> {
    let tier = common::tier_opt(ctx, NETWORK.name(), network_id).await?;
    let asked = match vpc_id {
        Some(id) => Some(live_vpc(ctx, id, VPC.name()).await?),
        None => None,
    };
    let v = match (&tier, asked) {
        (Some(t), asked) => {
            let vpc_id = t.vpc_id.ok_or_else(|| {
                Error::invalid(format!(
                    "Network {} is not a VPC tier; only VPC networks exist here",
                    t.uuid
                ))
            })?;
            let v = vpc::get_by_id(&ctx.app.db, vpc_id)
                .await?
                .filter(|v| v.removed.is_none())
                .ok_or_else(|| Error::invalid("The VPC of the network is gone"))?;
            if let Some(asked) = asked
                && asked.id != v.id
            {
                return Err(Error::invalid(format!(
                    "Network {} is a tier of VPC {}, not of vpcid {}",
                    t.uuid, v.uuid, asked.uuid
                )));
            }
            v
        }
        (None, Some(v)) => v,
        (None, None) => {
            return Err(Error::invalid(
                "vpcid is required to acquire a public ip address (or networkid of a VPC tier): \
                 addresses are acquired for VPCs",
            ));
        }
    };
    Ok((v, tier))
}

/// 533 (InsufficientAddressCapacityException) when no address is free.
fn no_free_address(zone: &str, asked: Option<std::net::Ipv4Addr>) -> Error {
    match asked {
        Some(a) => Error::invalid(format!(
            "ip address {a} is not a free public address of zone {zone}"
        )),
        None => Error::insufficient(
            Capacity::PublicAddress,
            format!("Insufficient address capacity: no free public ip address in zone {zone}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_pool_is_a_capacity_error_a_taken_address_a_parameter_error() {
        let e = crate::api::ApiError::from(no_free_address("z1", None));
        assert_eq!((e.code, e.cs_code), (533, 4320));
        assert!(
            e.text.contains("Insufficient address capacity"),
            "{}",
            e.text
        );
        let e =
            crate::api::ApiError::from(no_free_address("z1", Some("203.0.113.9".parse().unwrap())));
        assert_eq!(e.code, 431);
        assert!(e.text.contains("203.0.113.9 is not a free"), "{}", e.text);
    }

    #[test]
    fn the_job_reads_the_keys_earlier_versions_stored() {
        let job: AssociateIpJob =
            serde_json::from_value(json!({ "ip": 4, "vpc": 2, "sourcenat": true })).unwrap();
        assert_eq!(
            job,
            AssociateIpJob {
                ip: 4,
                vpc: 2,
                source_nat: true,
                allocated: None,
            }
        );
    }
}
