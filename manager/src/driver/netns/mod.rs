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
//! Between hosts (DESIGN §4), with an [`Underlay`]: the zone namespace gets
//! `ul0`, a veth onto the fabric's `underlay` bridge in the underlay
//! namespace carrying the host's underlay address; each `vx<N>` binds to
//! that address (`nolearning`, port 4789) with the underlay's MTU minus 50,
//! as do its bridge and every port on it, and floods to the VTEPs the
//! manager lists ([`NetnsDriver::set_flood_list`]). VLANs and the public
//! network span hosts through the fabric itself: this kernel has no 802.1Q
//! links, so each is a bridge of its own in the underlay namespace
//! (`brv<N>`, `brpub`), and each host's zone bridge of the segment gets a
//! veth onto it (`fab-v<N>` in the zone, `h<hash><tag>` in the fabric). A
//! real deployment would trunk the VLANs on the physical NIC instead. With
//! an underlay the zone has no upstream of its own: the fabric's public
//! segment leads to the real one.
//!
//! The host's own namespace is never changed: link commands run as
//! `ip -n <ns>`, processes under `ip netns exec <ns>`.

mod adopt;
mod connect;
mod error;
mod garp;
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
pub use links::{VXLAN_OVERHEAD, Vtep, vxlan_mtu};
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

/// The network between hosts, as this host reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    /// The host's underlay address and prefix (`10.250.0.1/24`).
    pub address: ipnet::Ipv4Net,
    /// The underlay's MTU (1500 by default); VXLAN segments get 50 less.
    pub mtu: u32,
    /// The namespace holding the fabric's bridges: in the lab one the test
    /// made; in a real deployment the host's own (then `ul0` and the
    /// uplinks are the only links the driver adds there).
    pub netns: String,
}

/// The smallest underlay MTU: a VXLAN segment still carries IPv4's minimum
/// of 68 bytes.
pub const UNDERLAY_MTU_MIN: u32 = 68 + VXLAN_OVERHEAD;

impl Underlay {
    /// Checks the underlay's fields: a unicast address with room for other
    /// hosts, an MTU from [`UNDERLAY_MTU_MIN`] to 65535, a namespace name.
    pub fn new(address: ipnet::Ipv4Net, mtu: u32, netns: &str) -> Result<Underlay, NetnsError> {
        let ip = address.addr();
        if ip.is_unspecified()
            || ip.is_loopback()
            || ip.is_multicast()
            || ip.is_broadcast()
            || address.prefix_len() > 30
            || ip == address.network()
            || ip == address.broadcast()
        {
            return Err(NetnsError::Invalid(format!(
                "underlay address {address} must be a unicast host address of a /30 or larger network"
            )));
        }
        if !(UNDERLAY_MTU_MIN..=65535).contains(&mtu) {
            return Err(NetnsError::Invalid(format!(
                "underlay MTU {mtu} must be {UNDERLAY_MTU_MIN} to 65535"
            )));
        }
        if netns.is_empty()
            || netns.starts_with('.')
            || !netns
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(NetnsError::Invalid(format!(
                "underlay namespace {netns:?} must be letters, digits, '.', '_' or '-'"
            )));
        }
        Ok(Underlay {
            address,
            mtu,
            netns: netns.to_string(),
        })
    }

    /// The VTEP of this host's VXLAN devices.
    pub fn vtep(&self) -> Vtep {
        Vtep {
            local: self.address.addr(),
            mtu: vxlan_mtu(self.mtu),
        }
    }
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
    /// The network between hosts; None keeps every segment on this host.
    underlay: Option<Underlay>,
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
    /// Routers started in standby and not activated yet: their guest,
    /// public and private ports stay off their segments, also in repairs.
    standby: std::collections::HashSet<String>,
}

impl State {
    /// Whether router or VM `name` is started or starting: a start records
    /// itself here before it makes anything.
    fn holds(&self, name: &str) -> bool {
        self.routers.contains_key(name) || self.vms.contains_key(name)
    }
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
                underlay: None,
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

