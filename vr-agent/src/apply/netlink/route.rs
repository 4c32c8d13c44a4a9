//! Routes: the agent owns exactly the IPv4 routes carrying its protocol number.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{Names, NetlinkError, RTPROT_VPC_AGENT, Result, request};
use crate::plan::net::{RouteKind, RouteSpec};

/// An owned route as dumped.
pub(super) struct OwnedRoute {
    table: u32,
    destination: Ipv4Net,
    /// No TOS, no metric, no source prefix: the only routes the agent adds,
    /// and the only ones a replace of (table, destination) reaches.
    pub plain: bool,
    /// The route as a plan would say it, when it can be said so.
    pub spec: Option<RouteSpec>,
    /// How the route is described in reports.
    pub text: String,
    message: RouteMessage,
}

/// One change to one route.
pub(super) enum RouteOp {
    Delete {
        text: String,
        message: Box<RouteMessage>,
    },
    Replace {
        old: String,
        new: RouteSpec,
    },
    Add(RouteSpec),
}

impl fmt::Display for RouteOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteOp::Delete { text, .. } => write!(f, "delete route {text}"),
            RouteOp::Replace { old, new } => write!(f, "replace route {old} with {new}"),
            RouteOp::Add(spec) => write!(f, "add route {spec}"),
        }
    }
}

fn parse(msg: RouteMessage, names: &Names) -> Option<OwnedRoute> {
    let header = &msg.header;
    if header.address_family != AddressFamily::Inet || u8::from(header.protocol) != RTPROT_VPC_AGENT
    {
        return None;
    }
    // Tables above 255 only fit the RTA_TABLE attribute; the header then
    // says RT_TABLE_COMPAT.
    let mut table = u32::from(header.table);
    let (mut destination, mut gateway, mut oif, mut metric, mut multipath) =
        (None, None, None, 0, false);
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => destination = Some(*ip),
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
            RouteAttribute::Oif(index) => oif = Some(*index),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::MultiPath(_) => multipath = true,
            _ => {}
        }
    }
    let destination = Ipv4Net::new(
        destination.unwrap_or(Ipv4Addr::UNSPECIFIED),
        header.destination_prefix_length,
    )
    .ok()?;
    let dev = oif.map(|i| names.name(i));
    let kind = match (header.kind, gateway, dev, multipath) {
        (RouteType::Throw, None, None, false) => Some(RouteKind::Throw),
        (RouteType::Unicast, Some(gateway), Some(dev), false) => {
            Some(RouteKind::Via { gateway, dev })
        }
        (RouteType::Unicast, None, Some(dev), false) if header.scope == RouteScope::Link => {
            Some(RouteKind::Link { dev })
        }
        _ => None,
    };
    let spec = kind.map(|kind| RouteSpec {
        table,
        destination,
        kind,
    });
    let plain = header.tos == 0 && metric == 0 && header.source_prefix_length == 0;
    let mut text = match &spec {
        Some(spec) => spec.to_string(),
        None => format!(
            "table {table} {destination} type {:?} scope {:?}",
            header.kind, header.scope
        ),
    };
    if header.tos != 0 {
        text.push_str(&format!(" tos {}", header.tos));
    }
    if metric != 0 {
        text.push_str(&format!(" metric {metric}"));
    }
    Some(OwnedRoute {
        table,
        destination,
        plain,
        spec,
        text,
        message: msg,
    })
}

/// Every owned IPv4 route, in any table.
pub(super) async fn dump(h: &Handle, names: &Names) -> Result<Vec<OwnedRoute>> {
    // Without NETLINK_GET_STRICT_CHK the kernel ignores the table and
    // protocol of a dump request and returns every IPv4 route, so ownership
    // is decided here, client-side.
    let dump_error = |source| NetlinkError::Dump {
        what: "routes",
        source,
    };
    let mut stream = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await.map_err(dump_error)? {
        out.extend(parse(msg, names));
    }
    out.sort_by(|a, b| (a.table, a.destination, &a.text).cmp(&(b.table, b.destination, &b.text)));
    Ok(out)
}

