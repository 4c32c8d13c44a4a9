//! End-to-end fixtures: a manager with the netns driver (a unique namespace
//! prefix per test, the real vr-agent, `--bootstrap-zone`), VMs reached as
//! namespaces, and a guard that removes every namespace and process of the
//! prefix, also when the test panics.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use vpc_integration::Netns;
use vpc_manager::driver::NetnsDriver;
use vpc_manager::settings::{AgentTransport, DriverKind, Settings};

use super::api::{Client, TestManager, job_ok};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Removes everything of a prefix: namespaces (after killing the processes
/// in them) and the VMs' resolv.conf directories.
pub fn purge_prefix(prefix: &str) {
    let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
    else {
        return;
    };
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in listed.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if !name.starts_with(prefix) {
            continue;
        }
        if let Ok(pids) = std::process::Command::new("ip")
            .args(["netns", "pids", name])
            .output()
        {
            for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", name])
            .status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{name}"));
    }
}

/// A namespace prefix no other test of this run uses.
pub fn new_prefix() -> String {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("e{}{n}-", std::process::id() % 100_000)
}

/// A manager on the netns driver and its zone.
pub struct E2e {
    pub m: TestManager,
    pub driver: NetnsDriver,
    pub prefix: String,
    pub zone: String,
    pub vpc_offering: String,
    pub tier_offering: String,
    pub tier_offering_lb: String,
    pub service_offering: String,
    pub template: String,
    guard: PrefixGuard,
}

/// Purges the prefix on drop (also on panic), after halting the driver.
struct PrefixGuard {
    prefix: String,
    driver: Option<NetnsDriver>,
}

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        if let Some(d) = &self.driver {
            d.halt();
        }
        purge_prefix(&self.prefix);
    }
}

impl E2e {
    /// A manager with the netns driver on `transport`, its first zone
    /// bootstrapped.
    pub async fn start(transport: AgentTransport) -> E2e {
        Self::start_with(new_prefix(), transport, |_| {}, None).await
    }

