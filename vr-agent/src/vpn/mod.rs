//! Runs the router's strongSwan: one charon per router namespace, configured
//! through swanctl over its VICI socket, supervised like dnsmasq.
//!
//! - The IPsec backend is chosen once, at start ([`detect_backend`]): the
//!   kernel's xfrm where it has ESP, charon's userspace `kernel-libipsec`
//!   (a TUN device, [`USERSPACE_DEV`]) where it does not. The choice is logged.
//! - charon runs in the agent's network namespace with a private mount
//!   namespace whose `/run` is the agent's `vpn/run` directory: charon's pid
//!   file is fixed at `/var/run/charon.pid`, so two routers on one host would
//!   otherwise find each other's. It runs in its own process group and
//!   outlives the agent; a new supervisor adopts the charon whose pid file is
//!   in its directory, so an agent restart keeps the tunnels up.
//! - [`Charon::apply`] writes `swanctl.conf` (mode 0600: it holds the keys)
//!   from the validated desired VPN, loads it with `swanctl --load-all`
//!   (connections gone from the file are unloaded and their SAs closed), and
//!   re-initiates a connection whose reset serial changed. No connection: no
//!   charon.
//! - [`Charon::status`] reports each connection's live state from
//!   `swanctl --list-sas` and, for one that is not up, the reason charon
//!   logged last (an authentication failure, no acceptable proposal).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vpc_proto::v1 as pb;

use crate::model::Vpn;
pub use crate::plan::vpn::{Backend, USERSPACE_DEV};
use crate::plan::vpn::{children, strongswan_conf, swanctl_conf};

/// How long a fresh charon may take to open its VICI socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long charon gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long one swanctl call may take.
const SWANCTL_TIMEOUT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);
/// How much of charon's log the status reads back.
const LOG_WINDOW: u64 = 256 * 1024;

/// Errors of running charon or swanctl.
#[derive(Debug, thiserror::Error)]
pub enum VpnError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("charon did not start: {0}")]
    Start(String),
    #[error("swanctl {args} failed: {output}")]
    Swanctl { args: String, output: String },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> VpnError + 'a {
    move |source| VpnError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The backend this kernel allows: xfrm with ESP when the `esp4` module is
