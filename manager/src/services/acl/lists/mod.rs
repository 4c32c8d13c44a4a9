//! ACL lists (reference §2.8, §3.8), one command per file:
//! createNetworkACLList, updateNetworkACLList, deleteNetworkACLList (the
//! list's removal as a change of its VPC), listNetworkACLLists and
//! replaceNetworkACLList (a tier's or private gateway's list replaced,
//! through the change protocol).

mod create;
mod delete;
mod list;
mod replace;
mod update;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{check_vpc_access, list_view, vpc_of};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::registry::{FieldSpec, field};
use crate::store::{Db, Exec, Page, acl, gateway, network, vpc};
use uuid::Uuid;

pub use create::CreateAclList;
pub use delete::DeleteAclList;
pub use list::ListAclLists;
pub use replace::ReplaceAclList;
pub use update::UpdateAclList;

/// The job of a command on one list: its row id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListJob {
    pub id: i64,
}

fn list_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the ACL list"),
        field("name", "string", "the name of the ACL list"),
        field("description", "string", "the description of the ACL list"),
        field("vpcid", "string", "the VPC of the ACL list"),
        field("vpcname", "string", "the name of the VPC of the ACL list"),
        field(
            "fordisplay",
            "boolean",
            "whether the list is shown to users",
        ),
    ]
}

/// The live VPC named by parameter `param`, which the caller may act on.
async fn vpc_param(ctx: &Ctx, param: &str, id: Uuid) -> Result<vpc::Vpc, Error> {
    let v = vpc::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))?;
    check_vpc_access(ctx, &v)?;
    Ok(v)
}

/// `{"networkacllist": ...}` of the live list `id`.
async fn list_result(db: &Db, id: i64) -> Result<Value, Error> {
    let list = acl::get_by_id(db, id)
        .await?
        .filter(|l| l.removed.is_none())
        .ok_or_else(|| Error::invalid("The ACL list was deleted meanwhile"))?;
    let v = vpc_of(db, &list).await?;
    Ok(json!({ "networkacllist": list_view(&list, v.as_ref()) }))
}

/// How many tiers and private gateways use a list.
async fn users_of<'a>(ex: impl Into<Exec<'a>>, acl_id: i64) -> Result<(usize, usize), Error> {
    let mut ex = ex.into();
    let tiers = network::list(
        ex.reborrow(),
        &network::NetworkFilter {
            network_acl_id: Some(acl_id),
            ..Default::default()
        },
        Page::first(1),
    )
    .await?
    .total;
    let gateways = gateway::list(
        ex.reborrow(),
        &gateway::GatewayFilter {
            network_acl_id: Some(acl_id),
            ..Default::default()
        },
        Page::first(1),
    )
    .await?
    .total;
    let count = |n: i64| usize::try_from(n).unwrap_or(usize::MAX);
    Ok((count(tiers), count(gateways)))
}
