//! Network ACL lists and items through the HTTP API, on SQLite and
//! PostgreSQL: the built-in lists, every rule's allowed and refused case, job
//! results through queryAsyncJobResult, the SetNetworkAcl commands each
//! change pushes (the whole list, sorted by number, one new generation),
//! reverts when the router refuses, and ownership.

mod support;

use serde_json::{Value, json};
use support::api::{BOGUS, Client, job_ok, on_both_backends, refused, run_job};
use support::vpc::{account_in, create_tier, create_vpc, deploy_vm, user, zone_env};
use vpc_manager::orchestration::{AgentCommand, AgentError};
use vpc_proto::v1 as pb;

/// Runs an async-create command to its end: its id and the finished job.
async fn create(client: &Client, command: &str, params: &[(&str, &str)]) -> (String, Value) {
    let accepted = client.ok(command, params).await;
    let id = accepted["id"]
        .as_str()
        .expect("async-create id")
        .to_string();
    let job = client
        .wait_job(accepted["jobid"].as_str().expect("jobid"))
        .await;
    (id, job)
}

/// Runs an async command whose response has another name than the command
/// (updateNetworkACLItem, moveNetworkAclItem): the finished job.
async fn run_under(client: &Client, command: &str, key: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = client.call(command, params).await;
    assert_eq!(status, 200, "{command}: {body}");
    let job_id = body[key]["jobid"]
        .as_str()
        .unwrap_or_else(|| panic!("{command}: no {key}.jobid in {body}"));
    client.wait_job(job_id).await
}

/// The code and text of a refused command answering under `key`.
async fn refused_under(
    client: &Client,
    command: &str,
    key: &str,
    params: &[(&str, &str)],
) -> (u16, String) {
    let (status, body) = client.call(command, params).await;
    assert_ne!(status, 200, "{command} should be refused: {body}");
    assert_eq!(body[key]["errorcode"], status, "{body}");
    (status, body[key]["errortext"].as_str().unwrap().to_string())
}

fn count(list: &Value) -> u64 {
    list["count"].as_u64().unwrap_or(0)
}

/// The VPC's router generation now.
async fn generation(admin: &Client, vpc: &str) -> u64 {
    let routers = admin
        .ok("listRouters", &[("vpcid", vpc), ("listall", "true")])
        .await;
    routers["router"][0]["configgeneration"].as_u64().unwrap()
}

/// The SetNetworkAcl commands among `commands`, with their generations.
fn acls(commands: &[AgentCommand]) -> Vec<(u64, pb::NetworkAcl)> {
    commands
        .iter()
        .filter_map(|c| match c {
            AgentCommand::SetNetworkAcl(r) => Some((r.generation, r.acl.clone().unwrap())),
            _ => None,
        })
        .collect()
}

fn numbers(acl: &pb::NetworkAcl) -> Vec<u32> {
    acl.items.iter().map(|i| i.number).collect()
}

