//! The host agent on TCP: mutual TLS from the cluster CA (DESIGN §6). The
//! host agent presents a certificate the CA issued to [`SERVER_NAME`] and
//! admits only the manager's client certificate (every manager of a
//! cluster holds the same one, stored with the CA); a manager reaches it
//! with that certificate and checks the host agent's against the CA.

use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use super::HostDriver;
use crate::orchestration::agent::Endpoints;
use crate::pki::Pki;

/// The name in the host agent's certificate, which managers check.
pub const SERVER_NAME: &str = "vpc-host-agent";

/// The host agent's TLS configuration and the DER of the one client
/// certificate it admits (the manager's).
pub fn server_tls(pki: &Pki) -> anyhow::Result<(ServerTlsConfig, Vec<u8>)> {
    let cert = pki
        .issue_router(SERVER_NAME)
        .context("issuing the host agent's certificate")?;
    let manager = pki.client_identity();
    let der = CertificateDer::from_pem_slice(manager.cert_pem.as_bytes())
        .context("reading the manager's client certificate")?;
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&cert.cert_pem, &cert.key_pem))
        .client_ca_root(Certificate::from_pem(pki.ca_pem()));
    Ok((tls, der.as_ref().to_vec()))
}

/// A channel to the host agent at `url` (`https://host:port`) with the
/// managers' client certificate, checking the host agent's against the CA;
/// connected at the first call.
pub fn host_channel(
    url: &str,
    identity: &crate::pki::ClientIdentity,
) -> anyhow::Result<tonic::transport::Channel> {
    let tls = ClientTlsConfig::new()
        .domain_name(SERVER_NAME)
        .ca_certificate(Certificate::from_pem(&identity.ca_pem))
        .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
    Ok(Endpoint::from_shared(url.to_string())?
        .tls_config(tls)?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_lazy())
}

/// One channel per host agent address for everything a manager sends there
/// over TLS: its calls to the host agent and the relayed connections to the
/// agents of the routers it runs. A tonic channel multiplexes its calls
/// (and the relays, each one stream) over one HTTP/2 connection, so a host
/// with a hundred relayed routers costs one TLS connection, not a hundred.
/// A channel reconnects by itself after its connection breaks.
pub struct HostChannels {
    identity: crate::pki::ClientIdentity,
    by_url: std::sync::Mutex<std::collections::HashMap<String, tonic::transport::Channel>>,
}

impl HostChannels {
    /// Channels that present `identity` (the managers' client certificate)
    /// and check host agents against its CA.
    pub fn new(identity: crate::pki::ClientIdentity) -> HostChannels {
        HostChannels {
            identity,
            by_url: std::sync::Mutex::default(),
        }
    }

    /// The channel to the host agent at `url` (`https://host:port`), made
    /// at the first use (connected at the first call) and shared after.
    pub fn get(&self, url: &str) -> anyhow::Result<tonic::transport::Channel> {
        let url = url.trim_end_matches('/');
        let mut by_url = self.by_url.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = by_url.get(url) {
            return Ok(channel.clone());
        }
        let channel = host_channel(url, &self.identity)?;
        by_url.insert(url.to_string(), channel.clone());
        Ok(channel)
    }
}

/// The driver for the host agent `url`: `unix:///path` (its socket), or
/// `https://host:port` (mutual TLS with the manager's client certificate;
/// it sends each router's TLS material with StartRouter).
/// The connection is made at the first call.
pub async fn host_driver(
    url: &str,
    pki: &Arc<Pki>,
    endpoints: Arc<Endpoints>,
) -> anyhow::Result<HostDriver> {
    if let Some(path) = url.strip_prefix("unix://") {
        anyhow::ensure!(!path.is_empty(), "unix:// needs the socket's path");
        return Ok(HostDriver::unix(path, endpoints));
    }
    anyhow::ensure!(
        url.starts_with("https://"),
        "expected unix:///path or https://host:port"
    );
    tls_driver(
        url,
        host_channel(url, &pki.client_identity())?,
        pki,
        endpoints,
    )
}

/// [`host_driver`] for a host agent on TCP, over the channel `channels`
/// holds for `url` (shared with the relays to its routers' agents).
pub fn shared_host_driver(
    url: &str,
    channels: &HostChannels,
    pki: &Arc<Pki>,
    endpoints: Arc<Endpoints>,
) -> anyhow::Result<HostDriver> {
    anyhow::ensure!(url.starts_with("https://"), "expected https://host:port");
    tls_driver(url, channels.get(url)?, pki, endpoints)
}

fn tls_driver(
    url: &str,
    channel: tonic::transport::Channel,
    pki: &Arc<Pki>,
    endpoints: Arc<Endpoints>,
) -> anyhow::Result<HostDriver> {
    // A host agent on TCP may be an enrolled one without the CA key: the
    // routers' TLS material goes with each StartRouter.
    // Its routers' Unix sockets are on its host: their agents are reached
    // through it.
    let authority = url["https://".len()..].trim_end_matches('/').to_string();
    Ok(
        HostDriver::with_channel(channel, url.to_string(), endpoints)
            .with_router_tls(crate::driver::tls_from_pki(pki.clone()))
            .with_relay(authority),
    )
}
