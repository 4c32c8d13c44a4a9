//! A lab of several hosts (DESIGN §4, issue 12): one fabric namespace with
//! the underlay bridge (`underlay`) and the bridges of the segments that
//! span hosts (`brpub` for the public network, `brv<N>` per VLAN, created by
//! the host agents as they need them: this kernel has no 802.1Q links, so a
//! VLAN is a bridge of its own); N host agents as real `vpc-manager
//! host-agent` processes, each with its own namespace prefix, data
//! directory, Unix socket (or TCP port, enrolled with a token:
//! [`FabricOptions::enroll_token`]) and underlay address (10.250.0.N/24 by
//! default);
//! and an upstream namespace on the fabric's public bridge standing for the
//! internet.
//!
//! Everything is named from one test prefix, so [`Fabric`]'s drop (also on
//! panic) kills the host agents by pid and removes every namespace of the
//! prefix with the processes in it (routers' agents, dnsmasq, DHCP clients).
//!
//! ```ignore
//! let fabric = Fabric::start(FabricOptions { hosts: 3, ..Default::default() }).await;
//! fabric.add_upstream(&["203.0.113.1/24"]);
//! let mut h1 = fabric.client(0).await;   // vpc.host.v1 over the host's socket
//! // addHost url: fabric.hosts[0].url()
//! ```

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vpc_proto::host::v1 as pb;
use vpc_proto::host::v1::host_agent_client::HostAgentClient;

use super::e2e::{new_prefix, purge_prefix};
use super::netns::run;

/// The fabric's underlay bridge (the name the host agents use).
pub const UNDERLAY_BRIDGE: &str = "underlay";

/// The fabric's public bridge.
pub const PUBLIC_BRIDGE: &str = "brpub";

/// How a lab is built.
#[derive(Debug, Clone)]
pub struct FabricOptions {
    pub hosts: usize,
    /// The underlay's MTU (each host agent's `--underlay-mtu`).
    pub underlay_mtu: u32,
    /// The underlay network; host N (from 1) gets its address N.
    pub underlay_net: Ipv4Addr,
    /// More arguments for every host agent (e.g. `--sweep-interval 1`).
    pub extra_args: Vec<String>,
    /// Host agents on TCP (127.0.0.1, a free port each) waiting to be
    /// enrolled with this token, which [`hosts_zone`] gives `addHost`:
    /// managers then reach them with mutual TLS and their routers' agents
    /// through them (`relay://`). None: Unix sockets.
    pub enroll_token: Option<String>,
}

impl Default for FabricOptions {
    fn default() -> Self {
        FabricOptions {
            hosts: 3,
            underlay_mtu: 1500,
            underlay_net: Ipv4Addr::new(10, 250, 0, 0),
            extra_args: Vec::new(),
            enroll_token: None,
        }
    }
}

/// One host of the lab: a `vpc-manager host-agent` process.
pub struct LabHost {
    /// 1-based, as in `host1`.
    pub number: usize,
    /// `--host-name`: `host1`, `host2`, …
    pub name: String,
    /// The host agent's namespace prefix.
    pub prefix: String,
    pub underlay: Ipv4Addr,
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// The TCP port of a host agent enrolled with a token.
    pub tcp_port: Option<u16>,
    /// Its enrollment token.
    pub enroll_token: Option<String>,
    args: Vec<String>,
    child: Option<Child>,
}

impl LabHost {
    /// The address a manager reaches the host agent on (`addHost` url).
    pub fn url(&self) -> String {
        match self.tcp_port {
            Some(port) => format!("https://127.0.0.1:{port}"),
            None => format!("unix://{}", self.socket.display()),
        }
    }

    /// The host agent's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The zone namespace this host gives `zone`.
    pub fn zone_ns(&self, zone: &uuid::Uuid) -> String {
        format!("{}zone-{}", self.prefix, &zone.simple().to_string()[..8])
    }

