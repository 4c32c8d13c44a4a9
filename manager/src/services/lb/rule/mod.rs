//! Load balancer rules, one command per file: create (async-create: checked
//! and stored during the request, pushed by the job), update, delete, list.

mod create;
mod delete;
mod list;
mod update;

pub use create::CreateLoadBalancerRule;
pub use delete::DeleteLoadBalancerRule;
pub use list::ListLoadBalancerRules;
pub use update::{UpdateLbJob, UpdateLoadBalancerRule};

use crate::server::command::{Arg, Flag, Text};

/// `description`, accepted and not stored.
const DESCRIPTION: Arg<Text> = Arg::opt("description", "accepted; not stored");

/// `fordisplay`, which the commands of this family accept and ignore.
const FOR_DISPLAY: Arg<Flag> = Arg::opt("fordisplay", "accepted; rules are always shown");
