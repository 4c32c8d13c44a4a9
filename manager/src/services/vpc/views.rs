//! The response objects of VPCs and routers, built from a page's
//! [`Related`] rows (loaded once per page) so a view sends no statement.

use serde_json::{Value, json};

use crate::server::date;
use crate::services::offering::services_view;
use crate::services::related::Related;
use crate::store::{router, vpc};

/// A VPC as listVPCs and the createVPC job show it; `with_tiers` adds the
/// `network` list (short tier objects). `related` holds the page's zones,
/// offerings, owners and tiers ([`Related::for_vpcs`]).
pub fn vpc_view(related: &Related, v: &vpc::Vpc, with_tiers: bool) -> Value {
    let (zone_uuid, zone_name) = related.zone(v.zone_id);
    let o = related.vpc_offering(v.vpc_offering_id);
    // The services of the offering except Gateway, each with its providers.
    let shown: Vec<_> = related
        .vpc_offering_services(v.vpc_offering_id)
        .iter()
        .filter(|s| s.service != "Gateway")
        .cloned()
        .collect();
    let service = services_view(&shown);
    let mut tiers = Vec::new();
    if with_tiers {
        for n in related.tiers(v.id) {
            tiers.push(json!({
                "id": n.uuid,
                "name": n.name,
                "displaytext": n.display_text,
                "cidr": n.cidr,
                "gateway": n.gateway,
                "netmask": n.netmask,
                "state": n.state,
                "vpcid": v.uuid,
                "traffictype": n.traffic_type,
            }));
        }
    }
    let mut out = json!({
        "id": v.uuid,
        "name": v.name,
        "displaytext": v.display_text,
        "state": v.state,
        "zoneid": zone_uuid,
        "zonename": zone_name,
        "cidr": v.cidr,
        "vpcofferingid": o.as_ref().map(|o| o.uuid),
        "vpcofferingname": o.as_ref().map(|o| o.name.clone()),
        "service": service,
        "network": tiers,
        "restartrequired": v.restart_required,
        "networkdomain": v.network_domain,
        "created": date(v.created),
        "fordisplay": true,
        "distributedvpcrouter": false,
        "regionlevelvpc": false,
        "redundantvpcrouter": v.redundant,
        "publicmtu": v.public_mtu,
        "dns1": v.dns1,
        "dns2": v.dns2,
        "tags": [],
        "hasannotations": false,
    });
    if let Value::Object(m) = &mut out {
        m.extend(related.owner_fields(v.account_id, v.domain_id));
    }
    out
}

/// A router as listRouters shows it; `hypervisor` names what runs it
/// (`Simulator` when nothing does). `related` holds the page's zones, VPCs,
/// NICs, networks and owners ([`Related::for_routers`]).
pub fn router_view(related: &Related, r: &router::Router, admin: bool, hypervisor: &str) -> Value {
    let (zone_uuid, zone_name) = related.zone(r.zone_id);
    let v = r.vpc_id.and_then(|id| related.vpc(id));
    let nics = related.router_nics(r.id);
    let mut nic_views = Vec::new();
    let mut public = None;
    for n in nics {
        let net = related.network(n.network_id);
        let traffic = match n.role.as_str() {
            router::ROLE_PUBLIC => "Public",
            router::ROLE_PRIVATE => "Guest",
            router::ROLE_CONTROL => "Control",
            _ => "Guest",
        };
        if n.role == router::ROLE_PUBLIC {
            public = Some((n, net));
        }
        nic_views.push(json!({
            "id": n.uuid,
            "networkid": net.map(|x| x.uuid),
            "networkname": net.map(|x| x.name.clone()),
            "ipaddress": n.ip4_address,
            "netmask": n.netmask,
            "gateway": n.gateway,
            "macaddress": n.mac_address,
            "traffictype": traffic,
            "type": if n.role == router::ROLE_PRIVATE { "Private" } else { "Isolated" },
            "isdefault": n.role == router::ROLE_PUBLIC,
            "deviceid": n.device_index.to_string(),
            "broadcasturi": net.and_then(|x| x.broadcast_uri.clone()),
        }));
    }
    let current = r.applied_generation >= r.config_generation;
    let mut out = json!({
        "id": r.uuid,
        "name": r.name,
        "zoneid": zone_uuid,
        "zonename": zone_name,
        "state": r.state,
        "created": date(r.created),
        "vpcid": v.map(|v| v.uuid),
        "vpcname": v.map(|v| v.name.clone()),
        "networkdomain": v.and_then(|v| v.network_domain.clone()),
        "role": "VIRTUAL_ROUTER",
        "hypervisor": hypervisor,
        "isredundantrouter": false,
        "redundantstate": "UNKNOWN",
        "requiresupgrade": false,
        "version": env!("CARGO_PKG_VERSION"),
        "nic": nic_views,
        "configgeneration": r.config_generation,
        "appliedgeneration": r.applied_generation,
        "configcurrent": current,
        "healthchecksfailed": false,
        "hasannotations": false,
    });
    if let Value::Object(m) = &mut out {
        if let Some((n, net)) = public {
            m.insert("publicip".into(), json!(n.ip4_address));
            m.insert("publicmacaddress".into(), json!(n.mac_address));
            m.insert("publicnetmask".into(), json!(n.netmask));
            m.insert("gateway".into(), json!(n.gateway));
            m.insert("publicnetworkid".into(), json!(net.map(|x| &x.uuid)));
        }
        if admin && let Some(endpoint) = &r.agent_endpoint {
            m.insert("agentendpoint".into(), json!(endpoint));
        }
        if admin && let Some(h) = related.host(r.host_id) {
            m.insert("hostid".into(), json!(h.uuid));
            m.insert("hostname".into(), json!(h.name));
        }
        m.extend(related.owner_fields(r.account_id, r.domain_id));
    }
    out
}
