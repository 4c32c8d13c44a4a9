//! `deleteTags` (async): removes the tags of the resources of `resourceids`
//! that match `tags` (a key alone matches any value; no `tags` matches every
//! tag), compared without regard to case as CloudStack does. Nothing to
//! delete fails the job ("Failed to delete tags"); a tag of an owner the
//! caller may not act on is refused (531) before anything goes.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ResourceType;
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Map, Spec, Submission, Text, Texts,
};
use crate::server::jobs::JobCtx;
use crate::server::registry::ALL;
use crate::store::tag;

const TAGS: Arg<Map> = Arg::opt(
    "tags",
    "the tags to delete (tags[0].key, tags[0].value); all of the resources' when absent",
);
const TYPE: Arg<Text> = Arg::req("resourcetype", "the type of the resources");
const IDS: Arg<Texts> = Arg::req("resourceids", "the IDs of the resources");

/// `deleteTags`.
pub struct DeleteTags {
    tags: Vec<(String, Option<String>)>,
    resource_type: String,
    ids: Vec<String>,
}

/// The job: the tag rows to remove (none: nothing matched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTagsJob {
    pub ids: Vec<i64>,
}

impl Command for DeleteTags {
    const NAME: &'static str = "deleteTags";

    fn spec() -> Spec {
        Spec::new("Deletes resource tags")
            .roles(ALL)
            .param(TAGS)
            .param(TYPE)
            .param(IDS)
            .returns("success", vec![])
            .since("4.0.0")
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteTags {
            tags: args
                .get(&TAGS)?
                .map(|m| super::pairs(&m))
                .unwrap_or_default(),
            resource_type: args.need(&TYPE)?,
            ids: args.need(&IDS)?,
        })
    }
}

/// Whether a stored tag is one the request names (CloudStack compares keys
/// and values without regard to case; a key without value takes any value).
fn wanted(t: &tag::Tag, tags: &[(String, Option<String>)]) -> bool {
    tags.is_empty()
        || tags.iter().any(|(key, value)| {
            t.key.eq_ignore_ascii_case(key)
                && value
                    .as_deref()
                    .is_none_or(|v| t.value.eq_ignore_ascii_case(v))
        })
}

impl AsyncCommand for DeleteTags {
    /// Tags deleted already are done.
    const RERUN: bool = true;
    type Job = DeleteTagsJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<DeleteTagsJob>, Error> {
        let kind = ResourceType::parse(&self.resource_type)?;
        let filter = tag::TagFilter {
            resource_type: Some(kind.name().to_string()),
            resource_uuids: Some(self.ids.iter().map(|i| i.trim().to_lowercase()).collect()),
            ..Default::default()
        };
        let doomed: Vec<tag::Tag> = tag::list(&ctx.app.db, &filter)
            .await?
            .into_iter()
            .filter(|t| wanted(t, &self.tags))
            .collect();
        if let Some(t) = doomed
            .iter()
            .find(|t| !ctx.caller.covers(t.account_id, &t.domain_path))
        {
            return Err(Error::permission_denied(format!(
                "Account '{}' doesn't have permissions to delete tag {} of resource {}",
                ctx.caller.account_name, t.key, t.resource_uuid
            )));
        }
        Ok(Submission {
            job: DeleteTagsJob {
                ids: doomed.iter().map(|t| t.id).collect(),
            },
            instance: None,
            sync_object: "tags".into(),
            created: None,
        })
    }

    async fn run(job: &JobCtx, payload: DeleteTagsJob) -> Result<Value, Error> {
        if payload.ids.is_empty() {
            return Err(Error::internal("Failed to delete tags"));
        }
        // Tags gone already (an earlier run of this job deleted them) are
        // done.
        tag::delete(&job.app.db, &payload.ids).await?;
        Ok(json!({ "success": true }))
    }
}
