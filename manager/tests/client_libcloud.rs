//! Apache Libcloud 3.9.1 (installed by scripts/setup.sh into .venv), as a
//! user of it would drive it, against a manager on the netns driver: a VPC,
//! two tiers from the default tier offering, an ACL list, two VMs, tags, a
//! port forward, static NAT and a load balancer with a member, then the
//! teardown (`tests/compat/libcloud_vpc.py`). Nothing may be left behind.

mod support;

use std::path::Path;

use support::e2e::E2e;
use vpc_manager::settings::AgentTransport;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn libcloud_builds_and_tears_down_a_whole_vpc() {
    let e = E2e::start(AgentTransport::Unix).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let endpoint = format!("http://{}/client/api", e.m.addr);
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        tokio::process::Command::new(&python)
            .arg(root.join("manager/tests/compat/libcloud_vpc.py"))
            .args([&endpoint, &e.m.key, &e.m.secret])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the libcloud scenario finishes within 5 minutes")
    .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("libcloud vpc scenario passed"),
        "the libcloud scenario failed ({}):\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let admin = e.admin();
    for (command, key) in [
        ("listVPCs", "vpc"),
        ("listVirtualMachines", "virtualmachine"),
        ("listRouters", "router"),
        ("listPublicIpAddresses", "publicipaddress"),
    ] {
        let left = admin.ok(command, &[("listall", "true")]).await;
        let rows = left[key].as_array().cloned().unwrap_or_default();
        // The zone's source NAT addresses go with their VPC; none is left.
        assert!(rows.is_empty(), "{command} after teardown: {left}");
    }
    e.finish().await;
}
