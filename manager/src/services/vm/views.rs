//! A VM as `listVirtualMachines` and the VM jobs show it.

use serde_json::{Value, json};

use crate::server::date;
use crate::services::owner::owner_view;
use crate::services::related::Related;
use crate::store::{router, vm};

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
        if vpc_uuid.is_none() {
            vpc_uuid = nic_vpc(related, n);
        }
        nics.push(nic_view(related, n, admin));
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
        "created": date(v.created),
        "haenable": false,
        "passwordenabled": t.as_ref().is_some_and(|t| t.enable_password),
        "isdynamicallyscalable": false,
        "vpcid": vpc_uuid,
        "nic": nics,
        "tags": [],
    });
    if admin {
        m["instancename"] = json!(v.instance_name);
        if let Some(h) = related.host(v.host_id) {
            m["hostid"] = json!(h.uuid);
            m["hostname"] = json!(h.name);
        }
    }
    if let Some(obj) = m.as_object_mut() {
        obj.extend(owner_view(a, d));
        obj.retain(|_, v| !v.is_null());
    }
    m
}

/// The VPC of the tier a NIC is on.
fn nic_vpc(related: &Related, n: &router::Nic) -> Option<uuid::Uuid> {
    related
        .network(n.network_id)
        .and_then(|t| t.vpc_id)
        .and_then(|id| related.vpc(id))
        .map(|p| p.uuid)
}

/// The fields every view of a VM's NIC shows (CloudStack's NicResponse);
/// `network` is the UUID of its tier.
pub fn nic_fields(n: &router::Nic, network: Option<&uuid::Uuid>) -> Value {
    json!({
        "id": n.uuid,
        "networkid": network,
        "ipaddress": n.ip4_address,
        "netmask": n.netmask,
        "gateway": n.gateway,
        "macaddress": n.mac_address,
        "isdefault": n.device_index == 0,
        "traffictype": "Guest",
        "type": "Isolated",
    })
}

/// A VM's NIC as `nic` of a VM and `listNics` show it (`admin` adds the
/// tier's broadcast URI); `related` holds the tiers and VPCs of the page.
pub fn nic_view(related: &Related, n: &router::Nic, admin: bool) -> Value {
    let tier = related.network(n.network_id);
    let mut nic = nic_fields(n, tier.as_ref().map(|t| &t.uuid));
    nic["networkname"] = json!(tier.as_ref().map(|t| &t.name));
    nic["deviceid"] = json!(n.device_index.to_string());
    nic["vpcid"] = json!(nic_vpc(related, n));
    if admin && let Some(uri) = tier.as_ref().and_then(|t| t.broadcast_uri.clone()) {
        nic["broadcasturi"] = json!(uri);
        nic["isolationuri"] = json!(uri);
    }
    if let Some(m) = nic.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    nic
}
