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

use crate::server::registry::Registry;

pub use configuration::{ListConfigurations, UpdateConfiguration};
pub use limits::{ListResourceLimits, UpdateResourceLimit};

/// Registers the configuration and limit commands.
pub fn register(registry: &mut Registry) {
    registry.sync::<ListConfigurations>();
    registry.sync::<UpdateConfiguration>();
    registry.sync::<UpdateResourceLimit>();
    registry.sync::<ListResourceLimits>();
}

// The keyword and paging of the lists of this module, which filter and page
// in memory (a few dozen rows).
use crate::server::list_paging::Paging;

#[cfg(test)]
mod tests {
    use crate::server::page_of;
    use crate::store::Page;

    #[test]
    fn pages_are_cut_from_the_list() {
        let v: Vec<i32> = (0..10).collect();
        assert_eq!(page_of(v.clone(), Page::new(2, 3)), vec![3, 4, 5]);
        assert_eq!(page_of(v.clone(), Page::ALL).len(), 10);
        assert!(page_of(v, Page::new(5, 3)).is_empty());
    }
}
