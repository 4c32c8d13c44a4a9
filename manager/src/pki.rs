//! The manager's certificate authority for routers' agents reached over TCP
//! (DESIGN §4: "at first start the manager creates its CA (kept in the data
//! directory) and issues each router's certificate").
//!
//! `<data_dir>/pki/` holds the CA (`ca.pem`, `ca.key`) and the manager's own
//! client certificate (`manager.pem`, `manager.key`), all mode 0600. A router
//! gets a server certificate whose DNS name is the router's name, which is
//! the name the agent client checks; the agent accepts only clients whose
//! certificate this CA signed.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::Datelike;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The subject of the CA. Issued certificates name it as their issuer, so it
/// must stay the same for the CA's lifetime (the issuer is rebuilt from it
/// and the stored key at every start).
const CA_COMMON_NAME: &str = "vpc-manager agent CA";
const ORGANIZATION: &str = "vpc-manager";
/// The name in the manager's client certificate.
pub const CLIENT_NAME: &str = "vpc-manager";

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const CLIENT_CERT: &str = "manager.pem";
const CLIENT_KEY: &str = "manager.key";

/// Why the PKI could not be loaded or a certificate issued.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("issuing a certificate for {name}: {source}")]
    Issue {
        name: String,
        #[source]
        source: rcgen::Error,
    },
}

/// A router agent's server certificate, its key and the CA that signs the
/// manager's client certificate (the agent's `--tls-cert`, `--tls-key`,
/// `--tls-ca`).
#[derive(Clone, PartialEq, Eq)]
pub struct RouterCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for RouterCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterCert").finish_non_exhaustive()
    }
}

/// The manager's client certificate and key, with the CA its peers'
/// certificates must chain to.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

/// The CA in `<data_dir>/pki/`.
pub struct Pki {
    dir: PathBuf,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
    client: ClientIdentity,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The CA's parameters; only its subject and key usages go into issued
/// certificates, so they must never change.
fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    p.distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// Valid from last year for `years` years: clocks of routers that are VMs may
/// lag behind the manager's.
fn set_validity(p: &mut CertificateParams, years: i32) {
    let year = chrono::Utc::now().year();
    p.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    p.not_after = rcgen::date_time_ymd(year + years, 1, 1);
}

fn read(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// Writes `text` to `path` readable by the owner only: temp file, fsync,
/// rename, so a crash never leaves half a key.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn parse_key(path: &Path, pem: &str) -> Result<KeyPair, PkiError> {
    KeyPair::from_pem(pem).map_err(|e| PkiError::Corrupt {
        path: path.into(),
        reason: format!("not a private key: {e}"),
    })
}

/// The four PEM texts of a PKI directory: what the managers of one cluster
/// share (through the database, [`crate::cluster::share_ca`]).
#[derive(Clone, PartialEq, Eq)]
pub struct PkiFiles {
    pub ca_cert: String,
    pub ca_key: String,
    pub client_cert: String,
    pub client_key: String,
}

impl std::fmt::Debug for PkiFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkiFiles").finish_non_exhaustive()
    }
}

impl PkiFiles {
    /// Reads them from `<data_dir>/pki/`; None when any is missing.
    pub fn read(data_dir: &Path) -> Result<Option<PkiFiles>, PkiError> {
        let dir = data_dir.join("pki");
        let texts = [CA_CERT, CA_KEY, CLIENT_CERT, CLIENT_KEY].map(|name| read(&dir.join(name)));
        let [ca_cert, ca_key, client_cert, client_key] = texts;
        Ok(match (ca_cert?, ca_key?, client_cert?, client_key?) {
            (Some(ca_cert), Some(ca_key), Some(client_cert), Some(client_key)) => Some(PkiFiles {
                ca_cert,
                ca_key,
                client_cert,
                client_key,
            }),
            _ => None,
        })
    }

    /// Writes them into `<data_dir>/pki/` (0600 each), keys first.
    pub fn write(&self, data_dir: &Path) -> Result<(), PkiError> {
        let dir = data_dir.join("pki");
        parse_key(&dir.join(CA_KEY), &self.ca_key)?;
        parse_key(&dir.join(CLIENT_KEY), &self.client_key)?;
        write_private(&dir.join(CA_KEY), &self.ca_key)?;
        write_private(&dir.join(CA_CERT), &self.ca_cert)?;
        write_private(&dir.join(CLIENT_KEY), &self.client_key)?;
        write_private(&dir.join(CLIENT_CERT), &self.client_cert)
    }
}

