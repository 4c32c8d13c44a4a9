//! `createLoadBalancerRule` (async-create): the rule is checked and stored
//! (state Add, its address bound to the tier) during the request; the job
//! pushes the VPC's load balancer list and makes it Active, or withdraws it
//! when the router refuses.

use serde_json::Value;
use uuid::Uuid;

use super::super::{LB_FIELDS, RuleJob, lb_result, push_lb_list};
use super::{DESCRIPTION, FOR_DISPLAY};
use crate::error::Error;
use crate::rules;
use crate::rules::ip::{PortRule, RulePurpose};
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Flag, Id, Int, Spec, Submission, Text, Texts,
};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::server::{App, Ctx};
use crate::services::ip::common::{self, held_ip};
use crate::services::ip::push::RuleLists;
use crate::services::ip::rule_flow;
use crate::store::{Db, Page, network, rule, vlan};

const NAME: Arg<Text> = Arg::req("name", "the name of the rule");
const ALGORITHM: Arg<Text> = Arg::req("algorithm", "roundrobin, leastconn (tcp only) or source");
const PRIVATE_PORT: Arg<Int> = Arg::req("privateport", "the port on the VMs");
const PUBLIC_PORT: Arg<Int> = Arg::req("publicport", "the public port");
const PUBLIC_IP: Arg<Id> = Arg::opt(
    "publicipid",
    "the public IP address (required for VPC addresses)",
);
const NETWORK: Arg<Id> = Arg::opt(
    "networkid",
    "the tier of the VMs; needed when the address is bound to no tier yet",
);
const PROTOCOL: Arg<Text> = Arg::opt("protocol", "tcp (default) or udp");
const CIDRS: Arg<Texts> = Arg::opt("cidrlist", "source CIDRs balanced (default: everyone)");
const OPEN_FIREWALL: Arg<Flag> = Arg::opt(
    "openfirewall",
    "must be false or absent: VPC addresses have no firewall",
);
const ZONE: Arg<Id> = Arg::opt("zoneid", "accepted; the zone of the address is used");
const ACCOUNT: Arg<Text> = Arg::opt("account", "accepted; the address's owner owns the rule");
const DOMAIN: Arg<Id> = Arg::opt("domainid", "accepted; the address's owner owns the rule");

/// `createLoadBalancerRule`.
pub struct CreateLoadBalancerRule {
    name: String,
    algorithm: String,
    private_port: i64,
    public_port: i64,
    public_ip: Option<Uuid>,
    network: Option<Uuid>,
    protocol: Option<String>,
    cidrs: Vec<String>,
    description: Option<String>,
    open_firewall: bool,
}

impl Command for CreateLoadBalancerRule {
    const NAME: &'static str = "createLoadBalancerRule";

    fn spec() -> Spec {
        Spec::new("Creates a public load balancer rule on a VPC public IP address")
            .roles(ALL)
            .param(NAME)
            .param(ALGORITHM)
            .param(PRIVATE_PORT)
            .param(PUBLIC_PORT)
            .param(PUBLIC_IP)
            .param(NETWORK)
            .param(PROTOCOL)
            .param(CIDRS)
            .param(DESCRIPTION)
            .param(OPEN_FIREWALL)
            .param(ZONE)
            .param(ACCOUNT)
            .param(DOMAIN)
            .param(FOR_DISPLAY)
            .returns("loadbalancer", LB_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateLoadBalancerRule {
            name: args.need(&NAME)?,
            algorithm: args.need(&ALGORITHM)?,
            private_port: i64::from(args.need(&PRIVATE_PORT)?),
            public_port: i64::from(args.need(&PUBLIC_PORT)?),
            public_ip: args.get(&PUBLIC_IP)?,
            network: args.get(&NETWORK)?,
            protocol: args.get(&PROTOCOL)?,
            cidrs: args.get(&CIDRS)?.unwrap_or_default(),
            description: args.get(&DESCRIPTION)?,
            open_firewall: args.get(&OPEN_FIREWALL)? == Some(true),
        })
    }
}

