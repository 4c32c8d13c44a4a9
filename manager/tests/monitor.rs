//! The manager's background monitors, one round at a time, on SQLite and
//! PostgreSQL with the recording backend: the router check (GetState only
//! for a current router; the whole configuration for an agent that lost its
//! state; Error after repeated failures and back), network GC (an idle tier
//! leaves the router after `network.gc.wait` and gives its vnet back) and
//! the names handed to the namespace sweeper.

mod support;

use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::api::{Client, TestManager, job_ok, on_both_backends};
use support::vpc::{Env, create_tier, create_vpc, zone_env};
use vpc_manager::orchestration::recording::DriverCall;
use vpc_manager::orchestration::{AgentCommand, AgentError};
use vpc_manager::provision::monitor::{
    self, ERROR_AFTER, IdleTiers, ResyncReport, RouterHealth, Sweep,
};
use vpc_manager::store::{Page, network, router, vnet, vpc};

const SMALL: &str = "4c3e1a52-0001-4b8e-8d1f-5e0a00000001";
const TEMPLATE: &str = "4c3e1a52-0101-4b8e-8d1f-5e0a00000101";

/// A list of one name, as reports hold them.
fn one(name: &str) -> Vec<String> {
    vec![name.to_string()]
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_string()
}

/// The live router of the VPC with this UUID.
async fn router_of(m: &TestManager, vpc_uuid: &str) -> router::Router {
    let v = vpc::get_by_uuid(&m.app.db, vpc_uuid.parse().unwrap())
        .await
        .unwrap()
        .expect("the VPC");
    let filter = router::RouterFilter {
        vpc_id: Some(v.id),
        ..Default::default()
    };
    router::list(&m.app.db, &filter, Page::ALL)
        .await
        .unwrap()
        .items
        .pop()
        .expect("the VPC's router")
}

async fn reload(m: &TestManager, r: &router::Router) -> router::Router {
    router::get_by_id(&m.app.db, r.id).await.unwrap().unwrap()
}

async fn resync(m: &TestManager, health: &mut RouterHealth) -> ResyncReport {
    monitor::resync_once(&m.app.plane(), health)
        .await
        .expect("a round")
}

async fn deploy(client: &Client, env: &Env, tier: &str, name: &str) -> Value {
    job_ok(
        client,
        "deployVirtualMachine",
        &[
            ("zoneid", env.zone.as_str()),
            ("serviceofferingid", SMALL),
            ("templateid", TEMPLATE),
            ("networkids", tier),
            ("name", name),
        ],
    )
    .await["virtualmachine"]
        .clone()
}

