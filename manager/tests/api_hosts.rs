//! Pods, clusters and hosts through the HTTP API, on SQLite and on
//! PostgreSQL: createPod, listPods, addCluster, listClusters, addHost (a
//! real host agent serving on a Unix socket), listHosts, updateHost,
//! prepareHostForMaintenance, cancelHostMaintenance, deleteHost,
//! migrateSystemVm and migrateVirtualMachine between two hosts, and
//! listHypervisors; each command's allowed case and its refusals with
//! CloudStack's codes and texts.

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::api::{BOGUS, Client, id, job_ok, on_both_backends, refused, run_job};
use support::netns::NetnsLab;
use support::vpc::{create_tier, create_vpc, deploy_vm, user, vm_params, zone_env};
use vpc_manager::host::HostAgent;
use vpc_manager::serve::EmbeddedHost;
use vpc_manager::settings::AgentTransport;

/// A real host agent (the in-process server over the netns driver) on a
/// Unix socket of its own lab; stopped and its namespaces purged on drop.
struct LabHost {
    lab: NetnsLab,
    served: Option<EmbeddedHost>,
    socket: PathBuf,
}

impl LabHost {
    async fn start(tag: &str) -> LabHost {
        let lab = NetnsLab::new(tag);
        let socket = lab.dir.path().join("host-agent.sock");
        let agent = HostAgent::new(lab.driver(AgentTransport::Unix, None), lab.dir.path());
        let served = EmbeddedHost::start(agent, socket.clone())
            .await
            .expect("host agent serves");
        LabHost {
            lab,
            served: Some(served),
            socket,
        }
    }

    fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    async fn stop(mut self) {
        if let Some(served) = self.served.take() {
            served.stop().await;
        }
        self.lab.purge();
    }
}

async fn create_zone(admin: &Client, name: &str) -> String {
    id(
        &admin
            .ok(
                "createZone",
                &[
                    ("name", name),
                    ("networktype", "Advanced"),
                    ("dns1", "198.51.100.1"),
                    ("internaldns1", "198.51.100.2"),
                ],
            )
            .await,
        "zone",
    )
}

async fn create_pod(admin: &Client, zone: &str, name: &str) -> String {
    id(
        &admin
            .ok(
                "createPod",
                &[
                    ("name", name),
                    ("zoneid", zone),
                    ("gateway", "10.250.0.1"),
                    ("netmask", "255.255.255.0"),
                    ("startip", "10.250.0.10"),
                    ("endip", "10.250.0.20"),
                ],
            )
            .await,
        "pod",
    )
}

/// The objects of a list answer (none when the answer is `{}`).
fn list<'a>(v: &'a Value, object: &str) -> &'a Vec<Value> {
    static EMPTY: Vec<Value> = Vec::new();
    v[object].as_array().unwrap_or(&EMPTY)
}

