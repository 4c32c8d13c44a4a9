//! Parameters that must work or be refused (never accepted and dropped), and
//! numbers outside their type or range. createVPC's `dns1`, `dns2` and
//! `publicmtu` and updateVPC's `publicmtu` work: stored, shown, and carried to
//! the router (the exact fields the recording agent got).

use serde_json::Value;
use vpc_manager::orchestration::agent::{AgentCommand, AgentError};
use vpc_proto::v1 as pb;

use crate::support::api::{BOGUS, Client, id, job_ok, on_both_backends, refused, run_job};
use crate::support::vpc::{
    Env, account_in, create_tier, create_vpc, deploy_vm, vm_params, zone_env,
};

/// A call that must be refused: caller, command, parameters, and the
/// parameter the refusal names.
type RefusedCase<'a> = (&'a Client, &'a str, Vec<(&'a str, &'a str)>, &'a str);

/// A call with a number out of range: caller, command, parameters, the
/// parameter and the bound the refusal names.
type RangeCase<'a> = (
    &'a Client,
    &'a str,
    Vec<(&'a str, String)>,
    &'a str,
    &'a str,
);

/// A call that must be refused: command, parameters, and the texts the
/// refusal must hold.
type NamedRefusal<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<&'a str>);

/// createVPC's parameters for VPC `name` with CIDR `cidr`, plus `extra`.
fn vpc_call<'a>(env: &'a Env, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("name", "pv"),
        ("displaytext", "pv"),
        ("cidr", "10.91.0.0/16"),
        ("zoneid", env.zone.as_str()),
        ("vpcofferingid", env.vpc_offering.as_str()),
    ];
    p.extend_from_slice(extra);
    p
}

async fn vpc_count(client: &Client) -> u64 {
    client.ok("listVPCs", &[]).await["count"]
        .as_u64()
        .unwrap_or(0)
}

on_both_backends!(
    parameters_that_would_do_nothing_are_refused_naming_them,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "parz").await;
        let domain = id(
            &admin.ok("createDomain", &[("name", "pard")]).await,
            "domain",
        );
        let user = account_in(&admin, "paru", &domain, "0").await;
        let vpc = create_vpc(&user, &env, "keep", "10.92.0.0/16").await["id"]
            .as_str()
            .expect("VPC id")
            .to_string();
        let tier = create_tier(&user, &env, &vpc, "pt", "10.92.1.1", "255.255.255.0").await["id"]
            .as_str()
            .expect("tier id")
            .to_string();
        let before = vpc_count(&user).await;
        let cases: Vec<RefusedCase> = vec![
            (
                &user,
                "createVPC",
                vpc_call(&env, &[("projectid", BOGUS)]),
                "projectid",
            ),
            (&user, "listVPCs", vec![("projectid", "-1")], "projectid"),
            (
                &user,
                "updateVPC",
                vec![("id", &vpc), ("customid", "mine")],
                "customid",
            ),
            (
                &admin,
                "createVlanIpRange",
                vec![
                    ("zoneid", &env.zone),
                    ("gateway", "198.51.100.1"),
                    ("netmask", "255.255.255.0"),
                    ("startip", "198.51.100.10"),
                    ("endip", "198.51.100.20"),
                    ("forvirtualnetwork", "true"),
                    ("account", "paru"),
                    ("domainid", &domain),
                ],
                "account",
            ),
        ];
        for (client, command, params, name) in &cases {
            let (code, text) = refused(client, command, params).await;
            assert_eq!(code, 431, "{command} {name}: {text}");
            assert!(
                text.contains(&format!("Parameter {name} ")) && text.contains("not supported"),
                "{command} {name}: {text}"
            );
        }
        let vm = vm_params(&env, &tier, "pvm");
        // Registered user data, user data and key pairs are kept (VM
        // services): bad ones get CloudStack's refusals.
        for (name, value, expected) in [
            ("userdataid", BOGUS, "Invalid parameter userdataid value="),
            ("userdata", "x", "User data is not base64 encoded"),
            ("keypair", "x", "Not all specified keyparis exist"),
            ("keypairs", "x", "Not all specified keyparis exist"),
        ] {
            let mut p = vm.clone();
            p.push((name, value));
            let (code, text) = refused(&user, "deployVirtualMachine", &p).await;
            assert_eq!(code, 431, "{name}: {text}");
            assert!(text.contains(expected), "{name}: {text}");
        }
        assert_eq!(vpc_count(&user).await, before, "nothing was created");
        assert_eq!(
            user.ok("listVirtualMachines", &[]).await["count"].as_u64(),
            None,
            "no VM was created"
        );
        // Parameters CloudStack does not know are ignored, as it ignores them.
        let (status, body) = user
            .call("listVPCs", &[("frobnicate", "1"), ("id", &vpc)])
            .await;
        assert_eq!(
            (status, body["listvpcsresponse"]["count"].as_u64()),
            (200, Some(1))
        );
    }
);

