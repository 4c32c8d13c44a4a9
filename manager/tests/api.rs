//! The HTTP API against a live manager, on SQLite and on PostgreSQL: signing,
//! sessions, envelopes and error codes, async jobs, paging, roles and
//! ownership.

mod support;

use support::api::{Client, http, id, on_both_backends, query};

/// Creates a domain under ROOT and an account of `account_type` in it, with
/// API keys; returns (domain id, account id, client of its user).
async fn tenant(
    admin: &Client,
    domain: &str,
    user: &str,
    account_type: &str,
) -> (String, String, Client) {
    let d = id(
        &admin.ok("createDomain", &[("name", domain)]).await,
        "domain",
    );
    let a = admin
        .ok(
            "createAccount",
            &[
                ("username", user),
                ("password", "pw"),
                ("email", "x@example.org"),
                ("firstname", "F"),
                ("lastname", "L"),
                ("domainid", &d),
                ("accounttype", account_type),
            ],
        )
        .await;
    let user_id = a["account"]["user"][0]["id"].as_str().unwrap().to_string();
    let keys = admin.ok("registerUserKeys", &[("id", &user_id)]).await;
    let client = Client {
        addr: admin.addr,
        key: keys["userkeys"]["apikey"].as_str().unwrap().into(),
        secret: keys["userkeys"]["secretkey"].as_str().unwrap().into(),
    };
    (d, id(&a, "account"), client)
}

on_both_backends!(signed_requests_are_verified_and_anything_else_is_401, |m| {
    let admin = m.admin();
    let (status, body) = admin.call("listZones", &[]).await;
    assert_eq!(
        (status, body.clone()),
        (200, serde_json::json!({ "listzonesresponse": {} })),
        "empty list is {{}}"
    );

    let wrong = m.client(&m.key, "not-the-secret");
    let (status, body) = wrong.call("listZones", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["listzonesresponse"]["errortext"],
        "unable to verify user credentials and/or request signature"
    );
    assert_eq!(body["listzonesresponse"]["errorcode"], 401);

    let expired = admin
        .call(
            "listZones",
            &[
                ("signatureVersion", "3"),
                ("expires", "2020-01-01T00:00:00+0000"),
            ],
        )
        .await;
    assert_eq!(expired.0, 401, "a past expiry is refused");
    let future = admin
        .call(
            "listZones",
            &[
                ("signatureVersion", "3"),
                ("expires", "2099-01-01T00:00:00+0000"),
            ],
        )
        .await;
    assert_eq!(future.0, 200);

    // Parameter names are case-insensitive, the signature covers them as sent.
    let mixed = admin.call("listZones", &[("KeyWord", "x")]).await;
    assert_eq!(mixed.0, 200);

    let anonymous = http(
        m.addr,
        "GET",
        "/client/api?command=listZones&response=json",
        "",
        &[],
    )
    .await;
    assert_eq!(anonymous.status, 401);
    let xml = http(m.addr, "GET", "/client/api?command=listZones", "", &[]).await;
    assert!(
        xml.body.starts_with("<?xml") && xml.headers.to_lowercase().contains("text/xml"),
        "XML without response=json"
    );
});

on_both_backends!(
    unknown_commands_roles_and_parameters_get_cloudstacks_codes,
    |m| {
        let admin = m.admin();
        let (status, body) = admin.call("createWidget", &[]).await;
        assert_eq!(status, 432, "{body}");
        assert_eq!(body["errorresponse"]["errorcode"], 432);

        let (status, body) = admin.call("createZone", &[("name", "z")]).await;
        assert_eq!(status, 431);
        assert_eq!(
            body["createzoneresponse"]["errortext"],
            "Unable to execute API command createzone due to missing parameter networktype"
        );

        let bogus = "6b1e9e5f-1f0e-4d3c-9a55-2f2f7b1a0c11";
        let (status, body) = admin.call("deleteAccount", &[("id", bogus)]).await;
        assert_eq!(status, 431);
        let text = body["deleteaccountresponse"]["errortext"].as_str().unwrap();
        assert!(text.starts_with(&format!("Invalid parameter id value={bogus} due to incorrect long value format, or entity does not exist")), "{text}");

        let long = "x".repeat(256);
        let (status, _) = admin.call("createDomain", &[("name", &long)]).await;
        assert_eq!(status, 431, "strings over 255 characters are refused");

        let (_, _, user) = tenant(&admin, "roles", "ruth", "0").await;
        let (status, body) = user
            .call(
                "createZone",
                &[
                    ("name", "z"),
                    ("networktype", "Advanced"),
                    ("dns1", "198.51.100.1"),
                    ("internaldns1", "198.51.100.2"),
                ],
            )
            .await;
        assert_eq!(status, 432, "{body}");
        assert!(
            body["errorresponse"]["errortext"]
                .as_str()
                .unwrap()
                .contains("createZone")
        );
        let apis = user.ok("listApis", &[]).await;
        let names: Vec<&str> = apis["api"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"listZones")
                && !names.contains(&"createZone")
                && !names.contains(&"createAccount"),
            "{names:?}"
        );
        for api in apis["api"].as_array().unwrap() {
            assert!(api["isasync"].is_boolean());
            for p in api["params"].as_array().unwrap() {
                assert!(!p["description"].as_str().unwrap().is_empty(), "{api}");
                assert!(p["required"].is_boolean() && p["type"].is_string());
            }
        }
    }
);

