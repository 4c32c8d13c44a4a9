//! Public load balancing on VPC addresses, served by the VPC virtual router
//! (reference §2.5, §3.4 item 9): rules ([`rule`]: create, update, delete,
//! list), their members ([`members`]: assign, remove, list instances) and
//! their stickiness policies ([`sticky`]: create, list, delete).
//! Every change pushes the VPC's whole load balancer list (with each rule's
//! backends, [`push_lb_list`]) through the change protocol
//! ([`crate::provision::change`]): a failed push undoes the change and fails
//! the job.

pub mod members;
pub mod rule;
pub mod sticky;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::element::Lb;
use crate::orchestration::model::RouterState;
use crate::provision::RouterElement;
use crate::server::Ctx;
use crate::server::registry::{FieldSpec, Registry, field};
use crate::services::ip::common::{Names, merge};
use crate::services::owner::check_access;
use crate::store::{self, Db};
use uuid::Uuid;

/// Registers the load balancer commands.
pub fn register(registry: &mut Registry) {
    registry.job::<rule::CreateLoadBalancerRule>();
    registry.job::<rule::UpdateLoadBalancerRule>();
    registry.job::<rule::DeleteLoadBalancerRule>();
    registry.sync::<rule::ListLoadBalancerRules>();
    registry.job::<members::AssignToLoadBalancerRule>();
    registry.job::<members::RemoveFromLoadBalancerRule>();
    registry.sync::<members::ListLoadBalancerRuleInstances>();
    registry.job::<sticky::CreateLbStickinessPolicy>();
    registry.sync::<sticky::ListLbStickinessPolicies>();
    registry.job::<sticky::DeleteLbStickinessPolicy>();
}

/// The job of a command on one rule: the rule and its VPC (the keys the
/// jobs of earlier versions stored).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RuleJob {
    #[serde(rename = "rule")]
    pub rule_id: i64,
    #[serde(rename = "vpc")]
    pub vpc_id: i64,
}

/// Sends the VPC's whole load balancer list (live rules with their
/// backends, from the router's state as stored after the change): what
/// every change of a rule or of its members pushes.
pub async fn push_lb_list(
    element: &RouterElement,
    state: &RouterState,
    generation: u64,
) -> ElementResult {
    element
        .apply_lb_rules(&state.router, generation, &state.lb_rules)
        .await
}

/// The live load balancer rule named by `uuid` (parameter `name`), which
/// the caller may change.
pub async fn lb_by_uuid(ctx: &Ctx, name: &str, uuid: Uuid) -> Result<store::rule::Rule, Error> {
    let r = store::rule::get_by_uuid(&ctx.app.db, uuid)
        .await?
        .filter(|r| r.removed.is_none() && r.purpose == store::rule::PURPOSE_LOAD_BALANCING)
        .ok_or_else(|| Error::invalid_id(name, uuid))?;
    check_access(
        ctx,
        r.account_id,
        &r.domain_path,
        &format!("load balancer rule {}", r.uuid),
    )?;
    Ok(r)
}

/// A live rule again, by internal id.
pub async fn reload(db: &Db, id: i64) -> Result<store::rule::Rule, Error> {
    store::rule::get_by_id(db, id)
        .await?
        .filter(|r| r.removed.is_none())
        .ok_or_else(|| Error::invalid("The load balancer rule was deleted meanwhile"))
}

/// The VPC of a rule (through its tier), as for the NAT rules.
pub use crate::services::ip::rule_flow::vpc_of_rule;

/// `loadbalancer` of a job's result: the rule as it is now.
async fn lb_result(db: &Db, id: i64) -> Result<Value, Error> {
    let r = reload(db, id).await?;
    let view = lb_view(db, &mut Names::default(), &r).await?;
    Ok(json!({ "loadbalancer": view }))
}