    /// Segments reach other hosts through `underlay`. Only before the
    /// driver is shared.
    pub fn with_underlay(mut self, underlay: Underlay) -> NetnsDriver {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.underlay = Some(underlay);
        }
        self
    }

    /// The network between hosts, when the driver has one.
    pub fn underlay(&self) -> Option<&Underlay> {
        self.inner.underlay.as_ref()
    }

    pub fn prefix(&self) -> &str {
        self.inner.names.prefix()
    }

    /// Makes the flood list of the VXLAN segment `broadcast_uri` of `zone`
    /// exactly `remote_vteps` (head-end replication: one static all-zero FDB
    /// entry per VTEP), creating the segment's bridge and device when
    /// missing. A host without an underlay accepts only an empty list.
    pub async fn set_flood_list(
        &self,
        zone: &Uuid,
        broadcast_uri: &str,
        remote_vteps: &[std::net::Ipv4Addr],
    ) -> Result<(), NetnsError> {
        let segment = Segment::from_uri(Some(broadcast_uri))?;
        let Some((device, _)) = segment.vxlan_device() else {
            return Err(NetnsError::Invalid(format!(
                "{broadcast_uri:?} is not a VXLAN segment: only VXLAN segments have a flood list"
            )));
        };
        let vtep = self.inner.vtep();
        if vtep.is_none() && !remote_vteps.is_empty() {
            return Err(NetnsError::Invalid(
                "this host has no underlay (--underlay-address): its VXLAN segments stay local"
                    .into(),
            ));
        }
        if let Some(v) = vtep
            && remote_vteps.contains(&v.local)
        {
            return Err(NetnsError::Invalid(format!(
                "{} is this host's own VTEP, not a remote one",
                v.local
            )));
        }
        let _topology = self.inner.topology.lock().await;
        let zone_ns = self.inner.ensure_zone(zone).await?;
        let links = ip::links(&zone_ns).await?;
        ip::apply(&links::ensure_segment(&zone_ns, &links, segment, vtep)).await?;
        let current = ip::fdb(&zone_ns, &device).await?;
        ip::apply(&links::flood_list(
            &zone_ns,
            &device,
            &current,
            remote_vteps,
        ))
        .await
    }

    /// The flood list of the VXLAN segment `broadcast_uri` of `zone`
    /// (sorted), empty when the segment is not here.
    pub async fn flood_list(
        &self,
        zone: &Uuid,
        broadcast_uri: &str,
    ) -> Result<Vec<String>, NetnsError> {
        let segment = Segment::from_uri(Some(broadcast_uri))?;
        let Some((device, _)) = segment.vxlan_device() else {
            return Ok(Vec::new());
        };
        let zone_ns = self.zone_ns(zone);
        let links = ip::links_if_exists(&zone_ns).await?;
        if !links.iter().any(|l| l.name == device) {
            return Ok(Vec::new());
        }
        Ok(links::flood_targets(&ip::fdb(&zone_ns, &device).await?))
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

    /// The namespaces of the routers and VMs this driver started (or is
    /// starting) and of their zones: a sweep from records written after a
    /// start returns must keep them.
    pub fn held_namespaces(&self) -> Vec<String> {
        let state = self.inner.state();
        let names = &self.inner.names;
        let mut held: Vec<String> = state
            .routers
            .values()
            .flat_map(|r| [names.router_ns(&r.name), names.zone_ns(&r.zone_id)])
            .chain(
                state
                    .vms
                    .values()
                    .flat_map(|v| [names.vm_ns(&v.instance_name), names.zone_ns(&v.zone_id)]),
            )
            .collect();
        held.sort();
        held.dedup();
        held
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
    /// The host's VTEP, with an underlay.
    fn vtep(&self) -> Option<Vtep> {
        self.underlay.as_ref().map(Underlay::vtep)
    }

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

    fn start_router_standby<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<AgentEndpoint, DriverError>> {
        Box::pin(async move { Ok(self.inner.start_router_standby(router).await?) })
    }

    fn activate_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move { Ok(self.inner.activate_router(router).await?) })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_underlay_needs_a_host_address_a_carrying_mtu_and_a_namespace_name() {
        let net = |s: &str| s.parse::<ipnet::Ipv4Net>().unwrap();
        let u = Underlay::new(net("10.250.0.2/24"), 9000, "fabric").unwrap();
        assert_eq!(
            u.vtep(),
            Vtep {
                local: std::net::Ipv4Addr::new(10, 250, 0, 2),
                mtu: 8950
            }
        );
        for (address, mtu, ns) in [
            ("10.250.0.0/24", 1500, "fabric"),
            ("10.250.0.255/24", 1500, "fabric"),
            ("127.0.0.1/8", 1500, "fabric"),
            ("10.250.0.2/32", 1500, "fabric"),
            ("10.250.0.2/24", 117, "fabric"),
            ("10.250.0.2/24", 70000, "fabric"),
            ("10.250.0.2/24", 1500, ""),
            ("10.250.0.2/24", 1500, "../x"),
        ] {
            assert!(
                Underlay::new(net(address), mtu, ns).is_err(),
                "{address} {mtu} {ns}"
            );
        }
        assert!(Underlay::new(net("10.250.0.2/24"), UNDERLAY_MTU_MIN, "h.fab_1").is_ok());
    }
}
