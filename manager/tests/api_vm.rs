//! VMs in VPC tiers through the HTTP API, on SQLite and PostgreSQL: the
//! catalog, deployment with its rules (addresses, names, ownership), the
//! first VM implementing its tier (the exact router commands and
//! generations), stop/start keeping the address, destroy and expunge
//! freeing it, and a router failure rolling the tier back.

mod support;

use serde_json::Value;
use support::api::{BOGUS, Client, TestManager, job_ok, on_both_backends, refused, run_job};
use support::vpc::{SMALL, TEMPLATE, create_tier, create_vpc, user, vm_params, zone_env};
use vpc_manager::orchestration::recording::DriverCall;
use vpc_manager::orchestration::{AgentCommand, AgentError};

const DEFAULT_ALLOW: &str = "8f1c2f4e-0002-4d6a-9e5b-6c1d00000002";

fn with<'a>(
    mut p: Vec<(&'a str, &'a str)>,
    key: &'a str,
    value: &'a str,
) -> Vec<(&'a str, &'a str)> {
    p.retain(|(k, _)| *k != key);
    p.push((key, value));
    p
}

/// Deploys a VM and returns the VM of its job result.
async fn deploy(client: &Client, params: &[(&str, &str)]) -> Value {
    job_ok(client, "deployVirtualMachine", params).await["virtualmachine"].clone()
}

/// The job of an async-create command that must fail: (code, text).
async fn job_fails(client: &Client, command: &str, params: &[(&str, &str)]) -> (u64, String) {
    let done = run_job(client, command, params).await;
    assert_eq!(done["jobstatus"], 2, "{command} should fail: {done}");
    (
        done["jobresultcode"].as_u64().unwrap(),
        done["jobresult"]["errortext"].as_str().unwrap().to_string(),
    )
}

fn rpcs_and_generations(m: &TestManager) -> Vec<(&'static str, u64)> {
    m.agent
        .commands()
        .iter()
        .map(|c| (c.rpc(), c.generation().unwrap_or_default()))
        .collect()
}

/// The (mac, ip, hostname, default) leases of the last SetDhcpEntries.
fn last_leases(m: &TestManager) -> Vec<(String, String, String, bool)> {
    let dhcp = m
        .agent
        .commands()
        .into_iter()
        .rev()
        .find_map(|c| match c {
            AgentCommand::SetDhcpEntries(r) => r.dhcp,
            _ => None,
        })
        .expect("a SetDhcpEntries");
    dhcp.entries
        .into_iter()
        .map(|e| (e.mac_address, e.ip_address, e.hostname, e.default_gateway))
        .collect()
}

