//! VPC tiers through the HTTP API, on SQLite and PostgreSQL: every rule of
//! createNetwork allowed and refused with CloudStack's code, listNetworks
//! with its filters, ownership and paging, tier deletion and restart through
//! queryAsyncJobResult, the exact router commands, and parallel creations
//! that never exceed `vpc.max.networks` nor overlap.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::api::{BOGUS, Client, id, job_ok, on_both_backends, refused};
use support::vpc::{Env, account_in, create_tier, create_vpc, user, zone_env};

/// The default_allow list seeded by the schema.
const DEFAULT_ALLOW: &str = "8f1c2f4e-0002-4d6a-9e5b-6c1d00000002";

fn tier_params<'a>(
    env: &'a Env,
    vpc: &'a str,
    name: &'a str,
    gateway: &'a str,
    netmask: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("zoneid", env.zone.as_str()),
        ("vpcid", vpc),
        ("networkofferingid", env.tier_offering.as_str()),
        ("gateway", gateway),
        ("netmask", netmask),
    ]
}

fn with<'a>(
    mut p: Vec<(&'a str, &'a str)>,
    key: &'a str,
    value: &'a str,
) -> Vec<(&'a str, &'a str)> {
    p.retain(|(k, _)| *k != key);
    p.push((key, value));
    p
}

fn without<'a>(mut p: Vec<(&'a str, &'a str)>, key: &str) -> Vec<(&'a str, &'a str)> {
    p.retain(|(k, _)| *k != key);
    p
}

async fn list(client: &Client, params: &[(&str, &str)]) -> (u64, Vec<Value>) {
    let body = client.ok("listNetworks", params).await;
    (
        body["count"].as_u64().unwrap_or(0),
        body["network"].as_array().cloned().unwrap_or_default(),
    )
}

