//! `updatePortForwardingRule`: a new destination (private ports, VM, VM
//! address) for a rule; the public ports stay. The job writes it and sends
//! the VPC's port forwarding list ([`PfDestination`]); the old destination
//! comes back when the router refuses.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::model::RouterState;
use crate::provision::RouterElement;
use crate::provision::change::RouterChange;
use crate::rules;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Int, Spec, Submission, Text};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::services::args::CUSTOM_ID;
use crate::services::ip::common::{self, Names};
use crate::services::ip::push::RuleLists;
use crate::services::ip::rule_flow;
use crate::store::{Db, Tx, rule, vm};

use super::{FOR_DISPLAY, INSTANCE, PF_FIELDS, RULE_ID, pf_by_uuid, pf_view};

const PRIVATE_PORT: Arg<Int> = Arg::opt("privateport", "the new first port on the VM");
const PRIVATE_END_PORT: Arg<Int> = Arg::opt("privateendport", "the new last port on the VM");
const VM: Arg<Id> = Arg::opt("virtualmachineid", "the new VM (in the rule's tier)");
const VM_GUEST_IP: Arg<Text> = Arg::opt("vmguestip", "the VM's address in the tier");

/// `updatePortForwardingRule`.
pub struct UpdatePortForwardingRule {
    id: Uuid,
    private_port: Option<i64>,
    private_end_port: Option<i64>,
    vm: Option<Uuid>,
    vm_guest_ip: Option<String>,
}

/// Where a rule forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// The VM's address.
    #[serde(rename = "destip")]
    pub ip: String,
    /// The first and last port on the VM.
    pub start: i64,
    pub end: i64,
    /// The VM's row id.
    pub vm: Option<i64>,
}

/// The job of `updatePortForwardingRule` (the keys earlier versions stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatePfJob {
    pub rule: i64,
    pub vpc: i64,
    #[serde(flatten)]
    pub destination: Destination,
}

impl Command for UpdatePortForwardingRule {
    const NAME: &'static str = "updatePortForwardingRule";

    fn spec() -> Spec {
        Spec::new("Changes where a port forwarding rule forwards to")
            .roles(ALL)
            .param(RULE_ID)
            .param(PRIVATE_PORT)
            .param(PRIVATE_END_PORT)
            .param(VM)
            .param(VM_GUEST_IP)
            .param(FOR_DISPLAY)
            .param(CUSTOM_ID)
            .returns("portforwardingrule", PF_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdatePortForwardingRule {
            id: args.need(&RULE_ID)?,
            private_port: args.get(&PRIVATE_PORT)?.map(i64::from),
            private_end_port: args.get(&PRIVATE_END_PORT)?.map(i64::from),
            vm: args.get(&VM)?,
            vm_guest_ip: args.text(&VM_GUEST_IP)?,
        })
    }
}

impl AsyncCommand for UpdatePortForwardingRule {
    /// It writes the same destination again and pushes the list with a new
    /// generation. (Run again after a complete run, the values it would put
    /// back on a refused push are the new ones: the job then fails with
    /// the rows and, after the monitor's resync, the router agreeing.)
    const RERUN: bool = true;
    type Job = UpdatePfJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<UpdatePfJob>, Error> {
        let r = pf_by_uuid(ctx, RULE_ID.name(), self.id).await?;
        let vpc_id = rule_flow::vpc_of_rule(&ctx.app.db, &r).await?;
        let destination = self.new_destination(ctx, &r).await?;
        let job = UpdatePfJob {
            rule: r.id,
            vpc: vpc_id,
            destination,
        };
        Ok(Submission::new(job, (INSTANCE, r.uuid), vpc_sync(vpc_id)))
    }

