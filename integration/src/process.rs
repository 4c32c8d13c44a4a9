//! Long-running processes inside lab namespaces.
//!
//! A process is owned jointly by its [`ProcessHandle`] and by the [`Lab`] that spawned
//! it (an `Arc`), so either can stop it: whichever comes first kills and reaps it, and
//! the other finds it already reaped. Reaping happens exactly once, under a mutex, and
//! the process group is only ever signalled while the leader is unreaped, so a recycled
//! pid can never be hit.

use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

use crate::cmd::command_line;
use crate::error::{Error, Result};
use crate::lab::{Lab, Netns, check_file_name, netns_exec_argv};

/// How long a process gets to exit after `SIGTERM` before it is sent `SIGKILL`.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

enum ProcState {
    Running(Child),
    Exited(ExitStatus),
}

/// Shared core of a spawned process.
pub(crate) struct ProcessInner {
    name: String,
    pid: u32,
    log: PathBuf,
    state: Mutex<ProcState>,
}

impl ProcessInner {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log
    }

    pub(crate) fn read_log(&self) -> String {
        match fs::read(&self.log) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("<could not read {}: {e}>", self.log.display()),
        }
    }

    fn state(&self) -> MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pgid(&self) -> Pid {
        Pid::from_raw(self.pid as i32)
    }

    /// Reaps the process if it has exited, and reports whether it is still running.
    fn is_running(&self) -> bool {
        let mut state = self.state();
        match &mut *state {
            ProcState::Exited(_) => false,
            ProcState::Running(child) => match child.try_wait() {
                Ok(Some(status)) => {
                    *state = ProcState::Exited(status);
                    false
                }
                Ok(None) => true,
                // Cannot happen for our own child; assume alive so kill() still runs.
                Err(_) => true,
            },
        }
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        self.is_running();
        match &*self.state() {
            ProcState::Exited(status) => Some(*status),
            ProcState::Running(_) => None,
        }
    }

    /// Stops the process group: `SIGTERM`, up to [`TERM_GRACE`], then `SIGKILL`; reaps
    /// the leader. Idempotent.
    pub(crate) fn kill(&self) -> Result<ExitStatus> {
        let mut state = self.state();
        let child = match &mut *state {
            ProcState::Exited(status) => return Ok(*status),
            ProcState::Running(child) => child,
        };
        let context = |what: &str| format!("{what} process `{}` (pid {})", self.name, self.pid);
        signal_group(self.pgid(), Signal::SIGTERM)
            .map_err(|e| Error::sys(context("SIGTERM"), e))?;
        let deadline = Instant::now() + TERM_GRACE;
        while !leader_exited(self.pid)? && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Also when the leader obeyed SIGTERM: this clears any child it left in the group.
        // The leader is not reaped yet, so the group id still belongs to us.
        signal_group(self.pgid(), Signal::SIGKILL)
            .map_err(|e| Error::sys(context("SIGKILL"), e))?;
        let status = child.wait().map_err(|e| Error::io(context("reaping"), e))?;
        *state = ProcState::Exited(status);
        Ok(status)
    }
}

/// `killpg`, treating "no such group" as success (everything in it is already gone).
fn signal_group(pgid: Pid, signal: Signal) -> nix::Result<()> {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// True once our child `pid` has exited; `WNOWAIT` leaves it unreaped (a zombie).
fn leader_exited(pid: u32) -> Result<bool> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid as i32)), flags) {
        Ok(WaitStatus::StillAlive) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) => Err(Error::sys(format!("waitid for pid {pid}"), e)),
    }
}

/// A process started by [`Lab::spawn`]; killed when the handle (or the lab) is dropped.
pub struct ProcessHandle {
    inner: Arc<ProcessInner>,
}

impl std::fmt::Debug for ProcessHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessHandle")
            .field("name", &self.inner.name)
            .field("pid", &self.inner.pid)
            .field("log", &self.inner.log)
            .finish_non_exhaustive()
    }
}

