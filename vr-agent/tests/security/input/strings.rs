//! No string field can add a line or a directive to a file the agent writes.
//!
//! The hole: `GuestNetwork.network_id` went unchecked into a comment line of
//! the tier's dnsmasq configuration, so "\ndhcp-script=/path" made dnsmasq run
//! a chosen program as root on the next lease.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use vpc_proto::v1 as pb;
use vr_agent::model::{InvalidKind, Router};
use vr_agent::plan;
use vr_agent::plan::nft::NftOptions;
use vr_agent::testing::{sample_config, tier};

use super::agent::{AgentLab, one_tier};

type Setter = fn(&mut pb::RouterConfig, String);

/// Every string field of the desired state (the requests carry the same
/// messages), with a benign value and where to put a value. `[+]` appends to
/// a list.
const FIELDS: &[(&str, &str, Setter)] = &[
    ("router_name", "r-1-VM", |c, v| c.router_name = v),
    ("vpc_id", "vpc-1", |c, v| c.vpc_id = v),
    ("vpc_cidr", "10.1.0.0/16", |c, v| c.vpc_cidr = v),
    ("nics[0].ip_address", "169.254.3.7", |c, v| {
        c.nics[0].ip_address = v
    }),
    ("nics[2].mac_address", "02:00:00:00:00:02", |c, v| {
        c.nics[2].mac_address = v
    }),
    ("nics[2].network_id", "tier-1", |c, v| {
        c.nics[2].network_id = v
    }),
    ("nics[2].ip_address", "", |c, v| c.nics[2].ip_address = v),
    (
        "guest_networks[0].mac_address",
        "02:00:00:00:00:02",
        |c, v| c.guest_networks[0].mac_address = v,
    ),
    ("guest_networks[0].network_id", "tier-1", |c, v| {
        c.guest_networks[0].network_id = v
    }),
    ("guest_networks[0].cidr", "10.1.1.0/24", |c, v| {
        c.guest_networks[0].cidr = v
    }),
    ("guest_networks[0].gateway", "10.1.1.1", |c, v| {
        c.guest_networks[0].gateway = v
    }),
    (
        "guest_networks[0].domain_name",
        "tier1.vpc.internal",
        |c, v| c.guest_networks[0].domain_name = v,
    ),
    ("guest_networks[0].dns_servers[+]", "192.0.2.53", |c, v| {
        c.guest_networks[0].dns_servers.push(v)
    }),
    ("guest_networks[0].ip6_cidr", "2001:db8:1::/64", |c, v| {
        c.guest_networks[0].ip6_cidr = v
    }),
    ("guest_networks[0].ip6_gateway", "2001:db8:1::1", |c, v| {
        c.guest_networks[0].ip6_gateway = v
    }),
    (
        "guest_networks[0].dns6_servers[+]",
        "2001:db8::53",
        |c, v| c.guest_networks[0].dns6_servers.push(v),
    ),
    ("public_ips[1].ip_address", "203.0.113.11", |c, v| {
        c.public_ips[1].ip_address = v
    }),
    ("public_ips[1].gateway", "203.0.113.1", |c, v| {
        c.public_ips[1].gateway = v
    }),
    ("public_ips[1].mac_address", "02:00:00:00:00:01", |c, v| {
        c.public_ips[1].mac_address = v
    }),
    ("public_ips[1].vlan", "vlan://untagged", |c, v| {
        c.public_ips[1].vlan = v
    }),
    ("source_nat_rules[0].nat_ip", "203.0.113.10", |c, v| {
        c.source_nat_rules[0].nat_ip = v
    }),
    (
        "source_nat_rules[0].source_cidrs[+]",
        "10.1.1.0/24",
        |c, v| c.source_nat_rules[0].source_cidrs.push(v),
    ),
    ("static_routes[0].cidr", "192.168.50.0/24", |c, v| {
        c.static_routes[0].cidr = v
    }),
    ("static_routes[0].next_hop", "172.16.0.1", |c, v| {
        c.static_routes[0].next_hop = v
    }),
    ("static_routes[0].gateway_ip", "172.16.0.10", |c, v| {
        c.static_routes[0].gateway_ip = v
    }),
    ("static_routes[0].id", "route-1", |c, v| {
        c.static_routes[0].id = v
    }),
    (
        "network_acls[0].mac_address",
        "02:00:00:00:00:02",
        |c, v| c.network_acls[0].mac_address = v,
    ),
    ("network_acls[0].acl_id", "acl-web", |c, v| {
        c.network_acls[0].acl_id = v
    }),
    ("network_acls[0].acl_name", "web", |c, v| {
        c.network_acls[0].acl_name = v
    }),
    (
        "network_acls[0].items[0].cidrs[+]",
        "192.0.2.0/24",
        |c, v| c.network_acls[0].items[0].cidrs.push(v),
    ),
    ("network_acls[0].items[0].id", "item-1", |c, v| {
        c.network_acls[0].items[0].id = v
    }),
    ("port_forwarding_rules[0].id", "pf-ssh", |c, v| {
        c.port_forwarding_rules[0].id = v
    }),
    (
        "port_forwarding_rules[0].public_ip",
        "203.0.113.11",
        |c, v| c.port_forwarding_rules[0].public_ip = v,
    ),
    ("port_forwarding_rules[0].private_ip", "10.1.1.5", |c, v| {
        c.port_forwarding_rules[0].private_ip = v
    }),
    (
        "port_forwarding_rules[0].source_cidrs[+]",
        "198.51.100.0/24",
        |c, v| c.port_forwarding_rules[0].source_cidrs.push(v),
    ),
    ("static_nat_rules[0].id", "ip-12", |c, v| {
        c.static_nat_rules[0].id = v
    }),
    ("static_nat_rules[0].public_ip", "203.0.113.12", |c, v| {
        c.static_nat_rules[0].public_ip = v
    }),
    ("static_nat_rules[0].private_ip", "10.1.2.6", |c, v| {
        c.static_nat_rules[0].private_ip = v
    }),
    ("load_balancer_rules[0].id", "lb-web", |c, v| {
        c.load_balancer_rules[0].id = v
    }),
    ("load_balancer_rules[0].name", "web", |c, v| {
        c.load_balancer_rules[0].name = v
    }),
    (
        "load_balancer_rules[0].public_ip",
        "203.0.113.11",
        |c, v| c.load_balancer_rules[0].public_ip = v,
    ),
    (
        "load_balancer_rules[0].source_cidrs[+]",
        "198.51.100.0/24",
        |c, v| c.load_balancer_rules[0].source_cidrs.push(v),
    ),
    (
        "load_balancer_rules[0].backends[0].ip_address",
        "10.1.1.5",
        |c, v| c.load_balancer_rules[0].backends[0].ip_address = v,
    ),
    (
        "load_balancer_rules[0].backends[0].vm_id",
        "vm-1",
        |c, v| c.load_balancer_rules[0].backends[0].vm_id = v,
    ),
    (
        "dhcp[0].entries[0].mac_address",
        "02:00:00:00:aa:05",
        |c, v| c.dhcp[0].entries[0].mac_address = v,
    ),
    ("dhcp[0].entries[0].ip_address", "10.1.1.5", |c, v| {
        c.dhcp[0].entries[0].ip_address = v
    }),
    ("dhcp[0].entries[0].hostname", "web-1", |c, v| {
        c.dhcp[0].entries[0].hostname = v
    }),
    ("dhcp[0].entries[0].ip6_address", "2001:db8:1::5", |c, v| {
        c.dhcp[0].entries[0].ip6_address = v
    }),
    (
        "dhcp[0].entries[0].duid",
        "00:03:00:01:02:00:00:00:aa:05",
        |c, v| c.dhcp[0].entries[0].duid = v,
    ),
];

