//! Enrolling a host agent into the cluster (DESIGN §4; `vpc.host.v1`
//! `HostEnrollment`).
//!
//! A host agent started on TCP with a one-time token and no identity yet
//! serves only `HostEnrollment`, over TLS with a self-signed certificate.
//! `addHost url=https://… password=<token>` enrolls it:
//! 1. the manager connects, accepting whatever certificate is presented but
//!    keeping it, and proves it knows the token *for that certificate*:
//!    `HMAC-SHA256(token, SHA-256(certificate DER))`. A party in the middle
//!    shows its own certificate, so the proof it receives is worthless to
//!    the real host agent, and the token itself never crosses the wire;
//! 2. the host agent checks the proof against its own certificate and
//!    answers with a certificate signing request for a key that never
//!    leaves the host;
//! 3. the manager signs it with the cluster CA (only the request's public
//!    key is taken) and completes with the certificate, the CA and the
//!    managers' client certificate, under the same proof;
//! 4. the host agent stores its identity (`<data_dir>/host-pki/`, mode
//!    0600) and from then on serves `HostAgent` with mutual TLS only,
//!    admitting exactly the managers' client certificate. The token is
//!    spent: an enrolled host agent never serves enrollment again.
//!
//! A host agent whose certificate the cluster CA did not sign is refused by
//! every manager (the TLS handshake fails), so `addHost` without a token
//! cannot add it.
//!
//! Kept whole because both ends of the enrollment handshake are here, so each step's proof and
//! check read side by side; a fifth is tests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Endpoint, Identity, ServerTlsConfig, Uri};
use tonic::{Request, Response, Status};
use vpc_proto::host::v1 as pb;
use vpc_proto::host::v1::host_enrollment_client::HostEnrollmentClient;
use vpc_proto::host::v1::host_enrollment_server::{HostEnrollment, HostEnrollmentServer};

use super::tls::SERVER_NAME;
use crate::pki::{Pki, write_private};

/// Where an enrolled host agent keeps its identity, under its data directory.
pub const IDENTITY_DIR: &str = "host-pki";
const CERT_FILE: &str = "host.pem";
const KEY_FILE: &str = "host.key";
const CA_FILE: &str = "ca.pem";
const MANAGER_FILE: &str = "manager.pem";

/// The shortest token a host agent accepts: the proof is only as strong as
/// the token is hard to guess.
pub const MIN_TOKEN_LEN: usize = 16;

/// A one-time enrollment token: 16 to 256 printable ASCII characters, no
/// spaces. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// Checks `text` (surrounding whitespace, as in a file, is dropped).
    pub fn parse(text: &str) -> Result<Token, String> {
        let t = text.trim();
        if t.len() < MIN_TOKEN_LEN || t.len() > 256 {
            return Err(format!(
                "an enrollment token has {MIN_TOKEN_LEN} to 256 characters, this one {}",
                t.len()
            ));
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("an enrollment token is printable ASCII without spaces".into());
        }
        Ok(Token(t.to_string()))
    }
}

/// The HMAC key of `token` and the message a proof signs: the SHA-256 of
/// the certificate `cert_der`.
fn proof_input(token: &Token, cert_der: &[u8]) -> (ring::hmac::Key, ring::digest::Digest) {
    (
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.0.as_bytes()),
        ring::digest::digest(&ring::digest::SHA256, cert_der),
    )
}

/// The proof that the holder of `token` saw the certificate `cert_der`.
pub fn proof(token: &Token, cert_der: &[u8]) -> Vec<u8> {
    let (key, digest) = proof_input(token, cert_der);
    ring::hmac::sign(&key, digest.as_ref()).as_ref().to_vec()
}

/// Whether `presented` is the proof for `token` and `cert_der` (in constant
/// time).
pub fn proof_matches(token: &Token, cert_der: &[u8], presented: &[u8]) -> bool {
    let (key, digest) = proof_input(token, cert_der);
    ring::hmac::verify(&key, digest.as_ref(), presented).is_ok()
}

/// An enrolled host agent's identity: its certificate and key from the
/// cluster CA, the CA, and the one client certificate it admits.
#[derive(Clone, PartialEq, Eq)]
pub struct HostIdentity {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
    pub manager_pem: String,
}

impl std::fmt::Debug for HostIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostIdentity").finish_non_exhaustive()
    }
}

