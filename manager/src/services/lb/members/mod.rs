//! The VMs behind a load balancer rule: `assignToLoadBalancerRule` and
//! `removeFromLoadBalancerRule` ([`change`]: each pushes the VPC's whole LB
//! list with the new backends) and `listLoadBalancerRuleInstances`
//! ([`instances`]).

mod change;
mod instances;

pub use change::{AssignToLoadBalancerRule, MembersJob, RemoveFromLoadBalancerRule};
pub use instances::ListLoadBalancerRuleInstances;