/// Pieces that end a line, start a comment, quote, separate fields or look
/// like a directive, in the spellings that matter to line-based parsers.
const HOSTILE: &[&str] = &[
    "\n",
    "\r",
    "\r\n",
    "\0",
    "#",
    "=",
    ",",
    "\"",
    "'",
    " ",
    "\t",
    ";",
    "\\",
    "\u{2028}",
    "\u{85}",
    "é",
    "\ndhcp-script=/tmp/owned",
    "\nconf-file=/etc/shadow",
    "\n#",
    "}",
    "{",
];

/// A file's lines reduced to their directive (before `=`) or, for the hosts
/// and names files, the number of fields; comment lines count as `#`.
fn skeleton(name: &str, text: &str) -> Vec<String> {
    text.split('\n')
        .map(|line| {
            if name.ends_with(".hosts") {
                format!("{} fields", line.split(',').count())
            } else if name.ends_with(".names") {
                format!("{} words", line.split_whitespace().count())
            } else if line.starts_with('#') {
                "#".into()
            } else {
                line.split('=').next().unwrap_or_default().to_string()
            }
        })
        .collect()
}

/// Every file a plan writes: the dnsmasq files and the nft document.
fn files_of(router: &Router) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in plan::dnsmasq::plan(router, Path::new("/run/vr-agent/dnsmasq")) {
        for (path, text) in [
            (&f.conf_path, &f.conf),
            (&f.hosts_path, &f.hosts),
            (&f.names_path, &f.names),
        ] {
            out.push((path.display().to_string(), text.clone()));
        }
    }
    let nft = plan::nft::plan(router, &NftOptions::default()).render_full();
    out.push(("nft".into(), nft));
    out
}

fn first_word(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or_default()
}

