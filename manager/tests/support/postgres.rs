//! A throw-away PostgreSQL cluster for tests, made from Debian's server binaries.
//!
//! [`Cluster::start`] runs `initdb` into a temp dir and starts `postgres` on a Unix
//! socket in that dir only (no TCP port), with fsync off. As root it runs both as the
//! `postgres` system user (PostgreSQL refuses to run as root). The server never outlives
//! the test binary:
//! - it is spawned through `setpriv --pdeathsig SIGQUIT` from a thread that lives as
//!   long as the cluster, so if the test process dies the kernel asks the postmaster for
//!   an immediate shutdown;
//! - dropping a [`Cluster`] (or, for [`Cluster::shared`], process exit via `atexit`)
//!   sends SIGQUIT, waits for the postmaster (SIGKILL after 10 s) and deletes the dir.
//!
//! Only a SIGKILLed test binary leaves its (stopped) cluster dir behind; the next
//! [`Cluster::start`] deletes such dirs once they are [`STALE_AFTER`] old.
//!
//! Missing binaries are a test failure with a clear message, never a skip.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection};

/// Where Debian puts the server binaries; `VPC_TEST_PG_BIN` overrides it.
pub const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
const PORT: u16 = 5432;
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const SIGQUIT: i32 = 3;
const SIGINT: i32 = 2;
const DIR_PREFIX: &str = "vpc-test-pg-";
/// Age after which a cluster dir without a live postmaster is deleted.
pub const STALE_AFTER: Duration = Duration::from_secs(600);

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn atexit(callback: extern "C" fn()) -> i32;
}

/// A running throw-away cluster; stopped and deleted on drop.
pub struct Cluster {
    dir: Mutex<Option<tempfile::TempDir>>,
    socket_dir: PathBuf,
    /// The TCP port on 127.0.0.1 when the cluster listens there too.
    tcp_port: Option<u16>,
    pid: Mutex<u32>,
    stop: Mutex<Option<mpsc::Sender<()>>>,
    stopped: Mutex<Option<mpsc::Receiver<()>>>,
    next_db: AtomicUsize,
}

static SHARED: OnceLock<Cluster> = OnceLock::new();

extern "C" fn stop_shared_cluster() {
    if let Some(cluster) = SHARED.get() {
        cluster.stop();
    }
}

/// A new empty database on the shared cluster (started on first use);
/// returns its URL.
#[allow(dead_code)]
pub async fn fresh_database() -> String {
    let cluster = tokio::task::spawn_blocking(Cluster::shared)
        .await
        .expect("PostgreSQL test cluster");
    cluster.create_database().await
}

