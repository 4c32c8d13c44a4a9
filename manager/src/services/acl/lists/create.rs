//! `createNetworkACLList` (async-create): the list's row in the request; the
//! job answers with it. A list without items reaches no router until a tier
//! or private gateway takes it (replaceNetworkACLList). Without `vpcid` the
//! list is global (CloudStack's vpc id 0): the root admin's alone to make,
//! every VPC's to use.

use uuid::Uuid;

use serde_json::Value;

use super::super::list_sync;
use super::delete::DeletedList;
use super::{FOR_DISPLAY, LIST_FIELDS, list_result, vpc_param};
use crate::error::Error;
use crate::rules;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, IdJob, Spec, Submission, Text};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::server::{App, Ctx};
use crate::store::{acl, vpc};

const NAME: Arg<Text> = Arg::req("name", "the name of the ACL list");
const DESCRIPTION: Arg<Text> = Arg::opt("description", "the description of the ACL list");
const VPC: Arg<Id> = Arg::opt(
    "vpcid",
    "the VPC the list belongs to; without it (root admin only) a global list every VPC may use",
);

/// `createNetworkACLList`.
pub struct CreateAclList {
    name: String,
    description: String,
    vpc: Option<Uuid>,
}

impl Command for CreateAclList {
    const NAME: &'static str = "createNetworkACLList";

    fn spec() -> Spec {
        Spec::new(
            "Creates a network ACL list for a VPC, or without vpcid a global list that every \
             VPC may use (root admin only)",
        )
        .roles(ALL)
        .param(NAME)
        .param(DESCRIPTION)
        .param(VPC)
        .param(FOR_DISPLAY)
        .returns("networkacllist", LIST_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateAclList {
            name: args.need(&NAME)?,
            description: args.get(&DESCRIPTION)?.unwrap_or_default(),
            vpc: args.get(&VPC)?,
        })
    }
}

impl AsyncCommand for CreateAclList {
    /// Safe to run again: `submit` made the list; the job only answers it.
    const RERUN: bool = true;
    const CREATES: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        rules::acl::validate_list(&self.name, Some(&self.description))?;
        let Some(vpc_id) = self.vpc else {
            rules::acl::check_global_list_creator(ctx.caller.is_root_admin())?;
            let list = acl::create_global_list(&ctx.app.db, &self.name, &self.description).await?;
            return Ok(Submission::created(
                IdJob { id: list.id },
                ("NetworkAcl", list.uuid),
                list_sync(&list, None),
            ));
        };
        let v = vpc_param(ctx, VPC.name(), vpc_id).await?;
        if v.state != vpc::STATE_ENABLED {
            return Err(Error::invalid(format!(
                "VPC {} is {}, not Enabled: no ACL list can be added to it",
                v.uuid, v.state
            )));
        }
        let list = acl::create_list(&ctx.app.db, v.id, &self.name, &self.description).await?;
        Ok(Submission::created(
            IdJob { id: list.id },
            ("NetworkAcl", list.uuid),
            vpc_sync(v.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        list_result(&job.app.db, payload.id).await
    }

    /// Without its job the list would stay half-created: it goes, as a
    /// deleteNetworkACLList would take it, under its VPC's lock and only
    /// while no tier or private gateway uses it (one may have taken it
    /// while the job waited; the refusal is then the abandon's error).
    async fn abandon(app: &App, payload: IdJob) -> Result<(), Error> {
        let db = &app.db;
        let Some(list) = acl::get_by_id(db, payload.id)
            .await?
            .filter(|l| l.removed.is_none())
        else {
            return Ok(());
        };
        match list.vpc_id {
            Some(vpc_id) => {
                let lock = app.network.lock(db, vpc_id).await?;
                lock.apply(&DeletedList { list }).await
            }
            None => DeletedList { list }.remove_global(db).await,
        }
    }
}
