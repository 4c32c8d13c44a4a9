//! The seams to the outside: the agent of a router (`AgentClient`) and the
//! driver that runs routers (`RouterDriver`). Both are object-safe and live
//! behind `Arc<dyn ...>` ([`SharedAgent`], [`SharedDriver`]): the manager
//! picks them at start (see [`crate::future`]).
//!
//! Kept whole because it defines both seams with the endpoint book and `Arc` forwarding they share;
//! a seventh is tests.

use std::net::SocketAddr;
use std::path::PathBuf;

use vpc_proto::v1 as pb;

use super::model::{RouterNicView, RouterView, VmView};

/// Re-exported so `orchestration::agent::BoxFuture` keeps naming the one
/// definition in [`crate::future`].
pub use crate::future::BoxFuture;

/// One agent RPC with its request.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentCommand {
    PlugNic(pb::PlugNicRequest),
    UnplugNic(pb::UnplugNicRequest),
    SetupGuestNetwork(pb::SetupGuestNetworkRequest),
    DestroyGuestNetwork(pb::DestroyGuestNetworkRequest),
    IpAssoc(pb::IpAssocRequest),
    SetSourceNat(pb::SetSourceNatRequest),
    SetStaticRoutes(pb::SetStaticRoutesRequest),
    SetNetworkAcl(pb::SetNetworkAclRequest),
    EditNetworkAcl(pb::EditNetworkAclRequest),
    SetPortForwardingRules(pb::SetPortForwardingRulesRequest),
    SetStaticNatRules(pb::SetStaticNatRulesRequest),
    SetLoadBalancerRules(pb::SetLoadBalancerRulesRequest),
    SetDhcpEntries(pb::SetDhcpEntriesRequest),
    SetVmData(pb::SetVmDataRequest),
    SetVpn(pb::SetVpnRequest),
    ApplyConfig(pb::ApplyConfigRequest),
    GetState(pb::GetStateRequest),
}

impl AgentCommand {
    /// The RPC's name as the proto spells it.
    pub fn rpc(&self) -> &'static str {
        match self {
            AgentCommand::PlugNic(_) => "PlugNic",
            AgentCommand::UnplugNic(_) => "UnplugNic",
            AgentCommand::SetupGuestNetwork(_) => "SetupGuestNetwork",
            AgentCommand::DestroyGuestNetwork(_) => "DestroyGuestNetwork",
            AgentCommand::IpAssoc(_) => "IpAssoc",
            AgentCommand::SetSourceNat(_) => "SetSourceNat",
            AgentCommand::SetStaticRoutes(_) => "SetStaticRoutes",
            AgentCommand::SetNetworkAcl(_) => "SetNetworkAcl",
            AgentCommand::EditNetworkAcl(_) => "EditNetworkAcl",
            AgentCommand::SetPortForwardingRules(_) => "SetPortForwardingRules",
            AgentCommand::SetStaticNatRules(_) => "SetStaticNatRules",
            AgentCommand::SetLoadBalancerRules(_) => "SetLoadBalancerRules",
            AgentCommand::SetDhcpEntries(_) => "SetDhcpEntries",
            AgentCommand::SetVmData(_) => "SetVmData",
            AgentCommand::SetVpn(_) => "SetVpn",
            AgentCommand::ApplyConfig(_) => "ApplyConfig",
            AgentCommand::GetState(_) => "GetState",
        }
    }

    /// The generation a mutating command carries (None for GetState).
    pub fn generation(&self) -> Option<u64> {
        Some(match self {
            AgentCommand::PlugNic(r) => r.generation,
            AgentCommand::UnplugNic(r) => r.generation,
            AgentCommand::SetupGuestNetwork(r) => r.generation,
            AgentCommand::DestroyGuestNetwork(r) => r.generation,
            AgentCommand::IpAssoc(r) => r.generation,
            AgentCommand::SetSourceNat(r) => r.generation,
            AgentCommand::SetStaticRoutes(r) => r.generation,
            AgentCommand::SetNetworkAcl(r) => r.generation,
            AgentCommand::EditNetworkAcl(r) => r.generation,
            AgentCommand::SetPortForwardingRules(r) => r.generation,
            AgentCommand::SetStaticNatRules(r) => r.generation,
            AgentCommand::SetLoadBalancerRules(r) => r.generation,
            AgentCommand::SetDhcpEntries(r) => r.generation,
            AgentCommand::SetVmData(r) => r.generation,
            AgentCommand::SetVpn(r) => r.generation,
            AgentCommand::ApplyConfig(r) => r.generation,
            AgentCommand::GetState(_) => return None,
        })
    }
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentReply {
    /// The answer to every mutating RPC.
    Applied(pb::ApplyResponse),
    /// The answer to GetState.
    State(Box<pb::GetStateResponse>),
}

