//! End to end, with real packets: a VM deployed through the HTTP API on the
//! netns driver with user data and an SSH key pair fetches them from its
//! router (the real vr-agent) at the URLs cloud-init's CloudStack data
//! source reads; another VM of the tier reads only its own.

mod support;

use std::time::Duration;

use support::api::job_ok;
use support::e2e::{E2e, blocking};
use vpc_integration::Netns;
use vpc_manager::settings::AgentTransport;

/// A key made by `ssh-keygen -t ed25519 -C test@lab`.
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAzLY2djU2glpO0JsxiLaUmhS+F5O+N06ylz86zTDHP test@lab";
/// `#cloud-config\nhostname: web1\n`.
const USER_DATA: &str = "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogd2ViMQo=";

/// GET `url` from inside `ns`: (HTTP status, body); status 0 when nothing
/// answered.
async fn get(ns: &Netns, url: &str) -> (u16, String) {
    curl(ns, url, None).await
}

/// GET `url` from inside `ns` with curl, with one extra `header`.
async fn curl(ns: &Netns, url: &str, header: Option<String>) -> (u16, String) {
    let (ns, url) = (ns.name().to_string(), url.to_string());
    blocking(move || {
        let mut command = std::process::Command::new("ip");
        command.args(["netns", "exec", &ns, "curl", "-s", "-m", "3", "-o", "-"]);
        if let Some(header) = &header {
            command.args(["-H", header]);
        }
        let out = command
            .args(["-w", "\n%{http_code}", &url])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    })
    .await
}

