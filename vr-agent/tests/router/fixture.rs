//! A router namespace wired to upstream, tier VMs, an on-premises network and
//! a management namespace, with the vr-agent binary running inside it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use vpc_integration::{Lab, Netns, ProcessHandle, require_root};
use vpc_proto::v1 as pb;
use vpc_proto::v1::virtual_router_client::VirtualRouterClient;
use vr_agent::testing::{item, mac, sample_config};

/// Parses a socket address.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// An ACL on NIC `index` letting every ingress packet in.
pub fn allow_all_ingress(index: u32) -> pb::NetworkAcl {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    pb::NetworkAcl {
        device_index: index,
        mac_address: mac(index),
        items: vec![item(1, Allow, Ingress, All, &[], None)],
        ..Default::default()
    }
}

/// VM MACs and addresses: vm1 in tier 1 (eth2), vm2 and vm3 in tier 2 (eth3).
pub const VM1_MAC: &str = "02:00:00:00:aa:05";

/// Runs one RPC against the agent at `socket`, from any thread (its own
/// runtime): for a call that runs beside the lab's own calls.
pub fn call_at<T, F, Fut>(socket: &std::path::Path, f: F) -> Result<T, tonic::Status>
where
    F: FnOnce(VirtualRouterClient<Channel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let socket = socket.to_path_buf();
    runtime.block_on(async move {
        let channel = vpc_proto::channel::unix(socket)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        f(VirtualRouterClient::new(channel))
            .await
            .map(|r| r.into_inner())
    })
}

pub struct RouterLab {
    pub lab: Lab,
    pub r: Netns,
    pub up: Netns,
    pub vm1: Netns,
    pub vm2: Netns,
    pub vm3: Netns,
    pub op: Netns,
    pub oph: Netns,
    pub mgmt: Netns,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub extra_args: Vec<String>,
    /// More agent flags, kept with the Unix listener.
    pub flags: Vec<String>,
    /// The agent's `--reconcile-interval`, in seconds.
    pub reconcile_interval: String,
    agent: Option<ProcessHandle>,
    generation: u64,
    runtime: tokio::runtime::Runtime,
}

impl RouterLab {
    /// Builds the topology and starts an agent with an empty state.
    pub fn start(name: &str) -> RouterLab {
        Self::start_with(name, Vec::new())
    }

    /// Same, with extra agent arguments (e.g. a TCP listener).
    pub fn start_with(name: &str, extra_args: Vec<String>) -> RouterLab {
        require_root();
        let lab = Lab::new(name).unwrap();
        let ns = |n: &str| lab.netns(n).unwrap();
        let (r, up, vm1, vm2, vm3, op, oph, mgmt, sw) = (
            ns("r"),
            ns("up"),
            ns("vm1"),
            ns("vm2"),
            ns("vm3"),
            ns("op"),
            ns("oph"),
            ns("mgmt"),
            ns("sw"),
        );

        // Router ends get the NIC MACs and neutral names; the agent renames
        // them eth<N> by MAC, as it would after a hypervisor hot-plug.
        lab.veth_with_mac(&r, "c0", Some(&mac(0)), &mgmt, "m0", None)
            .unwrap();
        lab.veth_with_mac(&r, "p1", Some(&mac(1)), &up, "u0", None)
            .unwrap();
        lab.veth_with_mac(&r, "t2", Some(&mac(2)), &vm1, "eth0", Some(VM1_MAC))
            .unwrap();
        lab.veth_with_mac(&r, "t3", Some(&mac(3)), &sw, "s0", None)
            .unwrap();
        lab.veth_with_mac(&r, "g4", Some(&mac(4)), &op, "p0", None)
            .unwrap();
        lab.veth(&vm2, "eth0", &sw, "s2").unwrap();
        lab.veth(&vm3, "eth0", &sw, "s3").unwrap();
        lab.veth(&op, "h0", &oph, "eth0").unwrap();
        lab.bridge(&sw, "br0").unwrap();
        for port in ["s0", "s2", "s3"] {
            lab.set_master(&sw, port, "br0").unwrap();
            lab.link_up(&sw, port).unwrap();
        }
        lab.link_up(&sw, "br0").unwrap();

        let host = |ns: &Netns, link: &str, cidr: &str, gateway: &str| {
            lab.addr_add(ns, link, cidr).unwrap();
            lab.link_up(ns, link).unwrap();
            lab.route_add(ns, &["default", "via", gateway]).unwrap();
        };
        lab.addr_add(&mgmt, "m0", "169.254.3.1/16").unwrap();
        lab.link_up(&mgmt, "m0").unwrap();
        lab.addr_add(&up, "u0", "203.0.113.1/24").unwrap();
        lab.link_up(&up, "u0").unwrap();
        host(&vm1, "eth0", "10.1.1.5/24", "10.1.1.1");
        host(&vm2, "eth0", "10.1.2.5/24", "10.1.2.1");
        host(&vm3, "eth0", "10.1.2.6/24", "10.1.2.1");
        // On premises: 172.16.0.1 towards the router, 192.168.50.0/24 behind,
        // and 192.168.60.1, an address the router has no route for.
        lab.addr_add(&op, "p0", "172.16.0.1/24").unwrap();
        lab.link_up(&op, "p0").unwrap();
        lab.addr_add(&op, "h0", "192.168.50.1/24").unwrap();
        lab.link_up(&op, "h0").unwrap();
        lab.addr_add(&op, "lo", "192.168.60.1/32").unwrap();
        lab.sysctl(&op, "net.ipv4.ip_forward", "1").unwrap();
        lab.route_add(
            &op,
            &["10.1.0.0/16", "via", "172.16.0.10", "src", "192.168.60.1"],
        )
        .unwrap();
        host(&oph, "eth0", "192.168.50.10/24", "192.168.50.1");

        let socket = lab.dir().join("agent.sock");
        let state_dir = lab.dir().join("agent-state");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut lab = RouterLab {
            lab,
            r,
            up,
            vm1,
            vm2,
            vm3,
            op,
            oph,
            mgmt,
            socket,
            state_dir,
            extra_args,
            flags: Vec::new(),
            reconcile_interval: "0.5".into(),
            agent: None,
            generation: 0,
            runtime,
        };
        lab.spawn_agent();
        lab
    }

