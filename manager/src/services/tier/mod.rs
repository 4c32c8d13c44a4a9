//! VPC tiers (CloudStack reference §2.4, §3.4): `createNetwork` with a
//! `vpcid` (synchronous, as in CloudStack), `listNetworks`, and the async
//! `updateNetwork`, `deleteNetwork` and `restartNetwork`. A tier is created
//! Allocated; its first VM implements it (`provision::tier`).

mod create;
mod lifecycle;
mod list;

use serde_json::{Value, json};

use crate::api::Params;
use crate::error::Error;
use crate::server::jobs::JobBody;
use crate::server::registry::{ALL, CommandSpec, FieldSpec, Kind, ParamType::*, field, opt, req};
use crate::server::{Ctx, Role, date};
use crate::services::offering::services_view;
use crate::services::owner;
use crate::services::related::Related;
use crate::store::{Db, network};

fn network_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the network"),
        field("name", "string", "the name of the network"),
        field("displaytext", "string", "the description of the network"),
        field("cidr", "string", "the CIDR of the tier"),
        field("gateway", "string", "the gateway (the router's address)"),
        field("netmask", "string", "the netmask of the tier"),
        field("state", "string", "Allocated, Implemented, Shutdown"),
        field("traffictype", "string", "Guest"),
        field("type", "string", "the guest type: Isolated"),
        field("broadcastdomaintype", "string", "Vlan or Vxlan"),
        field(
            "broadcasturi",
            "string",
            "the tier's vnet URI, once implemented (admins only)",
        ),
        field("vlan", "string", "the tier's vnet (admins only)"),
        field("zoneid", "string", "the zone"),
        field("zonename", "string", "the name of the zone"),
        field("vpcid", "string", "the VPC of the tier"),
        field("vpcname", "string", "the name of the VPC"),
        field("aclid", "string", "the ACL list of the tier, if any"),
        field("aclname", "string", "the name of that ACL list"),
        field("networkofferingid", "string", "the network offering"),
        field("networkofferingname", "string", "the name of the offering"),
        field("networkdomain", "string", "the DNS domain of the tier"),
        field("physicalnetworkid", "string", "the physical network"),
        field("service", "list", "the services of the tier"),
        field("account", "string", "the owner account"),
        field("domainid", "string", "the owner's domain"),
        field("domain", "string", "the name of the owner's domain"),
        field(
            "restartrequired",
            "boolean",
            "whether the tier needs a restart",
        ),
        field(
            "ispersistent",
            "boolean",
            "whether it stays implemented without VMs",
        ),
        field(
            "canusefordeploy",
            "boolean",
            "whether VMs can be deployed in it",
        ),
        field("created", "date", "when the tier was created"),
    ]
}

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let mut create_params = vec![
        req("name", String, "the name of the tier"),
        opt("displaytext", String, "the description; default the name"),
        req(
            "networkofferingid",
            Uuid,
            "the network offering (Enabled, for VPC tiers)",
        ),
        req("zoneid", Uuid, "the zone (the VPC's)"),
        opt(
            "vpcid",
            Uuid,
            "the VPC the tier belongs to (only VPC tiers are supported)",
        ),
        opt(
            "gateway",
            String,
            "the tier gateway, the router's address on it (required for tiers)",
        ),
        opt(
            "netmask",
            String,
            "the tier netmask (required for tiers); CIDR = gateway/netmask",
        ),
        opt(
            "aclid",
            Uuid,
            "the ACL list of the tier: one of the VPC or a default list; none if omitted",
        ),
        opt(
            "networkdomain",
            String,
            "the DNS domain; must be the VPC's (its default)",
        ),
        opt("acltype", String, "Account (the only type of a VPC tier)"),
        opt(
            "displaynetwork",
            Boolean,
            "accepted; every tier is displayed",
        ),
    ];
    create_params.extend(owner::owner_params());
    let mut list_params = vec![
        opt("id", Uuid, "the ID of the network"),
        opt("name", String, "only networks of this name"),
        opt("vpcid", Uuid, "only tiers of this VPC"),
        opt(
            "forvpc",
            Boolean,
            "true: only VPC tiers; false: only networks outside VPCs",
        ),
        opt("zoneid", Uuid, "only networks of this zone"),
        opt("traffictype", String, "only networks of this traffic type"),
        opt("type", String, "only networks of this guest type"),
        opt("issystem", Boolean, "true: only system networks (none)"),
        opt("networkofferingid", Uuid, "only networks of this offering"),
        opt(
            "physicalnetworkid",
            Uuid,
            "only networks on this physical network",
        ),
        opt(
            "restartrequired",
            Boolean,
            "only networks that need (or do not need) a restart",
        ),
        opt(
            "canusefordeploy",
            Boolean,
            "only networks VMs can (or cannot) be deployed in",
        ),
        opt(
            "supportedservices",
            List,
            "only networks giving all these services",
        ),
        opt(
            "acltype",
            String,
            "only networks of this ACL type (Account)",
        ),
    ];
    list_params.extend(owner::list_params());
    vec![
        CommandSpec {
            name: "createNetwork",
            description: "Creates a tier of a VPC",
            kind: Kind::Sync,
            roles: ALL,
            params: create_params,
            object: "network",
            response: network_fields(),
            since: "",
            handler: create::CREATE_NETWORK,
            job: None,
        },
        CommandSpec {
            name: "listNetworks",
            description: "Lists the tiers the caller may see",
            kind: Kind::Sync,
            roles: ALL,
            params: list_params,
            object: "network",
            response: network_fields(),
            since: "",
            handler: list::LIST_NETWORKS,
            job: None,
        },
        CommandSpec {
            name: "updateNetwork",
            description: "Renames a tier or changes its description",
            kind: Kind::Async,
            roles: ALL,
            params: vec![
                req("id", Uuid, "the ID of the network"),
                opt("name", String, "the new name"),
                opt("displaytext", String, "the new description"),
                opt(
                    "networkdomain",
                    String,
                    "the DNS domain: a tier keeps its VPC's",
                ),
                opt(
                    "networkofferingid",
                    Uuid,
                    "a new offering: not supported for tiers",
                ),
            ],
            object: "network",
            response: network_fields(),
            since: "",
            handler: lifecycle::UPDATE_NETWORK,
            job: None,
        },
        CommandSpec {
            name: "deleteNetwork",
            description: "Deletes a tier in which no VM is left",
            kind: Kind::Async,
            roles: ALL,
            params: vec![
                req("id", Uuid, "the ID of the network"),
                opt(
                    "forced",
                    Boolean,
                    "root admin: delete even if the router cannot be cleaned up",
                ),
            ],
            object: "network",
            response: vec![],
            since: "",
            handler: lifecycle::DELETE_NETWORK,
            job: None,
        },
        CommandSpec {
            name: "restartNetwork",
            description: "Sends an implemented tier to its router again",
            kind: Kind::Async,
            roles: ALL,
            params: vec![
                req("id", Uuid, "the ID of the network"),
                opt(
                    "cleanup",
                    Boolean,
                    "true is refused for tiers: restart the whole VPC instead",
                ),
                opt("makeredundant", Boolean, "not supported for tiers"),
                opt("livepatch", Boolean, "accepted; the tier is re-sent anyway"),
            ],
            object: "network",
            response: vec![],
            since: "",
            handler: lifecycle::RESTART_NETWORK,
            job: None,
        },
    ]
}

