//! The managers of one PostgreSQL database: each joins at start,
//! `listManagementServers` on any of them shows all of them, a manager that
//! stops is Down with its stop time, and one that is killed (no goodbye)
//! turns Down once its heartbeat is older than `cluster.heartbeat.threshold`.

mod support;

use std::time::Duration;

use serde_json::Value;

use support::api::{Client, TestManager, http, query, refused};
use support::postgres::fresh_database;

/// A deadlock guard for waits that must end, not a speed assertion.
const MUST_END: Duration = Duration::from_secs(60);

async fn members(admin: &Client) -> Vec<Value> {
    let v = admin.ok("listManagementServers", &[]).await;
    v["managementserver"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn by_name<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no manager {name} in {list:?}"))
}

/// Waits until `name`'s state is `state` in A's listing.
async fn until_state(admin: &Client, name: &str, state: &str) -> Value {
    tokio::time::timeout(MUST_END, async {
        loop {
            let list = members(admin).await;
            let m = by_name(&list, name).clone();
            if m["state"] == state {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name} never turned {state}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_of_one_database_see_each_other_come_and_go() {
    let url = fresh_database().await;
    let a = TestManager::start(Some(url.clone())).await;
    let b = TestManager::start(Some(url.clone())).await;
    let c = TestManager::start(Some(url.clone())).await;
    let admin_a = a.admin();
    let admin_b = b.admin();
    // Fast beats, so a silent manager turns Down within a few seconds.
    for (name, value) in [
        ("cluster.heartbeat.interval", "200"),
        ("cluster.heartbeat.threshold", "2000"),
    ] {
        admin_a
            .ok("updateConfiguration", &[("name", name), ("value", value)])
            .await;
    }

    let list = members(&admin_b).await;
    assert_eq!(list.len(), 3, "{list:?}");
    let names: Vec<String> = list
        .iter()
        .map(|m| m["name"].as_str().unwrap_or_default().to_string())
        .collect();
    for m in &list {
        assert_eq!(m["state"], "Up", "{m}");
        assert_eq!(m["ipaddress"], "127.0.0.1", "{m}");
        assert!(m["lastserverstart"].is_string(), "{m}");
        assert!(m["lastserverstop"].is_null(), "{m}");
        assert!(!m["version"].as_str().unwrap_or_default().is_empty());
    }
    // Every manager shows the same rows.
    assert_eq!(members(&admin_a).await.len(), 3);
    let (name_b, name_c) = (&names[1], &names[2]);
    let by_id = admin_a
        .ok(
            "listManagementServers",
            &[(
                "id",
                by_name(&list, name_b)["id"].as_str().unwrap_or_default(),
            )],
        )
        .await;
    assert_eq!(by_id["count"], 1, "{by_id}");
    assert_eq!(by_id["managementserver"][0]["name"], name_b.as_str());

    // A session opened on one manager works on another, and a job started
    // through one is answered by the other.
    let root_domain = admin_a.ok("listDomains", &[("name", "ROOT")]).await["domain"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    support::vpc::new_account(&admin_a, "roamer", &root_domain, "0").await;
    let login = http(
        a.addr,
        "POST",
        "/client/api",
        "command=login&username=roamer&password=pw&domain=/&response=json",
        &[],
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let key = login.json()["loginresponse"]["sessionkey"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let target = format!(
        "/client/api?{}",
        query(&[
            ("command".into(), "listAccounts".into()),
            ("response".into(), "json".into()),
            ("sessionkey".into(), key.clone()),
        ])
    );
    let on_b = http(
        b.addr,
        "GET",
        &target,
        "",
        &[("Cookie", &format!("sessionkey={key}"))],
    )
    .await;
    assert_eq!(on_b.status, 200, "{}", on_b.body);
    assert_eq!(
        on_b.json()["listaccountsresponse"]["account"][0]["name"],
        "roamer"
    );
    let started = admin_a
        .ok(
            "createDomain",
            &[("name", "roaming"), ("parentdomainid", &root_domain)],
        )
        .await;
    let domain = started["domain"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let job = admin_a.ok("deleteDomain", &[("id", &domain)]).await;
    let job_id = job["jobid"].as_str().unwrap_or_default().to_string();
    let done = admin_b.wait_job(&job_id).await;
    assert_eq!(done["jobstatus"], 1, "{done}");

    // B stops cleanly: Down at once, with its stop time.
    b.stop().await;
    let gone = by_name(&members(&admin_a).await, name_b).clone();
    assert_eq!(gone["state"], "Down", "{gone}");
    assert!(gone["lastserverstop"].is_string(), "{gone}");

    // C is killed: no goodbye; its heartbeat ages past the threshold.
    c.kill().await;
    let dead = until_state(&admin_a, name_c, "Down").await;
    assert!(dead["lastserverstop"].is_null(), "{dead}");
    // The one left keeps beating.
    let list = members(&admin_a).await;
    let me = &names[0];
    assert_eq!(by_name(&list, me)["state"], "Up");

    // A manager starting again under a stopped one's name takes its row.
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_root_admins_list_the_managers() {
    let m = TestManager::start(None).await;
    let admin = m.admin();
    let list = members(&admin).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["state"], "Up");
    let root_domain = admin.ok("listDomains", &[]).await["domain"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for accounttype in ["0", "2"] {
        let name = format!("cluster-{accounttype}");
        let (_, _, caller) =
            support::vpc::new_account(&admin, &name, &root_domain, accounttype).await;
        let (status, text) = refused(&caller, "listManagementServers", &[]).await;
        assert_eq!(status, 432, "accounttype {accounttype}: {text}");
    }
    m.stop().await;
}
