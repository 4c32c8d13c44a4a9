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

use serde_json::{Value, json};

use super::{list_view, vpc_of};
use crate::error::Error;
use crate::server::command::{Arg, Flag};
use crate::server::registry::{FieldSpec, field};
use crate::services::vpc::vpc_param;
use crate::store::{Db, Exec, Page, acl, gateway, network};

pub use create::CreateAclList;
pub use delete::DeleteAclList;
pub use list::ListAclLists;
pub use replace::ReplaceAclList;
pub use update::UpdateAclList;

/// `fordisplay`, which the commands of this family accept and ignore.
const FOR_DISPLAY: Arg<Flag> = Arg::opt("fordisplay", "accepted; every list is displayed");

const LIST_FIELDS: &[FieldSpec] = &[
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
];

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
