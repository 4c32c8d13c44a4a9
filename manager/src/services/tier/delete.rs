//! `deleteNetwork` of a VPC tier: a tier without VMs leaves its router,
//! its guru has the last word, and its rows go with its rules and address
//! associations.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{job_tier, live_tier, sync_object};
use crate::error::Error;
use crate::provision::tier as tiers;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Flag, Id, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ALL;
use crate::services::ip::push::{Withdraw, Withdrawal};
use crate::store::{Page, Tx, network, rule, vlan, vm, vnet};

const ID: Arg<Id> = Arg::req("id", "the ID of the network");
const FORCED: Arg<Flag> = Arg::opt(
    "forced",
    "root admin: delete even if the router cannot be cleaned up",
);

/// `deleteNetwork`.
pub struct DeleteNetwork {
    id: Uuid,
    forced: bool,
}

/// The job of `deleteNetwork`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteNetworkJob {
    /// The tier's row id.
    pub id: i64,
    /// Delete even when the router could not be cleaned up.
    #[serde(default)]
    pub forced: bool,
}

impl Command for DeleteNetwork {
    const NAME: &'static str = "deleteNetwork";

    fn spec() -> Spec {
        Spec::new("Deletes a tier in which no VM is left")
            .roles(ALL)
            .param(ID)
            .param(FORCED)
            .returns("network", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteNetwork {
            id: args.need(&ID)?,
            forced: args.get(&FORCED)?.unwrap_or(false),
        })
    }
}

impl AsyncCommand for DeleteNetwork {
    /// A tier deleted already is done; one taken off its router already is
    /// not taken down again (its state says so).
    const RERUN: bool = true;
    type Job = DeleteNetworkJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<DeleteNetworkJob>, Error> {
        let t = live_tier(ctx, self.id, ID.name()).await?;
        if self.forced && !ctx.caller.is_root_admin() {
            return Err(Error::invalid(
                "Delete network with 'forced' option can only be called by root admins",
            ));
        }
        let job = DeleteNetworkJob {
            id: t.id,
            forced: self.forced,
        };
        Ok(Submission::new(job, ("Network", t.uuid), sync_object(&t)))
    }

    async fn run(job: &JobCtx, payload: DeleteNetworkJob) -> Result<Value, Error> {
        let app = &job.app;
        let db = &app.db;
        if network::get_by_id(db, payload.id)
            .await?
            .is_none_or(|t| t.removed.is_some())
        {
            // Deleted already (by an earlier run of this job, or meanwhile).
            return Ok(json!({ "success": true }));
        }
        let (t, vpc_id) = job_tier(db, payload.id).await?;
        let lock = app.network.lock(db, vpc_id).await?;
        // CloudStack refuses while any VM of the tier is not expunged; the
        // command then fails with "Failed to delete network" (530).
        if let Some(v) = vm::vms_on_network(db, t.id).await?.first() {
            return Err(Error::internal(format!(
                "Failed to delete network {}: can't delete the network, not all user vms are \
                 expunged. Vm {} is in {} state",
                t.uuid, v.uuid, v.state
            )));
        }
        if t.state == network::STATE_IMPLEMENTED
            && let Err(e) = tiers::destroy_tier(&lock, t.id).await
        {
            if !payload.forced {
                return Err(e);
            }
            tracing::warn!(network = %t.uuid, error = %e, "forced delete: the router was not cleaned up");
        }
        tiers::trash_tier(db, &app.network, &t).await?;

        let removal = Withdraw(RemoveTier {
            vpc_id,
            tier_id: t.id,
        });
        if let Err(e) = lock.apply_or_refused(&removal).await? {
            tracing::warn!(network = %t.uuid, error = %e, "withdrawing a deleted tier's rules failed");
        }
        Ok(json!({ "success": true }))
    }
}

/// The tier's rows go: its rules, its addresses' association, its ACL
/// list, a vnet still recorded for it (a forced delete of a tier whose
/// shutdown failed), the tier itself. Only removed rules reach the router;
/// the tier stays deleted when the router refuses.
struct RemoveTier {
    vpc_id: i64,
    tier_id: i64,
}

impl Withdrawal for RemoveTier {
    fn what(&self) -> &'static str {
        "a deleted tier's rules"
    }

    fn vpc_id(&self) -> i64 {
        self.vpc_id
    }

    async fn remove(&self, tx: &mut Tx) -> Result<bool, Error> {
        let rules_of_tier = rule::remove_all(
            &mut *tx,
            &rule::RuleFilter {
                network_id: Some(self.tier_id),
                ..Default::default()
            },
        )
        .await?;
        let ips = vlan::list_ips(
            &mut *tx,
            &vlan::PublicIpFilter {
                associated_network_id: Some(self.tier_id),
                ..Default::default()
            },
            Page::ALL,
        )
        .await?
        .items;
        // Addresses only leave the tier.
        for ip in &ips {
            vlan::set_association(&mut *tx, ip.id, None, false).await?;
        }
        network::set_acl(&mut *tx, self.tier_id, None).await?;
        vnet::release_for_network(&mut *tx, self.tier_id).await?;
        network::remove(&mut *tx, self.tier_id).await?;
        Ok(rules_of_tier > 0)
    }
}
