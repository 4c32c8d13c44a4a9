//! The [`Lab`]: a set of network namespaces and processes owned by one test.
//!
//! Every namespace a lab creates is named `vpclab-<pid>-<counter>-<short name>`, so that
//! parallel tests never collide and a later run can tell (from the pid) which leftovers
//! belong to a test process that no longer exists (see [`crate::sweep`]).

use std::fmt;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::Duration;

use tempfile::TempDir;

use crate::cmd::{self, DEFAULT_TIMEOUT, Output};
use crate::error::{Error, Result};
use crate::process::ProcessInner;
use crate::sweep;

/// Every lab namespace name starts with this.
pub const LAB_PREFIX: &str = "vpclab-";

/// Set this environment variable to keep a lab's directory (logs, configs) after the test;
/// it then lasts until a later run's sweep (its owner pid being gone).
pub const KEEP_DIR_ENV: &str = "VPCLAB_KEEP_DIR";

/// Makes lab prefixes unique within this process.
static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Stale labs from crashed runs are swept once per test process, before the first lab.
static SWEEP_ONCE: Once = Once::new();

/// Serialises `ip netns add` within the process: the first add after boot makes
/// `/run/netns` a shared mount, and concurrent first adds can race on that.
static NETNS_ADD: Mutex<()> = Mutex::new(());

/// A named network namespace created by a [`Lab`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    fn new(name: String) -> Self {
        let path = Path::new("/run/netns").join(&name);
        Self { name, path }
    }

    /// A handle to a namespace created by someone else (e.g. the manager's
    /// netns driver), for probes; the lab neither owns nor deletes it.
    pub fn existing(name: &str) -> Self {
        Self::new(name.to_string())
    }

    /// The full namespace name (`vpclab-<pid>-<n>-<short>`), as `ip -n` expects it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file (`/run/netns/<name>`), usable with `setns`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// What a lab has created, guarded by one mutex so the lab can be shared across threads.
#[derive(Default)]
pub(crate) struct LabState {
    pub(crate) closed: bool,
    pub(crate) namespaces: Vec<Netns>,
    pub(crate) processes: Vec<Arc<ProcessInner>>,
}

/// A test's private network lab: namespaces, processes and a scratch directory.
///
/// Dropping the lab (also while unwinding from a panic) kills every process it spawned
/// and everything else still running inside its namespaces, then deletes the namespaces.
pub struct Lab {
    test_name: String,
    prefix: String,
    dir: TempDir,
    state: Mutex<LabState>,
}

