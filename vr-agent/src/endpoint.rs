//! Where the agent listens, and the gRPC server stack it serves there:
//! the router service, reflection (v1 and v1alpha, for older grpcurl) and
//! `grpc.health.v1`. TCP is served with mutual TLS that admits only the
//! manager ([`tls`]).

pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::codegen::http;
use tonic::transport::Server;
use tonic::{Code, Status};
use tower::util::MapResponseLayer;
use vpc_proto::v1::virtual_router_server::{VirtualRouter, VirtualRouterServer};

/// The largest request message accepted when no flag says otherwise: 16 MiB.
/// A full list at each default bound of [`crate::model::Limits`] fits, even
/// all three in one ApplyConfig (1.8 MB for 20,000 ACL items, 1.1 MB for
/// 10,000 port forwards, 3.2 MB for 16,384 leases with the longest names,
/// measured by the security tests); tonic's own default is 4 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 16 << 20;

/// What the server accepts beyond its transport.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The largest request message, in bytes (gRPC's max decoding size).
    pub max_request_bytes: usize,
    /// The group allowed to use the Unix socket (mode 0660); `None` leaves
    /// it to root (mode 0600).
    pub socket_group: Option<u32>,
    /// The agent's condition for `grpc.health.v1` (see [`crate::health`]);
    /// `None` reports SERVING for as long as the server runs.
    pub serving: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            socket_group: None,
            serving: None,
        }
    }
}

/// PEM files for mutual TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// The name the manager's client certificate must carry.
    pub client_name: String,
}

/// A parsed `--listen` value with its transport security.
#[derive(Debug)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp {
        addr: SocketAddr,
        tls: Option<TlsFiles>,
    },
}

impl Endpoint {
    /// Parses `unix:///path` or `tcp://ip:port`. TCP needs TLS files unless
    /// `insecure` is set; a Unix socket is protected by file permissions.
    pub fn parse(listen: &str, tls: Option<TlsFiles>, insecure: bool) -> anyhow::Result<Self> {
        if let Some(path) = listen.strip_prefix("unix://") {
            if path.is_empty() {
                bail!("--listen unix:// needs a socket path, e.g. unix:///run/vr-agent.sock");
            }
            if tls.is_some() {
                bail!("--tls-* options apply to tcp:// listeners only");
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = listen.strip_prefix("tcp://") {
            let addr: SocketAddr = addr
                .parse()
                .with_context(|| format!("--listen {listen}: expected tcp://ip:port"))?;
            match (tls, insecure) {
                (Some(_), true) => bail!("--insecure and --tls-* are mutually exclusive"),
                (None, false) => bail!(
                    "--listen tcp:// requires mutual TLS (--tls-cert, --tls-key, --tls-ca) \
                     or an explicit --insecure"
                ),
                (tls, _) => return Ok(Endpoint::Tcp { addr, tls }),
            }
        }
        bail!("--listen {listen}: expected unix:///path or tcp://ip:port")
    }

    /// The TCP port, for a TCP endpoint.
    pub fn tcp_port(&self) -> Option<u16> {
        match self {
            Endpoint::Tcp { addr, .. } => Some(addr.port()),
            Endpoint::Unix(_) => None,
        }
    }

    /// Serves `service` until `shutdown` resolves.
    pub async fn serve<S>(
        self,
        service: S,
        options: &ServeOptions,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()>
    where
        S: VirtualRouter,
    {
        let (health, health_service) = tonic_health::server::health_reporter();
        match options.serving.clone() {
            Some(serving) => {
                tokio::spawn(crate::health::follow(health, serving));
            }
            None => health.set_serving::<VirtualRouterServer<S>>().await,
        }
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(vpc_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(vpc_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let router = Server::builder()
            .layer(MapResponseLayer::new(oversized_as_invalid_argument))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                // Set explicitly: the bound is part of the agent's contract.
                VirtualRouterServer::new(service)
                    .max_decoding_message_size(options.max_request_bytes),
            );

        match self {
            Endpoint::Unix(path) => {
                // A socket file left by a previous run would make bind fail.
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).context(format!("removing {}", path.display())),
                }
                let listener = bind_private(&path, options.socket_group)?;
                tracing::info!(socket = %path.display(), group = options.socket_group, "listening");
                router
                    .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
                    .await?;
                let _ = std::fs::remove_file(&path);
            }
            Endpoint::Tcp {
                addr,
                tls: Some(files),
            } => {
                let (incoming, accept_loop) =
                    tls::incoming(addr, tls::server_config(&files)?).await?;
                tracing::info!(%addr, mtls = true, client = files.client_name, "listening");
                let served = router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await;
                accept_loop.abort();
                served?;
            }
            Endpoint::Tcp { addr, tls: None } => {
                tracing::info!(%addr, mtls = false, "listening");
                router.serve_with_shutdown(addr, shutdown).await?;
            }
        }
        Ok(())
    }
}

/// Binds the Unix socket at `path`, usable by root only (0600) or by root
/// and `group` (0660). The socket is bound under a temporary name, restricted,
/// then renamed into place, so it is never reachable with the umask's mode.
fn bind_private(path: &Path, group: Option<u32>) -> anyhow::Result<tokio::net::UnixListener> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".binding");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp)
        .with_context(|| format!("binding {}", tmp.display()))?;
    let mode = match group {
        Some(gid) => {
            std::os::unix::fs::chown(&tmp, None, Some(gid))
                .with_context(|| format!("giving {} to group {gid}", tmp.display()))?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("moving {} to {}", tmp.display(), path.display()))?;
    Ok(listener)
}

