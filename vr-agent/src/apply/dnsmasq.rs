//! Runs one dnsmasq per tier from the files [`crate::plan::dnsmasq`] plans.
//!
//! The [`Supervisor`] writes a tier's files only when their content changed,
//! then restarts its dnsmasq when the configuration changed and only sends
//! SIGHUP when the hosts or names changed (adding a VM never restarts DHCP).
//!
//! Instances outlive the supervisor and the agent: they run in their own
//! process group and are not killed on drop, and a new supervisor adopts the
//! instances recorded in `<dir>/ethN.pid`, so an agent restart causes no DHCP
//! or DNS outage. dnsmasq runs in the network namespace of the thread that
//! calls [`Supervisor::apply`] or [`Supervisor::check`].

mod log;

pub use log::DnsmasqOptions;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::model::{Mac, dev_name};
use crate::plan::dnsmasq::{
    TIER_FILES, TierFiles, parse_tier_file, release_packet, stale_leases, tier_path,
};

/// How long a fresh dnsmasq may take to fail (bad option, address in use)
/// before it counts as started.
const START_GRACE: Duration = Duration::from_millis(200);
/// How long a stopped dnsmasq gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How often exits and logs are polled.
const POLL: Duration = Duration::from_millis(5);
/// dnsmasq logs this once its DHCP socket is set up.
const READY_LINE: &str = "DHCP, ";
/// How much of a log an error or a report quotes.
const LOG_TAIL_LINES: usize = 10;

/// Errors from writing dnsmasq's files or running it.
#[derive(Debug, thiserror::Error)]
pub enum DnsmasqError {
    /// A file or directory operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The binary could not be executed.
    #[error("starting {} for {dev}: {source}", binary.display())]
    Spawn {
        dev: String,
        binary: PathBuf,
        source: io::Error,
    },
    /// dnsmasq exited right after it was started.
    #[error("dnsmasq for {dev} exited at start ({status}); its log ends with:\n{log_tail}")]
    StartFailed {
        dev: String,
        status: String,
        log_tail: String,
    },
    /// dnsmasq, running as `nobody`, could not re-read its hosts files there.
    #[error(
        "{} is not searchable by other users: dnsmasq runs as nobody and could not \
         re-read its hosts files (make it and its parents mode o+x)",
        path.display()
    )]
    NotTraversable { path: PathBuf },
    /// A signal could not be delivered.
    #[error("sending {signal} to dnsmasq for {dev} (pid {pid}): {source}")]
    Signal {
        dev: String,
        pid: u32,
        signal: Signal,
        source: nix::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DnsmasqError + 'a {
    move |source| DnsmasqError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The tiers whose dnsmasq failed in one apply, by device index.
pub type TierFailures = BTreeMap<u32, DnsmasqError>;

/// A running dnsmasq of one tier.
#[derive(Debug)]
struct Instance {
    pid: u32,
    /// None for an instance adopted from a previous supervisor: it is not our
    /// child, so its death is seen in /proc, not by waiting.
    child: Option<Child>,
    conf_path: PathBuf,
    hosts: u32,
    /// Adopted and not yet reported by `apply`.
    adopted_unreported: bool,
}

impl Instance {
    /// True while the process runs (reaping it if it is our child and exited).
    fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => runs_with_conf(self.pid, &self.conf_path),
        }
    }
}

/// Supervises the dnsmasq instances of every tier of this router.
#[derive(Debug)]
pub struct Supervisor {
    dir: PathBuf,
    binary: PathBuf,
    instances: BTreeMap<u32, Instance>,
    options: DnsmasqOptions,
}

impl Supervisor {
    /// A supervisor keeping files in `dir` and running `binary` (usually
    /// `dnsmasq`); adopts the live instances recorded in `dir`.
    pub fn new(dir: PathBuf, binary: PathBuf) -> Self {
        let mut instances = BTreeMap::new();
        for (index, pid) in recorded_pids(&dir) {
            let conf_path = tier_path(&dir, index, "conf");
            if runs_with_conf(pid, &conf_path) {
                let hosts = fs::read_to_string(tier_path(&dir, index, "hosts"))
                    .map_or(0, |t| t.lines().count() as u32);
                instances.insert(
                    index,
                    Instance {
                        pid,
                        child: None,
                        conf_path,
                        hosts,
                        adopted_unreported: true,
                    },
                );
            } else {
                // Stale: the process died or the pid was reused.
                let _ = fs::remove_file(tier_path(&dir, index, "pid"));
            }
        }
        Self {
            dir,
            binary,
            instances,
            options: DnsmasqOptions::default(),
        }
    }