on_both_backends!(
    pods_are_created_listed_and_refused_as_cloudstack_does,
    |m| {
        let admin = m.admin();
        let zone = create_zone(&admin, "pz").await;
        let pod = admin
            .ok(
                "createPod",
                &[
                    ("name", "pod1"),
                    ("zoneid", &zone),
                    ("gateway", "10.250.0.1"),
                    ("netmask", "255.255.255.0"),
                    ("startip", "10.250.0.10"),
                    ("endip", "10.250.0.20"),
                ],
            )
            .await;
        let p = &pod["pod"];
        assert_eq!(p["name"], "pod1", "{pod}");
        assert_eq!(p["zoneid"], zone.as_str());
        assert_eq!(p["netmask"], "255.255.255.0");
        assert_eq!(p["startip"][0], "10.250.0.10");
        assert_eq!(p["endip"][0], "10.250.0.20");
        assert_eq!(p["allocationstate"], "Enabled");

        let listed = admin.ok("listPods", &[("zoneid", &zone)]).await;
        assert_eq!(listed["count"], 1, "{listed}");
        assert_eq!(list(&listed, "pod")[0]["name"], "pod1");
        let none = admin.ok("listPods", &[("name", "nothing")]).await;
        assert_eq!(list(&none, "pod").len(), 0);

        let (code, text) = refused(
            &admin,
            "createPod",
            &[
                ("name", "pod1"),
                ("zoneid", &zone),
                ("gateway", "10.251.0.1"),
                ("netmask", "255.255.255.0"),
                ("startip", "10.251.0.10"),
            ],
        )
        .await;
        assert_eq!(code, 431);
        assert_eq!(
            text,
            format!(
                "A pod with name: pod1 already exists in zone {zone}. Please specify a different pod name. "
            )
        );
        let (code, text) = refused(
            &admin,
            "createPod",
            &[
                ("name", "pod2"),
                ("zoneid", &zone),
                ("gateway", "10.251.0.1"),
                ("netmask", "255.0.255.0"),
                ("startip", "10.251.0.10"),
            ],
        )
        .await;
        assert_eq!(
            (code, text.as_str()),
            (431, "Please specify a valid netmask")
        );
        let (code, text) = refused(
            &admin,
            "createPod",
            &[
                ("name", "pod2"),
                ("zoneid", BOGUS),
                ("gateway", "10.251.0.1"),
                ("netmask", "255.255.255.0"),
                ("startip", "10.251.0.10"),
            ],
        )
        .await;
        assert_eq!(code, 431);
        assert!(
            text.starts_with("Invalid parameter zoneid value="),
            "{text}"
        );
        let (code, _) = refused(&admin, "createPod", &[("name", "pod3"), ("zoneid", &zone)]).await;
        assert_eq!(code, 431, "gateway, netmask and startip are required");

        let u = user(&admin, "poduser").await;
        let (code, _) = refused(&u, "listPods", &[]).await;
        assert_eq!(code, 432, "listPods is a root admin's command");
    }
);

on_both_backends!(clusters_are_added_to_a_pod_of_their_zone_only, |m| {
    let admin = m.admin();
    let zone = create_zone(&admin, "cz").await;
    let other = create_zone(&admin, "cz2").await;
    let pod = create_pod(&admin, &zone, "pod1").await;
    let added = admin
        .ok(
            "addCluster",
            &[
                ("clustername", "c1"),
                ("clustertype", "CloudManaged"),
                ("hypervisor", "simulator"),
                ("podid", &pod),
                ("zoneid", &zone),
            ],
        )
        .await;
    let c = &list(&added, "cluster")[0];
    assert_eq!(c["name"], "c1", "{added}");
    assert_eq!(c["podid"], pod.as_str());
    assert_eq!(c["hypervisortype"], "Simulator");
    assert_eq!(c["allocationstate"], "Enabled");
    assert_eq!(c["managedstate"], "Managed");

    let listed = admin.ok("listClusters", &[("podid", &pod)]).await;
    assert_eq!(listed["count"], 1, "{listed}");
    let by_type = admin
        .ok("listClusters", &[("clustertype", "ExternalManaged")])
        .await;
    assert_eq!(list(&by_type, "cluster").len(), 0);

    let cluster = |name: &'static str, kind: &'static str, hv: &'static str, zone: String| {
        let pod = pod.clone();
        async move {
            refused(
                &m.admin(),
                "addCluster",
                &[
                    ("clustername", name),
                    ("clustertype", kind),
                    ("hypervisor", hv),
                    ("podid", &pod),
                    ("zoneid", &zone),
                ],
            )
            .await
        }
    };
    let (code, text) = cluster("c1", "CloudManaged", "Simulator", zone.clone()).await;
    assert_eq!(code, 530);
    assert_eq!(
        text,
        "Unable to create cluster c1 in pod and data center with specified ids"
    );
    let (code, text) = cluster("c2", "Bogus", "Simulator", zone.clone()).await;
    assert_eq!(
        (code, text.as_str()),
        (431, "Unable to resolve Bogus to a supported type")
    );
    let (code, text) = cluster("c2", "CloudManaged", "Hyperv", zone.clone()).await;
    assert_eq!(code, 431);
    assert_eq!(
        text,
        "Could not find corresponding resource manager for Hyperv"
    );
    let (code, text) = cluster("c2", "CloudManaged", "Simulator", other).await;
    assert_eq!(code, 431);
    assert!(
        text.starts_with("Pod with specified id doesn't belong to the zone"),
        "{text}"
    );
});