/// tonic refuses a request above the size bound with OUT_OF_RANGE; for bad
/// input the protocol promises INVALID_ARGUMENT naming the bound, so that
/// status is rewritten (its message already gives the limit in bytes).
fn oversized_as_invalid_argument(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    if let Some(status) = Status::from_header_map(headers)
        && status.code() == Code::OutOfRange
        && status
            .message()
            .starts_with("Error, decoded message length too large")
    {
        let bound = Status::invalid_argument(format!(
            "request: {} (set by --max-request-bytes)",
            status.message()
        ));
        if bound.add_header(headers).is_err() {
            tracing::warn!("could not rewrite the status of an oversized request");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: "c".into(),
            key: "k".into(),
            ca: "a".into(),
            client_name: tls::MANAGER_CLIENT_NAME.into(),
        })
    }

    #[test]
    fn tcp_without_tls_needs_explicit_insecure() {
        let err = Endpoint::parse("tcp://127.0.0.1:9000", None, false).unwrap_err();
        assert!(err.to_string().contains("requires mutual TLS"), "{err}");
        assert!(matches!(
            Endpoint::parse("tcp://127.0.0.1:9000", None, true),
            Ok(Endpoint::Tcp { tls: None, .. })
        ));
        assert!(matches!(
            Endpoint::parse("tcp://127.0.0.1:9000", tls(), false),
            Ok(Endpoint::Tcp { tls: Some(_), .. })
        ));
    }

    #[test]
    fn unix_socket_path_is_parsed_and_rejects_tls() {
        assert!(matches!(
            Endpoint::parse("unix:///run/a.sock", None, false),
            Ok(Endpoint::Unix(p)) if p == std::path::Path::new("/run/a.sock")
        ));
        assert!(Endpoint::parse("unix:///run/a.sock", tls(), false).is_err());
        assert!(Endpoint::parse("unix://", None, false).is_err());
    }

    #[test]
    fn other_schemes_are_refused() {
        for bad in [
            "127.0.0.1:9000",
            "http://x",
            "tcp://nohost",
            "tcp://1.2.3.4",
        ] {
            assert!(Endpoint::parse(bad, None, true).is_err(), "{bad}");
        }
    }
}
