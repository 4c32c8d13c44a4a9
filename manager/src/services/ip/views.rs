//! The public IP response object (IPAddressResponse, reference §2.5) and its
//! documented fields.

use serde_json::{Value, json};

use super::common::{Names, merge};
use crate::error::Error;
use crate::server::registry::{FieldSpec, field};
use crate::server::{Caller, date};
use crate::store::{Db, vlan};

/// One public IP as listPublicIpAddresses and associateIpAddress show it.
pub async fn ip_view(
    db: &Db,
    caller: &Caller,
    names: &mut Names,
    ip: &vlan::PublicIp,
) -> Result<Value, Error> {
    let zone = names
        .zone(db, ip.zone_id)
        .await?
        .map(|z| (z.uuid, z.name.clone()));
    let vpc = match ip.vpc_id {
        Some(id) => names.vpc(db, id).await?.map(|v| (v.uuid, v.name.clone())),
        None => None,
    };
    let tier = match ip.associated_network_id {
        Some(id) => names
            .network(db, id)
            .await?
            .map(|n| (n.uuid, n.name.clone())),
        None => None,
    };
    let vm = match ip.vm_id {
        Some(id) => names
            .vm(db, id)
            .await?
            .map(|v| (v.uuid, v.name.clone(), v.display_name.clone())),
        None => None,
    };
    let range = names.range(db, ip.vlan_db_id).await?.cloned();
    let has_rules = ip.one_to_one_nat || names.has_live_rules(db, ip.id).await?;
    let admin = caller.is_root_admin();
    let view = json!({
        "id": ip.uuid,
        "ipaddress": ip.public_ip_address,
        "allocated": ip.allocated.map(date),
        "zoneid": zone.as_ref().map(|z| z.0),
        "zonename": zone.as_ref().map(|z| z.1.clone()),
        "issourcenat": ip.source_nat,
        "forvirtualnetwork": true,
        "vlanid": range.as_ref().filter(|_| admin).map(|r| r.uuid),
        "vlanname": range.as_ref().filter(|_| admin).map(|r| r.vlan_id.clone()),
        "physicalnetworkid": None::<String>,
        "isstaticnat": ip.one_to_one_nat,
        "issystem": false,
        "virtualmachineid": vm.as_ref().map(|v| v.0),
        "virtualmachinename": vm.as_ref().map(|v| v.1.clone()),
        "virtualmachinedisplayname": vm.as_ref().map(|v| v.2.clone()),
        "virtualmachinetype": vm.as_ref().map(|_| "User"),
        "vmipaddress": ip.vm_ip,
        "associatednetworkid": tier.as_ref().map(|t| t.0),
        "associatednetworkname": tier.as_ref().map(|t| t.1.clone()),
        "vpcid": vpc.as_ref().map(|v| v.0),
        "vpcname": vpc.as_ref().map(|v| v.1.clone()),
        "state": ip.state,
        "isportable": false,
        "fordisplay": true,
        "hasrules": has_rules,
        "forsystemvms": false,
        "forprovider": false,
        "tags": [],
    });
    let owner = names.owner(db, ip.account_id, ip.domain_id).await?;
    Ok(merge(view, owner))
}

/// The documented fields of the public IP object.
pub const IP_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the public IP address"),
    field("ipaddress", "string", "the public IP address"),
    field("allocated", "date", "when the address was acquired"),
    field("zoneid", "string", "the zone of the address"),
    field("zonename", "string", "the name of the zone"),
    field(
        "issourcenat",
        "boolean",
        "whether it is the VPC's source NAT address",
    ),
    field("account", "string", "the account holding the address"),
    field("domainid", "string", "the domain of that account"),
    field("domain", "string", "the name of that domain"),
    field(
        "forvirtualnetwork",
        "boolean",
        "always true: the address serves virtual networks",
    ),
    field(
        "vlanid",
        "string",
        "the public IP range of the address (admins only)",
    ),
    field("vlanname", "string", "the VLAN of that range (admins only)"),
    field(
        "isstaticnat",
        "boolean",
        "whether static NAT is enabled on it",
    ),
    field("issystem", "boolean", "always false"),
    field(
        "virtualmachineid",
        "string",
        "the VM behind the address (static NAT)",
    ),
    field("virtualmachinename", "string", "the name of that VM"),
    field(
        "virtualmachinedisplayname",
        "string",
        "the display name of that VM",
    ),
    field("virtualmachinetype", "string", "the type of that VM (User)"),
    field(
        "vmipaddress",
        "string",
        "the VM address behind the address (static NAT)",
    ),
    field(
        "associatednetworkid",
        "string",
        "the tier the address is bound to, once a rule binds it",
    ),
    field("associatednetworkname", "string", "the name of that tier"),
    field("vpcid", "string", "the VPC the address is acquired for"),
    field("vpcname", "string", "the name of that VPC"),
    field("state", "string", "Allocated, Releasing or Free"),
    field("isportable", "boolean", "always false"),
    field("fordisplay", "boolean", "always true"),
    field(
        "hasrules",
        "boolean",
        "whether port forwarding, load balancing or static NAT uses it",
    ),
    field("forsystemvms", "boolean", "always false"),
    field("tags", "list", "the tags of the address"),
];
