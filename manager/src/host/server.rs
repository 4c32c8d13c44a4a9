//! The host agent's gRPC service: `vpc.host.v1.HostAgent` over the netns
//! driver, with `grpc.health.v1` and reflection beside it (as the router
//! agent serves them), on a Unix socket or on TCP with mutual TLS.
//!
//! Every request is decoded and checked first ([`super::convert`]): a field
//! the driver could not use is refused with INVALID_ARGUMENT naming it, and
//! nothing runs. A driver failure is INTERNAL with the driver's own text,
//! which the manager's client turns back into the same driver error.
//!
//! Kept whole because the `HostAgentRpc` handlers and the router and VM records they keep are one
//! service; a fifth is its tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tonic::{Request, Response, Status};
use vpc_proto::host::v1 as pb;
use vpc_proto::host::v1::host_agent_server::{HostAgent as HostAgentRpc, HostAgentServer};

use super::convert::{self, FieldError};
use super::views::Views;
use crate::driver::NetnsDriver;
use crate::orchestration::RouterDriver;
use crate::orchestration::agent::DriverError;
use crate::orchestration::model::{RouterView, VmView};

/// The file name of the host agent's socket in the data directory (the
/// embedded default, `vpc-manager serve`).
pub const SOCKET_FILE: &str = "host-agent.sock";

/// The host agent: the routers and VMs of this host, run by the netns
/// driver, with a record of each on disk for a later start.
#[derive(Clone)]
pub struct HostAgent {
    driver: NetnsDriver,
    /// The name `Describe` reports (`--host-name`); None: the hostname.
    name: Option<Arc<str>>,
    views: Views,
    /// Serializes record updates (a NIC plug reads, changes and writes
    /// the router's record).
    records: Arc<tokio::sync::Mutex<()>>,
    /// Routers' TLS material the manager sent with StartRouter.
    router_tls: Arc<RouterTlsBook>,
}

/// The routers' TLS material managers sent with StartRouter, by router
/// name: what an enrolled host agent (no CA key) starts TCP agents with.
/// Kept in memory only; a restarted agent process reuses the files
/// written at its start, a new start comes with new material.
#[derive(Default)]
pub struct RouterTlsBook {
    by_router: std::sync::Mutex<std::collections::HashMap<String, (String, String, String)>>,
}

impl RouterTlsBook {
    fn set(&self, router: &str, tls: pb::RouterTls) {
        self.by_router
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(router.to_string(), (tls.cert_pem, tls.key_pem, tls.ca_pem));
    }

    /// The driver's [`crate::driver::TlsProvider`]: what a manager sent
    /// for the router, else what `fallback` (the CA this host agent holds)
    /// issues, else an error.
    pub fn provider(
        self: &Arc<Self>,
        fallback: Option<crate::driver::TlsProvider>,
    ) -> crate::driver::TlsProvider {
        let book = self.clone();
        Arc::new(move |router: &str| {
            let sent = book
                .by_router
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(router)
                .cloned();
            match (sent, &fallback) {
                (Some(tls), _) => Ok(tls),
                (None, Some(issue)) => issue(router),
                (None, None) => anyhow::bail!(
                    "no TLS material for router {router}: this host agent holds no CA, and \
                     StartRouter brought none"
                ),
            }
        })
    }
}

/// What a starting host agent took back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Routers whose agent ran and is supervised again.
    pub routers: usize,
    /// Routers recorded but without a live agent (left to the manager).
    pub broken_routers: usize,
    pub vms: usize,
}

fn invalid(e: FieldError) -> Status {
    Status::invalid_argument(e.to_string())
}

fn failed(e: DriverError) -> Status {
    Status::internal(e.0)
}

fn record_failed(what: &str, e: std::io::Error) -> Status {
    Status::internal(format!("recording {what} on the host: {e}"))
}

