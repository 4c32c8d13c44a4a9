//! Port forwarding rules on VPC public IPs (reference §2.5, §3.5), one
//! command per file: create (async-create: checked and stored in state Add
//! during the request, pushed by the job, Active once the router has it),
//! update, delete, list. Every change sends the VPC's whole port forwarding
//! list through the change protocol; a failed push undoes the change and
//! fails the job.

mod create;
mod delete;
mod list;
mod update;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Flag, Id};
use crate::server::registry::{FieldSpec, Registry, field};
use crate::services::ip::common::{self, Names, held_ip};
use crate::services::owner::{ListArgs, check_access};
use crate::store::{Db, rule};

pub use create::CreatePortForwardingRule;
pub use delete::DeletePortForwardingRule;
pub use list::ListPortForwardingRules;
pub use update::UpdatePortForwardingRule;

/// `fordisplay`, which the commands of this family accept and ignore.
const FOR_DISPLAY: Arg<Flag> = Arg::opt("fordisplay", "accepted; rules are always shown");

/// Registers the port forwarding commands.
pub fn register(registry: &mut Registry) {
    registry.job::<CreatePortForwardingRule>();
    registry.job::<UpdatePortForwardingRule>();
    registry.job::<DeletePortForwardingRule>();
    registry.sync::<ListPortForwardingRules>();
}

/// The instance type of a port forwarding rule's jobs.
const INSTANCE: &str = "FirewallRule";

/// `id` of updatePortForwardingRule and deletePortForwardingRule.
const RULE_ID: Arg<Id> = Arg::req("id", "the ID of the rule");

/// A port forwarding rule as the API shows it (FirewallRuleResponse: ports
/// and `cidrlist` are strings, as cloudstack-go expects).
pub async fn pf_view(db: &Db, names: &mut Names, r: &rule::Rule) -> Result<Value, Error> {
    let ip = names
        .ip(db, r.ip_address_id)
        .await?
        .map(|ip| (ip.uuid, ip.public_ip_address));
    let tier = names.network(db, r.network_id).await?.map(|n| n.uuid);
    let target = match r.vm_id {
        Some(id) => names
            .vm(db, id)
            .await?
            .map(|v| (v.uuid, v.name.clone(), v.display_name.clone())),
        None => None,
    };
    let text = |p: Option<i64>| p.map(|p| p.to_string());
    Ok(json!({
        "id": r.uuid,
        "privateport": text(r.dest_start_port),
        "privateendport": text(r.dest_end_port.or(r.dest_start_port)),
        "protocol": r.protocol,
        "publicport": text(r.start_port),
        "publicendport": text(r.end_port.or(r.start_port)),
        "virtualmachineid": target.as_ref().map(|t| t.0),
        "virtualmachinename": target.as_ref().map(|t| t.1.clone()),
        "virtualmachinedisplayname": target.as_ref().map(|t| t.2.clone()),
        "ipaddressid": ip.as_ref().map(|i| i.0),
        "ipaddress": ip.as_ref().map(|i| i.1),
        "state": r.state,
        "cidrlist": r.source_cidrs.clone().unwrap_or_default(),
        "vmguestip": r.dest_ip,
        "networkid": tier,
        "fordisplay": true,
        "tags": [],
    }))
}

const PF_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the rule"),
    field("privateport", "string", "the first port on the VM"),
    field("privateendport", "string", "the last port on the VM"),
    field("protocol", "string", "tcp or udp"),
    field("publicport", "string", "the first public port"),
    field("publicendport", "string", "the last public port"),
    field("virtualmachineid", "string", "the VM the rule forwards to"),
    field("virtualmachinename", "string", "the name of that VM"),
    field(
        "virtualmachinedisplayname",
        "string",
        "the display name of that VM",
    ),
    field("ipaddressid", "string", "the public IP address of the rule"),
    field("ipaddress", "string", "that address"),
    field("state", "string", "Add (being applied), Active or Revoke"),
    field(
        "cidrlist",
        "string",
        "the source CIDRs allowed, comma-separated",
    ),
    field("vmguestip", "string", "the VM address the rule forwards to"),
    field("networkid", "string", "the tier of the rule"),
    field("fordisplay", "boolean", "always true"),
    field("tags", "list", "resource tags (none)"),
];

/// The live port forwarding rule named by `uuid`, which the caller may change.
async fn pf_by_uuid(ctx: &Ctx, name: &str, uuid: Uuid) -> Result<rule::Rule, Error> {
    let r = rule::get_by_uuid(&ctx.app.db, uuid)
        .await?
        .filter(|r| r.removed.is_none() && r.purpose == rule::PURPOSE_PORT_FORWARDING)
        .ok_or_else(|| Error::invalid_id(name, uuid))?;
    check_access(
        ctx,
        r.account_id,
        &r.domain_path,
        &format!("port forwarding rule {}", r.uuid),
    )?;
    Ok(r)
}

/// The ownership, `id`, address and tier filters of a rule list
/// (listPortForwardingRules, listLoadBalancerRules).
#[derive(Debug, Clone, Default)]
pub struct RuleListArgs {
    pub id: Option<Uuid>,
    /// The address's UUID, with the parameter that named it.
    pub ip: Option<(&'static str, Uuid)>,
    pub network: Option<Uuid>,
    pub list: ListArgs,
}

impl RuleListArgs {
    /// The rule filter: ownership scope, `id`, the address, `networkid`.
    pub async fn filter(
        &self,
        ctx: &Ctx,
        purpose: rule::Purpose,
    ) -> Result<rule::RuleFilter, Error> {
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let mut filter = rule::RuleFilter {
            purpose: Some(purpose.to_string()),
            scope,
            ..Default::default()
        };
        if let Some(id) = self.id {
            filter.uuids = Some(vec![id]);
        }
        if let Some((name, id)) = self.ip {
            filter.ip_address_id = Some(held_ip(ctx, name, id).await?.id);
        }
        if let Some(id) = self.network {
            filter.network_id = Some(common::tier_by_uuid(ctx, "networkid", id).await?.id);
        }
        Ok(filter)
    }
}