impl Pki {
    /// Loads the CA and the manager's client certificate from
    /// `<data_dir>/pki/`, creating what is missing (the CA at first start).
    pub fn load_or_create(data_dir: &Path) -> Result<Pki, PkiError> {
        let dir = data_dir.join("pki");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| PkiError::Io {
                path: dir.clone(),
                source,
            })?;
        let (ca_cert_path, ca_key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
        let (ca_pem, key, created) = match (read(&ca_cert_path)?, read(&ca_key_path)?) {
            (Some(cert), Some(key_pem)) => (cert, parse_key(&ca_key_path, &key_pem)?, false),
            (None, None) => {
                let key = KeyPair::generate().map_err(|source| PkiError::Issue {
                    name: CA_COMMON_NAME.into(),
                    source,
                })?;
                let mut params = ca_params();
                set_validity(&mut params, 20);
                let cert = params.self_signed(&key).map_err(|source| PkiError::Issue {
                    name: CA_COMMON_NAME.into(),
                    source,
                })?;
                // The key first: a CA certificate without its key is useless,
                // a key without a certificate is recreated below.
                write_private(&ca_key_path, &key.serialize_pem())?;
                write_private(&ca_cert_path, &cert.pem())?;
                tracing::info!(dir = %dir.display(), "created the agent CA");
                (cert.pem(), key, true)
            }
            (Some(_), None) => {
                return Err(PkiError::Corrupt {
                    path: ca_key_path,
                    reason: "the CA certificate exists but its key is missing".into(),
                });
            }
            (None, Some(_)) => {
                return Err(PkiError::Corrupt {
                    path: ca_cert_path,
                    reason: "the CA key exists but its certificate is missing".into(),
                });
            }
        };
        let issuer = Issuer::new(ca_params(), key);

        let (client_cert_path, client_key_path) = (dir.join(CLIENT_CERT), dir.join(CLIENT_KEY));
        let stored = match (read(&client_cert_path)?, read(&client_key_path)?) {
            (Some(cert), Some(key)) if !created => Some((cert, key)),
            _ => None,
        };
        let (cert_pem, key_pem) = match stored {
            Some(pair) => pair,
            None => {
                let (cert, key) = issue(
                    &issuer,
                    CLIENT_NAME,
                    ExtendedKeyUsagePurpose::ClientAuth,
                    20,
                )?;
                write_private(&client_key_path, &key)?;
                write_private(&client_cert_path, &cert)?;
                (cert, key)
            }
        };
        Ok(Pki {
            client: ClientIdentity {
                cert_pem,
                key_pem,
                ca_pem: ca_pem.clone(),
            },
            dir,
            ca_pem,
            issuer,
        })
    }

    /// Where the files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A new server certificate for the agent of router `name` (its DNS
    /// name is `name`, which the manager checks when it connects).
    pub fn issue_router(&self, name: &str) -> Result<RouterCert, PkiError> {
        let (cert_pem, key_pem) =
            issue(&self.issuer, name, ExtendedKeyUsagePurpose::ServerAuth, 5)?;
        Ok(RouterCert {
            cert_pem,
            key_pem,
            ca_pem: self.ca_pem.clone(),
        })
    }

    /// Signs the certificate signing request `csr_pem` (its signature is
    /// checked) as a server certificate for `name`: only the request's
    /// public key is taken, never the names or extensions it asks for, so
    /// an enrolling host agent gets exactly the identity managers check.
    pub fn sign_request(&self, csr_pem: &str, name: &str) -> Result<String, PkiError> {
        let failed = |source| PkiError::Issue {
            name: name.into(),
            source,
        };
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem).map_err(failed)?;
        csr.params = leaf_params(name, ExtendedKeyUsagePurpose::ServerAuth, 5).map_err(failed)?;
        Ok(csr.signed_by(&self.issuer).map_err(failed)?.pem())
    }

    /// The manager's client certificate (issued once, kept in the directory).
    pub fn client_identity(&self) -> ClientIdentity {
        self.client.clone()
    }
}

/// The parameters of a leaf certificate for `name`: the name as DNS name
/// and common name, `usage` as its only extended key usage, valid for
/// `years`.
fn leaf_params(
    name: &str,
    usage: ExtendedKeyUsagePurpose,
    years: i32,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(vec![name.to_string()])?;
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, years);
    Ok(params)
}

