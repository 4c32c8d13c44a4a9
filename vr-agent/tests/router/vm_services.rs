//! The VM services with real packets: VMs fetch, from the address their
//! DHCP lease names as server, exactly what cloud-init's CloudStack data
//! source fetches (the URLs, and `wget` with the `DomU_Request` header for
//! the password), and each gets only its own.

use std::time::Duration;

use vpc_integration::Netns;
use vpc_proto::v1 as pb;

use crate::fixture::{RouterLab, VM1_MAC};

const FETCH: Duration = Duration::from_secs(8);

/// The HTTP status and body of a GET from `ns`; status 0 when no answer came.
fn get(r: &RouterLab, ns: &Netns, url: &str) -> (u16, String) {
    let out = r
        .lab
        .exec_unchecked(
            ns,
            &[
                "curl",
                "-s",
                "-m",
                "2",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                url,
            ],
            FETCH,
        )
        .unwrap();
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", "000"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// What cloud-init's password client gets: `wget` with the `DomU_Request`
/// header at `<router>:8080`, the body stripped.
fn password_request(r: &RouterLab, ns: &Netns, router: &str, request: &str) -> String {
    let header = format!("DomU_Request: {request}");
    let url = format!("{router}:8080");
    let out = r
        .lab
        .exec_unchecked(
            ns,
            &[
                "wget",
                "--quiet",
                "--tries",
                "1",
                "--timeout",
                "3",
                "--output-document",
                "-",
                "--header",
                &header,
                &url,
            ],
            FETCH,
        )
        .unwrap();
    out.stdout.trim().to_owned()
}

fn entry(name: &str, value: &str) -> pb::MetadataEntry {
    pb::MetadataEntry {
        name: name.into(),
        value: value.into(),
    }
}

/// What CloudStack's manager sends for a VM, in its order.
fn vm_data(mac: &str, ip: &str, name: &str, user_data: &str) -> pb::VmData {
    pb::VmData {
        mac_address: mac.into(),
        ip_address: ip.into(),
        user_data: user_data.as_bytes().to_vec(),
        metadata: vec![
            entry("service-offering", "Small Instance"),
            entry("availability-zone", "zone1"),
            entry("local-ipv4", ip),
            entry("local-hostname", name),
            entry("public-ipv4", "203.0.113.10"),
            entry("public-hostname", "203.0.113.10"),
            entry("instance-id", &format!("{name}-uuid")),
            entry("vm-id", &format!("{name}-uuid")),
            entry("cloud-identifier", "CloudStack-{lab}"),
            entry("hypervisor-host-name", "host1"),
        ],
        public_keys: vec![format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA {name}@lab")],
        password: format!("pw-of-{name}"),
    }
}

/// The MAC of a VM namespace's eth0.
fn mac_of(r: &RouterLab, ns: &Netns) -> String {
    let out = r.lab.ip(ns, &["-br", "link", "show", "eth0"]).unwrap();
    out.stdout
        .split_whitespace()
        .nth(2)
        .expect("a MAC in `ip -br link`")
        .to_owned()
}

fn set_vm_data(r: &mut RouterLab, data: pb::TierVmData) {
    let generation = r.next_generation();
    r.call(move |mut c| async move {
        c.set_vm_data(pb::SetVmDataRequest {
            generation,
            vm_data: Some(data),
        })
        .await
    })
    .unwrap_or_else(|e| panic!("SetVmData: {e:?}"));
}

#[test]
fn a_vm_reads_its_own_user_data_metadata_keys_and_password_as_cloud_init_does() {
    let mut r = RouterLab::start("vmdata_e2e");
    r.unconfigure_vm1();
    let vm2_mac = mac_of(&r, &r.vm2);
    let mut config = r.base_config();
    config.vm_data = vec![
        pb::TierVmData {
            device_index: 2,
            vms: vec![vm_data(
                VM1_MAC,
                "10.1.1.5",
                "web-1",
                "#cloud-config\nhostname: web-1\n",
            )],
        },
        pb::TierVmData {
            device_index: 3,
            vms: vec![vm_data(
                &vm2_mac,
                "10.1.2.5",
                "db-1",
                "#!/bin/sh\necho db-1\n",
            )],
        },
    ];
    r.apply_config(config);

    // cloud-init takes the DHCP server identifier for the virtual router.
    let lease = r
        .lab
        .dhcp_client(&r.vm1, "eth0", Duration::from_secs(10))
        .expect("lease");
    let router = lease.server.expect("a server identifier").to_string();
    assert_eq!(router, "10.1.1.1");
    let base = format!("http://{router}/latest");

    // wait_for_metadata_service, then the user data and the crawl.
    let (status, body) = get(&r, &r.vm1, &format!("{base}/meta-data/instance-id"));
    assert_eq!(
        (status, body.as_str()),
        (200, "web-1-uuid"),
        "{}",
        r.agent_log()
    );
    let (status, body) = get(&r, &r.vm1, &format!("{base}/user-data"));
    assert_eq!(
        (status, body.as_str()),
        (200, "#cloud-config\nhostname: web-1\n")
    );
    let (status, listing) = get(&r, &r.vm1, &format!("{base}/meta-data/"));
    assert_eq!(status, 200);
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(
        names,
        [
            "service-offering",
            "availability-zone",
            "local-ipv4",
            "local-hostname",
            "public-ipv4",
            "public-hostname",
            "instance-id",
            "vm-id",
            "public-keys",
            "cloud-identifier",
            "hypervisor-host-name"
        ]
    );
    for (name, want) in [
        ("local-ipv4", "10.1.1.5"),
        ("local-hostname", "web-1"),
        ("availability-zone", "zone1"),
        (
            "public-keys",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA web-1@lab",
        ),
    ] {
        let (status, body) = get(&r, &r.vm1, &format!("{base}/meta-data/{name}"));
        assert_eq!((status, body.as_str()), (200, want), "{name}");
    }

    // The password: served, acknowledged, then no more.
    assert_eq!(
        password_request(&r, &r.vm1, &router, "send_my_password"),
        "pw-of-web-1"
    );
    assert_eq!(
        password_request(&r, &r.vm1, &router, "saved_password"),
        "saved_password"
    );
    assert_eq!(
        password_request(&r, &r.vm1, &router, "send_my_password"),
        "saved_password"
    );

    // Another tier's VM: its own data on its own gateway; the first VM's
    // gateway does not even answer it.
    let (status, body) = get(&r, &r.vm2, "http://10.1.2.1/latest/user-data");
    assert_eq!((status, body.as_str()), (200, "#!/bin/sh\necho db-1\n"));
    let (status, _) = get(&r, &r.vm2, &format!("{base}/user-data"));
    assert_eq!(status, 0, "the tier-1 gateway answered a tier-2 VM");

    // A VM of the tier without an entry gets 404, not another's data.
    let (status, body) = get(&r, &r.vm3, "http://10.1.2.1/latest/user-data");
    assert_eq!(status, 404, "{body}");
    let (status, _) = get(&r, &r.vm3, "http://10.1.2.1/latest/meta-data/instance-id");
    assert_eq!(status, 404);
    assert_eq!(
        password_request(&r, &r.vm3, "10.1.2.1", "send_my_password"),
        "saved_password"
    );

    // Taking the other VM's address does not get its data: the router
    // checks the MAC it sees the request from.
    r.lab.ip(&r.vm2, &["addr", "flush", "dev", "eth0"]).unwrap();
    r.lab.ip(&r.vm3, &["addr", "flush", "dev", "eth0"]).unwrap();
    r.lab
        .ip(&r.vm3, &["addr", "add", "10.1.2.5/24", "dev", "eth0"])
        .unwrap();
    let (status, body) = get(&r, &r.vm3, "http://10.1.2.1/latest/user-data");
    assert_ne!(status, 200, "a spoofed address read {body:?}");

    // The public side reaches neither port.
    let (status, _) = get(&r, &r.up, "http://203.0.113.10/latest/user-data");
    assert_eq!(status, 0);
}

#[test]
fn updated_user_data_is_served_at_once_and_a_restarted_agent_serves_the_same() {
    let mut r = RouterLab::start("vmdata_update");
    let mut config = r.base_config();
    config.vm_data = vec![pb::TierVmData {
        device_index: 2,
        vms: vec![vm_data(VM1_MAC, "10.1.1.5", "web-1", "first")],
    }];
    r.apply_config(config);
    let url = "http://10.1.1.1/latest/user-data";
    assert_eq!(get(&r, &r.vm1, url), (200, "first".into()));

    let mut updated = vm_data(VM1_MAC, "10.1.1.5", "web-1", "second");
    updated
        .public_keys
        .push("ssh-rsa AAAAB3NzaC1yc2E second@lab".into());
    set_vm_data(
        &mut r,
        pb::TierVmData {
            device_index: 2,
            vms: vec![updated],
        },
    );
    assert_eq!(get(&r, &r.vm1, url), (200, "second".into()));
    let (_, keys) = get(&r, &r.vm1, "http://10.1.1.1/latest/meta-data/public-keys");
    assert_eq!(keys.lines().count(), 2, "{keys}");

    r.kill_agent();
    r.spawn_agent();
    assert_eq!(
        get(&r, &r.vm1, url),
        (200, "second".into()),
        "{}",
        r.agent_log()
    );

    // Emptying the tier's list stops serving it, port included.
    set_vm_data(
        &mut r,
        pb::TierVmData {
            device_index: 2,
            vms: Vec::new(),
        },
    );
    assert_eq!(get(&r, &r.vm1, url).0, 0);
}
