//! Ownership, shared by the VPC commands: who a new object belongs to
//! (`account` + `domainid` on behalf of another account), which objects a
//! list shows (`account`, `domainid`, `isrecursive`, `listall`), whether
//! the caller may act on an object, and the owner fields of a response.
//!
//! Kept whole because those four answer one question, who owns what, from
//! the same account and domain rows (and their tests close the file).

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Flag, Id, Int, Text};
use crate::server::registry::{FieldSpec, ParamSpec, field};
use crate::server::{Ctx, Role};
use crate::store::{Page, Tx, account, domain, limit};

/// The owner of a new object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub account_id: i64,
    pub account_uuid: Uuid,
    pub account_name: String,
    pub domain_id: i64,
    pub domain_uuid: Uuid,
    pub domain_name: String,
    pub domain_path: String,
}

/// The refusal for an object the caller may not act on (531).
pub fn denied(ctx: &Ctx, what: &str) -> Error {
    Error::permission_denied(format!(
        "Account {} does not have permission to operate on {what}",
        ctx.caller.account_name
    ))
}

/// The live account `name` of domain `d` (the store's `get_by_name` skips
/// removed ones), or CloudStack's 431 naming both.
pub(crate) async fn account_in_domain(
    ctx: &Ctx,
    d: &domain::Domain,
    name: &str,
) -> Result<account::Account, Error> {
    account::get_by_name(&ctx.app.db, d.id, name)
        .await?
        .ok_or_else(|| {
            Error::invalid(format!(
                "Unable to find account {name} in domain {}",
                d.uuid
            ))
        })
}

/// Checks that the caller may act on an object of account `account_id` in
/// the domain at `domain_path`: 531 otherwise.
pub fn check_access(
    ctx: &Ctx,
    account_id: i64,
    domain_path: &str,
    what: &str,
) -> Result<(), Error> {
    if ctx.caller.covers(account_id, domain_path) {
        Ok(())
    } else {
        Err(denied(ctx, what))
    }
}

/// The owner fields most responses declare (those [`owner_view`] fills but
/// `domainpath`, which `listApis` does not name).
pub const OWNER_FIELDS: &[FieldSpec] = &[
    field("account", "string", "the owner account"),
    field("domainid", "string", "the owner's domain"),
    field("domain", "string", "the name of the owner's domain"),
];

/// The owner fields of a response: `account` from the owner's account
/// row, `domainid`, `domain` and `domainpath` (`ROOT/a/b`) from its domain
/// row; a row not found leaves its fields out.
pub fn owner_view(a: Option<&account::Account>, d: Option<&domain::Domain>) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(a) = a {
        m.insert("account".into(), json!(a.account_name));
    }
    if let Some(d) = d {
        m.insert("domainid".into(), json!(d.uuid));
        m.insert("domain".into(), json!(d.name));
        m.insert("domainpath".into(), json!(d.display_path()));
    }
    m
}

/// Why `projectid` is refused.
pub const PROJECTS: &str = "projects do not exist in this cloud; objects belong to accounts";

async fn owner_of(ctx: &Ctx, a: account::Account) -> Result<Owner, Error> {
    let d = domain::get_by_id(&ctx.app.db, a.domain_id)
        .await?
        .ok_or_else(|| Error::internal("an account's domain is gone"))?;
    Ok(Owner {
        account_id: a.id,
        account_uuid: a.uuid,
        account_name: a.account_name,
        domain_id: d.id,
        domain_uuid: d.uuid,
        domain_name: d.name,
        domain_path: d.path,
    })
}

async fn domain_by_id(ctx: &Ctx, id: Option<Uuid>) -> Result<Option<domain::Domain>, Error> {
    let Some(id) = id else {
        return Ok(None);
    };
    let d = domain::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|d| d.removed.is_none())
        .ok_or_else(|| Error::invalid_id("domainid", id))?;
    if !ctx.caller.covers_domain(&d.path) {
        return Err(denied(ctx, &format!("domain {id}")));
    }
    Ok(Some(d))
}

/// The parameters naming the owner of a new object (`account`,
/// `domainid`; `projectid` refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerArgs {
    pub account: Option<String>,
    pub domain_id: Option<Uuid>,
}

const OWNER_ACCOUNT: Arg<Text> = Arg::opt(
    "account",
    "the account to create it for; needs domainid (admins only)",
);
const OWNER_DOMAIN: Arg<Id> = Arg::opt("domainid", "the domain of that account");
const PROJECT: Arg<Id> =
    Arg::opt("projectid", "refused: projects are not supported").refused(PROJECTS);

