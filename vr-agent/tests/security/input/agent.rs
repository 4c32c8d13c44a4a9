//! A small router for these tests: a router namespace whose guest NIC (MAC
//! `mac(2)`) is a veth to a VM namespace, and the real `vr-agent` binary
//! running inside it on a Unix socket, started with the flags a test gives.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use vpc_integration::{Lab, Netns, ProcessHandle, require_root};
use vpc_proto::v1 as pb;
use vpc_proto::v1::virtual_router_client::VirtualRouterClient;
use vr_agent::testing::{mac, tier};

/// A router namespace running the agent binary.
pub struct AgentLab {
    pub lab: Lab,
    pub r: Netns,
    /// The VM end of the guest NIC (its link must exist for the NIC to plug).
    _vm: Netns,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    agent: Option<ProcessHandle>,
    generation: u64,
    runtime: tokio::runtime::Runtime,
}

impl AgentLab {
    /// The lab, with the agent listening on `<lab>/agent.sock` and `flags`
    /// added to its command line; waits until it answers GetState.
    pub fn start(name: &str, flags: &[&str]) -> AgentLab {
        let mut lab = Self::without_agent(name);
        let mut argv = vec![
            env!("CARGO_BIN_EXE_vr-agent").to_string(),
            "--listen".into(),
            format!("unix://{}", lab.socket.display()),
        ];
        argv.extend(flags.iter().map(|f| f.to_string()));
        lab.spawn(&argv);
        let started = Instant::now();
        while !(lab.socket.exists() && lab.state().is_ok()) {
            let agent = lab.agent.as_ref().expect("spawned");
            assert!(agent.is_running(), "agent exited:\n{}", agent.log());
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "agent not ready:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        lab
    }

    /// The namespaces and directories, no agent yet.
    pub fn without_agent(name: &str) -> AgentLab {
        require_root();
        let lab = Lab::new(name).unwrap();
        let r = lab.netns("r").unwrap();
        let vm = lab.netns("vm").unwrap();
        lab.veth_with_mac(&r, "t2", Some(&mac(2)), &vm, "eth0", None)
            .unwrap();
        lab.link_up(&vm, "eth0").unwrap();
        let socket = lab.dir().join("agent.sock");
        let state_dir = lab.dir().join("agent-state");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        AgentLab {
            lab,
            r,
            _vm: vm,
            socket,
            state_dir,
            agent: None,
            generation: 0,
            runtime,
        }
    }

    /// Starts `argv` (the agent binary first) in the router namespace, with
    /// `--state-dir` added.
    pub fn spawn(&mut self, argv: &[String]) {
        let mut argv = argv.to_vec();
        argv.extend(["--state-dir".into(), self.state_dir.display().to_string()]);
        self.agent = Some(self.lab.spawn(&self.r, "agent", &argv).unwrap());
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        self.agent.as_ref().map(|a| a.log()).unwrap_or_default()
    }

    /// The agent process, while it runs.
    pub fn agent(&self) -> &ProcessHandle {
        self.agent.as_ref().expect("spawned")
    }

    /// Runs one RPC over the Unix socket.
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

    /// The agent's state.
    pub fn state(&self) -> Result<pb::GetStateResponse, tonic::Status> {
        self.call(|mut c| async move { c.get_state(pb::GetStateRequest::default()).await })
    }

    /// The next config generation.
    pub fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Replaces the whole state.
    pub fn apply_config(
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

    /// Every file under the agent's state directory with its content.
    pub fn written_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        collect(&self.state_dir, &mut out);
        out
    }
}

fn collect(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect(&path, out),
            Ok(t) if t.is_file() => {
                if let Ok(bytes) = std::fs::read(&path) {
                    out.push((path, bytes));
                }
            }
            _ => {}
        }
    }
}

/// A router with one guest NIC (eth2) serving the tier 10.1.1.0/24.
pub fn one_tier() -> pb::RouterConfig {
    pb::RouterConfig {
        router_name: "r-1-VM".into(),
        vpc_id: "vpc-1".into(),
        vpc_cidr: "10.1.0.0/16".into(),
        nics: vec![pb::Nic {
            device_index: 2,
            mac_address: mac(2),
            role: pb::NicRole::Guest as i32,
            ..Default::default()
        }],
        guest_networks: vec![tier(2)],
        ..Default::default()
    }
}
