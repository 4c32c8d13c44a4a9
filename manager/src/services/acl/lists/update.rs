//! `updateNetworkACLList`: a new name or description. Neither reaches the
//! router (it knows lists by id), so the job only writes the row.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::super::{list_param, list_sync, mutable_list_vpc};
use super::{FOR_DISPLAY, LIST_FIELDS, list_result};
use crate::error::Error;
use crate::rules;
use crate::rules::acl::GlobalRefusal;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission, Text};
use crate::server::jobs::JobCtx;
use crate::server::registry::ALL;
use crate::services::args::CUSTOM_ID;
use crate::store::acl;

const ID: Arg<Id> = Arg::req("id", "the ID of the ACL list");
const NAME: Arg<Text> = Arg::opt("name", "the new name of the ACL list");
const DESCRIPTION: Arg<Text> = Arg::opt("description", "the new description of the ACL list");

/// `updateNetworkACLList`.
pub struct UpdateAclList {
    id: Uuid,
    /// None when absent or blank: the name stays.
    name: Option<String>,
    /// An empty description clears it.
    description: Option<String>,
}

/// The job of `updateNetworkACLList`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateAclListJob {
    pub id: i64,
    pub name: Option<String>,
    pub description: Option<String>,
}

impl Command for UpdateAclList {
    const NAME: &'static str = "updateNetworkACLList";

    fn spec() -> Spec {
        Spec::new("Renames a network ACL list or changes its description")
            .roles(ALL)
            .param(ID)
            .param(NAME)
            .param(DESCRIPTION)
            .param(FOR_DISPLAY)
            .param(CUSTOM_ID)
            .returns("networkacllist", LIST_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateAclList {
            id: args.need(&ID)?,
            name: args.get(&NAME)?.filter(|n| !n.trim().is_empty()),
            description: args.get(&DESCRIPTION)?,
        })
    }
}

impl AsyncCommand for UpdateAclList {
    /// Safe to run again: it writes the same name and description.
    const RERUN: bool = true;
    type Job = UpdateAclListJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<UpdateAclListJob>, Error> {
        let list = list_param(&ctx.app.db, ID.name(), self.id).await?;
        let v = mutable_list_vpc(ctx, &list, GlobalRefusal::UpdateList).await?;
        if let Some(n) = &self.name {
            rules::acl::validate_list(n, self.description.as_deref())?;
        }
        let job = UpdateAclListJob {
            id: list.id,
            name: self.name,
            description: self.description,
        };
        Ok(Submission::new(
            job,
            ("NetworkAcl", list.uuid),
            list_sync(&list, v.map(|v| v.id)),
        ))
    }

    async fn run(job: &JobCtx, payload: UpdateAclListJob) -> Result<Value, Error> {
        let db = &job.app.db;
        acl::update_list(db, payload.id, payload.name, payload.description).await?;
        list_result(db, payload.id).await
    }
}
