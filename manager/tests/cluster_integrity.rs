//! Conflicting requests spread over three managers of one PostgreSQL
//! database: exactly the ones a single manager would accept succeed
//! (overlapping tiers, private gateways of different VPCs on one VLAN and
//! address, VPCs past the account's limit, port forwards on one public port).
//! Then the database's own constraints (migration 0013) refuse the same
//! conflicts written behind the services' backs, so no code path that forgets
//! a lock can store them.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::api::{Client, TestManager, id, job_ok};
use support::postgres::fresh_database;
use support::vpc::{Env, create_tier, create_vpc, deploy_vm, user, zone_env};
use vpc_manager::store::{Db, StoreError};

const TRIES: usize = 16;

/// Runs one call of `command` per parameter set at once, round-robin over
/// `clients`; an async command's job is waited for. Returns (accepted,
/// refusal texts: the error of the call or of its job).
async fn race(
    clients: &[Client],
    command: &'static str,
    params: Vec<Vec<(&'static str, String)>>,
) -> (usize, Vec<String>) {
    let mut calls = Vec::new();
    for (i, p) in params.into_iter().enumerate() {
        let client = clients[i % clients.len()].clone();
        calls.push(tokio::spawn(async move {
            let pairs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, body) = client.call(command, &pairs).await;
            if status != 200 {
                return Err(body.to_string());
            }
            let started = body.as_object().and_then(|o| o.values().next()).cloned();
            match started.as_ref().and_then(|s| s["jobid"].as_str()) {
                None => Ok(()),
                Some(job) => {
                    let done = wait(&client, job).await;
                    if done["jobstatus"] == 1 {
                        Ok(())
                    } else {
                        Err(done["jobresult"].to_string())
                    }
                }
            }
        }));
    }
    let mut accepted = 0;
    let mut refused = Vec::new();
    for call in calls {
        match call.await.expect("call") {
            Ok(()) => accepted += 1,
            Err(text) => refused.push(text),
        }
    }
    (accepted, refused)
}

