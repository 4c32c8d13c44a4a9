//! The planned table loads into a real kernel, and an incremental update
//! leaves exactly the table a full load of the new state gives.

use vpc_integration::{Lab, Netns, require_root, run_in_netns};
use vpc_proto::v1 as pb;
use vr_agent::apply::nft::Nft;
use vr_agent::apply::nft_netlink::{
    Element, NftNetlink, SetElements, SetType, encode_chain_changes, encode_deltas,
};
use vr_agent::model::Router;
use vr_agent::plan::nft::shape::Shape;
use vr_agent::plan::nft::{Carry, NftOptions, Ruleset, plan, plan_from};
use vr_agent::testing::{item, sample_config, tier};

fn ruleset(config: &pb::RouterConfig) -> Ruleset {
    plan(
        &Router::from_config(config).expect("valid"),
        &NftOptions::default(),
    )
}

/// Applies each script in order inside `ns`, then returns the live table.
fn load(ns: &Netns, scripts: Vec<String>) -> String {
    run_in_netns(ns, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Ok(runtime.block_on(async move {
            let nft = Nft::default();
            for script in &scripts {
                if let Err(e) = nft.apply(script).await {
                    return Err(format!("{e}\n--- script ---\n{script}"));
                }
            }
            nft.list()
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "no table".to_string())
        }))
    })
    .expect("thread in namespace")
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A set's elements in a fixed order: nft lists them in the order they were
/// added, and an element delta appends where a full load lists them in plan
/// order. The order is not seen by lookups (a set only answers "held").
fn sorted_elements(block: String) -> String {
    let Some((head, rest)) = block.split_once("elements = {") else {
        return block;
    };
    let (body, tail) = rest.split_once('}').expect("closing brace");
    let mut elements: Vec<&str> = body.split(',').map(str::trim).collect();
    elements.sort_unstable();
    format!("{head}elements = {{ {} }}{tail}", elements.join(", "))
}

/// The table's sets, maps and chains as nft lists them, in name order: a
/// re-created set is listed after the others, which changes nothing.
fn blocks(listing: &str) -> Vec<String> {
    let body = listing
        .trim()
        .strip_prefix("table inet vpc {")
        .and_then(|b| b.strip_suffix('}'))
        .expect("one table");
    let mut blocks: Vec<String> = body
        .split("\n\n")
        .map(|b| sorted_elements(b.trim().to_string()))
        .collect();
    blocks.sort();
    blocks
}

fn assert_update_equals_full(
    lab: &Lab,
    name: &str,
    old: &pb::RouterConfig,
    new: &pb::RouterConfig,
) {
    let (old_rules, new_rules) = (ruleset(old), ruleset(new));
    let update = new_rules
        .render_update(&old_rules)
        .expect("something changed");
    let a = lab.netns(&format!("{name}-a")).unwrap();
    let b = lab.netns(&format!("{name}-b")).unwrap();
    let incremental = blocks(&load(&a, vec![old_rules.render_full(), update]));
    let full = blocks(&load(&b, vec![new_rules.render_full()]));
    assert_eq!(incremental, full, "update and full load differ for {name}");
}

#[test]
fn sample_table_loads_and_reloading_it_is_idempotent() {
    require_root();
    let lab = Lab::new("nft_loads").unwrap();
    let ns = lab.netns("r").unwrap();
    let full = ruleset(&sample_config()).render_full();
    let once = load(&ns, vec![full.clone()]);
    let twice = load(&ns, vec![full]);
    assert_eq!(once, twice);
    assert!(once.contains("chain ACL_INBOUND_eth2"), "{once}");
}

#[test]
fn incremental_updates_give_the_same_table_as_a_full_load() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    require_root();
    let lab = Lab::new("nft_update").unwrap();
    let base = sample_config();

    let mut acl_changed = base.clone();
    acl_changed.network_acls[0].items.push(item(
        25,
        Deny,
        Ingress,
        Udp,
        &["10.1.2.0/24"],
        Some((53, 53)),
    ));
    acl_changed.network_acls[0].items[2].start_port = Some(8080);
    acl_changed.network_acls[0].items[2].end_port = Some(8080);
    assert_update_equals_full(&lab, "acl", &base, &acl_changed);

    // Only set elements change: element deltas, including one that replaces
    // an element by an overlapping one within the same transaction.
    let mut elements_changed = base.clone();
    elements_changed.network_acls[0].items[1].cidrs =
        vec!["10.1.2.0/24".into(), "10.0.0.0/9".into()];
    elements_changed.network_acls[1].items[0].cidrs =
        vec!["10.1.0.0/17".into(), "10.9.0.0/16".into()];
    let (old_rules, new_rules) = (ruleset(&base), ruleset(&elements_changed));
    let update = new_rules.render_update(&old_rules).expect("changed");
    assert!(
        update.contains("delete element") && !update.contains("flush chain"),
        "{update}"
    );
    assert_update_equals_full(&lab, "elements", &base, &elements_changed);

    let mut tier_added = base.clone();
    tier_added.nics.push(pb::Nic {
        device_index: 5,
        mac_address: "02:00:00:00:00:05".into(),
        role: pb::NicRole::Guest as i32,
        ..Default::default()
    });
    tier_added.guest_networks.push(tier(5));
    assert_update_equals_full(&lab, "tier", &base, &tier_added);

    let mut nic_removed = base.clone();
    nic_removed.nics.retain(|n| n.device_index != 4);
    nic_removed.public_ips.retain(|p| p.device_index != 4);
    nic_removed.network_acls.retain(|a| a.device_index != 4);
    nic_removed.source_nat_rules.retain(|r| r.device_index != 4);
    nic_removed.static_routes.clear();
    assert_update_equals_full(&lab, "unplug", &base, &nic_removed);

    let mut nat_cleared = base.clone();
    nat_cleared.port_forwarding_rules.clear();
    nat_cleared.static_nat_rules.clear();
    nat_cleared.load_balancer_rules.clear();
    assert_update_equals_full(&lab, "nat", &base, &nat_cleared);
}

