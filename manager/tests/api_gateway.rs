//! Private gateways and static routes through the HTTP API, on SQLite and
//! PostgreSQL: every rule's allowed and refused case, job results through
//! queryAsyncJobResult, the exact router commands each change produces,
//! reverts when the router refuses, and ownership.

mod support;

use serde_json::Value;
use support::api::{BOGUS, Client, job_ok, on_both_backends, refused, run_job};
use support::vpc::{create_tier, create_vpc, user, zone_env};
use vpc_manager::orchestration::recording::DriverCall;
use vpc_manager::orchestration::{AgentCommand, AgentError};
use vpc_proto::v1 as pb;

/// createPrivateGateway's parameters for VPC `vpc`.
fn gateway_params<'a>(
    vpc: &'a str,
    vlan: &'a str,
    ip: &'a str,
    gateway: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("vpcid", vpc),
        ("vlan", vlan),
        ("ipaddress", ip),
        ("gateway", gateway),
        ("netmask", "255.255.255.0"),
    ]
}

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

/// The VPC's router generation now.
async fn generation(admin: &Client, vpc: &str) -> u64 {
    let routers = admin
        .ok("listRouters", &[("vpcid", vpc), ("listall", "true")])
        .await;
    routers["router"][0]["configgeneration"].as_u64().unwrap()
}

fn count(list: &Value) -> u64 {
    list["count"].as_u64().unwrap_or(0)
}