/// Why an agent RPC failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The agent holds a newer generation (FAILED_PRECONDITION).
    #[error("the router has applied generation {applied}, newer than {sent}")]
    StaleGeneration { sent: u64, applied: u64 },
    /// Bad input (INVALID_ARGUMENT / NOT_FOUND).
    #[error("the agent refused the request: {0}")]
    Refused(String),
    /// The agent could not be reached.
    #[error("the agent is unreachable: {0}")]
    Unreachable(String),
    /// Applying failed on the router; the previous state stays applied.
    #[error("the agent failed to apply: {0}")]
    Failed(String),
    /// An edit made against a state the router does not hold (ABORTED):
    /// nothing changed; the whole list goes instead.
    #[error("the router does not hold what the edit was made against: {0}")]
    NotAtBase(String),
}

/// A client of routers' agents.
pub trait AgentClient: Send + Sync {
    /// Sends one command to the router's agent and waits for its answer.
    fn send<'a>(
        &'a self,
        router: &'a RouterView,
        command: AgentCommand,
    ) -> BoxFuture<'a, Result<AgentReply, AgentError>>;
}

/// The agent client the manager runs with.
pub type SharedAgent = std::sync::Arc<dyn AgentClient>;

/// A shared client is a client: a [`SharedAgent`] goes wherever an
/// `AgentClient` is asked for, and a call through it resolves to this trait
/// (the one its callers import) rather than to the trait object's own
/// methods.
impl<T: AgentClient + ?Sized> AgentClient for std::sync::Arc<T> {
    fn send<'a>(
        &'a self,
        router: &'a RouterView,
        command: AgentCommand,
    ) -> BoxFuture<'a, Result<AgentReply, AgentError>> {
        (**self).send(router, command)
    }
}

/// How to reach a router's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEndpoint {
    UnixSocket(PathBuf),
    Tcp(SocketAddr),
    /// Through the host agent at `host_agent` (`host:port`, mutual TLS),
    /// which relays to the router's Unix socket on its host.
    Relay {
        host_agent: String,
        router: String,
    },
}

/// Why a driver operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("driver: {0}")]
pub struct DriverError(pub String);

/// Where routers run (CloudStack's "resource").
pub trait RouterDriver: Send + Sync {
    /// What runs the routers, as listRouters' `hypervisor` shows it: an
    /// operator must see at once when nothing really runs (`Simulator`,
    /// CloudStack's name for its hypervisor that only pretends).
    fn hypervisor(&self) -> &'static str;
    /// Starts the router (with the NICs it has) and returns its agent.
    fn start_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<AgentEndpoint, DriverError>>;
    fn stop_router<'a>(&'a self, router: &'a RouterView) -> BoxFuture<'a, Result<(), DriverError>>;
    fn destroy_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<(), DriverError>>;
    /// Starts the router in standby (the first half of a move between
    /// hosts): running and configurable, with its guest, public and private
    /// NIC ports off their segments, so it answers no one while the router
    /// it replaces still serves. A driver whose segments do not span hosts
    /// starts it as usual.
    fn start_router_standby<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<AgentEndpoint, DriverError>> {
        self.start_router(router)
    }
    /// Ends a standby: the NIC ports onto their segments and the NICs'
    /// addresses announced (gratuitous ARP).
    fn activate_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        let _ = router;
        Box::pin(async { Ok(()) })
    }
    /// Hot-plugs a NIC into the running router.
    fn plug_nic<'a>(
        &'a self,
        router: &'a RouterView,
        nic: &'a RouterNicView,
    ) -> BoxFuture<'a, Result<(), DriverError>>;
    fn unplug_nic<'a>(
        &'a self,
        router: &'a RouterView,
        nic: &'a RouterNicView,
    ) -> BoxFuture<'a, Result<(), DriverError>>;
    /// Starts a guest VM with its NICs plugged into their tiers.
    fn start_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>>;
    /// Stops a guest VM (it can start again).
    fn stop_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>>;
    /// Removes everything of a guest VM.
    fn destroy_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>>;
    /// What the host runs now, for a starting manager to compare with the
    /// database; `None` when the driver cannot tell (it runs nothing of
    /// its own, or keeps no record).
    fn inventory(&self) -> BoxFuture<'_, Result<Option<HostInventory>, DriverError>> {
        Box::pin(async { Ok(None) })
    }
    /// Makes the flood list of VXLAN segment `flood.broadcast_uri` on the
    /// host agent `host` (its URL; None: the default host) exactly
    /// `flood.remote_vteps`. A driver without hosts between which segments
    /// stretch has nothing to do.
    fn set_flood_list<'a>(
        &'a self,
        host: Option<&'a str>,
        flood: &'a FloodListView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        let _ = (host, flood);
        Box::pin(async { Ok(()) })
    }
}