#[test]
fn a_script_the_kernel_refuses_leaves_the_previous_table() {
    require_root();
    let lab = Lab::new("nft_atomic").unwrap();
    let ns = lab.netns("r").unwrap();
    let full = ruleset(&sample_config()).render_full();
    let before = load(&ns, vec![full]);
    let broken = "add rule inet vpc filter_forward jump NO_SUCH_CHAIN\nflush chain inet vpc ACL_INBOUND_eth2\n".to_string();
    let result = run_in_netns(&ns, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Ok(runtime
            .block_on(Nft::default().apply(&broken))
            .map_err(|e| e.to_string()))
    })
    .unwrap();
    let err = result.expect_err("nft refuses a jump to a missing chain");
    assert!(
        err.contains("NO_SUCH_CHAIN") || err.contains("No such file"),
        "stderr is surfaced: {err}"
    );
    assert_eq!(load(&ns, vec![]), before);
}

/// The live table's shape, from `nft -j list` inside `ns`.
fn live_shape(ns: &Netns) -> Shape {
    run_in_netns(ns, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let json = runtime
            .block_on(Nft::default().list_json())
            .unwrap()
            .unwrap();
        Ok(Shape::from_json(&json).unwrap())
    })
    .unwrap()
}

#[test]
fn the_live_shape_of_a_loaded_table_is_the_planned_shape() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    require_root();
    let lab = Lab::new("nft_shape").unwrap();
    let ns = lab.netns("r").unwrap();
    // The sample, plus a long list of overlapping items of both actions,
    // port ranges, ICMP and IPv6, so the sets hold intervals and boxes.
    let mut config = sample_config();
    for i in 0..300u32 {
        let action = if i % 3 == 0 { Deny } else { Allow };
        let prefix = 16 + i % 9;
        let net: ipnet::Ipv4Net = format!("10.{}.{}.0/{prefix}", 20 + i % 7, i % 250)
            .parse()
            .unwrap();
        let cidr = net.trunc().to_string();
        let (protocol, ports) = match i % 4 {
            0 => (Tcp, Some((1000 + i, 1000 + i * 3))),
            1 => (Udp, Some((53, 53))),
            2 => (Icmp, None),
            _ => (All, None),
        };
        config.network_acls[0].items.push(item(
            100 + i,
            action,
            Ingress,
            protocol,
            &[&cidr, "2001:db8::/32"],
            ports,
        ));
    }
    let planned = ruleset(&config);
    load(&ns, vec![planned.render_full()]);
    let live = live_shape(&ns);
    assert_eq!(planned.shape().differences(&live), Vec::<String>::new());

    // After an element-only update the shape still matches.
    let mut changed = config.clone();
    changed.network_acls[1].items[0].cidrs = vec!["10.1.0.0/17".into(), "10.9.0.0/16".into()];
    let next = ruleset(&changed);
    load(&ns, vec![next.render_update(&planned).unwrap()]);
    assert_eq!(
        next.shape().differences(&live_shape(&ns)),
        Vec::<String>::new()
    );
}

/// Runs `f` with a fresh nf_tables netlink socket opened inside `ns`.
fn with_socket<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce(&mut NftNetlink) -> T + Send + 'static,
) -> T {
    run_in_netns(ns, move || {
        let mut socket = NftNetlink::open().expect("nf_tables netlink socket");
        Ok(f(&mut socket))
    })
    .expect("thread in namespace")
}

/// Loads `old` with nft in one namespace and changes it to `new` with one
/// netlink batch of element changes; loads `new` with nft in another; both
/// tables must list the same.
fn assert_netlink_update_equals_full(
    lab: &Lab,
    name: &str,
    old: &pb::RouterConfig,
    new: &pb::RouterConfig,
) {
    let (old_rules, new_rules) = (ruleset(old), ruleset(new));
    let deltas = new_rules
        .element_changes(&old_rules, &Carry::default())
        .unwrap_or_else(|| panic!("{name}: more than elements change"));
    assert!(!deltas.is_empty(), "{name}: something changes");
    let changes = encode_deltas(&deltas).expect("encodable");
    let a = lab.netns(&format!("{name}-na")).unwrap();
    let b = lab.netns(&format!("{name}-nb")).unwrap();
    load(&a, vec![old_rules.render_full()]);
    with_socket(&a, move |s| s.apply(&changes)).expect("batch applied");
    let incremental = blocks(&load(&a, vec![]));
    let full = blocks(&load(&b, vec![new_rules.render_full()]));
    assert_eq!(
        incremental, full,
        "netlink update and full load differ for {name}"
    );
}