impl HostAgent {
    /// A host agent over `driver`, its records in `<data_dir>/host`.
    pub fn new(driver: NetnsDriver, data_dir: &Path) -> HostAgent {
        HostAgent {
            driver,
            name: None,
            views: Views::new(data_dir),
            records: Arc::default(),
            router_tls: Arc::default(),
        }
    }

    /// Keeps the routers' TLS material StartRouter brings in `book` (the
    /// one the driver's TLS provider reads, [`RouterTlsBook::provider`]).
    pub fn with_router_tls(mut self, book: Arc<RouterTlsBook>) -> HostAgent {
        self.router_tls = book;
        self
    }

    /// Reports `name` as the host's name instead of the hostname.
    pub fn with_name(mut self, name: Option<String>) -> HostAgent {
        self.name = name.filter(|n| !n.is_empty()).map(Arc::from);
        self
    }

    /// What `Describe` answers.
    pub fn describe(&self) -> pb::DescribeResponse {
        let facts = super::describe::host_facts();
        let underlay = self.driver.underlay();
        pb::DescribeResponse {
            name: self
                .name
                .as_deref()
                .map_or_else(super::describe::hostname, String::from),
            hypervisor: self.driver.hypervisor().to_string(),
            underlay_address: underlay
                .map(|u| u.address.addr().to_string())
                .unwrap_or_default(),
            // Without an underlay nothing leaves the host: its segments'
            // limit is the default Ethernet MTU.
            underlay_mtu: underlay.map_or(1500, |u| u.mtu),
            version: env!("CARGO_PKG_VERSION").to_string(),
            prefix: self.driver.prefix().to_string(),
            cpus: facts.cpus,
            memory_total_bytes: facts.memory_total_bytes,
            memory_available_bytes: facts.memory_available_bytes,
        }
    }

    /// The namespaces its records hold: each recorded router's and VM's,
    /// and the zone namespace of each (a zone stays while a record uses
    /// it, even when the record's own namespace is gone).
    pub fn recorded_namespaces(&self) -> Vec<String> {
        let mut known = Vec::new();
        let zone = |text: &str| text.parse::<uuid::Uuid>().ok();
        for r in self.views.routers() {
            known.push(self.driver.router_ns(&r.name));
            if let Some(z) = zone(&r.zone_id) {
                known.push(self.driver.zone_ns(&z));
            }
        }
        for v in self.views.vms() {
            known.push(self.driver.vm_ns(&v.instance_name));
            if let Some(z) = zone(&v.zone_id) {
                known.push(self.driver.zone_ns(&z));
            }
        }
        known.sort();
        known.dedup();
        known
    }

    /// One sweep of a standalone host agent: removes the namespaces of its
    /// prefix that none of its records holds (with their processes, the
    /// bridges left without ports and the files), forgets the records whose
    /// namespace went, and returns the namespaces removed.
    pub async fn sweep(&self) -> Vec<String> {
        // A start records its router or VM only once the driver returns:
        // what the driver holds (started or starting) is kept too.
        let mut known = {
            let _records = self.records.lock().await;
            self.recorded_namespaces()
        };
        known.extend(self.driver.held_namespaces());
        let removed = self.driver.sweep(&known).await;
        self.forget(&removed);
        removed
    }

    /// The driver it runs routers and VMs with.
    pub fn driver(&self) -> &NetnsDriver {
        &self.driver
    }