impl Cluster {
    /// One cluster for the whole test binary, started on first use and stopped when
    /// the process exits.
    pub fn shared() -> &'static Cluster {
        SHARED.get_or_init(|| {
            let cluster = Cluster::start();
            // SAFETY: registers a plain `extern "C" fn()` with the C library; it runs
            // once at normal process exit, when `SHARED` is initialised.
            let rc = unsafe { atexit(stop_shared_cluster) };
            assert_eq!(rc, 0, "atexit refused the cluster clean-up handler");
            cluster
        })
    }

    /// Initialises and starts a new cluster. Panics (with the server log) on failure.
    pub fn start() -> Cluster {
        Cluster::start_with(None)
    }

    /// [`Cluster::start`] listening on TCP too (127.0.0.1, a free port), and
    /// reached there: a client of a stopped server then gets "connection
    /// refused", as from a real database host, not a missing socket file.
    pub fn start_tcp() -> Cluster {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free TCP port")
            .port();
        Cluster::start_with(Some(port))
    }

    fn start_with(tcp_port: Option<u16>) -> Cluster {
        let bin = bin_dir();
        let as_postgres = is_root();
        sweep_stale(&std::env::temp_dir());
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .expect("create a temp dir for the PostgreSQL cluster");
        let data = dir.path().join("data");
        if as_postgres {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the cluster dir to the postgres user");
        }

        let initdb = run_logged(
            server_command(&bin.join("initdb"), as_postgres, false, dir.path())
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"])
                .args(["--no-sync", "--no-instructions"]),
        );
        if let Err(log) = initdb {
            panic!("initdb failed for the test cluster:\n{log}");
        }

        let log_path = dir.path().join("postgres.log");
        let (pid, stop, stopped) = spawn_keeper(postgres_command(dir.path(), tcp_port));
        let cluster = Cluster {
            socket_dir: dir.path().to_path_buf(),
            tcp_port,
            dir: Mutex::new(Some(dir)),
            pid: Mutex::new(pid),
            stop: Mutex::new(Some(stop)),
            stopped: Mutex::new(Some(stopped)),
            next_db: AtomicUsize::new(0),
        };
        if let Err(why) = wait_ready(&data, pid) {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            cluster.stop();
            panic!("the test PostgreSQL server did not start ({why}); its log:\n{log}");
        }
        cluster
    }

    /// URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// URL of database `name` (Unix socket in the cluster dir, user `postgres`).
    pub fn url_for(&self, name: &str) -> String {
        if let Some(port) = self.tcp_port {
            return format!("postgres://postgres@127.0.0.1:{port}/{name}?sslmode=disable");
        }
        format!(
            "postgres://postgres@localhost:{PORT}/{name}?host={}&sslmode=disable",
            self.socket_dir.display()
        )
    }

    /// Creates an empty database and returns its URL.
    pub async fn create_database(&self) -> String {
        let name = format!("test_{}", self.next_db.fetch_add(1, Ordering::SeqCst));
        let mut conn = sqlx::PgConnection::connect(&self.url())
            .await
            .expect("connect to the test cluster");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        conn.close().await.ok();
        self.url_for(&name)
    }

    /// The server's log (statements too, for a database with
    /// `log_statement = 'all'`).
    pub fn log_path(&self) -> PathBuf {
        self.socket_dir.join("postgres.log")
    }

    /// The postmaster's pid.
    pub fn pid(&self) -> u32 {
        *self.pid.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shuts the server down and keeps its data, as an outage would; start it
    /// again with [`Cluster::start_server`]. Not for [`Cluster::shared`].
    pub fn stop_server(&self) {
        // A fast shutdown (SIGINT) writes what was committed: with
        // synchronous_commit off, the immediate one of `stop` could lose the
        // last commits, which an outage test must not confuse with its own
        // findings.
        let pid = self.pid();
        // SAFETY: kill(2) on our own child, not reaped yet (the keeper reaps
        // it only after the sender below is dropped), so the pid is not reused.
        unsafe { kill(pid as i32, SIGINT) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while alive(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        drop(self.stop.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(stopped) = self
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = stopped.recv_timeout(STOP_TIMEOUT * 2);
        }
    }

    /// Starts the server again on the same data and socket after
    /// [`Cluster::stop_server`]. Panics (with the server log) on failure.
    pub fn start_server(&self) {
        let (pid, stop, stopped) = spawn_keeper(postgres_command(&self.socket_dir, self.tcp_port));
        *self.pid.lock().unwrap_or_else(|e| e.into_inner()) = pid;
        *self.stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop);
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = Some(stopped);
        if let Err(why) = wait_ready(&self.socket_dir.join("data"), pid) {
            let log = fs::read_to_string(self.socket_dir.join("postgres.log")).unwrap_or_default();
            panic!("the test PostgreSQL server did not start again ({why}); its log:\n{log}");
        }
    }

    /// Stops the server and deletes the cluster dir (idempotent).
    pub fn stop(&self) {
        // Dropping the sender wakes the keeper thread, which shuts the server down.
        drop(self.stop.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(stopped) = self
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = stopped.recv_timeout(STOP_TIMEOUT * 2);
        }
        drop(self.dir.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bin_dir() -> PathBuf {
    let dir = std::env::var_os("VPC_TEST_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN_DIR));
    for tool in ["initdb", "postgres"] {
        assert!(
            dir.join(tool).is_file(),
            "PostgreSQL server binary {} not found. The store tests run against PostgreSQL \
             as well as SQLite and never skip it: install Debian's postgresql-15 package, or \
             set VPC_TEST_PG_BIN to the directory holding initdb and postgres.",
            dir.join(tool).display()
        );
    }
    dir
}

fn is_root() -> bool {
    // /proc/self/status: "Uid:\t<real>\t<effective>\t...".
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn postgres_ids() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"postgres") && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .expect(
            "running as root needs a `postgres` system user to run the test cluster \
             (PostgreSQL refuses to run as root); it comes with Debian's postgresql package",
        )
}

/// The postmaster of the cluster in `dir` (data in `dir/data`, socket in
/// `dir`), logging to `dir/postgres.log` (appended: a restart keeps the
/// earlier log).
fn postgres_command(dir: &Path, tcp_port: Option<u16>) -> Command {
    let (port, listen) = match tcp_port {
        Some(port) => (port, "listen_addresses=127.0.0.1"),
        None => (PORT, "listen_addresses="),
    };
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("postgres.log"))
        .expect("open the server log");
    let mut postgres = server_command(&bin_dir().join("postgres"), is_root(), true, dir);
    postgres
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-k")
        .arg(dir)
        .args(["-p", &port.to_string(), "-F"])
        .args(["-c", listen, "-c", "max_connections=300"])
        .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log);
    postgres
}

/// `setpriv [--reuid postgres …] [--pdeathsig SIGQUIT] -- <tool>`.
fn server_command(tool: &Path, as_postgres: bool, pdeathsig: bool, cwd: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    if as_postgres {
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
    }
    if pdeathsig {
        cmd.args(["--pdeathsig", "SIGQUIT"]);
    }
    cmd.arg("--").arg(tool).current_dir(cwd).env("LC_ALL", "C");
    cmd
}

fn run_logged(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} exited with {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Spawns the server from a thread that lives until the cluster stops: the
/// parent-death signal follows the spawning thread, not the process.
fn spawn_keeper(mut cmd: Command) -> (u32, mpsc::Sender<()>, mpsc::Receiver<()>) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (stopped_tx, stopped_rx) = mpsc::channel::<()>();
    thread::Builder::new()
        .name("postgres-keeper".into())
        .spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(child) => child,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cannot start {cmd:?}: {e}")));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(child.id()));
            // Returns on an explicit stop or when the Cluster (the sender) is gone.
            let _ = stop_rx.recv();
            shut_down(&mut child);
            let _ = stopped_tx.send(());
        })
        .expect("spawn the postgres keeper thread");
    let pid = ready_rx
        .recv()
        .expect("the keeper thread reports the server pid")
        .unwrap_or_else(|e| panic!("{e}"));
    (pid, stop_tx, stopped_rx)
}

