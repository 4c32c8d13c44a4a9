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
//! One file per idea: [`configuration`] (the global keys, the rules their
//! values follow and their commands) and [`limits`] (resource limits of
//! accounts and domains); this module assembles their commands.

mod configuration;
mod limits;

use crate::server::page_of;
use crate::server::registry::{CommandSpec, ParamSpec, ParamType::*, opt};

fn paging() -> Vec<ParamSpec> {
    vec![
        opt("keyword", String, "a substring to match"),
        opt("page", Integer, "the page to return"),
        opt("pagesize", Integer, "the number of objects per page"),
    ]
}

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let mut all = configuration::commands();
    all.extend(limits::commands());
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Page;

    #[test]
    fn pages_are_cut_from_the_list() {
        let v: Vec<i32> = (0..10).collect();
        assert_eq!(page_of(v.clone(), Page::new(2, 3)), vec![3, 4, 5]);
        assert_eq!(page_of(v.clone(), Page::ALL).len(), 10);
        assert!(page_of(v, Page::new(5, 3)).is_empty());
    }
}
