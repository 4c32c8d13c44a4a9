//! The parameters several identity commands share: an account named by id
//! or by name and domain ([`AccountRef`]), the keyword, paging and scope of
//! the lists ([`Paging`]), and the fields of a new user ([`NewUserArgs`]).

use uuid::Uuid;

use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, Flag, Id, Text};
use crate::server::list_paging;
use crate::server::registry::ParamSpec;
use crate::services::owner::account_in_domain;
use crate::store::{self, Page};

use super::{Target, denied, domain_or_own, may_manage_account};

const ACCOUNT_ID: Arg<Id> = Arg::opt("id", "the ID of the account");
const ACCOUNT_NAME: Arg<Text> = Arg::opt("account", "the account name (with domainid)");
const ACCOUNT_DOMAIN: Arg<Id> = Arg::opt("domainid", "the domain of the account");

/// An account named by its id, or by `account` + `domainid`.
#[derive(Debug, Clone)]
pub(super) struct AccountRef {
    /// The name of the id parameter (`id`, `accountid`), for error texts.
    pub(super) id_name: &'static str,
    pub(super) id: Option<Uuid>,
    /// `account`, as given (an empty name names no account).
    pub(super) name: Option<String>,
    /// `domainid`: the account's domain, default the caller's.
    pub(super) domain: Option<Uuid>,
}

impl AccountRef {
    /// `id`, `account` and `domainid`, as `listApis` shows them for the
    /// commands that act on one account.
    pub(super) fn specs() -> Vec<ParamSpec> {
        vec![
            ACCOUNT_ID.spec(),
            ACCOUNT_NAME.spec(),
            ACCOUNT_DOMAIN.spec(),
        ]
    }

    pub(super) fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(AccountRef {
            id_name: ACCOUNT_ID.name(),
            id: args.get(&ACCOUNT_ID)?,
            name: args.get(&ACCOUNT_NAME)?,
            domain: args.get(&ACCOUNT_DOMAIN)?,
        })
    }

    /// The live account it names, which the caller must cover.
    pub(super) async fn resolve(&self, ctx: &Ctx) -> Result<store::account::Account, Error> {
        let found = match (self.id, &self.name) {
            (Some(id), _) => {
                let a = store::account::get_by_uuid(&ctx.app.db, id)
                    .await?
                    .filter(|a| a.removed.is_none());
                a.ok_or_else(|| Error::invalid_id(self.id_name, id))?
            }
            (None, Some(name)) => {
                let d = domain_or_own(ctx, self.domain, ACCOUNT_DOMAIN.name()).await?;
                account_in_domain(ctx, &d, name).await?
            }
            (None, None) => return Err(Error::missing_param(ctx.command, self.id_name)),
        };
        if !ctx.caller.covers(found.id, &found.domain_path) {
            return Err(denied(ctx, &format!("account {}", found.uuid)));
        }
        Ok(found)
    }

    /// [`AccountRef::resolve`] for the commands that change an account: the
    /// caller must also be allowed to manage it (see [`may_manage_account`]).
    pub(super) async fn managed(&self, ctx: &Ctx) -> Result<store::account::Account, Error> {
        let a = self.resolve(ctx).await?;
        if !may_manage_account(&ctx.caller, Target::of(&a)) {
            return Err(denied(ctx, &format!("account {}", a.uuid)));
        }
        Ok(a)
    }
}

const LIST_ALL: Arg<Flag> = Arg::opt("listall", "everything the caller may see, not only its own");
const RECURSIVE: Arg<Flag> = Arg::opt("isrecursive", "include sub-domains");

/// The keyword, paging and scope parameters of the identity lists.
#[derive(Debug, Clone, Default)]
pub(super) struct Paging {
    /// `keyword`, `page` and `pagesize`.
    pub(super) list: list_paging::Paging,
    pub(super) list_all: bool,
    pub(super) recursive: bool,
}

impl Paging {
    /// What `listApis` shows of them.
    pub(super) fn specs() -> Vec<ParamSpec> {
        let mut specs = list_paging::Paging::specs();
        specs.extend([LIST_ALL.spec(), RECURSIVE.spec()]);
        specs
    }

    pub(super) fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(Paging {
            list: list_paging::Paging::parse(args)?,
            list_all: args.get(&LIST_ALL)?.unwrap_or(false),
            recursive: args.get(&RECURSIVE)?.unwrap_or(false),
        })
    }

    /// The page asked for, by CloudStack's paging rules.
    pub(super) async fn page(&self, ctx: &Ctx) -> Result<Page, Error> {
        self.list.page(ctx).await
    }
}

const USERNAME: Arg<Text> = Arg::req("username", "the unique user name in the domain");
const PASSWORD: Arg<Text> = Arg::req(
    "password",
    "the clear-text password, sent over a trusted connection",
);
const EMAIL: Arg<Text> = Arg::req("email", "the e-mail address of the user");
const FIRST_NAME: Arg<Text> = Arg::req("firstname", "the first name of the user");
const LAST_NAME: Arg<Text> = Arg::req("lastname", "the last name of the user");
pub(super) const USER_DOMAIN: Arg<Id> = Arg::opt("domainid", "the domain; default the caller's");

/// The parameters of a new user, for `createAccount` and `createUser`.
#[derive(Debug, Clone)]
pub(super) struct NewUserArgs {
    pub(super) username: String,
    pub(super) password: String,
    pub(super) email: String,
    pub(super) firstname: String,
    pub(super) lastname: String,
    /// The domain of the user's account; default the caller's.
    pub(super) domain: Option<Uuid>,
}

impl NewUserArgs {
    /// What `listApis` shows of them, followed by the command's `extra`.
    pub(super) fn specs(extra: Vec<ParamSpec>) -> Vec<ParamSpec> {
        let mut p = vec![
            USERNAME.spec(),
            PASSWORD.spec(),
            EMAIL.spec(),
            FIRST_NAME.spec(),
            LAST_NAME.spec(),
            USER_DOMAIN.spec(),
        ];
        p.extend(extra);
        p
    }

    pub(super) fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(NewUserArgs {
            username: args.need(&USERNAME)?,
            password: args.need(&PASSWORD)?,
            email: args.need(&EMAIL)?,
            firstname: args.need(&FIRST_NAME)?,
            lastname: args.need(&LAST_NAME)?,
            domain: args.get(&USER_DOMAIN)?,
        })
    }

    /// The new user's row, in account `account_id`.
    pub(super) fn row(self, account_id: i64) -> store::user::NewUser {
        store::user::NewUser {
            account_id,
            username: self.username,
            password: Some(self.password),
            firstname: self.firstname,
            lastname: self.lastname,
            email: Some(self.email),
        }
    }
}
