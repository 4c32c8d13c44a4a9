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
