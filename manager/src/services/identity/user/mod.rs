//! Users, one command (or family) per file: `createUser` ([`create`]),
//! `listUsers` ([`list`]), `enableUser` ([`enable`]), `registerUserKeys`
//! and `getUserKeys` ([`keys`]).

mod create;
mod enable;
mod keys;
mod list;

use uuid::Uuid;

use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Id};
use crate::store::{account, domain, user};

use super::{Target, denied, may_manage_user};

pub use create::CreateUser;
pub use enable::EnableUser;
pub use keys::{GetUserKeys, RegisterUserKeys};
pub use list::ListUsers;

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
    let a = account::get_by_id(&ctx.app.db, u.account_id)
        .await?
        .ok_or_else(|| Error::internal("user without account"))?;
    let d = domain::get_by_id(&ctx.app.db, a.domain_id)
        .await?
        .ok_or_else(|| Error::internal("account without domain"))?;
    Ok((a, d))
}
