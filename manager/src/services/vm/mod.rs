//! Guest VMs in VPC tiers (CloudStack reference §2.9, §2.10), at record
//! level, one command per file: `deployVirtualMachine` (async-create: the
//! VM and its NICs with their addresses now, the start in the job),
//! `listVirtualMachines`, `startVirtualMachine`, `stopVirtualMachine`,
//! `rebootVirtualMachine`, `destroyVirtualMachine`, and the catalog:
//! `listServiceOfferings`, `listTemplates`, `updateTemplate`,
//! `listHypervisors`; passwords (`resetPasswordForVirtualMachine`) and SSH
//! keys of VMs; and what clients read of a VM: `listNics`, `listVolumes` (its
//! ROOT volume). Starting a VM implements its tiers when they are not yet and
//! gives the router the tiers' DHCP lists.

mod catalog;
mod deploy;
mod destroy;
mod list;
mod migrate;
mod nics;
mod password;
mod reboot;
mod reset_password;
mod reset_ssh_key;
mod start;
mod stop;
mod update;
mod views;
mod volumes;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Id, Submission};
use crate::server::jobs::vpc_sync;
use crate::server::registry::{FieldSpec, Registry, field};
use crate::server::{App, Ctx, Role};
use crate::services::owner::{self, OWNER_FIELDS};
use crate::services::related::Related;
use crate::store::{Db, Tx, network, router, vm};

pub use catalog::{
    CreateServiceOffering, DeleteServiceOffering, ListDiskOfferings, ListHypervisors,
    ListServiceOfferings, ListTemplates, UpdateServiceOffering, UpdateTemplate,
};
pub use deploy::DeployVirtualMachine;
pub use destroy::DestroyVirtualMachine;
pub use list::ListVirtualMachines;
pub use migrate::MigrateVirtualMachine;
pub use nics::ListNics;
pub use reboot::RebootVirtualMachine;
pub use reset_password::ResetPasswordForVirtualMachine;
pub use reset_ssh_key::ResetSshKeyForVirtualMachine;
pub use start::StartVirtualMachine;
pub(crate) use start::start as start_stopped_vm;
pub use stop::StopVirtualMachine;
pub(crate) use stop::stop as stop_vm;
pub use update::UpdateVirtualMachine;
pub use views::{nic_fields, vm_view};
pub use volumes::{ListVolumes, root_volume_uuid};

/// Registers the VM commands.
pub fn register(registry: &mut Registry) {
    registry.job::<DeployVirtualMachine>();
    registry.sync::<ListVirtualMachines>();
    registry.job::<StartVirtualMachine>();
    registry.job::<StopVirtualMachine>();
    registry.job::<RebootVirtualMachine>();
    registry.job::<MigrateVirtualMachine>();
    registry.job::<DestroyVirtualMachine>();
    registry.sync::<ListServiceOfferings>();
    registry.sync::<ListTemplates>();
    registry.job::<ResetSshKeyForVirtualMachine>();
    registry.job::<ResetPasswordForVirtualMachine>();
    registry.sync::<UpdateTemplate>();
    registry.sync::<UpdateVirtualMachine>();
    registry.sync::<ListHypervisors>();
    registry.sync::<ListNics>();
    registry.sync::<ListVolumes>();
    registry.sync::<CreateServiceOffering>();
    registry.sync::<UpdateServiceOffering>();
    registry.sync::<DeleteServiceOffering>();
    registry.sync::<ListDiskOfferings>();
}

const VM_FIELDS: &[&[FieldSpec]] = &[
    &[
        field("id", "string", "the ID of the VM"),
        field("name", "string", "the name (host name) of the VM"),
        field("displayname", "string", "the display name of the VM"),
        field(
            "instancename",
            "string",
            "the internal name i-<account>-<id>-VM (admins only)",
        ),
        field(
            "hostid",
            "string",
            "the ID of the host the VM runs on (admins only)",
        ),
        field("hostname", "string", "the name of that host (admins only)"),
        field(
            "state",
            "string",
            "Running, Stopped, Destroyed, Expunging, Error",
        ),
        field("zoneid", "string", "the zone"),
        field("zonename", "string", "the name of the zone"),
        field("serviceofferingid", "string", "the service offering"),
        field("serviceofferingname", "string", "the name of the offering"),
        field("templateid", "string", "the template"),
        field("templatename", "string", "the name of the template"),
    ],
    OWNER_FIELDS,
    &[
        field("created", "date", "when the VM was created"),
        field(
            "nic",
            "list",
            "the NICs: id, networkid, networkname, ipaddress, netmask, gateway, macaddress, \
                 isdefault, traffictype, type",
        ),
    ],
];

/// `id` of the commands on one VM.
const ID: Arg<Id> = Arg::req("id", "the ID of the VM");

/// The live (not expunged) VM `id`, given as parameter `param`, which the
/// caller may act on.
pub async fn live_vm(ctx: &Ctx, id: Uuid, param: &str) -> Result<vm::Vm, Error> {
    let v = vm::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))?;
    owner::check_access(
        ctx,
        v.account_id,
        &v.domain_path,
        &format!("virtual machine {id}"),
    )?;
    Ok(v)
}