#[test]
fn netlink_element_changes_give_the_same_table_as_a_full_load() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    require_root();
    let lab = Lab::new("nft_netlink").unwrap();
    let base = sample_config();

    // An ACL item's port changes; an item is added in a layer that exists.
    let mut acl = base.clone();
    acl.network_acls[0].items[2].start_port = Some(8080);
    acl.network_acls[0].items[2].end_port = Some(8080);
    assert_netlink_update_equals_full(&lab, "port", &base, &acl);
    let mut cidrs = base.clone();
    cidrs.network_acls[0].items[1].cidrs = vec!["10.1.2.0/24".into(), "10.0.0.0/9".into()];
    cidrs.network_acls[1].items[0].cidrs = vec!["10.1.0.0/17".into(), "10.9.0.0/16".into()];
    assert_netlink_update_equals_full(&lab, "cidrs", &base, &cidrs);
    let mut added = base.clone();
    added.network_acls[0].items.push(item(
        140,
        Allow,
        Ingress,
        Tcp,
        &["10.77.0.0/16"],
        Some((443, 443)),
    ));
    assert_netlink_update_equals_full(&lab, "added", &base, &added);

    // A port forward moves to another public port and one is added
    // (elements of the port-shifting map); a static NAT changes its VM
    // (elements of the address, mark, source and interface maps).
    let mut nat = base.clone();
    nat.port_forwarding_rules[0].public_start_port = 2223;
    nat.port_forwarding_rules.push(pb::PortForwardingRule {
        id: "pf-web".into(),
        public_ip: "203.0.113.11".into(),
        protocol: Tcp as i32,
        public_start_port: 8443,
        private_ip: "10.1.1.7".into(),
        private_start_port: 443,
        ..Default::default()
    });
    assert_netlink_update_equals_full(&lab, "pf", &base, &nat);
    // Forwards of a single port and for some clients only, in their own
    // maps (new maps at first: a chain change), then changed: elements.
    let mut kinds = base.clone();
    kinds.port_forwarding_rules.extend([
        pb::PortForwardingRule {
            id: "pf-single".into(),
            public_ip: "203.0.113.11".into(),
            protocol: Tcp as i32,
            public_start_port: 7101,
            private_ip: "10.1.1.7".into(),
            private_start_port: 7101,
            ..Default::default()
        },
        pb::PortForwardingRule {
            id: "pf-sourced".into(),
            public_ip: "203.0.113.11".into(),
            protocol: Tcp as i32,
            public_start_port: 7301,
            private_ip: "10.1.1.7".into(),
            private_start_port: 7302,
            source_cidrs: vec!["198.51.100.0/25".into(), "192.0.2.0/24".into()],
            ..Default::default()
        },
    ]);
    let mut moved = kinds.clone();
    let n = moved.port_forwarding_rules.len();
    moved.port_forwarding_rules[n - 2].private_ip = "10.1.1.8".into();
    moved.port_forwarding_rules[n - 1].source_cidrs = vec!["198.51.100.128/25".into()];
    assert_netlink_update_equals_full(&lab, "pfk", &kinds, &moved);
    let mut snat = base.clone();
    snat.static_nat_rules[0].private_ip = "10.1.2.9".into();
    assert_netlink_update_equals_full(&lab, "snat", &base, &snat);
}

/// [`assert_netlink_update_equals_full`] for a table planned as the agent
/// plans a change: from the old router and table (the port forwards' maps
/// made from the previous maps, only the forwards that differ rendered),
/// which must equal the table planned from nothing.
fn assert_planned_from_old_equals_full(
    lab: &Lab,
    name: &str,
    old: &pb::RouterConfig,
    new: &pb::RouterConfig,
) {
    let options = NftOptions::default();
    let old_router = Router::from_config(old).expect("valid");
    let new_router = Router::from_config(new).expect("valid");
    let old_rules = plan(&old_router, &options);
    let from_old = plan_from(&new_router, &options, Some((&old_router, &old_rules)));
    assert!(
        from_old == plan(&new_router, &options),
        "{name}: the table planned from the old one differs"
    );
    assert_netlink_update_equals_full(lab, name, old, new);
}

/// The sample with 400 more port forwards, 80 of each map's kind, and a
/// second static NAT (203.0.113.13).
fn with_many_forwards(config: &pb::RouterConfig) -> pb::RouterConfig {
    let mut config = config.clone();
    config.port_forwarding_rules.extend((0..400u32).map(|k| {
        let first = 20_000 + 10 * k;
        let width = if k % 5 == 1 || k % 5 == 2 { 2 } else { 0 };
        let private = if k % 5 == 2 || k % 5 == 4 {
            first + 5
        } else {
            first
        };
        pb::PortForwardingRule {
            id: format!("pf-many-{k}"),
            public_ip: "203.0.113.11".into(),
            protocol: if k % 2 == 0 {
                pb::Protocol::Tcp
            } else {
                pb::Protocol::Udp
            } as i32,
            public_start_port: first,
            public_end_port: first + width,
            private_ip: format!("10.1.{}.{}", 1 + k % 2, 10 + k % 200),
            private_start_port: private,
            private_end_port: private + width,
            source_cidrs: if k % 5 >= 3 {
                vec!["198.51.100.0/25".into(), "192.0.2.0/24".into()]
            } else {
                vec![]
            },
        }
    }));
    config.public_ips.push(pb::PublicIp {
        ip_address: "203.0.113.13".into(),
        ..config.public_ips[1].clone()
    });
    config.static_nat_rules.push(pb::StaticNatRule {
        id: "snat-13".into(),
        public_ip: "203.0.113.13".into(),
        private_ip: "10.1.1.9".into(),
    });
    config
}

