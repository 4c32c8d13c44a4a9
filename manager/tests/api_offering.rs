//! VPC offering writes through the HTTP API, on SQLite and on PostgreSQL:
//! `createVPCOffering` (async-create), `updateVPCOffering` and
//! `deleteVPCOffering` (async), each allowed and refused with CloudStack's
//! error codes.

mod support;

use serde_json::Value;
use support::api::{BOGUS, Client, TestManager, id, job_ok, on_both_backends, refused, run_job};
use vpc_manager::store::{Db, account, domain, offering, vpc, zone};

/// A client of a new account of `account_type` (0 user, 2 domain admin) in
/// a new domain.
async fn account_client(admin: &Client, name: &str, account_type: &str) -> Client {
    let d = id(&admin.ok("createDomain", &[("name", name)]).await, "domain");
    let a = admin
        .ok(
            "createAccount",
            &[
                ("username", name),
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
    Client {
        addr: admin.addr,
        key: keys["userkeys"]["apikey"].as_str().unwrap().into(),
        secret: keys["userkeys"]["secretkey"].as_str().unwrap().into(),
    }
}

/// createVPCOffering through its job; returns the new id and the job result.
async fn create_offering(admin: &Client, params: &[(&str, &str)]) -> (String, Value) {
    let accepted = admin.ok("createVPCOffering", params).await;
    let new_id = accepted["id"]
        .as_str()
        .unwrap_or_else(|| panic!("async-create answers with id: {accepted}"))
        .to_string();
    let done = admin
        .wait_job(accepted["jobid"].as_str().expect("and jobid"))
        .await;
    assert_eq!(done["jobstatus"], 1, "{done}");
    assert_eq!(done["jobinstanceid"], new_id.as_str());
    assert_eq!(id(&done["jobresult"], "vpcoffering"), new_id);
    (new_id, done["jobresult"]["vpcoffering"].clone())
}

async fn listed(client: &Client, offering_id: &str) -> Option<Value> {
    let found = client.ok("listVPCOfferings", &[("id", offering_id)]).await;
    found["vpcoffering"]
        .as_array()
        .and_then(|items| items.first().cloned())
}

fn service_names(o: &Value) -> Vec<String> {
    o["service"]
        .as_array()
        .unwrap_or_else(|| panic!("no service in {o}"))
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

on_both_backends!(vpc_offerings_are_created_enabled_and_deleted, |m, url| {
    let admin = m.admin();
    let (offering_id, created) = create_offering(
        &admin,
        &[
            ("name", "small vpc"),
            ("supportedservices", "Dhcp,Dns,UserData"),
            ("serviceproviderlist[0].service", "Dhcp"),
            ("serviceproviderlist[0].provider", "VpcVirtualRouter"),
        ],
    )
    .await;
    assert_eq!(created["name"], "small vpc");
    assert_eq!(
        created["displaytext"], "small vpc",
        "displaytext defaults to name"
    );
    assert_eq!(created["state"], "Disabled", "new offerings start Disabled");
    assert_eq!(created["isdefault"], false);
    let names = service_names(&created);
    for service in [
        "Dhcp",
        "Dns",
        "UserData",
        "SourceNat",
        "NetworkACL",
        "Gateway",
    ] {
        assert!(
            names.contains(&service.to_string()),
            "{service} in {names:?}"
        );
    }
    assert_eq!(
        created["service"][0]["provider"][0]["name"],
        "VpcVirtualRouter"
    );

    // Listed Disabled, with the same fields as the job reported.
    let seen = listed(&admin, &offering_id).await.expect("listed");
    assert_eq!(seen["state"], "Disabled");
    assert_eq!(seen["service"], created["service"]);
    let disabled = admin.ok("listVPCOfferings", &[("state", "Disabled")]).await;
    assert_eq!(disabled["count"], 1, "{disabled}");

    // Enabled (and renamed) by updateVPCOffering.
    let updated = job_ok(
        &admin,
        "updateVPCOffering",
        &[
            ("id", &offering_id),
            ("state", "Enabled"),
            ("displaytext", "a small VPC"),
        ],
    )
    .await;
    assert_eq!(updated["vpcoffering"]["state"], "Enabled", "{updated}");
    assert_eq!(updated["vpcoffering"]["displaytext"], "a small VPC");
    assert_eq!(updated["vpcoffering"]["name"], "small vpc");
    let seen = listed(&admin, &offering_id).await.expect("listed");
    assert_eq!(seen["state"], "Enabled");

    // enable=true creates it Enabled at once.
    let (_, enabled) = create_offering(
        &admin,
        &[
            ("name", "ready vpc"),
            ("supportedservices", "Dhcp"),
            ("enable", "true"),
        ],
    )
    .await;
    assert_eq!(enabled["state"], "Enabled");

    // Deleted, then no longer listed.
    let done = job_ok(&admin, "deleteVPCOffering", &[("id", &offering_id)]).await;
    assert_eq!(done["success"], true, "{done}");
    assert!(listed(&admin, &offering_id).await.is_none());
    let (code, _) = refused(&admin, "deleteVPCOffering", &[("id", &offering_id)]).await;
    assert_eq!(code, 431, "a deleted offering is unknown");
    let _ = url;
});

on_both_backends!(create_vpc_offering_refusals, |m, url| {
    let admin = m.admin();
    let ok_params = [("name", "o"), ("supportedservices", "Dhcp")];

    let user = account_client(&admin, "offu", "0").await;
    let (code, _) = refused(&user, "createVPCOffering", &ok_params).await;
    assert_eq!(code, 432, "users may not create VPC offerings");
    let domain_admin = account_client(&admin, "offda", "2").await;
    let (code, _) = refused(&domain_admin, "createVPCOffering", &ok_params).await;
    assert_eq!(code, 432, "domain admins may not create VPC offerings");

    let (code, text) = refused(
        &admin,
        "createVPCOffering",
        &[("name", "o"), ("supportedservices", "Dhcp,Firewall")],
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("Firewall"), "{text}");
    let (code, _) = refused(&admin, "createVPCOffering", &[("name", "o")]).await;
    assert_eq!(code, 431, "supportedservices is required");
    let (code, _) = refused(
        &admin,
        "createVPCOffering",
        &[("supportedservices", "Dhcp")],
    )
    .await;
    assert_eq!(code, 431, "name is required");
    let (code, text) = refused(
        &admin,
        "createVPCOffering",
        &[
            ("name", "o"),
            ("supportedservices", "Dhcp"),
            ("serviceproviderlist[0].service", "Dhcp"),
            ("serviceproviderlist[0].provider", "VirtualRouter"),
        ],
    )
    .await;
    assert_eq!(code, 431, "only VpcVirtualRouter: {text}");
    let (code, text) = refused(
        &admin,
        "createVPCOffering",
        &[
            ("name", "o"),
            ("supportedservices", "Dhcp"),
            ("serviceproviderlist[0].service", "Vpn"),
            ("serviceproviderlist[0].provider", "VpcVirtualRouter"),
        ],
    )
    .await;
    assert_eq!(code, 431, "a provider for an unlisted service: {text}");
    let (code, _) = refused(
        &admin,
        "createVPCOffering",
        &[
            ("name", "Default VPC offering"),
            ("supportedservices", "Dhcp"),
        ],
    )
    .await;
    assert_eq!(code, 431, "names are unique");

    // Nothing of the refusals was kept.
    let all = admin.ok("listVPCOfferings", &[("name", "o")]).await;
    assert!(all.get("count").is_none(), "{all}");
    let _ = url;
});

on_both_backends!(update_and_delete_vpc_offering_refusals, |m, url| {
    let admin = m.admin();
    let defaults = admin.ok("listVPCOfferings", &[("isdefault", "true")]).await;
    let default_id = defaults["vpcoffering"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no default offering in {defaults}"))
        .to_string();
    let (offering_id, _) =
        create_offering(&admin, &[("name", "spare"), ("supportedservices", "Dhcp")]).await;
    let user = account_client(&admin, "offv", "0").await;

    // updateVPCOffering
    let (code, _) = refused(
        &user,
        "updateVPCOffering",
        &[("id", &offering_id), ("state", "Enabled")],
    )
    .await;
    assert_eq!(code, 432);
    let (code, _) = refused(
        &admin,
        "updateVPCOffering",
        &[("id", &offering_id), ("state", "Sleeping")],
    )
    .await;
    assert_eq!(code, 431, "state is Enabled or Disabled");
    let (code, _) = refused(&admin, "updateVPCOffering", &[("id", BOGUS)]).await;
    assert_eq!(code, 431);
    let (code, _) = refused(
        &admin,
        "updateVPCOffering",
        &[("id", &default_id), ("state", "Disabled")],
    )
    .await;
    assert_eq!(code, 431, "the default offering stays Enabled");
    let (code, _) = refused(
        &admin,
        "updateVPCOffering",
        &[("id", &offering_id), ("name", "Default VPC offering")],
    )
    .await;
    assert_eq!(code, 431, "names are unique");
    let renamed = job_ok(
        &admin,
        "updateVPCOffering",
        &[("id", &default_id), ("displaytext", "the usual one")],
    )
    .await;
    assert_eq!(renamed["vpcoffering"]["displaytext"], "the usual one");
    assert_eq!(renamed["vpcoffering"]["state"], "Enabled");

    // deleteVPCOffering
    let (code, _) = refused(&user, "deleteVPCOffering", &[("id", &offering_id)]).await;
    assert_eq!(code, 432);
    let (code, _) = refused(&admin, "deleteVPCOffering", &[("id", BOGUS)]).await;
    assert_eq!(code, 431);
    let (code, text) = refused(&admin, "deleteVPCOffering", &[("id", &default_id)]).await;
    assert_eq!(code, 431, "the default offering cannot go: {text}");
    assert!(listed(&admin, &default_id).await.is_some());

    // An offering a live VPC uses cannot go (the job fails, 431 as in
    // CloudStack). No command creates VPCs yet: make one through the store.
    let zone_id = id(
        &admin
            .ok(
                "createZone",
                &[
                    ("name", "oz"),
                    ("networktype", "Advanced"),
                    ("dns1", "198.51.100.1"),
                    ("internaldns1", "198.51.100.2"),
                ],
            )
            .await,
        "zone",
    );
    let db = Db::connect(url).await.expect("open the manager's store");
    let root = domain::root(&db).await.unwrap();
    let owner = account::get_by_name(&db, root.id, "admin")
        .await
        .unwrap()
        .unwrap();
    let z = zone::get_by_uuid(&db, zone_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let o = offering::vpc_offering_by_uuid(&db, offering_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let v = vpc::create(
        &db,
        vpc::NewVpc {
            name: "user".into(),
            display_text: "user".into(),
            zone_id: z.id,
            cidr: "10.1.0.0/16".into(),
            account_id: owner.id,
            domain_id: root.id,
            vpc_offering_id: o.id,
            network_domain: None,
        },
    )
    .await
    .unwrap();
    let failed = run_job(&admin, "deleteVPCOffering", &[("id", &offering_id)]).await;
    assert_eq!(failed["jobstatus"], 2, "{failed}");
    assert_eq!(failed["jobresultcode"], 431);
    assert_eq!(failed["jobresult"]["errorcode"], 431);
    assert!(listed(&admin, &offering_id).await.is_some());

    // Once the VPC is gone, so may the offering be.
    vpc::remove(&db, v.id).await.unwrap();
    job_ok(&admin, "deleteVPCOffering", &[("id", &offering_id)]).await;
    assert!(listed(&admin, &offering_id).await.is_none());
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vpc_offering_writes_are_in_list_apis_for_the_root_admin_only() {
    let m = TestManager::start(None).await;
    let apis = m.admin().ok("listApis", &[]).await;
    let all = apis["api"].as_array().unwrap();
    for (name, is_async) in [
        ("createVPCOffering", true),
        ("updateVPCOffering", true),
        ("deleteVPCOffering", true),
    ] {
        let api = all
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in listApis"));
        assert_eq!(api["isasync"], is_async, "{name}");
    }
    let user = account_client(&m.admin(), "offl", "0").await;
    let seen = user.ok("listApis", &[]).await;
    let names: Vec<&str> = seen["api"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"listVPCOfferings"));
    assert!(!names.contains(&"createVPCOffering") && !names.contains(&"deleteVPCOffering"));
    m.stop().await;
}

/// createVPC of `client` with `offering` in `zone`: the HTTP status and body.
async fn try_vpc(client: &Client, zone: &str, offering: &str, name: &str) -> (u16, Value) {
    let (status, body) = client
        .call(
            "createVPC",
            &[
                ("name", name),
                ("displaytext", name),
                ("cidr", "10.5.0.0/16"),
                ("zoneid", zone),
                ("vpcofferingid", offering),
            ],
        )
        .await;
    if status != 200 {
        return (status, body);
    }
    let done = client
        .wait_job(body["createvpcresponse"]["jobid"].as_str().unwrap())
        .await;
    assert_eq!(done["jobstatus"], 1, "{done}");
    (status, done)
}

/// Whether `client` sees `offering` in listVPCOfferings (with `extra`).
async fn sees(client: &Client, offering: &str, extra: &[(&str, &str)]) -> bool {
    let found = client.ok("listVPCOfferings", extra).await;
    found["vpcoffering"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .any(|o| o["id"] == offering)
}

on_both_backends!(vpc_offering_domains_and_zones_decide_who_may_use_it, |m| {
    use support::vpc::{account_in, zone_env, zone_env_range};
    let admin = m.admin();
    let env = zone_env(&admin, "odz").await;
    let sales = id(
        &admin.ok("createDomain", &[("name", "sales")]).await,
        "domain",
    );
    let emea = id(
        &admin
            .ok(
                "createDomain",
                &[("name", "emea"), ("parentdomainid", &sales)],
            )
            .await,
        "domain",
    );
    let ops = id(
        &admin.ok("createDomain", &[("name", "ops")]).await,
        "domain",
    );
    let alice = account_in(&admin, "alice", &emea, "0").await;
    let bob = account_in(&admin, "bob", &ops, "0").await;

    // Made for the sales domain: its subdomain's accounts use it, others
    // neither see nor use it.
    let (scoped, created) = create_offering(
        &admin,
        &[
            ("name", "scoped"),
            ("supportedservices", "Dhcp,Dns,SourceNat,NetworkACL,Gateway"),
            ("enable", "true"),
            ("domainid", &sales),
        ],
    )
    .await;
    assert_eq!(created["domainid"], sales.as_str());
    assert_eq!(created["domain"], "sales");
    assert!(created.get("zoneid").is_none(), "{created}");
    assert!(sees(&alice, &scoped, &[]).await);
    assert!(!sees(&bob, &scoped, &[]).await);
    assert!(sees(&admin, &scoped, &[("domainid", &emea)]).await);
    assert!(!sees(&admin, &scoped, &[("domainid", &ops)]).await);
    let (status, body) = try_vpc(&bob, &env.zone, &scoped, "b1").await;
    assert_eq!(status, 531, "{body}");
    assert!(
        body["createvpcresponse"]["errortext"]
            .as_str()
            .unwrap()
            .contains("has access to VPC offering scoped"),
        "{body}"
    );
    let (status, _) = try_vpc(&alice, &env.zone, &scoped, "a1").await;
    assert_eq!(status, 200);

    // updateVPCOffering domainid=: ops instead; a listed subdomain of a
    // listed domain is dropped.
    let done = job_ok(
        &admin,
        "updateVPCOffering",
        &[
            ("id", &scoped),
            ("domainid", &format!("{emea},{ops},{sales}")),
        ],
    )
    .await;
    let view = &done["vpcoffering"];
    let mut ids: Vec<&str> = view["domainid"].as_str().unwrap().split(',').collect();
    ids.sort();
    let mut want = vec![sales.as_str(), ops.as_str()];
    want.sort();
    assert_eq!(ids, want, "{view}");
    let done = job_ok(
        &admin,
        "updateVPCOffering",
        &[("id", &scoped), ("domainid", &ops)],
    )
    .await;
    assert_eq!(done["vpcoffering"]["domainid"], ops.as_str());
    assert_eq!(done["vpcoffering"]["domain"], "ops");
    let listed_view = listed(&admin, &scoped).await.unwrap();
    assert_eq!(listed_view["domainid"], ops.as_str());
    assert!(!sees(&alice, &scoped, &[]).await);
    assert!(sees(&bob, &scoped, &[]).await);
    let (status, _) = try_vpc(&alice, &env.zone, &scoped, "a2").await;
    assert_eq!(status, 531);
    let (status, _) = try_vpc(&bob, &env.zone, &scoped, "b2").await;
    assert_eq!(status, 200);
    // Other updates keep the domains.
    let done = job_ok(
        &admin,
        "updateVPCOffering",
        &[("id", &scoped), ("displaytext", "ops only")],
    )
    .await;
    assert_eq!(done["vpcoffering"]["domainid"], ops.as_str());

    // zoneid=: usable in that zone only.
    let other = zone_env_range(
        &admin,
        "odz2",
        "198.51.100.1",
        "198.51.100.10",
        "198.51.100.60",
    )
    .await;
    let done = job_ok(
        &admin,
        "updateVPCOffering",
        &[("id", &scoped), ("zoneid", &other.zone)],
    )
    .await;
    assert_eq!(done["vpcoffering"]["zoneid"], other.zone.as_str());
    assert_eq!(done["vpcoffering"]["zone"], "odz2");
    assert!(sees(&bob, &scoped, &[("zoneid", &other.zone)]).await);
    assert!(!sees(&bob, &scoped, &[("zoneid", &env.zone)]).await);
    let (status, _) = try_vpc(&bob, &env.zone, &scoped, "b3").await;
    assert_eq!(status, 531);
    // The root admin is held to the zones too, not to the domains.
    let (status, _) = try_vpc(&admin, &env.zone, &scoped, "r1").await;
    assert_eq!(status, 531);
    let (status, _) = try_vpc(&admin, &other.zone, &scoped, "r2").await;
    assert_eq!(status, 200);

    // public and all lift the restrictions.
    let done = job_ok(
        &admin,
        "updateVPCOffering",
        &[("id", &scoped), ("domainid", "public"), ("zoneid", "all")],
    )
    .await;
    let view = &done["vpcoffering"];
    for key in ["domainid", "domain", "zoneid", "zone"] {
        assert!(view.get(key).is_none(), "{key}: {view}");
    }
    assert!(sees(&alice, &scoped, &[]).await);
    let (status, _) = try_vpc(&alice, &env.zone, &scoped, "a3").await;
    assert_eq!(status, 200);

    // Refused: unknown domains and zones (CloudStack's texts), "public"
    // among IDs, callers other than the root admin.
    for (param, value, text) in [
        (
            "domainid",
            BOGUS.to_string(),
            "invalid domain has been specified",
        ),
        (
            "domainid",
            format!("public,{ops}"),
            "invalid domain has been specified",
        ),
        (
            "zoneid",
            BOGUS.to_string(),
            "invalid zone has been specified",
        ),
        (
            "zoneid",
            "everywhere".to_string(),
            "invalid zone has been specified",
        ),
    ] {
        let (code, got) = refused(
            &admin,
            "updateVPCOffering",
            &[("id", &scoped), (param, &value)],
        )
        .await;
        assert_eq!(code, 431, "{param}={value}: {got}");
        assert_eq!(
            got,
            format!("Failed to create VPC offering because {text}."),
            "{param}={value}"
        );
    }
    let (code, _) = refused(
        &admin,
        "createVPCOffering",
        &[
            ("name", "bad"),
            ("supportedservices", "Dhcp"),
            ("domainid", BOGUS),
        ],
    )
    .await;
    assert_eq!(code, 431);
    let (code, _) = refused(
        &alice,
        "updateVPCOffering",
        &[("id", &scoped), ("domainid", &emea)],
    )
    .await;
    assert_ne!(code, 200);
    let none = admin.ok("listVPCOfferings", &[("name", "bad")]).await;
    assert!(none["vpcoffering"].is_null(), "{none}");
});
