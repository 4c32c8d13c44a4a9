//! Per-address firewall rules, which VPCs do not have (reference §3.5: the
//! `Firewall` service is unsupported in VPCs; inbound traffic to port
//! forwarding and static NAT targets is filtered by the tier's network ACL).
//! `createFirewallRule` and `deleteFirewallRule` are refused with a text
//! pointing at network ACLs; `listFirewallRules` answers an empty list.

use serde_json::Value;

use crate::error::Error;
use crate::server::jobs::JobBody;
use crate::server::registry::{ALL, CommandSpec, Kind, ParamType::*, opt, req};
use crate::server::{Ctx, Reply};
use crate::services::ip::common::{self, held_ip};
use crate::services::owner::{check_access, list_params, list_scope};
use crate::store::{rule, vlan};
use crate::{handler, job_body};

/// The refusal of firewall rules on a VPC address.
fn use_acls(ip: &vlan::PublicIp) -> Error {
    Error::invalid(format!(
        "Firewall rules are not supported on ip address {} of a VPC: VPC tiers use network ACLs \
         instead (createNetworkACL on the ACL list of the tier the traffic goes to)",
        ip.public_ip_address
    ))
}

handler!(create_firewall_rule, |ctx, params| {
    let id = params
        .required_uuid(ctx.command, "ipaddressid")?
        .to_string();
    params.required_string(ctx.command, "protocol")?;
    let ip = held_ip(ctx, "ipaddressid", &id).await?;
    Err(use_acls(&ip))
});

// Never submitted: the request is always refused before a job exists.
job_body!(create_firewall_rule_job, |_job, _info| {
    Err(Error::invalid(
        "Firewall rules are not supported in VPCs: VPC tiers use network ACLs instead \
         (createNetworkACL)",
    ))
});

handler!(delete_firewall_rule, |ctx, params| {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    // No firewall rule ever exists here. A port forwarding or load balancer
    // rule named by mistake gets the ACL hint; anything else is an unknown id
    // (the text Terraform reads as "already gone").
    let r = rule::get_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|r| r.removed.is_none())
        .ok_or_else(|| Error::invalid_id("id", &id))?;
    check_access(
        ctx,
        r.account_id,
        &r.domain_path,
        &format!("rule {}", r.uuid),
    )?;
    Err(Error::invalid(format!(
        "Rule {} is a {} rule, not a firewall rule: VPC addresses have no firewall rules; VPC \
         tiers use network ACLs instead (createNetworkACL)",
        r.uuid, r.purpose
    )))
});

job_body!(delete_firewall_rule_job, |_job, _info| {
    Err(Error::invalid(
        "Firewall rules are not supported in VPCs: VPC tiers use network ACLs instead \
         (createNetworkACL)",
    ))
});

/// Checks the filters that name objects, so that an unknown or foreign id is
/// refused as everywhere else.
async fn check_filters(ctx: &Ctx, params: &crate::api::Params) -> Result<(), Error> {
    list_scope(ctx, params).await?;
    if let Some(id) = params.uuid("ipaddressid")? {
        held_ip(ctx, "ipaddressid", &id.to_string()).await?;
    }
    if let Some(id) = params.uuid("networkid")? {
        common::tier_by_uuid(ctx, "networkid", &id.to_string()).await?;
    }
    if let Some(id) = params.uuid("id")? {
        let id = id.to_string();
        rule::get_by_uuid(&ctx.app.db, &id)
            .await?
            .filter(|r| r.removed.is_none())
            .ok_or_else(|| Error::invalid_id("id", &id))?;
    }
    Ok(())
}

// An empty list rather than a refusal: CloudStack lists no firewall rules
// for VPC addresses (they can have none), and clients that read firewall
// rules of every address (Terraform's cloudstack_firewall, UIs) expect a
// list, not an error.
handler!(list_firewall_rules, |ctx, params| {
    check_filters(ctx, params).await?;
    Ok(Reply::List {
        count: 0,
        items: Vec::<Value>::new(),
    })
});

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let mut list = vec![
        opt("id", Uuid, "the ID of a firewall rule"),
        opt("ipaddressid", Uuid, "only rules of this public IP address"),
        opt("networkid", Uuid, "only rules of this network"),
        opt("fordisplay", Boolean, "accepted; not used"),
    ];
    list.extend(list_params());
    vec![
        CommandSpec {
            name: "createFirewallRule",
            description: "Refused for VPC addresses: VPC tiers use network ACLs (createNetworkACL)",
            kind: Kind::AsyncCreate,
            roles: ALL,
            params: vec![
                req("ipaddressid", Uuid, "the public IP address"),
                req("protocol", String, "tcp, udp or icmp"),
                opt("startport", Integer, "the first port"),
                opt("endport", Integer, "the last port"),
                opt("cidrlist", List, "the source CIDRs"),
                opt("icmptype", Integer, "the ICMP type"),
                opt("icmpcode", Integer, "the ICMP code"),
                opt("type", String, "user or system"),
                opt("fordisplay", Boolean, "accepted; not used"),
            ],
            object: "firewallrule",
            response: vec![],
            since: "",
            handler: create_firewall_rule,
            job: None,
        },
        CommandSpec {
            name: "deleteFirewallRule",
            description: "Refused: VPC addresses have no firewall rules",
            kind: Kind::Async,
            roles: ALL,
            params: vec![req("id", Uuid, "the ID of the firewall rule")],
            object: "firewallrule",
            response: vec![],
            since: "",
            handler: delete_firewall_rule,
            job: None,
        },
        CommandSpec {
            name: "listFirewallRules",
            description: "Lists firewall rules: always none, VPC tiers use network ACLs",
            kind: Kind::Sync,
            roles: ALL,
            params: list,
            object: "firewallrule",
            response: vec![],
            since: "",
            handler: list_firewall_rules,
            job: None,
        },
    ]
}

/// The job body of every async command of this module.
pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("createFirewallRule", create_firewall_rule_job),
        ("deleteFirewallRule", delete_firewall_rule_job),
    ]
}
