//! The root admin's service offering writes, which test suites run before
//! anything else: `createServiceOffering`, `updateServiceOffering` (name and
//! description) and `deleteServiceOffering` (the offering is marked removed;
//! its VMs keep it). CloudStack's checks and texts; custom offerings (no
//! CPU, speed or memory given) are refused, as a namespace VM has no size to
//! choose at deploy.

use uuid::Uuid;

use super::offerings::offering_view;
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Long, Spec, SyncCommand, Text};
use crate::server::registry::{FieldSpec, ROOT, field};
use crate::server::{Ctx, Reply};
use crate::services::args::NEW_TEXT;
use crate::services::offering::DISPLAY_TEXT;
use crate::store::vm;

const NAME: Arg<Text> = Arg::req("name", "the name of the service offering");
const CPU: Arg<Long> = Arg::opt("cpunumber", "the number of CPU cores");
const SPEED: Arg<Long> = Arg::opt("cpuspeed", "the CPU speed in MHz");
const MEMORY: Arg<Long> = Arg::opt("memory", "the memory in MB (at least 32)");
const ROOT_DISK: Arg<Long> = Arg::opt(
    "rootdisksize",
    "the ROOT disk of its VMs in GB; default the template's size",
);
const STORAGE: Arg<Text> = Arg::opt("storagetype", "local or shared (default shared)");
const OFFER_HA: Arg<Flag> = Arg::opt(
    "offerha",
    "the HA for the service offering: its VMs start on another host when theirs is lost",
);
const ID: Arg<Id> = Arg::req("id", "the ID of the service offering");
const NEW_NAME: Arg<Text> = Arg::opt("name", "the new name of the service offering");

const FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the service offering"),
    field("name", "string", "the name of the service offering"),
    field("displaytext", "string", "the description"),
    field("cpunumber", "integer", "the number of CPU cores"),
    field("cpuspeed", "integer", "the CPU speed in MHz"),
    field("memory", "integer", "the memory in MB"),
    field("rootdisksize", "long", "the ROOT disk size in GB"),
    field(
        "offerha",
        "boolean",
        "the HA support in the service offering",
    ),
    field("created", "date", "when the offering was created"),
];

/// `createServiceOffering`.
pub struct CreateServiceOffering {
    name: String,
    display_text: Option<String>,
    cpu: Option<i64>,
    speed: Option<i64>,
    memory: Option<i64>,
    root_disk: Option<i64>,
    storage: Option<String>,
    offer_ha: bool,
}

impl Command for CreateServiceOffering {
    const NAME: &'static str = "createServiceOffering";

    fn spec() -> Spec {
        Spec::new("Creates a service offering of VMs")
            .roles(ROOT)
            .param(NAME)
            .param(DISPLAY_TEXT)
            .param(CPU)
            .param(SPEED)
            .param(MEMORY)
            .param(ROOT_DISK)
            .param(STORAGE)
            .param(OFFER_HA)
            .returns("serviceoffering", FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateServiceOffering {
            name: args.need(&NAME)?,
            display_text: args.text(&DISPLAY_TEXT)?,
            cpu: args.get(&CPU)?,
            speed: args.get(&SPEED)?,
            memory: args.get(&MEMORY)?,
            root_disk: args.get(&ROOT_DISK)?,
            storage: args.text(&STORAGE)?,
            offer_ha: args.get(&OFFER_HA)?.unwrap_or(false),
        })
    }
}

/// The sizes of a new offering, checked in CloudStack's order and texts
/// (ConfigurationManagerImpl.createServiceOffering).
fn checked_sizes(
    name: &str,
    cpu: Option<i64>,
    speed: Option<i64>,
    memory: Option<i64>,
) -> Result<(i64, i64, i64), Error> {
    const MAX: i64 = i32::MAX as i64;
    let (Some(cpu), Some(speed), Some(memory)) = (cpu, speed, memory) else {
        if cpu.is_none() && speed.is_none() && memory.is_none() {
            return Err(Error::invalid(format!(
                "Failed to create service offering {name}: custom compute offerings \
                 (without cpunumber, cpuspeed and memory) are not supported: a VM's size \
                 is not chosen at deploy here"
            )));
        }
        return Err(Error::invalid(
            "For creating a custom compute offering cpu, cpu speed and memory all should be null",
        ));
    };
    if cpu <= 0 || cpu > MAX {
        return Err(Error::invalid(format!(
            "Failed to create service offering {name}: specify the cpu number value between 1 and {MAX}"
        )));
    }
    if !(0..=MAX).contains(&speed) {
        return Err(Error::invalid(format!(
            "Failed to create service offering {name}: specify the cpu speed value between 0 and {MAX}"
        )));
    }
    if !(32..=MAX).contains(&memory) {
        return Err(Error::invalid(format!(
            "Failed to create service offering {name}: specify the memory value between 32 and {MAX} MB"
        )));
    }
    Ok((cpu, speed, memory))
}

