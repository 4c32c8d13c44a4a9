//! `createPortForwardingRule` (async-create): the rule is checked and stored
//! in state Add during the request (binding the address to the rule's tier
//! when it is its first rule, §3.5); the job sends the VPC's port
//! forwarding list with it and marks it Active, or withdraws it.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::rules;
use crate::rules::ip::{PortRule, RulePurpose};
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Flag, Id, Int, Spec, Submission, Text, Texts,
};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::server::{App, Ctx};
use crate::services::ip::common::{self, IP, Names, held_ip};
use crate::services::ip::push::RuleLists;
use crate::services::ip::rule_flow::{self, RuleJob};
use crate::store::{rule, vlan};

use super::super::VM_TIER as NETWORK;
use super::{FOR_DISPLAY, INSTANCE, PF_FIELDS, pf_view};

const PRIVATE_PORT: Arg<Int> = Arg::req("privateport", "the first port on the VM");
const PUBLIC_PORT: Arg<Int> = Arg::req("publicport", "the first public port");
const PROTOCOL: Arg<Text> = Arg::req("protocol", "tcp or udp");
const VM: Arg<Id> = Arg::req("virtualmachineid", "the VM to forward to");
const PRIVATE_END_PORT: Arg<Int> = Arg::opt(
    "privateendport",
    "the last port on the VM (default privateport)",
);
const PUBLIC_END_PORT: Arg<Int> =
    Arg::opt("publicendport", "the last public port (default publicport)");
const CIDRS: Arg<Texts> = Arg::opt(
    "cidrlist",
    "source CIDRs allowed to use the rule (default 0.0.0.0/0)",
);
const VM_GUEST_IP: Arg<Text> = Arg::opt(
    "vmguestip",
    "the VM's address in the tier (its NIC address)",
);
const OPEN_FIREWALL: Arg<Flag> = Arg::opt(
    "openfirewall",
    "must be false or absent: VPC addresses have no firewall; the tier's \
     network ACL filters the traffic",
);

/// `createPortForwardingRule`.
pub struct CreatePortForwardingRule {
    ip: Uuid,
    private_port: i64,
    public_port: i64,
    protocol: String,
    vm: Uuid,
    private_end_port: Option<i64>,
    public_end_port: Option<i64>,
    cidrs: Vec<String>,
    network: Option<Uuid>,
    vm_guest_ip: Option<String>,
    open_firewall: Option<bool>,
}

impl Command for CreatePortForwardingRule {
    const NAME: &'static str = "createPortForwardingRule";

    fn spec() -> Spec {
        Spec::new("Forwards ports of a VPC public IP address to a VM in a tier")
            .roles(ALL)
            .param(IP)
            .param(PRIVATE_PORT)
            .param(PUBLIC_PORT)
            .param(PROTOCOL)
            .param(VM)
            .param(PRIVATE_END_PORT)
            .param(PUBLIC_END_PORT)
            .param(CIDRS)
            .param(NETWORK)
            .param(VM_GUEST_IP)
            .param(OPEN_FIREWALL)
            .param(FOR_DISPLAY)
            .returns("portforwardingrule", PF_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreatePortForwardingRule {
            ip: args.need(&IP)?,
            vm: args.need(&VM)?,
            protocol: args.need(&PROTOCOL)?,
            public_port: i64::from(args.need(&PUBLIC_PORT)?),
            private_port: i64::from(args.need(&PRIVATE_PORT)?),
            private_end_port: args.get(&PRIVATE_END_PORT)?.map(i64::from),
            public_end_port: args.get(&PUBLIC_END_PORT)?.map(i64::from),
            cidrs: args.get(&CIDRS)?.unwrap_or_default(),
            network: args.get(&NETWORK)?,
            // Read as given, an empty value included, as before.
            vm_guest_ip: args.get(&VM_GUEST_IP)?,
            open_firewall: args.get(&OPEN_FIREWALL)?,
        })
    }
}

