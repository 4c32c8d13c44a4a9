//! The changes of ACL items, as the change protocol applies them: a new
//! item, an updated item, a renumbering (moveNetworkAclItem) and a revoked
//! item. Each writes its rows, pushes its whole list (sorted by number) to
//! the router when the list is on it, and says how to put the rows back.
//!
//! The four differ only in the rows they write and put back, so they are
//! one `RouterChange` over an [`ItemEdit`]: the push (the whole list) is
//! the same for all.
//!
//! Whether the list is on the router is read under the VPC's lock before
//! the change is applied (`list_on_router`): a list no tier or private
//! gateway with a NIC uses changes in the database only.

use uuid::Uuid;

use super::super::{list_on_router, list_uuid, push_list};
use super::rows::as_new;
use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::model::RouterState;
use crate::provision::RouterElement;
use crate::provision::change::{RouterChange, VpcLock};
use crate::store::{Db, Tx, acl};

/// What happens to the rows of one list's items.
pub(super) enum ItemEdit {
    /// A Staged item goes to the router (state Add); undone by removing it.
    New { item_id: i64 },
    /// An item takes new values (state Add); undone by its old row and
    /// state.
    Updated {
        /// The item as it was (boxed: the other edits are a few ids).
        old: Box<acl::AclItem>,
        new: acl::NewAclItem,
    },
    /// Items take new numbers; undone by their old numbers.
    Renumbered {
        /// (item id, new number).
        numbers: Vec<(i64, i64)>,
        /// (item id, number it had), for the same items.
        old: Vec<(i64, i64)>,
    },
    /// An item is revoked: the pushed list leaves it out. Undone by its old
    /// state; its row is removed by the caller once the router has the list.
    Revoked {
        item_id: i64,
        old_state: acl::ItemState,
    },
}

/// An edit of the items of `list`, sent as the whole list when it is on
/// the router.
struct ItemChange {
    edit: ItemEdit,
    /// The items' list, as the router state names it.
    list: Uuid,
    on_router: bool,
}

/// Applies `edit` to the items of `list` through the change protocol under
/// the held lock.
pub(super) async fn apply_edit(
    lock: &VpcLock<'_>,
    list: &acl::AclList,
    edit: ItemEdit,
) -> Result<(), Error> {
    let change = ItemChange {
        list: list_uuid(list)?,
        on_router: list_on_router(lock.db(), lock.vpc_id(), list).await?,
        edit,
    };
    lock.apply(&change).await
}

impl RouterChange for ItemChange {
    type Written = ();

    fn what(&self) -> &'static str {
        match self.edit {
            ItemEdit::New { .. } => "a new ACL item",
            ItemEdit::Updated { .. } => "an ACL item's old values",
            ItemEdit::Renumbered { .. } => "ACL item numbers",
            ItemEdit::Revoked { .. } => "a revoked ACL item",
        }
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        match &self.edit {
            ItemEdit::New { item_id } => {
                acl::set_item_state(tx, *item_id, acl::ITEM_ADD).await?;
            }
            ItemEdit::Updated { old, new } => {
                acl::update_item(&mut *tx, old.id, new.clone()).await?;
                acl::set_item_state(tx, old.id, acl::ITEM_ADD).await?;
            }
            ItemEdit::Renumbered { numbers, .. } => {
                acl::renumber_items(tx, numbers.clone()).await?;
            }
            ItemEdit::Revoked { item_id, .. } => {
                acl::set_item_state(tx, *item_id, acl::ITEM_REVOKE).await?;
            }
        }
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
        match &self.edit {
            ItemEdit::New { item_id } => {
                acl::remove_item(db, *item_id).await?;
            }
            ItemEdit::Updated { old, .. } => {
                let mut tx = db.begin().await?;
                acl::update_item(&mut tx, old.id, as_new(old)).await?;
                acl::set_item_state(&mut tx, old.id, old.state).await?;
                tx.commit().await?;
            }
            ItemEdit::Renumbered { old, .. } => {
                acl::renumber_items(db, old.clone()).await?;
            }
            ItemEdit::Revoked { item_id, old_state } => {
                acl::set_item_state(db, *item_id, *old_state).await?;
            }
        }
        Ok(())
    }
}