/// GET until the router answers (its VM data follows the VM's start by a
/// moment), at most 10 s.
async fn get_answered(ns: &Netns, url: &str) -> (u16, String) {
    let started = std::time::Instant::now();
    loop {
        let got = get(ns, url).await;
        if got.0 != 0 || started.elapsed() > Duration::from_secs(10) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vm_fetches_its_user_data_and_key_from_its_router_and_no_other_vms() {
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();
    let vpc = e.vpc(&admin, "meta", "10.71.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    // No ACL opens anything: the VM services need none.
    let web = e
        .tier(&admin, &vpc_id, "web", "10.71.1.1", None, false)
        .await;
    let web_id = web["id"].as_str().unwrap().to_string();
    admin
        .ok(
            "registerSSHKeyPair",
            &[("name", "laptop"), ("publickey", KEY)],
        )
        .await;

    let web1 = job_ok(
        &admin,
        "deployVirtualMachine",
        &[
            ("zoneid", &e.zone),
            ("serviceofferingid", &e.service_offering),
            ("templateid", &e.template),
            ("networkids", &web_id),
            ("name", "web1"),
            ("userdata", USER_DATA),
            ("keypair", "laptop"),
        ],
    )
    .await["virtualmachine"]
        .clone();
    let web2 = e.vm(&admin, &web_id, "web2").await;
    e.lease(&web1).await;
    e.lease(&web2).await;
    let (ns1, ns2) = (e.vm_ns(&web1), e.vm_ns(&web2));

    let base = "http://10.71.1.1/latest";
    let (status, instance) = get_answered(&ns1, &format!("{base}/meta-data/instance-id")).await;
    assert_eq!(status, 200, "{instance}");
    assert_eq!(instance, web1["id"].as_str().unwrap());
    assert_eq!(
        get(&ns1, &format!("{base}/user-data")).await,
        (200, "#cloud-config\nhostname: web1\n".to_string())
    );
    assert_eq!(
        get(&ns1, &format!("{base}/meta-data/public-keys")).await,
        (200, KEY.to_string())
    );
    let (_, listing) = get(&ns1, &format!("{base}/meta-data/")).await;
    assert!(listing.lines().any(|l| l == "public-keys"), "{listing}");
    assert_eq!(
        get(&ns1, &format!("{base}/meta-data/local-hostname")).await,
        (200, "web1".to_string())
    );

    // New user data is served at once.
    admin
        .ok(
            "updateVirtualMachine",
            &[
                ("id", web1["id"].as_str().unwrap()),
                ("userdata", "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogbmV3Cg=="),
            ],
        )
        .await;
    assert_eq!(
        get(&ns1, &format!("{base}/user-data")).await,
        (200, "#cloud-config\nhostname: new\n".to_string())
    );

    // The other VM reads its own metadata, and no user data or keys.
    let (status, instance) = get_answered(&ns2, &format!("{base}/meta-data/instance-id")).await;
    assert_eq!(
        (status, instance.as_str()),
        (200, web2["id"].as_str().unwrap())
    );
    assert_eq!(get(&ns2, &format!("{base}/user-data")).await.0, 404);
    assert_eq!(
        get(&ns2, &format!("{base}/meta-data/public-keys")).await.0,
        404
    );

    e.finish().await;
}

/// Asks the router's password server (port 8080) as cloud-init's CloudStack
/// data source does, with the `DomU_Request` header: (status, body).
async fn password_server(ns: &Netns, router: &str, request: &str) -> (u16, String) {
    let (status, body) = curl(
        ns,
        &format!("http://{router}:8080/"),
        Some(format!("DomU_Request: {request}")),
    )
    .await;
    (status, body.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vm_gets_its_password_once_and_its_registered_user_data_with_params() {
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();
    let vpc = e.vpc(&admin, "pw", "10.72.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let web = e
        .tier(&admin, &vpc_id, "web", "10.72.1.1", None, false)
        .await;
    let web_id = web["id"].as_str().unwrap().to_string();
    admin
        .ok(
            "updateTemplate",
            &[("id", &e.template), ("passwordenabled", "true")],
        )
        .await;
    let boot = admin
        .ok(
            "registerUserData",
            &[
                ("name", "boot"),
                ("userdata", USER_DATA),
                ("params", "role"),
            ],
        )
        .await["userdata"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let vm = job_ok(
        &admin,
        "deployVirtualMachine",
        &[
            ("zoneid", &e.zone),
            ("serviceofferingid", &e.service_offering),
            ("templateid", &e.template),
            ("networkids", &web_id),
            ("name", "web3"),
            ("userdataid", &boot),
            ("userdatadetails[0].role", "frontend"),
        ],
    )
    .await["virtualmachine"]
        .clone();
    let first = vm["password"].as_str().expect("shown once").to_string();
    e.lease(&vm).await;
    let ns = e.vm_ns(&vm);
    let base = "http://10.72.1.1/latest";
    assert_eq!(
        get_answered(&ns, &format!("{base}/user-data")).await,
        (200, "#cloud-config\nhostname: web1\n".to_string())
    );
    assert_eq!(
        get(&ns, &format!("{base}/meta-data/role")).await,
        (200, "frontend".to_string())
    );
    let (status, cloud) = get(&ns, &format!("{base}/meta-data/cloud-identifier")).await;
    assert_eq!(status, 200);
    assert!(cloud.starts_with("CloudStack-{"), "{cloud}");

    // The password until the VM says it saved it, then never again.
    assert_eq!(
        password_server(&ns, "10.72.1.1", "send_my_password").await,
        (200, first.clone())
    );
    assert_eq!(
        password_server(&ns, "10.72.1.1", "saved_password").await,
        (200, "saved_password".to_string())
    );
    assert_eq!(
        password_server(&ns, "10.72.1.1", "send_my_password").await,
        (200, "saved_password".to_string())
    );

    // A restarted router serves the same user data.
    let routers = admin
        .ok("listRouters", &[("vpcid", &vpc_id), ("listall", "true")])
        .await;
    let router = routers["router"][0]["id"].as_str().unwrap().to_string();
    job_ok(&admin, "rebootRouter", &[("id", &router)]).await;
    assert_eq!(
        get_answered(&ns, &format!("{base}/meta-data/role")).await,
        (200, "frontend".to_string())
    );

    // A reset makes a new password, which the VM gets once it runs again.
    let vm_id = vm["id"].as_str().unwrap().to_string();
    job_ok(&admin, "stopVirtualMachine", &[("id", &vm_id)]).await;
    let reset = job_ok(&admin, "resetPasswordForVirtualMachine", &[("id", &vm_id)]).await;
    let second = reset["virtualmachine"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, first);
    let started = job_ok(&admin, "startVirtualMachine", &[("id", &vm_id)]).await;
    e.lease(&started["virtualmachine"]).await;
    let ns = e.vm_ns(&started["virtualmachine"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = password_server(&ns, "10.72.1.1", "send_my_password").await;
        if got == (200, second.clone()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never served the new password: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    e.finish().await;
}

/// Runs cloud-init's CloudStack data source (Debian's package, unmodified)
/// in the VM's namespace, with the router as its DNS server as the VM's
/// DHCP lease says (a private mount namespace: the host's resolv.conf is
/// untouched); returns what it read.
async fn cloud_init(ns: &Netns, dns: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("dir");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {dns}\n")).expect("resolv.conf");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cloud_init_cloudstack.py"
    );
    let (ns, resolv) = (ns.name().to_string(), resolv.display().to_string());
    let out = blocking(move || {
        std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "unshare", "-m", "sh", "-c"])
            .arg(format!(
                "mount --bind {resolv} /etc/resolv.conf && exec /usr/bin/python3 {script}"
            ))
            .output()
            .expect("cloud-init's data source")
    })
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|_| {
        panic!(
            "cloud-init printed no result: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloud_inits_cloudstack_data_source_configures_a_vm_from_its_router() {
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();
    let vpc = e.vpc(&admin, "ci", "10.73.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let web = e
        .tier(&admin, &vpc_id, "web", "10.73.1.1", None, false)
        .await;
    let web_id = web["id"].as_str().unwrap().to_string();
    admin
        .ok(
            "registerSSHKeyPair",
            &[("name", "laptop"), ("publickey", KEY)],
        )
        .await;
    admin
        .ok(
            "updateTemplate",
            &[("id", &e.template), ("passwordenabled", "true")],
        )
        .await;
    let vm = job_ok(
        &admin,
        "deployVirtualMachine",
        &[
            ("zoneid", &e.zone),
            ("serviceofferingid", &e.service_offering),
            ("templateid", &e.template),
            ("networkids", &web_id),
            ("name", "ci1"),
            ("userdata", USER_DATA),
            ("keypair", "laptop"),
        ],
    )
    .await["virtualmachine"]
        .clone();
    let password = vm["password"].as_str().unwrap().to_string();
    e.lease(&vm).await;
    let ns = e.vm_ns(&vm);
    // The router answers as soon as the VM's data is applied.
    get_answered(&ns, "http://10.73.1.1/latest/meta-data/instance-id").await;

    let read = cloud_init(&ns, "10.73.1.1").await;
    assert_eq!(read["found"], true, "{read}");
    assert_eq!(
        read["router_by_name"], "10.73.1.1",
        "found as data-server: {read}"
    );
    assert_eq!(read["router"], "10.73.1.1");
    assert_eq!(read["instance_id"], vm["id"]);
    assert_eq!(read["local_hostname"], "ci1");
    assert_eq!(read["user_data"], "#cloud-config\nhostname: web1\n");
    assert_eq!(read["public_keys"], serde_json::json!([KEY]));
    assert_eq!(read["password"], password.as_str());
    // cloud-init acknowledged it: a second boot gets no password.
    let again = cloud_init(&ns, "10.73.1.1").await;
    assert_eq!(again["found"], true);
    assert!(again["password"].is_null(), "{again}");
    e.finish().await;
}
