//! `listVolumes`: every VM has one ROOT volume, as in CloudStack, so
//! `cs_instance_info` and UIs find its disk. A namespace VM has no disk of its
//! own, so the volume is not stored: it is derived from the VM (its id is a
//! name-based UUID of the VM's, stable across managers and restarts) and
//! sized from the VM's service offering (`root_disk_size`) or else its
//! template's virtual size, the way CloudStack sizes a ROOT volume.

use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::{ALL, FieldSpec, field};
use crate::server::{Ctx, Reply, date, page_of};
use crate::services::owner::ListArgs;
use crate::services::related::Related;
use crate::store::{Page, vm, zone};

const ID: Arg<Id> = Arg::opt("id", "the ID of the volume");
const VM: Arg<Id> = Arg::opt("virtualmachineid", "only the volumes of this VM");
const TYPE: Arg<Text> = Arg::opt("type", "ROOT or DATADISK (there are no data disks)");
const ZONE: Arg<Id> = Arg::opt("zoneid", "only volumes of this zone");
const NAME: Arg<Text> = Arg::opt("name", "only the volume of this name (ROOT-<n>)");

/// The CloudStack volume type of every volume here.
const ROOT: &str = "ROOT";
const GIB: i64 = 1 << 30;

const VOLUME_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the volume"),
    field(
        "name",
        "string",
        "ROOT-<n>, as CloudStack names a VM's root disk",
    ),
    field("type", "string", "ROOT"),
    field("size", "long", "the size in bytes"),
    field("state", "string", "Ready"),
    field("deviceid", "long", "the device position on the VM (0)"),
    field("virtualmachineid", "string", "the VM it belongs to"),
    field("vmname", "string", "the name of the VM"),
    field("vmstate", "string", "the state of the VM"),
    field("zoneid", "string", "the zone"),
    field("zonename", "string", "the name of the zone"),
    field(
        "serviceofferingid",
        "string",
        "the service offering of the VM",
    ),
    field(
        "templateid",
        "string",
        "the template the volume was made from",
    ),
    field("account", "string", "the owner account"),
    field("domainid", "string", "the owner's domain"),
    field(
        "created",
        "date",
        "when the volume was created (with its VM)",
    ),
];

/// `listVolumes`.
pub struct ListVolumes {
    id: Option<Uuid>,
    vm: Option<Uuid>,
    volume_type: Option<String>,
    zone: Option<Uuid>,
    name: Option<String>,
    list: ListArgs,
}

impl Command for ListVolumes {
    const NAME: &'static str = "listVolumes";

