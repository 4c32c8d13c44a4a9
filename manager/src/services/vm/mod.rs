//! Guest VMs in VPC tiers (CloudStack reference §2.9, §2.10), at record
//! level: `deployVirtualMachine` (async-create: the VM and its NICs with
//! their addresses now, the start in the job), `listVirtualMachines`,
//! `startVirtualMachine`, `stopVirtualMachine`, `rebootVirtualMachine`,
//! `destroyVirtualMachine`, and the catalog: `listServiceOfferings`,
//! `listTemplates`. Starting a VM implements its tiers when they are not yet
//! and gives the router the tiers' DHCP lists.

mod catalog;
mod deploy;
mod list;
mod power;

use serde_json::{Value, json};

use crate::api::Params;
use crate::error::Error;
use crate::server::jobs::{JobBody, vpc_sync};
use crate::server::registry::{
    ALL, CommandSpec, FieldSpec, Kind, ParamSpec, ParamType::*, field, opt, req,
};
use crate::server::{Ctx, Role, date};
use crate::services::owner;
use crate::services::related::Related;
use crate::store::{Db, network, router, vm};

fn vm_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the VM"),
        field("name", "string", "the name (host name) of the VM"),
        field("displayname", "string", "the display name of the VM"),
        field(
            "instancename",
            "string",
            "the internal name i-<account>-<id>-VM (admins only)",
        ),
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
        field("account", "string", "the owner account"),
        field("domainid", "string", "the owner's domain"),
        field("domain", "string", "the name of the owner's domain"),
        field("created", "date", "when the VM was created"),
        field(
            "nic",
            "list",
            "the NICs: id, networkid, networkname, ipaddress, netmask, gateway, macaddress, \
             isdefault, traffictype, type",
        ),
    ]
}

fn id_param(what: &'static str) -> Vec<ParamSpec> {
    vec![req("id", Uuid, what)]
}

/// Why deployVirtualMachine refuses user data and SSH key pairs.
const VM_SERVICES: &str = "user data and SSH key pairs are not served to VMs yet (VM services)";

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let mut deploy_params = vec![
        req("zoneid", Uuid, "the zone of the VM"),
        req("serviceofferingid", Uuid, "the service offering"),
        req("templateid", Uuid, "the template"),
        opt(
            "networkids",
            List,
            "the tiers of the VM; the first one holds the default NIC",
        ),
        opt(
            "iptonetworklist",
            Map,
            "tiers with addresses, as iptonetworklist[i].networkid and iptonetworklist[i].ip \
             (instead of networkids)",
        ),
        opt(
            "ipaddress",
            String,
            "the address in the first tier (default: its lowest free one)",
        ),
        opt(
            "name",
            String,
            "the host name, unique in the account (default VM-<uuid>)",
        ),
        opt("displayname", String, "the display name (default the name)"),
        opt(
            "startvm",
            Boolean,
            "false: only create the VM (default true: start it)",
        ),
        opt(
            "hypervisor",
            String,
            "accepted; VMs run as network namespaces",
        ),
        opt(
            "macaddress",
            String,
            "the MAC address of the default NIC (unicast, unused)",
        ),
        opt(
            "userdata",
            String,
            "refused: user data comes with VM services",
        )
        .refused(VM_SERVICES),
        opt(
            "userdataid",
            Uuid,
            "refused: user data comes with VM services",
        )
        .refused(VM_SERVICES),
        opt(
            "keypair",
            String,
            "refused: SSH key pairs come with VM services",
        )
        .refused(VM_SERVICES),
        opt(
            "keypairs",
            List,
            "refused: SSH key pairs come with VM services",
        )
        .refused(VM_SERVICES),
    ];
    deploy_params.extend(owner::owner_params());
    let mut list_params = vec![
        opt("id", Uuid, "the ID of the VM"),
        opt("ids", List, "the IDs of the VMs"),
        opt("name", String, "only VMs of this name"),
        opt(
            "state",
            String,
            "only VMs in this state (present: not Destroyed)",
        ),
        opt("zoneid", Uuid, "only VMs of this zone"),
        opt("networkid", Uuid, "only VMs with a NIC on this tier"),
        opt("vpcid", Uuid, "only VMs in this VPC"),
        opt(
            "serviceofferingid",
            Uuid,
            "only VMs of this service offering",
        ),
        opt("templateid", Uuid, "only VMs of this template"),
        opt("details", List, "accepted; every detail is returned"),
    ];
    list_params.extend(owner::list_params());
    let one = |name, description, params, handler| CommandSpec {
        name,
        description,
        kind: Kind::Async,
        roles: ALL,
        params,
        object: "virtualmachine",
        response: vm_fields(),
        since: "",
        handler,
        job: None,
    };
    let mut stop_params = id_param("the ID of the VM");
    stop_params.push(opt(
        "forced",
        Boolean,
        "true: stop even if the router cannot be told",
    ));
    let mut destroy_params = id_param("the ID of the VM");
    destroy_params.push(opt(
        "expunge",
        Boolean,
        "true: expunge at once, freeing its addresses (admins only)",
    ));
    let mut all = vec![
        CommandSpec {
            name: "deployVirtualMachine",
            description: "Creates a VM in VPC tiers and starts it",
            kind: Kind::AsyncCreate,
            roles: ALL,
            params: deploy_params,
            object: "virtualmachine",
            response: vm_fields(),
            since: "",
            handler: deploy::DEPLOY,
            job: None,
        },
        CommandSpec {
            name: "listVirtualMachines",
            description: "Lists the VMs the caller may see",
            kind: Kind::Sync,
            roles: ALL,
            params: list_params,
            object: "virtualmachine",
            response: vm_fields(),
            since: "",
            handler: list::LIST,
            job: None,
        },
        one(
            "startVirtualMachine",
            "Starts a stopped VM",
            id_param("the ID of the VM"),
            power::START,
        ),
        one(
            "stopVirtualMachine",
            "Stops a running VM; it keeps its addresses",
            stop_params,
            power::STOP,
        ),
        one(
            "rebootVirtualMachine",
            "Reboots a running VM",
            id_param("the ID of the VM"),
            power::REBOOT,
        ),
        one(
            "destroyVirtualMachine",
            "Destroys a VM (and expunges it with expunge=true)",
            destroy_params,
            power::DESTROY,
        ),
    ];
    all.extend(catalog::commands());
    all
}

