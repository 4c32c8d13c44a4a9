//! The gRPC agent client against the real `vr-agent` binary, each agent in a
//! throw-away network namespace (root): over a Unix socket (state, a whole
//! config, a stale generation, bad input, an unknown router, an agent that
//! restarts while the client retries) and over TCP with mutual TLS from the
//! manager's PKI, reached by a connector that enters the namespace (a
//! certificate from another CA, or for another router, gets nowhere).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vpc_integration::{Lab, Netns, ProcessHandle, require_root, run_in_netns};
use vpc_manager::agent_client::{ClientSettings, GrpcAgentClient, TcpConnector};
use vpc_manager::orchestration::agent::{AgentEndpoint, Endpoints};
use vpc_manager::orchestration::model::RouterView;
use vpc_manager::orchestration::{AgentClient, AgentCommand, AgentError, AgentReply};
use vpc_manager::pki::{ClientIdentity, Pki};
use vpc_proto::v1 as pb;

/// `target/<profile>/vr-agent`, next to this test's `deps/` directory (the
/// test script builds the binaries first).
fn agent_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("vr-agent");
    assert!(
        bin.exists(),
        "{} is missing: build the binaries first (cargo build --bins)",
        bin.display()
    );
    bin
}

/// One agent process in a lab namespace; killed with the lab (also when the
/// test panics).
struct Agent {
    lab: Lab,
    ns: Netns,
    state_dir: PathBuf,
    listen: Vec<String>,
    process: Option<ProcessHandle>,
}

impl Agent {
    /// A lab with one namespace; the agent starts with [`Agent::spawn`].
    fn new(name: &str) -> Agent {
        let lab = Lab::new(name).expect("a lab");
        let ns = lab.netns("r").expect("a namespace");
        let state_dir = lab.dir().join("agent-state");
        Agent {
            lab,
            ns,
            state_dir,
            listen: vec![],
            process: None,
        }
    }

    fn spawn(&mut self) {
        let mut argv = vec![agent_binary().display().to_string()];
        argv.extend(self.listen.iter().cloned());
        argv.extend([
            "--state-dir".to_string(),
            self.state_dir.display().to_string(),
            "--reconcile-interval".into(),
            "5".into(),
        ]);
        let process = self.lab.spawn(&self.ns, "agent", &argv).expect("agent");
        process
            .wait_for_log("listening", Duration::from_secs(10))
            .expect("the agent listens");
        self.process = Some(process);
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self) {
        if let Some(p) = self.process.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = p.kill();
        }
    }

    fn log(&self) -> String {
        self.process.as_ref().map(|p| p.log()).unwrap_or_default()
    }
}

fn router(name: &str) -> RouterView {
    RouterView {
        id: uuid::Uuid::new_v4(),
        name: name.into(),
        zone_id: uuid::Uuid::nil(),
        generation: 0,
        nics: vec![],
        host: None,
    }
}

fn get_state() -> AgentCommand {
    AgentCommand::GetState(pb::GetStateRequest::default())
}

fn apply_config(name: &str, generation: u64, vpc_cidr: &str) -> AgentCommand {
    AgentCommand::ApplyConfig(pb::ApplyConfigRequest {
        generation,
        config: Some(pb::RouterConfig {
            router_name: name.into(),
            vpc_id: "vpc-client-test".into(),
            vpc_cidr: vpc_cidr.into(),
            ..Default::default()
        }),
    })
}

fn static_routes(generation: u64, cidr: Option<&str>) -> AgentCommand {
    AgentCommand::SetStaticRoutes(pb::SetStaticRoutesRequest {
        generation,
        routes: cidr
            .map(|c| pb::StaticRoute {
                cidr: c.into(),
                next_hop: "172.16.0.1".into(),
                ..Default::default()
            })
            .into_iter()
            .collect(),
    })
}

fn state_of(reply: AgentReply) -> pb::GetStateResponse {
    match reply {
        AgentReply::State(s) => *s,
        other => panic!("not a state: {other:?}"),
    }
}

