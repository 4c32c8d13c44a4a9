//! [`HostDriver`]: the manager's [`RouterDriver`] that drives a host agent
//! over gRPC. The host agent's refusals and failures come back as the same
//! [`DriverError`] text the driver gave there, so API errors read as they
//! did when the manager ran the driver itself.
//!
//! Kept whole because it is the one `RouterDriver` over a host agent: one short RPC per driver
//! method; a sixth is tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::Code;
use tonic::transport::{Channel, Endpoint, Uri};
use vpc_proto::host::v1 as pb;
use vpc_proto::host::v1::host_agent_client::HostAgentClient;

use super::convert;
use crate::future::BoxFuture;
use crate::orchestration::agent::{
    AgentEndpoint, DriverError, Endpoints, FloodListView, HostInventory, RouterDriver,
};
use crate::orchestration::model::{RouterNicView, RouterView, VmView};

/// How long a connection to the host agent may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`RouterDriver`] whose routers and VMs run on a host agent.
#[derive(Clone)]
pub struct HostDriver {
    client: HostAgentClient<Channel>,
    /// The host agent's address, for errors (`unix:///…/host-agent.sock`).
    target: String,
    /// The manager's book of router endpoints, kept current on start/stop.
    endpoints: Arc<Endpoints>,
    /// Issues a router's TLS material to send with StartRouter (host
    /// agents reached over mutual TLS).
    router_tls: Option<crate::driver::TlsProvider>,
    /// The host agent's `host:port` when its routers' Unix sockets are out
    /// of this manager's reach: their agents are reached through it.
    relay: Option<String>,
}

impl HostDriver {
    /// A driver for the host agent on the Unix socket `path`. The
    /// connection is made at the first call and made again after the host
    /// agent restarts.
    pub fn unix(path: impl Into<PathBuf>, endpoints: Arc<Endpoints>) -> HostDriver {
        let path = path.into();
        let target = format!("unix://{}", path.display());
        let channel = Endpoint::from_static("http://host-agent.local")
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(TokioIo::new)
                }
            }));
        HostDriver::with_channel(channel, target, endpoints)
    }

    /// A driver over an established channel (e.g.
    /// TCP with mutual TLS); `target` names the host agent in errors.
    pub fn with_channel(channel: Channel, target: String, endpoints: Arc<Endpoints>) -> HostDriver {
        HostDriver {
            client: HostAgentClient::new(channel),
            target,
            endpoints,
            router_tls: None,
            relay: None,
        }
    }

    /// Reaches the agents of this host's routers through the host agent at
    /// `host_agent` (`host:port`) instead of their Unix sockets.
    pub fn with_relay(mut self, host_agent: String) -> HostDriver {
        self.relay = Some(host_agent);
        self
    }

    /// `endpoint` as this manager reaches it: a Unix socket of a relayed
    /// host becomes the relay through its host agent.
    fn reachable(&self, router: &str, endpoint: AgentEndpoint) -> AgentEndpoint {
        match (&self.relay, endpoint) {
            (Some(host_agent), AgentEndpoint::UnixSocket(_)) => AgentEndpoint::Relay {
                host_agent: host_agent.clone(),
                router: router.to_string(),
            },
            (_, endpoint) => endpoint,
        }
    }

    /// Sends each router's TLS material from `provider` with StartRouter.
    pub fn with_router_tls(mut self, provider: crate::driver::TlsProvider) -> HostDriver {
        self.router_tls = Some(provider);
        self
    }

    /// The host agent's address.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The routers and VMs the host runs or holds.
    pub async fn inventory(&self) -> Result<pb::InventoryResponse, DriverError> {
        self.client
            .clone()
            .inventory(pb::InventoryRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| self.error(s))
    }

    /// What the host agent says about its host, or None from a host agent
    /// that does not answer `Describe` yet (UNIMPLEMENTED): such a host has
    /// no underlay.
    pub async fn describe(&self) -> Result<Option<pb::DescribeResponse>, DriverError> {
        match self.client.clone().describe(pb::DescribeRequest {}).await {
            Ok(answer) => Ok(Some(answer.into_inner())),
            Err(status) if status.code() == Code::Unimplemented => Ok(None),
            Err(status) => Err(self.error(status)),
        }
    }

    /// Whether this host agent still reaches `address` (another host's
    /// underlay address) from its underlay end in `zone`, probing for
    /// `deadline`. A host agent too old to answer (UNIMPLEMENTED) cannot
    /// tell.
    pub async fn check_neighbour(
        &self,
        zone: uuid::Uuid,
        address: std::net::Ipv4Addr,
        deadline: Duration,
    ) -> Result<pb::NeighbourSight, DriverError> {
        let request = pb::CheckNeighbourRequest {
            zone_id: zone.to_string(),
            underlay_address: address.to_string(),
            deadline_ms: u32::try_from(deadline.as_millis()).unwrap_or(u32::MAX),
        };
        match self.client.clone().check_neighbour(request).await {
            Ok(answer) => Ok(answer.into_inner().sight()),
            Err(status) if status.code() == Code::Unimplemented => {
                Ok(pb::NeighbourSight::NoVantage)
            }
            Err(status) => Err(self.error(status)),
        }
    }

    /// The driver error of a status: the host agent's own text for its
    /// failures, or what kept the call from reaching it.
    fn error(&self, status: tonic::Status) -> DriverError {
        driver_error(&self.target, &status)
    }

    /// An answer without content, its status as the driver's error.
    /// StartRouter (in standby or not); the agent's endpoint goes into the
    /// book.
    async fn start(
        &self,
        router: &RouterView,
        standby: bool,
    ) -> Result<AgentEndpoint, DriverError> {
        let tls = match &self.router_tls {
            Some(issue) => {
                let (cert_pem, key_pem, ca_pem) = issue(&router.name).map_err(|e| {
                    DriverError(format!("issuing {}'s certificate: {e:#}", router.name))
                })?;
                Some(pb::RouterTls {
                    cert_pem,
                    key_pem,
                    ca_pem,
                })
            }
            None => None,
        };
        let reply = self
            .client
            .clone()
            .start_router(pb::StartRouterRequest {
                router: Some(convert::router_to_proto(router)),
                standby,
                tls,
            })
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        let endpoint = AgentEndpoint::from_text(&reply.agent_endpoint).ok_or_else(|| {
            DriverError(format!(
                "the host agent {} answered an unknown agent endpoint {:?}",
                self.target, reply.agent_endpoint
            ))
        })?;
        let endpoint = self.reachable(&router.name, endpoint);
        self.endpoints.set(&router.name, endpoint.clone());
        Ok(endpoint)
    }

    fn done<T>(
        &self,
        answer: Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<(), DriverError> {
        answer.map(|_| ()).map_err(|s| self.error(s))
    }
}

