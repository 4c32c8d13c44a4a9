//! VPCs and their routers through the HTTP API, on SQLite and PostgreSQL:
//! each rule's allowed and refused case, job results through
//! queryAsyncJobResult, and the exact router commands each step produces.

mod support;

use serde_json::Value;
use support::api::{BOGUS, TestManager, job_ok, on_both_backends, refused, run_job};
use support::vpc::{account_in, create_tier, create_vpc, user, zone_env, zone_env_range};
use vpc_manager::orchestration::AgentCommand;
use vpc_manager::orchestration::AgentError;
use vpc_manager::orchestration::recording::DriverCall;

/// The single ApplyConfig among `commands`, with its generation.
fn apply_config(commands: &[AgentCommand]) -> (u64, vpc_proto::v1::RouterConfig) {
    let applies: Vec<_> = commands
        .iter()
        .filter_map(|c| match c {
            AgentCommand::ApplyConfig(r) => Some((r.generation, r.config.clone().unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(applies.len(), 1, "{commands:?}");
    applies.into_iter().next().unwrap()
}

async fn routers_of(m: &TestManager, vpc: &str) -> Vec<Value> {
    let listed = m
        .admin()
        .ok("listRouters", &[("vpcid", vpc), ("listall", "true")])
        .await;
    listed["router"].as_array().cloned().unwrap_or_default()
}

on_both_backends!(a_vpc_lives_from_creation_to_deletion, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "vz1").await;

    // Refusals before anything is created.
    let base = |cidr: &'static str| {
        vec![
            ("name", "v"),
            ("zoneid", env.zone.as_str()),
            ("vpcofferingid", env.vpc_offering.as_str()),
            ("cidr", cidr),
        ]
    };
    let (code, text) = refused(&admin, "createVPC", &base("8.8.8.0/24")).await;
    assert_eq!(code, 431);
    assert!(text.contains("RFC1918"), "{text}");
    let (code, text) = refused(
        &admin,
        "createVPC",
        &[
            ("name", "v"),
            ("zoneid", &env.zone),
            ("vpcofferingid", &env.vpc_offering),
        ],
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("cidr or cidrsize"), "{text}");
    let mut bogus_zone = base("10.0.0.0/16");
    bogus_zone[1] = ("zoneid", BOGUS);
    let (code, text) = refused(&admin, "createVPC", &bogus_zone).await;
    assert_eq!(code, 431);
    assert!(text.contains(BOGUS), "{text}");
    let disabled = admin
        .ok(
            "createVPCOffering",
            &[("name", "off"), ("supportedservices", "Dhcp,SourceNat")],
        )
        .await;
    let disabled = disabled["id"].as_str().unwrap().to_string();
    let mut p = base("10.0.0.0/16");
    p[2] = ("vpcofferingid", &disabled);
    let (code, text) = refused(&admin, "createVPC", &p).await;
    assert_eq!(code, 431);
    assert!(text.contains("Enabled"), "{text}");
    assert!(m.agent.commands().is_empty(), "nothing reached a router");

    // createVPC: async-create; the job starts the router with its config.
    let started = admin
        .ok(
            "createVPC",
            &[
                ("name", "web"),
                ("zoneid", &env.zone),
                ("vpcofferingid", &env.vpc_offering),
                ("cidr", "10.1.0.0/16"),
            ],
        )
        .await;
    let vpc_id = started["id"].as_str().expect("async-create id").to_string();
    let done = admin.wait_job(started["jobid"].as_str().unwrap()).await;
    assert_eq!(done["jobstatus"], 1, "{done}");
    assert_eq!(done["jobinstancetype"], "Vpc");
    assert_eq!(done["jobinstanceid"], vpc_id.as_str());
    let vpc = &done["jobresult"]["vpc"];
    assert_eq!(vpc["id"], vpc_id.as_str());
    assert_eq!(vpc["state"], "Enabled");
    assert_eq!(vpc["cidr"], "10.1.0.0/16");
    assert_eq!(vpc["displaytext"], "web", "defaults to the name");
    assert_eq!(vpc["zoneid"], env.zone.as_str());
    assert_eq!(vpc["restartrequired"], false);
    assert_eq!(vpc["account"], "admin");
    assert!(
        vpc["networkdomain"]
            .as_str()
            .unwrap()
            .ends_with(".cloud.internal"),
        "{vpc}"
    );
    let services: Vec<&str> = vpc["service"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        services.contains(&"SourceNat") && !services.contains(&"Gateway"),
        "{services:?}"
    );

    let routers = routers_of(m, &vpc_id).await;
    assert_eq!(routers.len(), 1);
    let router = &routers[0];
    let router_name = router["name"].as_str().unwrap().to_string();
    assert_eq!(router["state"], "Running");
    assert_eq!(router["vpcid"], vpc_id.as_str());
    assert_eq!(router["publicip"], "203.0.113.10", "the first free address");
    assert_eq!(router["configcurrent"], true);
    assert_eq!(router["configgeneration"], 1);
    let by_name = admin
        .ok(
            "listRouters",
            &[("name", &router_name), ("listall", "true")],
        )
        .await;
    assert_eq!(by_name["count"], 1);
    let by_name = admin
        .ok("listRouters", &[("name", "r-999-VM"), ("listall", "true")])
        .await;
    assert_eq!(by_name["count"].as_u64().unwrap_or(0), 0);
    assert_eq!(
        m.driver.calls(),
        [DriverCall::StartRouter(router_name.clone())]
    );
    let (generation, config) = apply_config(&m.agent.commands());
    assert_eq!(generation, 1);
    assert_eq!(config.public_ips.len(), 1);
    assert_eq!(config.public_ips[0].ip_address, "203.0.113.10");
    assert!(config.public_ips[0].source_nat);
    assert_eq!(config.source_nat_rules.len(), 1);
    assert!(config.guest_networks.is_empty());

    // listVPCs filters.
    let count = |v: &Value| v["count"].as_u64().unwrap_or(0);
    let admin2 = admin.clone();
    let list = |params: Vec<(&'static str, String)>| {
        let admin = admin2.clone();
        async move {
            let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            admin.ok("listVPCs", &p).await
        }
    };
    assert_eq!(count(&list(vec![("id", vpc_id.clone())]).await), 1);
    assert_eq!(
        count(&list(vec![("supportedservices", "SourceNat,NetworkACL".into())]).await),
        1
    );
    assert_eq!(
        count(&list(vec![("supportedservices", "Vpn,NoSuchService".into())]).await),
        0
    );
    assert_eq!(
        count(&list(vec![("restartrequired", "true".into())]).await),
        0
    );
    assert_eq!(count(&list(vec![("cidr", "10.1.0.0/16".into())]).await), 1);
    assert_eq!(count(&list(vec![("state", "Inactive".into())]).await), 0);

    // updateVPC.
    let updated = job_ok(&admin, "updateVPC", &[("id", &vpc_id), ("name", "shop")]).await;
    assert_eq!(updated["vpc"]["name"], "shop");
    assert_eq!(updated["vpc"]["displaytext"], "web");

    // restartVPC without cleanup: the same router gets its whole config again.
    m.agent.clear();
    m.driver.clear();
    job_ok(&admin, "restartVPC", &[("id", &vpc_id)]).await;
    let (generation, _) = apply_config(&m.agent.commands());
    assert_eq!(generation, 2);
    assert!(m.driver.calls().is_empty());

    // rebootRouter: stop, start, whole config.
    m.agent.clear();
    let router_id = router["id"].as_str().unwrap().to_string();
    let rebooted = job_ok(&admin, "rebootRouter", &[("id", &router_id)]).await;
    assert_eq!(rebooted["router"]["state"], "Running");
    assert_eq!(
        m.driver.calls(),
        [
            DriverCall::StopRouter(router_name.clone()),
            DriverCall::StartRouter(router_name.clone())
        ]
    );
    assert_eq!(apply_config(&m.agent.commands()).0, 3);

    // stopRouter / startRouter.
    let stopped = job_ok(&admin, "stopRouter", &[("id", &router_id)]).await;
    assert_eq!(stopped["router"]["state"], "Stopped");
    let (code, text) = refused(&admin, "stopRouter", &[("id", &router_id)]).await;
    assert_eq!(code, 431);
    assert!(text.contains("already Stopped"), "{text}");
    let (code, _) = refused(&admin, "rebootRouter", &[("id", &router_id)]).await;
    assert_eq!(code, 431, "only a Running router reboots");
    m.agent.clear();
    let started = job_ok(&admin, "startRouter", &[("id", &router_id)]).await;
    assert_eq!(started["router"]["state"], "Running");
    assert_eq!(apply_config(&m.agent.commands()).0, 4);

    // restartVPC with cleanup: a new router first, then the old one goes.
    m.agent.clear();
    m.driver.clear();
    job_ok(
        &admin,
        "restartVPC",
        &[("id", &vpc_id), ("cleanup", "true")],
    )
    .await;
    let routers = routers_of(m, &vpc_id).await;
    assert_eq!(routers.len(), 1);
    let new_name = routers[0]["name"].as_str().unwrap().to_string();
    assert_ne!(new_name, router_name);
    assert_eq!(
        routers[0]["publicip"], "203.0.113.10",
        "the same source NAT address"
    );
    assert_eq!(
        m.driver.calls(),
        [
            DriverCall::StartRouter(new_name.clone()),
            DriverCall::DestroyRouter(router_name.clone())
        ]
    );
    let sent = m.agent.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, new_name);

    // deleteVPC: router destroyed, address released, row removed.
    m.driver.clear();
    let done = job_ok(&admin, "deleteVPC", &[("id", &vpc_id)]).await;
    assert_eq!(done["success"], true);
    assert_eq!(m.driver.calls(), [DriverCall::DestroyRouter(new_name)]);
    assert_eq!(count(&list(vec![("id", vpc_id.clone())]).await), 0);
    assert!(routers_of(m, &vpc_id).await.is_empty());
    let (code, _) = refused(&admin, "deleteVPC", &[("id", &vpc_id)]).await;
    assert_eq!(code, 431, "a deleted VPC is not found");
    // Its address is free again: the next VPC gets it.
    let again = create_vpc(&admin, &env, "again", "10.2.0.0/16").await;
    let routers = routers_of(m, again["id"].as_str().unwrap()).await;
    assert_eq!(routers[0]["publicip"], "203.0.113.10");
});

