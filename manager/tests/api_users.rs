//! Users and accounts as clients and test suites manage them (issue 15), on
//! SQLite and PostgreSQL: `updateUser` (names, email, password, the admin's
//! own password too), `disableUser`, `lockUser`, `deleteUser`, and
//! `disableAccount lock=false` (its VMs stop, its users can no longer call)
//! and `lock=true` (state `locked`),
//! each allowed and refused.

mod support;

use serde_json::Value;
use support::api::{TestManager, http, id, job_ok, on_both_backends, query, refused};
use support::vpc::{create_tier, create_vpc, deploy_vm, new_account, user, zone_env};

/// POSTs `login`; returns the HTTP status.
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

fn first(body: &Value, key: &str) -> Value {
    body[key][0].clone()
}

on_both_backends!(users_are_updated_disabled_locked_and_deleted, |m| {
    let admin = m.admin();
    let d = id(
        &admin.ok("createDomain", &[("name", "dom")]).await,
        "domain",
    );
    let (_, alice_id, alice) = new_account(&admin, "alice", &d, "0").await;
    let bob = user(&admin, "bob").await;

    // updateUser: alice changes her own names and email.
    let updated = alice
        .ok(
            "updateUser",
            &[
                ("id", &alice_id),
                ("firstname", "Alice"),
                ("lastname", "Liddell"),
                ("email", "alice@example.org"),
            ],
        )
        .await["user"]
        .clone();
    assert_eq!(updated["firstname"], "Alice");
    assert_eq!(updated["email"], "alice@example.org");
    // Bob may not touch her; an unknown user is a 431.
    let (code, _) = refused(&bob, "updateUser", &[("id", &alice_id), ("email", "x@y")]).await;
    assert_eq!(code, 531);
    let (code, _) = refused(&admin, "updateUser", &[("id", support::api::BOGUS)]).await;
    assert_eq!(code, 431);
    // The admin sets her password; she logs in with it.
    admin
        .ok(
            "updateUser",
            &[("id", &alice_id), ("password", "n3w-secret")],
        )
        .await;
    assert_eq!(login(m, "alice", "n3w-secret", "/dom").await, 200);
    assert_ne!(login(m, "alice", "pw", "/dom").await, 200);
    // The admin's own password is settable.
    let admin_user = first(
        &admin
            .ok("listUsers", &[("username", "admin"), ("listall", "true")])
            .await,
        "user",
    );
    let admin_id = admin_user["id"].as_str().unwrap().to_string();
    admin
        .ok(
            "updateUser",
            &[("id", &admin_id), ("password", "r00t-pass")],
        )
        .await;
    assert_eq!(login(m, "admin", "r00t-pass", "/").await, 200);

    // disableUser (async): her keys stop working until enableUser.
    let (code, _) = refused(&bob, "disableUser", &[("id", &alice_id)]).await;
    assert_eq!(code, 432, "users may not disable users");
    let done = job_ok(&admin, "disableUser", &[("id", &alice_id)]).await;
    assert_eq!(done["user"]["state"], "disabled");
    assert_eq!(alice.call("listZones", &[]).await.0, 401);
    admin.ok("enableUser", &[("id", &alice_id)]).await;
    assert_eq!(alice.call("listZones", &[]).await.0, 200);

    // lockUser: state locked, keys refused the same way.
    let locked = admin.ok("lockUser", &[("id", &alice_id)]).await["user"].clone();
    assert_eq!(locked["state"], "locked");
    assert_eq!(alice.call("listZones", &[]).await.0, 401);
    admin.ok("enableUser", &[("id", &alice_id)]).await;
    assert_eq!(alice.call("listZones", &[]).await.0, 200);

    // The system user is refused; so is deleting oneself.
    let system = first(
        &admin
            .ok("listUsers", &[("username", "system"), ("listall", "true")])
            .await,
        "user",
    );
    let system_id = system["id"].as_str().unwrap().to_string();
    for command in ["disableUser", "lockUser", "deleteUser"] {
        let (code, text) = refused(&admin, command, &[("id", &system_id)]).await;
        assert_eq!(code, 431, "{command}");
        assert!(text.contains("is a system user"), "{command}: {text}");
    }
    let (code, text) = refused(&admin, "deleteUser", &[("id", &admin_id)]).await;
    assert_eq!(code, 431);
    assert!(text.contains("requesting to delete itself"), "{text}");

    // deleteUser: gone from the list, keys refused.
    admin.ok("deleteUser", &[("id", &alice_id)]).await;
    assert_eq!(alice.call("listZones", &[]).await.0, 401);
    let left = admin.ok("listUsers", &[("id", &alice_id)]).await;
    assert!(left.get("user").is_none(), "{left}");
    let (code, _) = refused(&admin, "deleteUser", &[("id", &alice_id)]).await;
    assert_eq!(code, 431);
});

