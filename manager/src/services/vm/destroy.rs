//! `destroyVirtualMachine`: a running VM is stopped, then Destroyed; with
//! `expunge` what points at it goes (its rules, static NAT, load balancer
//! memberships), the driver removes it and its row and addresses go.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{ID, VM_FIELDS, live_vm, sees_admin_fields, stop, submission, vm_result};
use crate::error::Error;
use crate::orchestration::RouterDriver;
use crate::provision;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Flag, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::{ALL, fields};
use crate::server::{App, Ctx, Role};
use crate::services::ip::push::{Withdraw, Withdrawal};
use crate::store::{Page, Tx, config, rule, vlan, vm};

const EXPUNGE: Arg<Flag> = Arg::opt(
    "expunge",
    "true: expunge at once, freeing its addresses (admins only)",
);

/// `destroyVirtualMachine`.
pub struct DestroyVirtualMachine {
    id: Uuid,
    expunge: bool,
}

/// The job of `destroyVirtualMachine`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DestroyVmJob {
    /// The VM's row id.
    pub id: i64,
    #[serde(default)]
    pub expunge: bool,
}

impl Command for DestroyVirtualMachine {
    const NAME: &'static str = "destroyVirtualMachine";

    fn spec() -> Spec {
        Spec::new("Destroys a VM (and expunges it with expunge=true)")
            .roles(ALL)
            .param(ID)
            .param(EXPUNGE)
            .returns("virtualmachine", fields(VM_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DestroyVirtualMachine {
            id: args.need(&ID)?,
            expunge: args.get(&EXPUNGE)?.unwrap_or(false),
        })
    }
}

impl AsyncCommand for DestroyVirtualMachine {
    /// A VM already Destroyed or expunged is done; its rules go by what
    /// the rows still hold.
    const RERUN: bool = true;
    type Job = DestroyVmJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<DestroyVmJob>, Error> {
        let v = live_vm(ctx, self.id, ID.name()).await?;
        if self.expunge && ctx.caller.role == Role::User {
            let allowed = config::value_bool(&ctx.app.db, "allow.user.expunge.recover.vm")
                .await?
                .unwrap_or(false);
            if !allowed {
                return Err(Error::permission_denied(
                    "Parameter expunge can be passed by Admin only. Or when the \
                     allow.user.expunge.recover.vm key is set.",
                ));
            }
        }
        let job = DestroyVmJob {
            id: v.id,
            expunge: self.expunge,
        };
        submission(&ctx.app.db, &v, job).await
    }

    async fn run(job: &JobCtx, payload: DestroyVmJob) -> Result<Value, Error> {
        let app = &job.app;
        let id = payload.id;
        let admin = sees_admin_fields(job.caller.role);
        let Some(v) = vm::get_by_id(&app.db, id)
            .await?
            .filter(|v| v.removed.is_none())
        else {
            // Expunged already (by an earlier run of this job, or meanwhile).
            return vm_result(&app.db, id, admin).await;
        };
        if v.state == vm::STATE_RUNNING || v.state == vm::STATE_STARTING {
            stop::stop(app, id, false).await?;
        }
        if payload.expunge {
            release_vm_rules(app, &v).await?;
            let view = provision::state::vm_view(&app.db, &v).await?;
            app.network
                .element
                .driver()
                .destroy_vm(&view)
                .await
                .map_err(|e| {
                    Error::internal(format!("Unable to expunge virtual machine {}: {e}", v.uuid))
                })?;
            vm::expunge(&app.db, id).await?;
        } else if v.state != vm::STATE_DESTROYED {
            vm::set_state(&app.db, id, vm::STATE_DESTROYED).await?;
        }
        vm_result(&app.db, id, admin).await
    }
}

/// Before a VM is expunged, what points at it goes (CloudStack's VM
/// clean-up): its port forwarding rules, static NAT to it and its load
/// balancer memberships; the router gets the VPC's remaining lists.
async fn release_vm_rules(app: &App, v: &vm::Vm) -> Result<(), Error> {
    let db = &app.db;
    let Some(vpc_id) = super::vpc_of(db, v.id).await? else {
        return Ok(());
    };
    let lock = app.network.lock(db, vpc_id).await?;
    let change = Withdraw(ReleaseVmRules {
        vpc_id,
        vm_id: v.id,
    });
    if let Err(e) = lock.apply_or_refused(&change).await? {
        tracing::warn!(vm = %v.uuid, error = %e, "withdrawing an expunged VM's rules failed");
    }
    Ok(())
}

/// The VM's rules, static NAT and load balancer memberships go; the VM
/// goes anyway when the router refuses.
struct ReleaseVmRules {
    vpc_id: i64,
    vm_id: i64,
}

impl Withdrawal for ReleaseVmRules {
    fn what(&self) -> &'static str {
        "an expunged VM's rules"
    }

    fn vpc_id(&self) -> i64 {
        self.vpc_id
    }

    /// Whether anything pointed at the VM.
    async fn remove(&self, tx: &mut Tx) -> Result<bool, Error> {
        let forwards = rule::remove_all(
            &mut *tx,
            &rule::RuleFilter {
                vm_id: Some(self.vm_id),
                ..Default::default()
            },
        )
        .await?;
        let nats = vlan::list_ips(
            &mut *tx,
            &vlan::PublicIpFilter {
                vm_id: Some(self.vm_id),
                ..Default::default()
            },
            Page::ALL,
        )
        .await?
        .items;
        for ip in &nats {
            vlan::set_static_nat(&mut *tx, ip.id, None, None).await?;
        }
        let balancers = rule::list(
            &mut *tx,
            &rule::RuleFilter {
                vpc_id: Some(self.vpc_id),
                purpose: Some(rule::PURPOSE_LOAD_BALANCING.into()),
                ..Default::default()
            },
            Page::ALL,
        )
        .await?
        .items;
        let mut members = 0;
        for lb in &balancers {
            for m in rule::members_with_vms(&mut *tx, lb.id).await? {
                if m.vm_id == Some(self.vm_id) {
                    rule::remove_member(&mut *tx, lb.id, &m.instance_ip.to_string()).await?;
                    members += 1;
                }
            }
        }
        Ok(forwards > 0 || !nats.is_empty() || members > 0)
    }
}
