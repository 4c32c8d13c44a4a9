//! The agent client the running manager uses: gRPC (`vpc.agent.v1`, tonic)
//! to the `vr-agent` of each router, over the router's Unix socket or over
//! TCP with mutual TLS (DESIGN §1, §4).
//!
//! - The router's endpoint comes from the shared [`Endpoints`] book (the
//!   driver writes it when it starts a router; the manager fills it from the
//!   database at start).
//! - One channel per router is kept and reused; a transport error or a
//!   timeout drops it, so the next call connects afresh.
//! - Each RPC has a deadline ([`ClientSettings::rpc_timeout`], longer for
//!   `ApplyConfig`). Only "cannot reach the agent" is retried, with
//!   exponential backoff, which rides out an agent restart; every agent
//!   request is idempotent for its generation, so a retry is harmless. A
//!   refusal is never retried.
//! - TCP connections are opened by a pluggable [`TcpConnector`]: routers run
//!   in network namespaces, so their addresses are only reachable from
//!   inside (the netns driver provides a connector that enters the
//!   namespace). TLS is layered over whatever stream it returns.

use std::collections::HashMap;
use std::error::Error as _;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};
use tonic::{Code, Status};
use vpc_proto::v1 as pb;
use vpc_proto::v1::virtual_router_client::VirtualRouterClient;

use crate::future::BoxFuture;
use crate::orchestration::agent::{
    AgentClient, AgentCommand, AgentEndpoint, AgentError, AgentReply, Endpoints,
};
use crate::orchestration::model::RouterView;
use crate::pki::ClientIdentity;

/// Opens a TCP connection to a router's agent: (router name, address).
pub type TcpConnector =
    Arc<dyn Fn(&str, SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> + Send + Sync>;

/// A connector that connects from the manager's own network namespace.
pub fn direct_connector() -> TcpConnector {
    Arc::new(|_router: &str, addr: SocketAddr| {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    })
}

/// GetState answers carry the live ruleset; a big router's exceeds tonic's
/// default 4 MiB.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Deadlines and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The deadline of one RPC.
    pub rpc_timeout: Duration,
    /// The deadline of `ApplyConfig`, which rebuilds the whole router.
    pub apply_timeout: Duration,
    /// The deadline of opening a connection (and its TLS handshake).
    pub connect_timeout: Duration,
    /// Tries of an RPC whose agent cannot be reached (1 = no retry).
    pub attempts: u32,
    /// The wait before the first retry; it doubles up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            rpc_timeout: Duration::from_secs(10),
            apply_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            attempts: 5,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl ClientSettings {
    /// The wait before try number `attempt` (2 = the first retry).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(16);
        self.first_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }

    fn timeout_of(&self, command: &AgentCommand) -> Duration {
        match command {
            AgentCommand::ApplyConfig(_) => self.apply_timeout,
            _ => self.rpc_timeout,
        }
    }
}

/// Why one try failed.
enum Failure {
    /// The agent could not be reached; try again.
    Transient(String),
    /// Final.
    Final(AgentError),
}

struct Cached {
    endpoint: AgentEndpoint,
    channel: Channel,
}

/// The gRPC agent client.
pub struct GrpcAgentClient {
    endpoints: Arc<Endpoints>,
    settings: ClientSettings,
    identity: Option<ClientIdentity>,
    connector: TcpConnector,
    channels: Mutex<HashMap<String, Cached>>,
    /// The channels to host agents that relay routers' agents: one per
    /// host agent, shared by all its routers (and with the manager's
    /// calls to it when [`GrpcAgentClient::with_host_channels`] is given).
    hosts: Option<Arc<crate::host::tls::HostChannels>>,
}

