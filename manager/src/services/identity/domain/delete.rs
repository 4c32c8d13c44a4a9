//! `deleteDomain` (async): a domain without sub-domains and accounts, or
//! with `cleanup=true` its whole subtree, accounts, VMs and VPCs included.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Flag, Id, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ADMINS;
use crate::store::{self, Exec, account, domain};

use super::super::domain_or_own;

const ID: Arg<Id> = Arg::req("id", "the ID of the domain");
const CLEANUP: Arg<Flag> = Arg::opt(
    "cleanup",
    "also delete the domain's sub-domains and accounts",
);

/// `deleteDomain`.
pub struct DeleteDomain {
    id: Uuid,
    cleanup: bool,
}

/// The job of `deleteDomain`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteDomainJob {
    /// The domain's row id.
    pub id: i64,
    /// Also delete its sub-domains and accounts.
    #[serde(default)]
    pub cleanup: bool,
}

impl Command for DeleteDomain {
    const NAME: &'static str = "deleteDomain";

    fn spec() -> Spec {
        Spec::new("Deletes a domain; with cleanup=true also its sub-domains and accounts")
            .roles(ADMINS)
            .param(ID)
            .param(CLEANUP)
            .returns("domain", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteDomain {
            id: args.need(&ID)?,
            cleanup: args.get(&CLEANUP)?.unwrap_or(false),
        })
    }
}

impl AsyncCommand for DeleteDomain {
    /// A domain removed already is done.
    const RERUN: bool = true;
    type Job = DeleteDomainJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<DeleteDomainJob>, Error> {
        let d = domain_or_own(ctx, Some(self.id), ID.name()).await?;
        if d.parent_id.is_none() || d.id == ctx.caller.domain_id {
            return Err(Error::invalid(
                "The ROOT domain and the caller's own domain cannot be deleted",
            ));
        }
        let job = DeleteDomainJob {
            id: d.id,
            cleanup: self.cleanup,
        };
        Ok(Submission::new(
            job,
            ("Domain", d.uuid),
            format!("domain:{}", d.id),
        ))
    }

    async fn run(job: &JobCtx, payload: DeleteDomainJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let d = domain::get_by_id(db, payload.id)
            .await?
            .ok_or_else(|| Error::invalid("the domain is gone"))?;
        if d.removed.is_some() {
            // Removed already (by an earlier run of this job, or meanwhile).
            return Ok(json!({ "success": true }));
        }
        if payload.cleanup {
            delete_subtree(job, &d).await?;
        } else {
            domain::remove(db, d.id).await.map_err(|e| match e {
                store::StoreError::Conflict(_) => Error::in_use(format!(
                    "Domain {} still has sub-domains or accounts; use cleanup=true",
                    d.uuid
                )),
                other => other.into(),
            })?;
        }
        Ok(json!({ "success": true }))
    }
}

/// Deletes domain `d`, its sub-domains and every account in them.
async fn delete_subtree(job: &JobCtx, d: &domain::Domain) -> Result<(), Error> {
    let db = &job.app.db;
    // The VMs and VPCs of every account of the subtree go first (routers
    // are not transactional); then the rows, in one transaction.
    for sub in domain::subtree(db, &d.path).await? {
        for a in &accounts_of(db, sub.id).await? {
            crate::provision::vpc::purge_account(db, &job.app.network, a.id).await?;
        }
    }
    // One transaction: a failure part-way leaves the whole subtree as it
    // was, not half its accounts gone.
    let mut tx = db.begin().await?;
    // Deepest first, so each domain is empty when its turn comes.
    let mut all = domain::subtree(&mut tx, &d.path).await?;
    all.sort_by_key(|x| std::cmp::Reverse(x.level));
    for sub in &all {
        for a in &accounts_of(&mut tx, sub.id).await? {
            account::remove(&mut tx, a.id).await?;
        }
        domain::remove(&mut tx, sub.id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The live accounts of domain `domain_id` (not of its sub-domains).
async fn accounts_of<'a>(
    ex: impl Into<Exec<'a>>,
    domain_id: i64,
) -> Result<Vec<account::Account>, Error> {
    let filter = account::AccountFilter {
        domain_id: Some(domain_id),
        ..Default::default()
    };
    Ok(account::list(ex, &filter, store::Page::ALL).await?.items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_stored_by_the_previous_version_still_reads() {
        // The previous version stored `{"id": .., "cleanup": ..}`.
        let job: DeleteDomainJob =
            serde_json::from_value(json!({ "id": 7, "cleanup": true })).unwrap();
        assert_eq!((job.id, job.cleanup), (7, true));
        let job: DeleteDomainJob = serde_json::from_value(json!({ "id": 8 })).unwrap();
        assert_eq!((job.id, job.cleanup), (8, false));
        assert_eq!(
            serde_json::to_value(DeleteDomainJob {
                id: 9,
                cleanup: false
            })
            .unwrap(),
            json!({ "id": 9, "cleanup": false })
        );
    }
}
