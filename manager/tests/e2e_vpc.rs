//! End to end, with real packets: a VPC built through the HTTP API on the
//! netns driver (routers and VMs as namespaces, the real vr-agent, DHCP from
//! the router), proving with TCP, ping and DNS what the ACLs allow, source
//! NAT upstream, and the teardown leaving nothing behind; a VPC's dns1 and
//! publicmtu acting on the router (its resolver forwards, its public link's
//! MTU); and one global ACL list used by two accounts' VPCs, whose items the
//! root admin changes on both routers at once.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use support::api::{id, job_ok};
use support::e2e::{E2e, blocking, ping_ok, tcp_ok};
use vpc_integration::TcpEchoServer;
use vpc_manager::settings::AgentTransport;

fn listen(ns: &vpc_integration::Netns, port: u16) -> TcpEchoServer {
    TcpEchoServer::start(ns, SocketAddr::from(([0, 0, 0, 0], port))).expect("listener")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tiers_talk_exactly_as_far_as_their_acls_allow() {
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();

    let t0 = Instant::now();
    let vpc = e.vpc(&admin, "shop", "10.70.0.0/16").await;
    let vpc_ready = t0.elapsed();
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let routers = admin.ok("listRouters", &[("vpcid", &vpc_id)]).await;
    let router = routers["router"][0].clone();
    assert_eq!(router["state"], "Running", "{router}");
    let public_ip: Ipv4Addr = router["publicip"].as_str().unwrap().parse().unwrap();

    // Two lists: web takes port 80 from anywhere; db starts closed.
    let acl = |name: &str| {
        let admin = admin.clone();
        let vpc_id = vpc_id.clone();
        let name = name.to_string();
        async move {
            let done = job_ok(
                &admin,
                "createNetworkACLList",
                &[("name", &name), ("description", &name), ("vpcid", &vpc_id)],
            )
            .await;
            id(&done, "networkacllist")
        }
    };
    let web_acl = acl("web").await;
    let db_acl = acl("db").await;
    job_ok(
        &admin,
        "createNetworkACL",
        &[
            ("aclid", &web_acl),
            ("protocol", "tcp"),
            ("startport", "80"),
            ("endport", "80"),
            ("cidrlist", "0.0.0.0/0"),
            ("action", "Allow"),
            ("traffictype", "Ingress"),
        ],
    )
    .await;
    let web = e
        .tier(&admin, &vpc_id, "web", "10.70.1.1", Some(&web_acl), false)
        .await;
    let db = e
        .tier(&admin, &vpc_id, "db", "10.70.2.1", Some(&db_acl), false)
        .await;

    let t1 = Instant::now();
    let web1 = e.vm(&admin, web["id"].as_str().unwrap(), "web1").await;
    let web1_ip = e.lease(&web1).await;
    let vm_ready = t1.elapsed();
    let db1 = e.vm(&admin, db["id"].as_str().unwrap(), "db1").await;
    let db1_ip = e.lease(&db1).await;
    assert_eq!(
        web1_ip.to_string(),
        web1["nic"][0]["ipaddress"].as_str().unwrap(),
        "the VM got the address the manager reserved, by DHCP"
    );
    let (web1_ns, db1_ns) = (e.vm_ns(&web1), e.vm_ns(&db1));

    // Servers in both VMs.
    let (a, b) = (web1_ns.clone(), db1_ns.clone());
    let servers = blocking(move || {
        vec![
            listen(&a, 80),
            listen(&a, 22),
            listen(&b, 5432),
            listen(&b, 22),
        ]
    })
    .await;
    let web80 = SocketAddr::from((web1_ip, 80));
    let web22 = SocketAddr::from((web1_ip, 22));
    let db5432 = SocketAddr::from((db1_ip, 5432));
    let db22 = SocketAddr::from((db1_ip, 22));

    // Ingress is denied by default; web's list opens port 80 only.
    assert!(tcp_ok(&db1_ns, web80).await, "web allows 80");
    assert!(!tcp_ok(&db1_ns, web22).await, "web denies 22");
    assert!(!tcp_ok(&web1_ns, db5432).await, "db denies everything");
    assert!(!ping_ok(&web1_ns, db1_ip).await, "db denies ICMP");

    // One allow item opens one port on db, measured until packets pass.
    let t2 = Instant::now();
    job_ok(
        &admin,
        "createNetworkACL",
        &[
            ("aclid", &db_acl),
            ("number", "10"),
            ("protocol", "tcp"),
            ("startport", "5432"),
            ("endport", "5432"),
            ("cidrlist", "10.70.1.0/24"),
            ("action", "Allow"),
            ("traffictype", "Ingress"),
        ],
    )
    .await;
    assert!(tcp_ok(&web1_ns, db5432).await, "db allows 5432 from web");
    let acl_effect = t2.elapsed();
    assert!(!tcp_ok(&web1_ns, db22).await, "but not 22");

    // Hit counters: datagrams from web1 (each from a new port, a new flow)
    // hit an allow and a deny item of db's list; listNetworkACLs shows the
    // kernel's counts of each, read from the router.
    let udp_item = |number: &'static str, port: &'static str, action: &'static str| {
        let admin = admin.clone();
        let db_acl = db_acl.clone();
        async move {
            let done = job_ok(
                &admin,
                "createNetworkACL",
                &[
                    ("aclid", &db_acl),
                    ("number", number),
                    ("protocol", "udp"),
                    ("startport", port),
                    ("endport", port),
                    ("cidrlist", "10.70.1.0/24"),
                    ("action", action),
                    ("traffictype", "Ingress"),
                ],
            )
            .await;
            id(&done, "networkacl")
        }
    };
    let allow_9000 = udp_item("20", "9000", "Allow").await;
    let deny_9001 = udp_item("21", "9001", "Deny").await;
    let ns = web1_ns.clone();
    blocking(move || {
        vpc_integration::run_in_netns(&ns, move || {
            for (port, count) in [(9000, 5), (9001, 3)] {
                for _ in 0..count {
                    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
                    socket
                        .send_to(&[1u8; 100], SocketAddr::from((db1_ip, port)))
                        .expect("send");
                }
            }
            Ok(())
        })
        .unwrap()
    })
    .await;
    // 100 bytes of payload, 8 of UDP and 20 of IPv4 header per packet.
    let want = [(allow_9000.clone(), 5u64), (deny_9001.clone(), 3)];
    let started = Instant::now();
    let counts = loop {
        let listed = admin.ok("listNetworkACLs", &[("aclid", &db_acl)]).await;
        let counts: Vec<(u64, u64)> = want
            .iter()
            .map(|(id, _)| {
                let item = listed["networkacl"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|i| i["id"] == id.as_str())
                    .cloned()
                    .unwrap_or_default();
                (
                    item["packets"].as_u64().unwrap_or_default(),
                    item["bytes"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        if counts == [(5, 5 * 128), (3, 3 * 128)] || started.elapsed().as_secs() >= 5 {
            break counts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        counts,
        [(5, 5 * 128), (3, 3 * 128)],
        "allow 9000, deny 9001"
    );

    // A deny item with a lower number wins.
    let deny = job_ok(
        &admin,
        "createNetworkACL",
        &[
            ("aclid", &db_acl),
            ("number", "5"),
            ("protocol", "tcp"),
            ("startport", "5432"),
            ("endport", "5432"),
            ("cidrlist", &format!("{web1_ip}/32")),
            ("action", "Deny"),
            ("traffictype", "Ingress"),
        ],
    )
    .await;
    assert!(!tcp_ok(&web1_ns, db5432).await, "the lower deny wins");
    job_ok(
        &admin,
        "deleteNetworkACL",
        &[("id", &id(&deny, "networkacl"))],
    )
    .await;
    assert!(tcp_ok(&web1_ns, db5432).await, "open again");

    // replaceNetworkACLList switches the policy on a live tier.
    let allow_all = admin
        .ok("listNetworkACLLists", &[("name", "default_allow")])
        .await["networkacllist"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    job_ok(
        &admin,
        "replaceNetworkACLList",
        &[
            ("aclid", &allow_all),
            ("networkid", db["id"].as_str().unwrap()),
        ],
    )
    .await;
    assert!(tcp_ok(&web1_ns, db22).await, "default_allow opens db");
    assert!(ping_ok(&web1_ns, db1_ip).await);

    // The VMs resolve each other through the router.
    let domain = vpc["networkdomain"].as_str().unwrap().to_string();
    let ns = web1_ns.clone();
    let resolved = blocking(move || {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.name(),
                "getent",
                "hosts",
                &format!("db1.{domain}"),
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    })
    .await;
    assert!(
        resolved.contains(&db1_ip.to_string()),
        "db1 resolves: {resolved:?}"
    );

    // Upstream sees the VPC's source NAT address.
    let up = e.upstream();
    let up2 = up.clone();
    let upstream_server = blocking(move || listen(&up2, 7000)).await;
    assert!(tcp_ok(&web1_ns, SocketAddr::from(([203, 0, 113, 1], 7000))).await);
    let peers = upstream_server.peers();
    assert!(
        peers
            .iter()
            .all(|p| p.ip() == std::net::IpAddr::V4(public_ip)),
        "upstream saw {peers:?}, not {public_ip}"
    );
    drop((servers, upstream_server));

    eprintln!(
        "timings: createVPC to a running router {vpc_ready:?}; deployVirtualMachine to a DHCP \
         lease {vm_ready:?}; createNetworkACL to packets passing {acl_effect:?}"
    );

    // Teardown through the API leaves no namespace behind.
    for vm in [&web1, &db1] {
        job_ok(
            &admin,
            "destroyVirtualMachine",
            &[("id", vm["id"].as_str().unwrap()), ("expunge", "true")],
        )
        .await;
    }
    for tier in [&web, &db] {
        job_ok(
            &admin,
            "deleteNetwork",
            &[("id", tier["id"].as_str().unwrap())],
        )
        .await;
    }
    job_ok(&admin, "deleteVPC", &[("id", &vpc_id)]).await;
    let router_ns = e.driver.router_ns(router["name"].as_str().unwrap());
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        !listed.contains(&router_ns),
        "router namespace left: {listed}"
    );
    assert!(!listed.contains(&e.driver.vm_ns(web1["instancename"].as_str().unwrap())));
    e.finish().await;
}

/// A child process in a namespace, killed (by its pid) when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The MTU of the link with `mac` in namespace `ns`.
fn link_mtu(ns: &str, mac: &str) -> Option<u64> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-j", "link", "show"])
        .output()
        .ok()?;
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    links
        .as_array()?
        .iter()
        .find(|l| l["address"].as_str() == Some(mac))
        .and_then(|l| l["mtu"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vpc_dns_servers_and_public_mtu_act_on_the_router() {
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();
    let vpc = job_ok(
        &admin,
        "createVPC",
        &[
            ("name", "dnsmtu"),
            ("cidr", "10.71.0.0/16"),
            ("zoneid", &e.zone),
            ("vpcofferingid", &e.vpc_offering),
            ("dns1", "203.0.113.1"),
            ("publicmtu", "1400"),
        ],
    )
    .await["vpc"]
        .clone();
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let router = admin.ok("listRouters", &[("vpcid", &vpc_id)]).await["router"][0].clone();
    let router_ns = e.driver.router_ns(router["name"].as_str().unwrap());
    let mac = router["publicmacaddress"].as_str().unwrap().to_string();
    assert_eq!(
        link_mtu(&router_ns, &mac),
        Some(1400),
        "public NIC at start"
    );

    // updateVPC reaches the running router's link.
    job_ok(
        &admin,
        "updateVPC",
        &[("id", &vpc_id), ("publicmtu", "1300")],
    )
    .await;
    assert_eq!(link_mtu(&router_ns, &mac), Some(1300), "after updateVPC");

    // A resolver upstream (its namespace exists once a router is plugged)
    // that knows one name; the VPC names it as dns1.
    let up = e.upstream();
    let upstream_dns = Child(
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                up.name(),
                "dnsmasq",
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=203.0.113.1",
                "--address=/probe.example/192.0.2.7",
                "--pid-file=",
                "--user=root",
            ])
            .spawn()
            .expect("upstream dnsmasq"),
    );
    // A VM asks the router (its gateway), which asks the VPC's dns1.
    let tier = e
        .tier(&admin, &vpc_id, "web", "10.71.1.1", None, false)
        .await;
    let vm = e.vm(&admin, tier["id"].as_str().unwrap(), "dnsvm").await;
    e.lease(&vm).await;
    let ns = e.vm_ns(&vm);
    let answer = blocking(move || {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.name(),
                "busybox",
                "nslookup",
                "probe.example",
                "10.71.1.1",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    })
    .await;
    assert!(
        answer.contains("192.0.2.7"),
        "the router forwarded: {answer:?}"
    );
    drop(upstream_dns);

    job_ok(
        &admin,
        "destroyVirtualMachine",
        &[("id", vm["id"].as_str().unwrap()), ("expunge", "true")],
    )
    .await;
    job_ok(
        &admin,
        "deleteNetwork",
        &[("id", tier["id"].as_str().unwrap())],
    )
    .await;
    job_ok(&admin, "deleteVPC", &[("id", &vpc_id)]).await;
    e.finish().await;
}

/// Two accounts' VPCs, each with a `web` tier on one global ACL list and a
/// `cli` tier on default_allow: the root admin's Deny item on the global list
/// closes web's port 80 in both VPCs, and deleting it opens it again, proved
/// with TCP from each VPC's cli VM.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_global_acl_item_closes_and_reopens_a_port_in_every_vpc_using_the_list() {
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();
    let global = id(
        &job_ok(
            &admin,
            "createNetworkACLList",
            &[("name", "web-global"), ("description", "port 80 for all")],
        )
        .await,
        "networkacllist",
    );
    job_ok(
        &admin,
        "createNetworkACL",
        &[
            ("aclid", &global),
            ("number", "10"),
            ("protocol", "tcp"),
            ("startport", "80"),
            ("endport", "80"),
            ("action", "Allow"),
        ],
    )
    .await;
    let allow = admin
        .ok("listNetworkACLLists", &[("name", "default_allow")])
        .await["networkacllist"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Per account: its VPC, web on the global list, cli on default_allow, a
    // VM in each, a server on web's port 80.
    let mut sites = Vec::new();
    for (name, octet) in [("bob", 71), ("carol", 72)] {
        let client = support::vpc::user(&admin, name).await;
        let vpc = e
            .vpc(
                &client,
                &format!("{name}-vpc"),
                &format!("10.{octet}.0.0/16"),
            )
            .await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        let web = e
            .tier(
                &client,
                &vpc_id,
                "web",
                &format!("10.{octet}.1.1"),
                Some(&global),
                false,
            )
            .await;
        assert_eq!(web["aclid"], global.as_str(), "{web}");
        let cli = e
            .tier(
                &client,
                &vpc_id,
                "cli",
                &format!("10.{octet}.2.1"),
                Some(&allow),
                false,
            )
            .await;
        // The root admin's view of each VM names its instance (namespace).
        let as_admin = |vm: serde_json::Value| {
            let admin = admin.clone();
            async move {
                let vm_id = vm["id"].as_str().unwrap().to_string();
                admin
                    .ok(
                        "listVirtualMachines",
                        &[("id", &vm_id), ("listall", "true")],
                    )
                    .await["virtualmachine"][0]
                    .clone()
            }
        };
        let web1 = e
            .vm(&client, web["id"].as_str().unwrap(), &format!("{name}-web"))
            .await;
        let web1 = as_admin(web1).await;
        let web1_ip = e.lease(&web1).await;
        let cli1 = e
            .vm(&client, cli["id"].as_str().unwrap(), &format!("{name}-cli"))
            .await;
        let cli1 = as_admin(cli1).await;
        e.lease(&cli1).await;
        let web_ns = e.vm_ns(&web1);
        let server = blocking(move || listen(&web_ns, 80)).await;
        sites.push((
            name,
            e.vm_ns(&cli1),
            SocketAddr::from((web1_ip, 80)),
            server,
        ));
    }
    for (name, cli, web80, _) in &sites {
        assert!(
            tcp_ok(cli, *web80).await,
            "{name}: the global list allows 80"
        );
    }

    // One Deny item ahead of the Allow, by the root admin: closed in both.
    let deny = id(
        &job_ok(
            &admin,
            "createNetworkACL",
            &[
                ("aclid", &global),
                ("number", "5"),
                ("protocol", "tcp"),
                ("startport", "80"),
                ("endport", "80"),
                ("action", "Deny"),
            ],
        )
        .await,
        "networkacl",
    );
    for (name, cli, web80, _) in &sites {
        assert!(
            !tcp_ok(cli, *web80).await,
            "{name}: the Deny item closes 80"
        );
    }

    // Deleting it opens both again.
    job_ok(&admin, "deleteNetworkACL", &[("id", &deny)]).await;
    for (name, cli, web80, _) in &sites {
        assert!(tcp_ok(cli, *web80).await, "{name}: 80 open again");
    }
    drop(sites);
    e.finish().await;
}