on_both_backends!(
    async_jobs_are_polled_to_their_result_and_users_see_only_their_own,
    |m| {
        let admin = m.admin();
        let (_, account, user) = tenant(&admin, "jobs", "jo", "0").await;
        let job = admin
            .ok("disableAccount", &[("id", &account), ("lock", "true")])
            .await;
        let job_id = job["jobid"].as_str().unwrap().to_string();
        let done = admin.wait_job(&job_id).await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        assert_eq!(done["jobresultcode"], 0);
        // lock=true locks (CloudStack's lockAccount): state `locked`.
        assert_eq!(done["jobresult"]["account"]["state"], "locked");
        assert_eq!(done["jobinstancetype"], "Account");
        assert_eq!(done["jobinstanceid"], account.as_str());
        assert!(done["created"].is_string() && done["completed"].is_string());

        // A locked account's keys no longer work.
        assert_eq!(user.call("listZones", &[]).await.0, 401);
        admin.ok("enableAccount", &[("id", &account)]).await;
        assert_eq!(user.call("listZones", &[]).await.0, 200);
        let (status, _) = user
            .call("queryAsyncJobResult", &[("jobid", &job_id)])
            .await;
        assert_eq!(status, 531, "a user cannot read the admin's job");

        // A failing job reports its error through queryAsyncJobResult.
        let root = admin.ok("listDomains", &[("name", "jobs")]).await;
        let domain_id = root["domain"][0]["id"].as_str().unwrap().to_string();
        let job = admin.ok("deleteDomain", &[("id", &domain_id)]).await;
        let failed = admin.wait_job(job["jobid"].as_str().unwrap()).await;
        assert_eq!(failed["jobstatus"], 2, "{failed}");
        assert_eq!(failed["jobresultcode"], 536);
        assert!(
            failed["jobresult"]["errortext"]
                .as_str()
                .unwrap()
                .contains("cleanup=true")
        );
        let jobs = admin.ok("listAsyncJobs", &[]).await;
        assert_eq!(jobs["count"], 2);
    }
);

on_both_backends!(
    users_see_their_own_account_and_domain_admins_stay_in_their_subtree,
    |m| {
        let admin = m.admin();
        let (d1, a1, user1) = tenant(&admin, "t1", "u1", "0").await;
        let (d2, a2, _) = tenant(&admin, "t2", "u2", "0").await;
        let (_, _, dadmin) = tenant(&admin, "t3", "d3", "2").await;

        let seen = user1.ok("listAccounts", &[("listall", "true")]).await;
        assert_eq!(seen["count"], 1);
        assert_eq!(seen["account"][0]["id"], a1.as_str());
        let (status, _) = user1
            .call(
                "getUserKeys",
                &[(
                    "id",
                    admin
                        .ok("listUsers", &[("username", "u2"), ("listall", "true")])
                        .await["user"][0]["id"]
                        .as_str()
                        .unwrap(),
                )],
            )
            .await;
        assert_eq!(status, 531, "a user cannot read another user's keys");

        // A domain admin manages its subtree and nothing else.
        let sub = dadmin.ok("createDomain", &[("name", "sub")]).await;
        assert_eq!(sub["domain"]["path"], "ROOT/t3/sub");
        let (status, body) = dadmin
            .call(
                "createAccount",
                &[
                    ("username", "x"),
                    ("password", "p"),
                    ("email", "e@x"),
                    ("firstname", "f"),
                    ("lastname", "l"),
                    ("domainid", &d1),
                ],
            )
            .await;
        assert_eq!(status, 531, "{body}");
        let (status, _) = dadmin
            .call("disableAccount", &[("id", &a2), ("lock", "true")])
            .await;
        assert_eq!(status, 531);
        let (status, _) = dadmin
            .call(
                "createAccount",
                &[
                    ("username", "boss"),
                    ("password", "p"),
                    ("email", "e@x"),
                    ("firstname", "f"),
                    ("lastname", "l"),
                    ("accounttype", "1"),
                ],
            )
            .await;
        assert_eq!(status, 531, "a domain admin cannot create root admins");
        let listed = dadmin.ok("listDomains", &[]).await;
        assert_eq!(
            listed["count"], 2,
            "its domain and the new sub-domain: {listed}"
        );
        let _ = d2;
    }
);

