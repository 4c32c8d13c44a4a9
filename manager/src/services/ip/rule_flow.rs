//! The life of a port forwarding or load balancer rule on the VPC's router,
//! the same for both kinds, on the change protocol
//! ([`crate::provision::change`]): the request stores a new rule in state
//! Add and its job pushes the VPC's whole list (`RuleEdit::New`: Active on
//! success, withdrawn on failure; `RuleEdit::Withdrawn` when its job is
//! abandoned); a deleted rule is revoked, pushed, then removed
//! (`RuleEdit::Revoked`). The three are one `RouterChange` (`RuleChange`):
//! they differ in the rows, never in what goes to the router.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::common;
use super::push::RuleLists;
use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::model::RouterState;
use crate::provision::RouterElement;
use crate::provision::change::{RouterChange, VpcLock};
use crate::server::App;
use crate::store::{Db, Tx, rule};

/// The job of a change to one rule: the rule and its VPC (the keys the
/// jobs of earlier versions stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleJob {
    /// The rule's row id.
    pub rule: i64,
    /// The row id of its VPC (the job's lock).
    pub vpc: i64,
}

/// The VPC of a rule (through its tier).
pub async fn vpc_of_rule(db: &Db, r: &rule::Rule) -> Result<i64, Error> {
    common::tier_by_id(db, r.network_id)
        .await?
        .vpc_id
        .ok_or_else(|| Error::internal("a rule's tier has no VPC"))
}

/// A live rule again, by internal id (jobs re-read what the request stored).
pub async fn reload(db: &Db, id: i64) -> Result<rule::Rule, Error> {
    rule::get_by_id(db, id)
        .await?
        .filter(|r| r.removed.is_none())
        .ok_or_else(|| Error::invalid("The rule was deleted meanwhile"))
}

/// Removes a rule that never reached the router, and unbinds its address
/// when nothing else uses it (§3.5).
pub async fn withdraw_rule(db: &Db, r: &rule::Rule) -> Result<(), Error> {
    rule::remove(db, r.id).await?;
    common::unbind_if_unused(db, r.ip_address_id).await
}

/// What happens to one rule while the list of its kind is sent.
#[derive(Debug, Clone, Copy)]
enum RuleEdit {
    /// The request stored the rule (state Add): nothing to write; the rule
    /// is withdrawn when the router refuses the list with it.
    New,
    /// A new rule whose job never ran or whose manager died: the job fails,
    /// so the rule goes as when the router refuses it, and the router gets
    /// the list without it (it may hold it already). Nothing comes back
    /// when the router refuses that: the protocol's second generation makes
    /// the monitor send it the whole state.
    Withdrawn,
    /// A rule being deleted: Revoke (off the router's state) while the list
    /// without it is sent; its old state back when the router refuses.
    Revoked,
}

/// A change of one rule: the rows `edit` says, then the list of the rule's
/// kind (`lists`) goes to the router.
struct RuleChange<'r> {
    rule: &'r rule::Rule,
    lists: RuleLists,
    edit: RuleEdit,
}

impl RouterChange for RuleChange<'_> {
    type Written = ();

    fn what(&self) -> &'static str {
        match self.edit {
            RuleEdit::New => "a new NAT or load balancer rule",
            RuleEdit::Withdrawn => "an abandoned NAT or load balancer rule",
            RuleEdit::Revoked => "a revoked NAT or load balancer rule",
        }
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        match self.edit {
            RuleEdit::New => Ok(()),
            RuleEdit::Withdrawn => {
                rule::remove(&mut *tx, self.rule.id).await?;
                common::unbind_if_unused(tx, self.rule.ip_address_id).await
            }
            RuleEdit::Revoked => {
                rule::set_state(tx, self.rule.id, rule::STATE_REVOKE).await?;
                Ok(())
            }
        }
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        self.lists.send(element, state, generation).await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        match self.edit {
            RuleEdit::New => withdraw_rule(db, self.rule).await,
            RuleEdit::Withdrawn => Ok(()),
            RuleEdit::Revoked => {
                rule::set_state(db, self.rule.id, self.rule.state).await?;
                Ok(())
            }
        }
    }
}

/// Applies `edit` of the rule `r` under the held lock.
async fn apply(
    lock: &VpcLock<'_>,
    r: &rule::Rule,
    lists: RuleLists,
    edit: RuleEdit,
) -> Result<(), Error> {
    lock.apply(&RuleChange {
        rule: r,
        lists,
        edit,
    })
    .await
}

/// The job of a new rule `r` (under the VPC's lock): pushes the VPC's list
/// with it; Active once the router has it, withdrawn (and the push's error
/// returned) when not. A rule an earlier run of the job made Active is
/// left as it is: the router took it then, and the monitor keeps it there.
pub async fn push_new(lock: &VpcLock<'_>, r: &rule::Rule, lists: RuleLists) -> Result<(), Error> {
    if r.state == rule::STATE_ACTIVE {
        return Ok(());
    }
    apply(lock, r, lists, RuleEdit::New).await?;
    rule::set_state(lock.db(), r.id, rule::STATE_ACTIVE).await?;
    Ok(())
}

/// The `abandon` of a new rule's job (`RuleEdit::Withdrawn`); a rule
/// already gone leaves nothing to do.
pub async fn abandon_new(app: &App, job: RuleJob, lists: RuleLists) -> Result<(), Error> {
    let lock = app.network.lock(&app.db, job.vpc).await?;
    let Some(r) = rule::get_by_id(&app.db, job.rule)
        .await?
        .filter(|r| r.removed.is_none())
    else {
        return Ok(());
    };
    apply(&lock, &r, lists, RuleEdit::Withdrawn).await
}

/// Withdraws a rule (PF or LB) from the router (`RuleEdit::Revoked`), then
/// removes its row and unbinds its address when it was its last rule.
pub async fn revoke(lock: &VpcLock<'_>, r: &rule::Rule, lists: RuleLists) -> Result<(), Error> {
    apply(lock, r, lists, RuleEdit::Revoked).await?;
    let mut tx = lock.db().begin().await?;
    rule::remove(&mut tx, r.id).await?;
    common::unbind_if_unused(&mut tx, r.ip_address_id).await?;
    tx.commit().await?;
    Ok(())
}

/// The job that deletes a rule (PF or LB): under the VPC's lock, withdraws
/// the rule from the router ([`revoke`]); a rule deleted meanwhile (e.g.
/// with its address) leaves nothing to do.
pub async fn delete_rule(app: &App, job: RuleJob, lists: RuleLists) -> Result<Value, Error> {
    let lock = app.network.lock(&app.db, job.vpc).await?;
    let Some(r) = rule::get_by_id(&app.db, job.rule)
        .await?
        .filter(|r| r.removed.is_none())
    else {
        return Ok(json!({ "success": true }));
    };
    revoke(&lock, &r, lists).await?;
    Ok(json!({ "success": true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_job_reads_the_keys_earlier_versions_stored() {
        let job: RuleJob = serde_json::from_value(json!({ "rule": 7, "vpc": 3 })).unwrap();
        assert_eq!(job, RuleJob { rule: 7, vpc: 3 });
        assert_eq!(
            serde_json::to_value(job).unwrap(),
            json!({ "rule": 7, "vpc": 3 })
        );
    }
}