/// The one SetStaticRoutes among `commands`: its generation and routes as
/// (cidr, next hop, gateway IP).
fn static_routes(commands: &[AgentCommand]) -> (u64, Vec<(String, String, String)>) {
    let sets: Vec<&pb::SetStaticRoutesRequest> = commands
        .iter()
        .filter_map(|c| match c {
            AgentCommand::SetStaticRoutes(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(sets.len(), 1, "{commands:?}");
    let routes = sets[0]
        .routes
        .iter()
        .map(|r| (r.cidr.clone(), r.next_hop.clone(), r.gateway_ip.clone()))
        .collect();
    (sets[0].generation, routes)
}

fn route(cidr: &str, hop: &str, gateway_ip: &str) -> (String, String, String) {
    (cidr.into(), hop.into(), gateway_ip.into())
}

on_both_backends!(
    private_gateways_are_checked_plugged_listed_and_removed,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "pgz").await;
        let vpc = create_vpc(&admin, &env, "pg-vpc", "10.1.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        create_tier(&admin, &env, &vpc_id, "web", "10.1.1.1", "255.255.255.0").await;
        let other = create_vpc(&admin, &env, "pg-other", "10.2.0.0/16").await;
        let other_id = other["id"].as_str().unwrap().to_string();
        let other_list = admin
            .ok(
                "createNetworkACLList",
                &[("name", "other"), ("vpcid", &other_id)],
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let deny_all = admin
            .ok("listNetworkACLLists", &[("name", "default_deny")])
            .await["networkacllist"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();

        // Refused before anything is stored or sent.
        m.agent.clear();
        let ok = gateway_params(&vpc_id, "vlan://500", "172.16.0.10", "172.16.0.1");
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut p = ok.clone();
            for (k, v) in extra {
                p.retain(|(name, _)| name != k);
                p.push((k, v));
            }
            p
        };
        let (code, text) = refused(&admin, "createPrivateGateway", &with(&[("vlan", "150")])).await;
        assert_eq!(code, 431);
        assert!(
            text.contains("VLAN tag 150") && text.contains("dynamic vlan allocation"),
            "a VLAN of the guest range is for tiers: {text}"
        );
        let mut no_vlan = ok.clone();
        no_vlan.retain(|(k, _)| *k != "vlan");
        let (code, text) = refused(&admin, "createPrivateGateway", &no_vlan).await;
        assert_eq!(code, 431);
        assert!(
            text.contains("Exactly one of vlan and associatednetworkid"),
            "{text}"
        );
        let (code, text) =
            refused(&admin, "createPrivateGateway", &with(&[("vpcid", BOGUS)])).await;
        assert_eq!(code, 431);
        assert!(text.contains(&format!("vpcid value={BOGUS}")), "{text}");
        let (code, text) =
            refused(&admin, "createPrivateGateway", &with(&[("aclid", BOGUS)])).await;
        assert_eq!(code, 431);
        assert!(text.contains(&format!("aclid value={BOGUS}")), "{text}");
        let mut foreign_acl = ok.clone();
        foreign_acl.push(("aclid", &other_list));
        let (code, text) = refused(&admin, "createPrivateGateway", &foreign_acl).await;
        assert_eq!(code, 431);
        assert!(text.contains("do not belong to the same VPC"), "{text}");
        let (code, text) = refused(
            &admin,
            "createPrivateGateway",
            &with(&[("ipaddress", "10.1.1.20"), ("gateway", "10.1.1.254")]),
        )
        .await;
        assert_eq!(code, 431);
        assert!(
            text.contains("overlaps with the tier cidr 10.1.1.0/24"),
            "{text}"
        );
        let (code, text) = refused(
            &admin,
            "createPrivateGateway",
            &with(&[("ipaddress", "172.16.9.10")]),
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("172.16.9.10 is not in the subnet"), "{text}");
        let (code, text) = refused(
            &admin,
            "createPrivateGateway",
            &with(&[("physicalnetworkid", BOGUS)]),
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("physicalnetworkid"), "{text}");
        assert!(m.agent.commands().is_empty());
        assert_eq!(
            count(
                &admin
                    .ok("listPrivateGateways", &[("listall", "true")])
                    .await
            ),
            0
        );

        // Created: the row during the request, the router in the job.
        let before = generation(&admin, &vpc_id).await;
        m.driver.clear();
        let mut p = ok.clone();
        p.push(("sourcenatsupported", "true"));
        let (gw_id, job) = create(&admin, "createPrivateGateway", &p).await;
        assert_eq!(job["jobstatus"], 1, "{job}");
        assert_eq!(job["jobinstancetype"], "PrivateGateway");
        assert_eq!(job["jobinstanceid"], gw_id.as_str());
        let gw = &job["jobresult"]["privategateway"];
        assert_eq!(gw["id"], gw_id.as_str());
        assert_eq!(gw["state"], "Ready");
        assert_eq!(gw["ipaddress"], "172.16.0.10");
        assert_eq!(gw["gateway"], "172.16.0.1");
        assert_eq!(gw["netmask"], "255.255.255.0");
        assert_eq!(gw["vlan"], "500", "vlan://500 is VLAN 500");
        assert_eq!(gw["vpcid"], vpc_id.as_str());
        assert_eq!(gw["vpcname"], "pg-vpc");
        assert_eq!(gw["zoneid"], env.zone.as_str());
        assert_eq!(gw["physicalnetworkid"], env.physnet.as_str());
        assert_eq!(gw["sourcenatsupported"], true);
        assert_eq!(gw["aclid"], deny_all.as_str(), "default_deny by default");
        assert_eq!(gw["aclname"], "default_deny");
        assert_eq!(gw["account"], "admin");
        assert_eq!(gw["domain"], "ROOT");

        // PlugNic, IpAssoc, SetSourceNat, SetNetworkAcl: one new generation.
        let g = before + 1;
        assert_eq!(generation(&admin, &vpc_id).await, g);
        let commands = m.agent.commands();
        assert_eq!(
            m.agent.rpcs(),
            ["PlugNic", "IpAssoc", "SetSourceNat", "SetNetworkAcl"]
        );
        let AgentCommand::PlugNic(plug) = &commands[0] else {
            unreachable!()
        };
        let nic = plug.nic.clone().unwrap();
        assert_eq!(plug.generation, g);
        assert_eq!(nic.role, pb::NicRole::Private as i32);
        let AgentCommand::IpAssoc(assoc) = &commands[1] else {
            unreachable!()
        };
        assert_eq!(assoc.generation, g);
        assert_eq!(assoc.ips.len(), 1);
        assert!(assoc.ips[0].add && assoc.ips[0].private_gateway);
        assert_eq!(assoc.ips[0].ip_address, "172.16.0.10");
        assert_eq!(assoc.ips[0].gateway, "172.16.0.1");
        assert_eq!(assoc.ips[0].prefix_length, 24);
        assert_eq!(assoc.ips[0].device_index, nic.device_index);
        let AgentCommand::SetSourceNat(snat) = &commands[2] else {
            unreachable!()
        };
        assert_eq!(snat.generation, g);
        assert!(
            snat.rules
                .iter()
                .any(|r| r.device_index == nic.device_index && r.nat_ip == "172.16.0.10"),
            "{snat:?}"
        );
        assert_eq!(snat.rules.len(), 2, "the public source NAT stays: {snat:?}");
        let AgentCommand::SetNetworkAcl(acl) = &commands[3] else {
            unreachable!()
        };
        assert_eq!(acl.generation, g);
        let acl = acl.acl.clone().unwrap();
        assert!(acl.private_gateway);
        assert_eq!(acl.device_index, nic.device_index);
        assert_eq!(acl.acl_name, "default_deny");
        assert_eq!(acl.items.len(), 2);
        assert!(
            acl.items
                .iter()
                .all(|i| i.action == pb::AclAction::Deny as i32)
        );
        let router_name = match &m.driver.calls()[..] {
            [DriverCall::PlugNic(name, index, _)] if *index == nic.device_index => name.clone(),
            calls => panic!("{calls:?}"),
        };

        // One gateway per (VLAN, CIDR) per VPC; an address once per network.
        let (code, text) = refused(
            &admin,
            "createPrivateGateway",
            &with(&[("ipaddress", "172.16.0.11")]),
        )
        .await;
        assert_eq!(code, 431);
        assert!(
            text.contains("vlan: vlan://500 and cidr 172.16.0.0/24 already exists"),
            "{text}"
        );
        let taken = gateway_params(&other_id, "500", "172.16.0.10", "172.16.0.1");
        let (code, text) = refused(&admin, "createPrivateGateway", &taken).await;
        assert_eq!(code, 431);
        assert!(text.contains("172.16.0.10 is already used"), "{text}");
        let shared = gateway_params(&other_id, "500", "172.16.0.20", "172.16.0.1");
        let (other_gw, job) = create(&admin, "createPrivateGateway", &shared).await;
        assert_eq!(job["jobstatus"], 1, "another VPC shares the network: {job}");

        // listPrivateGateways filters.
        let list = |params: Vec<(&'static str, String)>| {
            let admin = admin.clone();
            async move {
                let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
                admin.ok("listPrivateGateways", &p).await
            }
        };
        assert_eq!(count(&list(vec![]).await), 2);
        assert_eq!(count(&list(vec![("vpcid", vpc_id.clone())]).await), 1);
        assert_eq!(count(&list(vec![("vlan", "vlan://500".into())]).await), 2);
        assert_eq!(count(&list(vec![("vlan", "501".into())]).await), 0);
        let by_ip = list(vec![("ipaddress", "172.16.0.20".into())]).await;
        assert_eq!(count(&by_ip), 1);
        assert_eq!(by_ip["privategateway"][0]["id"], other_gw.as_str());
        assert_eq!(count(&list(vec![("state", "Ready".into())]).await), 2);
        assert_eq!(count(&list(vec![("id", gw_id.clone())]).await), 1);
        let paged = list(vec![("page", "2".into()), ("pagesize", "1".into())]).await;
        assert_eq!(count(&paged), 2);
        assert_eq!(paged["privategateway"].as_array().unwrap().len(), 1);
        assert_eq!(paged["privategateway"][0]["id"], other_gw.as_str());

        // A router that refuses: the job fails and nothing of the gateway stays.
        m.agent
            .fail("IpAssoc", AgentError::Failed("no such link".into()));
        m.driver.clear();
        let (failed_id, job) = create(
            &admin,
            "createPrivateGateway",
            &gateway_params(&vpc_id, "501", "172.17.0.10", "172.17.0.1"),
        )
        .await;
        m.agent.unfail("IpAssoc");
        assert_eq!(job["jobstatus"], 2, "{job}");
        assert_eq!(job["jobresultcode"], 530);
        let text = job["jobresult"]["errortext"].as_str().unwrap();
        assert!(
            text.contains("IpAssoc") && text.contains(&router_name),
            "{text}"
        );
        assert_eq!(count(&list(vec![("id", failed_id.clone())]).await), 0);
        assert!(
            m.driver
                .calls()
                .iter()
                .any(|c| matches!(c, DriverCall::UnplugNic(..))),
            "the plugged NIC is taken out again: {:?}",
            m.driver.calls()
        );
        // Its VLAN and addresses are free again.
        let (_, job) = create(
            &admin,
            "createPrivateGateway",
            &gateway_params(&vpc_id, "501", "172.17.0.10", "172.17.0.1"),
        )
        .await;
        assert_eq!(job["jobstatus"], 1, "{job}");

        // Users: the VLAN is the root admin's, the objects the owner's.
        let bob = user(&admin, "bob").await;
        let bob_vpc = create_vpc(&bob, &env, "bob-vpc", "10.9.0.0/16").await;
        let bob_vpc_id = bob_vpc["id"].as_str().unwrap().to_string();
        let bob_tier = create_tier(&bob, &env, &bob_vpc_id, "t", "10.9.1.1", "255.255.255.0").await;
        let (code, text) = refused(
            &bob,
            "createPrivateGateway",
            &gateway_params(&bob_vpc_id, "600", "172.18.0.10", "172.18.0.1"),
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("Only the ROOT admin"), "{text}");
        let tier_id = bob_tier["id"].as_str().unwrap();
        let mut riding = gateway_params(&bob_vpc_id, "", "172.18.0.10", "172.18.0.1");
        riding.retain(|(k, _)| *k != "vlan");
        riding.push(("associatednetworkid", tier_id));
        let (code, text) = refused(&bob, "createPrivateGateway", &riding).await;
        assert_eq!(code, 431);
        assert!(text.contains("is a VPC tier"), "{text}");
        let (code, _) = refused(&bob, "createPrivateGateway", &ok).await;
        assert_eq!(code, 531, "admin's VPC");
        assert_eq!(
            bob.ok("listPrivateGateways", &[]).await,
            serde_json::json!({})
        );
        assert_eq!(
            bob.ok("listPrivateGateways", &[("listall", "true")]).await,
            serde_json::json!({})
        );
        let (code, text) = refused(&bob, "deletePrivateGateway", &[("id", &gw_id)]).await;
        assert_eq!(code, 531);
        assert!(text.contains("bob"), "{text}");
        let (code, _) = refused(&bob, "listPrivateGateways", &[("vpcid", &vpc_id)]).await;
        assert_eq!(code, 531);

        // Deleted: out of the router (the remaining source NAT pushed), then
        // the rows.
        m.agent.clear();
        m.driver.clear();
        let done = job_ok(&admin, "deletePrivateGateway", &[("id", &gw_id)]).await;
        assert_eq!(done["success"], true);
        assert_eq!(m.agent.rpcs(), ["IpAssoc", "SetSourceNat", "UnplugNic"]);
        let commands = m.agent.commands();
        let AgentCommand::IpAssoc(assoc) = &commands[0] else {
            unreachable!()
        };
        assert!(!assoc.ips[0].add && assoc.ips[0].ip_address == "172.16.0.10");
        let AgentCommand::SetSourceNat(snat) = &commands[1] else {
            unreachable!()
        };
        assert!(
            snat.rules.iter().all(|r| r.nat_ip != "172.16.0.10"),
            "{snat:?}"
        );
        assert_eq!(
            m.driver.calls(),
            [DriverCall::UnplugNic(
                router_name.clone(),
                nic.device_index,
                nic.mac_address.clone()
            )]
        );
        assert_eq!(count(&list(vec![("id", gw_id.clone())]).await), 0);
        let (code, text) = refused(&admin, "deletePrivateGateway", &[("id", &gw_id)]).await;
        assert_eq!(code, 431);
        assert!(text.contains(&format!("id value={gw_id}")), "{text}");
        // The (VLAN, CIDR) is free for the VPC again.
        let (_, job) = create(&admin, "createPrivateGateway", &ok).await;
        assert_eq!(job["jobstatus"], 1, "{job}");
    }
);

on_both_backends!(
    static_routes_push_the_whole_set_and_revert_on_failure,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "srz").await;
        let vpc = create_vpc(&admin, &env, "sr-vpc", "10.1.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        let (gw_id, job) = create(
            &admin,
            "createPrivateGateway",
            &gateway_params(&vpc_id, "700", "172.16.0.10", "172.16.0.1"),
        )
        .await;
        assert_eq!(job["jobstatus"], 1, "{job}");

        // Refusals: all during the request.
        m.agent.clear();
        let via = |cidr: &'static str| vec![("cidr", cidr), ("gatewayid", gw_id.as_str())];
        for (cidr, meaning) in [
            ("10.1.5.0/24", "overlaps the VPC cidr"),
            ("10.0.0.0/8", "overlaps the VPC cidr"),
            ("169.254.10.0/24", "link-local"),
            ("192.168.1.7/24", "host bits set"),
            ("nonsense", "not a valid IPv4 CIDR"),
        ] {
            let (code, text) = refused(&admin, "createStaticRoute", &via(cidr)).await;
            assert_eq!(code, 431, "{cidr}");
            assert!(text.contains(meaning), "{cidr}: {text}");
        }
        admin
            .ok(
                "updateConfiguration",
                &[("name", "denied.routes"), ("value", "192.0.2.0/24")],
            )
            .await;
        let (code, text) = refused(&admin, "createStaticRoute", &via("192.0.2.128/25")).await;
        assert_eq!(code, 431);
        assert!(text.contains("denied.routes"), "{text}");
        let (code, text) =
            refused(&admin, "createStaticRoute", &[("cidr", "192.168.9.0/24")]).await;
        assert_eq!(code, 431);
        assert!(
            text.contains("Exactly one of gatewayid and nexthop"),
            "{text}"
        );
        let (code, text) = refused(
            &admin,
            "createStaticRoute",
            &[("cidr", "192.168.9.0/24"), ("nexthop", "172.16.0.5")],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("vpcid is required"), "{text}");
        let (code, text) = refused(
            &admin,
            "createStaticRoute",
            &[
                ("cidr", "192.168.9.0/24"),
                ("nexthop", "8.8.8.8"),
                ("vpcid", &vpc_id),
            ],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("nexthop 8.8.8.8 is neither"), "{text}");
        let (code, text) = refused(
            &admin,
            "createStaticRoute",
            &[("cidr", "192.168.9.0/24"), ("gatewayid", BOGUS)],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains(&format!("gatewayid value={BOGUS}")), "{text}");
        let (code, _) = refused(&admin, "createStaticRoute", &[("gatewayid", &gw_id)]).await;
        assert_eq!(code, 431, "cidr is required");
        assert!(m.agent.commands().is_empty());

        // A route through the gateway: Active, the whole set pushed.
        let before = generation(&admin, &vpc_id).await;
        let (r1, job) = create(&admin, "createStaticRoute", &via("192.168.50.0/24")).await;
        assert_eq!(job["jobstatus"], 1, "{job}");
        assert_eq!(job["jobinstancetype"], "StaticRoute");
        let sr = &job["jobresult"]["staticroute"];
        assert_eq!(sr["id"], r1.as_str());
        assert_eq!(sr["state"], "Active");
        assert_eq!(sr["cidr"], "192.168.50.0/24");
        assert_eq!(sr["vpcid"], vpc_id.as_str());
        assert_eq!(sr["vpcgatewayid"], gw_id.as_str());
        assert_eq!(sr["vpcgatewayip"], "172.16.0.10");
        assert_eq!(sr["account"], "admin");
        assert_eq!(
            static_routes(&m.agent.commands()),
            (
                before + 1,
                vec![route("192.168.50.0/24", "172.16.0.1", "172.16.0.10")]
            )
        );

        // Overlapping another route of the VPC: 537, at once.
        let (code, text) = refused(&admin, "createStaticRoute", &via("192.168.50.128/25")).await;
        assert_eq!(code, 537);
        assert!(
            text.contains("conflicts with the existing static route 192.168.50.0/24"),
            "{text}"
        );

        // More routes: each push carries every route.
        m.agent.clear();
        let (r2, job) = create(&admin, "createStaticRoute", &via("192.168.60.0/24")).await;
        assert_eq!(job["jobstatus"], 1, "{job}");
        assert_eq!(
            static_routes(&m.agent.commands()),
            (
                before + 2,
                vec![
                    route("192.168.50.0/24", "172.16.0.1", "172.16.0.10"),
                    route("192.168.60.0/24", "172.16.0.1", "172.16.0.10"),
                ]
            )
        );
        m.agent.clear();
        let (r3, job) = create(
            &admin,
            "createStaticRoute",
            &[
                ("cidr", "192.168.70.0/24"),
                ("nexthop", "172.16.0.5"),
                ("vpcid", &vpc_id),
            ],
        )
        .await;
        assert_eq!(
            job["jobstatus"], 1,
            "a next hop in the gateway's subnet: {job}"
        );
        assert_eq!(job["jobresult"]["staticroute"]["nexthop"], "172.16.0.5");
        let (_, routes) = static_routes(&m.agent.commands());
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[2], route("192.168.70.0/24", "172.16.0.5", ""));

        // A router that refuses: the job fails and the new route is gone.
        m.agent
            .fail("SetStaticRoutes", AgentError::Failed("table full".into()));
        let (r4, job) = create(&admin, "createStaticRoute", &via("192.168.80.0/24")).await;
        assert_eq!(job["jobstatus"], 2, "{job}");
        assert_eq!(job["jobresultcode"], 530);
        assert!(
            job["jobresult"]["errortext"]
                .as_str()
                .unwrap()
                .contains("SetStaticRoutes"),
            "{job}"
        );
        let listed = admin.ok("listStaticRoutes", &[("vpcid", &vpc_id)]).await;
        assert_eq!(count(&listed), 3);
        assert!(
            listed["staticroute"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["id"] != r4.as_str() && r["state"] == "Active")
        );
        // A failed delete keeps the route, Active.
        let done = run_job(&admin, "deleteStaticRoute", &[("id", &r2)]).await;
        assert_eq!(done["jobstatus"], 2, "{done}");
        assert_eq!(done["jobresultcode"], 530);
        let kept = admin.ok("listStaticRoutes", &[("id", &r2)]).await;
        assert_eq!(kept["staticroute"][0]["state"], "Active");
        m.agent.unfail("SetStaticRoutes");

        // The gateway cannot go while routes use it (530, in the request).
        let (code, text) = refused(&admin, "deletePrivateGateway", &[("id", &gw_id)]).await;
        assert_eq!(code, 530);
        assert!(text.contains("2 static routes"), "{text}");

        // Deleted: the set without it, then the row.
        m.agent.clear();
        let done = job_ok(&admin, "deleteStaticRoute", &[("id", &r2)]).await;
        assert_eq!(done["success"], true);
        let (_, routes) = static_routes(&m.agent.commands());
        assert_eq!(
            routes,
            vec![
                route("192.168.50.0/24", "172.16.0.1", "172.16.0.10"),
                route("192.168.70.0/24", "172.16.0.5", ""),
            ]
        );
        assert_eq!(
            count(&admin.ok("listStaticRoutes", &[("id", &r2)]).await),
            0
        );
        // Its CIDR is free again.
        let (_, job) = create(&admin, "createStaticRoute", &via("192.168.60.0/25")).await;
        assert_eq!(job["jobstatus"], 1, "{job}");

        // listStaticRoutes filters and paging.
        assert_eq!(
            count(&admin.ok("listStaticRoutes", &[("gatewayid", &gw_id)]).await),
            2
        );
        assert_eq!(
            count(&admin.ok("listStaticRoutes", &[("state", "Active")]).await),
            3
        );
        let paged = admin
            .ok("listStaticRoutes", &[("page", "1"), ("pagesize", "2")])
            .await;
        assert_eq!(count(&paged), 3);
        assert_eq!(paged["staticroute"].as_array().unwrap().len(), 2);
        assert_eq!(paged["staticroute"][0]["id"], r1.as_str());

        // Ownership.
        let eve = user(&admin, "eve").await;
        assert_eq!(eve.ok("listStaticRoutes", &[]).await, serde_json::json!({}));
        let (code, _) = refused(&eve, "listStaticRoutes", &[("gatewayid", &gw_id)]).await;
        assert_eq!(code, 531);
        let (code, _) = refused(&eve, "deleteStaticRoute", &[("id", &r3)]).await;
        assert_eq!(code, 531);
        let (code, _) = refused(&eve, "createStaticRoute", &via("192.168.90.0/24")).await;
        assert_eq!(code, 531);

        // With the routes gone the gateway goes.
        for r in [&r1, &r3] {
            job_ok(&admin, "deleteStaticRoute", &[("id", r)]).await;
        }
        let rest = admin.ok("listStaticRoutes", &[("vpcid", &vpc_id)]).await;
        assert_eq!(count(&rest), 1);
        let last = rest["staticroute"][0]["id"].as_str().unwrap().to_string();
        job_ok(&admin, "deleteStaticRoute", &[("id", &last)]).await;
        let done = job_ok(&admin, "deletePrivateGateway", &[("id", &gw_id)]).await;
        assert_eq!(done["success"], true);
        // A route needs a Ready gateway: this one is gone.
        let (code, _) = refused(&admin, "createStaticRoute", &via("192.168.95.0/24")).await;
        assert_eq!(code, 431);
    }
);