/// loaded or can be (modprobe), otherwise charon's userspace IPsec.
pub fn detect_backend() -> Backend {
    let has_esp = || Path::new("/sys/module/esp4").exists();
    if Path::new("/proc/net/xfrm_stat").exists() {
        if has_esp() {
            return Backend::Kernel;
        }
        let loaded = Command::new("modprobe")
            .args(["-q", "esp4"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if loaded && has_esp() {
            return Backend::Kernel;
        }
    }
    Backend::Userspace
}

/// The charon of one router.
pub struct Charon {
    dir: PathBuf,
    charon_binary: PathBuf,
    swanctl_binary: PathBuf,
    backend: Backend,
    /// The charon this supervisor started (reaped on exit).
    child: Option<Child>,
    /// The configuration last loaded, to skip a reload that changes nothing.
    loaded: Option<String>,
    /// The reset serial of each connection as last applied.
    serials: BTreeMap<String, u64>,
}

impl Charon {
    /// A supervisor for `dir`; adopts a charon left running there.
    pub fn new(dir: PathBuf, charon_binary: PathBuf, swanctl_binary: PathBuf) -> Self {
        let backend = detect_backend();
        tracing::info!(
            ?backend,
            "site-to-site VPN backend: {}",
            match backend {
                Backend::Kernel => "kernel IPsec (xfrm with ESP)",
                Backend::Userspace =>
                    "userspace IPsec (strongSwan kernel-libipsec): the kernel has no ESP",
            }
        );
        Charon {
            dir,
            charon_binary,
            swanctl_binary,
            backend,
            child: None,
            loaded: None,
            serials: BTreeMap::new(),
        }
    }

    /// The IPsec backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("charon.vici")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("run").join("charon.pid")
    }

    fn conf_file(&self) -> PathBuf {
        self.dir.join("swanctl.conf")
    }

    /// The pid of the running charon, if any.
    pub fn pid(&mut self) -> Option<u32> {
        if let Some(child) = &mut self.child {
            if matches!(child.try_wait(), Ok(None)) {
                return Some(child.id());
            }
            self.child = None;
        }
        let pid: u32 = fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "charon").then_some(pid)
    }

    /// Brings charon to `vpn`: stopped without one; otherwise running with
    /// its connections loaded and reset ones re-initiated. Returns what it
    /// did, one line each.
    pub fn apply(&mut self, vpn: Option<&Vpn>) -> Result<Vec<String>, VpnError> {
        let Some(vpn) = vpn else {
            return Ok(self.stop());
        };
        let mut changes = Vec::new();
        if self.pid().is_none() {
            self.start()?;
            self.loaded = None;
            changes.push(format!("charon started ({:?} IPsec)", self.backend));
        }
        let conf = swanctl_conf(vpn);
        let previous: BTreeMap<String, u64> = std::mem::take(&mut self.serials);
        if self.loaded.as_deref() != Some(conf.as_str()) {
            write_secret(&self.conf_file(), &conf)?;
            let file = self.conf_file();
            self.swanctl(&["--load-all".as_ref(), "--file".as_ref(), file.as_os_str()])?;
            // Unloading a connection leaves its SAs up: close them.
            for gone in previous
                .keys()
                .filter(|id| !vpn.connections.iter().any(|c| &c.id == *id))
            {
                self.terminate(gone);
                changes.push(format!("VPN connection {gone} closed"));
            }
            self.loaded = Some(conf);
            changes.push(format!(
                "swanctl loaded {} VPN connections",
                vpn.connections.len()
            ));
        }
        for c in &vpn.connections {
            self.serials.insert(c.id.clone(), c.reset_serial);
            // Unknown before (a new connection, or a restarted agent): the
            // load started it.
            if previous.get(&c.id).is_some_and(|s| *s != c.reset_serial) {
                self.terminate(&c.id);
                if !c.passive {
                    for (child, _) in children(c) {
                        // Asynchronous: the status shows how it goes.
                        self.swanctl(&[
                            "--initiate".as_ref(),
                            "--child".as_ref(),
                            child.as_ref(),
                            "--timeout".as_ref(),
                            "-1".as_ref(),
                        ])?;
                    }
                }
                changes.push(format!("VPN connection {} reset", c.id));
            }
        }
        Ok(changes)
    }

    /// Restarts a charon that died while the state has a VPN (the reconcile
    /// loop); returns what it did.
    pub fn check(&mut self, vpn: Option<&Vpn>) -> Vec<String> {
        match vpn {
            Some(v) if self.pid().is_none() => {
                self.loaded = None;
                match self.apply(Some(v)) {
                    Ok(mut lines) => {
                        lines.insert(0, "charon was not running".into());
                        lines
                    }
                    Err(e) => vec![format!("charon was not running; restarting it failed: {e}")],
                }
            }
            _ => Vec::new(),
        }
    }

    fn start(&mut self) -> Result<(), VpnError> {
        let run = self.dir.join("run");
        fs::create_dir_all(&run).map_err(io_err("creating", &run))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("restricting", &self.dir))?;
        let _ = fs::remove_file(self.socket());
        let _ = fs::remove_file(self.pid_file());
        let conf = self.dir.join("strongswan.conf");
        write_secret(&conf, &strongswan_conf(self.backend, &self.dir))?;
        let log_path = self.dir.join("charon.out");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err("opening", &log_path))?;
        let stderr = log.try_clone().map_err(io_err("duplicating", &log_path))?;
        let run_dir = CString::new(run.as_os_str().as_bytes())
            .map_err(|_| VpnError::Start(format!("{} holds a NUL byte", run.display())))?;
        let mut command = Command::new(&self.charon_binary);
        command
            .env("STRONGSWAN_CONF", &conf)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            // Its own group: a signal to the agent's group must not take the
            // tunnels down.
            .process_group(0);
        // SAFETY: between fork and exec the closure only makes raw syscalls
        // (unshare, mount) on memory prepared before the fork.
        unsafe {
            command.pre_exec(move || private_run(&run_dir));
        }
        let child = command
            .spawn()
            .map_err(|e| VpnError::Start(format!("{}: {e}", self.charon_binary.display())))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.socket().exists() {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(VpnError::Start(format!(
                    "charon exited ({status}); {}",
                    tail(&log_path)
                )));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(VpnError::Start(format!(
                    "no VICI socket after {START_TIMEOUT:?}; {}",
                    tail(&log_path)
                )));
            }
            sleep(POLL);
        }
        Ok(())
    }

    /// Stops charon (SIGTERM, then SIGKILL) and forgets its connections.
    fn stop(&mut self) -> Vec<String> {
        self.loaded = None;
        self.serials.clear();
        let _ = fs::remove_file(self.conf_file());
        let Some(pid) = self.pid() else {
            return Vec::new();
        };
        let target = Pid::from_raw(pid as i32);
        let _ = kill(target, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while self.pid().is_some() && Instant::now() < deadline {
            sleep(POLL);
        }
        if self.pid().is_some() {
            let _ = kill(target, Signal::SIGKILL);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        vec!["charon stopped (no VPN connection)".into()]
    }

    fn terminate(&self, id: &str) {
        let result = self.swanctl(&[
            "--terminate".as_ref(),
            "--ike".as_ref(),
            id.as_ref(),
            "--force".as_ref(),
            "--timeout".as_ref(),
            "2".as_ref(),
        ]);
        // Nothing to close is not an error.
        if let Err(e) = result {
            tracing::debug!(connection = id, error = %e, "terminate");
        }
    }

    /// Runs swanctl against this charon; its output on success.
    fn swanctl(&self, args: &[&std::ffi::OsStr]) -> Result<String, VpnError> {
        let uri = format!("unix://{}", self.socket().display());
        let shown = || {
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut child = Command::new(&self.swanctl_binary)
            .args(args)
            .arg("--uri")
            .arg(&uri)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| VpnError::Swanctl {
                args: shown(),
                output: format!("{}: {e}", self.swanctl_binary.display()),
            })?;
        let deadline = Instant::now() + SWANCTL_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => sleep(POLL),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(VpnError::Swanctl {
                        args: shown(),
                        output: format!("no answer in {SWANCTL_TIMEOUT:?}"),
                    });
                }
            }
        };
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut s) = child.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(mut s) = child.stderr.take() {
            let _ = s.read_to_string(&mut err);
        }
        if status.success() {
            Ok(out)
        } else {
            Err(VpnError::Swanctl {
                args: shown(),
                output: format!("{status}: {}", last_lines(&format!("{out}{err}"), 5)),
            })
        }
    }

    /// Each connection's live state (`vpn` is the applied desired VPN).
    pub fn status(&mut self, vpn: Option<&Vpn>) -> Vec<pb::VpnConnectionStatus> {
        let Some(vpn) = vpn else {
            return Vec::new();
        };
        let running = self.pid().is_some();
        let sas = if running {
            self.swanctl(&["--list-sas".as_ref()]).unwrap_or_default()
        } else {
            String::new()
        };
        let log = read_log_window(&self.dir.join("charon.log"));
        vpn.connections
            .iter()
            .map(|c| {
                let (state, reason) = if !running {
                    (
                        pb::VpnConnectionState::Down,
                        "charon is not running".to_string(),
                    )
                } else {
                    connection_state(&c.id, &sas, &log)
                };
                pb::VpnConnectionStatus {
                    id: c.id.clone(),
                    state: state as i32,
                    reason,
                }
            })
            .collect()
    }
}

