//! Identity and authentication: who may read, register or create keys and
//! users, secrets at rest, logins, sessions.

use std::collections::HashMap;

use serde_json::Value;

use crate::support::api::{Client, TestManager, id, on_both_backends};

/// One account of the role matrix and a client signing as its first user.
struct Member {
    account: String,
    account_name: String,
    domain: String,
    user: String,
    client: Client,
}

/// Creates an account of `account_type` in `domain` as the root admin and
/// registers keys for its first user.
async fn member(admin: &Client, domain: &str, name: &str, account_type: &str) -> Member {
    let a = admin
        .ok(
            "createAccount",
            &[
                ("username", name),
                ("password", "pw"),
                ("email", "x@example.org"),
                ("firstname", "F"),
                ("lastname", "L"),
                ("domainid", domain),
                ("accounttype", account_type),
            ],
        )
        .await;
    let user = a["account"]["user"][0]["id"].as_str().unwrap().to_string();
    let keys = admin.ok("registerUserKeys", &[("id", &user)]).await;
    Member {
        account: id(&a, "account"),
        account_name: name.to_string(),
        domain: domain.to_string(),
        user,
        client: client_of(admin, &keys),
    }
}

fn client_of(any: &Client, keys: &Value) -> Client {
    Client {
        addr: any.addr,
        key: keys["userkeys"]["apikey"].as_str().unwrap().into(),
        secret: keys["userkeys"]["secretkey"].as_str().unwrap().into(),
    }
}

/// The role matrix: the bootstrap root admin, a second root admin, two
/// domain admins of ROOT, a domain admin and a user of a child domain, and
/// a user of ROOT.
async fn matrix(m: &TestManager) -> HashMap<&'static str, Member> {
    let admin = m.admin();
    let root = admin.ok("listDomains", &[("name", "ROOT")]).await["domain"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let child = id(
        &admin.ok("createDomain", &[("name", "child")]).await,
        "domain",
    );
    let me = admin.ok("listUsers", &[("username", "admin")]).await["user"][0].clone();
    let mut all = HashMap::new();
    all.insert(
        "root",
        Member {
            account: me["accountid"].as_str().unwrap().into(),
            account_name: "admin".into(),
            domain: root.clone(),
            user: me["id"].as_str().unwrap().into(),
            client: admin.clone(),
        },
    );
    all.insert("root2", member(&admin, &root, "root2", "1").await);
    all.insert("root_da", member(&admin, &root, "rootda", "2").await);
    all.insert(
        "root_da_peer",
        member(&admin, &root, "rootdapeer", "2").await,
    );
    all.insert("child_da", member(&admin, &child, "childda", "2").await);
    all.insert("child_user", member(&admin, &child, "childuser", "0").await);
    all.insert("root_user", member(&admin, &root, "rootuser", "0").await);
    all
}

const CALLERS: &[&str] = &["root", "root_da", "child_da", "root_user"];
const TARGETS: &[&str] = &[
    "root",
    "root2",
    "root_da",
    "root_da_peer",
    "child_da",
    "child_user",
    "root_user",
];

/// Whether `caller` may read or register the keys of `target`'s user: the
/// user itself, root admins, or a strictly higher role over the target's
/// domain.
fn may_use_keys(caller: &str, target: &str) -> bool {
    caller == target
        || caller == "root"
        || matches!(
            (caller, target),
            ("root_da", "child_user" | "root_user") | ("child_da", "child_user")
        )
}

/// Whether `caller` may create users in (or update) `target`'s account:
/// the key rule, plus its own account.
fn may_manage_account(caller: &str, target: &str) -> bool {
    may_use_keys(caller, target)
}

/// Status of a call: 200, or the error code after checking the envelope.
async fn status(client: &Client, command: &str, params: &[(&str, &str)]) -> u16 {
    client.call(command, params).await.0
}