    /// Takes the routers and VMs of an earlier run back: each one recorded
    /// whose namespace exists and whose processes run is supervised again
    /// (a router started in standby and not activated stays in standby);
    /// a router without a live agent is left as it is and reported broken
    /// in the inventory (the manager starts it again).
    pub async fn recover(&self) -> Recovered {
        let mut recovered = Recovered::default();
        for record in self.views.routers() {
            let view = match convert::router_from_proto("router", Some(&record)) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(router = %record.name, error = %e, "host agent: bad record");
                    continue;
                }
            };
            let standby = self.views.is_standby(&view.name);
            match self.driver.adopt_router(&view, standby).await {
                Ok(Some(_)) => recovered.routers += 1,
                Ok(None) => recovered.broken_routers += 1,
                Err(e) => {
                    recovered.broken_routers += 1;
                    tracing::warn!(router = %view.name, error = %e, "host agent: router not taken back");
                }
            }
        }
        for record in self.views.vms() {
            let view = match convert::vm_from_proto("vm", Some(&record)) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(vm = %record.instance_name, error = %e, "host agent: bad record");
                    continue;
                }
            };
            match self.driver.adopt_vm(&view).await {
                Ok(true) => recovered.vms += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(vm = %view.instance_name, error = %e, "host agent: VM not taken back")
                }
            }
        }
        recovered
    }

    /// Drops the records of routers and VMs whose namespaces the sweeper
    /// removed (they are no longer anyone's), so the inventory stops
    /// listing them.
    pub fn forget(&self, namespaces: &[String]) {
        let prefix = self.driver.prefix();
        for name in namespaces.iter().filter_map(|ns| ns.strip_prefix(prefix)) {
            if crate::driver::netns::names::check_object_name("router", name).is_err() {
                continue;
            }
            for removed in [self.views.remove_router(name), self.views.remove_vm(name)] {
                if let Err(e) = removed {
                    tracing::warn!(name, error = %e, "host agent: record not removed");
                }
            }
        }
    }

    /// The routers and VMs recorded here, with their state.
    pub fn inventory(&self) -> pb::InventoryResponse {
        let routers = self
            .views
            .routers()
            .into_iter()
            .filter_map(|record| {
                let view = convert::router_from_proto("router", Some(&record)).ok()?;
                let pid = self.driver.agent_pid(&view.name).unwrap_or(0);
                let running = self.driver.router_running(&view.name);
                Some(pb::RouterEntry {
                    state: if running {
                        pb::RunState::Running
                    } else {
                        pb::RunState::Broken
                    } as i32,
                    agent_endpoint: self
                        .driver
                        .agent_endpoint(&view)
                        .map(|e| e.to_text())
                        .unwrap_or_default(),
                    agent_pid: if running { pid } else { 0 },
                    name: view.name,
                })
            })
            .collect();
        let vms = self
            .views
            .vms()
            .into_iter()
            .filter_map(|record| {
                let view = convert::vm_from_proto("vm", Some(&record)).ok()?;
                Some(pb::VmEntry {
                    state: if self.driver.vm_running(&view) {
                        pb::RunState::Running
                    } else {
                        pb::RunState::Broken
                    } as i32,
                    instance_name: view.instance_name,
                })
            })
            .collect();
        pb::InventoryResponse {
            prefix: self.driver.prefix().to_string(),
            routers,
            vms,
        }
    }

    /// The router of a stop or destroy, checked, and its record removed
    /// first: a router half stopped is not taken back at the next start (the
    /// sweeper removes what it left).
    async fn forget_router(&self, r: pb::RouterRequest) -> Result<RouterView, Status> {
        let view = convert::router_from_proto("router", r.router.as_ref()).map_err(invalid)?;
        let _records = self.records.lock().await;
        self.views
            .remove_router(&view.name)
            .map_err(|e| record_failed("the router", e))?;
        Ok(view)
    }

    /// The VM of a stop or destroy, checked, and its record removed first
    /// (as [`Self::forget_router`]).
    async fn forget_vm(&self, r: pb::VmRequest) -> Result<VmView, Status> {
        let view = convert::vm_from_proto("vm", r.vm.as_ref()).map_err(invalid)?;
        let _records = self.records.lock().await;
        self.views
            .remove_vm(&view.instance_name)
            .map_err(|e| record_failed("the VM", e))?;
        Ok(view)
    }

    /// Plugs (`plug`) or unplugs the NIC of a router, then records the
    /// router with the NIC put in or taken out.
    async fn change_nic(
        &self,
        r: pb::NicRequest,
        plug: bool,
    ) -> Result<Response<pb::Done>, Status> {
        let view = convert::router_from_proto("router", r.router.as_ref()).map_err(invalid)?;
        let nic = convert::router_nic_from_proto("nic", r.nic.as_ref()).map_err(invalid)?;
        if plug {
            self.driver.plug_nic(&view, &nic).await
        } else {
            self.driver.unplug_nic(&view, &nic).await
        }
        .map_err(failed)?;
        if let (Some(router), Some(nic)) = (&r.router, &r.nic) {
            self.update_nic(router, nic, plug).await;
        }
        Ok(Response::new(pb::Done {}))
    }

    /// The router's record with `nic` put in (same device index or MAC
    /// replaced) or taken out.
    async fn update_nic(&self, router: &pb::Router, nic: &pb::RouterNic, plug: bool) {
        let _records = self.records.lock().await;
        let Some(mut record) = self.views.router(&router.name) else {
            return;
        };
        record.nics.retain(|n| {
            !n.mac_address.eq_ignore_ascii_case(&nic.mac_address)
                && n.device_index != nic.device_index
        });
        if plug {
            record.nics.push(nic.clone());
        }
        if let Err(e) = self.views.save_router(&record) {
            tracing::warn!(router = %router.name, error = %e, "host agent: NIC not recorded");
        }
    }
}

