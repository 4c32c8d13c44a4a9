//! ACL item generators shared by the planner tests and the benchmark, each
//! deterministic for a seed.
//!
//! Every generated item stays clear of the benchmark's traffic (UDP from
//! 10.1.2.0/24 to port 5201): sources are drawn from 172.16.0.0/12,
//! 192.168.0.0/16 and 10.128.0.0/9, and the few items over 0.0.0.0/0 match
//! TCP, ICMP or other protocols only. A list can then end with
//! [`bench_allow`], which lets the traffic in from the last layer, so a
//! benchmark packet walks every lookup of the list before it is accepted.

use vpc_proto::v1 as pb;

use super::item;

/// A small deterministic generator (splitmix64): no dependency, the same
/// sequence on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % (u64::from(hi - lo) + 1)) as u32
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.range(0, 99) < percent
    }
}

/// The generators the tests and the benchmark run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generator {
    /// Allow items only: overlapping CIDRs, ports, ICMP, protocol numbers.
    OneAction,
    /// Allow lists with about 10 % denies, overlapping CIDRs of different
    /// prefix lengths, port ranges, ICMP types, protocol numbers, both
    /// directions.
    Realistic,
    /// Alternating allow and deny, each item nested in the one before with
    /// a wider port range, in groups of eight: every group is a chain of
    /// eight overlapping items of changing action (eight layers), and every
    /// item starts a new run of equal actions.
    Adversarial,
    /// Alternating actions where every item overlaps every other one and
    /// none holds another (one /12, TCP port ranges sliding by one): one
    /// layer per item, the longest chain there is. For planning time; no
    /// list should look like this.
    Chain,
    /// One-port items over wide prefixes beside all-port items over narrow
    /// prefixes inside them, one action (the shape that made a million
    /// disjoint pieces). For planning time and element counts.
    Crossing,
}

impl Generator {
    /// The generators the benchmark measures traffic with.
    pub const TRAFFIC: [Generator; 3] = [
        Generator::OneAction,
        Generator::Realistic,
        Generator::Adversarial,
    ];
    /// Every generator, for planning bounds.
    pub const ALL: [Generator; 5] = [
        Generator::OneAction,
        Generator::Realistic,
        Generator::Adversarial,
        Generator::Chain,
        Generator::Crossing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Generator::OneAction => "one action",
            Generator::Realistic => "realistic mix",
            Generator::Adversarial => "adversarial (alternating, nested)",
            Generator::Chain => "chain (every item overlaps every other)",
            Generator::Crossing => "crossing (one port /8s over all-port /24s)",
        }
    }

    /// `n` items numbered from 1.
    pub fn items(self, n: u32, seed: u64) -> Vec<pb::AclItem> {
        let mut rng = Rng::new(seed ^ ((self as u64) << 32));
        (1..=n)
            .map(|number| match self {
                Generator::OneAction => one_action(&mut rng, number),
                Generator::Realistic => realistic(&mut rng, number),
                Generator::Adversarial => adversarial(number),
                Generator::Chain => chain(number),
                Generator::Crossing => crossing(number, n),
            })
            .collect()
    }
}

/// The benchmark's last item: UDP 5201 allowed from anywhere. It overlaps
/// every earlier deny of UDP 5201 (from elsewhere), so it lands in the last
/// layer that needs it, and the benchmark's traffic (from 10.1.2.0/24, which
/// no generated item holds) is accepted by it alone.
pub fn bench_allow(number: u32) -> pb::AclItem {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    item(
        number,
        Allow,
        Ingress,
        Udp,
        &["0.0.0.0/0"],
        Some((5201, 5201)),
    )
}

/// A random prefix of length `len` inside one of the generators' spaces.
fn prefix(rng: &mut Rng, len: u32) -> String {
    let (base, base_len): (u32, u32) = match rng.range(0, 2) {
        0 => (0xac10_0000, 12), // 172.16.0.0/12
        1 => (0xc0a8_0000, 16), // 192.168.0.0/16
        _ => (0x0a80_0000, 9),  // 10.128.0.0/9
    };
    let len = len.max(base_len).min(32);
    let host_bits = 32 - base_len;
    let offset = (rng.next_u64() as u32) & ((1u64 << host_bits) - 1) as u32;
    let addr = base | offset;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    format!("{}/{len}", std::net::Ipv4Addr::from(addr & mask))
}

const WELL_KNOWN: [u32; 8] = [22, 25, 53, 80, 443, 3306, 5432, 8080];

fn one_action(rng: &mut Rng, number: u32) -> pb::AclItem {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let len = rng.range(16, 28);
    let cidr = prefix(rng, len);
    let direction = if rng.chance(20) { Egress } else { Ingress };
    match rng.range(0, 9) {
        0 => item(number, Allow, direction, Icmp, &[&cidr], None),
        1 => {
            let mut it = item(number, Allow, direction, Number, &[&cidr], None);
            it.protocol_number = [47, 50, 89][rng.range(0, 2) as usize];
            it
        }
        k => {
            let first = rng.range(1, 60000);
            let last = first + rng.range(0, 500);
            let protocol = if k % 2 == 0 { Tcp } else { Udp };
            item(
                number,
                Allow,
                direction,
                protocol,
                &[&cidr],
                Some((first, last)),
            )
        }
    }
}

