//! Users, one command (or family) per file: `createUser` ([`create`]),
//! `listUsers` ([`list`]), `enableUser` ([`enable`]), `disableUser` and
//! `lockUser` ([`state`]), `updateUser` ([`update`]), `deleteUser`
//! ([`delete`]), `registerUserKeys` and `getUserKeys` ([`keys`]).

mod create;
mod delete;
mod enable;
mod keys;
mod list;
mod state;
mod update;

use uuid::Uuid;

use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Id};
use crate::store::{account, domain, user};

use super::{Target, denied, may_manage_user};

pub use create::CreateUser;
pub use delete::DeleteUser;
pub use enable::EnableUser;
pub use keys::{GetUserKeys, RegisterUserKeys};
pub use list::ListUsers;
pub use state::{DisableUser, LockUser};
pub use update::UpdateUser;

/// `id` of the commands on one user.
const USER_ID: Arg<Id> = Arg::req("id", "the ID of the user");

/// The live user `id`, whose keys and state the caller may manage (see
/// [`may_manage_user`]).
async fn managed_user(ctx: &Ctx, id: Uuid) -> Result<user::User, Error> {
    let u = user::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|u| u.removed.is_none())
        .ok_or_else(|| Error::invalid_id(USER_ID.name(), id))?;
    let a = account::get_by_id(&ctx.app.db, u.account_id)
        .await?
        .ok_or_else(|| Error::invalid_id(USER_ID.name(), id))?;
    if !may_manage_user(&ctx.caller, Target::of(&a), u.id) {
        return Err(denied(ctx, &format!("user {id}")));
    }
    Ok(u)
}

/// The account and domain of user `u`, for its view.
async fn owner_of(ctx: &Ctx, u: &user::User) -> Result<(account::Account, domain::Domain), Error> {
    owner_of_in(&ctx.app.db, u).await
}

/// User `id` read back after the command changed it, as the command
/// answers: the user's view with its account and domain.
async fn user_reply(ctx: &Ctx, id: i64) -> Result<crate::server::Reply, Error> {
    let u = user::get_by_id(&ctx.app.db, id)
        .await?
        .ok_or_else(|| Error::internal("user vanished"))?;
    let (a, d) = owner_of(ctx, &u).await?;
    Ok(crate::server::Reply::Object(super::views::user_view(
        &u, &a, &d,
    )))
}

/// [`owner_of`] where there is no request (a job).
async fn owner_of_in(
    db: &crate::store::Db,
    u: &user::User,
) -> Result<(account::Account, domain::Domain), Error> {
    let ctx_db = db;
    let a = account::get_by_id(ctx_db, u.account_id)
        .await?
        .ok_or_else(|| Error::internal("user without account"))?;
    let d = domain::get_by_id(ctx_db, a.domain_id)
        .await?
        .ok_or_else(|| Error::internal("account without domain"))?;
    Ok((a, d))
}

/// CloudStack refuses to disable, lock or delete the users of the system
/// account (`doing`: "disabling", "locking", "deleting").
async fn check_not_system(ctx: &Ctx, u: &user::User, doing: &str) -> Result<(), Error> {
    let a = account::get_by_id(&ctx.app.db, u.account_id)
        .await?
        .ok_or_else(|| Error::internal("user without account"))?;
    let root = domain::root(&ctx.app.db).await?;
    if a.domain_id == root.id && a.account_name == crate::store::bootstrap::SYSTEM_ACCOUNT {
        return Err(Error::invalid(format!(
            "User: {} is a system user, {doing} is not allowed",
            u.uuid
        )));
    }
    Ok(())
}