    /// The same supervisor, running dnsmasq with `options`.
    pub fn with_options(mut self, options: DnsmasqOptions) -> Self {
        self.options = options;
        self
    }

    /// Brings the instances to `files`: writes what changed, starts, restarts
    /// (configuration changed), reloads with SIGHUP (only hosts or names
    /// changed) or stops (tier gone) instances. Returns one line per change.
    ///
    /// Every tier is handled even if one fails; the first error is returned.
    pub fn apply(&mut self, files: &[TierFiles]) -> Result<Vec<String>, DnsmasqError> {
        let (changes, mut failures) = self.apply_each(files)?;
        match failures.pop_first() {
            Some((_, e)) => Err(e),
            None => Ok(changes),
        }
    }

    /// Like [`Supervisor::apply`], but reports each tier's failure on its
    /// own, so that one tier's DHCP cannot hold back the others. Only a
    /// failure that concerns every tier (the directory) is an `Err`.
    pub fn apply_each(
        &mut self,
        files: &[TierFiles],
    ) -> Result<(Vec<String>, TierFailures), DnsmasqError> {
        self.prepare_dir()?;
        let mut failures = BTreeMap::new();
        let mut changes = Vec::new();
        for tier in files {
            if let Err(e) = self.apply_tier(tier, &mut changes) {
                tracing::error!(dev = dev_name(tier.index), error = %e, "dnsmasq");
                failures.insert(tier.index, e);
            }
        }
        let wanted: Vec<u32> = files.iter().map(|f| f.index).collect();
        let gone: BTreeSet<u32> = self
            .instances
            .keys()
            .copied()
            .chain(self.indexes_on_disk())
            .filter(|i| !wanted.contains(i))
            .collect();
        for index in gone {
            if let Some(instance) = self.instances.remove(&index) {
                stop(instance);
                changes.push(format!("{}: stopped dnsmasq", dev_name(index)));
            }
            self.remove_files(index);
        }
        for line in &changes {
            tracing::info!("{line}");
        }
        Ok((changes, failures))
    }

