//! The change protocol (`provision::change`), driven directly against a
//! live manager's store and a recording router, on SQLite and PostgreSQL:
//! a change's rows and the router's generation move together; a refused
//! push puts the rows back and leaves the router looking behind, so the
//! monitor resyncs it; a change that does not reach the router bumps
//! nothing.

mod support;

use vpc_manager::error::Error;
use vpc_manager::orchestration::model::RouterState;
use vpc_manager::orchestration::{AgentError, ElementResult};
use vpc_manager::provision::change::RouterChange;
use vpc_manager::provision::{self, RouterElement};
use vpc_manager::store::{Db, Tx, router, vpc};

use support::api::{TestManager, on_both_backends};
use support::vpc::{create_vpc, zone_env};

/// A test change: the VPC's public MTU, sent as the public NIC.
struct Mtu {
    vpc_id: i64,
    mtu: i64,
    old: i64,
    on_router: bool,
}

impl RouterChange for Mtu {
    type Written = i64;

    fn what(&self) -> &'static str {
        "a test MTU"
    }

    async fn write(&self, tx: &mut Tx) -> Result<i64, Error> {
        vpc::set_public_mtu(tx, self.vpc_id, self.mtu).await?;
        Ok(self.mtu)
    }

    fn reaches_router(&self, written: &i64) -> bool {
        assert_eq!(*written, self.mtu, "reaches_router sees what write made");
        self.on_router
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        element.apply_public_nic(state, generation).await
    }

    async fn undo(&self, db: &Db, written: &i64) -> Result<(), Error> {
        assert_eq!(*written, self.mtu, "undo gets what write made");
        vpc::set_public_mtu(db, self.vpc_id, self.old).await?;
        Ok(())
    }
}

async fn vpc_and_router(m: &TestManager) -> (vpc::Vpc, router::Router) {
    let admin = m.admin();
    let env = zone_env(&admin, "change").await;
    let created = create_vpc(&admin, &env, "change", "10.30.0.0/16").await;
    let uuid = created["id"].as_str().unwrap().to_string();
    let v = vpc::get_by_uuid(&m.app.db, uuid.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let r = provision::vpc_router(&m.app.db, v.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.state, router::STATE_RUNNING);
    assert_eq!(r.applied_generation, r.config_generation, "starts current");
    (v, r)
}

async fn router_now(m: &TestManager, id: i64) -> router::Router {
    router::get_by_id(&m.app.db, id).await.unwrap().unwrap()
}

on_both_backends!(an_applied_change_moves_rows_and_generation_together, |m| {
    let (v, r) = vpc_and_router(m).await;
    let lock = m
        .app
        .network
        .lock(&m.app.db, v.id)
        .await
        .expect("lock the VPC");
    let change = Mtu {
        vpc_id: v.id,
        mtu: 1400,
        old: v.public_mtu,
        on_router: true,
    };
    assert_eq!(lock.apply(&change).await.unwrap(), 1400);
    drop(lock);
    let after = router_now(m, r.id).await;
    assert_eq!(after.config_generation, r.config_generation + 1);
    assert_eq!(after.applied_generation, after.config_generation);
    let v_after = vpc::get_by_id(&m.app.db, v.id).await.unwrap().unwrap();
    assert_eq!(v_after.public_mtu, 1400);
    let sent = m.agent.commands();
    let last = sent.last().expect("the change was sent");
    assert_eq!(last.rpc(), "PlugNic");
    assert_eq!(
        last.generation(),
        u64::try_from(after.config_generation).ok()
    );
});

on_both_backends!(
    a_refused_push_puts_the_rows_back_and_leaves_the_router_behind,
    |m| {
        let (v, r) = vpc_and_router(m).await;
        m.agent
            .fail("PlugNic", AgentError::Failed("test refusal".into()));
        let lock = m
            .app
            .network
            .lock(&m.app.db, v.id)
            .await
            .expect("lock the VPC");
        let change = Mtu {
            vpc_id: v.id,
            mtu: 1300,
            old: v.public_mtu,
            on_router: true,
        };
        let e = lock.apply(&change).await.expect_err("the push fails");
        drop(lock);
        assert!(e.text().contains("test refusal"), "{e}");
        let v_after = vpc::get_by_id(&m.app.db, v.id).await.unwrap().unwrap();
        assert_eq!(v_after.public_mtu, v.public_mtu, "the rows are back");
        let after = router_now(m, r.id).await;
        // The change's generation, then one more for the resync.
        assert_eq!(after.config_generation, r.config_generation + 2);
        assert!(
            after.applied_generation < after.config_generation,
            "the router looks behind: the monitor sends it the reverted state"
        );
        // The same refusal, told apart from a failure before any push.
        let lock = m
            .app
            .network
            .lock(&m.app.db, v.id)
            .await
            .expect("lock the VPC");
        let outcome = lock.apply_or_refused(&change).await;
        drop(lock);
        let refused = outcome
            .expect("written and pushed")
            .expect_err("the router refuses");
        assert!(refused.text().contains("test refusal"), "{refused}");
        let v_after = vpc::get_by_id(&m.app.db, v.id).await.unwrap().unwrap();
        assert_eq!(v_after.public_mtu, v.public_mtu, "undone again");
    }
);

on_both_backends!(a_change_that_does_not_reach_the_router_bumps_nothing, |m| {
    let (v, r) = vpc_and_router(m).await;
    let before = m.agent.commands().len();
    let lock = m
        .app
        .network
        .lock(&m.app.db, v.id)
        .await
        .expect("lock the VPC");
    let change = Mtu {
        vpc_id: v.id,
        mtu: 1450,
        old: v.public_mtu,
        on_router: false,
    };
    lock.apply(&change).await.unwrap();
    drop(lock);
    let after = router_now(m, r.id).await;
    assert_eq!(after.config_generation, r.config_generation);
    assert_eq!(m.agent.commands().len(), before, "nothing was sent");
    let v_after = vpc::get_by_id(&m.app.db, v.id).await.unwrap().unwrap();
    assert_eq!(v_after.public_mtu, 1450, "the change is stored");
});
