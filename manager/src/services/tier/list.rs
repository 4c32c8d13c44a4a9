//! `listNetworks`: the live Guest tiers the caller may see, with CloudStack's
//! filters, ownership scope and paging.

use std::collections::HashMap;

use super::{network_view, sees_admin_fields};
use crate::handler;
use crate::server::registry::Handler;
use crate::server::{Reply, counted_page, page};
use crate::services::offering::gives_all;
use crate::services::owner;
use crate::services::related::{Related, services_by_offering};
use crate::store::{Page, network, offering, vpc, zone};

/// An empty list (a filter names something that does not exist, or asks
/// for networks this manager never lists).
fn nothing() -> Reply {
    Reply::List {
        count: 0,
        items: vec![],
    }
}

/// The handler of `listNetworks`.
pub(super) const LIST_NETWORKS: Handler = list_networks;

handler!(list_networks, |ctx, params| {
    let db = &ctx.app.db;
    let scope = owner::list_scope(ctx, params).await?;
    // Only Guest tiers are listed: the zone's public network and private
    // gateway networks are system networks CloudStack hides here.
    let other_kind = params
        .string("traffictype")?
        .filter(|t| !t.is_empty())
        .is_some_and(|t| !t.eq_ignore_ascii_case(network::TRAFFIC_GUEST))
        || params
            .string("type")?
            .filter(|t| !t.is_empty())
            .is_some_and(|t| !t.eq_ignore_ascii_case("Isolated"))
        || params
            .string("acltype")?
            .filter(|t| !t.is_empty())
            .is_some_and(|t| !t.eq_ignore_ascii_case("Account"))
        || params.boolean("issystem")? == Some(true)
        || params.boolean("forvpc")? == Some(false)
        || params.boolean("restartrequired")? == Some(true)
        || params.boolean("canusefordeploy")? == Some(false);
    if other_kind {
        return Ok(nothing());
    }
    let vpc_id = match params.uuid("vpcid")? {
        Some(id) => match vpc::get_by_uuid(db, &id.to_string()).await? {
            Some(v) => Some(v.id),
            None => return Ok(nothing()),
        },
        None => None,
    };
    let zone_id = match params.uuid("zoneid")? {
        Some(id) => match zone::get_by_uuid(db, &id.to_string()).await? {
            Some(z) => Some(z.id),
            None => return Ok(nothing()),
        },
        None => None,
    };
    let offering_id = match params.uuid("networkofferingid")? {
        Some(id) => match offering::network_offering_by_uuid(db, &id.to_string()).await? {
            Some(o) => Some(o.id),
            None => return Ok(nothing()),
        },
        None => None,
    };
    let physical_id = match params.uuid("physicalnetworkid")? {
        Some(id) => match zone::physical_network_by_uuid(db, &id.to_string()).await? {
            Some(p) => Some(p.id),
            None => return Ok(nothing()),
        },
        None => None,
    };
    let filter = network::NetworkFilter {
        uuids: params.uuid("id")?.map(|u| vec![u.to_string()]),
        keyword: params.string("keyword")?.filter(|k| !k.is_empty()),
        zone_id,
        vpc_id,
        in_vpc: Some(true),
        account_id: scope.account_id,
        domain_id: scope.domain_id,
        domain_path_prefix: scope.domain_path_prefix,
        traffic_type: Some(network::TRAFFIC_GUEST.into()),
        ..Default::default()
    };
    let name = params.string("name")?.filter(|n| !n.is_empty());
    let wanted = params.list("supportedservices")?;
    let in_memory =
        name.is_some() || offering_id.is_some() || physical_id.is_some() || wanted.is_some();
    let page = page(ctx, params).await?;
    let listed = network::list(db, &filter, if in_memory { Page::ALL } else { page }).await?;
    // The services of every offering the rows use, in one statement, for
    // the `supportedservices` filter.
    let offered = match &wanted {
        Some(_) => {
            let ids: Vec<i64> = listed.items.iter().map(|t| t.network_offering_id).collect();
            services_by_offering(offering::network_offerings_services(db, &ids).await?)
        }
        None => HashMap::new(),
    };
    let mut rows = Vec::new();
    for t in listed.items {
        if name.as_ref().is_some_and(|n| *n != t.name)
            || offering_id.is_some_and(|o| o != t.network_offering_id)
            || physical_id.is_some_and(|p| Some(p) != t.physical_network_id)
        {
            continue;
        }
        if let Some(wanted) = &wanted {
            let services = offered
                .get(&t.network_offering_id)
                .map_or(&[][..], Vec::as_slice);
            if !gives_all(services, wanted) {
                continue;
            }
        }
        rows.push(t);
    }
    let (count, rows) = counted_page(rows, listed.total, in_memory, page);
    let admin = sees_admin_fields(ctx);
    let related = Related::for_networks(db, &rows).await?;
    let items = rows
        .iter()
        .map(|t| network_view(&related, t, admin))
        .collect();
    Ok(Reply::List { count, items })
});
