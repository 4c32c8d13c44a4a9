//! The `vpc-manager serve` binary as the robustness tests drive it: a
//! settings file naming only its addresses (everything else stays the stock
//! default), its log in a file, a namespace prefix of its own removed on
//! drop (also when a test panics), SIGKILL and restart.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use vpc_manager::driver::NetnsDriver;
use vpc_manager::settings::AgentTransport;

use crate::support::api::Client;
use crate::support::e2e::purge_prefix;
use crate::support::netns::agent_path;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The `vpc-manager serve` binary with a settings file of its own, its
/// stderr in a file, and a namespace prefix of its own.
pub(super) struct Binary {
    dir: tempfile::TempDir,
    port: u16,
    pub(super) prefix: String,
    child: Option<Child>,
}

impl Binary {
    /// A manager whose settings are only its addresses and `extra` (TOML
    /// lines): whatever else it does is the stock default.
    pub(super) fn new(extra: &str) -> Binary {
        vpc_integration::require_root();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("k{}{n}-", std::process::id() % 100_000);
        purge_prefix(&prefix);
        let dir = tempfile::tempdir().expect("temp dir");
        // dnsmasq in the routers runs as nobody and must reach its files.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nnetns_prefix = \"{prefix}\"\n\
             agent_path = \"{}\"\nbootstrap_zone = true\n{extra}",
            dir.path().join("data").display(),
            agent_path().display(),
        );
        std::fs::write(dir.path().join("manager.toml"), config).unwrap();
        Binary {
            dir,
            port,
            prefix,
            child: None,
        }
    }

    pub(super) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts it (again) and waits for `/healthz`; returns the admin client.
    pub(super) async fn start(&mut self) -> Client {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("manager.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vpc-manager"))
            .args(["serve", "--config"])
            .arg(self.dir.path().join("manager.toml"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start vpc-manager");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let started = Instant::now();
        loop {
            let up = tokio::time::timeout(
                Duration::from_millis(200),
                tokio::net::TcpStream::connect(addr),
            )
            .await;
            if let Ok(Ok(_)) = up
                && healthy(addr).await
            {
                break;
            }
            let child = self.child.as_mut().unwrap();
            assert!(
                child.try_wait().unwrap().is_none(),
                "vpc-manager exited early:\n{}",
                self.log()
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "vpc-manager did not come up:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ini = std::fs::read_to_string(self.data_dir().join("cloudstack.ini")).unwrap();
        let value = |k: &str| {
            ini.lines()
                .find_map(|l| l.strip_prefix(&format!("{k} = ")))
                .unwrap()
                .to_string()
        };
        Client {
            addr,
            key: value("key"),
            secret: value("secret"),
        }
    }

    /// What it logged so far.
    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("manager.log")).unwrap_or_default()
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub(super) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The names the driver gives this manager's namespaces (no side
    /// effect: nothing is started).
    pub(super) fn names(&self) -> NetnsDriver {
        NetnsDriver::new(
            &self.prefix,
            self.data_dir(),
            agent_path(),
            AgentTransport::Unix,
            Arc::default(),
            None,
        )
        .unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill9();
        purge_prefix(&self.prefix);
    }
}

/// The ids a VPC test needs from a bootstrapped manager.
pub(super) struct Zone {
    pub(super) zone: String,
    pub(super) vpc_offering: String,
    pub(super) tier_offering: String,
}

pub(super) async fn bootstrapped(admin: &Client) -> Zone {
    let first = |v: &Value, key: &str| v[key][0]["id"].as_str().unwrap().to_string();
    Zone {
        zone: first(&admin.ok("listZones", &[]).await, "zone"),
        vpc_offering: first(
            &admin.ok("listVPCOfferings", &[("isdefault", "true")]).await,
            "vpcoffering",
        ),
        tier_offering: first(
            &admin
                .ok("listNetworkOfferings", &[("forvpc", "true")])
                .await,
            "networkoffering",
        ),
    }
}

pub(super) fn vpc_params<'a>(z: &'a Zone, name: &'a str, cidr: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("cidr", cidr),
        ("zoneid", &z.zone),
        ("vpcofferingid", &z.vpc_offering),
    ]
}

pub(super) async fn routers(admin: &Client) -> Vec<Value> {
    admin.ok("listRouters", &[("listall", "true")]).await["router"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// GetState straight from a router's agent over its Unix socket; false
/// while it does not answer.
pub(super) async fn agent_answers(names: &NetnsDriver, router: &str) -> bool {
    let socket = names.router_dir(router).join("agent.sock");
    let ask = async {
        let channel = vpc_proto::channel::unix(socket).await.ok()?;
        vpc_proto::v1::virtual_router_client::VirtualRouterClient::new(channel)
            .get_state(vpc_proto::v1::GetStateRequest::default())
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), ask).await,
        Ok(Some(_))
    )
}

/// Whether `/healthz` answers 200. A starting manager may reset a
/// connection it took before it served (a probe, not a request under test),
/// so any error only means "not yet".
async fn healthy(addr: std::net::SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        Some(raw.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