    fn prepare_dir(&self) -> Result<(), DnsmasqError> {
        if !self.dir.exists() {
            fs::create_dir_all(&self.dir)
                .and_then(|()| fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o755)))
                .map_err(io_err("creating", &self.dir))?;
        }
        check_traversable(&self.dir)
    }

    fn apply_tier(
        &mut self,
        tier: &TierFiles,
        changes: &mut Vec<String>,
    ) -> Result<(), DnsmasqError> {
        let dev = dev_name(tier.index);
        // dnsmasq rewrites its lease file in place (truncate, then write) when
        // it reloads or starts, so the leases are read before either; the
        // releases are sent once it runs with the new hosts.
        let stale = self.stale_leases(tier);
        let conf_changed = write_if_changed(&tier.conf_path, &tier.conf)?;
        // Both files are written before dnsmasq is told to re-read them.
        let hosts_changed = write_if_changed(&tier.hosts_path, &tier.hosts)?;
        let names_changed = write_if_changed(&tier.names_path, &tier.names)?;
        let hosts = u32::try_from(tier.host_count()).unwrap_or(u32::MAX);
        // Decide with a short borrow, then act on the map.
        let running = match self.instances.get_mut(&tier.index) {
            Some(instance) if instance.conf_path == tier.conf_path => {
                let alive = instance.alive();
                if !alive {
                    changes.push(format!("{dev}: dnsmasq (pid {}) had exited", instance.pid));
                }
                alive
            }
            _ => false,
        };
        if !running || conf_changed {
            let old = self.instances.remove(&tier.index);
            let old_pid = old.as_ref().map(|o| o.pid);
            if let Some(old) = old {
                stop(old);
            }
            let instance = self.start(tier.index, &tier.conf_path, hosts)?;
            changes.push(match (running, old_pid) {
                (true, Some(old_pid)) => format!(
                    "{dev}: restarted dnsmasq, configuration changed (pid {old_pid} -> {}, {hosts} hosts)",
                    instance.pid
                ),
                _ => format!("{dev}: started dnsmasq (pid {}, {hosts} hosts)", instance.pid),
            });
            self.instances.insert(tier.index, instance);
            release_leases(&dev, tier.gateway, &stale, changes);
            return Ok(());
        }
        let instance = self.instances.get_mut(&tier.index).expect("running");
        if std::mem::take(&mut instance.adopted_unreported) {
            changes.push(format!(
                "{dev}: adopted running dnsmasq (pid {})",
                instance.pid
            ));
        }
        if hosts_changed || names_changed {
            let pid = instance.pid;
            kill(Pid::from_raw(pid as i32), Signal::SIGHUP).map_err(|source| {
                DnsmasqError::Signal {
                    dev: dev.clone(),
                    pid,
                    signal: Signal::SIGHUP,
                    source,
                }
            })?;
            instance.hosts = hosts;
            changes.push(format!(
                "{dev}: reloaded hosts with SIGHUP (pid {}, {hosts} hosts)",
                instance.pid
            ));
            release_leases(&dev, tier.gateway, &stale, changes);
        }
        Ok(())
    }

    /// Restarts the instances that died; returns what it did.
    pub fn check(&mut self) -> Vec<String> {
        let mut report = self.rotate_logs();
        let dead: Vec<u32> = self
            .instances
            .iter_mut()
            .filter_map(|(index, instance)| (!instance.alive()).then_some(*index))
            .collect();
        for index in dead {
            let dev = dev_name(index);
            let mut old = self.instances.remove(&index).expect("listed above");
            let status = old
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .map_or_else(|| "not our child".to_owned(), |s| s.to_string());
            let tail = log_tail(&tier_path(&self.dir, index, "log"), 0);
            match self.start(index, &old.conf_path, old.hosts) {
                Ok(new) => {
                    report.push(format!(
                        "{dev}: dnsmasq (pid {}) died ({status}), restarted as pid {}; log:\n{tail}",
                        old.pid, new.pid
                    ));
                    self.instances.insert(index, new);
                }
                Err(e) => {
                    report.push(format!(
                        "{dev}: dnsmasq (pid {}) died ({status}) and did not restart: {e}",
                        old.pid
                    ));
                    // Kept, dead, so that the next check tries again.
                    self.instances.insert(index, old);
                }
            }
        }
        for line in &report {
            tracing::warn!("{line}");
        }
        report
    }

    /// `(device index, pid, static hosts)` of every instance, by index; the
    /// pid is the last known one (a dead instance shows until `check`).
    pub fn status(&self) -> Vec<(u32, u32, u32)> {
        self.instances
            .iter()
            .map(|(index, i)| (*index, i.pid, i.hosts))
            .collect()
    }

    /// `(device index, pid, static hosts, alive)` of every instance, by
    /// index, each checked now: a dead instance shows as not alive until
    /// [`Supervisor::check`] restarts it.
    pub fn live_status(&mut self) -> Vec<(u32, u32, u32, bool)> {
        self.instances
            .iter_mut()
            .map(|(index, i)| (*index, i.pid, i.hosts, i.alive()))
            .collect()
    }

    /// Stops every instance and forgets its pid file (files stay).
    pub fn stop_all(&mut self) {
        for (index, instance) in std::mem::take(&mut self.instances) {
            stop(instance);
            let _ = fs::remove_file(tier_path(&self.dir, index, "pid"));
        }
    }

    /// Starts dnsmasq for one tier and waits until it serves or fails.
    fn start(&self, index: u32, conf_path: &Path, hosts: u32) -> Result<Instance, DnsmasqError> {
        let dev = dev_name(index);
        let log_path = tier_path(&self.dir, index, "log");
        if fs::metadata(&log_path).is_ok_and(|m| m.len() > self.options.log_max_bytes) {
            let _ = fs::rename(&log_path, tier_path(&self.dir, index, "log.1"));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err("opening", &log_path))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let stderr = log.try_clone().map_err(io_err("duplicating", &log_path))?;
        let mut child = Command::new(&self.binary)
            .arg("--keep-in-foreground")
            .arg(format!("--conf-file={}", conf_path.display()))
            // Explicit, unprivileged: see `log`.
            .arg(format!("--user={}", self.options.user))
            .arg(format!("--group={}", self.options.group))
            // dnsmasq writes no pid file: the supervisor records the child's pid
            // itself, as soon as it is known.
            .arg("--pid-file=")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            // Its own process group: a Ctrl-C or a signal to the agent's group
            // must not take DHCP down with the agent.
            .process_group(0)
            .spawn()
            .map_err(|source| DnsmasqError::Spawn {
                dev: dev.clone(),
                binary: self.binary.clone(),
                source,
            })?;
        let pid = child.id();
        let pid_path = tier_path(&self.dir, index, "pid");
        if let Err(e) = write_atomic(&pid_path, &format!("{pid}\n")) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let deadline = Instant::now() + START_GRACE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let _ = fs::remove_file(&pid_path);
                return Err(DnsmasqError::StartFailed {
                    dev,
                    status: status.to_string(),
                    log_tail: log_tail(&log_path, log_start),
                });
            }
            if Instant::now() >= deadline || log_since(&log_path, log_start).contains(READY_LINE) {
                break;
            }
            sleep(POLL);
        }
        Ok(Instance {
            pid,
            child: Some(child),
            conf_path: conf_path.to_owned(),
            hosts,
            adopted_unreported: false,
        })
    }

    /// The leases on record that the tier's static leases no longer back.
    fn stale_leases(&self, tier: &TierFiles) -> Vec<(Mac, Ipv4Addr)> {
        let leases =
            fs::read_to_string(tier_path(&self.dir, tier.index, "leases")).unwrap_or_default();
        stale_leases(tier, &leases)
    }

    /// Device indexes that have files in the directory.
    fn indexes_on_disk(&self) -> Vec<u32> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| parse_tier_file(&e.ok()?.file_name().to_string_lossy()))
            .collect()
    }

    fn remove_files(&self, index: u32) {
        for ext in TIER_FILES {
            let _ = fs::remove_file(tier_path(&self.dir, index, ext));
        }
    }
}