on_both_backends!(
    user_keys_are_read_and_registered_only_by_the_user_or_a_higher_role,
    |m| {
        let mut all = matrix(m).await;
        for &caller in CALLERS {
            for &target in TARGETS {
                let user = all[target].user.clone();
                let expected = if may_use_keys(caller, target) {
                    200
                } else {
                    531
                };
                let got = status(&all[caller].client, "getUserKeys", &[("id", &user)]).await;
                assert_eq!(got, expected, "getUserKeys: {caller} on {target}");
            }
        }
        for &caller in CALLERS {
            for &target in TARGETS {
                let user = all[target].user.clone();
                let allowed = may_use_keys(caller, target);
                let (got, body) = all[caller]
                    .client
                    .call("registerUserKeys", &[("id", &user)])
                    .await;
                assert_eq!(
                    got,
                    if allowed { 200 } else { 531 },
                    "registerUserKeys: {caller} on {target}: {body}"
                );
                if allowed {
                    // The target's old keys are gone: sign with the new ones.
                    let new = client_of(&all[caller].client, &body["registeruserkeysresponse"]);
                    all.get_mut(target).unwrap().client = new;
                }
            }
        }
        // The hole itself: a domain admin of ROOT never gets a key that
        // passes a root-only command.
        let root_only = status(&all["root_da"].client, "listConfigurations", &[]).await;
        assert_eq!(root_only, 432);
    }
);

on_both_backends!(
    users_are_created_only_in_accounts_the_caller_outranks_or_owns,
    |m| {
        let all = matrix(m).await;
        for &caller in CALLERS {
            for (n, &target) in TARGETS.iter().enumerate() {
                let t = &all[target];
                let username = format!("new-{caller}-{n}");
                let got = status(
                    &all[caller].client,
                    "createUser",
                    &[
                        ("account", &t.account_name),
                        ("domainid", &t.domain),
                        ("username", &username),
                        ("password", "pw"),
                        ("email", "n@example.org"),
                        ("firstname", "N"),
                        ("lastname", "U"),
                    ],
                )
                .await;
                let expected = if caller == "root_user" {
                    432 // not a command users have
                } else if may_manage_account(caller, target) || all[caller].account == t.account {
                    200
                } else {
                    531
                };
                assert_eq!(got, expected, "createUser: {caller} in {target}");
            }
        }
    }
);

on_both_backends!(
    accounts_are_changed_only_by_a_higher_role_over_their_domain,
    |m| {
        let all = matrix(m).await;
        for &caller in CALLERS {
            for &target in TARGETS {
                let account = all[target].account.clone();
                let own = all[caller].account == account;
                let allowed = may_manage_account(caller, target) || own;
                let expected = if caller == "root_user" {
                    432
                } else if allowed {
                    200
                } else {
                    531
                };
                let got = status(
                    &all[caller].client,
                    "updateAccount",
                    &[("id", &account), ("networkdomain", "corp.example.org")],
                )
                .await;
                assert_eq!(got, expected, "updateAccount: {caller} on {target}");
                let got = status(&all[caller].client, "enableAccount", &[("id", &account)]).await;
                assert_eq!(got, expected, "enableAccount: {caller} on {target}");
                // State changes are refused where not allowed; allowed ones
                // are not run, so the matrix stays intact.
                if !allowed && caller != "root_user" {
                    let got = status(
                        &all[caller].client,
                        "disableAccount",
                        &[("id", &account), ("lock", "true")],
                    )
                    .await;
                    assert_eq!(got, 531, "disableAccount: {caller} on {target}");
                    let got =
                        status(&all[caller].client, "deleteAccount", &[("id", &account)]).await;
                    assert_eq!(got, 531, "deleteAccount: {caller} on {target}");
                }
            }
        }
        // New accounts: a domain admin creates only users' accounts.
        let root_da = &all["root_da"];
        for (account_type, expected) in [("0", 200), ("2", 531), ("1", 531)] {
            let name = format!("made-{account_type}");
            let got = status(
                &root_da.client,
                "createAccount",
                &[
                    ("username", &name),
                    ("password", "pw"),
                    ("email", "m@example.org"),
                    ("firstname", "M"),
                    ("lastname", "A"),
                    ("domainid", &root_da.domain),
                    ("accounttype", account_type),
                ],
            )
            .await;
            assert_eq!(got, expected, "createAccount of type {account_type}");
        }
    }
);
