//! Jobs run again (issue 11's take-over): every command a Down manager's job
//! is run again for (`AsyncCommand::RERUN`) must be safe to run twice. Each
//! command here runs to its end, then the same job (command and stored
//! payload) runs once more, as a manager taking it over would run it after
//! its first run ended without its result being recorded; the second run
//! must succeed and leave the same rows, the same router configuration and
//! a router that is current.

mod support;

use serde_json::Value;
use support::api::{Client, TestManager, job_ok, on_both_backends};
use support::vpc::{create_tier, create_vpc, deploy_vm, zone_env};
use vpc_manager::provision;
use vpc_manager::store::{job, router, vpc};

/// Runs the finished job `job_id` again from its stored row: a new job row
/// with the same command, payload, caller and sync object, run by the
/// manager's job runner. Returns the second run's finished job.
async fn run_again(m: &TestManager, admin: &Client, job_id: &str) -> Value {
    let db = &m.app.db;
    let first = job::get_by_uuid(db, job_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no job {job_id}"));
    assert_eq!(first.status, 1, "the first run succeeded: {first:?}");
    assert!(
        m.app
            .registry
            .job_entry(&first.cmd)
            .is_some_and(|e| e.rerun),
        "{} is run again when taken over",
        first.cmd
    );
    let again = job::insert(
        db,
        job::NewJob {
            user_id: first.user_id,
            account_id: first.account_id,
            cmd: first.cmd.clone(),
            cmd_info: first.cmd_info.clone(),
            instance_type: first.instance_type.clone(),
            instance_uuid: first.instance_uuid,
            sync_object: first.sync_object.clone(),
            uuid: None,
        },
    )
    .await
    .unwrap();
    m.app.jobs.wake();
    let done = admin.wait_job(&again.uuid.to_string()).await;
    assert_eq!(done["jobstatus"], 1, "{} run again: {done}", first.cmd);
    done
}

/// Starts `command` and waits for its job; returns (job id, finished job).
async fn run(admin: &Client, command: &str, params: &[(&str, &str)]) -> (String, Value) {
    let started = admin.ok(command, params).await;
    let job_id = started["jobid"]
        .as_str()
        .unwrap_or_else(|| panic!("{command}: no jobid in {started}"))
        .to_string();
    let done = admin.wait_job(&job_id).await;
    assert_eq!(done["jobstatus"], 1, "{command}: {done}");
    (job_id, done)
}

/// What the API lists of the VPC `vpc` and its objects, and the router
/// configuration its rows make (without the generation, which every push
/// moves on).
async fn snapshot(m: &TestManager, admin: &Client, vpc: &str) -> (Vec<Value>, Option<String>) {
    let all = [("listall", "true")];
    let of_vpc = [("listall", "true"), ("vpcid", vpc)];
    let mut lists = Vec::new();
    for (command, params) in [
        ("listVPCs", &all[..]),
        ("listNetworks", &of_vpc[..]),
        ("listVirtualMachines", &all[..]),
        ("listPublicIpAddresses", &of_vpc[..]),
        ("listPortForwardingRules", &all[..]),
        ("listLoadBalancerRules", &all[..]),
        ("listPrivateGateways", &of_vpc[..]),
        ("listStaticRoutes", &of_vpc[..]),
        ("listRouters", &of_vpc[..]),
        ("listNetworkACLLists", &of_vpc[..]),
        ("listNetworkACLs", &all[..]),
    ] {
        let mut listed = admin.ok(command, params).await;
        without_generations(&mut listed);
        lists.push(listed);
    }
    let row = vpc::get_by_uuid(&m.app.db, vpc.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let state = provision::state::load(&m.app.db, row.id)
        .await
        .unwrap()
        .map(|mut s| {
            s.router.generation = 0;
            format!("{s:?}")
        });
    (lists, state)
}

/// Drops the routers' generations (every push moves them on) from a
/// listing.
fn without_generations(v: &mut Value) {
    match v {
        Value::Object(fields) => {
            fields.retain(|k, _| !k.contains("generation"));
            fields.values_mut().for_each(without_generations);
        }
        Value::Array(items) => items.iter_mut().for_each(without_generations),
        _ => {}
    }
}

/// The VPC's router is Running, has applied what the database last gave it
/// and its agent holds that generation.
async fn assert_router_current(m: &TestManager, vpc: &str) {
    let row = vpc::get_by_uuid(&m.app.db, vpc.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let r = provision::vpc_router(&m.app.db, row.id)
        .await
        .unwrap()
        .expect("the VPC's router");
    assert_eq!(r.state, router::STATE_RUNNING, "{r:?}");
    assert_eq!(r.applied_generation, r.config_generation, "{r:?}");
    assert_eq!(
        m.agent.applied_by(&r.name),
        u64::try_from(r.applied_generation).unwrap(),
        "the router's agent holds the database's last generation"
    );
}

/// Runs `command` to its end, then its job again; the second run changes
/// no row and no router configuration of VPC `vpc`, and the router stays
/// current. Returns the first run's result.
async fn twice(
    m: &TestManager,
    admin: &Client,
    vpc: &str,
    command: &str,
    params: &[(&str, &str)],
) -> Value {
    let (job_id, first) = run(admin, command, params).await;
    let before = snapshot(m, admin, vpc).await;
    let second = run_again(m, admin, &job_id).await;
    let after = snapshot(m, admin, vpc).await;
    assert_eq!(before.0, after.0, "{command} run again changed rows");
    assert_eq!(
        before.1, after.1,
        "{command} run again changed the router's configuration"
    );
    assert_router_current(m, vpc).await;
    // The answer names the same object (an async-create's id included).
    assert_eq!(
        first["jobinstanceid"], second["jobinstanceid"],
        "{command}: {first} / {second}"
    );
    first["jobresult"].clone()
}

on_both_backends!(each_command_run_again_changes_nothing, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "zone-twice").await;

    // createVPC.
    let created = twice_create_vpc(m, &admin, &env).await;
    let vpc_id = created["vpc"]["id"].as_str().unwrap().to_string();
    let vpc_id = vpc_id.as_str();
    let web = create_tier(&admin, &env, vpc_id, "web", "10.9.1.1", "255.255.255.0").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let spare = create_tier(&admin, &env, vpc_id, "spare", "10.9.2.1", "255.255.255.0").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lbt = admin
        .ok(
            "createNetwork",
            &[
                ("name", "lbt"),
                ("displaytext", "lbt"),
                ("zoneid", &env.zone),
                ("vpcid", vpc_id),
                ("networkofferingid", &env.tier_offering_lb),
                ("gateway", "10.9.3.1"),
                ("netmask", "255.255.255.0"),
            ],
        )
        .await["network"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // deployVirtualMachine (the VM's rows come from the request, the job
    // starts it).
    let p = support::vpc::vm_params(&env, &web, "twice-vm");
    let vm = twice(m, &admin, vpc_id, "deployVirtualMachine", &p).await;
    let vm_id = vm["virtualmachine"]["id"].as_str().unwrap().to_string();
    assert_eq!(vm["virtualmachine"]["state"], "Running", "{vm}");
    let lb_vm = deploy_vm(&admin, &env, &lbt, "lb-vm").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // associateIpAddress, then a port forward on it.
    let ip = twice(
        m,
        &admin,
        vpc_id,
        "associateIpAddress",
        &[("vpcid", vpc_id)],
    )
    .await;
    let ip_id = ip["ipaddress"]["id"].as_str().unwrap().to_string();
    let pf = twice(
        m,
        &admin,
        vpc_id,
        "createPortForwardingRule",
        &[
            ("ipaddressid", &ip_id),
            ("virtualmachineid", &vm_id),
            ("networkid", &web),
            ("protocol", "tcp"),
            ("publicport", "2222"),
            ("privateport", "22"),
        ],
    )
    .await;
    assert_eq!(pf["portforwardingrule"]["state"], "Active", "{pf}");

    // createLoadBalancerRule on a second address, with a member.
    let lb_ip = job_ok(&admin, "associateIpAddress", &[("vpcid", vpc_id)]).await["ipaddress"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lb = twice(
        m,
        &admin,
        vpc_id,
        "createLoadBalancerRule",
        &[
            ("name", "web"),
            ("algorithm", "roundrobin"),
            ("publicport", "80"),
            ("privateport", "8080"),
            ("publicipid", &lb_ip),
            ("networkid", &lbt),
        ],
    )
    .await;
    let lb_id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    twice(
        m,
        &admin,
        vpc_id,
        "assignToLoadBalancerRule",
        &[("id", &lb_id), ("virtualmachineids", &lb_vm)],
    )
    .await;

    // createPrivateGateway, then a static route through it.
    let gw = twice(
        m,
        &admin,
        vpc_id,
        "createPrivateGateway",
        &[
            ("vpcid", vpc_id),
            ("vlan", "vlan://500"),
            ("ipaddress", "172.16.9.10"),
            ("gateway", "172.16.9.1"),
            ("netmask", "255.255.255.0"),
        ],
    )
    .await;
    assert_eq!(gw["privategateway"]["state"], "Ready", "{gw}");
    let gw_id = gw["privategateway"]["id"].as_str().unwrap().to_string();
    let route = twice(
        m,
        &admin,
        vpc_id,
        "createStaticRoute",
        &[("cidr", "192.168.50.0/24"), ("gatewayid", &gw_id)],
    )
    .await;
    assert_eq!(route["staticroute"]["state"], "Active", "{route}");

    // Static NAT (enabled synchronously) and its disable.
    let nat_ip =
        job_ok(&admin, "associateIpAddress", &[("vpcid", vpc_id)]).await["ipaddress"]["id"]
            .as_str()
            .unwrap()
            .to_string();
    admin
        .ok(
            "enableStaticNat",
            &[("ipaddressid", &nat_ip), ("virtualmachineid", &lb_vm)],
        )
        .await;
    twice(
        m,
        &admin,
        vpc_id,
        "disableStaticNat",
        &[("ipaddressid", &nat_ip)],
    )
    .await;

    // Tags on the VPC, made and taken off.
    let tags = [
        ("resourcetype", "Vpc"),
        ("resourceids", vpc_id),
        ("tags[0].key", "tier"),
        ("tags[0].value", "twice"),
    ];
    twice(m, &admin, vpc_id, "createTags", &tags).await;
    twice(m, &admin, vpc_id, "deleteTags", &tags).await;

    // A VM stopped and started, the VPC and a tier renamed.
    twice(m, &admin, vpc_id, "stopVirtualMachine", &[("id", &vm_id)]).await;
    twice(m, &admin, vpc_id, "startVirtualMachine", &[("id", &vm_id)]).await;
    twice(
        m,
        &admin,
        vpc_id,
        "updateVPC",
        &[("id", vpc_id), ("name", "twice-renamed")],
    )
    .await;
    twice(
        m,
        &admin,
        vpc_id,
        "updateNetwork",
        &[("id", &spare), ("displaytext", "renamed twice")],
    )
    .await;

    // The VPN gateway, made and deleted; a member taken off the LB rule.
    let vpn = twice(m, &admin, vpc_id, "createVpnGateway", &[("vpcid", vpc_id)]).await;
    let vpn_id = vpn["vpngateway"]["id"].as_str().unwrap().to_string();
    twice(m, &admin, vpc_id, "deleteVpnGateway", &[("id", &vpn_id)]).await;
    twice(
        m,
        &admin,
        vpc_id,
        "removeFromLoadBalancerRule",
        &[("id", &lb_id), ("virtualmachineids", &lb_vm)],
    )
    .await;

    // Deletes: gone already is done.
    twice(
        m,
        &admin,
        vpc_id,
        "deleteStaticRoute",
        &[("id", route["staticroute"]["id"].as_str().unwrap())],
    )
    .await;
    twice(m, &admin, vpc_id, "deletePrivateGateway", &[("id", &gw_id)]).await;
    twice(
        m,
        &admin,
        vpc_id,
        "deletePortForwardingRule",
        &[("id", pf["portforwardingrule"]["id"].as_str().unwrap())],
    )
    .await;
    twice(
        m,
        &admin,
        vpc_id,
        "deleteLoadBalancerRule",
        &[("id", &lb_id)],
    )
    .await;
    twice(
        m,
        &admin,
        vpc_id,
        "disassociateIpAddress",
        &[("id", &ip_id)],
    )
    .await;
    twice(
        m,
        &admin,
        vpc_id,
        "destroyVirtualMachine",
        &[("id", &vm_id), ("expunge", "true")],
    )
    .await;
    twice(m, &admin, vpc_id, "deleteNetwork", &[("id", &spare)]).await;

    // The ACL commands: a list made, renamed, filled, put on the web tier,
    // then taken off it, emptied and deleted.
    let list = twice(
        m,
        &admin,
        vpc_id,
        "createNetworkACLList",
        &[
            ("name", "twice"),
            ("description", "run twice"),
            ("vpcid", vpc_id),
        ],
    )
    .await;
    let list_id = list["networkacllist"]["id"].as_str().unwrap().to_string();
    twice(
        m,
        &admin,
        vpc_id,
        "updateNetworkACLList",
        &[("id", &list_id), ("name", "twice-renamed")],
    )
    .await;
    let item = twice(
        m,
        &admin,
        vpc_id,
        "createNetworkACL",
        &[
            ("aclid", &list_id),
            ("protocol", "tcp"),
            ("startport", "22"),
            ("endport", "22"),
            ("cidrlist", "10.0.0.0/8"),
            ("action", "Allow"),
            ("traffictype", "Ingress"),
            ("number", "1"),
        ],
    )
    .await;
    let item_id = item["networkacl"]["id"].as_str().unwrap().to_string();
    twice(
        m,
        &admin,
        vpc_id,
        "replaceNetworkACLList",
        &[("aclid", &list_id), ("networkid", &web)],
    )
    .await;
    let default_allow = admin
        .ok("listNetworkACLLists", &[("name", "default_allow")])
        .await["networkacllist"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    twice(
        m,
        &admin,
        vpc_id,
        "replaceNetworkACLList",
        &[("aclid", &default_allow), ("networkid", &web)],
    )
    .await;
    twice(m, &admin, vpc_id, "deleteNetworkACL", &[("id", &item_id)]).await;
    twice(
        m,
        &admin,
        vpc_id,
        "deleteNetworkACLList",
        &[("id", &list_id)],
    )
    .await;

    // deleteVPC of a VPC without tiers: after both runs it is gone.
    let gone = create_vpc(&admin, &env, "gone", "10.19.0.0/16").await;
    let gone = gone["id"].as_str().unwrap();
    let (job_id, _) = run(&admin, "deleteVPC", &[("id", gone)]).await;
    run_again(m, &admin, &job_id).await;
    let left = admin.ok("listVPCs", &[("id", gone)]).await;
    assert!(left.get("vpc").is_none(), "{left}");
});

/// createVPC twice: its result, the VPC started once with one router and
/// one source NAT address.
async fn twice_create_vpc(m: &TestManager, admin: &Client, env: &support::vpc::Env) -> Value {
    let started = admin
        .ok(
            "createVPC",
            &[
                ("name", "twice"),
                ("displaytext", "twice"),
                ("cidr", "10.9.0.0/16"),
                ("zoneid", &env.zone),
                ("vpcofferingid", &env.vpc_offering),
            ],
        )
        .await;
    let vpc_id = started["id"].as_str().unwrap().to_string();
    let job_id = started["jobid"].as_str().unwrap().to_string();
    let done = admin.wait_job(&job_id).await;
    assert_eq!(done["jobstatus"], 1, "{done}");
    let before = snapshot(m, admin, &vpc_id).await;
    run_again(m, admin, &job_id).await;
    let after = snapshot(m, admin, &vpc_id).await;
    assert_eq!(before.0, after.0, "createVPC run again changed rows");
    assert_eq!(before.1, after.1, "createVPC run again changed the router");
    assert_router_current(m, &vpc_id).await;
    let routers = admin
        .ok("listRouters", &[("listall", "true"), ("vpcid", &vpc_id)])
        .await;
    assert_eq!(routers["count"], 1, "{routers}");
    let ips = admin
        .ok("listPublicIpAddresses", &[("vpcid", &vpc_id)])
        .await;
    assert_eq!(ips["count"], 1, "one source NAT address: {ips}");
    done["jobresult"].clone()
}

/// Every async command is run again when taken over, but the refused
/// firewall commands (they store no job).
#[test]
fn every_async_command_but_the_listed_ones_is_run_again() {
    let registry = vpc_manager::services::registry();
    let not_again: Vec<&str> = registry
        .all()
        .filter(|c| c.job.is_some_and(|j| !j.rerun))
        .map(|c| c.name)
        .collect();
    assert_eq!(not_again, ["createFirewallRule", "deleteFirewallRule"]);
    assert!(registry.all().filter(|c| c.job.is_some()).count() > 60);
}
