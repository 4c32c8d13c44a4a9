//! Port forwarding and static NAT on VPC addresses through the HTTP API, on
//! SQLite and PostgreSQL: each rule allowed and refused (tier binding, one
//! purpose per address, port conflicts, VMs in the tier, ownership), the
//! whole lists the router gets with their generations, and failed pushes
//! undoing the change.

mod support;

use serde_json::Value;
use support::api::{BOGUS, Client, TestManager, job_ok, on_both_backends, refused, run_job};
use support::vpc::{create_tier, create_vpc, deploy_vm_addr as deploy, user, zone_env};
use vpc_manager::orchestration::{AgentCommand, AgentError};
use vpc_manager::server::command::AsyncCommand;
use vpc_manager::services::ip::rule_flow::RuleJob;
use vpc_manager::services::nat::forward::CreatePortForwardingRule;
use vpc_manager::store::rule;
use vpc_proto::v1 as pb;

/// A refused call: its parameters, the expected code and a piece of the text.
type OwnedCase<'a> = (Vec<(&'a str, String)>, u16, &'a str);
/// A refused call: its parameters, the expected code and a piece of the text.
type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);

/// Acquires an address for the VPC; returns (id, address).
async fn acquire(client: &Client, vpc: &str) -> (String, String) {
    let ip = job_ok(client, "associateIpAddress", &[("vpcid", vpc)]).await["ipaddress"].clone();
    (
        ip["id"].as_str().unwrap().to_string(),
        ip["ipaddress"].as_str().unwrap().to_string(),
    )
}

/// One address as its owner lists it.
async fn address(client: &Client, id: &str) -> Value {
    client.ok("listPublicIpAddresses", &[("id", id)]).await["publicipaddress"][0].clone()
}

/// The last generation the router was sent.
fn last_generation(m: &TestManager) -> u64 {
    m.agent
        .commands()
        .iter()
        .filter_map(AgentCommand::generation)
        .max()
        .unwrap_or_default()
}

/// The only command since the last clear: the port forwarding list.
fn only_forwards(m: &TestManager) -> pb::SetPortForwardingRulesRequest {
    assert_eq!(m.agent.rpcs(), ["SetPortForwardingRules"]);
    match m.agent.commands().remove(0) {
        AgentCommand::SetPortForwardingRules(r) => r,
        other => panic!("{other:?}"),
    }
}

/// The only command since the last clear: the static NAT list.
fn only_static_nats(m: &TestManager) -> pb::SetStaticNatRulesRequest {
    assert_eq!(m.agent.rpcs(), ["SetStaticNatRules"]);
    match m.agent.commands().remove(0) {
        AgentCommand::SetStaticNatRules(r) => r,
        other => panic!("{other:?}"),
    }
}

/// (public ip, protocol, public ports, private ip, private ports) of each rule.
fn forwards(
    r: &pb::SetPortForwardingRulesRequest,
) -> Vec<(String, i32, u32, u32, String, u32, u32)> {
    r.rules
        .iter()
        .map(|f| {
            (
                f.public_ip.clone(),
                f.protocol,
                f.public_start_port,
                f.public_end_port,
                f.private_ip.clone(),
                f.private_start_port,
                f.private_end_port,
            )
        })
        .collect()
}

const TCP: i32 = pb::Protocol::Tcp as i32;
const UDP: i32 = pb::Protocol::Udp as i32;

/// What both tests start from: a user with a VPC, tiers web and db, VMs
/// (vm1, vm2 in web; vm3 in db; vm4 in both), and another user with a VM.
struct World {
    eve: Client,
    frank: Client,
    vpc: String,
    web: String,
    db: String,
    vm1: (String, String),
    vm2: (String, String),
    vm3: (String, String),
    vm4: (String, String),
    frank_vm: String,
    source_nat: String,
}