on_both_backends!(
    routers_are_checked_resynced_when_their_agent_lost_its_state_and_marked_error_while_unreachable,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "watch").await;
        let v = create_vpc(&admin, &env, "watched", "10.7.0.0/16").await;
        let vpc_id = id(&v);
        let r = router_of(m, &vpc_id).await;
        assert_eq!(r.state, "Running");
        let db_generation = u64::try_from(r.config_generation).unwrap();
        let mut health = RouterHealth::new();

        // A current router: GetState only.
        m.agent.clear();
        let report = resync(m, &mut health).await;
        assert_eq!(report.current, one(&r.name), "{report:?}");
        assert!(report.resynced.is_empty() && report.failed.is_empty());
        assert_eq!(m.agent.rpcs(), ["GetState"]);

        // The agent restarted with an empty state (generation 0): exactly one
        // ApplyConfig with the database's generation, and the whole config.
        m.agent.reset_router(&r.name);
        m.agent.clear();
        let report = resync(m, &mut health).await;
        assert_eq!(report.resynced, one(&r.name), "{report:?}");
        let commands = m.agent.commands();
        assert_eq!(m.agent.rpcs(), ["GetState", "ApplyConfig"]);
        let AgentCommand::ApplyConfig(apply) = &commands[1] else {
            unreachable!()
        };
        assert_eq!(apply.generation, db_generation);
        let config = apply.config.as_ref().expect("a whole config");
        assert_eq!(config.router_name, r.name);
        assert_eq!(config.vpc_id, vpc_id);
        assert_eq!(config.vpc_cidr, "10.7.0.0/16");
        assert!(
            !config.public_ips.is_empty() && !config.nics.is_empty(),
            "{config:?}"
        );
        assert_eq!(m.agent.applied_by(&r.name), db_generation);
        let after = reload(m, &r).await;
        assert_eq!(
            after.config_generation, r.config_generation,
            "no new generation"
        );
        assert_eq!(after.applied_generation, r.config_generation);

        // Converged: the next round only asks.
        m.agent.clear();
        let report = resync(m, &mut health).await;
        assert_eq!(report.current, one(&r.name));
        assert_eq!(m.agent.rpcs(), ["GetState"]);

        // A current router is checked without its VPC's lock: a long job
        // holding the lock does not hold the check up.
        {
            let plane = m.app.plane();
            let _held = plane
                .network
                .lock(&m.app.db, r.vpc_id.expect("a VPC router"))
                .await
                .unwrap();
            m.agent.clear();
            let report =
                tokio::time::timeout(std::time::Duration::from_secs(10), resync(m, &mut health))
                    .await
                    .expect("the check of a current router waits for no lock");
            assert_eq!(report.current, one(&r.name));
            assert_eq!(m.agent.rpcs(), ["GetState"]);
        }

        // Unreachable: a restarting agent is not an error at once, but
        // after ERROR_AFTER failures in a row the router is marked Error.
        m.agent.fail(
            "GetState",
            AgentError::Unreachable("connection refused".into()),
        );
        for round in 1..ERROR_AFTER {
            let report = resync(m, &mut health).await;
            assert_eq!(report.failed.len(), 1, "round {round}: {report:?}");
            assert!(
                report.failed[0].1.contains("connection refused"),
                "{report:?}"
            );
            assert!(report.marked_error.is_empty(), "round {round}");
            assert_eq!(reload(m, &r).await.state, "Running", "round {round}");
        }
        let report = resync(m, &mut health).await;
        assert_eq!(report.marked_error, one(&r.name), "{report:?}");
        assert_eq!(reload(m, &r).await.state, "Error");
        let listed = admin.ok("listRouters", &[("vpcid", &vpc_id)]).await;
        assert_eq!(listed["router"][0]["state"], "Error", "{listed}");

        // Still down: it stays Error and is still checked.
        m.agent.clear();
        let report = resync(m, &mut health).await;
        assert_eq!(report.failed.len(), 1, "{report:?}");
        assert_eq!(m.agent.rpcs(), ["GetState"]);

        // It answers again: its whole configuration under a new generation
        // (changes made meanwhile were only stored), then Running.
        m.agent.unfail("GetState");
        m.agent.clear();
        let report = resync(m, &mut health).await;
        assert_eq!(report.recovered, one(&r.name), "{report:?}");
        assert_eq!(report.resynced, one(&r.name));
        assert_eq!(m.agent.rpcs(), ["GetState", "ApplyConfig"]);
        assert_eq!(m.agent.commands()[1].generation(), Some(db_generation + 1));
        let after = reload(m, &r).await;
        assert_eq!(after.state, "Running");
        assert_eq!(after.config_generation, r.config_generation + 1);
        assert_eq!(after.applied_generation, after.config_generation);
        let listed = admin.ok("listRouters", &[("vpcid", &vpc_id)]).await;
        assert_eq!(listed["router"][0]["state"], "Running", "{listed}");

        // A failing ApplyConfig on a router behind counts as a failed check.
        m.agent.reset_router(&r.name);
        m.agent.fail(
            "ApplyConfig",
            AgentError::Failed("nft: syntax error".into()),
        );
        let report = resync(m, &mut health).await;
        assert!(
            report.failed.len() == 1 && report.failed[0].1.contains("nft: syntax error"),
            "{report:?}"
        );
        m.agent.unfail("ApplyConfig");
        let report = resync(m, &mut health).await;
        assert_eq!(report.resynced, one(&r.name), "{report:?}");

        // A stopped router is left alone.
        job_ok(&admin, "stopRouter", &[("id", &r.uuid.to_string())]).await;
        m.agent.clear();
        let report = resync(m, &mut health).await;
        assert_eq!(report, ResyncReport::default());
        assert!(m.agent.commands().is_empty());
    }
);