on_both_backends!(lists_page_and_count_the_total, |m| {
    let admin = m.admin();
    for i in 0..7 {
        admin
            .ok("createDomain", &[("name", &format!("p{i}"))])
            .await;
    }
    let all = admin.ok("listDomains", &[]).await;
    assert_eq!(all["count"], 8);
    let page = admin
        .ok("listDomains", &[("page", "2"), ("pagesize", "3")])
        .await;
    assert_eq!(page["count"], 8, "count is the total");
    assert_eq!(page["domain"].as_array().unwrap().len(), 3);
    let beyond = admin
        .ok("listDomains", &[("page", "9"), ("pagesize", "3")])
        .await;
    assert_eq!(beyond, serde_json::json!({ "count": 8 }));
    assert_eq!(
        admin.call("listDomains", &[("page", "1")]).await.0,
        431,
        "page without pagesize"
    );
    assert_eq!(
        admin
            .call("listDomains", &[("page", "1"), ("pagesize", "501")])
            .await
            .0,
        431,
        "over default.page.size"
    );
    let keyword = admin.ok("listDomains", &[("keyword", "p3")]).await;
    assert_eq!(keyword["count"], 1);

    // Without paging a list stops at default.page.size rows; count stays the total.
    admin
        .ok(
            "updateConfiguration",
            &[("name", "default.page.size"), ("value", "5")],
        )
        .await;
    let capped = admin.ok("listDomains", &[]).await;
    assert_eq!(capped["count"], 8);
    assert_eq!(capped["domain"].as_array().unwrap().len(), 5);
    assert_eq!(
        admin
            .call("listDomains", &[("page", "1"), ("pagesize", "6")])
            .await
            .0,
        431
    );
    let everything = admin.ok("listDomains", &[("pagesize", "-1")]).await;
    assert_eq!(
        everything["domain"].as_array().unwrap().len(),
        8,
        "pagesize=-1 means all"
    );
});

on_both_backends!(
    login_sessions_need_cookie_and_parameter_and_end_at_logout,
    |m| {
        let admin = m.admin();
        let (_, _, _) = tenant(&admin, "web", "wendy", "0").await;
        let bad = http(
            m.addr,
            "POST",
            "/client/api",
            "command=login&username=wendy&password=nope&domain=/web&response=json",
            &[],
        )
        .await;
        assert_eq!(bad.status, 531);
        let get = http(
            m.addr,
            "GET",
            "/client/api?command=login&username=wendy&password=pw&domain=/web&response=json",
            "",
            &[],
        )
        .await;
        assert_eq!(get.status, 405, "login only by POST");

        let login = http(
            m.addr,
            "POST",
            "/client/api",
            "command=login&username=wendy&password=pw&domain=/web/&response=json",
            &[],
        )
        .await;
        assert_eq!(login.status, 200, "{}", login.body);
        let key = login.json()["loginresponse"]["sessionkey"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            login.headers.contains(&format!("sessionkey={key}")),
            "cookie set: {}",
            login.headers
        );
        let cookie = format!("sessionkey={key}");
        let target = format!(
            "/client/api?{}",
            query(&[
                ("command".into(), "listAccounts".into()),
                ("response".into(), "json".into()),
                ("sessionkey".into(), key.clone())
            ])
        );
        let listed = http(m.addr, "GET", &target, "", &[("Cookie", &cookie)]).await;
        assert_eq!(listed.status, 200, "{}", listed.body);
        assert_eq!(
            listed.json()["listaccountsresponse"]["account"][0]["name"],
            "wendy"
        );
        let no_cookie = http(m.addr, "GET", &target, "", &[]).await;
        assert_eq!(no_cookie.status, 401, "the parameter alone is not enough");

        let logout = http(
            m.addr,
            "GET",
            &format!("/client/api?command=logout&response=json&sessionkey={key}"),
            "",
            &[("Cookie", &cookie)],
        )
        .await;
        assert_eq!(logout.status, 200);
        assert_eq!(
            http(m.addr, "GET", &target, "", &[("Cookie", &cookie)])
                .await
                .status,
            401
        );
    }
);