#[tonic::async_trait]
impl HostAgentRpc for HostAgent {
    async fn start_router(
        &self,
        request: Request<pb::StartRouterRequest>,
    ) -> Result<Response<pb::StartRouterResponse>, Status> {
        let r = request.into_inner();
        let view = convert::router_from_proto("router", r.router.as_ref()).map_err(invalid)?;
        if let Some(tls) = r.tls {
            for (field, pem) in [
                ("tls.cert_pem", &tls.cert_pem),
                ("tls.key_pem", &tls.key_pem),
                ("tls.ca_pem", &tls.ca_pem),
            ] {
                if !pem.trim_start().starts_with("-----BEGIN ") {
                    return Err(Status::invalid_argument(format!("{field}: not a PEM text")));
                }
            }
            self.router_tls.set(&view.name, tls);
        }
        // The standby mark is written before anything runs: a host agent
        // that dies meanwhile takes the router back as it was asked for.
        self.views
            .set_standby(&view.name, r.standby)
            .map_err(|e| record_failed("the router's standby", e))?;
        let endpoint = if r.standby {
            self.driver.start_router_standby(&view).await
        } else {
            self.driver.start_router(&view).await
        }
        .map_err(failed)?;
        let record = convert::router_to_proto(&view);
        {
            let _records = self.records.lock().await;
            self.views
                .save_router(&record)
                .map_err(|e| record_failed("the router", e))?;
        }
        Ok(Response::new(pb::StartRouterResponse {
            agent_endpoint: endpoint.to_text(),
        }))
    }

    async fn activate_router(
        &self,
        request: Request<pb::RouterRequest>,
    ) -> Result<Response<pb::Done>, Status> {
        let r = request.into_inner();
        let view = convert::router_from_proto("router", r.router.as_ref()).map_err(invalid)?;
        // Cleared first: once asked to serve, a restart must not take the
        // router back off its segments.
        self.views
            .set_standby(&view.name, false)
            .map_err(|e| record_failed("the router's standby", e))?;
        self.driver.activate_router(&view).await.map_err(failed)?;
        Ok(Response::new(pb::Done {}))
    }

    async fn stop_router(
        &self,
        request: Request<pb::RouterRequest>,
    ) -> Result<Response<pb::Done>, Status> {
        let view = self.forget_router(request.into_inner()).await?;
        self.driver.stop_router(&view).await.map_err(failed)?;
        Ok(Response::new(pb::Done {}))
    }