fn applied(reply: AgentReply) -> pb::ApplyResponse {
    match reply {
        AgentReply::Applied(a) => a,
        other => panic!("not an apply answer: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_rpcs_map_refusals_and_ride_out_an_agent_restart() {
    require_root();
    let mut agent = Agent::new("client_unix");
    let socket = agent.lab.dir().join("agent.sock");
    agent.listen = vec!["--listen".into(), format!("unix://{}", socket.display())];
    agent.spawn();

    let endpoints = Arc::new(Endpoints::default());
    endpoints.set("r-1-VM", AgentEndpoint::UnixSocket(socket.clone()));
    let client = GrpcAgentClient::new(endpoints.clone());
    let r = router("r-1-VM");

    let state = state_of(client.send(&r, get_state()).await.unwrap());
    assert_eq!(state.generation, 0, "a new agent has applied nothing");

    let done = applied(
        client
            .send(&r, apply_config("r-1-VM", 3, "10.1.0.0/16"))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", agent.log())),
    );
    assert_eq!(done.generation, 3);
    let state = state_of(client.send(&r, get_state()).await.unwrap());
    assert_eq!(state.generation, 3);
    let config = state.config.expect("the desired state");
    assert_eq!(config.router_name, "r-1-VM");
    assert_eq!(config.vpc_cidr, "10.1.0.0/16");

    // A late push with an older generation: the agent's applied one comes back.
    let stale = client.send(&r, static_routes(2, None)).await.unwrap_err();
    assert_eq!(
        stale,
        AgentError::StaleGeneration {
            sent: 2,
            applied: 3
        }
    );

    // Bad input is refused, never retried, and changes nothing.
    let no_such_link = AgentCommand::PlugNic(pb::PlugNicRequest {
        generation: 4,
        nic: Some(pb::Nic {
            device_index: 1,
            mac_address: "02:00:5e:00:99:99".into(),
            role: pb::NicRole::Public as i32,
            ..Default::default()
        }),
    });
    let refused = client.send(&r, no_such_link).await.unwrap_err();
    assert!(
        matches!(&refused, AgentError::Refused(t) if t.contains("02:00:5e:00:99:99")),
        "{refused:?}"
    );
    let refused = client
        .send(&r, static_routes(4, Some("not-a-cidr")))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, AgentError::Refused(t) if t.contains("not-a-cidr")),
        "{refused:?}"
    );
    let state = state_of(client.send(&r, get_state()).await.unwrap());
    assert_eq!(state.generation, 3);

    // A router the endpoint book does not know.
    let unknown = client.send(&router("r-404-VM"), get_state()).await;
    assert!(
        matches!(&unknown, Err(AgentError::Unreachable(t)) if t.contains("r-404-VM")),
        "{unknown:?}"
    );

    // The agent crashes; the client's cached channel is broken. It comes
    // back while the client retries, with its persisted state, and the
    // change lands.
    agent.kill();
    let push = {
        let client = Arc::new(client);
        let r = r.clone();
        let pushing = client.clone();
        (
            client,
            tokio::spawn(async move {
                pushing
                    .send(&r, apply_config("r-1-VM", 4, "10.4.0.0/16"))
                    .await
            }),
        )
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.spawn();
    let (client, pushed) = push;
    let done = applied(
        pushed
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}\n{}", agent.log())),
    );
    assert_eq!(done.generation, 4);
    let state = state_of(client.send(&r, get_state()).await.unwrap());
    assert_eq!(state.generation, 4);
    assert_eq!(state.config.unwrap().vpc_cidr, "10.4.0.0/16");

    // Down for good: the retries give up with Unreachable.
    agent.kill();
    let quick = GrpcAgentClient::new(endpoints).with_settings(ClientSettings {
        attempts: 3,
        first_backoff: Duration::from_millis(20),
        ..ClientSettings::default()
    });
    let down = quick.send(&r, get_state()).await.unwrap_err();
    assert!(
        matches!(&down, AgentError::Unreachable(t) if t.contains("3 attempts")),
        "{down:?}"
    );
}

