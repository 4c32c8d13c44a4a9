//! Domains, accounts and users (CloudStack reference §2.10, §1.11).
//!
//! One file per resource: [`domain`], [`account`] and [`user`], with the
//! response objects they share in [`views`]; this module assembles their
//! commands and keeps the parameter helpers they share.

mod account;
mod domain;
mod user;
mod views;

use crate::api::Params;
use crate::error::Error;
use crate::server::jobs::JobBody;
use crate::server::registry::{
    CommandSpec, FieldSpec, Handler, Kind, ParamSpec, ParamType::*, opt, req,
};
use crate::server::{Caller, Ctx, Role};
use crate::store;

/// How much a role may do: a caller acts on another account's users and keys
/// only from a strictly higher rank.
fn rank(role: Role) -> u8 {
    match role {
        Role::Admin => 3,
        Role::DomainAdmin => 2,
        Role::User => 1,
    }
}

/// The account a user or account command acts on, as the access rule sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The account's internal key.
    pub account_id: i64,
    /// Its type (`account::TYPE_*`).
    pub account_type: i64,
    /// Its domain's path.
    pub domain_path: &'a str,
}

impl<'a> Target<'a> {
    fn of(a: &'a store::account::Account) -> Self {
        Target {
            account_id: a.id,
            account_type: a.account_type,
            domain_path: &a.domain_path,
        }
    }
}

/// Whether `caller` may act on account `target` (update it, change its
/// state, create users in it): root admins on every account; anyone on its
/// own account; otherwise only an account of a strictly higher role whose
/// domain tree holds the target's domain. CloudStack's
/// `checkCallerRoleTypeAllowedForUserOrAccountOperations` with
/// `role.types.allowed.for.operations.on.accounts.of.same.role.type` holding
/// root admins only: a domain admin never acts on a peer domain admin nor on
/// a root admin (whose keys it could otherwise mint), and a domain admin of
/// ROOT never reaches root admin keys (`preventRootDomainAdminAccessToRootAdminKeys`).
pub(crate) fn may_manage_account(caller: &Caller, target: Target<'_>) -> bool {
    if caller.is_root_admin() || target.account_id == caller.account_id {
        return true;
    }
    caller.covers_domain(target.domain_path)
        && rank(caller.role) > rank(Role::of_account_type(target.account_type))
}

/// Whether `caller` may read or register the keys of user `user_id` of
/// account `target`: root admins and the user itself always; otherwise the
/// account rule without its own-account case, so a user never reaches the
/// keys of a colleague with the same rights.
pub(crate) fn may_manage_user(caller: &Caller, target: Target<'_>, user_id: i64) -> bool {
    if caller.is_root_admin() || user_id == caller.user_id {
        return true;
    }
    target.account_id != caller.account_id && may_manage_account(caller, target)
}

fn denied(ctx: &Ctx, what: &str) -> Error {
    Error::permission_denied(format!(
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
) -> Result<store::domain::Domain, Error> {
    let Some(id) = params.uuid(name)? else {
        return store::domain::get_by_id(&ctx.app.db, ctx.caller.domain_id)
            .await?
            .ok_or_else(|| Error::internal("caller's domain is gone"));
    };
    let id = id.to_string();
    let found = store::domain::get_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|d| d.removed.is_none());
    let d = found.ok_or_else(|| Error::invalid_id(name, &id))?;
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
) -> Result<store::account::Account, Error> {
    let found = match (params.uuid(id_name)?, params.string("account")?) {
        (Some(id), _) => {
            let id = id.to_string();
            let a = store::account::get_by_uuid(&ctx.app.db, &id)
                .await?
                .filter(|a| a.removed.is_none());
            a.ok_or_else(|| Error::invalid_id(id_name, &id))?
        }
        (None, Some(name)) => {
            let d = domain_param(ctx, params, "domainid").await?;
            let a = store::account::get_by_name(&ctx.app.db, d.id, &name).await?;
            a.ok_or_else(|| {
                Error::invalid(format!(
                    "Unable to find account {name} in domain {}",
                    d.uuid
                ))
            })?
        }
        (None, None) => return Err(Error::missing_param(ctx.command, id_name)),
    };
    if !ctx.caller.covers(found.id, &found.domain_path) {
        return Err(denied(ctx, &format!("account {}", found.uuid)));
    }
    Ok(found)
}

/// [`account_param`] for the commands that change an account: the caller
/// must also be allowed to manage it (see [`may_manage_account`]).
async fn managed_account_param(
    ctx: &Ctx,
    params: &Params,
    id_name: &str,
) -> Result<store::account::Account, Error> {
    let a = account_param(ctx, params, id_name).await?;
    if !may_manage_account(&ctx.caller, Target::of(&a)) {
        return Err(denied(ctx, &format!("account {}", a.uuid)));
    }
    Ok(a)
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
        job: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn caller(account_id: i64, user_id: i64, role: Role, path: &str) -> Caller {
        Caller {
            user_id,
            user_uuid: String::new(),
            account_id,
            account_uuid: String::new(),
            account_name: String::new(),
            account_type: match role {
                Role::Admin => 1,
                Role::DomainAdmin => 2,
                Role::User => 0,
            },
            domain_id: 0,
            domain_uuid: String::new(),
            domain_path: path.into(),
            role,
        }
    }

    fn target(account_id: i64, account_type: i64, domain_path: &str) -> Target<'_> {
        Target {
            account_id,
            account_type,
            domain_path,
        }
    }

    #[test]
    fn domain_admins_manage_only_lower_roles_in_their_tree() {
        let root_da = caller(10, 100, Role::DomainAdmin, "/");
        assert!(
            !may_manage_account(&root_da, target(2, 1, "/")),
            "root admin"
        );
        assert!(!may_manage_account(&root_da, target(11, 2, "/")), "peer");
        assert!(
            !may_manage_account(&root_da, target(12, 2, "/a/")),
            "child DA"
        );
        assert!(
            may_manage_account(&root_da, target(13, 0, "/a/")),
            "user below"
        );
        assert!(
            may_manage_account(&root_da, target(10, 2, "/")),
            "own account"
        );
        let child_da = caller(20, 200, Role::DomainAdmin, "/a/");
        assert!(
            !may_manage_account(&child_da, target(30, 0, "/b/")),
            "sibling"
        );
        assert!(may_manage_account(&child_da, target(31, 0, "/a/x/")));
    }

    #[test]
    fn keys_are_for_the_user_itself_or_a_higher_role() {
        let root_da = caller(10, 100, Role::DomainAdmin, "/");
        assert!(may_manage_user(&root_da, target(10, 2, "/"), 100), "itself");
        assert!(
            !may_manage_user(&root_da, target(10, 2, "/"), 101),
            "a colleague with the same rights"
        );
        assert!(!may_manage_user(&root_da, target(2, 1, "/"), 2));
        let user = caller(40, 400, Role::User, "/");
        assert!(may_manage_user(&user, target(40, 0, "/"), 400));
        assert!(!may_manage_user(&user, target(40, 0, "/"), 401));
        let root = caller(2, 2, Role::Admin, "/");
        assert!(may_manage_user(&root, target(3, 1, "/"), 3), "root admins");
    }
}
