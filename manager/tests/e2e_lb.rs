//! End to end, with real packets (issue 15): a leastconn load balancer made
//! through the API on the netns driver is served by the router's HAProxy —
//! with one connection held open to one VM, every new connection from
//! upstream goes to the other — and deleting the rule closes it again.

mod support;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use support::api::{id, job_ok};
use support::e2e::{E2e, blocking, tcp_ok};
use vpc_integration::{Netns, TcpEchoServer, run_in_netns};
use vpc_manager::settings::AgentTransport;

fn listen(ns: &Netns, port: u16) -> TcpEchoServer {
    TcpEchoServer::start(ns, SocketAddr::from(([0, 0, 0, 0], port))).expect("listener")
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

/// A connection from `ns` to `to`, held open after its greeting.
fn hold(ns: &Netns, to: SocketAddr) -> TcpStream {
    run_in_netns(ns, move || {
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut greeting = [0u8; 64];
        let n = stream.read(&mut greeting).expect("greeting");
        assert!(n > 0, "the backend greets");
        Ok(stream)
    })
    .expect("held connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leastconn_rule_sends_new_connections_to_the_idle_vm() {
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();
    let vpc = e.vpc(&admin, "lbalgo", "10.81.0.0/16").await;
    let vpc_id = s(&vpc, "id");
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
        .tier(&admin, &vpc_id, "web", "10.81.1.1", Some(&acl), true)
        .await;
    let web_id = s(&web, "id");
    let web1 = e.vm(&admin, &web_id, "web1").await;
    let web2 = e.vm(&admin, &web_id, "web2").await;
    e.lease(&web1).await;
    e.lease(&web2).await;
    let (a, b) = (e.vm_ns(&web1), e.vm_ns(&web2));
    let (srv1, srv2) = blocking(move || (listen(&a, 80), listen(&b, 80))).await;

    let ip = job_ok(&admin, "associateIpAddress", &[("vpcid", &vpc_id)]).await["ipaddress"].clone();
    let lb_ip: Ipv4Addr = s(&ip, "ipaddress").parse().unwrap();
    let lb = job_ok(
        &admin,
        "createLoadBalancerRule",
        &[
            ("publicipid", &s(&ip, "id")),
            ("name", "web"),
            ("algorithm", "leastconn"),
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

    let target = SocketAddr::from((lb_ip, 80));
    let up = e.upstream();
    let held = {
        let up = up.clone();
        blocking(move || hold(&up, target)).await
    };
    let held_on_web1 = srv1.peers().len() == 1;
    assert_eq!(srv1.peers().len() + srv2.peers().len(), 1);
    for _ in 0..4 {
        let up = up.clone();
        let seen = blocking(move || {
            let r = vpc_integration::tcp_probe(&up, target, Duration::from_secs(2));
            std::thread::sleep(Duration::from_millis(100));
            r.ok().map(|r| r.seen_as.ip())
        })
        .await;
        assert!(
            seen.is_some_and(|ip| ip != IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            "every balanced connection gets through"
        );
    }
    let (on1, on2) = (srv1.peers().len(), srv2.peers().len());
    if held_on_web1 {
        assert_eq!((on1, on2), (1, 4), "new connections avoid the busy VM");
    } else {
        assert_eq!((on1, on2), (4, 1), "new connections avoid the busy VM");
    }
    eprintln!("leastconn: web1 {on1}, web2 {on2} (one held)");
    drop(held);

    job_ok(&admin, "deleteLoadBalancerRule", &[("id", &lb_id)]).await;
    assert!(!tcp_ok(&up, target).await, "the balancer is closed");
    drop((srv1, srv2));
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
