//! Resource tags through the HTTP API on SQLite and PostgreSQL (issue 15):
//! `createTags`, `deleteTags`, `listTags` allowed and refused with
//! CloudStack's texts, `tags` in the objects of the tagged resources' lists
//! and their `tags[0].key`/`tags[0].value` filter.

mod support;

use serde_json::Value;
use support::api::{BOGUS, Client, job_ok, on_both_backends, refused, run_job};
use support::vpc::{create_tier, create_vpc, deploy_vm, user, zone_env};

fn items(body: &Value, key: &str) -> Vec<Value> {
    body[key].as_array().cloned().unwrap_or_default()
}

/// createTags of `pairs` on `ids` of `kind`, which must succeed.
async fn tag(client: &Client, kind: &str, ids: &str, pairs: &[(&str, &str)]) {
    let mut params = vec![
        ("resourcetype".to_string(), kind.to_string()),
        ("resourceids".to_string(), ids.to_string()),
    ];
    for (i, (k, v)) in pairs.iter().enumerate() {
        params.push((format!("tags[{i}].key"), k.to_string()));
        params.push((format!("tags[{i}].value"), v.to_string()));
    }
    let params: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let done = job_ok(client, "createTags", &params).await;
    assert_eq!(done["success"], true, "{done}");
}

