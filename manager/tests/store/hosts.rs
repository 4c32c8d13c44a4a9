//! Hosts' status as the host monitor moves it: every move is conditional on
//! the status read, so of managers racing on one host exactly one wins.

use vpc_manager::provision::hosts::register_default;
use vpc_manager::store::zone::{self, NewZone};
use vpc_manager::store::{bootstrap, host};

use crate::support::store::on_both_backends;

on_both_backends!(
    host_status_moves_only_from_the_status_read_and_one_racer_wins,
    |db, url| {
        bootstrap::seed(&db).await.unwrap();
        zone::create(
            &db,
            NewZone {
                name: "zone1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let made = register_default(&db, "unix:///run/h.sock", "netns", "h1")
            .await
            .unwrap();
        let id = made[0].host_id;
        let read = |db: vpc_manager::store::Db| async move {
            host::get_by_id(&db, id).await.unwrap().unwrap()
        };
        let first = read(db.clone()).await;
        assert_eq!(first.status, "Up");
        assert!(first.disconnected.is_none());

        // Up to Disconnected once; the second try reads a status gone.
        assert!(
            host::transit_status(&db, id, "Up", "Disconnected")
                .await
                .unwrap()
        );
        assert!(
            !host::transit_status(&db, id, "Up", "Disconnected")
                .await
                .unwrap()
        );
        let gone = read(db.clone()).await;
        assert_eq!(gone.status, "Disconnected");
        let since = gone.disconnected.expect("the time it was found silent");
        assert_eq!(gone.last_ping, first.last_ping, "no answer recorded");

        // Eight managers declare it Down at once: one does.
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut tx = db.begin().await.unwrap();
                    let won = host::transit_status(&mut tx, id, "Disconnected", "Down")
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                    won
                })
            })
            .collect();
        let mut won = 0;
        for r in racers {
            won += usize::from(r.await.unwrap());
        }
        assert_eq!(won, 1);
        let down = read(db.clone()).await;
        assert_eq!(down.status, "Down");
        assert_eq!(down.disconnected, Some(since), "the first silence is kept");

        // Back: Up, with the answer's time, no longer disconnected.
        assert!(host::transit_status(&db, id, "Down", "Up").await.unwrap());
        let back = read(db.clone()).await;
        assert_eq!(back.status, "Up");
        assert!(back.disconnected.is_none());
        assert!(back.last_ping >= first.last_ping);

        // A Down host's VMs: none here, nothing touched.
        assert!(host::stop_vms_on(&db, id).await.unwrap().is_empty());
        let (user, account) = bootstrap::system_user(&db).await.unwrap();
        assert!(user > 0 && account > 0);
    }
);
