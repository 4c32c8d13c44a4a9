//! Domains, accounts and users (CloudStack reference §2.10, §1.11).
//!
//! One folder per resource, one file per command: [`domain`], [`account`]
//! and [`user`] (whose keys commands are in `user::keys`), with the
//! response objects they share in [`views`] and the parameters they share in
//! [`args`]. This module registers them and holds the access rules: who may
//! act on which account, user and domain.

mod account;
mod args;
mod domain;
mod user;
mod views;

use uuid::Uuid;

use crate::error::Error;
use crate::server::registry::Registry;
use crate::server::{Caller, Ctx, Role};
use crate::store;

pub use account::{
    CreateAccount, DeleteAccount, DisableAccount, EnableAccount, ListAccounts, UpdateAccount,
};
pub use domain::{CreateDomain, DeleteDomain, ListDomains};
pub use user::{
    CreateUser, DeleteUser, DisableUser, EnableUser, GetUserKeys, ListUsers, LockUser,
    RegisterUserKeys, UpdateUser,
};

/// Registers the domain, account and user commands.
pub fn register(registry: &mut Registry) {
    registry.sync::<CreateDomain>();
    registry.sync::<ListDomains>();
    registry.job::<DeleteDomain>();
    registry.sync::<CreateAccount>();
    registry.sync::<ListAccounts>();
    registry.sync::<UpdateAccount>();
    registry.job::<DisableAccount>();
    registry.sync::<EnableAccount>();
    registry.job::<DeleteAccount>();
    registry.sync::<CreateUser>();
    registry.sync::<ListUsers>();
    registry.sync::<RegisterUserKeys>();
    registry.sync::<EnableUser>();
    registry.sync::<GetUserKeys>();
    registry.sync::<UpdateUser>();
    registry.sync::<DeleteUser>();
    registry.job::<DisableUser>();
    registry.sync::<LockUser>();
}

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

/// The refusal for an object the caller may not act on (531).
fn denied(ctx: &Ctx, what: &str) -> Error {
    Error::permission_denied(format!(
        "Account {} does not have permission to access {what}",
        ctx.caller.account_name
    ))
}

/// The live domain `id` (given as parameter `name`), which the caller must
/// cover; the caller's own domain when no id is given.
async fn domain_or_own(
    ctx: &Ctx,
    id: Option<Uuid>,
    name: &str,
) -> Result<store::domain::Domain, Error> {
    let Some(id) = id else {
        return store::domain::get_by_id(&ctx.app.db, ctx.caller.domain_id)
            .await?
            .ok_or_else(|| Error::internal("caller's domain is gone"));
    };
    let found = store::domain::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|d| d.removed.is_none());
    let d = found.ok_or_else(|| Error::invalid_id(name, id))?;
    if !ctx.caller.covers_domain(&d.path) {
        return Err(denied(ctx, &format!("domain {id}")));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(account_id: i64, user_id: i64, role: Role, path: &str) -> Caller {
        Caller {
            user_id,
            user_uuid: uuid::Uuid::nil(),
            account_id,
            account_uuid: uuid::Uuid::nil(),
            account_name: String::new(),
            account_type: match role {
                Role::Admin => 1,
                Role::DomainAdmin => 2,
                Role::User => 0,
            },
            domain_id: 0,
            domain_uuid: uuid::Uuid::nil(),
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
