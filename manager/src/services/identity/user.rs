//! Users: `createUser`, `listUsers`, `enableUser`, `registerUserKeys`,
//! `getUserKeys`.

use serde_json::json;

use super::views::{user_fields, user_view};
use super::{
    Target, account_param, denied, domain_param, may_manage_account, may_manage_user, paging, spec,
    user_params,
};
use crate::api::Params;
use crate::error::Error;
use crate::handler;
use crate::server::registry::{ADMINS, ALL, CommandSpec, Kind, ParamType::*, field, opt, req};
use crate::server::{Ctx, Reply, Role, page};
use crate::store::{self, account, domain, user};

/// The user commands.
pub(super) fn commands() -> Vec<CommandSpec> {
    let mut list_users = vec![
        opt("id", Uuid, "the ID of the user"),
        opt("username", String, "the user name"),
        opt(
            "account",
            String,
            "the users of this account (with domainid)",
        ),
        opt("domainid", Uuid, "the users of this domain"),
        opt("state", String, "enabled or disabled"),
    ];
    list_users.extend(paging());
    vec![
        spec(
            "createUser",
            "Creates a user in an account",
            Kind::Sync,
            ADMINS,
            user_params(vec![req("account", String, "the account of the user")]),
            "user",
            user_fields(),
            create_user,
        ),
        spec(
            "listUsers",
            "Lists users",
            Kind::Sync,
            ALL,
            list_users,
            "user",
            user_fields(),
            list_users_handler,
        ),
        spec(
            "registerUserKeys",
            "Generates a new API key and secret key for a user",
            Kind::Sync,
            ALL,
            vec![req("id", Uuid, "the ID of the user")],
            "userkeys",
            vec![
                field("apikey", "string", "the API key"),
                field("secretkey", "string", "the secret key"),
            ],
            register_user_keys,
        ),
        spec(
            "enableUser",
            "Enables a user (and its account), forgetting its wrong passwords",
            Kind::Sync,
            ADMINS,
            vec![req("id", Uuid, "the ID of the user")],
            "user",
            user_fields(),
            enable_user,
        ),
        spec(
            "getUserKeys",
            "Returns a user's API key and secret key",
            Kind::Sync,
            ALL,
            vec![req("id", Uuid, "the ID of the user")],
            "userkeys",
            vec![
                field("apikey", "string", "the API key"),
                field("secretkey", "string", "the secret key"),
            ],
            get_user_keys,
        ),
    ]
}

handler!(create_user, |ctx, params| {
    let d = domain_param(ctx, params, "domainid").await?;
    let name = params.required_string(ctx.command, "account")?;
    let a = account::get_by_name(&ctx.app.db, d.id, &name)
        .await?
        .ok_or_else(|| {
            Error::invalid(format!(
                "Unable to find account {name} in domain {}",
                d.uuid
            ))
        })?;
    if !may_manage_account(&ctx.caller, Target::of(&a)) {
        return Err(denied(ctx, &format!("account {}", a.uuid)));
    }
    let created = user::create(
        &ctx.app.db,
        user::NewUser {
            account_id: a.id,
            username: params.required_string(ctx.command, "username")?,
            password: Some(params.required_string(ctx.command, "password")?),
            firstname: params.required_string(ctx.command, "firstname")?,
            lastname: params.required_string(ctx.command, "lastname")?,
            email: Some(params.required_string(ctx.command, "email")?),
        },
    )
    .await
    .map_err(|e| match e {
        store::StoreError::Duplicate(_) => Error::invalid(format!(
            "The user name is already used in domain {}",
            d.uuid
        )),
        other => other.into(),
    })?;
    Ok(Reply::Object(user_view(&created, &a, &d)))
});

handler!(list_users_handler, |ctx, params| {
    let caller = &ctx.caller;
    let mut filter = user::UserFilter {
        uuid: params.uuid("id")?.map(|u| u.to_string()),
        username: params.string("username")?,
        keyword: params.string("keyword")?,
        ..Default::default()
    };
    if caller.role == Role::User {
        filter.account_id = Some(caller.account_id);
    } else if params.contains("account") {
        filter.account_id = Some(account_param(ctx, params, "accountid").await?.id);
    } else {
        filter.domain_path_prefix = Some(domain_param(ctx, params, "domainid").await?.path);
    }
    let listed = user::list(&ctx.app.db, &filter, page(ctx, params).await?).await?;
    let mut items = Vec::new();
    for u in &listed.items {
        let a = account::get_by_id(&ctx.app.db, u.account_id)
            .await?
            .ok_or_else(|| Error::internal("user without account"))?;
        let d = domain::get_by_id(&ctx.app.db, a.domain_id)
            .await?
            .ok_or_else(|| Error::internal("account without domain"))?;
        items.push(user_view(u, &a, &d));
    }
    Ok(Reply::List {
        count: listed.total as u64,
        items,
    })
});

/// The live user named by `id`, whose keys the caller may manage (see
/// [`may_manage_user`]).
async fn user_param(ctx: &Ctx, params: &Params) -> Result<user::User, Error> {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let u = user::get_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|u| u.removed.is_none())
        .ok_or_else(|| Error::invalid_id("id", &id))?;
    let a = account::get_by_id(&ctx.app.db, u.account_id)
        .await?
        .ok_or_else(|| Error::invalid_id("id", &id))?;
    if !may_manage_user(&ctx.caller, Target::of(&a), u.id) {
        return Err(denied(ctx, &format!("user {id}")));
    }
    Ok(u)
}

handler!(register_user_keys, |ctx, params| {
    let u = user_param(ctx, params).await?;
    let (apikey, secretkey) = user::register_keys(&ctx.app.db, u.id, &ctx.app.secrets).await?;
    Ok(Reply::Object(
        json!({ "apikey": apikey, "secretkey": secretkey }),
    ))
});

handler!(get_user_keys, |ctx, params| {
    let u = user_param(ctx, params).await?;
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
});

// CloudStack's enableUser: the user and its account are enabled and the
// count of wrong passwords starts again, which is how a user disabled by
// `incorrect.login.attempts.allowed` gets back in.
handler!(enable_user, |ctx, params| {
    let u = user_param(ctx, params).await?;
    let mut tx = ctx.app.db.begin().await?;
    user::set_state(&mut tx, u.id, account::STATE_ENABLED).await?;
    account::set_state(&mut tx, u.account_id, account::STATE_ENABLED).await?;
    user::reset_login_attempts(&mut tx, u.id).await?;
    tx.commit().await?;
    let u = user::get_by_id(&ctx.app.db, u.id)
        .await?
        .ok_or_else(|| Error::internal("user vanished"))?;
    let a = account::get_by_id(&ctx.app.db, u.account_id)
        .await?
        .ok_or_else(|| Error::internal("user without account"))?;
    let d = domain::get_by_id(&ctx.app.db, a.domain_id)
        .await?
        .ok_or_else(|| Error::internal("account without domain"))?;
    Ok(Reply::Object(user_view(&u, &a, &d)))
});
