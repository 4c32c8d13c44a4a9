//! `listAsyncJobs`: the jobs of the caller's account, or with
//! `listall=true` every job it may see.

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Date, Flag, Int, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply, Role, paging};
use crate::store::job;

use super::job_view::{JOB_FIELDS, job_view};

const START_DATE: Arg<Date> = Arg::opt("startdate", "only jobs created on or after this date");
const LIST_ALL: Arg<Flag> = Arg::opt("listall", "all jobs the caller may see, not only its own");
const PAGE: Arg<Int> = Arg::opt("page", "the page to return");
const PAGE_SIZE: Arg<Int> = Arg::opt("pagesize", "the number of jobs per page");
const KEYWORD: Arg<Text> = Arg::opt("keyword", "not used for jobs");

/// `listAsyncJobs`.
pub struct ListAsyncJobs {
    list_all: bool,
    page: Option<i64>,
    page_size: Option<i64>,
}

impl Command for ListAsyncJobs {
    const NAME: &'static str = "listAsyncJobs";

    fn spec() -> Spec {
        Spec::new("Lists the async jobs the caller may see")
            .roles(ALL)
            .param(START_DATE)
            .param(LIST_ALL)
            .param(PAGE)
            .param(PAGE_SIZE)
            .param(KEYWORD)
            .returns("asyncjobs", JOB_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        // `startdate` is checked as a date by the registry; it does not
        // narrow the list (it never has here).
        let params = args.params();
        Ok(ListAsyncJobs {
            list_all: args.get(&LIST_ALL)?.unwrap_or(false),
            // Read as 64-bit: the registry checked they are 32-bit integers.
            page: params.long(PAGE.name())?,
            page_size: params.long(PAGE_SIZE.name())?,
        })
    }
}

impl SyncCommand for ListAsyncJobs {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let caller = &ctx.caller;
        let mut filter = job::JobFilter::default();
        match (caller.role, self.list_all) {
            (Role::User, _) | (_, false) => filter.account_id = Some(caller.account_id),
            (Role::DomainAdmin, true) => {
                filter.domain_path_prefix = Some(caller.domain_path.clone());
            }
            (Role::Admin, true) => {}
        }
        let page = paging(ctx, self.page, self.page_size).await?;
        let listed = job::list(&ctx.app.db, &filter, page).await?;
        let mut items = Vec::with_capacity(listed.items.len());
        for j in &listed.items {
            items.push(job_view(ctx, j).await?);
        }
        Ok(Reply::List {
            count: listed.total as u64,
            items,
        })
    }
}
