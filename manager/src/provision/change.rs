//! The change protocol: the one place that owns how a change of a VPC's
//! rows reaches its router.
//!
//! A command describes its change as a [`RouterChange`] (what rows it
//! writes, what it sends to the router, how to put the rows back) and hands
//! it to [`VpcLock::apply`], which runs the sequence:
//!
//! 1. the caller holds the VPC's lock ([`Network::lock`]: a [`VpcLock`] is
//!    the only way to apply a change, so no change runs unlocked) and has
//!    validated the request under it;
//! 2. one transaction writes the rows and bumps the router's config
//!    generation (only when the router is Running and the change reaches
//!    it; otherwise the change is stored and goes with the next full
//!    configuration);
//! 3. after the commit the router's state is loaded and the change pushed
//!    with that generation; on success the router's applied generation is
//!    recorded;
//! 4. on failure the generation is bumped again, before the rows are put
//!    back, so the router (which may hold part of the change) looks behind
//!    and the monitor sends it the reverted state: router and database never
//!    disagree while both look current. The push's error is the command's.
//!
//! A change whose rows many VPCs' routers follow (an item of a global ACL
//! list) is a [`SharedChange`], applied through a [`VpcLockSet`]: the locks of
//! all those VPCs, taken in ascending VPC id, one transaction for the rows
//! and every router's generation, then one push per router, and the same
//! undo for all when one refuses.
//!
//! Kept whole because it is the change protocol's one owner: lock, write, bump, push and record or
//! undo stay in one place.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::model::RouterState;
use crate::store::{Db, Tx};

use crate::store::router;

use super::lock::HeldLock;
use super::{
    Generation, Network, RouterElement, bump, element_error, log_revert, resync_after_failure,
    state,
};

/// One change of a VPC's rows that its router must follow.
pub trait RouterChange: Send + Sync {
    /// What `write` made (the new row, the old values), given to `undo`
    /// and returned by [`VpcLock::apply`].
    type Written: Send + Sync;

    /// What the change is, for the log of a failed undo ("a new ACL item").
    fn what(&self) -> &'static str;

    /// Writes the change's rows in the transaction that also bumps the
    /// router's generation.
    fn write(&self, tx: &mut Tx) -> impl Future<Output = Result<Self::Written, Error>> + Send;

    /// Whether the change reaches the router at all (an ACL list no tier
    /// uses does not). Asked after `write`.
    fn reaches_router(&self, _written: &Self::Written) -> bool {
        true
    }

    /// Sends the change to the router: `state` is the router's whole state
    /// as stored after the commit, `generation` the change's.
    fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> impl Future<Output = ElementResult> + Send;

    /// Puts the rows back after the router refused the change.
    fn undo(
        &self,
        db: &Db,
        written: &Self::Written,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The ACL items the change touched, when it can reach the router as
    /// an edit of what the router holds instead of a push of the whole
    /// list: the protocol then loads the router's state with only those
    /// items of that list ([`state::load_edit`]) and calls `push_edit`.
    /// None (the default): the whole state is loaded and `push` is used.
    fn edit_scope(&self, _written: &Self::Written) -> Option<state::EditScope> {
        None
    }

    /// Sends the change as an edit made against generation `base`, from
    /// the state `edit_scope` named. When the router answers that it does
    /// not hold that base, the protocol loads the whole state and calls
    /// `push`. Only called when `edit_scope` gave a scope.
    fn push_edit(
        &self,
        _element: &RouterElement,
        _state: &RouterState,
        _base: u64,
        _generation: u64,
    ) -> impl Future<Output = ElementResult> + Send {
        async {
            Err(crate::orchestration::ElementError::Unsupported(
                "this change has no edit form".into(),
            ))
        }
    }
}

/// Pushes `change` at generation `g`: as an edit when the change has an edit
/// form and the router was current before the change, else (or when the
/// router turns out not to hold the edit's base) with the whole state.
async fn push_change<C: RouterChange>(
    db: &Db,
    element: &RouterElement,
    vpc_id: i64,
    change: &C,
    written: &C::Written,
    g: &Generation,
) -> Result<(), Error> {
    if let (Some(base), Some(scope)) = (g.base, change.edit_scope(written)) {
        let started = Instant::now();
        let Some(state) = state::load_edit(db, vpc_id, &scope).await? else {
            return Err(Error::internal(
                "the VPC's router disappeared during the change",
            ));
        };
        let loaded = Instant::now();
        let pushed = change.push_edit(element, &state, base, g.generation).await;
        tracing::debug!(
            router = %state.router.name,
            load_us = micros(loaded - started),
            send_us = micros(loaded.elapsed()),
            "edit pushed"
        );
        match pushed {
            Err(crate::orchestration::ElementError::Agent {
                source: crate::orchestration::AgentError::NotAtBase(why),
                ..
            }) => {
                tracing::info!(router = %state.router.name, %why, "edit not taken: the whole list goes");
            }
            pushed => return pushed.map_err(element_error),
        }
    }
    let started = Instant::now();
    let Some(state) = state::load(db, vpc_id).await? else {
        return Err(Error::internal(
            "the VPC's router disappeared during the change",
        ));
    };
    let loaded = Instant::now();
    let pushed = change.push(element, &state, g.generation).await;
    tracing::debug!(
        router = %state.router.name,
        load_us = micros(loaded - started),
        send_us = micros(loaded.elapsed()),
        "whole state pushed"
    );
    pushed.map_err(element_error)
}

/// Microseconds, for the timings the protocol logs at DEBUG.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A VPC's lock, held: changes to the VPC are applied through it.
pub struct VpcLock<'n> {
    db: &'n Db,
    network: &'n Network,
    vpc_id: i64,
    _held: HeldLock,
}

