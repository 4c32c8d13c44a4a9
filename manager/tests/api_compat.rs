//! The fields and behaviours unmodified CloudStack clients (libcloud, Ansible's
//! ngine_io.cloudstack, Terraform) rely on (issue 15), through the HTTP API
//! on SQLite and PostgreSQL: `serviceofferingid` of network offerings, the
//! router's system offering, `hypervisor` of templates, a VPC CIDR with host
//! bits, list-by-id for admins without `listall`, a second tier of one
//! public-LB offering, `createNetworkACL networkid=` on a tier without a list
//! and new users without API keys.

mod support;

use serde_json::Value;
use support::api::{BOGUS, Client, id, job_ok, on_both_backends, refused};
use support::vpc::{Env, account_in, create_tier, create_vpc, new_account, user, zone_env};

/// The router offering the schema seeds (CloudStack's Cloud.Com-SoftwareRouter).
const ROUTER_OFFERING: &str = "4c3e1a52-0003-4b8e-8d1f-5e0a00000003";

fn items(body: &Value, key: &str) -> Vec<Value> {
    body[key].as_array().cloned().unwrap_or_default()
}

on_both_backends!(offerings_and_templates_carry_the_keys_clients_read, |m| {
    let admin = m.admin();
    let alice = user(&admin, "alice").await;
    // Every network offering names the routers' service offering.
    let offerings = items(
        &alice.ok("listNetworkOfferings", &[]).await,
        "networkoffering",
    );
    assert!(!offerings.is_empty());
    for o in &offerings {
        assert_eq!(o["serviceofferingid"], ROUTER_OFFERING, "{o}");
    }
    // The routers' offering is a system one: not among the VMs' offerings,
    // listed with issystem=true.
    let vm_offerings = items(
        &alice.ok("listServiceOfferings", &[]).await,
        "serviceoffering",
    );
    assert!(vm_offerings.iter().all(|o| o["id"] != ROUTER_OFFERING));
    assert!(vm_offerings.iter().all(|o| o["issystem"] == false));
    let system = items(
        &admin
            .ok("listServiceOfferings", &[("issystem", "true")])
            .await,
        "serviceoffering",
    );
    assert_eq!(system.len(), 1, "{system:?}");
    assert_eq!(system[0]["id"], ROUTER_OFFERING);
    assert_eq!(system[0]["systemvmtype"], "domainrouter");
    assert_eq!(system[0]["issystem"], true);
    let (code, text) = refused(&alice, "listServiceOfferings", &[("issystem", "true")]).await;
    assert_eq!(code, 431);
    assert!(
        text.contains("Only ROOT admins can access system offerings"),
        "{text}"
    );
    // Every template names its hypervisor.
    let templates = items(
        &alice
            .ok("listTemplates", &[("templatefilter", "executable")])
            .await,
        "template",
    );
    assert!(!templates.is_empty());
    for t in &templates {
        assert!(
            t["hypervisor"].as_str().is_some_and(|h| !h.is_empty()),
            "{t}"
        );
    }
});

on_both_backends!(vpc_cidr_with_host_bits_is_kept_as_given, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "z1").await;
    let alice = user(&admin, "alice").await;
    let v = create_vpc(&alice, &env, "v1", "10.1.1.1/16").await;
    assert_eq!(v["cidr"], "10.1.1.1/16");
    // Tiers are placed against its network part.
    let vpc_id = v["id"].as_str().unwrap().to_string();
    let t = create_tier(&alice, &env, &vpc_id, "t1", "10.1.2.1", "255.255.255.0").await;
    assert_eq!(t["cidr"], "10.1.2.0/24");
    // A malformed or public CIDR is still refused.
    for (cidr, text) in [
        ("10.1.1.1/40", "not a valid IPv4 CIDR"),
        ("8.8.8.8/24", "RFC1918"),
    ] {
        let (code, err) = refused(
            &alice,
            "createVPC",
            &[
                ("name", "bad"),
                ("displaytext", "bad"),
                ("cidr", cidr),
                ("zoneid", &env.zone),
                ("vpcofferingid", &env.vpc_offering),
            ],
        )
        .await;
        assert_eq!(code, 431, "{cidr}");
        assert!(err.contains(text), "{cidr}: {err}");
    }
});

/// The first object of `key` in the answer of `command id=<id>`, if any.
async fn by_id(client: &Client, command: &str, key: &str, object_id: &str) -> Option<Value> {
    items(&client.ok(command, &[("id", object_id)]).await, key)
        .into_iter()
        .next()
}

on_both_backends!(admins_list_by_id_without_listall, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "z1").await;
    let d = id(
        &admin.ok("createDomain", &[("name", "dom")]).await,
        "domain",
    );
    let alice = account_in(&admin, "alice", &d, "0").await;
    let domain_admin = account_in(&admin, "dadmin", &d, "2").await;
    let outsider = user(&admin, "outside").await;
    let v = create_vpc(&alice, &env, "v1", "10.1.0.0/16").await;
    let vpc_id = v["id"].as_str().unwrap().to_string();
    let t = create_tier(&alice, &env, &vpc_id, "t1", "10.1.1.1", "255.255.255.0").await;
    let tier_id = t["id"].as_str().unwrap().to_string();
    for (command, key, object) in [
        ("listVPCs", "vpc", vpc_id.as_str()),
        ("listNetworks", "network", tier_id.as_str()),
    ] {
        // Root admin and the domain's admin find it by id alone.
        let found = by_id(&admin, command, key, object).await;
        assert_eq!(found.map(|o| o["id"].clone()), Some(Value::from(object)));
        let found = by_id(&domain_admin, command, key, object).await;
        assert_eq!(found.map(|o| o["id"].clone()), Some(Value::from(object)));
        // Without an id the admins still list only their own.
        let own = admin.ok(command, &[]).await;
        assert!(items(&own, key).iter().all(|o| o["id"] != object));
        // A user of another domain does not.
        assert!(by_id(&outsider, command, key, object).await.is_none());
    }
});

