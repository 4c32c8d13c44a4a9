//! Events (issue 15), on SQLite and PostgreSQL: what `listEvents` shows
//! after an async-create command (Created, Scheduled, Started, Completed,
//! linked by `parentid`), a sync command that failed (ERROR) and a login
//! (USER.LOGIN); its filters (`type`, `level`, `startdate`/`enddate`,
//! `keyword`, `resourceid`), paging and account scoping; and
//! `listEventTypes`.

mod support;

use serde_json::Value;
use support::api::{TestManager, http, id, on_both_backends, query, refused};
use support::vpc::{create_vpc, new_account, zone_env};

fn events(body: &Value) -> Vec<Value> {
    body["event"].as_array().cloned().unwrap_or_default()
}

fn states_of(list: &[Value], kind: &str) -> Vec<String> {
    list.iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e["state"].as_str().unwrap().to_string())
        .collect()
}

async fn login(m: &TestManager, username: &str, password: &str, domain: &str) -> u16 {
    let body = query(&[
        ("command".into(), "login".into()),
        ("username".into(), username.into()),
        ("password".into(), password.into()),
        ("domain".into(), domain.into()),
        ("response".into(), "json".into()),
    ]);
    http(m.addr, "POST", "/client/api", &body, &[]).await.status
}

on_both_backends!(an_accounts_actions_are_listed_as_its_events, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "z1").await;
    let d = id(
        &admin.ok("createDomain", &[("name", "evd")]).await,
        "domain",
    );
    let (_, alice_id, alice) = new_account(&admin, "alice", &d, "0").await;
    let (_, _, bob) = new_account(&admin, "bob", &d, "0").await;

    // An async-create command: Created, Scheduled, Started, Completed, all
    // INFO, all naming the VPC; the later ones name the first as parent.
    let vpc = create_vpc(&alice, &env, "v1", "10.1.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap();
    let listed = alice.ok("listEvents", &[("type", "VPC.CREATE")]).await;
    let list = events(&listed);
    let mut states = states_of(&list, "VPC.CREATE");
    states.sort();
    assert_eq!(
        states,
        ["Completed", "Created", "Scheduled", "Started"],
        "{listed}"
    );
    assert_eq!(listed["count"], 4);
    for e in &list {
        assert_eq!(e["level"], "INFO", "{e}");
        assert_eq!(e["account"], "alice");
        assert_eq!(e["username"], "alice");
        assert_eq!(e["domainid"], d.as_str());
        assert_eq!(e["resourceid"], vpc_id, "{e}");
    }
    // Newest first: the Completed row leads.
    assert_eq!(list[0]["state"], "Completed");
    assert_eq!(
        list[0]["description"], "Successfully completed creating VPC",
        "{}",
        list[0]
    );
    let scheduled = list.iter().find(|e| e["state"] == "Scheduled").unwrap();
    assert_eq!(list[0]["parentid"], scheduled["id"], "{listed}");

    // A sync command that fails leaves an ERROR event.
    let (code, _) = refused(
        &alice,
        "updateUser",
        &[("id", &alice_id), ("password", " ")],
    )
    .await;
    assert_eq!(code, 431);
    let errors = alice.ok("listEvents", &[("level", "ERROR")]).await;
    assert_eq!(errors["count"], 1, "{errors}");
    assert_eq!(errors["event"][0]["type"], "USER.UPDATE");
    assert_eq!(
        errors["event"][0]["description"],
        "Error while updating user"
    );

    // A login leaves USER.LOGIN.
    assert_eq!(login(m, "alice", "pw", "/evd").await, 200);
    let logins = alice.ok("listEvents", &[("type", "user.login")]).await;
    assert_eq!(logins["count"], 1, "{logins}");
    assert_eq!(logins["event"][0]["state"], "Completed");

    // Filters: keyword, resource, dates, paging.
    let found = alice.ok("listEvents", &[("keyword", "creating vpc")]).await;
    assert_eq!(found["count"], 4, "{found}");
    let found = alice.ok("listEvents", &[("resourceid", vpc_id)]).await;
    assert_eq!(found["count"], 4, "{found}");
    let all = alice.ok("listEvents", &[]).await;
    let total = all["count"].as_u64().unwrap();
    assert!(total >= 6, "{all}");
    let none = alice.ok("listEvents", &[("startdate", "2999-01-01")]).await;
    assert_eq!(none, serde_json::json!({}));
    let since = alice
        .ok(
            "listEvents",
            &[
                ("startdate", "2000-01-01 00:00:00"),
                ("enddate", "2999-01-01"),
            ],
        )
        .await;
    assert_eq!(since["count"].as_u64(), Some(total));
    let page = alice
        .ok("listEvents", &[("page", "2"), ("pagesize", "1")])
        .await;
    assert_eq!(page["count"].as_u64(), Some(total));
    assert_eq!(events(&page).len(), 1);
    assert_eq!(page["event"][0]["id"], all["event"][1]["id"]);
    let by_id = alice
        .ok(
            "listEvents",
            &[("id", all["event"][0]["id"].as_str().unwrap())],
        )
        .await;
    assert_eq!(by_id["count"], 1);

    // Scope: bob sees none of alice's; the admin sees them with listall or
    // by account; bob may not name alice's account.
    let bobs = bob.ok("listEvents", &[("type", "VPC.CREATE")]).await;
    assert_eq!(bobs, serde_json::json!({}), "{bobs}");
    let own = admin.ok("listEvents", &[("type", "VPC.CREATE")]).await;
    assert_eq!(
        own,
        serde_json::json!({}),
        "the admin's own events only: {own}"
    );
    let theirs = admin
        .ok("listEvents", &[("type", "VPC.CREATE"), ("listall", "true")])
        .await;
    assert_eq!(theirs["count"], 4, "{theirs}");
    let named = admin
        .ok(
            "listEvents",
            &[
                ("account", "alice"),
                ("domainid", &d),
                ("type", "VPC.CREATE"),
            ],
        )
        .await;
    assert_eq!(named["count"], 4, "{named}");
    let (code, _) = refused(
        &bob,
        "listEvents",
        &[("account", "alice"), ("domainid", &d)],
    )
    .await;
    assert_eq!(code, 531);
    let (code, text) = refused(&alice, "listEvents", &[("startdate", "yesterday")]).await;
    assert_eq!(code, 431);
    assert!(text.contains("startdate"), "{text}");
});

on_both_backends!(event_types_name_cloudstacks_types, |m| {
    let admin = m.admin();
    let types = admin.ok("listEventTypes", &[]).await;
    let names: Vec<&str> = types["eventtype"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(types["count"].as_u64(), Some(names.len() as u64));
    for expected in [
        "VPC.CREATE",
        "VPC.DELETE",
        "VPC.RESTART",
        "NETWORK.CREATE",
        "NET.IPASSIGN",
        "NET.RULEADD",
        "STATICNAT.ENABLE",
        "LB.CREATE",
        "VM.CREATE",
        "NETWORK.ACL.CREATE",
        "USER.LOGIN",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    // A user may call it too.
    let (_, _, user) = new_account(
        &admin,
        "u",
        &id(&admin.ok("createDomain", &[("name", "x")]).await, "domain"),
        "0",
    )
    .await;
    assert_eq!(
        user.ok("listEventTypes", &[]).await["count"],
        types["count"]
    );
});
