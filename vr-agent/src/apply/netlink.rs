//! Applies a net plan through rtnetlink.
//!
//! What the agent owns, and therefore diffs and may delete:
//! - the links of the plan (found by MAC) and their IPv4 addresses;
//! - every IPv4 route carrying the protocol number [`RTPROT_VPC_AGENT`], in
//!   any table (routes of other protocols, such as the kernel's connected
//!   routes, are never touched);
//! - every IPv4 rule whose priority lies in
//!   [`RULE_PRIORITY_BASE`]`..`[`RULE_PRIORITY_END`].
//!
//! Each apply reads the kernel, computes the operations that make it match the
//! plan (pure functions in the submodules), and runs them: missing objects are
//! added, stale ones removed, equal ones left alone, so a second apply of the
//! same plan changes nothing. All rtnetlink calls of the agent live in this
//! module and its submodules, so an rtnetlink upgrade (every release so far was
//! breaking) stays local.

mod addr;
mod link;
mod route;
mod rule;
mod sysctl;

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use rtnetlink::Handle;

use crate::apply::garp::PacketSocket;
use crate::model::Mac;
use crate::plan::net::NetPlan;
pub use crate::plan::net::{RULE_PRIORITY_BASE, RULE_PRIORITY_END};

pub use addr::ObservedAddress;
pub use link::ObservedLink;

/// The route protocol number (`proto 196` in `ip route`) that marks the routes
/// the agent installed; unassigned in iproute2's rt_protos and by the kernel.
pub const RTPROT_VPC_AGENT: u8 = 0xC4;