impl Network {
    /// Takes the VPC's lock (waiting for the change holding it): changes
    /// to one VPC are serialized across every manager of the database (see
    /// [`super::lock`]), so generations reach its router in order and each
    /// command's checks see every earlier change. Fails only when the
    /// database cannot be reached.
    pub async fn lock<'n>(&'n self, db: &'n Db, vpc_id: i64) -> Result<VpcLock<'n>, Error> {
        let started = Instant::now();
        let held = self.locks.hold(db, vpc_id).await?;
        tracing::debug!(
            vpc_id,
            wait_us = micros(started.elapsed()),
            "VPC lock taken"
        );
        Ok(VpcLock {
            db,
            network: self,
            vpc_id,
            _held: held,
        })
    }
}

impl Network {
    /// Takes the lock of a physical network, for checks that span the VPCs
    /// of its zone (a private gateway's VLAN and address). Take it after
    /// the VPC's lock, never before.
    pub async fn lock_physical_network(
        &self,
        db: &Db,
        physical_network_id: i64,
    ) -> Result<HeldLock, Error> {
        self.locks
            .hold_key(
                db,
                super::lock::PHYSICAL_NETWORK_LOCK_CLASS,
                physical_network_id,
            )
            .await
    }
}

impl<'n> VpcLock<'n> {
    /// The locked VPC.
    pub fn vpc_id(&self) -> i64 {
        self.vpc_id
    }

    /// The store.
    pub fn db(&self) -> &'n Db {
        self.db
    }

    /// The network side (element, plug-ins).
    pub fn network(&self) -> &'n Network {
        self.network
    }

    /// Applies `change` by the protocol of this module: rows and
    /// generation in one transaction, the push, the applied generation or
    /// the undo. Returns what `write` made.
    pub async fn apply<C: RouterChange>(&self, change: &C) -> Result<C::Written, Error> {
        self.apply_or_refused(change).await?
    }

    /// [`VpcLock::apply`], telling a change the router refused (the inner
    /// error: the push failed and `undo` ran) from one that failed before
    /// any push (the outer error: nothing was written). For changes whose
    /// command goes on when the router refuses (a forced delete).
    pub async fn apply_or_refused<C: RouterChange>(
        &self,
        change: &C,
    ) -> Result<Result<C::Written, Error>, Error> {
        let started = Instant::now();
        let mut tx = self.db.begin().await?;
        let written = change.write(&mut tx).await?;
        let generation: Option<Generation> = if change.reaches_router(&written) {
            bump(&mut tx, self.vpc_id).await?
        } else {
            None
        };
        tx.commit().await?;
        let Some(g) = generation else {
            return Ok(Ok(written));
        };
        let committed = Instant::now();
        let pushed = push_change(
            self.db,
            &self.network.element,
            self.vpc_id,
            change,
            &written,
            &g,
        )
        .await;
        if let Err(e) = pushed {
            resync_after_failure(self.db, g.router_id).await;
            log_revert(change.what(), change.undo(self.db, &written).await);
            return Ok(Err(e));
        }
        let pushed_at = Instant::now();
        router::mark_applied(
            self.db,
            g.router_id,
            i64::try_from(g.generation).unwrap_or(i64::MAX),
        )
        .await?;
        tracing::debug!(
            vpc_id = self.vpc_id,
            what = change.what(),
            generation = g.generation,
            write_us = micros(committed - started),
            push_us = micros(pushed_at - committed),
            mark_us = micros(pushed_at.elapsed()),
            "change applied"
        );
        Ok(Ok(written))
    }

    /// Sends the VPC's stored state to its router under a new generation,
    /// for rows written before (by the request that submitted the job): the
    /// same protocol with nothing to write and nothing to undo.
    pub async fn push_stored<F>(&self, what: &'static str, send: F) -> Result<(), Error>
    where
        F: for<'s> Fn(
                &'s RouterElement,
                &'s RouterState,
                u64,
            ) -> crate::future::BoxFuture<'s, ElementResult>
            + Send
            + Sync,
    {
        self.apply(&Stored { what, send }).await
    }
}

/// A change whose rows are already stored.
struct Stored<F> {
    what: &'static str,
    send: F,
}

