//! `listDiskOfferings`: CloudStack's four built-in disk offerings (Small
//! 5 GB, Medium 20 GB, Large 100 GB and Custom), with fixed ids, so clients
//! and UIs that read them before a deploy find what they expect. VMs here
//! have no data disks, so the offerings are fixed and take no writes.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{ZONE, catalog_specs};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::list_paging::Paging;
use crate::server::registry::{ALL, field};
use crate::server::{Ctx, Reply, page_of};

const ID: Arg<Id> = Arg::opt("id", "the ID of the disk offering");
const NAME: Arg<Text> = Arg::opt("name", "the name of the disk offering");

/// One built-in disk offering: id, name, description, size in GB (0 for
/// the customized one).
struct DiskOffering {
    id: u128,
    name: &'static str,
    text: &'static str,
    size_gb: i64,
}

/// The built-in disk offerings, as CloudStack seeds them.
const OFFERINGS: &[DiskOffering] = &[
    DiskOffering {
        id: 0x4c3e1a52_0201_4b8e_8d1f_5e0a00000201,
        name: "Small",
        text: "Small Disk, 5 GB",
        size_gb: 5,
    },
    DiskOffering {
        id: 0x4c3e1a52_0202_4b8e_8d1f_5e0a00000202,
        name: "Medium",
        text: "Medium Disk, 20 GB",
        size_gb: 20,
    },
    DiskOffering {
        id: 0x4c3e1a52_0203_4b8e_8d1f_5e0a00000203,
        name: "Large",
        text: "Large Disk, 100 GB",
        size_gb: 100,
    },
    DiskOffering {
        id: 0x4c3e1a52_0204_4b8e_8d1f_5e0a00000204,
        name: "Custom",
        text: "Custom Disk",
        size_gb: 0,
    },
];

/// `listDiskOfferings`.
pub struct ListDiskOfferings {
    id: Option<Uuid>,
    name: Option<String>,
    paging: Paging,
}

impl Command for ListDiskOfferings {
    const NAME: &'static str = "listDiskOfferings";

    fn spec() -> Spec {
        Spec::new("Lists the disk offerings")
            .roles(ALL)
            .param(ID)
            .param(NAME)
            .param(ZONE)
            .params(catalog_specs())
            .returns(
                "diskoffering",
                vec![
                    field("id", "string", "the ID of the disk offering"),
                    field("name", "string", "the name of the disk offering"),
                    field("displaytext", "string", "the description"),
                    field("disksize", "long", "the size in GB (0 when customized)"),
                    field(
                        "iscustomized",
                        "boolean",
                        "whether the size is chosen at use",
                    ),
                    field("storagetype", "string", "shared"),
                ],
            )
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListDiskOfferings {
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListDiskOfferings {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let keyword = self.paging.keyword.as_deref().map(str::to_lowercase);
        let shown: Vec<&DiskOffering> = OFFERINGS
            .iter()
            .filter(|o| self.id.is_none_or(|id| id == Uuid::from_u128(o.id)))
            .filter(|o| {
                self.name
                    .as_deref()
                    .is_none_or(|n| n.eq_ignore_ascii_case(o.name))
            })
            .filter(|o| {
                keyword.as_deref().is_none_or(|k| {
                    o.name.to_lowercase().contains(k) || o.text.to_lowercase().contains(k)
                })
            })
            .collect();
        let count = shown.len() as u64;
        let page = self.paging.page(ctx).await?;
        let items = page_of(shown, page).into_iter().map(view).collect();
        Ok(Reply::List { count, items })
    }
}

fn view(o: &DiskOffering) -> Value {
    json!({
        "id": Uuid::from_u128(o.id),
        "name": o.name,
        "displaytext": o.text,
        "disksize": o.size_gb,
        "iscustomized": o.size_gb == 0,
        "storagetype": "shared",
        "provisioningtype": "thin",
        "displayoffering": true,
        "created": "1970-01-01T00:00:00+0000",
    })
}