on_both_backends!(macaddress_gives_the_default_nic_its_mac, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "macz").await;
    let domain = id(
        &admin.ok("createDomain", &[("name", "macd")]).await,
        "domain",
    );
    let user = account_in(&admin, "macu", &domain, "0").await;
    let vpc = create_vpc(&user, &env, "mac", "10.93.0.0/16").await["id"]
        .as_str()
        .expect("VPC id")
        .to_string();
    let tier = create_tier(&user, &env, &vpc, "mt", "10.93.1.1", "255.255.255.0").await["id"]
        .as_str()
        .expect("tier id")
        .to_string();
    let mut p = vm_params(&env, &tier, "withmac");
    p.push(("macaddress", "02-5A-00-00-00-07"));
    let vm = job_ok(&user, "deployVirtualMachine", &p).await["virtualmachine"].clone();
    assert_eq!(vm["nic"][0]["macaddress"], "02:5a:00:00:00:07", "{vm}");
    // The router's DHCP gets the same MAC.
    let sent = format!("{:?}", m.agent.commands());
    assert!(sent.contains("02:5a:00:00:00:07"), "the router got the MAC");
    for (mac, needle) in [
        ("02:5a:00:00:00:07", "in use"),
        ("01:00:5e:00:00:01", "multicast"),
        ("02:5a:00:00:07", "not a valid MAC"),
    ] {
        let mut p = vm_params(&env, &tier, "again");
        p.push(("macaddress", mac));
        let (code, text) = refused(&user, "deployVirtualMachine", &p).await;
        assert_eq!(code, 431, "{mac}: {text}");
        assert!(
            text.contains("macaddress") && text.contains(needle),
            "{text}"
        );
    }
    let listed = user.ok("listVirtualMachines", &[]).await;
    assert_eq!(listed["count"], 1, "only the first VM exists: {listed}");
    // Without macaddress a VM still gets a MAC of its own.
    let other = deploy_vm(&user, &env, &tier, "nomac").await;
    assert_ne!(other["nic"][0]["macaddress"], "02:5a:00:00:00:07");
});

/// The router of VPC `vpc`, as the root admin lists it.
async fn router_of(admin: &Client, vpc: &str) -> Value {
    admin
        .ok("listRouters", &[("vpcid", vpc), ("listall", "true")])
        .await["router"][0]
        .clone()
}

on_both_backends!(
    forced_stop_marks_a_router_stopped_that_could_not_be_stopped,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "forcez").await;
        let vpc = create_vpc(&admin, &env, "forced", "10.94.0.0/16").await["id"]
            .as_str()
            .expect("VPC id")
            .to_string();
        let router = router_of(&admin, &vpc).await["id"]
            .as_str()
            .expect("router id")
            .to_string();
        m.driver.fail("stop_router");
        let failed = run_job(&admin, "stopRouter", &[("id", &router)]).await;
        assert_eq!(failed["jobstatus"], 2, "an unforced stop fails: {failed}");
        assert_ne!(router_of(&admin, &vpc).await["state"], "Stopped");
        let done = job_ok(&admin, "stopRouter", &[("id", &router), ("forced", "true")]).await;
        assert_eq!(done["router"]["state"], "Stopped", "{done}");
        m.driver.unfail("stop_router");
        let started = job_ok(&admin, "startRouter", &[("id", &router)]).await;
        assert_eq!(started["router"]["state"], "Running");
        // A forced reboot is a forced stop, then a start.
        m.driver.fail("stop_router");
        let rebooted = job_ok(
            &admin,
            "rebootRouter",
            &[("id", &router), ("forced", "true")],
        )
        .await;
        assert_eq!(rebooted["router"]["state"], "Running", "{rebooted}");
        m.driver.unfail("stop_router");
    }
);

