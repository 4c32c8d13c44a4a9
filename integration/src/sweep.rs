//! Removal of lab namespaces, and of stale ones left behind by crashed test runs.
//!
//! A test process killed with `SIGKILL` (or a crashed `cargo test`) cannot run its
//! clean-up, so its namespaces and processes linger. Lab names embed the pid of the
//! test process, which tells us safely whether the owner is gone.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cmd::{self, list_netns, netns_pids};
use crate::error::{Error, Result};
use crate::lab::LAB_PREFIX;
use crate::process::process_exists;

/// How long to wait for killed processes to disappear from `/proc`.
const DEATH_WAIT: Duration = Duration::from_secs(2);

/// Deletes every `vpclab-<pid>-...` namespace whose `<pid>` is no longer alive, after
/// killing what still runs inside it, and such a test process's lab directories.
/// Returns the namespace names removed.
///
/// Names without the prefix, or whose owner is alive (other test processes running in
/// parallel, nextest's one-process-per-test included), are never touched.
pub fn sweep_stale() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in list_netns()? {
        let Some(owner) = lab_owner_pid(&name) else {
            continue;
        };
        if owner == std::process::id() || process_exists(owner) {
            continue;
        }
        match remove_netns(&name) {
            Ok(()) => removed.push(name),
            // Another process may be sweeping the same leftovers right now.
            Err(_) if !list_netns()?.contains(&name) => {}
            Err(e) => eprintln!("[vpc-lab] could not sweep stale namespace {name}: {e}"),
        }
    }
    sweep_stale_dirs();
    Ok(removed)
}

/// Removes lab directories (`$TMPDIR/vpclab-<pid>-...`) of test processes that are gone.
/// Best effort: failures are only logged.
fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(lab_owner_pid) else {
            continue;
        };
        // file_type() does not follow symlinks: only real directories are removed.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || owner == std::process::id() || process_exists(owner) {
            continue;
        }
        if let Err(e) = std::fs::remove_dir_all(entry.path()) {
            eprintln!(
                "[vpc-lab] could not remove stale lab directory {:?}: {e}",
                entry.path()
            );
        }
    }
}

/// The owner pid of a lab namespace name (`vpclab-<pid>-<anything>`), if it is one.
pub fn lab_owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(LAB_PREFIX)?;
    let (pid, tail) = rest.split_once('-')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || tail.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// Kills everything inside namespace `name`, then deletes it (its links go with it).
///
/// The kill comes first because a process started with `ip netns exec` keeps running,
/// and keeps the namespace alive, after the name is deleted.
pub(crate) fn remove_netns(name: &str) -> Result<()> {
    kill_netns_processes(name)?;
    cmd::ip_netns(&["del", name]).map(drop)
}

/// `SIGKILL`s every process listed by `ip netns pids <name>` and waits until they are
/// gone. Everything in a lab namespace was started by the lab, so it is ours to kill.
pub(crate) fn kill_netns_processes(name: &str) -> Result<()> {
    let me = std::process::id() as i32;
    // A few rounds, in case something forks while we kill.
    for _ in 0..5 {
        let pids: Vec<i32> = netns_pids(name)?
            .into_iter()
            .filter(|&pid| pid != me)
            .collect();
        if pids.is_empty() {
            return Ok(());
        }
        for &pid in &pids {
            match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(Error::sys(format!("killing pid {pid} in {name}"), e)),
            }
        }
        let deadline = Instant::now() + DEATH_WAIT;
        while pids.iter().any(|&pid| process_exists(pid as u32)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let left = netns_pids(name)?;
    if left.iter().all(|&pid| pid == me) {
        Ok(())
    } else {
        Err(Error::Cleanup {
            what: format!("namespace {name}"),
            reason: format!("processes {left:?} survived SIGKILL"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_parsed_from_lab_names_only() {
        assert_eq!(lab_owner_pid("vpclab-4242-3-router"), Some(4242));
        assert_eq!(lab_owner_pid("vpclab-32769-0-stale"), Some(32769));
        assert_eq!(lab_owner_pid("vpclab-4242-"), None);
        assert_eq!(lab_owner_pid("vpclab-4242"), None);
        assert_eq!(lab_owner_pid("vpclab--1-x"), None);
        assert_eq!(lab_owner_pid("vpclab-+12-x"), None);
        assert_eq!(lab_owner_pid("vpclab-abc-0-x"), None);
        assert_eq!(lab_owner_pid("vpcsweeptest-4242-keep"), None);
        assert_eq!(lab_owner_pid("myns"), None);
        assert_eq!(
            lab_owner_pid("vpclab-99999999999-0-x"),
            None,
            "overflows u32"
        );
    }
}
