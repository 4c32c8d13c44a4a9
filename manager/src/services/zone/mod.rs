//! Zones (CloudStack reference §2.10), one command per file: `createZone`,
//! `listZones`, `updateZone`, `deleteZone`. Only Advanced zones: VPCs need
//! them. The zone lookups other commands use ([`required_zone`],
//! [`zone_by_id`]) live here.

mod create;
mod delete;
mod list;
mod update;

use serde_json::{Value, json};

use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Text};
use crate::server::registry::{FieldSpec, Registry, field};
use crate::store::zone;

pub use create::CreateZone;
pub use delete::DeleteZone;
pub use list::ListZones;
pub use update::UpdateZone;

/// Registers the zone commands.
pub fn register(registry: &mut Registry) {
    registry.sync::<CreateZone>();
    registry.sync::<ListZones>();
    registry.sync::<UpdateZone>();
    registry.sync::<DeleteZone>();
}

/// `allocationstate` (createZone, updateZone).
const ALLOCATION_STATE: Arg<Text> = Arg::opt("allocationstate", "Enabled or Disabled");

/// The `zone` object. Internal DNS and the guest CIDR are infrastructure
/// details, shown to root admins only.
fn zone_view(ctx: &Ctx, z: &zone::Zone) -> Value {
    let mut view = json!({
        "id": z.uuid,
        "name": z.name,
        "description": z.description,
        "dns1": z.dns1,
        "dns2": z.dns2,
        "networktype": z.network_type,
        "allocationstate": z.allocation_state,
        "securitygroupsenabled": false,
        "localstorageenabled": false,
        "domain": z.network_domain,
        "type": "Core",
    });
    if ctx.caller.is_root_admin() {
        view["internaldns1"] = json!(z.internal_dns1);
        view["internaldns2"] = json!(z.internal_dns2);
        view["guestcidraddress"] = json!(z.guest_cidr);
    }
    view
}

/// The documented fields of a zone.
const ZONE_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the zone"),
    field("name", "string", "the name of the zone"),
    field("networktype", "string", "Advanced"),
    field("allocationstate", "string", "Enabled or Disabled"),
    field("dns1", "string", "the first public DNS server"),
    field("internaldns1", "string", "the first internal DNS server"),
];

/// The allocation state `given` names (any case): `Enabled` or `Disabled`.
fn allocation_state(given: Option<&str>) -> Result<Option<&'static str>, Error> {
    match given {
        None => Ok(None),
        Some(s) if s.eq_ignore_ascii_case("enabled") => Ok(Some("Enabled")),
        Some(s) if s.eq_ignore_ascii_case("disabled") => Ok(Some("Disabled")),
        Some(s) => Err(Error::invalid(format!(
            "allocationstate {s} is neither Enabled nor Disabled"
        ))),
    }
}

/// The live zone `id`, given as parameter `name`.
pub(crate) async fn zone_by_id(ctx: &Ctx, id: uuid::Uuid, name: &str) -> Result<zone::Zone, Error> {
    zone::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|z| z.removed.is_none())
        .ok_or_else(|| Error::invalid_id(name, id))
}

/// The zone row `id` as it is now (after a change).
async fn reloaded(ctx: &Ctx, id: i64) -> Result<zone::Zone, Error> {
    zone::get_by_id(&ctx.app.db, id)
        .await?
        .ok_or_else(|| Error::internal("zone vanished"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_states_are_read_in_any_case_and_others_refused() {
        assert_eq!(allocation_state(None).unwrap(), None);
        assert_eq!(allocation_state(Some("ENABLED")).unwrap(), Some("Enabled"));
        assert_eq!(
            allocation_state(Some("disabled")).unwrap(),
            Some("Disabled")
        );
        let refused = allocation_state(Some("Sideways")).unwrap_err();
        assert_eq!(
            refused.text(),
            "allocationstate Sideways is neither Enabled nor Disabled"
        );
    }
}
