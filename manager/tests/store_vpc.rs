//! The VPC tables (migration 0002) against both backends: VPCs, tiers, vnet
//! allocation, routers and their NICs, ACL lists. Every test body runs on a fresh
//! SQLite file and on a fresh database of a throw-away PostgreSQL cluster.

mod support;

use support::store::on_both_backends;

use std::collections::HashSet;

use vpc_manager::store::account::{self, NewAccount};
use vpc_manager::store::acl::{self, AclFilter, AclItemFilter, NewAclItem};
use vpc_manager::store::domain::{self, NewDomain};
use vpc_manager::store::network::{self, NetworkFilter, NewNetwork};
use vpc_manager::store::router::{self, NewNic, NewRouter, NicFilter, NicOwner, RouterFilter};
use vpc_manager::store::vpc::{self, NewVpc, VpcFilter};
use vpc_manager::store::zone::{self, NewZone};
use vpc_manager::store::{Backend, Db, Page, Scope, StoreError, bootstrap, offering, vnet};

/// What most tests need: a zone with a VXLAN physical network, an account in a child
/// domain, the default offerings.
struct Fixture {
    zone_id: i64,
    physnet_id: i64,
    account_id: i64,
    domain_id: i64,
    vpc_offering_id: i64,
    tier_offering_id: i64,
}