on_both_backends!(
    disabling_an_account_stops_its_vms_and_refuses_its_users,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "z1").await;
        let d = id(
            &admin.ok("createDomain", &[("name", "dom")]).await,
            "domain",
        );
        let (created, _, carol) = new_account(&admin, "carol", &d, "0").await;
        let account = created["account"]["id"].as_str().unwrap().to_string();
        let v = create_vpc(&carol, &env, "v1", "10.1.0.0/16").await;
        let tier = create_tier(
            &carol,
            &env,
            v["id"].as_str().unwrap(),
            "web",
            "10.1.1.1",
            "255.255.255.0",
        )
        .await;
        let vm = deploy_vm(&carol, &env, tier["id"].as_str().unwrap(), "vm1").await;
        let vm_id = vm["id"].as_str().unwrap().to_string();
        assert_eq!(vm["state"], "Running");

        let done = job_ok(
            &admin,
            "disableAccount",
            &[("id", &account), ("lock", "false")],
        )
        .await;
        assert_eq!(done["account"]["state"], "disabled");
        assert_eq!(carol.call("listZones", &[]).await.0, 401);
        let now = admin.ok("listVirtualMachines", &[("id", &vm_id)]).await;
        assert_eq!(now["virtualmachine"][0]["state"], "Stopped", "{now}");
        // Enabled again, she calls again; her VM stays stopped until started.
        admin.ok("enableAccount", &[("id", &account)]).await;
        assert_eq!(carol.call("listZones", &[]).await.0, 200);
        // lock=true is CloudStack's lockAccount: state `locked`, her keys
        // refused; locking again changes nothing; enableAccount unlocks.
        for _ in 0..2 {
            let done = job_ok(
                &admin,
                "disableAccount",
                &[("id", &account), ("lock", "true")],
            )
            .await;
            assert_eq!(done["account"]["state"], "locked");
            assert_eq!(carol.call("listZones", &[]).await.0, 401);
        }
        let listed = admin.ok("listAccounts", &[("id", &account)]).await;
        assert_eq!(listed["account"][0]["state"], "locked", "{listed}");
        admin.ok("enableAccount", &[("id", &account)]).await;
        assert_eq!(carol.call("listZones", &[]).await.0, 200);
        // A disabled account cannot be locked (only an enabled one can).
        job_ok(
            &admin,
            "disableAccount",
            &[("id", &account), ("lock", "false")],
        )
        .await;
        let job = admin
            .ok("disableAccount", &[("id", &account), ("lock", "true")])
            .await;
        let failed = admin.wait_job(job["jobid"].as_str().unwrap()).await;
        assert_eq!(failed["jobstatus"], 2, "{failed}");
        assert_eq!(failed["jobresult"]["errortext"], "Failed to lock account");
        admin.ok("enableAccount", &[("id", &account)]).await;
        // lock is required; a user may not disable accounts.
        let (code, text) = refused(&admin, "disableAccount", &[("id", &account)]).await;
        assert_eq!(code, 431);
        assert!(text.contains("lock"), "{text}");
        let (code, _) = refused(
            &carol,
            "disableAccount",
            &[("id", &account), ("lock", "false")],
        )
        .await;
        assert_eq!(code, 432);
    }
);
