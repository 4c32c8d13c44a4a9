//! Starting the manager: store, bootstrap, jobs, HTTP server, shutdown.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::agent_client::GrpcAgentClient;
use crate::driver::NetnsDriver;
use crate::host::{HostAgent, HostDriver};
use crate::orchestration::Plugins;
use crate::orchestration::agent::Endpoints;
use crate::pki::Pki;
use crate::provision::{Backend, Network};
use crate::server::jobs::Jobs;
use crate::server::{App, http};
use crate::services;
use crate::settings::Settings;
use crate::settings::{AgentTransport, DriverKind};
use crate::store::secret::{self, SecretBox};
use crate::store::{Db, bootstrap};

/// Writes the admin's credentials where the `cs` client finds them
/// (`CLOUDSTACK_CONFIG=<file> cs listZones`), readable by root only.
pub fn write_cloudstack_ini(
    path: &Path,
    endpoint: &str,
    key: &str,
    secret: &str,
) -> std::io::Result<()> {
    let tmp = path.with_extension("ini.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    write!(
        file,
        "[cloudstack]\nendpoint = {endpoint}\nkey = {key}\nsecret = {secret}\n"
    )?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Creates `dir` and its missing parents with `mode`; an existing directory
/// keeps its mode (an operator may have chosen it).
pub fn create_private_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
}

/// Makes the SQLite file of `url` (if it is one) readable by its owner only
/// before SQLite opens it: created empty with mode 0600, or an existing file
/// narrowed to 0600. SQLite gives its `-wal` and `-shm` files the database
/// file's mode.
pub fn private_sqlite_file(url: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return Ok(());
    };
    let path = Path::new(rest.split('?').next().unwrap_or(rest));
    if path.as_os_str().is_empty() || rest.starts_with(":memory:") {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        }
        Err(e) => Err(e),
    }
}

/// The database key (see [`crate::store::secret`]): `VPC_DATABASE_KEY`,
/// else the settings' `database_key_file`, else `database.key` in the data
/// directory, generated at the first start.
pub fn secret_box(settings: &Settings) -> anyhow::Result<SecretBox> {
    if let Ok(text) = std::env::var(secret::KEY_ENV) {
        return SecretBox::from_key_text(&text).with_context(|| secret::KEY_ENV.to_string());
    }
    if let Some(path) = &settings.database_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the database key {}", path.display()))?;
        return SecretBox::from_key_text(&text).with_context(|| path.display().to_string());
    }
    Ok(SecretBox::load_or_create(
        &settings.data_dir.join(secret::DEFAULT_KEY_FILE),
    )?)
}

/// Puts the cluster's agent CA into the data directory before the driver
/// loads it ([`crate::cluster::share_ca`]), on a connection of its own.
pub async fn share_ca(settings: &Settings) -> anyhow::Result<()> {
    create_private_dir(&settings.data_dir, 0o711)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let secrets = secret_box(settings).context("the database key")?;
    private_sqlite_file(&settings.database_url()).context("creating the SQLite database file")?;
    let db = Db::connect_with(
        &settings.database_url(),
        settings.database_acquire_timeout(),
    )
    .await
    .context("opening the database")?;
    let shared = crate::cluster::share_ca(&db, &secrets, &settings.data_dir).await;
    db.close().await;
    shared.context("sharing the agent CA")?;
    Ok(())
}

/// A manager ready to serve: its app state and bound listener.
pub struct Manager {
    pub app: Arc<App>,
    pub listener: TcpListener,
    pub cloudstack_ini: PathBuf,
    /// The netns driver of the in-process host agent.
    pub netns: Option<NetnsDriver>,
    /// The in-process host agent (the embedded default).
    pub host: Option<EmbeddedHost>,
    /// Whether real routers run (through a host agent) and are watched:
    /// resync and network GC (set by [`Manager::start`] for the netns
    /// driver; a manager started with a backend of its own watches nothing).
    pub watch_routers: bool,
    /// This manager's row among the cluster's managers.
    pub member: crate::store::cluster::Member,
}

