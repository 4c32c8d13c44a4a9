//! The ACL compiler at scale, on every generator of `testing::acls`: the
//! planned lookups decide sampled packets as first match over the list, the
//! elements stay within the bound and in an order the kernel takes, and (in
//! a release build) planning 10,000 items takes at most 100 ms.

use std::time::{Duration, Instant};

use vpc_proto::v1 as pb;
use vr_agent::model::{Action, Direction, InvalidKind, Limits, Router};
use vr_agent::plan::acl::eval::{Packet, first_match, walk};
use vr_agent::plan::acl::{Compiled, ELEMENTS_PER_ENTRY, entry_boxes};
use vr_agent::testing::acls::{Generator, Rng, bench_allow};
use vr_agent::testing::sample_config;
use vr_agent::update::{Change, apply};

const ITEMS: u32 = 10_000;

fn config_with(items: Vec<pb::AclItem>) -> pb::RouterConfig {
    let mut config = sample_config();
    config.network_acls[0].items = items;
    config
}

/// Packets drawn inside items' boxes (corners and middles), so that they
/// hit items, plus some anywhere.
fn packets(router: &Router, rng: &mut Rng, count: usize) -> Vec<Packet> {
    let rules: Vec<_> = router.acls[&2].rules.iter().collect();
    (0..count)
        .map(|_| {
            let rule = rules[rng.range(0, rules.len() as u32 - 1) as usize];
            let boxes = entry_boxes(rule);
            let (_, space, _) = boxes[rng.range(0, boxes.len() as u32 - 1) as usize];
            let pick = |rng: &mut Rng, (lo, hi): (u128, u128)| match rng.range(0, 3) {
                0 => lo,
                1 => hi,
                2 => lo + (hi - lo) / 2,
                _ => lo.saturating_sub(1),
            };
            let family_proto = pick(rng, space[1]);
            let f1 = pick(rng, space[2]) as u16;
            let f2 = pick(rng, space[3]) as u8;
            Packet {
                v6: family_proto >= 256,
                addr: pick(rng, space[0]),
                protocol: (family_proto % 256) as u8,
                port: f1,
                icmp: (f1 as u8, f2),
            }
        })
        .collect()
}

fn kernel_order_ok(compiled: &Compiled) -> bool {
    compiled.lookups.iter().all(|l| {
        l.elements.iter().enumerate().all(|(i, e)| {
            let corners = [[e[0].0, e[1].0, e[2].0], [e[0].1, e[1].1, e[2].1]];
            l.elements[..i].iter().all(|p| {
                corners
                    .iter()
                    .all(|c| !p.iter().zip(c).all(|(s, v)| s.0 <= *v && *v <= s.1))
            })
        })
    })
}

#[test]
fn every_generator_plans_ten_thousand_items_within_the_bound_and_decides_as_first_match() {
    let mut report = Vec::new();
    for generator in Generator::ALL {
        let mut items = generator.items(ITEMS, 7);
        items.push(bench_allow(ITEMS + 1));
        let config = config_with(items);
        let router = Router::from_config(&config).expect("every generator fits the bound");
        let acl = &router.acls[&2];
        for direction in [Direction::Ingress, Direction::Egress] {
            let compiled = acl.compiled(direction);
            let entries: usize = acl.rules(direction).map(|r| r.cidrs.len()).sum();
            assert!(
                compiled.elements() <= ELEMENTS_PER_ENTRY * entries,
                "{}: {} elements for {entries} entries",
                generator.name(),
                compiled.elements()
            );
            assert!(kernel_order_ok(compiled), "{}", generator.name());
        }
        let mut rng = Rng::new(11);
        for direction in [Direction::Ingress, Direction::Egress] {
            let rules: Vec<_> = acl.rules(direction).collect();
            if rules.is_empty() {
                continue;
            }
            for p in packets(&router, &mut rng, 500) {
                assert_eq!(
                    walk(acl.compiled(direction), &p),
                    first_match(&rules, &p),
                    "{} {direction:?} {p:?}",
                    generator.name()
                );
            }
        }
        report.push(format!(
            "{}: {} layers, {} lookups, {} elements",
            generator.name(),
            acl.ingress.layers,
            acl.ingress.lookups.len(),
            acl.ingress.elements()
        ));
    }
    println!("{}", report.join("\n"));
}

