//! Supervised processes inside namespaces: the agent of each router and the
//! DHCP client of each VM NIC. A supervisor restarts its process when it
//! dies (backoff 0.2 s doubling to 5 s, reset after 30 s of uptime) or when
//! its namespace is no longer the one it runs in (someone deleted and
//! perhaps re-created the namespace); it signals only the pid it started or
//! adopted. Processes run in their own process group and outlive the
//! manager, which adopts them again when it restarts.

use std::fs::OpenOptions;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::{NetnsError, Result};
use super::ip;

/// The first restart delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// The longest restart delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Uptime after which the delay starts again from [`BACKOFF_MIN`].
pub const BACKOFF_RESET: Duration = Duration::from_secs(30);
/// How often a running process's namespace is checked.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// A log file past this size is rotated (one old copy) at the next start.
const LOG_MAX: u64 = 8 << 20;

/// Work run before each restart (re-creating the namespace and its links).
pub type Prepare = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

/// A process to keep running in a namespace.
#[derive(Clone)]
pub struct ProcessSpec {
    /// For logs: `agent of r-4-VM`.
    pub label: String,
    pub ns: String,
    /// The program and its arguments (run under `ip netns exec <ns>`).
    pub argv: Vec<String>,
    pub pid_file: PathBuf,
    pub log_file: PathBuf,
}

impl ProcessSpec {
    /// Whether `pid` is this process: alive, in the namespace, running the
    /// same program with the same distinguishing arguments.
    pub fn matches(&self, pid: u32, distinguishing: &[&str]) -> bool {
        let cmd = ip::cmdline(pid);
        ip::alive(pid)
            && ip::pid_in_ns(pid, &self.ns)
            && cmd.first() == self.argv.first()
            && distinguishing.iter().all(|d| cmd.iter().any(|a| a == d))
    }

    /// A running instance left by an earlier manager: the pid of the pid
    /// file, else any process of the namespace that matches.
    pub async fn find_running(&self, distinguishing: &[&str]) -> Option<u32> {
        let recorded = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        if let Some(pid) = recorded.filter(|p| self.matches(*p, distinguishing)) {
            return Some(pid);
        }
        ip::pids(&self.ns)
            .await
            .ok()?
            .into_iter()
            .map(|p| p as u32)
            .find(|p| self.matches(*p, distinguishing))
    }

    /// Stops (by pid) every process of the namespace running this program
    /// with the distinguishing arguments: instances with other settings
    /// that must not run beside a new one.
    pub async fn stop_strays(&self, distinguishing: &[&str]) {
        for pid in ip::pids(&self.ns).await.unwrap_or_default() {
            let pid = pid as u32;
            if self.matches(pid, distinguishing) {
                tracing::warn!(label = %self.label, pid, "stopping an instance with other settings");
                terminate(pid, None).await;
            }
        }
    }

    fn spawn(&self) -> Result<tokio::process::Child> {
        if std::fs::metadata(&self.log_file).is_ok_and(|m| m.len() > LOG_MAX) {
            let _ = std::fs::rename(&self.log_file, self.log_file.with_extension("log.1"));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .map_err(|e| NetnsError::io(format!("opening {}", self.log_file.display()), e))?;
        let err = log
            .try_clone()
            .map_err(|e| NetnsError::io("duplicating the log file", e))?;
        // `ip netns exec` enters the namespace and execs the program: the
        // pid we get is the program's.
        let child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(&self.argv)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            // Its own group: a Ctrl-C to the manager does not reach it.
            .process_group(0)
            .spawn()
            .map_err(|e| NetnsError::io(format!("starting the {}", self.label), e))?;
        if let Some(pid) = child.id() {
            let _ = std::fs::write(&self.pid_file, format!("{pid}\n"));
        }
        Ok(child)
    }
}

/// How a supervisor ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    /// Stop the process and the supervision.
    Kill,
    /// Leave the process running (manager shutdown; adopted later).
    Detach,
}