/// Owned routes not in the plan are deleted, missing ones added, and a route
/// whose (table, destination) is planned with another target is replaced in
/// place, so traffic never sees the destination without a route.
pub(super) fn diff(planned: &[RouteSpec], owned: &[OwnedRoute]) -> Vec<RouteOp> {
    let wanted: BTreeMap<(u32, Ipv4Net), &RouteSpec> = planned
        .iter()
        .map(|r| ((r.table, r.destination), r))
        .collect();
    let mut satisfied = BTreeSet::new();
    let (mut deletes, mut replaces) = (Vec::new(), Vec::new());
    for r in owned {
        let key = (r.table, r.destination);
        match wanted.get(&key) {
            Some(want) if r.plain && satisfied.insert(key) => {
                if r.spec.as_ref() != Some(*want) {
                    replaces.push(RouteOp::Replace {
                        old: r.text.clone(),
                        new: (*want).clone(),
                    });
                }
            }
            _ => deletes.push(RouteOp::Delete {
                text: r.text.clone(),
                message: Box::new(delete_message(&r.message)),
            }),
        }
    }
    let mut adds: Vec<&RouteSpec> = planned
        .iter()
        .filter(|r| !satisfied.contains(&(r.table, r.destination)))
        .collect();
    // The kernel checks that a gateway is reachable when a route is added;
    // in a NIC's table the on-link route makes it so, so it goes first.
    adds.sort_by_key(|r| match r.kind {
        RouteKind::Link { .. } => 0,
        RouteKind::Throw => 1,
        RouteKind::Via { .. } => 2,
    });
    deletes
        .into_iter()
        .chain(replaces)
        .chain(adds.into_iter().cloned().map(RouteOp::Add))
        .collect()
}

/// The message that deletes exactly one dumped route: its key plus its
/// protocol, so a delete can never reach a route of another owner.
fn delete_message(dumped: &RouteMessage) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header = dumped.header.clone();
    message.header.flags = RouteFlags::empty();
    message.attributes = dumped
        .attributes
        .iter()
        .filter(|a| {
            matches!(
                a,
                RouteAttribute::Table(_)
                    | RouteAttribute::Destination(_)
                    | RouteAttribute::Source(_)
                    | RouteAttribute::Gateway(_)
                    | RouteAttribute::Oif(_)
                    | RouteAttribute::Priority(_)
            )
        })
        .cloned()
        .collect();
    message
}

/// The message that installs a planned route.
fn add_message(spec: &RouteSpec, names: &Names) -> Result<RouteMessage> {
    let builder = RouteMessageBuilder::<Ipv4Addr>::new()
        .table_id(spec.table)
        .destination_prefix(spec.destination.network(), spec.destination.prefix_len())
        .protocol(RouteProtocol::Other(RTPROT_VPC_AGENT));
    let builder = match &spec.kind {
        RouteKind::Via { gateway, dev } => builder
            .gateway(*gateway)
            .output_interface(names.index(dev)?),
        // What `ip route add <cidr> dev <dev>` sends: no gateway, scope link.
        RouteKind::Link { dev } => builder
            .scope(RouteScope::Link)
            .output_interface(names.index(dev)?),
        RouteKind::Throw => builder.kind(RouteType::Throw),
    };
    Ok(builder.build())
}

/// Runs one route change; false when the kernel already had it so.
pub(super) async fn execute(h: &Handle, op: &RouteOp, names: &Names) -> Result<bool> {
    let what = || op.to_string();
    match op {
        // IPv4 answers ESRCH for a route that is already gone.
        RouteOp::Delete { message, .. } => {
            request(
                what,
                &[libc::ESRCH, libc::ENOENT],
                h.route().del((**message).clone()).execute(),
            )
            .await
        }
        RouteOp::Replace { new, .. } => {
            request(
                what,
                &[],
                h.route().add(add_message(new, names)?).replace().execute(),
            )
            .await
        }
        RouteOp::Add(spec) => {
            let add = h.route().add(add_message(spec, names)?).execute();
            let added = request(what, &[libc::EEXIST], add).await?;
            if !added {
                // Only a route of another protocol can hold the same (table,
                // destination, metric) here: it is left alone, as promised,
                // and drift keeps reporting the planned route as missing.
                tracing::warn!(route = %spec, "a route of another owner holds this destination; not replaced");
            }
            Ok(added)
        }
    }
}