/// The live VM `id` a job works on.
async fn job_vm(app: &App, id: i64) -> Result<vm::Vm, Error> {
    vm::get_by_id(&app.db, id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid("The virtual machine was expunged meanwhile"))
}

/// The live NICs of a VM, default NIC first.
pub async fn nics_of<'a>(
    ex: impl Into<crate::store::Exec<'a>>,
    vm_id: i64,
) -> Result<Vec<router::Nic>, Error> {
    Ok(router::nics_of(ex, router::NicOwner::Vm(vm_id)).await?)
}

/// The VPC a VM's tiers belong to (a VM is in one VPC), if it has NICs.
pub async fn vpc_of(db: &Db, vm_id: i64) -> Result<Option<i64>, Error> {
    for n in nics_of(db, vm_id).await? {
        if let Some(t) = network::get_by_id(db, n.network_id).await?
            && t.vpc_id.is_some()
        {
            return Ok(t.vpc_id);
        }
    }
    Ok(None)
}

/// The VM's tiers (in NIC order) with its NICs, and their VPC.
async fn tiers_of_vm(db: &Db, vm_id: i64) -> Result<(Vec<TierNic>, Option<i64>), Error> {
    let mut out = Vec::new();
    for nic in nics_of(db, vm_id).await? {
        let t = network::get_by_id(db, nic.network_id)
            .await?
            .ok_or_else(|| Error::internal("a VM NIC on a network that is gone"))?;
        out.push((t, nic));
    }
    let vpc_id = out.iter().find_map(|(t, _)| t.vpc_id);
    Ok((out, vpc_id))
}

/// The VPC of a VM's tiers, if any.
pub(crate) async fn vpc_of_vm(db: &Db, vm_id: i64) -> Result<Option<i64>, Error> {
    Ok(tiers_of_vm(db, vm_id).await?.1)
}

/// A tier of a VM and the VM's NIC on it.
type TierNic = (network::Network, router::Nic);

/// The UUIDs of the tiers, as the router's state names them.
fn tier_uuids(tiers: &[TierNic]) -> Vec<Uuid> {
    tiers.iter().map(|(t, _)| t.uuid).collect()
}

/// Jobs on a VM run one at a time with the other jobs of its VPC.
pub(crate) async fn sync_object(db: &Db, v: &vm::Vm) -> Result<String, Error> {
    Ok(match vpc_of(db, v.id).await? {
        Some(id) => vpc_sync(id),
        None => format!("vm:{}", v.id),
    })
}

/// The job `job` on VM `v`, in the queue of its VPC.
async fn submission<J>(db: &Db, v: &vm::Vm, job: J) -> Result<Submission<J>, Error> {
    let sync = sync_object(db, v).await?;
    Ok(Submission::new(job, ("VirtualMachine", v.uuid), sync))
}

/// Puts back a VM whose change the router refused: from state `from` to
/// `to`, its NICs in `nics`, in one transaction.
async fn revert_vm(
    db: &Db,
    vm_id: i64,
    from: vm::State,
    to: vm::State,
    nics: &str,
) -> Result<(), Error> {
    let mut tx: Tx = db.begin().await?;
    vm::transition(&mut tx, vm_id, &[from], to).await?;
    vm::set_nics_state(&mut tx, vm_id, nics).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether the caller sees the admin-only fields.
fn sees_admin_fields(role: Role) -> bool {
    role != Role::User
}

/// The job result of a VM: `{"virtualmachine": {...}}` (also for an
/// expunged VM, which CloudStack still reports once).
async fn vm_result(db: &Db, id: i64, admin: bool) -> Result<Value, Error> {
    let v = vm::get_by_id(db, id)
        .await?
        .ok_or_else(|| Error::invalid("The virtual machine is gone"))?;
    let related = Related::for_vms(db, std::slice::from_ref(&v)).await?;
    Ok(json!({ "virtualmachine": vm_view(&related, &v, admin) }))
}

/// 431 unless the VM is in one of `states`.
fn check_state(v: &vm::Vm, states: &[vm::State], action: &str) -> Result<(), Error> {
    if states.contains(&v.state) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Unable to {action} virtual machine {} ({}): it is in state {}",
            v.uuid, v.display_name, v.state
        )))
    }
}

/// Checks a VM name as CloudStack does (a DNS label that is also a valid
/// host name): 1-63 characters among ASCII letters, digits and '-', not
/// starting or ending with '-', not starting with a digit.
pub fn check_host_name(name: &str) -> Result<(), Error> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
        && !bytes[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid name {name:?}. Vm name can contain ASCII letters 'a' through 'z', the digits \
             '0' through '9', and the hyphen ('-'), must be between 1 and 63 characters long, and \
             can't start or end with \"-\" and can't start with digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_names_are_host_names() {
        for good in ["web-1", "a", "Web", &"x".repeat(63)] {
            check_host_name(good).unwrap();
        }
        for bad in [
            "",
            "-web",
            "web-",
            "1web",
            "web_1",
            "wéb",
            "a.b",
            &"x".repeat(64),
        ] {
            let e = check_host_name(bad)
                .map_err(crate::api::ApiError::from)
                .unwrap_err();
            assert_eq!(e.code, 431, "{bad}");
            assert!(e.text.contains("Invalid name"), "{bad}");
        }
    }
}