/// A running supervision.
pub struct Supervisor {
    stop: watch::Sender<Stop>,
    task: JoinHandle<()>,
    pid: Arc<AtomicU32>,
    starts: Arc<AtomicU32>,
}

impl Supervisor {
    /// Supervises `spec`: adopts `adopt` (a pid from [`ProcessSpec::find_running`])
    /// or starts the process. `prepare` runs before every restart; `halted`
    /// (shared by a whole driver) forbids restarts at once.
    pub fn start(
        spec: ProcessSpec,
        adopt: Option<u32>,
        prepare: Option<Prepare>,
        halted: Arc<AtomicBool>,
    ) -> Result<Supervisor> {
        let pid = Arc::new(AtomicU32::new(0));
        let starts = Arc::new(AtomicU32::new(0));
        let first = match adopt {
            Some(p) => Running::Adopted(p),
            None => {
                let child = spec.spawn()?;
                starts.fetch_add(1, Ordering::SeqCst);
                Running::Child(child)
            }
        };
        pid.store(first.pid(), Ordering::SeqCst);
        let (stop, stop_rx) = watch::channel(Stop::Running);
        let task = tokio::spawn(supervise(
            spec,
            first,
            prepare,
            halted,
            stop_rx,
            pid.clone(),
            starts.clone(),
        ));
        Ok(Supervisor {
            stop,
            task,
            pid,
            starts,
        })
    }

    /// The current pid (0 while restarting).
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::SeqCst)).filter(|p| *p != 0)
    }

    /// How many times the supervisor started the process (adoption is not
    /// a start).
    pub fn starts(&self) -> u32 {
        self.starts.load(Ordering::SeqCst)
    }

    /// Stops the process (SIGTERM, then SIGKILL) and the supervision.
    pub async fn stop(self) {
        let _ = self.stop.send(Stop::Kill);
        let _ = self.task.await;
    }

    /// Ends the supervision and leaves the process running.
    pub async fn detach(self) {
        let _ = self.stop.send(Stop::Detach);
        let _ = self.task.await;
    }
}

enum Running {
    Child(tokio::process::Child),
    Adopted(u32),
}

impl Running {
    fn pid(&self) -> u32 {
        match self {
            Running::Child(c) => c.id().unwrap_or(0),
            Running::Adopted(p) => *p,
        }
    }
}

/// Why the watch of one process ended.
enum Ended {
    Exited(String),
    Stopped,
    Detached,
}

