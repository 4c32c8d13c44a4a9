//! Stickiness policies of load balancer rules (createLBStickinessPolicy,
//! listLBStickinessPolicies, deleteLBStickinessPolicy), for the methods the
//! VPC virtual router's HAProxy provider offers (LbCookie, AppCookie,
//! SourceBased; checked in [`crate::rules::lb_sticky`]). One live policy per
//! rule. A policy reaches the router inside its rule, with the VPC's whole
//! load balancer list, through the change protocol.

mod create;
mod delete;
mod list;

pub use create::CreateLbStickinessPolicy;
pub use delete::DeleteLbStickinessPolicy;
pub use list::ListLbStickinessPolicies;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::push_lb_list;
use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::model::RouterState;
use crate::provision::RouterElement;
use crate::provision::change::RouterChange;
use crate::server::registry::{FieldSpec, field};
use crate::services::ip::common::{Names, merge};
use crate::store::{Db, Tx, lb_sticky, rule};

/// The job of a create or delete: the policy, its rule and their VPC.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct StickyJob {
    pub policy: i64,
    pub rule: i64,
    pub vpc: i64,
}

/// The documented fields of a rule's stickiness object (LBStickinessResponse).
pub const STICKY_FIELDS: &[FieldSpec] = &[
    field("lbruleid", "string", "the ID of the load balancer rule"),
    field("name", "string", "the name of the load balancer rule"),
    field(
        "description",
        "string",
        "the description of the rule (none kept)",
    ),
    field("state", "string", "the state of the rule"),
    field("zoneid", "string", "the zone of the rule's address"),
    field("account", "string", "the owner"),
    field("domainid", "string", "the owner's domain"),
    field("domain", "string", "the name of that domain"),
    field(
        "stickinesspolicy",
        "list",
        "the rule's policies: id, name, description, methodname, params, state, fordisplay",
    ),
];

/// One policy as `stickinesspolicy` lists it.
fn policy_view(p: &lb_sticky::Policy) -> Value {
    let params: Map<String, Value> = p
        .param_pairs()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    json!({
        "id": p.uuid,
        "name": p.name,
        "description": p.description,
        "methodname": p.method_name,
        "params": params,
        "state": p.state,
        "fordisplay": p.display,
    })
}

/// A rule's stickiness object: the rule, and its policies.
pub async fn sticky_view(
    db: &Db,
    r: &rule::Rule,
    policies: &[lb_sticky::Policy],
) -> Result<Value, Error> {
    let mut names = Names::default();
    let lb = names.load_balancer(db, r.id).await?.cloned();
    let zone = match names.ip(db, r.ip_address_id).await?.map(|ip| ip.zone_id) {
        Some(zone_id) => names.zone(db, zone_id).await?.map(|z| z.uuid),
        None => None,
    };
    let view = json!({
        "lbruleid": r.uuid,
        "name": lb.map(|l| l.name),
        "state": r.state,
        "zoneid": zone,
        "stickinesspolicy": policies.iter().map(policy_view).collect::<Vec<_>>(),
    });
    let owner = names
        .owner(db, Some(r.account_id), Some(r.domain_id))
        .await?;
    Ok(merge(view, owner))
}

/// A policy joining (Add → Active) or leaving its rule on the router; the
/// undo puts the row back as it was.
pub(super) struct PolicyChange {
    pub policy: i64,
    pub add: bool,
}

impl RouterChange for PolicyChange {
    type Written = ();

    fn what(&self) -> &'static str {
        if self.add {
            "a new stickiness policy"
        } else {
            "a deleted stickiness policy"
        }
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        if self.add {
            lb_sticky::set_state(&mut *tx, self.policy, "Active").await?;
        } else {
            lb_sticky::remove(&mut *tx, self.policy).await?;
        }
        Ok(())
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        push_lb_list(element, state, generation).await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        if self.add {
            lb_sticky::remove(db, self.policy).await?;
        } else {
            lb_sticky::restore(db, self.policy).await?;
        }
        Ok(())
    }
}