on_both_backends!(
    numbers_outside_their_type_or_range_are_431_naming_the_parameter,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "numz").await;
        let domain = id(
            &admin.ok("createDomain", &[("name", "numd")]).await,
            "domain",
        );
        let user = account_in(&admin, "numu", &domain, "0").await;
        let vpc = create_vpc(&user, &env, "num", "10.95.0.0/16").await["id"]
            .as_str()
            .expect("VPC id")
            .to_string();
        let list = job_ok(
            &user,
            "createNetworkACLList",
            &[("name", "num"), ("description", "num"), ("vpcid", &vpc)],
        )
        .await["networkacllist"]["id"]
            .as_str()
            .expect("list id")
            .to_string();
        let item = |extra: &[(&'static str, &'static str)]| {
            let mut p: Vec<(&str, String)> =
                vec![("aclid", list.clone()), ("protocol", "tcp".to_string())];
            p.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
            p
        };
        // (command, params, parameter, text the error must hold)
        let cases: Vec<RangeCase> = vec![
            (
                &user,
                "createNetworkACL",
                item(&[("number", "2147483648")]),
                "number",
                "2147483647",
            ),
            (
                &user,
                "createNetworkACL",
                item(&[("number", "-2147483649")]),
                "number",
                "-2147483648",
            ),
            (
                &user,
                "createNetworkACL",
                item(&[("startport", "99999999999")]),
                "startport",
                "2147483647",
            ),
            (
                &user,
                "createNetworkACL",
                item(&[("startport", "65536")]),
                "startport",
                "65535",
            ),
            (
                &user,
                "createNetworkACL",
                vec![
                    ("aclid", list.clone()),
                    ("protocol", "icmp".into()),
                    ("icmptype", "256".into()),
                ],
                "icmptype",
                "255",
            ),
            (
                &user,
                "listVPCs",
                vec![("page", "4294967297".into()), ("pagesize", "1".into())],
                "page",
                "2147483647",
            ),
            (
                &admin,
                "updateResourceLimit",
                vec![
                    ("resourcetype", "7".into()),
                    ("domainid", domain.clone()),
                    ("max", "9223372036854775808".into()),
                ],
                "max",
                "9223372036854775807",
            ),
            (
                &admin,
                "updateResourceLimit",
                vec![
                    ("resourcetype", "4294967303".into()),
                    ("domainid", domain.clone()),
                ],
                "resourcetype",
                "2147483647",
            ),
            (
                &user,
                "updateVPC",
                vec![("id", vpc.clone()), ("publicmtu", "99999999999".into())],
                "publicmtu",
                "",
            ),
        ];
        for (client, command, params, name, range) in &cases {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (code, text) = refused(client, command, &params).await;
            assert_eq!(code, 431, "{command} {params:?}: {text}");
            assert!(
                text.contains(name) && text.contains(range),
                "{command} {params:?}: {text}"
            );
        }
        let items = user.ok("listNetworkACLs", &[("aclid", &list)]).await;
        assert_eq!(items["count"].as_u64(), None, "no item was added: {items}");
    }
);

/// The tiers the router got (SetupGuestNetwork, ApplyConfig), by tier id.
fn pushed_tiers(commands: &[AgentCommand]) -> Vec<pb::GuestNetwork> {
    let mut tiers = Vec::new();
    for c in commands {
        match c {
            AgentCommand::SetupGuestNetwork(r) => tiers.extend(r.network.clone()),
            AgentCommand::ApplyConfig(r) => {
                tiers.extend(r.config.iter().flat_map(|c| c.guest_networks.clone()));
            }
            _ => {}
        }
    }
    tiers
}

/// The router's public NICs the agent got (ApplyConfig, PlugNic), with the
/// generation each came with.
fn pushed_public_nics(commands: &[AgentCommand]) -> Vec<(u64, pb::Nic)> {
    let public = |n: &pb::Nic| n.role == pb::NicRole::Public as i32;
    let mut nics = Vec::new();
    for c in commands {
        match c {
            AgentCommand::PlugNic(r) => nics.extend(
                r.nic
                    .iter()
                    .filter(|n| public(n))
                    .map(|n| (r.generation, n.clone())),
            ),
            AgentCommand::ApplyConfig(r) => nics.extend(
                r.config
                    .iter()
                    .flat_map(|c| c.nics.clone())
                    .filter(|n| public(n))
                    .map(|n| (r.generation, n)),
            ),
            _ => {}
        }
    }
    nics
}

