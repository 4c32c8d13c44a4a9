//! `updateResourceLimit`: the limit of one resource type for an account
//! (`account` + `domainid`) or a domain (`domainid` alone).

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Int, Long, Spec, SyncCommand, Text};
use crate::server::registry::ADMINS;
use crate::server::{Ctx, Reply, Role};
use crate::services::owner::account_in_domain;
use crate::store::{account, bootstrap, limit};

use super::{LIMIT_FIELDS, Owner, bad_resource_type, denied, limit_view, live_domain};

const RESOURCE_TYPE: Arg<Int> = Arg::req(
    "resourcetype",
    "the resource type code: 6 network, 7 vpc, ... (0 to 11)",
);
const MAX: Arg<Long> = Arg::opt("max", "the limit; -1 (the default) means unlimited");
const ACCOUNT: Arg<Text> = Arg::opt("account", "the account (with domainid)");
const DOMAIN: Arg<Id> = Arg::opt("domainid", "the domain, or the domain of the account");

/// `updateResourceLimit`.
pub struct UpdateResourceLimit {
    resource_type: i64,
    max: Option<i64>,
    account: Option<String>,
    domain: Option<Uuid>,
}

impl Command for UpdateResourceLimit {
    const NAME: &'static str = "updateResourceLimit";

    fn spec() -> Spec {
        Spec::new("Sets the limit of a resource type for an account or a domain")
            .roles(ADMINS)
            .param(RESOURCE_TYPE)
            .param(MAX)
            .param(ACCOUNT)
            .param(DOMAIN)
            .returns("resourcelimit", LIMIT_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateResourceLimit {
            resource_type: i64::from(args.need(&RESOURCE_TYPE)?),
            max: args.get(&MAX)?,
            account: args.text(&ACCOUNT)?,
            domain: args.get(&DOMAIN)?,
        })
    }
}

impl SyncCommand for UpdateResourceLimit {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let caller = &ctx.caller;
        let code = self.resource_type;
        let type_name = limit::type_name(code).ok_or_else(|| bad_resource_type(code))?;
        let max = self.max.unwrap_or(limit::UNLIMITED);
        if max < limit::UNLIMITED {
            return Err(Error::invalid(
                "max must be -1 for no limit, or a limit of 0 or more",
            ));
        }
        let d = match self.domain {
            Some(id) => Some(
                live_domain(ctx, id)
                    .await?
                    .ok_or_else(|| Error::invalid_id(DOMAIN.name(), id))?,
            ),
            None => None,
        };
        let db = &ctx.app.db;
        let owner = match (self.account, d) {
            (Some(_), None) => {
                return Err(Error::invalid(
                    "account must be given together with domainid",
                ));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "Give account and domainid to set an account's limit, or domainid alone to \
                     set a domain's",
                ));
            }
            (Some(name), Some(d)) => {
                let a = account_in_domain(ctx, &d, &name).await?;
                if a.account_name == bootstrap::SYSTEM_ACCOUNT && d.parent_id.is_none() {
                    return Err(Error::invalid(
                        "The limits of the system account cannot be changed",
                    ));
                }
                if !caller.covers(a.id, &a.domain_path)
                    || (a.account_type == account::TYPE_ADMIN && !caller.is_root_admin())
                {
                    return Err(denied(ctx, &format!("the limits of account {}", a.uuid)));
                }
                if caller.role == Role::DomainAdmin && a.id == caller.account_id {
                    return Err(denied(ctx, "the limits of its own account"));
                }
                if a.account_type == account::TYPE_ADMIN && max != limit::UNLIMITED {
                    return Err(Error::invalid(
                        "Root admin accounts are always unlimited: only max=-1 is accepted",
                    ));
                }
                limit::set_for_account(db, a.id, type_name, max).await?;
                Owner::Account(a, d)
            }
            (None, Some(d)) => {
                if !caller.covers_domain(&d.path) {
                    return Err(denied(ctx, &format!("the limits of domain {}", d.uuid)));
                }
                let Some(parent_id) = d.parent_id else {
                    return Err(denied(ctx, "the limits of the ROOT domain"));
                };
                if caller.role == Role::DomainAdmin && d.id == caller.domain_id {
                    return Err(denied(ctx, "the limits of its own domain"));
                }
                let parent_max = limit::effective_for_domain(db, parent_id, type_name).await?;
                if parent_max != limit::UNLIMITED && max > parent_max {
                    return Err(Error::invalid(format!(
                        "The parent of domain {} allows at most {parent_max} of {type_name}; \
                         give a max of {parent_max} or less",
                        d.name
                    )));
                }
                limit::set_for_domain(db, d.id, type_name, max).await?;
                Owner::Domain(d)
            }
        };
        Ok(Reply::Object(limit_view(&owner, code, max)))
    }
}