on_both_backends!(vpc_ownership_limits_and_failed_starts, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "vz2").await;
    let ruth = user(&admin, "ruth").await;
    let bob = user(&admin, "bob").await;

    let ruths = create_vpc(&ruth, &env, "ruths", "10.10.0.0/16").await;
    let ruths_id = ruths["id"].as_str().unwrap().to_string();
    assert_eq!(ruths["account"], "ruth");

    // Another user neither sees nor changes it.
    let seen = bob.ok("listVPCs", &[("listall", "true")]).await;
    assert_eq!(seen["count"].as_u64().unwrap_or(0), 0, "{seen}");
    for cmd in ["deleteVPC", "restartVPC", "updateVPC"] {
        let (code, text) = refused(&bob, cmd, &[("id", &ruths_id)]).await;
        assert_eq!(code, 531, "{cmd}");
        assert!(text.contains("permission"), "{text}");
    }
    // Users do not see routers at all.
    let (code, _) = refused(&ruth, "listRouters", &[]).await;
    assert_eq!(code, 432);
    let (code, _) = refused(&ruth, "stopRouter", &[("id", BOGUS)]).await;
    assert_eq!(code, 432);
    // A user cannot create a VPC for someone else.
    let bob_domain = bob.ok("listAccounts", &[]).await["account"][0]["domainid"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = refused(
        &ruth,
        "createVPC",
        &[
            ("name", "x"),
            ("zoneid", &env.zone),
            ("vpcofferingid", &env.vpc_offering),
            ("cidr", "10.11.0.0/16"),
            ("account", "bob"),
            ("domainid", &bob_domain),
        ],
    )
    .await;
    assert_eq!(code, 531);

    // The admin sees its own VPCs by default, everyone's with listall.
    let own = admin.ok("listVPCs", &[]).await;
    assert_eq!(own["count"].as_u64().unwrap_or(0), 0);
    let all = admin.ok("listVPCs", &[("listall", "true")]).await;
    assert_eq!(all["count"], 1);
    // An admin creates a VPC for bob; bob owns and sees it.
    let done = job_ok(
        &admin,
        "createVPC",
        &[
            ("name", "bobs"),
            ("zoneid", &env.zone),
            ("vpcofferingid", &env.vpc_offering),
            ("cidr", "10.12.0.0/16"),
            ("account", "bob"),
            ("domainid", &bob_domain),
        ],
    )
    .await;
    assert_eq!(done["vpc"]["account"], "bob");
    let seen = bob.ok("listVPCs", &[]).await;
    assert_eq!(seen["count"], 1);
    assert_eq!(seen["vpc"][0]["name"], "bobs");

    // A domain admin sees its subtree only.
    let da = account_in(&admin, "bobadmin", &bob_domain, "2").await;
    let seen = da.ok("listVPCs", &[("listall", "true")]).await;
    assert_eq!(
        seen["count"], 1,
        "only bob's VPC is in the domain admin's domain"
    );
    let (code, _) = refused(&da, "deleteVPC", &[("id", &ruths_id)]).await;
    assert_eq!(code, 531);
    let routers = da.ok("listRouters", &[("listall", "true")]).await;
    assert_eq!(routers["count"], 1);

    // The vpc resource limit: 535.
    let ruth_domain = ruth.ok("listAccounts", &[]).await["account"][0]["domainid"]
        .as_str()
        .unwrap()
        .to_string();
    admin
        .ok(
            "updateResourceLimit",
            &[
                ("resourcetype", "7"),
                ("max", "1"),
                ("account", "ruth"),
                ("domainid", &ruth_domain),
            ],
        )
        .await;
    let (code, text) = refused(
        &ruth,
        "createVPC",
        &[
            ("name", "second"),
            ("zoneid", &env.zone),
            ("vpcofferingid", &env.vpc_offering),
            ("cidr", "10.13.0.0/16"),
        ],
    )
    .await;
    assert_eq!(code, 535);
    assert!(text.contains("Type = 'vpc'"), "{text}");

    // A start that fails destroys the VPC and fails the job.
    m.agent
        .fail("ApplyConfig", AgentError::Failed("nft refused".into()));
    let failed = run_job(
        &admin,
        "createVPC",
        &[
            ("name", "doomed"),
            ("zoneid", &env.zone),
            ("vpcofferingid", &env.vpc_offering),
            ("cidr", "10.14.0.0/16"),
        ],
    )
    .await;
    assert_eq!(failed["jobstatus"], 2, "{failed}");
    assert_eq!(failed["jobresultcode"], 530);
    let text = failed["jobresult"]["errortext"].as_str().unwrap();
    assert!(text.contains("nft refused"), "{text}");
    m.agent.unfail("ApplyConfig");
    let listed = admin
        .ok("listVPCs", &[("listall", "true"), ("name", "doomed")])
        .await;
    assert_eq!(listed["count"].as_u64().unwrap_or(0), 0, "{listed}");

    // A cleanup that fails leaves the VPC Inactive; the collector finishes it.
    m.driver.fail("destroy_router");
    let failed = run_job(
        &bob,
        "deleteVPC",
        &[("id", done["vpc"]["id"].as_str().unwrap())],
    )
    .await;
    assert_eq!(failed["jobstatus"], 2, "{failed}");
    let text = failed["jobresult"]["errortext"].as_str().unwrap();
    assert!(text.contains("Inactive"), "{text}");
    let inactive = admin
        .ok("listVPCs", &[("listall", "true"), ("state", "Inactive")])
        .await;
    assert_eq!(inactive["count"], 1);
    m.driver.unfail("destroy_router");
    admin
        .ok(
            "updateConfiguration",
            &[("name", "vpc.cleanup.interval"), ("value", "1")],
        )
        .await;
    let mut gone = false;
    for _ in 0..100 {
        let inactive = admin
            .ok("listVPCs", &[("listall", "true"), ("state", "Inactive")])
            .await;
        if inactive["count"].as_u64().unwrap_or(0) == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the collector removed the Inactive VPC");
});