/// Why making the kernel match a plan failed; each variant names the object.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The netlink socket could not be opened (or no tokio runtime runs).
    #[error("cannot open a netlink socket: {0}")]
    Connect(#[source] io::Error),
    /// No link has the MAC of a planned NIC (the service answers NOT_FOUND).
    #[error("no link has MAC {mac}")]
    LinkNotFound { mac: Mac },
    /// Several links share the MAC of a planned NIC.
    #[error("links {names:?} all have MAC {mac}")]
    AmbiguousMac { mac: Mac, names: Vec<String> },
    /// A route names a device that is not a link of this namespace.
    #[error("no link is named {dev}")]
    DeviceNotFound { dev: String },
    /// Listing links, addresses, routes or rules failed.
    #[error("cannot list {what}: {source}")]
    Dump {
        what: &'static str,
        #[source]
        source: rtnetlink::Error,
    },
    /// A change was refused; `what` is the change, as the report words it.
    #[error("cannot {what}: {source}")]
    Request {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    /// A sysctl could not be read or written.
    #[error("cannot {what}: {source}")]
    Sysctl {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The calling thread is not in the namespace the socket was opened in,
    /// so /proc/sys/net would show another namespace's settings.
    #[error("this thread is not in the network namespace Netlink::connect ran in")]
    WrongNamespace,
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, NetlinkError>;

/// What an apply changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetReport {
    /// One line per change, e.g. "add address 10.1.1.1/24 dev eth2".
    pub changes: Vec<String>,
    /// The addresses that were added, with their link.
    pub added_addresses: Vec<(String, Ipv4Addr)>,
}

impl NetReport {
    /// True when the kernel already matched the plan.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// The routing state of the namespace, as far as the agent cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Every link.
    pub links: Vec<ObservedLink>,
    /// Every IPv4 address, on any link.
    pub addresses: Vec<ObservedAddress>,
    /// The owned routes (protocol [`RTPROT_VPC_AGENT`]) the agent can read back.
    pub routes: Vec<crate::plan::net::RouteSpec>,
    /// The owned rules (priority in the agent's range) the agent can read back.
    pub rules: Vec<crate::plan::net::RuleSpec>,
    /// Owned routes and rules the agent would never install (other selectors,
    /// multipath, metrics...): an apply deletes them.
    pub unrecognised: Vec<String>,
}

/// The agent's rtnetlink connection to one network namespace.
pub struct Netlink {
    handle: Handle,
    /// Sends gratuitous ARPs; None when the packet socket could not be opened
    /// (announcing is best effort).
    packet: Option<Arc<PacketSocket>>,
    /// Device and inode of the namespace `connect` ran in.
    netns: (u64, u64),
}

/// The network namespace of the calling thread (not of the process: netns
/// membership is per thread, and tests unshare one thread only).
fn thread_netns() -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok((meta.dev(), meta.ino()))
}

impl Netlink {
    /// Connects to the current thread's network namespace: a netlink socket
    /// belongs to the namespace of the thread that creates it, and keeps it.
    /// The connection task is spawned on the current tokio runtime.
    pub fn connect() -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| NetlinkError::Connect(io::Error::other(e)))?;
        let netns = thread_netns().map_err(NetlinkError::Connect)?;
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        runtime.spawn(connection);
        let packet = match PacketSocket::open() {
            Ok(socket) => Some(Arc::new(socket)),
            Err(e) => {
                tracing::warn!(error = %e, "no packet socket: gratuitous ARPs will not be sent");
                None
            }
        };
        Ok(Netlink {
            handle,
            packet,
            netns,
        })
    }

    /// Makes the kernel match `plan`; NICs whose MAC is in `released` (and not
    /// in the plan) lose their IPv4 addresses and are set down.
    pub async fn apply(&self, plan: &NetPlan, released: &[Mac]) -> Result<NetReport> {
        let mut report = NetReport::default();
        let h = &self.handle;

        // Links first: renaming needs a link down, and a link going down loses
        // its routes, so addresses and routes are only read after this.
        let links = link::dump(h).await?;
        let ops = link::diff(&plan.links, &links)?;
        for op in &ops {
            if link::execute(h, op).await? {
                report.changes.push(op.to_string());
            }
        }
        let links = if ops.is_empty() {
            links
        } else {
            link::dump(h).await?
        };
        let names = Names::new(plan, &links);

        self.check_namespace()?;
        for op in sysctl::diff(plan) {
            op.execute()?;
            report.changes.push(op.to_string());
        }

        // Deleting a primary address takes its secondaries with it unless
        // promote_secondaries is set (the sysctls above set it), so a pass
        // that changed something is followed by a second look.
        let released_indices = link::released_indices(released, plan, &links);
        for _ in 0..2 {
            let addresses = addr::dump(h, &names).await?;
            let ops = addr::diff(plan, &released_indices, &names, &addresses);
            if ops.is_empty() {
                break;
            }
            for op in &ops {
                if !addr::execute(h, op).await? {
                    continue;
                }
                report.changes.push(op.to_string());
                if let addr::AddrOp::Add {
                    index,
                    link,
                    address,
                    announce,
                } = op
                {
                    report.added_addresses.push((link.clone(), address.addr()));
                    if *announce {
                        self.announce(plan, link, *index, address.addr());
                    }
                }
            }
        }
        for op in link::release(released, plan, &links) {
            if link::execute(h, &op).await? {
                report.changes.push(op.to_string());
            }
        }

        let owned = route::dump(h, &names).await?;
        for op in route::diff(&plan.routes, &owned) {
            if route::execute(h, &op, &names).await? {
                report.changes.push(op.to_string());
            }
        }

        let owned = rule::dump(h).await?;
        for op in rule::diff(&plan.rules, &owned) {
            if rule::execute(h, &op).await? {
                report.changes.push(op.to_string());
            }
        }
        for line in &report.changes {
            tracing::info!(change = %line, "netlink");
        }
        Ok(report)
    }

    /// Each link's MTU by name (the DHCP servers announce a tier link's
    /// MTU below 1500).
    pub async fn link_mtus(&self) -> Result<std::collections::BTreeMap<String, u32>> {
        Ok(link::dump(&self.handle)
            .await?
            .into_iter()
            .filter_map(|l| Some((l.name, l.mtu?)))
            .collect())
    }

    /// Reads the links, IPv4 addresses, owned routes and owned rules.
    pub async fn observe(&self) -> Result<Observed> {
        let h = &self.handle;
        let links = link::dump(h).await?;
        let names = Names::new(&NetPlan::default(), &links);
        let addresses = addr::dump(h, &names)
            .await?
            .into_iter()
            .map(|a| a.observed)
            .collect();
        let mut observed = Observed {
            links,
            addresses,
            ..Observed::default()
        };
        for r in route::dump(h, &names).await? {
            match r.spec {
                Some(spec) if r.plain => observed.routes.push(spec),
                _ => observed.unrecognised.push(format!("route {}", r.text)),
            }
        }
        for r in rule::dump(h).await? {
            match r.spec {
                Some(spec) => observed.rules.push(spec),
                None => observed.unrecognised.push(format!("rule {}", r.text)),
            }
        }
        Ok(observed)
    }

    /// Lists how the kernel differs from `plan`, changing nothing: one line
    /// per change an apply would make (a missing NIC is a line, not an error).
    pub async fn drift(&self, plan: &NetPlan) -> Result<Vec<String>> {
        let h = &self.handle;
        let mut lines = Vec::new();
        let links = link::dump(h).await?;
        match link::diff(&plan.links, &links) {
            Ok(ops) => lines.extend(ops.iter().map(ToString::to_string)),
            Err(NetlinkError::LinkNotFound { mac }) => lines.push(format!("no link has MAC {mac}")),
            Err(e) => return Err(e),
        }
        let names = Names::new(plan, &links);
        self.check_namespace()?;
        lines.extend(sysctl::diff(plan).iter().map(ToString::to_string));
        let addresses = addr::dump(h, &names).await?;
        lines.extend(
            addr::diff(plan, &[], &names, &addresses)
                .iter()
                .map(ToString::to_string),
        );
        let owned = route::dump(h, &names).await?;
        lines.extend(
            route::diff(&plan.routes, &owned)
                .iter()
                .map(ToString::to_string),
        );
        let owned = rule::dump(h).await?;
        lines.extend(
            rule::diff(&plan.rules, &owned)
                .iter()
                .map(ToString::to_string),
        );
        Ok(lines)
    }

    fn check_namespace(&self) -> Result<()> {
        match thread_netns() {
            Ok(ns) if ns == self.netns => Ok(()),
            Ok(_) => Err(NetlinkError::WrongNamespace),
            Err(source) => Err(NetlinkError::Sysctl {
                what: "read /proc/thread-self/ns/net".into(),
                source,
            }),
        }
    }

    /// Sends a gratuitous ARP for `ip` from the planned link `link` now and
    /// again after each of [`ANNOUNCE_REPEATS`]; a failure is logged, never
    /// fatal (neighbours also learn on the next ARP).
    ///
    /// The repeats are for an address that moves: a replacement router takes
    /// its addresses while the router it replaces still holds them, and any
    /// ARP the old one sends meanwhile teaches the neighbours its MAC again;
    /// without a later announcement they keep sending to a router that is
    /// gone until their entries expire (half a minute and more).
    fn announce(&self, plan: &NetPlan, link: &str, index: u32, ip: Ipv4Addr) {
        let Some(socket) = &self.packet else { return };
        let Some(spec) = plan.links.iter().find(|l| l.name == link) else {
            return;
        };
        let (socket, mac, link) = (socket.clone(), spec.mac, link.to_string());
        let send = move |socket: &PacketSocket| match socket.send_garp(index, mac, ip) {
            Ok(()) => tracing::debug!(%ip, dev = %link, "gratuitous ARP sent"),
            Err(e) => tracing::warn!(%ip, dev = %link, error = %e, "gratuitous ARP failed"),
        };
        send(&socket);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for delay in ANNOUNCE_REPEATS {
                    tokio::time::sleep(delay).await;
                    send(&socket);
                }
            });
        }
    }
}