#[test]
fn nat_maps_planned_from_the_previous_ones_change_over_netlink_as_a_full_load() {
    require_root();
    let lab = Lab::new("nft_nat").unwrap();
    let base = with_many_forwards(&sample_config());
    let n = base.port_forwarding_rules.len();
    // One forward of each kind pointed elsewhere, in the middle of the list.
    for k in 200..205 {
        let mut pointed = base.clone();
        pointed.port_forwarding_rules[n - 400 + k].private_ip = "10.1.2.250".into();
        assert_planned_from_old_equals_full(&lab, &format!("pf-to-{k}"), &base, &pointed);
    }
    // A forward deleted from the middle, one added there, one moved to
    // another public port, a forward's clients changed.
    let mut deleted = base.clone();
    deleted.port_forwarding_rules.remove(137);
    assert_planned_from_old_equals_full(&lab, "pf-del", &base, &deleted);
    let mut added = base.clone();
    added.port_forwarding_rules.insert(
        50,
        pb::PortForwardingRule {
            id: "pf-inserted".into(),
            public_ip: "203.0.113.11".into(),
            protocol: pb::Protocol::Tcp as i32,
            public_start_port: 9_999,
            private_ip: "10.1.1.77".into(),
            private_start_port: 80,
            ..Default::default()
        },
    );
    assert_planned_from_old_equals_full(&lab, "pf-add", &base, &added);
    // (A forward that kept its port is shifted now: it changes maps.)
    let mut moved = base.clone();
    let r = &mut moved.port_forwarding_rules[300];
    let width = r.public_end_port.saturating_sub(r.public_start_port);
    r.public_start_port = 15_000;
    r.public_end_port = if width == 0 { 0 } else { 15_000 + width };
    assert_planned_from_old_equals_full(&lab, "pf-move", &base, &moved);
    let mut clients = base.clone();
    clients.port_forwarding_rules[n - 1].source_cidrs = vec!["198.51.100.128/25".into()];
    assert_planned_from_old_equals_full(&lab, "pf-clients", &base, &clients);
    // A static NAT added and one deleted: elements of its four maps.
    let mut nat_added = base.clone();
    nat_added.public_ips.push(pb::PublicIp {
        ip_address: "203.0.113.14".into(),
        ..base.public_ips[1].clone()
    });
    let with_ip = nat_added.clone();
    nat_added.static_nat_rules.push(pb::StaticNatRule {
        id: "snat-14".into(),
        public_ip: "203.0.113.14".into(),
        private_ip: "10.1.2.14".into(),
    });
    assert_planned_from_old_equals_full(&lab, "snat-add", &with_ip, &nat_added);
    let mut nat_deleted = base.clone();
    nat_deleted.static_nat_rules.pop();
    assert_planned_from_old_equals_full(&lab, "snat-del", &base, &nat_deleted);
}

/// `config` with 2,000 more ingress items on its first list: /24s spread
/// over eight /16s, so that the allow lookup is split into sets by address.
fn with_fillers(config: &pb::RouterConfig, port: u32) -> pb::RouterConfig {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut config = config.clone();
    config.network_acls[0].items.extend((0..2_000u32).map(|i| {
        let source = format!("10.{}.{}.0/24", 100 + i / 250, i % 250);
        let p = if i == 100 { port } else { 1024 + i };
        item(1000 + i, Allow, Ingress, Tcp, &[&source], Some((p, p)))
    }));
    config
}

#[test]
fn changes_to_a_list_split_into_sets_by_address_give_the_same_table_as_a_full_load() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    require_root();
    let lab = Lab::new("nft_shards").unwrap();
    let base = with_fillers(&sample_config(), 30000);
    let sets = |rules: &Ruleset| {
        rules
            .chains
            .iter()
            .flat_map(|c| &c.sets)
            .filter(|s| s.name.starts_with("acl_inbound_eth2_l0_allow_v4_ports"))
            .map(|s| s.elements.len())
            .collect::<Vec<_>>()
    };
    let split = sets(&ruleset(&base));
    assert!(split.len() > 8, "{split:?}");
    assert!(
        split
            .iter()
            .all(|&n| n <= vr_agent::plan::nft::SHARD_ELEMENTS),
        "{split:?}"
    );
    let b = lab.netns("full").unwrap();
    let listing = load(&b, vec![ruleset(&base).render_full()]);
    // The lookup dispatches on the address to a subchain per set.
    for text in [
        "ip saddr . meta l4proto vmap @acl_inbound_eth2_l0_allow_v4_ports_shards",
        "10.100.0.0/16 . 0-255 : jump ACL_INBOUND_eth2_l0_allow_v4_ports_0a640000_16",
        "ip saddr . meta l4proto . th dport @acl_inbound_eth2_l0_allow_v4_ports_0a640000_16 accept",
        "chain ACL_INBOUND_eth2_l0_allow_v4_ports_0a640000_16 {",
    ] {
        assert!(listing.contains(text), "{text}\n{listing}");
    }

    // One item's port (one set), an item added where no set of its own
    // is (the main set) and an item deleted: elements only.
    let port = with_fillers(&sample_config(), 30001);
    assert_netlink_update_equals_full(&lab, "shard-port", &base, &port);
    let mut added = base.clone();
    added.network_acls[0].items.push(item(
        9000,
        Allow,
        Ingress,
        Udp,
        &["10.251.1.0/24"],
        Some((7000, 7000)),
    ));
    assert_netlink_update_equals_full(&lab, "shard-add", &base, &added);
    let mut deleted = base.clone();
    deleted.network_acls[0].items.retain(|i| i.number != 1500);
    assert_netlink_update_equals_full(&lab, "shard-del", &base, &deleted);

    // Enough items gone that a /16 is left with too few for a set of its
    // own: its elements join the main set and the chain is rebuilt.
    let mut thinned = base.clone();
    thinned.network_acls[0]
        .items
        .retain(|i| !(1000..1000 + 240).contains(&i.number));
    assert_ne!(sets(&ruleset(&thinned)).len(), split.len());
    assert_update_equals_full(&lab, "shard-rebuild", &base, &thinned);
}

