//! `vpc-manager host-agent`: a host agent on its own, on a Unix socket or
//! on TCP with mutual TLS. It takes back what its last run left running,
//! serves until SIGTERM or SIGINT, then stops serving and leaves every
//! router and VM running (the next start takes them back again).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::server::{self, HostAgent};
use crate::pki::Pki;
use crate::settings::{AgentTransport, Settings};

/// Where a host agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A Unix socket (mode 0600).
    Unix(PathBuf),
    /// TCP with mutual TLS.
    Tcp(SocketAddr),
}

impl Listen {
    /// Parses `unix:PATH`, `unix://PATH`, `tcp://IP:PORT` or `IP:PORT`.
    pub fn parse(text: &str) -> anyhow::Result<Listen> {
        if let Some(path) = text
            .strip_prefix("unix://")
            .or_else(|| text.strip_prefix("unix:"))
        {
            anyhow::ensure!(
                !path.is_empty(),
                "--listen {text}: the socket path is missing"
            );
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        let addr = text.strip_prefix("tcp://").unwrap_or(text);
        addr.parse()
            .map(Listen::Tcp)
            .with_context(|| format!("--listen {text}: expected unix:PATH or tcp://IP:PORT"))
    }
}

/// Runs a host agent with `settings` (data directory, namespace prefix,
/// vr-agent, agent transport; the database only to fetch the cluster CA for
/// TCP) until `shutdown` resolves.
pub async fn run(
    settings: Settings,
    listen: Listen,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    crate::serve::create_private_dir(&settings.data_dir, 0o711)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let needs_ca =
        matches!(listen, Listen::Tcp(_)) || settings.agent_transport == AgentTransport::Tcp;
    let pki = if needs_ca {
        // The cluster's CA, when a database is named; else the one in the
        // data directory (shared with a manager on the same directory).
        if settings.database_url.is_some() {
            crate::serve::share_ca(&settings).await?;
        }
        Some(Arc::new(
            Pki::load_or_create(&settings.data_dir).context("the cluster CA")?,
        ))
    } else {
        None
    };
    let driver = crate::serve::netns_driver(&settings, pki.clone())?;
    let agent = HostAgent::new(driver.clone(), &settings.data_dir);
    let recovered = agent.recover().await;
    tracing::info!(
        ?recovered,
        prefix = driver.prefix(),
        "host agent: last run's routers and VMs taken back"
    );
    let served = match &listen {
        Listen::Unix(path) => {
            let listener = server::bind_unix(path)?;
            tracing::info!(socket = %path.display(), "host agent listening");
            let served = server::serve_unix(agent, listener, shutdown).await;
            let _ = std::fs::remove_file(path);
            served
        }
        Listen::Tcp(addr) => {
            let pki = pki.context("the cluster CA")?;
            tracing::info!(%addr, mtls = true, "host agent listening");
            server::serve_tcp(agent, *addr, &pki, shutdown).await
        }
    };
    // Routers and VMs keep running; the next start takes them back.
    driver.shutdown().await;
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_a_socket_path_or_a_tcp_address() {
        assert_eq!(
            Listen::parse("unix:/run/h.sock").unwrap(),
            Listen::Unix("/run/h.sock".into())
        );
        assert_eq!(
            Listen::parse("unix:///run/h.sock").unwrap(),
            Listen::Unix("/run/h.sock".into())
        );
        assert_eq!(
            Listen::parse("tcp://127.0.0.1:9443").unwrap(),
            Listen::Tcp("127.0.0.1:9443".parse().unwrap())
        );
        assert!(Listen::parse("unix:").is_err());
        assert!(Listen::parse("http://x").is_err());
    }
}
