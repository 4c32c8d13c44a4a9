//! `disassociateIpAddress` (reference §3.5): the address's rules go and it
//! turns Releasing (off the router's state, never handed out) in one
//! transaction; the router drops the rules and the address
//! ([`ReleasedAddress`]); then it is Free. When the router fails the
//! address stays Releasing, and a new disassociateIpAddress finishes the
//! job.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::element::Gateway;
use crate::orchestration::model::RouterState;
use crate::provision::RouterElement;
use crate::provision::change::RouterChange;
use crate::rules;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission, Text};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::store::{Db, Page, Tx, rule, vlan, vpc};

use super::common::{self, held_ip, live_rules_on_ip};
use super::push::{ReleasedIp, RuleLists};

const ID: Arg<Id> = Arg::opt("id", "the ID of the address (or ipaddress)");
const ADDRESS: Arg<Text> = Arg::opt("ipaddress", "the address itself (or id)");

/// `disassociateIpAddress`.
pub struct DisassociateIpAddress {
    id: Option<Uuid>,
    address: Option<String>,
}

/// The job of `disassociateIpAddress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisassociateIpJob {
    /// The address's row id.
    pub ip: i64,
    /// When it was allocated (`allocated` of its row) as the request saw
    /// it: a job run again after its address was released and acquired by
    /// another request must leave that one alone. Absent in jobs of
    /// earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<i64>,
}

impl Command for DisassociateIpAddress {
    const NAME: &'static str = "disassociateIpAddress";

    fn spec() -> Spec {
        Spec::new(
            "Releases a public IP address: its rules are removed and the router \
                          gives it up",
        )
        .roles(ALL)
        .param(ID)
        .param(ADDRESS)
        .returns("ipaddress", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DisassociateIpAddress {
            id: args.get(&ID)?,
            address: args.text(&ADDRESS)?,
        })
    }
}

impl AsyncCommand for DisassociateIpAddress {
    /// An address released already (Free, or allocated again since) is
    /// done; one left Releasing is released again.
    const RERUN: bool = true;
    type Job = DisassociateIpJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<DisassociateIpJob>, Error> {
        let ip = address_param(ctx, self.id, self.address).await?;
        check_releasable(&ctx.app.db, &ip).await?;
        let sync = match ip.vpc_id {
            Some(id) => vpc_sync(id),
            None => format!("ipaddress:{}", ip.id),
        };
        Ok(Submission::new(
            DisassociateIpJob {
                ip: ip.id,
                allocated: ip.allocated,
            },
            ("IpAddress", ip.uuid),
            sync,
        ))
    }

    async fn run(job: &JobCtx, payload: DisassociateIpJob) -> Result<Value, Error> {
        let app = &job.app;
        let released = |ip: &vlan::PublicIp| {
            ip.state == vlan::IP_FREE
                || payload.allocated.is_some_and(|at| ip.allocated != Some(at))
        };
        let Some(ip) = vlan::ip_by_id(&app.db, payload.ip)
            .await?
            .filter(|ip| !released(ip))
        else {
            return Ok(json!({ "success": true }));
        };
        let Some(vpc_id) = ip.vpc_id else {
            release_outside_vpc(&app.db, payload.ip).await?;
            return Ok(json!({ "success": true }));
        };
        let lock = app.network.lock(&app.db, vpc_id).await?;
        // Re-read under the lock: another job may have released it.
        let Some(ip) = vlan::ip_by_id(&app.db, payload.ip)
            .await?
            .filter(|ip| !released(ip))
        else {
            return Ok(json!({ "success": true }));
        };
        check_releasable(&app.db, &ip).await?;
        let rules = live_rules_on_ip(&app.db, ip.id).await?;
        let range = vlan::range_by_id(&app.db, ip.vlan_db_id)
            .await?
            .ok_or_else(|| Error::internal("the public range of an address is gone"))?;
        let change = ReleasedAddress {
            lists: RuleLists {
                port_forwards: rules
                    .iter()
                    .any(|r| r.purpose == rule::PURPOSE_PORT_FORWARDING),
                static_nats: ip.one_to_one_nat,
                load_balancers: rules
                    .iter()
                    .any(|r| r.purpose == rule::PURPOSE_LOAD_BALANCING),
            },
            released: ReleasedIp::of(&ip, &range)?,
            ip_id: ip.id,
            rules: rules.iter().map(|r| r.id).collect(),
        };
        lock.apply(&change).await?;
        vlan::release_ip(&app.db, ip.id).await?;
        Ok(json!({ "success": true }))
    }
}

