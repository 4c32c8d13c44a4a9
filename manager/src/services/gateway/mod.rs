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

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::server::Ctx;
use crate::server::registry::Registry;
use crate::services::owner::{self, Scope};
use crate::store::{Db, vpc};
use uuid::Uuid;

/// Registers the private gateway and static route commands.
pub fn register(registry: &mut Registry) {
    registry.job::<private::CreatePrivateGateway>();
    registry.job::<private::DeletePrivateGateway>();
    registry.sync::<private::ListPrivateGateways>();
    registry.job::<route::CreateStaticRoute>();
    registry.job::<route::DeleteStaticRoute>();
    registry.sync::<route::ListStaticRoutes>();
}

/// The job of a command on one gateway or route: its row id (the key the
/// jobs of earlier versions stored).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RowJob {
    pub id: i64,
}

/// The live VPC named by parameter `param`, which the caller may act on
/// (431 when it names none, 531 when it is someone else's).
async fn vpc_param(ctx: &Ctx, param: &str, id: Uuid) -> Result<vpc::Vpc, Error> {
    let v = vpc::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))?;
    check_vpc_access(ctx, &v)?;
    Ok(v)
}

/// Checks that the caller may act on objects of `v` (531). The text does
/// not name the VPC: a caller who named an object of someone else's VPC
/// must not learn which VPC that is.
fn check_vpc_access(ctx: &Ctx, v: &vpc::Vpc) -> Result<(), Error> {
    owner::check_access(ctx, v.account_id, &v.domain_path, "objects of this VPC")
}

/// A VPC by internal id (live or not: its objects may outlive it briefly).
async fn vpc_by_id(db: &Db, id: i64) -> Result<vpc::Vpc, Error> {
    vpc::get_by_id(db, id)
        .await?
        .ok_or_else(|| Error::internal(format!("VPC {id} is gone")))
}

/// The scope of a list as the store filters take it.
fn scope_filter(scope: &Scope) -> (Option<i64>, Option<String>, Option<i64>) {
    (
        scope.account_id,
        scope.domain_path_prefix.clone(),
        scope.domain_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_and_route_jobs_keep_the_id_key() {
        let job: RowJob = serde_json::from_str(r#"{"id": 42}"#).unwrap();
        assert_eq!(job.id, 42);
        assert_eq!(
            serde_json::to_value(job).unwrap(),
            serde_json::json!({ "id": 42 })
        );
    }
}
