//! Configuration and resource-limit commands against a live manager, on
//! SQLite and on PostgreSQL: who may call them, CloudStack's error codes,
//! value checks, JSON types, and limits per account and per domain.

mod support;

use serde_json::Value;
use support::api::{Client, on_both_backends};

/// The error code of a failed call, checking that the HTTP status agrees.
async fn code_of(client: &Client, command: &str, params: &[(&str, &str)]) -> u16 {
    let (status, body) = client.call(command, params).await;
    let inner = body
        .as_object()
        .and_then(|o| o.values().next())
        .unwrap_or_else(|| panic!("{command}: no envelope in {body}"));
    if status != 200 {
        assert_eq!(inner["errorcode"], status, "{command}: {body}");
    }
    status
}

/// A domain under `parent` (ROOT when None); returns its id.
async fn new_domain(client: &Client, name: &str, parent: Option<&str>) -> String {
    let mut params = vec![("name", name)];
    if let Some(p) = parent {
        params.push(("parentdomainid", p));
    }
    let d = client.ok("createDomain", &params).await;
    d["domain"]["id"].as_str().unwrap().to_string()
}

/// An account of `account_type` in domain `domain_id` with API keys; returns
/// the client of its user.
async fn new_account(admin: &Client, domain_id: &str, name: &str, account_type: &str) -> Client {
    let a = admin
        .ok(
            "createAccount",
            &[
                ("username", name),
                ("password", "secret"),
                ("email", "someone@example.org"),
                ("firstname", "Some"),
                ("lastname", "One"),
                ("domainid", domain_id),
                ("accounttype", account_type),
            ],
        )
        .await;
    let user_id = a["account"]["user"][0]["id"].as_str().unwrap().to_string();
    let keys = admin.ok("registerUserKeys", &[("id", &user_id)]).await;
    admin_like(admin, &keys["userkeys"])
}

fn admin_like(admin: &Client, keys: &Value) -> Client {
    Client {
        addr: admin.addr,
        key: keys["apikey"].as_str().unwrap().into(),
        secret: keys["secretkey"].as_str().unwrap().into(),
    }
}

/// The one configuration named `name`.
async fn configuration(admin: &Client, name: &str) -> Value {
    let listed = admin.ok("listConfigurations", &[("name", name)]).await;
    listed["configuration"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} not listed: {listed}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {listed}"))
        .clone()
}

/// The limit of `code` in a listResourceLimits answer.
fn limit_of(listed: &Value, code: &str) -> Value {
    listed["resourcelimit"]
        .as_array()
        .unwrap_or_else(|| panic!("no limits in {listed}"))
        .iter()
        .find(|l| l["resourcetype"] == code)
        .unwrap_or_else(|| panic!("no limit of type {code} in {listed}"))
        .clone()
}