    async fn run(job: &JobCtx, payload: UpdatePfJob) -> Result<Value, Error> {
        let app = &job.app;
        let lock = app.network.lock(&app.db, payload.vpc).await?;
        let old = rule_flow::reload(&app.db, payload.rule).await?;
        lock.apply(&PfDestination {
            rule: payload.rule,
            new: payload.destination,
            old: Destination {
                ip: old.dest_ip.map(|a| a.to_string()).unwrap_or_default(),
                start: old.dest_start_port.unwrap_or_default(),
                end: old.dest_end_port.unwrap_or_default(),
                vm: old.vm_id,
            },
            old_state: old.state,
        })
        .await?;
        rule::set_state(&app.db, payload.rule, rule::STATE_ACTIVE).await?;
        let r = rule_flow::reload(&app.db, payload.rule).await?;
        let view = pf_view(&app.db, &mut Names::default(), &r).await?;
        Ok(json!({ "portforwardingrule": view }))
    }
}

impl UpdatePortForwardingRule {
    /// The rule's new destination, checked: as many private ports as
    /// public ones; a VM of the rule's owner with a NIC in the rule's tier.
    async fn new_destination(&self, ctx: &Ctx, r: &rule::Rule) -> Result<Destination, Error> {
        let db = &ctx.app.db;
        let old_start = r.dest_start_port.unwrap_or_default();
        let old_end = r.dest_end_port.unwrap_or(old_start);
        let start = self.private_port.unwrap_or(old_start);
        let end = match (self.private_end_port, self.private_port) {
            (Some(end), _) => end,
            // A new start keeps the range's length.
            (None, Some(start)) => start + (old_end - old_start),
            (None, None) => old_end,
        };
        let private = rules::PortRange::new(PRIVATE_PORT.name(), start, Some(end), 1)?;
        let public = rules::PortRange::new(
            "publicport",
            r.start_port.unwrap_or_default(),
            r.end_port,
            1,
        )?;
        if private.len() != public.len() {
            return Err(Error::invalid(format!(
                "Public port range {public} and private port range {private} must have the same \
                 number of ports ({} vs {})",
                public.len(),
                private.len()
            )));
        }
        let vmguestip = self.vm_guest_ip.as_deref();
        let tier = common::tier_by_id(db, r.network_id).await?;
        let target = match self.vm {
            Some(id) => {
                let target = common::vm_by_uuid(ctx, VM.name(), id).await?;
                common::check_same_owner(&target, r.account_id, &format!("rule {}", r.uuid))?;
                Some(target)
            }
            None if vmguestip.is_some() => match r.vm_id {
                Some(id) => vm::get_by_id(db, id).await?,
                None => None,
            },
            None => None,
        };
        let (ip, vm) = match &target {
            Some(target) => (
                common::vm_target(db, target, &tier, vmguestip)
                    .await?
                    .to_string(),
                Some(target.id),
            ),
            None => (
                r.dest_ip.map(|a| a.to_string()).unwrap_or_default(),
                r.vm_id,
            ),
        };
        Ok(Destination {
            ip,
            start: i64::from(private.start),
            end: i64::from(private.end),
            vm,
        })
    }
}

/// A rule's new destination, in state Add while the router takes it; the
/// old destination and state back when it does not.
struct PfDestination {
    rule: i64,
    new: Destination,
    old: Destination,
    old_state: rule::State,
}

impl PfDestination {
    async fn set(tx: &mut Tx, id: i64, to: &Destination, state: rule::State) -> Result<(), Error> {
        rule::set_destination(&mut *tx, id, &to.ip, to.start, to.end, to.vm).await?;
        rule::set_state(tx, id, state).await?;
        Ok(())
    }
}

impl RouterChange for PfDestination {
    type Written = ();

    fn what(&self) -> &'static str {
        "a port forwarding rule's new destination"
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        Self::set(tx, self.rule, &self.new, rule::STATE_ADD).await
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        RuleLists::PORT_FORWARDS
            .send(element, state, generation)
            .await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        let mut tx = db.begin().await?;
        Self::set(&mut tx, self.rule, &self.old, self.old_state).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_reads_the_keys_earlier_versions_stored() {
        let stored = json!({
            "rule": 5, "vpc": 2, "destip": "10.1.1.7",
            "start": 8080, "end": 8081, "vm": null,
        });
        let job: UpdatePfJob = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(job.destination.ip, "10.1.1.7");
        assert_eq!((job.destination.start, job.destination.end), (8080, 8081));
        assert_eq!(job.destination.vm, None);
        assert_eq!(serde_json::to_value(&job).unwrap(), stored);
    }
}