fn router_request(router: &RouterView) -> pb::RouterRequest {
    pb::RouterRequest {
        router: Some(convert::router_to_proto(router)),
    }
}

fn nic_request(router: &RouterView, nic: &RouterNicView) -> pb::NicRequest {
    pb::NicRequest {
        router: Some(convert::router_to_proto(router)),
        nic: Some(convert::router_nic_to_proto(nic)),
    }
}

fn vm_request(vm: &VmView) -> pb::VmRequest {
    pb::VmRequest {
        vm: Some(convert::vm_to_proto(vm)),
    }
}

/// The driver error of a host agent's status: INTERNAL carries the driver's
/// text unchanged; a refused field and an unreachable host agent say so.
pub fn driver_error(target: &str, status: &tonic::Status) -> DriverError {
    match status.code() {
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded => DriverError(format!(
            "the host agent {target} is unreachable: {}",
            status.message()
        )),
        Code::InvalidArgument => DriverError(format!(
            "the host agent refused the request: {}",
            status.message()
        )),
        _ => DriverError(status.message().to_string()),
    }
}

/// What a host agent's inventory says runs: the routers and VMs it reports
/// Running (a broken one is to be started again, like one it lacks).
pub fn running(inventory: &pb::InventoryResponse) -> HostInventory {
    let running = pb::RunState::Running as i32;
    HostInventory {
        routers: inventory
            .routers
            .iter()
            .filter(|r| r.state == running)
            .map(|r| (r.name.clone(), AgentEndpoint::from_text(&r.agent_endpoint)))
            .collect(),
        vms: inventory
            .vms
            .iter()
            .filter(|v| v.state == running)
            .map(|v| v.instance_name.clone())
            .collect(),
    }
}