#[test]
fn a_netlink_batch_the_kernel_refuses_changes_nothing_and_counts_carry() {
    require_root();
    let lab = Lab::new("nft_nl_atomic").unwrap();
    let ns = lab.netns("r").unwrap();
    let rules = ruleset(&sample_config());
    let before = load(&ns, vec![rules.render_full()]);
    let (set, spec) = rules
        .chains
        .iter()
        .flat_map(|c| &c.sets)
        .find(|s| s.name.starts_with("acl_inbound_eth2") && s.spec.contains("inet_service"))
        .map(|s| (s.name.clone(), s.spec.clone()))
        .expect("an ACL set with ports");
    let ty = SetType::parse(&spec).unwrap();
    let good = Element::parse(&ty, r#"10.99.0.0/16 . 6 . 4000 comment "90 new""#, true).unwrap();
    let missing = Element::parse(&ty, "10.98.0.0/16 . 6 . 4000", false).unwrap();
    let refused = SetElements {
        set: set.clone(),
        delete: vec![missing],
        add: vec![good.clone()],
    };
    let err = with_socket(&ns, move |s| s.apply(&[refused])).expect_err("no such element");
    assert!(err.to_string().contains(&set), "{err}");
    assert_eq!(load(&ns, vec![]), before, "the refused batch left nothing");

    // An element added with counts holds them, and reads back by key.
    let counted = Element::parse(
        &ty,
        r#"10.99.0.0/16 . 6 . 4000 counter packets 7 bytes 700 comment "90 new""#,
        true,
    )
    .unwrap();
    let add = SetElements {
        set: set.clone(),
        delete: vec![],
        add: vec![counted.clone()],
    };
    let (set2, probe) = (set.clone(), counted.clone());
    let read = with_socket(&ns, move |s| {
        s.apply(&[add]).expect("added");
        s.get(&set2, &[probe]).expect("read")
    });
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(read[0].key, counted.key());
    assert_eq!(read[0].comment.as_deref(), Some("90 new"));
    assert_eq!(read[0].counter, Some((7, 700)));
    let listing = load(&ns, vec![]);
    assert!(
        listing
            .contains(r#"10.99.0.0/16 . tcp . 4000 counter packets 7 bytes 700 comment "90 new""#),
        "{listing}"
    );
    // An element that is not there reads as nothing.
    let absent = Element::parse(&ty, "10.98.0.0/16 . 6 . 4000", false).unwrap();
    let none = with_socket(&ns, move |s| s.get(&set, &[absent]).expect("read"));
    assert!(none.is_empty(), "{none:?}");
}

/// Where a one-item change's time goes at 10,000 items, printed (run with
/// `--nocapture`): planning the table, finding the element changes, and the
/// netlink batch itself (kernel included).
#[test]
fn one_item_change_at_10000_items_over_netlink_prints_its_time() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    use std::time::Instant;
    require_root();
    let lab = Lab::new("nft_nl_time").unwrap();
    let ns = lab.netns("r").unwrap();
    let mut config = sample_config();
    let fillers = |port: u32| -> Vec<pb::AclItem> {
        (0..10_000u32)
            .map(|i| {
                let source = format!("10.{}.{}.0/24", 100 + i / 250, i % 250);
                let p = if i == 100 {
                    port
                } else {
                    1024 + (i * 7) % 4000
                };
                item(1000 + i, Allow, Ingress, Tcp, &[&source], Some((p, p)))
            })
            .collect()
    };
    config.network_acls[0].items.extend(fillers(30000));
    let mut rules = ruleset(&config);
    load(&ns, vec![rules.render_full()]);
    let (mut plan_ms, mut diff_ms, mut batch_ms) = (Vec::new(), Vec::new(), Vec::new());
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    for rep in 0..20u32 {
        let mut next = sample_config();
        next.network_acls[0].items.extend(fillers(30001 + rep % 2));
        let t = Instant::now();
        let router = Router::from_config(&next).expect("valid");
        let next_rules = plan(&router, &NftOptions::default());
        plan_ms.push(ms(t));
        let t = Instant::now();
        let deltas = next_rules
            .element_changes(&rules, &Carry::default())
            .expect("elements only");
        let changes = encode_deltas(&deltas).expect("encodable");
        diff_ms.push(ms(t));
        assert_eq!(
            changes
                .iter()
                .map(|c| c.delete.len() + c.add.len())
                .sum::<usize>(),
            2
        );
        let took = with_socket(&ns, move |s| {
            let t = Instant::now();
            s.apply(&changes).expect("applied");
            t.elapsed().as_secs_f64() * 1000.0
        });
        batch_ms.push(took);
        rules = next_rules;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!(
        "one item of 10,000 changed: validate and plan {:.2} ms, element diff {:.2} ms, netlink batch {:.2} ms (medians of 20)",
        median(plan_ms),
        median(diff_ms),
        median(batch_ms)
    );
    let live = live_shape(&ns);
    assert_eq!(rules.shape().differences(&live), Vec::<String>::new());
}

/// `config` with eth2's list replaced by another list (other ids, every
/// rule shape the ACL chains have: IPv4 and IPv6, ports, protocols, ICMP,
/// several layers, both directions, and 2,000 items split into sets by
/// address, some behind prefixes that are not whole bytes).
fn replaced(config: &pb::RouterConfig) -> pb::RouterConfig {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    use vr_agent::testing::acls::Generator;
    let mut config = config.clone();
    let acl = &mut config.network_acls[0];
    acl.acl_id = "acl-other".into();
    acl.items = Generator::Realistic.items(300, 7);
    acl.items.extend([
        item(
            400,
            Allow,
            Ingress,
            Tcp,
            &["2001:db8::/32"],
            Some((443, 443)),
        ),
        item(
            401,
            Deny,
            Ingress,
            Tcp,
            &["2001:db8:1::/48"],
            Some((443, 443)),
        ),
        item(
            402,
            Allow,
            Egress,
            Udp,
            &["2001:db8:8000::/33"],
            Some((53, 53)),
        ),
        item(403, Allow, Ingress, Icmp, &["2001:db8::/32"], None),
        item(404, Allow, Egress, All, &["2001:db8::/32"], None),
        item(405, Deny, Egress, Icmp, &["10.9.0.0/16"], None),
    ]);
    // 2,000 /24s in 10.128.0.0/9 and 10.0.0.0/9: split into sets by
    // address, the first halving prefixes of part of a byte.
    acl.items.extend((0..2_000u32).map(|i| {
        let second = if i % 2 == 0 { 128 + i / 500 } else { i / 500 };
        let source = format!("10.{second}.{}.0/24", (i / 2) % 250);
        item(
            1000 + i,
            Allow,
            Ingress,
            Tcp,
            &[&source],
            Some((1024 + i, 1024 + i)),
        )
    }));
    for (k, item) in acl.items.iter_mut().enumerate() {
        item.id = format!("other-{k}");
    }
    config
}

#[test]
fn a_chain_rebuilt_over_netlink_lists_as_a_full_load() {
    require_root();
    let lab = Lab::new("nft_nl_chains").unwrap();
    let old = sample_config();
    let new = replaced(&old);
    let (old_rules, new_rules) = (ruleset(&old), ruleset(&new));
    let rebuilt: Vec<String> = new_rules
        .chains
        .iter()
        .filter(|c| c.name.starts_with("ACL_"))
        .flat_map(|c| {
            let subs = c.subchains.iter().flat_map(|s| s.rules.clone());
            c.rules.clone().into_iter().chain(subs)
        })
        .collect();
    // Sharded lookups: dispatch maps and subchains come and go too.
    assert!(
        rebuilt
            .iter()
            .any(|r| r.starts_with("ip saddr . meta l4proto vmap @")),
        "{rebuilt:#?}"
    );
    assert!(
        new_rules
            .chains
            .iter()
            .any(|c| c.name == "ACL_INBOUND_eth2" && !c.subchains.is_empty()),
        "the sharded lookups have subchains"
    );
    assert!(
        rebuilt.iter().any(|r| r.starts_with("ip6 ")),
        "{rebuilt:#?}"
    );
    assert!(
        rebuilt.iter().any(|r| r.contains("icmpv6 type")),
        "{rebuilt:#?}"
    );
    // No item stays (the new list's ids are all new): nothing is read.
    let needs = new_rules.carry_needs(&old_rules);
    assert!(
        needs.sets.is_empty() && needs.elements.is_empty(),
        "{needs:?}"
    );
    let changes = new_rules
        .chain_changes(&old_rules, &Carry::default())
        .expect("ACL chains and elements only");
    assert_eq!(changes.rebuilt.len(), 2, "eth2's two chains");
    let batch = encode_chain_changes(&changes).expect("encodable");
    let a = lab.netns("nl").unwrap();
    let b = lab.netns("full").unwrap();
    load(&a, vec![old_rules.render_full()]);
    with_socket(&a, move |s| s.apply_chains(&batch)).expect("batch applied");
    let replaced = blocks(&load(&a, vec![]));
    let full = blocks(&load(&b, vec![new_rules.render_full()]));
    assert_eq!(
        replaced, full,
        "a list replaced over netlink and a full load differ"
    );
    // And back, through the same path.
    let changes = old_rules
        .chain_changes(&new_rules, &Carry::default())
        .expect("ACL chains and elements only");
    let batch = encode_chain_changes(&changes).expect("encodable");
    with_socket(&a, move |s| s.apply_chains(&batch)).expect("batch applied");
    assert_eq!(
        blocks(&load(&a, vec![])),
        blocks(&load(&b, vec![old_rules.render_full()]))
    );
}

#[test]
fn a_rebuilt_chain_keeps_the_counts_of_its_items_that_stay_and_a_refused_one_changes_nothing() {
    use vr_agent::plan::nft::counters;
    require_root();
    let lab = Lab::new("nft_nl_carry").unwrap();
    // The same ids with other ports: every item stays and its elements
    // all change, in sets split by address (too many deletions for
    // element changes: the chain is rebuilt).
    let old = replaced(&sample_config());
    let mut new = old.clone();
    for item in &mut new.network_acls[0].items {
        if let Some(port) = item.start_port.filter(|p| *p >= 1024) {
            item.start_port = Some(port + 1);
            item.end_port = Some(port + 1);
        }
    }
    let (old_rules, new_rules) = (ruleset(&old), ruleset(&new));
    let chain = "ACL_INBOUND_eth2".to_string();
    let (kept, far) = (
        &old.network_acls[0].items[310],
        &old.network_acls[0].items[1500],
    );
    let counted: counters::ChainCounts = [(&kept.id, (3, 300)), (&far.id, (7, 700))]
        .into_iter()
        .map(|(item, count)| ((chain.clone(), item.clone()), count))
        .collect();
    let far_tag = format!(
        r#"counter packets 7 bytes 700 comment "{} {}""#,
        far.number, far.id
    );
    let a = lab.netns("nl").unwrap();
    let b = lab.netns("full").unwrap();
    load(&a, vec![old_rules.render_full_with(&counted)]);
    let needs = new_rules.carry_needs(&old_rules);
    assert!(!needs.sets.is_empty(), "the rebuilt chain's items stay");
    let (old2, new2) = (old_rules.clone(), new_rules.clone());
    with_socket(&a, move |s| {
        let mut counts = counters::ChainCounts::new();
        for set in &needs.sets {
            let read = s.dump(set).expect("dump");
            let found = read
                .iter()
                .filter_map(|r| Some((r.comment.as_deref()?, r.counter?)));
            for (key, (p, b)) in counters::chain_counts_of_read(set, found) {
                let sum = counts.entry(key).or_default();
                sum.0 += p;
                sum.1 += b;
            }
        }
        let carry = Carry {
            counts,
            refreshed: needs.refreshed,
        };
        let changes = new2.chain_changes(&old2, &carry).expect("chains only");
        let batch = encode_chain_changes(&changes).expect("encodable");
        s.apply_chains(&batch).expect("applied");
    });
    let rebuilt = blocks(&load(&a, vec![]));
    let full = blocks(&load(&b, vec![new_rules.render_full_with(&counted)]));
    assert_eq!(rebuilt, full, "counts carried as a full load with them");
    assert!(rebuilt.iter().any(|b| b.contains(&far_tag)), "{rebuilt:#?}");

    // A batch the kernel refuses (a rule looking up a set it does not
    // create) leaves the table as it was.
    let before = load(&a, vec![]);
    let mut broken = ruleset(&new);
    let acl = broken
        .chains
        .iter_mut()
        .find(|c| c.name == chain)
        .expect("eth2's chain");
    acl.rules
        .insert(0, "ip saddr . meta l4proto @no_such_set accept".into());
    let changes = broken
        .chain_changes(&new_rules, &Carry::default())
        .expect("chains only");
    let batch = encode_chain_changes(&changes).expect("encodable");
    let err = with_socket(&a, move |s| s.apply_chains(&batch)).expect_err("no such set");
    assert!(err.to_string().contains(&chain), "{err}");
    assert_eq!(load(&a, vec![]), before, "the refused batch left nothing");
}

/// Where replacing a list of 10,000 items goes when it goes over netlink,
/// printed (run with `--release -- --nocapture`): planning the new table
/// (the list compiled), finding the chain changes and encoding them, and
/// the batch itself (the kernel's transaction: 41 sets and 10,000
/// elements created, 41 deleted).
#[test]
fn a_list_replaced_at_10000_items_over_netlink_prints_its_time() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    use std::time::Instant;
    require_root();
    let lab = Lab::new("nft_nl_replace_time").unwrap();
    let ns = lab.netns("r").unwrap();
    let list = |shift: u32| {
        let mut config = sample_config();
        config.network_acls[0].acl_id = format!("acl-{shift}");
        config.network_acls[0].items = (0..10_000u32)
            .map(|i| {
                let source = format!("10.{}.{}.0/24", 100 + i / 250, i % 250);
                let p = 1024 + (i * 7 + shift) % 4000;
                let mut item = item(i + 1, Allow, Ingress, Tcp, &[&source], Some((p, p)));
                item.id = format!("list-{shift}-item-{i}");
                item
            })
            .collect();
        config
    };
    let mut rules = ruleset(&list(0));
    load(&ns, vec![rules.render_full()]);
    let (mut plan_ms, mut encode_ms, mut batch_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut needs_ms, mut changes_ms) = (Vec::new(), Vec::new());
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    for rep in 1..=10u32 {
        let next = list(rep % 2);
        let t = Instant::now();
        let router = Router::from_config(&next).expect("valid");
        let next_rules = plan(&router, &NftOptions::default());
        plan_ms.push(ms(t));
        let t = Instant::now();
        assert!(
            next_rules.carry_needs(&rules).sets.is_empty(),
            "no item stays"
        );
        needs_ms.push(ms(t));
        let t = Instant::now();
        let changes = next_rules
            .chain_changes(&rules, &Carry::default())
            .expect("chains only");
        changes_ms.push(ms(t));
        let t = Instant::now();
        let batch = encode_chain_changes(&changes).expect("encodable");
        encode_ms.push(ms(t));
        assert_eq!(batch.chains(), 1);
        // The 10,000 items' elements and the dispatch maps' (one per set
        // of a sharded lookup).
        let dispatch: usize = next_rules
            .chains
            .iter()
            .flat_map(|c| &c.sets)
            .filter(|s| s.kind == "map" && s.name.starts_with("acl_"))
            .map(|s| s.elements.len())
            .sum();
        assert!(dispatch >= 10_000 / vr_agent::plan::nft::SHARD_ELEMENTS);
        assert_eq!(batch.element_count(), 10_000 + dispatch);
        let took = with_socket(&ns, move |s| {
            let t = Instant::now();
            s.apply_chains(&batch).expect("applied");
            t.elapsed().as_secs_f64() * 1000.0
        });
        batch_ms.push(took);
        rules = next_rules;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!(
        "a list of 10,000 replaced: validate and plan {:.2} ms, what to read {:.2} ms, chain changes {:.2} ms, encoding {:.2} ms, netlink batch {:.2} ms (medians of 10)",
        median(plan_ms),
        median(needs_ms),
        median(changes_ms),
        median(encode_ms),
        median(batch_ms)
    );
    let live = live_shape(&ns);
    assert_eq!(rules.shape().differences(&live), Vec::<String>::new());
}

#[test]
fn every_generators_ten_thousand_items_load_in_full_and_over_netlink() {
    use vr_agent::testing::acls::{Generator, bench_allow};
    require_root();
    let lab = Lab::new("nft_generators").unwrap();
    // Each list is loaded whole, then replaced over netlink by the next
    // generator's (its dispatch maps and subchains deleted and created in
    // one batch): nf_tables checks chain depth and map data at both.
    let ns = lab.netns("r").unwrap();
    let mut previous: Option<Ruleset> = None;
    for generator in Generator::TRAFFIC {
        let mut config = sample_config();
        let mut items = generator.items(9_999, 7);
        items.push(bench_allow(10_000));
        config.network_acls[0].items = items;
        let rules = ruleset(&config);
        let chain = rules
            .chains
            .iter()
            .find(|c| c.name == "ACL_INBOUND_eth2")
            .expect("chain");
        assert!(!chain.subchains.is_empty(), "{}", generator.name());
        let full = lab.netns(&format!("full-{}", generator as usize)).unwrap();
        let listing = blocks(&load(&full, vec![rules.render_full()]));
        match previous.replace(rules.clone()) {
            None => {
                load(&ns, vec![rules.render_full()]);
            }
            Some(old) => {
                let changes = rules
                    .chain_changes(&old, &Carry::default())
                    .expect("ACL chains and elements only");
                let batch = encode_chain_changes(&changes).expect("encodable");
                with_socket(&ns, move |s| s.apply_chains(&batch)).expect("batch applied");
            }
        }
        assert_eq!(
            blocks(&load(&ns, vec![])),
            listing,
            "{}: netlink and full load differ",
            generator.name()
        );
    }
}

#[test]
fn ipv6_and_egress_lookups_split_by_address_load_and_rebuild_over_netlink() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    require_root();
    let lab = Lab::new("nft_v6_shards").unwrap();
    // 600 IPv6 ingress allows, 600 IPv4 egress denies and 600 IPv4 egress
    // allows, each over three /48s or /16s: the first two dispatch through
    // a map, the egress allows (which return) keep guarded rules.
    let list = |port: u32| {
        let mut config = sample_config();
        let mut items = Vec::new();
        for i in 0..600u32 {
            let v6 = format!("2001:db8:{:x}:{:x}::/64", i / 250, i % 250);
            let v4 = format!("10.{}.{}.0/24", 100 + i / 250, i % 250);
            let p = port + i;
            items.push(item(i + 1, Allow, Ingress, Tcp, &[&v6], Some((p, p))));
            items.push(item(1000 + i, Deny, Egress, Tcp, &[&v4], Some((p, p))));
            items.push(item(2000 + i, Allow, Egress, Udp, &[&v4], Some((p, p))));
        }
        config.network_acls[0].items = items;
        ruleset(&config)
    };
    let (old, new) = (list(20000), list(30000));
    let find = |rules: &Ruleset, name: &str| rules.chains.iter().find(|c| c.name == name).cloned();
    let inbound = find(&new, "ACL_INBOUND_eth2").expect("inbound");
    let outbound = find(&new, "ACL_OUTBOUND_eth2").expect("outbound");
    assert!(
        inbound.rules[0].starts_with("ip6 saddr . meta l4proto vmap @"),
        "{:#?}",
        inbound.rules
    );
    assert!(
        outbound
            .rules
            .iter()
            .any(|r| r.starts_with("ip daddr . meta l4proto vmap @")),
        "{:#?}",
        outbound.rules
    );
    assert!(
        outbound
            .rules
            .iter()
            .any(|r| r.starts_with("ip daddr 10.100.0.0/16 ") && r.ends_with(" return")),
        "{:#?}",
        outbound.rules
    );
    assert!(
        outbound
            .subchains
            .iter()
            .all(|s| s.rules[0].ends_with(" drop"))
    );
    let a = lab.netns("a").unwrap();
    let b = lab.netns("b").unwrap();
    load(&a, vec![old.render_full()]);
    let changes = new
        .chain_changes(&old, &Carry::default())
        .expect("ACL chains and elements only");
    let batch = encode_chain_changes(&changes).expect("encodable");
    with_socket(&a, move |s| s.apply_chains(&batch)).expect("batch applied");
    let listing = load(&b, vec![new.render_full()]);
    assert!(
        listing.contains("2001:db8::/48 . 0-255 : jump ACL_INBOUND_eth2_l0_allow_v6_ports_"),
        "{listing}"
    );
    assert_eq!(blocks(&load(&a, vec![])), blocks(&listing));
}
