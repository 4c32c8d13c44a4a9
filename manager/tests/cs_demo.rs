//! The demo (`scripts/demo.sh`, the `cs` client library) against a manager
//! on the netns driver: a VPC with two tiers, a VM in each, ACL lists, port
//! forwards and a private gateway with a static route to an on-premises
//! namespace, a connectivity matrix measured with real packets that agrees
//! with the ACLs, and a teardown that leaves nothing behind.

mod support;

use std::path::Path;

use support::e2e::E2e;
use vpc_manager::settings::AgentTransport;

/// The prefix's namespaces, but the zone's own (its bridges and upstream,
/// which live as long as the zone).
fn guests_left(prefix: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|n| n.strip_prefix(prefix))
        .filter(|rest| !rest.starts_with("zone-") && !rest.starts_with("up-"))
        .map(|rest| format!("{prefix}{rest}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_measures_what_the_acls_say_and_leaves_nothing() {
    let e = E2e::start(AgentTransport::Unix).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let ini = e.m.data_dir.path().join("cloudstack.ini");
    let output = tokio::process::Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .args(["--prefix", &e.prefix, "--config"])
        .arg(&ini)
        .env("VPC_MANAGER_BIN", env!("CARGO_BIN_EXE_vpc-manager"))
        .env_remove("CLOUDSTACK_CONFIG")
        .output()
        .await
        .expect("run scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}");
    assert!(
        output.status.success(),
        "the demo failed ({}):\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    for line in [
        "Connectivity, measured with real packets",
        "demo: the matrix matches the ACLs",
        "demo: the site-to-site tunnel carries the VMs' own addresses both ways",
        "demo: torn down",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    // The matrix rows: one allowed and one denied flow of each kind.
    let row = |from: &str, to: &str, probe: &str, verdict: &str| {
        stdout.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            l.trim_start().starts_with(from)
                && l.contains(to)
                && cols.contains(&probe)
                && cols.windows(2).any(|w| w == [verdict, verdict])
        })
    };
    assert!(row("web1", "db1", "tcp/5432", "yes"), "{stdout}");
    assert!(row("web1", "db1", "tcp/22", "no"), "{stdout}");
    assert!(row("db1", "web1", "tcp/80", "yes"), "{stdout}");
    assert!(row("upstream", "public IP", "tcp/8080", "yes"), "{stdout}");
    assert!(row("upstream", "public IP", "tcp/2222", "no"), "{stdout}");
    assert!(row("web1", "upstream", "tcp/7000", "yes"), "{stdout}");
    assert!(row("web1", "on-prem", "tcp/9000", "yes"), "{stdout}");
    assert!(row("on-prem", "db1", "tcp/5432", "no"), "{stdout}");
    assert!(row("web1", "branch1", "tcp/9100", "yes"), "{stdout}");
    assert!(row("branch1", "web1", "tcp/80", "yes"), "{stdout}");
    assert!(row("web1", "branch1", "tcp/22", "no"), "{stdout}");

    // Through the API: nothing of the demo is left.
    let admin = e.admin();
    let vpcs = admin.ok("listVPCs", &[("listall", "true")]).await;
    assert_eq!(vpcs["count"].as_u64().unwrap_or(0), 0, "{vpcs}");
    let customer_gateways = admin
        .ok("listVpnCustomerGateways", &[("listall", "true")])
        .await;
    assert_eq!(
        customer_gateways["count"].as_u64().unwrap_or(0),
        0,
        "{customer_gateways}"
    );
    let routers = admin.ok("listRouters", &[("listall", "true")]).await;
    assert_eq!(routers["count"].as_u64().unwrap_or(0), 0, "{routers}");
    // On the host: no router, VM or on-premises namespace.
    assert_eq!(guests_left(&e.prefix), Vec::<String>::new());
    e.finish().await;
}
