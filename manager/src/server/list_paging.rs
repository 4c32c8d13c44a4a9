//! The `keyword`, `page` and `pagesize` parameters that the admin lists
//! (configuration, limits, physical networks, traffic types, VLAN IP ranges,
//! domains, accounts, users) read the same way: one type that parses them,
//! describes them for `listApis` and turns them into a [`Page`].

use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, Int, Text};
use crate::server::registry::ParamSpec;
use crate::store::Page;

const KEYWORD: Arg<Text> = Arg::opt("keyword", "a substring to match");
const PAGE: Arg<Int> = Arg::opt("page", "the page to return");
const PAGE_SIZE: Arg<Int> = Arg::opt("pagesize", "the number of objects per page");

/// The keyword and paging of a list command.
#[derive(Debug, Clone, Default)]
pub struct Paging {
    /// As sent (an empty keyword matches everything).
    pub keyword: Option<String>,
    pub page: Option<i64>,
    pub page_size: Option<i64>,
}

impl Paging {
    /// The keyword and paging parameters, for `listApis`.
    pub fn specs() -> Vec<ParamSpec> {
        Self::specs_with(KEYWORD)
    }

    /// The same, with the keyword described as the command matches it.
    pub fn specs_with(keyword: Arg<Text>) -> Vec<ParamSpec> {
        Self::specs_described(keyword, PAGE_SIZE)
    }

    /// The same, with the keyword and the page size described as the
    /// command lists them (what it matches, what a page holds). Only the
    /// descriptions differ: `parse` reads the parameters by name.
    pub fn specs_described(keyword: Arg<Text>, page_size: Arg<Int>) -> Vec<ParamSpec> {
        vec![keyword.spec(), PAGE.spec(), page_size.spec()]
    }

    pub fn parse(args: &Args<'_>) -> Result<Self, Error> {
        let params = args.params();
        Ok(Paging {
            keyword: args.get(&KEYWORD)?,
            // Read as 64-bit: the registry checked they are 32-bit integers.
            page: params.long(PAGE.name())?,
            page_size: params.long(PAGE_SIZE.name())?,
        })
    }

    /// The page to return, by CloudStack's paging rules
    /// ([`crate::server::paging`]).
    pub async fn page(&self, ctx: &Ctx) -> Result<Page, Error> {
        Ok(crate::server::paging(ctx, self.page, self.page_size).await?)
    }
}
