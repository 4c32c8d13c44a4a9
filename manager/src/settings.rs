//! Manager settings: a TOML file (`--config`) with flags that override it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where routers and VMs run. The real driver is the default: a manager
/// that only pretends must be asked for by name, says so in a warning at
/// start, and names itself in every router (`hypervisor` `Simulator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// Network namespaces on this host (the real, working deployment).
    #[default]
    Netns,
    /// Nowhere: commands are recorded, nothing runs (API development and
    /// tests of the commands the manager produces).
    Simulated,
}

/// How the manager reaches routers' agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum AgentTransport {
    /// A Unix socket per router (routers on this host).
    #[default]
    Unix,
    /// TCP with mutual TLS (routers that are VMs elsewhere).
    Tcp,
}

/// The manager's settings after the file and the flags are merged.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Directory for the SQLite database, cloudstack.ini and certificates.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default: a SQLite file in data_dir.
    pub database_url: Option<String>,
    pub log_format: LogFormat,
    /// This manager's name in job rows (several managers share PostgreSQL).
    pub manager_id: Option<String>,
    /// The network gurus to enable, by the names the registry takes
    /// (GuestVlan, GuestVxlan, PrivateGateway, Public, Control, any case);
    /// default all.
    pub network_gurus: Option<Vec<String>>,
    /// The network elements to enable (VpcVirtualRouter); default all.
    pub network_elements: Option<Vec<String>>,
    /// Where routers and VMs run.
    pub driver: DriverKind,
    /// The prefix of every network namespace the netns driver creates.
    pub netns_prefix: String,
    /// The vr-agent binary the netns driver starts in router namespaces;
    /// default: `vr-agent` next to the manager's own binary.
    pub agent_path: Option<PathBuf>,
    /// How the manager reaches routers' agents.
    pub agent_transport: AgentTransport,
    /// At the first start, create a zone ready for VPCs (see
    /// `store::bootstrap::first_zone`).
    pub bootstrap_zone: bool,
    /// The longest a request waits for a database connection (ms): when the
    /// database is down, requests fail with 530 after this instead of
    /// hanging.
    pub database_acquire_timeout_ms: u64,
    /// The file holding the database key that seals secrets at rest (base64
    /// of 32 bytes); `VPC_DATABASE_KEY` in the environment wins over it.
    /// Default: `database.key` in data_dir, generated at the first start.
    pub database_key_file: Option<PathBuf>,
    /// PEM certificate chain of the API: with `tls_key`, the API is served
    /// over HTTPS only. Default: plain HTTP (meant for loopback).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// At a graceful stop (SIGTERM), how long running jobs may go on to
    /// their end (ms); those still running then are handed back for
    /// another manager (or the next start) to run again.
    pub shutdown_job_wait_ms: u64,
    /// The host agent that runs this manager's routers and VMs (netns
    /// driver): `unix:///path/host-agent.sock`, or `https://host:port`
    /// (mutual TLS from the cluster CA). Default: one started in-process,
    /// on `host-agent.sock` in data_dir.
    pub host_agent_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".parse().expect("constant"),
            data_dir: PathBuf::from("/var/lib/vpc-manager"),
            database_url: None,
            log_format: LogFormat::Text,
            manager_id: None,
            network_gurus: None,
            network_elements: None,
            driver: DriverKind::default(),
            netns_prefix: "vpc-".into(),
            agent_path: None,
            agent_transport: AgentTransport::default(),
            bootstrap_zone: false,
            database_acquire_timeout_ms: u64::try_from(
                crate::store::DEFAULT_ACQUIRE_TIMEOUT.as_millis(),
            )
            .unwrap_or(u64::MAX),
            database_key_file: None,
            tls_cert: None,
            tls_key: None,
            shutdown_job_wait_ms: 30_000,
            host_agent_url: None,
        }
    }
}

/// Errors reading the settings file.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
}

impl Settings {
    /// Reads a TOML settings file; missing keys take their defaults.
    pub fn from_file(path: &Path) -> Result<Settings, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| SettingsError::Parse {
            path: path.into(),
            source,
        })
    }

    /// The database URL: the configured one, or a SQLite file in data_dir.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("vpc-manager.db").display()
            )
        })
    }

    /// [`Settings::database_acquire_timeout_ms`] as a duration.
    pub fn database_acquire_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.database_acquire_timeout_ms)
    }

    /// The endpoint clients use, for cloudstack.ini.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls() { "https" } else { "http" };
        format!("{scheme}://{}/client/api", self.listen)
    }

    /// Whether the API is served over TLS (a certificate and key are set).
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    /// This manager's id in job rows.
    pub fn manager_id(&self) -> String {
        self.manager_id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", hostname(), self.listen.port()))
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "manager".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routers_run_for_real_unless_the_simulation_is_asked_for() {
        assert_eq!(Settings::default().driver, DriverKind::Netns);
        let s: Settings = toml::from_str("driver = \"simulated\"\n").unwrap();
        assert_eq!(s.driver, DriverKind::Simulated);
    }

    #[test]
    fn file_values_override_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9090\"\ndata_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        let s = Settings::from_file(&path).unwrap();
        assert_eq!(s.listen.port(), 9090);
        assert_eq!(s.database_url(), "sqlite:///tmp/x/vpc-manager.db?mode=rwc");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        assert!(matches!(
            Settings::from_file(&path),
            Err(SettingsError::Parse { .. })
        ));
    }
}
