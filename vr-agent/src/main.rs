//! vr-agent: the daemon inside a VPC virtual router.
//!
//! It serves `vpc.agent.v1.VirtualRouter` (plus gRPC reflection and
//! `grpc.health.v1`) on a Unix socket or on TCP with mutual TLS, and programs
//! the router's namespace: links, addresses, route tables and rules through
//! netlink, one nftables table, and a dnsmasq per tier. It also serves the
//! tiers' VMs their user data, metadata and passwords (ports 80 and 8080).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use vr_agent::agent::{Agent, AgentSettings};
use vr_agent::apply::dnsmasq::DnsmasqOptions;
use vr_agent::endpoint::tls::MANAGER_CLIENT_NAME;
use vr_agent::endpoint::{DEFAULT_MAX_REQUEST_BYTES, Endpoint, ServeOptions, TlsFiles};
use vr_agent::model::Limits;
use vr_agent::{accounts, metadata, netns, service};

/// The VPC virtual router agent.
#[derive(Parser, Debug)]
#[command(name = "vr-agent", version, about)]
struct Cli {
    /// Where to listen: unix:///path/to/socket or tcp://ip:port.
    #[arg(long, env = "VR_AGENT_LISTEN")]
    listen: String,

    /// PEM certificate of this agent (TCP only).
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,

    /// PEM private key of this agent (TCP only).
    #[arg(long)]
    tls_key: Option<PathBuf>,

    /// PEM CA that signs the manager's client certificates (TCP only).
    #[arg(long)]
    tls_ca: Option<PathBuf>,

    /// The name (DNS name, or common name) the manager's client certificate
    /// must carry; it must also be limited to client authentication.
    #[arg(long, default_value = MANAGER_CLIENT_NAME)]
    tls_client_name: String,

    /// The group (name or number) allowed to use the Unix socket: mode 0660
    /// instead of 0600 (root only).
    #[arg(long)]
    socket_group: Option<String>,

    /// Serve TCP without TLS. Only for debugging on a trusted link.
    #[arg(long)]
    insecure: bool,

    /// Directory for the persisted desired state.
    #[arg(long, default_value = "/var/lib/vr-agent")]
    state_dir: PathBuf,

    /// Allow running in the host's initial network namespace.
    #[arg(long)]
    allow_init_netns: bool,

    /// How often the kernel and dnsmasq are checked against the desired
    /// state and repaired, in seconds.
    #[arg(long, default_value_t = 10.0)]
    reconcile_interval: f64,

    /// The nft binary.
    #[arg(long, default_value = "nft")]
    nft: PathBuf,

    /// The dnsmasq binary.
    #[arg(long, default_value = "dnsmasq")]
    dnsmasq: PathBuf,

    /// Most items in one NIC's ACL list; longer lists are refused.
    #[arg(long, default_value_t = Limits::default().acl_items)]
    max_acl_items: usize,

    /// Most nft set elements an ACL list may need per item and CIDR; a list
    /// whose overlapping items would need more is refused naming them.
    #[arg(long, default_value_t = Limits::default().acl_elements_per_entry)]
    max_acl_elements_per_item: usize,

    /// Most port forwarding rules of the router.
    #[arg(long, default_value_t = Limits::default().port_forwards)]
    max_port_forwards: usize,

    /// Most static DHCP leases of one tier.
    #[arg(long, default_value_t = Limits::default().dhcp_entries)]
    max_dhcp_entries: usize,

    /// Largest request message, in bytes (gRPC's max decoding size).
    #[arg(long, default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    max_request_bytes: usize,

    /// The unprivileged user dnsmasq runs as (it must be able to search
    /// the state directory: mode o+x on it and its parents).
    #[arg(long, default_value_t = DnsmasqOptions::default().user)]
    dnsmasq_user: String,

    /// The unprivileged group dnsmasq runs as.
    #[arg(long, default_value_t = DnsmasqOptions::default().group)]
    dnsmasq_group: String,

    /// The size in bytes past which a dnsmasq log is rotated (it keeps one
    /// old log, ethN.log.1).
    #[arg(long, default_value_t = DnsmasqOptions::default().log_max_bytes)]
    dnsmasq_log_bytes: u64,
    /// Accept the agent's TCP port on every NIC while the router has no
    /// control NIC. Off by default: until the manager names the control
    /// NIC, the port is reachable only from inside the router's namespace
    /// (how the netns driver connects), never on the public NIC.
    #[arg(long)]
    open_agent_port_before_control: bool,