    async fn destroy_router(
        &self,
        request: Request<pb::RouterRequest>,
    ) -> Result<Response<pb::Done>, Status> {
        let view = self.forget_router(request.into_inner()).await?;
        self.driver.destroy_router(&view).await.map_err(failed)?;
        Ok(Response::new(pb::Done {}))
    }

    async fn plug_nic(
        &self,
        request: Request<pb::NicRequest>,
    ) -> Result<Response<pb::Done>, Status> {
        self.change_nic(request.into_inner(), true).await
    }

    async fn unplug_nic(
        &self,
        request: Request<pb::NicRequest>,
    ) -> Result<Response<pb::Done>, Status> {
        self.change_nic(request.into_inner(), false).await
    }

    async fn start_vm(
        &self,
        request: Request<pb::VmRequest>,
    ) -> Result<Response<pb::Done>, Status> {
        let r = request.into_inner();
        let view = convert::vm_from_proto("vm", r.vm.as_ref()).map_err(invalid)?;
        self.driver.start_vm(&view).await.map_err(failed)?;
        self.views
            .save_vm(&convert::vm_to_proto(&view))
            .map_err(|e| record_failed("the VM", e))?;
        Ok(Response::new(pb::Done {}))
    }

    async fn stop_vm(&self, request: Request<pb::VmRequest>) -> Result<Response<pb::Done>, Status> {
        let view = self.forget_vm(request.into_inner()).await?;
        self.driver.stop_vm(&view).await.map_err(failed)?;
        Ok(Response::new(pb::Done {}))
    }

    async fn destroy_vm(
        &self,
        request: Request<pb::VmRequest>,
    ) -> Result<Response<pb::Done>, Status> {
        let view = self.forget_vm(request.into_inner()).await?;
        self.driver.destroy_vm(&view).await.map_err(failed)?;
        Ok(Response::new(pb::Done {}))
    }

    async fn inventory(
        &self,
        _request: Request<pb::InventoryRequest>,
    ) -> Result<Response<pb::InventoryResponse>, Status> {
        Ok(Response::new(HostAgent::inventory(self)))
    }

    async fn describe(
        &self,
        _request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        Ok(Response::new(HostAgent::describe(self)))
    }

    type RelayRouterAgentStream = super::relay::Inbound;