on_both_backends!(vpc_dns_servers_and_public_mtu_reach_the_router, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "dnsz").await;
    let domain = id(
        &admin.ok("createDomain", &[("name", "dnsd")]).await,
        "domain",
    );
    let user = account_in(&admin, "dnsu", &domain, "0").await;
    m.agent.clear();
    let created = job_ok(
        &user,
        "createVPC",
        &vpc_call(
            &env,
            &[
                ("dns1", "198.51.100.53"),
                ("dns2", "198.51.100.54"),
                ("publicmtu", "1400"),
            ],
        ),
    )
    .await["vpc"]
        .clone();
    assert_eq!(
        (&created["dns1"], &created["dns2"], &created["publicmtu"]),
        (
            &Value::from("198.51.100.53"),
            &Value::from("198.51.100.54"),
            &Value::from(1400)
        ),
        "{created}"
    );
    let vpc = created["id"].as_str().expect("VPC id").to_string();
    let listed = user.ok("listVPCs", &[("id", &vpc)]).await["vpc"][0].clone();
    assert_eq!(
        (&listed["dns1"], &listed["dns2"], &listed["publicmtu"]),
        (&created["dns1"], &created["dns2"], &created["publicmtu"])
    );
    // The router started with its public NIC at the VPC's MTU.
    let public = pushed_public_nics(&m.agent.commands());
    assert!(!public.is_empty(), "{:?}", m.agent.rpcs());
    assert!(public.iter().all(|(_, n)| n.mtu == 1400), "{public:?}");
    // A tier's DNS upstreams (and the servers its DHCP hands out after the
    // router) are the VPC's, not the zone's.
    let tier = create_tier(&user, &env, &vpc, "dt", "10.91.1.1", "255.255.255.0").await["id"]
        .as_str()
        .expect("tier id")
        .to_string();
    deploy_vm(&user, &env, &tier, "dnsvm").await;
    let tiers = pushed_tiers(&m.agent.commands());
    let served: Vec<_> = tiers.iter().filter(|t| t.network_id == tier).collect();
    assert!(!served.is_empty(), "{:?}", m.agent.rpcs());
    for t in served {
        assert_eq!(t.dns_servers, vec!["198.51.100.53", "198.51.100.54"]);
    }

    // Without dns1/dns2 the zone's servers serve; without publicmtu, 1500.
    m.agent.clear();
    let plain = create_vpc(&user, &env, "plain", "10.96.0.0/16").await;
    assert_eq!(plain["publicmtu"], 1500, "{plain}");
    assert!(plain.get("dns1").is_none(), "{plain}");
    let public = pushed_public_nics(&m.agent.commands());
    assert!(
        !public.is_empty() && public.iter().all(|(_, n)| n.mtu == 1500),
        "{public:?}"
    );
    let plain_tier = create_tier(
        &user,
        &env,
        plain["id"].as_str().expect("VPC id"),
        "pt",
        "10.96.1.1",
        "255.255.255.0",
    )
    .await["id"]
        .as_str()
        .expect("tier id")
        .to_string();
    deploy_vm(&user, &env, &plain_tier, "plainvm").await;
    let tiers = pushed_tiers(&m.agent.commands());
    let served: Vec<_> = tiers
        .iter()
        .filter(|t| t.network_id == plain_tier)
        .collect();
    assert!(!served.is_empty());
    for t in served {
        assert_eq!(t.dns_servers, vec!["198.51.100.1"], "the zone's dns1");
    }
});

