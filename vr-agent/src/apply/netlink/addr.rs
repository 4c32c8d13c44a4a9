//! IPv4 addresses of the planned links (IPv6 is left alone).

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::Handle;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};

use super::{Names, NetlinkError, Result, request};
use crate::plan::net::NetPlan;

/// An IPv4 address on a link.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObservedAddress {
    /// The link's name (its planned name for a planned NIC).
    pub link: String,
    pub index: u32,
    pub address: Ipv4Net,
}

/// An address as dumped, with the message that deletes it.
pub(super) struct DumpedAddress {
    pub observed: ObservedAddress,
    message: AddressMessage,
}

/// One change to one address.
pub(super) enum AddrOp {
    Delete {
        link: String,
        address: Ipv4Net,
        message: Box<AddressMessage>,
    },
    Add {
        index: u32,
        link: String,
        address: Ipv4Net,
        announce: bool,
    },
}

impl fmt::Display for AddrOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrOp::Delete { link, address, .. } => {
                write!(f, "delete address {address} dev {link}")
            }
            AddrOp::Add { link, address, .. } => write!(f, "add address {address} dev {link}"),
        }
    }
}

/// Every IPv4 address of the namespace.
pub(super) async fn dump(h: &Handle, names: &Names) -> Result<Vec<DumpedAddress>> {
    let dump_error = |source| NetlinkError::Dump {
        what: "addresses",
        source,
    };
    let mut stream = h.address().get().execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await.map_err(dump_error)? {
        if msg.header.family != AddressFamily::Inet {
            continue;
        }
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS differs from
        // it only on point-to-point links, where it is the peer's.
        let local = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        let address = local.or_else(|| {
            msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            })
        });
        let Some(Ok(address)) = address.map(|ip| Ipv4Net::new(ip, msg.header.prefix_len)) else {
            continue;
        };
        let index = msg.header.index;
        out.push(DumpedAddress {
            observed: ObservedAddress {
                link: names.name(index),
                index,
                address,
            },
            message: msg,
        });
    }
    out.sort_by(|a, b| a.observed.cmp(&b.observed));
    Ok(out)
}

/// Adds the missing addresses in plan order, then deletes the addresses on
/// planned and released links that the plan does not hold. Adding first
/// matters: when a link loses its last IPv4 address the kernel flushes every
/// route through it, foreign ones included, so replacing a link's only
/// address must never leave it without one.
pub(super) fn diff(
    plan: &NetPlan,
    released: &[u32],
    names: &Names,
    present: &[DumpedAddress],
) -> Vec<AddrOp> {
    let mut managed: BTreeSet<u32> = released.iter().copied().collect();
    managed.extend(plan.links.iter().filter_map(|l| names.index(&l.name).ok()));
    // A planned address whose link is missing is left out: the link step
    // already failed (apply) or reported it (drift).
    let wanted: Vec<(u32, &crate::plan::net::AddressSpec)> = plan
        .addresses
        .iter()
        .filter_map(|a| names.index(&a.link).ok().map(|i| (i, a)))
        .filter(|(i, _)| !released.contains(i))
        .collect();

    let mut ops = Vec::new();
    for &(index, a) in &wanted {
        if !present
            .iter()
            .any(|p| p.observed.index == index && p.observed.address == a.address)
        {
            ops.push(AddrOp::Add {
                index,
                link: a.link.clone(),
                address: a.address,
                announce: a.announce,
            });
        }
    }
    for p in present
        .iter()
        .filter(|p| managed.contains(&p.observed.index))
    {
        let o = &p.observed;
        if !wanted
            .iter()
            .any(|(i, a)| *i == o.index && a.address == o.address)
        {
            ops.push(AddrOp::Delete {
                link: o.link.clone(),
                address: o.address,
                message: Box::new(p.message.clone()),
            });
        }
    }
    ops
}

/// Runs one address change; false when the kernel already had it so.
pub(super) async fn execute(h: &Handle, op: &AddrOp) -> Result<bool> {
    match op {
        AddrOp::Delete { message, .. } => {
            let ok = [libc::EADDRNOTAVAIL, libc::ENOENT];
            request(
                || op.to_string(),
                &ok,
                h.address().del((**message).clone()).execute(),
            )
            .await
        }
        AddrOp::Add { index, address, .. } => {
            let add = h
                .address()
                .add(*index, IpAddr::V4(address.addr()), address.prefix_len());
            request(|| op.to_string(), &[libc::EEXIST], add.execute()).await
        }
    }
}