    async fn relay_router_agent(
        &self,
        request: Request<tonic::Streaming<pb::RelayChunk>>,
    ) -> Result<Response<Self::RelayRouterAgentStream>, Status> {
        use tokio::io::AsyncWriteExt;
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("router: the first chunk names the router"))?;
        // Only a router this host runs, and only its agent's socket as the
        // host agent recorded it: the name never becomes a path here.
        let running = pb::RunState::Running as i32;
        let entry = self
            .inventory()
            .routers
            .into_iter()
            .find(|r| r.name == first.router && r.state == running)
            .ok_or_else(|| {
                Status::not_found(format!("router: {:?} does not run here", first.router))
            })?;
        let path = entry
            .agent_endpoint
            .strip_prefix("unix://")
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "router {}: its agent is not on a Unix socket ({})",
                    entry.name, entry.agent_endpoint
                ))
            })?;
        let mut socket = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|e| Status::unavailable(format!("router {}'s agent: {e}", entry.name)))?;
        if !first.data.is_empty() {
            socket
                .write_all(&first.data)
                .await
                .map_err(|e| Status::unavailable(format!("router {}'s agent: {e}", entry.name)))?;
        }
        let (out, rx) = tokio::sync::mpsc::channel(16);
        super::relay::pump(socket, Box::pin(inbound), out);
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn check_neighbour(
        &self,
        request: Request<pb::CheckNeighbourRequest>,
    ) -> Result<Response<pb::CheckNeighbourResponse>, Status> {
        let underlay = self.driver.underlay();
        let check = super::neighbour::check_request(
            &request.into_inner(),
            underlay.map(|u| u.address.addr()),
        )
        .map_err(invalid)?;
        let no_vantage = || {
            Response::new(pb::CheckNeighbourResponse {
                sight: pb::NeighbourSight::NoVantage as i32,
                elapsed_ms: 0,
            })
        };
        // Without an underlay, or with nothing of the zone here, this host
        // has no end on the zone's underlay to look from.
        if underlay.is_none() {
            return Ok(no_vantage());
        }
        let ns = self.driver.zone_ns(&check.zone_id);
        if !crate::driver::netns::names::netns_exists(&ns) {
            return Ok(no_vantage());
        }
        let (reached, took) = super::neighbour::probe(&ns, check.address, check.deadline)
            .await
            .map_err(Status::internal)?;
        Ok(Response::new(pb::CheckNeighbourResponse {
            sight: if reached {
                pb::NeighbourSight::Reached
            } else {
                pb::NeighbourSight::Unreached
            } as i32,
            elapsed_ms: u32::try_from(took.as_millis()).unwrap_or(u32::MAX),
        }))
    }

    async fn set_flood_list(
        &self,
        request: Request<pb::FloodListRequest>,
    ) -> Result<Response<pb::Done>, Status> {
        let r = convert::flood_list_from_proto(&request.into_inner()).map_err(invalid)?;
        match self.driver.underlay() {
            None if !r.remote_vteps.is_empty() => {
                return Err(Status::failed_precondition(
                    "this host has no underlay (--underlay-address): its VXLAN segments stay local",
                ));
            }
            Some(u) if r.remote_vteps.contains(&u.address.addr()) => {
                return Err(Status::invalid_argument(format!(
                    "remote_vteps: {} is this host's own underlay address",
                    u.address.addr()
                )));
            }
            _ => {}
        }
        self.driver
            .set_flood_list(&r.zone_id, &r.broadcast_uri, &r.remote_vteps)
            .await
            .map_err(|e| failed(e.into()))?;
        Ok(Response::new(pb::Done {}))
    }
}

/// Admits a call only from the manager's client certificate (on TCP with
/// mutual TLS): the CA signs routers' and host agents' certificates too,
/// and none of those may drive a host. `None` admits every caller (a Unix
/// socket, guarded by its file mode).
#[derive(Clone)]
pub struct ManagerOnly {
    /// The DER of the manager's client certificate.
    pub allowed: Option<Arc<Vec<u8>>>,
}

impl tonic::service::Interceptor for ManagerOnly {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(allowed) = &self.allowed else {
            return Ok(request);
        };
        let presented = request.peer_certs();
        let leaf = presented.as_ref().and_then(|certs| certs.first());
        match leaf {
            Some(cert) if cert.as_ref() == allowed.as_slice() => Ok(request),
            _ => {
                tracing::warn!(
                    peer = ?request.remote_addr(),
                    "host agent: a client other than the manager was refused"
                );
                Err(Status::permission_denied(
                    "only the manager's client certificate may drive this host agent",
                ))
            }
        }
    }
}

/// The host agent's gRPC router type.
pub type GrpcRouter = tonic::transport::server::Router<
    tower::layer::util::Stack<
        tonic::service::InterceptorLayer<ManagerOnly>,
        tower::layer::util::Identity,
    >,
>;

/// The gRPC router of a host agent: the service, health (SERVING for as
/// long as it runs) and reflection v1 and v1alpha (for older grpcurl),
/// each behind `check`; with `tls`, served over mutual TLS.
pub async fn grpc_router(
    agent: HostAgent,
    check: ManagerOnly,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> anyhow::Result<GrpcRouter> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<HostAgentServer<HostAgent>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vpc_proto::HOST_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vpc_proto::HOST_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).context("the host agent's TLS")?;
    }
    Ok(builder
        .layer(tonic::service::InterceptorLayer::new(check))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(HostAgentServer::new(agent)))
}

