//! Compatibility: the real `cs` client from PyPI (installed by
//! scripts/setup.sh into .venv) against a live manager: signed requests,
//! paging past 500 objects, an async job polled to its result, and an error
//! surfaced as CloudStack's exception.

mod support;

use std::path::Path;

use support::api::TestManager;

fn python() -> std::path::PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/setup.sh",
        venv.display()
    );
    venv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cs_client_signs_pages_polls_jobs_and_gets_errors() {
    let m = TestManager::start(None).await;
    let admin = m.admin();
    // 505 domains plus ROOT: more than one page of 500.
    let tasks: Vec<_> = (0..505)
        .map(|i| {
            let admin = admin.clone();
            tokio::spawn(async move {
                admin
                    .ok("createDomain", &[("name", &format!("d{i:03}"))])
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("createDomain");
    }
    let account = admin
        .ok(
            "createAccount",
            &[
                ("username", "carol"),
                ("password", "pw"),
                ("email", "c@example.org"),
                ("firstname", "C"),
                ("lastname", "L"),
            ],
        )
        .await;
    let account_id = account["account"]["id"].as_str().unwrap().to_string();
    let endpoint = format!("http://{}/client/api", m.addr);
    let output = tokio::process::Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/cs_scenario.py"))
        .args([&endpoint, &m.key, &m.secret, "506", &account_id])
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("cs scenario passed"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    m.stop().await;
}

/// The whole VPC scenario through `cs`: offering, VPC, two tiers, a
/// VM, a public address with a port forward, an ACL list with items, a
/// private gateway with a static route, then the teardown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cs_client_builds_and_tears_down_a_whole_vpc() {
    let m = TestManager::start(None).await;
    let endpoint = format!("http://{}/client/api", m.addr);
    let output = tokio::process::Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/cs_vpc_scenario.py"))
        .args([&endpoint, &m.key, &m.secret])
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("cs vpc scenario passed"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Everything the scenario built reached the router and left it again.
    let rpcs = m.agent.rpcs();
    for rpc in [
        "ApplyConfig",
        "PlugNic",
        "SetupGuestNetwork",
        "SetDhcpEntries",
        "IpAssoc",
        "SetPortForwardingRules",
        "SetNetworkAcl",
        "SetStaticRoutes",
        "DestroyGuestNetwork",
        "UnplugNic",
    ] {
        assert!(rpcs.contains(&rpc), "{rpc} never sent: {rpcs:?}");
    }
    m.stop().await;
}
