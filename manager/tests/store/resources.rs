//! Zones, configuration, resource limits and public IP ranges.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use vpc_manager::store::vlan::{self, IpOwner, NewVlanRange};
use vpc_manager::store::zone::{self, NewZone, ZoneFilter};
use vpc_manager::store::{Page, StoreError, account, config, domain, limit};

use crate::support::store::on_both_backends;
use crate::{child_domain, new_account};

on_both_backends!(
    zones_resolve_removed_rows_by_uuid_but_do_not_list_them,
    |db, url| {
        let z = zone::create(
            &db,
            NewZone {
                name: "zone1".into(),
                dns1: Some("8.8.8.8".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (z.network_type.as_str(), z.allocation_state.as_str()),
            ("Advanced", "Enabled")
        );
        let pn = zone::create_physical_network(
            &db,
            z.id,
            "pn1",
            "VXLAN",
            Some("100-199"),
            &[("Guest", None), ("Public", Some("br-pub"))],
        )
        .await
        .unwrap();
        let public = zone::physical_network_for_traffic(&db, z.id, "Public")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(public.id, pn.id);
        assert_eq!(zone::traffic_types(&db, pn.id).await.unwrap().len(), 2);
        assert!(
            zone::physical_network_for_traffic(&db, z.id, "Management")
                .await
                .unwrap()
                .is_none()
        );

        assert!(zone::remove(&db, z.id).await.unwrap());
        let gone = zone::get_by_uuid(&db, z.uuid)
            .await
            .unwrap()
            .expect("found by UUID");
        assert!(gone.removed.is_some());
        assert_eq!(
            zone::list(&db, &ZoneFilter::default(), Page::ALL)
                .await
                .unwrap()
                .total,
            0
        );
        // The name is free again once the zone is removed.
        zone::create(
            &db,
            NewZone {
                name: "zone1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
);

on_both_backends!(
    configuration_falls_back_to_defaults_and_keeps_updates,
    |db, url| {
        assert_eq!(
            config::value(&db, "vpc.max.networks")
                .await
                .unwrap()
                .as_deref(),
            Some("3")
        );
        assert_eq!(
            config::value_i64(&db, "default.page.size").await.unwrap(),
            Some(500)
        );
        assert_eq!(
            config::value_bool(&db, "allow.non.rfc1918.compliant.ips")
                .await
                .unwrap(),
            Some(false)
        );
        assert_eq!(
            config::value(&db, "guest.domain.suffix")
                .await
                .unwrap()
                .as_deref(),
            Some("cloud.internal")
        );

        let row = config::update(&db, "vpc.max.networks", Some("5"))
            .await
            .unwrap()
            .expect("known key");
        assert_eq!(
            (
                row.value.as_deref(),
                row.default_value.as_deref(),
                row.effective()
            ),
            (Some("5"), Some("3"), Some("5"))
        );
        assert_eq!(
            config::value_i64(&db, "vpc.max.networks").await.unwrap(),
            Some(5)
        );
        // A restart re-seeds defaults but keeps what the administrator set.
        config::seed(&db).await.unwrap();
        assert_eq!(
            config::value_i64(&db, "vpc.max.networks").await.unwrap(),
            Some(5)
        );
        config::update(&db, "vpc.max.networks", None).await.unwrap();
        assert_eq!(
            config::value_i64(&db, "vpc.max.networks").await.unwrap(),
            Some(3)
        );
        assert!(
            config::update(&db, "no.such.key", Some("1"))
                .await
                .unwrap()
                .is_none()
        );

        let vpc_keys = config::list(
            &db,
            &config::ConfigFilter {
                keyword: Some("VPC".into()),
                ..Default::default()
            },
            Page::ALL,
        )
        .await
        .unwrap();
        assert!(vpc_keys.items.iter().any(|c| c.name == "max.account.vpcs"));
        assert!(vpc_keys.items.iter().all(|c| c.name.contains("vpc")));
        let net = config::list(
            &db,
            &config::ConfigFilter {
                category: Some("Network".into()),
                ..Default::default()
            },
            Page::first(2),
        )
        .await
        .unwrap();
        assert_eq!(net.items.len(), 2);
        assert!(net.total > 2);
    }
);

on_both_backends!(
    resource_limits_fall_back_to_configured_defaults,
    |db, url| {
        let root = domain::root(&db).await.unwrap();
        let d = child_domain(&db, root.id, "lim").await;
        let user_acct = new_account(&db, d.id, "u", account::TYPE_USER).await;
        let other = new_account(&db, d.id, "v", account::TYPE_USER).await;
        let admin = new_account(&db, root.id, "root-admin", account::TYPE_ADMIN).await;

        assert_eq!(
            limit::effective_for_account(&db, user_acct.id, "vpc")
                .await
                .unwrap(),
            20
        );
        assert_eq!(
            limit::effective_for_account(&db, admin.id, "vpc")
                .await
                .unwrap(),
            limit::UNLIMITED
        );
        limit::set_for_account(&db, user_acct.id, "vpc", 5)
            .await
            .unwrap();
        let row = limit::set_for_account(&db, user_acct.id, "vpc", 4)
            .await
            .unwrap();
        assert_eq!((row.max, row.resource_type.as_str()), (4, "vpc"));
        assert_eq!(
            limit::effective_for_account(&db, user_acct.id, "vpc")
                .await
                .unwrap(),
            4
        );
        config::update(&db, "max.account.vpcs", Some("30"))
            .await
            .unwrap();
        assert_eq!(
            limit::effective_for_account(&db, other.id, "vpc")
                .await
                .unwrap(),
            30
        );
        assert!(
            limit::clear_for_account(&db, user_acct.id, "vpc")
                .await
                .unwrap()
        );
        assert_eq!(
            limit::effective_for_account(&db, user_acct.id, "vpc")
                .await
                .unwrap(),
            30
        );
        assert_eq!(
            limit::effective_for_account(&db, user_acct.id, "network")
                .await
                .unwrap(),
            20
        );

        assert_eq!(
            limit::effective_for_domain(&db, root.id, "vpc")
                .await
                .unwrap(),
            limit::UNLIMITED
        );
        assert_eq!(
            limit::effective_for_domain(&db, d.id, "vpc").await.unwrap(),
            40
        );
        limit::set_for_domain(&db, d.id, "vpc", 7).await.unwrap();
        assert_eq!(
            limit::effective_for_domain(&db, d.id, "vpc").await.unwrap(),
            7
        );
        assert_eq!(
            (limit::type_name(7), limit::type_code("public_ip")),
            (Some("vpc"), Some(1))
        );
        let bad = limit::effective_for_account(&db, user_acct.id, "bogus").await;
        assert!(matches!(bad, Err(StoreError::NotFound { .. })), "{bad:?}");
    }
);

on_both_backends!(
    public_ip_ranges_refuse_overlaps_and_hand_out_each_address_once,
    |db, url| {
        assert!(vlan::ranges_overlap(10, 20, 20, 30) && !vlan::ranges_overlap(10, 20, 21, 30));
        let root = domain::root(&db).await.unwrap();
        let acct = new_account(&db, root.id, "ips", 0).await;
        let z = zone::create(
            &db,
            NewZone {
                name: "z-ip".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let range = |start: u8, end: u8| NewVlanRange {
            zone_id: z.id,
            physical_network_id: None,
            vlan_id: "untagged".into(),
            gateway: Ipv4Addr::new(203, 0, 113, 1),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            start_ip: Ipv4Addr::new(203, 0, 113, start),
            end_ip: Ipv4Addr::new(203, 0, 113, end),
        };
        let r1 = vlan::create_range(&db, range(10, 20)).await.unwrap();
        let overlap = vlan::create_range(&db, range(20, 30)).await;
        assert!(
            matches!(overlap, Err(StoreError::Conflict(_))),
            "{overlap:?}"
        );
        vlan::create_range(&db, range(21, 25)).await.unwrap();
        assert_eq!(
            vlan::list_ranges(&db, Some(z.id), Page::ALL)
                .await
                .unwrap()
                .total,
            2
        );
        let found = vlan::overlapping_range(
            &db,
            z.id,
            Ipv4Addr::new(203, 0, 113, 5),
            Ipv4Addr::new(203, 0, 113, 12),
        )
        .await
        .unwrap();
        assert_eq!(found.map(|r| r.id), Some(r1.id));

        let owner = IpOwner {
            account_id: acct.id,
            domain_id: root.id,
            vpc_id: Some(9),
            source_nat: true,
        };
        let picked = vlan::allocate_ip(&db, z.id, Some(Ipv4Addr::new(203, 0, 113, 15)), owner)
            .await
            .unwrap()
            .expect("free address");
        assert_eq!(
            (
                picked.public_ip_address.to_string().as_str(),
                picked.state.as_str(),
                picked.vpc_id,
                picked.source_nat
            ),
            ("203.0.113.15", "Allocated", Some(9), true)
        );
        assert!(
            vlan::allocate_ip(&db, z.id, Some(Ipv4Addr::new(203, 0, 113, 15)), owner)
                .await
                .unwrap()
                .is_none()
        );

        let mut tasks = Vec::new();
        for _ in 0..5 {
            let db = db.clone();
            let owner = IpOwner {
                source_nat: false,
                vpc_id: None,
                ..owner
            };
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(ip) = vlan::allocate_ip(&db, z.id, None, owner)
                    .await
                    .expect("allocate")
                {
                    got.push(ip.public_ip_address);
                }
                got
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!((all.len(), unique.len()), (15, 15), "{all:?}");

        assert!(vlan::release_ip(&db, picked.id).await.unwrap());
        let again = vlan::allocate_ip(&db, z.id, None, owner)
            .await
            .unwrap()
            .expect("released address");
        assert_eq!(again.public_ip_address.to_string(), "203.0.113.15");
        assert_eq!(
            vlan::ip_by_uuid(&db, picked.uuid)
                .await
                .unwrap()
                .unwrap()
                .account_id,
            Some(acct.id)
        );
        let busy = vlan::remove_range(&db, r1.id).await;
        assert!(matches!(busy, Err(StoreError::Conflict(_))), "{busy:?}");
    }
);
