//! The reconcile loop against the planned table, and reading the kernel
//! without the command lock: a rule inserted by hand is gone after the next
//! tick, and a command is not held up by a slow listing of the table.

use std::time::{Duration, Instant};

use vpc_proto::v1 as pb;
use vr_agent::testing::item;

use crate::fixture::RouterLab;

fn forward_chain(r: &RouterLab) -> String {
    r.lab
        .exec(
            &r.r,
            &["nft", "list", "chain", "inet", "vpc", "filter_forward"],
        )
        .unwrap()
        .stdout
}

#[test]
fn a_rule_inserted_by_hand_is_removed_at_the_next_reconcile() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut r = RouterLab::start("reconcile_hand");
    r.apply_config(r.base_config());
    r.set_acl(
        2,
        vec![item(
            1,
            Allow,
            Ingress,
            Tcp,
            &["10.1.2.0/24"],
            Some((80, 80)),
        )],
    );
    let drift_before = r.state().repairs.unwrap_or_default().drift_found;
    r.lab
        .exec(
            &r.r,
            &[
                "nft",
                "insert",
                "rule",
                "inet",
                "vpc",
                "filter_forward",
                "meta",
                "l4proto",
                "tcp",
                "accept",
                "comment",
                "\"by-hand\"",
            ],
        )
        .unwrap();
    assert!(forward_chain(&r).contains("by-hand"), "inserted");
    let started = Instant::now();
    while forward_chain(&r).contains("by-hand") {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the rule is still there:\n{}",
            forward_chain(&r)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let repairs = r.state().repairs.unwrap_or_default();
    assert!(repairs.drift_found > drift_before, "{repairs:?}");
    assert!(
        repairs
            .last_repaired
            .iter()
            .any(|l| l.contains("filter_forward")),
        "{repairs:?}"
    );
}

#[test]
fn a_command_is_not_held_up_by_a_slow_listing_of_the_table() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut r = RouterLab::start("reconcile_slow");
    // nft that takes 3 s to list (a very large table), and applies at once.
    let wrapper = r.lab.dir().join("slow-nft");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\ncase \"$*\" in *list*) sleep 3;; esac\nexec nft \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let nft = wrapper.display().to_string();
    r.restart_with_flags(&["--nft", &nft]);
    r.apply_config(r.base_config());

    // A GetState that lists the table (3 s), and the reconcile loop's own
    // listings every half second: neither holds the lock while nft runs.
    let socket = r.socket.clone();
    let reading = std::thread::spawn(move || {
        let started = Instant::now();
        crate::fixture::call_at(&socket, |mut c| async move {
            c.get_state(pb::GetStateRequest::default()).await
        })
        .expect("GetState");
        started.elapsed()
    });
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    r.set_acl(
        2,
        vec![item(
            1,
            Allow,
            Ingress,
            Tcp,
            &["10.1.2.0/24"],
            Some((80, 80)),
        )],
    );
    let took = started.elapsed();
    let read_took = reading.join().unwrap();
    assert!(
        read_took >= Duration::from_secs(3),
        "the listing was slow: {read_took:?}"
    );
    assert!(
        took < Duration::from_secs(1),
        "SetNetworkAcl waited {took:?} behind a listing"
    );
}
