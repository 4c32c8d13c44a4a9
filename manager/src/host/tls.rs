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
    let channel = host_channel(url, &pki.client_identity())?;
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