/// The job body of every async command of this module.
pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("deployVirtualMachine", deploy::DEPLOY_JOB),
        ("startVirtualMachine", power::START_JOB),
        ("stopVirtualMachine", power::STOP_JOB),
        ("rebootVirtualMachine", power::REBOOT_JOB),
        ("destroyVirtualMachine", power::DESTROY_JOB),
    ]
}

/// The live (not expunged) VM named by parameter `name`, which the caller
/// may act on.
pub async fn vm_param(ctx: &Ctx, params: &Params, name: &str) -> Result<vm::Vm, Error> {
    let id = params.required_uuid(ctx.command, name)?.to_string();
    let v = vm::get_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid_id(name, &id))?;
    owner::check_access(
        ctx,
        v.account_id,
        &v.domain_path,
        &format!("virtual machine {id}"),
    )?;
    Ok(v)
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

/// Jobs on a VM run one at a time with the other jobs of its VPC.
async fn sync_object(db: &Db, v: &vm::Vm) -> Result<std::string::String, Error> {
    Ok(match vpc_of(db, v.id).await? {
        Some(id) => vpc_sync(id),
        None => format!("vm:{}", v.id),
    })
}

/// A VM as the list and the jobs show it; `admin` adds `instancename`.
/// `related` holds the page's rows ([`Related::for_vms`]).
pub fn vm_view(related: &Related, v: &vm::Vm, admin: bool) -> Value {
    let z = related.zone_row(v.zone_id);
    let o = related.service_offering(v.service_offering_id);
    let t = related.template(v.template_id);
    let a = related.account(v.account_id);
    let d = related.domain(v.domain_id);
    let mut nics = Vec::new();
    let mut vpc_uuid = None;
    for n in related.vm_nics(v.id) {
        let tier = related.network(n.network_id);
        let tier_vpc = tier.and_then(|t| t.vpc_id).and_then(|id| related.vpc(id));
        if vpc_uuid.is_none() {
            vpc_uuid = tier_vpc.as_ref().map(|p| p.uuid.clone());
        }
        let mut nic = json!({
            "id": n.uuid,
            "networkid": tier.as_ref().map(|t| &t.uuid),
            "networkname": tier.as_ref().map(|t| &t.name),
            "ipaddress": n.ip4_address,
            "netmask": n.netmask,
            "gateway": n.gateway,
            "macaddress": n.mac_address,
            "isdefault": n.device_index == 0,
            "traffictype": "Guest",
            "type": "Isolated",
            "deviceid": n.device_index.to_string(),
            "vpcid": tier_vpc.as_ref().map(|p| &p.uuid),
        });
        if admin && let Some(uri) = tier.as_ref().and_then(|t| t.broadcast_uri.clone()) {
            nic["broadcasturi"] = json!(uri);
            nic["isolationuri"] = json!(uri);
        }
        if let Some(m) = nic.as_object_mut() {
            m.retain(|_, v| !v.is_null());
        }
        nics.push(nic);
    }
    let mut m = json!({
        "id": v.uuid,
        "name": v.name,
        "displayname": v.display_name,
        "state": v.state,
        "zoneid": z.as_ref().map(|z| &z.uuid),
        "zonename": z.as_ref().map(|z| &z.name),
        "serviceofferingid": o.as_ref().map(|o| &o.uuid),
        "serviceofferingname": o.as_ref().map(|o| &o.name),
        "cpunumber": o.as_ref().map(|o| o.cpu),
        "cpuspeed": o.as_ref().map(|o| o.speed),
        "memory": o.as_ref().map(|o| o.ram_size),
        "templateid": t.as_ref().map(|t| &t.uuid),
        "templatename": t.as_ref().map(|t| &t.name),
        "templatedisplaytext": t.as_ref().map(|t| &t.display_text),
        "guestosid": Value::Null,
        "account": a.as_ref().map(|a| &a.account_name),
        "domainid": d.as_ref().map(|d| &d.uuid),
        "domain": d.as_ref().map(|d| &d.name),
        "domainpath": d.as_ref().map(|d| d.display_path()),
        "created": date(v.created),
        "haenable": false,
        "passwordenabled": false,
        "isdynamicallyscalable": false,
        "vpcid": vpc_uuid,
        "nic": nics,
        "tags": [],
    });
    if admin {
        m["instancename"] = json!(v.instance_name);
    }
    if let Some(obj) = m.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
    }
    m
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