fn der_of(what: &str, pem: &str) -> anyhow::Result<Vec<u8>> {
    Ok(CertificateDer::from_pem_slice(pem.as_bytes())
        .with_context(|| format!("{what}: not a PEM certificate"))?
        .as_ref()
        .to_vec())
}

impl HostIdentity {
    /// Reads it from `<data_dir>/host-pki/`; None when the host agent was
    /// never enrolled. Half an identity is an error, not "not enrolled": a
    /// host agent must not fall back to enrollment after a partial loss.
    pub fn load(data_dir: &Path) -> anyhow::Result<Option<HostIdentity>> {
        let dir = data_dir.join(IDENTITY_DIR);
        let read = |name: &str| -> anyhow::Result<Option<String>> {
            match std::fs::read_to_string(dir.join(name)) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("reading {}", dir.join(name).display())),
            }
        };
        let files = [CERT_FILE, KEY_FILE, CA_FILE, MANAGER_FILE].map(read);
        let [cert, key, ca, manager] = files;
        match (cert?, key?, ca?, manager?) {
            (None, None, None, None) => Ok(None),
            (Some(cert_pem), Some(key_pem), Some(ca_pem), Some(manager_pem)) => {
                let identity = HostIdentity {
                    cert_pem,
                    key_pem,
                    ca_pem,
                    manager_pem,
                };
                identity
                    .check()
                    .with_context(|| format!("the identity in {}", dir.display()))?;
                Ok(Some(identity))
            }
            _ => anyhow::bail!(
                "{} holds part of an enrolled identity: restore it, or remove the directory \
                 and enroll again",
                dir.display()
            ),
        }
    }

    /// Every part parses, and the certificate carries the key.
    fn check(&self) -> anyhow::Result<()> {
        let cert = der_of("the host certificate", &self.cert_pem)?;
        der_of("the CA", &self.ca_pem)?;
        der_of("the managers' certificate", &self.manager_pem)?;
        let key = rcgen::KeyPair::from_pem(&self.key_pem).context("the host key")?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert)
            .map_err(|e| anyhow::anyhow!("the host certificate: {e}"))?;
        anyhow::ensure!(
            parsed.public_key().raw
                == rcgen::PublicKeyData::subject_public_key_info(&key).as_slice(),
            "the host certificate is not for the host key"
        );
        Ok(())
    }

    /// Writes it (keys first, each file 0600 in a 0700 directory).
    pub fn write(&self, data_dir: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = data_dir.join(IDENTITY_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        for (name, text) in [
            (KEY_FILE, &self.key_pem),
            (CA_FILE, &self.ca_pem),
            (MANAGER_FILE, &self.manager_pem),
            (CERT_FILE, &self.cert_pem),
        ] {
            write_private(&dir.join(name), text)?;
        }
        Ok(())
    }

    /// The host agent's TLS: its certificate, clients from the CA only,
    /// and the DER of the one client certificate it admits.
    pub fn server_tls(&self) -> anyhow::Result<(ServerTlsConfig, Vec<u8>)> {
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem));
        Ok((tls, der_of("the managers' certificate", &self.manager_pem)?))
    }
}

/// The `HostEnrollment` service of a host agent that has no identity yet.
struct Enrollment {
    token: Token,
    /// The DER of the self-signed certificate this server presents.
    own_der: Vec<u8>,
    data_dir: PathBuf,
    /// The key of the request answered last; a completion must match it.
    pending: Mutex<Option<rcgen::KeyPair>>,
    /// Told the identity once it is stored.
    done: Mutex<Option<oneshot::Sender<HostIdentity>>>,
}

impl Enrollment {
    fn check(&self, proof: &[u8]) -> Result<(), Status> {
        if proof_matches(&self.token, &self.own_der, proof) {
            return Ok(());
        }
        tracing::warn!("host agent: an enrollment with a wrong proof was refused");
        Err(Status::permission_denied(
            "the enrollment proof does not match this host agent's token and certificate",
        ))
    }

