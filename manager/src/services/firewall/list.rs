//! `listFirewallRules`: always an empty list, after the filters that name
//! objects are checked as everywhere else.

use serde_json::Value;
use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::services::ip::common::{self, held_ip};
use crate::services::owner::ListArgs;
use crate::store::rule;

const ID: Arg<Id> = Arg::opt("id", "the ID of a firewall rule");
const IP_ADDRESS: Arg<Id> = Arg::opt("ipaddressid", "only rules of this public IP address");
const NETWORK: Arg<Id> = Arg::opt("networkid", "only rules of this network");
const FOR_DISPLAY: Arg<Flag> = Arg::opt("fordisplay", "accepted; not used");

/// `listFirewallRules`.
pub struct ListFirewallRules {
    id: Option<Uuid>,
    ip_address: Option<Uuid>,
    network: Option<Uuid>,
    list: ListArgs,
}

impl Command for ListFirewallRules {
    const NAME: &'static str = "listFirewallRules";

    fn spec() -> Spec {
        Spec::new("Lists firewall rules: always none, VPC tiers use network ACLs")
            .roles(ALL)
            .param(ID)
            .param(IP_ADDRESS)
            .param(NETWORK)
            .param(FOR_DISPLAY)
            .params(ListArgs::specs())
            .returns("firewallrule", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListFirewallRules {
            id: args.get(&ID)?,
            ip_address: args.get(&IP_ADDRESS)?,
            network: args.get(&NETWORK)?,
            list: ListArgs::parse(args)?,
        })
    }
}

// An empty list rather than a refusal: CloudStack lists no firewall rules
// for VPC addresses (they can have none), and clients that read firewall
// rules of every address (Terraform's cloudstack_firewall, UIs) expect a
// list, not an error.
impl SyncCommand for ListFirewallRules {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        // The filters that name objects are checked, so that an unknown or
        // foreign id is refused as everywhere else.
        self.list.scope(ctx, self.id.is_some()).await?;
        if let Some(id) = self.ip_address {
            held_ip(ctx, IP_ADDRESS.name(), id).await?;
        }
        if let Some(id) = self.network {
            common::tier_by_uuid(ctx, NETWORK.name(), id).await?;
        }
        if let Some(id) = self.id {
            rule::get_by_uuid(&ctx.app.db, id)
                .await?
                .filter(|r| r.removed.is_none())
                .ok_or_else(|| Error::invalid_id(ID.name(), id))?;
        }
        Ok(Reply::List {
            count: 0,
            items: Vec::<Value>::new(),
        })
    }
}