/// A list's items as listNetworkACLs shows them: (number, id) by number.
async fn listed_numbers(admin: &Client, list: &str) -> Vec<(u64, String)> {
    let listed = admin.ok("listNetworkACLs", &[("aclid", list)]).await;
    let mut items: Vec<(u64, String)> = listed["networkacl"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|i| {
            (
                i["number"].as_u64().unwrap(),
                i["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    items.sort();
    items
}

/// The id of the built-in list `name`.
async fn builtin(client: &Client, name: &str) -> String {
    client.ok("listNetworkACLLists", &[("name", name)]).await["networkacllist"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A private gateway of `vpc` on VLAN `vlan` using ACL list `acl`.
async fn gateway_with(admin: &Client, vpc: &str, vlan: &str, ip: &str, acl: &str) -> String {
    let next_hop = format!("{}.1", ip.rsplit_once('.').unwrap().0);
    let (id, job) = create(
        admin,
        "createPrivateGateway",
        &[
            ("vpcid", vpc),
            ("vlan", vlan),
            ("ipaddress", ip),
            ("gateway", &next_hop),
            ("netmask", "255.255.255.0"),
            ("aclid", acl),
        ],
    )
    .await;
    assert_eq!(job["jobstatus"], 1, "{job}");
    id
}

on_both_backends!(acl_lists_are_created_attached_replaced_and_deleted, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "alz").await;
    let vpc = create_vpc(&admin, &env, "acl-vpc", "10.1.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let other = create_vpc(&admin, &env, "acl-other", "10.2.0.0/16").await;
    let other_id = other["id"].as_str().unwrap().to_string();
    let bob = user(&admin, "bob").await;

    // The built-in lists: everyone sees them, no one changes them.
    let seen = bob.ok("listNetworkACLLists", &[]).await;
    assert_eq!(count(&seen), 2, "{seen}");
    let names: Vec<&str> = seen["networkacllist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default_deny", "default_allow"]);
    assert!(seen["networkacllist"][0].get("vpcid").is_none());
    let deny = builtin(&admin, "default_deny").await;
    let allow = builtin(&admin, "default_allow").await;
    let (code, text) = refused(
        &admin,
        "updateNetworkACLList",
        &[("id", &deny), ("name", "x")],
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("default_deny cannot be modified"), "{text}");
    let (code, text) = refused(&admin, "deleteNetworkACLList", &[("id", &deny)]).await;
    assert_eq!(code, 431);
    assert!(text.contains("default_deny cannot be removed"), "{text}");
    let (code, text) = refused(
        &admin,
        "createNetworkACL",
        &[("aclid", &allow), ("protocol", "all")],
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("default_allow cannot be modified"), "{text}");
    let deny_items = admin.ok("listNetworkACLs", &[("aclid", &deny)]).await;
    assert_eq!(count(&deny_items), 2);
    assert!(
        deny_items["networkacl"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["action"] == "Deny" && i["protocol"] == "all")
    );
    let deny_item = deny_items["networkacl"][0]["id"].as_str().unwrap();
    let (code, text) = refused(&admin, "deleteNetworkACL", &[("id", deny_item)]).await;
    assert_eq!(code, 431);
    assert!(text.contains("default_deny cannot be modified"), "{text}");
    let (code, _) = refused_under(
        &admin,
        "updateNetworkACLItem",
        "createnetworkaclresponse",
        &[("id", deny_item), ("action", "allow")],
    )
    .await;
    assert_eq!(code, 431);

    // createNetworkACLList: a list of a VPC the caller may act on.
    // Without one it would be global: the root admin's alone.
    let (code, text) = refused(&bob, "createNetworkACLList", &[("name", "g")]).await;
    assert_eq!(code, 531);
    assert_eq!(text, "Only Root Admin can create global ACLs.");
    let (code, text) = refused(
        &admin,
        "createNetworkACLList",
        &[("name", "g"), ("vpcid", BOGUS)],
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains(&format!("vpcid value={BOGUS}")), "{text}");
    let (code, text) = refused(&admin, "createNetworkACLList", &[("vpcid", &vpc_id)]).await;
    assert_eq!(code, 431);
    assert!(text.contains("missing parameter name"), "{text}");
    let (code, text) = refused(
        &bob,
        "createNetworkACLList",
        &[("name", "mine"), ("vpcid", &vpc_id)],
    )
    .await;
    assert_eq!(code, 531);
    assert!(text.contains("bob"), "{text}");
    let (list_id, job) = create(
        &admin,
        "createNetworkACLList",
        &[
            ("name", "web-acl"),
            ("description", "for web"),
            ("vpcid", &vpc_id),
        ],
    )
    .await;
    assert_eq!(job["jobstatus"], 1, "{job}");
    assert_eq!(job["jobinstancetype"], "NetworkAcl");
    let created = &job["jobresult"]["networkacllist"];
    assert_eq!(created["id"], list_id.as_str());
    assert_eq!(created["name"], "web-acl");
    assert_eq!(created["description"], "for web");
    assert_eq!(created["vpcid"], vpc_id.as_str());
    assert_eq!(created["vpcname"], "acl-vpc");
    assert_eq!(created["fordisplay"], true);
    let (other_list, _) = create(
        &admin,
        "createNetworkACLList",
        &[("name", "other-acl"), ("vpcid", &other_id)],
    )
    .await;

    // listNetworkACLLists.
    let list = |params: Vec<(&'static str, String)>| {
        let admin = admin.clone();
        async move {
            let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            admin.ok("listNetworkACLLists", &p).await
        }
    };
    assert_eq!(count(&list(vec![]).await), 4);
    assert_eq!(
        count(&list(vec![("vpcid", vpc_id.clone())]).await),
        3,
        "its list and the two built-ins"
    );
    assert_eq!(count(&list(vec![("name", "web-acl".into())]).await), 1);
    assert_eq!(count(&list(vec![("keyword", "web".into())]).await), 1);
    assert_eq!(count(&list(vec![("id", list_id.clone())]).await), 1);
    let paged = list(vec![("page", "2".into()), ("pagesize", "3".into())]).await;
    assert_eq!(count(&paged), 4);
    assert_eq!(paged["networkacllist"][0]["id"], other_list.as_str());
    assert_eq!(count(&bob.ok("listNetworkACLLists", &[]).await), 2);
    let (code, _) = refused(&bob, "listNetworkACLLists", &[("vpcid", &vpc_id)]).await;
    assert_eq!(code, 531);

    // updateNetworkACLList: the job answers with the list.
    let updated = job_ok(
        &admin,
        "updateNetworkACLList",
        &[("id", &list_id), ("name", "web-rules")],
    )
    .await;
    assert_eq!(updated["networkacllist"]["name"], "web-rules");
    assert_eq!(updated["networkacllist"]["description"], "for web");
    let (code, _) = refused(
        &bob,
        "updateNetworkACLList",
        &[("id", &list_id), ("name", "x")],
    )
    .await;
    assert_eq!(code, 531);

    // On a private gateway: pushed with the gateway; in use, not deletable.
    m.agent.clear();
    let gw = gateway_with(&admin, &vpc_id, "800", "172.16.0.10", &list_id).await;
    let pushed = acls(&m.agent.commands());
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].1.acl_name, "web-rules");
    assert!(pushed[0].1.private_gateway && pushed[0].1.items.is_empty());
    let (code, text) = refused(&admin, "deleteNetworkACLList", &[("id", &list_id)]).await;
    assert_eq!(code, 530);
    assert!(
        text.contains("still associated with 0 tier(s) and 1 private gateway(s)"),
        "{text}"
    );

    // replaceNetworkACLList.
    let (code, text) = refused(
        &admin,
        "replaceNetworkACLList",
        &[("aclid", &other_list), ("gatewayid", &gw)],
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("do not belong to the same VPC"), "{text}");
    let (code, text) = refused(&admin, "replaceNetworkACLList", &[("aclid", &allow)]).await;
    assert_eq!(code, 431);
    assert!(
        text.contains("exactly one of networkid and gatewayid"),
        "{text}"
    );
    let (code, _) = refused(
        &admin,
        "replaceNetworkACLList",
        &[("aclid", BOGUS), ("gatewayid", &gw)],
    )
    .await;
    assert_eq!(code, 431);
    let (code, _) = refused(
        &bob,
        "replaceNetworkACLList",
        &[("aclid", &allow), ("gatewayid", &gw)],
    )
    .await;
    assert_eq!(code, 531);
    let before = generation(&admin, &vpc_id).await;
    m.agent.clear();
    let done = job_ok(
        &admin,
        "replaceNetworkACLList",
        &[("aclid", &allow), ("gatewayid", &gw)],
    )
    .await;
    assert_eq!(done["success"], true);
    let pushed = acls(&m.agent.commands());
    assert_eq!(m.agent.rpcs(), ["SetNetworkAcl"]);
    assert_eq!(pushed[0].0, before + 1);
    assert_eq!(pushed[0].1.acl_name, "default_allow");
    assert!(pushed[0].1.private_gateway);
    assert_eq!(numbers(&pushed[0].1), [1, 2]);
    assert!(
        pushed[0]
            .1
            .items
            .iter()
            .all(|i| i.action == pb::AclAction::Allow as i32)
    );
    let gw_now = |admin: Client, gw: String| async move {
        admin.ok("listPrivateGateways", &[("id", &gw)]).await["privategateway"][0].clone()
    };
    assert_eq!(
        gw_now(admin.clone(), gw.clone()).await["aclname"],
        "default_allow"
    );
    // A router that refuses: the old list stays attached.
    m.agent
        .fail("SetNetworkAcl", AgentError::Failed("nft said no".into()));
    let done = run_job(
        &admin,
        "replaceNetworkACLList",
        &[("aclid", &list_id), ("gatewayid", &gw)],
    )
    .await;
    m.agent.unfail("SetNetworkAcl");
    assert_eq!(done["jobstatus"], 2, "{done}");
    assert_eq!(done["jobresultcode"], 530);
    assert!(
        done["jobresult"]["errortext"]
            .as_str()
            .unwrap()
            .contains("SetNetworkAcl"),
        "{done}"
    );
    assert_eq!(
        gw_now(admin.clone(), gw.clone()).await["aclid"],
        allow.as_str()
    );

    // On a tier that is not on the router yet: stored, nothing sent.
    let tier = create_tier(&admin, &env, &vpc_id, "web", "10.1.1.1", "255.255.255.0").await;
    let tier_id = tier["id"].as_str().unwrap().to_string();
    m.agent.clear();
    job_ok(
        &admin,
        "replaceNetworkACLList",
        &[("aclid", &list_id), ("networkid", &tier_id)],
    )
    .await;
    assert!(m.agent.commands().is_empty(), "{:?}", m.agent.rpcs());
    let of_tier = list(vec![("networkid", tier_id.clone())]).await;
    assert_eq!(count(&of_tier), 1);
    assert_eq!(of_tier["networkacllist"][0]["id"], list_id.as_str());
    let (code, text) = refused(&admin, "deleteNetworkACLList", &[("id", &list_id)]).await;
    assert_eq!(code, 530);
    assert!(
        text.contains("1 tier(s) and 0 private gateway(s)"),
        "{text}"
    );
    let (code, text) = refused(
        &admin,
        "replaceNetworkACLList",
        &[("aclid", &other_list), ("networkid", &tier_id)],
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("do not belong to the same VPC"), "{text}");

    // Detached everywhere: deleted.
    job_ok(
        &admin,
        "replaceNetworkACLList",
        &[("aclid", &deny), ("networkid", &tier_id)],
    )
    .await;
    let (code, _) = refused(&bob, "deleteNetworkACLList", &[("id", &list_id)]).await;
    assert_eq!(code, 531);
    let done = job_ok(&admin, "deleteNetworkACLList", &[("id", &list_id)]).await;
    assert_eq!(done["success"], true);
    assert_eq!(count(&list(vec![("id", list_id.clone())]).await), 0);
    let (code, text) = refused(&admin, "deleteNetworkACLList", &[("id", &list_id)]).await;
    assert_eq!(code, 431);
    assert!(text.contains(&format!("id value={list_id}")), "{text}");

    // A user's own lists; a domain admin acts in its subtree only.
    let bob_vpc = create_vpc(&bob, &env, "bob-vpc", "10.9.0.0/16").await;
    let bob_vpc_id = bob_vpc["id"].as_str().unwrap().to_string();
    let (bob_list, job) = create(
        &bob,
        "createNetworkACLList",
        &[("name", "bobs"), ("vpcid", &bob_vpc_id)],
    )
    .await;
    assert_eq!(job["jobstatus"], 1, "{job}");
    assert_eq!(count(&bob.ok("listNetworkACLLists", &[]).await), 3);
    assert_eq!(
        count(&list(vec![]).await),
        3,
        "the admin's own and the built-ins"
    );
    let bob_domain = admin.ok("listDomains", &[("name", "bob")]).await["domain"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dadmin = account_in(&admin, "bobadmin", &bob_domain, "2").await;
    let seen = dadmin
        .ok("listNetworkACLLists", &[("listall", "true")])
        .await;
    assert_eq!(count(&seen), 3, "{seen}");
    assert_eq!(seen["networkacllist"][2]["id"], bob_list.as_str());
    let renamed = job_ok(
        &dadmin,
        "updateNetworkACLList",
        &[("id", &bob_list), ("name", "bob-rules")],
    )
    .await;
    assert_eq!(renamed["networkacllist"]["name"], "bob-rules");
    let (code, _) = refused(
        &dadmin,
        "updateNetworkACLList",
        &[("id", &other_list), ("name", "x")],
    )
    .await;
    assert_eq!(code, 531);
});

on_both_backends!(
    acl_items_are_checked_numbered_pushed_moved_and_reverted,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "aiz").await;
        let vpc = create_vpc(&admin, &env, "items-vpc", "10.1.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        let (list_id, _) = create(
            &admin,
            "createNetworkACLList",
            &[("name", "rules"), ("vpcid", &vpc_id)],
        )
        .await;
        let gw = gateway_with(&admin, &vpc_id, "800", "172.16.0.10", &list_id).await;
        let tier = create_tier(&admin, &env, &vpc_id, "web", "10.1.1.1", "255.255.255.0").await;
        let tier_id = tier["id"].as_str().unwrap().to_string();

        // Refused during the request; nothing stored or sent.
        m.agent.clear();
        let item = |extra: &[(&'static str, &'static str)]| {
            let mut p: Vec<(&str, &str)> = vec![("aclid", list_id.as_str()), ("protocol", "tcp")];
            for (k, v) in extra {
                p.retain(|(name, _)| name != k);
                p.push((k, v));
            }
            p
        };
        for (extra, meaning) in [
            (vec![("protocol", "foo")], "Invalid protocol"),
            (
                vec![("protocol", "icmp"), ("startport", "22")],
                "only for protocols tcp and udp",
            ),
            (
                vec![("startport", "80"), ("endport", "22")],
                "start port is greater than the end port",
            ),
            (vec![("startport", "70000")], "between 0 and 65535"),
            (
                vec![("icmptype", "8")],
                "icmptype and icmpcode can only be given for protocol icmp",
            ),
            (
                vec![("protocol", "icmp"), ("icmptype", "300")],
                "Invalid icmptype 300",
            ),
            (
                vec![("cidrlist", "10.0.0.1/8")],
                "Source cidrs formatting error",
            ),
            (
                vec![("cidrlist", "nonsense")],
                "Source cidrs formatting error",
            ),
            // CloudStack's text (NetworkACLServiceImpl.validateAclRuleNumber).
            (
                vec![("number", "0")],
                "Invalid number [0]. Number cannot be < 1",
            ),
            (vec![("action", "maybe")], "Invalid action"),
            (vec![("traffictype", "sideways")], "Invalid traffictype"),
            (vec![("aclid", BOGUS)], "aclid value="),
        ] {
            let (code, text) = refused(&admin, "createNetworkACL", &item(&extra)).await;
            assert_eq!(code, 431, "{extra:?}");
            assert!(text.contains(meaning), "{extra:?}: {text}");
        }
        let (code, text) = refused(&admin, "createNetworkACL", &[("protocol", "tcp")]).await;
        assert_eq!(code, 431);
        assert!(text.contains("Give aclid"), "{text}");
        // `networkid` of a tier without a list is no longer refused: as in
        // CloudStack, a list is made and attached (issue 15; api_compat.rs).
        let (code, text) = refused(&admin, "createNetworkACL", &[("aclid", &list_id)]).await;
        assert_eq!(code, 431);
        assert!(text.contains("missing parameter protocol"), "{text}");
        assert!(m.agent.commands().is_empty());
        assert_eq!(listed_numbers(&admin, &list_id).await, []);

        // #1: Add then Active; the list goes to the gateway's NIC.
        let g0 = generation(&admin, &vpc_id).await;
        let (ssh, job) = create(
            &admin,
            "createNetworkACL",
            &item(&[
                ("startport", "22"),
                ("cidrlist", "10.0.0.0/8,2001:db8::/32"),
                ("reason", "ssh"),
            ]),
        )
        .await;
        assert_eq!(job["jobstatus"], 1, "{job}");
        assert_eq!(job["jobinstancetype"], "NetworkAclItem");
        let v = &job["jobresult"]["networkacl"];
        assert_eq!(v["id"], ssh.as_str());
        assert_eq!(v["number"], 1, "max + 1 of an empty list");
        assert_eq!(v["protocol"], "tcp");
        assert_eq!(v["startport"], "22", "ports are strings");
        assert_eq!(v["endport"], "22", "endport defaults to startport");
        assert_eq!(v["cidrlist"], "10.0.0.0/8,2001:db8::/32");
        assert_eq!(v["traffictype"], "Ingress");
        assert_eq!(v["action"], "Allow");
        assert_eq!(v["state"], "Active");
        assert_eq!(v["aclid"], list_id.as_str());
        assert_eq!(v["aclname"], "rules");
        assert_eq!(v["reason"], "ssh");
        let pushed = acls(&m.agent.commands());
        assert_eq!(m.agent.rpcs(), ["SetNetworkAcl"]);
        assert_eq!(pushed[0].0, g0 + 1);
        assert!(pushed[0].1.private_gateway);
        assert_eq!(numbers(&pushed[0].1), [1]);
        let first = &pushed[0].1.items[0];
        assert_eq!(first.protocol, pb::Protocol::Tcp as i32);
        assert_eq!((first.start_port, first.end_port), (Some(22), Some(22)));
        assert_eq!(first.cidrs, ["10.0.0.0/8", "2001:db8::/32"]);

        // #5, then #6 (max + 1), then #3: each push is the whole list, sorted.
        m.agent.clear();
        let (dns, job) = create(
            &admin,
            "createNetworkACL",
            &item(&[
                ("protocol", "udp"),
                ("startport", "53"),
                ("number", "5"),
                ("action", "deny"),
                ("traffictype", "egress"),
            ]),
        )
        .await;
        assert_eq!(job["jobresult"]["networkacl"]["action"], "Deny");
        assert_eq!(job["jobresult"]["networkacl"]["traffictype"], "Egress");
        assert_eq!(
            job["jobresult"]["networkacl"]["cidrlist"], "0.0.0.0/0,::/0",
            "the default CIDRs"
        );
        let pushed = acls(&m.agent.commands());
        assert_eq!(pushed.len(), 1);
        assert_eq!(pushed[0].0, g0 + 2);
        assert_eq!(numbers(&pushed[0].1), [1, 5]);
        let five = &pushed[0].1.items[1];
        assert_eq!(five.action, pb::AclAction::Deny as i32);
        assert_eq!(five.traffic_type, pb::TrafficType::Egress as i32);
        assert_eq!(five.protocol, pb::Protocol::Udp as i32);
        let (code, text) = refused(&admin, "createNetworkACL", &item(&[("number", "5")])).await;
        assert_eq!(code, 431);
        assert!(text.contains("number 5 already exists"), "{text}");
        let (ping, job) = create(
            &admin,
            "createNetworkACL",
            &item(&[("protocol", "icmp"), ("icmptype", "8"), ("icmpcode", "0")]),
        )
        .await;
        let v = &job["jobresult"]["networkacl"];
        assert_eq!(v["number"], 6);
        assert_eq!(
            (v["icmptype"].clone(), v["icmpcode"].clone()),
            (json!(8), json!(0))
        );
        assert!(v.get("startport").is_none());
        m.agent.clear();
        let (any, _) = create(
            &admin,
            "createNetworkACL",
            &item(&[("protocol", "all"), ("number", "3")]),
        )
        .await;
        let pushed = acls(&m.agent.commands());
        assert_eq!(pushed[0].0, g0 + 4);
        assert_eq!(numbers(&pushed[0].1), [1, 3, 5, 6]);
        assert_eq!(
            listed_numbers(&admin, &list_id).await,
            [
                (1, ssh.clone()),
                (3, any.clone()),
                (5, dns.clone()),
                (6, ping.clone())
            ]
        );

        // updateNetworkACLItem answers as createNetworkACL does.
        m.agent.clear();
        let done = run_under(
            &admin,
            "updateNetworkACLItem",
            "createnetworkaclresponse",
            &[("id", &any), ("action", "Deny"), ("reason", "block")],
        )
        .await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        let v = &done["jobresult"]["networkacl"];
        assert_eq!(v["action"], "Deny");
        assert_eq!(v["protocol"], "all", "partial: the rest stays");
        assert_eq!(v["number"], 3);
        assert_eq!(v["reason"], "block");
        let pushed = acls(&m.agent.commands());
        assert_eq!(numbers(&pushed[0].1), [1, 3, 5, 6]);
        assert_eq!(pushed[0].1.items[1].action, pb::AclAction::Deny as i32);
        let (code, text) = refused_under(
            &admin,
            "updateNetworkACLItem",
            "createnetworkaclresponse",
            &[("id", &any), ("number", "5")],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("number 5 already exists"), "{text}");
        // Item numbers start at 1 for an update too (the router refuses 0).
        let (code, text) = refused_under(
            &admin,
            "updateNetworkACLItem",
            "createnetworkaclresponse",
            &[("id", &any), ("number", "0")],
        )
        .await;
        assert_eq!(code, 431);
        assert!(
            text.contains("Invalid number [0]. Number cannot be < 1"),
            "{text}"
        );
        let done = run_under(
            &admin,
            "updateNetworkACLItem",
            "createnetworkaclresponse",
            &[
                ("id", &any),
                ("protocol", "udp"),
                ("partialupgrade", "false"),
            ],
        )
        .await;
        let v = &done["jobresult"]["networkacl"];
        assert_eq!(v["protocol"], "udp");
        assert_eq!(v["action"], "Allow", "not partial: back to the default");
        assert_eq!(v["cidrlist"], "0.0.0.0/0,::/0");
        assert!(v.get("reason").is_none(), "{v}");

        // moveNetworkAclItem: #6 to the top renumbers what follows it.
        let (code, text) = refused_under(
            &admin,
            "moveNetworkAclItem",
            "moveNetworkAclItemResponse",
            &[
                ("id", &ping),
                ("nextaclruleid", &ssh),
                ("aclconsistencyhash", "0123456789abcdef0123456789abcdef"),
            ],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("aclconsistencyhash"), "{text}");
        let (code, text) = refused_under(
            &admin,
            "moveNetworkAclItem",
            "moveNetworkAclItemResponse",
            &[
                ("id", &ping),
                ("previousaclruleid", &ssh),
                ("nextaclruleid", &dns),
            ],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("not consecutive"), "{text}");
        m.agent.clear();
        let done = run_under(
            &admin,
            "moveNetworkAclItem",
            "moveNetworkAclItemResponse",
            &[("id", &ping), ("nextaclruleid", &ssh)],
        )
        .await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        assert_eq!(done["jobresult"]["networkacl"]["number"], 1);
        let order = [
            (1, ping.clone()),
            (2, ssh.clone()),
            (3, any.clone()),
            (5, dns.clone()),
        ];
        assert_eq!(listed_numbers(&admin, &list_id).await, order);
        let pushed = acls(&m.agent.commands());
        assert_eq!(pushed.len(), 1);
        assert_eq!(numbers(&pushed[0].1), [1, 2, 3, 5]);
        assert_eq!(pushed[0].1.items[0].protocol, pb::Protocol::Icmp as i32);

        // A router that refuses: every change is undone and its job fails.
        m.agent
            .fail("SetNetworkAcl", AgentError::Failed("nft said no".into()));
        let (lost, job) = create(&admin, "createNetworkACL", &item(&[("number", "9")])).await;
        assert_eq!(job["jobstatus"], 2, "{job}");
        assert_eq!(job["jobresultcode"], 530);
        let text = job["jobresult"]["errortext"].as_str().unwrap();
        assert!(text.contains("SetNetworkAcl"), "{text}");
        assert!(
            listed_numbers(&admin, &list_id)
                .await
                .iter()
                .all(|(_, id)| *id != lost)
        );
        let done = run_under(
            &admin,
            "updateNetworkACLItem",
            "createnetworkaclresponse",
            &[("id", &ssh), ("action", "Deny"), ("number", "4")],
        )
        .await;
        assert_eq!(done["jobstatus"], 2, "{done}");
        let kept = admin.ok("listNetworkACLs", &[("id", &ssh)]).await["networkacl"][0].clone();
        assert_eq!(
            (
                kept["action"].clone(),
                kept["number"].clone(),
                kept["state"].clone()
            ),
            (json!("Allow"), json!(2), json!("Active"))
        );
        assert_eq!(kept["reason"], "ssh");
        let done = run_under(
            &admin,
            "moveNetworkAclItem",
            "moveNetworkAclItemResponse",
            &[("id", &dns), ("nextaclruleid", &ping)],
        )
        .await;
        assert_eq!(done["jobstatus"], 2, "{done}");
        assert_eq!(listed_numbers(&admin, &list_id).await, order);
        let done = run_job(&admin, "deleteNetworkACL", &[("id", &ping)]).await;
        assert_eq!(done["jobstatus"], 2, "{done}");
        let kept = admin.ok("listNetworkACLs", &[("id", &ping)]).await;
        assert_eq!(kept["networkacl"][0]["state"], "Active");
        m.agent.unfail("SetNetworkAcl");

        // deleteNetworkACL: the list without it.
        m.agent.clear();
        let done = job_ok(&admin, "deleteNetworkACL", &[("id", &ping)]).await;
        assert_eq!(done["success"], true);
        let pushed = acls(&m.agent.commands());
        assert_eq!(numbers(&pushed[0].1), [2, 3, 5]);
        assert_eq!(
            listed_numbers(&admin, &list_id).await,
            [(2, ssh.clone()), (3, any.clone()), (5, dns.clone())]
        );
        let (code, _) = refused(&admin, "deleteNetworkACL", &[("id", &ping)]).await;
        assert_eq!(code, 431);

        // A tier with the list takes items by networkid.
        job_ok(
            &admin,
            "replaceNetworkACLList",
            &[("aclid", &list_id), ("networkid", &tier_id)],
        )
        .await;
        let (by_tier, job) = create(
            &admin,
            "createNetworkACL",
            &[
                ("networkid", &tier_id),
                ("protocol", "tcp"),
                ("startport", "443"),
            ],
        )
        .await;
        assert_eq!(job["jobresult"]["networkacl"]["aclid"], list_id.as_str());
        assert_eq!(job["jobresult"]["networkacl"]["number"], 6);

        // listNetworkACLs filters and paging.
        let list = |params: Vec<(&'static str, String)>| {
            let admin = admin.clone();
            async move {
                let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
                admin.ok("listNetworkACLs", &p).await
            }
        };
        assert_eq!(
            count(&list(vec![]).await),
            4,
            "the admin's items, no built-ins"
        );
        assert_eq!(count(&list(vec![("networkid", tier_id.clone())]).await), 4);
        assert_eq!(
            count(&list(vec![("traffictype", "egress".into())]).await),
            1
        );
        assert_eq!(count(&list(vec![("action", "DENY".into())]).await), 1);
        assert_eq!(count(&list(vec![("protocol", "udp".into())]).await), 2);
        assert_eq!(count(&list(vec![("keyword", "ssh".into())]).await), 1);
        let paged = list(vec![
            ("aclid", list_id.clone()),
            ("page", "2".into()),
            ("pagesize", "3".into()),
        ])
        .await;
        assert_eq!(count(&paged), 4);
        assert_eq!(paged["networkacl"][0]["id"], by_tier.as_str());
        let (code, _) = refused(&admin, "listNetworkACLs", &[("traffictype", "up")]).await;
        assert_eq!(code, 431);

        // Ownership: someone else's items are neither seen nor changed.
        let bob = user(&admin, "bob").await;
        assert_eq!(bob.ok("listNetworkACLs", &[]).await, json!({}));
        assert_eq!(
            bob.ok("listNetworkACLs", &[("listall", "true")]).await,
            json!({})
        );
        let (code, _) = refused(&bob, "listNetworkACLs", &[("aclid", &list_id)]).await;
        assert_eq!(code, 531);
        let (code, _) = refused(
            &bob,
            "createNetworkACL",
            &[("aclid", &list_id), ("protocol", "all")],
        )
        .await;
        assert_eq!(code, 531);
        let (code, _) = refused(&bob, "deleteNetworkACL", &[("id", &ssh)]).await;
        assert_eq!(code, 531);
        let (code, _) = refused_under(
            &bob,
            "updateNetworkACLItem",
            "createnetworkaclresponse",
            &[("id", &ssh), ("action", "Deny")],
        )
        .await;
        assert_eq!(code, 531);
        let (code, _) = refused_under(
            &bob,
            "moveNetworkAclItem",
            "moveNetworkAclItemResponse",
            &[("id", &dns), ("nextaclruleid", &ssh)],
        )
        .await;
        assert_eq!(code, 531);
        let _ = gw;
    }
);

/// A tier of `vpc` using ACL list `acl`; returns its id.
async fn tier_with(
    admin: &Client,
    env: &support::vpc::Env,
    vpc: &str,
    name: &str,
    gateway: &str,
    acl: &str,
) -> String {
    admin
        .ok(
            "createNetwork",
            &[
                ("name", name),
                ("displaytext", name),
                ("zoneid", &env.zone),
                ("vpcid", vpc),
                ("networkofferingid", &env.tier_offering),
                ("gateway", gateway),
                ("netmask", "255.255.255.0"),
                ("aclid", acl),
            ],
        )
        .await["network"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

on_both_backends!(
    item_changes_reach_every_tier_and_gateway_using_the_list,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "atz").await;
        let vpc = create_vpc(&admin, &env, "tiers-vpc", "10.1.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        let (list_id, _) = create(
            &admin,
            "createNetworkACLList",
            &[("name", "shared"), ("vpcid", &vpc_id)],
        )
        .await;
        let web = tier_with(&admin, &env, &vpc_id, "web", "10.1.1.1", &list_id).await;
        let app = tier_with(&admin, &env, &vpc_id, "app", "10.1.2.1", &list_id).await;

        // Items of a list no NIC of the router uses yet: stored, nothing sent.
        m.agent.clear();
        let rule = |number: &'static str, port: &'static str| {
            vec![
                ("aclid", list_id.as_str()),
                ("protocol", "tcp"),
                ("number", number),
                ("startport", port),
            ]
        };
        let (_, job) = create(&admin, "createNetworkACL", &rule("2", "443")).await;
        assert_eq!(job["jobresult"]["networkacl"]["state"], "Active");
        create(&admin, "createNetworkACL", &rule("1", "80")).await;
        assert!(m.agent.commands().is_empty(), "{:?}", m.agent.rpcs());

        // The first VM of a tier puts the tier, and its ACL, on the router.
        let mut tier_nics = Vec::new();
        for (tier, name) in [(&web, "w1"), (&app, "a1")] {
            m.agent.clear();
            deploy_vm(&admin, &env, tier, name).await;
            let pushed = acls(&m.agent.commands());
            assert_eq!(pushed.len(), 1, "{:?}", m.agent.rpcs());
            assert_eq!(pushed[0].1.acl_name, "shared");
            assert!(!pushed[0].1.private_gateway);
            assert_eq!(numbers(&pushed[0].1), [1, 2]);
            tier_nics.push(pushed[0].1.device_index);
        }
        let gw = gateway_with(&admin, &vpc_id, "800", "172.16.0.10", &list_id).await;
        let gateways = admin.ok("listPrivateGateways", &[("id", &gw)]).await;
        assert_eq!(gateways["privategateway"][0]["aclname"], "shared");

        // Item #5: the whole sorted list to both tiers and the gateway, with
        // one new generation.
        let g = {
            let routers = admin
                .ok("listRouters", &[("vpcid", &vpc_id), ("listall", "true")])
                .await;
            routers["router"][0]["configgeneration"].as_u64().unwrap()
        };
        m.agent.clear();
        let (five, job) = create(&admin, "createNetworkACL", &rule("5", "8080")).await;
        assert_eq!(job["jobstatus"], 1, "{job}");
        assert_eq!(m.agent.rpcs(), ["SetNetworkAcl"; 3]);
        let pushed = acls(&m.agent.commands());
        assert!(pushed.iter().all(|(generation, _)| *generation == g + 1));
        assert!(pushed.iter().all(|(_, acl)| numbers(acl) == [1, 2, 5]));
        let tiers: Vec<u32> = pushed
            .iter()
            .filter(|(_, acl)| !acl.private_gateway)
            .map(|(_, acl)| acl.device_index)
            .collect();
        assert_eq!(tiers, tier_nics);
        assert_eq!(
            pushed.iter().filter(|(_, acl)| acl.private_gateway).count(),
            1
        );
        // It went first as an edit of item 5 alone, made against generation
        // g; the recording agent holds no list and takes no edit, so the
        // whole list followed at the same generation.
        let edits = m.agent.edits();
        assert_eq!(edits.len(), 1, "{edits:?}");
        let AgentCommand::EditNetworkAcl(e) = &edits[0].1 else {
            panic!("{edits:?}")
        };
        assert_eq!((e.base_generation, e.generation), (g, g + 1));
        assert_eq!(numbers(e.acl.as_ref().unwrap()), [5]);
        assert!(e.removed.is_empty());

        // Refused by the router: undone for everyone, the job fails.
        m.agent
            .fail("SetNetworkAcl", AgentError::Failed("nft said no".into()));
        let (_, job) = create(&admin, "createNetworkACL", &rule("7", "9000")).await;
        m.agent.unfail("SetNetworkAcl");
        assert_eq!(job["jobstatus"], 2, "{job}");
        assert_eq!(job["jobresultcode"], 530);
        let listed: Vec<u64> = listed_numbers(&admin, &list_id)
            .await
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(listed, [1, 2, 5]);

        // Another list on the web tier: one SetNetworkAcl for its NIC only.
        let allow = builtin(&admin, "default_allow").await;
        m.agent.clear();
        job_ok(
            &admin,
            "replaceNetworkACLList",
            &[("aclid", &allow), ("networkid", &web)],
        )
        .await;
        let pushed = acls(&m.agent.commands());
        assert_eq!(m.agent.rpcs(), ["SetNetworkAcl"]);
        assert_eq!(pushed[0].1.device_index, tier_nics[0]);
        assert_eq!(pushed[0].1.acl_name, "default_allow");
        assert!(!pushed[0].1.private_gateway);

        // From now on the list goes to the app tier and the gateway only.
        m.agent.clear();
        job_ok(&admin, "deleteNetworkACL", &[("id", &five)]).await;
        // Tried as an edit that takes item 5 out.
        let edits = m.agent.edits();
        assert_eq!(edits.len(), 1, "{edits:?}");
        let AgentCommand::EditNetworkAcl(e) = &edits[0].1 else {
            panic!("{edits:?}")
        };
        assert_eq!(e.removed, std::slice::from_ref(&five));
        assert!(e.acl.as_ref().unwrap().items.is_empty());
        let pushed = acls(&m.agent.commands());
        assert_eq!(pushed.len(), 2);
        assert!(pushed.iter().all(|(_, acl)| numbers(acl) == [1, 2]));
        assert!(
            pushed
                .iter()
                .any(|(_, acl)| !acl.private_gateway && acl.device_index == tier_nics[1])
        );
        assert!(pushed.iter().any(|(_, acl)| acl.private_gateway));
        let (code, text) = refused(&admin, "deleteNetworkACLList", &[("id", &list_id)]).await;
        assert_eq!(code, 530);
        assert!(
            text.contains("1 tier(s) and 1 private gateway(s)"),
            "{text}"
        );
    }
);

on_both_backends!(a_list_stops_growing_at_network_acl_max_items, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "maxz").await;
    let vpc = create_vpc(&admin, &env, "max-vpc", "10.1.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let (list_id, _) = create(
        &admin,
        "createNetworkACLList",
        &[("name", "short"), ("vpcid", &vpc_id)],
    )
    .await;
    admin
        .ok(
            "updateConfiguration",
            &[("name", "network.acl.max.items"), ("value", "2")],
        )
        .await;
    let item = [("aclid", list_id.as_str()), ("protocol", "tcp")];
    for _ in 0..2 {
        let (_, job) = create(&admin, "createNetworkACL", &item).await;
        assert_eq!(job["jobstatus"], 1, "{job}");
    }
    m.agent.clear();
    let (code, text) = refused(&admin, "createNetworkACL", &item).await;
    assert_eq!(code, 535, "{text}");
    assert!(text.contains("cannot surpass [2]"), "{text}");
    assert!(text.contains("network.acl.max.items"), "{text}");
    assert_eq!(listed_numbers(&admin, &list_id).await.len(), 2);
    // Nothing pushed (the listing only read the counters).
    assert!(
        m.agent.rpcs().iter().all(|rpc| *rpc == "GetState"),
        "{:?}",
        m.agent.rpcs()
    );
    // A bound of 0 is not a bound.
    let (code, _) = refused(
        &admin,
        "updateConfiguration",
        &[("name", "network.acl.max.items"), ("value", "0")],
    )
    .await;
    assert_eq!(code, 431);
});

