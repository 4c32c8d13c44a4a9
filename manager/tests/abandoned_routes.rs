//! What a manager undoes of a createStaticRoute whose job never finished
//! (it could not be stored, or its manager died): a route still Staged never
//! reached the router and goes, as after a refused push; a route the job
//! already pushed stays, for the background loops to converge.

mod support;

use support::api::TestManager;
use support::vpc::{create_vpc, zone_env};
use vpc_manager::store::{gateway, vpc};

/// A route of VPC `vpc_id` inserted as the request of createStaticRoute
/// stores it (Staged), in state `state`.
async fn stored_route(
    m: &TestManager,
    v: &vpc::Vpc,
    cidr: &str,
    state: gateway::RouteState,
) -> i64 {
    let r = gateway::create_route(
        &m.app.db,
        gateway::NewStaticRoute {
            vpc_id: v.id,
            vpc_gateway_id: None,
            cidr: cidr.into(),
            next_hop: Some("10.9.0.5".into()),
            account_id: v.account_id,
            domain_id: v.domain_id,
        },
    )
    .await
    .unwrap();
    gateway::set_route_state(&m.app.db, r.id, state)
        .await
        .unwrap();
    r.id
}

/// Runs createStaticRoute's undo of an abandoned job on row `id`.
async fn abandon(m: &TestManager, id: i64) {
    let entry = m
        .app
        .registry
        .get("createStaticRoute")
        .and_then(|c| c.job)
        .expect("createStaticRoute has a typed job");
    (entry.abandon)(&m.app, &serde_json::json!({ "id": id }).to_string())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_route_goes_only_when_it_never_reached_the_router() {
    let m = TestManager::start(None).await;
    let admin = m.admin();
    let env = zone_env(&admin, "abz").await;
    let created = create_vpc(&admin, &env, "ab-vpc", "10.1.0.0/16").await;
    let v = vpc::get_by_uuid(&m.app.db, created["id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .unwrap();

    let staged = stored_route(&m, &v, "192.168.10.0/24", gateway::ROUTE_STAGED).await;
    let pushed = stored_route(&m, &v, "192.168.20.0/24", gateway::ROUTE_ADD).await;
    abandon(&m, staged).await;
    abandon(&m, pushed).await;

    let staged_after = gateway::route_by_id(&m.app.db, staged).await.unwrap();
    assert!(
        staged_after.as_ref().is_none_or(|r| r.removed.is_some()),
        "a Staged route of an abandoned job is removed: {staged_after:?}"
    );
    let pushed_after = gateway::route_by_id(&m.app.db, pushed)
        .await
        .unwrap()
        .expect("a route the job pushed stays");
    assert!(pushed_after.removed.is_none());
    assert_eq!(pushed_after.state, gateway::ROUTE_ADD);
    // Undoing twice (a second recovery) finds nothing more to do.
    abandon(&m, staged).await;

    m.stop().await;
}
