//! Domains, accounts and users (CloudStack reference §2.10, §1.11).
//!
//! One file per resource: [`domain`], [`account`] and [`user`], with the
//! response objects they share in [`views`]; this module assembles their
//! commands and keeps the parameter helpers they share.

mod account;
mod domain;
mod user;
mod views;

use crate::api::{ApiError, Params};
use crate::server::jobs::JobBody;
use crate::server::registry::{
    CommandSpec, FieldSpec, Handler, Kind, ParamSpec, ParamType::*, opt, req,
};
use crate::server::{Ctx, Role};
use crate::store;

fn denied(ctx: &Ctx, what: &str) -> ApiError {
    ApiError::permission_denied(format!(
        "Account {} does not have permission to access {what}",
        ctx.caller.account_name
    ))
}

/// The live domain named by parameter `name`, which the caller must cover;
/// the caller's own domain when the parameter is absent.
async fn domain_param(
    ctx: &Ctx,
    params: &Params,
    name: &str,
) -> Result<store::domain::Domain, ApiError> {
    let Some(id) = params.uuid(name)? else {
        return store::domain::get_by_id(&ctx.app.db, ctx.caller.domain_id)
            .await?
            .ok_or_else(|| ApiError::internal("caller's domain is gone"));
    };
    let id = id.to_string();
    let found = store::domain::get_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|d| d.removed.is_none());
    let d = found.ok_or_else(|| ApiError::invalid_id(name, &id))?;
    if !ctx.caller.covers_domain(&d.path) {
        return Err(denied(ctx, &format!("domain {id}")));
    }
    Ok(d)
}

/// The live account named by `id` or by `account` + `domainid`, which the
/// caller must cover.
async fn account_param(
    ctx: &Ctx,
    params: &Params,
    id_name: &str,
) -> Result<store::account::Account, ApiError> {
    let found = match (params.uuid(id_name)?, params.string("account")?) {
        (Some(id), _) => {
            let id = id.to_string();
            let a = store::account::get_by_uuid(&ctx.app.db, &id)
                .await?
                .filter(|a| a.removed.is_none());
            a.ok_or_else(|| ApiError::invalid_id(id_name, &id))?
        }
        (None, Some(name)) => {
            let d = domain_param(ctx, params, "domainid").await?;
            let a = store::account::get_by_name(&ctx.app.db, d.id, &name).await?;
            a.ok_or_else(|| {
                ApiError::param(format!(
                    "Unable to find account {name} in domain {}",
                    d.uuid
                ))
            })?
        }
        (None, None) => return Err(ApiError::missing_param(ctx.command, id_name)),
    };
    if !ctx.caller.covers(found.id, &found.domain_path) {
        return Err(denied(ctx, &format!("account {}", found.uuid)));
    }
    Ok(found)
}

fn paging() -> Vec<crate::server::registry::ParamSpec> {
    vec![
        opt("keyword", String, "a substring to match"),
        opt("page", Integer, "the page to return"),
        opt("pagesize", Integer, "the number of objects per page"),
        opt(
            "listall",
            Boolean,
            "everything the caller may see, not only its own",
        ),
        opt("isrecursive", Boolean, "include sub-domains"),
    ]
}

/// The parameters of a new user, for `createAccount` and `createUser`.
fn user_params(extra: Vec<ParamSpec>) -> Vec<ParamSpec> {
    let mut p = vec![
        req("username", String, "the unique user name in the domain"),
        req(
            "password",
            String,
            "the clear-text password, sent over a trusted connection",
        ),
        req("email", String, "the e-mail address of the user"),
        req("firstname", String, "the first name of the user"),
        req("lastname", String, "the last name of the user"),
        opt("domainid", Uuid, "the domain; default the caller's"),
    ];
    p.extend(extra);
    p
}

/// One command of this module.
// One argument per field of `CommandSpec` a command sets.
#[allow(clippy::too_many_arguments)]
fn spec(
    name: &'static str,
    description: &'static str,
    kind: Kind,
    roles: &'static [Role],
    params: Vec<ParamSpec>,
    object: &'static str,
    response: Vec<FieldSpec>,
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        description,
        kind,
        roles,
        params,
        object,
        response,
        since: "",
        handler,
    }
}

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let mut all = domain::commands();
    all.extend(account::commands());
    all.extend(user::commands());
    all
}

/// The job bodies of this module's async commands.
pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    let mut bodies = domain::job_bodies();
    bodies.extend(account::job_bodies());
    bodies
}