/// A load balancer rule as the API shows it (LoadBalancerResponse: ports and
/// `cidrlist` are strings).
pub async fn lb_view(db: &Db, names: &mut Names, r: &store::rule::Rule) -> Result<Value, Error> {
    let lb = names.load_balancer(db, r.id).await?.cloned();
    let ip = names
        .ip(db, r.ip_address_id)
        .await?
        .map(|ip| (ip.uuid, ip.public_ip_address, ip.zone_id));
    let zone = match &ip {
        Some((_, _, zone_id)) => names
            .zone(db, *zone_id)
            .await?
            .map(|z| (z.uuid, z.name.clone())),
        None => None,
    };
    let tier = names.network(db, r.network_id).await?.map(|n| n.uuid);
    let view = json!({
        "id": r.uuid,
        "name": lb.as_ref().map(|l| l.name.clone()),
        "algorithm": lb.as_ref().map(|l| l.algorithm.clone()),
        "publicport": lb.as_ref().map(|l| l.public_port.to_string()),
        "privateport": lb.as_ref().map(|l| l.private_port.to_string()),
        "publicipid": ip.as_ref().map(|i| i.0),
        "publicip": ip.as_ref().map(|i| i.1),
        "zoneid": zone.as_ref().map(|z| z.0),
        "zonename": zone.as_ref().map(|z| z.1.clone()),
        "networkid": tier,
        "protocol": r.protocol,
        "cidrlist": r.source_cidrs.clone().unwrap_or_default(),
        "state": r.state,
        "fordisplay": true,
        "tags": [],
    });
    let owner = names
        .owner(db, Some(r.account_id), Some(r.domain_id))
        .await?;
    Ok(merge(view, owner))
}

/// The documented fields of the load balancer object.
pub const LB_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the rule"),
    field("name", "string", "the name of the rule"),
    field("algorithm", "string", "roundrobin, leastconn or source"),
    field("publicport", "string", "the public port"),
    field("privateport", "string", "the port on the VMs"),
    field("publicipid", "string", "the public IP address of the rule"),
    field("publicip", "string", "that address"),
    field("zoneid", "string", "the zone of the address"),
    field("zonename", "string", "the name of that zone"),
    field("networkid", "string", "the tier of the rule's VMs"),
    field("protocol", "string", "tcp or udp"),
    field(
        "cidrlist",
        "string",
        "the source CIDRs balanced, comma-separated",
    ),
    field("state", "string", "Add (being applied), Active or Revoke"),
    field("account", "string", "the owner"),
    field("domainid", "string", "the owner's domain"),
    field("domain", "string", "the name of that domain"),
    field("fordisplay", "boolean", "always true"),
    field("tags", "list", "resource tags (none)"),
];

#[cfg(test)]
mod tests {
    use super::members::MembersJob;
    use super::rule::UpdateLbJob;
    use super::*;

    #[test]
    fn jobs_stored_by_the_previous_version_still_read() {
        let job: RuleJob = serde_json::from_str(r#"{"rule": 7, "vpc": 3}"#).unwrap();
        assert_eq!((job.rule_id, job.vpc_id), (7, 3));
        let update: UpdateLbJob =
            serde_json::from_str(r#"{"rule": 7, "vpc": 3, "name": null, "algorithm": "source"}"#)
                .unwrap();
        assert_eq!(update.name, None);
        assert_eq!(update.algorithm.as_deref(), Some("source"));
        let members: MembersJob =
            serde_json::from_str(r#"{"rule": 7, "vpc": 3, "members": [[11, "10.1.1.5"]]}"#)
                .unwrap();
        assert_eq!(members.members, vec![(11, "10.1.1.5".to_string())]);
    }

    #[test]
    fn jobs_are_stored_under_the_keys_earlier_versions_read() {
        let stored = serde_json::to_value(RuleJob {
            rule_id: 7,
            vpc_id: 3,
        })
        .unwrap();
        assert_eq!(stored, json!({ "rule": 7, "vpc": 3 }));
    }
}
