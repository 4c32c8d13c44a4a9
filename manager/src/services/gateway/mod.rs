//! The VPC's way out besides the public network: private gateways and the
//! static routes through them (CloudStack reference §2.6, §2.7, §3.6, §3.7).
//!
//! - [`private`]: createPrivateGateway, deletePrivateGateway,
//!   listPrivateGateways;
//! - [`route`]: createStaticRoute, deleteStaticRoute, listStaticRoutes.
//!
//! Both belong to the VPC's owner and change the VPC's router through the
//! change protocol ([`crate::provision::change`]): a failed push undoes the
//! change. One command per file, in a folder per resource.

mod private;
mod route;

use serde_json::{Value, json};

use crate::error::Error;
use crate::server::registry::{FieldSpec, Registry, field};
use crate::services::owner::owner_view;
use crate::services::related::Related;
use crate::services::vpc::{check_vpc_access, vpc_param};
use crate::store::{Db, vpc};

/// Registers the private gateway and static route commands.
pub fn register(registry: &mut Registry) {
    registry.job::<private::CreatePrivateGateway>();
    registry.job::<private::DeletePrivateGateway>();
    registry.sync::<private::ListPrivateGateways>();
    registry.job::<route::CreateStaticRoute>();
    registry.job::<route::DeleteStaticRoute>();
    registry.sync::<route::ListStaticRoutes>();
}

/// The owner fields of a gateway or route response.
const OWNER_FIELDS: &[FieldSpec] = &[
    field("account", "string", "the owner's account"),
    field("domainid", "string", "the owner's domain"),
    field("domain", "string", "the name of the owner's domain"),
];

/// Puts the owner fields of a gateway or route response into `view`.
/// `domainpath` is the domain's stored path here, as these views have
/// always shown it.
fn put_owner(related: &Related, view: &mut Value, account_id: i64, domain_id: i64) {
    let d = related.domain(domain_id);
    if let Some(m) = view.as_object_mut() {
        m.extend(owner_view(related.account(account_id), d));
        if let Some(d) = d {
            m.insert("domainpath".into(), json!(d.path));
        }
    }
}

/// A VPC by internal id (live or not: its objects may outlive it briefly).
async fn vpc_by_id(db: &Db, id: i64) -> Result<vpc::Vpc, Error> {
    vpc::get_by_id(db, id)
        .await?
        .ok_or_else(|| Error::internal(format!("VPC {id} is gone")))
}
