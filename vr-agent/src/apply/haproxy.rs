//! Runs the router's one HAProxy (for the rules [`crate::plan::haproxy`]
//! gives it) in master-worker mode, as the agent runs dnsmasq.
//!
//! A new configuration is written beside the live one, checked with
//! `haproxy -c`, renamed into place (so a crash leaves the old or the new
//! file), and then loaded with SIGUSR2: the master starts new workers, and
//! the old ones stop listening but finish their established connections.
//! No rule left: the proxy is stopped and its files removed.
//!
//! The master outlives the agent: it runs in its own process group and is
//! not killed on drop, and a new supervisor adopts the one recorded in
//! `haproxy.pid` (if `/proc` shows it still runs with this directory's
//! configuration, so a recycled pid is never adopted). A master that dies
//! takes its workers with it; [`Proxy::check`] starts it again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::plan::haproxy::CONFIG_FILE;

/// How long a fresh master may take to fail (a port in use) before it
/// counts as started, and how long a reload may take to report.
const START_GRACE: Duration = Duration::from_millis(300);
const RELOAD_WAIT: Duration = Duration::from_secs(3);
/// How long a stopped master gets after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);
/// How long a master's re-execution may hide its command line.
const REEXEC_WAIT: Duration = Duration::from_millis(50);
/// The master logs these once a (re)load is done.
const LOADED: &str = "Loading success.";
const LOAD_FAILED: &str = "Loading failure";
/// How much of the log an error quotes.
const LOG_TAIL_LINES: usize = 10;
/// The log is moved to `haproxy.log.1` past this size when a master starts
/// (it grows by a few lines per load only: nothing logs per connection).
const LOG_MAX_BYTES: u64 = 1 << 20;

/// Errors from writing HAProxy's files or running it.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("starting {}: {source}", binary.display())]
    Spawn { binary: PathBuf, source: io::Error },
    /// `haproxy -c` refused the planned configuration (a bug of the plan:
    /// the model admits nothing HAProxy should refuse).
    #[error("haproxy refused its configuration:\n{output}")]
    Refused { output: String },
    #[error("haproxy exited at start ({status}); its log ends with:\n{log_tail}")]
    StartFailed { status: String, log_tail: String },
    #[error("haproxy did not load its new configuration; its log ends with:\n{log_tail}")]
    ReloadFailed { log_tail: String },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ProxyError + 'a {
    move |source| ProxyError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The running master.
#[derive(Debug)]
struct Master {
    pid: u32,
    /// None when adopted from a previous supervisor.
    child: Option<Child>,
}

/// Supervises the router's HAProxy.
#[derive(Debug)]
pub struct Proxy {
    dir: PathBuf,
    binary: PathBuf,
    master: Option<Master>,
}

impl Proxy {
    /// A supervisor keeping its files in `dir`, running `binary`; adopts a
    /// live master recorded there.
    pub fn new(dir: PathBuf, binary: PathBuf) -> Self {
        let conf = dir.join(CONFIG_FILE);
        let master = fs::read_to_string(dir.join("haproxy.pid"))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .filter(|pid| settled_runs_with_conf(*pid, &conf))
            .map(|pid| Master { pid, child: None });
        Self {
            dir,
            binary,
            master,
        }
    }

