//! Domains, one command per file: `createDomain` ([`create`]),
//! `listDomains` ([`list`]), `deleteDomain` ([`delete`], a job).

mod create;
mod delete;
mod list;

pub use create::CreateDomain;
pub use delete::DeleteDomain;
pub use list::ListDomains;