async fn fixture(db: &Db) -> Fixture {
    let z = zone::create(
        db,
        NewZone {
            name: "zone1".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let pn = zone::create_physical_network(
        db,
        z.id,
        "pn1",
        "VXLAN",
        Some("5000-5999"),
        &[("Guest", None), ("Public", None)],
    )
    .await
    .unwrap();
    let root = domain::root(db).await.unwrap();
    let d = domain::create(
        db,
        NewDomain {
            parent_id: root.id,
            name: "sales".into(),
            network_domain: None,
        },
    )
    .await
    .unwrap();
    let a = account::create(
        db,
        NewAccount {
            account_name: "alice".into(),
            account_type: 0,
            domain_id: d.id,
            network_domain: None,
        },
    )
    .await
    .unwrap();
    let vpc_off = offering::vpc_offering_by_unique_name(db, bootstrap::DEFAULT_VPC_OFFERING)
        .await
        .unwrap()
        .unwrap();
    let tier_off =
        offering::network_offering_by_unique_name(db, bootstrap::DEFAULT_VPC_TIER_OFFERING)
            .await
            .unwrap()
            .unwrap();
    Fixture {
        zone_id: z.id,
        physnet_id: pn.id,
        account_id: a.id,
        domain_id: d.id,
        vpc_offering_id: vpc_off.id,
        tier_offering_id: tier_off.id,
    }
}

async fn new_vpc(db: &Db, f: &Fixture, name: &str) -> vpc::Vpc {
    vpc::create(
        db,
        NewVpc {
            name: name.into(),
            display_text: format!("{name} description"),
            zone_id: f.zone_id,
            cidr: "10.1.0.0/16".into(),
            account_id: f.account_id,
            domain_id: f.domain_id,
            vpc_offering_id: f.vpc_offering_id,
            network_domain: Some("cs1cloud.internal".into()),
        },
    )
    .await
    .unwrap()
}

async fn new_tier(db: &Db, f: &Fixture, vpc_id: i64, name: &str, cidr: &str) -> network::Network {
    network::create(
        db,
        NewNetwork {
            name: name.into(),
            display_text: name.into(),
            zone_id: f.zone_id,
            physical_network_id: Some(f.physnet_id),
            vpc_id: Some(vpc_id),
            account_id: f.account_id,
            domain_id: f.domain_id,
            network_offering_id: f.tier_offering_id,
            cidr: Some(cidr.into()),
            network_acl_id: Some(acl::DEFAULT_ALLOW_ID),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn new_router(db: &Db, f: &Fixture, vpc_id: i64) -> router::Router {
    router::create(
        db,
        NewRouter {
            vpc_id: Some(vpc_id),
            zone_id: f.zone_id,
            account_id: f.account_id,
            domain_id: f.domain_id,
        },
    )
    .await
    .unwrap()
}

on_both_backends!(vpcs_are_created_listed_and_soft_deleted, |db, url| {
    let f = fixture(&db).await;
    let v = new_vpc(&db, &f, "web").await;
    let other = new_vpc(&db, &f, "db").await;
    assert_eq!(v.state, vpc::STATE_ENABLED);
    assert_eq!(v.domain_path, "/sales/");
    assert!(!v.restart_required && !v.redundant && v.source_nat_ip_id.is_none());
    assert_eq!(
        vpc::get_by_uuid(&db, v.uuid).await.unwrap(),
        Some(v.clone())
    );
    assert_eq!(vpc::count_for_account(&db, f.account_id).await.unwrap(), 2);

    let page = vpc::list(
        &db,
        &VpcFilter {
            scope: Scope::account(f.account_id),
            ..Default::default()
        },
        Page::new(1, 1),
    )
    .await
    .unwrap();
    assert_eq!((page.total, page.items.len()), (2, 1));
    let by_keyword = vpc::list(
        &db,
        &VpcFilter {
            keyword: Some("WE".into()),
            scope: Scope {
                domain_path_prefix: Some("/sales/".into()),
                ..Default::default()
            },
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(by_keyword.items, vec![v.clone()]);
    let elsewhere = vpc::list(
        &db,
        &VpcFilter {
            scope: Scope {
                domain_path_prefix: Some("/other/".into()),
                ..Default::default()
            },
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(elsewhere.total, 0);

    assert!(
        vpc::set_state(&db, v.id, vpc::STATE_INACTIVE)
            .await
            .unwrap()
    );
    assert!(vpc::set_restart_required(&db, v.id, true).await.unwrap());
    assert!(vpc::update(&db, v.id, Some("web2"), None).await.unwrap());
    let changed = vpc::get_by_id(&db, v.id).await.unwrap().unwrap();
    assert_eq!(
        (
            changed.name.as_str(),
            changed.state.as_str(),
            changed.restart_required
        ),
        ("web2", "Inactive", true)
    );

    assert!(vpc::remove(&db, other.id).await.unwrap());
    assert!(!vpc::remove(&db, other.id).await.unwrap());
    let gone = vpc::get_by_uuid(&db, other.uuid).await.unwrap().unwrap();
    assert!(gone.removed.is_some());
    assert_eq!(vpc::count_for_account(&db, f.account_id).await.unwrap(), 1);
    let all = vpc::list(&db, &VpcFilter::default(), Page::ALL)
        .await
        .unwrap();
    assert_eq!(all.total, 1);
});

on_both_backends!(tiers_belong_to_their_vpc, |db, url| {
    let f = fixture(&db).await;
    let v = new_vpc(&db, &f, "web").await;
    let t1 = new_tier(&db, &f, v.id, "front", "10.1.1.0/24").await;
    let t2 = new_tier(&db, &f, v.id, "back", "10.1.2.0/24").await;
    assert_eq!(t1.state, network::STATE_ALLOCATED);
    assert_eq!(t1.traffic_type, network::TRAFFIC_GUEST);
    assert_eq!(t1.network_acl_id, Some(acl::DEFAULT_ALLOW_ID));
    assert_eq!(network::count_tiers(&db, v.id).await.unwrap(), 2);

    assert!(
        network::set_vnet(&db, t1.id, Some("5000"), Some("vxlan://5000"))
            .await
            .unwrap()
    );
    assert!(
        network::set_state(&db, t1.id, network::STATE_IMPLEMENTED)
            .await
            .unwrap()
    );
    assert!(
        network::set_acl(&db, t1.id, Some(acl::DEFAULT_DENY_ID))
            .await
            .unwrap()
    );
    let t1 = network::get_by_uuid(&db, t1.uuid).await.unwrap().unwrap();
    assert_eq!(t1.broadcast_uri.as_deref(), Some("vxlan://5000"));
    assert_eq!(t1.network_acl_id, Some(acl::DEFAULT_DENY_ID));

    let listed = network::list(
        &db,
        &NetworkFilter {
            vpc_id: Some(v.id),
            keyword: Some("ron".into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(listed.items, vec![t1.clone()]);

    assert!(network::remove(&db, t2.id).await.unwrap());
    assert_eq!(network::count_tiers(&db, v.id).await.unwrap(), 1);
    let gone = network::get_by_id(&db, t2.id).await.unwrap().unwrap();
    assert_eq!(gone.state, network::STATE_DESTROY);
    assert!(gone.removed.is_some());
    let outside = network::list(
        &db,
        &NetworkFilter {
            in_vpc: Some(false),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(outside.total, 0);
});

on_both_backends!(concurrent_vnet_allocations_never_share_a_vnet, |db, url| {
    const TASKS: usize = 8;
    const PER_TASK: usize = 10;
    let f = fixture(&db).await;
    assert_eq!(
        vnet::populate(&db, f.physnet_id, "100-189").await.unwrap(),
        90
    );
    // Populating again adds nothing.
    assert_eq!(
        vnet::populate(&db, f.physnet_id, "100-189").await.unwrap(),
        0
    );
    assert_eq!(vnet::count_free(&db, f.physnet_id).await.unwrap(), 90);

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let db = db.clone();
        let physnet = f.physnet_id;
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..PER_TASK {
                let network_id = (t * 1000 + i) as i64;
                let vnet = if (t + i) % 2 == 0 {
                    vnet::allocate(&db, physnet, network_id).await.unwrap()
                } else {
                    // Inside a transaction, as the tier implementation does.
                    let mut tx = db.begin().await.unwrap();
                    let vnet = vnet::allocate(&mut tx, physnet, network_id).await.unwrap();
                    tx.commit().await.unwrap();
                    vnet
                };
                got.push(vnet.expect("a free vnet"));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), TASKS * PER_TASK);
    assert_eq!(distinct.len(), TASKS * PER_TASK, "{all:?}");
    // The lowest ones went first.
    let mut numbers: Vec<i64> = all.iter().map(|v| v.parse().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, (100..180).collect::<Vec<i64>>());
    assert_eq!(vnet::count_free(&db, f.physnet_id).await.unwrap(), 10);

    // Released vnets come back; the lowest free one is handed out next.
    assert!(vnet::release(&db, f.physnet_id, "105").await.unwrap());
    assert!(!vnet::release(&db, f.physnet_id, "105").await.unwrap());
    assert_eq!(
        vnet::allocate(&db, f.physnet_id, 77)
            .await
            .unwrap()
            .as_deref(),
        Some("105")
    );
    assert_eq!(
        vnet::vnet_of_network(&db, f.physnet_id, 77)
            .await
            .unwrap()
            .as_deref(),
        Some("105")
    );
    for _ in 0..10 {
        assert!(
            vnet::allocate(&db, f.physnet_id, 78)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert_eq!(vnet::allocate(&db, f.physnet_id, 79).await.unwrap(), None);
    assert_eq!(vnet::release_for_network(&db, 78).await.unwrap(), 10);
    assert_eq!(vnet::count_free(&db, f.physnet_id).await.unwrap(), 10);
    assert!(vnet::populate(&db, f.physnet_id, "9-1").await.is_err());

    // PostgreSQL: a vnet taken in an open transaction is skipped, not waited for, by
    // another caller; rolled back, it is free again. (On SQLite the open transaction
    // holds the database's only write lock, so there is nothing to show.)
    if db.backend() == Backend::Postgres {
        let mut tx = db.begin().await.unwrap();
        let held = vnet::allocate(&mut tx, f.physnet_id, 90)
            .await
            .unwrap()
            .unwrap();
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            vnet::allocate(&db, f.physnet_id, 91),
        )
        .await
        .expect("not blocked by the open transaction")
        .unwrap()
        .unwrap();
        assert_ne!(held, other);
        tx.rollback().await.unwrap();
        assert_eq!(vnet::count_free(&db, f.physnet_id).await.unwrap(), 9);
        assert_eq!(
            vnet::allocate(&db, f.physnet_id, 92).await.unwrap(),
            Some(held)
        );
    }
});

on_both_backends!(routers_bump_generations_atomically, |db, url| {
    const TASKS: usize = 8;
    const BUMPS: usize = 20;
    let f = fixture(&db).await;
    let v = new_vpc(&db, &f, "web").await;
    let r = new_router(&db, &f, v.id).await;
    assert_eq!(r.name, format!("r-{}-VM", r.id));
    assert_eq!(r.state, router::STATE_STOPPED);
    assert_eq!((r.config_generation, r.applied_generation), (0, 0));

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let db = db.clone();
        let id = r.id;
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..BUMPS {
                if (t + i) % 2 == 0 {
                    seen.push(router::bump_generation(&db, id).await.unwrap());
                } else {
                    // Inside a transaction, as the orchestration does with its writes.
                    let mut tx = db.begin().await.unwrap();
                    let g = router::bump_generation(&mut tx, id).await.unwrap();
                    tx.commit().await.unwrap();
                    seen.push(g);
                }
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seen = t.await.unwrap();
        // Each caller sees its own values increase.
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        all.extend(seen);
    }
    all.sort();
    assert_eq!(all, (1..=(TASKS * BUMPS) as i64).collect::<Vec<i64>>());

    // A rolled-back bump does not count.
    let mut tx = db.begin().await.unwrap();
    assert_eq!(router::bump_generation(&mut tx, r.id).await.unwrap(), 161);
    tx.rollback().await.unwrap();
    assert_eq!(router::bump_generation(&db, r.id).await.unwrap(), 161);

    let out_of_sync = RouterFilter {
        out_of_sync: Some(true),
        ..Default::default()
    };
    assert_eq!(
        router::list(&db, &out_of_sync, Page::ALL)
            .await
            .unwrap()
            .total,
        1
    );
    assert_eq!(router::mark_applied(&db, r.id, 161).await.unwrap(), 161);
    assert_eq!(router::mark_applied(&db, r.id, 100).await.unwrap(), 161);
    assert_eq!(
        router::list(&db, &out_of_sync, Page::ALL)
            .await
            .unwrap()
            .total,
        0
    );
    assert!(
        router::transition(&db, r.id, router::STATE_STOPPED, router::STATE_STARTING)
            .await
            .unwrap()
    );
    assert!(
        !router::transition(&db, r.id, router::STATE_STOPPED, router::STATE_STARTING)
            .await
            .unwrap()
    );
    assert!(
        router::set_agent_endpoint(&db, r.id, Some("127.0.0.1:3922"))
            .await
            .unwrap()
    );
    let listed = router::list(
        &db,
        &RouterFilter {
            vpc_id: Some(v.id),
            scope: Scope {
                domain_path_prefix: Some("/".into()),
                ..Default::default()
            },
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(listed.total, 1);
    assert_eq!(listed.items[0].state, router::STATE_STARTING);
    assert_eq!(
        listed.items[0].agent_endpoint.as_deref(),
        Some("127.0.0.1:3922")
    );

    assert!(router::remove(&db, r.id).await.unwrap());
    let gone = router::get_by_uuid(&db, r.uuid).await.unwrap().unwrap();
    assert_eq!(gone.state, router::STATE_DESTROYED);
    assert!(matches!(
        router::bump_generation(&db, r.id).await,
        Err(StoreError::NotFound { .. })
    ));
});

on_both_backends!(nics_get_unique_macs_and_device_indexes, |db, url| {
    const TASKS: usize = 8;
    const PER_TASK: usize = 25;
    let f = fixture(&db).await;
    let v = new_vpc(&db, &f, "web").await;
    let tier = new_tier(&db, &f, v.id, "front", "10.1.1.0/24").await;
    let r = new_router(&db, &f, v.id).await;
    let owner = NicOwner::Router(r.id);
    assert_eq!(router::next_device_index(&db, owner).await.unwrap(), 0);
    let control = router::create_nic(
        &db,
        NewNic {
            owner,
            network_id: tier.id,
            device_index: None,
            ip4_address: Some("169.254.3.4".parse().unwrap()),
            netmask: Some("255.255.0.0".parse().unwrap()),
            gateway: None,
            role: router::ROLE_CONTROL.into(),
        },
    )
    .await
    .unwrap();
    let guest = router::create_nic(
        &db,
        NewNic {
            owner,
            network_id: tier.id,
            device_index: None,
            ip4_address: Some("10.1.1.1".parse().unwrap()),
            netmask: Some("255.255.255.0".parse().unwrap()),
            gateway: None,
            role: router::ROLE_GUEST.into(),
        },
    )
    .await
    .unwrap();
    assert_eq!((control.device_index, guest.device_index), (0, 1));
    assert_eq!(router::next_device_index(&db, owner).await.unwrap(), 2);
    assert_eq!(
        router::nic_by_uuid(&db, guest.uuid).await.unwrap(),
        Some(guest.clone())
    );

    // Many VM NICs drawn concurrently: every MAC differs and is locally administered.
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let db = db.clone();
        let network_id = tier.id;
        tasks.push(tokio::spawn(async move {
            let mut macs = Vec::new();
            for i in 0..PER_TASK {
                let nic = router::create_nic(
                    &db,
                    NewNic {
                        owner: NicOwner::Vm((t * 100 + i) as i64 + 1),
                        network_id,
                        device_index: None,
                        ip4_address: None,
                        netmask: None,
                        gateway: None,
                        role: router::ROLE_GUEST.into(),
                    },
                )
                .await
                .unwrap();
                assert_eq!(nic.device_index, 0);
                macs.push(nic.mac_address);
            }
            macs
        }));
    }
    let mut macs = vec![control.mac_address.clone(), guest.mac_address.clone()];
    for t in tasks {
        macs.extend(t.await.unwrap());
    }
    let distinct: HashSet<&String> = macs.iter().collect();
    assert_eq!(distinct.len(), TASKS * PER_TASK + 2);
    assert!(macs.iter().all(|m| m.starts_with("02:") && m.len() == 17));

    // The database itself refuses a second live NIC with the same MAC.
    let dup = match &db {
        Db::Sqlite(pool) => sqlx::query(
            "INSERT INTO nics (uuid, vm_id, network_id, device_index, mac_address, role, created) \
             VALUES ('dup', 999, $1, 0, $2, 'Guest', 0)",
        )
        .bind(tier.id)
        .bind(&guest.mac_address)
        .execute(pool)
        .await
        .map(|_| ()),
        Db::Postgres(pool) => sqlx::query(
            "INSERT INTO nics (uuid, vm_id, network_id, device_index, mac_address, role, created) \
             VALUES ('dup', 999, $1, 0, $2, 'Guest', 0)",
        )
        .bind(tier.id)
        .bind(&guest.mac_address)
        .execute(pool)
        .await
        .map(|_| ()),
    };
    assert!(dup.is_err());

    let router_nics = router::list_nics(
        &db,
        &NicFilter {
            owner: Some(owner),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(router_nics.items, vec![control.clone(), guest.clone()]);
    assert!(router::remove_nic(&db, guest.id).await.unwrap());
    assert_eq!(router::next_device_index(&db, owner).await.unwrap(), 1);
    // Removing the router removes its remaining NICs.
    assert!(router::remove(&db, r.id).await.unwrap());
    let left = router::list_nics(
        &db,
        &NicFilter {
            owner: Some(owner),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(left.total, 0);
});

fn rule(acl_id: i64, number: Option<i64>, action: &str) -> NewAclItem {
    NewAclItem {
        acl_id,
        number,
        action: action.into(),
        traffic_type: "Ingress".into(),
        protocol: "tcp".into(),
        start_port: Some(22),
        end_port: Some(22),
        cidrs: vec!["10.0.0.0/8".into(), "192.168.0.0/16".into()],
        ..Default::default()
    }
}

on_both_backends!(builtin_acls_are_seeded_once_and_immutable, |db, url| {
    let builtin = acl::list(
        &db,
        &AclFilter {
            include_builtin: true,
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(builtin.total, 2);
    let deny = &builtin.items[0];
    let allow = &builtin.items[1];
    assert_eq!(
        (deny.id, deny.name.as_str(), allow.id, allow.name.as_str()),
        (
            acl::DEFAULT_DENY_ID,
            acl::DEFAULT_DENY,
            acl::DEFAULT_ALLOW_ID,
            acl::DEFAULT_ALLOW
        )
    );
    assert!(deny.is_builtin() && allow.is_builtin());
    for (list, action) in [(deny, "Deny"), (allow, "Allow")] {
        let items = acl::list_items(
            &db,
            &AclItemFilter {
                acl_id: Some(list.id),
                ..Default::default()
            },
            Page::ALL,
        )
        .await
        .unwrap();
        let summary: Vec<(i64, &str, &str, &str, Vec<&str>)> = items
            .items
            .iter()
            .map(|i| {
                (
                    i.number,
                    i.action.as_str(),
                    i.traffic_type.as_str(),
                    i.protocol.as_str(),
                    i.cidrs(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, action, "Ingress", "all", vec!["0.0.0.0/0"]),
                (2, action, "Egress", "all", vec!["0.0.0.0/0"]),
            ]
        );
        assert!(items.items.iter().all(|i| i.state == acl::ITEM_ACTIVE));
    }

    // Built-in lists and their rules refuse every change.
    let conflict = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Conflict(_)));
    assert!(conflict(
        acl::create_item(&db, rule(acl::DEFAULT_DENY_ID, None, "Allow"))
            .await
            .map(|_| ())
    ));
    assert!(conflict(
        acl::remove_list(&db, acl::DEFAULT_ALLOW_ID)
            .await
            .map(|_| ())
    ));
    assert!(conflict(
        acl::update_list(&db, acl::DEFAULT_ALLOW_ID, Some("x".into()), None)
            .await
            .map(|_| ())
    ));
    let seeded = acl::list_items(&db, &AclItemFilter::default(), Page::ALL)
        .await
        .unwrap();
    assert_eq!(seeded.total, 4);
    let first = seeded.items[0].id;
    assert!(conflict(acl::remove_item(&db, first).await.map(|_| ())));
    assert!(conflict(
        acl::set_item_state(&db, first, acl::ITEM_REVOKE)
            .await
            .map(|_| ())
    ));

    // Connecting again (a restarted manager) seeds nothing more.
    let again = Db::connect(&url).await.expect("reconnect");
    let lists = acl::list(
        &again,
        &AclFilter {
            include_builtin: true,
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(lists.total, 2);
    let items = acl::list_items(&again, &AclItemFilter::default(), Page::ALL)
        .await
        .unwrap();
    assert_eq!(items.total, 4);
    again.close().await;
});

on_both_backends!(acl_item_numbers_are_unique_per_list, |db, url| {
    let f = fixture(&db).await;
    let v = new_vpc(&db, &f, "web").await;
    let l1 = acl::create_list(&db, v.id, "web-acl", "for the web tier")
        .await
        .unwrap();
    let l2 = acl::create_list(&db, v.id, "db-acl", "").await.unwrap();
    assert!(!l1.is_builtin());
    assert_eq!(
        acl::get_by_uuid(&db, l1.uuid).await.unwrap(),
        Some(l1.clone())
    );

    let a = acl::create_item(&db, rule(l1.id, Some(10), "Allow"))
        .await
        .unwrap();
    assert_eq!(a.state, acl::ITEM_STAGED);
    assert_eq!(a.cidrs(), vec!["10.0.0.0/8", "192.168.0.0/16"]);
    // Same number in the same list: refused; in another list: fine.
    assert!(matches!(
        acl::create_item(&db, rule(l1.id, Some(10), "Deny")).await,
        Err(StoreError::Duplicate(_))
    ));
    acl::create_item(&db, rule(l2.id, Some(10), "Deny"))
        .await
        .unwrap();
    // Without a number: one past the highest.
    let next = acl::create_item(&db, rule(l1.id, None, "Deny"))
        .await
        .unwrap();
    assert_eq!(next.number, 11);
    // A removed rule frees its number.
    assert!(acl::remove_item(&db, a.id).await.unwrap());
    let again = acl::create_item(&db, rule(l1.id, Some(10), "Deny"))
        .await
        .unwrap();
    assert_eq!(again.number, 10);
    // What a new or changed item's checks read instead of the list: the
    // live items counted, the highest number, whether another has one.
    let numbers = |number, except| acl::item_numbers(&db, l1.id, number, except);
    assert_eq!(
        numbers(Some(10), None).await.unwrap(),
        acl::ItemNumbers {
            count: 2,
            max: Some(11),
            taken: Some(10)
        }
    );
    assert_eq!(numbers(Some(10), Some(again.id)).await.unwrap().taken, None);
    assert_eq!(numbers(Some(12), None).await.unwrap().taken, None);
    assert_eq!(numbers(None, None).await.unwrap().taken, None);
    let empty = acl::create_list(&db, v.id, "empty", "").await.unwrap();
    assert_eq!(
        acl::item_numbers(&db, empty.id, Some(1), None)
            .await
            .unwrap(),
        acl::ItemNumbers {
            count: 0,
            max: None,
            taken: None
        }
    );
    assert!(acl::remove_list(&db, empty.id).await.unwrap());
    assert!(
        acl::set_item_state(&db, again.id, acl::ITEM_ACTIVE)
            .await
            .unwrap()
    );
    let mut changed = rule(l1.id, None, "Allow");
    changed.protocol = "udp".into();
    let updated = acl::update_item(&db, again.id, changed).await.unwrap();
    assert_eq!(
        (
            updated.number,
            updated.protocol.as_str(),
            updated.state.as_str()
        ),
        (10, "udp", acl::ITEM_STAGED.as_str())
    );

    let items = acl::list_items(
        &db,
        &AclItemFilter {
            acl_id: Some(l1.id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(
        items.items.iter().map(|i| i.number).collect::<Vec<_>>(),
        vec![10, 11]
    );

    let of_vpc = acl::list(
        &db,
        &AclFilter {
            vpc_id: Some(v.id),
            include_builtin: true,
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(of_vpc.total, 4);
    let updated = acl::update_list(&db, l2.id, None, Some("database".into()))
        .await
        .unwrap();
    assert_eq!(updated.description, "database");
    assert!(acl::remove_list(&db, l1.id).await.unwrap());
    assert!(!acl::remove_list(&db, l1.id).await.unwrap());
    assert_eq!(
        acl::list_items(
            &db,
            &AclItemFilter {
                acl_id: Some(l1.id),
                ..Default::default()
            },
            Page::ALL,
        )
        .await
        .unwrap()
        .total,
        0
    );
    let own = acl::list(
        &db,
        &AclFilter {
            vpc_id: Some(v.id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(own.items, vec![updated]);
});

on_both_backends!(private_gateways_and_static_routes, |db, url| {
    use vpc_manager::store::gateway::{
        self, GatewayFilter, NewPrivateGateway, NewStaticRoute, RouteFilter,
    };
    let f = fixture(&db).await;
    let v = new_vpc(&db, &f, "web").await;
    let private = network::create(
        &db,
        NewNetwork {
            name: "private".into(),
            zone_id: f.zone_id,
            physical_network_id: Some(f.physnet_id),
            account_id: f.account_id,
            domain_id: f.domain_id,
            network_offering_id: f.tier_offering_id,
            cidr: Some("192.168.50.0/24".into()),
            broadcast_uri: Some("vlan://700".into()),
            traffic_type: network::TRAFFIC_PRIVATE_GATEWAY.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Not a tier of any VPC.
    assert_eq!(network::count_tiers(&db, v.id).await.unwrap(), 0);

    let gw = gateway::create(
        &db,
        NewPrivateGateway {
            vpc_id: v.id,
            network_id: private.id,
            ip4_address: "192.168.50.10".into(),
            gateway: "192.168.50.1".into(),
            netmask: "255.255.255.0".into(),
            broadcast_uri: "vlan://700".into(),
            source_nat: true,
            network_acl_id: Some(acl::DEFAULT_DENY_ID),
            account_id: f.account_id,
            domain_id: f.domain_id,
        },
    )
    .await
    .unwrap();
    assert_eq!(gw.state, gateway::GATEWAY_CREATING);
    assert!(gw.source_nat);
    assert!(
        gateway::set_state(&db, gw.id, gateway::GATEWAY_READY)
            .await
            .unwrap()
    );
    assert!(
        gateway::set_acl(&db, gw.id, Some(acl::DEFAULT_ALLOW_ID))
            .await
            .unwrap()
    );
    let gw = gateway::get_by_uuid(&db, gw.uuid).await.unwrap().unwrap();
    assert_eq!(
        (gw.state.as_str(), gw.network_acl_id),
        (gateway::GATEWAY_READY.as_str(), Some(acl::DEFAULT_ALLOW_ID))
    );
    let listed = gateway::list(
        &db,
        &GatewayFilter {
            vpc_id: Some(v.id),
            scope: Scope {
                domain_path_prefix: Some("/sales/".into()),
                ..Default::default()
            },
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(listed.items, vec![gw.clone()]);

    let route = gateway::create_route(
        &db,
        NewStaticRoute {
            vpc_id: v.id,
            vpc_gateway_id: Some(gw.id),
            cidr: "172.16.0.0/16".into(),
            next_hop: None,
            account_id: f.account_id,
            domain_id: f.domain_id,
        },
    )
    .await
    .unwrap();
    assert_eq!(route.state, gateway::ROUTE_STAGED);
    assert_eq!(gateway::count_routes_via(&db, gw.id).await.unwrap(), 1);
    assert!(
        gateway::set_route_state(&db, route.id, gateway::ROUTE_ACTIVE)
            .await
            .unwrap()
    );
    let routes = gateway::list_routes(
        &db,
        &RouteFilter {
            vpc_id: Some(v.id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(routes.total, 1);
    assert_eq!(routes.items[0].state, gateway::ROUTE_ACTIVE);

    assert!(gateway::remove_route(&db, route.id).await.unwrap());
    let gone = gateway::route_by_uuid(&db, route.uuid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.state, gateway::ROUTE_REVOKE);
    assert!(gone.removed.is_some());
    assert_eq!(gateway::count_routes_via(&db, gw.id).await.unwrap(), 0);
    assert!(gateway::remove(&db, gw.id).await.unwrap());
    assert!(!gateway::remove(&db, gw.id).await.unwrap());
    assert_eq!(
        gateway::list(&db, &GatewayFilter::default(), Page::ALL)
            .await
            .unwrap()
            .total,
        0
    );
});

on_both_backends!(nat_and_load_balancing_rules, |db, url| {
    use std::net::Ipv4Addr;
    use vpc_manager::store::rule::{self, NewRule, RuleFilter};
    use vpc_manager::store::vlan::{self, IpOwner, NewVlanRange};
    let f = fixture(&db).await;
    let v = new_vpc(&db, &f, "web").await;
    let tier = new_tier(&db, &f, v.id, "front", "10.1.1.0/24").await;
    vlan::create_range(
        &db,
        NewVlanRange {
            zone_id: f.zone_id,
            physical_network_id: Some(f.physnet_id),
            vlan_id: "untagged".into(),
            gateway: Ipv4Addr::new(203, 0, 113, 1),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            start_ip: Ipv4Addr::new(203, 0, 113, 10),
            end_ip: Ipv4Addr::new(203, 0, 113, 20),
        },
    )
    .await
    .unwrap();
    let owner = IpOwner {
        account_id: f.account_id,
        domain_id: f.domain_id,
        vpc_id: Some(v.id),
        source_nat: false,
    };
    let ip = vlan::allocate_ip(&db, f.zone_id, None, owner)
        .await
        .unwrap()
        .unwrap();
    assert!(
        vpc::set_source_nat_ip(&db, v.id, Some(ip.id))
            .await
            .unwrap()
    );
    assert_eq!(
        vpc::get_by_id(&db, v.id)
            .await
            .unwrap()
            .unwrap()
            .source_nat_ip_id,
        Some(ip.id)
    );

    let pf = rule::create(
        &db,
        NewRule {
            ip_address_id: ip.id,
            network_id: tier.id,
            purpose: rule::PURPOSE_PORT_FORWARDING.into(),
            protocol: "tcp".into(),
            start_port: Some(2222),
            end_port: Some(2222),
            dest_ip: Some("10.1.1.20".into()),
            dest_start_port: Some(22),
            dest_end_port: Some(22),
            source_cidrs: vec!["0.0.0.0/0".into()],
            account_id: f.account_id,
            domain_id: f.domain_id,
        },
    )
    .await
    .unwrap();
    assert_eq!(pf.state, rule::STATE_ADD);
    assert_eq!(pf.source_cidrs.as_deref(), Some("0.0.0.0/0"));
    assert!(
        rule::set_state(&db, pf.id, rule::STATE_ACTIVE)
            .await
            .unwrap()
    );

    let (lb_rule, lb) = rule::create_load_balancer(
        &db,
        NewRule {
            ip_address_id: ip.id,
            network_id: tier.id,
            protocol: "tcp".into(),
            account_id: f.account_id,
            domain_id: f.domain_id,
            ..Default::default()
        },
        "web-lb",
        "roundrobin",
        80,
        8080,
    )
    .await
    .unwrap();
    assert_eq!(lb_rule.purpose, rule::PURPOSE_LOAD_BALANCING);
    assert_eq!(
        (lb.id, lb.name.as_str(), lb.public_port, lb.private_port),
        (lb_rule.id, "web-lb", 80, 8080)
    );
    assert!(rule::add_member(&db, lb.id, "10.1.1.20").await.unwrap());
    assert!(rule::add_member(&db, lb.id, "10.1.1.21").await.unwrap());
    assert!(!rule::add_member(&db, lb.id, "10.1.1.20").await.unwrap());
    assert_eq!(
        rule::members(&db, lb.id).await.unwrap(),
        vec!["10.1.1.20".to_string(), "10.1.1.21".to_string()]
    );
    assert!(rule::remove_member(&db, lb.id, "10.1.1.21").await.unwrap());
    assert!(
        rule::update_load_balancer(&db, lb.id, None, Some("leastconn"))
            .await
            .unwrap()
    );
    assert_eq!(
        rule::load_balancer(&db, lb.id)
            .await
            .unwrap()
            .unwrap()
            .algorithm,
        "leastconn"
    );

    let of_vpc = rule::list(
        &db,
        &RuleFilter {
            vpc_id: Some(v.id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(of_vpc.total, 2);
    let pfs = rule::list(
        &db,
        &RuleFilter {
            ip_address_id: Some(ip.id),
            purpose: Some(rule::PURPOSE_PORT_FORWARDING.into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(pfs.items.len(), 1);
    assert_eq!(pfs.items[0].state, rule::STATE_ACTIVE);

    assert!(rule::remove(&db, lb.id).await.unwrap());
    assert!(rule::members(&db, lb.id).await.unwrap().is_empty());
    let gone = rule::get_by_uuid(&db, lb_rule.uuid).await.unwrap().unwrap();
    assert_eq!(gone.state, rule::STATE_REVOKE);
    assert_eq!(
        rule::list(&db, &RuleFilter::default(), Page::ALL)
            .await
            .unwrap()
            .total,
        1
    );
});
