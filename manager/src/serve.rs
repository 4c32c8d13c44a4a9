//! Starting the manager: store, bootstrap, jobs, HTTP server, shutdown.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::orchestration::Plugins;
use crate::provision::{Backend, Network};
use crate::server::jobs::Jobs;
use crate::server::{App, http};
use crate::services;
use crate::settings::Settings;
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

/// A manager ready to serve: its app state and bound listener.
pub struct Manager {
    pub app: Arc<App>,
    pub listener: TcpListener,
    pub cloudstack_ini: PathBuf,
}

impl Manager {
    /// Opens the store (migrating it), bootstraps the admin, recovers jobs
    /// and binds the API port.
    pub async fn start(settings: Settings) -> anyhow::Result<Manager> {
        Self::start_with(settings, Backend::simulated()).await
    }

    /// [`Manager::start`] with the given agent client and router driver.
    pub async fn start_with(settings: Settings, backend: Backend) -> anyhow::Result<Manager> {
        let plugins = Plugins::from_config(
            settings.network_gurus.clone(),
            settings.network_elements.clone(),
        )
        .context("network plug-in configuration")?;
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
        let db = Db::connect(&settings.database_url())
            .await
            .context("opening the database")?;
        let (key, secret) = bootstrap::ensure_admin(&db)
            .await
            .context("bootstrapping the admin account")?;
        if settings.bootstrap_zone
            && bootstrap::first_zone(&db)
                .await
                .context("creating the first zone")?
        {
            tracing::info!("created zone1: guest VLANs 100-999, public range 203.0.113.10-250");
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
        let jobs = Jobs::new(settings.manager_id(), services::job_bodies());
        let app = Arc::new(App {
            db,
            registry: services::registry(),
            jobs,
            settings,
            network: Network::new(plugins, backend),
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
        })
    }

    /// Serves until `shutdown` resolves; in-flight requests finish. Jobs
    /// still running are recorded as failed at the next start.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let runner = tokio::spawn(Jobs::run(self.app.clone()));
        let vpc_gc = tokio::spawn(crate::provision::vpc::run_gc(self.app.clone()));
        let router =
            http::router(self.app.clone()).layer(tower_http::trace::TraceLayer::new_for_http());
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        // No new job starts; the ones still running are left resumable.
        runner.abort();
        vpc_gc.abort();
        let released = self.app.jobs.release_running(&self.app).await?;
        if released > 0 {
            tracing::info!(released, "running jobs released for the next start");
        }
        self.app.db.close().await;
        Ok(())
    }
}