    /// Checks what the manager sent and makes the identity of it.
    fn identity_of(&self, r: &pb::CompleteEnrollmentRequest) -> Result<HostIdentity, String> {
        let key = self
            .pending
            .lock()
            .expect("enrollment lock")
            .as_ref()
            .map(|k| k.serialize_pem())
            .ok_or("no certificate was requested: call Enroll first")?;
        let identity = HostIdentity {
            cert_pem: r.certificate_pem.clone(),
            key_pem: key,
            ca_pem: r.ca_pem.clone(),
            manager_pem: r.manager_certificate_pem.clone(),
        };
        identity.check().map_err(|e| format!("{e:#}"))?;
        // The certificate must chain to the CA it came with.
        let cert = der_of("certificate_pem", &identity.cert_pem).map_err(|e| e.to_string())?;
        let ca = der_of("ca_pem", &identity.ca_pem).map_err(|e| e.to_string())?;
        let (_, cert) = x509_parser::parse_x509_certificate(&cert)
            .map_err(|e| format!("certificate_pem: {e}"))?;
        let (_, ca) =
            x509_parser::parse_x509_certificate(&ca).map_err(|e| format!("ca_pem: {e}"))?;
        cert.verify_signature(Some(ca.public_key()))
            .map_err(|e| format!("certificate_pem is not signed by ca_pem: {e}"))?;
        Ok(identity)
    }
}

#[tonic::async_trait]
impl HostEnrollment for Enrollment {
    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let r = request.into_inner();
        self.check(&r.proof)?;
        let key = rcgen::KeyPair::generate().map_err(|e| Status::internal(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])
            .map_err(|e| Status::internal(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, SERVER_NAME);
        let csr = params
            .serialize_request(&key)
            .and_then(|c| c.pem())
            .map_err(|e| Status::internal(e.to_string()))?;
        *self.pending.lock().expect("enrollment lock") = Some(key);
        tracing::info!(manager_named = %r.host_name, "host agent: enrollment started");
        Ok(Response::new(pb::EnrollResponse { csr_pem: csr }))
    }

    async fn complete_enrollment(
        &self,
        request: Request<pb::CompleteEnrollmentRequest>,
    ) -> Result<Response<pb::Done>, Status> {
        let r = request.into_inner();
        self.check(&r.proof)?;
        let identity = self.identity_of(&r).map_err(Status::invalid_argument)?;
        identity
            .write(&self.data_dir)
            .map_err(|e| Status::internal(format!("storing the identity: {e:#}")))?;
        tracing::info!("host agent: enrolled; serving with the cluster's certificate");
        if let Some(done) = self.done.lock().expect("enrollment lock").take() {
            let _ = done.send(identity);
        }
        Ok(Response::new(pb::Done {}))
    }
}

/// Serves `HostEnrollment` on `addr` until a manager has enrolled this host
/// agent (its identity, already stored) or `shutdown` resolves (None).
pub async fn serve_enrollment(
    addr: std::net::SocketAddr,
    token: Token,
    data_dir: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<Option<HostIdentity>> {
    let bootstrap = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
        .context("the enrollment certificate")?;
    let (done, enrolled) = oneshot::channel();
    let service = Enrollment {
        token,
        own_der: bootstrap.cert.der().to_vec(),
        data_dir: data_dir.to_path_buf(),
        pending: Mutex::new(None),
        done: Mutex::new(Some(done)),
    };
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(
        bootstrap.cert.pem(),
        bootstrap.signing_key.serialize_pem(),
    ));
    let identity = Arc::new(Mutex::new(None));
    let stop = {
        let identity = identity.clone();
        async move {
            tokio::select! {
                got = enrolled => {
                    *identity.lock().expect("identity") = got.ok();
                }
                () = shutdown => {}
            }
        }
    };
    tracing::info!(%addr, "host agent: waiting to be enrolled (addHost with its token)");
    tonic::transport::Server::builder()
        .tls_config(tls)
        .context("the enrollment TLS")?
        .add_service(HostEnrollmentServer::new(service))
        .serve_with_shutdown(addr, stop)
        .await?;
    Ok(identity.lock().expect("identity").take())
}

/// Accepts any server certificate but keeps it: the enrollment proof binds
/// the token to what was seen, so trust is established by the proof, not
/// by the certificate. The handshake's signatures are still checked.
#[derive(Debug)]
struct KeepCertificate {
    seen: Arc<Mutex<Option<Vec<u8>>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for KeepCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().expect("seen certificate") = Some(end_entity.as_ref().to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The `host:port` of an `https://host:port` URL.
fn authority_of(url: &str) -> Result<String, String> {
    url.strip_prefix("https://")
        .map(|a| a.trim_end_matches('/').to_string())
        .ok_or_else(|| format!("{url}: enrollment needs https://host:port"))
}

/// A TLS connector that presents no certificate and keeps the one the
/// server presents (see [`KeepCertificate`]).
type Seen = Arc<Mutex<Option<Vec<u8>>>>;

fn keeping_connector() -> Result<(tokio_rustls::TlsConnector, Seen), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let seen = Arc::new(Mutex::new(None));
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(KeepCertificate {
            seen: seen.clone(),
            provider,
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), seen))
}

