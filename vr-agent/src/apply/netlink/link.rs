//! Links: found by MAC, named ethN, given their MTU and set up.

use std::collections::BTreeMap;
use std::fmt;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::{Handle, LinkUnspec};

use super::{NetlinkError, Result, request};
use crate::model::Mac;
use crate::plan::net::{LinkSpec, NetPlan};

/// The prefix of the temporary name that moves a link out of the way of
/// another link that needs its name ("vrtmp" + ifindex fits IFNAMSIZ).
const TEMP_NAME_PREFIX: &str = "vrtmp";

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedLink {
    pub index: u32,
    pub name: String,
    /// None for links without an Ethernet address.
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
    /// Administratively up (IFF_UP), whatever the carrier.
    pub up: bool,
}

/// One change to one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LinkOp {
    Down {
        index: u32,
        name: String,
    },
    Rename {
        index: u32,
        from: String,
        to: String,
    },
    Mtu {
        index: u32,
        name: String,
        mtu: u32,
    },
    Up {
        index: u32,
        name: String,
    },
}

impl fmt::Display for LinkOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkOp::Down { name, .. } => write!(f, "set link {name} down"),
            LinkOp::Rename { from, to, .. } => write!(f, "rename link {from} to {to}"),
            LinkOp::Mtu { name, mtu, .. } => write!(f, "set mtu {mtu} on link {name}"),
            LinkOp::Up { name, .. } => write!(f, "set link {name} up"),
        }
    }
}

fn parse(msg: &LinkMessage) -> ObservedLink {
    let mut link = ObservedLink {
        index: msg.header.index,
        name: String::new(),
        mac: None,
        mtu: None,
        up: msg.header.flags.contains(LinkFlags::Up),
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Mtu(mtu) => link.mtu = Some(*mtu),
            LinkAttribute::Address(bytes) => {
                link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(Mac)
            }
            _ => {}
        }
    }
    link
}

/// Every link of the namespace, by index.
pub(super) async fn dump(h: &Handle) -> Result<Vec<ObservedLink>> {
    let dump_error = |source| NetlinkError::Dump {
        what: "links",
        source,
    };
    let mut stream = h.link().get().execute();
    let mut links = Vec::new();
    while let Some(msg) = stream.try_next().await.map_err(dump_error)? {
        links.push(parse(&msg));
    }
    links.sort_by_key(|l| l.index);
    Ok(links)
}

/// The link of each planned NIC. Two links with one MAC are only accepted
/// when one of them already has the planned name.
fn resolve<'a>(
    planned: &'a [LinkSpec],
    links: &'a [ObservedLink],
) -> Result<Vec<(&'a LinkSpec, &'a ObservedLink)>> {
    let mut found = Vec::with_capacity(planned.len());
    for spec in planned {
        let matching: Vec<&ObservedLink> =
            links.iter().filter(|l| l.mac == Some(spec.mac)).collect();
        let link = match matching.as_slice() {
            [] => return Err(NetlinkError::LinkNotFound { mac: spec.mac }),
            [one] => *one,
            many => *many.iter().find(|l| l.name == spec.name).ok_or_else(|| {
                NetlinkError::AmbiguousMac {
                    mac: spec.mac,
                    names: many.iter().map(|l| l.name.clone()).collect(),
                }
            })?,
        };
        found.push((spec, link));
    }
    Ok(found)
}

/// The changes that give every planned NIC its name, MTU and up state.
/// Fails with [`NetlinkError::LinkNotFound`] before any change when a planned
/// MAC has no link.
pub(super) fn diff(planned: &[LinkSpec], links: &[ObservedLink]) -> Result<Vec<LinkOp>> {
    let found = resolve(planned, links)?;
    // The name and up state of each link as the ops so far leave it.
    let mut state: BTreeMap<u32, (String, bool)> = links
        .iter()
        .map(|l| (l.index, (l.name.clone(), l.up)))
        .collect();
    let owner: BTreeMap<&str, u32> = found
        .iter()
        .map(|(s, l)| (s.name.as_str(), l.index))
        .collect();
    let mut ops = Vec::new();

    // Names are unique in a namespace: a link holding a name another link
    // needs (a foreign link, or a NIC that moved, as in a swap of eth2 and
    // eth3) first gets a temporary name.
    for l in links {
        if owner.get(l.name.as_str()).is_some_and(|&o| o != l.index) {
            rename(
                &mut ops,
                &mut state,
                l.index,
                format!("{TEMP_NAME_PREFIX}{}", l.index),
            );
        }
    }
    for (spec, l) in &found {
        if state[&l.index].0 != spec.name {
            rename(&mut ops, &mut state, l.index, spec.name.clone());
        }
    }
    for (spec, l) in &found {
        let name = spec.name.clone();
        if let Some(mtu) = spec.mtu.filter(|m| l.mtu != Some(*m)) {
            ops.push(LinkOp::Mtu {
                index: l.index,
                name: name.clone(),
                mtu,
            });
        }
        if !state[&l.index].1 {
            ops.push(LinkOp::Up {
                index: l.index,
                name,
            });
        }
    }
    Ok(ops)
}

