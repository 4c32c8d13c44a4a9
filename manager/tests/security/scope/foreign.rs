//! Every command, as listApis lists it, called by foreign callers with
//! lookup parameters naming account A's objects: lists show none of them,
//! other commands refuse (431/531, or 432 for a role that may not call the
//! command) and change nothing.

use serde_json::Value;

use super::tenant::{self, ACCOUNT, MARK, Tenant};
use crate::support::api::{Client, on_both_backends};
use crate::support::vpc::{SMALL, TEMPLATE};

/// The kind of object a command's `id` (or `ids`, `name`) names, from the
/// command's name; `None` for commands about shared catalogs (zones,
/// offerings, templates, configuration) or the API itself.
fn kind_of(command: &str) -> Option<&'static str> {
    // Longest names first: "NetworkACLList" before "NetworkACL" before "Network".
    const KINDS: &[(&str, &str)] = &[
        ("LoadBalancerRuleInstances", "lb_rule"),
        ("NetworkACLList", "acl_list"),
        ("NetworkACLItem", "acl_item"),
        ("NetworkACL", "acl_item"),
        ("NetworkAclItem", "acl_item"),
        ("PortForwardingRule", "pf_rule"),
        ("LoadBalancerRule", "lb_rule"),
        ("FirewallRule", ""),
        ("PrivateGateway", "gateway"),
        ("StaticRoute", "route"),
        ("StaticNat", "nat_ip"),
        ("IpAddress", "ip"),
        ("VirtualMachine", "vm"),
        ("Router", "router"),
        ("VPCOffering", ""),
        ("PhysicalNetwork", ""),
        ("TrafficType", ""),
        ("VlanIpRange", ""),
        ("NetworkOffering", ""),
        ("VPC", "vpc"),
        ("Network", "tier"),
    ];
    KINDS
        .iter()
        .find(|(noun, _)| command.contains(noun))
        .map(|(_, kind)| *kind)
        .filter(|k| !k.is_empty())
}

/// The value naming one of A's objects (or A itself) for parameter `param`
/// of `command`, if the parameter is a lookup.
fn lookup(t: &Tenant, command: &str, param: &str) -> Option<String> {
    let kind = match param {
        "id" | "ids" => kind_of(command)?,
        "name" => return t.names.get(kind_of(command)?).cloned(),
        "keyword" => return Some(MARK.to_string()),
        "account" => return Some(ACCOUNT.to_string()),
        "accountid" => return Some(t.account_uuid.clone()),
        "domainid" => return Some(t.domain.clone()),
        "vpcid" => "vpc",
        "networkid" | "associatednetworkid" | "networkids" => "tier",
        "aclid" => "acl_list",
        "ipaddressid" | "publicipid" => "ip",
        "virtualmachineid" | "virtualmachineids" => "vm",
        "gatewayid" => "gateway",
        "routerid" => "router",
        "jobid" => "job",
        "previousaclruleid" | "nextaclruleid" => "acl_item",
        _ => return None,
    };
    Some(t.id(kind).to_string())
}

/// One command as listApis shows it: name and (name, type, required) of
/// each parameter.
struct Api {
    name: String,
    params: Vec<(String, String, bool)>,
}

async fn apis(admin: &Client) -> Vec<Api> {
    let listed = admin.ok("listApis", &[]).await;
    listed["api"]
        .as_array()
        .expect("listApis lists APIs")
        .iter()
        .map(|api| Api {
            name: api["name"].as_str().unwrap_or_default().to_string(),
            params: api["params"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap_or_default().to_string(),
                        p["type"].as_str().unwrap_or_default().to_string(),
                        p["required"].as_bool().unwrap_or(false),
                    )
                })
                .collect(),
        })
        .collect()
}