fn names(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

on_both_backends!(tiers_follow_every_creation_rule_and_list_by_owner, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "tz1").await;
    let alice = user(&admin, "alice").await;
    let vpc = create_vpc(&alice, &env, "va", "10.1.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    m.agent.clear();

    // A tier: Allocated, nothing sent to the router yet.
    let web = create_tier(&alice, &env, &vpc_id, "web", "10.1.1.1", "255.255.255.0").await;
    assert_eq!(web["cidr"], "10.1.1.0/24");
    assert_eq!(web["gateway"], "10.1.1.1");
    assert_eq!(web["netmask"], "255.255.255.0");
    assert_eq!(web["state"], "Allocated");
    assert_eq!(web["traffictype"], "Guest");
    assert_eq!(web["type"], "Isolated");
    assert_eq!(web["vpcid"], vpc_id.as_str());
    assert_eq!(web["vpcname"], "va");
    assert_eq!(web["zoneid"], env.zone.as_str());
    assert_eq!(web["networkofferingid"], env.tier_offering.as_str());
    assert_eq!(web["networkdomain"], vpc["networkdomain"]);
    assert_eq!(web["account"], "alice");
    assert_eq!(web["physicalnetworkid"], env.physnet.as_str());
    assert_eq!(web["restartrequired"], false);
    assert_eq!(web["ispersistent"], false);
    assert_eq!(web["canusefordeploy"], true);
    assert!(
        web.get("aclid").is_none(),
        "no ACL list unless aclid: {web}"
    );
    assert!(web.get("vlan").is_none() && web.get("broadcasturi").is_none());
    assert!(web["service"].as_array().unwrap().len() > 2, "{web}");
    assert!(m.agent.commands().is_empty(), "{:?}", m.agent.commands());

    // Gateway and netmask are required for a tier; the gateway must be a
    // host address.
    let base = tier_params(&env, &vpc_id, "t", "10.1.2.1", "255.255.255.0");
    for p in [
        without(base.clone(), "gateway"),
        without(base.clone(), "netmask"),
    ] {
        let (code, text) = refused(&alice, "createNetwork", &p).await;
        assert_eq!(code, 431);
        assert!(text.contains("Gateway/netmask are required"), "{text}");
    }
    let (code, text) = refused(
        &alice,
        "createNetwork",
        &with(base.clone(), "gateway", "10.1.2.0"),
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("network address"), "{text}");
    // Inside the VPC CIDR.
    let (code, text) = refused(
        &alice,
        "createNetwork",
        &with(base.clone(), "gateway", "10.2.0.1"),
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("not within vpc"), "{text}");
    // No overlap with another tier, in either direction.
    let (code, text) = refused(
        &alice,
        "createNetwork",
        &with(
            with(base.clone(), "gateway", "10.1.0.1"),
            "netmask",
            "255.255.252.0",
        ),
    )
    .await;
    assert_eq!(code, 431);
    assert!(
        text.contains("overlaps with cidr 10.1.1.0/24 of tier web"),
        "{text}"
    );
    // network.guest.cidr.limit (/22) for everyone but the root admin.
    let (code, text) = refused(
        &alice,
        "createNetwork",
        &with(
            with(base.clone(), "gateway", "10.1.8.1"),
            "netmask",
            "255.255.248.0",
        ),
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("can't be less than /22"), "{text}");
    // The network domain is the VPC's.
    let (code, text) = refused(
        &alice,
        "createNetwork",
        &with(base.clone(), "networkdomain", "other.example"),
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("other.example"), "{text}");
    // Ids that name nothing.
    for key in ["vpcid", "zoneid", "networkofferingid", "aclid"] {
        let (code, text) = refused(&alice, "createNetwork", &with(base.clone(), key, BOGUS)).await;
        assert_eq!(code, 431, "{key}");
        assert!(text.contains(BOGUS), "{key}: {text}");
    }
    // Only VPC tiers exist here.
    let (code, text) = refused(&alice, "createNetwork", &without(base.clone(), "vpcid")).await;
    assert_eq!(code, 431);
    assert!(text.contains("vpcid is required"), "{text}");

    // An ACL list of the VPC or a default one; none of another VPC.
    let other = create_vpc(&alice, &env, "vb", "10.9.0.0/16").await;
    let other_id = other["id"].as_str().unwrap().to_string();
    let foreign = job_ok(
        &alice,
        "createNetworkACLList",
        &[("name", "foreign"), ("vpcid", &other_id)],
    )
    .await;
    let foreign = id(&foreign, "networkacllist");
    let (code, text) = refused(
        &alice,
        "createNetwork",
        &with(base.clone(), "aclid", &foreign),
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("different VPC"), "{text}");
    let app = alice
        .ok(
            "createNetwork",
            &with(
                with(base.clone(), "aclid", DEFAULT_ALLOW),
                "networkdomain",
                vpc["networkdomain"].as_str().unwrap(),
            ),
        )
        .await["network"]
        .clone();
    assert_eq!(app["aclid"], DEFAULT_ALLOW);
    assert_eq!(app["aclname"], "default_allow");

    // One tier per VPC with the router's public load balancer.
    let lb = tier_params(&env, &vpc_id, "lb1", "10.1.3.1", "255.255.255.0");
    let lb = with(lb, "networkofferingid", &env.tier_offering_lb);
    let lb1 = alice.ok("createNetwork", &lb).await["network"].clone();
    assert_eq!(lb1["networkofferingid"], env.tier_offering_lb.as_str());
    let lb2 = with(with(lb.clone(), "name", "lb2"), "gateway", "10.1.4.1");
    let (code, text) = refused(&alice, "createNetwork", &lb2).await;
    // The VPC has three tiers now: vpc.max.networks (3) answers first, with
    // CloudStack's CloudRuntimeException (530).
    assert_eq!(code, 530);
    assert!(text.contains("cannot surpass [3]"), "{text}");
    admin
        .ok(
            "updateConfiguration",
            &[("name", "vpc.max.networks"), ("value", "5")],
        )
        .await;
    let (code, text) = refused(&alice, "createNetwork", &lb2).await;
    assert_eq!(code, 431);
    assert!(text.contains("already enabled on tier lb1"), "{text}");
    // The root admin is not bound by network.guest.cidr.limit; it creates
    // the tier for alice by naming her account.
    let alice_domain = web["domainid"].as_str().unwrap().to_string();
    let big = tier_params(&env, &vpc_id, "big", "10.1.64.1", "255.255.192.0");
    let (code, text) = refused(&admin, "createNetwork", &big).await;
    assert_eq!(code, 531, "the admin's own tier cannot join alice's VPC");
    assert!(text.contains("only the VPC's account"), "{text}");
    let big = with(with(big, "account", "alice"), "domainid", &alice_domain);
    let big = admin.ok("createNetwork", &big).await["network"].clone();
    assert_eq!(big["cidr"], "10.1.64.0/18");
    assert_eq!(big["account"], "alice");
    assert_eq!(big["vlan"], Value::Null, "not implemented yet");

    // Bob can neither use alice's VPC nor see her tiers.
    let bob = user(&admin, "bob").await;
    let (code, _) = refused(
        &bob,
        "createNetwork",
        &tier_params(&env, &vpc_id, "x", "10.1.5.1", "255.255.255.0"),
    )
    .await;
    assert_eq!(code, 531);
    let (count, _) = list(&bob, &[]).await;
    assert_eq!(count, 0);
    let (count, _) = list(&bob, &[("vpcid", &vpc_id), ("listall", "true")]).await;
    assert_eq!(count, 0);
    let (code, _) = refused(&bob, "listNetworks", &[("account", "alice")]).await;
    assert_eq!(code, 531);

    // listNetworks: alice sees her tiers; filters and paging.
    let (count, items) = list(&alice, &[]).await;
    assert_eq!(count, 4);
    assert_eq!(
        names(&items),
        BTreeSet::from(["web", "t", "lb1", "big"].map(String::from))
    );
    assert!(
        items.iter().all(|n| n.get("vlan").is_none()),
        "users see no VLAN"
    );
    let (count, items) = list(
        &alice,
        &[("vpcid", &vpc_id), ("page", "2"), ("pagesize", "3")],
    )
    .await;
    assert_eq!((count, items.len()), (4, 1));
    let (count, _) = list(&alice, &[("vpcid", &other_id)]).await;
    assert_eq!(count, 0);
    let (count, items) = list(&alice, &[("keyword", "LB")]).await;
    assert_eq!(
        (count, names(&items)),
        (1, BTreeSet::from(["lb1".to_string()]))
    );
    let (count, items) = list(&alice, &[("id", web["id"].as_str().unwrap())]).await;
    assert_eq!(
        (count, items[0]["cidr"].clone()),
        (1, Value::from("10.1.1.0/24"))
    );
    let (count, _) = list(&alice, &[("forvpc", "false")]).await;
    assert_eq!(count, 0);
    let (count, _) = list(&alice, &[("forvpc", "true"), ("zoneid", &env.zone)]).await;
    assert_eq!(count, 4);
    let (count, _) = list(&alice, &[("traffictype", "Public")]).await;
    assert_eq!(count, 0, "the zone's public network is never listed");
    let (count, _) = list(&alice, &[("traffictype", "guest")]).await;
    assert_eq!(count, 4);
    let (count, _) = list(&alice, &[("networkofferingid", &env.tier_offering_lb)]).await;
    assert_eq!(count, 1);
    let (count, _) = list(&alice, &[("name", "web")]).await;
    assert_eq!(count, 1);
    let (count, _) = list(&alice, &[("zoneid", BOGUS)]).await;
    assert_eq!(count, 0);
    // The admin sees its own (none) unless it asks for more.
    let (count, _) = list(&admin, &[]).await;
    assert_eq!(count, 0);
    let (count, items) = list(&admin, &[("listall", "true")]).await;
    assert_eq!(count, 4);
    assert!(
        items
            .iter()
            .all(|n| n.get("vlan").is_none() || n["vlan"].is_null())
    );
    let (count, _) = list(&admin, &[("account", "alice"), ("domainid", &alice_domain)]).await;
    assert_eq!(count, 4);
    let (count, _) = list(&admin, &[("domainid", &alice_domain)]).await;
    assert_eq!(count, 4);
    let (code, _) = refused(&alice, "listNetworks", &[("page", "1")]).await;
    assert_eq!(code, 431);

    // A domain admin above alice sees her tiers; one beside her does not.
    let dadmin = account_in(&admin, "alice-admin", &alice_domain, "2").await;
    let (count, _) = list(&dadmin, &[("listall", "true")]).await;
    assert_eq!(count, 4);
    let bob_domain = admin.ok("listDomains", &[("name", "bob")]).await["domain"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_admin = account_in(&admin, "bob-admin", &bob_domain, "2").await;
    let (count, _) = list(&bob_admin, &[("listall", "true")]).await;
    assert_eq!(count, 0);
    let (code, _) = refused(
        &bob_admin,
        "listNetworks",
        &[("domainid", &alice_domain), ("listall", "true")],
    )
    .await;
    assert_eq!(code, 531);
});
