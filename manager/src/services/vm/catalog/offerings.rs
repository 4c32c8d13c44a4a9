//! `listServiceOfferings`: the service offerings of VMs.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{ZONE, catalog_specs};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand, Text};
use crate::server::list_paging::Paging;
use crate::server::registry::{ALL, field};
use crate::server::{Ctx, Reply, date};
use crate::store::vm;

const ID: Arg<Id> = Arg::opt("id", "the ID of the service offering");
const NAME: Arg<Text> = Arg::opt("name", "the name of the service offering");
const IS_SYSTEM: Arg<Flag> = Arg::opt(
    "issystem",
    "true: the system offerings (the routers'), instead of those of VMs",
);
const VM: Arg<Id> = Arg::opt("virtualmachineid", "accepted; every offering fits every VM");

/// `listServiceOfferings`.
pub struct ListServiceOfferings {
    id: Option<Uuid>,
    name: Option<String>,
    is_system: Option<bool>,
    paging: Paging,
}

impl Command for ListServiceOfferings {
    const NAME: &'static str = "listServiceOfferings";

    fn spec() -> Spec {
        Spec::new("Lists the service offerings of VMs")
            .roles(ALL)
            .param(ID)
            .param(NAME)
            .param(IS_SYSTEM)
            .param(ZONE)
            .param(VM)
            .params(catalog_specs())
            .returns(
                "serviceoffering",
                vec![
                    field("id", "string", "the ID of the service offering"),
                    field("name", "string", "the name of the service offering"),
                    field("displaytext", "string", "the description"),
                    field("cpunumber", "integer", "the number of CPU cores"),
                    field("cpuspeed", "integer", "the CPU speed in MHz"),
                    field("memory", "integer", "the memory in MB"),
                    field("created", "date", "when the offering was created"),
                ],
            )
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListServiceOfferings {
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            is_system: args.get(&IS_SYSTEM)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListServiceOfferings {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let system = self.is_system == Some(true);
        // CloudStack (QueryManagerImpl): system offerings are the root admin's.
        if system && !ctx.caller.is_root_admin() {
            return Err(Error::invalid(
                "Only ROOT admins can access system offerings.",
            ));
        }
        let filter = vm::CatalogFilter {
            system,
            uuid: self.id,
            name: self.name,
            keyword: self.paging.keyword.clone(),
            ..Default::default()
        };
        let page = self.paging.page(ctx).await?;
        let listed = vm::list_offerings(&ctx.app.db, &filter, page).await?;
        Ok(Reply::List {
            count: u64::try_from(listed.total).unwrap_or_default(),
            items: listed.items.iter().map(offering_view).collect(),
        })
    }
}

pub(super) fn offering_view(o: &vm::ServiceOffering) -> Value {
    json!({
        "id": o.uuid,
        "name": o.name,
        "displaytext": o.display_text,
        "cpunumber": o.cpu,
        "cpuspeed": o.speed,
        "memory": o.ram_size,
        "created": date(o.created),
        "storagetype": "shared",
        "offerha": o.ha_enabled,
        "limitcpuuse": false,
        "isvolatile": false,
        "issystem": o.system_vm_type.is_some(),
        "systemvmtype": o.system_vm_type,
        "rootdisksize": o.root_disk_size,
        "defaultuse": o.is_default,
        "iscustomized": false,
        "hasannotations": false,
    })
}