on_both_backends!(second_tier_of_one_public_lb_offering_allowed, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "z1").await;
    let alice = user(&admin, "alice").await;
    let v = create_vpc(&alice, &env, "v1", "10.1.0.0/16").await;
    let vpc_id = v["id"].as_str().unwrap().to_string();
    let tier = |name: &'static str, gateway: &'static str| {
        let env: Env = env.clone();
        let vpc_id = vpc_id.clone();
        let alice = alice.clone();
        async move {
            alice
                .ok(
                    "createNetwork",
                    &[
                        ("name", name),
                        ("displaytext", name),
                        ("zoneid", &env.zone),
                        ("vpcid", &vpc_id),
                        ("networkofferingid", &env.tier_offering_lb),
                        ("gateway", gateway),
                        ("netmask", "255.255.255.0"),
                    ],
                )
                .await["network"]
                .clone()
        }
    };
    let web1 = tier("web1", "10.1.1.1").await;
    let web2 = tier("web2", "10.1.2.1").await;
    assert_eq!(web1["networkofferingid"], web2["networkofferingid"]);
    assert_ne!(web1["id"], web2["id"]);
});

on_both_backends!(
    acl_item_on_a_tier_without_list_creates_and_attaches_one,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "z1").await;
        let alice = user(&admin, "alice").await;
        let v = create_vpc(&alice, &env, "v1", "10.1.0.0/16").await;
        let vpc_id = v["id"].as_str().unwrap().to_string();
        let t = create_tier(&alice, &env, &vpc_id, "web", "10.1.1.1", "255.255.255.0").await;
        let tier_id = t["id"].as_str().unwrap().to_string();
        assert!(t["aclid"].is_null(), "{t}");
        let item = [
            ("networkid", tier_id.as_str()),
            ("protocol", "tcp"),
            ("startport", "80"),
            ("endport", "80"),
            ("cidrlist", "0.0.0.0/0"),
            ("traffictype", "Ingress"),
        ];
        let done = job_ok(&alice, "createNetworkACL", &item).await;
        let acl_id = done["networkacl"]["aclid"].as_str().unwrap().to_string();
        let listed = items(
            &alice.ok("listNetworks", &[("id", &tier_id)]).await,
            "network",
        );
        assert_eq!(listed[0]["aclid"], acl_id.as_str());
        let list = items(
            &alice.ok("listNetworkACLLists", &[("id", &acl_id)]).await,
            "networkacllist",
        );
        let expected = format!("VPC_v1_Tier_web_ACL_{tier_id}");
        assert_eq!(list[0]["name"], expected.as_str());
        assert_eq!(list[0]["vpcid"], vpc_id.as_str());
        // A second item goes to the same list.
        let done = job_ok(&alice, "createNetworkACL", &item).await;
        assert_eq!(done["networkacl"]["aclid"], acl_id.as_str());
        let lists = items(
            &alice.ok("listNetworkACLLists", &[("vpcid", &vpc_id)]).await,
            "networkacllist",
        );
        assert_eq!(
            lists
                .iter()
                .filter(|l| l["vpcid"] == vpc_id.as_str())
                .count(),
            1
        );
        // Refused: an unknown tier (431) and someone else's tier (531).
        let (code, _) = refused(
            &alice,
            "createNetworkACL",
            &[("networkid", BOGUS), ("protocol", "tcp")],
        )
        .await;
        assert_eq!(code, 431);
        let bob = user(&admin, "bob").await;
        let (code, _) = refused(&bob, "createNetworkACL", &item).await;
        assert_eq!(code, 531);
    }
);

on_both_backends!(new_users_have_no_keys_until_registered, |m| {
    let admin = m.admin();
    let d = id(
        &admin.ok("createDomain", &[("name", "dom")]).await,
        "domain",
    );
    let (created, user_id, client) = new_account(&admin, "carol", &d, "0").await;
    // The createAccount answer showed no key.
    let first = &created["account"]["user"][0];
    assert!(first["apikey"].is_null(), "{first}");
    // registerUserKeys gave the keys new_account signs with, and they work.
    client.ok("listVPCs", &[]).await;
    let listed = admin.ok("listUsers", &[("id", &user_id)]).await;
    assert!(listed["user"][0]["apikey"].as_str().is_some());
    // A user created by createUser has none either.
    let u = admin
        .ok(
            "createUser",
            &[
                ("account", "carol"),
                ("domainid", &d),
                ("username", "carol2"),
                ("password", "pw"),
                ("email", "c@example.org"),
                ("firstname", "C"),
                ("lastname", "Two"),
            ],
        )
        .await;
    assert!(u["user"]["apikey"].is_null(), "{u}");
    let keys = admin.ok("getUserKeys", &[("id", &id(&u, "user"))]).await;
    assert!(keys["userkeys"]["apikey"].is_null(), "{keys}");
});
