//! ACL hit counters, proven with real packets: datagrams from one lab tier
//! to another hit an allow item and a deny item, and GetState's counts of
//! those items move by exactly what was sent.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use vpc_integration::run_in_netns;
use vpc_proto::v1 as pb;
use vr_agent::testing::item;

use crate::fixture::{RouterLab, addr};

/// UDP payload per datagram; the kernel counts the IP packet: 20 bytes of
/// IPv4 header and 8 of UDP header more.
const PAYLOAD: usize = 100;
const PACKET: u64 = PAYLOAD as u64 + 28;

/// Sends `count` datagrams to `target`, each from a new socket (a new
/// source port, so a new flow that walks the ACL).
fn send(ns: &vpc_integration::Netns, target: SocketAddr, count: usize) {
    run_in_netns(ns, move || {
        for _ in 0..count {
            let socket = UdpSocket::bind("0.0.0.0:0").expect("bind");
            socket.send_to(&[7u8; PAYLOAD], target).expect("send");
        }
        Ok(())
    })
    .unwrap();
}

/// The counts (packets, bytes) of item `number` of eth`index`'s ingress
/// ACL, (0, 0) when it has none.
fn counts(state: &pb::GetStateResponse, index: u32, number: u32) -> (u64, u64) {
    state
        .acl_counters
        .iter()
        .find(|c| {
            c.device_index == index
                && c.number == number
                && c.traffic_type == pb::TrafficType::Ingress as i32
        })
        .map_or((0, 0), |c| (c.packets, c.bytes))
}

fn counters_only(r: &RouterLab) -> pb::GetStateResponse {
    r.call(|mut c| async move {
        c.get_state(pb::GetStateRequest {
            acl_counters_only: true,
            ..Default::default()
        })
        .await
    })
    .expect("GetState")
}

/// Polls until item `number` reaches `want` (datagrams may sit a moment in
/// a neighbour queue), then returns what GetState said.
fn wait_for(r: &RouterLab, index: u32, number: u32, want: (u64, u64)) -> (u64, u64) {
    let started = Instant::now();
    loop {
        let got = counts(&counters_only(r), index, number);
        if got == want || started.elapsed() > Duration::from_secs(3) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn datagrams_between_tiers_move_the_counters_of_the_items_that_decided_them() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut r = RouterLab::start("acl_counters");
    let mut config = r.base_config();
    config.network_acls.clear();
    r.apply_config(config);
    // vm2 (10.1.2.5, tier eth3) sends to vm1 (10.1.1.5, tier eth2).
    let with_id = |mut i: pb::AclItem, id: &str| {
        i.id = id.into();
        i
    };
    let deny = with_id(
        item(1, Deny, Ingress, Udp, &["10.1.2.0/24"], Some((7001, 7001))),
        "deny-7001",
    );
    let allow = with_id(
        item(2, Allow, Ingress, Udp, &["10.1.2.0/24"], Some((7000, 7000))),
        "allow-7000",
    );
    r.set_acl(2, vec![deny.clone(), allow.clone()]);
    assert_eq!(counts(&counters_only(&r), 2, 1), (0, 0));
    assert_eq!(counts(&counters_only(&r), 2, 2), (0, 0));

    send(&r.vm2, addr("10.1.1.5:7000"), 5);
    send(&r.vm2, addr("10.1.1.5:7001"), 3);
    assert_eq!(wait_for(&r, 2, 2, (5, 5 * PACKET)), (5, 5 * PACKET));
    assert_eq!(wait_for(&r, 2, 1, (3, 3 * PACKET)), (3, 3 * PACKET));
    // The full GetState carries the same counts, with the list's id.
    let full = r.state();
    assert_eq!(counts(&full, 2, 2), (5, 5 * PACKET));
    assert!(
        full.acl_counters.iter().all(|c| c.device_index == 2),
        "{:?}",
        full.acl_counters
    );

    // A third item that changes no layer: the sets change by one element
    // and the two items keep their counts.
    let other = with_id(
        item(3, Allow, Ingress, Udp, &["10.1.2.0/24"], Some((7002, 7002))),
        "allow-7002",
    );
    r.set_acl(2, vec![deny.clone(), allow.clone(), other.clone()]);
    let after = counters_only(&r);
    assert_eq!(counts(&after, 2, 2), (5, 5 * PACKET), "{after:?}");
    assert_eq!(counts(&after, 2, 1), (3, 3 * PACKET), "{after:?}");
    send(&r.vm2, addr("10.1.1.5:7002"), 2);
    assert_eq!(wait_for(&r, 2, 3, (2, 2 * PACKET)), (2, 2 * PACKET));
    assert_eq!(counts(&counters_only(&r), 2, 2), (5, 5 * PACKET));

    // Renumbered (moved after the allows): the same item keeps its count
    // under its new number; its elements were replaced.
    let mut moved = deny.clone();
    moved.number = 5;
    r.set_acl(2, vec![allow.clone(), other.clone(), moved.clone()]);
    let state = counters_only(&r);
    assert_eq!(counts(&state, 2, 5), (3, 3 * PACKET), "{state:?}");
    assert_eq!(counts(&state, 2, 1), (0, 0), "{state:?}");
    assert!(
        state
            .acl_counters
            .iter()
            .any(|c| c.number == 5 && c.item_id == "deny-7001"),
        "{state:?}"
    );

    // The added item and the renumbered one were element changes, made
    // in one netlink batch each.
    let log = r.agent_log();
    assert!(log.matches("nft_path=netlink").count() >= 2, "{log}");

    // A deny over the allows from one address adds a layer: the chain and
    // its sets are rebuilt, and every item that stays keeps its count.
    let over = with_id(
        item(4, Deny, Ingress, Udp, &["10.1.2.6/32"], Some((7000, 7002))),
        "deny-vm3",
    );
    let netlink = |log: &str| log.matches("nft_path=netlink").count();
    let before = netlink(&r.agent_log());
    r.set_acl(2, vec![allow.clone(), other.clone(), over, moved]);
    // The rebuilt chain went over netlink too (its old sets' counts read
    // with one dump each).
    let log = r.agent_log();
    assert_eq!(netlink(&log), before + 1, "{log}");
    let state = counters_only(&r);
    assert_eq!(counts(&state, 2, 2), (5, 5 * PACKET), "{state:?}");
    assert_eq!(counts(&state, 2, 3), (2, 2 * PACKET), "{state:?}");
    assert_eq!(counts(&state, 2, 5), (3, 3 * PACKET), "{state:?}");
    // vm3 to 7000: item 2 (an allow numbered before the deny) decides.
    send(&r.vm3, addr("10.1.1.5:7000"), 4);
    assert_eq!(wait_for(&r, 2, 2, (9, 9 * PACKET)), (9, 9 * PACKET));

    // A restarted agent replaces the whole table: the counts come along.
    r.kill_agent();
    r.spawn_agent();
    let state = counters_only(&r);
    assert_eq!(counts(&state, 2, 2), (9, 9 * PACKET), "{state:?}");
    assert_eq!(counts(&state, 2, 3), (2, 2 * PACKET), "{state:?}");
    assert_eq!(counts(&state, 2, 5), (3, 3 * PACKET), "{state:?}");
}