/// The parameter sets a list command is probed with: each lookup parameter
/// alone, with `listall=true`, and nothing but `listall=true`.
fn list_probes(t: &Tenant, api: &Api) -> Vec<Vec<(String, String)>> {
    let mut probes = vec![vec![], vec![("listall".to_string(), "true".to_string())]];
    for (param, _, _) in &api.params {
        let Some(value) = lookup(t, &api.name, param) else {
            continue;
        };
        let mut one = vec![(param.clone(), value)];
        if param == "account" {
            one.push(("domainid".to_string(), t.domain.clone()));
        }
        let mut all = one.clone();
        all.push(("listall".to_string(), "true".to_string()));
        if param == "domainid" {
            all.push(("isrecursive".to_string(), "true".to_string()));
        }
        probes.push(one);
        probes.push(all);
    }
    probes
}

fn borrowed(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// What is wrong with a foreign caller's answer, if anything: a 200 that
/// shows one of A's objects, or an error other than 431/531/432 (or one
/// whose text shows more of A than the caller sent).
fn leak(t: &Tenant, params: &[(String, String)], status: u16, body: &Value) -> Option<String> {
    let mut text = body.to_string();
    if status != 200 {
        if ![431, 531, 432].contains(&status) {
            return Some(format!("answered {status}: {text}"));
        }
        // Error texts may echo what the caller sent.
        for (_, v) in params {
            text = text.replace(v.as_str(), "<sent>");
        }
    }
    t.secrets()
        .iter()
        .find(|s| text.contains(s.as_str()))
        .map(|s| format!("shows {s}: {text}"))
}

on_both_backends!(
    list_commands_show_nothing_of_another_tenant_by_id_or_name,
    |m| {
        let t = tenant::build(m, "scopez").await;
        let admin = m.admin();
        let apis = apis(&admin).await;
        let lists: Vec<&Api> = apis.iter().filter(|a| a.name.starts_with("list")).collect();
        assert!(lists.len() > 15, "listApis lists the list commands");
        let mut failures = Vec::new();
        let mut probed_kinds = std::collections::BTreeSet::new();
        for api in &lists {
            for probe in list_probes(&t, api) {
                // The same lookup by the root admin finds A's object: the probe
                // really names it.
                let mut as_root = probe.clone();
                as_root.push(("listall".to_string(), "true".to_string()));
                let (status, body) = admin.call(&api.name, &borrowed(&as_root)).await;
                if let Some(kind) = kind_of(&api.name)
                    && probe.iter().any(|(k, _)| k == "id")
                {
                    assert_eq!(status, 200, "{} {probe:?} as root: {body}", api.name);
                    let shown = body.to_string();
                    assert!(
                        t.secrets().iter().any(|s| shown.contains(s.as_str())),
                        "{} {probe:?} as root shows A's {kind}: {body}",
                        api.name
                    );
                    probed_kinds.insert(kind);
                }
                for (who, client) in &t.foreign {
                    let (status, body) = client.call(&api.name, &borrowed(&probe)).await;
                    if let Some(leak) = leak(&t, &probe, status, &body) {
                        failures.push(format!("{} {probe:?} as {who}: {leak}", api.name));
                    }
                }
            }
        }
        for kind in t.ids.keys() {
            if !["job", "nat_ip"].contains(kind) {
                assert!(
                    probed_kinds.contains(kind),
                    "no list command looked up A's {kind} by id"
                );
            }
        }
        assert!(
            failures.is_empty(),
            "{} leaks:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
);

/// A plausible value for a required parameter that is not a lookup, so the
/// call is well formed and only ownership can refuse it.
fn filler(t: &Tenant, param: &str, ty: &str) -> String {
    match param {
        "protocol" => "tcp".into(),
        "startport" | "endport" | "publicport" | "privateport" => "2000".into(),
        "cidr" | "cidrlist" => "192.168.99.0/24".into(),
        "algorithm" => "roundrobin".into(),
        "zoneid" => t.env.zone.clone(),
        "networkofferingid" => t.env.tier_offering.clone(),
        "vpcofferingid" => t.env.vpc_offering.clone(),
        "serviceofferingid" => SMALL.into(),
        "templateid" => TEMPLATE.into(),
        "gateway" => "10.71.9.1".into(),
        "netmask" => "255.255.255.0".into(),
        "ipaddress" => "172.16.72.2".into(),
        "vlan" => "3172".into(),
        "max" => "100".into(),
        "resourcetype" => "7".into(),
        _ => match ty {
            "integer" | "long" => "1".into(),
            "boolean" => "true".into(),
            _ => "x".into(),
        },
    }
}

/// Commands about identities (accounts, users, domains, keys), probed by the
/// identity tests, and commands that only read shared catalogs.
const NOT_TENANT_OBJECTS: &[&str] = &[
    "createAccount",
    "updateAccount",
    "deleteAccount",
    "disableAccount",
    "enableAccount",
    "lockAccount",
    "createUser",
    "updateUser",
    "deleteUser",
    "disableUser",
    "enableUser",
    "lockUser",
    "registerUserKeys",
    "getUserKeys",
    "createDomain",
    "updateDomain",
    "deleteDomain",
    "listDomains",
    "listDomainChildren",
    "listAccounts",
    "listUsers",
    "login",
    "logout",
];

/// What A sees of its own objects, to compare before and after the probes.
async fn own_view(t: &Tenant) -> Vec<Value> {
    let mut all = Vec::new();
    for command in [
        "listVPCs",
        "listNetworks",
        "listNetworkACLLists",
        "listNetworkACLs",
        "listVirtualMachines",
        "listPublicIpAddresses",
        "listPortForwardingRules",
        "listLoadBalancerRules",
        "listPrivateGateways",
        "listStaticRoutes",
    ] {
        let params: Vec<(&str, &str)> = if command == "listNetworkACLs" {
            vec![("aclid", t.id("acl_list"))]
        } else {
            vec![]
        };
        all.push(t.a.ok(command, &params).await);
    }
    all
}

on_both_backends!(
    commands_refuse_another_tenants_objects_and_change_nothing,
    |m| {
        let t = tenant::build(m, "scopeop").await;
        let admin = m.admin();
        let before = own_view(&t).await;
        m.agent.clear();
        m.driver.clear();
        let apis = apis(&admin).await;
        let mut failures = Vec::new();
        let mut probed = 0;
        for api in apis.iter().filter(|a| {
            !a.name.starts_with("list") && !NOT_TENANT_OBJECTS.contains(&a.name.as_str())
        }) {
            let lookups: Vec<(String, String)> = api
                .params
                .iter()
                .filter_map(|(p, _, _)| lookup(&t, &api.name, p).map(|v| (p.clone(), v)))
                // `keyword` and `name` filter lists; here they are only names.
                .filter(|(p, _)| p != "keyword" && p != "name")
                .collect();
            if lookups.is_empty() {
                continue;
            }
            let mut params = lookups;
            for (p, ty, required) in &api.params {
                if *required && !params.iter().any(|(k, _)| k == p) {
                    params.push((p.clone(), filler(&t, p, ty)));
                }
            }
            probed += 1;
            for (who, client) in &t.foreign {
                let (status, body) = client.call(&api.name, &borrowed(&params)).await;
                if ![431, 531, 432].contains(&status) {
                    failures.push(format!("{} {params:?} as {who}: {status} {body}", api.name));
                } else if let Some(leak) = leak(&t, &params, status, &body) {
                    failures.push(format!("{} {params:?} as {who}: {leak}", api.name));
                }
            }
        }
        assert!(probed > 20, "only {probed} commands take A's objects");
        assert!(
            failures.is_empty(),
            "{} commands acted for a foreign caller:\n{}",
            failures.len(),
            failures.join("\n")
        );
        // Give a job that should not have started the time to show itself.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(
            m.agent.rpcs(),
            Vec::<&str>::new(),
            "no router was told anything"
        );
        assert_eq!(own_view(&t).await, before, "A's objects are unchanged");
    }
);