on_both_backends!(
    a_host_agent_that_answers_is_added_and_one_that_does_not_records_nothing,
    |m| {
        let admin = m.admin();
        let zone = create_zone(&admin, "hz").await;
        let pod = create_pod(&admin, &zone, "pod1").await;
        let agent = LabHost::start("ha").await;
        let url = agent.url();

        // A host agent that is not there: CloudStack's discovery error, and
        // neither the host nor the cluster it named is recorded.
        let ghost = format!("unix://{}/nobody.sock", agent.lab.dir.path().display());
        let (code, text) = refused(
            &admin,
            "addHost",
            &[
                ("zoneid", &zone),
                ("podid", &pod),
                ("clustername", "ghosts"),
                ("url", &ghost),
                ("hypervisor", "Simulator"),
            ],
        )
        .await;
        assert_eq!(code, 530, "{text}");
        assert!(
            text.starts_with(&format!("Could not add host at [{ghost}]")),
            "{text}"
        );
        let hosts = admin.ok("listHosts", &[]).await;
        assert_eq!(list(&hosts, "host").len(), 0, "{hosts}");
        let clusters = admin.ok("listClusters", &[("name", "ghosts")]).await;
        assert_eq!(list(&clusters, "cluster").len(), 0);

        let added = admin
            .ok(
                "addHost",
                &[
                    ("zoneid", &zone),
                    ("podid", &pod),
                    ("clustername", "c1"),
                    ("url", &url),
                    ("hypervisor", "Simulator"),
                    ("username", "root"),
                    ("password", "unused"),
                ],
            )
            .await;
        let h = &list(&added, "host")[0];
        assert_eq!(h["state"], "Up", "{added}");
        assert_eq!(h["resourcestate"], "Enabled");
        assert_eq!(h["type"], "Routing");
        assert_eq!(h["hypervisor"], "Simulator");
        assert_eq!(h["url"], url.as_str());
        assert_eq!(h["clustername"], "c1");
        assert_eq!(h["podid"], pod.as_str());
        assert_eq!(h["zoneid"], zone.as_str());
        assert_eq!(h["routercount"], 0);
        assert_eq!(h["virtualmachinecount"], 0);
        let host = h["id"].as_str().unwrap().to_string();

        let listed = admin
            .ok(
                "listHosts",
                &[("state", "Up"), ("resourcestate", "Enabled")],
            )
            .await;
        assert_eq!(listed["count"], 1, "{listed}");
        let down = admin.ok("listHosts", &[("state", "Down")]).await;
        assert_eq!(list(&down, "host").len(), 0);
        let other_type = admin.ok("listHosts", &[("type", "SecondaryStorage")]).await;
        assert_eq!(list(&other_type, "host").len(), 0);
        let hv = admin.ok("listHypervisors", &[("zoneid", &zone)]).await;
        assert_eq!(hv["hypervisor"][0]["name"], "Simulator");

        let (code, text) = refused(
            &admin,
            "addHost",
            &[
                ("zoneid", &zone),
                ("podid", &pod),
                ("clustername", "c1"),
                ("url", &url),
                ("hypervisor", "Simulator"),
            ],
        )
        .await;
        assert_eq!(code, 530);
        assert!(text.contains("the host is already added"), "{text}");
        let (code, text) = refused(
            &admin,
            "addHost",
            &[
                ("zoneid", &zone),
                ("podid", &pod),
                ("clusterid", BOGUS),
                ("clustername", "c1"),
                ("url", &url),
                ("hypervisor", "Simulator"),
            ],
        )
        .await;
        assert_eq!(
            (code, text.as_str()),
            (431, "Can't specify cluster by both id and name")
        );
        let (code, text) = refused(
            &admin,
            "addHost",
            &[
                ("zoneid", &zone),
                ("podid", &pod),
                ("url", &url),
                ("hypervisor", "XenServer"),
            ],
        )
        .await;
        assert_eq!(code, 530);
        assert_eq!(
            text,
            format!("Do not support HypervisorType XenServer for {url}")
        );
        let (code, _) = refused(
            &admin,
            "addHost",
            &[
                ("zoneid", &zone),
                ("podid", &pod),
                ("url", "ftp://example.org"),
                ("hypervisor", "Simulator"),
            ],
        )
        .await;
        assert_eq!(code, 431);
        let u = user(&admin, "hostuser").await;
        let (code, _) = refused(&u, "listHosts", &[]).await;
        assert_eq!(code, 432, "listHosts is a root admin's command");

        // Allocation: Disable, Enable; anything else is CloudStack's refusal.
        let disabled = admin
            .ok(
                "updateHost",
                &[("id", &host), ("allocationstate", "Disable")],
            )
            .await;
        assert_eq!(disabled["host"]["resourcestate"], "Disabled", "{disabled}");
        let (code, text) = refused(
            &admin,
            "updateHost",
            &[("id", &host), ("allocationstate", "Off")],
        )
        .await;
        assert_eq!(code, 431);
        assert_eq!(
            text,
            "Invalid allocation state: Off, only Enable/Disable are allowed"
        );
        admin
            .ok(
                "updateHost",
                &[("id", &host), ("allocationstate", "Enable")],
            )
            .await;

        // An Enabled host is deleted only when forced.
        let (code, text) = refused(&admin, "deleteHost", &[("id", &host)]).await;
        assert_eq!(code, 530);
        assert_eq!(
            text,
            format!(
                "Host {host} cannot be deleted as it is not in maintenance mode. Either put the host \
             into maintenance or perform a forced deletion."
            )
        );

        // Maintenance and back; then maintenance and delete.
        let (code, text) = refused(&admin, "cancelHostMaintenance", &[("id", &host)]).await;
        assert_eq!(code, 530);
        assert_eq!(
            text,
            format!(
                "Cannot perform cancelMaintenance when resource state is Enabled, hostId = {host}"
            )
        );
        let done = job_ok(&admin, "prepareHostForMaintenance", &[("id", &host)]).await;
        assert_eq!(done["host"]["resourcestate"], "Maintenance", "{done}");
        let (code, text) = refused(&admin, "prepareHostForMaintenance", &[("id", &host)]).await;
        assert_eq!(code, 530);
        assert_eq!(
            text,
            "Host is already in state Maintenance. Cannot recall for maintenance until resolved."
        );
        let done = job_ok(&admin, "cancelHostMaintenance", &[("id", &host)]).await;
        assert_eq!(done["host"]["resourcestate"], "Enabled", "{done}");
        let done = run_job(&admin, "prepareHostForMaintenance", &[("id", &host)]).await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        admin.ok("deleteHost", &[("id", &host)]).await;
        let hosts = admin.ok("listHosts", &[]).await;
        assert_eq!(list(&hosts, "host").len(), 0, "{hosts}");
        let (code, _) = refused(&admin, "deleteHost", &[("id", &host)]).await;
        assert_eq!(code, 431, "a removed host is no longer found");
        agent.stop().await;
    }
);

