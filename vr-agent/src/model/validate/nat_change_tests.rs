//! A NAT list change checked in the rules it changes alone
//! ([`Router::with_port_forwards`], [`Router::with_static_nats`]) gives the
//! router, or the error, that checking the whole state gives.

use proptest::prelude::*;
use vpc_proto::v1 as pb;

use crate::model::{Router, Splice};
use crate::testing::sample_config;

/// The sample router with eight more public IPs, 203.0.113.20-27, free for
/// static NATs, and no NAT rule of its own.
fn base_config() -> pb::RouterConfig {
    let mut config = sample_config();
    for k in 20..28 {
        config.public_ips.push(pb::PublicIp {
            add: true,
            ip_address: format!("203.0.113.{k}"),
            prefix_length: 24,
            gateway: "203.0.113.1".into(),
            device_index: 1,
            ..Default::default()
        });
    }
    config.port_forwarding_rules.clear();
    config.static_nat_rules.clear();
    config
}

/// A forward the old list holds: public port 200 + 10 k of 203.0.113.11,
/// at most 4 ports wide, valid together with the others and the sample's
/// balancer (TCP 80).
fn held_forward(k: usize, width: u32, udp: bool) -> pb::PortForwardingRule {
    let start = 200 + 10 * k as u32;
    pb::PortForwardingRule {
        id: format!("pf-{k}"),
        public_ip: "203.0.113.11".into(),
        protocol: if udp {
            pb::Protocol::Udp
        } else {
            pb::Protocol::Tcp
        } as i32,
        public_start_port: start,
        public_end_port: start + width,
        private_ip: "10.1.1.7".into(),
        private_start_port: start,
        private_end_port: start + width,
        source_cidrs: vec![],
    }
}

/// Any forward, valid or not: public IPs held, not held, the source NAT
/// IP, the static NAT IP; ports that meet the held ones and the balancer;
/// private addresses inside a tier, outside, the tier's gateway.
fn any_forward() -> impl Strategy<Value = pb::PortForwardingRule> {
    (
        (0usize..6, 0u8..9, 75u32..300, 0u32..5),
        (0u32..3, 0usize..5, 0usize..3, 0u8..6),
    )
        .prop_map(
            |((ip, proto, start, width), (shift, private, sources, id))| {
                let ips = [
                    "203.0.113.11",
                    "203.0.113.11",
                    "203.0.113.10",
                    "203.0.113.21",
                    "203.0.113.99",
                    "203.0.113.20",
                ];
                let privates = ["10.1.1.7", "10.1.2.8", "10.1.2.9", "10.1.1.1", "10.9.9.9"];
                let protocol = match proto {
                    0..4 => pb::Protocol::Tcp as i32,
                    4..8 => pb::Protocol::Udp as i32,
                    _ => 0,
                };
                let private_start = match shift {
                    0 | 1 => start,
                    _ => start + 1000,
                };
                pb::PortForwardingRule {
                    id: if id == 0 {
                        String::new()
                    } else {
                        format!("pf-new-{id}")
                    },
                    public_ip: ips[ip].into(),
                    protocol,
                    public_start_port: start,
                    public_end_port: if width == 0 { 0 } else { start + width },
                    private_ip: privates[private].into(),
                    private_start_port: private_start,
                    private_end_port: if width == 0 { 0 } else { private_start + width },
                    source_cidrs: match sources {
                        0 => vec![],
                        1 => vec!["198.51.100.0/24".into()],
                        _ => vec!["198.51.100.0/25".into(), "198.51.100.128/25".into()],
                    },
                }
            },
        )
}

/// A static NAT the old list holds: 203.0.113.(20 + k) to 10.1.1.(20 + k).
fn held_nat(k: usize) -> pb::StaticNatRule {
    pb::StaticNatRule {
        id: format!("snat-{k}"),
        public_ip: format!("203.0.113.{}", 20 + k),
        private_ip: format!("10.1.1.{}", 20 + k),
    }
}

