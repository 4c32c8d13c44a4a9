//! Many hosts through the API (issue 12): a zone on VXLAN, three host
//! agents on a shared fabric (each its own `vpc-manager host-agent` process
//! with an underlay address), added with addHost. The planner puts the
//! VPC's router on host 1; an admin puts a VM of tier A on host 2 and one of
//! tier B on host 3. The manager keeps the tiers' flood lists current, so
//! the VMs take DHCP leases from the router across hosts (with the VXLAN
//! tier's MTU), reach each other through the router and the internet by
//! source NAT; destroying a VM takes its host out of the tier's flood list.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;
use support::api::job_ok;
use support::e2e::{E2e, ping_ok};
use support::fabric::{FabricOptions, eventually, fabric_zone, flood_list, lease_ip};
use vpc_integration::Netns;
use vpc_manager::settings::AgentTransport;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vms_on_two_hosts_reach_their_router_on_a_third_across_vxlan_through_the_api() {
    let lab = E2e::start(AgentTransport::Unix).await;
    let admin = lab.admin();
    let (fabric, zone, added) = fabric_zone(
        &admin,
        FabricOptions {
            hosts: 3,
            ..FabricOptions::default()
        },
        "vx",
        "5000-5099",
    )
    .await;
    let mut hosts = Vec::new();
    for (host, h) in added.iter().zip(&fabric.hosts) {
        assert_eq!(
            host["underlayaddress"].as_str(),
            Some(h.underlay.to_string().as_str()),
            "{host}"
        );
        hosts.push(host["id"].as_str().unwrap().to_string());
    }

    let offering =
        admin.ok("listVPCOfferings", &[("isdefault", "true")]).await["vpcoffering"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
    let vpc = job_ok(
        &admin,
        "createVPC",
        &[
            ("name", "spread"),
            ("cidr", "10.71.0.0/16"),
            ("zoneid", &zone),
            ("vpcofferingid", &offering),
        ],
    )
    .await["vpc"]
        .clone();
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let routers = admin.ok("listRouters", &[("vpcid", &vpc_id)]).await;
    let router = &routers["router"][0];
    assert_eq!(router["hostid"], hosts[0].as_str(), "{routers}");

    let allow = admin
        .ok("listNetworkACLLists", &[("name", "default_allow")])
        .await["networkacllist"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tier = |name: &'static str, gateway: &'static str| {
        let (admin, zone, vpc_id, allow, lab) = (&admin, &zone, &vpc_id, &allow, &lab);
        async move {
            let p = [
                ("name", name),
                ("displaytext", name),
                ("zoneid", zone.as_str()),
                ("vpcid", vpc_id.as_str()),
                ("networkofferingid", lab.tier_offering.as_str()),
                ("gateway", gateway),
                ("netmask", "255.255.255.0"),
                ("aclid", allow.as_str()),
            ];
            admin.ok("createNetwork", &p).await["network"].clone()
        }
    };
    let tier_a = tier("a", "10.71.1.1").await;
    let tier_b = tier("b", "10.71.2.1").await;
    let deploy = |tier: &Value, name: &'static str, host: &str| {
        let tier = tier["id"].as_str().unwrap().to_string();
        let host = host.to_string();
        let (admin, zone, lab) = (&admin, &zone, &lab);
        async move {
            job_ok(
                admin,
                "deployVirtualMachine",
                &[
                    ("zoneid", zone.as_str()),
                    ("serviceofferingid", lab.service_offering.as_str()),
                    ("templateid", lab.template.as_str()),
                    ("networkids", tier.as_str()),
                    ("name", name),
                    ("hostid", host.as_str()),
                ],
            )
            .await["virtualmachine"]
                .clone()
        }
    };
    let vm_a = deploy(&tier_a, "vma", &hosts[1]).await;
    let vm_b = deploy(&tier_b, "vmb", &hosts[2]).await;
    assert_eq!(vm_a["hostid"], hosts[1].as_str());
    assert_eq!(vm_b["hostid"], hosts[2].as_str());
    let inst_a = vm_a["instancename"].as_str().unwrap().to_string();
    let inst_b = vm_b["instancename"].as_str().unwrap().to_string();

    // Leases from the router on host 1, over VXLAN, with the tier's MTU.
    let mut leases = Vec::new();
    for (h, inst) in [(1, &inst_a), (2, &inst_b)] {
        let host = &fabric.hosts[h];
        eventually(
            Duration::from_secs(60),
            &format!("a lease for {inst}"),
            async || host.lease(inst, 0).and_then(|l| lease_ip(&l)).is_some(),
        )
        .await;
        let lease = host.lease(inst, 0).unwrap();
        assert!(lease.contains("mtu=1450"), "{inst}: {lease}");
        leases.push(lease_ip(&lease).unwrap());
    }
    assert!(leases[0].to_string().starts_with("10.71.1."), "{leases:?}");
    assert!(leases[1].to_string().starts_with("10.71.2."), "{leases:?}");

    // Each tier's flood list on each member host names the others.
    let vni = |t: &Value| {
        t["broadcasturi"]
            .as_str()
            .and_then(|u| u.strip_prefix("vxlan://"))
            .expect("a VXLAN tier")
            .to_string()
    };
    let implemented = |t: &Value| {
        let id = t["id"].as_str().unwrap().to_string();
        let admin = &admin;
        async move { admin.ok("listNetworks", &[("id", &id)]).await["network"][0].clone() }
    };
    let (vni_a, vni_b) = (
        vni(&implemented(&tier_a).await),
        vni(&implemented(&tier_b).await),
    );
    let zone_uuid: uuid::Uuid = zone.parse().unwrap();
    let (ul1, ul2, ul3) = (
        fabric.hosts[0].underlay.to_string(),
        fabric.hosts[1].underlay.to_string(),
        fabric.hosts[2].underlay.to_string(),
    );
    assert_eq!(
        flood_list(&fabric.hosts[0].zone_ns(&zone_uuid), &vni_a),
        [ul2.as_str()]
    );
    assert_eq!(
        flood_list(&fabric.hosts[1].zone_ns(&zone_uuid), &vni_a),
        [ul1.as_str()]
    );
    assert_eq!(
        flood_list(&fabric.hosts[0].zone_ns(&zone_uuid), &vni_b),
        [ul3.as_str()]
    );
    assert_eq!(
        flood_list(&fabric.hosts[2].zone_ns(&zone_uuid), &vni_b),
        [ul1.as_str()]
    );

    // Packets: each VM reaches its gateway on host 1, the other VM through
    // the router, and the internet (198.51.100.1 upstream) by source NAT.
    let ns_a = Netns::existing(&fabric.hosts[1].ns(&inst_a));
    let ns_b = Netns::existing(&fabric.hosts[2].ns(&inst_b));
    assert!(ping_ok(&ns_a, Ipv4Addr::new(10, 71, 1, 1)).await);
    assert!(ping_ok(&ns_b, Ipv4Addr::new(10, 71, 2, 1)).await);
    assert!(ping_ok(&ns_a, leases[1]).await, "A to B across hosts");
    assert!(ping_ok(&ns_b, leases[0]).await, "B to A across hosts");
    assert!(
        ping_ok(&ns_a, Ipv4Addr::new(198, 51, 100, 1)).await,
        "A to the internet"
    );
    assert!(
        ping_ok(&ns_b, Ipv4Addr::new(198, 51, 100, 1)).await,
        "B to the internet"
    );

    // VM A goes: host 2 leaves tier A, and host 1's list follows.
    job_ok(
        &admin,
        "destroyVirtualMachine",
        &[("id", vm_a["id"].as_str().unwrap()), ("expunge", "true")],
    )
    .await;
    let host1_zone = fabric.hosts[0].zone_ns(&zone_uuid);
    eventually(
        Duration::from_secs(15),
        "host 1's flood list of tier A empties",
        async || flood_list(&host1_zone, &vni_a).is_empty(),
    )
    .await;
    assert_eq!(flood_list(&host1_zone, &vni_b), [ul3.as_str()]);
    drop(fabric);
    lab.finish().await;
}