on_both_backends!(
    list_network_acls_shows_the_routers_hit_counters_and_lists_without_them_when_it_is_silent,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "hits").await;
        let vpc = create_vpc(&admin, &env, "hits-vpc", "10.1.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        let (list_id, _) = create(
            &admin,
            "createNetworkACLList",
            &[("name", "counted"), ("vpcid", &vpc_id)],
        )
        .await;
        tier_with(&admin, &env, &vpc_id, "web", "10.1.1.1", &list_id).await;
        let (web, _) = create(
            &admin,
            "createNetworkACL",
            &[
                ("aclid", &list_id),
                ("number", "1"),
                ("protocol", "tcp"),
                ("startport", "80"),
            ],
        )
        .await;
        let (dns, _) = create(
            &admin,
            "createNetworkACL",
            &[
                ("aclid", &list_id),
                ("number", "2"),
                ("protocol", "udp"),
                ("startport", "53"),
                ("action", "Deny"),
                ("traffictype", "Egress"),
            ],
        )
        .await;
        let hit = |device_index, traffic: pb::TrafficType, number, packets, acl: &str| {
            pb::AclItemCounters {
                device_index,
                traffic_type: traffic as i32,
                number,
                packets,
                bytes: packets * 100,
                acl_id: acl.to_string(),
                item_id: String::new(),
            }
        };
        m.agent.set_acl_counters(vec![
            // Item 1 on two NICs using the list: summed.
            hit(2, pb::TrafficType::Ingress, 1, 5, &list_id),
            hit(3, pb::TrafficType::Ingress, 1, 2, &list_id),
            // Number 2 of the other direction, and another list's item 1:
            // not these items.
            hit(2, pb::TrafficType::Ingress, 2, 9, &list_id),
            hit(4, pb::TrafficType::Ingress, 1, 4, "another-list"),
            // Item 2 under another number (renumbered on the router since):
            // its id decides.
            pb::AclItemCounters {
                item_id: dns.clone(),
                ..hit(2, pb::TrafficType::Egress, 7, 6, &list_id)
            },
        ]);
        let shown = |listed: Value, id: &str| {
            listed["networkacl"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["id"] == id)
                .cloned()
                .unwrap_or_else(|| panic!("{id} not in {listed}"))
        };
        let listed = admin.ok("listNetworkACLs", &[("aclid", &list_id)]).await;
        assert_eq!(count(&listed), 2, "{listed}");
        let item = shown(listed.clone(), &web);
        assert_eq!((&item["packets"], &item["bytes"]), (&json!(7), &json!(700)));
        let item = shown(listed, &dns);
        assert_eq!((&item["packets"], &item["bytes"]), (&json!(6), &json!(600)));

        // The router answered without this item: no hits is 0.
        m.agent.set_acl_counters(Vec::new());
        let listed = admin.ok("listNetworkACLs", &[("aclid", &list_id)]).await;
        let item = shown(listed, &web);
        assert_eq!((&item["packets"], &item["bytes"]), (&json!(0), &json!(0)));

        // A router that does not answer: the same listing, without counts.
        m.agent
            .fail("GetState", AgentError::Failed("unreachable".into()));
        let listed = admin.ok("listNetworkACLs", &[("aclid", &list_id)]).await;
        assert_eq!(count(&listed), 2, "{listed}");
        for id in [&web, &dns] {
            let item = shown(listed.clone(), id);
            assert!(item.get("packets").is_none(), "{item}");
            assert!(item.get("bytes").is_none(), "{item}");
            assert_eq!(item["aclid"], list_id.as_str());
        }
        m.agent.unfail("GetState");

        // The built-in lists' items (no VPC, no one router): no counts.
        let allow = builtin(&admin, "default_allow").await;
        let listed = admin.ok("listNetworkACLs", &[("aclid", &allow)]).await;
        assert!(count(&listed) > 0, "{listed}");
        for item in listed["networkacl"].as_array().unwrap() {
            assert!(item.get("packets").is_none(), "{item}");
        }
    }
);