/// Releases leases that no static lease backs any more.
///
/// dnsmasq keeps a lease after its host line is gone, and with infinite
/// leases it would never hand that address to the VM that now owns it
/// ("not using configured address ... because it is leased to ...").
/// Like CloudStack's `dhcp_release`, a DHCPRELEASE on behalf of the old
/// client drops it. Failures are only reported: DHCP keeps working for
/// every other VM.
fn release_leases(
    dev: &str,
    server: Ipv4Addr,
    stale: &[(Mac, Ipv4Addr)],
    changes: &mut Vec<String>,
) {
    for &(mac, ip) in stale {
        match send_release(dev, server, ip, mac) {
            Ok(()) => changes.push(format!("{dev}: released the lease of {ip} to {mac}")),
            Err(e) => changes.push(format!(
                "{dev}: releasing the lease of {ip} to {mac} failed: {e}"
            )),
        }
    }
}

/// Sends dnsmasq, listening on `server` of `dev`, a DHCPRELEASE of `ip` as if
/// from the client `mac`. Bound to `dev`, the datagram to the local address
/// is delivered with `dev` as its incoming interface, which is what dnsmasq
/// checks (the trick of dnsmasq's own `dhcp_release`).
fn send_release(dev: &str, server: Ipv4Addr, ip: Ipv4Addr, mac: Mac) -> io::Result<()> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    let name = dev.as_bytes();
    // SAFETY: the fd is a live socket for the call, and the option value is
    // a valid buffer of the given length.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    socket.send_to(&release_packet(server, ip, mac), (server, 67))?;
    Ok(())
}