on_both_backends!(a_zone_without_free_addresses_refuses_new_vpcs, |m| {
    let admin = m.admin();
    let env = zone_env_range(
        &admin,
        "vz3",
        "198.51.100.1",
        "198.51.100.10",
        "198.51.100.11",
    )
    .await;
    // The range has two addresses; take them both.
    for i in 0..2 {
        create_vpc(&admin, &env, &format!("v{i}"), &format!("10.{i}.0.0/16")).await;
    }
    let failed = run_job(
        &admin,
        "createVPC",
        &[
            ("name", "one-too-many"),
            ("zoneid", &env.zone),
            ("vpcofferingid", &env.vpc_offering),
            ("cidr", "10.200.0.0/16"),
        ],
    )
    .await;
    assert_eq!(failed["jobstatus"], 2);
    assert_eq!(failed["jobresultcode"], 533);
    let text = failed["jobresult"]["errortext"].as_str().unwrap();
    assert!(text.contains("Insufficient address capacity"), "{text}");
    let listed = admin.ok("listVPCs", &[("name", "one-too-many")]).await;
    assert_eq!(listed["count"].as_u64().unwrap_or(0), 0);
});

/// The enabled gurus and elements come from the settings; a name the
/// manager does not know stops it from starting, with the name in the error.
#[tokio::test]
async fn plug_ins_are_chosen_by_the_settings() {
    use vpc_manager::serve::Manager;
    use vpc_manager::settings::Settings;
    let dir = tempfile::tempdir().unwrap();
    let settings = |gurus: Option<Vec<&str>>, elements: Option<Vec<&str>>| Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        network_gurus: gurus.map(|g| g.into_iter().map(String::from).collect()),
        network_elements: elements.map(|e| e.into_iter().map(String::from).collect()),
        driver: vpc_manager::settings::DriverKind::Simulated,
        ..Settings::default()
    };
    let err = Manager::start(settings(Some(vec!["GuestVlan", "Nope"]), None))
        .await
        .err()
        .expect("an unknown guru is refused");
    assert!(format!("{err:#}").contains("Nope"), "{err:#}");
    let err = Manager::start(settings(None, Some(vec!["Nope"])))
        .await
        .err()
        .expect("an unknown element is refused");
    assert!(format!("{err:#}").contains("Nope"), "{err:#}");
    let m = Manager::start(settings(Some(vec!["GuestVxlan", "Public"]), None))
        .await
        .expect("known gurus start");
    assert_eq!(
        m.app.network.plugins.gurus.names(),
        ["GuestVxlan", "Public"]
    );
    assert!(m.app.network.plugins.element_enabled("VpcVirtualRouter"));
    m.app.db.close().await;
    // No element: the manager runs, and createVPC says why it cannot work.
    let m = Manager::start(settings(None, Some(vec![])))
        .await
        .expect("no element is a valid choice");
    assert!(!m.app.network.plugins.element_enabled("VpcVirtualRouter"));
    let ini = std::fs::read_to_string(&m.cloudstack_ini).unwrap();
    let value = |k: &str| {
        ini.lines()
            .find_map(|l| l.strip_prefix(&format!("{k} = ")))
            .unwrap()
            .to_string()
    };
    let admin = support::api::Client {
        addr: m.app.settings.listen,
        key: value("key"),
        secret: value("secret"),
    };
    let server = tokio::spawn(m.serve(std::future::pending()));
    let (code, text) = refused(
        &admin,
        "createVPC",
        &[
            ("name", "v"),
            ("zoneid", BOGUS),
            ("vpcofferingid", BOGUS),
            ("cidr", "10.0.0.0/16"),
        ],
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("VpcVirtualRouter"), "{text}");
    server.abort();
}