async fn world(m: &TestManager, zone: &str) -> World {
    let admin = m.admin();
    let env = zone_env(&admin, zone).await;
    let eve = user(&admin, &format!("{zone}-eve")).await;
    let frank = user(&admin, &format!("{zone}-frank")).await;
    let vpc = create_vpc(&eve, &env, "eve-vpc", "10.5.0.0/16").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let web = create_tier(&eve, &env, &vpc, "web", "10.5.1.1", "255.255.255.0").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let db = create_tier(&eve, &env, &vpc, "db", "10.5.2.1", "255.255.255.0").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let vm1 = deploy(&eve, &env, &web, "vm1").await;
    let vm2 = deploy(&eve, &env, &web, "vm2").await;
    let vm3 = deploy(&eve, &env, &db, "vm3").await;
    let vm4 = deploy(&eve, &env, &format!("{web},{db}"), "vm4").await;
    let frank_vpc = create_vpc(&frank, &env, "frank-vpc", "10.6.0.0/16").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let frank_tier = create_tier(&frank, &env, &frank_vpc, "f", "10.6.1.1", "255.255.255.0").await
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let frank_vm = deploy(&frank, &env, &frank_tier, "fvm").await.0;
    let source_nat = eve
        .ok(
            "listPublicIpAddresses",
            &[("vpcid", &vpc), ("issourcenat", "true")],
        )
        .await["publicipaddress"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    World {
        eve,
        frank,
        vpc,
        web,
        db,
        vm1,
        vm2,
        vm3,
        vm4,
        frank_vm,
        source_nat,
    }
}

fn pf<'a>(
    ip: &'a str,
    vm: &'a str,
    proto: &'a str,
    public: &'a str,
    private: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ipaddressid", ip),
        ("virtualmachineid", vm),
        ("protocol", proto),
        ("publicport", public),
        ("privateport", private),
    ]
}

fn with<'a>(
    mut p: Vec<(&'a str, &'a str)>,
    key: &'a str,
    value: &'a str,
) -> Vec<(&'a str, &'a str)> {
    p.retain(|(k, _)| *k != key);
    p.push((key, value));
    p
}

