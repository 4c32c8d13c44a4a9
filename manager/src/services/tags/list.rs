//! `listTags`: the tags the caller may see (those of its resources, of its
//! domain's for an admin), with CloudStack's filters and paging; the tags
//! of resources deleted since are left out.

use std::collections::HashMap;

use uuid::Uuid;

use super::{ResourceType, find, tag_view};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Spec, SyncCommand, Text};
use crate::server::registry::{ALL, field, fields};
use crate::server::{Ctx, Reply, page_of};
use crate::services::owner::{ListArgs, OWNER_FIELDS};
use crate::store::tag;

const RESOURCE_ID: Arg<Text> = Arg::opt("resourceid", "only the tags of this resource");
const TYPE: Arg<Text> = Arg::opt("resourcetype", "only the tags of resources of this type");
const KEY: Arg<Text> = Arg::opt("key", "only the tags of this key");
const VALUE: Arg<Text> = Arg::opt("value", "only the tags of this value");
const CUSTOMER: Arg<Text> = Arg::opt("customer", "only the tags of this customer");

/// `listTags`.
pub struct ListTags {
    resource_id: Option<String>,
    resource_type: Option<String>,
    key: Option<String>,
    value: Option<String>,
    customer: Option<String>,
    list: ListArgs,
}

impl Command for ListTags {
    const NAME: &'static str = "listTags";

    fn spec() -> Spec {
        Spec::new("Lists resource tags")
            .roles(ALL)
            .param(RESOURCE_ID)
            .param(TYPE)
            .param(KEY)
            .param(VALUE)
            .param(CUSTOMER)
            .params(ListArgs::specs())
            .returns(
                "tag",
                fields(&[
                    &[
                        field("key", "string", "the tag's key"),
                        field("value", "string", "the tag's value"),
                        field("resourcetype", "string", "the type of the tagged resource"),
                        field("resourceid", "string", "the ID of the tagged resource"),
                    ],
                    OWNER_FIELDS,
                    &[field("customer", "string", "the customer the tag is for")],
                ]),
            )
            .since("4.0.0")
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListTags {
            resource_id: args.text(&RESOURCE_ID)?,
            resource_type: args.text(&TYPE)?,
            key: args.text(&KEY)?,
            value: args.text(&VALUE)?,
            customer: args.text(&CUSTOMER)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListTags {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let scope = self.list.scope(ctx, false).await?;
        let resource_type = match self.resource_type.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => Some(ResourceType::parse(t)?.name().to_string()),
            None => None,
        };
        let resource_uuids = self
            .resource_id
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|r| match r.trim().parse::<Uuid>() {
                Ok(u) => vec![u.to_string()],
                Err(_) => vec![r.trim().to_string()],
            });
        let filter = tag::TagFilter {
            resource_type,
            resource_uuids,
            key: self.key,
            value: self.value,
            customer: self.customer,
            scope,
        };
        let keyword = self.list.keyword.as_deref().map(str::to_lowercase);
        let rows: Vec<tag::Tag> = tag::list(&ctx.app.db, &filter)
            .await?
            .into_iter()
            .filter(|t| {
                keyword.as_deref().is_none_or(|k| {
                    t.key.to_lowercase().contains(k) || t.value.to_lowercase().contains(k)
                })
            })
            .collect();
        // A deleted resource's tags go with it in CloudStack; rows of
        // resources deleted since are not shown.
        let mut live: HashMap<(String, String), bool> = HashMap::new();
        let mut shown = Vec::with_capacity(rows.len());
        for t in rows {
            let key = (t.resource_type.clone(), t.resource_uuid.clone());
            let alive = match live.get(&key) {
                Some(alive) => *alive,
                None => {
                    let alive = match (
                        ResourceType::parse(&t.resource_type),
                        t.resource_uuid.parse(),
                    ) {
                        (Ok(kind), Ok(uuid)) => find(&ctx.app.db, kind, uuid).await?.is_some(),
                        _ => false,
                    };
                    live.insert(key, alive);
                    alive
                }
            };
            if alive {
                shown.push(t);
            }
        }
        let rows = shown;
        let count = rows.len() as u64;
        let page = self.list.page(ctx).await?;
        let items = page_of(rows, page).iter().map(tag_view).collect();
        Ok(Reply::List { count, items })
    }
}
