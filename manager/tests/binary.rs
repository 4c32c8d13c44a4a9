//! The `vpc-manager serve` binary: settings file and flags, first-start
//! bootstrap and cloudstack.ini, /healthz, and a clean exit on SIGTERM.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::free_port;

use support::api::http;

fn start(config: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vpc-manager"))
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vpc-manager")
}

async fn wait_healthy(port: u16, child: &mut Child) {
    let started = Instant::now();
    loop {
        if let Ok(Ok(_)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            let health = http(
                format!("127.0.0.1:{port}").parse().unwrap(),
                "GET",
                "/healthz",
                "",
                &[],
            )
            .await;
            assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "vpc-manager exited early"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "vpc-manager did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn terminate(mut child: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            return;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("vpc-manager did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_bootstraps_once_answers_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("manager.toml");
    // The file's listen address is overridden by the flag.
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"{}\"\nlog_format = \"json\"\n\
             driver = \"simulated\"\n",
            data.display()
        ),
    )
    .unwrap();

    let port = free_port();
    let mut child = start(&config, port);
    wait_healthy(port, &mut child).await;
    let ini_path = data.join("cloudstack.ini");
    let ini = std::fs::read_to_string(&ini_path).unwrap();
    assert!(ini.starts_with("[cloudstack]\n"), "{ini}");
    assert!(
        ini.contains(&format!("endpoint = http://127.0.0.1:{port}/client/api")),
        "{ini}"
    );
    assert_eq!(
        std::fs::metadata(&ini_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    terminate(child);

    // A second start keeps the same admin keys.
    let port = free_port();
    let mut child = start(&config, port);
    wait_healthy(port, &mut child).await;
    let again = std::fs::read_to_string(&ini_path).unwrap();
    let key = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("key = "))
            .unwrap()
            .to_string()
    };
    assert_eq!(key(&ini), key(&again));
    terminate(child);
}