on_both_backends!(a_forced_delete_removes_an_enabled_host, |m| {
    let admin = m.admin();
    let zone = create_zone(&admin, "fz").await;
    let pod = create_pod(&admin, &zone, "pod1").await;
    let agent = LabHost::start("hf").await;
    let added = admin
        .ok(
            "addHost",
            &[
                ("zoneid", &zone),
                ("podid", &pod),
                ("url", &agent.url()),
                ("hypervisor", "Simulator"),
            ],
        )
        .await;
    let h = &list(&added, "host")[0];
    // Neither cluster parameter: CloudStack's standalone cluster.
    assert_eq!(
        h["clustername"],
        format!("Standalone-{}", agent.url()),
        "{added}"
    );
    let host = h["id"].as_str().unwrap().to_string();
    admin
        .ok("deleteHost", &[("id", &host), ("forced", "true")])
        .await;
    let hosts = admin.ok("listHosts", &[("zoneid", &zone)]).await;
    assert_eq!(list(&hosts, "host").len(), 0, "{hosts}");
    agent.stop().await;
});

/// Adds `agent` to `zone`'s pod; the host's id.
async fn add_host(admin: &Client, zone: &str, pod: &str, agent: &LabHost) -> String {
    let added = admin
        .ok(
            "addHost",
            &[
                ("zoneid", zone),
                ("podid", pod),
                ("url", &agent.url()),
                ("hypervisor", "Simulator"),
            ],
        )
        .await;
    list(&added, "host")[0]["id"].as_str().unwrap().to_string()
}

