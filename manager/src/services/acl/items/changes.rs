//! The changes of ACL items, as the change protocol applies them: a new
//! item, an updated item, a renumbering (moveNetworkAclItem) and a revoked
//! item. Each writes its rows, sends the items it wrote (or the whole list,
//! sorted by number) to the router when the list is on it, and says how to
//! put the rows back.
//!
//! The four differ only in the rows they write and put back, so they are
//! one `RouterChange` over an [`ItemEdit`]: the push is the same for all.
//!
//! Whether the list is on the router is read under the VPC's lock before
//! the change is applied (`list_on_router`): a list no tier or private
//! gateway with a NIC uses changes in the database only.
//!
//! When the router was current before the change, only the items the edit
//! wrote are sent (EditNetworkAcl, made against the generation the router
//! holds); a router that does not hold it gets the whole list instead.
//!
//! An edit of a global list's items is the same change applied as a
//! [`SharedChange`] under the locks of every VPC using the list, taken in
//! ascending VPC id: one transaction writes the rows and bumps each
//! router's generation, then every router gets the edit (the whole list
//! when it was not current). Which VPCs
//! use the list is read again in that transaction under the list's row
//! lock, which replaceNetworkACLList also takes to attach a list: a VPC
//! that took the list after the locks were taken makes the change start
//! again with its lock too, so no router keeps the list as it was.

use uuid::Uuid;

use super::super::{list_on_router, list_uuid, push_list};
use super::ListLock;
use super::rows::as_new;
use crate::error::Error;
use crate::orchestration::model::RouterState;
use crate::orchestration::{ElementResult, NetworkAcl};
use crate::provision::RouterElement;
use crate::provision::change::{RouterChange, SharedChange};
use crate::provision::state::EditScope;
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
    /// The list's row.
    list_id: i64,
    on_router: bool,
}

/// How many times a change of a global list's items takes the locks again
/// because another VPC took the list meanwhile, before it gives up.
const GLOBAL_ATTEMPTS: usize = 8;

/// Applies `edit` to the items of `list` through the change protocol under
/// the held lock (for a global list, under the locks of the VPCs using it).
pub(super) async fn apply_edit(
    lock: &ListLock<'_>,
    list: &acl::AclList,
    edit: ItemEdit,
) -> Result<(), Error> {
    let mut change = ItemChange {
        list: list_uuid(list)?,
        list_id: list.id,
        on_router: false,
        edit,
    };
    let app = match lock {
        ListLock::Vpc(lock) => {
            change.on_router = list_on_router(lock.db(), lock.vpc_id(), list).await?;
            return lock.apply(&change).await;
        }
        ListLock::Global(app) => app,
    };
    let db = &app.db;
    for _ in 0..GLOBAL_ATTEMPTS {
        let users = acl::user_vpcs(db, list.id).await?;
        let locks = app.network.lock_vpcs(db, &users).await?;
        let mut reached = Vec::new();
        for &vpc_id in locks.vpc_ids() {
            if list_on_router(db, vpc_id, list).await? {
                reached.push(vpc_id);
            }
        }
        if locks.apply_shared(&change, &reached).await?.is_some() {
            return Ok(());
        }
    }
    Err(Error::internal(format!(
        "ACL list {} was attached to other VPCs while its change waited, {GLOBAL_ATTEMPTS} \
         times: try again",
        list.uuid
    )))
}

impl ItemChange {
    /// Writes the edit's rows.
    async fn write_rows(&self, tx: &mut Tx) -> Result<(), Error> {
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

    /// Puts the edit's rows back.
    async fn undo_rows(&self, db: &Db) -> Result<(), Error> {
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

    /// The items the edit wrote.
    fn touched(&self) -> Vec<i64> {
        match &self.edit {
            ItemEdit::New { item_id } | ItemEdit::Revoked { item_id, .. } => vec![*item_id],
            ItemEdit::Updated { old, .. } => vec![old.id],
            ItemEdit::Renumbered { numbers, .. } => numbers.iter().map(|(id, _)| *id).collect(),
        }
    }
}

impl SharedChange for ItemChange {
    /// Under the list's row lock, the VPCs using the list are read again:
    /// one outside `locked` took it since the locks were taken.
    async fn write_shared(&self, tx: &mut Tx, locked: &[i64]) -> Result<Option<()>, Error> {
        acl::lock_list(tx, self.list_id).await?;
        let users = acl::user_vpcs(&mut *tx, self.list_id).await?;
        if users.iter().any(|v| locked.binary_search(v).is_err()) {
            return Ok(None);
        }
        self.write_rows(tx).await?;
        Ok(Some(()))
    }
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
        self.write_rows(tx).await
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

    /// Only the items the edit wrote go to the router, not the whole list.
    fn edit_scope(&self, _: &()) -> Option<EditScope> {
        Some(EditScope {
            list_id: self.list_id,
            item_ids: self.touched(),
        })
    }

    async fn push_edit(
        &self,
        element: &RouterElement,
        state: &RouterState,
        base: u64,
        generation: u64,
    ) -> ElementResult {
        let Some(touched) = state.acl_list(self.list) else {
            return Ok(());
        };
        element
            .edit_network_acl(
                &state.router,
                generation,
                base,
                touched,
                &state.tiers,
                &state.private_gateways,
            )
            .await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        self.undo_rows(db).await
    }
}
