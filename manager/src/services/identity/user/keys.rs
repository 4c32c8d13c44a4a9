//! `registerUserKeys` (a new API key and secret key) and `getUserKeys`, for
//! the user itself or a caller of a higher role.

use serde_json::json;
use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Args, Command, Spec, SyncCommand};
use crate::server::registry::{ALL, field};
use crate::server::{Ctx, Reply};
use crate::store::user;

use super::{USER_ID, managed_user};

/// The spec both commands share: one user by `id`, any role (the body
/// checks the caller may manage that user), a `userkeys` object.
fn keys_spec(description: &'static str) -> Spec {
    Spec::new(description).roles(ALL).param(USER_ID).returns(
        "userkeys",
        vec![
            field("apikey", "string", "the API key"),
            field("secretkey", "string", "the secret key"),
        ],
    )
}

/// `registerUserKeys`.
pub struct RegisterUserKeys {
    id: Uuid,
}

impl Command for RegisterUserKeys {
    const NAME: &'static str = "registerUserKeys";

    fn spec() -> Spec {
        keys_spec("Generates a new API key and secret key for a user")
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(RegisterUserKeys {
            id: args.need(&USER_ID)?,
        })
    }
}

impl SyncCommand for RegisterUserKeys {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let u = managed_user(ctx, self.id).await?;
        let (apikey, secretkey) = user::register_keys(&ctx.app.db, u.id, &ctx.app.secrets).await?;
        Ok(Reply::Object(
            json!({ "apikey": apikey, "secretkey": secretkey }),
        ))
    }
}

/// `getUserKeys`.
pub struct GetUserKeys {
    id: Uuid,
}

impl Command for GetUserKeys {
    const NAME: &'static str = "getUserKeys";

    fn spec() -> Spec {
        keys_spec("Returns a user's API key and secret key")
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(GetUserKeys {
            id: args.need(&USER_ID)?,
        })
    }
}

impl SyncCommand for GetUserKeys {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let u = managed_user(ctx, self.id).await?;
        // The secret is sealed at rest; a key that does not open it is the
        // operator's problem, not the caller's: a generic 530.
        let secret = match u.secret_key.as_deref() {
            Some(stored) => Some(ctx.app.secrets.open(stored).map_err(|e| {
                tracing::error!(user = %u.uuid, error = %e, "secret key");
                Error::internal(
                    "Internal error executing command, please contact your system administrator",
                )
            })?),
            None => None,
        };
        Ok(Reply::Object(
            json!({ "apikey": u.api_key, "secretkey": secret }),
        ))
    }
}
