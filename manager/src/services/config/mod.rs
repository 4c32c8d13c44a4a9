//! Global configuration and resource limits (CloudStack reference §2.10,
//! §3.9): `listConfigurations`, `updateConfiguration`, `updateResourceLimit`,
//! `listResourceLimits`.
//!
//! Only global configuration values are stored. `listConfigurations` takes
//! `zoneid`, `accountid` or `domainid` like CloudStack and then lists the keys
//! of that scope, but with their global value, since no per-zone, per-domain
//! or per-account value can be set here; `updateConfiguration` refuses those
//! parameters rather than silently changing the global value.
//!
//! One folder per resource: [`configuration`] (the global keys, the rules
//! their values follow, one file per command) and [`limits`] (resource
//! limits of accounts and domains, one file per command).

mod configuration;
mod limits;

use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, Int, Text};
use crate::server::registry::{ParamSpec, Registry};
use crate::store::Page;

pub use configuration::{ListConfigurations, UpdateConfiguration};
pub use limits::{ListResourceLimits, UpdateResourceLimit};

/// Registers the configuration and limit commands.
pub fn register(registry: &mut Registry) {
    registry.sync::<ListConfigurations>();
    registry.sync::<UpdateConfiguration>();
    registry.sync::<UpdateResourceLimit>();
    registry.sync::<ListResourceLimits>();
}

const KEYWORD: Arg<Text> = Arg::opt("keyword", "a substring to match");
const PAGE: Arg<Int> = Arg::opt("page", "the page to return");
const PAGE_SIZE: Arg<Int> = Arg::opt("pagesize", "the number of objects per page");

/// The keyword and paging parameters of the lists of this module, which
/// filter and page in memory (a few dozen rows).
#[derive(Debug, Clone, Default)]
struct Paging {
    /// `keyword`, None when absent or empty.
    keyword: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

impl Paging {
    /// What `listApis` shows of them.
    fn specs() -> Vec<ParamSpec> {
        vec![KEYWORD.spec(), PAGE.spec(), PAGE_SIZE.spec()]
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        let params = args.params();
        Ok(Paging {
            keyword: args.text(&KEYWORD)?,
            // Read as 64-bit: the registry checked they are 32-bit integers.
            page: params.long(PAGE.name())?,
            page_size: params.long(PAGE_SIZE.name())?,
        })
    }

    /// The page asked for, by CloudStack's paging rules.
    async fn page(&self, ctx: &Ctx) -> Result<Page, Error> {
        Ok(crate::server::paging(ctx, self.page, self.page_size).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::page_of;

    #[test]
    fn pages_are_cut_from_the_list() {
        let v: Vec<i32> = (0..10).collect();
        assert_eq!(page_of(v.clone(), Page::new(2, 3)), vec![3, 4, 5]);
        assert_eq!(page_of(v.clone(), Page::ALL).len(), 10);
        assert!(page_of(v, Page::new(5, 3)).is_empty());
    }
}