impl<F> RouterChange for Stored<F>
where
    F: for<'s> Fn(
            &'s RouterElement,
            &'s RouterState,
            u64,
        ) -> crate::future::BoxFuture<'s, ElementResult>
        + Send
        + Sync,
{
    type Written = ();

    fn what(&self) -> &'static str {
        self.what
    }

    async fn write(&self, _tx: &mut Tx) -> Result<(), Error> {
        Ok(())
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        (self.send)(element, state, generation).await
    }

    async fn undo(&self, _db: &Db, _written: &()) -> Result<(), Error> {
        Ok(())
    }
}

/// One change whose rows the routers of several VPCs follow: an item of a
/// global ACL list, which every VPC may use. It is applied through a
/// [`VpcLockSet`] holding the lock of every VPC it reaches, and reaches each
/// router as a [`RouterChange`] does (as an edit where it has an edit form
/// and the router was current; `push`, `undo` and `what` are the
/// [`RouterChange`]'s); only the write differs.
pub trait SharedChange: RouterChange {
    /// Writes the change's rows in the transaction that also bumps every
    /// reached router's generation. `locked` are the VPCs whose locks are
    /// held; None (nothing written) when the change now reaches a VPC
    /// outside them (one took the shared rows meanwhile): the caller
    /// takes the locks again, with that VPC, and retries.
    fn write_shared(
        &self,
        tx: &mut Tx,
        locked: &[i64],
    ) -> impl Future<Output = Result<Option<Self::Written>, Error>> + Send;
}

/// The locks of several VPCs, taken in ascending VPC id and held together.
///
/// Every holder of more than one VPC lock takes them in that one order, so
/// two of them never wait for each other (no cycle can form), and a
/// holder of a single VPC's lock (any other command) waits at most for one
/// such set.
pub struct VpcLockSet<'n> {
    db: &'n Db,
    network: &'n Network,
    /// Ascending, no duplicates.
    vpc_ids: Vec<i64>,
    _held: Vec<HeldLock>,
}

impl Network {
    /// Takes the locks of `vpc_ids` in ascending id (see [`VpcLockSet`]).
    pub async fn lock_vpcs<'n>(
        &'n self,
        db: &'n Db,
        vpc_ids: &[i64],
    ) -> Result<VpcLockSet<'n>, Error> {
        let mut ids = vpc_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut held = Vec::with_capacity(ids.len());
        for &id in &ids {
            held.push(self.locks.hold(db, id).await?);
        }
        Ok(VpcLockSet {
            db,
            network: self,
            vpc_ids: ids,
            _held: held,
        })
    }
}

impl VpcLockSet<'_> {
    /// The locked VPCs, ascending.
    pub fn vpc_ids(&self) -> &[i64] {
        &self.vpc_ids
    }

    /// Applies a shared change to the routers of `reached` (locked VPCs
    /// whose router has what the change touches), by the protocol of this
    /// module made to span routers:
    ///
    /// 1. one transaction writes the rows and bumps the generation of every
    ///    reached running router, so the database moves all of them at once;
    /// 2. after the commit each router gets the change, one push each (a
    ///    router takes it whole or not at all), in VPC order, as an edit
    ///    where the change has an edit form and the router was current (as
    ///    [`VpcLock::apply`] does); on success each applied generation is
    ///    recorded;
    /// 3. when a router refuses, the pushes stop, every bumped router's
    ///    generation is bumped again (those that took the change look
    ///    behind and the monitor sends them the reverted state) and the
    ///    rows are put back; the push's error is the command's.
    ///
    /// Ok(None): the change reaches a VPC not locked here; nothing was
    /// written (see [`SharedChange::write`]).
    pub async fn apply_shared<C: SharedChange>(
        &self,
        change: &C,
        reached: &[i64],
    ) -> Result<Option<C::Written>, Error> {
        let mut tx = self.db.begin().await?;
        let Some(written) = change.write_shared(&mut tx, &self.vpc_ids).await? else {
            return Ok(None);
        };
        let mut bumped = Vec::new();
        for &vpc_id in reached {
            if self.vpc_ids.binary_search(&vpc_id).is_err() {
                return Err(Error::internal(format!(
                    "a shared change reaches VPC {vpc_id}, whose lock is not held"
                )));
            }
            if let Some(g) = bump(&mut tx, vpc_id).await? {
                bumped.push((vpc_id, g));
            }
        }
        tx.commit().await?;
        let mut failed = None;
        for (vpc_id, g) in &bumped {
            let pushed =
                push_change(self.db, &self.network.element, *vpc_id, change, &written, g).await;
            if let Err(e) = pushed {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            for (_, g) in &bumped {
                resync_after_failure(self.db, g.router_id).await;
            }
            log_revert(change.what(), change.undo(self.db, &written).await);
            return Err(e);
        }
        for (_, g) in &bumped {
            router::mark_applied(
                self.db,
                g.router_id,
                i64::try_from(g.generation).unwrap_or(i64::MAX),
            )
            .await?;
        }
        Ok(Some(written))
    }
}