impl std::fmt::Debug for GrpcAgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcAgentClient")
            .field("settings", &self.settings)
            .field("tls", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl GrpcAgentClient {
    /// A client of the routers in `endpoints`, with default deadlines and
    /// retries, Unix sockets only until [`GrpcAgentClient::with_tls`].
    pub fn new(endpoints: Arc<Endpoints>) -> Self {
        GrpcAgentClient {
            endpoints,
            settings: ClientSettings::default(),
            identity: None,
            connector: direct_connector(),
            channels: Mutex::new(HashMap::new()),
            hosts: None,
        }
    }

    /// Reaches TCP endpoints with mutual TLS: `identity` is the manager's
    /// client certificate, and routers' certificates must chain to its CA
    /// and name the router ([`crate::pki::Pki::client_identity`]).
    pub fn with_tls(mut self, identity: ClientIdentity) -> Self {
        self.hosts = Some(Arc::new(crate::host::tls::HostChannels::new(
            identity.clone(),
        )));
        self.identity = Some(identity);
        self
    }

    /// Relays routers' agents over `hosts`' channels (the ones the
    /// manager's host driver uses), after [`GrpcAgentClient::with_tls`].
    pub fn with_host_channels(mut self, hosts: Arc<crate::host::tls::HostChannels>) -> Self {
        self.hosts = Some(hosts);
        self
    }

    /// Opens TCP connections with `connector` (e.g. from inside the
    /// router's network namespace) instead of [`direct_connector`].
    pub fn with_connector(mut self, connector: TcpConnector) -> Self {
        self.connector = connector;
        self
    }

    /// Other deadlines and retries.
    pub fn with_settings(mut self, settings: ClientSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The deadlines and retries in force.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the router's channel: the next call connects again.
    pub fn forget(&self, router: &str) {
        self.channels().remove(router);
    }

    /// The cached channel to the router, or a new one to `endpoint`.
    async fn channel(&self, router: &str, endpoint: &AgentEndpoint) -> Result<Channel, Failure> {
        if let Some(cached) = self.channels().get(router)
            && cached.endpoint == *endpoint
        {
            return Ok(cached.channel.clone());
        }
        let channel = self.connect(router, endpoint).await?;
        self.channels().insert(
            router.to_string(),
            Cached {
                endpoint: endpoint.clone(),
                channel: channel.clone(),
            },
        );
        Ok(channel)
    }

    async fn connect(&self, router: &str, endpoint: &AgentEndpoint) -> Result<Channel, Failure> {
        let timeout = self.settings.connect_timeout;
        match endpoint {
            AgentEndpoint::UnixSocket(path) => {
                let socket = path.clone();
                // The URI is a placeholder tonic requires; the connector
                // ignores it.
                Endpoint::from_static("http://agent.local")
                    .connect_timeout(timeout)
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let socket = socket.clone();
                        async move { UnixStream::connect(socket).await.map(TokioIo::new) }
                    }))
                    .await
                    .map_err(|e| {
                        Failure::Transient(format!(
                            "connecting to {}: {}",
                            path.display(),
                            error_chain(&e)
                        ))
                    })
            }
            AgentEndpoint::Relay { host_agent, router } => {
                let Some(hosts) = &self.hosts else {
                    return Err(Failure::Final(AgentError::Unreachable(format!(
                        "the agent is reached through the host agent {host_agent}, which needs \
                         mutual TLS, and the manager has no client certificate"
                    ))));
                };
                // The host agent's one channel: every router it relays is
                // a stream on the same connection.
                let host = hosts.get(&format!("https://{host_agent}")).map_err(|e| {
                    Failure::Final(AgentError::Unreachable(format!(
                        "the host agent {host_agent}: {e:#}"
                    )))
                })?;
                let name = router.clone();
                // As for a Unix socket, the URI is a placeholder.
                Endpoint::from_static("http://agent.local")
                    .connect_timeout(timeout)
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let (host, name) = (host.clone(), name.clone());
                        async move {
                            crate::host::relay::open(host, &name)
                                .await
                                .map(TokioIo::new)
                        }
                    }))
                    .await
                    .map_err(|e| {
                        Failure::Transient(format!(
                            "connecting to {router} through the host agent {host_agent}: {}",
                            error_chain(&e)
                        ))
                    })
            }
            AgentEndpoint::Tcp(addr) => {
                let Some(identity) = &self.identity else {
                    return Err(Failure::Final(AgentError::Unreachable(format!(
                        "the agent listens on TCP {addr}, which needs mutual TLS, and the \
                         manager has no client certificate"
                    ))));
                };
                let tls = ClientTlsConfig::new()
                    .domain_name(router)
                    .ca_certificate(Certificate::from_pem(&identity.ca_pem))
                    .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
                // https makes tonic run its TLS connector over the stream our
                // connector returns; the host is only the :authority.
                let endpoint = Endpoint::from_shared(format!("https://{router}:{}", addr.port()))
                    .and_then(|e| e.tls_config(tls))
                    .map_err(|e| {
                        Failure::Final(AgentError::Unreachable(format!(
                            "no TLS endpoint for router {router}: {}",
                            error_chain(&e)
                        )))
                    })?;
                let connector = self.connector.clone();
                let (name, addr) = (router.to_string(), *addr);
                endpoint
                    .connect_timeout(timeout)
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let connecting = connector(&name, addr);
                        async move { connecting.await.map(TokioIo::new) }
                    }))
                    .await
                    .map_err(|e| {
                        let text = format!("connecting to {addr}: {}", error_chain(&e));
                        if refused_by_tls(&e) {
                            // The router's certificate did not pass: trying
                            // again will not change it.
                            Failure::Final(AgentError::Unreachable(text))
                        } else {
                            Failure::Transient(text)
                        }
                    })
            }
        }
    }

    /// The agent's applied generation, for a stale-generation refusal whose
    /// text did not carry it.
    async fn applied_generation(&self, channel: Channel) -> Option<u64> {
        let call = call(
            channel,
            AgentCommand::GetState(pb::GetStateRequest::default()),
        );
        match tokio::time::timeout(self.settings.rpc_timeout, call).await {
            Ok(Ok(AgentReply::State(state))) => Some(state.generation),
            _ => None,
        }
    }

    async fn refusal(
        &self,
        channel: Channel,
        command: &AgentCommand,
        status: Status,
    ) -> AgentError {
        match status.code() {
            Code::FailedPrecondition => {
                let sent = command.generation().unwrap_or_default();
                let applied = match applied_in(status.message()) {
                    Some(applied) => Some(applied),
                    None => self.applied_generation(channel).await,
                };
                match applied {
                    Some(applied) => AgentError::StaleGeneration { sent, applied },
                    None => AgentError::Refused(status.message().to_string()),
                }
            }
            _ => error_of(&status),
        }
    }

    async fn attempt(
        &self,
        router: &str,
        command: &AgentCommand,
        timeout: Duration,
    ) -> Result<AgentReply, Failure> {
        // Looked up at every try: a restarted agent may listen elsewhere.
        let Some(endpoint) = self.endpoints.resolve(router).await else {
            return Err(Failure::Final(AgentError::Unreachable(format!(
                "no agent endpoint is known for router {router}"
            ))));
        };
        let channel = match self.channel(router, &endpoint).await {
            Ok(channel) => channel,
            Err(failure) => {
                // The router may have moved: the next try asks where.
                self.endpoints.refresh(router).await;
                return Err(failure);
            }
        };
        match tokio::time::timeout(timeout, call(channel.clone(), command.clone())).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(status)) if transient(&status) => {
                self.forget(router);
                self.endpoints.refresh(router).await;
                Err(Failure::Transient(status_text(&status)))
            }
            Ok(Err(status)) => Err(Failure::Final(self.refusal(channel, command, status).await)),
            Err(_) => {
                // The agent may be stuck mid-apply; a retry would queue behind it.
                self.forget(router);
                Err(Failure::Final(AgentError::Unreachable(format!(
                    "no answer within {timeout:?}"
                ))))
            }
        }
    }
}

