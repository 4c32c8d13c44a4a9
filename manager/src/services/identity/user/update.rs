//! `updateUser`: a user's username, names, email and password, by whoever
//! may manage the user (the root admin sets any password, its own too).
//! The current password is not asked for.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::store::{StoreError, user};

use super::super::views::USER_FIELDS;
use super::{USER_ID, managed_user, user_reply};

const USERNAME: Arg<Text> = Arg::opt("username", "the new username");
const FIRSTNAME: Arg<Text> = Arg::opt("firstname", "the new first name");
const LASTNAME: Arg<Text> = Arg::opt("lastname", "the new last name");
const EMAIL: Arg<Text> = Arg::opt("email", "the new email address");
const PASSWORD: Arg<Text> = Arg::opt("password", "the new password (clear text)");

/// `updateUser`.
pub struct UpdateUser {
    id: Uuid,
    username: Option<String>,
    firstname: Option<String>,
    lastname: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

impl Command for UpdateUser {
    const NAME: &'static str = "updateUser";

    fn spec() -> Spec {
        Spec::new("Updates a user's names, email or password")
            .roles(ALL)
            .param(USER_ID)
            .param(USERNAME)
            .param(FIRSTNAME)
            .param(LASTNAME)
            .param(EMAIL)
            .param(PASSWORD)
            .returns("user", USER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateUser {
            id: args.need(&USER_ID)?,
            username: args.text(&USERNAME)?,
            firstname: args.text(&FIRSTNAME)?,
            lastname: args.text(&LASTNAME)?,
            email: args.text(&EMAIL)?,
            password: args.text(&PASSWORD)?,
        })
    }
}

/// A given, non-blank value.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl SyncCommand for UpdateUser {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let u = managed_user(ctx, self.id).await?;
        if self
            .password
            .as_deref()
            .is_some_and(|p| p.trim().is_empty())
        {
            return Err(Error::invalid("Password cannot be empty"));
        }
        let mut tx = ctx.app.db.begin().await?;
        let renamed = user::update_profile(
            &mut tx,
            u.id,
            given(&self.username),
            given(&self.firstname),
            given(&self.lastname),
            given(&self.email),
        )
        .await;
        match renamed {
            Ok(_) => {}
            Err(StoreError::Duplicate(_)) => {
                return Err(Error::invalid(format!(
                    "The username {} already exists in the domain",
                    given(&self.username).unwrap_or_default()
                )));
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(p) = self.password.as_deref() {
            user::set_password(&mut tx, u.id, Some(p)).await?;
        }
        tx.commit().await?;
        user_reply(ctx, u.id).await
    }
}
