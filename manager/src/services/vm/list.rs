//! `listVirtualMachines`: the VMs the caller may see, with CloudStack's
//! filters, ownership scope and paging.

use uuid::Uuid;

use super::{VM_FIELDS, sees_admin_fields, vm_view};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Ids, Spec, SyncCommand, Text, Texts};
use crate::server::registry::{ALL, fields};
use crate::server::{Ctx, Reply, page_of};
use crate::services::owner::ListArgs;
use crate::services::related::Related;
use crate::services::tags::{self, ResourceType, TAGS_FILTER};
use crate::store::{network, vm, vpc, zone};

const ID: Arg<Id> = Arg::opt("id", "the ID of the VM");
const IDS: Arg<Ids> = Arg::opt("ids", "the IDs of the VMs");
const NAME: Arg<Text> = Arg::opt("name", "only VMs of this name");
const STATE: Arg<Text> = Arg::opt("state", "only VMs in this state (present: not Destroyed)");
const ZONE: Arg<Id> = Arg::opt("zoneid", "only VMs of this zone");
const NETWORK: Arg<Id> = Arg::opt("networkid", "only VMs with a NIC on this tier");
const VPC: Arg<Id> = Arg::opt("vpcid", "only VMs in this VPC");
const SERVICE_OFFERING: Arg<Id> =
    Arg::opt("serviceofferingid", "only VMs of this service offering");
const TEMPLATE: Arg<Id> = Arg::opt("templateid", "only VMs of this template");
const DETAILS: Arg<Texts> = Arg::opt("details", "accepted; every detail is returned");

/// `listVirtualMachines`.
pub struct ListVirtualMachines {
    id: Option<Uuid>,
    /// A list of UUIDs can be malformed after the registry's checks: its
    /// error comes after the scope's, where the command always read it.
    ids: Result<Option<Vec<Uuid>>, Error>,
    name: Option<String>,
    state: Option<String>,
    zone: Option<Uuid>,
    network: Option<Uuid>,
    vpc: Option<Uuid>,
    service_offering: Option<Uuid>,
    template: Option<Uuid>,
    tags: Option<Vec<std::collections::BTreeMap<String, String>>>,
    list: ListArgs,
}

impl Command for ListVirtualMachines {
    const NAME: &'static str = "listVirtualMachines";

    fn spec() -> Spec {
        Spec::new("Lists the VMs the caller may see")
            .roles(ALL)
            .param(ID)
            .param(IDS)
            .param(NAME)
            .param(STATE)
            .param(ZONE)
            .param(NETWORK)
            .param(VPC)
            .param(SERVICE_OFFERING)
            .param(TEMPLATE)
            .param(DETAILS)
            .param(TAGS_FILTER)
            .params(ListArgs::specs())
            .returns("virtualmachine", fields(VM_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListVirtualMachines {
            id: args.get(&ID)?,
            ids: args.get(&IDS),
            name: args.text(&NAME)?,
            state: args.text(&STATE)?,
            zone: args.get(&ZONE)?,
            network: args.get(&NETWORK)?,
            vpc: args.get(&VPC)?,
            service_offering: args.get(&SERVICE_OFFERING)?,
            template: args.get(&TEMPLATE)?,
            tags: args.get(&TAGS_FILTER)?,
            list: ListArgs::parse(args)?,
        })
    }
}

/// An empty list (a filter names something that does not exist).
fn nothing() -> Reply {
    Reply::empty_list()
}

impl SyncCommand for ListVirtualMachines {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let mut uuids: Option<Vec<Uuid>> = self.ids?;
        if let Some(id) = self.id {
            uuids = Some(match uuids {
                Some(ids) => ids.into_iter().filter(|u| *u == id).collect(),
                None => vec![id],
            });
        }
        let zone_id = match self.zone {
            Some(id) => match zone::get_by_uuid(db, id).await? {
                Some(z) => Some(z.id),
                None => return Ok(nothing()),
            },
            None => None,
        };
        let network_id = match self.network {
            Some(id) => match network::get_by_uuid(db, id).await? {
                Some(n) => Some(n.id),
                None => return Ok(nothing()),
            },
            None => None,
        };
        let vpc_id = match self.vpc {
            Some(id) => match vpc::get_by_uuid(db, id).await? {
                Some(v) => Some(v.id),
                None => return Ok(nothing()),
            },
            None => None,
        };
        let service_offering_id = match self.service_offering {
            Some(id) => match vm::offering_by_uuid(db, id).await? {
                Some(o) => Some(o.id),
                None => return Ok(nothing()),
            },
            None => None,
        };
        let template_id = match self.template {
            Some(id) => match vm::template_by_uuid(db, id).await? {
                Some(t) => Some(t.id),
                None => return Ok(nothing()),
            },
            None => None,
        };
        // `present` is every state but Destroyed (and Expunging, never listed).
        let state = self.state;
        let present = state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("present"));
        let state = state.filter(|_| !present).map(|s| {
            [
                vm::STATE_STARTING,
                vm::STATE_RUNNING,
                vm::STATE_STOPPING,
                vm::STATE_STOPPED,
                vm::STATE_DESTROYED,
                vm::STATE_EXPUNGING,
                vm::STATE_ERROR,
            ]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(&s))
            .map(String::from)
            .unwrap_or(s)
        });
        let uuids = tags::narrow(db, ResourceType::UserVm, self.tags.as_deref(), uuids).await?;
        let filter = vm::VmFilter {
            uuids,
            name: self.name,
            keyword: self.list.keyword.clone(),
            zone_id,
            scope,
            state,
            network_id,
            vpc_id,
            service_offering_id,
            template_id,
            ..Default::default()
        };
        let page = self.list.page(ctx).await?;
        let (count, rows) = if present {
            let all = vm::list(db, &filter, crate::store::Page::ALL).await?.items;
            let kept: Vec<vm::Vm> = all
                .into_iter()
                .filter(|v| v.state != vm::STATE_DESTROYED)
                .collect();
            let total = kept.len() as u64;
            (total, page_of(kept, page))
        } else {
            let listed = vm::list(db, &filter, page).await?;
            (
                u64::try_from(listed.total).unwrap_or_default(),
                listed.items,
            )
        };
        let admin = sees_admin_fields(ctx.caller.role);
        let related = Related::for_vms(db, &rows).await?;
        let items = rows.iter().map(|v| vm_view(&related, v, admin)).collect();
        let mut items: Vec<serde_json::Value> = items;
        tags::attach(&ctx.app.db, ResourceType::UserVm, &mut items).await?;
        Ok(Reply::List { count, items })
    }
}