impl AgentClient for GrpcAgentClient {
    fn send<'a>(
        &'a self,
        router: &'a RouterView,
        command: AgentCommand,
    ) -> BoxFuture<'a, Result<AgentReply, AgentError>> {
        Box::pin(self.send_with_retries(router, command))
    }
}

impl GrpcAgentClient {
    /// Sends one command, retrying while the agent is unreachable.
    async fn send_with_retries(
        &self,
        router: &RouterView,
        command: AgentCommand,
    ) -> Result<AgentReply, AgentError> {
        let timeout = self.settings.timeout_of(&command);
        let attempts = self.settings.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::time::sleep(self.settings.backoff(attempt)).await;
            }
            match self.attempt(&router.name, &command, timeout).await {
                Ok(reply) => return Ok(reply),
                Err(Failure::Final(error)) => return Err(error),
                Err(Failure::Transient(reason)) => {
                    tracing::debug!(
                        router = %router.name,
                        rpc = command.rpc(),
                        attempt,
                        %reason,
                        "agent unreachable"
                    );
                    last = reason;
                }
            }
        }
        Err(AgentError::Unreachable(format!(
            "{attempts} attempts failed, the last one: {last}"
        )))
    }
}

/// One RPC.
async fn call(channel: Channel, command: AgentCommand) -> Result<AgentReply, Status> {
    let mut c = VirtualRouterClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
    let applied = |r: tonic::Response<pb::ApplyResponse>| AgentReply::Applied(r.into_inner());
    Ok(match command {
        AgentCommand::PlugNic(r) => applied(c.plug_nic(r).await?),
        AgentCommand::UnplugNic(r) => applied(c.unplug_nic(r).await?),
        AgentCommand::SetupGuestNetwork(r) => applied(c.setup_guest_network(r).await?),
        AgentCommand::DestroyGuestNetwork(r) => applied(c.destroy_guest_network(r).await?),
        AgentCommand::IpAssoc(r) => applied(c.ip_assoc(r).await?),
        AgentCommand::SetSourceNat(r) => applied(c.set_source_nat(r).await?),
        AgentCommand::SetStaticRoutes(r) => applied(c.set_static_routes(r).await?),
        AgentCommand::SetNetworkAcl(r) => applied(c.set_network_acl(r).await?),
        AgentCommand::EditNetworkAcl(r) => applied(c.edit_network_acl(r).await?),
        AgentCommand::SetPortForwardingRules(r) => applied(c.set_port_forwarding_rules(r).await?),
        AgentCommand::SetStaticNatRules(r) => applied(c.set_static_nat_rules(r).await?),
        AgentCommand::SetLoadBalancerRules(r) => applied(c.set_load_balancer_rules(r).await?),
        AgentCommand::SetDhcpEntries(r) => applied(c.set_dhcp_entries(r).await?),
        AgentCommand::SetVmData(r) => applied(c.set_vm_data(r).await?),
        AgentCommand::SetVpn(r) => applied(c.set_vpn(r).await?),
        AgentCommand::ApplyConfig(r) => applied(c.apply_config(r).await?),
        AgentCommand::GetState(r) => {
            AgentReply::State(Box::new(c.get_state(r).await?.into_inner()))
        }
    })
}

