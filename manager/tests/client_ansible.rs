//! Ansible's ngine_io.cloudstack collection (the `ansible` PyPI package,
//! installed by scripts/setup.sh into .venv), run as its users run it,
//! against a manager on the netns driver: `tests/compat/ansible_vpc.yml`
//! builds a whole VPC (two tiers from the default tier offering, an ACL
//! list, VMs, static NAT, a port forward, a load balancer with a member,
//! tags); a second run changes nothing (`changed=0`); the teardown run
//! leaves nothing.

mod support;

use std::path::{Path, PathBuf};

use support::e2e::E2e;
use vpc_manager::settings::AgentTransport;

fn venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv");
    assert!(
        venv.join("bin/ansible-playbook").exists(),
        "{}/bin/ansible-playbook is missing: run scripts/setup.sh",
        venv.display()
    );
    venv
}

/// Runs the playbook with `state`; returns the `changed=` count of its
/// recap, failing the test (with the whole output) when a task failed.
async fn run_playbook(e: &E2e, home: &Path, state: &str) -> u64 {
    let venv = venv();
    let playbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/ansible_vpc.yml");
    let interpreter = format!(
        "ansible_python_interpreter={}",
        venv.join("bin/python").display()
    );
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(600),
        tokio::process::Command::new(venv.join("bin/ansible-playbook"))
            .arg("-i")
            .arg("localhost,")
            .arg(&playbook)
            .args(["-e", &format!("state={state}"), "-e", &interpreter])
            .env(
                "CLOUDSTACK_ENDPOINT",
                format!("http://{}/client/api", e.m.addr),
            )
            .env("CLOUDSTACK_KEY", &e.m.key)
            .env("CLOUDSTACK_SECRET", &e.m.secret)
            .env("CLOUDSTACK_TIMEOUT", "120")
            // Ansible's own files go to the test's directory, not $HOME.
            .env("HOME", home)
            .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_FORCE_COLOR", "0")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the playbook finishes within 10 minutes")
    .expect("run ansible-playbook");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let recap = stdout
        .lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .find(|l| l.starts_with("localhost"))
        .unwrap_or_else(|| panic!("no recap for state={state}:\n{stdout}\nstderr:\n{stderr}"));
    let count = |key: &str| -> u64 {
        recap
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {key}= in {recap}"))
    };
    assert!(
        output.status.success() && count("failed") == 0 && count("unreachable") == 0,
        "state={state} failed ({}):\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    count("changed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ansible_playbook_builds_a_vpc_then_changes_nothing_then_tears_it_down() {
    let e = E2e::start(AgentTransport::Unix).await;
    let home = tempfile::tempdir().expect("temp dir");
    let built = run_playbook(&e, home.path(), "present").await;
    assert!(built > 0, "the first run builds");
    let admin = e.admin();
    let vpcs = admin.ok("listVPCs", &[("name", "ans-vpc")]).await;
    assert_eq!(vpcs["count"], 1, "{vpcs}");
    let vms = admin.ok("listVirtualMachines", &[]).await;
    assert_eq!(vms["count"], 2, "{vms}");
    let rules = admin.ok("listLoadBalancerRules", &[]).await;
    assert_eq!(rules["count"], 1, "{rules}");

    assert_eq!(
        run_playbook(&e, home.path(), "present").await,
        0,
        "the second run changes nothing"
    );

    run_playbook(&e, home.path(), "absent").await;
    for (command, key) in [
        ("listVPCs", "vpc"),
        ("listVirtualMachines", "virtualmachine"),
        ("listPublicIpAddresses", "publicipaddress"),
    ] {
        let left = admin.ok(command, &[("listall", "true")]).await;
        let rows = left[key].as_array().cloned().unwrap_or_default();
        assert!(rows.is_empty(), "{command} after teardown: {left}");
    }
    e.finish().await;
}