/// The netns driver of `settings` (prefix, data directory, vr-agent,
/// agent transport), registering agents in its own endpoint book: what a
/// host agent runs routers and VMs with.
pub fn netns_driver(settings: &Settings, pki: Option<Arc<Pki>>) -> anyhow::Result<NetnsDriver> {
    netns_driver_with(settings, pki.map(crate::driver::tls_from_pki))
}

/// [`netns_driver`] with routers' TLS material from `tls` (used with the
/// TCP agent transport only).
pub fn netns_driver_with(
    settings: &Settings,
    tls: Option<crate::driver::TlsProvider>,
) -> anyhow::Result<NetnsDriver> {
    let agent_path = settings
        .agent_path
        .clone()
        .unwrap_or_else(crate::driver::default_agent_path);
    let tls = tls.filter(|_| settings.agent_transport == AgentTransport::Tcp);
    NetnsDriver::new(
        &settings.netns_prefix,
        &settings.data_dir,
        agent_path,
        settings.agent_transport,
        Arc::default(),
        tls,
    )
    .context("the netns driver")
}

/// A host agent run in-process by the manager (the embedded default): its
/// gRPC server on a Unix socket in the data directory. It stops serving
/// with the manager; the routers and VMs keep running.
pub struct EmbeddedHost {
    /// The host agent's socket.
    pub socket: PathBuf,
    /// The host agent, for tests that look at what it runs.
    pub agent: HostAgent,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EmbeddedHost {
    /// Takes back what an earlier run left running, binds `socket` and
    /// serves the host agent there.
    pub async fn start(agent: HostAgent, socket: PathBuf) -> anyhow::Result<EmbeddedHost> {
        let recovered = agent.recover().await;
        if recovered != crate::host::Recovered::default() {
            tracing::info!(
                ?recovered,
                "host agent: routers and VMs of the last run taken back"
            );
        }
        let listener = crate::host::server::bind_unix(&socket)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = agent.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = crate::host::server::serve_unix(served, listener, shutdown).await {
                tracing::error!(error = %e, "the in-process host agent stopped serving");
            }
        });
        tracing::info!(socket = %socket.display(), "host agent serving in-process");
        Ok(EmbeddedHost {
            socket,
            agent,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stops serving (the routers and VMs stay under the driver).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for EmbeddedHost {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The router driver and agent client of `settings.driver`, and what runs
/// in-process for them: the simulated backend; or a [`HostDriver`] on the
/// host agent `host_agent_url` names (by default one started here, on a
/// Unix socket in the data directory, over the netns driver) with a gRPC
/// client of the routers' agents (Unix sockets, or TCP with mutual TLS
/// from the manager's CA in the data directory).
pub async fn backend_for(
    settings: &Settings,
) -> anyhow::Result<(Backend, Option<NetnsDriver>, Option<EmbeddedHost>)> {
    match settings.driver {
        DriverKind::Simulated => {
            // Loud on purpose: with this driver routers show Running while
            // nothing runs, which must never pass for a deployment.
            tracing::warn!(
                "driver = simulated: routers and VMs are only recorded, nothing runs; \
                 every router shows hypervisor Simulator. Use --driver netns for a real deployment"
            );
            Ok((Backend::simulated(), None, None))
        }
        DriverKind::Netns => {
            // Searchable by others (o+x, not readable): dnsmasq in the
            // routers runs as nobody and reads its files below it.
            create_private_dir(&settings.data_dir, 0o711)
                .with_context(|| format!("creating {}", settings.data_dir.display()))?;
            let endpoints: Arc<Endpoints> = Arc::default();
            let pki = Arc::new(
                Pki::load_or_create(&settings.data_dir)
                    .context("the routers' certificate authority")?,
            );
            // The routers' namespaces are on this machine in both cases:
            // the agent client reaches a TCP agent from inside them.
            let driver = netns_driver(settings, Some(pki.clone()))?;
            let (host, embedded) = match &settings.host_agent_url {
                None => {
                    let socket = settings.data_dir.join(crate::host::SOCKET_FILE);
                    let agent = HostAgent::new(driver.clone(), &settings.data_dir);
                    let embedded = EmbeddedHost::start(agent, socket.clone()).await?;
                    (HostDriver::unix(socket, endpoints.clone()), Some(embedded))
                }
                Some(url) => (
                    crate::host::tls::host_driver(url, &pki, endpoints.clone())
                        .await
                        .with_context(|| format!("the host agent {url}"))?,
                    None,
                ),
            };
            // Routers and VMs of other hosts go to their own host agent,
            // over one channel per host agent that the relays to its
            // routers' agents share.
            let channels = Arc::new(crate::host::tls::HostChannels::new(pki.client_identity()));
            let host = crate::host::pool::HostPool::new(
                Arc::new(host),
                Some(default_host_url(settings)),
                Some(pki.clone()),
                endpoints.clone(),
            )
            .with_host_channels(channels.clone());
            let client = GrpcAgentClient::new(endpoints.clone())
                .with_tls(pki.client_identity())
                .with_host_channels(channels)
                .with_connector(driver.tcp_connector());
            let backend = Backend {
                agent: Arc::new(client),
                driver: Arc::new(host),
                endpoints,
            };
            let netns = embedded.as_ref().map(|_| driver);
            Ok((backend, netns, embedded))
        }
    }
}

/// The URL of the default host agent: the one `--host-agent-url` names, or
/// the embedded one's socket in the data directory.
pub fn default_host_url(settings: &Settings) -> String {
    match &settings.host_agent_url {
        Some(url) => url.clone(),
        None => format!(
            "unix://{}",
            settings.data_dir.join(crate::host::SOCKET_FILE).display()
        ),
    }
}

impl Manager {
    /// Opens the store (migrating it), bootstraps the admin, recovers jobs
    /// and binds the API port; routers and VMs run where `settings.driver`
    /// says.
    pub async fn start(settings: Settings) -> anyhow::Result<Manager> {
        if settings.driver == DriverKind::Netns {
            share_ca(&settings).await?;
        }
        let (backend, netns, host) = backend_for(&settings).await?;
        let real = settings.driver == DriverKind::Netns;
        let mut manager = Self::start_with(settings, backend).await?;
        if real {
            let app = &manager.app;
            let registered = crate::provision::hosts::register_default(
                &app.db,
                &default_host_url(&app.settings),
                app.network.hypervisor(),
                &crate::services::host::local_host_name(),
            )
            .await
            .context("registering this machine's host agent as a host")?;
            for r in registered {
                tracing::info!(
                    zone = r.zone_id,
                    host = r.host_id,
                    routers = r.adopted.0,
                    vms = r.adopted.1,
                    "the default host agent is a host of the zone"
                );
            }
            crate::provision::readopt::readopt(
                &manager.app.plane(),
                &default_host_url(&manager.app.settings),
            )
            .await;
            tracing::info!(
                prefix = manager.app.settings.netns_prefix,
                "routers and VMs run as network namespaces, through the host agent"
            );
        }
        manager.netns = netns;
        manager.host = host;
        manager.watch_routers = real;
        Ok(manager)
    }

    /// [`Manager::start`] with the given agent client and router driver.
    pub async fn start_with(settings: Settings, backend: Backend) -> anyhow::Result<Manager> {
        let plugins = Plugins::from_config(
            settings.network_gurus.clone(),
            settings.network_elements.clone(),
        )
        .context("network plug-in configuration")?;
        create_private_dir(&settings.data_dir, 0o700)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
        let secrets = secret_box(&settings).context("the database key")?;
        private_sqlite_file(&settings.database_url())
            .context("creating the SQLite database file")?;
        let db = Db::connect_with(
            &settings.database_url(),
            settings.database_acquire_timeout(),
        )
        .await
        .context("opening the database")?;
        // A manager with another key would seal new secrets that its peers
        // cannot open: refuse to start instead.
        if let Some(sealed) = crate::store::user::any_sealed_secret(&db).await? {
            secrets.open(&sealed).context(
                "the database key does not open the secrets in the database: every manager of \
                 one database needs the same key (VPC_DATABASE_KEY or database_key_file)",
            )?;
        }
        let sealed = crate::store::user::seal_clear_secrets(&db, &secrets)
            .await
            .context("sealing the secret keys stored in clear")?;
        if sealed > 0 {
            tracing::info!(sealed, "secret keys stored in clear are now sealed");
        }
        // VMs' passwords reach routers through the state loader, which
        // opens them with the process's key ring.
        secret::remember(&secrets);
        let (key, secret) = bootstrap::ensure_admin(&db, &secrets)
            .await
            .context("bootstrapping the admin account")?;
        if settings.bootstrap_zone
            && bootstrap::first_zone(&db)
                .await
                .context("creating the first zone")?
        {
            tracing::info!("created zone1: guest VLANs 100-999, public range 203.0.113.10-250");
        }
        match (&settings.tls_cert, &settings.tls_key) {
            // A bad certificate stops the start, not the first request.
            (Some(cert), Some(key)) => drop(http::tls_acceptor(cert, key)?),
            (None, None) => {}
            _ => anyhow::bail!("tls_cert and tls_key go together: give both or neither"),
        }
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let mut settings = settings;
        settings.listen = listener.local_addr()?;
        let cloudstack_ini = settings.data_dir.join("cloudstack.ini");
        write_cloudstack_ini(&cloudstack_ini, &settings.endpoint(), &key, &secret)
            .with_context(|| format!("writing {}", cloudstack_ini.display()))?;
        tracing::info!(path = %cloudstack_ini.display(), endpoint = %settings.endpoint(), "admin credentials written for the cs client");
        let member =
            crate::cluster::join(&db, &settings.manager_id(), &settings.listen.to_string())
                .await
                .context("joining the cluster of managers")?;
        let jobs = Jobs::new(settings.manager_id());
        let app = Arc::new(App {
            db,
            registry: services::registry(),
            jobs,
            settings,
            secrets,
            logins: Default::default(),
            network: Arc::new(Network::new(plugins, backend)),
            members: Default::default(),
        });
        app.network
            .load_endpoints(&app.db)
            .await
            .context("loading the routers' endpoints")?;
        let failed = app.jobs.recover(&app).await.context("recovering jobs")?;
        if failed > 0 {
            tracing::warn!(
                failed,
                "jobs left running by the previous start were failed"
            );
        }
        Ok(Manager {
            app,
            listener,
            cloudstack_ini,
            netns: None,
            host: None,
            watch_routers: false,
            member,
        })
    }

    /// Serves until `shutdown` resolves. Then the manager records that it is
    /// leaving, so the others take its routers' checks and its loops at
    /// their next heartbeat; in-flight requests finish; no job is claimed
    /// any more, running jobs may end up to `shutdown_job_wait_ms` (the
    /// heartbeat goes on meanwhile, so nobody takes them over), those still
    /// running are stopped and handed back to the queue, and the manager
    /// leaves the cluster.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // The background tasks end with this future, also when it is
        // dropped before it returns.
        let mut tasks = Background(vec![tokio::spawn(Jobs::run(self.app.clone()))]);
        tasks.push(tokio::spawn(crate::provision::vpc::run_gc(
            self.app.plane(),
        )));
        tasks.push(tokio::spawn(crate::server::expiry::run(self.app.clone())));
        tasks.push(tokio::spawn(crate::server::jobs::run_takeover(
            self.app.clone(),
        )));
        // The heartbeat outlives the other tasks: it beats until the running
        // jobs are drained and handed back.
        let beat = Background(vec![tokio::spawn(crate::cluster::run_heartbeat(
            self.app.clone(),
            self.member.clone(),
        ))]);
        let (db, member) = (self.app.db.clone(), self.member.clone());
        let shutdown = async move {
            shutdown.await;
            match crate::cluster::begin_leaving(&db, &member).await {
                Ok(_) => tracing::info!(
                    "leaving the cluster: the other managers take this one's share of the work"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "recording that this manager is leaving failed")
                }
            }
        };
        // Real routers are watched: resynced when they fall behind, idle
        // tiers shut down; the in-process host agent's namespaces nobody
        // knows removed.
        if self.watch_routers {
            use crate::provision::monitor;
            tasks.push(tokio::spawn(monitor::run_resync(self.app.plane())));
            tasks.push(tokio::spawn(crate::provision::flood::run_sync(
                self.app.plane(),
            )));
            let app = self.app.clone();
            tasks.push(tokio::spawn(crate::provision::host_monitor::run(
                self.app.plane(),
                self.app.settings.data_dir.clone(),
                move || app.jobs.wake(),
            )));
            tasks.push(tokio::spawn(monitor::run_network_gc(self.app.clone())));
            if let Some(host) = &self.host {
                tasks.push(tokio::spawn(monitor::run_sweeper(
                    self.app.plane(),
                    sweep_with_zones(self.app.clone(), host.agent.clone()),
                )));
            }
        }
        // The request span names the path only: the query holds the API key
        // and the signature, which never go to the log. Responses are not
        // judged here: a 5xx CloudStack code (530, 531, 535 ...) is most often
        // a tenant's refused request, logged at INFO by the API's own request
        // line; real server faults log their cause where they happen.
        let trace = tower_http::trace::TraceLayer::new_for_http()
            .on_failure(())
            .make_span_with(|request: &axum::http::Request<axum::body::Body>| {
                tracing::debug_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path()
                )
            });
        let router = http::router(self.app.clone()).layer(trace);
        let settings = &self.app.settings;
        match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => {
                let acceptor = http::tls_acceptor(cert, key)?;
                http::serve_tls(self.listener, router, acceptor, shutdown).await;
            }
            _ => {
                axum::serve(self.listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await?;
            }
        }
        // No new job starts; running ones may end up to a deadline, the
        // rest are stopped and handed back below.
        drop(tasks);
        let wait = std::time::Duration::from_millis(self.app.settings.shutdown_job_wait_ms);
        let stopped = self.app.jobs.drain(wait).await;
        if stopped > 0 {
            tracing::warn!(
                stopped,
                "jobs still running at the shutdown deadline were stopped"
            );
        }
        // Agents and DHCP clients keep running; the next start adopts them.
        if let Some(host) = self.host {
            host.stop().await;
        }
        if let Some(driver) = &self.netns {
            driver.shutdown().await;
        }
        let released = self.app.jobs.release_running(&self.app).await?;
        if released > 0 {
            tracing::info!(released, "running jobs released for the next start");
        }
        // A beat after this would join again.
        beat.stop().await;
        if let Err(e) = crate::cluster::leave(&self.app.db, &self.member).await {
            tracing::warn!(error = %e, "recording that this manager left the cluster failed");
        }
        self.app.db.close().await;
        Ok(())
    }
}

/// The manager's background tasks, aborted when dropped.
struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Background {
    fn push(&mut self, task: tokio::task::JoinHandle<()>) {
        self.0.push(task);
    }

    /// Aborts the tasks and waits until they are gone.
    async fn stop(mut self) {
        for task in std::mem::take(&mut self.0) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The sweeper's clean-up: the in-process host agent's driver removes
/// namespaces of its prefix that are neither a known router or VM nor a live
/// zone's, and the host agent forgets its records of them.
fn sweep_with_zones(app: Arc<App>, host: HostAgent) -> crate::provision::monitor::Sweep {
    Arc::new(move |mut known: Vec<String>| {
        let app = app.clone();
        let host = host.clone();
        Box::pin(async move {
            let driver = host.driver();
            let zones = crate::store::zone::list(
                &app.db,
                &crate::store::zone::ZoneFilter::default(),
                crate::store::Page::ALL,
            )
            .await;
            match zones {
                Ok(zones) => {
                    for z in zones.items {
                        known.push(driver.zone_ns(&z.uuid));
                    }
                }
                // Without the zones nothing is swept: a zone namespace must
                // never go by mistake.
                Err(e) => {
                    tracing::warn!(error = %e, "sweeper: zones unknown; nothing swept");
                    return Vec::new();
                }
            }
            let removed = driver.sweep(&known).await;
            host.forget(&removed);
            removed
        })
    })
}
