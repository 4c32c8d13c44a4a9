//! `replaceNetworkACLList`: a tier or private gateway of the list's VPC takes
//! the list in place of its current one ([`ReplacedList`], through the
//! change protocol: the old attachment comes back when the router refuses).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::{check_vpc_access, list_param, tier_param, vpc_of};
use crate::error::Error;
use crate::orchestration::model::RouterState;
use crate::orchestration::{ElementResult, NetworkAcl};
use crate::provision::change::RouterChange;
use crate::provision::{RouterElement, state};
use crate::rules;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::store::{self, Db, Tx, acl, gateway, network, offering, vpc};

const ACL: Arg<Id> = Arg::req("aclid", "the ID of the ACL list");
const TIER: Arg<Id> = Arg::opt("networkid", "the tier to attach it to");
const GATEWAY: Arg<Id> = Arg::opt("gatewayid", "the private gateway to attach it to");

/// `replaceNetworkACLList`.
pub struct ReplaceAclList {
    acl: Uuid,
    tier: Option<Uuid>,
    gateway: Option<Uuid>,
}

/// The job of `replaceNetworkACLList`: the list, its VPC and the target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplaceAclListJob {
    pub acl_id: i64,
    pub vpc_id: i64,
    #[serde(flatten)]
    pub target: TargetId,
}

/// What the list goes to, by row id (`"tier": id` or `"gateway": id` in the
/// job row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetId {
    Tier(i64),
    Gateway(i64),
}

impl Command for ReplaceAclList {
    const NAME: &'static str = "replaceNetworkACLList";

    fn spec() -> Spec {
        Spec::new("Attaches an ACL list to a tier or a private gateway in place of its current one")
            .roles(ALL)
            .param(ACL)
            .param(TIER)
            .param(GATEWAY)
            .returns("networkacllist", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ReplaceAclList {
            acl: args.need(&ACL)?,
            tier: args.get(&TIER)?,
            gateway: args.get(&GATEWAY)?,
        })
    }
}

impl AsyncCommand for ReplaceAclList {
    /// Safe to run again: the target takes the same list and the push
    /// carries a new generation. One limit: when a second run's push fails,
    /// its undo gives back the list it found, which is already the new one
    /// if the first run had written it; the router is then resynced from
    /// those rows.
    const RERUN: bool = true;
    type Job = ReplaceAclListJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<ReplaceAclListJob>, Error> {
        let db = &ctx.app.db;
        let list = list_param(db, ACL.name(), self.acl).await?;
        let (target, v) = match (self.tier, self.gateway) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(Error::invalid(
                    "Give exactly one of networkid and gatewayid: the tier or the private \
                     gateway to attach the ACL list to",
                ));
            }
            (Some(id), None) => {
                let (tier, v) = tier_param(ctx, TIER.name(), id).await?;
                let services =
                    offering::network_offering_services(db, tier.network_offering_id).await?;
                rules::acl::check_tier_takes_acl(
                    &tier.name,
                    services.iter().any(|s| s.service == "NetworkACL"),
                )?;
                (TargetId::Tier(tier.id), v)
            }
            (None, Some(id)) => {
                let g = gateway::get_by_uuid(db, id)
                    .await?
                    .filter(|g| g.removed.is_none())
                    .ok_or_else(|| Error::invalid_id(GATEWAY.name(), id))?;
                let v = vpc::get_by_id(db, g.vpc_id)
                    .await?
                    .ok_or_else(|| Error::internal("the VPC of a private gateway is gone"))?;
                check_vpc_access(ctx, &v)?;
                (TargetId::Gateway(g.id), v)
            }
        };
        let list_vpc = vpc_of(db, &list).await?.map(|lv| lv.uuid);
        rules::acl::check_list_in_vpc(&list.name, list_vpc.as_ref(), &v.uuid)?;
        let job = ReplaceAclListJob {
            acl_id: list.id,
            vpc_id: v.id,
            target,
        };
        Ok(Submission::new(
            job,
            ("NetworkAcl", list.uuid),
            vpc_sync(v.id),
        ))
    }

    async fn run(job: &JobCtx, payload: ReplaceAclListJob) -> Result<Value, Error> {
        let app = &job.app;
        let db = &app.db;
        let lock = app.network.lock(db, payload.vpc_id).await?;
        acl::get_by_id(db, payload.acl_id)
            .await?
            .filter(|l| l.removed.is_none())
            .ok_or_else(|| Error::invalid("The ACL list was deleted meanwhile"))?;
        let target = Target::load(db, payload.target).await?;
        let id = target.uuid()?;
        let on_router = state::load(db, payload.vpc_id).await?.is_some_and(|s| {
            s.tiers.iter().any(|t| t.id == id) || s.private_gateways.iter().any(|g| g.id == id)
        });
        lock.apply(&ReplacedList {
            old: target.attachment(),
            target,
            id,
            acl_id: payload.acl_id,
            on_router,
        })
        .await?;
        Ok(json!({ "success": true }))
    }
}

