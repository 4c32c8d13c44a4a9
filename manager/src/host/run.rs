//! `vpc-manager host-agent`: a host agent on its own, on a Unix socket or
//! on TCP with mutual TLS. It takes back what its last run left running,
//! sweeps its own leftovers periodically, serves until SIGTERM or SIGINT,
//! then stops serving and leaves every router and VM running (the next
//! start takes them back again).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::enroll::HostIdentity;
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

/// What a standalone host agent adds to the manager's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOptions {
    /// The network between hosts; None keeps every segment on this host.
    pub underlay: Option<crate::driver::netns::Underlay>,
    /// The name `Describe` reports; None: the hostname.
    pub host_name: Option<String>,
    /// How often the sweeper runs; None: never.
    pub sweep_interval: Option<Duration>,
    /// A one-time enrollment token: on TCP with no identity yet, the host
    /// agent waits to be enrolled by `addHost` (see [`super::enroll`]).
    pub enroll_token: Option<super::enroll::Token>,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            underlay: None,
            host_name: None,
            sweep_interval: Some(crate::provision::monitor::SWEEP_INTERVAL),
            enroll_token: None,
        }
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
    run_with(settings, HostOptions::default(), listen, shutdown).await
}

/// Removes, every `interval`, the namespaces of the host agent's prefix
/// that none of its records (nor its driver) holds: leftovers of a crash or
/// of a router or VM destroyed while the host agent was down.
async fn run_sweeper(agent: HostAgent, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let removed = agent.sweep().await;
        if !removed.is_empty() {
            tracing::info!(?removed, "host agent: namespaces no record holds removed");
        }
    }
}

/// [`run`] with the host agent's own options.
pub async fn run_with(
    settings: Settings,
    options: HostOptions,
    listen: Listen,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    if let Some(u) = &options.underlay {
        anyhow::ensure!(
            crate::driver::netns::names::netns_exists(&u.netns),
            "--underlay-netns {}: no such network namespace (name the host's own with \
             `ip netns attach {} 1`)",
            u.netns,
            u.netns
        );
    }
    crate::serve::create_private_dir(&settings.data_dir, 0o711)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    // On TCP the host agent's own certificate comes, in this order, from its
    // enrolled identity, from an enrollment it waits for (a token), or from
    // the cluster CA itself (a database named, or a CA in the data
    // directory shared with a manager). Routers' agents on TCP need the CA.
    let identity = match &listen {
        Listen::Tcp(_) => HostIdentity::load(&settings.data_dir)?,
        Listen::Unix(_) => None,
    };
    let enrolling = identity.is_none() && options.enroll_token.is_some();
    // An enrolled (or enrolling) host agent holds no CA key: its routers'
    // TLS material comes with StartRouter. Creating a CA here would make a
    // foreign one.
    let needs_ca = identity.is_none()
        && !enrolling
        && (settings.agent_transport == AgentTransport::Tcp || matches!(listen, Listen::Tcp(_)));
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
    let mut shutdown = std::pin::pin!(shutdown);
    let identity = match (&listen, identity, options.enroll_token.clone()) {
        (Listen::Tcp(addr), None, Some(token)) => {
            match super::enroll::serve_enrollment(
                *addr,
                token,
                &settings.data_dir,
                shutdown.as_mut(),
            )
            .await?
            {
                Some(identity) => Some(identity),
                // Stopped before anyone enrolled it.
                None => return Ok(()),
            }
        }
        (_, identity, _) => identity,
    };
    let router_tls = Arc::new(server::RouterTlsBook::default());
    let mut driver = crate::serve::netns_driver_with(
        &settings,
        Some(router_tls.provider(pki.clone().map(crate::driver::tls_from_pki))),
    )?;
    if let Some(u) = options.underlay.clone() {
        driver = driver.with_underlay(u);
    }
    let agent = HostAgent::new(driver.clone(), &settings.data_dir)
        .with_name(options.host_name)
        .with_router_tls(router_tls);
    let recovered = agent.recover().await;
    tracing::info!(
        ?recovered,
        prefix = driver.prefix(),
        underlay = ?driver.underlay(),
        "host agent: last run's routers and VMs taken back"
    );
    let sweeper = options
        .sweep_interval
        .map(|every| tokio::spawn(run_sweeper(agent.clone(), every)));
    let served = match &listen {
        Listen::Unix(path) => {
            let listener = server::bind_unix(path)?;
            tracing::info!(socket = %path.display(), "host agent listening");
            let served = server::serve_unix(agent, listener, shutdown).await;
            let _ = std::fs::remove_file(path);
            served
        }
        Listen::Tcp(addr) => {
            let tls = match (&identity, &pki) {
                (Some(identity), _) => identity.server_tls()?,
                (None, Some(pki)) => super::tls::server_tls(pki)?,
                (None, None) => anyhow::bail!("the host agent has no certificate"),
            };
            tracing::info!(%addr, mtls = true, enrolled = identity.is_some(), "host agent listening");
            server::serve_tcp(agent, *addr, tls, shutdown).await
        }
    };
    if let Some(sweeper) = sweeper {
        sweeper.abort();
    }
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