    /// Starts the agent binary in the router namespace and waits until it
    /// answers GetState.
    pub fn spawn_agent(&mut self) {
        let mut argv = vec![
            env!("CARGO_BIN_EXE_vr-agent").to_string(),
            "--listen".into(),
            format!("unix://{}", self.socket.display()),
            "--state-dir".into(),
            self.state_dir.display().to_string(),
            "--reconcile-interval".into(),
            self.reconcile_interval.clone(),
        ];
        argv.extend(self.extra_args.iter().cloned());
        if !self.extra_args.is_empty() {
            // A TCP listener replaces the Unix one.
            argv.drain(1..3);
        }
        argv.extend(self.flags.iter().cloned());
        let handle = self.lab.spawn(&self.r, "agent", &argv).unwrap();
        self.agent = Some(handle);
        if self.extra_args.is_empty() {
            let started = Instant::now();
            loop {
                let ready = self.socket.exists() && self.try_state().is_ok();
                if ready {
                    break;
                }
                let agent = self.agent.as_ref().unwrap();
                assert!(agent.is_running(), "agent exited:\n{}", agent.log());
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "agent not ready:\n{}",
                    agent.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Restarts the agent with `flags` added to its command line.
    pub fn restart_with_flags(&mut self, flags: &[&str]) {
        self.kill_agent();
        self.flags = flags.iter().map(|f| f.to_string()).collect();
        self.spawn_agent();
    }

    /// Kills the agent with SIGKILL, as a crash would.
    pub fn kill_agent(&mut self) {
        if let Some(agent) = self.agent.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(agent.pid() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = agent.kill();
        }
    }

    /// The agent's log so far.
    pub fn agent_log(&self) -> String {
        self.agent.as_ref().map(|a| a.log()).unwrap_or_default()
    }

    /// Runs one RPC against the agent.
    pub fn call<T, F, Fut>(&self, f: F) -> Result<T, tonic::Status>
    where
        F: FnOnce(VirtualRouterClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let socket = self.socket.clone();
        self.runtime.block_on(async move {
            let channel = vpc_proto::channel::unix(socket)
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            f(VirtualRouterClient::new(channel))
                .await
                .map(|r| r.into_inner())
        })
    }

    /// The next config generation.
    pub fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// The sample router of `vr_agent::testing`, with leases for the VMs.
    pub fn base_config(&self) -> pb::RouterConfig {
        let mut config = sample_config();
        config.dhcp[0].entries.push(pb::DhcpEntry {
            mac_address: "02:00:00:00:aa:07".into(),
            ip_address: "10.1.1.7".into(),
            hostname: "app-2".into(),
            default_gateway: true,
            ..Default::default()
        });
        config
    }

    /// Replaces the whole state; panics on refusal.
    pub fn apply_config(&mut self, config: pb::RouterConfig) -> pb::ApplyResponse {
        self.try_apply_config(config)
            .unwrap_or_else(|e| panic!("ApplyConfig: {e:?}\n{}", self.agent_log()))
    }

    /// Replaces the whole state.
    pub fn try_apply_config(
        &mut self,
        config: pb::RouterConfig,
    ) -> Result<pb::ApplyResponse, tonic::Status> {
        let generation = self.next_generation();
        self.call(move |mut c| async move {
            c.apply_config(pb::ApplyConfigRequest {
                generation,
                config: Some(config),
            })
            .await
        })
    }

    /// Replaces the ACL of NIC `index`; panics on refusal.
    pub fn set_acl(&mut self, index: u32, items: Vec<pb::AclItem>) {
        let generation = self.next_generation();
        let acl = pb::NetworkAcl {
            device_index: index,
            mac_address: mac(index),
            items,
            ..Default::default()
        };
        self.call(move |mut c| async move {
            c.set_network_acl(pb::SetNetworkAclRequest {
                generation,
                acl: Some(acl),
            })
            .await
        })
        .unwrap_or_else(|e| panic!("SetNetworkAcl: {e:?}"));
    }

    fn try_state(&self) -> Result<pb::GetStateResponse, tonic::Status> {
        self.call(|mut c| async move { c.get_state(pb::GetStateRequest::default()).await })
    }

    /// The agent's state.
    pub fn state(&self) -> pb::GetStateResponse {
        self.try_state().expect("GetState")
    }

    /// Removes vm1's static address and route, for DHCP tests.
    pub fn unconfigure_vm1(&self) {
        self.lab
            .ip(&self.vm1, &["addr", "flush", "dev", "eth0"])
            .unwrap();
    }
}
