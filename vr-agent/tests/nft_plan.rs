//! The nftables plan: snapshots of the rendered table, and checks that the
//! kernel loads it and that an incremental update gives the same live table
//! as a full load.

use vpc_proto::v1 as pb;
use vr_agent::model::Router;
use vr_agent::plan::nft::{NftOptions, Ruleset, SHARD_ELEMENTS, plan};
use vr_agent::testing::{item, sample_config};

fn ruleset(config: &pb::RouterConfig) -> Ruleset {
    let router = Router::from_config(config).expect("valid sample");
    plan(
        &router,
        &NftOptions {
            agent_port: Some(3922),
            ..Default::default()
        },
    )
}

#[test]
fn sample_router_table_snapshot() {
    insta::assert_snapshot!(ruleset(&sample_config()).render_full());
}

#[test]
fn empty_router_still_denies_forwarding_and_input_by_default() {
    let text = ruleset(&pb::RouterConfig::default()).render_full();
    assert!(
        text.contains("type filter hook forward priority filter; policy drop;"),
        "{text}"
    );
    assert!(
        text.contains("type filter hook input priority filter; policy drop;"),
        "{text}"
    );
    assert!(
        text.contains("ct state established,related accept"),
        "{text}"
    );
}

#[test]
fn consecutive_items_with_one_action_share_one_lookup() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut config = sample_config();
    // 1,000 allow items followed by one deny: two runs, so the ingress chain
    // has one lookup per key shape per run plus the default drop; the allow
    // lookup's 1,000 elements are split by address into sets of at most
    // SHARD_ELEMENTS (one per /16 here, and the main set, empty).
    let mut items: Vec<pb::AclItem> = (0..1000u32)
        .map(|i| {
            item(
                i + 1,
                Allow,
                Ingress,
                Tcp,
                &[&format!("10.{}.{}.0/24", 100 + i / 250, i % 250)],
                Some((1000 + i, 1000 + i)),
            )
        })
        .collect();
    items.push(item(5000, Deny, Ingress, All, &["0.0.0.0/0"], None));
    config.network_acls[0].items = items;
    let rules = ruleset(&config);
    let chain = rules
        .chains
        .iter()
        .find(|c| c.name == "ACL_INBOUND_eth2")
        .expect("chain");
    // The allow lookup dispatches on the address to four subchains of a
    // set each, then looks up its main set; then the deny lookup and the
    // default.
    assert_eq!(
        chain.rules[..2],
        [
            "ip saddr . meta l4proto vmap @acl_inbound_eth2_l0_allow_v4_ports_shards",
            "ip saddr . meta l4proto . th dport @acl_inbound_eth2_l0_allow_v4_ports accept"
        ]
    );
    assert_eq!(chain.rules.len(), 4, "{:#?}", chain.rules);
    assert_eq!(chain.subchains.len(), 4);
    assert!(chain.subchains.iter().all(|s| s.rules.len() == 1));
    let allow: Vec<usize> = chain
        .sets
        .iter()
        .filter(|s| s.name.contains("_allow_") && s.kind == "set")
        .map(|s| s.elements.len())
        .collect();
    assert_eq!(allow, [250, 250, 250, 250, 0]);
    assert!(allow.iter().all(|&n| n <= SHARD_ELEMENTS));
}

#[test]
fn deny_with_lower_number_is_checked_before_a_later_allow() {
    let rules = ruleset(&sample_config());
    let chain = rules
        .chains
        .iter()
        .find(|c| c.name == "ACL_INBOUND_eth2")
        .expect("chain");
    // Item 10 denies TCP 22 from 10.1.2.128/25; item 20 allows TCP 22 from
    // 10.0.0.0/8, which overlaps it, so the allow is looked up later.
    let position = |set_holding: &str| {
        let set = chain
            .sets
            .iter()
            .find(|s| s.elements.iter().any(|e| e.starts_with(set_holding)))
            .unwrap_or_else(|| panic!("no set holds {set_holding}: {:#?}", chain.sets));
        chain
            .rules
            .iter()
            .position(|r| r.contains(&format!("@{} ", set.name)))
            .expect("a rule looks the set up")
    };
    let deny = position("10.1.2.128/25 . 6 . 22");
    let allow = position("10.0.0.0/8 . 6 . 22");
    assert!(chain.rules[deny].ends_with(" drop"), "{:?}", chain.rules);
    assert!(chain.rules[allow].ends_with(" accept"), "{:?}", chain.rules);
    assert!(deny < allow, "{:?}", chain.rules);
}

