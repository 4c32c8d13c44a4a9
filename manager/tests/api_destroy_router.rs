//! `destroyRouter` (issue 15), on SQLite and PostgreSQL: the router goes,
//! and the next `restartVPC`, without or with cleanup, brings a new one
//! with a NIC on every tier (and the public one), and so does the next VM
//! start, as CloudStack redeploys a VPC's router. Refused for users and for unknown routers.

mod support;

use serde_json::Value;
use support::api::{BOGUS, TestManager, job_ok, on_both_backends, refused};
use support::vpc::{create_tier, create_vpc, deploy_vm, user, zone_env};

async fn routers_of(m: &TestManager, vpc: &str) -> Vec<Value> {
    let listed = m
        .admin()
        .ok("listRouters", &[("vpcid", vpc), ("listall", "true")])
        .await;
    listed["router"].as_array().cloned().unwrap_or_default()
}

/// The traffic types of a router's NICs, sorted, and its tiers' ids.
fn nic_layout(r: &Value) -> (Vec<String>, Vec<String>) {
    let nics = r["nic"].as_array().cloned().unwrap_or_default();
    let mut kinds: Vec<String> = nics
        .iter()
        .map(|n| n["traffictype"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    let mut tiers: Vec<String> = nics
        .iter()
        .filter(|n| n["traffictype"] == "Guest")
        .map(|n| n["networkid"].as_str().unwrap().to_string())
        .collect();
    tiers.sort();
    (kinds, tiers)
}

on_both_backends!(
    a_destroyed_router_comes_back_whole_at_the_next_restart,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "z1").await;
        let owner = user(&admin, "dora").await;
        let v = create_vpc(&owner, &env, "v1", "10.7.0.0/16").await;
        let vpc_id = v["id"].as_str().unwrap().to_string();
        let web = create_tier(&owner, &env, &vpc_id, "web", "10.7.1.1", "255.255.255.0").await;
        let db = create_tier(&owner, &env, &vpc_id, "db", "10.7.2.1", "255.255.255.0").await;
        let mut tiers = vec![
            web["id"].as_str().unwrap().to_string(),
            db["id"].as_str().unwrap().to_string(),
        ];
        tiers.sort();
        deploy_vm(&owner, &env, &tiers[0], "vm1").await;
        deploy_vm(&owner, &env, &tiers[1], "vm2").await;
        let before = routers_of(m, &vpc_id).await;
        assert_eq!(before.len(), 1);
        let expected = (
            vec!["Guest".to_string(), "Guest".into(), "Public".into()],
            tiers.clone(),
        );
        assert_eq!(nic_layout(&before[0]), expected, "{}", before[0]);
        let mut router_id = before[0]["id"].as_str().unwrap().to_string();

        // Refused: a user may not call it; an unknown router is a 431.
        let (code, _) = refused(&owner, "destroyRouter", &[("id", &router_id)]).await;
        assert_eq!(code, 432);
        let (code, text) = refused(&admin, "destroyRouter", &[("id", BOGUS)]).await;
        assert_eq!(code, 431);
        assert!(text.contains("id"), "{text}");

        for cleanup in ["false", "true"] {
            let gone = job_ok(&admin, "destroyRouter", &[("id", &router_id)]).await;
            assert_eq!(gone["router"]["id"], router_id.as_str());
            assert_eq!(gone["router"]["state"], "Destroyed");
            assert!(routers_of(m, &vpc_id).await.is_empty());
            let (code, _) = refused(&admin, "destroyRouter", &[("id", &router_id)]).await;
            assert_eq!(code, 431, "a destroyed router is not found again");

            job_ok(
                &admin,
                "restartVPC",
                &[("id", &vpc_id), ("cleanup", cleanup)],
            )
            .await;
            let after = routers_of(m, &vpc_id).await;
            assert_eq!(after.len(), 1, "cleanup={cleanup}: {after:?}");
            assert_ne!(after[0]["id"], router_id.as_str(), "a new router");
            assert_eq!(after[0]["state"], "Running");
            assert_eq!(
                nic_layout(&after[0]),
                expected,
                "cleanup={cleanup}: {}",
                after[0]
            );
            assert_eq!(
                after[0]["publicip"], before[0]["publicip"],
                "the same source NAT"
            );
            router_id = after[0]["id"].as_str().unwrap().to_string();
        }

        // The next VM start after a destroy brings the router back whole too.
        let vm = deploy_vm(&owner, &env, &tiers[0], "vm3").await;
        let vm_id = vm["id"].as_str().unwrap();
        job_ok(&owner, "stopVirtualMachine", &[("id", vm_id)]).await;
        job_ok(&admin, "destroyRouter", &[("id", &router_id)]).await;
        assert!(routers_of(m, &vpc_id).await.is_empty());
        let started = job_ok(&owner, "startVirtualMachine", &[("id", vm_id)]).await;
        assert_eq!(started["virtualmachine"]["state"], "Running", "{started}");
        let after = routers_of(m, &vpc_id).await;
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!(after[0]["state"], "Running");
        assert_eq!(nic_layout(&after[0]), expected, "{}", after[0]);
    }
);
