//! The `netns` driver: routers and VMs as network namespaces on this host
//! (DESIGN §4), the way Neutron's L3 agent runs routers on a network node.
//!
//! Layout, for prefix `vpc-` and a zone `1a2b3c4d-…`:
//! - `vpc-zone-1a2b3c4d` holds the zone's bridges: `brv<N>` per VLAN (this
//!   kernel has no 802.1Q links, so a VLAN is its own bridge), `brx<N>` per
//!   VXLAN segment with a real VXLAN device `vx<N>` as a port, `brpub` for
//!   the untagged public network, `brctl` for control NICs. Bridges come
//!   with their first port and go with their last.
//! - `vpc-<router name>` per router: one veth per NIC (`eth<device index>`,
//!   the NIC's MAC), the zone end (`v<MAC hex>`) on the NIC's bridge, and the
//!   `vr-agent` process, supervised, listening on a Unix socket in the data
//!   directory (or on TCP with mutual TLS, reached from inside the namespace,
//!   see [`connect_in_netns`]).
//! - `vpc-<instance name>` per VM: one veth per NIC and a supervised
//!   `busybox udhcpc` per NIC taking the address from the router.
//! - `vpc-up-1a2b3c4d`, the upstream ("internet") on the public bridge,
//!   holding the public ranges' gateway addresses; `vpc-op-1a2b3c4d-v<N>`,
//!   on-premises networks behind private gateways (tests and the demo).
//!
//! The host's own namespace is never changed: link commands run as
//! `ip -n <ns>`, processes under `ip netns exec <ns>`.

mod adopt;
mod connect;
mod error;
mod ip;
mod links;
pub mod names;
mod process;
mod router;
mod sweep;
mod vm;
mod zone;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use uuid::Uuid;

pub use connect::{CONNECT_TIMEOUT, connect_in_netns, connect_in_netns_async};
pub use error::NetnsError;
pub use names::Segment;
pub use vm::Lease;
pub use zone::OnPrem;

use crate::future::BoxFuture;
use crate::orchestration::agent::{AgentEndpoint, DriverError, Endpoints, RouterDriver};
use crate::orchestration::model::{RouterNicView, RouterView, VmView};
use crate::settings::AgentTransport;
use names::Names;
use process::Supervisor;

/// Issues TLS material for a router: `(certificate, private key, CA)` PEMs
/// for the router's name (the manager's PKI, `pki.issue_router`).
pub type TlsProvider = Arc<dyn Fn(&str) -> anyhow::Result<(String, String, String)> + Send + Sync>;

/// The TCP port agents listen on with the TCP transport (CloudStack reaches
/// its virtual routers on 3922 over the link-local control network).
pub const AGENT_TCP_PORT: u16 = 3922;

/// How long a starting agent has to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The `vr-agent` next to the running executable; from a test binary in
/// `target/<profile>/deps/`, the one in `target/<profile>/`.
pub fn default_agent_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir.join("vr-agent")
}

/// Routers' TLS material from the manager's CA.
pub fn tls_from_pki(pki: Arc<crate::pki::Pki>) -> TlsProvider {
    Arc::new(move |router: &str| {
        let cert = pki.issue_router(router)?;
        Ok((cert.cert_pem, cert.key_pem, cert.ca_pem))
    })
}

/// The netns [`RouterDriver`]. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct NetnsDriver {
    inner: Arc<Inner>,
}

struct Inner {
    names: Names,
    data_dir: PathBuf,
    agent_path: PathBuf,
    transport: AgentTransport,
    endpoints: Arc<Endpoints>,
    tls: Option<TlsProvider>,
    agent_args: Vec<String>,
    ready_timeout: Duration,
    /// Serializes changes of links, bridges and namespaces (a bridge is
    /// created by the first port and removed with the last).
    topology: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    /// Set once: no supervisor restarts anything any more.
    halted: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    /// The supervised processes of each namespace.
    supervisors: HashMap<String, Vec<Supervisor>>,
    /// The routers and VMs started, as last known (for repairs).
    routers: HashMap<String, RouterView>,
    vms: HashMap<String, VmView>,
}

impl NetnsDriver {
    /// A driver whose namespaces start with `prefix`, keeping its files in
    /// `<data_dir>/routers/<name>` and `<data_dir>/vms/<name>`, running
    /// `agent_path` in routers, registering agents in `endpoints`. `tls`
    /// is required for [`AgentTransport::Tcp`].
    pub fn new(
        prefix: &str,
        data_dir: impl Into<PathBuf>,
        agent_path: impl Into<PathBuf>,
        transport: AgentTransport,
        endpoints: Arc<Endpoints>,
        tls: Option<TlsProvider>,
    ) -> Result<NetnsDriver, NetnsError> {
        if transport == AgentTransport::Tcp && tls.is_none() {
            return Err(NetnsError::Invalid(
                "the TCP agent transport needs TLS material for the routers".into(),
            ));
        }
        Ok(NetnsDriver {
            inner: Arc::new(Inner {
                names: Names::new(prefix)?,
                data_dir: data_dir.into(),
                agent_path: agent_path.into(),
                transport,
                endpoints,
                tls,
                agent_args: Vec::new(),
                ready_timeout: READY_TIMEOUT,
                topology: tokio::sync::Mutex::new(()),
                state: Mutex::default(),
                halted: Arc::default(),
            }),
        })
    }

