//! `updateHost`: enables or disables a host for new routers and VMs
//! (`allocationstate` Enable / Disable); what runs there keeps running.

use uuid::Uuid;

use super::views::HOST_FIELDS;
use super::{host_by_id, host_views, reloaded};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::store::host;

const ID: Arg<Id> = Arg::req("id", "the ID of the host to update");
const ALLOCATION_STATE: Arg<Text> = Arg::opt(
    "allocationstate",
    "Change resource state of host, valid values are [Enable, Disable]",
);
const NAME: Arg<Text> = Arg::opt("name", "the new name of the host");

/// `updateHost`.
pub struct UpdateHost {
    id: Uuid,
    allocation_state: Option<String>,
    name: Option<String>,
}

impl Command for UpdateHost {
    const NAME: &'static str = "updateHost";

    fn spec() -> Spec {
        Spec::new("Updates a host.")
            .roles(ROOT)
            .param(ID)
            .param(ALLOCATION_STATE)
            .param(NAME)
            .returns("host", HOST_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateHost {
            id: args.need(&ID)?,
            allocation_state: args
                .text(&ALLOCATION_STATE)?
                .filter(|s| !s.trim().is_empty()),
            name: args.text(&NAME)?.filter(|s| !s.trim().is_empty()),
        })
    }
}

/// The resource state an `allocationstate` event leads to, and the states
/// it may leave (CloudStack's resource state machine: Enable and Disable
/// move between Enabled and Disabled only; a host in maintenance leaves it
/// through cancelHostMaintenance).
pub(crate) fn allocation_event(given: &str) -> Result<(&'static str, &'static str), Error> {
    if given.eq_ignore_ascii_case("enable") {
        Ok((host::RESOURCE_DISABLED, host::RESOURCE_ENABLED))
    } else if given.eq_ignore_ascii_case("disable") {
        Ok((host::RESOURCE_ENABLED, host::RESOURCE_DISABLED))
    } else {
        Err(Error::invalid(format!(
            "Invalid allocation state: {given}, only Enable/Disable are allowed"
        )))
    }
}

impl SyncCommand for UpdateHost {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let h = host_by_id(ctx, self.id, ID.name()).await?;
        let event = self
            .allocation_state
            .as_deref()
            .map(allocation_event)
            .transpose()?;
        if let Some((from, to)) = event
            && h.resource_state != to
            && !host::transit_resource_state(&ctx.app.db, h.id, &[from], to).await?
        {
            return Err(Error::internal(format!(
                "Unable to transit host {} from {} to {to}",
                h.uuid, h.resource_state
            )));
        }
        if let Some(name) = &self.name {
            host::rename(&ctx.app.db, h.id, name).await?;
        }
        let now = reloaded(ctx, h.id).await?;
        let mut views = host_views(&ctx.app.db, std::slice::from_ref(&now)).await?;
        Ok(Reply::Object(views.remove(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_events_are_enable_and_disable_in_any_case() {
        assert_eq!(allocation_event("Enable").unwrap(), ("Disabled", "Enabled"));
        assert_eq!(
            allocation_event("DISABLE").unwrap(),
            ("Enabled", "Disabled")
        );
        assert_eq!(
            allocation_event("Enabled").unwrap_err().text(),
            "Invalid allocation state: Enabled, only Enable/Disable are allowed"
        );
    }
}
