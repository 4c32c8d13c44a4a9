//! Mutual TLS on the agent's TCP listener: only the manager gets in.
//!
//! A certificate signed by the cluster CA is not enough. webpki accepts a
//! client certificate that carries no extended key usage at all (RFC 5280
//! reads a missing EKU as "any use"), so a router's server certificate with
//! its EKU left out, or any other leaf the CA signed, was served. The agent
//! now also requires the client-authentication usage and the manager's name
//! (`vpc-manager`, the name `manager/src/pki.rs` issues the manager's client
//! certificate to; `--tls-client-name` changes it). Every refused handshake
//! is logged with the peer and the reason.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    ServerConfig, SignatureScheme,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use x509_parser::extensions::GeneralName;

use super::TlsFiles;

/// The client name the manager's certificate carries (`manager/src/pki.rs`
/// `CLIENT_NAME`), the default of `--tls-client-name`.
pub const MANAGER_CLIENT_NAME: &str = "vpc-manager";

/// How long a client may take to finish its handshake; a slow one holds only
/// its own task, never the accept loop.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a client certificate is not the manager's, or `Ok` if it is: it must
/// name `expected` (in its DNS names, or in its common name when it has no
/// subject alternative names) and be limited to client authentication by an
/// extended key usage that includes it.
pub fn check_client_identity(der: &[u8], expected: &str) -> Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("the certificate cannot be read: {e}"))?;
    match cert.extended_key_usage() {
        Ok(Some(eku)) if eku.value.client_auth => {}
        Ok(Some(_)) => {
            return Err("its extended key usage does not include client authentication".into());
        }
        Ok(None) => {
            return Err(
                "it has no extended key usage; the manager's certificate is limited to client \
                 authentication"
                    .into(),
            );
        }
        Err(e) => return Err(format!("its extended key usage cannot be read: {e}")),
    }
    let sans: Vec<&str> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(name) => Some(*name),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(format!("its subject alternative names cannot be read: {e}")),
    };
    let has_san = cert.subject_alternative_name().is_ok_and(|s| s.is_some());
    let named = if has_san {
        sans.iter().any(|n| n.eq_ignore_ascii_case(expected))
    } else {
        cert.subject().iter_common_name().any(|cn| {
            cn.as_str()
                .is_ok_and(|cn| cn.eq_ignore_ascii_case(expected))
        })
    };
    if named {
        Ok(())
    } else {
        let shown = if has_san {
            format!("DNS names {sans:?}")
        } else {
            let cns: Vec<&str> = cert
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .collect();
            format!("common name {cns:?}")
        };
        Err(format!("it names {shown}, not {expected:?}"))
    }
}

/// The CA's verification (chain, validity, signatures) plus the manager's
/// identity.
#[derive(Debug)]
struct ManagerOnly {
    ca: Arc<dyn ClientCertVerifier>,
    name: String,
}

impl ClientCertVerifier for ManagerOnly {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.ca.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.ca.verify_client_cert(end_entity, intermediates, now)?;
        check_client_identity(end_entity, &self.name).map_err(|reason| {
            let reason: Box<dyn std::error::Error + Send + Sync> = reason.into();
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::from(
                reason,
            ))))
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.ca.supported_verify_schemes()
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The server side of mutual TLS from the agent's PEM files.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read(&files.ca)?) {
        let cert = cert.with_context(|| format!("parsing {}", files.ca.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("adding the CA of {}", files.ca.display()))?;
    }
    let ca = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .with_context(|| format!("using {} as the client CA", files.ca.display()))?;
    let certs = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .with_context(|| format!("parsing {}", files.key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider as Arc<CryptoProvider>)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(ManagerOnly {
            ca,
            name: files.client_name.clone(),
        }))
        .with_single_cert(certs, key)
        .context("loading the agent's certificate and key")?;
    // gRPC runs over HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TCP connections on `addr` and completes their handshakes, each in
/// its own task; yields the connections whose client is the manager. The
/// returned task runs the accept loop: abort it when serving ends.
pub async fn incoming(
    addr: SocketAddr,
    config: Arc<ServerConfig>,
) -> anyhow::Result<(
    ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>>,
    JoinHandle<()>,
)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let acceptor = TlsAcceptor::from(config);
    let (tx, rx) = mpsc::channel(16);
    let accept_loop = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: pause, not spin.
                    tracing::warn!(error = %e, "accepting a TCP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%peer, reason = %e, "refused a TLS client");
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "refused a TLS client: the handshake timed out");
                    }
                }
            });
        }
    });
    Ok((ReceiverStream::new(rx), accept_loop))
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };

    use super::*;

    fn leaf(sans: &[&str], cn: Option<&str>, usages: Vec<ExtendedKeyUsagePurpose>) -> Vec<u8> {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        if let Some(cn) = cn {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        p.extended_key_usages = usages;
        p.signed_by(&KeyPair::generate().unwrap(), &ca)
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn only_a_client_auth_certificate_naming_the_manager_is_its_identity() {
        use ExtendedKeyUsagePurpose::*;
        let name = MANAGER_CLIENT_NAME;
        check_client_identity(&leaf(&[name], Some(name), vec![ClientAuth]), name).unwrap();
        check_client_identity(&leaf(&[], Some(name), vec![ClientAuth]), name).unwrap();
        check_client_identity(&leaf(&[name], None, vec![ServerAuth, ClientAuth]), name).unwrap();

        let refused = |der: Vec<u8>| check_client_identity(&der, name).unwrap_err();
        assert!(refused(leaf(&[name], None, vec![])).contains("no extended key usage"));
        assert!(refused(leaf(&[name], None, vec![ServerAuth])).contains("client authentication"));
        assert!(refused(leaf(&["r-1-VM"], None, vec![ClientAuth])).contains("r-1-VM"));
        // With DNS names present, a matching common name is not enough.
        assert!(refused(leaf(&["intruder"], Some(name), vec![ClientAuth])).contains("intruder"));
        assert!(refused(leaf(&[], Some("other"), vec![ClientAuth])).contains("other"));
        assert!(check_client_identity(b"not a certificate", name).is_err());
    }
}