/// The job body of every async command of this module.
pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("updateNetwork", lifecycle::UPDATE_NETWORK_JOB),
        ("deleteNetwork", lifecycle::DELETE_NETWORK_JOB),
        ("restartNetwork", lifecycle::RESTART_NETWORK_JOB),
    ]
}

/// The live tier (Guest network of a VPC) named by parameter `name`, which
/// the caller may act on.
pub async fn tier_param(ctx: &Ctx, params: &Params, name: &str) -> Result<network::Network, Error> {
    let id = params.required_uuid(ctx.command, name)?.to_string();
    let t = network::get_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|t| t.removed.is_none() && t.traffic_type == network::TRAFFIC_GUEST)
        .ok_or_else(|| Error::invalid_id(name, &id))?;
    owner::check_access(ctx, t.account_id, &t.domain_path, &format!("network {id}"))?;
    Ok(t)
}

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
    put("account", json!(a.as_ref().map(|a| &a.account_name)));
    if let Some(d) = &d {
        put("domainid", json!(d.uuid));
        put("domain", json!(d.name));
        put("domainpath", json!(d.display_path()));
    }
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
    Value::Object(m)
}

/// Whether the caller sees the admin-only fields.
fn sees_admin_fields(ctx: &Ctx) -> bool {
    ctx.caller.role != Role::User
}

/// The job result of a tier: `{"network": {...}}`.
async fn network_result(db: &Db, id: i64, admin: bool) -> Result<Value, Error> {
    let t = network::get_by_id(db, id)
        .await?
        .filter(|t| t.removed.is_none())
        .ok_or_else(|| Error::invalid("The network was deleted meanwhile"))?;
    let related = Related::for_networks(db, std::slice::from_ref(&t)).await?;
    Ok(json!({ "network": network_view(&related, &t, admin) }))
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
