//! `updateVirtualMachine`, for what a VM reads from its router: new user
//! data replaces the old at once. A Running VM's tiers get their VM data
//! again through the change protocol (the router serves the new user data
//! from the moment it answers; nothing restarts); a Stopped VM reads it
//! when it starts. The other fields of CloudStack's command are not taken.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{ID, VM_FIELDS, live_vm, sees_admin_fields, tier_uuids, tiers_of_vm, vm_result};
use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::model::RouterState;
use crate::provision::RouterElement;
use crate::provision::change::RouterChange;
use crate::server::command::{Arg, Args, Command, Id, Map, Spec, SyncCommand, Text};
use crate::server::registry::{ALL, fields};
use crate::server::{Ctx, Reply};
use crate::services::userdata;
use crate::store::{Db, Tx, vm, vmdata};

const USER_DATA: Arg<Text> = Arg::opt(
    "userdata",
    "new user data the VM reads from its router, base64 (at most 32768 characters)",
)
.length(1_048_576);
const USER_DATA_ID: Arg<Id> = Arg::opt(
    "userdataid",
    "registered userdata (registerUserData) the VM reads from now on, instead of userdata",
);
const USER_DATA_DETAILS: Arg<Map> = Arg::opt(
    "userdatadetails",
    "values of the registered userdata's params, as userdatadetails[0].<param>=<value>",
);

/// `updateVirtualMachine`.
pub struct UpdateVirtualMachine {
    id: Uuid,
    user_data: Option<String>,
    user_data_id: Option<Uuid>,
    user_data_details: Option<Vec<BTreeMap<String, String>>>,
}

impl Command for UpdateVirtualMachine {
    const NAME: &'static str = "updateVirtualMachine";

    fn spec() -> Spec {
        Spec::new("Updates a VM: its user data")
            .roles(ALL)
            .param(ID)
            .param(USER_DATA)
            .param(USER_DATA_ID)
            .param(USER_DATA_DETAILS)
            .returns("virtualmachine", fields(VM_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateVirtualMachine {
            id: args.need(&ID)?,
            user_data: args.text(&USER_DATA)?,
            user_data_id: args.get(&USER_DATA_ID)?,
            user_data_details: args.get(&USER_DATA_DETAILS)?,
        })
    }
}

/// New user data of a VM (given, or registered with its params' values),
/// on its tiers' lists.
struct NewUserData {
    vm_id: i64,
    user_data: String,
    user_data_id: Option<i64>,
    user_data_details: String,
    tiers: Vec<Uuid>,
    running: bool,
}

impl RouterChange for NewUserData {
    /// The VM's previous row.
    type Written = vmdata::VmUserData;

    fn what(&self) -> &'static str {
        "new user data"
    }

    async fn write(&self, tx: &mut Tx) -> Result<vmdata::VmUserData, Error> {
        let old = vmdata::get(&mut *tx, self.vm_id).await?;
        let new = vmdata::VmUserData {
            user_data: self.user_data.clone(),
            user_data_id: self.user_data_id,
            user_data_details: self.user_data_details.clone(),
            ..old.clone()
        };
        vmdata::set(&mut *tx, &new).await?;
        Ok(old)
    }

    /// Only a Running VM is on its router's lists.
    fn reaches_router(&self, _: &vmdata::VmUserData) -> bool {
        self.running
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        for tier in state.tiers.iter().filter(|t| self.tiers.contains(&t.id)) {
            element.set_vm_data(state, generation, tier).await?;
        }
        Ok(())
    }

    async fn undo(&self, db: &Db, old: &vmdata::VmUserData) -> Result<(), Error> {
        vmdata::set(db, old).await?;
        Ok(())
    }
}

impl SyncCommand for UpdateVirtualMachine {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let app = &ctx.app;
        let v = live_vm(ctx, self.id, ID.name()).await?;
        let (user_data, user_data_id, user_data_details) =
            match (self.user_data.as_deref(), self.user_data_id) {
                (Some(_), Some(_)) => {
                    return Err(Error::invalid(
                        "Both userdata and userdata ID inputs are not allowed, please provide \
                         only one",
                    ));
                }
                (Some(u), None) => (userdata::checked(ctx, u).await?, None, String::new()),
                (None, Some(id)) => {
                    let r = userdata::registered_for(
                        ctx,
                        v.account_id,
                        Some(id),
                        self.user_data_details,
                    )
                    .await?
                    .ok_or_else(|| Error::invalid_id(USER_DATA_ID.name(), id))?;
                    (r.user_data, Some(r.id), r.details)
                }
                (None, None) => {
                    return Ok(Reply::Raw(
                        vm_result(&app.db, v.id, sees_admin_fields(ctx.caller.role)).await?,
                    ));
                }
            };
        let (tiers, vpc_id) = tiers_of_vm(&app.db, v.id).await?;
        let change = NewUserData {
            vm_id: v.id,
            user_data,
            user_data_id,
            user_data_details,
            tiers: tier_uuids(&tiers),
            running: false,
        };
        match vpc_id {
            Some(vpc_id) => {
                let lock = app.network.lock(&app.db, vpc_id).await?;
                // Read under the lock: a start or stop of the VM waits for it.
                let running = vm::get_by_id(&app.db, v.id)
                    .await?
                    .is_some_and(|v| v.state == vm::STATE_RUNNING);
                lock.apply(&NewUserData { running, ..change }).await?;
            }
            None => {
                let mut tx = app.db.begin().await?;
                change.write(&mut tx).await?;
                tx.commit().await?;
            }
        }
        Ok(Reply::Raw(
            vm_result(&app.db, v.id, sees_admin_fields(ctx.caller.role)).await?,
        ))
    }
}