/// The certificate (DER) the host agent at `url` presents in a TLS
/// handshake: its enrollment certificate while it waits for enrollment,
/// the one the cluster CA issued it once enrolled (which it shows before
/// it asks for the client's).
pub async fn presented_certificate(url: &str) -> Result<Vec<u8>, String> {
    let authority = authority_of(url)?;
    let (connector, seen) = keeping_connector()?;
    let name = ServerName::try_from(SERVER_NAME).map_err(|e| e.to_string())?;
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(authority.as_str()).await?;
        connector.connect(name, tcp).await.map(drop)
    };
    let shaken = tokio::time::timeout(std::time::Duration::from_secs(5), handshake).await;
    let der = seen.lock().expect("seen certificate").clone();
    match (der, shaken) {
        (Some(der), _) => Ok(der),
        (None, Ok(Err(e))) => Err(format!("the host agent {url} is unreachable: {e}")),
        (None, _) => Err(format!("the host agent {url} presented no certificate")),
    }
}

/// Whether `der` is a host agent's certificate that `pki`'s CA issued: the
/// host agent was enrolled in this cluster (it proved its token then).
pub fn issued_by(pki: &Pki, der: &[u8]) -> bool {
    let Ok(ca) = der_of("the CA", pki.ca_pem()) else {
        return false;
    };
    let (Ok((_, ca)), Ok((_, cert))) = (
        x509_parser::parse_x509_certificate(&ca),
        x509_parser::parse_x509_certificate(der),
    ) else {
        return false;
    };
    let named = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .is_some_and(|san| {
            san.value.general_names.iter().any(|n| {
                matches!(n, x509_parser::extensions::GeneralName::DNSName(d) if *d == SERVER_NAME)
            })
        });
    named && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// Enrolls the host agent at `url` (`https://host:port`) with `token`: the
/// manager's side of the exchange above. The text says why it failed.
pub async fn enroll(url: &str, token: &Token, pki: &Pki) -> Result<(), String> {
    let authority = authority_of(url)?;
    let (connector, seen) = keeping_connector()?;
    let target = authority.clone();
    let channel = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let (connector, target) = (connector.clone(), target.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(target.as_str()).await?;
                let name = ServerName::try_from(SERVER_NAME).map_err(std::io::Error::other)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| format!("the host agent {url} is unreachable: {e}"))?;
    let der = seen
        .lock()
        .expect("seen certificate")
        .clone()
        .ok_or("the host agent presented no certificate")?;
    let proof = proof(token, &der);
    let mut client = HostEnrollmentClient::new(channel);
    let refused = |status: Status| match status.code() {
        tonic::Code::Unimplemented => {
            "the host agent does not wait for enrollment (it is enrolled already, or was \
             started without a token)"
                .to_string()
        }
        _ => format!(
            "the host agent refused the enrollment: {}",
            status.message()
        ),
    };
    let csr = client
        .enroll(pb::EnrollRequest {
            proof: proof.clone(),
            host_name: authority.clone(),
        })
        .await
        .map_err(refused)?
        .into_inner()
        .csr_pem;
    let certificate_pem = pki
        .sign_request(&csr, SERVER_NAME)
        .map_err(|e| format!("signing the host agent's request: {e}"))?;
    client
        .complete_enrollment(pb::CompleteEnrollmentRequest {
            proof,
            certificate_pem,
            ca_pem: pki.ca_pem().to_string(),
            manager_certificate_pem: pki.client_identity().cert_pem,
        })
        .await
        .map_err(refused)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::parse("0123456789abcdef-enroll").unwrap()
    }

    #[test]
    fn tokens_are_long_printable_and_never_printed() {
        assert!(Token::parse("short").is_err());
        assert!(Token::parse("has a space inside it!").is_err());
        assert!(Token::parse(&"x".repeat(257)).is_err());
        let t = Token::parse("  0123456789abcdef\n").unwrap();
        assert_eq!(format!("{t:?}"), "Token(…)");
    }

    #[test]
    fn a_proof_holds_only_for_its_token_and_certificate() {
        let t = token();
        let p = proof(&t, b"certificate A");
        assert!(proof_matches(&t, b"certificate A", &p));
        assert!(
            !proof_matches(&t, b"certificate B", &p),
            "another certificate"
        );
        let other = Token::parse("fedcba9876543210-enroll").unwrap();
        assert!(
            !proof_matches(&other, b"certificate A", &p),
            "another token"
        );
        assert!(!proof_matches(&t, b"certificate A", &p[..31]));
    }

    #[test]
    fn a_request_signed_by_the_ca_becomes_an_identity_and_a_foreign_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let (done, _rx) = oneshot::channel();
        let e = Enrollment {
            token: token(),
            own_der: b"own".to_vec(),
            data_dir: dir.path().join("host"),
            pending: Mutex::new(None),
            done: Mutex::new(Some(done)),
        };
        let complete = |cert: String, ca: String| pb::CompleteEnrollmentRequest {
            proof: vec![],
            certificate_pem: cert,
            ca_pem: ca,
            manager_certificate_pem: pki.client_identity().cert_pem,
        };
        // Nothing requested yet.
        assert!(
            e.identity_of(&complete(String::new(), pki.ca_pem().into()))
                .unwrap_err()
                .contains("Enroll first")
        );
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::new(vec!["asks-for-another-name".into()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        *e.pending.lock().unwrap() = Some(key);
        let cert = pki.sign_request(&csr, SERVER_NAME).unwrap();
        let identity = e
            .identity_of(&complete(cert.clone(), pki.ca_pem().into()))
            .unwrap();
        identity.write(&e.data_dir).unwrap();
        assert_eq!(HostIdentity::load(&e.data_dir).unwrap(), Some(identity));
        // The CA named the host agent as managers check it, whatever the
        // request asked for.
        let der = der_of("c", &cert).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let sans = format!("{:?}", parsed.subject_alternative_name().unwrap());
        assert!(sans.contains(SERVER_NAME), "{sans}");
        assert!(!sans.contains("asks-for-another-name"), "{sans}");

        // A certificate from another CA, or for another key, is refused.
        let other = tempfile::tempdir().unwrap();
        let foreign = Pki::load_or_create(other.path()).unwrap();
        let key2 = rcgen::KeyPair::generate().unwrap();
        let csr2 = rcgen::CertificateParams::new(vec![SERVER_NAME.into()])
            .unwrap()
            .serialize_request(&key2)
            .unwrap()
            .pem()
            .unwrap();
        let by_foreign = foreign.sign_request(&csr, SERVER_NAME).unwrap();
        assert!(
            e.identity_of(&complete(by_foreign, pki.ca_pem().into()))
                .unwrap_err()
                .contains("not signed by")
        );
        let wrong_key = pki.sign_request(&csr2, SERVER_NAME).unwrap();
        assert!(
            e.identity_of(&complete(wrong_key, pki.ca_pem().into()))
                .unwrap_err()
                .contains("not for the host key")
        );
    }

    #[test]
    fn only_a_host_certificate_from_our_ca_counts_as_enrolled_here() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::new(vec![SERVER_NAME.into()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let ours = der_of("c", &pki.sign_request(&csr, SERVER_NAME).unwrap()).unwrap();
        assert!(issued_by(&pki, &ours));
        // Our CA's certificate for another name (a router's) is not a host
        // agent's.
        let router = der_of("c", &pki.sign_request(&csr, "r-1-VM").unwrap()).unwrap();
        assert!(!issued_by(&pki, &router));
        // The enrollment certificate (self-signed) and another CA's.
        let own = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()]).unwrap();
        assert!(!issued_by(&pki, own.cert.der()));
        let other = tempfile::tempdir().unwrap();
        let foreign = Pki::load_or_create(other.path()).unwrap();
        let theirs = der_of("c", &foreign.sign_request(&csr, SERVER_NAME).unwrap()).unwrap();
        assert!(!issued_by(&pki, &theirs));
        assert!(!issued_by(&pki, b"not a certificate"));
    }

    #[test]
    fn part_of_an_identity_is_an_error_not_a_fresh_host() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(HostIdentity::load(dir.path()).unwrap(), None);
        std::fs::create_dir_all(dir.path().join(IDENTITY_DIR)).unwrap();
        std::fs::write(dir.path().join(IDENTITY_DIR).join(CA_FILE), "x").unwrap();
        let err = HostIdentity::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("part of an enrolled identity"), "{err}");
    }
}
