//! A tenant with one object of every kind the VPC API manages (account A in
//! its own domain), and three foreign callers: a user of another account in
//! A's domain, a user of another domain, and a domain admin of that other
//! domain.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::api::{Client, TestManager, id, job_ok};
use crate::support::vpc::{Env, account_in, deploy_vm, zone_env};

/// Every name of A's objects carries this marker, so a response that shows
/// one of them is found by a plain substring search.
pub const MARK: &str = "zq7";

/// A's account name.
pub const ACCOUNT: &str = "zq7alice";

/// Account A, its objects (kind → UUID, kind → name) and the foreign callers.
pub struct Tenant {
    pub env: Env,
    pub a: Client,
    pub domain: String,
    pub account_uuid: String,
    /// Kind (`vpc`, `tier`, `acl_list` …) → UUID of A's object of that kind.
    pub ids: BTreeMap<&'static str, String>,
    /// Kind → name of A's object, where the kind has names.
    pub names: BTreeMap<&'static str, String>,
    /// (label, client) of each foreign caller.
    pub foreign: Vec<(&'static str, Client)>,
}

impl Tenant {
    /// Every UUID of A's objects: none may appear in a foreign caller's view.
    pub fn secrets(&self) -> Vec<String> {
        let mut all: Vec<String> = self.ids.values().cloned().collect();
        all.push(MARK.to_string());
        all
    }

    /// The UUID of A's object of `kind`.
    pub fn id(&self, kind: &str) -> &str {
        self.ids
            .get(kind)
            .unwrap_or_else(|| panic!("no object of kind {kind}"))
    }
}

fn object_id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

/// Builds the tenant in a new zone named `zone`.
pub async fn build(m: &TestManager, zone: &str) -> Tenant {
    let admin = m.admin();
    let env = zone_env(&admin, zone).await;
    let domain = id(
        &admin.ok("createDomain", &[("name", "scopedom")]).await,
        "domain",
    );
    let other_domain = id(
        &admin.ok("createDomain", &[("name", "otherdom")]).await,
        "domain",
    );
    let a = account_in(&admin, ACCOUNT, &domain, "0").await;
    let neighbour = account_in(&admin, "neighbour", &domain, "0").await;
    let stranger = account_in(&admin, "stranger", &other_domain, "0").await;
    let other_admin = account_in(&admin, "otheradmin", &other_domain, "2").await;
    let account_uuid = admin
        .ok(
            "listAccounts",
            &[
                ("name", ACCOUNT),
                ("domainid", &domain),
                ("listall", "true"),
            ],
        )
        .await["account"][0]["id"]
        .as_str()
        .expect("A's account")
        .to_string();

    let mut ids = BTreeMap::new();
    let mut names = BTreeMap::new();
    let started = a
        .ok(
            "createVPC",
            &[
                ("name", "zq7-vpc"),
                ("displaytext", "zq7-vpc"),
                ("cidr", "10.71.0.0/16"),
                ("zoneid", &env.zone),
                ("vpcofferingid", &env.vpc_offering),
            ],
        )
        .await;
    let job = started["jobid"].as_str().expect("jobid").to_string();
    let done = a.wait_job(&job).await;
    assert_eq!(done["jobstatus"], 1, "{done}");
    let vpc = object_id(&done["jobresult"]["vpc"]);
    ids.insert("job", job);
    names.insert("vpc", "zq7-vpc".to_string());
    let tier = object_id(
        &a.ok(
            "createNetwork",
            &[
                ("name", "zq7-tier"),
                ("displaytext", "zq7-tier"),
                ("zoneid", &env.zone),
                ("vpcid", &vpc),
                ("networkofferingid", &env.tier_offering_lb),
                ("gateway", "10.71.1.1"),
                ("netmask", "255.255.255.0"),
            ],
        )
        .await["network"],
    );
    names.insert("tier", "zq7-tier".to_string());
    let acl_list = object_id(
        &job_ok(
            &a,
            "createNetworkACLList",
            &[("name", "zq7-acl"), ("description", "zq7"), ("vpcid", &vpc)],
        )
        .await["networkacllist"],
    );
    names.insert("acl_list", "zq7-acl".to_string());
    let acl_item = object_id(
        &job_ok(
            &a,
            "createNetworkACL",
            &[
                ("aclid", &acl_list),
                ("protocol", "tcp"),
                ("startport", "22"),
                ("reason", "zq7-item"),
            ],
        )
        .await["networkacl"],
    );
    let vm = object_id(&deploy_vm(&a, &env, &tier, "zq7-vm").await);
    names.insert("vm", "zq7-vm".to_string());
    let ip = object_id(&job_ok(&a, "associateIpAddress", &[("vpcid", &vpc)]).await["ipaddress"]);
    let nat_ip =
        object_id(&job_ok(&a, "associateIpAddress", &[("vpcid", &vpc)]).await["ipaddress"]);
    let pf_rule = object_id(
        &job_ok(
            &a,
            "createPortForwardingRule",
            &[
                ("ipaddressid", &ip),
                ("virtualmachineid", &vm),
                ("networkid", &tier),
                ("protocol", "tcp"),
                ("publicport", "2222"),
                ("privateport", "22"),
            ],
        )
        .await["portforwardingrule"],
    );
    a.ok(
        "enableStaticNat",
        &[
            ("ipaddressid", &nat_ip),
            ("virtualmachineid", &vm),
            ("networkid", &tier),
        ],
    )
    .await;
    let lb_rule = object_id(
        &job_ok(
            &a,
            "createLoadBalancerRule",
            &[
                ("name", "zq7-lb"),
                ("algorithm", "roundrobin"),
                ("publicport", "80"),
                ("privateport", "8080"),
                ("publicipid", &ip),
                ("networkid", &tier),
            ],
        )
        .await["loadbalancer"],
    );
    names.insert("lb_rule", "zq7-lb".to_string());
    job_ok(
        &a,
        "assignToLoadBalancerRule",
        &[("id", &lb_rule), ("virtualmachineids", &vm)],
    )
    .await;
    // Private gateways are created by admins, for the VPC's owner.
    let gateway = object_id(
        &job_ok(
            &admin,
            "createPrivateGateway",
            &[
                ("vpcid", &vpc),
                ("vlan", "3171"),
                ("ipaddress", "172.16.71.2"),
                ("gateway", "172.16.71.1"),
                ("netmask", "255.255.255.0"),
            ],
        )
        .await["privategateway"],
    );
    let route = object_id(
        &job_ok(
            &a,
            "createStaticRoute",
            &[("gatewayid", &gateway), ("cidr", "192.168.71.0/24")],
        )
        .await["staticroute"],
    );
    let router = admin
        .ok("listRouters", &[("vpcid", &vpc), ("listall", "true")])
        .await["router"][0]["id"]
        .as_str()
        .expect("the VPC's router")
        .to_string();
    for (kind, id) in [
        ("vpc", vpc),
        ("tier", tier),
        ("acl_list", acl_list),
        ("acl_item", acl_item),
        ("vm", vm),
        ("ip", ip),
        ("nat_ip", nat_ip),
        ("pf_rule", pf_rule),
        ("lb_rule", lb_rule),
        ("gateway", gateway),
        ("route", route),
        ("router", router),
    ] {
        ids.insert(kind, id);
    }
    Tenant {
        env,
        a,
        domain,
        account_uuid,
        ids,
        names,
        foreign: vec![
            ("a user of another account in A's domain", neighbour),
            ("a user of another domain", stranger),
            ("a domain admin of another domain", other_admin),
        ],
    }
}