/// Any static NAT: free public IPs and taken ones (the source NAT IP, the
/// forwards' and balancer's 203.0.113.11, one not held), private
/// addresses mapped already or not, outside a tier.
fn any_nat() -> impl Strategy<Value = pb::StaticNatRule> {
    (0usize..12, 0usize..10, 0u8..4).prop_map(|(public, private, id)| pb::StaticNatRule {
        id: if id == 0 {
            String::new()
        } else {
            format!("snat-new-{id}")
        },
        public_ip: match public {
            0..8 => format!("203.0.113.{}", 20 + public),
            8 => "203.0.113.10".into(),
            9 => "203.0.113.11".into(),
            10 => "203.0.113.99".into(),
            _ => "203.0.113.12".into(),
        },
        private_ip: match private {
            0..8 => format!("10.1.1.{}", 20 + private),
            8 => "10.1.2.30".into(),
            _ => "10.9.9.9".into(),
        },
    })
}

/// `old` with `removed` rules from `at` (wrapped into range) replaced by
/// `inserted`.
fn spliced<T: Clone>(old: &[T], at: usize, removed: usize, inserted: &[T]) -> Vec<T> {
    let at = at % (old.len() + 1);
    let removed = removed.min(old.len() - at);
    let mut new = old.to_vec();
    new.splice(at..at + removed, inserted.iter().cloned());
    new
}

/// Runs `check` on 2,000 cases of `strategy` and asserts that it held for
/// each, and that at least a tenth of the cases were taken and a tenth
/// refused (so the comparison saw both kinds). `check` returns whether the
/// change was taken, `None` for a case whose old state is not valid.
fn compare_on<S: Strategy>(
    what: &str,
    strategy: S,
    check: impl Fn(S::Value) -> Result<Option<bool>, TestCaseError>,
) {
    let counts = std::cell::Cell::new([0usize; 2]);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&strategy, |value| {
            if let Some(taken) = check(value)? {
                let mut c = counts.get();
                c[usize::from(taken)] += 1;
                counts.set(c);
            }
            Ok(())
        })
        .unwrap();
    let [refused, taken] = counts.get();
    eprintln!("{what}: {taken} changes taken, {refused} refused, each as the whole check");
    let total = taken + refused;
    assert!(
        taken * 10 >= total && refused * 10 >= total,
        "{taken} / {refused}"
    );
}

#[test]
fn a_port_forward_change_checked_alone_gives_what_the_whole_check_gives() {
    let strategy = (
        proptest::collection::vec((0u32..4, any::<bool>()), 0..12),
        proptest::collection::vec(0usize..8, 0..3),
        0usize..16,
        0usize..4,
        proptest::collection::vec(any_forward(), 0..4),
    );
    compare_on(
        "port forwards",
        strategy,
        |(held, with_nats, at, removed, inserted)| {
            let mut config = base_config();
            config.port_forwarding_rules = held
                .iter()
                .enumerate()
                .map(|(k, &(width, udp))| held_forward(k, width, udp))
                .collect();
            config.static_nat_rules = with_nats.iter().copied().map(held_nat).collect();
            // Two static NATs of the same address make the old state invalid.
            let Ok(router) = Router::from_config(&config) else {
                return Ok(None);
            };
            let old = config.port_forwarding_rules.clone();
            let new = spliced(&old, at, removed, &inserted);
            let mut whole = config.clone();
            whole.port_forwarding_rules = new.clone();
            let expected = Router::from_config(&whole);
            let got = router.with_port_forwards(&old, &new);
            let splice = Splice::of(&old, &new);
            if let Ok((_, s)) = &got {
                prop_assert_eq!(*s, splice);
            }
            // A change taken is found clear without the whole check.
            if let Ok(next) = &expected {
                prop_assert!(super::nat::port_forwards_clear(
                    next,
                    splice.inserted_range()
                ));
            }
            let taken = expected.is_ok();
            prop_assert_eq!(got.map(|(r, _)| r), expected);
            Ok(Some(taken))
        },
    );
}