#[test]
fn egress_defaults_to_allow_until_the_nic_has_an_egress_item() {
    let mut config = sample_config();
    let has_final_drop = |config: &pb::RouterConfig| {
        let rules = ruleset(config);
        let chain = rules
            .chains
            .iter()
            .find(|c| c.name == "ACL_OUTBOUND_eth2")
            .expect("chain")
            .clone();
        chain.rules.last().map(String::as_str) == Some("drop")
    };
    assert!(has_final_drop(&config));
    config.network_acls[0]
        .items
        .retain(|i| i.traffic_type == pb::TrafficType::Ingress as i32);
    assert!(!has_final_drop(&config));
    let rules = ruleset(&config);
    let tier3 = rules
        .chains
        .iter()
        .find(|c| c.name == "ACL_OUTBOUND_eth3")
        .expect("chain");
    assert!(
        tier3.rules.is_empty(),
        "a tier without ACL lets all egress through"
    );
}

#[test]
fn update_touches_only_the_changed_chain() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let old = ruleset(&sample_config());

    // A new item that overlaps no deny joins the first layer's allow set:
    // one set element.
    let mut joined = sample_config();
    joined.network_acls[0].items.push(item(
        60,
        Allow,
        Ingress,
        Udp,
        &["10.1.2.0/24"],
        Some((53, 53)),
    ));
    let update = ruleset(&joined).render_update(&old).expect("changed");
    assert_eq!(
        update.trim(),
        "add element inet vpc acl_inbound_eth2_l0_allow_v4_ports { 10.1.2.0/24 . 17 . 53 comment \"60\" }"
    );

    // A deny that overlaps no earlier allow joins the first layer's deny
    // set, wherever its number falls between allows.
    let mut between = sample_config();
    between.network_acls[0].items.push(item(
        25,
        Deny,
        Ingress,
        Udp,
        &["10.1.2.0/24"],
        Some((53, 53)),
    ));
    let update = ruleset(&between).render_update(&old).expect("changed");
    assert_eq!(
        update.trim(),
        "add element inet vpc acl_inbound_eth2_l0_deny_v4_ports { 10.1.2.0/24 . 17 . 53 comment \"25\" }"
    );

    // A deny after an allow it overlaps (and sticks out of, or it would be
    // shadowed) needs a new layer: that chain is rebuilt, alone.
    let mut split = sample_config();
    split.network_acls[0].items.push(item(
        35,
        Deny,
        Ingress,
        Tcp,
        &["10.1.2.0/24"],
        Some((79, 81)),
    ));
    let new = ruleset(&split);
    let update = new.render_update(&old).expect("changed");
    assert!(
        update.contains("flush chain inet vpc ACL_INBOUND_eth2"),
        "{update}"
    );
    assert!(!update.contains("ACL_INBOUND_eth3"), "{update}");
    assert!(!update.contains("nat_prerouting"), "{update}");
    assert_eq!(new.render_update(&new), None);
}

#[test]
fn the_agent_port_opens_on_the_control_nic_and_elsewhere_only_when_asked() {
    let mut config = sample_config();
    let input = |config: &pb::RouterConfig, open: bool| {
        let router = Router::from_config(config).expect("valid");
        let rules = plan(
            &router,
            &NftOptions {
                agent_port: Some(3922),
                open_agent_port_before_control: open,
            },
        );
        rules
            .chains
            .into_iter()
            .find(|c| c.name == "filter_input")
            .expect("input chain")
            .rules
            .into_iter()
            .filter(|r| r.contains("3922"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        input(&config, false),
        ["iifname \"eth0\" tcp dport 3922 accept"]
    );
    assert_eq!(
        input(&config, true),
        ["iifname \"eth0\" tcp dport 3922 accept"]
    );
    config.nics.retain(|n| n.device_index != 0);
    assert_eq!(input(&config, false), Vec::<String>::new());
    assert_eq!(input(&config, true), ["tcp dport 3922 accept"]);
}