impl ProcessHandle {
    /// The pid of the command itself (`ip netns exec` execs it in place).
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Where stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.inner.log
    }

    /// The current content of the log (stdout and stderr interleaved).
    pub fn log(&self) -> String {
        self.inner.read_log()
    }

    /// True while the process has not exited (an exited process is reaped here).
    pub fn is_running(&self) -> bool {
        self.inner.is_running()
    }

    /// The exit status once the process has exited and been reaped.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.inner.exit_status()
    }

    /// Stops the process group (`SIGTERM`, then `SIGKILL` after 2 s) and reaps it. Idempotent.
    pub fn kill(&self) -> Result<ExitStatus> {
        self.inner.kill()
    }

    /// Waits until the log contains `needle`; fails early if the process exits first.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            let reason = if !self.is_running() {
                format!(
                    "exited ({:?}) before logging {needle:?}",
                    self.exit_status()
                )
            } else if Instant::now() >= deadline {
                format!("did not log {needle:?} within {timeout:?}")
            } else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            return Err(Error::Process {
                name: self.name().to_owned(),
                pid: self.pid(),
                reason,
                log: self.log_path().to_owned(),
                log_text: self.log(),
            });
        }
    }
}

impl Drop for ProcessHandle {
    fn drop(&mut self) {
        if let Err(e) = self.inner.kill() {
            eprintln!("[vpc-lab] {e}");
        }
    }
}

impl Lab {
    /// Starts `argv` inside `ns` in its own process group, logging to `<dir>/<name>.log`.
    ///
    /// The process is killed when the returned handle is dropped, and in any case when
    /// the lab is closed or dropped.
    pub fn spawn<S: AsRef<str>>(
        &self,
        ns: &Netns,
        name: &str,
        argv: &[S],
    ) -> Result<ProcessHandle> {
        check_file_name("process", name)?;
        if argv.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "spawn `{name}`: empty command"
            )));
        }
        let full = netns_exec_argv(ns, argv);
        let command = command_line(&full);
        let log = self.new_file(name, "log")?;
        let open_log = || {
            OpenOptions::new()
                .append(true)
                .open(&log)
                .map_err(|e| Error::io(format!("opening {}", log.display()), e))
        };
        let (stdout, stderr) = (open_log()?, open_log()?);

        // Hold the state lock across the spawn so close() cannot run in between and
        // miss the new process.
        let mut state = self.state();
        if state.closed {
            return Err(Error::Closed(self.test_name().to_owned()));
        }
        let child = Command::new(&full[0])
            .args(&full[1..])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                command: command.clone(),
                source,
            })?;
        let inner = Arc::new(ProcessInner {
            name: name.to_owned(),
            pid: child.id(),
            log,
            state: Mutex::new(ProcState::Running(child)),
        });
        state.processes.push(Arc::clone(&inner));
        drop(state);
        eprintln!(
            "[vpc-lab] spawned `{name}` pid {} in {ns}: {command}",
            inner.pid
        );
        Ok(ProcessHandle { inner })
    }
}

/// True if `pid` is a live process: it exists in `/proc` and is not a zombie.
pub fn process_exists(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(parse_stat_state(&stat), Some('Z' | 'X')),
        Err(_) => false,
    }
}

/// The state letter of `/proc/<pid>/stat`, found after the last `)` since the command
/// name in parentheses may itself contain spaces and parentheses.
fn parse_stat_state(stat: &str) -> Option<char> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.trim_start().chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_state_survives_odd_command_names() {
        assert_eq!(parse_stat_state("42 (sleep) S 1 42 42 0"), Some('S'));
        assert_eq!(parse_stat_state("42 (a) b) Z 1 42"), Some('Z'));
        assert_eq!(parse_stat_state("garbage"), None);
    }

    #[test]
    fn our_own_process_exists_and_a_pid_beyond_pid_max_does_not() {
        assert!(process_exists(std::process::id()));
        assert!(!process_exists(u32::MAX));
    }
}