on_both_backends!(
    port_forwarding_binds_addresses_and_pushes_whole_lists,
    |m| {
        let w = world(m, "natz1").await;
        let eve = &w.eve;
        let (ip1, addr1) = acquire(eve, &w.vpc).await;
        let (ip2, _) = acquire(eve, &w.vpc).await;
        let (ip3, _) = acquire(eve, &w.vpc).await;
        let g = last_generation(m);
        m.agent.clear();

        // The first rule binds the address to its tier; the router gets the
        // whole list with the next generation.
        let started = eve
            .ok(
                "createPortForwardingRule",
                &with(pf(&ip1, &w.vm1.0, "tcp", "2222", "22"), "networkid", &w.web),
            )
            .await;
        let rule1 = started["id"].as_str().unwrap().to_string();
        let done = eve.wait_job(started["jobid"].as_str().unwrap()).await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        assert_eq!(done["jobinstancetype"], "FirewallRule");
        let r = done["jobresult"]["portforwardingrule"].clone();
        assert_eq!(r["id"], rule1.as_str());
        assert_eq!(r["state"], "Active");
        assert_eq!(r["publicport"], "2222");
        assert_eq!(r["publicendport"], "2222");
        assert_eq!(r["privateport"], "22");
        assert_eq!(r["protocol"], "tcp");
        assert_eq!(r["ipaddressid"], ip1.as_str());
        assert_eq!(r["ipaddress"], addr1.as_str());
        assert_eq!(r["virtualmachineid"], w.vm1.0.as_str());
        assert_eq!(r["virtualmachinename"], "vm1");
        assert_eq!(r["vmguestip"], w.vm1.1.as_str());
        assert_eq!(r["networkid"], w.web.as_str());
        assert_eq!(r["cidrlist"], "0.0.0.0/0");
        let sent = only_forwards(m);
        assert_eq!(sent.generation, g + 1);
        assert_eq!(
            forwards(&sent),
            [(addr1.clone(), TCP, 2222, 2222, w.vm1.1.clone(), 22, 22)]
        );
        let ip = address(eve, &ip1).await;
        assert_eq!(ip["associatednetworkid"], w.web.as_str());
        assert_eq!(ip["associatednetworkname"], "web");
        assert_eq!(ip["hasrules"], true);
        m.agent.clear();

        // A bound address needs no networkid; a port range; the same port with
        // another protocol does not conflict.
        let rule2 = job_ok(
            eve,
            "createPortForwardingRule",
            &[
                ("ipaddressid", ip1.as_str()),
                ("virtualmachineid", w.vm2.0.as_str()),
                ("protocol", "udp"),
                ("publicport", "2222"),
                ("publicendport", "2223"),
                ("privateport", "5000"),
                ("privateendport", "5001"),
                ("cidrlist", "192.0.2.0/24,198.51.100.0/24"),
            ],
        )
        .await["portforwardingrule"]
            .clone();
        assert_eq!(rule2["publicendport"], "2223");
        assert_eq!(rule2["privateendport"], "5001");
        assert_eq!(rule2["cidrlist"], "192.0.2.0/24,198.51.100.0/24");
        let sent = only_forwards(m);
        assert_eq!(sent.generation, g + 2);
        assert_eq!(
            forwards(&sent),
            [
                (addr1.clone(), TCP, 2222, 2222, w.vm1.1.clone(), 22, 22),
                (addr1.clone(), UDP, 2222, 2223, w.vm2.1.clone(), 5000, 5001),
            ]
        );
        assert_eq!(
            sent.rules[1].source_cidrs,
            ["192.0.2.0/24", "198.51.100.0/24"]
        );
        m.agent.clear();

        // An unbound address without networkid goes to the VM's only tier.
        let rule3 = job_ok(
            eve,
            "createPortForwardingRule",
            &pf(&ip2, &w.vm3.0, "tcp", "3306", "3306"),
        )
        .await["portforwardingrule"]
            .clone();
        assert_eq!(rule3["networkid"], w.db.as_str());
        assert_eq!(
            address(eve, &ip2).await["associatednetworkid"],
            w.db.as_str()
        );
        let sent = only_forwards(m);
        assert_eq!((sent.rules.len(), sent.generation), (3, g + 3));
        m.agent.clear();

        // Refusals, before anything is stored or sent.
        let cases: Vec<Case> = vec![
            (
                with(
                    with(
                        pf(&ip1, &w.vm1.0, "tcp", "2220", "2220"),
                        "publicendport",
                        "2230",
                    ),
                    "privateendport",
                    "2230",
                ),
                537,
                "The range specified, 2220-2230, conflicts with",
            ),
            (
                with(
                    pf(&ip3, &w.vm1.0, "tcp", "80", "80"),
                    "openfirewall",
                    "true",
                ),
                431,
                "openFirewall=true",
            ),
            (
                pf(&w.source_nat, &w.vm1.0, "tcp", "80", "80"),
                431,
                "source nat",
            ),
            (
                with(pf(&ip1, &w.vm3.0, "tcp", "80", "80"), "networkid", &w.db),
                431,
                "associated with another tier",
            ),
            (
                pf(&ip1, &w.vm3.0, "tcp", "80", "80"),
                431,
                "vm3 has no NIC in tier web",
            ),
            (
                with(
                    pf(&ip1, &w.vm1.0, "tcp", "80", "80"),
                    "vmguestip",
                    "10.5.1.250",
                ),
                431,
                "no address 10.5.1.250",
            ),
            (
                with(pf(&ip1, &w.vm1.0, "tcp", "80", "80"), "publicendport", "81"),
                431,
                "must have the same number of ports",
            ),
            (
                pf(&ip1, &w.vm1.0, "icmp", "80", "80"),
                431,
                "only tcp and udp",
            ),
            (
                pf(&ip3, &w.vm4.0, "tcp", "80", "80"),
                431,
                "networkid is required",
            ),
            (
                pf(BOGUS, &w.vm1.0, "tcp", "80", "80"),
                431,
                "Invalid parameter ipaddressid value=",
            ),
            (
                pf(&ip1, BOGUS, "tcp", "80", "80"),
                431,
                "Invalid parameter virtualmachineid value=",
            ),
            (pf(&ip1, &w.frank_vm, "tcp", "80", "80"), 531, ""),
        ];
        for (params, code, needle) in cases {
            let (got, text) = refused(eve, "createPortForwardingRule", &params).await;
            assert_eq!(got, code, "{params:?}: {text}");
            assert!(text.contains(needle), "{needle:?} not in {text:?}");
        }
        let (code, _) = refused(
            &w.frank,
            "createPortForwardingRule",
            &pf(&ip1, &w.frank_vm, "tcp", "80", "80"),
        )
        .await;
        assert_eq!(code, 531);
        // The admin may use both, but an address forwards only to its owner's VMs.
        let (code, text) = refused(
            &m.admin(),
            "createPortForwardingRule",
            &pf(&ip1, &w.frank_vm, "tcp", "80", "80"),
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("belong to different accounts"), "{text}");
        assert!(m.agent.commands().is_empty(), "refusals send nothing");

        // Static NAT on an address with port forwarding: CloudStack's conflict.
        let (code, text) = refused(
            eve,
            "enableStaticNat",
            &[("ipaddressid", &ip1), ("virtualmachineid", &w.vm1.0)],
        )
        .await;
        assert_eq!(code, 537);
        assert!(
            text.contains("There is already firewall rule specified for the ip address"),
            "{text}"
        );

        // Lists: filters, paging, ownership.
        let list = |params: Vec<(&'static str, String)>| {
            let eve = eve.clone();
            async move {
                let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let listed = eve.ok("listPortForwardingRules", &p).await;
                (
                    listed["count"].as_u64().unwrap_or(0),
                    listed["portforwardingrule"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                )
            }
        };
        assert_eq!(list(vec![]).await.0, 3);
        assert_eq!(list(vec![("ipaddressid", ip1.clone())]).await.0, 2);
        let (count, db_rules) = list(vec![("networkid", w.db.clone())]).await;
        assert_eq!(
            (count, db_rules[0]["id"].as_str()),
            (1, rule3["id"].as_str())
        );
        let (count, page) = list(vec![("page", "2".into()), ("pagesize", "2".into())]).await;
        assert_eq!((count, page.len()), (3, 1));
        assert_eq!(list(vec![("id", rule1.clone())]).await.0, 1);
        let (status, body) = w.frank.call("listPortForwardingRules", &[]).await;
        assert_eq!(status, 200);
        assert_eq!(
            body["listportforwardingrulesresponse"],
            serde_json::json!({})
        );
        let (code, _) = refused(
            &w.frank,
            "listPortForwardingRules",
            &[("ipaddressid", &ip1)],
        )
        .await;
        assert_eq!(code, 531);
        let (code, _) = refused(&w.frank, "deletePortForwardingRule", &[("id", &rule1)]).await;
        assert_eq!(code, 531);
        let (code, _) = refused(&w.frank, "updatePortForwardingRule", &[("id", &rule1)]).await;
        assert_eq!(code, 531);

        // Update: a new private port (the range keeps its length) and a new VM.
        let g = g + 3;
        let updated = job_ok(
            eve,
            "updatePortForwardingRule",
            &[
                ("id", &rule1),
                ("privateport", "2022"),
                ("virtualmachineid", &w.vm2.0),
            ],
        )
        .await["portforwardingrule"]
            .clone();
        assert_eq!(updated["privateport"], "2022");
        assert_eq!(updated["virtualmachineid"], w.vm2.0.as_str());
        assert_eq!(updated["vmguestip"], w.vm2.1.as_str());
        assert_eq!(updated["state"], "Active");
        let sent = only_forwards(m);
        assert_eq!(sent.generation, g + 1);
        assert_eq!(
            forwards(&sent)[0],
            (addr1.clone(), TCP, 2222, 2222, w.vm2.1.clone(), 2022, 2022)
        );
        m.agent.clear();
        let (code, text) = refused(
            eve,
            "updatePortForwardingRule",
            &[("id", &rule1), ("privateendport", "2030")],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("same number of ports"), "{text}");
        let (code, text) = refused(
            eve,
            "updatePortForwardingRule",
            &[("id", &rule1), ("virtualmachineid", &w.vm3.0)],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("has no NIC in tier web"), "{text}");

        // The router fails: a new rule is removed, an update keeps the old
        // values, a deletion keeps the rule; every job fails with 530.
        m.agent.fail(
            "SetPortForwardingRules",
            AgentError::Failed("nft: busy".into()),
        );
        let failed = run_job(
            eve,
            "createPortForwardingRule",
            &pf(&ip1, &w.vm1.0, "tcp", "80", "8080"),
        )
        .await;
        assert_eq!(
            (
                failed["jobstatus"].as_u64(),
                failed["jobresultcode"].as_u64()
            ),
            (Some(2), Some(530))
        );
        assert!(
            failed["jobresult"]["errortext"]
                .as_str()
                .unwrap()
                .contains("SetPortForwardingRules"),
            "{failed}"
        );
        assert_eq!(list(vec![]).await.0, 3);
        let failed = run_job(
            eve,
            "updatePortForwardingRule",
            &[("id", &rule1), ("privateport", "22")],
        )
        .await;
        assert_eq!(failed["jobstatus"], 2);
        let (_, kept) = list(vec![("id", rule1.clone())]).await;
        assert_eq!(
            (kept[0]["privateport"].as_str(), kept[0]["state"].as_str()),
            (Some("2022"), Some("Active"))
        );
        let failed = run_job(
            eve,
            "deletePortForwardingRule",
            &[("id", rule3["id"].as_str().unwrap())],
        )
        .await;
        assert_eq!(failed["jobstatus"], 2);
        let (_, kept) = list(vec![("networkid", w.db.clone())]).await;
        assert_eq!(kept[0]["state"], "Active");
        m.agent.unfail("SetPortForwardingRules");
        m.agent.clear();

        // Deleting the last rule of an address unbinds it.
        let done = job_ok(
            eve,
            "deletePortForwardingRule",
            &[("id", rule3["id"].as_str().unwrap())],
        )
        .await;
        assert_eq!(done["success"], true);
        let sent = only_forwards(m);
        assert_eq!(sent.rules.len(), 2);
        assert!(sent.rules.iter().all(|r| r.public_ip == addr1));
        let ip = address(eve, &ip2).await;
        assert!(ip.get("associatednetworkid").is_none(), "{ip}");
        assert_eq!(ip["hasrules"], false);
        let (code, _) = refused(
            eve,
            "deletePortForwardingRule",
            &[("id", rule3["id"].as_str().unwrap())],
        )
        .await;
        assert_eq!(code, 431);
        m.agent.clear();

        // Releasing an address withdraws its rules and the address together.
        job_ok(eve, "disassociateIpAddress", &[("id", &ip1)]).await;
        assert_eq!(m.agent.rpcs(), ["SetPortForwardingRules", "IpAssoc"]);
        let commands = m.agent.commands();
        let generations: Vec<u64> = commands
            .iter()
            .filter_map(AgentCommand::generation)
            .collect();
        assert_eq!(generations[0], generations[1], "one change, one generation");
        match &commands[0] {
            AgentCommand::SetPortForwardingRules(r) => assert!(r.rules.is_empty(), "{r:?}"),
            other => panic!("{other:?}"),
        }
        match &commands[1] {
            AgentCommand::IpAssoc(r) => {
                assert_eq!(r.ips.len(), 1);
                assert!(!r.ips[0].add);
                assert_eq!(r.ips[0].ip_address, addr1);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(list(vec![]).await.0, 0);
    }
);

on_both_backends!(static_nat_maps_one_address_to_one_vm, |m| {
    let w = world(m, "natz2").await;
    let eve = &w.eve;
    let (ip2, addr2) = acquire(eve, &w.vpc).await;
    let (ip3, _) = acquire(eve, &w.vpc).await;
    let g = last_generation(m);
    m.agent.clear();

    // enableStaticNat is synchronous: the router has the whole list when it
    // answers.
    let body = eve
        .ok(
            "enableStaticNat",
            &[
                ("ipaddressid", &ip2),
                ("virtualmachineid", &w.vm3.0),
                ("networkid", &w.db),
            ],
        )
        .await;
    assert_eq!(body["success"], true);
    let sent = only_static_nats(m);
    assert_eq!(sent.generation, g + 1);
    assert_eq!(sent.rules.len(), 1);
    assert_eq!(sent.rules[0].id, ip2);
    assert_eq!(sent.rules[0].public_ip, addr2);
    assert_eq!(sent.rules[0].private_ip, w.vm3.1);
    let ip = address(eve, &ip2).await;
    assert_eq!(ip["isstaticnat"], true);
    assert_eq!(ip["virtualmachineid"], w.vm3.0.as_str());
    assert_eq!(ip["virtualmachinename"], "vm3");
    assert_eq!(ip["vmipaddress"], w.vm3.1.as_str());
    assert_eq!(ip["associatednetworkid"], w.db.as_str());
    let listed = eve
        .ok("listPublicIpAddresses", &[("isstaticnat", "true")])
        .await;
    assert_eq!(listed["count"], 1);
    m.agent.clear();

    // Refusals.
    let enable = |ip: &str, vm: &str| {
        vec![
            ("ipaddressid", ip.to_string()),
            ("virtualmachineid", vm.to_string()),
        ]
    };
    let cases: Vec<OwnedCase> = vec![
        (enable(&w.source_nat, &w.vm1.0), 431, "source nat"),
        (enable(&ip2, &w.vm3.0), 537, "already enabled"),
        (
            enable(&ip3, &w.vm3.0),
            431,
            "is already associated with another public ip",
        ),
        (
            {
                let mut p = enable(&ip3, &w.vm3.0);
                p.push(("networkid", w.web.clone()));
                p
            },
            431,
            "vm3 has no NIC in tier web",
        ),
        (enable(&ip3, &w.vm4.0), 431, "networkid is required"),
        (
            enable(&ip3, BOGUS),
            431,
            "Invalid parameter virtualmachineid",
        ),
        (enable(&ip3, &w.frank_vm), 531, ""),
        (
            vec![("ipaddressid", ip3.clone())],
            431,
            "missing parameter virtualmachineid",
        ),
    ];
    for (params, code, needle) in cases {
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (got, text) = refused(eve, "enableStaticNat", &p).await;
        assert_eq!(got, code, "{p:?}: {text}");
        assert!(text.contains(needle), "{needle:?} not in {text:?}");
    }
    // One purpose per address: no port forwarding or load balancing on it.
    let (code, text) = refused(
        eve,
        "createPortForwardingRule",
        &pf(&ip2, &w.vm3.0, "tcp", "22", "22"),
    )
    .await;
    assert_eq!(code, 537);
    assert!(
        text.contains("There is 1 to 1 Nat rule specified for the ip address"),
        "{text}"
    );
    let (code, text) = refused(
        eve,
        "createLoadBalancerRule",
        &[
            ("publicipid", ip2.as_str()),
            ("name", "lb"),
            ("algorithm", "roundrobin"),
            ("publicport", "80"),
            ("privateport", "80"),
        ],
    )
    .await;
    assert_eq!(code, 537);
    assert!(
        text.contains("There is 1 to 1 Nat rule specified for the ip address"),
        "{text}"
    );
    let (code, text) = refused(eve, "disableStaticNat", &[("ipaddressid", &ip3)]).await;
    assert_eq!(code, 431);
    assert!(text.contains("not associated with any vm"), "{text}");
    let (code, _) = refused(
        &w.frank,
        "enableStaticNat",
        &[("ipaddressid", &ip3), ("virtualmachineid", &w.frank_vm)],
    )
    .await;
    assert_eq!(code, 531);
    let (code, _) = refused(&w.frank, "disableStaticNat", &[("ipaddressid", &ip2)]).await;
    assert_eq!(code, 531);
    assert!(m.agent.commands().is_empty(), "refusals send nothing");

    // The router fails: enabling answers 530 and leaves the address as it
    // was; disabling fails its job and keeps the mapping.
    m.agent
        .fail("SetStaticNatRules", AgentError::Unreachable("gone".into()));
    let (code, text) = refused(
        eve,
        "enableStaticNat",
        &[("ipaddressid", &ip3), ("virtualmachineid", &w.vm1.0)],
    )
    .await;
    assert_eq!(code, 530);
    assert!(text.contains("SetStaticNatRules"), "{text}");
    let ip = address(eve, &ip3).await;
    assert_eq!(ip["isstaticnat"], false);
    assert!(ip.get("associatednetworkid").is_none(), "{ip}");
    let failed = run_job(eve, "disableStaticNat", &[("ipaddressid", &ip2)]).await;
    assert_eq!(
        (
            failed["jobstatus"].as_u64(),
            failed["jobresultcode"].as_u64()
        ),
        (Some(2), Some(530))
    );
    let ip = address(eve, &ip2).await;
    assert_eq!(ip["isstaticnat"], true);
    assert_eq!(ip["vmipaddress"], w.vm3.1.as_str());
    m.agent.unfail("SetStaticNatRules");
    m.agent.clear();

    // A second mapping: the router gets both; then disabling the first
    // leaves only the second, and unbinds the address.
    eve.ok(
        "enableStaticNat",
        &[("ipaddressid", &ip3), ("virtualmachineid", &w.vm1.0)],
    )
    .await;
    assert_eq!(only_static_nats(m).rules.len(), 2);
    assert_eq!(
        address(eve, &ip3).await["associatednetworkid"],
        w.web.as_str()
    );
    m.agent.clear();
    let done = job_ok(eve, "disableStaticNat", &[("ipaddressid", &ip2)]).await;
    assert_eq!(done["success"], true);
    let sent = only_static_nats(m);
    assert_eq!(sent.rules.len(), 1);
    assert_eq!(sent.rules[0].id, ip3);
    let ip = address(eve, &ip2).await;
    assert_eq!(ip["isstaticnat"], false);
    assert!(ip.get("virtualmachineid").is_none(), "{ip}");
    assert!(ip.get("associatednetworkid").is_none(), "{ip}");
    m.agent.clear();

    // Releasing a static NAT address withdraws the mapping with it.
    job_ok(eve, "disassociateIpAddress", &[("id", &ip3)]).await;
    assert_eq!(m.agent.rpcs(), ["SetStaticNatRules", "IpAssoc"]);
    match &m.agent.commands()[0] {
        AgentCommand::SetStaticNatRules(r) => assert!(r.rules.is_empty()),
        other => panic!("{other:?}"),
    }
});

// A createPortForwardingRule job whose manager died is failed at the next
// start and its `abandon` runs: the rule goes as when the router refuses
// it (its address leaves the tier), and the router, which may already hold
// it, gets the list without it.
on_both_backends!(
    an_abandoned_port_forward_is_withdrawn_from_rows_and_router,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "natz3").await;
        let eve = user(&admin, "natz3-eve").await;
        let vpc = create_vpc(&eve, &env, "eve-vpc", "10.5.0.0/16").await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let web = create_tier(&eve, &env, &vpc, "web", "10.5.1.1", "255.255.255.0").await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let vm = deploy(&eve, &env, &web, "vm1").await;
        let (ip, _) = acquire(&eve, &vpc).await;
        let created = job_ok(
            &eve,
            "createPortForwardingRule",
            &pf(&ip, &vm.0, "tcp", "80", "8080"),
        )
        .await["portforwardingrule"]
            .clone();
        assert_eq!(
            address(&eve, &ip).await["associatednetworkid"],
            web.as_str()
        );
        let row = rule::get_by_uuid(&m.app.db, created["id"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let vpc_row = vpc_manager::store::vpc::get_by_uuid(&m.app.db, vpc.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let generation = last_generation(m);
        m.agent.clear();

        let job = RuleJob {
            rule: row.id,
            vpc: vpc_row.id,
        };
        CreatePortForwardingRule::abandon(&m.app, job)
            .await
            .unwrap();

        let listed = eve
            .ok("listPortForwardingRules", &[("ipaddressid", &ip)])
            .await;
        assert_eq!(listed["count"].as_u64().unwrap_or(0), 0, "{listed}");
        let unbound = address(&eve, &ip).await;
        assert!(unbound.get("associatednetworkid").is_none(), "{unbound}");
        let sent = only_forwards(m);
        assert!(sent.rules.is_empty(), "{sent:?}");
        assert!(sent.generation > generation);
        // Abandoning it again finds nothing to do and sends nothing.
        m.agent.clear();
        CreatePortForwardingRule::abandon(&m.app, job)
            .await
            .unwrap();
        assert!(m.agent.rpcs().is_empty());
    }
);