async fn supervise(
    spec: ProcessSpec,
    first: Running,
    prepare: Option<Prepare>,
    halted: Arc<AtomicBool>,
    mut stop: watch::Receiver<Stop>,
    pid: Arc<AtomicU32>,
    starts: Arc<AtomicU32>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut current = Some(first);
    loop {
        let running = match current.take() {
            Some(r) => r,
            None => {
                if let Some(prepare) = &prepare
                    && let Err(e) = prepare().await
                {
                    tracing::warn!(label = %spec.label, "preparing a restart: {e}");
                }
                match spec.spawn() {
                    Ok(child) => {
                        starts.fetch_add(1, Ordering::SeqCst);
                        Running::Child(child)
                    }
                    Err(e) => {
                        tracing::warn!(label = %spec.label, "restart failed: {e}");
                        if wait_or_stop(&mut stop, backoff).await {
                            break;
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
        };
        let started = Instant::now();
        pid.store(running.pid(), Ordering::SeqCst);
        tracing::info!(label = %spec.label, pid = running.pid(), ns = %spec.ns, "running");
        let ended = watch_process(&spec, running, &mut stop).await;
        pid.store(0, Ordering::SeqCst);
        match ended {
            Ended::Stopped => {
                let _ = std::fs::remove_file(&spec.pid_file);
                break;
            }
            Ended::Detached => break,
            Ended::Exited(why) => {
                tracing::warn!(label = %spec.label, ns = %spec.ns, "{why}; restarting in {backoff:?}")
            }
        }
        if halted.load(Ordering::SeqCst) {
            break;
        }
        if started.elapsed() >= BACKOFF_RESET {
            backoff = BACKOFF_MIN;
        }
        if wait_or_stop(&mut stop, backoff).await || halted.load(Ordering::SeqCst) {
            break;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Sleeps `delay`; true when a stop arrived meanwhile.
async fn wait_or_stop(stop: &mut watch::Receiver<Stop>, delay: Duration) -> bool {
    if *stop.borrow() != Stop::Running {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = stop.changed() => true,
    }
}

/// Waits until the process ends, is stopped, or leaves its namespace.
async fn watch_process(
    spec: &ProcessSpec,
    running: Running,
    stop: &mut watch::Receiver<Stop>,
) -> Ended {
    let pid = running.pid();
    let mut child = match running {
        Running::Child(c) => Some(c),
        Running::Adopted(_) => None,
    };
    let mut ticker = tokio::time::interval(WATCH_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let request = *stop.borrow();
        match request {
            Stop::Kill => {
                terminate(pid, child.as_mut()).await;
                return Ended::Stopped;
            }
            Stop::Detach => return Ended::Detached,
            Stop::Running => {}
        }
        let event = {
            let exited = async {
                match child.as_mut() {
                    Some(c) => c.wait().await.map(|s| s.to_string()).ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                status = exited => Event::Exited(status),
                changed = stop.changed() => Event::StopChanged { sender_gone: changed.is_err() },
                _ = ticker.tick() => Event::Tick,
            }
        };
        match event {
            Event::Exited(status) => {
                return Ended::Exited(format!(
                    "exited ({})",
                    status.unwrap_or_else(|| "status unknown".into())
                ));
            }
            // The supervisor handle is gone: leave the process be.
            Event::StopChanged { sender_gone: true } => return Ended::Detached,
            Event::StopChanged { sender_gone: false } => {}
            Event::Tick => {
                if child.is_none() && !ip::alive(pid) {
                    return Ended::Exited("the adopted process is gone".into());
                }
                if left_its_namespace(pid, &spec.ns) {
                    // Its namespace was deleted (and maybe re-created): a
                    // process in an orphaned namespace serves no one, nor
                    // do the helpers it started there (dnsmasq).
                    let orphaned = ip::ns_identity(Path::new(&format!("/proc/{pid}/ns/net")));
                    terminate(pid, child.as_mut()).await;
                    if let Some(orphaned) = orphaned {
                        ip::kill_in_identity(orphaned).await;
                    }
                    return Ended::Exited("its namespace is gone".into());
                }
            }
        }
    }
}

enum Event {
    Exited(Option<String>),
    StopChanged { sender_gone: bool },
    Tick,
}

/// Whether a live process no longer runs in the namespace `ns`. Until
/// `ip netns exec` has entered the namespace and exec'd the program, the
/// process is still `ip` in the host namespace, and is left alone.
fn left_its_namespace(pid: u32, ns: &str) -> bool {
    ip::alive(pid) && ip::cmdline(pid).first().is_some_and(|p| p != "ip") && !ip::pid_in_ns(pid, ns)
}

/// SIGTERM, then SIGKILL after the grace period, by pid. A child is reaped;
/// an adopted process is polled until it is gone.
async fn terminate(pid: u32, child: Option<&mut tokio::process::Child>) {
    if pid == 0 {
        return;
    }
    let target = Pid::from_raw(pid as i32);
    match child {
        Some(c) => {
            // Unreaped, so the pid is still this child's.
            let _ = kill(target, Signal::SIGTERM);
            if tokio::time::timeout(ip::TERM_GRACE, c.wait())
                .await
                .is_err()
            {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
        }
        None => {
            if !ip::alive(pid) {
                return;
            }
            let _ = kill(target, Signal::SIGTERM);
            let deadline = Instant::now() + ip::TERM_GRACE;
            while ip::alive(pid) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if ip::alive(pid) {
                let _ = kill(target, Signal::SIGKILL);
            }
        }
    }
}
