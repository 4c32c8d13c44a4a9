//! The manager's HTTP API server: the front door, authentication, the
//! command registry, async jobs, and helpers shared by command handlers.

pub mod auth;
pub mod command;
pub mod context;
pub mod expiry;
pub mod http;
pub mod jobs;
pub mod list_paging;
pub mod registry;

use crate::api::ApiError;
use crate::store::{Page, config};

pub use context::{App, Caller, Ctx};
pub use registry::{BoxFuture, CommandSpec, Kind, Reply, Role};

/// The rows of `items` (filtered in memory) that `page` selects.
pub fn page_of<T>(items: Vec<T>, page: Page) -> Vec<T> {
    let skip = usize::try_from(page.offset.max(0)).unwrap_or(usize::MAX);
    let take = page.limit.map_or(usize::MAX, |l| {
        usize::try_from(l.max(0)).unwrap_or(usize::MAX)
    });
    items.into_iter().skip(skip).take(take).collect()
}

/// The count and rows of one page of a list: either `rows` are the page the
/// store returned (`total` rows in all), or, `in_memory`, every row that
/// passed filters the store could not apply, paged here.
pub fn counted_page<T>(rows: Vec<T>, total: i64, in_memory: bool, page: Page) -> (u64, Vec<T>) {
    if in_memory {
        (rows.len() as u64, page_of(rows, page))
    } else {
        (u64::try_from(total).unwrap_or_default(), rows)
    }
}

/// The rows a list command returns, by CloudStack's paging rules (reference
/// §1.9): `page` and `pagesize` go together; `pagesize=-1` without `page`
/// means all rows; `pagesize` may not exceed `default.page.size`; without
/// paging at most `default.page.size` rows (the count is still the total).
pub async fn paging(
    ctx: &Ctx,
    page: Option<i64>,
    page_size: Option<i64>,
) -> Result<Page, ApiError> {
    let cap = config::value_i64(&ctx.app.db, "default.page.size")
        .await?
        .unwrap_or(500)
        .max(1);
    match (page, page_size) {
        (None, None) => Ok(Page::first(cap)),
        (None, Some(-1)) => Ok(Page::ALL),
        (Some(_), None) | (None, Some(_)) => Err(ApiError::param(
            "page and pagesize must be given together (or pagesize=-1 alone)",
        )),
        (Some(page), Some(size)) => {
            if page < 1 {
                return Err(ApiError::param("page must be 1 or more"));
            }
            if size < 1 || size > cap {
                return Err(ApiError::param(format!(
                    "pagesize must be between 1 and {cap} (default.page.size)"
                )));
            }
            Ok(Page::new(page, size))
        }
    }
}

/// A date of the store (epoch ms) in CloudStack's format.
pub fn date(ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    crate::api::format_date(t)
}
