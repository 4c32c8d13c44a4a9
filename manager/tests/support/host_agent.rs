//! A `vpc-manager host-agent` child process for tests: on a Unix socket, or
//! on TCP waiting to be enrolled with a token. Killed by pid, and its
//! namespace prefix purged, on drop (also on panic).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::e2e::purge_prefix;
use super::free_port;

/// Where the host agent listens.
enum Listen {
    Unix(PathBuf),
    Tcp(u16),
}

/// A running host agent process.
pub struct HostAgentProcess {
    child: Child,
    pub prefix: String,
    listen: Listen,
    dir: tempfile::TempDir,
}

impl HostAgentProcess {
    /// A host agent on a Unix socket in a data directory of its own.
    pub fn start(prefix: String) -> HostAgentProcess {
        let dir = Self::data_dir(&prefix);
        let listen = Listen::Unix(dir.path().join("host-agent.sock"));
        let child = Self::spawn(&listen, dir.path(), &prefix, None);
        HostAgentProcess {
            child,
            prefix,
            listen,
            dir,
        }
    }

    /// A host agent on TCP (127.0.0.1, a free port); with `token` it waits
    /// to be enrolled until it has an identity. Its routers' agents are on
    /// Unix sockets: the manager reaches a TCP agent by entering the
    /// router's namespace under its own prefix, which this host agent's
    /// routers do not carry.
    pub fn start_tcp(prefix: String, token: Option<&str>) -> HostAgentProcess {
        let dir = Self::data_dir(&prefix);
        let listen = Listen::Tcp(free_port());
        let child = Self::spawn(&listen, dir.path(), &prefix, token);
        HostAgentProcess {
            child,
            prefix,
            listen,
            dir,
        }
    }

    fn data_dir(prefix: &str) -> tempfile::TempDir {
        purge_prefix(prefix);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .expect("temp dir");
        // dnsmasq in the routers runs as nobody and must reach its files.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .expect("chmod");
        dir
    }

    fn spawn(listen: &Listen, dir: &Path, prefix: &str, token: Option<&str>) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("host-agent.log"))
            .expect("log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_vpc-manager"));
        command.args(["host-agent", "--listen"]);
        match listen {
            Listen::Unix(socket) => command.arg(format!("unix:{}", socket.display())),
            Listen::Tcp(port) => command.arg(format!("tcp://127.0.0.1:{port}")),
        };
        command
            .arg("--data-dir")
            .arg(dir)
            .args(["--netns-prefix", prefix])
            .env_remove("VPC_HOST_ENROLL_TOKEN");
        if let Some(token) = token {
            command.env("VPC_HOST_ENROLL_TOKEN", token);
        }
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("vpc-manager host-agent starts")
    }

    /// Its data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL addHost takes.
    pub fn url(&self) -> String {
        match &self.listen {
            Listen::Unix(socket) => format!("unix://{}", socket.display()),
            Listen::Tcp(port) => format!("https://127.0.0.1:{port}"),
        }
    }

    /// Waits until it listens (its socket exists, or its port accepts).
    pub async fn wait_listening(&self) {
        let started = Instant::now();
        loop {
            let up = match &self.listen {
                Listen::Unix(socket) => socket.exists(),
                Listen::Tcp(port) => tokio::net::TcpStream::connect(("127.0.0.1", *port))
                    .await
                    .is_ok(),
            };
            if up {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "host agent {} never listened; its log:\n{}",
                self.url(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host-agent.log")).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }

    /// Kills it and starts it again on the same address and data
    /// directory, with `token` (or none).
    pub fn restart(&mut self, token: Option<&str>) {
        self.kill();
        self.child = Self::spawn(&self.listen, self.dir.path(), &self.prefix, token);
    }
}

impl Drop for HostAgentProcess {
    fn drop(&mut self) {
        self.kill();
        purge_prefix(&self.prefix);
    }
}
