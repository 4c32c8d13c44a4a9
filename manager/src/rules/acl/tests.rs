//! Tests of the network ACL rules.

use super::super::test_util::*;
use super::*;

fn item(protocol: &str) -> NewAclItem<'_> {
    NewAclItem {
        protocol,
        ..Default::default()
    }
}

#[test]
fn protocols() {
    assert_eq!(AclProtocol::parse("TCP").unwrap(), AclProtocol::Tcp);
    assert_eq!(AclProtocol::parse("1").unwrap(), AclProtocol::Icmp);
    assert_eq!(AclProtocol::parse("all").unwrap(), AclProtocol::All);
    assert_eq!(AclProtocol::parse("47").unwrap(), AclProtocol::Number(47));
    assert_eq!(AclProtocol::parse("0").unwrap().as_string(), "0");
    assert_err(AclProtocol::parse("256"), 431, "\"256\"");
    assert_err(AclProtocol::parse("gre"), 431, "\"gre\"");
}

#[test]
fn numbers() {
    assert_eq!(next_number(&[]), 1);
    assert_eq!(next_number(&[3, 10, 7]), 11);
    let r = validate_item(&item("all"), &[1, 2]).unwrap();
    assert_eq!(r.number, 3);
    let r = validate_item(
        &NewAclItem {
            number: Some(5),
            ..item("all")
        },
        &[1, 2],
    )
    .unwrap();
    assert_eq!(r.number, 5);
    assert_err(
        validate_item(
            &NewAclItem {
                number: Some(2),
                ..item("all")
            },
            &[1, 2],
        ),
        431,
        "number 2 already exists",
    );
    assert_err(
        validate_item(
            &NewAclItem {
                number: Some(0),
                ..item("all")
            },
            &[],
        ),
        431,
        "Invalid number [0]. Number cannot be < 1",
    );
}

#[test]
fn defaults() {
    let r = validate_item(&item("tcp"), &[]).unwrap();
    assert_eq!(r.action, Action::Allow);
    assert_eq!(r.traffic_type, TrafficType::Ingress);
    assert_eq!(r.ports, None);
    assert_eq!(r.icmp_type, None);
    assert_eq!(r.cidrs.len(), 2);
    assert!(cidrs_match(&r.cidrs, "2001:db8::1".parse().unwrap()));
    assert!(cidrs_match(&r.cidrs, "8.8.8.8".parse().unwrap()));
}

#[test]
fn ports_only_for_tcp_udp() {
    let r = validate_item(
        &NewAclItem {
            start_port: Some(80),
            ..item("tcp")
        },
        &[],
    )
    .unwrap();
    assert_eq!(r.ports.map(|p| (p.start, p.end)), Some((80, 80)));
    let r = validate_item(
        &NewAclItem {
            start_port: Some(1000),
            end_port: Some(2000),
            ..item("udp")
        },
        &[],
    )
    .unwrap();
    assert_eq!(r.ports.unwrap().len(), 1001);
    for p in ["icmp", "all", "47"] {
        assert_err(
            validate_item(
                &NewAclItem {
                    start_port: Some(80),
                    ..item(p)
                },
                &[],
            ),
            431,
            "only for protocols tcp and udp",
        );
    }
    assert_err(
        validate_item(
            &NewAclItem {
                start_port: Some(90),
                end_port: Some(80),
                ..item("tcp")
            },
            &[],
        ),
        431,
        "90-80",
    );
    assert_err(
        validate_item(
            &NewAclItem {
                start_port: Some(65536),
                ..item("tcp")
            },
            &[],
        ),
        431,
        "65536",
    );
    assert_err(
        validate_item(
            &NewAclItem {
                end_port: Some(80),
                ..item("tcp")
            },
            &[],
        ),
        431,
        "without startport",
    );
}

#[test]
fn icmp_fields_only_for_icmp() {
    let r = validate_item(&item("icmp"), &[]).unwrap();
    assert_eq!((r.icmp_type, r.icmp_code), (Some(-1), Some(-1)));
    let r = validate_item(
        &NewAclItem {
            icmp_type: Some(8),
            icmp_code: Some(0),
            ..item("icmp")
        },
        &[],
    )
    .unwrap();
    assert_eq!((r.icmp_type, r.icmp_code), (Some(8), Some(0)));
    assert_err(
        validate_item(
            &NewAclItem {
                icmp_type: Some(8),
                ..item("tcp")
            },
            &[],
        ),
        431,
        "only be given for protocol icmp",
    );
    assert_err(
        validate_item(
            &NewAclItem {
                icmp_type: Some(256),
                ..item("icmp")
            },
            &[],
        ),
        431,
        "icmptype 256",
    );
    assert_err(
        validate_item(
            &NewAclItem {
                icmp_code: Some(17),
                ..item("icmp")
            },
            &[],
        ),
        431,
        "icmpcode 17",
    );
    assert_err(
        validate_item(
            &NewAclItem {
                icmp_type: Some(-2),
                ..item("icmp")
            },
            &[],
        ),
        431,
        "icmptype -2",
    );
}