    /// A router's or VM's namespace on this host.
    pub fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The lease file a VM's NIC `device_index` has on this host, once the
    /// DHCP client took one (the driver's record: `ip=`, `mtu=` …).
    pub fn lease(&self, instance: &str, device_index: u32) -> Option<String> {
        std::fs::read_to_string(
            self.data_dir
                .join("vms")
                .join(instance)
                .join(format!("eth{device_index}.lease")),
        )
        .ok()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("host agent log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_vpc-manager"));
        command.arg("host-agent").args(&self.args);
        match &self.enroll_token {
            Some(token) => command.env("VPC_HOST_ENROLL_TOKEN", token),
            None => command.env_remove("VPC_HOST_ENROLL_TOKEN"),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("vpc-manager host-agent starts");
        self.child = Some(child);
    }

    /// SIGKILL by pid, and reap; its routers and VMs keep running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
        }
    }

    /// The host's loss: its agent killed and every namespace of its prefix
    /// removed with the processes in it.
    pub fn lose(&mut self) {
        self.kill();
        purge_prefix(&self.prefix);
    }

    /// Starts the host agent again on the same data, socket and underlay.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_up(Duration::from_secs(20)).await;
    }

    /// Waits until the host agent serves: it answers `Describe` on its
    /// socket, or (on TCP, where only managers may call it) its port
    /// accepts.
    pub async fn wait_up(&self, within: Duration) {
        let Some(port) = self.tcp_port else {
            self.wait_ready(within).await;
            return;
        };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < within,
                "{} did not listen within {within:?}; log:\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A client on the host agent's socket.
    pub async fn client(&self) -> HostAgentClient<tonic::transport::Channel> {
        let channel = vpc_proto::channel::unix(self.socket.clone())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.socket.display()));
        HostAgentClient::new(channel)
    }

    /// Waits until the host agent answers `Describe`.
    pub async fn wait_ready(&self, within: Duration) -> pb::DescribeResponse {
        let started = Instant::now();
        loop {
            let ask = async {
                let channel = vpc_proto::channel::unix(self.socket.clone()).await.ok()?;
                HostAgentClient::new(channel)
                    .describe(pb::DescribeRequest {})
                    .await
                    .ok()
                    .map(tonic::Response::into_inner)
            };
            if let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(2), ask).await {
                return d;
            }
            assert!(
                started.elapsed() < within,
                "{} did not answer within {within:?}; log:\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The lab: fabric, hosts, upstream. Dropping it removes all of it.
pub struct Fabric {
    /// Every namespace of the lab starts with it.
    pub prefix: String,
    /// The fabric namespace (each host agent's `--underlay-netns`).
    pub ns: String,
    pub hosts: Vec<LabHost>,
    pub underlay_mtu: u32,
    pub dir: tempfile::TempDir,
    upstream: Option<String>,
}

fn ip(args: &[&str]) {
    let mut argv = vec!["ip"];
    argv.extend_from_slice(args);
    let out = run(&argv).expect("ip runs");
    assert!(
        out.status.success(),
        "`{}`: {}",
        argv.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Fabric {
    /// Builds the fabric namespace with its underlay and public bridges and
    /// starts the host agents, each answering before this returns.
    pub async fn start(options: FabricOptions) -> Fabric {
        let prefix = new_prefix();
        let ns = format!("{prefix}fabric");
        let dir = tempfile::tempdir().expect("temp dir");
        // The data directories must be searchable by dnsmasq's user.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .expect("chmod the lab directory");
        let mut fabric = Fabric {
            prefix: prefix.clone(),
            ns: ns.clone(),
            hosts: Vec::new(),
            underlay_mtu: options.underlay_mtu,
            dir,
            upstream: None,
        };
        ip(&["netns", "add", &ns]);
        ip(&["-n", &ns, "link", "set", "dev", "lo", "up"]);
        for bridge in [UNDERLAY_BRIDGE, PUBLIC_BRIDGE] {
            ip(&[
                "-n",
                &ns,
                "link",
                "add",
                bridge,
                "type",
                "bridge",
                "stp_state",
                "0",
            ]);
            ip(&["-n", &ns, "link", "set", "dev", bridge, "up"]);
        }
        let net = u32::from(options.underlay_net);
        for number in 1..=options.hosts {
            let underlay = Ipv4Addr::from(net + number as u32);
            let data_dir = fabric.dir.path().join(format!("host{number}"));
            let host_prefix = format!("{prefix}h{number}-");
            let socket = data_dir.join("host-agent.sock");
            std::fs::create_dir_all(&data_dir).expect("host data dir");
            let tcp_port = options.enroll_token.as_ref().map(|_| super::free_port());
            let listen = match tcp_port {
                Some(port) => format!("tcp://127.0.0.1:{port}"),
                None => format!("unix:{}", socket.display()),
            };
            let mut args: Vec<String> = vec![
                "--listen".into(),
                listen,
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--netns-prefix".into(),
                host_prefix.clone(),
                "--agent-path".into(),
                super::netns::agent_path().display().to_string(),
                "--underlay-address".into(),
                format!("{underlay}/24"),
                "--underlay-mtu".into(),
                options.underlay_mtu.to_string(),
                "--underlay-netns".into(),
                ns.clone(),
                "--host-name".into(),
                format!("host{number}"),
            ];
            args.extend(options.extra_args.iter().cloned());
            let mut host = LabHost {
                number,
                name: format!("host{number}"),
                prefix: host_prefix,
                underlay,
                log: fabric.dir.path().join(format!("host{number}.log")),
                data_dir,
                socket,
                tcp_port,
                enroll_token: options.enroll_token.clone(),
                args,
                child: None,
            };
            host.spawn();
            fabric.hosts.push(host);
        }
        for host in &fabric.hosts {
            host.wait_up(Duration::from_secs(20)).await;
        }
        fabric
    }

    /// A client of host `i` (0-based).
    pub async fn client(&self, i: usize) -> HostAgentClient<tonic::transport::Channel> {
        self.hosts[i].client().await
    }

    /// The upstream namespace on the fabric's public bridge with these
    /// addresses (the public ranges' gateways, `203.0.113.1/24`) and, on
    /// its loopback, 198.51.100.1/32 standing for a host on the internet.
    /// Created once; later calls add addresses.
    pub fn add_upstream(&mut self, gateways: &[&str]) -> String {
        let up = format!("{}upstream", self.prefix);
        if self.upstream.is_none() {
            ip(&["netns", "add", &up]);
            ip(&["-n", &up, "link", "set", "dev", "lo", "up"]);
            ip(&[
                "-n", &self.ns, "link", "add", "up-pub", "type", "veth", "peer", "name", "eth0",
                "netns", &up,
            ]);
            ip(&[
                "-n",
                &self.ns,
                "link",
                "set",
                "dev",
                "up-pub",
                "master",
                PUBLIC_BRIDGE,
            ]);
            ip(&["-n", &self.ns, "link", "set", "dev", "up-pub", "up"]);
            ip(&["-n", &up, "link", "set", "dev", "eth0", "up"]);
            ip(&["-n", &up, "addr", "add", "198.51.100.1/32", "dev", "lo"]);
            self.upstream = Some(up.clone());
        }
        for cidr in gateways {
            ip(&["-n", &up, "addr", "replace", cidr, "dev", "eth0"]);
        }
        up
    }

    /// The upstream namespace, once [`Self::add_upstream`] made it.
    pub fn upstream(&self) -> Option<&str> {
        self.upstream.as_deref()
    }

    /// The links of a fabric bridge (its ports), sorted.
    pub fn bridge_ports(&self, bridge: &str) -> Vec<String> {
        let mut ports: Vec<String> = super::netns::links(&self.ns)
            .into_iter()
            .filter(|(_, master, _)| master.as_deref() == Some(bridge))
            .map(|(name, _, _)| name)
            .collect();
        ports.sort();
        ports
    }

    /// Every host agent's log, for a failure message.
    pub fn logs(&self) -> String {
        self.hosts
            .iter()
            .map(|h| {
                format!(
                    "==> {} <==\n{}",
                    h.name,
                    std::fs::read_to_string(&h.log).unwrap_or_default()
                )
            })
            .collect()
    }

    /// The data directory of the lab.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        for host in &mut self.hosts {
            host.kill();
        }
        // Hosts first (their veths leave the fabric with them), then the
        // upstream and the fabric: all of them carry the lab's prefix.
        for host in &self.hosts {
            purge_prefix(&host.prefix);
        }
        purge_prefix(&self.prefix);
    }
}

/// A fabric started with `options`, the upstream on 203.0.113.1/24 (the
/// public gateway of the zone), and its hosts added to a new zone by
/// [`hosts_zone`]: the fabric, the zone's id and the added hosts.
pub async fn fabric_zone(
    admin: &super::api::Client,
    options: FabricOptions,
    name: &str,
    vnis: &str,
) -> (Fabric, String, Vec<serde_json::Value>) {
    let mut fabric = Fabric::start(options).await;
    fabric.add_upstream(&["203.0.113.1/24"]);
    let (zone, added) = hosts_zone(admin, &fabric, name, vnis).await;
    (fabric, zone, added)
}

/// A VXLAN zone (`name`, VNIs `vnis`, public range 203.0.113.10-60 behind
/// 203.0.113.1) with one pod and every host of `fabric` added to it
/// through the API (enrolled with their token when they have one), in the
/// fabric's order: the zone's id and the added hosts as `addHost`
/// answered them.
pub async fn hosts_zone(
    admin: &super::api::Client,
    fabric: &Fabric,
    name: &str,
    vnis: &str,
) -> (String, Vec<serde_json::Value>) {
    let (zone, _) = super::vpc::zone_isolated(
        admin,
        name,
        "VXLAN",
        vnis,
        "203.0.113.1",
        "203.0.113.10",
        "203.0.113.60",
    )
    .await;
    let pod = super::api::id(
        &admin
            .ok(
                "createPod",
                &[
                    ("name", "fabric"),
                    ("zoneid", &zone),
                    ("gateway", "10.250.0.1"),
                    ("netmask", "255.255.255.0"),
                    ("startip", "10.250.0.10"),
                    ("endip", "10.250.0.20"),
                ],
            )
            .await,
        "pod",
    );
    let mut hosts = Vec::new();
    for h in &fabric.hosts {
        let url = h.url();
        let mut params = vec![
            ("zoneid", zone.as_str()),
            ("podid", pod.as_str()),
            ("clustername", "fabric"),
            ("url", url.as_str()),
            ("hypervisor", "netns"),
        ];
        // A host agent waiting to be enrolled takes its token as the
        // password.
        if let Some(token) = &h.enroll_token {
            params.extend([("username", "root"), ("password", token.as_str())]);
        }
        let added = admin.ok("addHost", &params).await;
        hosts.push(added["host"][0].clone());
    }
    (zone, hosts)
}

/// Waits for `probe` to hold, up to `within`.
pub async fn eventually(within: Duration, what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !probe().await {
        assert!(started.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `ip=` of a lease record ([`LabHost::lease`]).
pub fn lease_ip(lease: &str) -> Option<Ipv4Addr> {
    lease
        .lines()
        .find_map(|l| l.strip_prefix("ip="))
        .and_then(|ip| ip.trim().parse().ok())
}

/// The all-zero FDB entries (the flood list) of `vx<vni>` in `ns`, sorted;
/// empty when the device does not exist.
pub fn flood_list(ns: &str, vni: &str) -> Vec<String> {
    let out = Command::new("bridge")
        .args(["-n", ns, "-j", "fdb", "show", "dev", &format!("vx{vni}")])
        .output()
        .expect("bridge fdb");
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut dsts: Vec<String> = entries
        .iter()
        .filter(|e| e["mac"] == "00:00:00:00:00:00")
        .filter_map(|e| e["dst"].as_str().map(str::to_string))
        .collect();
    dsts.sort();
    dsts
}