/// Binds `path` for root only (mode 0600): bound under a temporary name,
/// restricted, renamed into place, so it is never reachable with the
/// umask's mode. A socket file left by an earlier run is replaced.
pub fn bind_unix(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".binding");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp)
        .with_context(|| format!("binding {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("moving {} to {}", tmp.display(), path.display()))?;
    Ok(listener)
}

/// Serves the host agent on a bound Unix socket until `shutdown` resolves.
pub async fn serve_unix(
    agent: HostAgent,
    listener: tokio::net::UnixListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    grpc_router(agent, ManagerOnly { allowed: None }, None)
        .await?
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::UnixListenerStream::new(listener),
            shutdown,
        )
        .await?;
    Ok(())
}

/// Serves the host agent on TCP `addr` with mutual TLS until `shutdown`
/// resolves: `tls` is its certificate and the CA its clients must chain
/// to, `manager` the DER of the one client certificate it admits (see
/// [`super::tls::server_tls`] and [`super::enroll::HostIdentity::server_tls`]).
pub async fn serve_tcp(
    agent: HostAgent,
    addr: std::net::SocketAddr,
    (tls, manager): (tonic::transport::ServerTlsConfig, Vec<u8>),
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let check = ManagerOnly {
        allowed: Some(Arc::new(manager)),
    };
    grpc_router(agent, check, Some(tls))
        .await?
        .serve_with_shutdown(addr, shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::AgentTransport;

    #[test]
    fn a_recorded_router_without_its_namespace_is_broken_until_the_sweeper_forgets_it() {
        let dir = tempfile::tempdir().unwrap();
        let driver = NetnsDriver::new(
            "hst-",
            dir.path(),
            crate::driver::default_agent_path(),
            AgentTransport::Unix,
            Arc::default(),
            None,
        )
        .unwrap();
        let agent = HostAgent::new(driver, dir.path());
        let router = pb::Router {
            id: uuid::Uuid::from_u128(1).to_string(),
            name: "r-5-VM".into(),
            zone_id: uuid::Uuid::from_u128(2).to_string(),
            ..Default::default()
        };
        Views::new(dir.path()).save_router(&router).unwrap();
        let inventory = agent.inventory();
        assert_eq!(inventory.prefix, "hst-");
        assert_eq!(inventory.routers.len(), 1);
        assert_eq!(inventory.routers[0].state, pb::RunState::Broken as i32);
        assert_eq!(inventory.routers[0].agent_pid, 0);
        assert!(
            inventory.routers[0]
                .agent_endpoint
                .ends_with("/routers/r-5-VM/agent.sock"),
            "{:?}",
            inventory.routers[0]
        );
        agent.forget(&["other-r-5-VM".into(), "hst-zone-00000000".into()]);
        assert_eq!(agent.inventory().routers.len(), 1, "not its namespace");
        agent.forget(&["hst-r-5-VM".into()]);
        assert!(agent.inventory().routers.is_empty());
    }

    #[test]
    fn routers_tls_is_what_the_manager_sent_else_the_host_agents_ca_else_refused() {
        let sent = |cert: &str| pb::RouterTls {
            cert_pem: cert.into(),
            key_pem: "k".into(),
            ca_pem: "c".into(),
        };
        let book = Arc::new(RouterTlsBook::default());
        let no_ca = book.provider(None);
        let err = no_ca("r-1-VM").unwrap_err().to_string();
        assert!(err.contains("no TLS material for router r-1-VM"), "{err}");
        book.set("r-1-VM", sent("from the manager"));
        assert_eq!(no_ca("r-1-VM").unwrap().0, "from the manager");
        let fallback: crate::driver::TlsProvider =
            Arc::new(|r: &str| Ok((format!("issued for {r}"), "k".into(), "c".into())));
        let with_ca = book.provider(Some(fallback));
        assert_eq!(with_ca("r-1-VM").unwrap().0, "from the manager");
        assert_eq!(with_ca("r-2-VM").unwrap().0, "issued for r-2-VM");
    }

    #[tokio::test]
    async fn start_router_refuses_tls_material_that_is_no_pem_before_acting() {
        let dir = tempfile::tempdir().unwrap();
        let book = Arc::new(RouterTlsBook::default());
        let driver = NetnsDriver::new(
            "hsp-",
            dir.path(),
            crate::driver::default_agent_path(),
            AgentTransport::Tcp,
            Arc::default(),
            Some(book.provider(None)),
        )
        .unwrap();
        let agent = HostAgent::new(driver, dir.path()).with_router_tls(book.clone());
        let refused = HostAgentRpc::start_router(
            &agent,
            Request::new(pb::StartRouterRequest {
                router: Some(pb::Router {
                    id: uuid::Uuid::from_u128(1).to_string(),
                    name: "r-9-VM".into(),
                    zone_id: uuid::Uuid::from_u128(2).to_string(),
                    ..Default::default()
                }),
                tls: Some(pb::RouterTls {
                    cert_pem: "-----BEGIN CERTIFICATE-----".into(),
                    key_pem: "rm -rf /".into(),
                    ca_pem: "-----BEGIN CERTIFICATE-----".into(),
                }),
                standby: false,
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert_eq!(refused.message(), "tls.key_pem: not a PEM text");
        assert!(!std::path::Path::new("/run/netns/hsp-r-9-VM").exists());
        assert!(book.provider(None)("r-9-VM").is_err(), "nothing kept");
    }

    #[tokio::test]
    async fn a_host_without_underlay_describes_itself_and_refuses_remote_vteps_before_acting() {
        let dir = tempfile::tempdir().unwrap();
        let driver = NetnsDriver::new(
            "hsu-",
            dir.path(),
            crate::driver::default_agent_path(),
            AgentTransport::Unix,
            Arc::default(),
            None,
        )
        .unwrap();
        let agent = HostAgent::new(driver, dir.path()).with_name(Some("rack1-07".into()));
        let described = HostAgentRpc::describe(&agent, Request::new(pb::DescribeRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(described.name, "rack1-07");
        assert_eq!(described.hypervisor, "netns");
        assert_eq!(described.prefix, "hsu-");
        assert_eq!(described.underlay_address, "");
        assert_eq!(described.underlay_mtu, 1500);
        assert_eq!(described.version, env!("CARGO_PKG_VERSION"));
        assert!(described.cpus >= 1);
        assert!(described.memory_total_bytes >= described.memory_available_bytes);
        assert!(described.memory_available_bytes > 0);

        let zone = uuid::Uuid::from_u128(0x5eed);
        let refused = HostAgentRpc::set_flood_list(
            &agent,
            Request::new(pb::FloodListRequest {
                zone_id: zone.to_string(),
                broadcast_uri: "vxlan://5000".into(),
                remote_vteps: vec!["10.250.0.2".into()],
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        let bad = HostAgentRpc::set_flood_list(
            &agent,
            Request::new(pb::FloodListRequest {
                zone_id: zone.to_string(),
                broadcast_uri: "vlan://100".into(),
                remote_vteps: vec![],
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert!(
            bad.message().starts_with("broadcast_uri: "),
            "{}",
            bad.message()
        );
        // Nothing ran: no zone namespace.
        assert!(!std::path::Path::new("/run/netns/hsu-zone-00000000").exists());

        // Asked about a neighbour: a field that is no address is refused;
        // with no underlay it has nothing to look from.
        let ask = |address: &str| {
            HostAgentRpc::check_neighbour(
                &agent,
                Request::new(pb::CheckNeighbourRequest {
                    zone_id: zone.to_string(),
                    underlay_address: address.into(),
                    deadline_ms: 1000,
                }),
            )
        };
        let bad = ask("10.250.0.1 -f").await.unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert!(
            bad.message().starts_with("underlay_address: "),
            "{}",
            bad.message()
        );
        let blind = ask("10.250.0.1").await.unwrap().into_inner();
        assert_eq!(blind.sight(), pb::NeighbourSight::NoVantage);
    }
}