impl AsyncCommand for CreateLoadBalancerRule {
    /// The rule's row comes from `submit`; an Active one is not pushed
    /// again ([`rule_flow::push_new`]).
    const RERUN: bool = true;
    const CREATES: bool = true;
    type Job = RuleJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<RuleJob>, Error> {
        let db = &ctx.app.db;
        let checked = rules::lb::validate_load_balancer(&rules::lb::NewLoadBalancer {
            name: &self.name,
            description: self.description.as_deref(),
            algorithm: &self.algorithm,
            protocol: self.protocol.as_deref(),
            public_port: self.public_port,
            private_port: self.private_port,
        })?;
        let transport = checked.protocol.vpc_router_transport()?;
        if self.open_firewall {
            return Err(Error::invalid(
                // CloudStack's text (its commands' getOpenFirewall).
                "Can't have openFirewall=true when IP address belongs to VPC",
            ));
        }
        let cidrs = self
            .cidrs
            .iter()
            .map(|c| rules::parse_ipv4_cidr(CIDRS.name(), c).map(|c| c.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let ip_id = self.public_ip.ok_or_else(|| {
            Error::invalid(
                "publicipid is required: the VPC virtual router balances on a public ip address \
                 acquired for the VPC (associateIpAddress vpcid=...)",
            )
        })?;
        let ip = held_ip(ctx, PUBLIC_IP.name(), ip_id).await?;
        let v = common::vpc_of_ip(db, &ip).await?;
        common::check_enabled(&v)?;
        let asked = match self.network {
            Some(id) => Some(common::tier_by_uuid(ctx, NETWORK.name(), id).await?),
            None => None,
        };

        let _lock = ctx.app.network.lock(db, v.id).await?;
        let ip = common::reload_ip(db, ip.id).await?;
        // The address's purpose and ports first: CloudStack reports a conflict
        // (537) before looking at tiers.
        let public = rules::PortRange::new(PUBLIC_PORT.name(), self.public_port, None, 1)?;
        rules::ip::check_new_port_rule(
            &common::rules_ip(&ip)?,
            &PortRule {
                purpose: RulePurpose::LoadBalancing,
                protocol: transport,
                public,
            },
            &common::port_rules_on_ip(db, ip.id).await?,
        )?;
        let tier = common::rule_tier(db, &ip, &v, asked.as_ref(), None).await?;
        common::check_service(db, &tier, "Lb").await?;
        let lb_tier = lb_tier_of_vpc(db, v.id).await?;
        rules::lb::check_public_lb_tier(
            lb_tier.as_ref().map(|t| t.name.clone()).as_ref(),
            &tier.name,
        )?;
        let bind = ip.associated_network_id.is_none();
        let mut tx = db.begin().await?;
        let (created, _) = rule::create_load_balancer(
            &mut tx,
            rule::NewRule {
                ip_address_id: ip.id,
                network_id: tier.id,
                protocol: transport.as_str().into(),
                source_cidrs: cidrs,
                account_id: ip.account_id.unwrap_or_default(),
                domain_id: ip.domain_id.unwrap_or_default(),
                ..Default::default()
            },
            &self.name,
            checked.algorithm.as_str(),
            i64::from(checked.public_port),
            i64::from(checked.private_port),
        )
        .await?;
        if bind {
            // §3.5: the address's first rule binds it to the tier.
            vlan::set_association(&mut tx, ip.id, Some(tier.id), false).await?;
        }
        tx.commit().await?;
        Ok(Submission::created(
            RuleJob {
                rule_id: created.id,
                vpc_id: v.id,
            },
            ("LoadBalancerRule", created.uuid),
            vpc_sync(v.id),
        ))
    }

    async fn run(job: &JobCtx, payload: RuleJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let lock = job.app.network.lock(db, payload.vpc_id).await?;
        let r = super::super::reload(db, payload.rule_id).await?;
        rule_flow::push_new(&lock, &r, RuleLists::LOAD_BALANCERS).await?;
        lb_result(db, payload.rule_id).await
    }

    /// The rule goes, as after a refused push, and the router gets the
    /// VPC's list again: a job whose manager died may have pushed the rule
    /// before it could record the result. A rule the job made Active
    /// stays.
    async fn abandon(app: &App, payload: RuleJob) -> Result<(), Error> {
        let db = &app.db;
        let lock = app.network.lock(db, payload.vpc_id).await?;
        let Some(r) = rule::get_by_id(db, payload.rule_id)
            .await?
            .filter(|r| r.removed.is_none() && r.state == rule::STATE_ADD)
        else {
            return Ok(());
        };
        rule_flow::withdraw_rule(db, &r).await?;
        lock.push_stored(
            "the load balancer list without an abandoned rule",
            |e, s, g| Box::pin(push_lb_list(e, s, g)),
        )
        .await
    }
}

/// The tier that already serves public load balancing in the VPC, if any
/// (only one may, §2.5).
async fn lb_tier_of_vpc(db: &Db, vpc_id: i64) -> Result<Option<network::Network>, Error> {
    let filter = rule::RuleFilter {
        vpc_id: Some(vpc_id),
        purpose: Some(rule::PURPOSE_LOAD_BALANCING.into()),
        ..Default::default()
    };
    let first = rule::list(db, &filter, Page::ALL)
        .await?
        .items
        .into_iter()
        .find(|r| r.state != rule::STATE_REVOKE);
    match first {
        Some(r) => Ok(Some(common::tier_by_id(db, r.network_id).await?)),
        None => Ok(None),
    }
}
