//! `destroyRouter` on the netns driver (issue 15): the router's namespace
//! goes; `restartVPC` without cleanup deploys a new router that serves
//! DHCP on every tier again (new VMs in both tiers take leases from it).

mod support;

use support::api::job_ok;
use support::e2e::E2e;
use vpc_manager::settings::AgentTransport;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_after_destroy_serves_every_tier_again() {
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();
    let vpc = e.vpc(&admin, "dr", "10.81.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let web = e
        .tier(&admin, &vpc_id, "web", "10.81.1.1", None, false)
        .await;
    let db = e
        .tier(&admin, &vpc_id, "db", "10.81.2.1", None, false)
        .await;
    let tiers = [
        web["id"].as_str().unwrap().to_string(),
        db["id"].as_str().unwrap().to_string(),
    ];
    for (i, tier) in tiers.iter().enumerate() {
        let vm = e.vm(&admin, tier, &format!("before{i}")).await;
        e.lease(&vm).await;
    }
    let routers = admin
        .ok("listRouters", &[("vpcid", &vpc_id), ("listall", "true")])
        .await;
    let old = routers["router"][0].clone();
    let old_name = old["name"].as_str().unwrap().to_string();
    job_ok(
        &admin,
        "destroyRouter",
        &[("id", old["id"].as_str().unwrap())],
    )
    .await;
    assert!(
        !e.driver.router_dir(&old_name).join("agent.sock").exists(),
        "the destroyed router's agent is gone"
    );

    job_ok(
        &admin,
        "restartVPC",
        &[("id", &vpc_id), ("cleanup", "false")],
    )
    .await;
    let routers = admin
        .ok("listRouters", &[("vpcid", &vpc_id), ("listall", "true")])
        .await;
    assert_eq!(routers["count"], 1, "{routers}");
    assert_eq!(routers["router"][0]["state"], "Running");
    assert_ne!(routers["router"][0]["id"], old["id"]);
    // Real DHCP from the new router on both tiers.
    for (i, tier) in tiers.iter().enumerate() {
        let vm = e.vm(&admin, tier, &format!("after{i}")).await;
        let lease = e.lease(&vm).await;
        let prefix = if i == 0 { "10.81.1." } else { "10.81.2." };
        assert!(lease.to_string().starts_with(prefix), "{lease}");
    }
    e.finish().await;
}