/// Checks one value in one field: refused, or the files have the benign shape.
fn check(field: usize, value: &str) -> Result<(), TestCaseError> {
    let (name, benign, set) = FIELDS[field];
    // An empty value is a benign value of its own (no domain, no id): it
    // cannot carry anything, and it may leave out whole lines.
    let benign = if value.is_empty() { "" } else { benign };
    let mut config = sample_config();
    set(&mut config, value.to_string());
    let router = match Router::from_config(&config) {
        Err(e) => {
            // Refused, as an argument error or a dangling reference.
            prop_assert!(
                matches!(e.kind, InvalidKind::Argument | InvalidKind::NotFound),
                "{name}: {e}"
            );
            prop_assert!(!e.to_string().contains('\n'), "{name}: {e:?}");
            return Ok(());
        }
        Ok(router) => router,
    };
    let mut config = sample_config();
    set(&mut config, benign.to_string());
    let expected = files_of(&Router::from_config(&config).expect("the benign value is valid"));
    let got = files_of(&router);
    prop_assert_eq!(got.len(), expected.len(), "{}: {:?}", name, value);
    for ((path, text), (_, benign_text)) in got.iter().zip(&expected) {
        prop_assert!(
            !text.contains(['\r', '\0', '\u{2028}', '\u{85}']),
            "{name} = {value:?} put a line break into {path}:\n{text}"
        );
        if path == "nft" {
            let words: Vec<&str> = benign_text.lines().map(first_word).collect();
            for line in text.lines() {
                prop_assert!(
                    words.contains(&first_word(line)) && !line.contains('#'),
                    "{name} = {value:?} changed the nft document: {line:?}"
                );
            }
        } else {
            prop_assert_eq!(
                skeleton(path, text),
                skeleton(path, benign_text),
                "{} = {:?} changed the lines of {}:\n{}",
                name,
                value,
                path,
                text
            );
        }
    }
    Ok(())
}

/// A value for a field: arbitrary text, or the benign value with hostile
/// pieces put in at random places (so the rest still parses).
fn value_for(field: usize) -> BoxedStrategy<String> {
    let benign = FIELDS[field].1.to_string();
    let spliced = proptest::collection::vec(
        (any::<prop::sample::Index>(), prop::sample::select(HOSTILE)),
        1..4,
    )
    .prop_map(move |pieces| {
        let mut v: Vec<char> = benign.chars().collect();
        for (at, piece) in pieces {
            let at = at.index(v.len() + 1);
            v.splice(at..at, piece.chars());
        }
        v.into_iter().collect::<String>()
    });
    prop_oneof![
        3 => spliced,
        1 => any::<String>(),
        1 => "[ -~]{0,80}",
    ]
    .boxed()
}

fn cases() -> u32 {
    std::env::var("VR_AGENT_STRING_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096)
}

#[test]
fn no_string_field_can_add_a_line_or_directive_to_any_file_the_agent_writes() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (0..FIELDS.len()).prop_flat_map(|f| (Just(f), value_for(f)));
    runner
        .run(&strategy, |(field, value)| check(field, &value))
        .unwrap();
}

#[test]
fn each_string_field_refuses_a_newline_naming_the_field() {
    for (name, benign, set) in FIELDS {
        let mut config = sample_config();
        set(&mut config, format!("{benign}\ndhcp-script=/tmp/owned"));
        let err = Router::from_config(&config).expect_err(name);
        let field = name.replace("[+]", "");
        assert!(
            err.field.starts_with(&field),
            "{name}: the error names {:?}: {err}",
            err.field
        );
    }
}

/// The original exploit, replayed against the real agent over gRPC: a tier
/// whose network_id carries a `dhcp-script=` line.
#[test]
fn network_id_with_a_dhcp_script_line_is_refused_and_written_nowhere() {
    let mut r = AgentLab::start("sec_network_id", &[]);
    r.apply_config(one_tier())
        .unwrap_or_else(|e| panic!("{e:?}\n{}", r.log()));
    let marker = r.lab.dir().join("owned");
    let script = r.lab.dir().join("payload.sh");
    std::fs::write(&script, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    let mut network = tier(2);
    network.network_id = format!("tier-1\ndhcp-script={}", script.display());
    let generation = r.next_generation();
    let refused = r
        .call(move |mut c| async move {
            c.setup_guest_network(pb::SetupGuestNetworkRequest {
                generation,
                network: Some(network),
            })
            .await
        })
        .expect_err("the hostile network_id was accepted");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("network_id"),
        "the error does not name the field: {}",
        refused.message()
    );
    // Also inside a whole config, and in the NIC's own network_id.
    let mut config = one_tier();
    config.nics[0].network_id = "x\ndhcp-script=/bin/true".into();
    let refused = r.apply_config(config).expect_err("accepted in ApplyConfig");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("nics[0].network_id"),
        "{refused:?}"
    );

    let files = r.written_files();
    assert!(
        files
            .iter()
            .any(|(p, _)| p.extension().is_some_and(|e| e == "conf")),
        "the tier's dnsmasq files are missing: {files:?}"
    );
    for (path, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains("dhcp-script"),
            "{} holds the injected directive:\n{text}",
            path.display()
        );
    }
    assert!(!marker.exists(), "the payload ran");
    let state = r.state().unwrap();
    assert_eq!(
        state.config.unwrap().guest_networks[0].network_id,
        "tier-1",
        "the refused change replaced the state"
    );
}