/// Renames link `index` to `to`, setting it down first: kernels before 6.2
/// refuse to rename a running link (EBUSY), and routers in VMs may run one.
/// The down also drops the link's routes, which the route step then restores
/// under the new name. Planned links come up again afterwards.
fn rename(
    ops: &mut Vec<LinkOp>,
    state: &mut BTreeMap<u32, (String, bool)>,
    index: u32,
    to: String,
) {
    let (name, up) = state.get_mut(&index).expect("a dumped link");
    if *up {
        ops.push(LinkOp::Down {
            index,
            name: name.clone(),
        });
        *up = false;
    }
    ops.push(LinkOp::Rename {
        index,
        from: name.clone(),
        to: to.clone(),
    });
    *name = to;
}

/// The present links of released NICs that are not (again) in the plan.
fn released_links<'a>(
    released: &'a [Mac],
    plan: &'a NetPlan,
    links: &'a [ObservedLink],
) -> impl Iterator<Item = &'a ObservedLink> {
    links.iter().filter(move |l| {
        l.mac
            .is_some_and(|m| released.contains(&m) && !plan.links.iter().any(|p| p.mac == m))
    })
}

/// The indices of the links of released NICs.
pub(super) fn released_indices(
    released: &[Mac],
    plan: &NetPlan,
    links: &[ObservedLink],
) -> Vec<u32> {
    released_links(released, plan, links)
        .map(|l| l.index)
        .collect()
}

/// Sets the links of released NICs down: the hypervisor owns the link, the
/// agent only stops using it.
pub(super) fn release(released: &[Mac], plan: &NetPlan, links: &[ObservedLink]) -> Vec<LinkOp> {
    released_links(released, plan, links)
        .filter(|l| l.up)
        .map(|l| LinkOp::Down {
            index: l.index,
            name: l.name.clone(),
        })
        .collect()
}

/// Runs one link change; false when the kernel already had it so.
pub(super) async fn execute(h: &Handle, op: &LinkOp) -> Result<bool> {
    let message = match op {
        LinkOp::Down { index, .. } => LinkUnspec::new_with_index(*index).down().build(),
        LinkOp::Rename { index, to, .. } => {
            LinkUnspec::new_with_index(*index).name(to.clone()).build()
        }
        LinkOp::Mtu { index, mtu, .. } => LinkUnspec::new_with_index(*index).mtu(*mtu).build(),
        LinkOp::Up { index, .. } => LinkUnspec::new_with_index(*index).up().build(),
    };
    request(|| op.to_string(), &[], h.link().set(message).execute()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> Mac {
        Mac([2, 0, 0, 0, 0, n])
    }

    fn link(index: u32, name: &str, n: u8, up: bool) -> ObservedLink {
        ObservedLink {
            index,
            name: name.into(),
            mac: Some(mac(n)),
            mtu: Some(1500),
            up,
        }
    }

    fn spec(name: &str, n: u8, mtu: Option<u32>) -> LinkSpec {
        LinkSpec {
            mac: mac(n),
            name: name.into(),
            mtu,
        }
    }

    fn lines(ops: &[LinkOp]) -> Vec<String> {
        ops.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_matching_link_needs_nothing() {
        let ops = diff(&[spec("eth1", 1, Some(1500))], &[link(5, "eth1", 1, true)]).unwrap();
        assert!(ops.is_empty());
    }

    #[test]
    fn a_link_is_renamed_while_down_then_brought_up() {
        let ops = diff(&[spec("eth1", 1, Some(1400))], &[link(5, "veth0", 1, true)]).unwrap();
        assert_eq!(
            lines(&ops),
            [
                "set link veth0 down",
                "rename link veth0 to eth1",
                "set mtu 1400 on link eth1",
                "set link eth1 up"
            ]
        );
    }

    #[test]
    fn swapped_names_go_through_temporary_names() {
        let links = [link(5, "eth3", 2, false), link(6, "eth2", 3, false)];
        let ops = diff(&[spec("eth2", 2, None), spec("eth3", 3, None)], &links).unwrap();
        assert_eq!(
            lines(&ops),
            [
                "rename link eth3 to vrtmp5",
                "rename link eth2 to vrtmp6",
                "rename link vrtmp5 to eth2",
                "rename link vrtmp6 to eth3",
                "set link eth2 up",
                "set link eth3 up",
            ]
        );
    }

    #[test]
    fn an_unknown_mac_fails_before_any_change() {
        let err = diff(
            &[spec("eth1", 1, None), spec("eth2", 9, None)],
            &[link(5, "x", 1, false)],
        )
        .unwrap_err();
        assert!(matches!(err, NetlinkError::LinkNotFound { mac } if mac == super::tests::mac(9)));
    }
}