#[test]
fn a_static_nat_change_checked_alone_gives_what_the_whole_check_gives() {
    let strategy = (
        proptest::collection::vec(0usize..8, 0..8),
        0usize..10,
        0usize..4,
        proptest::collection::vec(any_nat(), 0..4),
        any::<bool>(),
    );
    compare_on(
        "static NATs",
        strategy,
        |(mut held, at, removed, inserted, forward_on_21)| {
            let mut config = base_config();
            held.sort_unstable();
            held.dedup();
            config.static_nat_rules = held.into_iter().map(held_nat).collect();
            config.port_forwarding_rules = vec![held_forward(0, 0, false)];
            if forward_on_21 {
                // A forward on an address a static NAT may come to.
                let mut forward = held_forward(1, 0, true);
                forward.public_ip = "203.0.113.21".into();
                config.port_forwarding_rules.push(forward);
            }
            let Ok(router) = Router::from_config(&config) else {
                return Ok(None);
            };
            let old = config.static_nat_rules.clone();
            let new = spliced(&old, at, removed, &inserted);
            let mut whole = config.clone();
            whole.static_nat_rules = new.clone();
            let expected = Router::from_config(&whole);
            let got = router.with_static_nats(&old, &new);
            if let Ok(next) = &expected {
                let splice = Splice::of(&old, &new);
                prop_assert!(super::nat::static_nats_clear(next, splice.inserted_range()));
            }
            let taken = expected.is_ok();
            prop_assert_eq!(got.map(|(r, _)| r), expected);
            Ok(Some(taken))
        },
    );
}

#[test]
fn a_clash_is_named_as_the_whole_check_names_it_and_a_move_is_one_rule() {
    let mut config = base_config();
    config.port_forwarding_rules = (0..3).map(|k| held_forward(k, 1, false)).collect();
    let router = Router::from_config(&config).unwrap();
    let old = config.port_forwarding_rules.clone();
    // A forward onto the balancer's port: refused, naming the balancer,
    // which comes after the forwards in request order.
    let mut clash = old.clone();
    clash[1].public_start_port = 80;
    clash[1].public_end_port = 0;
    clash[1].private_start_port = 80;
    clash[1].private_end_port = 0;
    let err = router.with_port_forwards(&old, &clash).unwrap_err();
    assert_eq!(err.field, "load_balancer_rules[0].public_ip", "{err}");
    assert!(err.message.ends_with("port_forwarding_rules[1]"), "{err}");
    // Two new forwards of one port: refused naming the later.
    let mut twice = old.clone();
    twice.push(held_forward(7, 0, false));
    twice.push(held_forward(7, 0, false));
    let err = router.with_port_forwards(&old, &twice).unwrap_err();
    assert_eq!(err.field, "port_forwarding_rules[4].public_ip", "{err}");
    // A forward pointed elsewhere: taken, the splice that one rule.
    let mut moved = old.clone();
    moved[2].private_ip = "10.1.2.9".into();
    let (next, splice) = router.with_port_forwards(&old, &moved).unwrap();
    assert_eq!(
        splice,
        Splice {
            at: 2,
            removed: 1,
            inserted: 1
        }
    );
    assert_eq!(next.port_forwards[2].private_ip.to_string(), "10.1.2.9");
}

#[test]
fn a_list_other_than_the_one_validated_is_checked_whole() {
    let mut config = base_config();
    config.port_forwarding_rules = (0..3).map(|k| held_forward(k, 0, false)).collect();
    config.static_nat_rules = vec![held_nat(0), held_nat(1)];
    let router = Router::from_config(&config).unwrap();
    let new: Vec<_> = (0..2).map(|k| held_forward(k, 1, true)).collect();
    let (next, splice) = router.with_port_forwards(&[], &new).unwrap();
    assert_eq!(splice, Splice::whole(0, 2));
    let mut whole = config.clone();
    whole.port_forwarding_rules = new;
    assert_eq!(next, Router::from_config(&whole).unwrap());
    let nats = vec![held_nat(3)];
    let (next, splice) = router.with_static_nats(&[], &nats).unwrap();
    assert_eq!(splice, Splice::whole(0, 1));
    whole.port_forwarding_rules = config.port_forwarding_rules.clone();
    whole.static_nat_rules = nats;
    assert_eq!(next, Router::from_config(&whole).unwrap());
}
