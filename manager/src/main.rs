//! vpc-manager: the VPC management service.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vpc_manager::serve::Manager;
use vpc_manager::settings::{AgentTransport, DriverKind, LogFormat, Settings};

/// The VPC management service (CloudStack-compatible API).
#[derive(Parser, Debug)]
#[command(name = "vpc-manager", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API.
    Serve(ServeArgs),
    /// Namespaces of the netns driver an operator or the demo needs
    /// besides routers and VMs.
    #[command(subcommand)]
    Netns(NetnsCommand),
    /// Run a host agent: the routers and VMs of this host, driven by
    /// managers over gRPC (vpc.host.v1).
    HostAgent(HostAgentArgs),
}

#[derive(clap::Args, Debug)]
struct HostAgentArgs {
    /// Where to listen: unix:PATH (a socket, mode 0600) or tcp://IP:PORT
    /// (mutual TLS from the cluster CA, admitting only the manager).
    #[arg(long)]
    listen: String,
    /// TOML settings file (the manager's keys; data_dir, netns_prefix,
    /// agent_path, agent_transport, database_url are used); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (routers' and VMs' files, the host agent's records).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Prefix of every network namespace (default vpc-).
    #[arg(long)]
    netns_prefix: Option<String>,
    /// The vr-agent binary (default: next to this binary).
    #[arg(long)]
    agent_path: Option<PathBuf>,
    /// How routers' agents listen.
    #[arg(long, value_enum)]
    agent_transport: Option<AgentTransport>,
    /// The cluster's database, to fetch the cluster CA (TCP only).
    #[arg(long)]
    database_url: Option<String>,
    /// File holding the database key (base64 of 32 bytes; VPC_DATABASE_KEY wins).
    #[arg(long)]
    database_key_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// This host's address on the network between hosts (IP/prefix, e.g.
    /// 10.250.0.1/24): VXLAN segments bind to it and reach other hosts.
    /// Without it every segment stays on this host.
    #[arg(long)]
    underlay_address: Option<ipnet::Ipv4Net>,
    /// The underlay's MTU; VXLAN segments get 50 bytes less.
    #[arg(long, default_value_t = 1500)]
    underlay_mtu: u32,
    /// The network namespace holding the underlay's bridges (a lab's fabric
    /// namespace; on a real host its own, named with `ip netns attach`).
    #[arg(long)]
    underlay_netns: Option<String>,
    /// The name managers show for this host (default: the hostname).
    #[arg(long)]
    host_name: Option<String>,
    /// Seconds between two sweeps of namespaces no record holds; 0: never.
    #[arg(long, default_value_t = 60)]
    sweep_interval: u64,
    /// File holding a one-time enrollment token (16 to 256 printable
    /// characters; VPC_HOST_ENROLL_TOKEN wins). On TCP with no identity
    /// yet, the host agent waits until `addHost` enrolls it with this token
    /// as `password`.
    #[arg(long)]
    enroll_token_file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// TOML settings file; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// API address (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Data directory (SQLite database, cloudstack.ini).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// sqlite://FILE or postgres://... (default: a SQLite file in the data directory).
    #[arg(long)]
    database_url: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Where routers and VMs run (default netns; simulated runs nothing
    /// and says so in a warning and in every router's hypervisor).
    #[arg(long, value_enum)]
    driver: Option<DriverKind>,
    /// Prefix of every network namespace the netns driver creates (default vpc-).
    #[arg(long)]
    netns_prefix: Option<String>,
    /// The vr-agent binary (default: next to this binary).
    #[arg(long)]
    agent_path: Option<PathBuf>,
    /// How routers' agents are reached.
    #[arg(long, value_enum)]
    agent_transport: Option<AgentTransport>,
    /// At the first start, create zone1 with a VLAN range and a public range
    /// in 203.0.113.0/24.
    #[arg(long)]
    bootstrap_zone: bool,
    /// PEM certificate chain: with --tls-key, the API is served over HTTPS.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// File holding the database key that seals secrets at rest (base64 of
    /// 32 bytes; VPC_DATABASE_KEY wins; default data_dir/database.key).
    #[arg(long)]
    database_key_file: Option<PathBuf>,
    /// The host agent that runs routers and VMs: unix:///PATH or
    /// https://HOST:PORT (default: one started in-process).
    #[arg(long)]
    host_agent_url: Option<String>,
}

#[derive(Subcommand, Debug)]
enum NetnsCommand {
    /// Creates (or completes) an on-premises network behind a private
    /// gateway's VLAN, through the driver; prints its namespace.
    Onprem(OnpremArgs),
    /// Removes an on-premises namespace (and the VLAN's bridge if no router
    /// uses it any more).
    RemoveOnprem(OnpremSegmentArgs),
    /// Prints the name of a zone's upstream ("internet") namespace.
    Upstream(ZoneArgs),
}

#[derive(clap::Args, Debug)]
struct ZoneArgs {
    /// The driver's namespace prefix (the manager's --netns-prefix).
    #[arg(long, default_value = "vpc-")]
    prefix: String,
    /// The zone's UUID.
    #[arg(long)]
    zone: uuid::Uuid,
}

#[derive(clap::Args, Debug)]
struct OnpremSegmentArgs {
    #[command(flatten)]
    zone: ZoneArgs,
    /// The private gateway's VLAN: N or a broadcast URI (vlan://N, vxlan://N).
    #[arg(long)]
    vlan: String,
}

#[derive(clap::Args, Debug)]
struct OnpremArgs {
    #[command(flatten)]
    segment: OnpremSegmentArgs,
    /// Its address on the VLAN: the private gateway's `gateway` with the
    /// prefix length (172.16.100.1/24).
    #[arg(long)]
    address: ipnet::Ipv4Net,
    /// A network behind it, as an address of it put on the loopback
    /// (192.168.100.1/24); repeatable.
    #[arg(long)]
    behind: Vec<ipnet::Ipv4Net>,
    /// A route DESTINATION=NEXTHOP (the VPC's CIDR via the router's
    /// private gateway address); repeatable.
    #[arg(long, value_parser = parse_route)]
    route: Vec<(ipnet::Ipv4Net, std::net::Ipv4Addr)>,
}

fn parse_route(s: &str) -> Result<(ipnet::Ipv4Net, std::net::Ipv4Addr), String> {
    let (dest, via) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected DESTINATION=NEXTHOP"))?;
    Ok((
        dest.parse().map_err(|e| format!("{dest:?}: {e}"))?,
        via.parse().map_err(|e| format!("{via:?}: {e}"))?,
    ))
}

impl OnpremSegmentArgs {
    fn broadcast_uri(&self) -> String {
        if self.vlan.contains("://") {
            self.vlan.clone()
        } else {
            format!("vlan://{}", self.vlan)
        }
    }
}

/// A driver for namespaces outside routers and VMs: no agent is started,
/// no file written.
fn netns_driver(prefix: &str) -> anyhow::Result<vpc_manager::driver::NetnsDriver> {
    Ok(vpc_manager::driver::NetnsDriver::new(
        prefix,
        std::env::temp_dir(),
        vpc_manager::driver::default_agent_path(),
        AgentTransport::Unix,
        Default::default(),
        None,
    )?)
}

async fn netns_command(command: NetnsCommand) -> anyhow::Result<()> {
    match command {
        NetnsCommand::Onprem(args) => {
            let seg = &args.segment;
            let driver = netns_driver(&seg.zone.prefix)?;
            let spec = vpc_manager::driver::OnPrem {
                address: args.address,
                behind: args.behind,
                routes: args.route,
            };
            let ns = driver
                .onprem(&seg.zone.zone, &seg.broadcast_uri(), &spec)
                .await
                .context("creating the on-premises namespace")?;
            println!("{ns}");
        }
        NetnsCommand::RemoveOnprem(seg) => {
            let driver = netns_driver(&seg.zone.prefix)?;
            driver
                .remove_onprem(&seg.zone.zone, &seg.broadcast_uri())
                .await
                .context("removing the on-premises namespace")?;
        }
        NetnsCommand::Upstream(zone) => {
            println!("{}", netns_driver(&zone.prefix)?.upstream_ns(&zone.zone));
        }
    }
    Ok(())
}

fn settings(args: &ServeArgs) -> anyhow::Result<Settings> {
    let mut s = match &args.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    if let Some(v) = args.listen {
        s.listen = v;
    }
    if let Some(v) = &args.data_dir {
        s.data_dir = v.clone();
    }
    if let Some(v) = &args.database_url {
        s.database_url = Some(v.clone());
    }
    if let Some(v) = args.log_format {
        s.log_format = v;
    }
    if let Some(v) = args.driver {
        s.driver = v;
    }
    if let Some(v) = &args.netns_prefix {
        s.netns_prefix = v.clone();
    }
    if let Some(v) = &args.agent_path {
        s.agent_path = Some(v.clone());
    }
    if let Some(v) = args.agent_transport {
        s.agent_transport = v;
    }
    if args.bootstrap_zone {
        s.bootstrap_zone = true;
    }
    if let Some(v) = &args.tls_cert {
        s.tls_cert = Some(v.clone());
    }
    if let Some(v) = &args.tls_key {
        s.tls_key = Some(v.clone());
    }
    if let Some(v) = &args.database_key_file {
        s.database_key_file = Some(v.clone());
    }
    if let Some(v) = &args.host_agent_url {
        s.host_agent_url = Some(v.clone());
    }
    Ok(s)
}

fn host_agent_settings(args: &HostAgentArgs) -> anyhow::Result<Settings> {
    let mut s = match &args.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    if let Some(v) = &args.data_dir {
        s.data_dir = v.clone();
    }
    if let Some(v) = &args.netns_prefix {
        s.netns_prefix = v.clone();
    }
    if let Some(v) = &args.agent_path {
        s.agent_path = Some(v.clone());
    }
    if let Some(v) = args.agent_transport {
        s.agent_transport = v;
    }
    if let Some(v) = &args.database_url {
        s.database_url = Some(v.clone());
    }
    if let Some(v) = &args.database_key_file {
        s.database_key_file = Some(v.clone());
    }
    if let Some(v) = args.log_format {
        s.log_format = v;
    }
    Ok(s)
}

fn host_options(args: &HostAgentArgs) -> anyhow::Result<vpc_manager::host::run::HostOptions> {
    use vpc_manager::driver::netns::Underlay;
    let underlay = match (args.underlay_address, &args.underlay_netns) {
        (Some(address), Some(netns)) => Some(
            Underlay::new(address, args.underlay_mtu, netns)
                .map_err(|e| anyhow::anyhow!("--underlay-*: {e}"))?,
        ),
        (None, None) => None,
        (Some(_), None) => anyhow::bail!("--underlay-address needs --underlay-netns"),
        (None, Some(_)) => anyhow::bail!("--underlay-netns needs --underlay-address"),
    };
    if let Some(name) = &args.host_name {
        anyhow::ensure!(
            !name.is_empty()
                && name.len() <= 253
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "--host-name {name:?}: 1-253 letters, digits, '.', '_' or '-'"
        );
    }
    let token = match (
        std::env::var("VPC_HOST_ENROLL_TOKEN").ok(),
        &args.enroll_token_file,
    ) {
        (Some(text), _) => Some(text),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--enroll-token-file {}", path.display()))?,
        ),
        (None, None) => None,
    };
    let enroll_token = token
        .map(|t| vpc_manager::host::enroll::Token::parse(&t))
        .transpose()
        .map_err(|e| anyhow::anyhow!("the enrollment token: {e}"))?;
    Ok(vpc_manager::host::run::HostOptions {
        enroll_token,
        underlay,
        host_name: args.host_name.clone(),
        sweep_interval: (args.sweep_interval > 0)
            .then(|| std::time::Duration::from_secs(args.sweep_interval)),
    })
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only where a person reads them: a file, journald or a
    // pipe gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight requests"),
        _ = int.recv() => tracing::info!("SIGINT: finishing in-flight requests"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let settings = settings(&args)?;
            init_tracing(settings.log_format);
            let manager = Manager::start(settings)
                .await
                .context("starting the manager")?;
            manager.serve(shutdown_signal()).await
        }
        Command::Netns(command) => netns_command(command).await,
        Command::HostAgent(args) => {
            let settings = host_agent_settings(&args)?;
            let options = host_options(&args)?;
            let listen = vpc_manager::host::run::Listen::parse(&args.listen)?;
            init_tracing(settings.log_format);
            vpc_manager::host::run::run_with(settings, options, listen, shutdown_signal()).await
        }
    }
}
