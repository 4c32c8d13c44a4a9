//! `listEvents`: the events the caller may see (its own account's for a
//! user; for an admin its own, or a domain's with `domainid`/`isrecursive`,
//! or everything it covers with `listall=true`), newest first, with
//! CloudStack's filters: `id`, `type`, `level`, `startdate`/`enddate`,
//! `keyword`, `resourceid`/`resourcetype`, `startid`, `archived`.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Date, Flag, Id, Long, Spec, SyncCommand, Text};
use crate::server::registry::{ALL, FieldSpec, field};
use crate::server::{Ctx, Reply, date};
use crate::services::owner::ListArgs;
use crate::store::event;

const ID: Arg<Id> = Arg::opt("id", "the ID of the event");
const TYPE: Arg<Text> = Arg::opt("type", "the event type (see listEventTypes)");
const LEVEL: Arg<Text> = Arg::opt("level", "the event level (INFO, WARN, ERROR)");
const START: Arg<Date> = Arg::opt(
    "startdate",
    "the start of the range (yyyy-MM-dd or yyyy-MM-dd HH:mm:ss)",
);
const END: Arg<Date> = Arg::opt(
    "enddate",
    "the end of the range (yyyy-MM-dd or yyyy-MM-dd HH:mm:ss)",
);
const RESOURCE_ID: Arg<Text> = Arg::opt("resourceid", "the ID of the resource of the event");
const RESOURCE_TYPE: Arg<Text> = Arg::opt("resourcetype", "the type of that resource");
const START_ID: Arg<Long> =
    Arg::opt("startid", "the parent (first) event of an action").since("4.15.0");
const ARCHIVED: Arg<Flag> = Arg::opt("archived", "true: only archived events; false: live ones");

const FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the event"),
    field(
        "type",
        "string",
        "the type of the event (see listEventTypes)",
    ),
    field("level", "string", "the event level (INFO, WARN, ERROR)"),
    field(
        "state",
        "string",
        "Created, Scheduled, Started or Completed",
    ),
    field("description", "string", "a brief description of the event"),
    field("username", "string", "the name of the user who acted"),
    field("account", "string", "the account the event is filed under"),
    field("domainid", "string", "the ID of that account's domain"),
    field("domain", "string", "the name of that domain"),
    field("domainpath", "string", "the path of that domain"),
    field("created", "date", "when the event happened"),
    field(
        "parentid",
        "string",
        "the ID of the first event of the action",
    ),
    field(
        "resourceid",
        "string",
        "the ID of the resource of the event",
    ),
    field("resourcetype", "string", "the type of that resource"),
    field("archived", "boolean", "whether the event is archived"),
];

/// `listEvents`.
pub struct ListEvents {
    id: Option<Uuid>,
    event_type: Option<String>,
    level: Option<String>,
    start: Option<i64>,
    end: Option<i64>,
    resource_id: Option<String>,
    resource_type: Option<String>,
    start_id: Option<i64>,
    archived: Option<bool>,
    list: ListArgs,
}

impl Command for ListEvents {
    const NAME: &'static str = "listEvents";

    fn spec() -> Spec {
        Spec::new("A command to list events.")
            .roles(ALL)
            .param(ID)
            .param(TYPE)
            .param(LEVEL)
            .param(START)
            .param(END)
            .param(RESOURCE_ID)
            .param(RESOURCE_TYPE)
            .param(START_ID)
            .param(ARCHIVED)
            .params(ListArgs::specs())
            .returns("event", FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        let start = args.get(&START)?.map(|t| t.timestamp_millis());
        let end = args.get(&END)?.map(|t| t.timestamp_millis());
        Ok(ListEvents {
            id: args.get(&ID)?,
            event_type: nonblank(args.text(&TYPE)?),
            level: nonblank(args.text(&LEVEL)?),
            start,
            end,
            resource_id: nonblank(args.text(&RESOURCE_ID)?),
            resource_type: nonblank(args.text(&RESOURCE_TYPE)?),
            start_id: args.get(&START_ID)?,
            archived: args.get(&ARCHIVED)?,
            list: ListArgs::parse(args)?,
        })
    }
}

fn nonblank(v: Option<String>) -> Option<String> {
    v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

impl SyncCommand for ListEvents {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let filter = event::EventFilter {
            uuid: self.id,
            event_type: self.event_type,
            level: self.level,
            keyword: self.list.keyword.clone(),
            created_from: self.start,
            created_to: self.end,
            resource_uuid: self.resource_id,
            resource_type: self.resource_type,
            start_id: self.start_id,
            // CloudStack lists live events unless archived ones are asked for.
            archived: Some(self.archived.unwrap_or(false)),
            scope,
        };
        let page = self.list.page(ctx).await?;
        let listed = event::list(&ctx.app.db, &filter, page).await?;
        Ok(Reply::List {
            count: listed.total as u64,
            items: listed.items.iter().map(event_view).collect(),
        })
    }
}

fn event_view(e: &event::Event) -> Value {
    let mut v = json!({
        "id": e.uuid,
        "type": e.event_type,
        "level": e.level,
        "state": e.state,
        "description": e.description,
        "account": e.account_name,
        "domainid": e.domain_uuid,
        "domain": e.domain_name,
        "domainpath": e.domain_path,
        "created": date(e.created),
        "archived": e.archived,
    });
    if let Some(u) = &e.username {
        v["username"] = json!(u);
    }
    if let Some(p) = &e.parent_uuid {
        v["parentid"] = json!(p);
    }
    if let (Some(t), Some(id)) = (&e.resource_type, &e.resource_uuid) {
        v["resourcetype"] = json!(t);
        v["resourceid"] = json!(id);
    }
    v
}
