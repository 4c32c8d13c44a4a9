//! VPC tiers through the HTTP API, on SQLite and PostgreSQL: every rule of
//! createNetwork allowed and refused with CloudStack's code, listNetworks
//! with its filters, ownership and paging, tier deletion and restart through
//! queryAsyncJobResult, the exact router commands, and parallel creations
//! that never exceed `vpc.max.networks` nor overlap.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::api::{BOGUS, Client, id, job_ok, on_both_backends, refused, run_job};
use support::vpc::{Env, account_in, create_tier, create_vpc, deploy_vm as deploy, user, zone_env};
use vpc_manager::orchestration::AgentCommand;
use vpc_manager::orchestration::recording::DriverCall;

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

on_both_backends!(
    tiers_follow_every_creation_rule_and_list_by_owner,
    |m, url| {
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
            let (code, text) =
                refused(&alice, "createNetwork", &with(base.clone(), key, BOGUS)).await;
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

        // The offering: Enabled, for VPC tiers, and within the VPC offering.
        // Offerings cannot be created through the API; the store makes two.
        let store = vpc_manager::store::Db::connect(url).await.unwrap();
        let offering = |name: &str, state: &str, for_vpc: bool| {
            use vpc_manager::store::offering::{self, NewNetworkOffering, ServiceProvider};
            let store = store.clone();
            let name = name.to_string();
            let state = state.to_string();
            async move {
                offering::create_network_offering(
                    &store,
                    NewNetworkOffering {
                        name: name.clone(),
                        unique_name: None,
                        display_text: name,
                        state,
                        is_default: false,
                        for_vpc,
                        is_persistent: false,
                        services: ["Dhcp", "SourceNat", "NetworkACL"]
                            .iter()
                            .map(|s| ServiceProvider::new(s, "VpcVirtualRouter"))
                            .collect(),
                    },
                )
                .await
                .unwrap()
                .uuid
                .to_string()
            }
        };
        let disabled = offering("off-disabled", "Disabled", true).await;
        let standalone = offering("off-standalone", "Enabled", false).await;
        let (code, text) = refused(
            &alice,
            "createNetwork",
            &with(base.clone(), "networkofferingid", &disabled),
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("not in Enabled state"), "{text}");
        let (code, text) = refused(
            &alice,
            "createNetwork",
            &with(base.clone(), "networkofferingid", &standalone),
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("can't be used for VPC networks"), "{text}");
        store.close().await;
        let narrow = admin
            .ok(
                "createVPCOffering",
                &[
                    ("name", "narrow"),
                    (
                        "supportedservices",
                        "Dhcp,Dns,SourceNat,StaticNat,PortForwarding,NetworkACL,UserData,Vpn",
                    ),
                    ("enable", "true"),
                ],
            )
            .await;
        admin.wait_job(narrow["jobid"].as_str().unwrap()).await;
        let narrow_vpc = job_ok(
            &alice,
            "createVPC",
            &[
                ("name", "vn"),
                ("cidr", "10.8.0.0/16"),
                ("zoneid", &env.zone),
                ("vpcofferingid", narrow["id"].as_str().unwrap()),
            ],
        )
        .await["vpc"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let in_narrow = tier_params(&env, &narrow_vpc, "n1", "10.8.1.1", "255.255.255.0");
        let (code, text) = refused(
            &alice,
            "createNetwork",
            &with(
                in_narrow.clone(),
                "networkofferingid",
                &env.tier_offering_lb,
            ),
        )
        .await;
        assert_eq!(code, 431);
        assert!(
            text.contains("Lb/VpcVirtualRouter is not supported by VPC vn"),
            "{text}"
        );
        let n1 = alice.ok("createNetwork", &in_narrow).await;
        // An Allocated tier is deleted without a word to the router.
        m.agent.clear();
        let done = job_ok(&alice, "deleteNetwork", &[("id", &id(&n1, "network"))]).await;
        assert_eq!(done["success"], true);
        assert!(m.agent.commands().is_empty(), "{:?}", m.agent.commands());

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
        // A second tier of the same public-LB offering is allowed (CloudStack
        // refuses only a *different* public-LB offering); it goes again so the
        // counts below stay those of four tiers.
        let lb2 = alice.ok("createNetwork", &lb2).await["network"].clone();
        assert_eq!(lb2["networkofferingid"], env.tier_offering_lb.as_str());
        let done = job_ok(
            &alice,
            "deleteNetwork",
            &[("id", lb2["id"].as_str().unwrap())],
        )
        .await;
        assert_eq!(done["success"], true);
        let other_lb = {
            use vpc_manager::store::offering::{self, NewNetworkOffering, ServiceProvider};
            let store = vpc_manager::store::Db::connect(url).await.unwrap();
            let made = offering::create_network_offering(
                &store,
                NewNetworkOffering {
                    name: "off-other-lb".into(),
                    unique_name: None,
                    display_text: "off-other-lb".into(),
                    state: "Enabled".into(),
                    is_default: false,
                    for_vpc: true,
                    is_persistent: false,
                    services: ["Dhcp", "SourceNat", "NetworkACL", "Lb"]
                        .iter()
                        .map(|s| ServiceProvider::new(s, "VpcVirtualRouter"))
                        .collect(),
                },
            )
            .await
            .unwrap()
            .uuid
            .to_string();
            store.close().await;
            made
        };
        let lb3 = with(with(lb.clone(), "name", "lb3"), "gateway", "10.1.5.1");
        let lb3 = with(lb3, "networkofferingid", &other_lb);
        let (code, text) = refused(&alice, "createNetwork", &lb3).await;
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
    }
);

fn rpcs_and_generations(m: &support::api::TestManager) -> Vec<(&'static str, u64)> {
    m.agent
        .commands()
        .iter()
        .map(|c| (c.rpc(), c.generation().unwrap_or_default()))
        .collect()
}

async fn one_tier(client: &Client, id: &str) -> Value {
    client
        .ok("listNetworks", &[("id", id), ("listall", "true")])
        .await["network"][0]
        .clone()
}

on_both_backends!(
    a_tier_goes_once_its_vms_are_expunged_and_its_vnet_is_reused,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "tz2").await;
        let alice = user(&admin, "alice").await;
        let vpc = create_vpc(&alice, &env, "va", "10.1.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        let web = create_tier(&alice, &env, &vpc_id, "web", "10.1.1.1", "255.255.255.0").await;
        let web_id = web["id"].as_str().unwrap().to_string();

        // An Allocated tier has nothing on the router to restart.
        let (code, text) = refused(&alice, "restartNetwork", &[("id", &web_id)]).await;
        assert_eq!(code, 431);
        assert!(text.contains("not in the right state"), "{text}");
        m.agent.clear();
        let vm1 = deploy(&alice, &env, &web_id, "vm1").await;
        let vm1_id = vm1["id"].as_str().unwrap().to_string();
        let commands = m.agent.commands();
        let AgentCommand::PlugNic(plug) = &commands[0] else {
            panic!("{commands:?}");
        };
        let router_nic = plug.nic.clone().unwrap();
        assert_eq!(one_tier(&admin, &web_id).await["vlan"], "100");

        // updateNetwork: name and description; the domain and offering stay.
        let done = run_job(
            &alice,
            "updateNetwork",
            &[
                ("id", &web_id),
                ("name", "front"),
                ("displaytext", "the front"),
            ],
        )
        .await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        assert_eq!(done["jobinstancetype"], "Network");
        assert_eq!(done["jobinstanceid"], web_id.as_str());
        let updated = &done["jobresult"]["network"];
        assert_eq!(
            (updated["name"].clone(), updated["displaytext"].clone()),
            (Value::from("front"), Value::from("the front"))
        );
        let (code, text) = refused(
            &alice,
            "updateNetwork",
            &[("id", &web_id), ("networkdomain", "x.example")],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("can't be changed"), "{text}");
        let (code, text) = refused(
            &alice,
            "updateNetwork",
            &[
                ("id", &web_id),
                ("networkofferingid", &env.tier_offering_lb),
            ],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("not supported"), "{text}");

        // Nobody else touches alice's tier; unknown ids are 431.
        let bob = user(&admin, "bob").await;
        for command in ["updateNetwork", "deleteNetwork", "restartNetwork"] {
            let (code, _) = refused(&bob, command, &[("id", &web_id)]).await;
            assert_eq!(code, 531, "{command}");
            let (code, text) = refused(&alice, command, &[("id", BOGUS)]).await;
            assert_eq!(code, 431, "{command}");
            assert!(text.contains(BOGUS), "{text}");
        }

        // restartNetwork re-sends the tier and its leases; never with cleanup.
        let (code, text) = refused(
            &alice,
            "restartNetwork",
            &[("id", &web_id), ("cleanup", "true")],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("restart the whole VPC"), "{text}");
        m.agent.clear();
        let g = m.agent.applied_generation();
        let done = job_ok(&alice, "restartNetwork", &[("id", &web_id)]).await;
        assert_eq!(done["success"], true);
        assert_eq!(
            rpcs_and_generations(m),
            vec![
                ("PlugNic", g + 1),
                ("SetupGuestNetwork", g + 1),
                ("SetDhcpEntries", g + 1)
            ]
        );

        // A port forwarding rule to vm1 through the tier.
        let ip =
            job_ok(&alice, "associateIpAddress", &[("vpcid", &vpc_id)]).await["ipaddress"]["id"]
                .as_str()
                .unwrap()
                .to_string();
        job_ok(
            &alice,
            "createPortForwardingRule",
            &[
                ("ipaddressid", ip.as_str()),
                ("virtualmachineid", vm1_id.as_str()),
                ("protocol", "tcp"),
                ("publicport", "2222"),
                ("privateport", "22"),
                ("networkid", web_id.as_str()),
            ],
        )
        .await;

        // The tier cannot go while vm1 is not expunged: the job fails as
        // CloudStack's does ("Failed to delete network", 530).
        let done = run_job(&alice, "deleteNetwork", &[("id", &web_id)]).await;
        assert_eq!(done["jobstatus"], 2, "{done}");
        assert_eq!(done["jobresultcode"], 530);
        let text = done["jobresult"]["errortext"].as_str().unwrap();
        assert!(
            text.contains("not all user vms are expunged") && text.contains(&vm1_id),
            "{text}"
        );
        let (code, text) = refused(
            &alice,
            "deleteNetwork",
            &[("id", &web_id), ("forced", "true")],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("root admins"), "{text}");
        job_ok(&alice, "destroyVirtualMachine", &[("id", &vm1_id)]).await;
        let done = run_job(&alice, "deleteNetwork", &[("id", &web_id)]).await;
        assert_eq!(done["jobstatus"], 2, "a destroyed VM still counts: {done}");

        // Expunging vm1 withdraws its forwarding rule from the router.
        m.agent.clear();
        let g = m.agent.applied_generation();
        job_ok(
            &admin,
            "destroyVirtualMachine",
            &[("id", &vm1_id), ("expunge", "true")],
        )
        .await;
        assert_eq!(
            rpcs_and_generations(m),
            vec![
                ("SetPortForwardingRules", g + 1),
                ("SetStaticNatRules", g + 1),
                ("SetLoadBalancerRules", g + 1),
            ]
        );
        let rules = alice
            .ok("listPortForwardingRules", &[("ipaddressid", &ip)])
            .await;
        assert!(rules.get("count").is_none(), "{rules}");

        // Now the tier goes: off the router (DestroyGuestNetwork, UnplugNic of
        // its NIC), its address leaves it, its vnet is free again.
        m.agent.clear();
        m.driver.clear();
        let g = m.agent.applied_generation();
        let done = run_job(&alice, "deleteNetwork", &[("id", &web_id)]).await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        assert_eq!(done["jobresult"]["success"], true);
        assert_eq!(
            rpcs_and_generations(m),
            vec![("DestroyGuestNetwork", g + 1), ("UnplugNic", g + 1)]
        );
        let commands = m.agent.commands();
        let (AgentCommand::DestroyGuestNetwork(destroy), AgentCommand::UnplugNic(unplug)) =
            (&commands[0], &commands[1])
        else {
            panic!("{commands:?}");
        };
        assert_eq!(destroy.device_index, router_nic.device_index);
        assert_eq!(
            (unplug.device_index, &unplug.mac_address),
            (router_nic.device_index, &router_nic.mac_address)
        );
        assert!(
        m.driver
            .calls()
            .iter()
            .any(|c| matches!(c, DriverCall::UnplugNic(_, i, mac) if *i == router_nic.device_index && *mac == router_nic.mac_address)),
        "{:?}",
        m.driver.calls()
    );
        let (count, _) = list(&alice, &[("id", &web_id)]).await;
        assert_eq!(count, 0);
        let address = alice.ok("listPublicIpAddresses", &[("id", &ip)]).await;
        assert!(
            address["publicipaddress"][0]
                .get("associatednetworkid")
                .is_none(),
            "{address}"
        );
        let (code, _) = refused(&alice, "deleteNetwork", &[("id", &web_id)]).await;
        assert_eq!(code, 431, "a deleted tier is gone");

        // The next tier to be implemented gets vnet 100 again.
        let again = create_tier(&alice, &env, &vpc_id, "again", "10.1.1.1", "255.255.255.0").await;
        let again_id = again["id"].as_str().unwrap().to_string();
        deploy(&alice, &env, &again_id, "vm2").await;
        assert_eq!(one_tier(&admin, &again_id).await["vlan"], "100");
    }
);