    /// Extra `vr-agent` arguments (e.g. `--reconcile-interval 1`). Only
    /// before the driver is shared.
    pub fn with_agent_args(mut self, args: Vec<String>) -> NetnsDriver {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.agent_args = args;
        }
        self
    }

    /// How long a starting agent has to answer (default 20 s). Only before
    /// the driver is shared.
    pub fn with_ready_timeout(mut self, timeout: Duration) -> NetnsDriver {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.ready_timeout = timeout;
        }
        self
    }

    pub fn prefix(&self) -> &str {
        self.inner.names.prefix()
    }

    /// `<prefix><router name>`.
    pub fn router_ns(&self, router: &str) -> String {
        self.inner.names.router_ns(router)
    }

    /// `<prefix><instance name>`.
    pub fn vm_ns(&self, instance: &str) -> String {
        self.inner.names.vm_ns(instance)
    }

    /// `<prefix>zone-<zone8>`: the zone's bridges.
    pub fn zone_ns(&self, zone: &Uuid) -> String {
        self.inner.names.zone_ns(zone)
    }

    /// `<prefix>up-<zone8>`: the zone's upstream.
    pub fn upstream_ns(&self, zone: &Uuid) -> String {
        self.inner.names.upstream_ns(zone)
    }

    /// `<prefix>op-<zone8>-<tag>`: an on-premises network.
    pub fn onprem_ns(&self, zone: &Uuid, broadcast_uri: &str) -> Result<String, NetnsError> {
        let segment = Segment::from_uri(Some(broadcast_uri))?;
        Ok(self.inner.names.onprem_ns(zone, segment))
    }

    /// The bridge (in the zone namespace) of a broadcast URI.
    pub fn bridge_for(&self, broadcast_uri: Option<&str>) -> Result<String, NetnsError> {
        Ok(Segment::from_uri(broadcast_uri)?.bridge())
    }

    /// `<data_dir>/routers/<name>`: socket, state, log, pid and TLS files.
    pub fn router_dir(&self, router: &str) -> PathBuf {
        self.inner.router_dir(router)
    }

    /// `<data_dir>/vms/<name>`: DHCP client scripts, leases, logs.
    pub fn vm_dir(&self, instance: &str) -> PathBuf {
        self.inner.vm_dir(instance)
    }

    /// The pid of a router's agent, while it runs under this driver.
    pub fn agent_pid(&self, router: &str) -> Option<u32> {
        self.inner.supervised_pid(&self.router_ns(router), 0)
    }

    /// How many times this driver started a router's agent.
    pub fn agent_starts(&self, router: &str) -> u32 {
        self.inner.supervised_starts(&self.router_ns(router), 0)
    }

    /// The pid of the DHCP client of a VM's `n`-th NIC (in the VM's NIC order).
    pub fn dhcp_client_pid(&self, instance: &str, n: usize) -> Option<u32> {
        self.inner.supervised_pid(&self.vm_ns(instance), n)
    }

    /// The lease the VM's NIC `device_index` holds, once it has one.
    pub fn vm_lease(&self, instance: &str, device_index: u32) -> Option<Lease> {
        vm::read_lease(&self.inner.vm_dir(instance), device_index)
    }

    /// A TCP connection to a router's agent (the [`AgentEndpoint::Tcp`] the
    /// driver registered), made from inside the router's namespace.
    pub async fn connect_agent(
        &self,
        router: &str,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<tokio::net::TcpStream> {
        connect_in_netns_async(&self.router_ns(router), addr).await
    }

    /// The agent client's TCP connector ([`crate::agent_client::GrpcAgentClient::with_connector`]):
    /// connects to a router's [`AgentEndpoint::Tcp`] from inside the router's namespace.
    pub fn tcp_connector(&self) -> crate::agent_client::TcpConnector {
        let names = self.inner.names.clone();
        Arc::new(move |router: &str, addr: std::net::SocketAddr| {
            let ns = names.router_ns(router);
            Box::pin(async move { connect_in_netns_async(&ns, addr).await })
        })
    }

    /// Creates the zone's upstream namespace on the public segment of
    /// `broadcast_uri` (`untagged` usually) with `gateway_cidr` (the public
    /// range's gateway and prefix, `203.0.113.1/24`); idempotent, and a
    /// further range only adds its gateway. Returns the namespace.
    pub async fn ensure_upstream(
        &self,
        zone: &Uuid,
        broadcast_uri: &str,
        gateway_cidr: &str,
    ) -> Result<String, NetnsError> {
        let segment = Segment::from_uri(Some(broadcast_uri))?;
        let _topology = self.inner.topology.lock().await;
        self.inner
            .ensure_upstream(zone, segment, gateway_cidr)
            .await
    }

    /// Creates (or completes) an on-premises namespace on the private
    /// gateway segment `broadcast_uri`; returns the namespace.
    pub async fn onprem(
        &self,
        zone: &Uuid,
        broadcast_uri: &str,
        spec: &OnPrem,
    ) -> Result<String, NetnsError> {
        let segment = Segment::from_uri(Some(broadcast_uri))?;
        self.inner.onprem(zone, segment, spec).await
    }

    /// Removes an on-premises namespace.
    pub async fn remove_onprem(&self, zone: &Uuid, broadcast_uri: &str) -> Result<(), NetnsError> {
        let segment = Segment::from_uri(Some(broadcast_uri))?;
        let ns = self.inner.names.onprem_ns(zone, segment);
        self.inner.remove_ns(&ns, Some(zone)).await
    }

    /// Removes the namespaces with the driver's prefix the database no
    /// longer knows, with their processes, and returns their names.
    ///
    /// `known` lists router names and VM instance names (an entry matches
    /// the namespace `<prefix><entry>`, or a namespace named `<entry>`).
    /// A zone namespace stays while it holds a NIC of a router or VM, or
    /// when `known` names it (`zone_ns(zone)`, to keep a zone's upstream
    /// without routers); a zone's upstream and on-premises namespaces stay
    /// with it. Data directories of unknown routers and VMs without a
    /// namespace go too, and bridges left without ports in the zones kept.
    pub async fn sweep(&self, known: &[String]) -> Vec<String> {
        self.inner.sweep(known).await
    }

    /// Ends supervision and leaves the processes running (a manager that
    /// stops; the next one adopts them). Endpoints stay registered.
    pub async fn shutdown(&self) {
        let supervisors: Vec<Supervisor> = {
            let mut state = self.inner.state();
            state.supervisors.drain().flat_map(|(_, s)| s).collect()
        };
        for s in supervisors {
            s.detach().await;
        }
    }

    /// Forbids every restart from now on, synchronously (for clean-up code
    /// that runs outside the runtime, e.g. a test guard on panic).
    pub fn halt(&self) {
        self.inner.halted.store(true, Ordering::SeqCst);
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn router_dir(&self, router: &str) -> PathBuf {
        self.data_dir.join("routers").join(router)
    }

    fn vm_dir(&self, instance: &str) -> PathBuf {
        self.data_dir.join("vms").join(instance)
    }

    fn supervised_pid(&self, ns: &str, n: usize) -> Option<u32> {
        self.state().supervisors.get(ns)?.get(n)?.pid()
    }

    fn supervised_starts(&self, ns: &str, n: usize) -> u32 {
        self.state()
            .supervisors
            .get(ns)
            .and_then(|s| s.get(n))
            .map_or(0, Supervisor::starts)
    }

    fn is_supervised(&self, ns: &str) -> bool {
        self.state()
            .supervisors
            .get(ns)
            .is_some_and(|s| !s.is_empty())
    }

    /// Stops the supervised processes of a namespace.
    async fn stop_supervisors(&self, ns: &str) {
        let supervisors = self.state().supervisors.remove(ns).unwrap_or_default();
        for s in supervisors {
            s.stop().await;
        }
    }
}

impl RouterDriver for NetnsDriver {
    fn hypervisor(&self) -> &'static str {
        "netns"
    }

    fn start_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<AgentEndpoint, DriverError>> {
        Box::pin(async move { Ok(self.inner.start_router(router).await?) })
    }

    fn stop_router<'a>(&'a self, router: &'a RouterView) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move { Ok(self.inner.stop_router(router).await?) })
    }

    fn destroy_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.inner.stop_router(router).await?;
            Ok(self.inner.remove_router_files(&router.name)?)
        })
    }

    fn plug_nic<'a>(
        &'a self,
        router: &'a RouterView,
        nic: &'a RouterNicView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move { Ok(self.inner.plug_nic(router, nic).await?) })
    }

    fn unplug_nic<'a>(
        &'a self,
        router: &'a RouterView,
        nic: &'a RouterNicView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move { Ok(self.inner.unplug_nic(router, nic).await?) })
    }

    fn start_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move { Ok(self.inner.start_vm(vm).await?) })
    }

    fn stop_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move { Ok(self.inner.stop_vm(vm).await?) })
    }

    fn destroy_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.inner.stop_vm(vm).await?;
            Ok(self.inner.remove_vm_files(&vm.instance_name)?)
        })
    }
}