/// The (key, value) pairs of an object's `tags`, sorted.
fn tags_of(object: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = object["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("no tags in {object}"))
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap().to_string(),
                t["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pair(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

on_both_backends!(tags_are_created_listed_filtered_and_deleted, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "z1").await;
    let alice = user(&admin, "alice").await;
    let bob = user(&admin, "bob").await;
    let v1 = create_vpc(&alice, &env, "v1", "10.1.0.0/16").await;
    let v2 = create_vpc(&alice, &env, "v2", "10.2.0.0/16").await;
    let v1_id = v1["id"].as_str().unwrap().to_string();
    let v2_id = v2["id"].as_str().unwrap().to_string();

    // Two tags on two VPCs at once; a third on one.
    tag(
        &alice,
        "Vpc",
        &format!("{v1_id},{v2_id}"),
        &[("env", "prod"), ("team", "web")],
    )
    .await;
    tag(&alice, "vpc", &v2_id, &[("tier", "gold")]).await;
    let listed = items(&alice.ok("listVPCs", &[("id", &v1_id)]).await, "vpc");
    assert_eq!(
        tags_of(&listed[0]),
        vec![pair("env", "prod"), pair("team", "web")]
    );
    let t = &listed[0]["tags"][0];
    assert_eq!(t["resourcetype"], "Vpc");
    assert_eq!(t["resourceid"], v1_id.as_str());
    assert_eq!(t["account"], "alice");

    // The filter: key and value; a key alone; several pairs match any.
    let by = |k: &'static str, v: Option<&'static str>| {
        let mut p = vec![("tags[0].key", k)];
        if let Some(v) = v {
            p.push(("tags[0].value", v));
        }
        p
    };
    let found = items(&alice.ok("listVPCs", &by("env", Some("prod"))).await, "vpc");
    assert_eq!(found.len(), 2);
    let found = items(
        &alice.ok("listVPCs", &by("tier", Some("gold"))).await,
        "vpc",
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], v2_id.as_str());
    let found = items(&alice.ok("listVPCs", &by("tier", None)).await, "vpc");
    assert_eq!(found.len(), 1);
    let none = alice.ok("listVPCs", &by("env", Some("dev"))).await;
    assert!(none.get("vpc").is_none(), "{none}");
    let with_id = alice
        .ok(
            "listVPCs",
            &[
                ("id", v1_id.as_str()),
                ("tags[0].key", "tier"),
                ("tags[0].value", "gold"),
            ],
        )
        .await;
    assert!(with_id.get("vpc").is_none(), "{with_id}");

    // listTags: the caller's tags, with filters; none for bob.
    let all = alice.ok("listTags", &[]).await;
    assert_eq!(all["count"], 5);
    let of_v2 = alice
        .ok(
            "listTags",
            &[("resourceid", &v2_id), ("resourcetype", "Vpc")],
        )
        .await;
    assert_eq!(of_v2["count"], 3);
    let envs = alice.ok("listTags", &[("key", "env")]).await;
    assert_eq!(envs["count"], 2);
    let bobs = bob.ok("listTags", &[]).await;
    assert!(bobs.get("tag").is_none(), "{bobs}");
    let admins = admin.ok("listTags", &[("listall", "true")]).await;
    assert_eq!(admins["count"], 5);

    // Refused: an unknown type or resource, an empty value, someone else's
    // resource, a key the resource has.
    let create = |kind: &'static str, id: String, value: &'static str| {
        vec![
            ("resourcetype", kind.to_string()),
            ("resourceids", id),
            ("tags[0].key", "k".to_string()),
            ("tags[0].value", value.to_string()),
        ]
    };
    let as_ref = |p: &Vec<(&'static str, String)>| -> Vec<(&'static str, String)> { p.clone() };
    for (params, code, text) in [
        (
            create("Spaceship", v1_id.clone(), "x"),
            431,
            "Invalid resource type Spaceship",
        ),
        (
            create("Vpc", BOGUS.to_string(), "x"),
            431,
            "Unable to find resource by id",
        ),
        (
            create("UserVm", v1_id.clone(), "x"),
            431,
            "Unable to find resource by id",
        ),
        (
            create("Vpc", v1_id.clone(), ""),
            431,
            "Value for the key k is either null or empty",
        ),
    ] {
        let params = as_ref(&params);
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (got, err) = refused(&alice, "createTags", &params).await;
        assert_eq!(got, code, "{params:?}: {err}");
        assert!(err.contains(text), "{params:?}: {err}");
    }
    let (got, err) = refused(
        &bob,
        "createTags",
        &[
            ("resourcetype", "Vpc"),
            ("resourceids", &v1_id),
            ("tags[0].key", "k"),
            ("tags[0].value", "v"),
        ],
    )
    .await;
    assert_eq!(got, 531, "{err}");
    assert!(
        err.contains("doesn't have permissions to create tags"),
        "{err}"
    );
    let (got, err) = refused(
        &alice,
        "createTags",
        &[("resourcetype", "Vpc"), ("resourceids", &v1_id)],
    )
    .await;
    assert_eq!(got, 431);
    assert!(err.contains("tags"), "{err}");
    let again = run_job(
        &alice,
        "createTags",
        &[
            ("resourcetype", "Vpc"),
            ("resourceids", &v1_id),
            ("tags[0].key", "env"),
            ("tags[0].value", "other"),
        ],
    )
    .await;
    assert_eq!(again["jobstatus"], 2, "{again}");
    assert_eq!(again["jobresultcode"], 530);
    assert!(
        again["jobresult"]["errortext"]
            .as_str()
            .unwrap()
            .contains("tag env already on Vpc"),
        "{again}"
    );
    // All or nothing: the failed job added nothing.
    assert_eq!(alice.ok("listTags", &[]).await["count"], 5);

    // deleteTags: by key and value (any case), by key, all of a resource.
    let (got, _) = refused(
        &bob,
        "deleteTags",
        &[("resourcetype", "Vpc"), ("resourceids", &v1_id)],
    )
    .await;
    assert_eq!(got, 531);
    job_ok(
        &alice,
        "deleteTags",
        &[
            ("resourcetype", "Vpc"),
            ("resourceids", &v1_id),
            ("tags[0].key", "ENV"),
            ("tags[0].value", "Prod"),
        ],
    )
    .await;
    let listed = items(&alice.ok("listVPCs", &[("id", &v1_id)]).await, "vpc");
    assert_eq!(tags_of(&listed[0]), vec![pair("team", "web")]);
    job_ok(
        &alice,
        "deleteTags",
        &[
            ("resourcetype", "Vpc"),
            ("resourceids", &v2_id),
            ("tags[0].key", "tier"),
        ],
    )
    .await;
    let listed = items(&alice.ok("listVPCs", &[("id", &v2_id)]).await, "vpc");
    assert_eq!(
        tags_of(&listed[0]),
        vec![pair("env", "prod"), pair("team", "web")]
    );
    job_ok(
        &alice,
        "deleteTags",
        &[
            ("resourcetype", "Vpc"),
            ("resourceids", &format!("{v1_id},{v2_id}")),
        ],
    )
    .await;
    assert!(alice.ok("listTags", &[]).await.get("tag").is_none());
    // Nothing left to delete: the job fails as CloudStack's does.
    let nothing = run_job(
        &alice,
        "deleteTags",
        &[("resourcetype", "Vpc"), ("resourceids", &v1_id)],
    )
    .await;
    assert_eq!(nothing["jobstatus"], 2, "{nothing}");
    assert!(
        nothing["jobresult"]["errortext"]
            .as_str()
            .unwrap()
            .contains("Failed to delete tags")
    );
});

