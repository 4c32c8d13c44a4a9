//! End to end, with real packets: the VPC's public addresses on the netns
//! driver — port forwarding, static NAT both ways and a round-robin load
//! balancer, each reached from the upstream namespace, and each closed again
//! when its rule goes. (Source NAT is proven in `e2e_vpc`.)

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use support::api::{Client, id, job_ok};
use support::e2e::{E2e, blocking, tcp_ok};
use vpc_integration::{Netns, TcpEchoServer};
use vpc_manager::settings::AgentTransport;

/// Upstream's address (the public range's gateway).
const UPSTREAM: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

fn listen(ns: &Netns, port: u16) -> TcpEchoServer {
    TcpEchoServer::start(ns, SocketAddr::from(([0, 0, 0, 0], port))).expect("listener")
}

/// The source address a server at `to` sees for a connection from `from`
/// (None when the connection fails).
async fn seen_as(from: &Netns, to: SocketAddr) -> Option<IpAddr> {
    let from = from.clone();
    blocking(move || vpc_integration::tcp_probe(&from, to, Duration::from_secs(2)).ok())
        .await
        .map(|r| r.seen_as.ip())
}

/// associateIpAddress on the VPC; returns `(id, address)`.
async fn acquire(admin: &Client, vpc: &str) -> (String, Ipv4Addr) {
    let ip = job_ok(admin, "associateIpAddress", &[("vpcid", vpc)]).await["ipaddress"].clone();
    (
        ip["id"].as_str().unwrap().to_string(),
        ip["ipaddress"].as_str().unwrap().parse().unwrap(),
    )
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn port_forwarding_static_nat_and_load_balancing_from_upstream() {
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();

    let vpc = e.vpc(&admin, "nat", "10.80.0.0/16").await;
    let vpc_id = s(&vpc, "id");
    let router = admin.ok("listRouters", &[("vpcid", &vpc_id)]).await["router"][0].clone();
    let source_nat: Ipv4Addr = s(&router, "publicip").parse().unwrap();

    // The public LB tier, whose list takes port 80 from anywhere.
    let acl = job_ok(
        &admin,
        "createNetworkACLList",
        &[("name", "web"), ("description", "web"), ("vpcid", &vpc_id)],
    )
    .await;
    let acl = id(&acl, "networkacllist");
    job_ok(
        &admin,
        "createNetworkACL",
        &[
            ("aclid", &acl),
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
        .tier(&admin, &vpc_id, "web", "10.80.1.1", Some(&acl), true)
        .await;
    let web_id = s(&web, "id");
    let web1 = e.vm(&admin, &web_id, "web1").await;
    let web2 = e.vm(&admin, &web_id, "web2").await;
    let web1_ip = e.lease(&web1).await;
    let web2_ip = e.lease(&web2).await;
    let (web1_ns, web2_ns, up) = (e.vm_ns(&web1), e.vm_ns(&web2), e.upstream());
    let (a, b, u) = (web1_ns.clone(), web2_ns.clone(), up.clone());
    let (srv1, srv2, upstream_srv) =
        blocking(move || (listen(&a, 80), listen(&b, 80), listen(&u, 7000))).await;
    let upstream_7000 = SocketAddr::from((UPSTREAM, 7000));

    // Port forwarding: public 8080 to web1's 80; web1 sees upstream itself.
    let (pf_ip_id, pf_ip) = acquire(&admin, &vpc_id).await;
    assert_ne!(pf_ip, source_nat);
    let pf_target = SocketAddr::from((pf_ip, 8080));
    assert!(!tcp_ok(&up, pf_target).await, "nothing forwards yet");
    let pf = job_ok(
        &admin,
        "createPortForwardingRule",
        &[
            ("ipaddressid", &pf_ip_id),
            ("privateport", "80"),
            ("publicport", "8080"),
            ("protocol", "tcp"),
            ("virtualmachineid", &s(&web1, "id")),
            ("networkid", &web_id),
        ],
    )
    .await;
    let pf_id = id(&pf, "portforwardingrule");
    assert_eq!(
        seen_as(&up, pf_target).await,
        Some(IpAddr::V4(UPSTREAM)),
        "web1's server sees upstream's own address"
    );
    assert!(
        srv1.peers().iter().any(|p| p.ip() == IpAddr::V4(UPSTREAM)),
        "the forward reached web1: {:?}",
        srv1.peers()
    );
    assert!(srv2.peers().is_empty(), "not web2: {:?}", srv2.peers());
    assert!(
        !tcp_ok(&up, SocketAddr::from((pf_ip, 80))).await,
        "only the public port forwards"
    );

    // Static NAT both ways: upstream reaches web2 on the address, and web2's
    // own connections leave with it; web1 keeps the source NAT address.
    let (snat_ip_id, snat_ip) = acquire(&admin, &vpc_id).await;
    let enabled = admin
        .ok(
            "enableStaticNat",
            &[
                ("ipaddressid", &snat_ip_id),
                ("virtualmachineid", &s(&web2, "id")),
                ("networkid", &web_id),
            ],
        )
        .await;
    assert_eq!(enabled["success"], true, "{enabled}");
    let snat_target = SocketAddr::from((snat_ip, 80));
    assert_eq!(
        seen_as(&up, snat_target).await,
        Some(IpAddr::V4(UPSTREAM)),
        "upstream reaches web2 on its static NAT address"
    );
    assert!(
        srv2.peers().iter().any(|p| p.ip() == IpAddr::V4(UPSTREAM)),
        "{:?}",
        srv2.peers()
    );
    assert_eq!(
        seen_as(&web2_ns, upstream_7000).await,
        Some(IpAddr::V4(snat_ip)),
        "web2 leaves with its static NAT address"
    );
    assert_eq!(
        seen_as(&web1_ns, upstream_7000).await,
        Some(IpAddr::V4(source_nat)),
        "web1 leaves with the VPC's source NAT address"
    );

    // A round-robin load balancer on a third address, over both VMs.
    let (lb_ip_id, lb_ip) = acquire(&admin, &vpc_id).await;
    let lb = job_ok(
        &admin,
        "createLoadBalancerRule",
        &[
            ("publicipid", &lb_ip_id),
            ("name", "web"),
            ("algorithm", "roundrobin"),
            ("publicport", "80"),
            ("privateport", "80"),
            ("networkid", &web_id),
        ],
    )
    .await;
    let lb_id = id(&lb, "loadbalancer");
    job_ok(
        &admin,
        "assignToLoadBalancerRule",
        &[
            ("id", &lb_id),
            (
                "virtualmachineids",
                &format!("{},{}", s(&web1, "id"), s(&web2, "id")),
            ),
        ],
    )
    .await;
    let lb_target = SocketAddr::from((lb_ip, 80));
    let before = (srv1.peers().len(), srv2.peers().len());
    for _ in 0..6 {
        assert_eq!(
            seen_as(&up, lb_target).await,
            Some(IpAddr::V4(UPSTREAM)),
            "every balanced connection gets through"
        );
    }
    let hits = (srv1.peers().len() - before.0, srv2.peers().len() - before.1);
    assert_eq!(hits.0 + hits.1, 6, "{hits:?}");
    assert!(
        hits.0 >= 2 && hits.1 >= 2,
        "round robin reaches both backends: {hits:?}"
    );
    eprintln!(
        "load balancer: web1 {} and web2 {} of 6 connections",
        hits.0, hits.1
    );

    // Deleting the rules closes them again.
    job_ok(&admin, "deletePortForwardingRule", &[("id", &pf_id)]).await;
    assert!(!tcp_ok(&up, pf_target).await, "the forward is closed");
    job_ok(&admin, "disableStaticNat", &[("ipaddressid", &snat_ip_id)]).await;
    assert!(!tcp_ok(&up, snat_target).await, "static NAT is closed");
    assert_eq!(
        seen_as(&web2_ns, upstream_7000).await,
        Some(IpAddr::V4(source_nat)),
        "web2 is back on the source NAT address"
    );
    job_ok(&admin, "deleteLoadBalancerRule", &[("id", &lb_id)]).await;
    assert!(!tcp_ok(&up, lb_target).await, "the balancer is closed");
    assert!(
        upstream_srv
            .peers()
            .iter()
            .all(|p| [snat_ip, source_nat].map(IpAddr::V4).contains(&p.ip())),
        "upstream saw only the VPC's addresses: {:?}",
        upstream_srv.peers()
    );
    // web1 and web2 still talk inside the tier.
    assert!(tcp_ok(&web1_ns, SocketAddr::from((web2_ip, 80))).await);
    assert!(tcp_ok(&web2_ns, SocketAddr::from((web1_ip, 80))).await);
    drop((srv1, srv2, upstream_srv));

    // Teardown through the API.
    for vm in [&web1, &web2] {
        job_ok(
            &admin,
            "destroyVirtualMachine",
            &[("id", &s(vm, "id")), ("expunge", "true")],
        )
        .await;
    }
    job_ok(&admin, "deleteNetwork", &[("id", &web_id)]).await;
    job_ok(&admin, "deleteVPC", &[("id", &vpc_id)]).await;
    e.finish().await;
}
