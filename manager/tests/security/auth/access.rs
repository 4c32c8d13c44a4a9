//! Who may read, register or create keys and users, and change accounts:
//! every caller role against every target role.

use super::*;

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
        // enableUser follows the same rule (users do not have the command).
        for &caller in CALLERS {
            for &target in TARGETS {
                let user = all[target].user.clone();
                let expected = if caller == "root_user" {
                    432
                } else if may_use_keys(caller, target) {
                    200
                } else {
                    531
                };
                let got = status(&all[caller].client, "enableUser", &[("id", &user)]).await;
                assert_eq!(got, expected, "enableUser: {caller} on {target}");
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