/// An address that is not a VPC's goes back to the pool at once: no router
/// holds it.
async fn release_outside_vpc(db: &Db, ip_id: i64) -> Result<(), Error> {
    let Some(ip) = vlan::ip_by_id(db, ip_id)
        .await?
        .filter(|ip| ip.state != vlan::IP_FREE)
    else {
        return Ok(());
    };
    check_releasable(db, &ip).await?;
    vlan::release_ip(db, ip.id).await?;
    Ok(())
}

/// An address leaving its VPC's router: its rules removed and the address
/// Releasing, then the lists it had rules in (whole, now without them) and
/// IpAssoc add=false.
struct ReleasedAddress {
    ip_id: i64,
    /// The ids of its rules (any purpose).
    rules: Vec<i64>,
    /// The lists those rules (and its static NAT) were in.
    lists: RuleLists,
    released: ReleasedIp,
}

impl RouterChange for ReleasedAddress {
    type Written = ();

    fn what(&self) -> &'static str {
        "a released public address"
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        for id in &self.rules {
            rule::remove(&mut *tx, *id).await?;
        }
        vlan::set_ip_state(tx, self.ip_id, vlan::IP_RELEASING).await?;
        Ok(())
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        self.lists.send(element, state, generation).await?;
        match self.released.view(state) {
            Some(view) => {
                element
                    .apply_ips(&state.router, generation, std::slice::from_ref(&view))
                    .await
            }
            None => Ok(()),
        }
    }

    /// Nothing goes back: the address stays Releasing without its rules
    /// (never handed out, off the router's state), and a new
    /// disassociateIpAddress finishes the release.
    async fn undo(&self, _db: &Db, _: &()) -> Result<(), Error> {
        Ok(())
    }
}

/// The held address named by `id` or `ipaddress` (exactly one).
async fn address_param(
    ctx: &Ctx,
    id: Option<Uuid>,
    address: Option<String>,
) -> Result<vlan::PublicIp, Error> {
    match (id, address) {
        (Some(id), None) => held_ip(ctx, ID.name(), id).await,
        (None, Some(address)) => {
            rules::parse_ipv4(ADDRESS.name(), &address)?;
            let found = vlan::list_ips(
                &ctx.app.db,
                &vlan::PublicIpFilter {
                    address: Some(address.trim().to_string()),
                    held_only: true,
                    ..Default::default()
                },
                Page::ALL,
            )
            .await?
            .items
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::invalid(format!("ip address {address} is not an acquired address"))
            })?;
            common::check_ip_access(ctx, &found).await?;
            Ok(found)
        }
        (Some(_), Some(_)) => Err(Error::invalid(
            "id and ipaddress are mutually exclusive: give one of them",
        )),
        (None, None) => Err(Error::invalid(
            "Either id or ipaddress must be given to release an ip address",
        )),
    }
}

/// §3.5: the source NAT address stays while its VPC exists.
async fn check_releasable(db: &Db, ip: &vlan::PublicIp) -> Result<(), Error> {
    let vpc_exists = match ip.vpc_id {
        Some(id) => vpc::get_by_id(db, id)
            .await?
            .is_some_and(|v| v.removed.is_none()),
        None => false,
    };
    rules::ip::check_release(&common::rules_ip(ip)?, vpc_exists)
}
