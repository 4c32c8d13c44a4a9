//! `registerUserData`: named user data of an account, with the names of its
//! parameters, for VMs to be deployed with (`userdataid`). CloudStack's
//! checks in its order: the name, the same content, the parameter names,
//! then the user data itself.

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::services::owner::OwnerArgs;
use crate::store::{StoreError, userdata};

use super::{USER_DATA_FIELDS, check_params, checked, view};

const NAME: Arg<Text> = Arg::req("name", "Name of the userdata").length(256);
const USER_DATA: Arg<Text> = Arg::req(
    "userdata",
    "the userdata, base64: up to 4 KB encoded by GET, 1 MB by POST, and at most \
     vm.userdata.max.length",
)
.length(1_048_576);
const PARAMS: Arg<Text> = Arg::opt(
    "params",
    "the comma-separated names of the variables the userdata declares; each is served to \
     the VM as a metadata file with the value given at deployment (userdatadetails)",
)
.length(4096);

/// `registerUserData`.
pub struct RegisterUserData {
    name: String,
    user_data: String,
    params: Option<String>,
    owner: OwnerArgs,
}

impl Command for RegisterUserData {
    const NAME: &'static str = "registerUserData";

    fn spec() -> Spec {
        Spec::new("Registers named userdata of an account, for VMs to be deployed with")
            .roles(ALL)
            .param(NAME)
            .param(USER_DATA)
            .param(PARAMS)
            .params(OwnerArgs::specs())
            .returns("userdata", USER_DATA_FIELDS)
            .since("4.18")
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(RegisterUserData {
            name: args.need(&NAME)?,
            user_data: args.need(&USER_DATA)?,
            params: args.text(&PARAMS)?,
            owner: OwnerArgs::parse(args)?,
        })
    }
}

impl SyncCommand for RegisterUserData {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let owner = self.owner.resolve(ctx).await?;
        if userdata::by_name(db, owner.account_id, &self.name)
            .await?
            .is_some()
        {
            return Err(name_taken(&self.name));
        }
        let compact: String = self
            .user_data
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if let Some(same) = userdata::by_content(db, owner.account_id, &compact).await? {
            return Err(same_content(&same.name));
        }
        let params = check_params(self.params.as_deref().unwrap_or_default())?;
        let stored = checked(ctx, &self.user_data).await?;
        if let Some(same) = userdata::by_content(db, owner.account_id, &stored).await? {
            return Err(same_content(&same.name));
        }
        let id = match userdata::create(
            db,
            userdata::NewUserData {
                name: &self.name,
                account_id: owner.account_id,
                domain_id: owner.domain_id,
                user_data: &stored,
                params: &params.join(","),
            },
        )
        .await
        {
            // Registered meanwhile by a parallel request.
            Err(StoreError::Duplicate(_)) => return Err(name_taken(&self.name)),
            other => other?,
        };
        let row = userdata::by_id(db, id)
            .await?
            .ok_or_else(|| Error::internal("registered userdata vanished"))?;
        Ok(Reply::Object(view(&row)))
    }
}

fn name_taken(name: &str) -> Error {
    Error::invalid(format!(
        "A userdata with name {name} already exists for this account."
    ))
}

fn same_content(name: &str) -> Error {
    Error::invalid(format!(
        "Userdata {name} with same content already exists for this account."
    ))
}
