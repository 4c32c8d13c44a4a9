//! Helpers for tests of the netns driver: a unique namespace prefix per test,
//! the vr-agent binary, commands inside namespaces, and a clean-up that
//! removes every namespace and process of the prefix even when a test panics.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use vpc_manager::driver::netns::{NetnsDriver, TlsProvider};
use vpc_manager::orchestration::agent::Endpoints;
use vpc_manager::settings::AgentTransport;

/// Where namespaces are pinned.
const NETNS_DIR: &str = "/run/netns";

/// The `vr-agent` binary next to the test binary, built first when it is
/// missing or older than the agent's sources.
pub fn agent_path() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let path = vpc_manager::driver::default_agent_path();
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            let stale = match built {
                None => true,
                Some(t) => ["vr-agent/src", "proto"]
                    .iter()
                    .any(|d| newest(&root.join(d)) > t),
            };
            if stale {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let status = Command::new(cargo)
                    .args(["build", "-p", "vr-agent", "--bin", "vr-agent"])
                    .current_dir(&root)
                    .status()
                    .expect("running cargo build -p vr-agent");
                assert!(status.success(), "building vr-agent failed");
            }
            assert!(path.exists(), "{} is missing", path.display());
            path
        })
        .clone()
}

fn newest(dir: &Path) -> SystemTime {
    let mut t = SystemTime::UNIX_EPOCH;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let m = if p.is_dir() {
                newest(&p)
            } else {
                e.metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH)
            };
            t = t.max(m);
        }
    }
    t
}

/// A test's own prefix, data directory and endpoint book; removes every
/// namespace of the prefix and the processes in them when dropped.
pub struct NetnsLab {
    pub prefix: String,
    pub dir: tempfile::TempDir,
    pub endpoints: Arc<Endpoints>,
}

impl NetnsLab {
    /// `tag` tells apart the tests of one process (`vpct<pid><tag>-`).
    pub fn new(tag: &str) -> NetnsLab {
        vpc_integration::require_root();
        let prefix = format!("vpct{}{tag}-", std::process::id());
        // A short path: agent sockets live below it (sun_path is 108 bytes).
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in("/tmp")
            .unwrap();
        // dnsmasq drops to nobody inside routers and re-reads its files
        // below the data directory: it must be searchable.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let lab = NetnsLab {
            prefix,
            dir,
            endpoints: Arc::default(),
        };
        lab.purge();
        lab
    }

    /// A driver of this lab (agents reconcile every second).
    pub fn driver(&self, transport: AgentTransport, tls: Option<TlsProvider>) -> NetnsDriver {
        NetnsDriver::new(
            &self.prefix,
            self.dir.path(),
            agent_path(),
            transport,
            self.endpoints.clone(),
            tls,
        )
        .unwrap()
        .with_agent_args(vec!["--reconcile-interval".into(), "1".into()])
    }

    /// The namespaces of the prefix.
    pub fn namespaces(&self) -> Vec<String> {
        namespaces(&self.prefix)
    }

    /// Kills the processes of the prefix's namespaces (by pid) and removes
    /// the namespaces and their /etc/netns directories.
    pub fn purge(&self) {
        for ns in self.namespaces() {
            for pid in pids(&ns) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&ns));
        }
    }
}

impl Drop for NetnsLab {
    fn drop(&mut self) {
        let left = self.namespaces();
        self.purge();
        if !left.is_empty() && !std::thread::panicking() {
            eprintln!("[netns lab] removed leftover namespaces: {left:?}");
        }
    }
}

/// Namespaces whose name starts with `prefix`.
pub fn namespaces(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The processes in a namespace.
pub fn pids(ns: &str) -> Vec<i32> {
    run(&["ip", "netns", "pids", ns])
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a process exists (zombies count as gone).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next())
                .is_some_and(|st| st != "Z")
        })
        .unwrap_or(false)
}

/// Runs a command with a 10 s limit (`timeout` kills it after).
pub fn run(argv: &[&str]) -> Option<Output> {
    Command::new("timeout")
        .arg("10")
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .ok()
}

/// Runs a command in a namespace.
pub fn exec(ns: &str, argv: &[&str]) -> Output {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(argv);
    run(&full).expect("running ip netns exec")
}

/// One ping from a namespace.
pub fn ping(ns: &str, addr: &str) -> bool {
    exec(ns, &["ping", "-c", "1", "-W", "1", addr])
        .status
        .success()
}

/// The links of a namespace: (name, master bridge, kind).
pub fn links(ns: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let out = run(&["ip", "-j", "-d", "-n", ns, "link", "show"]).expect("ip link show");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    let s = |k: &str| l.get(k).and_then(|x| x.as_str()).map(String::from);
                    (
                        s("ifname").unwrap_or_default(),
                        s("master"),
                        l.get("linkinfo")
                            .and_then(|i| i.get("info_kind"))
                            .and_then(|k| k.as_str())
                            .map(String::from),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `f` every 100 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