impl OwnerArgs {
    /// What `listApis` shows of them.
    pub fn specs() -> Vec<ParamSpec> {
        vec![OWNER_ACCOUNT.spec(), OWNER_DOMAIN.spec(), PROJECT.spec()]
    }

    pub fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(OwnerArgs {
            account: args.text(&OWNER_ACCOUNT)?,
            domain_id: args.get(&OWNER_DOMAIN)?,
        })
    }

    /// The owner of a new object: the caller, or the account named by
    /// `account` + `domainid` (which an admin must cover; users may only
    /// name themselves).
    pub async fn resolve(&self, ctx: &Ctx) -> Result<Owner, Error> {
        resolve_owner(ctx, self.account.clone(), self.domain_id).await
    }
}

async fn resolve_owner(
    ctx: &Ctx,
    name: Option<String>,
    domain_id: Option<Uuid>,
) -> Result<Owner, Error> {
    let domain = domain_by_id(ctx, domain_id).await?;
    let a = match (name, domain) {
        (None, None) => account::get_by_id(&ctx.app.db, ctx.caller.account_id)
            .await?
            .ok_or_else(|| Error::internal("the caller's account is gone"))?,
        (Some(_), None) => {
            return Err(Error::invalid(
                "account must be given with domainid (the domain of the account)",
            ));
        }
        (None, Some(d)) => {
            if d.id != ctx.caller.domain_id {
                return Err(Error::invalid(
                    "domainid must be given with account (the account to act for)",
                ));
            }
            account::get_by_id(&ctx.app.db, ctx.caller.account_id)
                .await?
                .ok_or_else(|| Error::internal("the caller's account is gone"))?
        }
        (Some(name), Some(d)) => account_in_domain(ctx, &d, &name).await?,
    };
    if a.id != ctx.caller.account_id
        && (ctx.caller.role == Role::User || !ctx.caller.covers_domain(&a.domain_path))
    {
        return Err(denied(ctx, &format!("account {}", a.account_name)));
    }
    owner_of(ctx, a).await
}

/// Which objects a list shows.
pub use crate::store::Scope;

/// The ownership filters and paging of a list command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListArgs {
    pub account: Option<String>,
    pub domain_id: Option<Uuid>,
    pub recursive: bool,
    pub list_all: bool,
    /// A substring of the name.
    pub keyword: Option<String>,
    pub page: Option<i64>,
    pub page_size: Option<i64>,
}

const LIST_ACCOUNT: Arg<Text> = Arg::opt("account", "only objects of this account (with domainid)");
const LIST_DOMAIN: Arg<Id> = Arg::opt("domainid", "only objects of this domain");
const RECURSIVE: Arg<Flag> = Arg::opt(
    "isrecursive",
    "with domainid: also objects of its sub-domains",
);
const LIST_ALL: Arg<Flag> = Arg::opt(
    "listall",
    "true: every object the caller may see, not only its own",
);
const KEYWORD: Arg<Text> = Arg::opt("keyword", "a substring of the name");
const PAGE: Arg<Int> = Arg::opt("page", "the page to return");
const PAGE_SIZE: Arg<Int> = Arg::opt("pagesize", "the number of objects per page");

impl ListArgs {
    /// What `listApis` shows of them.
    pub fn specs() -> Vec<ParamSpec> {
        vec![
            LIST_ACCOUNT.spec(),
            LIST_DOMAIN.spec(),
            RECURSIVE.spec(),
            LIST_ALL.spec(),
            PROJECT.spec(),
            KEYWORD.spec(),
            PAGE.spec(),
            PAGE_SIZE.spec(),
        ]
    }

    pub fn parse(args: &Args<'_>) -> Result<Self, Error> {
        let params = args.params();
        Ok(ListArgs {
            account: args.text(&LIST_ACCOUNT)?,
            domain_id: args.get(&LIST_DOMAIN)?,
            recursive: args.get(&RECURSIVE)?.unwrap_or(false),
            list_all: args.get(&LIST_ALL)?.unwrap_or(false),
            keyword: args.text(&KEYWORD)?,
            // Read as 64-bit: the registry checked they are 32-bit integers.
            page: params.long(PAGE.name())?,
            page_size: params.long(PAGE_SIZE.name())?,
        })
    }

    /// The page of the list, by CloudStack's paging rules
    /// ([`crate::server::paging`]).
    pub async fn page(&self, ctx: &Ctx) -> Result<Page, Error> {
        Ok(crate::server::paging(ctx, self.page, self.page_size).await?)
    }

