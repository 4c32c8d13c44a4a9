//! What VMs are deployed from (§2.10): `listServiceOfferings` and
//! `listTemplates`. Both lists are the built-in rows of the schema; every
//! template is public and belongs to the system. Both take the same paging
//! parameters ([`CatalogPaging`]).

mod offerings;
mod templates;

use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, Flag, Id, Int, Text};
use crate::server::registry::ParamSpec;
use crate::store::Page;

pub use offerings::ListServiceOfferings;
pub use templates::ListTemplates;

const KEYWORD: Arg<Text> = Arg::opt("keyword", "a substring of the name or description");
const PAGE: Arg<Int> = Arg::opt("page", "the page to return");
const PAGE_SIZE: Arg<Int> = Arg::opt("pagesize", "the number of rows per page");
const DOMAIN: Arg<Id> = Arg::opt("domainid", "accepted; every row is public");
const RECURSIVE: Arg<Flag> = Arg::opt("isrecursive", "accepted; every row is public");
const LIST_ALL: Arg<Flag> = Arg::opt("listall", "accepted; every row is public");

/// The keyword and paging of a catalog list; its ownership filters are
/// accepted and change nothing (every row is public).
struct CatalogPaging {
    keyword: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

impl CatalogPaging {
    /// What `listApis` shows of them.
    fn specs() -> Vec<ParamSpec> {
        vec![
            KEYWORD.spec(),
            PAGE.spec(),
            PAGE_SIZE.spec(),
            DOMAIN.spec(),
            RECURSIVE.spec(),
            LIST_ALL.spec(),
        ]
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        let params = args.params();
        Ok(CatalogPaging {
            keyword: args.text(&KEYWORD)?,
            // Read as 64-bit: the registry checked they are 32-bit integers.
            page: params.long(PAGE.name())?,
            page_size: params.long(PAGE_SIZE.name())?,
        })
    }

    /// The page of the list, by CloudStack's paging rules.
    async fn page(&self, ctx: &Ctx) -> Result<Page, Error> {
        Ok(crate::server::paging(ctx, self.page, self.page_size).await?)
    }
}