/// The job's final body; a loaded machine may take a while with sixteen
/// jobs of one VPC queued behind each other.
async fn wait(client: &Client, job: &str) -> Value {
    for _ in 0..1200 {
        let j = client.ok("queryAsyncJobResult", &[("jobid", job)]).await;
        if j["jobstatus"] != 0 {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job} did not finish within a minute");
}

fn tier_params(
    env: &Env,
    vpc: &str,
    name: &str,
    gateway: &str,
    netmask: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("name", name.to_string()),
        ("displaytext", name.to_string()),
        ("zoneid", env.zone.clone()),
        ("vpcid", vpc.to_string()),
        ("networkofferingid", env.tier_offering.clone()),
        ("gateway", gateway.to_string()),
        ("netmask", netmask.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_requests_over_three_managers_are_accepted_once() {
    let url = fresh_database().await;
    let managers = [
        TestManager::start(Some(url.clone())).await,
        TestManager::start(Some(url.clone())).await,
        TestManager::start(Some(url.clone())).await,
    ];
    let admins: Vec<Client> = managers.iter().map(TestManager::admin).collect();
    let admin = &admins[0];
    let env = zone_env(admin, "zone-int").await;

    // Overlapping tiers of one VPC: every other one a /25 inside the /24.
    let vpc = create_vpc(admin, &env, "int-0", "10.0.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap_or_default().to_string();
    let tiers = (0..TRIES)
        .map(|i| {
            let mask = if i % 2 == 0 {
                "255.255.255.0"
            } else {
                "255.255.255.128"
            };
            tier_params(&env, &vpc_id, &format!("t{i}"), "10.0.1.1", mask)
        })
        .collect();
    let (accepted, refused) = race(&admins, "createNetwork", tiers).await;
    assert_eq!(accepted, 1, "one of the overlapping tiers: {refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| r.contains("431") && r.contains("overlaps")),
        "the others get the overlap error: {refused:?}"
    );

    // Private gateways of different VPCs on one VLAN with one address.
    let mut gateways = Vec::new();
    let mut gateway_vpcs = Vec::new();
    for i in 1..=TRIES {
        let v = create_vpc(admin, &env, &format!("int-{i}"), &format!("10.{i}.0.0/16")).await;
        let v = id(&serde_json::json!({ "vpc": v }), "vpc");
        gateway_vpcs.push(v.clone());
        gateways.push(vec![
            ("vpcid", v),
            ("vlan", "vlan://500".to_string()),
            ("ipaddress", "172.16.0.10".to_string()),
            ("gateway", "172.16.0.1".to_string()),
            ("netmask", "255.255.255.0".to_string()),
        ]);
    }
    let (accepted, refused) = race(&admins, "createPrivateGateway", gateways).await;
    assert_eq!(accepted, 1, "one gateway holds 172.16.0.10: {refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| r.contains("is already used for a private gateway")),
        "{refused:?}"
    );

    // An account allowed three VPCs asks for sixteen at once, on all managers.
    let ruth = user(admin, "ruth").await;
    let ruth_account = ruth.ok("listAccounts", &[]).await["account"][0].clone();
    admin
        .ok(
            "updateResourceLimit",
            &[
                ("resourcetype", "7"),
                ("max", "3"),
                ("account", "ruth"),
                ("domainid", ruth_account["domainid"].as_str().unwrap()),
            ],
        )
        .await;
    let ruths: Vec<Client> = managers
        .iter()
        .map(|m| m.client(&ruth.key, &ruth.secret))
        .collect();
    let vpcs = (0..TRIES)
        .map(|i| {
            vec![
                ("name", format!("ruth-{i}")),
                ("displaytext", format!("ruth-{i}")),
                ("cidr", format!("10.{}.0.0/16", 100 + i)),
                ("zoneid", env.zone.clone()),
                ("vpcofferingid", env.vpc_offering.clone()),
            ]
        })
        .collect();
    let (accepted, refused) = race(&ruths, "createVPC", vpcs).await;
    assert_eq!(accepted, 3, "the limit is three: {refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| r.contains("535") && r.contains("Type = 'vpc'")),
        "the others exceed the limit: {refused:?}"
    );
    let listed = ruth.ok("listVPCs", &[]).await;
    assert_eq!(listed["count"], 3, "{listed}");

    // Sixteen port forwards on one public address and port.
    let web = create_tier(admin, &env, &vpc_id, "web", "10.0.9.1", "255.255.255.0").await;
    let web = web["id"].as_str().unwrap().to_string();
    let vm = deploy_vm(admin, &env, &web, "pf-vm").await;
    let vm = vm["id"].as_str().unwrap().to_string();
    let ip = job_ok(admin, "associateIpAddress", &[("vpcid", vpc_id.as_str())]).await;
    let ip = ip["ipaddress"]["id"].as_str().unwrap().to_string();
    let forwards = (0..TRIES)
        .map(|i| {
            vec![
                ("ipaddressid", ip.clone()),
                ("virtualmachineid", vm.clone()),
                ("networkid", web.clone()),
                ("protocol", "tcp".to_string()),
                ("publicport", "2222".to_string()),
                ("privateport", format!("{}", 2000 + i)),
            ]
        })
        .collect();
    let (accepted, refused) = race(&admins, "createPortForwardingRule", forwards).await;
    assert_eq!(accepted, 1, "one rule holds tcp 2222: {refused:?}");
    assert!(
        refused.iter().all(|r| r.contains("conflicts with")),
        "{refused:?}"
    );

    backstop(admin, &env, &url, &vpc_id, &gateway_vpcs, &ip, &vm, &web).await;
    for m in managers {
        m.stop().await;
    }
}

/// Writes each conflict straight to the database, around the services and
/// their locks: the database refuses it and names the constraint, which the
/// store reports as an overlap.
#[allow(clippy::too_many_arguments)]
async fn backstop(
    admin: &Client,
    env: &Env,
    url: &str,
    vpc_id: &str,
    gateway_vpcs: &[String],
    ip: &str,
    vm: &str,
    web: &str,
) {
    let db = Db::connect(url).await.expect("connect");
    let Db::Postgres(pool) = &db else {
        panic!("a PostgreSQL database")
    };
    let refused = async |sql: &'static str, bind: &str| -> StoreError {
        let err = sqlx::query(sql)
            .bind(bind)
            .execute(pool)
            .await
            .expect_err(sql);
        StoreError::from(err)
    };

    // A second tier moved onto the first one's /24 (or /25).
    let other = create_tier(admin, env, vpc_id, "other", "10.0.2.1", "255.255.255.0").await;
    let e = refused(
        "UPDATE networks SET cidr = '10.0.1.0/26' WHERE uuid = $1",
        other["id"].as_str().unwrap(),
    )
    .await;
    assert!(
        matches!(&e, StoreError::Overlap(c) if c == "networks_tier_cidrs_disjoint"),
        "{e:?}"
    );

    // A second static route moved onto the first.
    let gw = admin
        .ok("listPrivateGateways", &[("listall", "true")])
        .await["privategateway"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut routes = Vec::new();
    for cidr in ["192.168.10.0/24", "192.168.11.0/24"] {
        let r = job_ok(
            admin,
            "createStaticRoute",
            &[("cidr", cidr), ("gatewayid", &gw)],
        )
        .await;
        routes.push(r["staticroute"]["id"].as_str().unwrap().to_string());
    }
    let e = refused(
        "UPDATE static_routes SET cidr = '192.168.10.128/25' WHERE uuid = $1",
        &routes[1],
    )
    .await;
    assert!(
        matches!(&e, StoreError::Overlap(c) if c == "static_routes_cidrs_disjoint"),
        "{e:?}"
    );

    // A second port forward moved onto tcp 2222.
    let second = job_ok(
        admin,
        "createPortForwardingRule",
        &[
            ("ipaddressid", ip),
            ("virtualmachineid", vm),
            ("networkid", web),
            ("protocol", "tcp"),
            ("publicport", "2230"),
            ("publicendport", "2240"),
            ("privateport", "2230"),
            ("privateendport", "2240"),
        ],
    )
    .await;
    let e = refused(
        "UPDATE firewall_rules SET start_port = 2220 WHERE uuid = $1",
        second["portforwardingrule"]["id"].as_str().unwrap(),
    )
    .await;
    assert!(
        matches!(&e, StoreError::Overlap(c) if c == "firewall_rules_ports_disjoint"),
        "{e:?}"
    );
    // The same ports on the other protocol are no conflict.
    sqlx::query("UPDATE firewall_rules SET protocol = 'udp', start_port = 2220 WHERE uuid = $1")
        .bind(second["portforwardingrule"]["id"].as_str().unwrap())
        .execute(pool)
        .await
        .expect("udp 2220-2240 beside tcp 2222");

    // A second VPC's gateway on VLAN 500 moved onto 172.16.0.10.
    let taken: Vec<String> = gateway_vpcs.to_vec();
    let free = {
        let mut free = None;
        for v in &taken {
            let listed = admin
                .ok("listPrivateGateways", &[("vpcid", v), ("listall", "true")])
                .await;
            if listed["count"].as_i64().unwrap_or(0) == 0 {
                free = Some(v.clone());
                break;
            }
        }
        free.expect("a VPC without a gateway")
    };
    let g = job_ok(
        admin,
        "createPrivateGateway",
        &[
            ("vpcid", free.as_str()),
            ("vlan", "vlan://500"),
            ("ipaddress", "172.16.0.11"),
            ("gateway", "172.16.0.1"),
            ("netmask", "255.255.255.0"),
        ],
    )
    .await;
    let e = refused(
        "UPDATE vpc_gateways SET ip4_address = '172.16.0.10' WHERE uuid = $1",
        g["privategateway"]["id"].as_str().unwrap(),
    )
    .await;
    assert!(matches!(&e, StoreError::Duplicate(_)), "{e:?}");
    db.close().await;
}
