//! Parameters that must work or be refused (never accepted and dropped), and
//! numbers outside their type or range.

use serde_json::Value;

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
                vpc_call(&env, &[("dns1", "198.51.100.53")]),
                "dns1",
            ),
            (
                &user,
                "createVPC",
                vpc_call(&env, &[("dns2", "198.51.100.54")]),
                "dns2",
            ),
            (
                &user,
                "createVPC",
                vpc_call(&env, &[("publicmtu", "1400")]),
                "publicmtu",
            ),
            (
                &user,
                "createVPC",
                vpc_call(&env, &[("projectid", BOGUS)]),
                "projectid",
            ),
            (
                &user,
                "createVPC",
                vpc_call(&env, &[("customjobid", BOGUS)]),
                "customjobid",
            ),
            (&user, "listVPCs", vec![("projectid", "-1")], "projectid"),
            (
                &user,
                "updateVPC",
                vec![("id", &vpc), ("publicmtu", "1400")],
                "publicmtu",
            ),
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
        for name in ["userdata", "keypair", "keypairs", "userdataid"] {
            let value = if name == "userdataid" { BOGUS } else { "x" };
            let mut p = vm.clone();
            p.push((name, value));
            let (code, text) = refused(&user, "deployVirtualMachine", &p).await;
            assert_eq!(code, 431, "{name}: {text}");
            assert!(
                text.contains(name) && text.contains("not supported"),
                "{text}"
            );
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