on_both_backends!(
    parallel_creations_never_exceed_the_limit_nor_overlap,
    |m, url| {
        let admin = m.admin();
        let env = zone_env(&admin, "tz3").await;
        let alice = user(&admin, "alice").await;
        admin
            .ok(
                "updateConfiguration",
                &[("name", "vpc.max.networks"), ("value", "3")],
            )
            .await;
        let vpc = create_vpc(&alice, &env, "va", "10.5.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();

        // Eight disjoint /24s and four /25s each inside one of them, all at once.
        let mut requests: Vec<(String, String, String)> = (1..=8)
            .map(|i| {
                (
                    format!("d{i}"),
                    format!("10.5.{i}.1"),
                    "255.255.255.0".to_string(),
                )
            })
            .collect();
        requests.extend((1..=4).map(|i| {
            (
                format!("o{i}"),
                format!("10.5.{i}.129"),
                "255.255.255.128".to_string(),
            )
        }));
        // Two managers on the one database: only the database's lock on the
        // VPC row keeps them apart.
        let m2 = support::api::TestManager::start(Some(url.to_string())).await;
        let alice2 = Client {
            addr: m2.addr,
            ..alice.clone()
        };
        let mut set = tokio::task::JoinSet::new();
        for (i, (name, gateway, netmask)) in requests.into_iter().enumerate() {
            let client = if i % 2 == 0 {
                alice.clone()
            } else {
                alice2.clone()
            };
            let (env, vpc_id) = (env.clone(), vpc_id.clone());
            set.spawn(async move {
                let p = tier_params(&env, &vpc_id, &name, &gateway, &netmask);
                client.call("createNetwork", &p).await
            });
        }
        let mut created = Vec::new();
        while let Some(joined) = set.join_next().await {
            let (status, body) = joined.unwrap();
            match status {
                200 => created.push(body["createnetworkresponse"]["network"].clone()),
                530 => {
                    let text = body["createnetworkresponse"]["errortext"].as_str().unwrap();
                    assert!(text.contains("cannot surpass [3]"), "{text}");
                }
                431 => {
                    let text = body["createnetworkresponse"]["errortext"].as_str().unwrap();
                    assert!(text.contains("overlaps"), "{text}");
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        let cidrs_created: Vec<&Value> = created.iter().map(|n| &n["cidr"]).collect();
        assert_eq!(created.len(), 3, "{cidrs_created:?}");
        let (count, listed) = list(&alice, &[("vpcid", &vpc_id)]).await;
        assert_eq!(count, 3);
        let cidrs: Vec<ipnet::Ipv4Net> = listed
            .iter()
            .map(|n| n["cidr"].as_str().unwrap().parse().unwrap())
            .collect();
        for (i, a) in cidrs.iter().enumerate() {
            for b in &cidrs[i + 1..] {
                assert!(!a.contains(b) && !b.contains(a), "{a} overlaps {b}");
            }
        }

        // Tiers of three VPCs implemented at once get three different vnets.
        let mut tiers = vec![listed[0]["id"].as_str().unwrap().to_string()];
        for (i, cidr) in [(2, "10.6.0.0/16"), (3, "10.7.0.0/16")] {
            let v = create_vpc(&alice, &env, &format!("v{i}"), cidr).await;
            let gateway = cidr.replace("0.0/16", "1.1");
            let t = create_tier(
                &alice,
                &env,
                v["id"].as_str().unwrap(),
                "t",
                &gateway,
                "255.255.255.0",
            )
            .await;
            tiers.push(t["id"].as_str().unwrap().to_string());
        }
        let mut set = tokio::task::JoinSet::new();
        for (i, t) in tiers.iter().enumerate() {
            let client = if i % 2 == 0 {
                alice.clone()
            } else {
                alice2.clone()
            };
            let (env, t) = (env.clone(), t.clone());
            set.spawn(async move { deploy(&client, &env, &t, &format!("p{i}")).await });
        }
        while let Some(joined) = set.join_next().await {
            assert_eq!(joined.unwrap()["state"], "Running");
        }
        let mut vlans = BTreeSet::new();
        for t in &tiers {
            vlans.insert(
                one_tier(&admin, t).await["vlan"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        assert_eq!(
            vlans,
            BTreeSet::from(["100", "101", "102"].map(String::from))
        );
    }
);