    /// The master's pid while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        if !self.alive() {
            return None;
        }
        self.master.as_ref().map(|m| m.pid)
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    fn alive(&mut self) -> bool {
        let conf = self.conf_path();
        match &mut self.master {
            Some(Master {
                child: Some(child), ..
            }) => matches!(child.try_wait(), Ok(None)),
            Some(Master { pid, child: None }) => settled_runs_with_conf(*pid, &conf),
            None => false,
        }
    }

    /// Brings the proxy to `config`: starts, reloads (configuration
    /// changed) or stops it (`None`). Returns one line per change.
    pub fn apply(&mut self, config: Option<&str>) -> Result<Vec<String>, ProxyError> {
        let Some(config) = config else {
            let mut changes = Vec::new();
            if self.master.is_some() {
                self.stop();
                changes.push("stopped haproxy".to_string());
            }
            for file in [CONFIG_FILE, "haproxy.pid"] {
                let _ = fs::remove_file(self.dir.join(file));
            }
            return Ok(changes);
        };
        if !self.dir.exists() {
            fs::create_dir_all(&self.dir)
                .and_then(|()| fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o755)))
                .map_err(io_err("creating", &self.dir))?;
        }
        let conf = self.conf_path();
        let unchanged = fs::read(&conf).is_ok_and(|old| old == config.as_bytes());
        let running = self.alive();
        if unchanged && running {
            return Ok(Vec::new());
        }
        if !unchanged {
            // Checked before it replaces the live file: a refused file must
            // never be what a restarted master reads.
            let candidate = self.dir.join("haproxy.cfg.new");
            write_atomic(&candidate, config)?;
            self.check_file(&candidate)?;
            fs::rename(&candidate, &conf).map_err(io_err("renaming into", &conf))?;
        }
        if running {
            self.reload()?;
            Ok(vec!["reloaded haproxy".to_string()])
        } else {
            self.start()?;
            Ok(vec!["started haproxy".to_string()])
        }
    }

    /// Starts the master again if it died while it has a configuration.
    /// Returns what it found and did.
    pub fn check(&mut self) -> Vec<String> {
        if self.master.is_none() || self.alive() {
            return Vec::new();
        }
        let pid = self.master.as_ref().map_or(0, |m| m.pid);
        self.master = None;
        let mut lines = vec![format!("haproxy (pid {pid}) was not running")];
        if self.conf_path().exists() {
            match self.start() {
                Ok(()) => lines.push("started haproxy".to_string()),
                Err(e) => lines.push(format!("haproxy not started: {e}")),
            }
        }
        lines
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("haproxy.log")
    }

    /// Moves a log past [`LOG_MAX_BYTES`] aside; only before a start, since
    /// a running master keeps writing to the file it was given, where
    /// [`Proxy::reload`] reads the result of a reload.
    fn rotate_log(&self) {
        let log = self.log_path();
        if fs::metadata(&log).is_ok_and(|m| m.len() > LOG_MAX_BYTES) {
            let _ = fs::rename(&log, self.dir.join("haproxy.log.1"));
        }
    }

    fn check_file(&self, path: &Path) -> Result<(), ProxyError> {
        let output = Command::new(&self.binary)
            .arg("-c")
            .arg("-q")
            .arg("-f")
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| ProxyError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(ProxyError::Refused {
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            })
        }
    }

    fn start(&mut self) -> Result<(), ProxyError> {
        self.rotate_log();
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err("opening", &log_path))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let stderr = log.try_clone().map_err(io_err("duplicating", &log_path))?;
        let mut child = Command::new(&self.binary)
            // Master-worker: SIGUSR2 reloads without closing the listeners.
            .arg("-W")
            .arg("-f")
            .arg(self.conf_path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            // Its own process group: a signal to the agent's group must not
            // take the load balancer down with the agent.
            .process_group(0)
            .spawn()
            .map_err(|source| ProxyError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        let pid = child.id();
        let pid_path = self.dir.join("haproxy.pid");
        if let Err(e) = write_atomic(&pid_path, &format!("{pid}\n")) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let deadline = Instant::now() + START_GRACE.max(RELOAD_WAIT);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let _ = fs::remove_file(&pid_path);
                return Err(ProxyError::StartFailed {
                    status: status.to_string(),
                    log_tail: log_tail(&log_path, log_start),
                });
            }
            if log_since(&log_path, log_start).contains(LOADED) || Instant::now() >= deadline {
                break;
            }
            sleep(POLL);
        }
        self.master = Some(Master {
            pid,
            child: Some(child),
        });
        Ok(())
    }

    /// SIGUSR2 to the master, then waits for it to log the result.
    fn reload(&mut self) -> Result<(), ProxyError> {
        let Some(master) = &self.master else {
            return Ok(());
        };
        let log_path = self.log_path();
        let from = fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let _ = kill(Pid::from_raw(master.pid as i32), Signal::SIGUSR2);
        let deadline = Instant::now() + RELOAD_WAIT;
        while Instant::now() < deadline {
            let log = log_since(&log_path, from);
            if log.contains(LOADED) {
                return Ok(());
            }
            if log.contains(LOAD_FAILED) {
                break;
            }
            sleep(POLL);
        }
        Err(ProxyError::ReloadFailed {
            log_tail: log_tail(&log_path, from),
        })
    }

    /// SIGTERM (the workers close at once), SIGKILL after [`STOP_GRACE`].
    fn stop(&mut self) {
        if !self.alive() {
            self.master = None;
            return;
        }
        let Some(pid) = self.master.as_ref().map(|m| m.pid) else {
            return;
        };
        let raw = Pid::from_raw(pid as i32);
        let _ = kill(raw, Signal::SIGTERM);
        let mut deadline = Instant::now() + STOP_GRACE;
        let mut killed = false;
        while self.alive() {
            if Instant::now() >= deadline {
                if killed {
                    tracing::warn!(pid, "haproxy survived SIGKILL");
                    break;
                }
                let _ = kill(raw, Signal::SIGKILL);
                killed = true;
                deadline = Instant::now() + STOP_GRACE;
            }
            sleep(POLL);
        }
        if self.master.as_ref().is_some_and(|m| m.child.is_none()) {
            // An adopted master may still be our child: reap it if so.
            let _ = waitpid(raw, Some(WaitPidFlag::WNOHANG));
        }
        self.master = None;
    }
}

/// True if `pid` is a live (not zombie) process whose command line names
/// `conf` (the master keeps its arguments across reloads).
fn runs_with_conf(pid: u32, conf: &Path) -> bool {
    let live = fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X'))
    });
    let wanted = conf.as_os_str().as_encoded_bytes();
    live && fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmd| cmd.split(|b| *b == 0).any(|arg| arg == wanted))
}

/// [`runs_with_conf`], looked at again after a miss: the master
/// re-executes itself after each load, and for that instant /proc shows no
/// command line.
fn settled_runs_with_conf(pid: u32, conf: &Path) -> bool {
    (0..3).any(|attempt| {
        if attempt > 0 {
            sleep(REEXEC_WAIT);
        }
        runs_with_conf(pid, conf)
    })
}

/// Writes through a temporary file, fsync and rename.
fn write_atomic(path: &Path, content: &str) -> Result<(), ProxyError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err("writing", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("renaming into", path))
}

fn log_since(path: &Path, from: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

fn log_tail(path: &Path, from: u64) -> String {
    let log = log_since(path, from);
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
