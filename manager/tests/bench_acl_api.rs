//! One ACL change through the API, in milliseconds (issue 17's "createNetworkACL
//! → packets affected"): a benchmark run by `scripts/bench/acl_api.sh`, not by
//! the suite.
//!
//! A VPC with two tiers and a VM in each; tier B's list holds `ACL_API_ITEMS`
//! items (default "1000,10000": the list grows between the two runs), written
//! straight into the database and then sent to the router once. VM A sends a
//! UDP datagram to VM B every millisecond, each from a new socket (so a new
//! flow: conntrack never lets a datagram through on an earlier one's entry).
//! Each round: `createNetworkACL` of a Deny for that port as item 1, timed
//! from the request until the last datagram B receives; then
//! `deleteNetworkACL` of it, timed until the first datagram B receives again.
//! Also printed: the time until the API reports each job done (polled every
//! 5 ms). Medians of `ACL_API_ROUNDS` (10) rounds.
//!
//! With `RUST_LOG` set (e.g.
//! `vpc_manager::provision::change=debug,vpc_manager::server=info`) the
//! manager's log goes to stderr: each request's time, each job's wait and
//! body, and the change protocol's phases (VPC lock, write, state load,
//! push, applied generation).

mod support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::api::{Client, job_ok};
use support::e2e::E2e;
use vpc_integration::Netns;
use vpc_manager::settings::AgentTransport;
use vpc_manager::store::acl;

const PORT: u16 = 7000;

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// Arrival times of the datagrams VM B receives on [`PORT`].
struct Receiver {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start(ns: &Netns, addr: Ipv4Addr) -> Receiver {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let socket = vpc_integration::probe::run_in_netns(ns, move || {
            let s = UdpSocket::bind(SocketAddr::from((addr, PORT))).expect("bind");
            s.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            Ok(s)
        })
        .expect("receiver socket");
        let (a, st) = (arrivals.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !st.load(Ordering::Relaxed) {
                if socket.recv_from(&mut buf).is_ok() {
                    a.lock().unwrap().push(Instant::now());
                }
            }
        });
        Receiver { arrivals, stop }
    }

    fn last_after(&self, t: Instant) -> Option<Instant> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|a| **a >= t)
            .copied()
    }

    fn first_after(&self, t: Instant) -> Option<Instant> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .find(|a| **a >= t)
            .copied()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// VM A's sender: a datagram every millisecond, each from a new socket.
struct Sender {
    stop: Arc<AtomicBool>,
}

