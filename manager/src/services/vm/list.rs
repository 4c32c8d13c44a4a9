//! `listVirtualMachines`: the VMs the caller may see, with CloudStack's
//! filters, ownership scope and paging.

use super::{sees_admin_fields, vm_view};
use crate::handler;
use crate::server::registry::Handler;
use crate::server::{Reply, page};
use crate::services::owner;
use crate::services::related::Related;
use crate::store::{network, vm, vpc, zone};

pub(super) const LIST: Handler = list_vms;

fn nothing() -> Reply {
    Reply::List {
        count: 0,
        items: vec![],
    }
}

handler!(list_vms, |ctx, params| {
    let db = &ctx.app.db;
    let scope = owner::list_scope(ctx, params).await?;
    let mut uuids: Option<Vec<String>> = params
        .uuid_list("ids")?
        .map(|ids| ids.iter().map(|u| u.to_string()).collect());
    if let Some(id) = params.uuid("id")? {
        let id = id.to_string();
        uuids = Some(match uuids {
            Some(ids) => ids.into_iter().filter(|u| *u == id).collect(),
            None => vec![id],
        });
    }
    let zone_id = match params.uuid("zoneid")? {
        Some(id) => match zone::get_by_uuid(db, &id.to_string()).await? {
            Some(z) => Some(z.id),
            None => return Ok(nothing()),
        },
        None => None,
    };
    let network_id = match params.uuid("networkid")? {
        Some(id) => match network::get_by_uuid(db, &id.to_string()).await? {
            Some(n) => Some(n.id),
            None => return Ok(nothing()),
        },
        None => None,
    };
    let vpc_id = match params.uuid("vpcid")? {
        Some(id) => match vpc::get_by_uuid(db, &id.to_string()).await? {
            Some(v) => Some(v.id),
            None => return Ok(nothing()),
        },
        None => None,
    };
    let service_offering_id = match params.uuid("serviceofferingid")? {
        Some(id) => match vm::offering_by_uuid(db, &id.to_string()).await? {
            Some(o) => Some(o.id),
            None => return Ok(nothing()),
        },
        None => None,
    };
    let template_id = match params.uuid("templateid")? {
        Some(id) => match vm::template_by_uuid(db, &id.to_string()).await? {
            Some(t) => Some(t.id),
            None => return Ok(nothing()),
        },
        None => None,
    };
    // `present` is every state but Destroyed (and Expunging, never listed).
    let state = params.string("state")?.filter(|s| !s.is_empty());
    let present = state
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("present"));
    let state = state.filter(|_| !present).map(|s| {
        [
            vm::STATE_STARTING,
            vm::STATE_RUNNING,
            vm::STATE_STOPPING,
            vm::STATE_STOPPED,
            vm::STATE_DESTROYED,
            vm::STATE_EXPUNGING,
            vm::STATE_ERROR,
        ]
        .into_iter()
        .find(|k| k.eq_ignore_ascii_case(&s))
        .map(str::to_string)
        .unwrap_or(s)
    });
    let filter = vm::VmFilter {
        uuids,
        name: params.string("name")?.filter(|n| !n.is_empty()),
        keyword: params.string("keyword")?.filter(|k| !k.is_empty()),
        zone_id,
        account_id: scope.account_id,
        domain_id: scope.domain_id,
        domain_path_prefix: scope.domain_path_prefix,
        state,
        network_id,
        vpc_id,
        service_offering_id,
        template_id,
        ..Default::default()
    };
    let page = page(ctx, params).await?;
    let (count, rows) = if present {
        let all = vm::list(db, &filter, crate::store::Page::ALL).await?.items;
        let kept: Vec<vm::Vm> = all
            .into_iter()
            .filter(|v| v.state != vm::STATE_DESTROYED)
            .collect();
        let total = kept.len() as u64;
        let skip = usize::try_from(page.offset.max(0)).unwrap_or(usize::MAX);
        let take = page.limit.map_or(usize::MAX, |l| {
            usize::try_from(l.max(0)).unwrap_or(usize::MAX)
        });
        (total, kept.into_iter().skip(skip).take(take).collect())
    } else {
        let listed = vm::list(db, &filter, page).await?;
        (
            u64::try_from(listed.total).unwrap_or_default(),
            listed.items,
        )
    };
    let admin = sees_admin_fields(ctx.caller.role);
    let related = Related::for_vms(db, &rows).await?;
    let items = rows.iter().map(|v| vm_view(&related, v, admin)).collect();
    Ok(Reply::List { count, items })
});