on_both_backends!(configurations_are_listed_with_cloudstacks_types, |m| {
    let admin = m.admin();
    let c = configuration(&admin, "vpc.max.networks").await;
    assert_eq!(c["value"], "3");
    assert_eq!(c["defaultvalue"], "3");
    assert_eq!(c["scope"], "global");
    assert_eq!(c["category"], "Network");
    assert_eq!(c["type"], "Number");
    assert_eq!(c["isdynamic"], false);
    for (key, value) in c.as_object().unwrap() {
        if key == "isdynamic" {
            assert!(value.is_boolean());
        } else {
            assert!(value.is_string(), "{key} is a string: {c}");
        }
    }
    let b = configuration(&admin, "allow.non.rfc1918.compliant.ips").await;
    assert_eq!(
        (b["value"].clone(), b["type"].clone()),
        ("false".into(), "Boolean".into())
    );

    // name is a substring, category exact, keyword anywhere; count is the total.
    let vpc = admin.ok("listConfigurations", &[("name", "vpc")]).await;
    assert!(vpc["count"].as_u64().unwrap() >= 4, "{vpc}");
    let network = admin
        .ok("listConfigurations", &[("category", "Network")])
        .await;
    let items = network["configuration"].as_array().unwrap();
    assert!(items.iter().all(|c| c["category"] == "Network"));
    let paged = admin
        .ok(
            "listConfigurations",
            &[("category", "Network"), ("page", "1"), ("pagesize", "2")],
        )
        .await;
    assert_eq!(paged["count"], network["count"]);
    assert_eq!(paged["configuration"].as_array().unwrap().len(), 2);
    let keyword = admin
        .ok("listConfigurations", &[("keyword", "RFC 1918")])
        .await;
    assert_eq!(keyword["count"], 1, "{keyword}");

    // Scope ids are checked; only keys of that scope come back, with the
    // global values.
    let bogus = "0b7a3c1e-5d2f-4e8a-9c6b-1f2e3d4c5b6a";
    assert_eq!(
        code_of(&admin, "listConfigurations", &[("zoneid", bogus)]).await,
        431
    );
    let root = admin.ok("listDomains", &[("name", "ROOT")]).await["domain"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        admin.ok("listConfigurations", &[("domainid", &root)]).await,
        serde_json::json!({}),
        "no key is domain-scoped"
    );

    // Root admin only.
    let d = new_domain(&admin, "cfg", None).await;
    let user = new_account(&admin, &d, "cfguser", "0").await;
    let dadmin = new_account(&admin, &d, "cfgadmin", "2").await;
    assert_eq!(code_of(&user, "listConfigurations", &[]).await, 432);
    assert_eq!(code_of(&dadmin, "listConfigurations", &[]).await, 432);
});

on_both_backends!(
    configuration_updates_are_checked_and_reset_to_default,
    |m| {
        let admin = m.admin();
        let d = new_domain(&admin, "upd", None).await;
        let user = new_account(&admin, &d, "upduser", "0").await;
        let dadmin = new_account(&admin, &d, "updadmin", "2").await;
        let set = [("name", "vpc.max.networks"), ("value", "5")];
        let (status, body) = user.call("updateConfiguration", &set).await;
        assert_eq!(status, 432, "{body}");
        assert_eq!(body["errorresponse"]["errorcode"], 432);
        assert_eq!(code_of(&dadmin, "updateConfiguration", &set).await, 432);

        let (status, body) = admin
            .call(
                "updateConfiguration",
                &[("name", "vpc.max.networks"), ("value", "abc")],
            )
            .await;
        assert_eq!(status, 431, "{body}");
        let error = &body["updateconfigurationresponse"];
        assert_eq!(
            (error["errorcode"].clone(), error["cserrorcode"].clone()),
            (431.into(), 4350.into())
        );
        assert_eq!(
            configuration(&admin, "vpc.max.networks").await["value"],
            "3"
        );

        let updated = admin.ok("updateConfiguration", &set).await;
        assert_eq!(updated["configuration"]["value"], "5");
        assert_eq!(updated["configuration"]["name"], "vpc.max.networks");
        assert_eq!(
            configuration(&admin, "vpc.max.networks").await["value"],
            "5"
        );

        let reset = admin
            .ok(
                "updateConfiguration",
                &[("name", "vpc.max.networks"), ("value", "")],
            )
            .await;
        assert_eq!(reset["configuration"]["value"], "3");
        assert_eq!(
            configuration(&admin, "vpc.max.networks").await["value"],
            "3"
        );
        admin.ok("updateConfiguration", &set).await;
        let absent = admin
            .ok("updateConfiguration", &[("name", "vpc.max.networks")])
            .await;
        assert_eq!(absent["configuration"]["value"], "3", "no value resets too");

        let (status, body) = admin
            .call(
                "updateConfiguration",
                &[("name", "no.such.key"), ("value", "1")],
            )
            .await;
        assert_eq!(status, 431);
        assert!(
            body["updateconfigurationresponse"]["errortext"]
                .as_str()
                .unwrap()
                .contains("no.such.key"),
            "{body}"
        );
        assert_eq!(code_of(&admin, "updateConfiguration", &[]).await, 431);

        for (name, bad) in [
            ("network.guest.cidr.limit", "33"),
            ("default.page.size", "0"),
            ("max.account.vpcs", "-2"),
            ("network.gc.wait", "soon"),
            ("allow.non.rfc1918.compliant.ips", "yes"),
            ("guest.domain.suffix", "not a_domain"),
            ("denied.routes", "10.0.0.0/40"),
        ] {
            assert_eq!(
                code_of(
                    &admin,
                    "updateConfiguration",
                    &[("name", name), ("value", bad)]
                )
                .await,
                431,
                "{name}={bad}"
            );
        }
        for (name, good, stored) in [
            ("allow.non.rfc1918.compliant.ips", "TRUE", "true"),
            (
                "guest.domain.suffix",
                "corp.example.org",
                "corp.example.org",
            ),
            ("max.account.vpcs", "-1", "-1"),
        ] {
            let c = admin
                .ok("updateConfiguration", &[("name", name), ("value", good)])
                .await;
            assert_eq!(c["configuration"]["value"], stored, "{name}");
        }
        let zone_scoped = [
            ("name", "guest.domain.suffix"),
            ("value", "x.example"),
            ("zoneid", "0b7a3c1e-5d2f-4e8a-9c6b-1f2e3d4c5b6a"),
        ];
        assert_eq!(
            code_of(&admin, "updateConfiguration", &zone_scoped).await,
            431,
            "only global values are stored"
        );

        // default.page.size applies to the next list at once.
        admin
            .ok(
                "updateConfiguration",
                &[("name", "default.page.size"), ("value", "2")],
            )
            .await;
        let capped = admin.ok("listConfigurations", &[]).await;
        assert_eq!(capped["configuration"].as_array().unwrap().len(), 2);
        assert!(capped["count"].as_u64().unwrap() > 2);
    }
);

