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
    let (ns, url) = (ns.name().to_string(), url.to_string());
    blocking(move || {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "curl", "-s", "-m", "3", "-o", "-"])
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
    let (ns, url, header) = (
        ns.name().to_string(),
        format!("http://{router}:8080/"),
        format!("DomU_Request: {request}"),
    );
    blocking(move || {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "curl", "-s", "-m", "3", "-H", &header])
            .args(["-w", "\n%{http_code}", &url])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
        (code.trim().parse().unwrap_or(0), body.trim().to_string())
    })
    .await
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