/// A leaf certificate for `name` signed by `issuer`: (certificate, key).
fn issue(
    issuer: &Issuer<'_, KeyPair>,
    name: &str,
    usage: ExtendedKeyUsagePurpose,
    years: i32,
) -> Result<(String, String), PkiError> {
    let failed = |source| PkiError::Issue {
        name: name.into(),
        source,
    };
    let key = KeyPair::generate().map_err(failed)?;
    let params = leaf_params(name, usage, years).map_err(failed)?;
    let cert = params.signed_by(&key, issuer).map_err(failed)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::server::WebPkiClientVerifier;

    use super::*;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate")
    }

    fn roots(ca_pem: &str) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(ca_pem)).expect("CA certificate");
        Arc::new(roots)
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// Verifies a server certificate for `name` the way the agent client
    /// does (WebPKI, the CA as the only root).
    fn verify_server(ca_pem: &str, cert_pem: &str, name: &str) -> Result<(), rustls::Error> {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca_pem), provider())
            .build()
            .expect("verifier");
        let name = ServerName::try_from(name.to_string()).expect("a DNS name");
        verifier
            .verify_server_cert(&der(cert_pem), &[], &name, &[], UnixTime::now())
            .map(drop)
    }

    #[test]
    fn the_ca_is_created_once_with_private_files_and_reloaded_the_same() {
        let data = tempfile::tempdir().unwrap();
        let first = Pki::load_or_create(data.path()).unwrap();
        let dir = data.path().join("pki");
        assert_eq!(first.dir(), dir);
        for file in [CA_CERT, CA_KEY, CLIENT_CERT, CLIENT_KEY] {
            let mode = std::fs::metadata(dir.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let again = Pki::load_or_create(data.path()).unwrap();
        assert_eq!(again.ca_pem(), first.ca_pem(), "the same CA");
        assert_eq!(again.client_identity(), first.client_identity());

        // A certificate issued after the reload still chains to the CA the
        // first start created.
        let cert = again.issue_router("r-7-VM").unwrap();
        assert_eq!(cert.ca_pem, first.ca_pem());
        verify_server(first.ca_pem(), &cert.cert_pem, "r-7-VM").unwrap();
    }

    #[test]
    fn a_router_certificate_verifies_for_its_name_only_and_against_its_ca_only() {
        let data = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(data.path()).unwrap();
        let cert = pki.issue_router("r-12-VM").unwrap();
        assert!(cert.key_pem.contains("PRIVATE KEY"));
        verify_server(pki.ca_pem(), &cert.cert_pem, "r-12-VM").unwrap();
        let other_name = verify_server(pki.ca_pem(), &cert.cert_pem, "r-13-VM").unwrap_err();
        assert!(
            matches!(other_name, rustls::Error::InvalidCertificate(_)),
            "{other_name:?}"
        );

        let elsewhere = tempfile::tempdir().unwrap();
        let other_ca = Pki::load_or_create(elsewhere.path()).unwrap();
        assert_ne!(other_ca.ca_pem(), pki.ca_pem());
        let foreign = verify_server(other_ca.ca_pem(), &cert.cert_pem, "r-12-VM").unwrap_err();
        assert!(
            matches!(foreign, rustls::Error::InvalidCertificate(_)),
            "{foreign:?}"
        );
    }

    #[test]
    fn the_client_certificate_is_accepted_by_an_agent_trusting_the_ca() {
        let data = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(data.path()).unwrap();
        let client = pki.client_identity();
        assert_eq!(client.ca_pem, pki.ca_pem());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(pki.ca_pem()), provider())
            .build()
            .unwrap();
        verifier
            .verify_client_cert(&der(&client.cert_pem), &[], UnixTime::now())
            .unwrap();
        // A router's server certificate is no client certificate.
        let server = pki.issue_router("r-1-VM").unwrap();
        assert!(
            verifier
                .verify_client_cert(&der(&server.cert_pem), &[], UnixTime::now())
                .is_err()
        );
    }

    #[test]
    fn half_a_ca_is_reported_not_replaced() {
        let data = tempfile::tempdir().unwrap();
        Pki::load_or_create(data.path()).unwrap();
        std::fs::remove_file(data.path().join("pki").join(CA_KEY)).unwrap();
        let err = Pki::load_or_create(data.path()).unwrap_err();
        assert!(err.to_string().contains("key is missing"), "{err}");
    }
}
