//! `assignToLoadBalancerRule` and `removeFromLoadBalancerRule`, one family:
//! the VMs asked for are checked against the rule's members during the
//! request; the job adds (or removes) them, pushes the VPC's load balancer
//! list and undoes the change when the router refuses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::{lb_by_uuid, push_lb_list, reload, vpc_of_rule};
use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::model::RouterState;
use crate::provision::RouterElement;
use crate::provision::change::RouterChange;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Ids, Map, Spec, Submission};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::services::ip::common;
use crate::store::{Db, Tx, rule, vm};

const ID: Arg<Id> = Arg::req("id", "the ID of the load balancer rule");
const VMS: Arg<Ids> = Arg::opt(
    "virtualmachineids",
    "the VMs (their addresses in the rule's tier)",
);
const VM_IP_MAP: Arg<Map> = Arg::opt(
    "vmidipmap",
    "VMs and addresses, as vmidipmap[i].vmid and vmidipmap[i].vmip",
);

/// One member: the VM and its address in the rule's tier (a JSON pair in
/// the job, as earlier versions stored it).
type Member = (i64, String);

/// The request of both commands. The VM lists are read by `parse` but a
/// malformed one is reported where CloudStack looks at them, after the
/// rule's checks: the first error a bad request gets stays the same.
pub struct Members {
    id: Uuid,
    vms: Result<Option<Vec<Uuid>>, Error>,
    vm_ip_map: Result<Option<Vec<BTreeMap<String, String>>>, Error>,
}

/// The job of both commands: the rule, its VPC and the checked members.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembersJob {
    #[serde(rename = "rule")]
    pub rule_id: i64,
    #[serde(rename = "vpc")]
    pub vpc_id: i64,
    pub members: Vec<Member>,
}

fn spec(description: &'static str) -> Spec {
    Spec::new(description)
        .roles(ALL)
        .param(ID)
        .param(VMS)
        .param(VM_IP_MAP)
        .returns("loadbalancer", vec![])
}

impl Members {
    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(Members {
            id: args.need(&ID)?,
            vms: args.get(&VMS),
            vm_ip_map: args.get(&VM_IP_MAP),
        })
    }

    /// Checks the members asked for against the rule's current ones (to
    /// add: none may be assigned already; to remove: each must be) and
    /// returns the job that changes them.
    async fn submit(self, ctx: &Ctx, add: bool) -> Result<Submission<MembersJob>, Error> {
        let r = lb_by_uuid(ctx, ID.name(), self.id).await?;
        let vpc_id = vpc_of_rule(&ctx.app.db, &r).await?;
        let wanted = self.targets(ctx, &r).await?;
        let existing = rule::members_with_vms(&ctx.app.db, r.id).await?;
        for (target, (vm_id, ip)) in &wanted {
            if add && existing.iter().any(|m| m.instance_ip.to_string() == *ip) {
                return Err(Error::invalid(format!(
                    "Virtual machine {} ({ip}) is already assigned to load balancer rule {}",
                    target.name, r.uuid
                )));
            }
            if !add
                && !existing.iter().any(|m| {
                    m.instance_ip.to_string() == *ip && m.vm_id.is_none_or(|v| v == *vm_id)
                })
            {
                return Err(Error::invalid(format!(
                    "Virtual machine {} ({ip}) is not assigned to load balancer rule {}",
                    target.name, r.uuid
                )));
            }
        }
        let job = MembersJob {
            rule_id: r.id,
            vpc_id,
            members: wanted.into_iter().map(|(_, m)| m).collect(),
        };
        Ok(Submission::new(
            job,
            ("LoadBalancerRule", r.uuid),
            vpc_sync(vpc_id),
        ))
    }

    /// The VMs named by `virtualmachineids` and `vmidipmap` (`vmid`,
    /// `vmip`), each with its address in the rule's tier, checked: the
    /// caller's to use, owned by the rule's account, with a NIC in the
    /// rule's tier.
    async fn targets(self, ctx: &Ctx, r: &rule::Rule) -> Result<Vec<(vm::Vm, Member)>, Error> {
        let db = &ctx.app.db;
        let mut asked: Vec<(Uuid, Option<String>)> = self
            .vms?
            .unwrap_or_default()
            .into_iter()
            .map(|id| (id, None))
            .collect();
        for entry in self.vm_ip_map?.unwrap_or_default() {
            let vmid = entry.get("vmid").ok_or_else(|| {
                Error::invalid("each vmidipmap entry needs a vmid (and optionally a vmip)")
            })?;
            let parsed = Uuid::parse_str(vmid.trim())
                .map_err(|_| Error::invalid_id(VM_IP_MAP.name(), vmid))?;
            asked.push((parsed, entry.get("vmip").cloned()));
        }
        if asked.is_empty() {
            return Err(Error::invalid(
                "virtualmachineids or vmidipmap must name at least one virtual machine",
            ));
        }
        let tier = common::tier_by_id(db, r.network_id).await?;
        let mut out: Vec<(vm::Vm, Member)> = Vec::new();
        for (id, vmip) in asked {
            let target = common::vm_by_uuid(ctx, VMS.name(), id).await?;
            common::check_same_owner(&target, r.account_id, &format!("rule {}", r.uuid))?;
            let address = common::vm_target(db, &target, &tier, vmip.as_deref()).await?;
            let member = (target.id, address.to_string());
            if !out.iter().any(|(_, m)| *m == member) {
                out.push((target, member));
            }
        }
        Ok(out)
    }
}