/// `(index, pid)` of every `ethN.pid` file in `dir`.
fn recorded_pids(dir: &Path) -> Vec<(u32, u32)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            let index = parse_tier_file(&name).filter(|_| name.ends_with(".pid"))?;
            let pid = fs::read_to_string(e.path()).ok()?.trim().parse().ok()?;
            Some((index, pid))
        })
        .collect()
}

/// True if `pid` is a live (not zombie) process started with `conf_path`;
/// the command line check guards against a recycled pid.
fn runs_with_conf(pid: u32, conf_path: &Path) -> bool {
    let live = fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which may hold spaces and ')'.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X'))
    });
    let wanted = format!("--conf-file={}", conf_path.display());
    live && fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmd| cmd.split(|b| *b == 0).any(|arg| arg == wanted.as_bytes()))
}

/// Stops an instance: SIGTERM, then SIGKILL after [`STOP_GRACE`]; reaps it.
fn stop(mut instance: Instance) {
    // Never signal a pid that is not (or no longer) this instance: once a
    // process is reaped its pid may belong to anything.
    if !instance.alive() {
        return;
    }
    let pid = Pid::from_raw(instance.pid as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let mut deadline = Instant::now() + STOP_GRACE;
    let mut killed = false;
    while instance.alive() {
        if Instant::now() >= deadline {
            if killed {
                // Unkillable (stuck in the kernel): nothing more can be done.
                tracing::warn!(pid = instance.pid, "dnsmasq survived SIGKILL");
                break;
            }
            let _ = kill(pid, Signal::SIGKILL);
            killed = true;
            deadline = Instant::now() + STOP_GRACE;
        }
        sleep(POLL);
    }
    if instance.child.is_none() {
        // An adopted instance may still be a child of this process (a
        // supervisor was dropped and another adopted it): reap it if so;
        // otherwise this fails with ECHILD, which is fine.
        let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
    }
}

/// Fails unless `nobody` can reach files in `dir`: every directory down to it
/// needs the others' search bit. Checked up front because dnsmasq would only
/// log a failed re-read on SIGHUP and keep serving stale hosts.
fn check_traversable(dir: &Path) -> Result<(), DnsmasqError> {
    let dir = dir.canonicalize().map_err(io_err("resolving", dir))?;
    for ancestor in dir.ancestors() {
        let mode = fs::metadata(ancestor)
            .map_err(io_err("inspecting", ancestor))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(DnsmasqError::NotTraversable {
                path: ancestor.to_owned(),
            });
        }
    }
    Ok(())
}

/// Writes `content` to `path` unless it already holds it; true if written.
fn write_if_changed(path: &Path, content: &str) -> Result<bool, DnsmasqError> {
    match fs::read(path) {
        Ok(old) if old == content.as_bytes() => Ok(false),
        _ => write_atomic(path, content).map(|()| true),
    }
}

/// Writes through a temporary file, fsync and rename, so dnsmasq never reads
/// a half-written file and a crash leaves the old or the new content.
fn write_atomic(path: &Path, content: &str) -> Result<(), DnsmasqError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
    // World-readable whatever the umask: dnsmasq re-reads as `nobody`.
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .and_then(|()| file.write_all(content.as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(io_err("writing", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("renaming into", path))
}

/// The log written since byte `from`.
fn log_since(path: &Path, from: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

/// The last lines of the log written since byte `from`.
fn log_tail(path: &Path, from: u64) -> String {
    let text = log_since(path, from);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_rewritten_only_when_they_differ() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eth2.hosts");
        assert!(write_if_changed(&path, "a\n").unwrap());
        assert!(!write_if_changed(&path, "a\n").unwrap());
        assert!(write_if_changed(&path, "b\n").unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "b\n");
        assert!(!dir.path().join("eth2.hosts.tmp").exists());
    }

    #[test]
    fn a_recycled_pid_is_not_adopted() {
        // This test process runs, but not with that configuration.
        assert!(!runs_with_conf(
            std::process::id(),
            Path::new("/nowhere/eth2.conf")
        ));
        assert!(!runs_with_conf(u32::MAX, Path::new("/nowhere/eth2.conf")));
    }
}