on_both_backends!(deleting_an_account_or_a_domain_removes_its_vpcs, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "vz4").await;
    let carl = user(&admin, "carl").await;
    let vpc = create_vpc(&carl, &env, "carls", "10.20.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let tier = create_tier(&carl, &env, &vpc_id, "t1", "10.20.1.1", "255.255.255.0").await;
    let tier_id = tier["id"].as_str().unwrap().to_string();
    let offering = admin.ok("listServiceOfferings", &[]).await["serviceoffering"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let template = admin
        .ok("listTemplates", &[("templatefilter", "featured")])
        .await["template"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    job_ok(
        &carl,
        "deployVirtualMachine",
        &[
            ("zoneid", &env.zone),
            ("serviceofferingid", &offering),
            ("templateid", &template),
            ("networkids", &tier_id),
            ("name", "vm1"),
        ],
    )
    .await;
    let router = routers_of(m, &vpc_id).await[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let account = carl.ok("listAccounts", &[]).await["account"][0].clone();
    m.driver.clear();
    job_ok(
        &admin,
        "deleteAccount",
        &[("id", account["id"].as_str().unwrap())],
    )
    .await;
    let calls = m.driver.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        matches!(&calls[0], DriverCall::DestroyVm(name) if name.starts_with("i-")),
        "{calls:?}"
    );
    assert_eq!(calls[1], DriverCall::DestroyRouter(router));
    let left = admin.ok("listVPCs", &[("listall", "true")]).await;
    assert_eq!(left["count"].as_u64().unwrap_or(0), 0, "{left}");
    let left = admin.ok("listNetworks", &[("listall", "true")]).await;
    assert_eq!(left["count"].as_u64().unwrap_or(0), 0, "{left}");
    let left = admin
        .ok("listVirtualMachines", &[("listall", "true")])
        .await;
    assert_eq!(left["count"].as_u64().unwrap_or(0), 0, "{left}");
    assert!(routers_of(m, &vpc_id).await.is_empty());

    // A domain deleted with cleanup takes its accounts' VPCs along.
    let dora = user(&admin, "dora").await;
    let vpc = create_vpc(&dora, &env, "doras", "10.21.0.0/16").await;
    let domain_id = dora.ok("listAccounts", &[]).await["account"][0]["domainid"]
        .as_str()
        .unwrap()
        .to_string();
    job_ok(
        &admin,
        "deleteDomain",
        &[("id", &domain_id), ("cleanup", "true")],
    )
    .await;
    assert!(routers_of(m, vpc["id"].as_str().unwrap()).await.is_empty());
    let left = admin.ok("listVPCs", &[("listall", "true")]).await;
    assert_eq!(left["count"].as_u64().unwrap_or(0), 0, "{left}");
    // The addresses are free again: a new VPC gets the first one.
    let again = create_vpc(&admin, &env, "again", "10.22.0.0/16").await;
    let routers = routers_of(m, again["id"].as_str().unwrap()).await;
    assert_eq!(routers[0]["publicip"], "203.0.113.10");
});

on_both_backends!(a_vpc_with_tiers_is_not_deleted, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "vz5").await;
    let vpc = create_vpc(&admin, &env, "busy", "10.30.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let tier = create_tier(&admin, &env, &vpc_id, "t", "10.30.1.1", "255.255.255.0").await;
    let failed = run_job(&admin, "deleteVPC", &[("id", &vpc_id)]).await;
    assert_eq!(failed["jobstatus"], 2);
    assert_eq!(failed["jobresultcode"], 431);
    let text = failed["jobresult"]["errortext"].as_str().unwrap();
    assert!(text.contains("used by 1 networks"), "{text}");
    let listed = admin.ok("listVPCs", &[("id", &vpc_id)]).await;
    assert_eq!(listed["vpc"][0]["state"], "Enabled", "nothing changed");
    job_ok(
        &admin,
        "deleteNetwork",
        &[("id", tier["id"].as_str().unwrap())],
    )
    .await;
    job_ok(&admin, "deleteVPC", &[("id", &vpc_id)]).await;
});