on_both_backends!(
    an_idle_tier_is_shut_down_after_the_gc_wait_and_gives_its_vnet_back,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "gc").await;
        let v = create_vpc(&admin, &env, "collected", "10.8.0.0/16").await;
        let vpc_id = id(&v);
        let idle = create_tier(&admin, &env, &vpc_id, "idle", "10.8.1.1", "255.255.255.0").await;
        let busy = create_tier(&admin, &env, &vpc_id, "busy", "10.8.2.1", "255.255.255.0").await;
        let (idle_id, busy_id) = (id(&idle), id(&busy));
        let stopped = deploy(&admin, &env, &idle_id, "stopped-vm").await;
        deploy(&admin, &env, &busy_id, "running-vm").await;
        job_ok(&admin, "stopVirtualMachine", &[("id", &id(&stopped))]).await;

        let db = &m.app.db;
        let tier_row = network::get_by_uuid(db, idle_id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tier_row.state, "Implemented");
        let physnet = tier_row.physical_network_id.expect("a physical network");
        assert!(
            vnet::vnet_of_network(db, physnet, tier_row.id)
                .await
                .unwrap()
                .is_some()
        );
        let free_before = vnet::count_free(db, physnet).await.unwrap();
        let nic_index = router::list_nics(
            db,
            &router::NicFilter {
                network_id: Some(tier_row.id),
                role: Some(router::ROLE_GUEST.into()),
                ..Default::default()
            },
            Page::ALL,
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|n| n.router_id.is_some())
        .expect("the router's NIC on the tier");
        let r = router_of(m, &vpc_id).await;

        // First seen idle: remembered, nothing happens within the wait.
        admin
            .ok(
                "updateConfiguration",
                &[("name", "network.gc.wait"), ("value", "1")],
            )
            .await;
        let mut idle_tiers = IdleTiers::new();
        m.agent.clear();
        m.driver.clear();
        let report = monitor::network_gc_once(&m.app, &mut idle_tiers)
            .await
            .unwrap();
        assert_eq!(report.waiting, one(&idle_id), "{report:?}");
        assert!(report.shut_down.is_empty());
        assert!(idle_tiers.is_idle(tier_row.id));
        assert!(m.agent.commands().is_empty());

        // Still idle after the wait: off the router, vnet given back.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let report = monitor::network_gc_once(&m.app, &mut idle_tiers)
            .await
            .unwrap();
        assert_eq!(report.shut_down, one(&idle_id), "{report:?}");
        assert!(report.failed.is_empty() && report.waiting.is_empty());
        let generation = u64::try_from(r.config_generation).unwrap() + 1;
        let sent: Vec<(&str, Option<u64>)> = m
            .agent
            .commands()
            .iter()
            .map(|c| (c.rpc(), c.generation()))
            .collect();
        assert_eq!(
            sent,
            [
                ("DestroyGuestNetwork", Some(generation)),
                ("UnplugNic", Some(generation))
            ]
        );
        let device_index = u32::try_from(nic_index.device_index).unwrap();
        match &m.agent.commands()[..] {
            [
                AgentCommand::DestroyGuestNetwork(destroy),
                AgentCommand::UnplugNic(unplug),
            ] => {
                assert_eq!(destroy.device_index, device_index);
                assert_eq!(unplug.device_index, device_index);
                assert_eq!(unplug.mac_address, nic_index.mac_address);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            m.driver.calls(),
            [DriverCall::UnplugNic(
                r.name.clone(),
                device_index,
                nic_index.mac_address.clone()
            )]
        );
        let tier_row = network::get_by_uuid(db, idle_id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tier_row.state, "Allocated");
        assert_eq!(tier_row.vnet, None);
        assert_eq!(
            vnet::vnet_of_network(db, physnet, tier_row.id)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            vnet::count_free(db, physnet).await.unwrap(),
            free_before + 1
        );
        assert_eq!(
            reload(m, &r).await.applied_generation,
            r.config_generation + 1
        );
        let busy_row = network::get_by_uuid(db, busy_id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            busy_row.state, "Implemented",
            "a tier with a running VM stays"
        );
        let listed = admin.ok("listNetworks", &[("id", &idle_id)]).await;
        assert_eq!(listed["network"][0]["state"], "Allocated", "{listed}");

        // Its VM starts again: the tier is implemented anew, and a tier in
        // use is no longer idle.
        job_ok(&admin, "startVirtualMachine", &[("id", &id(&stopped))]).await;
        let tier_row = network::get_by_uuid(db, idle_id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tier_row.state, "Implemented");
        admin
            .ok(
                "updateConfiguration",
                &[("name", "network.gc.wait"), ("value", "0")],
            )
            .await;
        m.agent.clear();
        let report = monitor::network_gc_once(&m.app, &mut idle_tiers)
            .await
            .unwrap();
        assert_eq!(report, Default::default());
        assert!(m.agent.commands().is_empty());

        // With no wait, a stopped VM's tier goes in the same round.
        job_ok(&admin, "stopVirtualMachine", &[("id", &id(&stopped))]).await;
        let report = monitor::network_gc_once(&m.app, &mut idle_tiers)
            .await
            .unwrap();
        assert_eq!(report.shut_down, one(&idle_id), "{report:?}");
    }
);

on_both_backends!(the_sweeper_gets_the_names_of_live_routers_and_vms, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "sweep").await;
    let v = create_vpc(&admin, &env, "swept", "10.9.0.0/16").await;
    let tier = create_tier(&admin, &env, &id(&v), "t", "10.9.1.1", "255.255.255.0").await;
    let kept = deploy(&admin, &env, &id(&tier), "kept").await;
    let gone = deploy(&admin, &env, &id(&tier), "gone").await;
    job_ok(
        &admin,
        "destroyVirtualMachine",
        &[("id", &id(&gone)), ("expunge", "true")],
    )
    .await;
    let r = router_of(m, &id(&v)).await;

    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sweep: Sweep = {
        let seen = seen.clone();
        Arc::new(move |names: Vec<String>| {
            *seen.lock().unwrap() = names;
            Box::pin(async { vec!["vpc-r-999-VM".to_string()] })
        })
    };
    let removed = monitor::sweep_once(&m.app.plane(), &sweep).await.unwrap();
    assert_eq!(removed, ["vpc-r-999-VM"]);
    let names = seen.lock().unwrap().clone();
    assert!(names.contains(&r.name), "{names:?}");
    assert!(
        names.contains(&kept["instancename"].as_str().unwrap().to_string()),
        "{names:?} {kept}"
    );
    assert!(
        !names
            .iter()
            .any(|n| Some(n.as_str()) == gone["instancename"].as_str()),
        "an expunged VM's namespace may go: {names:?}"
    );
    assert_eq!(names.len(), 2, "{names:?}");
});
