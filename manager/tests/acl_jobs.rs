//! What the ACL creates undo when their job never ran (it could not be
//! stored, or the manager running it died), on SQLite and PostgreSQL: a
//! failed create must leave what a failed run leaves. An item that never
//! left Staged is only a row and goes without a push; an item the router
//! may hold leaves through the change protocol (one SetNetworkAcl without
//! it, one new generation); a list goes while nothing uses it.

mod support;

use serde_json::json;
use support::api::{Client, TestManager};
use support::vpc::{create_vpc, deploy_vm, zone_env};
use vpc_manager::orchestration::AgentCommand;
use vpc_manager::store::{acl, vpc};

/// Runs the abandon step of `command`'s job on the stored payload `info`,
/// as a manager does for the jobs it finds orphaned.
async fn abandon(m: &TestManager, command: &str, info: serde_json::Value) -> Result<(), String> {
    let registry = vpc_manager::services::registry();
    let entry = registry
        .get(command)
        .and_then(|c| c.job.as_ref())
        .unwrap_or_else(|| panic!("{command} has a typed job"));
    (entry.abandon)(&m.app, &info.to_string())
        .await
        .map_err(|e| e.to_string())
}

/// The VPC's router generation now.
async fn generation(admin: &Client, vpc: &str) -> u64 {
    let routers = admin
        .ok("listRouters", &[("vpcid", vpc), ("listall", "true")])
        .await;
    routers["router"][0]["configgeneration"].as_u64().unwrap()
}

/// The numbers of the lists pushed by SetNetworkAcl, with their generations.
fn pushed(m: &TestManager) -> Vec<(u64, Vec<u32>)> {
    m.agent
        .commands()
        .iter()
        .filter_map(|c| match c {
            AgentCommand::SetNetworkAcl(r) => Some((
                r.generation,
                r.acl
                    .as_ref()
                    .unwrap()
                    .items
                    .iter()
                    .map(|i| i.number)
                    .collect(),
            )),
            _ => None,
        })
        .collect()
}

/// Creates an item through the API (its job runs to the end): its row id.
async fn item(m: &TestManager, admin: &Client, list: &str, number: &str) -> i64 {
    let accepted = admin
        .ok(
            "createNetworkACL",
            &[("aclid", list), ("protocol", "tcp"), ("number", number)],
        )
        .await;
    let job = admin.wait_job(accepted["jobid"].as_str().unwrap()).await;
    assert_eq!(job["jobstatus"], 1, "{job}");
    let uuid = accepted["id"].as_str().unwrap();
    acl::item_by_uuid(&m.app.db, uuid.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn list_named(admin: &Client, name: &str) -> u64 {
    admin
        .ok(
            "listNetworkACLLists",
            &[("name", name), ("listall", "true")],
        )
        .await["count"]
        .as_u64()
        .unwrap_or(0)
}

support::api::on_both_backends!(abandoned_acl_creates_leave_what_a_failed_run_leaves, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "abz").await;
    let v = create_vpc(&admin, &env, "abandon-vpc", "10.1.0.0/16").await;
    let vpc_uuid = v["id"].as_str().unwrap().to_string();
    let vpc_id = vpc::get_by_uuid(&m.app.db, vpc_uuid.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let list = admin
        .ok(
            "createNetworkACLList",
            &[("name", "used"), ("vpcid", &vpc_uuid)],
        )
        .await;
    let list_uuid = list["id"].as_str().unwrap().to_string();
    admin.wait_job(list["jobid"].as_str().unwrap()).await;
    let tier = admin
        .ok(
            "createNetwork",
            &[
                ("name", "web"),
                ("displaytext", "web"),
                ("zoneid", &env.zone),
                ("vpcid", &vpc_uuid),
                ("networkofferingid", &env.tier_offering),
                ("gateway", "10.1.1.1"),
                ("netmask", "255.255.255.0"),
                ("aclid", &list_uuid),
            ],
        )
        .await;
    let tier = tier["network"]["id"].as_str().unwrap().to_string();
    // A VM puts the tier, and so its list, on the router.
    deploy_vm(&admin, &env, &tier, "w1").await;
    let kept = item(m, &admin, &list_uuid, "1").await;
    let on_router = item(m, &admin, &list_uuid, "2").await;

    // An item the router holds leaves through the change protocol.
    let g = generation(&admin, &vpc_uuid).await;
    m.agent.clear();
    abandon(
        m,
        "createNetworkACL",
        json!({ "id": on_router, "vpc_id": vpc_id }),
    )
    .await
    .unwrap();
    assert_eq!(pushed(m), [(g + 1, vec![1])], "{:?}", m.agent.rpcs());
    assert_eq!(generation(&admin, &vpc_uuid).await, g + 1);
    let gone = acl::item_by_id(&m.app.db, on_router)
        .await
        .unwrap()
        .unwrap();
    assert!(gone.removed.is_some(), "{gone:?}");
    let listed = admin.ok("listNetworkACLs", &[("aclid", &list_uuid)]).await;
    assert_eq!(listed["count"], 1, "{listed}");

    // An item still Staged (its job never ran) is only a row: it goes and
    // nothing is sent.
    let list_id = acl::get_by_uuid(&m.app.db, list_uuid.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let staged = acl::create_item(
        &m.app.db,
        acl::NewAclItem {
            acl_id: list_id,
            number: Some(3),
            action: "Allow".into(),
            traffic_type: "Ingress".into(),
            protocol: "udp".into(),
            cidrs: vec!["0.0.0.0/0".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(staged.state, acl::ITEM_STAGED);
    m.agent.clear();
    abandon(
        m,
        "createNetworkACL",
        json!({ "id": staged.id, "vpc_id": vpc_id }),
    )
    .await
    .unwrap();
    assert!(m.agent.commands().is_empty(), "{:?}", m.agent.rpcs());
    assert_eq!(generation(&admin, &vpc_uuid).await, g + 1);
    let gone = acl::item_by_id(&m.app.db, staged.id)
        .await
        .unwrap()
        .unwrap();
    assert!(gone.removed.is_some(), "{gone:?}");
    let left = acl::item_by_id(&m.app.db, kept).await.unwrap().unwrap();
    assert_eq!(
        (left.removed, left.state.as_str()),
        (None, acl::ITEM_ACTIVE.as_str())
    );
    // Abandoning it again finds nothing to undo.
    abandon(
        m,
        "createNetworkACL",
        json!({ "id": staged.id, "vpc_id": vpc_id }),
    )
    .await
    .unwrap();

    // A list nothing uses goes; one a tier took meanwhile stays.
    let spare = admin
        .ok(
            "createNetworkACLList",
            &[("name", "spare"), ("vpcid", &vpc_uuid)],
        )
        .await;
    admin.wait_job(spare["jobid"].as_str().unwrap()).await;
    let spare_id = acl::get_by_uuid(&m.app.db, spare["id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(list_named(&admin, "spare").await, 1);
    abandon(m, "createNetworkACLList", json!({ "id": spare_id }))
        .await
        .unwrap();
    assert_eq!(list_named(&admin, "spare").await, 0);
    let refused = abandon(m, "createNetworkACLList", json!({ "id": list_id }))
        .await
        .unwrap_err();
    assert!(refused.contains("tier"), "{refused}");
    assert_eq!(list_named(&admin, "used").await, 1);
});