/// Adds (or removes) the job's members through the change protocol and
/// makes the rule Active once the router has them.
async fn change_members(job: &JobCtx, payload: MembersJob, add: bool) -> Result<Value, Error> {
    let db = &job.app.db;
    let id = payload.rule_id;
    let lock = job.app.network.lock(db, payload.vpc_id).await?;
    let r = reload(db, id).await?;
    lock.apply(&MemberChange {
        rule_id: id,
        members: payload.members,
        add,
        old_state: r.state,
    })
    .await?;
    rule::set_state(db, id, rule::STATE_ACTIVE).await?;
    Ok(json!({ "success": true }))
}

/// `assignToLoadBalancerRule`.
pub struct AssignToLoadBalancerRule(Members);

impl Command for AssignToLoadBalancerRule {
    const NAME: &'static str = "assignToLoadBalancerRule";

    fn spec() -> Spec {
        spec("Adds VMs of the rule's tier to a load balancer rule")
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Members::parse(args).map(AssignToLoadBalancerRule)
    }
}

impl AsyncCommand for AssignToLoadBalancerRule {
    /// A member there already is not added again, nor undone
    /// (`MemberChange`).
    const RERUN: bool = true;
    type Job = MembersJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<MembersJob>, Error> {
        self.0.submit(ctx, true).await
    }

    async fn run(job: &JobCtx, payload: MembersJob) -> Result<Value, Error> {
        change_members(job, payload, true).await
    }
}

/// `removeFromLoadBalancerRule`.
pub struct RemoveFromLoadBalancerRule(Members);

impl Command for RemoveFromLoadBalancerRule {
    const NAME: &'static str = "removeFromLoadBalancerRule";

    fn spec() -> Spec {
        spec("Removes VMs from a load balancer rule")
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Members::parse(args).map(RemoveFromLoadBalancerRule)
    }
}

impl AsyncCommand for RemoveFromLoadBalancerRule {
    /// A member gone already is not removed again, nor undone
    /// (`MemberChange`).
    const RERUN: bool = true;
    type Job = MembersJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<MembersJob>, Error> {
        self.0.submit(ctx, false).await
    }

    async fn run(job: &JobCtx, payload: MembersJob) -> Result<Value, Error> {
        change_members(job, payload, false).await
    }
}

/// Members joining (or leaving) a rule: the member rows and the rule Add
/// while the router takes the list; undone member by member (only those
/// this change made or removed) when it refuses.
struct MemberChange {
    rule_id: i64,
    members: Vec<Member>,
    add: bool,
    old_state: rule::State,
}

impl RouterChange for MemberChange {
    /// The members the change did add (or remove).
    type Written = Vec<Member>;

    fn what(&self) -> &'static str {
        "a change of a load balancer rule's members"
    }

    async fn write(&self, tx: &mut Tx) -> Result<Vec<Member>, Error> {
        let mut changed = Vec::new();
        for (vm_id, ip) in &self.members {
            let done = if self.add {
                rule::add_vm_member(&mut *tx, self.rule_id, ip, *vm_id).await?
            } else {
                rule::remove_member(&mut *tx, self.rule_id, ip).await?
            };
            if done {
                changed.push((*vm_id, ip.clone()));
            }
        }
        rule::set_state(tx, self.rule_id, rule::STATE_ADD).await?;
        Ok(changed)
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        push_lb_list(element, state, generation).await
    }

    async fn undo(&self, db: &Db, changed: &Vec<Member>) -> Result<(), Error> {
        let mut tx = db.begin().await?;
        for (vm_id, ip) in changed {
            if self.add {
                rule::remove_member(&mut tx, self.rule_id, ip).await?;
            } else {
                rule::add_vm_member(&mut tx, self.rule_id, ip, *vm_id).await?;
            }
        }
        rule::set_state(&mut tx, self.rule_id, self.old_state).await?;
        tx.commit().await?;
        Ok(())
    }
}