impl SyncCommand for CreateServiceOffering {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let name = self.name.trim().to_string();
        if name.is_empty() {
            return Err(Error::invalid(
                "Failed to create service offering: specify the name that has non-zero length",
            ));
        }
        let (cpu, speed, memory) = checked_sizes(&name, self.cpu, self.speed, self.memory)?;
        if let Some(s) = self.storage.as_deref().filter(|s| !s.is_empty())
            && !s.eq_ignore_ascii_case("shared")
            && !s.eq_ignore_ascii_case("local")
        {
            return Err(Error::invalid(format!(
                "Invalid storage type {s} specified, valid types are: 'local' and 'shared'"
            )));
        }
        if let Some(size) = self.root_disk
            && size <= 0
        {
            return Err(Error::invalid(format!(
                "Failed to create service offering {name}: rootdisksize {size} must be positive"
            )));
        }
        let display_text = self
            .display_text
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| name.clone());
        let created = vm::create_offering(
            &ctx.app.db,
            vm::NewServiceOffering {
                name,
                display_text,
                cpu,
                speed,
                ram_size: memory,
                root_disk_size: self.root_disk,
                ha_enabled: self.offer_ha,
            },
        )
        .await?;
        Ok(Reply::Object(offering_view(&created)))
    }
}

/// The live service offering of guest VMs `id`, or 431.
async fn live_offering(ctx: &Ctx, id: Uuid) -> Result<vm::ServiceOffering, Error> {
    vm::offering_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|o| o.removed.is_none())
        .ok_or_else(|| Error::invalid_id(ID.name(), id))
}

/// `updateServiceOffering`.
pub struct UpdateServiceOffering {
    id: Uuid,
    name: Option<String>,
    display_text: Option<String>,
}

impl Command for UpdateServiceOffering {
    const NAME: &'static str = "updateServiceOffering";

    fn spec() -> Spec {
        Spec::new("Updates the name or description of a service offering")
            .roles(ROOT)
            .param(ID)
            .param(NEW_NAME)
            .param(NEW_TEXT)
            .returns("serviceoffering", FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateServiceOffering {
            id: args.need(&ID)?,
            name: args.text(&NEW_NAME)?,
            display_text: args.text(&NEW_TEXT)?,
        })
    }
}

impl SyncCommand for UpdateServiceOffering {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let o = live_offering(ctx, self.id).await?;
        let name = self
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(o.name.clone());
        let display_text = self
            .display_text
            .filter(|t| !t.is_empty())
            .unwrap_or(o.display_text.clone());
        vm::update_offering(&ctx.app.db, o.id, &name, &display_text).await?;
        let updated = live_offering(ctx, self.id).await?;
        Ok(Reply::Object(offering_view(&updated)))
    }
}

/// `deleteServiceOffering`.
pub struct DeleteServiceOffering {
    id: Uuid,
}

impl Command for DeleteServiceOffering {
    const NAME: &'static str = "deleteServiceOffering";

    fn spec() -> Spec {
        Spec::new("Deletes a service offering; its VMs keep it")
            .roles(ROOT)
            .param(ID)
            .returns("success", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteServiceOffering {
            id: args.need(&ID)?,
        })
    }
}

impl SyncCommand for DeleteServiceOffering {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let o = live_offering(ctx, self.id).await?;
        // CloudStack keeps its default and system offerings.
        if o.is_default || o.system_vm_type.is_some() {
            return Err(Error::invalid(
                "Default service offerings cannot be deleted",
            ));
        }
        vm::remove_offering(&ctx.app.db, o.id).await?;
        Ok(Reply::Success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: Error) -> String {
        crate::api::ApiError::from(e).text
    }

    #[test]
    fn sizes_are_checked_in_cloudstack_order() {
        assert_eq!(
            checked_sizes("s", Some(2), Some(1000), Some(2048)).unwrap(),
            (2, 1000, 2048)
        );
        let e = text(checked_sizes("s", Some(0), Some(1000), Some(2048)).unwrap_err());
        assert!(e.contains("cpu number value between 1"), "{e}");
        let e = text(checked_sizes("s", Some(1), Some(-1), Some(2048)).unwrap_err());
        assert!(e.contains("cpu speed value between 0"), "{e}");
        let e = text(checked_sizes("s", Some(1), Some(500), Some(16)).unwrap_err());
        assert!(e.contains("memory value between 32"), "{e}");
        let e = text(checked_sizes("s", None, None, None).unwrap_err());
        assert!(e.contains("custom compute offerings"), "{e}");
        let e = text(checked_sizes("s", Some(1), None, None).unwrap_err());
        assert!(e.contains("all should be null"), "{e}");
    }
}