/// One host's flood list of one VXLAN segment (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodListView {
    pub zone_id: uuid::Uuid,
    /// `vxlan://N`.
    pub broadcast_uri: String,
    /// The other member hosts' underlay addresses.
    pub remote_vteps: Vec<String>,
}

/// The routers and VMs a host runs (DESIGN §4: hosts report what runs on
/// them; a starting manager adopts nothing by itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInventory {
    /// Routers whose agent runs, by name, with where it is reached.
    pub routers: std::collections::BTreeMap<String, Option<AgentEndpoint>>,
    /// VMs whose processes run, by instance name.
    pub vms: std::collections::BTreeSet<String>,
}

/// The router driver the manager runs with.
pub type SharedDriver = std::sync::Arc<dyn RouterDriver>;

/// A shared driver is a driver, for the reason given on the `Arc` impl of
/// [`AgentClient`].
impl<T: RouterDriver + ?Sized> RouterDriver for std::sync::Arc<T> {
    fn hypervisor(&self) -> &'static str {
        (**self).hypervisor()
    }
    fn start_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<AgentEndpoint, DriverError>> {
        (**self).start_router(router)
    }
    fn stop_router<'a>(&'a self, router: &'a RouterView) -> BoxFuture<'a, Result<(), DriverError>> {
        (**self).stop_router(router)
    }
    fn destroy_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        (**self).destroy_router(router)
    }
    fn start_router_standby<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<AgentEndpoint, DriverError>> {
        (**self).start_router_standby(router)
    }
    fn activate_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        (**self).activate_router(router)
    }
    fn plug_nic<'a>(
        &'a self,
        router: &'a RouterView,
        nic: &'a RouterNicView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        (**self).plug_nic(router, nic)
    }
    fn unplug_nic<'a>(
        &'a self,
        router: &'a RouterView,
        nic: &'a RouterNicView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        (**self).unplug_nic(router, nic)
    }
    fn start_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        (**self).start_vm(vm)
    }
    fn stop_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        (**self).stop_vm(vm)
    }
    fn destroy_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        (**self).destroy_vm(vm)
    }
    fn inventory(&self) -> BoxFuture<'_, Result<Option<HostInventory>, DriverError>> {
        (**self).inventory()
    }
    fn set_flood_list<'a>(
        &'a self,
        host: Option<&'a str>,
        flood: &'a FloodListView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        (**self).set_flood_list(host, flood)
    }
}

/// Where each router's agent listens, by router name: written by the driver
/// when it starts a router, read by the agent client, filled from the
/// database when the manager starts, and looked up in the database
/// ([`Endpoints::set_lookup`]) for a router this manager has not seen: one
/// started by another manager of the cluster.
#[derive(Default)]
pub struct Endpoints {
    by_router: std::sync::RwLock<std::collections::HashMap<String, AgentEndpoint>>,
    lookup: std::sync::OnceLock<EndpointLookup>,
    /// Routers whose book entry [`Endpoints::refresh`] leaves alone: a
    /// router being moved, whose new agent the database does not name yet.
    pinned: std::sync::RwLock<std::collections::HashSet<String>>,
}

/// Reads a router's endpoint from where the cluster keeps it.
pub type EndpointLookup = std::sync::Arc<
    dyn Fn(String) -> crate::future::BoxFuture<'static, Option<AgentEndpoint>> + Send + Sync,
>;

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("by_router", &self.by_router)
            .field("lookup", &self.lookup.get().is_some())
            .finish()
    }
}

impl Endpoints {
    pub fn set(&self, router: &str, endpoint: AgentEndpoint) {
        self.by_router
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(router.to_string(), endpoint);
    }

    pub fn get(&self, router: &str) -> Option<AgentEndpoint> {
        self.by_router
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(router)
            .cloned()
    }

    pub fn remove(&self, router: &str) {
        self.by_router
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(router);
    }

    /// Sets where [`Endpoints::resolve`] looks for routers the book does not
    /// hold (once; later calls are ignored).
    pub fn set_lookup(&self, lookup: EndpointLookup) {
        let _ = self.lookup.set(lookup);
    }

    /// The router's endpoint: from the book, else from the lookup (and then
    /// kept in the book).
    pub async fn resolve(&self, router: &str) -> Option<AgentEndpoint> {
        if let Some(endpoint) = self.get(router) {
            return Some(endpoint);
        }
        let lookup = self.lookup.get()?.clone();
        let endpoint = lookup(router.to_string()).await?;
        self.set(router, endpoint.clone());
        Some(endpoint)
    }
}

