//! Conflicting requests spread over two managers of one PostgreSQL
//! database: exactly the ones a single manager would accept succeed.
//! Overlapping tiers of one VPC are ordered by the VPC's lock; private
//! gateways of different VPCs on one VLAN and address by the physical
//! network's lock.

mod support;

use support::api::{Client, TestManager, id};
use support::postgres::fresh_database;
use support::vpc::{create_vpc, zone_env};

const TRIES: usize = 8;

/// Runs `TRIES` calls of `command` at once, alternating the two managers;
/// returns (accepted, refusal texts).
async fn race(
    clients: [&Client; 2],
    command: &'static str,
    params: Vec<Vec<(&'static str, String)>>,
) -> (usize, Vec<String>) {
    let mut calls = Vec::new();
    for (i, p) in params.into_iter().enumerate() {
        let client = clients[i % 2].clone();
        calls.push(tokio::spawn(async move {
            let pairs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            client.call(command, &pairs).await
        }));
    }
    let mut accepted = 0;
    let mut refused = Vec::new();
    for call in calls {
        let (status, body) = call.await.expect("call");
        if status == 200 {
            accepted += 1;
        } else {
            refused.push(body.to_string());
        }
    }
    (accepted, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_requests_over_two_managers_are_accepted_once() {
    let url = fresh_database().await;
    let a = TestManager::start(Some(url.clone())).await;
    let b = TestManager::start(Some(url.clone())).await;
    let (admin_a, admin_b) = (a.admin(), b.admin());
    let env = zone_env(&admin_a, "zone-int").await;

    // Overlapping tiers of one VPC.
    let vpc = create_vpc(&admin_a, &env, "int-0", "10.0.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap_or_default().to_string();
    let tiers = (0..TRIES)
        .map(|i| {
            vec![
                ("name", format!("t{i}")),
                ("displaytext", format!("t{i}")),
                ("zoneid", env.zone.clone()),
                ("vpcid", vpc_id.clone()),
                ("networkofferingid", env.tier_offering.clone()),
                ("gateway", "10.0.1.1".to_string()),
                // Every other one a /25 inside the /24: all overlap.
                (
                    "netmask",
                    if i % 2 == 0 {
                        "255.255.255.0"
                    } else {
                        "255.255.255.128"
                    }
                    .to_string(),
                ),
            ]
        })
        .collect();
    let (accepted, refused) = race([&admin_a, &admin_b], "createNetwork", tiers).await;
    assert_eq!(accepted, 1, "one of the overlapping tiers: {refused:?}");
    assert!(
        refused.iter().all(|r| r.contains("431")),
        "the others get a parameter error: {refused:?}"
    );

    // Private gateways of different VPCs on one VLAN with one address.
    let mut gateways = Vec::new();
    for i in 1..=TRIES {
        let v = create_vpc(
            &admin_a,
            &env,
            &format!("int-{i}"),
            &format!("10.{i}.0.0/16"),
        )
        .await;
        gateways.push(vec![
            ("vpcid", id(&serde_json::json!({ "vpc": v }), "vpc")),
            ("vlan", "vlan://500".to_string()),
            ("ipaddress", "172.16.0.10".to_string()),
            ("gateway", "172.16.0.1".to_string()),
            ("netmask", "255.255.255.0".to_string()),
        ]);
    }
    let (accepted, refused) = race([&admin_a, &admin_b], "createPrivateGateway", gateways).await;
    assert_eq!(accepted, 1, "one gateway holds 172.16.0.10: {refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| r.contains("is already used for a private gateway")),
        "{refused:?}"
    );
    b.stop().await;
    a.stop().await;
}
