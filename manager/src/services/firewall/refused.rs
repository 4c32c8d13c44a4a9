//! `createFirewallRule` and `deleteFirewallRule`: always refused, with the
//! network ACL commands to use instead. The checks CloudStack makes first
//! (the address or rule exists and is the caller's) still come first, so
//! an unknown or foreign id gets the answer it gets everywhere else.

use serde_json::Value;
use uuid::Uuid;

use super::{NeverStored, no_firewall};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Flag, Id, Int, Spec, Submission, Text, Texts,
};
use crate::server::jobs::JobCtx;
use crate::server::registry::ALL;
use crate::services::ip::common::{IP, held_ip};
use crate::services::owner::check_access;
use crate::store::{rule, vlan};

const PROTOCOL: Arg<Text> = Arg::req("protocol", "tcp, udp or icmp");
const START_PORT: Arg<Int> = Arg::opt("startport", "the first port");
const END_PORT: Arg<Int> = Arg::opt("endport", "the last port");
const CIDRS: Arg<Texts> = Arg::opt("cidrlist", "the source CIDRs");
const ICMP_TYPE: Arg<Int> = Arg::opt("icmptype", "the ICMP type");
const ICMP_CODE: Arg<Int> = Arg::opt("icmpcode", "the ICMP code");
const TYPE: Arg<Text> = Arg::opt("type", "user or system");
const FOR_DISPLAY: Arg<Flag> = Arg::opt("fordisplay", "accepted; not used");

const ID: Arg<Id> = Arg::req("id", "the ID of the firewall rule");

/// The refusal of firewall rules on a VPC address.
fn use_acls(ip: &vlan::PublicIp) -> Error {
    Error::invalid(format!(
        "Firewall rules are not supported on ip address {} of a VPC: VPC tiers use network ACLs \
         instead (createNetworkACL on the ACL list of the tier the traffic goes to)",
        ip.public_ip_address
    ))
}

/// `createFirewallRule`: only the address is read; the rule is refused
/// whatever it says.
pub struct CreateFirewallRule {
    ip_address: Uuid,
}

impl Command for CreateFirewallRule {
    const NAME: &'static str = "createFirewallRule";

    fn spec() -> Spec {
        Spec::new("Refused for VPC addresses: VPC tiers use network ACLs (createNetworkACL)")
            .roles(ALL)
            .param(IP)
            .param(PROTOCOL)
            .param(START_PORT)
            .param(END_PORT)
            .param(CIDRS)
            .param(ICMP_TYPE)
            .param(ICMP_CODE)
            .param(TYPE)
            .param(FOR_DISPLAY)
            .returns("firewallrule", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        // `protocol` is required (the registry checked it) but not read.
        Ok(CreateFirewallRule {
            ip_address: args.need(&IP)?,
        })
    }
}

impl AsyncCommand for CreateFirewallRule {
    // Not RERUN: the request is always refused, so no job is ever stored.
    const CREATES: bool = true;
    type Job = NeverStored;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<NeverStored>, Error> {
        let ip = held_ip(ctx, IP.name(), self.ip_address).await?;
        Err(use_acls(&ip))
    }

    async fn run(_job: &JobCtx, _payload: NeverStored) -> Result<Value, Error> {
        Err(no_firewall())
    }
}

/// `deleteFirewallRule`.
pub struct DeleteFirewallRule {
    id: Uuid,
}

impl Command for DeleteFirewallRule {
    const NAME: &'static str = "deleteFirewallRule";

    fn spec() -> Spec {
        Spec::new("Refused: VPC addresses have no firewall rules")
            .roles(ALL)
            .param(ID)
            .returns("firewallrule", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteFirewallRule {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for DeleteFirewallRule {
    // Not RERUN: the request is always refused, so no job is ever stored.
    type Job = NeverStored;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<NeverStored>, Error> {
        let id = self.id;
        // No firewall rule ever exists here. A port forwarding or load
        // balancer rule named by mistake gets the ACL hint; anything else is
        // an unknown id (the text Terraform reads as "already gone").
        let r = rule::get_by_uuid(&ctx.app.db, id)
            .await?
            .filter(|r| r.removed.is_none())
            .ok_or_else(|| Error::invalid_id(ID.name(), id))?;
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
    }

    async fn run(_job: &JobCtx, _payload: NeverStored) -> Result<Value, Error> {
        Err(no_firewall())
    }
}
