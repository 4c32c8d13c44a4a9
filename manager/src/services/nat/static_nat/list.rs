//! `listIpForwardingRules`: CloudStack's static NAT *rules*, the rows of
//! purpose StaticNat that only `createIpForwardingRule` makes (its
//! `searchStaticNatRules`). `enableStaticNat` maps an address without such a
//! row, in CloudStack as here, and `createIpForwardingRule` is not offered,
//! so the list is always empty once its parameters check out: libcloud's
//! `list_nodes()` calls it every time and reads the `ipforwardingrule` key
//! only when present.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand};
use crate::server::registry::{ALL, field};
use crate::server::{Ctx, Reply};
use crate::services::ip::common::check_ip_access;
use crate::services::owner::ListArgs;
use crate::services::vm::live_vm;
use crate::store::vlan;

const IP: Arg<Id> = Arg::opt("ipaddressid", "only the rules of this public IP address");
const ID: Arg<Id> = Arg::opt("id", "the ID of the rule");
const VM: Arg<Id> = Arg::opt("virtualmachineid", "only the rules of this VM");

/// `listIpForwardingRules`.
pub struct ListIpForwardingRules {
    ip: Option<Uuid>,
    vm: Option<Uuid>,
    id: Option<Uuid>,
    list: ListArgs,
}

impl Command for ListIpForwardingRules {
    const NAME: &'static str = "listIpForwardingRules";

    fn spec() -> Spec {
        Spec::new("Lists the static NAT (IP forwarding) rules")
            .roles(ALL)
            .param(IP)
            .param(ID)
            .param(VM)
            .params(ListArgs::specs())
            .returns(
                "ipforwardingrule",
                vec![
                    field("id", "string", "the ID of the rule"),
                    field("protocol", "string", "the protocol of the rule"),
                    field("ipaddressid", "string", "the public IP address"),
                    field("ipaddress", "string", "the public IP address"),
                    field("virtualmachineid", "string", "the VM the address maps to"),
                    field("startport", "integer", "the first port"),
                    field("endport", "integer", "the last port"),
                    field("state", "string", "the state of the rule"),
                ],
            )
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListIpForwardingRules {
            ip: args.get(&IP)?,
            id: args.get(&ID)?,
            vm: args.get(&VM)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListIpForwardingRules {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        // CloudStack checks the address first: one nobody holds is "not
        // ready" (431), someone else's is refused (531).
        if let Some(id) = self.ip {
            let ip = vlan::ip_by_uuid(&ctx.app.db, id)
                .await?
                .filter(|ip| ip.state == vlan::IP_ALLOCATED)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "Ip address id={id} not ready for port forwarding rules yet"
                    ))
                })?;
            check_ip_access(ctx, &ip).await?;
        }
        if let Some(id) = self.vm {
            live_vm(ctx, id, VM.name()).await?;
        }
        // The ownership filters are checked as in every list.
        self.list.scope(ctx, self.id.is_some()).await?;
        self.list.page(ctx).await?;
        Ok(Reply::empty_list())
    }
}