#[test]
fn cidr_lists() {
    let cidrs = ["10.0.0.0/8", " 2001:db8::/32"];
    let r = validate_item(
        &NewAclItem {
            cidrs: &cidrs,
            ..item("all")
        },
        &[],
    )
    .unwrap();
    assert_eq!(r.cidrs.len(), 2);
    assert!(!cidrs_match(&r.cidrs, "8.8.8.8".parse().unwrap()));
    assert_err(
        parse_cidr_list(&["10.0.0.0/8", "nope"]),
        431,
        "Source cidrs formatting error nope",
    );
    assert_err(parse_cidr_list(&["10.0.0.1/8"]), 431, "10.0.0.0/8");
    assert_err(parse_cidr_list(&["10.0.0.0/33"]), 431, "10.0.0.0/33");
}

#[test]
fn action_and_traffic_type() {
    let r = validate_item(
        &NewAclItem {
            action: Some("DENY"),
            traffic_type: Some("egress"),
            ..item("all")
        },
        &[],
    )
    .unwrap();
    assert_eq!(
        (r.action, r.traffic_type),
        (Action::Deny, TrafficType::Egress)
    );
    assert_err(
        validate_item(
            &NewAclItem {
                action: Some("drop"),
                ..item("all")
            },
            &[],
        ),
        431,
        "\"drop\"",
    );
    assert_err(
        validate_item(
            &NewAclItem {
                traffic_type: Some("both"),
                ..item("all")
            },
            &[],
        ),
        431,
        "\"both\"",
    );
}

#[test]
fn default_lists_are_immutable() {
    let deny = AclList {
        name: DEFAULT_DENY,
        is_default: true,
        is_global: true,
    };
    assert_err(
        check_list_modifiable(&deny, true, GlobalRefusal::UpdateList),
        431,
        "default_deny cannot be modified",
    );
    assert_err(check_list_deletable(&deny, 0, 0), 431, "cannot be removed");
    let global = AclList {
        name: "shared",
        is_default: false,
        is_global: true,
    };
    check_list_modifiable(&global, true, GlobalRefusal::CreateItem).unwrap();
    assert_err(
        check_list_modifiable(&global, false, GlobalRefusal::CreateItem),
        531,
        "Only Root Admins can create rules for a global ACL.",
    );
    assert_err(
        check_list_modifiable(&global, false, GlobalRefusal::DeleteList),
        531,
        "Only Root Admin can delete global ACLs.",
    );
    check_global_list_creator(true).unwrap();
    assert_err(
        check_global_list_creator(false),
        531,
        "Only Root Admin can create global ACLs.",
    );
    let own = AclList {
        name: "web-acl",
        is_default: false,
        is_global: false,
    };
    check_list_modifiable(&own, false, GlobalRefusal::MoveItem).unwrap();
}

#[test]
fn list_deletion_and_attachment() {
    let own = AclList {
        name: "web-acl",
        is_default: false,
        is_global: false,
    };
    check_list_deletable(&own, 0, 0).unwrap();
    assert_err(
        check_list_deletable(&own, 2, 1),
        530,
        "2 tier(s) and 1 private gateway(s)",
    );
    check_list_in_vpc("web-acl", Some(&1), &1).unwrap();
    check_list_in_vpc("default_allow", None, &1).unwrap();
    assert_err(
        check_list_in_vpc("web-acl", Some(&2), &1),
        431,
        "do not belong to the same VPC",
    );
    validate_list("web-acl", Some("rules for web")).unwrap();
    assert_err(validate_list("", None), 431, "name");
    assert_eq!(DEFAULT_ALLOW, "default_allow");
}

fn existing(protocol: &str, start: Option<i64>, end: Option<i64>) -> AclItem {
    let cidrs = ["10.0.0.0/8"];
    validate_item(
        &NewAclItem {
            protocol,
            start_port: start,
            end_port: end,
            cidrs: &cidrs,
            action: Some("Deny"),
            traffic_type: Some("Egress"),
            number: Some(10),
            ..Default::default()
        },
        &[],
    )
    .unwrap()
}