on_both_backends!(
    vpc_dns_and_public_mtu_out_of_range_are_refused_before_anything_is_made,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "mtuz").await;
        let domain = id(
            &admin.ok("createDomain", &[("name", "mtud")]).await,
            "domain",
        );
        let user = account_in(&admin, "mtuu", &domain, "0").await;
        let vpc = create_vpc(&user, &env, "keep", "10.97.0.0/16").await["id"]
            .as_str()
            .expect("VPC id")
            .to_string();
        let before = vpc_count(&user).await;
        // (command, parameters, what the refusal must name)
        let cases: Vec<NamedRefusal> = vec![
            (
                "createVPC",
                vpc_call(&env, &[("publicmtu", "1501")]),
                vec!["publicmtu", "68 to 1500", "vr.public.interface.max.mtu"],
            ),
            (
                "createVPC",
                vpc_call(&env, &[("publicmtu", "67")]),
                vec!["publicmtu", "68 to 1500"],
            ),
            (
                "createVPC",
                vpc_call(&env, &[("dns1", "not-an-address")]),
                vec!["dns1"],
            ),
            (
                "createVPC",
                vpc_call(&env, &[("dns1", "2001:db8::53")]),
                vec!["dns1"],
            ),
            (
                "createVPC",
                vpc_call(&env, &[("dns2", "198.51.100.54")]),
                vec!["dns2", "dns1"],
            ),
            (
                "updateVPC",
                vec![("id", &vpc), ("publicmtu", "1501")],
                vec!["publicmtu", "68 to 1500"],
            ),
            (
                "updateVPC",
                vec![("id", &vpc), ("publicmtu", "0")],
                vec!["publicmtu", "68 to 1500"],
            ),
        ];
        m.agent.clear();
        for (command, params, needles) in &cases {
            let (code, text) = refused(&user, command, params).await;
            assert_eq!(code, 431, "{command} {params:?}: {text}");
            for needle in needles {
                assert!(text.contains(needle), "{command} {params:?}: {text}");
            }
        }
        assert_eq!(vpc_count(&user).await, before, "nothing was created");
        assert!(m.agent.commands().is_empty(), "{:?}", m.agent.rpcs());
        let shown = user.ok("listVPCs", &[("id", &vpc)]).await["vpc"][0].clone();
        assert_eq!(shown["publicmtu"], 1500, "{shown}");

        // The maximum is CloudStack's setting, listed because it is read.
        let listed = admin
            .ok(
                "listConfigurations",
                &[("name", "vr.public.interface.max.mtu")],
            )
            .await;
        assert_eq!(listed["configuration"][0]["value"], "1500", "{listed}");
        admin
            .ok(
                "updateConfiguration",
                &[("name", "vr.public.interface.max.mtu"), ("value", "9000")],
            )
            .await;
        let done = job_ok(&user, "updateVPC", &[("id", &vpc), ("publicmtu", "9000")]).await;
        assert_eq!(done["vpc"]["publicmtu"], 9000, "{done}");
    }
);

on_both_backends!(update_vpc_public_mtu_reaches_the_running_router, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "upmz").await;
    let vpc = create_vpc(&admin, &env, "upm", "10.98.0.0/16").await["id"]
        .as_str()
        .expect("VPC id")
        .to_string();
    let router = || async {
        admin
            .ok("listRouters", &[("vpcid", &vpc), ("listall", "true")])
            .await["router"][0]
            .clone()
    };
    let before = router().await;
    m.agent.clear();
    let done = job_ok(&admin, "updateVPC", &[("id", &vpc), ("publicmtu", "1280")]).await;
    assert_eq!(done["vpc"]["publicmtu"], 1280, "{done}");
    // One PlugNic of the public NIC (same MAC, new MTU) with the next
    // generation; the router reports it applied.
    assert_eq!(m.agent.rpcs(), vec!["PlugNic"]);
    let public = pushed_public_nics(&m.agent.commands());
    let after = router().await;
    assert_eq!(public.len(), 1, "{public:?}");
    let (generation, nic) = &public[0];
    assert_eq!(nic.mtu, 1280);
    assert_eq!(
        Value::from(nic.mac_address.clone()),
        before["publicmacaddress"]
    );
    assert_eq!(Value::from(*generation), after["configgeneration"]);
    assert_eq!(after["configcurrent"], true, "{after}");
    // The same MTU again changes nothing.
    m.agent.clear();
    job_ok(&admin, "updateVPC", &[("id", &vpc), ("publicmtu", "1280")]).await;
    assert!(m.agent.commands().is_empty(), "{:?}", m.agent.rpcs());

    // A router that refuses: the job fails, the VPC keeps its MTU.
    m.agent
        .fail("PlugNic", AgentError::Failed("link busy".into()));
    let failed = run_job(&admin, "updateVPC", &[("id", &vpc), ("publicmtu", "1400")]).await;
    m.agent.unfail("PlugNic");
    assert_eq!(failed["jobstatus"], 2, "{failed}");
    let shown = admin.ok("listVPCs", &[("id", &vpc)]).await["vpc"][0].clone();
    assert_eq!(shown["publicmtu"], 1280, "{shown}");
    // A restart sends the whole state with the MTU in force.
    m.agent.clear();
    job_ok(&admin, "restartVPC", &[("id", &vpc)]).await;
    let public = pushed_public_nics(&m.agent.commands());
    assert!(
        !public.is_empty() && public.iter().all(|(_, n)| n.mtu == 1280),
        "{public:?}"
    );
});