/// When an announced address is announced again, each delay after the
/// previous announcement (keepalived repeats its gratuitous ARPs the same way
/// after a takeover).
pub const ANNOUNCE_REPEATS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// Link names and indices, with planned links named by their planned name
/// (found by MAC) so routes and addresses are matched even on a link that
/// still carries another name.
#[derive(Debug, Default)]
pub(crate) struct Names {
    by_index: BTreeMap<u32, String>,
    by_name: BTreeMap<String, u32>,
}

impl Names {
    fn new(plan: &NetPlan, links: &[ObservedLink]) -> Self {
        let mut names = Names::default();
        for l in links {
            let planned = plan
                .links
                .iter()
                .find(|p| Some(p.mac) == l.mac)
                .map(|p| p.name.clone());
            let name = planned.unwrap_or_else(|| l.name.clone());
            names.by_index.insert(l.index, name.clone());
            names.by_name.insert(name, l.index);
        }
        names
    }

    /// The (planned) name of link `index`, or `if<index>` for a link that
    /// appeared after the dump.
    fn name(&self, index: u32) -> String {
        self.by_index
            .get(&index)
            .cloned()
            .unwrap_or_else(|| format!("if{index}"))
    }

    fn index(&self, dev: &str) -> Result<u32> {
        self.by_name
            .get(dev)
            .copied()
            .ok_or_else(|| NetlinkError::DeviceNotFound { dev: dev.into() })
    }
}

/// True for the errno `code` in an rtnetlink error.
fn is_errno(e: &rtnetlink::Error, code: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -code)
}

/// Runs a request. `EEXIST` (for an add) or `ENOENT`/`ESRCH`/`EADDRNOTAVAIL`
/// (for a delete) mean the kernel already is as wanted: success, but no
/// change, so the call returns false and the report does not list it.
async fn request<F>(what: impl Fn() -> String, ok_errnos: &[i32], fut: F) -> Result<bool>
where
    F: Future<Output = std::result::Result<(), rtnetlink::Error>>,
{
    match fut.await {
        Ok(()) => Ok(true),
        Err(e) if ok_errnos.iter().any(|c| is_errno(&e, *c)) => {
            tracing::debug!(what = %what(), error = %e, "already done");
            Ok(false)
        }
        Err(source) => Err(NetlinkError::Request {
            what: what(),
            source,
        }),
    }
}