/// In the child, before exec: a private mount namespace whose `/run` is
/// `run_dir` (charon's fixed pid file lands there).
fn private_run(run_dir: &CString) -> io::Result<()> {
    let check = |rc: i32| {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: plain syscalls with NUL-terminated strings that outlive them.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            run_dir.as_ptr(),
            c"/run".as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ))
    }
}

/// Writes `text` to `path` with mode 0600 (it may hold keys), atomically.
fn write_secret(path: &Path, text: &str) -> Result<(), VpnError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("creating", &tmp))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io_err("writing", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("renaming", path))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    format!("its output ends with: {}", last_lines(&text, 5))
}

fn read_log_window(path: &Path) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOG_WINDOW)));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What charon logs when a negotiation fails, as the reason shown.
const FAILURES: &[&str] = &[
    "AUTHENTICATION_FAILED",
    "NO_PROPOSAL_CHOSEN",
    "MAC mismatched",
    "no shared key found",
    "TS_UNACCEPTABLE",
    "INVALID_KE_PAYLOAD",
    "giving up after",
    "failed",
];

/// A connection's state from `swanctl --list-sas` and charon's log: up when
/// its IKE SA is established with an installed child SA; otherwise the last
/// failure charon logged for it since it was last established (error), or
/// connecting.
pub fn connection_state(id: &str, sas: &str, log: &str) -> (pb::VpnConnectionState, String) {
    let mut ike_up = false;
    let mut child_up = false;
    let mut in_sa = false;
    for line in sas.lines() {
        if !line.starts_with(' ') {
            in_sa = line.starts_with(&format!("{id}: #"));
            ike_up |= in_sa && line.contains("ESTABLISHED");
        } else if in_sa && line.trim_start().starts_with(id) && line.contains("INSTALLED") {
            child_up = true;
        }
    }
    if ike_up && child_up {
        return (pb::VpnConnectionState::Up, String::new());
    }
    let tag = format!("<{id}|");
    let mut reason = String::new();
    for line in log.lines().filter(|l| l.contains(&tag)) {
        if line.contains("established successfully") || line.contains("established with SPIs") {
            reason.clear();
        } else if let Some(f) = FAILURES.iter().find(|f| line.contains(*f)) {
            // The message after the `<name|n>` tag.
            let message = line
                .split_once("> ")
                .map_or(line, |(_, m)| m)
                .trim()
                .to_string();
            reason = if message.is_empty() {
                (*f).to_string()
            } else {
                message
            };
        }
    }
    if reason.is_empty() {
        (pb::VpnConnectionState::Connecting, String::new())
    } else {
        (pb::VpnConnectionState::Error, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c2a52-0001-4b8e-8d1f-5e0a00000001";

    #[test]
    fn an_established_sa_with_an_installed_child_is_up() {
        let sas = format!(
            "{ID}: #1, ESTABLISHED, IKEv2, 09bb_i* 38f7_r\n  local  '203.0.113.10' @ 203.0.113.10[4500]\n  {ID}: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_CBC-128/HMAC_SHA1_96\n"
        );
        let log = format!("1 09[IKE] <{ID}|1> received AUTHENTICATION_FAILED notify error\n");
        assert_eq!(
            connection_state(ID, &sas, &log),
            (pb::VpnConnectionState::Up, String::new())
        );
    }

    #[test]
    fn the_last_failure_since_the_last_success_is_the_reason() {
        let log = format!(
            "1 09[IKE] <{ID}|1> received AUTHENTICATION_FAILED notify error\n\
             2 09[IKE] <{ID}|2> IKE_SA {ID}[2] established successfully\n\
             3 11[IKE] <{ID}|3> received NO_PROPOSAL_CHOSEN notify error\n\
             4 11[IKE] <other|4> received AUTHENTICATION_FAILED notify error\n"
        );
        let (state, reason) = connection_state(ID, "", &log);
        assert_eq!(state, pb::VpnConnectionState::Error);
        assert_eq!(reason, "received NO_PROPOSAL_CHOSEN notify error");
        let ok = format!(
            "1 09[IKE] <{ID}|1> received AUTHENTICATION_FAILED notify error\n2 09[IKE] <{ID}|2> IKE_SA {ID}[2] established successfully\n"
        );
        assert_eq!(
            connection_state(ID, "", &ok),
            (pb::VpnConnectionState::Connecting, String::new())
        );
    }
}