#[test]
fn partial_update_keeps_what_is_not_given() {
    let cur = existing("tcp", Some(80), Some(90));
    let r = validate_update(
        &cur,
        &NewAclItem {
            start_port: Some(443),
            ..Default::default()
        },
        true,
        &[1],
    )
    .unwrap();
    assert_eq!(r.ports.map(|p| (p.start, p.end)), Some((443, 443)));
    assert_eq!(
        (r.action, r.traffic_type, r.number),
        (Action::Deny, TrafficType::Egress, 10)
    );
    assert_eq!(r.cidrs, cur.cidrs);
    let r = validate_update(
        &cur,
        &NewAclItem {
            action: Some("allow"),
            ..Default::default()
        },
        true,
        &[],
    )
    .unwrap();
    assert_eq!((r.action, r.ports), (Action::Allow, cur.ports));
    // protocol change drops the old ports
    let r = validate_update(
        &cur,
        &NewAclItem {
            protocol: "icmp",
            ..Default::default()
        },
        true,
        &[],
    )
    .unwrap();
    assert_eq!((r.ports, r.icmp_type), (None, Some(-1)));
}

#[test]
fn full_update_resets_what_is_not_given() {
    let cur = existing("tcp", Some(80), Some(90));
    let r = validate_update(
        &cur,
        &NewAclItem {
            protocol: "udp",
            ..Default::default()
        },
        false,
        &[],
    )
    .unwrap();
    assert_eq!(r.protocol, AclProtocol::Udp);
    assert_eq!(
        (r.ports, r.action, r.traffic_type, r.number),
        (None, Action::Allow, TrafficType::Ingress, 10)
    );
    assert_eq!(r.cidrs.len(), 2);
}

#[test]
fn update_rechecks_numbers_and_fields() {
    let cur = existing("tcp", Some(80), None);
    assert_err(
        validate_update(
            &cur,
            &NewAclItem {
                number: Some(5),
                ..Default::default()
            },
            true,
            &[5],
        ),
        431,
        "number 5 already exists",
    );
    validate_update(
        &cur,
        &NewAclItem {
            number: Some(6),
            ..Default::default()
        },
        true,
        &[5],
    )
    .unwrap();
    assert_err(
        validate_update(
            &cur,
            &NewAclItem {
                icmp_type: Some(3),
                ..Default::default()
            },
            true,
            &[],
        ),
        431,
        "icmp",
    );
    assert_err(
        validate_update(
            &cur,
            &NewAclItem {
                protocol: "bogus",
                ..Default::default()
            },
            true,
            &[],
        ),
        431,
        "bogus",
    );
}

fn list() -> Vec<Positioned<'static>> {
    vec![
        Positioned { id: "a", number: 1 },
        Positioned { id: "b", number: 2 },
        Positioned { id: "c", number: 3 },
        Positioned {
            id: "d",
            number: 10,
        },
    ]
}

#[test]
fn move_to_a_gap_changes_one_number() {
    // a between c and d: 4 is free
    assert_eq!(
        move_item(&list(), "a", Some("c"), Some("d")).unwrap(),
        vec![("a".to_string(), 4)]
    );
    // to the bottom
    assert_eq!(
        move_item(&list(), "b", Some("d"), None).unwrap(),
        vec![("b".to_string(), 11)]
    );
    // already in place
    assert!(move_item(&list(), "d", Some("c"), None).unwrap().is_empty());
    assert!(move_item(&list(), "a", None, Some("b")).unwrap().is_empty());
}

#[test]
fn move_without_a_gap_shifts_followers() {
    // d to the top: takes 1, a..c shift up by one
    assert_eq!(
        move_item(&list(), "d", None, Some("a")).unwrap(),
        vec![
            ("d".into(), 1),
            ("a".into(), 2),
            ("b".into(), 3),
            ("c".into(), 4)
        ]
    );
    // d between a and b: takes 2, b and c shift, nothing after
    assert_eq!(
        move_item(&list(), "d", Some("a"), Some("b")).unwrap(),
        vec![("d".into(), 2), ("b".into(), 3), ("c".into(), 4)]
    );
}

#[test]
fn move_refusals() {
    assert_err(
        move_item(&list(), "a", None, None),
        431,
        "previousaclruleid, nextaclruleid",
    );
    assert_err(
        move_item(&list(), "zz", Some("a"), None),
        431,
        "zz is not in this ACL list",
    );
    assert_err(
        move_item(&list(), "a", Some("zz"), None),
        431,
        "previousaclruleid zz",
    );
    assert_err(move_item(&list(), "a", Some("a"), None), 431, "being moved");
    assert_err(
        move_item(&list(), "a", Some("b"), Some("d")),
        431,
        "not consecutive",
    );
}

#[test]
fn auto_created_list_name() {
    assert_eq!(
        auto_list_name("prod", "web", "u-1"),
        "VPC_prod_Tier_web_ACL_u-1"
    );
}

#[test]
fn replace_needs_the_acl_service() {
    check_tier_takes_acl("web", true).unwrap();
    assert_err(check_tier_takes_acl("web", false), 431, "tier web");
}
