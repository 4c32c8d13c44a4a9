//! Public load balancing on VPC addresses, served by the VPC virtual router
//! (reference §2.5, §3.4 item 9): rules ([`rule`]: create, update, delete,
//! list) and their members ([`members`]: assign, remove, list instances).
//! Every change pushes the VPC's whole load balancer list (with each rule's
//! backends); a failed push undoes the change and fails the job.

pub mod members;
pub mod rule;

use serde_json::{Value, json};

use crate::error::Error;
use crate::server::jobs::JobBody;
use crate::server::registry::{CommandSpec, FieldSpec, field};
use crate::services::ip::common::{Names, merge};
use crate::store::{self, Db};

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let mut all = rule::commands();
    all.extend(members::commands());
    all
}

/// The job body of every async command of this module.
pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    let mut all = rule::job_bodies();
    all.extend(members::job_bodies());
    all
}

/// A load balancer rule as the API shows it (LoadBalancerResponse: ports and
/// `cidrlist` are strings).
pub async fn lb_view(db: &Db, names: &mut Names, r: &store::rule::Rule) -> Result<Value, Error> {
    let lb = names.load_balancer(db, r.id).await?.cloned();
    let ip = names
        .ip(db, r.ip_address_id)
        .await?
        .map(|ip| (ip.uuid.clone(), ip.public_ip_address.clone(), ip.zone_id));
    let zone = match &ip {
        Some((_, _, zone_id)) => names
            .zone(db, *zone_id)
            .await?
            .map(|z| (z.uuid.clone(), z.name.clone())),
        None => None,
    };
    let tier = names
        .network(db, r.network_id)
        .await?
        .map(|n| n.uuid.clone());
    let view = json!({
        "id": r.uuid,
        "name": lb.as_ref().map(|l| l.name.clone()),
        "algorithm": lb.as_ref().map(|l| l.algorithm.clone()),
        "publicport": lb.as_ref().map(|l| l.public_port.to_string()),
        "privateport": lb.as_ref().map(|l| l.private_port.to_string()),
        "publicipid": ip.as_ref().map(|i| i.0.clone()),
        "publicip": ip.as_ref().map(|i| i.1.clone()),
        "zoneid": zone.as_ref().map(|z| z.0.clone()),
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
pub fn lb_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the rule"),
        field("name", "string", "the name of the rule"),
        field("algorithm", "string", "roundrobin or source"),
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
    ]
}