    /// [`E2e::start`] on `prefix` (from [`new_prefix`]), with `customize`
    /// applied to the settings; `driver` stands for the manager's in-process
    /// one when the routers run on a host agent of their own (names and
    /// leases are read through it, nothing is started by it).
    pub async fn start_with(
        prefix: String,
        transport: AgentTransport,
        customize: impl FnOnce(&mut Settings),
        driver: Option<NetnsDriver>,
    ) -> E2e {
        vpc_integration::require_root();
        purge_prefix(&prefix);
        let mut guard = PrefixGuard {
            prefix: prefix.clone(),
            driver: None,
        };
        let data_dir = tempfile::tempdir().expect("temp dir");
        // dnsmasq in the routers runs as nobody and must reach its files.
        std::fs::set_permissions(
            data_dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .expect("chmod the data dir");
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.path().to_path_buf(),
            driver: DriverKind::Netns,
            netns_prefix: prefix.clone(),
            agent_transport: transport,
            bootstrap_zone: true,
            ..Settings::default()
        };
        customize(&mut settings);
        let (m, netns) = TestManager::start_real(settings, data_dir).await;
        let driver = driver.or(netns).expect("the netns driver");
        guard.driver = Some(driver.clone());
        let admin = m.admin();
        // Quick checks for tests that break things on purpose.
        admin
            .ok(
                "updateConfiguration",
                &[("name", "router.check.interval"), ("value", "1")],
            )
            .await;
        let first = |v: &Value, key: &str| v[key][0]["id"].as_str().unwrap().to_string();
        let zone = first(&admin.ok("listZones", &[]).await, "zone");
        let vpc_offering = first(
            &admin.ok("listVPCOfferings", &[("isdefault", "true")]).await,
            "vpcoffering",
        );
        let offerings = admin
            .ok("listNetworkOfferings", &[("forvpc", "true")])
            .await;
        let offerings = offerings["networkoffering"].as_array().unwrap().clone();
        let has_lb = |o: &Value| {
            o["service"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == "Lb")
        };
        let pick = |lb: bool| {
            offerings
                .iter()
                .find(|o| has_lb(o) == lb)
                .unwrap_or(&offerings[0])["id"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let service_offering = first(
            &admin.ok("listServiceOfferings", &[]).await,
            "serviceoffering",
        );
        let template = first(
            &admin
                .ok("listTemplates", &[("templatefilter", "featured")])
                .await,
            "template",
        );
        E2e {
            m,
            driver,
            prefix: prefix.clone(),
            zone,
            vpc_offering,
            tier_offering: pick(false),
            tier_offering_lb: pick(true),
            service_offering,
            template,
            guard,
        }
    }

    pub fn admin(&self) -> Client {
        self.m.admin()
    }

    /// Stops the manager gracefully (routers and VMs keep running), runs
    /// `while_down`, and starts a new manager, with its own in-process host
    /// agent, on the same data directory and settings.
    pub async fn restart_manager(self, while_down: impl FnOnce()) -> E2e {
        let E2e {
            m,
            driver: _,
            prefix,
            zone,
            vpc_offering,
            tier_offering,
            tier_offering_lb,
            service_offering,
            template,
            mut guard,
        } = self;
        let mut settings = m.app.settings.clone();
        settings.listen = "127.0.0.1:0".parse().unwrap();
        let stopping = Instant::now();
        let data_dir = m.stop_keeping_data().await;
        eprintln!("restart: the manager stopped in {:?}", stopping.elapsed());
        while_down();
        let starting = Instant::now();
        let (m, netns) = TestManager::start_real(settings, data_dir).await;
        eprintln!(
            "restart: the new manager started in {:?}",
            starting.elapsed()
        );
        let driver = netns.expect("the netns driver");
        guard.driver = Some(driver.clone());
        E2e {
            m,
            driver,
            prefix,
            zone,
            vpc_offering,
            tier_offering,
            tier_offering_lb,
            service_offering,
            template,
            guard,
        }
    }

    /// createVPC, to its end.
    pub async fn vpc(&self, client: &Client, name: &str, cidr: &str) -> Value {
        job_ok(
            client,
            "createVPC",
            &[
                ("name", name),
                ("cidr", cidr),
                ("zoneid", &self.zone),
                ("vpcofferingid", &self.vpc_offering),
            ],
        )
        .await["vpc"]
            .clone()
    }

    /// A tier `gateway/24` (`aclid` optional).
    pub async fn tier(
        &self,
        client: &Client,
        vpc: &str,
        name: &str,
        gateway: &str,
        acl: Option<&str>,
        lb: bool,
    ) -> Value {
        let offering = if lb {
            &self.tier_offering_lb
        } else {
            &self.tier_offering
        };
        let mut p = vec![
            ("name", name),
            ("displaytext", name),
            ("zoneid", self.zone.as_str()),
            ("vpcid", vpc),
            ("networkofferingid", offering.as_str()),
            ("gateway", gateway),
            ("netmask", "255.255.255.0"),
        ];
        if let Some(acl) = acl {
            p.push(("aclid", acl));
        }
        client.ok("createNetwork", &p).await["network"].clone()
    }

    /// deployVirtualMachine into `tier`, to its end; returns the VM.
    pub async fn vm(&self, client: &Client, tier: &str, name: &str) -> Value {
        job_ok(
            client,
            "deployVirtualMachine",
            &[
                ("zoneid", &self.zone),
                ("serviceofferingid", &self.service_offering),
                ("templateid", &self.template),
                ("networkids", tier),
                ("name", name),
            ],
        )
        .await["virtualmachine"]
            .clone()
    }

    /// The namespace of a VM (by its API object).
    pub fn vm_ns(&self, vm: &Value) -> Netns {
        Netns::existing(&self.driver.vm_ns(vm["instancename"].as_str().unwrap()))
    }

    /// The zone's upstream namespace.
    pub fn upstream(&self) -> Netns {
        Netns::existing(&self.driver.upstream_ns(&self.zone.parse().unwrap()))
    }

    /// Waits until the VM's first NIC holds a DHCP lease; returns its address.
    pub async fn lease(&self, vm: &Value) -> Ipv4Addr {
        let instance = vm["instancename"].as_str().unwrap().to_string();
        let started = Instant::now();
        loop {
            if let Some(lease) = self.driver.vm_lease(&instance, 0) {
                return lease.ip;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{instance} got no DHCP lease"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// GetState from a router's agent over its Unix socket (the Unix
    /// transport only), straight, not through the manager; None while it
    /// does not answer.
    pub async fn agent_state(&self, router: &str) -> Option<vpc_proto::v1::GetStateResponse> {
        let socket = self.driver.router_dir(router).join("agent.sock");
        let ask = async {
            let channel = vpc_proto::channel::unix(socket).await.ok()?;
            vpc_proto::v1::virtual_router_client::VirtualRouterClient::new(channel)
                .get_state(vpc_proto::v1::GetStateRequest::default())
                .await
                .ok()
                .map(tonic::Response::into_inner)
        };
        tokio::time::timeout(Duration::from_secs(2), ask)
            .await
            .ok()
            .flatten()
    }

    /// Stops the manager and removes everything of the prefix; asserts that
    /// nothing of it is left.
    pub async fn finish(self) {
        let E2e {
            m, guard, prefix, ..
        } = self;
        m.stop().await;
        drop(guard);
        let out = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap();
        let left: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .map(str::to_string)
            .collect();
        assert!(left.is_empty(), "namespaces left: {left:?}");
    }
}

/// Runs a blocking probe on the blocking pool.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("probe")
}

/// Whether a TCP connection from `from` to `to` succeeds within 2 s.
pub async fn tcp_ok(from: &Netns, to: SocketAddr) -> bool {
    let from = from.clone();
    blocking(move || {
        vpc_integration::tcp_connect(&from, to, Duration::from_secs(2)).unwrap_or(false)
    })
    .await
}

/// Whether `from` gets answers to a few pings of `to`.
pub async fn ping_ok(from: &Netns, to: Ipv4Addr) -> bool {
    let from = from.clone();
    blocking(move || {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                from.name(),
                "ping",
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "1",
                &to.to_string(),
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
    .await
}
