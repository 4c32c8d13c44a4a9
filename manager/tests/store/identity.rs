//! Domains, accounts, users, API keys, sessions and list paging.

use vpc_manager::store::account::{self, AccountFilter, NewAccount};
use vpc_manager::store::domain::{self, DomainFilter};
use vpc_manager::store::secret::SecretBox;
use vpc_manager::store::user::{self, NewUser};
use vpc_manager::store::{Page, StoreError, bootstrap, session};

/// A database key for one test.
fn secrets() -> SecretBox {
    SecretBox::from_key_text(&SecretBox::generate_key_text()).expect("a key")
}

use crate::support::store::on_both_backends;
use crate::{child_domain, new_account, new_user};

on_both_backends!(domain_tree_lists_subtrees_and_renames_paths, |db, url| {
    let root = domain::root(&db).await.unwrap();
    let a = child_domain(&db, root.id, "a").await;
    let b = child_domain(&db, a.id, "b").await;
    let c = child_domain(&db, root.id, "c_1").await;
    assert_eq!(
        (a.path.as_str(), b.path.as_str(), b.level),
        ("/a/", "/a/b/", 2)
    );
    assert_eq!(b.display_path(), "ROOT/a/b");

    let under_a: Vec<String> = domain::subtree(&db, "/a/")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.path)
        .collect();
    assert_eq!(under_a, ["/a/", "/a/b/"]);
    assert_eq!(domain::subtree(&db, "/").await.unwrap().len(), 4);
    // "_" is a literal in keyword searches, not a wildcard.
    let kw = domain::list(
        &db,
        &DomainFilter {
            keyword: Some("C_".into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(kw.items, vec![c.clone()]);

    let renamed = domain::rename(&db, a.id, "x").await.unwrap();
    assert_eq!(renamed.path, "/x/");
    let b2 = domain::get_by_id(&db, b.id).await.unwrap().unwrap();
    assert_eq!(b2.path, "/x/b/");
    assert!(domain::get_by_path(&db, "/x/b/").await.unwrap().is_some());

    let refused = domain::remove(&db, a.id).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert!(domain::remove(&db, b.id).await.unwrap());
    let removed = domain::get_by_uuid(&db, b.uuid)
        .await
        .unwrap()
        .expect("removed rows resolve by UUID");
    assert!(removed.removed.is_some());
    assert_eq!(domain::subtree(&db, "/x/").await.unwrap().len(), 1);
    // A removed domain's name can be reused.
    child_domain(&db, a.id, "b").await;
});

on_both_backends!(
    accounts_and_users_get_unique_keys_and_resolve_identities,
    |db, url| {
        let root = domain::root(&db).await.unwrap();
        let d = child_domain(&db, root.id, "acme").await;
        let acct = new_account(&db, d.id, "alice", account::TYPE_USER).await;
        assert_eq!(acct.domain_path, "/acme/");
        let dup = account::create(
            &db,
            NewAccount {
                account_name: "alice".into(),
                account_type: 0,
                domain_id: d.id,
                network_domain: None,
            },
        )
        .await;
        assert!(matches!(dup, Err(StoreError::Duplicate(_))), "{dup:?}");

        let u1 = user::create(
            &db,
            NewUser {
                account_id: acct.id,
                username: "alice".into(),
                password: Some("pw".into()),
                ..NewUser::default()
            },
        )
        .await
        .unwrap();
        let u2 = new_user(&db, acct.id, "bot").await;
        assert_eq!(u1.domain_id, d.id);
        assert!(user::verify_password(u1.password.as_deref().unwrap(), "pw"));
        let keys = secrets();
        let (k1, s1) = user::register_keys(&db, u1.id, &keys).await.unwrap();
        let (k2, _) = user::register_keys(&db, u2.id, &keys).await.unwrap();
        assert!(k1 != k2 && k1 != s1 && k1.len() >= 64);
        assert_eq!(
            user::get_by_api_key(&db, &k1).await.unwrap().unwrap().id,
            u1.id
        );

        let id = user::identity_by_api_key(&db, &k1)
            .await
            .unwrap()
            .expect("identity");
        assert_eq!(
            (
                id.account_name.as_str(),
                id.domain_path.as_str(),
                id.account_type
            ),
            ("alice", "/acme/", 0)
        );
        // Stored sealed since secrets are encrypted at rest; it opens to the
        // key handed out.
        let stored = id.secret_key.as_deref().expect("a secret key");
        assert_ne!(stored, s1);
        assert_eq!(keys.open(stored).unwrap(), s1);

        // Usernames are unique per domain only.
        let clash = user::create(
            &db,
            NewUser {
                account_id: acct.id,
                username: "bot".into(),
                ..NewUser::default()
            },
        )
        .await;
        assert!(matches!(clash, Err(StoreError::Duplicate(_))), "{clash:?}");
        let other = new_account(&db, root.id, "alice", account::TYPE_USER).await;
        new_user(&db, other.id, "bot").await;
        assert_eq!(
            user::get_by_username(&db, d.id, "bot")
                .await
                .unwrap()
                .unwrap()
                .id,
            u2.id
        );

        // Removing the account removes its users: keys stop working, UUIDs still resolve.
        assert!(account::remove(&db, acct.id).await.unwrap());
        assert!(user::identity_by_api_key(&db, &k1).await.unwrap().is_none());
        assert!(
            user::get_by_uuid(&db, u1.uuid)
                .await
                .unwrap()
                .unwrap()
                .removed
                .is_some()
        );
        assert!(
            account::get_by_uuid(&db, acct.uuid)
                .await
                .unwrap()
                .unwrap()
                .removed
                .is_some()
        );
    }
);

on_both_backends!(lists_page_with_totals_and_filter_by_subtree, |db, url| {
    let root = domain::root(&db).await.unwrap();
    let d = child_domain(&db, root.id, "paged").await;
    let sub = child_domain(&db, d.id, "sub").await;
    for i in 0..6 {
        new_account(&db, d.id, &format!("acct{i}"), account::TYPE_USER).await;
    }
    new_account(&db, sub.id, "deep", account::TYPE_USER).await;
    let subtree = AccountFilter {
        domain_path_prefix: Some(d.path.clone()),
        ..Default::default()
    };

    let page2 = account::list(&db, &subtree, Page::new(2, 3)).await.unwrap();
    assert_eq!(page2.total, 7);
    let names: Vec<&str> = page2
        .items
        .iter()
        .map(|a| a.account_name.as_str())
        .collect();
    assert_eq!(names, ["acct3", "acct4", "acct5"]);
    assert_eq!(
        account::list(&db, &subtree, Page::new(3, 3))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let beyond = account::list(&db, &subtree, Page::new(9, 3)).await.unwrap();
    assert_eq!((beyond.total, beyond.items.len()), (7, 0));

    let only_d = AccountFilter {
        domain_id: Some(d.id),
        ..Default::default()
    };
    assert_eq!(
        account::list(&db, &only_d, Page::ALL).await.unwrap().total,
        6
    );
    let picked = account::list(
        &db,
        &AccountFilter {
            keyword: Some("CCT1".into()),
            ..subtree.clone()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(picked.total, 1);
    let uuids = vec![picked.items[0].uuid, uuid::Uuid::new_v4()];
    let by_ids = account::list(
        &db,
        &AccountFilter {
            uuids: Some(uuids),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(by_ids.items, picked.items);
});

on_both_backends!(sessions_expire_and_end_at_logout, |db, url| {
    let root = domain::root(&db).await.unwrap();
    let u = new_user(&db, new_account(&db, root.id, "sess", 0).await.id, "sess").await;
    let s = session::create(&db, u.id, 60_000).await.unwrap();
    let now = s.created;
    assert_eq!(
        session::get_valid(&db, &s.session_key, now).await.unwrap(),
        Some(s.clone())
    );
    assert!(
        session::get_valid(&db, &s.session_key, now + 60_000)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        session::extend(&db, &s.session_key, now + 120_000)
            .await
            .unwrap()
    );
    assert!(
        session::get_valid(&db, &s.session_key, now + 60_000)
            .await
            .unwrap()
            .is_some()
    );
    assert!(session::delete(&db, &s.session_key).await.unwrap());
    assert!(
        session::get_valid(&db, &s.session_key, now)
            .await
            .unwrap()
            .is_none()
    );
    session::create(&db, u.id, -1).await.unwrap();
    assert_eq!(
        session::purge_expired(&db, vpc_manager::store::now_ms())
            .await
            .unwrap(),
        1
    );
});

on_both_backends!(ensure_admin_creates_keys_once, |db, url| {
    let keys = secrets();
    let (api, secret) = bootstrap::ensure_admin(&db, &keys).await.unwrap();
    assert_eq!(
        bootstrap::ensure_admin(&db, &keys).await.unwrap(),
        (api.clone(), secret.clone())
    );
    let id = user::identity_by_api_key(&db, &api)
        .await
        .unwrap()
        .expect("admin identity");
    assert_eq!(
        (
            id.username.as_str(),
            id.account_type,
            id.domain_path.as_str()
        ),
        ("admin", account::TYPE_ADMIN, "/")
    );
    assert_eq!(
        keys.open(id.secret_key.as_deref().unwrap()).unwrap(),
        secret
    );
});