impl AsyncCommand for CreatePortForwardingRule {
    /// The rule's row comes from `submit`; an Active one is not pushed
    /// again ([`rule_flow::push_new`]).
    const RERUN: bool = true;
    const CREATES: bool = true;
    type Job = RuleJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<RuleJob>, Error> {
        let db = &ctx.app.db;
        let cidr_refs: Vec<&str> = self.cidrs.iter().map(|c| c.as_str()).collect();
        let ip = held_ip(ctx, IP.name(), self.ip).await?;
        let v = common::vpc_of_ip(db, &ip).await?;
        // §2.5: VPC addresses have no firewall, so openfirewall=true is refused.
        let checked = rules::nat::validate_port_forward(&rules::nat::NewPortForward {
            protocol: &self.protocol,
            public_port: self.public_port,
            public_end_port: self.public_end_port,
            private_port: self.private_port,
            private_end_port: self.private_end_port,
            open_firewall: self.open_firewall,
            source_cidrs: &cidr_refs,
        })?;
        common::check_enabled(&v)?;
        let (target, asked) = common::nat_target(ctx, &ip, self.vm, self.network).await?;

        let _lock = ctx.app.network.lock(db, v.id).await?;
        let ip = common::reload_ip(db, ip.id).await?;
        // The address's purpose and ports first: CloudStack reports a
        // conflict (537) before looking at tiers.
        rules::ip::check_new_port_rule(
            &common::rules_ip(&ip)?,
            &PortRule {
                purpose: RulePurpose::PortForwarding,
                protocol: checked.protocol,
                public: checked.public,
            },
            &common::port_rules_on_ip(db, ip.id).await?,
        )?;
        let tier = common::rule_tier(db, &ip, &v, asked.as_ref(), Some(&target)).await?;
        common::check_service(db, &tier, "PortForwarding").await?;
        let address = common::vm_target(db, &target, &tier, self.vm_guest_ip.as_deref()).await?;
        let bind = ip.associated_network_id.is_none();
        let mut tx = db.begin().await?;
        let created = rule::create(
            &mut tx,
            rule::NewRule {
                ip_address_id: ip.id,
                network_id: tier.id,
                purpose: rule::PURPOSE_PORT_FORWARDING.into(),
                protocol: checked.protocol.as_str().into(),
                start_port: Some(i64::from(checked.public.start)),
                end_port: Some(i64::from(checked.public.end)),
                dest_ip: Some(address.to_string()),
                dest_start_port: Some(i64::from(checked.private.start)),
                dest_end_port: Some(i64::from(checked.private.end)),
                source_cidrs: checked.source_cidrs.iter().map(|c| c.to_string()).collect(),
                account_id: ip.account_id.unwrap_or_default(),
                domain_id: ip.domain_id.unwrap_or_default(),
            },
        )
        .await?;
        rule::set_vm(&mut tx, created.id, Some(target.id)).await?;
        if bind {
            // §3.5: the address's first rule binds it to the tier.
            vlan::set_association(&mut tx, ip.id, Some(tier.id), false).await?;
        }
        tx.commit().await?;
        let job = RuleJob {
            rule: created.id,
            vpc: v.id,
        };
        Ok(Submission::created(
            job,
            (INSTANCE, created.uuid),
            vpc_sync(v.id),
        ))
    }

    async fn run(job: &JobCtx, payload: RuleJob) -> Result<Value, Error> {
        let app = &job.app;
        let lock = app.network.lock(&app.db, payload.vpc).await?;
        let r = rule_flow::reload(&app.db, payload.rule).await?;
        rule_flow::push_new(&lock, &r, RuleLists::PORT_FORWARDS).await?;
        let r = rule_flow::reload(&app.db, payload.rule).await?;
        let view = pf_view(&app.db, &mut Names::default(), &r).await?;
        Ok(json!({ "portforwardingrule": view }))
    }

    /// The rule is withdrawn, as when the router refuses it, and the
    /// router gets the list without it.
    async fn abandon(app: &App, payload: RuleJob) -> Result<(), Error> {
        rule_flow::abandon_new(app, payload, RuleLists::PORT_FORWARDS).await
    }
}