on_both_backends!(zones_are_advanced_only_and_validated, |m| {
    let admin = m.admin();
    let (status, _) = admin
        .call(
            "createZone",
            &[
                ("name", "b"),
                ("networktype", "Basic"),
                ("dns1", "198.51.100.1"),
                ("internaldns1", "198.51.100.2"),
            ],
        )
        .await;
    assert_eq!(status, 431);
    let (status, _) = admin
        .call(
            "createZone",
            &[
                ("name", "b"),
                ("networktype", "Advanced"),
                ("dns1", "not-an-ip"),
                ("internaldns1", "198.51.100.2"),
            ],
        )
        .await;
    assert_eq!(status, 431);
    let z = admin
        .ok(
            "createZone",
            &[
                ("name", "z1"),
                ("networktype", "Advanced"),
                ("dns1", "198.51.100.1"),
                ("internaldns1", "198.51.100.2"),
            ],
        )
        .await;
    let zone_id = id(&z, "zone");
    let (status, _) = admin
        .call(
            "createZone",
            &[
                ("name", "z1"),
                ("networktype", "Advanced"),
                ("dns1", "198.51.100.1"),
                ("internaldns1", "198.51.100.2"),
            ],
        )
        .await;
    assert_eq!(status, 431, "zone names are unique");
    let listed = admin.ok("listZones", &[("id", &zone_id)]).await;
    assert_eq!(listed["zone"][0]["networktype"], "Advanced");
    admin.ok("deleteZone", &[("id", &zone_id)]).await;
    assert_eq!(admin.ok("listZones", &[]).await, serde_json::json!({}));
});

on_both_backends!(
    account_and_user_commands_have_allowed_and_refused_cases,
    |m| {
        let admin = m.admin();
        let (d, a, user) = tenant(&admin, "acct", "amy", "0").await;

        let renamed = admin
            .ok("updateAccount", &[("id", &a), ("newname", "amy-renamed")])
            .await;
        assert_eq!(renamed["account"]["name"], "amy-renamed");
        assert_eq!(
            user.call("updateAccount", &[("id", &a), ("newname", "x")])
                .await
                .0,
            432,
            "users cannot update accounts"
        );

        let created = admin
            .ok(
                "createUser",
                &[
                    ("account", "amy-renamed"),
                    ("domainid", &d),
                    ("username", "bob"),
                    ("password", "pw"),
                    ("email", "b@x"),
                    ("firstname", "B"),
                    ("lastname", "L"),
                ],
            )
            .await;
        let bob = created["user"]["id"].as_str().unwrap().to_string();
        let (status, _) = admin
            .call(
                "createUser",
                &[
                    ("account", "amy-renamed"),
                    ("domainid", &d),
                    ("username", "bob"),
                    ("password", "pw"),
                    ("email", "b@x"),
                    ("firstname", "B"),
                    ("lastname", "L"),
                ],
            )
            .await;
        assert_eq!(status, 431, "user names are unique in a domain");

        let users = user.ok("listUsers", &[("listall", "true")]).await;
        assert_eq!(
            users["count"], 2,
            "amy sees the users of her account only: {users}"
        );
        let keys = admin.ok("registerUserKeys", &[("id", &bob)]).await;
        let read = admin.ok("getUserKeys", &[("id", &bob)]).await;
        assert_eq!(read["userkeys"]["apikey"], keys["userkeys"]["apikey"]);

        assert_eq!(user.call("enableAccount", &[("id", &a)]).await.0, 432);
        let own = admin.ok("listAccounts", &[("name", "admin")]).await;
        let own_id = own["account"][0]["id"].as_str().unwrap();
        let (status, _) = admin.call("deleteAccount", &[("id", own_id)]).await;
        assert_eq!(status, 431, "an account cannot delete itself");
        let job = admin.ok("deleteAccount", &[("id", &a)]).await;
        let done = admin.wait_job(job["jobid"].as_str().unwrap()).await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        assert_eq!(
            user.call("listZones", &[]).await.0,
            401,
            "a deleted account's keys stop working"
        );
        let (status, _) = admin.call("deleteAccount", &[("id", &a)]).await;
        assert_eq!(status, 431, "a removed account is not found");
    }
);