    fn spec() -> Spec {
        Spec::new("Lists the volumes of the VMs the caller may see")
            .roles(ALL)
            .param(ID)
            .param(VM)
            .param(TYPE)
            .param(ZONE)
            .param(NAME)
            .params(ListArgs::specs())
            .returns("volume", VOLUME_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListVolumes {
            id: args.get(&ID)?,
            vm: args.get(&VM)?,
            volume_type: args.text(&TYPE)?,
            zone: args.get(&ZONE)?,
            name: args.text(&NAME)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListVolumes {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        if self
            .volume_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case(ROOT))
        {
            return Ok(Reply::empty_list());
        }
        let zone_id = match self.zone {
            Some(id) => match zone::get_by_uuid(db, id).await? {
                Some(z) => Some(z.id),
                None => return Ok(Reply::empty_list()),
            },
            None => None,
        };
        let filter = vm::VmFilter {
            uuids: self.vm.map(|v| vec![v]),
            zone_id,
            scope,
            ..Default::default()
        };
        let keyword = self.list.keyword.as_deref().map(str::to_lowercase);
        let vms: Vec<vm::Vm> = vm::list(db, &filter, Page::ALL)
            .await?
            .items
            .into_iter()
            .filter(|v| v.removed.is_none())
            .filter(|v| self.id.is_none_or(|id| root_volume_uuid(v.uuid) == id))
            .filter(|v| {
                let name = root_volume_name(v);
                self.name
                    .as_deref()
                    .is_none_or(|n| n.eq_ignore_ascii_case(&name))
                    && keyword
                        .as_deref()
                        .is_none_or(|k| name.to_lowercase().contains(k))
            })
            .collect();
        let count = vms.len() as u64;
        let page = self.list.page(ctx).await?;
        let rows = page_of(vms, page);
        let related = Related::for_vms(db, &rows).await?;
        let items = rows.iter().map(|v| volume_view(&related, v)).collect();
        Ok(Reply::List { count, items })
    }
}

/// The id of a VM's ROOT volume: a name-based (SHA-1, version 5 layout)
/// UUID of the VM's, so every manager shows the same id without storing it.
pub fn root_volume_uuid(vm: Uuid) -> Uuid {
    let mut hash = Sha1::new();
    hash.update(b"vpc-manager ROOT volume of ");
    hash.update(vm.as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// CloudStack names a VM's root disk `ROOT-<the VM's internal id>`.
fn root_volume_name(v: &vm::Vm) -> String {
    format!("ROOT-{}", v.id)
}

/// The ROOT volume's size in bytes: the offering's root disk when it names
/// one, else the template's virtual size.
fn root_volume_size(o: Option<&vm::ServiceOffering>, t: Option<&vm::Template>) -> i64 {
    match o.and_then(|o| o.root_disk_size) {
        Some(gib) => gib.saturating_mul(GIB),
        None => t.map_or(0, |t| t.size),
    }
}

fn volume_view(related: &Related, v: &vm::Vm) -> Value {
    let z = related.zone_row(v.zone_id);
    let o = related.service_offering(v.service_offering_id);
    let t = related.template(v.template_id);
    let a = related.account(v.account_id);
    let d = related.domain(v.domain_id);
    let mut m = json!({
        "id": root_volume_uuid(v.uuid),
        "name": root_volume_name(v),
        "type": ROOT,
        "size": root_volume_size(o, t),
        "state": "Ready",
        "deviceid": 0,
        "virtualmachineid": v.uuid,
        "vmname": v.name,
        "vmdisplayname": v.display_name,
        "vmstate": v.state,
        "zoneid": z.map(|z| z.uuid),
        "zonename": z.map(|z| z.name.clone()),
        "serviceofferingid": o.map(|o| o.uuid),
        "serviceofferingname": o.map(|o| o.name.clone()),
        "templateid": t.map(|t| t.uuid),
        "templatename": t.map(|t| t.name.clone()),
        "account": a.map(|a| a.account_name.clone()),
        "domainid": d.map(|d| d.uuid),
        "domain": d.map(|d| d.name.clone()),
        "storagetype": "shared",
        "provisioningtype": "thin",
        "destroyed": false,
        "isextractable": false,
        "created": date(v.created),
        "attached": date(v.created),
        "tags": [],
    });
    if let Some(obj) = m.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_volume_id_is_stable_and_distinct_per_vm() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert_eq!(root_volume_uuid(a), root_volume_uuid(a));
        assert_ne!(root_volume_uuid(a), root_volume_uuid(b));
        assert_ne!(root_volume_uuid(a), a);
        assert_eq!(root_volume_uuid(a).get_version_num(), 5);
    }

    #[test]
    fn root_volume_sized_from_offering_else_template() {
        let offering = |root: Option<i64>| vm::ServiceOffering {
            id: 1,
            uuid: Uuid::nil(),
            name: "o".into(),
            display_text: String::new(),
            cpu: 1,
            speed: 500,
            ram_size: 512,
            is_default: false,
            created: 0,
            removed: None,
            system_vm_type: None,
            root_disk_size: root,
            ha_enabled: false,
        };
        let template = vm::Template {
            id: 1,
            uuid: Uuid::nil(),
            name: "t".into(),
            display_text: String::new(),
            format: "NETNS".into(),
            os_type: "Linux".into(),
            is_public: true,
            is_featured: true,
            enable_password: false,
            created: 0,
            removed: None,
            size: 3 * GIB,
        };
        assert_eq!(
            root_volume_size(Some(&offering(Some(8))), Some(&template)),
            8 * GIB
        );
        assert_eq!(
            root_volume_size(Some(&offering(None)), Some(&template)),
            3 * GIB
        );
    }
}