impl Endpoints {
    /// Reads the router's endpoint from the lookup again (the database),
    /// replacing the book's: after a failed connection, since the router
    /// may have moved to another host (by another manager) and listen
    /// elsewhere. Without a lookup, or when it knows nothing, the book
    /// stays as it is.
    pub async fn refresh(&self, router: &str) {
        let pinned = self
            .pinned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(router);
        let Some(lookup) = self.lookup.get().cloned().filter(|_| !pinned) else {
            return;
        };
        if let Some(endpoint) = lookup(router.to_string()).await {
            self.set(router, endpoint);
        }
    }

    /// Keeps the book's entry of `router` through refreshes (`true`) or
    /// no longer (`false`).
    pub fn pin(&self, router: &str, pinned: bool) {
        let mut set = self.pinned.write().unwrap_or_else(|e| e.into_inner());
        if pinned {
            set.insert(router.to_string());
        } else {
            set.remove(router);
        }
    }
}

impl AgentEndpoint {
    /// The text kept in the database (`unix:///path`, `tcp://addr:port`,
    /// `relay://host:port/router`).
    pub fn to_text(&self) -> String {
        match self {
            AgentEndpoint::UnixSocket(p) => format!("unix://{}", p.display()),
            AgentEndpoint::Tcp(a) => format!("tcp://{a}"),
            AgentEndpoint::Relay { host_agent, router } => format!("relay://{host_agent}/{router}"),
        }
    }

    /// Parses [`AgentEndpoint::to_text`].
    pub fn from_text(text: &str) -> Option<AgentEndpoint> {
        if let Some(path) = text.strip_prefix("unix://") {
            return Some(AgentEndpoint::UnixSocket(PathBuf::from(path)));
        }
        if let Some(rest) = text.strip_prefix("relay://") {
            let (host_agent, router) = rest.rsplit_once('/')?;
            let name_ok = !router.is_empty()
                && router
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            return (name_ok && !host_agent.is_empty() && !host_agent.contains('/')).then(|| {
                AgentEndpoint::Relay {
                    host_agent: host_agent.to_string(),
                    router: router.to_string(),
                }
            });
        }
        text.strip_prefix("tcp://")?
            .parse()
            .ok()
            .map(AgentEndpoint::Tcp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refresh_replaces_a_stale_endpoint_with_the_lookups_and_keeps_it_without_one() {
        let book = Endpoints::default();
        let old = AgentEndpoint::UnixSocket("/srv/a/r-1.sock".into());
        book.set("r-1-VM", old.clone());
        book.refresh("r-1-VM").await;
        assert_eq!(book.get("r-1-VM"), Some(old), "no lookup: kept");
        book.set_lookup(std::sync::Arc::new(move |name: String| {
            Box::pin(async move {
                (name == "r-1-VM").then(|| AgentEndpoint::UnixSocket("/srv/b/r-1.sock".into()))
            })
        }));
        book.refresh("r-1-VM").await;
        assert_eq!(
            book.get("r-1-VM"),
            Some(AgentEndpoint::UnixSocket("/srv/b/r-1.sock".into()))
        );
        book.set(
            "r-2-VM",
            AgentEndpoint::UnixSocket("/srv/a/r-2.sock".into()),
        );
        book.refresh("r-2-VM").await;
        assert_eq!(
            book.get("r-2-VM"),
            Some(AgentEndpoint::UnixSocket("/srv/a/r-2.sock".into())),
            "unknown to the lookup: kept"
        );
        let moving = AgentEndpoint::UnixSocket("/srv/c/r-1.sock".into());
        book.set("r-1-VM", moving.clone());
        book.pin("r-1-VM", true);
        book.refresh("r-1-VM").await;
        assert_eq!(book.get("r-1-VM"), Some(moving), "pinned: kept");
        book.pin("r-1-VM", false);
        book.refresh("r-1-VM").await;
        assert_eq!(
            book.get("r-1-VM"),
            Some(AgentEndpoint::UnixSocket("/srv/b/r-1.sock".into()))
        );
    }

    #[tokio::test]
    async fn a_router_missing_from_the_book_is_looked_up_once_then_kept() {
        let book = Endpoints::default();
        assert_eq!(
            book.resolve("r-1-VM").await,
            None,
            "no lookup, nothing known"
        );
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = asked.clone();
        book.set_lookup(std::sync::Arc::new(move |name: String| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                (name == "r-1-VM").then(|| AgentEndpoint::UnixSocket("/run/r-1.sock".into()))
            })
        }));
        let found = book.resolve("r-1-VM").await;
        assert_eq!(
            found,
            Some(AgentEndpoint::UnixSocket("/run/r-1.sock".into()))
        );
        assert_eq!(book.resolve("r-1-VM").await, found);
        assert_eq!(
            asked.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "kept in the book"
        );
        assert_eq!(book.resolve("r-2-VM").await, None);
    }
}