on_both_backends!(tiers_vms_addresses_and_acl_lists_carry_tags, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "z1").await;
    let alice = user(&admin, "alice").await;
    let v = create_vpc(&alice, &env, "v1", "10.1.0.0/16").await;
    let vpc_id = v["id"].as_str().unwrap().to_string();
    let web = create_tier(&alice, &env, &vpc_id, "web", "10.1.1.1", "255.255.255.0").await;
    let db = create_tier(&alice, &env, &vpc_id, "db", "10.1.2.1", "255.255.255.0").await;
    let web_id = web["id"].as_str().unwrap().to_string();
    let db_id = db["id"].as_str().unwrap().to_string();
    let vm = deploy_vm(&alice, &env, &web_id, "vm1").await;
    let vm_id = vm["id"].as_str().unwrap().to_string();
    let ip = job_ok(&alice, "associateIpAddress", &[("vpcid", &vpc_id)]).await["ipaddress"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let list = job_ok(
        &alice,
        "createNetworkACLList",
        &[("name", "web-acl"), ("vpcid", &vpc_id)],
    )
    .await["networkacllist"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (kind, id, command, key) in [
        ("Network", web_id.as_str(), "listNetworks", "network"),
        (
            "UserVm",
            vm_id.as_str(),
            "listVirtualMachines",
            "virtualmachine",
        ),
        (
            "PublicIpAddress",
            ip.as_str(),
            "listPublicIpAddresses",
            "publicipaddress",
        ),
        (
            "NetworkACLList",
            list.as_str(),
            "listNetworkACLLists",
            "networkacllist",
        ),
    ] {
        tag(&alice, kind, id, &[("role", kind)]).await;
        let all = items(&alice.ok(command, &[]).await, key);
        let tagged = all
            .iter()
            .find(|o| o["id"] == id)
            .unwrap_or_else(|| panic!("{kind} {id} not in {all:?}"));
        assert_eq!(tags_of(tagged), vec![pair("role", kind)], "{kind}");
        let found = items(
            &alice
                .ok(command, &[("tags[0].key", "role"), ("tags[0].value", kind)])
                .await,
            key,
        );
        assert_eq!(found.len(), 1, "{kind}: {found:?}");
        assert_eq!(found[0]["id"], id, "{kind}");
    }
    // The other tier has none and is not found by the filter.
    let db_listed = items(
        &alice.ok("listNetworks", &[("id", &db_id)]).await,
        "network",
    );
    assert!(tags_of(&db_listed[0]).is_empty());
    // A deleted resource's tags are no longer listed.
    tag(&alice, "Network", &db_id, &[("role", "gone")]).await;
    let before = alice.ok("listTags", &[("resourcetype", "Network")]).await;
    assert_eq!(before["count"], 2);
    job_ok(&alice, "deleteNetwork", &[("id", &db_id)]).await;
    let after = alice.ok("listTags", &[("resourcetype", "Network")]).await;
    assert_eq!(after["count"], 1, "{after}");
    assert_eq!(after["tag"][0]["resourceid"], web_id.as_str());
    // A built-in ACL list is the system's: only the root admin may tag it.
    let builtin = "8f1c2f4e-0002-4d6a-9e5b-6c1d00000002";
    let (code, _) = refused(
        &alice,
        "createTags",
        &[
            ("resourcetype", "NetworkACLList"),
            ("resourceids", builtin),
            ("tags[0].key", "k"),
            ("tags[0].value", "v"),
        ],
    )
    .await;
    assert_eq!(code, 531);
    tag(&admin, "NetworkACLList", builtin, &[("k", "v")]).await;
});