/// The id of a VPC's router and its generation now.
async fn router_of(admin: &Client, vpc: &str) -> (String, u64) {
    let routers = admin
        .ok("listRouters", &[("vpcid", vpc), ("listall", "true")])
        .await;
    let r = &routers["router"][0];
    (
        r["name"].as_str().unwrap().to_string(),
        r["configgeneration"].as_u64().unwrap(),
    )
}

/// The SetNetworkAcl commands sent, by router name: (router, generation,
/// item numbers).
fn acls_by_router(sent: &[(String, AgentCommand)]) -> Vec<(String, u64, Vec<u32>)> {
    let mut out: Vec<(String, u64, Vec<u32>)> = sent
        .iter()
        .filter_map(|(router, c)| match c {
            AgentCommand::SetNetworkAcl(r) => Some((
                router.clone(),
                r.generation,
                numbers(r.acl.as_ref().unwrap()),
            )),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

on_both_backends!(
    global_acl_lists_are_the_root_admins_and_reach_every_vpc_using_them,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "agz").await;
        let bob = user(&admin, "bob").await;
        let carol = user(&admin, "carol").await;

        // Only the root admin makes a list without a VPC.
        let (code, text) = refused(&bob, "createNetworkACLList", &[("name", "mine")]).await;
        assert_eq!(code, 531);
        assert_eq!(text, "Only Root Admin can create global ACLs.");
        let (global, job) = create(
            &admin,
            "createNetworkACLList",
            &[("name", "shared"), ("description", "for all")],
        )
        .await;
        assert_eq!(job["jobstatus"], 1, "{job}");
        let made = &job["jobresult"]["networkacllist"];
        assert_eq!(made["id"], global.as_str());
        assert_eq!(made["name"], "shared");
        // As for the built-ins (vpc id 0 in CloudStack): no vpcid, no vpcname.
        assert!(
            made.get("vpcid").is_none() && made.get("vpcname").is_none(),
            "{made}"
        );

        // Everyone sees it beside the built-ins, whatever the filters.
        let bob_vpc = create_vpc(&bob, &env, "bob-vpc", "10.1.0.0/16").await;
        let bob_vpc = bob_vpc["id"].as_str().unwrap().to_string();
        let carol_vpc = create_vpc(&carol, &env, "carol-vpc", "10.2.0.0/16").await;
        let carol_vpc = carol_vpc["id"].as_str().unwrap().to_string();
        for client in [&bob, &carol] {
            let seen = client.ok("listNetworkACLLists", &[]).await;
            let names: Vec<&str> = seen["networkacllist"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["default_deny", "default_allow", "shared"]);
        }
        let with_vpc = bob.ok("listNetworkACLLists", &[("vpcid", &bob_vpc)]).await;
        assert_eq!(count(&with_vpc), 3, "{with_vpc}");
        let by_id = carol.ok("listNetworkACLLists", &[("id", &global)]).await;
        assert_eq!(count(&by_id), 1);
        let by_name = carol.ok("listNetworkACLLists", &[("name", "shared")]).await;
        assert_eq!(by_name["networkacllist"][0]["id"], global.as_str());
        let (code, _) = refused(&carol, "listNetworkACLLists", &[("vpcid", &bob_vpc)]).await;
        assert_eq!(code, 531);

        // Any account's tier takes it: bob's by replaceNetworkACLList,
        // carol's at createNetwork.
        let bob_tier = create_tier(&bob, &env, &bob_vpc, "web", "10.1.1.1", "255.255.255.0").await;
        let bob_tier = bob_tier["id"].as_str().unwrap().to_string();
        let done = job_ok(
            &bob,
            "replaceNetworkACLList",
            &[("aclid", &global), ("networkid", &bob_tier)],
        )
        .await;
        assert_eq!(done["success"], true);
        let carol_tier = carol
            .ok(
                "createNetwork",
                &[
                    ("name", "app"),
                    ("displaytext", "app"),
                    ("zoneid", &env.zone),
                    ("vpcid", &carol_vpc),
                    ("networkofferingid", &env.tier_offering),
                    ("gateway", "10.2.1.1"),
                    ("netmask", "255.255.255.0"),
                    ("aclid", &global),
                ],
            )
            .await;
        assert_eq!(carol_tier["network"]["aclid"], global.as_str());
        let carol_tier = carol_tier["network"]["id"].as_str().unwrap().to_string();
        let of_tier = bob
            .ok("listNetworkACLLists", &[("networkid", &bob_tier)])
            .await;
        assert_eq!(count(&of_tier), 1);
        assert_eq!(of_tier["networkacllist"][0]["id"], global.as_str());
        for (client, tier, vm) in [(&bob, &bob_tier, "b1"), (&carol, &carol_tier, "c1")] {
            m.agent.clear();
            deploy_vm(client, &env, tier, vm).await;
            let pushed = acls(&m.agent.commands());
            assert_eq!(pushed.len(), 1, "{:?}", m.agent.rpcs());
            assert_eq!(pushed[0].1.acl_name, "shared");
        }

        // Read-only to the others: CloudStack's texts, 531.
        let deny22 = [
            ("aclid", global.as_str()),
            ("protocol", "tcp"),
            ("startport", "22"),
            ("action", "Deny"),
        ];
        let (code, text) = refused(&bob, "createNetworkACL", &deny22).await;
        assert_eq!(
            (code, text.as_str()),
            (531, "Only Root Admins can create rules for a global ACL.")
        );
        let (code, text) = refused(
            &bob,
            "createNetworkACL",
            &[("networkid", &bob_tier), ("protocol", "tcp")],
        )
        .await;
        assert_eq!(
            (code, text.as_str()),
            (531, "Only Root Admins can create rules for a global ACL.")
        );
        let (code, text) = refused(
            &carol,
            "updateNetworkACLList",
            &[("id", &global), ("name", "x")],
        )
        .await;
        assert_eq!(
            (code, text.as_str()),
            (531, "Must be Root Admin to update a global ACL.")
        );
        let (code, text) = refused(&carol, "deleteNetworkACLList", &[("id", &global)]).await;
        assert_eq!(
            (code, text.as_str()),
            (531, "Only Root Admin can delete global ACLs.")
        );

        // The root admin's item reaches both routers, each under a new
        // generation.
        let (bob_router, bob_g) = router_of(&admin, &bob_vpc).await;
        let (carol_router, carol_g) = router_of(&admin, &carol_vpc).await;
        m.agent.clear();
        let (item, job) = create(&admin, "createNetworkACL", &deny22).await;
        assert_eq!(job["jobstatus"], 1, "{job}");
        assert_eq!(job["jobresult"]["networkacl"]["aclid"], global.as_str());
        let mut expected = vec![
            (bob_router.clone(), bob_g + 1, vec![1]),
            (carol_router.clone(), carol_g + 1, vec![1]),
        ];
        expected.sort();
        assert_eq!(acls_by_router(&m.agent.sent()), expected);
        // Each router was first offered the one item as an edit made against
        // the generation it held (the recording agent takes no edit, so the
        // whole list followed).
        let mut edits: Vec<(String, u64, u64, Vec<u32>)> = m
            .agent
            .edits()
            .into_iter()
            .map(|(router, command)| {
                let AgentCommand::EditNetworkAcl(e) = command else {
                    panic!("{command:?}")
                };
                let items = e.acl.as_ref().map(numbers).unwrap_or_default();
                (router, e.base_generation, e.generation, items)
            })
            .collect();
        edits.sort();
        let mut offered = vec![
            (bob_router.clone(), bob_g, bob_g + 1, vec![1]),
            (carol_router.clone(), carol_g, carol_g + 1, vec![1]),
        ];
        offered.sort();
        assert_eq!(edits, offered);
        assert_eq!(router_of(&admin, &bob_vpc).await.1, bob_g + 1);
        assert_eq!(router_of(&admin, &carol_vpc).await.1, carol_g + 1);

        let (code, text) = refused_under(
            &bob,
            "updateNetworkACLItem",
            "createnetworkaclresponse",
            &[("id", &item), ("startport", "23")],
        )
        .await;
        assert_eq!(
            (code, text.as_str()),
            (531, "Only Root Admins can update global ACLs.")
        );
        let (code, text) = refused_under(
            &carol,
            "moveNetworkAclItem",
            "moveNetworkAclItemResponse",
            &[("id", &item), ("previousaclruleid", &item)],
        )
        .await;
        assert_eq!(
            (code, text.as_str()),
            (531, "Must be Root Admin to move global ACL rules.")
        );
        let (code, text) = refused(&bob, "deleteNetworkACL", &[("id", &item)]).await;
        assert_eq!(
            (code, text.as_str()),
            (531, "Only Root Admin can delete global ACL rules.")
        );

        // Updates and moves by the root admin reach both routers too.
        m.agent.clear();
        let done = run_under(
            &admin,
            "updateNetworkACLItem",
            "createnetworkaclresponse",
            &[("id", &item), ("number", "7")],
        )
        .await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        let pushed = acls_by_router(&m.agent.sent());
        assert_eq!(pushed.len(), 2, "{pushed:?}");
        assert!(pushed.iter().all(|(_, _, n)| n == &[7]), "{pushed:?}");
        let (second, _) = create(
            &admin,
            "createNetworkACL",
            &[
                ("aclid", global.as_str()),
                ("protocol", "udp"),
                ("number", "9"),
            ],
        )
        .await;
        m.agent.clear();
        let done = run_under(
            &admin,
            "moveNetworkAclItem",
            "moveNetworkAclItemResponse",
            &[("id", &second), ("nextaclruleid", &item)],
        )
        .await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        let pushed = acls_by_router(&m.agent.sent());
        assert_eq!(pushed.len(), 2, "{pushed:?}");
        assert!(pushed.iter().all(|(_, _, n)| n == &[1, 7]), "{pushed:?}");

        // A router that refuses: the item goes, and both routers are sent
        // their state again (their generations move on).
        let (_, bob_g) = router_of(&admin, &bob_vpc).await;
        let (_, carol_g) = router_of(&admin, &carol_vpc).await;
        m.agent
            .fail("SetNetworkAcl", AgentError::Failed("nft said no".into()));
        let done = run_job(
            &admin,
            "createNetworkACL",
            &[("aclid", global.as_str()), ("protocol", "icmp")],
        )
        .await;
        m.agent.unfail("SetNetworkAcl");
        assert_eq!(done["jobstatus"], 2, "{done}");
        assert_eq!(done["jobresultcode"], 530);
        assert_eq!(
            listed_numbers(&admin, &global)
                .await
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>(),
            [1, 7]
        );
        assert!(router_of(&admin, &bob_vpc).await.1 >= bob_g + 2);
        assert!(router_of(&admin, &carol_vpc).await.1 >= carol_g + 2);

        // Items of a global list carry no counters: they would sum traffic
        // of other accounts' routers.
        let listed = bob.ok("listNetworkACLs", &[("aclid", &global)]).await;
        assert_eq!(count(&listed), 2, "{listed}");
        assert!(listed["networkacl"][0].get("packets").is_none(), "{listed}");

        // A private gateway takes it too (createPrivateGateway aclid=).
        let gw = gateway_with(&admin, &bob_vpc, "801", "172.16.1.10", &global).await;
        let gateways = bob.ok("listPrivateGateways", &[("id", &gw)]).await;
        assert_eq!(gateways["privategateway"][0]["aclid"], global.as_str());

        // Renamed by the root admin; not deleted while tiers use it.
        let renamed = job_ok(
            &admin,
            "updateNetworkACLList",
            &[("id", &global), ("description", "everyone's")],
        )
        .await;
        assert_eq!(renamed["networkacllist"]["description"], "everyone's");
        let (code, text) = refused(&admin, "deleteNetworkACLList", &[("id", &global)]).await;
        assert_eq!(code, 530);
        assert!(
            text.contains("2 tier(s) and 1 private gateway(s)"),
            "{text}"
        );

        // Deleting the item: both routers get the list without it, bob's
        // for its tier and its gateway, under one generation each.
        let (_, bob_g) = router_of(&admin, &bob_vpc).await;
        let (_, carol_g) = router_of(&admin, &carol_vpc).await;
        m.agent.clear();
        job_ok(&admin, "deleteNetworkACL", &[("id", &item)]).await;
        let pushed = acls_by_router(&m.agent.sent());
        let mut want = vec![
            (bob_router.clone(), bob_g + 1, vec![1]),
            (bob_router.clone(), bob_g + 1, vec![1]),
            (carol_router.clone(), carol_g + 1, vec![1]),
        ];
        want.sort();
        assert_eq!(pushed, want);
        let gw_pushes = acls(&m.agent.commands())
            .into_iter()
            .filter(|(_, acl)| acl.private_gateway)
            .count();
        assert_eq!(gw_pushes, 1);
        let deny = builtin(&admin, "default_deny").await;
        job_ok(
            &admin,
            "replaceNetworkACLList",
            &[("aclid", &deny), ("gatewayid", &gw)],
        )
        .await;

        // Once no tier uses it, the root admin deletes it.
        let allow = builtin(&admin, "default_allow").await;
        for (client, tier) in [(&bob, &bob_tier), (&carol, &carol_tier)] {
            job_ok(
                client,
                "replaceNetworkACLList",
                &[("aclid", &allow), ("networkid", tier)],
            )
            .await;
        }
        let done = job_ok(&admin, "deleteNetworkACLList", &[("id", &global)]).await;
        assert_eq!(done["success"], true);
        let seen = bob.ok("listNetworkACLLists", &[]).await;
        assert_eq!(count(&seen), 2, "{seen}");
    }
);

on_both_backends!(
    a_global_list_change_holds_every_vpc_using_it_until_all_its_routers_have_it,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "aoz").await;
        let (global, _) = create(&admin, "createNetworkACLList", &[("name", "g1")]).await;
        let (other_global, _) = create(&admin, "createNetworkACLList", &[("name", "g2")]).await;
        let allow = builtin(&admin, "default_allow").await;
        let mut vpcs = Vec::new();
        for (name, octet) in [("va", 1), ("vb", 2)] {
            let vpc = create_vpc(&admin, &env, name, &format!("10.{octet}.0.0/16")).await;
            let vpc = vpc["id"].as_str().unwrap().to_string();
            let web = tier_with(
                &admin,
                &env,
                &vpc,
                "web",
                &format!("10.{octet}.1.1"),
                &global,
            )
            .await;
            let app = tier_with(
                &admin,
                &env,
                &vpc,
                "app",
                &format!("10.{octet}.2.1"),
                &other_global,
            )
            .await;
            deploy_vm(&admin, &env, &web, &format!("{name}-w")).await;
            deploy_vm(&admin, &env, &app, &format!("{name}-a")).await;
            vpcs.push((vpc, web));
        }
        let (va, va_web) = vpcs[0].clone();
        let (vb, _) = vpcs[1].clone();
        let (ra, ga) = router_of(&admin, &va).await;
        let (rb, gb) = router_of(&admin, &vb).await;

        // The routers take their time: the change of g1 has written its
        // rows and both generations, and waits in its pushes holding both
        // VPCs' locks.
        m.agent.clear();
        m.agent.hold();
        let first = admin
            .ok(
                "createNetworkACL",
                &[("aclid", &global), ("protocol", "tcp"), ("startport", "80")],
            )
            .await["jobid"]
            .as_str()
            .unwrap()
            .to_string();
        for _ in 0..200 {
            if router_of(&admin, &va).await.1 == ga + 1 && router_of(&admin, &vb).await.1 == gb + 1
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(router_of(&admin, &va).await.1, ga + 1);
        assert_eq!(router_of(&admin, &vb).await.1, gb + 1);

        // Meanwhile: a replaceNetworkACLList in the first VPC and a change
        // of the other global list used by both. Both wait for the locks.
        let replace = admin
            .ok(
                "replaceNetworkACLList",
                &[("aclid", &allow), ("networkid", &va_web)],
            )
            .await["jobid"]
            .as_str()
            .unwrap()
            .to_string();
        let second = admin
            .ok(
                "createNetworkACL",
                &[("aclid", &other_global), ("protocol", "udp")],
            )
            .await["jobid"]
            .as_str()
            .unwrap()
            .to_string();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        for job in [&first, &replace, &second] {
            let now = admin.ok("queryAsyncJobResult", &[("jobid", job)]).await;
            assert_eq!(now["jobstatus"], 0, "still waiting: {now}");
        }
        assert_eq!(
            router_of(&admin, &va).await.1,
            ga + 1,
            "nothing else ran in va"
        );
        m.agent.release();
        for job in [&first, &replace, &second] {
            let done = admin.wait_job(job).await;
            assert_eq!(done["jobstatus"], 1, "{done}");
        }

        // Each router got g1's change first, under the change's generation,
        // then the others, each under a later one.
        let sent = m.agent.sent();
        for (router, g) in [(&ra, ga), (&rb, gb)] {
            let generations: Vec<u64> = sent
                .iter()
                .filter(|(r, _)| r == router)
                .filter_map(|(_, c)| match c {
                    AgentCommand::SetNetworkAcl(a) => Some(a.generation),
                    _ => None,
                })
                .collect();
            assert_eq!(
                generations.first(),
                Some(&(g + 1)),
                "{router}: {generations:?}"
            );
            assert!(
                generations.windows(2).all(|w| w[0] <= w[1]),
                "{router}: {generations:?}"
            );
        }
        let a_acls: Vec<(u64, String)> = sent
            .iter()
            .filter(|(r, _)| r == &ra)
            .filter_map(|(_, c)| match c {
                AgentCommand::SetNetworkAcl(a) => {
                    Some((a.generation, a.acl.as_ref().unwrap().acl_name.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(a_acls[0], (ga + 1, "g1".to_string()), "{a_acls:?}");
        assert!(
            a_acls
                .iter()
                .any(|(g, name)| *g > ga + 1 && name == "default_allow"),
            "{a_acls:?}"
        );
        assert!(
            a_acls.iter().any(|(g, name)| *g > ga + 1 && name == "g2"),
            "{a_acls:?}"
        );
    }
);