#[test]
fn the_benchmark_traffic_is_allowed_by_the_last_item_behind_every_layer_it_needs() {
    // UDP from 10.1.2.5 to 5201: no generated item holds it, the last one
    // allows it; in the adversarial list it is looked up in the last layer.
    let packet = Packet {
        v6: false,
        addr: u32::from(std::net::Ipv4Addr::new(10, 1, 2, 5)) as u128,
        protocol: 17,
        port: 5201,
        icmp: (0, 0),
    };
    for generator in Generator::TRAFFIC {
        let mut items = generator.items(ITEMS, 7);
        items.push(bench_allow(ITEMS + 1));
        let router = Router::from_config(&config_with(items)).expect("valid");
        let acl = &router.acls[&2];
        let rules: Vec<_> = acl.rules(Direction::Ingress).collect();
        let first = rules
            .iter()
            .find(|r| first_match(&[**r], &packet).is_some())
            .expect("the last item matches");
        assert_eq!(first.number, ITEMS + 1, "{}", generator.name());
        assert_eq!(walk(&acl.ingress, &packet), Some(Action::Allow));
    }
    let mut items = Generator::Adversarial.items(ITEMS, 7);
    items.push(bench_allow(ITEMS + 1));
    let router = Router::from_config(&config_with(items)).expect("valid");
    let last = router.acls[&2].ingress.lookups.last().expect("lookups");
    assert_eq!(router.acls[&2].ingress.layers, 8);
    assert_eq!((last.layer, last.action), (7, Action::Allow));
}

#[test]
fn a_list_over_the_element_bound_is_refused_naming_its_items_and_the_state_stays() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    use vr_agent::testing::item;
    let config = sample_config();
    let router = Router::from_config(&config).expect("valid");
    // ICMP type 0 code 0 from 10.1.0.0/16 is placed first (wider), then any
    // ICMP from 10.1.5.0/24: that box's low corner (type 0, code 0) lies in
    // the first, so it is cut into two pieces, three elements for two
    // entries, past a bound of one per entry.
    let mut acl = config.network_acls[0].clone();
    acl.items = vec![
        {
            let mut it = item(1, Allow, Ingress, Icmp, &["10.1.0.0/16"], None);
            it.icmp_type = Some(0);
            it.icmp_code = Some(0);
            it
        },
        item(2, Allow, Ingress, Icmp, &["10.1.5.0/24"], None),
    ];
    let tight = Limits {
        acl_elements_per_entry: 1,
        ..Limits::default()
    };
    let err = apply(
        &config,
        &router,
        Change::SetNetworkAcl(Some(acl.clone())),
        &tight,
    )
    .expect_err("over the bound");
    assert_eq!(err.kind, InvalidKind::Argument);
    assert_eq!(err.field, "acl.items");
    assert!(err.message.contains("items 2"), "{err}");
    assert!(err.message.contains("more than 2 set elements"), "{err}");
    // Under the default bound the same list is fine.
    apply(
        &config,
        &router,
        Change::SetNetworkAcl(Some(acl)),
        &Limits::default(),
    )
    .expect("fits the default bound");
}

/// CPU time of this thread: what planning costs, apart from the time the
/// thread waits for a core on a busy machine (the 2-core test VM often runs
/// several builds beside the tests).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec that we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn planning_ten_thousand_items_takes_at_most_100_ms_in_a_release_build() {
    let mut lines = Vec::new();
    for generator in Generator::ALL {
        let mut items = generator.items(ITEMS, 7);
        items.push(bench_allow(ITEMS + 1));
        let config = config_with(items);
        let router = Router::from_config(&config).expect("valid");
        let acl = config.network_acls[0].clone();
        let mut samples: Vec<(Duration, Duration)> = (0..5)
            .map(|_| {
                let (wall, cpu) = (Instant::now(), thread_cpu());
                // What an ACL change costs before nft runs: validate and
                // compile the list, plan the table, render the script.
                let next = router.with_acl(&acl, ELEMENTS_PER_ENTRY).expect("valid");
                let ruleset = vr_agent::plan::nft::plan(&next, &Default::default());
                std::hint::black_box(ruleset.render_full());
                (thread_cpu() - cpu, wall.elapsed())
            })
            .collect();
        samples.sort();
        let (cpu, wall) = samples[samples.len() / 2];
        lines.push(format!(
            "{}: {:.1} ms CPU ({:.1} ms wall)",
            generator.name(),
            cpu.as_secs_f64() * 1e3,
            wall.as_secs_f64() * 1e3
        ));
        if !cfg!(debug_assertions) {
            assert!(
                cpu <= Duration::from_millis(100),
                "{}: {cpu:?}",
                generator.name()
            );
        }
    }
    println!(
        "validate, compile, plan and render 10,000 items, median of 5:\n{}",
        lines.join("\n")
    );
}