on_both_backends!(vms_run_on_the_driver_after_their_leases, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "vz6").await;
    let vpc = create_vpc(&admin, &env, "vms", "10.40.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let tier = create_tier(&admin, &env, &vpc_id, "t", "10.40.1.1", "255.255.255.0").await;
    let offering = admin.ok("listServiceOfferings", &[]).await["serviceoffering"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let template = admin
        .ok("listTemplates", &[("templatefilter", "featured")])
        .await["template"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deploy = |name: &'static str| {
        vec![
            ("zoneid", env.zone.clone()),
            ("serviceofferingid", offering.clone()),
            ("templateid", template.clone()),
            ("networkids", tier["id"].as_str().unwrap().to_string()),
            ("name", name.to_string()),
        ]
    };
    let as_ref = |p: &[(&'static str, String)]| -> Vec<(&'static str, String)> { p.to_vec() };
    let call = |p: Vec<(&'static str, String)>| {
        let admin = admin.clone();
        async move {
            let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            run_job(&admin, "deployVirtualMachine", &p).await
        }
    };
    m.agent.clear();
    m.driver.clear();
    let done = call(as_ref(&deploy("web1"))).await;
    assert_eq!(done["jobstatus"], 1, "{done}");
    let vm = done["jobresult"]["virtualmachine"].clone();
    let vm_id = vm["id"].as_str().unwrap().to_string();
    let instance = vm["instancename"].as_str().unwrap().to_string();
    // The lease, then what the VM reads from the router (VM services),
    // reach the router before the VM starts.
    let rpcs = m.agent.rpcs();
    assert_eq!(
        rpcs[rpcs.len().saturating_sub(2)..],
        ["SetDhcpEntries", "SetVmData"]
    );
    assert_eq!(
        m.driver.calls().last(),
        Some(&DriverCall::StartVm(instance.clone()))
    );

    m.driver.clear();
    m.agent.clear();
    job_ok(&admin, "rebootVirtualMachine", &[("id", &vm_id)]).await;
    assert_eq!(
        m.driver.calls(),
        [
            DriverCall::StopVm(instance.clone()),
            DriverCall::StartVm(instance.clone())
        ]
    );
    assert!(m.agent.rpcs().is_empty(), "a reboot keeps the leases");

    m.driver.clear();
    job_ok(&admin, "stopVirtualMachine", &[("id", &vm_id)]).await;
    assert_eq!(m.driver.calls(), [DriverCall::StopVm(instance.clone())]);
    m.driver.clear();
    job_ok(
        &admin,
        "destroyVirtualMachine",
        &[("id", &vm_id), ("expunge", "true")],
    )
    .await;
    assert_eq!(m.driver.calls(), [DriverCall::DestroyVm(instance.clone())]);

    // A VM the driver cannot start is not kept, and its lease goes again.
    m.driver.fail("start_vm");
    m.agent.clear();
    let failed = call(as_ref(&deploy("web2"))).await;
    assert_eq!(failed["jobstatus"], 2, "{failed}");
    assert_eq!(failed["jobresultcode"], 530);
    m.driver.unfail("start_vm");
    let leases: Vec<usize> = m
        .agent
        .commands()
        .iter()
        .filter_map(|c| match c {
            AgentCommand::SetDhcpEntries(r) => Some(r.dhcp.as_ref().unwrap().entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(leases.first(), Some(&1), "{leases:?}");
    assert_eq!(leases.last(), Some(&0), "{leases:?}");
    let listed = admin.ok("listVirtualMachines", &[("name", "web2")]).await;
    assert_eq!(listed["count"].as_u64().unwrap_or(0), 0, "{listed}");
});

/// `--bootstrap-zone`: the first start creates a zone ready for VPCs; later
/// starts leave the zones alone.
#[tokio::test]
async fn the_first_start_can_create_a_zone_ready_for_vpcs() {
    use vpc_manager::serve::Manager;
    use vpc_manager::settings::Settings;
    use vpc_manager::store::{Page, vlan, zone};
    let dir = tempfile::tempdir().unwrap();
    let settings = || Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        bootstrap_zone: true,
        driver: vpc_manager::settings::DriverKind::Simulated,
        ..Settings::default()
    };
    for _ in 0..2 {
        let m = Manager::start(settings()).await.expect("starts");
        let db = &m.app.db;
        let zones = zone::list(db, &zone::ZoneFilter::default(), Page::ALL)
            .await
            .unwrap()
            .items;
        assert_eq!(zones.len(), 1);
        assert_eq!(zones[0].name, "zone1");
        assert_eq!(zones[0].network_type, "Advanced");
        let free = vlan::list_ips(
            db,
            &vlan::PublicIpFilter {
                state: Some(vlan::IP_FREE.into()),
                ..Default::default()
            },
            Page::ALL,
        )
        .await
        .unwrap();
        assert_eq!(free.total, 241, "203.0.113.10-250");
        db.close().await;
    }
}