impl Sender {
    fn start(ns: &Netns, to: Ipv4Addr) -> Sender {
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let ns = ns.clone();
        std::thread::spawn(move || {
            let _ = vpc_integration::probe::run_in_netns(&ns, move || {
                while !st.load(Ordering::Relaxed) {
                    if let Ok(s) = UdpSocket::bind("0.0.0.0:0") {
                        let _ = s.send_to(b"acl-bench", SocketAddr::from((to, PORT)));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            });
        });
        Sender { stop }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Submits an async command; returns (job id, when it was sent).
async fn submit(admin: &Client, command: &str, params: &[(&str, &str)]) -> (String, Instant) {
    let sent = Instant::now();
    let started = admin.ok(command, params).await;
    let job = started["jobid"].as_str().expect("jobid").to_string();
    (job, sent)
}

/// Polls the job every 5 ms until it is done; returns its result and when
/// the API first reported it done.
async fn done(admin: &Client, job: &str) -> (Value, Instant) {
    loop {
        let j = admin.ok("queryAsyncJobResult", &[("jobid", job)]).await;
        if j["jobstatus"] != 0 {
            assert_eq!(j["jobstatus"], 1, "{j}");
            return (j["jobresult"].clone(), Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The filler items: mostly allows of TCP port ranges from distinct /24s,
/// one in ten a deny, some ICMP and protocol-number items; none matches the
/// benchmark's UDP datagrams.
fn filler(acl_id: i64, number: i64, i: usize) -> acl::NewAclItem {
    let (b, c) = ((i / 250) % 250, i % 250);
    let mut item = acl::NewAclItem {
        acl_id,
        number: Some(number),
        action: if i % 10 == 9 { "Deny" } else { "Allow" }.into(),
        traffic_type: "Ingress".into(),
        protocol: "tcp".into(),
        cidrs: vec![format!("172.{}.{b}.{c}/32", 16 + (i / 62_500) % 16)],
        ..Default::default()
    };
    match i % 20 {
        7 => {
            item.protocol = "icmp".into();
            item.icmp_type = Some(8);
            item.icmp_code = Some(0);
        }
        13 => item.protocol = "47".into(),
        _ => {
            let port = 1024 + (i % 5000) as i64;
            item.start_port = Some(port);
            item.end_port = Some(port + (i % 3) as i64);
        }
    }
    item
}

/// Writes items numbered `from..from+count` into the list, as Active.
async fn write_items(e: &E2e, acl_id: i64, from: i64, count: usize, offset: usize) {
    let mut tx = e.m.app.db.begin().await.unwrap();
    for i in 0..count {
        let item = acl::create_item(&mut tx, filler(acl_id, from + i as i64, offset + i))
            .await
            .unwrap();
        acl::set_item_state(&mut tx, item.id, acl::ItemState::Active)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench/acl_api.sh"]
async fn one_acl_change_through_the_api() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let sizes = env_list("ACL_API_ITEMS", "1000,10000");
    let rounds = env_list("ACL_API_ROUNDS", "10")[0];
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();
    let vpc = e.vpc(&admin, "bench", "10.60.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap();
    let list = job_ok(
        &admin,
        "createNetworkACLList",
        &[("name", "b"), ("description", "b"), ("vpcid", vpc_id)],
    )
    .await["networkacllist"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let list_id = acl::get_by_uuid(&e.m.app.db, list.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    // What lets the datagrams through: the list's last item.
    let last = 20_000.to_string();
    job_ok(
        &admin,
        "createNetworkACL",
        &[
            ("aclid", &list),
            ("number", &last),
            ("protocol", "udp"),
            ("startport", &PORT.to_string()),
            ("endport", &PORT.to_string()),
            ("cidrlist", "10.60.1.0/24"),
            ("action", "Allow"),
            ("traffictype", "Ingress"),
        ],
    )
    .await;
    let tier_a = e.tier(&admin, vpc_id, "a", "10.60.1.1", None, false).await;
    let tier_b = e
        .tier(&admin, vpc_id, "b", "10.60.2.1", Some(&list), false)
        .await;
    let vm_a = e.vm(&admin, tier_a["id"].as_str().unwrap(), "a").await;
    let vm_b = e.vm(&admin, tier_b["id"].as_str().unwrap(), "b").await;
    let _ = e.lease(&vm_a).await;
    let addr_b = e.lease(&vm_b).await;
    let receiver = Receiver::start(&e.vm_ns(&vm_b), addr_b);
    let _sender = Sender::start(&e.vm_ns(&vm_a), addr_b);

    let mut written = 0usize;
    println!(
        "| items in the list | deny: request → last datagram | deny: request → job done | allow again: request → first datagram | allow again: request → job done | the router's state read from the database |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for size in sizes {
        // The list holds `size` items while the deny is in: the fillers,
        // the allow and the deny (network.acl.max.items is 10,000).
        let fillers = size.saturating_sub(2);
        if fillers > written {
            write_items(&e, list_id, 2 + written as i64, fillers - written, written).await;
            written = fillers;
        }
        // What the change protocol reads before every push: the router's
        // whole state.
        let vpc_row = vpc_manager::store::vpc::get_by_uuid(&e.m.app.db, vpc_id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let mut loads = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            vpc_manager::provision::state::load(&e.m.app.db, vpc_row.id)
                .await
                .unwrap()
                .unwrap();
            loads.push(ms(t.elapsed()));
        }
        let load = median(loads);
        let mut block = Vec::new();
        let mut block_job = Vec::new();
        let mut open = Vec::new();
        let mut open_job = Vec::new();
        // Round 0 sends the rows written straight to the database: not counted.
        for round in 0..=rounds {
            let flowing = Instant::now();
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(
                receiver.first_after(flowing).is_some(),
                "datagrams flow before the deny (round {round}, {size} items)"
            );
            let (job, sent) = submit(
                &admin,
                "createNetworkACL",
                &[
                    ("aclid", &list),
                    ("number", "1"),
                    ("protocol", "udp"),
                    ("startport", &PORT.to_string()),
                    ("endport", &PORT.to_string()),
                    ("cidrlist", "10.60.1.0/24"),
                    ("action", "Deny"),
                    ("traffictype", "Ingress"),
                ],
            )
            .await;
            let (result, job_done) = done(&admin, &job).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
            let quiet_from = Instant::now() - Duration::from_millis(300);
            assert!(
                receiver.first_after(quiet_from).is_none(),
                "the deny stops the datagrams (round {round}, {size} items)"
            );
            let stopped = receiver.last_after(sent).unwrap_or(sent);
            let rule = result["networkacl"]["id"].as_str().unwrap().to_string();
            let (job, sent_open) = submit(&admin, "deleteNetworkACL", &[("id", &rule)]).await;
            let (_, open_done) = done(&admin, &job).await;
            let started = Instant::now();
            let again = loop {
                if let Some(t) = receiver.first_after(sent_open) {
                    break t;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "datagrams flow again after the deny is deleted ({size} items)"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            if round > 0 {
                block.push(ms(stopped.saturating_duration_since(sent)));
                block_job.push(ms(job_done - sent));
                open.push(ms(again - sent_open));
                open_job.push(ms(open_done - sent_open));
            }
        }
        println!(
            "| {size} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {load:.1} ms |",
            median(block),
            median(block_job),
            median(open),
            median(open_job)
        );
    }
    drop(receiver);
    e.finish().await;
}