async fn vms(client: &Client, params: &[(&str, &str)]) -> (u64, Vec<Value>) {
    let body = client.ok("listVirtualMachines", params).await;
    (
        body["count"].as_u64().unwrap_or(0),
        body["virtualmachine"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    )
}

async fn tier(client: &Client, id: &str) -> Value {
    client
        .ok("listNetworks", &[("id", id), ("listall", "true")])
        .await["network"][0]
        .clone()
}

on_both_backends!(the_catalog_lists_offerings_and_templates, |m| {
    let admin = m.admin();
    let alice = user(&admin, "alice").await;
    let offerings = alice.ok("listServiceOfferings", &[]).await;
    assert_eq!(offerings["count"], 2);
    let small = &offerings["serviceoffering"][0];
    assert_eq!(small["id"], SMALL);
    assert_eq!(small["name"], "Small Instance");
    assert_eq!(
        (small["cpunumber"].clone(), small["memory"].clone()),
        (Value::from(1), Value::from(512))
    );
    let one = alice
        .ok("listServiceOfferings", &[("keyword", "medium")])
        .await;
    assert_eq!(one["count"], 1);
    // System offerings (the routers') are the root admin's (issue 15).
    let (code, text) = refused(&alice, "listServiceOfferings", &[("issystem", "true")]).await;
    assert_eq!(code, 431);
    assert!(text.contains("Only ROOT admins"), "{text}");

    let featured = alice
        .ok("listTemplates", &[("templatefilter", "featured")])
        .await;
    assert_eq!(featured["count"], 1);
    assert_eq!(featured["template"][0]["id"], TEMPLATE);
    assert_eq!(featured["template"][0]["isready"], true);
    assert_eq!(featured["template"][0]["ispublic"], true);
    let executable = alice
        .ok("listTemplates", &[("templatefilter", "executable")])
        .await;
    assert_eq!(executable["count"], 1);
    let own = alice
        .ok("listTemplates", &[("templatefilter", "self")])
        .await;
    assert!(
        own.get("count").is_none(),
        "the built-in template is the system's"
    );
    let (code, text) = refused(&alice, "listTemplates", &[]).await;
    assert_eq!(code, 431);
    assert!(text.contains("templatefilter"), "{text}");
    let (code, text) = refused(&alice, "listTemplates", &[("templatefilter", "mine")]).await;
    assert_eq!(code, 431);
    assert!(text.contains("mine"), "{text}");
    let (code, text) = refused(&alice, "listTemplates", &[("templatefilter", "all")]).await;
    assert_eq!(code, 431);
    assert!(text.contains("admin only"), "{text}");
    let all = admin
        .ok("listTemplates", &[("templatefilter", "all")])
        .await;
    assert_eq!(all["count"], 1);
});

on_both_backends!(
    the_first_vm_implements_its_tier_and_vms_keep_their_addresses,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "mz1").await;
        let alice = user(&admin, "alice").await;
        let vpc = create_vpc(&alice, &env, "va", "10.1.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        let web = alice
            .ok(
                "createNetwork",
                &[
                    ("name", "web"),
                    ("zoneid", &env.zone),
                    ("vpcid", &vpc_id),
                    ("networkofferingid", &env.tier_offering),
                    ("gateway", "10.1.1.1"),
                    ("netmask", "255.255.255.0"),
                    ("aclid", DEFAULT_ALLOW),
                ],
            )
            .await["network"]
            .clone();
        let web_id = web["id"].as_str().unwrap().to_string();
        let generation_before = m.agent.applied_generation();
        m.agent.clear();

        // The first VM: the tier is implemented (vnet 100, the router's NIC with
        // the gateway, the tier and its ACL), then the VM's lease is pushed.
        let vm1 = deploy(&alice, &vm_params(&env, &web_id, "vm1")).await;
        assert_eq!(vm1["name"], "vm1");
        assert_eq!(vm1["displayname"], "vm1");
        assert_eq!(vm1["state"], "Running");
        assert_eq!(vm1["account"], "alice");
        assert_eq!(vm1["zoneid"], env.zone.as_str());
        assert_eq!(vm1["serviceofferingid"], SMALL);
        assert_eq!(vm1["templateid"], TEMPLATE);
        assert!(
            vm1.get("instancename").is_none(),
            "users see no instance name"
        );
        let nic = &vm1["nic"][0];
        assert_eq!(nic["networkid"], web_id.as_str());
        assert_eq!(nic["networkname"], "web");
        assert_eq!(
            nic["ipaddress"], "10.1.1.2",
            "the lowest free address, never the gateway"
        );
        assert_eq!(nic["netmask"], "255.255.255.0");
        assert_eq!(nic["gateway"], "10.1.1.1");
        assert_eq!(nic["isdefault"], true);
        assert_eq!(nic["traffictype"], "Guest");
        assert_eq!(nic["type"], "Isolated");
        let vm1_mac = nic["macaddress"].as_str().unwrap().to_string();
        let g = generation_before;
        assert_eq!(
            rpcs_and_generations(m),
            vec![
                ("PlugNic", g + 1),
                ("SetupGuestNetwork", g + 1),
                ("SetNetworkAcl", g + 1),
                ("SetDhcpEntries", g + 2),
                ("SetVmData", g + 2),
            ]
        );
        let commands = m.agent.commands();
        let (
            AgentCommand::PlugNic(plug),
            AgentCommand::SetupGuestNetwork(setup),
            AgentCommand::SetNetworkAcl(acl),
        ) = (&commands[0], &commands[1], &commands[2])
        else {
            panic!("{commands:?}");
        };
        let plugged = plug.nic.clone().unwrap();
        let network = setup.network.clone().unwrap();
        assert_eq!(network.cidr, "10.1.1.0/24");
        assert_eq!(network.gateway, "10.1.1.1");
        assert_eq!(network.network_id, web_id);
        assert_eq!(network.domain_name, vpc["networkdomain"].as_str().unwrap());
        assert_eq!(
            (network.device_index, &network.mac_address),
            (plugged.device_index, &plugged.mac_address)
        );
        let acl = acl.acl.clone().unwrap();
        assert_eq!(acl.acl_name, "default_allow");
        assert_eq!(acl.items.len(), 2);
        assert_eq!(acl.device_index, plugged.device_index);
        assert_eq!(
            last_leases(m),
            vec![(vm1_mac.clone(), "10.1.1.2".into(), "vm1".into(), true)]
        );
        let implemented = tier(&admin, &web_id).await;
        assert_eq!(implemented["state"], "Implemented");
        assert_eq!(implemented["broadcasturi"], "vlan://100");
        assert_eq!(implemented["vlan"], "100");
        let seen_by_admin = vms(
            &admin,
            &[("id", vm1["id"].as_str().unwrap()), ("listall", "true")],
        )
        .await
        .1;
        let instance = seen_by_admin[0]["instancename"].as_str().unwrap();
        assert!(
            instance.starts_with("i-") && instance.ends_with("-VM"),
            "{instance}"
        );

        // A second VM with a fixed address: only the tier's new lease list.
        m.agent.clear();
        let vm2 = deploy(
            &alice,
            &with(vm_params(&env, &web_id, "vm2"), "ipaddress", "10.1.1.50"),
        )
        .await;
        assert_eq!(vm2["nic"][0]["ipaddress"], "10.1.1.50");
        assert_eq!(
            rpcs_and_generations(m),
            vec![("SetDhcpEntries", g + 3), ("SetVmData", g + 3)]
        );
        let leases = last_leases(m);
        assert_eq!(leases.len(), 2);
        assert_eq!(leases[1].1, "10.1.1.50");
        assert_eq!(leases[1].2, "vm2");
        let vm2_id = vm2["id"].as_str().unwrap().to_string();

        // Address rules: taken, the gateway, outside the tier: no capacity
        // (533, as CloudStack's guru answers); not an address: 431.
        for (ip, expected) in [
            ("10.1.1.50", "10.1.1.50"),
            ("10.1.1.1", "10.1.1.1"),
            ("10.1.2.9", "10.1.2.9"),
        ] {
            let (code, text) = refused(
                &alice,
                "deployVirtualMachine",
                &with(vm_params(&env, &web_id, "vmx"), "ipaddress", ip),
            )
            .await;
            assert_eq!(code, 533, "{ip}");
            assert!(
                text.contains("Unable to acquire Guest IP") && text.contains(expected),
                "{text}"
            );
        }
        let (code, _) = refused(
            &alice,
            "deployVirtualMachine",
            &with(vm_params(&env, &web_id, "vmx"), "ipaddress", "10.1.1.x"),
        )
        .await;
        assert_eq!(code, 431);
        // Names: a host name, unique in the account.
        let (code, text) = refused(
            &alice,
            "deployVirtualMachine",
            &vm_params(&env, &web_id, "vm1"),
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("already exists"), "{text}");
        let (code, text) = refused(
            &alice,
            "deployVirtualMachine",
            &vm_params(&env, &web_id, "1vm"),
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("Invalid name"), "{text}");
        // Ids that name nothing, missing tiers.
        for key in ["zoneid", "serviceofferingid", "templateid", "networkids"] {
            let (code, text) = refused(
                &alice,
                "deployVirtualMachine",
                &with(vm_params(&env, &web_id, "vmx"), key, BOGUS),
            )
            .await;
            assert_eq!(code, 431, "{key}");
            assert!(text.contains(BOGUS), "{key}: {text}");
        }
        let no_tier: Vec<_> = vm_params(&env, &web_id, "vmx")
            .into_iter()
            .filter(|(k, _)| *k != "networkids")
            .collect();
        let (code, text) = refused(&alice, "deployVirtualMachine", &no_tier).await;
        assert_eq!(code, 431);
        assert!(text.contains("networkids"), "{text}");
        // vm2's SetDhcpEntries and SetVmData only.
        assert!(m.agent.commands().len() == 2, "refusals send nothing");

        // Ownership: bob may not use alice's tier, nor may an admin give bob a
        // NIC in it; a VM's tiers are in one VPC.
        let bob = user(&admin, "bob").await;
        let (code, _) = refused(
            &bob,
            "deployVirtualMachine",
            &vm_params(&env, &web_id, "b1"),
        )
        .await;
        assert_eq!(code, 531);
        let bob_domain = admin.ok("listDomains", &[("name", "bob")]).await["domain"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let for_bob = with(
            with(vm_params(&env, &web_id, "b1"), "account", "bob"),
            "domainid",
            &bob_domain,
        );
        let (code, text) = refused(&admin, "deployVirtualMachine", &for_bob).await;
        assert_eq!(code, 531);
        assert!(text.contains("another account"), "{text}");
        let other = create_vpc(&alice, &env, "vb", "10.2.0.0/16").await;
        let far = create_tier(
            &alice,
            &env,
            other["id"].as_str().unwrap(),
            "far",
            "10.2.1.1",
            "255.255.255.0",
        )
        .await;
        let both = format!("{web_id},{}", far["id"].as_str().unwrap());
        let (code, text) = refused(
            &alice,
            "deployVirtualMachine",
            &vm_params(&env, &both, "vmx"),
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("one VPC"), "{text}");

        // listVirtualMachines: ownership, filters, paging.
        let (count, _) = vms(&bob, &[]).await;
        assert_eq!(count, 0);
        let (count, _) = vms(&bob, &[("listall", "true")]).await;
        assert_eq!(count, 0);
        let (count, items) = vms(&alice, &[]).await;
        assert_eq!(count, 2);
        assert_eq!(items[0]["name"], "vm1");
        let (count, _) = vms(&alice, &[("networkid", &web_id)]).await;
        assert_eq!(count, 2);
        let (count, _) = vms(&alice, &[("vpcid", other["id"].as_str().unwrap())]).await;
        assert_eq!(count, 0);
        let (count, items) = vms(&alice, &[("page", "2"), ("pagesize", "1")]).await;
        assert_eq!((count, items[0]["name"].clone()), (2, Value::from("vm2")));
        let (count, _) = vms(&alice, &[("keyword", "VM2")]).await;
        assert_eq!(count, 1);
        let (count, _) = vms(&admin, &[]).await;
        assert_eq!(count, 0);
        let (count, _) = vms(&admin, &[("listall", "true")]).await;
        assert_eq!(count, 2);
        let (code, _) = refused(&bob, "stopVirtualMachine", &[("id", &vm2_id)]).await;
        assert_eq!(code, 531);
        let (code, text) = refused(&alice, "stopVirtualMachine", &[("id", BOGUS)]).await;
        assert_eq!(code, 431);
        assert!(text.contains(BOGUS), "{text}");

        // Stop: the lease goes, the address stays the VM's.
        m.agent.clear();
        let stopped =
            job_ok(&alice, "stopVirtualMachine", &[("id", &vm2_id)]).await["virtualmachine"]
                .clone();
        assert_eq!(stopped["state"], "Stopped");
        assert_eq!(stopped["nic"][0]["ipaddress"], "10.1.1.50");
        assert_eq!(
            rpcs_and_generations(m),
            vec![("SetDhcpEntries", g + 4), ("SetVmData", g + 4)]
        );
        assert_eq!(
            last_leases(m),
            vec![(vm1_mac.clone(), "10.1.1.2".into(), "vm1".into(), true)]
        );
        let (code, text) = refused(
            &alice,
            "deployVirtualMachine",
            &with(vm_params(&env, &web_id, "vmx"), "ipaddress", "10.1.1.50"),
        )
        .await;
        assert_eq!(code, 533, "a stopped VM keeps its address: {text}");
        let (count, _) = vms(&alice, &[("state", "Stopped")]).await;
        assert_eq!(count, 1);
        let (code, text) = refused(&alice, "rebootVirtualMachine", &[("id", &vm2_id)]).await;
        assert_eq!(code, 431);
        assert!(text.contains("Stopped"), "{text}");
        // Start again: the same address, the lease is back.
        m.agent.clear();
        let started =
            job_ok(&alice, "startVirtualMachine", &[("id", &vm2_id)]).await["virtualmachine"]
                .clone();
        assert_eq!(started["state"], "Running");
        assert_eq!(started["nic"][0]["ipaddress"], "10.1.1.50");
        assert_eq!(
            rpcs_and_generations(m),
            vec![("SetDhcpEntries", g + 5), ("SetVmData", g + 5)]
        );
        assert_eq!(last_leases(m).len(), 2);
        let (code, text) = refused(&alice, "startVirtualMachine", &[("id", &vm2_id)]).await;
        assert_eq!(code, 431);
        assert!(text.contains("already running"), "{text}");
        let rebooted = job_ok(&alice, "rebootVirtualMachine", &[("id", &vm2_id)]).await;
        assert_eq!(rebooted["virtualmachine"]["state"], "Running");

        // Destroy keeps the address until the VM is expunged (admins only).
        m.agent.clear();
        let destroyed =
            job_ok(&alice, "destroyVirtualMachine", &[("id", &vm2_id)]).await["virtualmachine"]
                .clone();
        assert_eq!(destroyed["state"], "Destroyed");
        assert_eq!(
            rpcs_and_generations(m),
            vec![("SetDhcpEntries", g + 6), ("SetVmData", g + 6)]
        );
        let (code, text) = refused(
            &alice,
            "destroyVirtualMachine",
            &[("id", &vm2_id), ("expunge", "true")],
        )
        .await;
        assert_eq!(code, 531);
        assert!(text.contains("Admin only"), "{text}");
        let (count, _) = vms(&alice, &[("state", "present")]).await;
        assert_eq!(count, 1);
        let (count, _) = vms(&alice, &[("state", "destroyed")]).await;
        assert_eq!(count, 1);
        let expunged = job_ok(
            &admin,
            "destroyVirtualMachine",
            &[("id", &vm2_id), ("expunge", "true")],
        )
        .await;
        assert_eq!(expunged["virtualmachine"]["state"], "Expunging");
        let (count, _) = vms(&alice, &[]).await;
        assert_eq!(count, 1);
        let (code, _) = refused(&alice, "startVirtualMachine", &[("id", &vm2_id)]).await;
        assert_eq!(code, 431);
        // Its address and its name are free again.
        let again = deploy(
            &alice,
            &with(vm_params(&env, &web_id, "vm2"), "ipaddress", "10.1.1.50"),
        )
        .await;
        assert_eq!(again["nic"][0]["ipaddress"], "10.1.1.50");
        let vm3 = deploy(&alice, &vm_params(&env, &web_id, "vm3")).await;
        assert_eq!(vm3["nic"][0]["ipaddress"], "10.1.1.3");
    }
);

on_both_backends!(
    a_vm_created_stopped_implements_its_tier_when_it_starts_and_failures_roll_back,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "mz2").await;
        let alice = user(&admin, "alice").await;
        let vpc = create_vpc(&alice, &env, "va", "10.1.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        let db = create_tier(&alice, &env, &vpc_id, "db", "10.1.2.1", "255.255.255.0").await;
        let db_id = db["id"].as_str().unwrap().to_string();
        let app = create_tier(&alice, &env, &vpc_id, "app", "10.1.3.1", "255.255.255.0").await;
        let app_id = app["id"].as_str().unwrap().to_string();
        m.agent.clear();

        // startvm=false: the VM and its NIC exist, nothing reaches the router.
        let quiet = deploy(
            &alice,
            &with(vm_params(&env, &db_id, "quiet"), "startvm", "false"),
        )
        .await;
        assert_eq!(quiet["state"], "Stopped");
        assert_eq!(quiet["nic"][0]["ipaddress"], "10.1.2.2");
        assert!(m.agent.commands().is_empty());
        assert_eq!(tier(&admin, &db_id).await["state"], "Allocated");

        // A router that refuses SetupGuestNetwork: the start fails, the tier is
        // Allocated again with its vnet back, the router NIC unplugged.
        m.agent
            .fail("SetupGuestNetwork", AgentError::Failed("no room".into()));
        let (code, text) = job_fails(
            &alice,
            "startVirtualMachine",
            &[("id", quiet["id"].as_str().unwrap())],
        )
        .await;
        assert_eq!(code, 530);
        assert!(text.contains("SetupGuestNetwork"), "{text}");
        let after = tier(&admin, &db_id).await;
        assert_eq!(after["state"], "Allocated");
        let unplugged = m
            .driver
            .calls()
            .into_iter()
            .filter(|c| matches!(c, DriverCall::UnplugNic(..)))
            .count();
        assert_eq!(unplugged, 1, "{:?}", m.driver.calls());
        assert!(after.get("vlan").is_none(), "{after}");
        let still = vms(&alice, &[("id", quiet["id"].as_str().unwrap())])
            .await
            .1;
        assert_eq!(still[0]["state"], "Stopped");
        // A deployment whose start fails leaves no VM behind.
        let (code, _) = job_fails(
            &alice,
            "deployVirtualMachine",
            &vm_params(&env, &app_id, "lost"),
        )
        .await;
        assert_eq!(code, 530);
        let (count, _) = vms(&alice, &[("name", "lost")]).await;
        assert_eq!(count, 0);
        m.agent.unfail("SetupGuestNetwork");

        // Now it starts: the tier gets the first vnet (given back above), no
        // ACL command (the tier has no list), and the lease. Each failed
        // push above moved the router to a new generation (so the monitor
        // resyncs it): the next change follows the database's generation,
        // not the last one the agent took.
        m.agent.clear();
        let listed = admin
            .ok(
                "listRouters",
                &[("vpcid", vpc_id.as_str()), ("listall", "true")],
            )
            .await;
        let g = listed["router"][0]["configgeneration"].as_u64().unwrap();
        assert!(g > m.agent.applied_generation());
        let started = job_ok(
            &alice,
            "startVirtualMachine",
            &[("id", quiet["id"].as_str().unwrap())],
        )
        .await;
        assert_eq!(started["virtualmachine"]["state"], "Running");
        assert_eq!(
            rpcs_and_generations(m),
            vec![
                ("PlugNic", g + 1),
                ("SetupGuestNetwork", g + 1),
                ("SetDhcpEntries", g + 2),
                ("SetVmData", g + 2)
            ]
        );
        assert_eq!(tier(&admin, &db_id).await["vlan"], "100");
        let lost = deploy(&alice, &vm_params(&env, &app_id, "lost")).await;
        assert_eq!(lost["nic"][0]["ipaddress"], "10.1.3.2");
        assert_eq!(tier(&admin, &app_id).await["vlan"], "101");

        // Two NICs: the first tier holds the default one.
        let both = format!("{app_id},{db_id}");
        let dual = deploy(&alice, &vm_params(&env, &both, "dual")).await;
        let nics = dual["nic"].as_array().unwrap();
        assert_eq!(nics.len(), 2);
        assert_eq!(
            (
                nics[0]["networkid"].as_str().unwrap(),
                nics[0]["isdefault"].clone()
            ),
            (app_id.as_str(), Value::from(true))
        );
        assert_eq!(
            (
                nics[1]["networkid"].as_str().unwrap(),
                nics[1]["isdefault"].clone()
            ),
            (db_id.as_str(), Value::from(false))
        );

        // The user_vm resource limit (type 0): CloudStack's 535.
        let alice_domain = dual["domainid"].as_str().unwrap().to_string();
        admin
            .ok(
                "updateResourceLimit",
                &[
                    ("resourcetype", "0"),
                    ("max", "3"),
                    ("account", "alice"),
                    ("domainid", &alice_domain),
                ],
            )
            .await;
        let (code, text) = refused(
            &alice,
            "deployVirtualMachine",
            &vm_params(&env, &app_id, "four"),
        )
        .await;
        assert_eq!(code, 535);
        assert!(text.contains("'user_vm'"), "{text}");
    }
);