/// Immediate shutdown (SIGQUIT), then SIGKILL if the postmaster lingers.
fn shut_down(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: kill(2) on the pid of our own child, which we have not reaped yet, so
    // the pid cannot have been reused.
    unsafe { kill(child.id() as i32, SIGQUIT) };
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until postmaster.pid says "ready" (PostgreSQL 10+ writes the postmaster's
/// status as the last line of that file).
fn wait_ready(data: &Path, pid: u32) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(contents) = fs::read_to_string(data.join("postmaster.pid"))
            && contents.lines().any(|l| l.trim() == "ready")
        {
            return Ok(());
        }
        if !alive(pid) {
            return Err(format!("the postmaster (pid {pid}) exited"));
        }
        thread::sleep(Duration::from_millis(25));
    }
    Err(format!("not ready after {START_TIMEOUT:?}"))
}

/// Deletes cluster dirs of killed test binaries: no live postmaster, and untouched for
/// [`STALE_AFTER`] (a dir still in `initdb` has no postmaster yet but is recent).
fn sweep_stale(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let path = entry.path();
        let postmaster = fs::read_to_string(path.join("data").join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next()?.trim().parse::<u32>().ok());
        if postmaster.is_some_and(alive) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if stale {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

fn alive(pid: u32) -> bool {
    // A child that exited stays a zombie ("Z") until the keeper reaps it.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
