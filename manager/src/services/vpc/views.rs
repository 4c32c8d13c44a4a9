//! The response objects of VPCs and routers.

use serde_json::{Value, json};

use crate::api::ApiError;
use crate::server::date;
use crate::services::offering::services_view;
use crate::store::{Db, domain, network, offering, router, vpc, zone};

async fn zone_name(db: &Db, id: i64) -> Result<(String, String), ApiError> {
    Ok(zone::get_by_id(db, id)
        .await?
        .map(|z| (z.uuid, z.name))
        .unwrap_or_default())
}

/// The owner fields (`account`, `domainid`, `domain`, `domainpath`).
pub async fn owner_fields(
    db: &Db,
    account_id: i64,
    domain_id: i64,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let account = crate::store::account::get_by_id(db, account_id).await?;
    let d = domain::get_by_id(db, domain_id).await?;
    let mut m = serde_json::Map::new();
    m.insert(
        "account".into(),
        json!(account.map(|a| a.account_name).unwrap_or_default()),
    );
    if let Some(d) = d {
        m.insert("domainid".into(), json!(d.uuid));
        m.insert("domainpath".into(), json!(d.display_path()));
        m.insert("domain".into(), json!(d.name));
    }
    Ok(m)
}

/// A VPC as listVPCs and the createVPC job show it; `with_tiers` adds the
/// `network` list (short tier objects).
pub async fn vpc_view(db: &Db, v: &vpc::Vpc, with_tiers: bool) -> Result<Value, ApiError> {
    let (zone_uuid, zone_name) = zone_name(db, v.zone_id).await?;
    let o = offering::vpc_offering_by_id(db, v.vpc_offering_id).await?;
    let services = offering::vpc_offering_services(db, v.vpc_offering_id).await?;
    // The services of the offering except Gateway, each with its providers.
    let shown: Vec<_> = services
        .into_iter()
        .filter(|s| s.service != "Gateway")
        .collect();
    let service = services_view(&shown);
    let mut tiers = Vec::new();
    if with_tiers {
        for n in network::tiers_of_vpc(db, v.id).await? {
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
        "vpcofferingid": o.as_ref().map(|o| o.uuid.clone()),
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
        m.extend(owner_fields(db, v.account_id, v.domain_id).await?);
    }
    Ok(out)
}

/// A router as listRouters shows it; `hypervisor` names what runs it
/// (`Simulator` when nothing does).
pub async fn router_view(
    db: &Db,
    r: &router::Router,
    admin: bool,
    hypervisor: &str,
) -> Result<Value, ApiError> {
    let (zone_uuid, zone_name) = zone_name(db, r.zone_id).await?;
    let v = match r.vpc_id {
        Some(id) => vpc::get_by_id(db, id).await?,
        None => None,
    };
    let nics = router::nics_of(db, router::NicOwner::Router(r.id)).await?;
    let mut nic_views = Vec::new();
    let mut public = None;
    for n in &nics {
        let net = network::get_by_id(db, n.network_id).await?;
        let traffic = match n.role.as_str() {
            router::ROLE_PUBLIC => "Public",
            router::ROLE_PRIVATE => "Guest",
            router::ROLE_CONTROL => "Control",
            _ => "Guest",
        };
        if n.role == router::ROLE_PUBLIC {
            public = Some((n, net.clone()));
        }
        nic_views.push(json!({
            "id": n.uuid,
            "networkid": net.as_ref().map(|x| x.uuid.clone()),
            "networkname": net.as_ref().map(|x| x.name.clone()),
            "ipaddress": n.ip4_address,
            "netmask": n.netmask,
            "gateway": n.gateway,
            "macaddress": n.mac_address,
            "traffictype": traffic,
            "type": if n.role == router::ROLE_PRIVATE { "Private" } else { "Isolated" },
            "isdefault": n.role == router::ROLE_PUBLIC,
            "deviceid": n.device_index.to_string(),
            "broadcasturi": net.as_ref().and_then(|x| x.broadcast_uri.clone()),
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
        "vpcid": v.as_ref().map(|v| v.uuid.clone()),
        "vpcname": v.as_ref().map(|v| v.name.clone()),
        "networkdomain": v.as_ref().and_then(|v| v.network_domain.clone()),
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
            m.insert("publicnetworkid".into(), json!(net.map(|x| x.uuid)));
        }
        if admin && let Some(endpoint) = &r.agent_endpoint {
            m.insert("agentendpoint".into(), json!(endpoint));
        }
        m.extend(owner_fields(db, r.account_id, r.domain_id).await?);
    }
    Ok(out)
}