impl RouterDriver for HostDriver {
    fn hypervisor(&self) -> &'static str {
        // The one host agent there is runs routers as namespaces.
        "netns"
    }

    fn start_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<AgentEndpoint, DriverError>> {
        Box::pin(self.start(router, false))
    }

    fn start_router_standby<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<AgentEndpoint, DriverError>> {
        Box::pin(self.start(router, true))
    }

    fn activate_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.done(
                self.client
                    .clone()
                    .activate_router(router_request(router))
                    .await,
            )
        })
    }

    fn stop_router<'a>(&'a self, router: &'a RouterView) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.endpoints.remove(&router.name);
            self.done(
                self.client
                    .clone()
                    .stop_router(router_request(router))
                    .await,
            )
        })
    }

    fn destroy_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.endpoints.remove(&router.name);
            self.done(
                self.client
                    .clone()
                    .destroy_router(router_request(router))
                    .await,
            )
        })
    }

    fn plug_nic<'a>(
        &'a self,
        router: &'a RouterView,
        nic: &'a RouterNicView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(
            async move { self.done(self.client.clone().plug_nic(nic_request(router, nic)).await) },
        )
    }

    fn unplug_nic<'a>(
        &'a self,
        router: &'a RouterView,
        nic: &'a RouterNicView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.done(
                self.client
                    .clone()
                    .unplug_nic(nic_request(router, nic))
                    .await,
            )
        })
    }

    fn start_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move { self.done(self.client.clone().start_vm(vm_request(vm)).await) })
    }

    fn stop_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move { self.done(self.client.clone().stop_vm(vm_request(vm)).await) })
    }

    fn destroy_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move { self.done(self.client.clone().destroy_vm(vm_request(vm)).await) })
    }

    fn inventory(&self) -> BoxFuture<'_, Result<Option<HostInventory>, DriverError>> {
        Box::pin(async move {
            let mut found = running(&HostDriver::inventory(self).await?);
            for (name, endpoint) in found.routers.iter_mut() {
                *endpoint = endpoint.take().map(|e| self.reachable(name, e));
            }
            Ok(Some(found))
        })
    }

    fn set_flood_list<'a>(
        &'a self,
        _host: Option<&'a str>,
        flood: &'a FloodListView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let request = pb::FloodListRequest {
                zone_id: flood.zone_id.to_string(),
                broadcast_uri: flood.broadcast_uri.clone(),
                remote_vteps: flood.remote_vteps.clone(),
            };
            self.done(self.client.clone().set_flood_list(request).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_routers_and_vms_reported_running_count_as_running() {
        let inventory = pb::InventoryResponse {
            prefix: "vpc-".into(),
            routers: vec![
                pb::RouterEntry {
                    name: "r-1-VM".into(),
                    state: pb::RunState::Running as i32,
                    agent_endpoint: "unix:///d/routers/r-1-VM/agent.sock".into(),
                    agent_pid: 42,
                },
                pb::RouterEntry {
                    name: "r-2-VM".into(),
                    state: pb::RunState::Broken as i32,
                    ..Default::default()
                },
            ],
            vms: vec![
                pb::VmEntry {
                    instance_name: "i-2-3-VM".into(),
                    state: pb::RunState::Running as i32,
                },
                pb::VmEntry {
                    instance_name: "i-2-4-VM".into(),
                    state: pb::RunState::Broken as i32,
                },
            ],
        };
        let running = running(&inventory);
        assert_eq!(
            running.routers.into_iter().collect::<Vec<_>>(),
            [(
                "r-1-VM".to_string(),
                Some(AgentEndpoint::UnixSocket(
                    "/d/routers/r-1-VM/agent.sock".into()
                ))
            )]
        );
        assert_eq!(running.vms.into_iter().collect::<Vec<_>>(), ["i-2-3-VM"]);
    }

    #[test]
    fn the_driver_text_comes_back_unchanged_and_transport_failures_say_so() {
        let text = "router r-1-VM is not running (no namespace vpc-r-1-VM)";
        assert_eq!(
            driver_error("unix:///s", &tonic::Status::internal(text)).0,
            text
        );
        let refused = driver_error(
            "unix:///s",
            &tonic::Status::invalid_argument("router.name: x"),
        );
        assert_eq!(
            refused.0,
            "the host agent refused the request: router.name: x"
        );
        let down = driver_error(
            "unix:///s",
            &tonic::Status::unavailable("connection refused"),
        );
        assert_eq!(
            down.0,
            "the host agent unix:///s is unreachable: connection refused"
        );
    }
}