impl fmt::Debug for Lab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lab")
            .field("test_name", &self.test_name)
            .field("prefix", &self.prefix)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Lab {
    /// Creates an empty lab for the named test (the name is used in logs and the directory name).
    pub fn new(test_name: &str) -> Result<Self> {
        SWEEP_ONCE.call_once(|| match sweep::sweep_stale() {
            Ok(removed) if !removed.is_empty() => {
                eprintln!("[vpc-lab] removed stale lab namespaces: {removed:?}");
            }
            Ok(_) => {}
            Err(e) => eprintln!("[vpc-lab] sweeping stale lab namespaces failed: {e}"),
        });

        let counter = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{LAB_PREFIX}{}-{counter}-", std::process::id());
        let safe_name: String = test_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        let dir = tempfile::Builder::new()
            // Named like the namespaces, so the sweep can also remove a crashed run's dir.
            .prefix(&format!("{prefix}{safe_name}-"))
            .tempdir()
            .map_err(|e| Error::io("creating the lab directory", e))?;
        Ok(Self {
            test_name: test_name.to_owned(),
            prefix,
            dir,
            state: Mutex::default(),
        })
    }

    /// The prefix shared by all this lab's namespace names (`vpclab-<pid>-<n>-`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The test name given to [`Lab::new`].
    pub fn test_name(&self) -> &str {
        &self.test_name
    }

    /// The lab's scratch directory (process logs, configuration files); removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Locks the lab state, recovering from poisoning: clean-up must work after a panic.
    pub(crate) fn state(&self) -> MutexGuard<'_, LabState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates namespace `<prefix><short_name>` with `lo` up, owned by this lab.
    pub fn netns(&self, short_name: &str) -> Result<Netns> {
        check_file_name("namespace", short_name)?;
        let ns = Netns::new(format!("{}{short_name}", self.prefix));
        let mut state = self.state();
        if state.closed {
            return Err(Error::Closed(self.test_name.clone()));
        }
        if state.namespaces.contains(&ns) {
            return Err(Error::InvalidName {
                kind: "namespace",
                name: short_name.to_owned(),
                reason: "already created in this lab",
            });
        }
        {
            let _serialised = NETNS_ADD.lock().unwrap_or_else(|p| p.into_inner());
            cmd::ip_netns(&["add", ns.name()])?;
        }
        // Record before anything else can fail, so clean-up deletes it in any case.
        state.namespaces.push(ns.clone());
        drop(state);
        self.ip(&ns, &["link", "set", "dev", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespaces created so far, in creation order.
    pub fn namespaces(&self) -> Vec<Netns> {
        self.state().namespaces.clone()
    }

    /// Runs `ip -n <ns> <args...>`; the `-n` guarantees it never touches the host namespace.
    pub fn ip(&self, ns: &Netns, args: &[&str]) -> Result<Output> {
        let mut argv = vec!["ip", "-n", ns.name()];
        argv.extend_from_slice(args);
        cmd::run(&argv, DEFAULT_TIMEOUT)
    }

    /// Runs `argv` inside `ns` with the default 10 s timeout; fails on non-zero exit.
    pub fn exec<S: AsRef<str>>(&self, ns: &Netns, argv: &[S]) -> Result<Output> {
        self.exec_timeout(ns, argv, DEFAULT_TIMEOUT)
    }

    /// Runs `argv` inside `ns`, killing it after `timeout`; fails on non-zero exit.
    pub fn exec_timeout<S: AsRef<str>>(
        &self,
        ns: &Netns,
        argv: &[S],
        timeout: Duration,
    ) -> Result<Output> {
        cmd::run(&netns_exec_argv(ns, argv), timeout)
    }

    /// Runs `argv` inside `ns` and returns its output whatever the exit status
    /// (only a failure to start or the timeout are errors). For negative checks.
    pub fn exec_unchecked<S: AsRef<str>>(
        &self,
        ns: &Netns,
        argv: &[S],
        timeout: Duration,
    ) -> Result<Output> {
        cmd::run_unchecked(&netns_exec_argv(ns, argv), timeout)
    }

    /// Pids of every process this lab ever spawned, dead or alive.
    pub fn spawned_pids(&self) -> Vec<u32> {
        self.state().processes.iter().map(|p| p.pid()).collect()
    }

    /// Creates a new, empty file `<dir>/<stem>.<ext>` (or `<stem>-2.<ext>`, ...) and
    /// returns its path; `create_new` makes the choice race-free between threads.
    pub(crate) fn new_file(&self, stem: &str, ext: &str) -> Result<PathBuf> {
        check_file_name("file", stem)?;
        for n in 1.. {
            let file_name = match n {
                1 => format!("{stem}.{ext}"),
                n => format!("{stem}-{n}.{ext}"),
            };
            let path = self.dir().join(file_name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(path),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(format!("creating {}", path.display()), e)),
            }
        }
        unreachable!("an unbounded range always yields a file name")
    }

    /// Kills every spawned process and everything left inside the lab's namespaces, then
    /// deletes the namespaces. Idempotent: later calls (and drop) do nothing.
    ///
    /// Clean-up carries on past individual failures and returns all of them.
    pub fn close(&self) -> Result<(), Vec<Error>> {
        let (namespaces, processes) = {
            let mut state = self.state();
            if state.closed {
                return Ok(());
            }
            state.closed = true;
            (
                std::mem::take(&mut state.namespaces),
                state.processes.clone(),
            )
        };
        let mut errors = Vec::new();
        for process in &processes {
            if let Err(e) = process.kill() {
                errors.push(e);
            }
        }
        // Reverse order: later namespaces tend to depend on earlier ones (nothing
        // requires it, but it keeps logs in a natural order).
        for ns in namespaces.iter().rev() {
            if let Err(e) = sweep::remove_netns(ns.name()) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Prints the tail of every process log, so a failing test shows what its daemons said.
    fn dump_process_logs(&self) {
        let processes = self.state().processes.clone();
        for p in processes {
            let log = p.read_log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "[vpc-lab] --- {} (pid {}) log {} (last {} lines) ---\n{}",
                p.name(),
                p.pid(),
                p.log_path().display(),
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_process_logs();
        }
        if let Err(errors) = self.close() {
            for e in errors {
                eprintln!("[vpc-lab] {}: clean-up error: {e}", self.test_name);
            }
        }
        if std::env::var_os(KEEP_DIR_ENV).is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("[vpc-lab] kept lab directory {}", self.dir.path().display());
        }
    }
}

/// `ip netns exec <ns> argv...`: ip execs the command, so its pid is the command's.
pub(crate) fn netns_exec_argv<S: AsRef<str>>(ns: &Netns, argv: &[S]) -> Vec<String> {
    ["ip", "netns", "exec", ns.name()]
        .into_iter()
        .map(str::to_owned)
        .chain(argv.iter().map(|a| a.as_ref().to_owned()))
        .collect()
}

/// Accepts names that are safe as a path component and in a command line.
pub(crate) fn check_file_name(kind: &'static str, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > 64 {
        Some("longer than 64 bytes")
    } else if name.starts_with('.') || name.starts_with('-') {
        Some("must not start with '.' or '-'")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        Some("only ASCII letters, digits, '-', '_' and '.' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            kind,
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_checked() {
        assert!(check_file_name("x", "router-1_a.b").is_ok());
        for bad in ["", ".hidden", "-opt", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_file_name("x", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn labs_and_handles_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Lab>();
        assert_send_sync::<crate::ProcessHandle>();
        assert_send_sync::<crate::TcpEchoServer>();
    }

    #[test]
    fn netns_path_is_under_run_netns() {
        let ns = Netns::new("vpclab-1-0-a".into());
        assert_eq!(ns.path(), Path::new("/run/netns/vpclab-1-0-a"));
        assert_eq!(ns.to_string(), "vpclab-1-0-a");
    }
}