    /// The scope of the list. `by_id`: the command was given the `id` of
    /// one object.
    pub async fn scope(&self, ctx: &Ctx, by_id: bool) -> Result<Scope, Error> {
        scope_of(ctx, self, by_id).await
    }
}

/// The scope of a list from its ownership filters, as CloudStack reads them:
/// a user sees its own account; an admin sees its own account unless it
/// asks for an account, a domain (`isrecursive` for the subtree) or
/// `listall=true` (everything it covers).
async fn scope_of(ctx: &Ctx, args: &ListArgs, by_id: bool) -> Result<Scope, Error> {
    let caller = &ctx.caller;
    let name = args.account.clone();
    let domain = domain_by_id(ctx, args.domain_id).await?;
    let recursive = args.recursive;
    // CloudStack (`buildACLSearchParameters`): an admin looking an object
    // up by `id` finds it anywhere it covers, as with `listall=true`; a user
    // still sees only its own account.
    let listall = args.list_all || by_id;
    if caller.role == Role::User {
        if let Some(name) = &name
            && !name.eq_ignore_ascii_case(&caller.account_name)
        {
            return Err(denied(ctx, &format!("account {name}")));
        }
        return Ok(Scope {
            account_id: Some(caller.account_id),
            ..Default::default()
        });
    }
    let domain_path = domain.as_ref().map(|d| d.path.clone());
    match (name, domain) {
        (Some(name), d) => {
            let d = match d {
                Some(d) => d,
                None => domain::get_by_id(&ctx.app.db, caller.domain_id)
                    .await?
                    .ok_or_else(|| Error::internal("the caller's domain is gone"))?,
            };
            let a = account_in_domain(ctx, &d, &name).await?;
            Ok(Scope {
                account_id: Some(a.id),
                ..Default::default()
            })
        }
        (None, Some(_)) if recursive || listall => Ok(Scope {
            domain_path_prefix: domain_path,
            ..Default::default()
        }),
        (None, Some(d)) => Ok(Scope {
            domain_id: Some(d.id),
            ..Default::default()
        }),
        (None, None) if listall || recursive => Ok(Scope {
            domain_path_prefix: Some(caller.domain_path.clone()),
            ..Default::default()
        }),
        (None, None) => Ok(Scope {
            account_id: Some(caller.account_id),
            ..Default::default()
        }),
    }
}

/// Checks, in the transaction `tx` that then creates them, that `requested`
/// more `resource_type` resources (`vpc`, `network`, `public_ip`,
/// `user_vm`) fit the limits of account `account_id` and of its domains:
/// 535 otherwise. The account's row (and its domains') stay locked until
/// `tx` ends, so parallel creates, on any manager, count one after another.
pub async fn check_limit(
    tx: &mut Tx,
    account_id: i64,
    resource_type: &str,
    requested: i64,
) -> Result<(), Error> {
    match limit::check(tx, account_id, resource_type, requested).await? {
        None => Ok(()),
        Some(exceeded) => Err(crate::rules::limit_exceeded(
            resource_type,
            &exceeded,
            requested,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_shows_only_what_each_of_its_filters_allows() {
        let everything = Scope::default();
        assert!(everything.shows(7, 2, "/a/"));
        let account = Scope {
            account_id: Some(7),
            ..Default::default()
        };
        assert!(account.shows(7, 2, "/a/"));
        assert!(!account.shows(8, 2, "/a/"));
        let domain = Scope {
            domain_id: Some(2),
            ..Default::default()
        };
        assert!(domain.shows(8, 2, "/a/"));
        assert!(!domain.shows(8, 3, "/a/b/"));
        let subtree = Scope {
            domain_path_prefix: Some("/a/".into()),
            ..Default::default()
        };
        assert!(subtree.shows(8, 3, "/a/b/"));
        assert!(!subtree.shows(8, 4, "/c/"));
    }

    #[test]
    fn owner_view_leaves_out_the_fields_of_rows_not_found() {
        assert!(owner_view(None, None).is_empty());
        let d = domain::Domain {
            id: 2,
            uuid: Uuid::nil(),
            parent_id: Some(1),
            name: "sales".into(),
            path: "/sales/".into(),
            level: 1,
            network_domain: None,
            created: 0,
            removed: None,
        };
        let m = owner_view(None, Some(&d));
        assert_eq!(m.get("domain"), Some(&json!("sales")));
        assert_eq!(m.get("domainpath"), Some(&json!("ROOT/sales")));
        assert!(!m.contains_key("account"));
    }
}