on_both_backends!(
    moves_between_hosts_go_and_are_refused_as_cloudstack_does,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "mz").await;
        let pod = create_pod(&admin, &env.zone, "pod1").await;
        let (agent_a, agent_b) = (LabHost::start("ma").await, LabHost::start("mb").await);
        let a = add_host(&admin, &env.zone, &pod, &agent_a).await;
        let b = add_host(&admin, &env.zone, &pod, &agent_b).await;
        let vpc = create_vpc(&admin, &env, "mv", "10.80.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap();
        let router = |admin: &Client| {
            let admin = admin.clone();
            let vpc_id = vpc_id.to_string();
            async move { admin.ok("listRouters", &[("vpcid", &vpc_id)]).await["router"][0].clone() }
        };
        let r = router(&admin).await;
        assert_eq!(
            r["hostid"],
            a.as_str(),
            "the first host takes the router: {r}"
        );
        let router_id = r["id"].as_str().unwrap().to_string();
        let tier = create_tier(&admin, &env, vpc_id, "t", "10.80.1.1", "255.255.255.0").await;
        let tier_id = tier["id"].as_str().unwrap();
        let vm = deploy_vm(&admin, &env, tier_id, "mvm").await;
        assert_eq!(
            vm["hostid"],
            b.as_str(),
            "the lighter host takes the VM: {vm}"
        );
        let vm_id = vm["id"].as_str().unwrap().to_string();

        // migrateSystemVm: not to its own host, nor to a host that is not Up
        // and Enabled.
        let (code, text) = refused(
            &admin,
            "migrateSystemVm",
            &[("virtualmachineid", &router_id), ("hostid", &a)],
        )
        .await;
        assert_eq!(
            (code, text.as_str()),
            (
                431,
                "Cannot migrate VM, VM is already present on this host, please specify valid \
             destination host to migrate the VM"
            )
        );
        admin
            .ok("updateHost", &[("id", &b), ("allocationstate", "Disable")])
            .await;
        let (code, text) = refused(
            &admin,
            "migrateSystemVm",
            &[("virtualmachineid", &router_id), ("hostid", &b)],
        )
        .await;
        assert_eq!(
            (code, text.as_str()),
            (
                431,
                "Cannot migrate VM, destination host is not in correct state, has status: Up, \
             state: Disabled"
            )
        );
        admin
            .ok("updateHost", &[("id", &b), ("allocationstate", "Enable")])
            .await;

        // migrateVirtualMachine: a root admin's command, a host (or
        // autoselect), another host than the VM's, a running VM.
        let u = user(&admin, "mover").await;
        let (code, _) = refused(&u, "migrateVirtualMachine", &[("virtualmachineid", &vm_id)]).await;
        assert_eq!(code, 432);
        let (code, text) = refused(
            &admin,
            "migrateVirtualMachine",
            &[("virtualmachineid", &vm_id)],
        )
        .await;
        assert_eq!(
            (code, text.as_str()),
            (431, "Either hostId or storageId must be specified")
        );
        let (code, text) = refused(
            &admin,
            "migrateVirtualMachine",
            &[("virtualmachineid", &vm_id), ("hostid", &b)],
        )
        .await;
        assert_eq!(code, 431);
        assert!(
            text.starts_with("Cannot migrate VM, VM is already present on this host"),
            "{text}"
        );
        let (code, _) = refused(
            &admin,
            "migrateVirtualMachine",
            &[("virtualmachineid", BOGUS), ("hostid", &a)],
        )
        .await;
        assert_eq!(code, 431);
        job_ok(&admin, "stopVirtualMachine", &[("id", &vm_id)]).await;
        let (code, text) = refused(
            &admin,
            "migrateVirtualMachine",
            &[("virtualmachineid", &vm_id), ("hostid", &a)],
        )
        .await;
        assert_eq!(
            (code, text.as_str()),
            (
                431,
                "VM is not Running, unable to migrate the vm with specified id"
            )
        );
        job_ok(&admin, "startVirtualMachine", &[("id", &vm_id)]).await;
        let moved = job_ok(
            &admin,
            "migrateVirtualMachine",
            &[("virtualmachineid", &vm_id), ("autoselect", "true")],
        )
        .await;
        assert_eq!(moved["virtualmachine"]["hostid"], a.as_str(), "{moved}");
        assert_eq!(moved["virtualmachine"]["state"], "Running", "{moved}");

        // Maintenance of A moves the router and the VM to B; A then takes
        // nothing: no migration to it, no deployment on it.
        let done = job_ok(&admin, "prepareHostForMaintenance", &[("id", &a)]).await;
        assert_eq!(done["host"]["resourcestate"], "Maintenance", "{done}");
        let r = router(&admin).await;
        assert_eq!(
            (r["hostid"].as_str(), r["state"].as_str()),
            (Some(b.as_str()), Some("Running")),
            "{r}"
        );
        let listed = admin.ok("listVirtualMachines", &[("id", &vm_id)]).await;
        assert_eq!(
            listed["virtualmachine"][0]["hostid"],
            b.as_str(),
            "{listed}"
        );
        let (code, text) = refused(
            &admin,
            "migrateSystemVm",
            &[("virtualmachineid", &router_id), ("hostid", &a)],
        )
        .await;
        assert_eq!(
            (code, text.as_str()),
            (
                431,
                "Cannot migrate VM, destination host is not in correct state, has status: Up, \
             state: Maintenance"
            )
        );
        let mut params = vm_params(&env, tier_id, "nope");
        params.push(("hostid", &a));
        let (code, _) = refused(&admin, "deployVirtualMachine", &params).await;
        assert_eq!(code, 533, "a host in maintenance takes no VM");

        // B cannot be emptied while A is in maintenance: ErrorInMaintenance,
        // everything stays; deleteHost refuses it unless forced.
        let done = job_ok(&admin, "prepareHostForMaintenance", &[("id", &b)]).await;
        assert_eq!(
            done["host"]["resourcestate"], "ErrorInMaintenance",
            "{done}"
        );
        assert_eq!(router(&admin).await["hostid"], b.as_str());
        let (code, text) = refused(&admin, "deleteHost", &[("id", &b)]).await;
        assert_eq!(code, 530);
        assert!(
            text.contains("cannot be deleted as it is not in maintenance mode"),
            "{text}"
        );
        for h in [&a, &b] {
            let back = job_ok(&admin, "cancelHostMaintenance", &[("id", h)]).await;
            assert_eq!(back["host"]["resourcestate"], "Enabled", "{back}");
        }

        // A forced delete of B moves its running router to A and stops its VM.
        admin
            .ok("deleteHost", &[("id", &b), ("forced", "true")])
            .await;
        let r = router(&admin).await;
        assert_eq!(
            (r["hostid"].as_str(), r["state"].as_str()),
            (Some(a.as_str()), Some("Running")),
            "{r}"
        );
        let listed = admin.ok("listVirtualMachines", &[("id", &vm_id)]).await;
        assert_eq!(listed["virtualmachine"][0]["state"], "Stopped", "{listed}");
        agent_a.stop().await;
        agent_b.stop().await;
    }
);
