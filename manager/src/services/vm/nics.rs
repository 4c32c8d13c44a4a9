//! `listNics`: the NICs of one VM (CloudStack's ListNicsCmd), which Ansible's
//! static NAT and port forwarding modules read for `isdefault`/`ipaddress`.

use serde_json::json;
use uuid::Uuid;

use super::{live_vm, sees_admin_fields};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand};
use crate::server::list_paging::Paging;
use crate::server::registry::{ALL, field};
use crate::server::{Ctx, Reply, page_of};
use crate::services::related::Related;
use crate::store::network;

use super::views::nic_view;

const VM: Arg<Id> = Arg::req("virtualmachineid", "the ID of the VM");
const NIC: Arg<Id> = Arg::opt("nicid", "only this NIC");
const NETWORK: Arg<Id> = Arg::opt("networkid", "only the VM's NIC on this network");
const FOR_DISPLAY: Arg<Flag> = Arg::opt(
    "fordisplay",
    "accepted; every NIC is for display (root admin only in CloudStack)",
);

/// `listNics`.
pub struct ListNics {
    vm: Uuid,
    nic: Option<Uuid>,
    network: Option<Uuid>,
    paging: Paging,
}

impl Command for ListNics {
    const NAME: &'static str = "listNics";

    fn spec() -> Spec {
        Spec::new("Lists the NICs of a VM")
            .roles(ALL)
            .param(VM)
            .param(NIC)
            .param(NETWORK)
            .param(FOR_DISPLAY)
            .params(Paging::specs())
            .returns(
                "nic",
                vec![
                    field("id", "string", "the ID of the NIC"),
                    field("networkid", "string", "the tier the NIC is on"),
                    field("networkname", "string", "the name of the tier"),
                    field("ipaddress", "string", "the NIC's IPv4 address"),
                    field("netmask", "string", "the netmask"),
                    field("gateway", "string", "the gateway"),
                    field("macaddress", "string", "the MAC address"),
                    field("isdefault", "boolean", "whether it is the VM's default NIC"),
                    field("traffictype", "string", "Guest"),
                    field("type", "string", "Isolated"),
                    field("deviceid", "string", "its position on the VM"),
                    field("virtualmachineid", "string", "the VM holding it"),
                ],
            )
            .since("4.0.0")
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListNics {
            vm: args.need(&VM)?,
            nic: args.get(&NIC)?,
            network: args.get(&NETWORK)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListNics {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        // CloudStack checks the caller's access to the VM first (531 for
        // someone else's, 431 for an unknown id).
        let v = live_vm(ctx, self.vm, VM.name()).await?;
        let network_id = match self.network {
            Some(id) => Some(
                network::get_by_uuid(db, id)
                    .await?
                    .ok_or_else(|| Error::invalid_id(NETWORK.name(), id))?
                    .id,
            ),
            None => None,
        };
        let page = self.paging.page(ctx).await?;
        let related = Related::for_vms(db, std::slice::from_ref(&v)).await?;
        let keyword = self.paging.keyword.as_deref().map(str::to_lowercase);
        let nics: Vec<_> = related
            .vm_nics(v.id)
            .iter()
            .filter(|n| self.nic.is_none_or(|id| n.uuid == id))
            .filter(|n| network_id.is_none_or(|id| n.network_id == id))
            .filter(|n| {
                keyword.as_deref().is_none_or(|k| {
                    n.ip4_address.is_some_and(|a| a.to_string().contains(k))
                        || n.mac_address.contains(k)
                })
            })
            .collect();
        let count = nics.len() as u64;
        let admin = sees_admin_fields(ctx.caller.role);
        let items = page_of(nics, page)
            .into_iter()
            .map(|n| {
                let mut view = nic_view(&related, n, admin);
                view["virtualmachineid"] = json!(v.uuid);
                view
            })
            .collect();
        Ok(Reply::List { count, items })
    }
}
