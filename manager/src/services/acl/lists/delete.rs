//! `deleteNetworkACLList`: a list no tier or private gateway uses goes with
//! its items. The removal is a change of the list's VPC ([`DeletedList`]),
//! applied under the VPC's lock: counted and removed in one transaction, so
//! a list a tier took meanwhile stays.

use serde_json::{Value, json};
use uuid::Uuid;

use super::super::{list_param, list_sync, mutable_list_vpc, rules_list};
use super::users_of;
use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::model::RouterState;
use crate::provision::RouterElement;
use crate::provision::change::RouterChange;
use crate::rules;
use crate::rules::acl::GlobalRefusal;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, IdJob, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ALL;
use crate::store::{Db, Tx, acl};

const ID: Arg<Id> = Arg::req("id", "the ID of the ACL list");

/// `deleteNetworkACLList`.
pub struct DeleteAclList {
    id: Uuid,
}

impl Command for DeleteAclList {
    const NAME: &'static str = "deleteNetworkACLList";

    fn spec() -> Spec {
        Spec::new("Deletes a network ACL list that no tier or private gateway uses")
            .roles(ALL)
            .param(ID)
            .returns("networkacllist", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteAclList {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for DeleteAclList {
    /// Safe to run again: a list an earlier run removed is done.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let db = &ctx.app.db;
        let list = list_param(db, ID.name(), self.id).await?;
        // As CloudStack: the built-ins are refused first, then callers who
        // may not change the list, then a list in use.
        if list.is_builtin() {
            rules::acl::check_list_deletable(&rules_list(&list), 0, 0)?;
        }
        let v = mutable_list_vpc(ctx, &list, GlobalRefusal::DeleteList).await?;
        let (tiers, gateways) = users_of(db, list.id).await?;
        rules::acl::check_list_deletable(&rules_list(&list), tiers, gateways)?;
        Ok(Submission::new(
            IdJob { id: list.id },
            ("NetworkAcl", list.uuid),
            list_sync(&list, v.map(|v| v.id)),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let app = &job.app;
        let Some(list) = acl::get_by_id(&app.db, payload.id).await? else {
            return Err(Error::invalid("The ACL list was deleted meanwhile"));
        };
        if list.removed.is_some() {
            // An earlier run of this job removed it.
            return Ok(json!({ "success": true }));
        }
        match list.vpc_id {
            Some(vpc_id) => {
                let lock = app.network.lock(&app.db, vpc_id).await?;
                lock.apply(&DeletedList { list }).await?;
            }
            // A global list changes no router: it goes under its row lock,
            // which attaching it takes too (the built-ins are refused).
            None => DeletedList { list }.remove_global(&app.db).await?,
        }
        Ok(json!({ "success": true }))
    }
}

/// A list removed with its items. It never reaches the router: the write
/// refuses a list that a tier or private gateway uses, and only those put a
/// list on the router.
pub(super) struct DeletedList {
    pub list: acl::AclList,
}

impl DeletedList {
    /// Under the list's row lock (which attaching a list takes too), counts
    /// its users again (a tier may have taken it since the request) and
    /// removes it when there are none.
    async fn remove(&self, tx: &mut Tx) -> Result<(), Error> {
        acl::lock_list(tx, self.list.id).await?;
        let (tiers, gateways) = users_of(&mut *tx, self.list.id).await?;
        rules::acl::check_list_deletable(&rules_list(&self.list), tiers, gateways)?;
        acl::remove_list(&mut *tx, self.list.id).await?;
        Ok(())
    }

    /// Removes a list without a VPC (a global one) in its own transaction:
    /// no router has it, as no tier or private gateway uses it.
    pub(super) async fn remove_global(&self, db: &Db) -> Result<(), Error> {
        let mut tx = db.begin().await?;
        self.remove(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl RouterChange for DeletedList {
    type Written = ();

    fn what(&self) -> &'static str {
        "a deleted ACL list"
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        self.remove(tx).await
    }

    fn reaches_router(&self, _: &()) -> bool {
        false
    }

    /// Never called (`reaches_router` is false).
    async fn push(&self, _: &RouterElement, _: &RouterState, _: u64) -> ElementResult {
        Ok(())
    }

    /// Never called: only a failed push is undone.
    async fn undo(&self, _: &Db, _: &()) -> Result<(), Error> {
        Ok(())
    }
}
