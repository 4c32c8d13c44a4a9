//! A tier as `createNetwork`, `listNetworks` and the tier jobs show it.

use serde_json::{Value, json};

use crate::server::date;
use crate::services::offering::services_view;
use crate::services::owner::owner_view;
use crate::services::related::Related;
use crate::store::network;

/// The broadcast domain type of a tier's URI or isolation method.
fn broadcast_domain_type(uri: Option<&str>, isolation: Option<&str>) -> &'static str {
    let scheme = uri
        .and_then(|u| u.split_once("://").map(|(s, _)| s))
        .or(isolation)
        .unwrap_or("vlan");
    if scheme.eq_ignore_ascii_case("vxlan") {
        "Vxlan"
    } else {
        "Vlan"
    }
}

/// A tier as createNetwork, listNetworks and the jobs show it; `admin` adds
/// the fields CloudStack shows only to admins (broadcast URI, VLAN).
/// `related` holds the page's rows ([`Related::for_networks`]).
pub fn network_view(related: &Related, t: &network::Network, admin: bool) -> Value {
    let z = related.zone_row(t.zone_id);
    let o = related.network_offering(t.network_offering_id);
    let services = related.network_offering_services(t.network_offering_id);
    let v = t.vpc_id.and_then(|id| related.vpc(id));
    let list = t.network_acl_id.and_then(|id| related.acl_list(id));
    let pn = t
        .physical_network_id
        .and_then(|id| related.physical_network(id));
    let a = related.account(t.account_id);
    let d = related.domain(t.domain_id);
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            m.insert(k.to_string(), v);
        }
    };
    put("id", json!(t.uuid));
    put("name", json!(t.name));
    put("displaytext", json!(t.display_text));
    put(
        "broadcastdomaintype",
        json!(broadcast_domain_type(
            t.broadcast_uri.as_deref(),
            pn.as_ref().map(|p| p.isolation_method.as_str())
        )),
    );
    put("traffictype", json!(t.traffic_type));
    put("gateway", json!(t.gateway));
    put("netmask", json!(t.netmask));
    put("cidr", json!(t.cidr));
    put("zoneid", json!(z.as_ref().map(|z| &z.uuid)));
    put("zonename", json!(z.as_ref().map(|z| &z.name)));
    if let Some(z) = &z {
        put("dns1", json!(z.dns1));
        put("dns2", json!(z.dns2));
    }
    put("networkofferingid", json!(o.as_ref().map(|o| &o.uuid)));
    put("networkofferingname", json!(o.as_ref().map(|o| &o.name)));
    put(
        "networkofferingdisplaytext",
        json!(o.as_ref().map(|o| &o.display_text)),
    );
    put(
        "networkofferingconservemode",
        json!(o.as_ref().map(|o| o.conserve_mode)),
    );
    put(
        "networkofferingavailability",
        json!(o.as_ref().map(|o| &o.availability)),
    );
    put("issystem", json!(false));
    put("state", json!(t.state));
    put("related", json!(t.uuid));
    if admin {
        put("broadcasturi", json!(t.broadcast_uri));
        put("vlan", json!(t.vnet));
    }
    put("type", json!("Isolated"));
    put("acltype", json!("Account"));
    put("isdefault", json!(false));
    put("service", json!(services_view(services)));
    put("networkdomain", json!(t.network_domain));
    put("physicalnetworkid", json!(pn.as_ref().map(|p| &p.uuid)));
    put("restartrequired", json!(false));
    put("specifyvlan", json!(false));
    put("specifyipranges", json!(false));
    put("vpcid", json!(v.as_ref().map(|v| &v.uuid)));
    put("vpcname", json!(v.as_ref().map(|v| &v.name)));
    put(
        "canusefordeploy",
        json!(t.removed.is_none() && t.traffic_type == network::TRAFFIC_GUEST),
    );
    put(
        "ispersistent",
        json!(o.as_ref().is_some_and(|o| o.is_persistent)),
    );
    put("tags", json!([]));
    put("displaynetwork", json!(true));
    put("aclid", json!(list.as_ref().map(|l| &l.uuid)));
    put("aclname", json!(list.as_ref().map(|l| &l.name)));
    put("strechedl2subnet", json!(false));
    put("redundantrouter", json!(false));
    put("supportsvmautoscaling", json!(false));
    put("internetprotocol", json!("IPv4"));
    put("hasannotations", json!(false));
    put("created", json!(date(t.created)));
    m.extend(owner_view(a, d));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_domain_type_follows_the_uri_then_the_isolation() {
        assert_eq!(broadcast_domain_type(Some("vxlan://5001"), None), "Vxlan");
        assert_eq!(
            broadcast_domain_type(Some("vlan://100"), Some("VXLAN")),
            "Vlan"
        );
        assert_eq!(broadcast_domain_type(None, Some("VXLAN")), "Vxlan");
        assert_eq!(broadcast_domain_type(None, None), "Vlan");
    }
}
