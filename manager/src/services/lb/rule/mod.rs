//! Load balancer rules, one command per file: create (async-create: checked
//! and stored during the request, pushed by the job), update, delete, list.
//! This file holds what create and its undo share.

mod create;
mod delete;
mod list;
mod update;

use crate::error::Error;
use crate::services::ip::common;
use crate::store::{Db, rule};

pub use create::CreateLoadBalancerRule;
pub use delete::DeleteLoadBalancerRule;
pub use list::ListLoadBalancerRules;
pub use update::{UpdateLbJob, UpdateLoadBalancerRule};

/// Removes a rule that left (or never reached) the router, and unbinds its
/// address when nothing else uses it (§3.5).
async fn withdraw(db: &Db, r: &rule::Rule) -> Result<(), Error> {
    rule::remove(db, r.id).await?;
    common::unbind_if_unused(db, r.ip_address_id).await
}