/// What replaceNetworkACLList attaches a list to, as stored.
enum Target {
    Tier(network::Network),
    Gateway(gateway::PrivateGateway),
}

impl Target {
    /// The live target of a job (431 when it went meanwhile).
    async fn load(db: &Db, id: TargetId) -> Result<Target, Error> {
        let gone = || Error::invalid("The tier or private gateway was deleted meanwhile");
        Ok(match id {
            TargetId::Tier(id) => Target::Tier(
                network::get_by_id(db, id)
                    .await?
                    .filter(|t| t.removed.is_none())
                    .ok_or_else(gone)?,
            ),
            TargetId::Gateway(id) => Target::Gateway(
                gateway::get_by_id(db, id)
                    .await?
                    .filter(|g| g.removed.is_none())
                    .ok_or_else(gone)?,
            ),
        })
    }

    /// The ACL list it has now.
    fn attachment(&self) -> Option<i64> {
        match self {
            Target::Tier(t) => t.network_acl_id,
            Target::Gateway(g) => g.network_acl_id,
        }
    }

    /// Its id as the router state names it.
    fn uuid(&self) -> Result<Uuid, Error> {
        Ok(match self {
            Target::Tier(t) => t.uuid,
            Target::Gateway(g) => g.uuid,
        })
    }

    /// Attaches `acl_id` to it (None detaches).
    async fn attach<'a>(
        &self,
        ex: impl Into<store::Exec<'a>>,
        acl_id: Option<i64>,
    ) -> Result<bool, Error> {
        Ok(match self {
            Target::Tier(t) => network::set_acl(ex, t.id, acl_id).await?,
            Target::Gateway(g) => gateway::set_acl(ex, g.id, acl_id).await?,
        })
    }
}

/// A tier or private gateway takes another list. It reaches the router when
/// the target has a NIC there; the undo gives it its old list back.
struct ReplacedList {
    target: Target,
    /// The target's id in the router state.
    id: Uuid,
    acl_id: i64,
    /// The list it had.
    old: Option<i64>,
    on_router: bool,
}

impl RouterChange for ReplacedList {
    type Written = ();

    fn what(&self) -> &'static str {
        "an ACL list attachment"
    }

    /// Takes the list's row lock first: a change of a global list's items
    /// (which reads the VPCs using the list under that lock) and the list's
    /// deletion then see this attachment, or it sees them.
    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        acl::lock_list(tx, self.acl_id).await?;
        if acl::get_by_id(&mut *tx, self.acl_id)
            .await?
            .is_none_or(|l| l.removed.is_some())
        {
            return Err(Error::invalid("The ACL list was deleted meanwhile"));
        }
        self.target.attach(tx, Some(self.acl_id)).await?;
        Ok(())
    }

    fn reaches_router(&self, _: &()) -> bool {
        self.on_router
    }

    /// Sends the target's new list to its NIC (nothing when it has none).
    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        let id = self.id;
        match self.target {
            Target::Tier(_) => {
                let Some(tier) = state.tiers.iter().find(|t| t.id == id) else {
                    return Ok(());
                };
                let list = tier.acl_id.and_then(|l| state.acl_list(l));
                element
                    .replace_tier_acl(&state.router, generation, tier, list)
                    .await
            }
            Target::Gateway(_) => {
                let Some(gw) = state.private_gateways.iter().find(|p| p.id == id) else {
                    return Ok(());
                };
                let list = gw.acl_id.and_then(|l| state.acl_list(l));
                element
                    .replace_gateway_acl(&state.router, generation, gw, list)
                    .await
            }
        }
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        self.target.attach(db, self.old).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_jobs_keep_the_job_row_keys_of_the_previous_version() {
        let stored = r#"{"acl_id":4,"vpc_id":2,"tier":7}"#;
        let job: ReplaceAclListJob = serde_json::from_str(stored).unwrap();
        assert_eq!((job.acl_id, job.vpc_id), (4, 2));
        assert_eq!(job.target, TargetId::Tier(7));
        let gateway: ReplaceAclListJob =
            serde_json::from_str(r#"{"acl_id":4,"vpc_id":2,"gateway":9}"#).unwrap();
        assert_eq!(gateway.target, TargetId::Gateway(9));
        assert_eq!(
            serde_json::to_value(&job).unwrap(),
            serde_json::json!({ "acl_id": 4, "vpc_id": 2, "tier": 7 })
        );
    }
}