/// Connects from inside `ns` (a helper thread joins the namespace; the
/// socket stays in it).
fn netns_connector(ns: Netns) -> TcpConnector {
    Arc::new(move |_router: &str, addr: SocketAddr| {
        let ns = ns.clone();
        Box::pin(async move {
            let stream = tokio::task::spawn_blocking(move || {
                run_in_netns(&ns, move || {
                    Ok(std::net::TcpStream::connect_timeout(
                        &addr,
                        Duration::from_secs(2),
                    ))
                })
            })
            .await
            .map_err(std::io::Error::other)?
            .map_err(|e| std::io::Error::other(e.to_string()))??;
            stream.set_nonblocking(true)?;
            tokio::net::TcpStream::from_std(stream)
        })
    })
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_with_mutual_tls_from_the_pki_and_strangers_are_refused() {
    require_root();
    let data = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(data.path()).unwrap();
    let cert = pki.issue_router("r-2-VM").unwrap();
    let mut agent = Agent::new("client_tls");
    let files = agent.lab.dir().to_path_buf();
    agent.listen = vec![
        "--listen".to_string(),
        "tcp://127.0.0.1:3922".into(),
        "--tls-cert".into(),
        write(&files, "agent.pem", &cert.cert_pem),
        "--tls-key".into(),
        write(&files, "agent.key", &cert.key_pem),
        "--tls-ca".into(),
        write(&files, "ca.pem", &cert.ca_pem),
    ];
    agent.spawn();
    let addr: SocketAddr = "127.0.0.1:3922".parse().unwrap();

    let endpoints = Arc::new(Endpoints::default());
    endpoints.set("r-2-VM", AgentEndpoint::Tcp(addr));
    // The same address under another router's name: its certificate does
    // not name that router.
    endpoints.set("r-3-VM", AgentEndpoint::Tcp(addr));
    let connector = netns_connector(agent.ns.clone());
    let client = GrpcAgentClient::new(endpoints.clone())
        .with_tls(pki.client_identity())
        .with_connector(connector.clone());
    let r = router("r-2-VM");

    let state = state_of(
        client
            .send(&r, get_state())
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", agent.log())),
    );
    assert_eq!(state.generation, 0);
    let done = applied(
        client
            .send(&r, apply_config("r-2-VM", 5, "10.2.0.0/16"))
            .await
            .unwrap(),
    );
    assert_eq!(done.generation, 5);
    let stale = client.send(&r, static_routes(1, None)).await.unwrap_err();
    assert_eq!(
        stale,
        AgentError::StaleGeneration {
            sent: 1,
            applied: 5
        }
    );

    let quick = ClientSettings {
        attempts: 2,
        first_backoff: Duration::from_millis(20),
        ..ClientSettings::default()
    };
    // A certificate the manager refuses is not retried.
    let started = std::time::Instant::now();
    let impostor = client.send(&router("r-3-VM"), get_state()).await;
    assert!(
        matches!(&impostor, Err(AgentError::Unreachable(t))
            if t.contains("certificate") && t.contains("r-3-VM") && !t.contains("attempts")),
        "a certificate for r-2-VM must not pass for r-3-VM: {impostor:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(100));

    // A client certificate from another CA (trusting the right one).
    let elsewhere = tempfile::tempdir().unwrap();
    let rogue = Pki::load_or_create(elsewhere.path())
        .unwrap()
        .client_identity();
    let stranger = GrpcAgentClient::new(endpoints.clone())
        .with_tls(ClientIdentity {
            ca_pem: pki.ca_pem().to_string(),
            ..rogue
        })
        .with_connector(connector.clone())
        .with_settings(quick.clone());
    let refused = stranger.send(&r, get_state()).await;
    assert!(
        matches!(&refused, Err(AgentError::Unreachable(_))),
        "a client certificate from another CA got in: {refused:?}"
    );

    // No client certificate at all: TCP is not even tried.
    let plain = GrpcAgentClient::new(endpoints)
        .with_connector(connector)
        .with_settings(quick);
    let refused = plain.send(&r, get_state()).await;
    assert!(
        matches!(&refused, Err(AgentError::Unreachable(t)) if t.contains("mutual TLS")),
        "{refused:?}"
    );

    // The agent still serves the manager.
    let state = state_of(client.send(&r, get_state()).await.unwrap());
    assert_eq!(state.generation, 5);
}
