//! What VMs are deployed from (§2.10): `listServiceOfferings` (and the root
//! admin's create/update/delete), `listDiskOfferings`, `listTemplates`,
//! `updateTemplate` and `listHypervisors`. Both lists are the built-in rows of the schema; every
//! template is public and belongs to the system. Both take the same paging
//! parameters ([`catalog_specs`], read as a [`Paging`]).

mod disk_offerings;
mod hypervisors;
mod offerings;
mod service_offering;
mod templates;
mod update_template;

use crate::server::command::{Arg, Flag, Id, Int, Text};
use crate::server::list_paging::Paging;
use crate::server::registry::ParamSpec;

pub use disk_offerings::ListDiskOfferings;
pub use hypervisors::ListHypervisors;
pub use offerings::ListServiceOfferings;
pub use service_offering::{CreateServiceOffering, DeleteServiceOffering, UpdateServiceOffering};
pub use templates::ListTemplates;
pub use update_template::UpdateTemplate;

/// `zoneid` of the offering lists: every offering is usable in every zone.
const ZONE: Arg<Id> = Arg::opt("zoneid", "only offerings usable in this zone (all are)");

const KEYWORD: Arg<Text> = Arg::opt("keyword", "a substring of the name or description");
const PAGE_SIZE: Arg<Int> = Arg::opt("pagesize", "the number of rows per page");
const DOMAIN: Arg<Id> = Arg::opt("domainid", "accepted; every row is public");
const RECURSIVE: Arg<Flag> = Arg::opt("isrecursive", "accepted; every row is public");
const LIST_ALL: Arg<Flag> = Arg::opt("listall", "accepted; every row is public");

/// The keyword and paging of a catalog list, then its ownership filters:
/// accepted, they change nothing (every row is public).
fn catalog_specs() -> Vec<ParamSpec> {
    let mut specs = Paging::specs_described(KEYWORD, PAGE_SIZE);
    specs.extend([DOMAIN.spec(), RECURSIVE.spec(), LIST_ALL.spec()]);
    specs
}
