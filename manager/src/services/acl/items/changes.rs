//! The changes of ACL items, as the change protocol applies them: a new
//! item, an updated item, a renumbering (moveNetworkAclItem) and a revoked
//! item. Each writes its rows, pushes its whole list (sorted by number) to
//! the router when the list is on it, and says how to put the rows back.
//!
//! Whether the list is on the router is read under the VPC's lock before
//! the change is applied (`list_on_router`): a list no tier or private
//! gateway with a NIC uses changes in the database only.

use uuid::Uuid;

use super::super::push_list;
use super::rows::as_new;
use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::model::RouterState;
use crate::provision::RouterElement;
use crate::provision::change::RouterChange;
use crate::store::{Db, Tx, acl};

/// A Staged item goes to the router (state Add); undone by removing it.
pub(super) struct NewItem {
    pub item_id: i64,
    /// The item's list, as the router state names it.
    pub list: Uuid,
    pub on_router: bool,
}

impl RouterChange for NewItem {
    type Written = ();

    fn what(&self) -> &'static str {
        "a new ACL item"
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        acl::set_item_state(tx, self.item_id, acl::ITEM_ADD).await?;
        Ok(())
    }

    fn reaches_router(&self, _: &()) -> bool {
        self.on_router
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        push_list(element, state, generation, self.list).await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        acl::remove_item(db, self.item_id).await?;
        Ok(())
    }
}

/// An item takes new values (state Add); undone by its old row and state.
pub(super) struct UpdatedItem {
    /// The item as it was.
    pub old: acl::AclItem,
    pub new: acl::NewAclItem,
    pub list: Uuid,
    pub on_router: bool,
}

impl RouterChange for UpdatedItem {
    type Written = ();

    fn what(&self) -> &'static str {
        "an ACL item's old values"
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        acl::update_item(&mut *tx, self.old.id, self.new.clone()).await?;
        acl::set_item_state(tx, self.old.id, acl::ITEM_ADD).await?;
        Ok(())
    }

    fn reaches_router(&self, _: &()) -> bool {
        self.on_router
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        push_list(element, state, generation, self.list).await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        let mut tx = db.begin().await?;
        acl::update_item(&mut tx, self.old.id, as_new(&self.old)).await?;
        acl::set_item_state(&mut tx, self.old.id, &self.old.state).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Items take new numbers; undone by their old numbers.
pub(super) struct Renumbering {
    /// (item id, new number).
    pub numbers: Vec<(i64, i64)>,
    /// (item id, number it had), for the same items.
    pub old: Vec<(i64, i64)>,
    pub list: Uuid,
    pub on_router: bool,
}

impl RouterChange for Renumbering {
    type Written = ();

    fn what(&self) -> &'static str {
        "ACL item numbers"
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        acl::renumber_items(tx, self.numbers.clone()).await?;
        Ok(())
    }

    fn reaches_router(&self, _: &()) -> bool {
        self.on_router
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        push_list(element, state, generation, self.list).await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        acl::renumber_items(db, self.old.clone()).await?;
        Ok(())
    }
}

/// An item is revoked: the pushed list leaves it out. Undone by its old
/// state; its row is removed by the caller once the router has the list.
pub(super) struct RevokedItem {
    pub item_id: i64,
    pub old_state: String,
    pub list: Uuid,
    pub on_router: bool,
}

impl RouterChange for RevokedItem {
    type Written = ();

    fn what(&self) -> &'static str {
        "a revoked ACL item"
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        acl::set_item_state(tx, self.item_id, acl::ITEM_REVOKE).await?;
        Ok(())
    }

    fn reaches_router(&self, _: &()) -> bool {
        self.on_router
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        push_list(element, state, generation, self.list).await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        acl::set_item_state(db, self.item_id, &self.old_state).await?;
        Ok(())
    }
}