on_both_backends!(
    users_list_only_their_own_jobs_and_zone_updates_are_for_root,
    |m| {
        let admin = m.admin();
        let (_, a, user) = tenant(&admin, "own", "olga", "0").await;
        let job = admin
            .ok("disableAccount", &[("id", &a), ("lock", "true")])
            .await;
        admin.wait_job(job["jobid"].as_str().unwrap()).await;
        admin.ok("enableAccount", &[("id", &a)]).await;
        let theirs = user.ok("listAsyncJobs", &[("listall", "true")]).await;
        assert_eq!(
            theirs,
            serde_json::json!({}),
            "the admin's job is not the user's: {theirs}"
        );
        let mine = admin.ok("listAsyncJobs", &[]).await;
        assert_eq!(mine["count"], 1);

        let z = admin
            .ok(
                "createZone",
                &[
                    ("name", "zu"),
                    ("networktype", "Advanced"),
                    ("dns1", "198.51.100.1"),
                    ("internaldns1", "198.51.100.2"),
                ],
            )
            .await;
        let zone_id = id(&z, "zone");
        let disabled = admin
            .ok(
                "updateZone",
                &[("id", &zone_id), ("allocationstate", "Disabled")],
            )
            .await;
        assert_eq!(disabled["zone"]["allocationstate"], "Disabled");
        assert_eq!(
            admin
                .call(
                    "updateZone",
                    &[("id", &zone_id), ("allocationstate", "Sideways")]
                )
                .await
                .0,
            431
        );
        assert_eq!(
            user.call(
                "updateZone",
                &[("id", &zone_id), ("allocationstate", "Enabled")]
            )
            .await
            .0,
            432
        );
        assert_eq!(
            user.ok("listZones", &[]).await,
            serde_json::json!({}),
            "users do not see disabled zones"
        );
    }
);

on_both_backends!(
    deleting_a_domain_with_cleanup_removes_its_subtree_and_accounts,
    |m| {
        let admin = m.admin();
        let (top, _, user) = tenant(&admin, "gone", "gus", "0").await;
        let sub = admin
            .ok(
                "createDomain",
                &[("name", "below"), ("parentdomainid", &top)],
            )
            .await;
        let sub_id = id(&sub, "domain");
        admin
            .ok(
                "createAccount",
                &[
                    ("username", "bea"),
                    ("password", "pw"),
                    ("email", "b@x"),
                    ("firstname", "B"),
                    ("lastname", "L"),
                    ("domainid", &sub_id),
                ],
            )
            .await;
        let job = admin
            .ok("deleteDomain", &[("id", &top), ("cleanup", "true")])
            .await;
        let done = admin.wait_job(job["jobid"].as_str().unwrap()).await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        for name in ["gone", "below"] {
            assert_eq!(
                admin
                    .ok("listDomains", &[("name", name), ("listall", "true")])
                    .await,
                serde_json::json!({})
            );
        }
        let accounts = admin.ok("listAccounts", &[("listall", "true")]).await;
        let mut names: Vec<&str> = accounts["account"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["admin", "system"], "gus and bea are gone");
        assert_eq!(
            user.call("listZones", &[]).await.0,
            401,
            "the removed account's keys stop working"
        );
    }
);

on_both_backends!(
    a_zone_with_a_bad_allocation_state_is_refused_before_it_is_created,
    |m| {
        let admin = m.admin();
        let zone = |state: &'static str| {
            [
                ("name", "zs"),
                ("networktype", "Advanced"),
                ("dns1", "198.51.100.1"),
                ("internaldns1", "198.51.100.2"),
                ("allocationstate", state),
            ]
        };
        let (status, body) = admin.call("createZone", &zone("Sideways")).await;
        assert_eq!(status, 431, "{body}");
        assert_eq!(
            body["createzoneresponse"]["errortext"],
            "allocationstate Sideways is neither Enabled nor Disabled"
        );
        assert_eq!(
            admin.ok("listZones", &[("name", "zs")]).await,
            serde_json::json!({}),
            "the refused zone was not created"
        );
        // The same zone with a good state is created (the name is free).
        let created = admin.ok("createZone", &zone("disabled")).await;
        assert_eq!(created["zone"]["allocationstate"], "Disabled");
    }
);