fn realistic(rng: &mut Rng, number: u32) -> pb::AclItem {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let action = if rng.chance(10) { Deny } else { Allow };
    let direction = if rng.chance(25) { Egress } else { Ingress };
    // Mostly a /24 of its own (item k gets a distinct /24 of 10.128.0.0/9,
    // spread by a multiplier), then prefixes that nest with those: wider
    // ones (/16 to /22) and hosts or small blocks inside some /24.
    let own = (number.wrapping_mul(7919) % 32768) << 8;
    let pool = |k: u32| 0x0a80_0000u32 | k;
    let cidr = match rng.range(0, 9) {
        0 => {
            let len = rng.range(16, 22);
            let addr = pool(rng.range(0, 32767) << 8) & (u32::MAX << (32 - len));
            format!("{}/{len}", std::net::Ipv4Addr::from(addr))
        }
        1 => {
            let len = rng.range(25, 32);
            let addr = pool((rng.range(0, 32767) << 8) | rng.range(0, 255));
            format!(
                "{}/{len}",
                std::net::Ipv4Addr::from(addr & (u32::MAX << (32 - len)))
            )
        }
        _ => format!("{}/24", std::net::Ipv4Addr::from(pool(own))),
    };
    match rng.range(0, 39) {
        // A well-known TCP port from anywhere, now and then (TCP only, so
        // the benchmark's UDP stays clear).
        0 => item(number, action, direction, Tcp, &["0.0.0.0/0"], {
            let p = WELL_KNOWN[rng.range(0, 7) as usize];
            Some((p, p))
        }),
        1..=4 => {
            let mut it = item(number, action, direction, Icmp, &[&cidr], None);
            if rng.chance(70) {
                it.icmp_type = Some([0, 3, 8, 11][rng.range(0, 3) as usize]);
                it.icmp_code = Some(if rng.chance(50) { 0 } else { -1 });
            }
            it
        }
        5 | 6 => {
            let mut it = item(number, action, direction, Number, &[&cidr], None);
            it.protocol_number = [47, 50, 51, 89, 132][rng.range(0, 4) as usize];
            it
        }
        7 => item(number, action, direction, All, &[&cidr], None),
        k => {
            let protocol = if k % 3 == 0 { Udp } else { Tcp };
            let ports = if rng.chance(60) {
                let p = WELL_KNOWN[rng.range(0, 7) as usize];
                (p, p)
            } else {
                let first = rng.range(1024, 60000);
                (first, first + rng.range(0, 2000).min(65535 - first))
            };
            item(number, action, direction, protocol, &[&cidr], Some(ports))
        }
    }
}

fn adversarial(number: u32) -> pb::AclItem {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    // Group g, depth d: the prefix widens and the port range grows with d,
    // so item d overlaps item d-1 of the group, with the other action.
    let (g, d) = ((number - 1) / 8, (number - 1) % 8);
    let action = if d % 2 == 0 { Deny } else { Allow };
    let base = 0xac10_0000u32 | (g << 8); // 172.16.0.0/12, a /24 per group
    let len = 32 - d;
    let addr = base & (u32::MAX << d);
    let cidr = format!("{}/{len}", std::net::Ipv4Addr::from(addr));
    // Centred on 5201, so the UDP groups' denies overlap the benchmark's
    // last allow and push it behind every layer.
    let first = 5201 - d * 100;
    let last = 5201 + d * 100;
    let protocol = if g % 2 == 0 { Tcp } else { Udp };
    item(
        number,
        action,
        Ingress,
        protocol,
        &[&cidr],
        Some((first, last)),
    )
}

fn chain(number: u32) -> pb::AclItem {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    // Port ranges that slide by one: every item overlaps every other one,
    // none holds another, and the action alternates.
    let action = if number.is_multiple_of(2) {
        Allow
    } else {
        Deny
    };
    let first = 1 + number % 30_000;
    item(
        number,
        action,
        Ingress,
        Tcp,
        &["172.16.0.0/12"],
        Some((first, first + 30_000)),
    )
}

fn crossing(number: u32, n: u32) -> pb::AclItem {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let half = n.div_ceil(2);
    if number <= half {
        // One port each from 172.16.0.0/12.
        let port = 1 + (number % 60000);
        item(
            number,
            Allow,
            Ingress,
            Tcp,
            &["172.16.0.0/12"],
            Some((port, port)),
        )
    } else {
        let k = number - half;
        let cidr = format!("172.{}.{}.0/24", 16 + (k >> 8) % 16, k & 255);
        item(number, Allow, Ingress, Tcp, &[&cidr], None)
    }
}
