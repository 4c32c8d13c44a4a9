//! `listResourceLimits`: the limits in force for the caller's account, or
//! (admins) for the account or domain asked for.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Int, Long, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply, Role, page_of};
use crate::services::owner::account_in_domain;
use crate::store::{account, domain, limit};

use super::super::Paging;
use super::{LIMIT_FIELDS, Owner, bad_resource_type, denied, domain_of, limit_view, live_domain};

const ID: Arg<Long> = Arg::opt("id", "only the limit row with this ID");
const RESOURCE_TYPE: Arg<Int> = Arg::opt("resourcetype", "only this resource type code");
const RESOURCE_TYPE_NAME: Arg<Text> = Arg::opt(
    "resourcetypename",
    "only this resource type name; wins over resourcetype",
);
const ACCOUNT: Arg<Text> = Arg::opt("account", "the limits of this account (with domainid)");
const DOMAIN: Arg<Id> = Arg::opt(
    "domainid",
    "the limits of this domain, or of the account in it",
);
const RECURSIVE: Arg<Flag> = Arg::opt("isrecursive", "accepted; limits are not recursive");
const LIST_ALL: Arg<Flag> = Arg::opt("listall", "accepted; limits are per account or domain");

/// `listResourceLimits`.
pub struct ListResourceLimits {
    id: Option<i64>,
    resource_type: Option<i32>,
    resource_type_name: Option<String>,
    account: Option<String>,
    domain: Option<Uuid>,
    paging: Paging,
}

impl Command for ListResourceLimits {
    const NAME: &'static str = "listResourceLimits";

    fn spec() -> Spec {
        Spec::new("Lists the limits in force for an account or a domain")
            .roles(ALL)
            .param(ID)
            .param(RESOURCE_TYPE)
            .param(RESOURCE_TYPE_NAME)
            .param(ACCOUNT)
            .param(DOMAIN)
            .param(RECURSIVE)
            .param(LIST_ALL)
            .params(Paging::specs())
            .returns("resourcelimit", LIMIT_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListResourceLimits {
            resource_type_name: args.text(&RESOURCE_TYPE_NAME)?,
            resource_type: args.get(&RESOURCE_TYPE)?,
            domain: args.get(&DOMAIN)?,
            account: args.text(&ACCOUNT)?,
            id: args.get(&ID)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListResourceLimits {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let caller = &ctx.caller;
        let db = &ctx.app.db;
        let codes = self.wanted_types()?;
        let empty = Reply::empty_list();
        let own_account = || async {
            let a = account::get_by_id(db, caller.account_id)
                .await?
                .ok_or_else(|| Error::internal("caller's account is gone"))?;
            let d = domain_of(ctx, &a).await?;
            Ok::<Owner, Error>(Owner::Account(a, d))
        };
        // As in CloudStack: users always get their own account's limits;
        // admins those of the account or domain given, by default their own
        // account's.
        let owner = if caller.role == Role::User {
            own_account().await?
        } else {
            let d = match self.domain {
                Some(id) => match live_domain(ctx, id).await? {
                    Some(d) => Some(d),
                    None => return Ok(empty),
                },
                None => None,
            };
            if let Some(d) = &d
                && !caller.covers_domain(&d.path)
            {
                return Err(denied(ctx, &format!("the limits of domain {}", d.uuid)));
            }
            match (self.account, d) {
                (Some(name), d) => {
                    let d = match d {
                        Some(d) => d,
                        None => domain::get_by_id(db, caller.domain_id)
                            .await?
                            .ok_or_else(|| Error::internal("caller's domain is gone"))?,
                    };
                    let a = account_in_domain(ctx, &d, &name).await?;
                    if !caller.covers(a.id, &a.domain_path) {
                        return Err(denied(ctx, &format!("the limits of account {}", a.uuid)));
                    }
                    Owner::Account(a, d)
                }
                (None, Some(d)) => Owner::Domain(d),
                (None, None) => own_account().await?,
            }
        };
        let mut rows = Vec::new();
        for code in codes {
            let name = limit::type_name(code).unwrap_or_default();
            let (row, max) = match &owner {
                Owner::Account(a, _) => (
                    limit::get_for_account(db, a.id, name).await?,
                    limit::effective_for_account(db, a.id, name).await?,
                ),
                Owner::Domain(d) => (
                    limit::get_for_domain(db, d.id, name).await?,
                    limit::effective_for_domain(db, d.id, name).await?,
                ),
            };
            if self
                .id
                .is_some_and(|id| row.as_ref().map(|r| r.id) != Some(id))
            {
                continue;
            }
            rows.push(limit_view(&owner, code, max));
        }
        let count = rows.len() as u64;
        let items = page_of(rows, self.paging.page(ctx).await?);
        Ok(Reply::List { count, items })
    }
}

impl ListResourceLimits {
    /// The resource types asked for: `resourcetypename` wins over
    /// `resourcetype`; neither means all.
    fn wanted_types(&self) -> Result<Vec<i64>, Error> {
        if let Some(name) = &self.resource_type_name {
            let code = limit::type_code(&name.to_ascii_lowercase())
                .ok_or_else(|| bad_resource_type(name))?;
            return Ok(vec![code]);
        }
        if let Some(code) = self.resource_type {
            let code = i64::from(code);
            limit::type_name(code).ok_or_else(|| bad_resource_type(code))?;
            return Ok(vec![code]);
        }
        Ok(limit::RESOURCE_TYPES.iter().map(|t| t.0).collect())
    }
}