    /// Do not serve the VM services (user data and metadata on port 80,
    /// passwords on port 8080) that cloud-init's CloudStack data source
    /// reads from the router.
    #[arg(long)]
    no_vm_services: bool,

    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,

    /// Test hook: milliseconds each journal append waits before it is
    /// written (a window to kill the agent in). Not for production.
    #[arg(long, hide = true)]
    test_journal_delay_ms: Option<u64>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only when a person reads the log on a terminal; the
    // netns driver sends it to a file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);

    if netns::is_initial_netns().context("reading network namespaces")? && !cli.allow_init_netns {
        anyhow::bail!(
            "refusing to run in the host's initial network namespace: the agent rewrites \
             routes, rules and nftables of the namespace it runs in; run it inside the \
             router's namespace, or pass --allow-init-netns if this host is the router"
        );
    }

    let tls = match (&cli.tls_cert, &cli.tls_key, &cli.tls_ca) {
        (Some(cert), Some(key), Some(ca)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: ca.clone(),
            client_name: cli.tls_client_name.clone(),
        }),
        _ => None,
    };
    let endpoint = Endpoint::parse(&cli.listen, tls, cli.insecure)?;
    std::fs::create_dir_all(&cli.state_dir)
        .with_context(|| format!("creating state dir {}", cli.state_dir.display()))?;

    let mut settings = AgentSettings::new(cli.state_dir.clone());
    settings.nft_binary = cli.nft.clone();
    settings.dnsmasq_binary = cli.dnsmasq.clone();
    settings.agent_port = endpoint.tcp_port();
    settings.dnsmasq = DnsmasqOptions {
        user: cli.dnsmasq_user.clone(),
        group: cli.dnsmasq_group.clone(),
        log_max_bytes: cli.dnsmasq_log_bytes,
    };
    settings.dnsmasq.check().map_err(anyhow::Error::msg)?;
    settings.limits = Limits {
        acl_items: cli.max_acl_items,
        port_forwards: cli.max_port_forwards,
        dhcp_entries: cli.max_dhcp_entries,
        acl_elements_per_entry: cli.max_acl_elements_per_item,
    };
    let socket_group = match (&cli.socket_group, &endpoint) {
        (None, _) => None,
        (Some(group), Endpoint::Unix(_)) => {
            Some(accounts::group_id(group).with_context(|| format!("--socket-group {group}"))?)
        }
        (Some(_), Endpoint::Tcp { .. }) => {
            anyhow::bail!("--socket-group applies to unix:// listeners only")
        }
    };
    let mut serve_options = ServeOptions {
        max_request_bytes: cli.max_request_bytes,
        socket_group,
        serving: None,
    };
    settings.open_agent_port_before_control = cli.open_agent_port_before_control;
    settings.journal_delay = cli.test_journal_delay_ms.map(Duration::from_millis);
    let agent = Arc::new(Agent::start(settings).await?);
    serve_options.serving = Some(agent.serving());

    // A router without its VM services still routes: a port taken by
    // something else is logged, not fatal.
    let vm_services = if cli.no_vm_services {
        None
    } else {
        match metadata::server::serve(
            agent.vm_data(),
            Default::default(),
            Some(cli.state_dir.join("passwords-acknowledged.json")),
        )
        .await
        {
            Ok(task) => Some(task),
            Err(e) => {
                tracing::error!(error = %e, "the VM services (ports 80 and 8080) could not listen");
                None
            }
        }
    };

    let interval = Duration::from_secs_f64(cli.reconcile_interval.max(0.1));
    let reconciler = {
        let agent = agent.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                for line in agent.reconcile().await {
                    tracing::warn!("reconcile: {line}");
                }
            }
        })
    };

    let flushing = agent.clone();
    let result = endpoint
        .serve(
            service::RouterService::new(agent),
            &serve_options,
            shutdown_signal(),
        )
        .await;
    reconciler.abort();
    if let Some(task) = vm_services {
        task.abort();
    }
    // The changes answered are on disk before the agent exits.
    if let Err(e) = flushing.flush_state() {
        tracing::error!(error = %e, "the last changes were not persisted");
    }
    result
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
