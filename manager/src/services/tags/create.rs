//! `createTags` (async): puts each key/value of `tags` on each resource of
//! `resourceids`, all or none. The checks are CloudStack's, in its order (for
//! each key, for each resource: it exists, the caller may tag it, the value
//! is not empty); a key a resource has already fails the job (530).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ResourceType, find};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Map, Spec, Submission, Text, Texts,
};
use crate::server::jobs::JobCtx;
use crate::server::registry::ALL;
use crate::store::{StoreError, tag};

/// Required, as in CloudStack, but declared optional: the registry's
/// presence check reads a parameter by its plain name, which a map
/// (`tags[0].key`) never has, so `parse` refuses its absence instead.
const TAGS: Arg<Map> = Arg::opt(
    "tags",
    "the tags to add (required): tags[0].key=k&tags[0].value=v",
);
const TYPE: Arg<Text> = Arg::req(
    "resourcetype",
    "the type of the resources: Vpc, Network, UserVm, PublicIpAddress, NetworkACLList, \
     StaticRoute or PrivateGateway",
);
const IDS: Arg<Texts> = Arg::req("resourceids", "the IDs of the resources to tag");
const CUSTOMER: Arg<Text> = Arg::opt(
    "customer",
    "the customer the tags are for (a reference for a reseller)",
);

/// `createTags`.
pub struct CreateTags {
    tags: Vec<(String, Option<String>)>,
    resource_type: String,
    ids: Vec<String>,
    customer: Option<String>,
}

/// One tag the job stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRow {
    pub key: String,
    pub value: String,
    pub resource_id: i64,
    pub resource_uuid: String,
    pub account_id: i64,
    pub domain_id: i64,
}

/// The job: every row to store, checked by the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTagsJob {
    pub resource_type: String,
    pub rows: Vec<TagRow>,
    pub customer: Option<String>,
}

impl Command for CreateTags {
    const NAME: &'static str = "createTags";

    fn spec() -> Spec {
        Spec::new("Creates resource tags")
            .roles(ALL)
            .param(TAGS)
            .param(TYPE)
            .param(IDS)
            .param(CUSTOMER)
            .returns("success", vec![])
            .since("4.0.0")
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        // The keys in the order given; a key given twice keeps its last value,
        // as a map does.
        let mut tags: Vec<(String, Option<String>)> = Vec::new();
        let given = args
            .get(&TAGS)?
            .ok_or_else(|| Error::missing_param(Self::NAME, TAGS.name()))?;
        for (key, value) in super::pairs(&given) {
            tags.retain(|(k, _)| *k != key);
            tags.push((key, value));
        }
        if tags.is_empty() {
            return Err(Error::missing_param(Self::NAME, TAGS.name()));
        }
        Ok(CreateTags {
            tags,
            resource_type: args.need(&TYPE)?,
            ids: args.need(&IDS)?,
            customer: args.text(&CUSTOMER)?,
        })
    }
}

impl AsyncCommand for CreateTags {
    /// A tag with the same key and value on the resource (an earlier run
    /// made it) is kept, not made twice.
    const RERUN: bool = true;
    type Job = CreateTagsJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<CreateTagsJob>, Error> {
        let db = &ctx.app.db;
        let kind = ResourceType::parse(&self.resource_type)?;
        let mut rows = Vec::new();
        for (key, value) in &self.tags {
            for id in &self.ids {
                let resource = match id.trim().parse() {
                    Ok(uuid) => find(db, kind, uuid).await?,
                    Err(_) => None,
                };
                let resource = resource.ok_or_else(|| {
                    Error::invalid(format!(
                        "Unable to find resource by id {} and type {}",
                        id.trim(),
                        kind.name()
                    ))
                })?;
                if !ctx
                    .caller
                    .covers(resource.account_id, &resource.domain_path)
                {
                    return Err(Error::permission_denied(format!(
                        "Account '{}' doesn't have permissions to create tags for resource '{}({key})'.",
                        ctx.caller.account_name, resource.uuid
                    )));
                }
                let value = value.as_deref().filter(|v| !v.is_empty()).ok_or_else(|| {
                    Error::invalid(format!("Value for the key {key} is either null or empty"))
                })?;
                rows.push(TagRow {
                    key: key.clone(),
                    value: value.to_string(),
                    resource_id: resource.id,
                    resource_uuid: resource.uuid.to_string(),
                    account_id: resource.account_id,
                    domain_id: resource.domain_id,
                });
            }
        }
        Ok(Submission {
            job: CreateTagsJob {
                resource_type: kind.name().to_string(),
                rows,
                customer: self.customer,
            },
            instance: None,
            sync_object: "tags".into(),
            created: None,
        })
    }

    async fn run(job: &JobCtx, payload: CreateTagsJob) -> Result<Value, Error> {
        let mut tx = job.app.db.begin().await?;
        for row in &payload.rows {
            // The same tag made already (by an earlier run of this job) is
            // kept; looked up first, as a refused insert would end a
            // PostgreSQL transaction.
            let existing = tag::list(
                &mut tx,
                &tag::TagFilter {
                    resource_type: Some(payload.resource_type.clone()),
                    resource_uuids: Some(vec![row.resource_uuid.clone()]),
                    key: Some(row.key.clone()),
                    ..Default::default()
                },
            )
            .await?;
            if existing
                .iter()
                .any(|t| t.value == row.value && t.account_id == row.account_id)
            {
                continue;
            }
            let new = tag::NewTag {
                key: &row.key,
                value: &row.value,
                resource_type: &payload.resource_type,
                resource_id: row.resource_id,
                resource_uuid: &row.resource_uuid,
                account_id: row.account_id,
                domain_id: row.domain_id,
                customer: payload.customer.as_deref(),
            };
            match tag::create(&mut tx, new).await {
                Ok(_) => {}
                // CloudStack's text when the key is on the resource already.
                Err(StoreError::Duplicate(_)) => {
                    return Err(Error::internal(format!(
                        "tag {} already on {} with id {}",
                        row.key, payload.resource_type, row.resource_uuid
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit().await?;
        Ok(json!({ "success": true }))
    }
}
