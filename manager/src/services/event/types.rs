//! `listEventTypes`: the names of the event types (CloudStack's
//! `EventTypes`) that this cloud records.

use serde_json::json;

use crate::error::Error;
use crate::server::command::{Args, Command, Spec, SyncCommand};
use crate::server::registry::{ALL, field};
use crate::server::{Ctx, Reply};

use super::recorded_types;

/// `listEventTypes`.
pub struct ListEventTypes;

impl Command for ListEventTypes {
    const NAME: &'static str = "listEventTypes";

    fn spec() -> Spec {
        Spec::new("List Event Types")
            .roles(ALL)
            .returns("eventtype", vec![field("name", "string", "Event Type")])
    }

    fn parse(_args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListEventTypes)
    }
}

impl SyncCommand for ListEventTypes {
    async fn handle(self, _ctx: &Ctx) -> Result<Reply, Error> {
        let items: Vec<_> = recorded_types()
            .into_iter()
            .map(|name| json!({ "name": name }))
            .collect();
        Ok(Reply::List {
            count: items.len() as u64,
            items,
        })
    }
}
