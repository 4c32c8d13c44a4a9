//! Supervision once, on PostgreSQL: each router's check runs on exactly one
//! live manager of the cluster (counted over real monitor rounds); a
//! manager joining takes its share, one leaving gives it back.

mod support;

use std::collections::BTreeSet;

use vpc_manager::cluster::Shares;
use vpc_manager::provision::monitor::{self, RouterHealth};
use vpc_manager::store::{Page, router};

use support::api::TestManager;
use support::postgres::fresh_database;
use support::vpc::{create_vpc, zone_env};

const VPCS: usize = 12;

/// The routers one monitor round of `m` checked, by name.
async fn checked_by(m: &TestManager) -> BTreeSet<String> {
    let report = monitor::resync_once(&m.app.plane(), &mut RouterHealth::new())
        .await
        .expect("a monitor round");
    assert!(report.failed.is_empty(), "{report:?}");
    report.current.into_iter().chain(report.resynced).collect()
}

/// Each router checked by exactly one of `managers`; returns each one's
/// share.
async fn one_check_each(
    managers: &[&TestManager],
    all: &BTreeSet<String>,
) -> Vec<BTreeSet<String>> {
    let mut shares = Vec::new();
    let mut seen = BTreeSet::new();
    for m in managers {
        let mine = checked_by(m).await;
        for name in &mine {
            assert!(seen.insert(name.clone()), "{name} was checked twice");
        }
        shares.push(mine);
    }
    assert_eq!(&seen, all, "every router is checked");
    shares
}

fn names(managers: &[&TestManager]) -> Vec<String> {
    managers
        .iter()
        .map(|m| m.app.jobs.owner().to_string())
        .collect()
}

/// The routers `me` must check when `live` are the cluster's members.
fn expected(all: &[router::Router], me: &str, live: &[String]) -> BTreeSet<String> {
    let shares = Shares::new(me, live.to_vec());
    all.iter()
        .filter(|r| shares.mine(r.id))
        .map(|r| r.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_router_is_checked_by_one_live_manager_and_shares_follow_members() {
    let url = fresh_database().await;
    let a = TestManager::start(Some(url.clone())).await;
    let b = TestManager::start(Some(url.clone())).await;
    let c = TestManager::start(Some(url.clone())).await;
    let admin = a.admin();
    let env = zone_env(&admin, "zone-sup").await;
    for i in 0..VPCS {
        create_vpc(&admin, &env, &format!("sup-{i}"), &format!("10.{i}.0.0/16")).await;
    }
    let routers: Vec<router::Router> =
        router::list(&a.app.db, &router::RouterFilter::default(), Page::ALL)
            .await
            .expect("routers")
            .items
            .into_iter()
            .filter(|r| r.state == router::STATE_RUNNING)
            .collect();
    assert_eq!(routers.len(), VPCS);
    let all: BTreeSet<String> = routers.iter().map(|r| r.name.clone()).collect();

    let three = [&a, &b, &c];
    let shares = one_check_each(&three, &all).await;
    for (m, share) in three.iter().zip(&shares) {
        let me = m.app.jobs.owner();
        assert_eq!(share, &expected(&routers, me, &names(&three)), "{me}");
    }

    // A fourth joins: it takes its share, the others give exactly that.
    let d = TestManager::start(Some(url.clone())).await;
    let four = [&a, &b, &c, &d];
    let shares = one_check_each(&four, &all).await;
    for (m, share) in four.iter().zip(&shares) {
        let me = m.app.jobs.owner();
        assert_eq!(share, &expected(&routers, me, &names(&four)), "{me}");
    }

    // It leaves: the three cover everything again, as before.
    d.stop().await;
    let shares = one_check_each(&three, &all).await;
    for (m, share) in three.iter().zip(&shares) {
        let me = m.app.jobs.owner();
        assert_eq!(share, &expected(&routers, me, &names(&three)), "{me}");
    }
    c.stop().await;
    b.stop().await;
    a.stop().await;
}