on_both_backends!(resource_limits_are_set_per_account_and_domain, |m| {
    let admin = m.admin();
    let d1 = new_domain(&admin, "lim1", None).await;
    let user = new_account(&admin, &d1, "limuser", "0").await;
    let d3 = new_domain(&admin, "lim3", None).await;
    let dadmin = new_account(&admin, &d3, "limadmin", "2").await;

    // Account scope: set by the root admin, seen by the owner and the admin.
    let set = admin
        .ok(
            "updateResourceLimit",
            &[
                ("resourcetype", "7"),
                ("max", "5"),
                ("account", "limuser"),
                ("domainid", &d1),
            ],
        )
        .await;
    let l = &set["resourcelimit"];
    assert_eq!(l["resourcetype"], "7", "a string, as in CloudStack");
    assert_eq!(l["resourcetypename"], "vpc");
    assert_eq!(l["max"], 5);
    assert_eq!(l["account"], "limuser");
    assert_eq!(l["domainid"], d1.as_str());
    assert_eq!(l["domain"], "lim1");

    let listed = admin
        .ok(
            "listResourceLimits",
            &[
                ("account", "limuser"),
                ("domainid", &d1),
                ("resourcetype", "7"),
            ],
        )
        .await;
    assert_eq!(listed["count"], 1);
    assert_eq!(limit_of(&listed, "7")["max"], 5);
    let own = user.ok("listResourceLimits", &[]).await;
    assert_eq!(own["count"], 12, "every resource type: {own}");
    assert_eq!(limit_of(&own, "7")["max"], 5);
    assert_eq!(limit_of(&own, "6")["max"], 20, "max.account.networks");
    assert_eq!(limit_of(&own, "6")["resourcetypename"], "network");
    let by_name = user
        .ok("listResourceLimits", &[("resourcetypename", "vpc")])
        .await;
    assert_eq!(by_name["count"], 1);
    let unlimited = admin.ok("listResourceLimits", &[]).await;
    assert_eq!(
        limit_of(&unlimited, "7")["max"],
        -1,
        "root admin: unlimited"
    );
    assert_eq!(limit_of(&unlimited, "7")["account"], "admin");

    // Refusals.
    assert_eq!(
        code_of(
            &user,
            "updateResourceLimit",
            &[
                ("resourcetype", "7"),
                ("max", "50"),
                ("account", "limuser"),
                ("domainid", &d1)
            ],
        )
        .await,
        432,
        "users cannot change limits"
    );
    for (rt, max) in [
        ("99", "1"),
        ("16", "1"),
        ("vpc", "1"),
        ("7", "-2"),
        ("7", "x"),
    ] {
        assert_eq!(
            code_of(
                &admin,
                "updateResourceLimit",
                &[("resourcetype", rt), ("max", max), ("domainid", &d1)],
            )
            .await,
            431,
            "resourcetype={rt} max={max}"
        );
    }
    assert_eq!(
        code_of(&admin, "listResourceLimits", &[("resourcetype", "42")]).await,
        431
    );
    assert_eq!(
        code_of(
            &admin,
            "updateResourceLimit",
            &[("resourcetype", "7"), ("max", "1")]
        )
        .await,
        431,
        "an owner is required"
    );
    let root = admin.ok("listDomains", &[("name", "ROOT")]).await["domain"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        code_of(
            &admin,
            "updateResourceLimit",
            &[("resourcetype", "7"), ("max", "1"), ("domainid", &root)],
        )
        .await,
        531,
        "nobody limits ROOT"
    );
    assert_eq!(
        code_of(
            &admin,
            "updateResourceLimit",
            &[
                ("resourcetype", "7"),
                ("max", "1"),
                ("account", "admin"),
                ("domainid", &root)
            ],
        )
        .await,
        431,
        "root admins stay unlimited"
    );

    // Domain admins: their subtree only, never their own domain.
    for params in [
        vec![
            ("resourcetype", "7"),
            ("max", "2"),
            ("domainid", d1.as_str()),
        ],
        vec![
            ("resourcetype", "7"),
            ("max", "2"),
            ("account", "limuser"),
            ("domainid", d1.as_str()),
        ],
        vec![
            ("resourcetype", "7"),
            ("max", "2"),
            ("domainid", d3.as_str()),
        ],
    ] {
        assert_eq!(
            code_of(&dadmin, "updateResourceLimit", &params).await,
            531,
            "{params:?}"
        );
    }
    assert_eq!(
        code_of(&dadmin, "listResourceLimits", &[("domainid", &d1)],).await,
        531
    );
    let sub = new_domain(&dadmin, "lim3sub", None).await;
    let subuser = new_account(&dadmin, &sub, "subuser", "0").await;
    admin
        .ok(
            "updateResourceLimit",
            &[("resourcetype", "7"), ("max", "10"), ("domainid", &d3)],
        )
        .await;
    assert_eq!(
        code_of(
            &dadmin,
            "updateResourceLimit",
            &[("resourcetype", "7"), ("max", "11"), ("domainid", &sub)],
        )
        .await,
        431,
        "a domain cannot exceed its parent"
    );
    let domain_limit = dadmin
        .ok(
            "updateResourceLimit",
            &[("resourcetype", "7"), ("max", "10"), ("domainid", &sub)],
        )
        .await;
    assert_eq!(domain_limit["resourcelimit"]["max"], 10);
    assert!(domain_limit["resourcelimit"].get("account").is_none());
    dadmin
        .ok(
            "updateResourceLimit",
            &[
                ("resourcetype", "6"),
                ("max", "1"),
                ("account", "subuser"),
                ("domainid", &sub),
            ],
        )
        .await;
    let seen = subuser
        .ok("listResourceLimits", &[("resourcetype", "6")])
        .await;
    assert_eq!(limit_of(&seen, "6")["max"], 1);
    let of_domain = dadmin
        .ok(
            "listResourceLimits",
            &[("domainid", &sub), ("resourcetype", "7")],
        )
        .await;
    assert_eq!(limit_of(&of_domain, "7")["max"], 10);
    assert_eq!(limit_of(&of_domain, "7")["domain"], "lim3sub");

    // No max means unlimited again.
    let cleared = admin
        .ok(
            "updateResourceLimit",
            &[
                ("resourcetype", "7"),
                ("account", "limuser"),
                ("domainid", &d1),
            ],
        )
        .await;
    assert_eq!(cleared["resourcelimit"]["max"], -1);
    let own = user
        .ok("listResourceLimits", &[("resourcetype", "7")])
        .await;
    assert_eq!(limit_of(&own, "7")["max"], -1);
});
