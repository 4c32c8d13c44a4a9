//! The executor: `ip` commands with a hard timeout, namespaces and their
//! processes. Every link command names its namespace (`ip -n <ns>`); the only
//! host-level commands are `ip netns add/del/pids`, which create, remove and
//! inspect namespaces without changing the host's own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::error::{NetnsError, Result};
use super::links::{FdbEntry, Link, Op, parse_fdb, parse_links};

/// Where `ip netns` keeps its namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Where `ip netns exec` finds a namespace's own `/etc` files.
pub const NETNS_ETC_DIR: &str = "/etc/netns";

/// How long one `ip` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long processes get to exit on SIGTERM before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(3);

/// Runs `program args…`; fails unless it exits 0 within the timeout.
pub async fn run(program: &str, args: &[String]) -> Result<String> {
    let command = format!("{program} {}", args.join(" "));
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| NetnsError::io(format!("starting `{command}`"), e))?;
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| NetnsError::io(format!("running `{command}`"), e))?,
        // Dropping the future drops the child, which kill_on_drop kills.
        Err(_) => {
            return Err(NetnsError::Timeout {
                command,
                timeout: COMMAND_TIMEOUT,
            });
        }
    };
    if !output.status.success() {
        return Err(NetnsError::Command {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

async fn ip(args: &[&str]) -> Result<String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    run("ip", &args).await
}

/// Runs the operations in order, stopping at the first failure.
pub async fn apply(ops: &[Op]) -> Result<()> {
    for op in ops {
        tracing::debug!(%op, "netns driver");
        run(op.program(), &op.args()).await?;
    }
    Ok(())
}

/// Runs every operation, collecting failures (teardown is best effort).
pub async fn apply_all(ops: &[Op]) -> Vec<NetnsError> {
    let mut errors = Vec::new();
    for op in ops {
        if let Err(e) = run(op.program(), &op.args()).await {
            errors.push(e);
        }
    }
    errors
}

/// The path that pins a namespace.
pub fn netns_path(ns: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(ns)
}

pub fn exists(ns: &str) -> bool {
    netns_path(ns).exists()
}

/// Every namespace whose name starts with `prefix`.
pub fn list(prefix: &str) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(NETNS_RUN_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetnsError::io(format!("listing {NETNS_RUN_DIR}"), e)),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    Ok(names)
}

/// Creates the namespace with its loopback up, unless it exists.
pub async fn ensure(ns: &str) -> Result<()> {
    if !exists(ns) {
        match ip(&["netns", "add", ns]).await {
            Ok(_) => {}
            // Lost a race with another creator: fine.
            Err(_) if exists(ns) => {}
            Err(e) => return Err(e),
        }
    }
    ip(&["-n", ns, "link", "set", "dev", "lo", "up"]).await?;
    Ok(())
}

/// Removes the namespace's name. Processes must be gone first, or they keep
/// the namespace alive unnamed.
pub async fn delete(ns: &str) -> Result<()> {
    if !exists(ns) {
        return Ok(());
    }
    match ip(&["netns", "del", ns]).await {
        Ok(_) => Ok(()),
        Err(_) if !exists(ns) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The links of a namespace.
pub async fn links(ns: &str) -> Result<Vec<Link>> {
    let json = ip(&["-j", "-d", "-n", ns, "link", "show"]).await?;
    parse_links(&json).map_err(NetnsError::Invalid)
}

/// The forwarding database of one device of a namespace.
pub async fn fdb(ns: &str, device: &str) -> Result<Vec<FdbEntry>> {
    let args: Vec<String> = ["-j", "-n", ns, "fdb", "show", "dev", device]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let json = run("bridge", &args).await?;
    parse_fdb(&json).map_err(NetnsError::Invalid)
}

/// The links of a namespace, or none when it does not exist.
pub async fn links_if_exists(ns: &str) -> Result<Vec<Link>> {
    if exists(ns) {
        links(ns).await
    } else {
        Ok(Vec::new())
    }
}

/// The processes in a namespace.
pub async fn pids(ns: &str) -> Result<Vec<i32>> {
    if !exists(ns) {
        return Ok(Vec::new());
    }
    let out = ip(&["netns", "pids", ns]).await?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// The (device, inode) of a network namespace file, to compare namespaces.
pub fn ns_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether `pid` runs inside the namespace named `ns`.
pub fn pid_in_ns(pid: u32, ns: &str) -> bool {
    let own = ns_identity(&netns_path(ns));
    own.is_some() && own == ns_identity(Path::new(&format!("/proc/{pid}/ns/net")))
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may hold
        // spaces and parentheses itself.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The command line of `pid`.
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Stops every process in the namespace, by pid: SIGTERM, then SIGKILL for
/// those still there after the grace period. These are the agent's helpers
/// (dnsmasq) or processes of a namespace being swept.
pub async fn kill_all(ns: &str) -> Result<()> {
    let pids = pids(ns).await?;
    if pids.is_empty() {
        return Ok(());
    }
    for &p in &pids {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + TERM_GRACE;
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p as u32)).collect();
        if left.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            for p in left {
                // Still in our namespace: the pid was not reused.
                if pid_in_ns(p as u32, ns) {
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                }
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops (by pid) every process left in a namespace that lost its name,
/// known by the identity of its `/proc/<pid>/ns/net`.
pub async fn kill_in_identity(identity: (u64, u64)) {
    let in_it = || -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| ns_identity(Path::new(&format!("/proc/{p}/ns/net"))) == Some(identity))
            .filter(|p| alive(*p as u32))
            .collect()
    };
    for p in in_it() {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + TERM_GRACE;
    while !in_it().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for p in in_it() {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

/// The directory `ip netns exec` bind-mounts files from (`resolv.conf`).
pub fn etc_dir(ns: &str) -> PathBuf {
    Path::new(NETNS_ETC_DIR).join(ns)
}
