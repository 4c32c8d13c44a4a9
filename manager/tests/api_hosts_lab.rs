//! Two host agent processes on this machine (each `vpc-manager host-agent`
//! on its own Unix socket, with its own namespace prefix) added to a zone
//! with addHost: the planner puts a VPC's router on the first, an admin
//! puts a VM on the second with `hostid`, and each really runs where the
//! API says (its namespace carries that host agent's prefix);
//! listRouters, listVirtualMachines and listHosts agree. A user may not
//! name a host, and a disabled host takes no VM (CloudStack's 533).
//! migrateSystemVm then moves the router to the second host.
//! Packets between hosts need the VXLAN underlay (not here).

mod support;

use serde_json::Value;
use support::api::{Client, job_ok, refused};
use support::e2e::{E2e, new_prefix};
use support::host_agent::HostAgentProcess;
use support::netns::namespaces;
use support::vpc::user;
use vpc_manager::settings::AgentTransport;

fn first<'a>(v: &'a Value, object: &str) -> &'a Value {
    &v[object][0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_and_a_vm_run_on_the_hosts_the_planner_and_the_admin_chose() {
    let lab = E2e::start(AgentTransport::Unix).await;
    let admin = lab.admin();
    let a = HostAgentProcess::start(new_prefix());
    let b = HostAgentProcess::start(new_prefix());
    a.wait_listening().await;
    b.wait_listening().await;

    // The embedded host agent is zone1's first host, in Pod1/Cluster1.
    let hosts = admin.ok("listHosts", &[("zoneid", &lab.zone)]).await;
    assert_eq!(hosts["count"], 1, "{hosts}");
    let default = first(&hosts, "host").clone();
    assert_eq!(default["podname"], "Pod1");
    assert_eq!(default["clustername"], "Cluster1");
    let hypervisor = default["hypervisor"].as_str().unwrap().to_string();
    let pod = default["podid"].as_str().unwrap().to_string();

    let add = |url: String| {
        let (admin, zone, pod, hypervisor) = (
            admin.clone(),
            lab.zone.clone(),
            pod.clone(),
            hypervisor.clone(),
        );
        async move {
            let added = admin
                .ok(
                    "addHost",
                    &[
                        ("zoneid", &zone),
                        ("podid", &pod),
                        ("clustername", "lab"),
                        ("url", &url),
                        ("hypervisor", &hypervisor),
                    ],
                )
                .await;
            first(&added, "host")["id"].as_str().unwrap().to_string()
        }
    };
    let host_a = add(a.url()).await;
    let host_b = add(b.url()).await;
    // Only A and B take new routers and VMs.
    let default_id = default["id"].as_str().unwrap().to_string();
    admin
        .ok(
            "updateHost",
            &[("id", &default_id), ("allocationstate", "Disable")],
        )
        .await;

    let vpc = lab.vpc(&admin, "spread", "10.61.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let routers = admin.ok("listRouters", &[("vpcid", &vpc_id)]).await;
    let router = first(&routers, "router");
    assert_eq!(router["hostid"], host_a.as_str(), "{routers}");
    assert!(router["hostname"].is_string(), "{routers}");
    let router_name = router["name"].as_str().unwrap();
    // It runs under host agent A, not under the manager's own.
    assert!(
        namespaces(&a.prefix)
            .iter()
            .any(|n| n.contains(router_name)),
        "router {router_name} not among A's namespaces {:?}",
        namespaces(&a.prefix)
    );
    assert!(
        !namespaces(&lab.prefix)
            .iter()
            .any(|n| n.contains(router_name))
    );

    let tier = lab
        .tier(&admin, &vpc_id, "t1", "10.61.1.1", None, false)
        .await;
    let tier_id = tier["id"].as_str().unwrap().to_string();
    let deploy = |host: String, name: &'static str, client: Client| {
        let (zone, so, tpl, tier) = (
            lab.zone.clone(),
            lab.service_offering.clone(),
            lab.template.clone(),
            tier_id.clone(),
        );
        async move {
            client
                .call(
                    "deployVirtualMachine",
                    &[
                        ("zoneid", &zone),
                        ("serviceofferingid", &so),
                        ("templateid", &tpl),
                        ("networkids", &tier),
                        ("name", name),
                        ("hostid", &host),
                    ],
                )
                .await
        }
    };
    let vm = job_ok(
        &admin,
        "deployVirtualMachine",
        &[
            ("zoneid", &lab.zone),
            ("serviceofferingid", &lab.service_offering),
            ("templateid", &lab.template),
            ("networkids", &tier_id),
            ("name", "onb"),
            ("hostid", &host_b),
        ],
    )
    .await["virtualmachine"]
        .clone();
    assert_eq!(vm["hostid"], host_b.as_str(), "{vm}");
    let listed = admin
        .ok("listVirtualMachines", &[("id", vm["id"].as_str().unwrap())])
        .await;
    assert_eq!(first(&listed, "virtualmachine")["hostid"], host_b.as_str());
    let instance = vm["instancename"].as_str().unwrap();
    assert!(
        namespaces(&b.prefix).iter().any(|n| n.contains(instance)),
        "VM {instance} not among B's namespaces {:?}",
        namespaces(&b.prefix)
    );

    // listHosts counts what runs where.
    let hosts = admin.ok("listHosts", &[("zoneid", &lab.zone)]).await;
    let count = |id: &str, field: &str| {
        hosts["host"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["id"] == id)
            .map(|h| h[field].clone())
            .unwrap_or_default()
    };
    assert_eq!(count(&host_a, "routercount"), 1, "{hosts}");
    assert_eq!(count(&host_a, "virtualmachinecount"), 0);
    assert_eq!(count(&host_b, "routercount"), 0);
    assert_eq!(count(&host_b, "virtualmachinecount"), 1);

    // Only a root admin names the host; a disabled host takes nothing.
    let u = user(&admin, "hostpick").await;
    let (status, body) = deploy(host_b.clone(), "byuser", u).await;
    assert_eq!(status, 531, "{body}");
    assert_eq!(
        body["deployvirtualmachineresponse"]["errortext"],
        "Parameter hostid can only be specified by a Root Admin, permission denied"
    );
    let (status, body) = deploy(default_id.clone(), "ondisabled", admin.clone()).await;
    let refused_text = if status == 200 {
        let job = admin
            .wait_job(
                body["deployvirtualmachineresponse"]["jobid"]
                    .as_str()
                    .unwrap(),
            )
            .await;
        assert_eq!(job["jobstatus"], 2, "{job}");
        job["jobresult"]["errortext"].as_str().unwrap().to_string()
    } else {
        assert_eq!(status, 533, "{body}");
        body["deployvirtualmachineresponse"]["errortext"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        refused_text.starts_with("Unable to create a deployment for VM[User|"),
        "{refused_text}"
    );
    let (code, _) = refused(
        &admin,
        "deployVirtualMachine",
        &[
            ("zoneid", &lab.zone),
            ("serviceofferingid", &lab.service_offering),
            ("templateid", &lab.template),
            ("networkids", &tier_id),
            ("hostid", support::api::BOGUS),
        ],
    )
    .await;
    assert_eq!(code, 431);

    // migrateSystemVm moves the router to B: it runs there afterwards.
    let (code, text) = refused(
        &admin,
        "migrateSystemVm",
        &[("virtualmachineid", router["id"].as_str().unwrap())],
    )
    .await;
    assert_eq!(
        (code, text.as_str()),
        (431, "Either hostId or storageId must be specified")
    );
    let moved = job_ok(
        &admin,
        "migrateSystemVm",
        &[
            ("virtualmachineid", router["id"].as_str().unwrap()),
            ("hostid", &host_b),
        ],
    )
    .await;
    assert_eq!(moved["systemvm"]["hostid"], host_b.as_str(), "{moved}");
    assert_eq!(moved["systemvm"]["state"], "Running", "{moved}");
    assert!(
        namespaces(&b.prefix)
            .iter()
            .any(|n| n.contains(router_name)),
        "router {router_name} not among B's namespaces {:?}",
        namespaces(&b.prefix)
    );
    let routers = admin.ok("listRouters", &[("vpcid", &vpc_id)]).await;
    assert_eq!(first(&routers, "router")["hostid"], host_b.as_str());

    // The host agents' namespaces go with them (killed by pid, prefixes
    // purged), the manager's with the lab.
    drop(a);
    drop(b);
    lab.finish().await;
}