/// True when the status says the agent could not be reached, rather than
/// that it answered: UNAVAILABLE, or a status the client made from a broken
/// connection (those carry the transport error as their source; statuses
/// the agent sent do not).
fn transient(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Cancelled | Code::Internal => status.source().is_some(),
        _ => false,
    }
}

/// The error of an agent's answer (FAILED_PRECONDITION aside).
fn error_of(status: &Status) -> AgentError {
    let text = status_text(status);
    match status.code() {
        Code::InvalidArgument | Code::NotFound => AgentError::Refused(text),
        Code::Unavailable | Code::DeadlineExceeded => AgentError::Unreachable(text),
        Code::Aborted => AgentError::NotAtBase(text),
        _ => AgentError::Failed(text),
    }
}

fn status_text(status: &Status) -> String {
    let mut text = status.message().to_string();
    if text.is_empty() {
        text = format!("{:?}", status.code());
    }
    if let Some(source) = status.source() {
        let chain = error_chain(source);
        text = if chain.starts_with(&text) {
            chain
        } else {
            format!("{text}: {chain}")
        };
    }
    text
}

/// True when the TLS handshake failed on the certificates (rustls reports
/// those as `InvalidData`), not on the connection.
fn refused_by_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::InvalidData
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// The applied generation in the agent's FAILED_PRECONDITION text
/// ("generation 3 is older than the applied generation 5").
fn applied_in(message: &str) -> Option<u64> {
    let (_, rest) = message.rsplit_once("applied generation")?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// An error and its causes on one line (tonic's transport errors say little
/// at the top).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_applied_generation_is_read_from_the_agents_refusal() {
        assert_eq!(
            applied_in("generation 3 is older than the applied generation 5"),
            Some(5)
        );
        assert_eq!(applied_in("applied generation 12345, sorry"), Some(12345));
        assert_eq!(applied_in("stale"), None);
        assert_eq!(applied_in("the applied generation is unknown"), None);
    }

    #[test]
    fn answers_map_to_agent_errors_and_only_unreachable_agents_are_retried() {
        use AgentError::*;
        let cases = [
            (
                Status::invalid_argument("bad cidr"),
                Refused("bad cidr".into()),
            ),
            (Status::not_found("no link"), Refused("no link".into())),
            (Status::unavailable("down"), Unreachable("down".into())),
            (
                Status::deadline_exceeded("slow"),
                Unreachable("slow".into()),
            ),
            (Status::internal("nft failed"), Failed("nft failed".into())),
            (Status::unknown("?"), Failed("?".into())),
        ];
        for (status, error) in cases {
            assert_eq!(error_of(&status), error, "{status:?}");
        }
        assert!(transient(&Status::unavailable("connection refused")));
        for answered in [
            Status::internal("apply failed"),
            Status::invalid_argument("x"),
            Status::failed_precondition("stale"),
            Status::deadline_exceeded("slow"),
            Status::unknown("agent said so"),
        ] {
            assert!(!transient(&answered), "{answered:?}");
        }
        let broken = Status::from_error(Box::new(io::Error::other("connection closed")));
        assert_eq!(broken.code(), Code::Unknown);
        assert!(transient(&broken), "a client-side transport failure");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = ClientSettings::default();
        let waits: Vec<u128> = (2..=8).map(|a| s.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(
            s.timeout_of(&AgentCommand::GetState(pb::GetStateRequest::default())),
            s.rpc_timeout
        );
        assert_eq!(
            s.timeout_of(&AgentCommand::ApplyConfig(pb::ApplyConfigRequest::default())),
            Duration::from_secs(30)
        );
    }

    #[tokio::test]
    async fn an_unknown_router_is_unreachable_at_once() {
        let client = GrpcAgentClient::new(Arc::default());
        let router = RouterView {
            id: uuid::Uuid::nil(),
            name: "r-404-VM".into(),
            zone_id: uuid::Uuid::nil(),
            generation: 1,
            nics: vec![],
            host: None,
        };
        let started = std::time::Instant::now();
        let err = client
            .send(
                &router,
                AgentCommand::GetState(pb::GetStateRequest::default()),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AgentError::Unreachable(t) if t.contains("r-404-VM")),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(50), "no retries");
    }

    #[tokio::test]
    async fn a_missing_socket_is_retried_then_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let endpoints = Arc::new(Endpoints::default());
        endpoints.set(
            "r-1-VM",
            AgentEndpoint::UnixSocket(dir.path().join("none.sock")),
        );
        let client = GrpcAgentClient::new(endpoints).with_settings(ClientSettings {
            attempts: 3,
            first_backoff: Duration::from_millis(10),
            ..ClientSettings::default()
        });
        let router = RouterView {
            id: uuid::Uuid::nil(),
            name: "r-1-VM".into(),
            zone_id: uuid::Uuid::nil(),
            generation: 1,
            nics: vec![],
            host: None,
        };
        let err = client
            .send(
                &router,
                AgentCommand::GetState(pb::GetStateRequest::default()),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AgentError::Unreachable(t) if t.contains("3 attempts") && t.contains("none.sock")),
            "{err:?}"
        );
    }
}
