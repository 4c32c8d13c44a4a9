//! `listConfigurations`: the global keys, filtered by name, category,
//! keyword or the scope (zone, account, domain) they apply to.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply, page_of};
use crate::store::{Page, account, config, domain, zone};

use super::super::Paging;
use super::{CONFIG_FIELDS, config_view};

const NAME: Arg<Text> = Arg::opt("name", "a substring of the configuration names");
const CATEGORY: Arg<Text> = Arg::opt("category", "only configurations of this category");
const ZONE: Arg<Id> = Arg::opt("zoneid", "the zone-scoped keys; values are the global ones");
const ACCOUNT: Arg<Id> = Arg::opt(
    "accountid",
    "the account-scoped keys; values are the global ones",
);
const DOMAIN: Arg<Id> = Arg::opt(
    "domainid",
    "the domain-scoped keys; values are the global ones",
);

/// `listConfigurations`.
pub struct ListConfigurations {
    name: Option<String>,
    category: Option<String>,
    zone: Option<Uuid>,
    account: Option<Uuid>,
    domain: Option<Uuid>,
    paging: Paging,
}

impl Command for ListConfigurations {
    const NAME: &'static str = "listConfigurations";

    fn spec() -> Spec {
        Spec::new("Lists the global configuration keys and their values")
            .roles(ROOT)
            .param(NAME)
            .param(CATEGORY)
            .param(ZONE)
            .param(ACCOUNT)
            .param(DOMAIN)
            .params(Paging::specs())
            .returns("configuration", CONFIG_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListConfigurations {
            zone: args.get(&ZONE)?,
            account: args.get(&ACCOUNT)?,
            domain: args.get(&DOMAIN)?,
            name: args.text(&NAME)?,
            category: args.text(&CATEGORY)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListConfigurations {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let scope = self.scope(ctx).await?;
        let paging = self.paging.page(ctx).await?;
        // An empty keyword is no filter.
        let keyword = self.paging.keyword.filter(|k| !k.is_empty());
        let (name, category) = (self.name, self.category);
        // A few dozen rows: filter them here, with CloudStack's matching rules
        // (name and keyword are substrings, the category is exact).
        let all = config::list(&ctx.app.db, &config::ConfigFilter::default(), Page::ALL).await?;
        let matching: Vec<config::Config> = all
            .items
            .into_iter()
            .filter(|c| scope.is_none_or(|s| c.scope.eq_ignore_ascii_case(s)))
            .filter(|c| name.as_deref().is_none_or(|n| contains_ci(&c.name, n)))
            .filter(|c| {
                category
                    .as_deref()
                    .is_none_or(|k| c.category.eq_ignore_ascii_case(k))
            })
            .filter(|c| {
                keyword.as_deref().is_none_or(|k| {
                    [
                        Some(c.name.as_str()),
                        Some(c.category.as_str()),
                        Some(c.description.as_str()),
                        Some(c.component.as_str()),
                        c.effective(),
                    ]
                    .into_iter()
                    .flatten()
                    .any(|field| contains_ci(field, k))
                })
            })
            .collect();
        let count = matching.len() as u64;
        let shown = scope.unwrap_or("global").to_ascii_lowercase();
        let items = page_of(matching, paging)
            .iter()
            .map(|c| config_view(c, &shown))
            .collect();
        Ok(Reply::List { count, items })
    }
}

impl ListConfigurations {
    /// The scope named by `zoneid`, `accountid` or `domainid` (at most one,
    /// and it must exist): `Zone`, `Account` or `Domain` as declared in the
    /// store.
    async fn scope(&self, ctx: &Ctx) -> Result<Option<&'static str>, Error> {
        let given = [self.zone, self.account, self.domain]
            .iter()
            .filter(|id| id.is_some())
            .count();
        if given > 1 {
            return Err(Error::invalid(
                "Give at most one of zoneid, accountid and domainid: each names a scope",
            ));
        }
        let db = &ctx.app.db;
        if let Some(id) = self.zone {
            zone::get_by_uuid(db, id)
                .await?
                .filter(|z| z.removed.is_none())
                .ok_or_else(|| Error::invalid_id(ZONE.name(), id))?;
            return Ok(Some("Zone"));
        }
        if let Some(id) = self.account {
            account::get_by_uuid(db, id)
                .await?
                .filter(|a| a.removed.is_none())
                .ok_or_else(|| Error::invalid_id(ACCOUNT.name(), id))?;
            return Ok(Some("Account"));
        }
        if let Some(id) = self.domain {
            domain::get_by_uuid(db, id)
                .await?
                .filter(|d| d.removed.is_none())
                .ok_or_else(|| Error::invalid_id(DOMAIN.name(), id))?;
            return Ok(Some("Domain"));
        }
        Ok(None)
    }
}

/// Whether `haystack` holds `needle`, ignoring case.
fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}
