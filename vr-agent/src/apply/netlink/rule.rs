//! Policy rules: the agent owns every IPv4 rule in its priority range.

use std::fmt;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::RouteProtocol;
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use rtnetlink::{Handle, IpVersion};

use super::{NetlinkError, RTPROT_VPC_AGENT, Result, request};
use crate::plan::net::{RULE_PRIORITY_BASE, RULE_PRIORITY_END, RuleSpec};

/// An owned rule as dumped.
pub(super) struct OwnedRule {
    /// The rule as a plan would say it, when it has no other selector.
    pub spec: Option<RuleSpec>,
    /// How the rule is described in reports.
    pub text: String,
    message: RuleMessage,
}

/// One change to one rule.
pub(super) enum RuleOp {
    Delete {
        text: String,
        message: Box<RuleMessage>,
    },
    Add(RuleSpec),
}

impl fmt::Display for RuleOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleOp::Delete { text, .. } => write!(f, "delete rule {text}"),
            RuleOp::Add(spec) => write!(f, "add rule {spec}"),
        }
    }
}

fn parse(msg: RuleMessage) -> Option<OwnedRule> {
    if msg.header.family != AddressFamily::Inet {
        return None;
    }
    let (mut priority, mut fwmark, mut mask, mut table) =
        (0, None, u32::MAX, u32::from(msg.header.table));
    // Anything that narrows what the rule matches makes it a rule the agent
    // never adds; it is described and deleted.
    let mut other: Vec<String> = Vec::new();
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Priority(p) => priority = *p,
            RuleAttribute::FwMark(m) => fwmark = Some(*m),
            RuleAttribute::FwMask(m) => mask = *m,
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Protocol(_) => {}
            RuleAttribute::SuppressPrefixLen(v) | RuleAttribute::SuppressIfGroup(v)
                if *v == u32::MAX => {}
            RuleAttribute::L3MDev(false) => {}
            RuleAttribute::Source(ip) => other.push(format!("from {ip}/{}", msg.header.src_len)),
            RuleAttribute::Destination(ip) => other.push(format!("to {ip}/{}", msg.header.dst_len)),
            RuleAttribute::Iifname(dev) => other.push(format!("iif {dev}")),
            RuleAttribute::Oifname(dev) => other.push(format!("oif {dev}")),
            a => other.push(format!("{a:?}")),
        }
    }
    if !(RULE_PRIORITY_BASE..RULE_PRIORITY_END).contains(&priority) {
        return None;
    }
    if msg.header.flags.contains(RuleFlags::Invert) {
        other.insert(0, "not".into());
    }
    if msg.header.tos != 0 {
        other.push(format!("tos {}", msg.header.tos));
    }
    if mask != u32::MAX {
        other.push(format!("fwmask {mask:#x}"));
    }
    let spec = match (fwmark, msg.header.action) {
        (Some(fwmark), RuleAction::ToTable) if other.is_empty() => Some(RuleSpec {
            fwmark,
            table,
            priority,
        }),
        _ => None,
    };
    let text = match &spec {
        Some(spec) => spec.to_string(),
        None => {
            let mark = fwmark
                .map(|m| format!(" fwmark {m:#x}"))
                .unwrap_or_default();
            let rest: String = other.iter().map(|o| format!(" {o}")).collect();
            format!(
                "priority {priority}{mark}{rest} {:?} {table}",
                msg.header.action
            )
        }
    };
    Some(OwnedRule {
        spec,
        text,
        message: msg,
    })
}

/// Every IPv4 rule with a priority in the agent's range.
pub(super) async fn dump(h: &Handle) -> Result<Vec<OwnedRule>> {
    let dump_error = |source| NetlinkError::Dump {
        what: "rules",
        source,
    };
    let mut stream = h.rule().get(IpVersion::V4).execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await.map_err(dump_error)? {
        out.extend(parse(msg));
    }
    Ok(out)
}

/// Owned rules not in the plan (or duplicated) are deleted, missing ones added.
pub(super) fn diff(planned: &[RuleSpec], owned: &[OwnedRule]) -> Vec<RuleOp> {
    let mut kept: Vec<RuleSpec> = Vec::new();
    let mut ops = Vec::new();
    for r in owned {
        match r.spec {
            Some(spec) if planned.contains(&spec) && !kept.contains(&spec) => kept.push(spec),
            _ => ops.push(RuleOp::Delete {
                text: r.text.clone(),
                message: Box::new(r.message.clone()),
            }),
        }
    }
    ops.extend(
        planned
            .iter()
            .filter(|r| !kept.contains(r))
            .copied()
            .map(RuleOp::Add),
    );
    ops
}

/// Runs one rule change; false when the kernel already had it so.
pub(super) async fn execute(h: &Handle, op: &RuleOp) -> Result<bool> {
    let what = || op.to_string();
    match op {
        // The dumped message carries every selector of the rule, so the
        // kernel deletes exactly that rule.
        RuleOp::Delete { message, .. } => {
            request(
                what,
                &[libc::ENOENT],
                h.rule().del((**message).clone()).execute(),
            )
            .await
        }
        RuleOp::Add(spec) => {
            // `ip rule add` fills in FR_ACT_TO_TBL itself; the kernel does
            // not default the action, so "lookup" is said explicitly.
            let mut add = h
                .rule()
                .add()
                .v4()
                .fw_mark(spec.fwmark)
                .table_id(spec.table)
                .priority(spec.priority)
                .action(RuleAction::ToTable);
            // The protocol is informational (`proto 196` in `ip rule`);
            // ownership is the priority range.
            add.message_mut()
                .attributes
                .push(RuleAttribute::Protocol(RouteProtocol::Other(
                    RTPROT_VPC_AGENT,
                )));
            request(what, &[libc::EEXIST], add.execute()).await
        }
    }
}
