//! The read commands clients call before and after a deploy (issue 15), on
//! SQLite and PostgreSQL: `listHypervisors`, `listNics`, `listVolumes` (a
//! ROOT volume per VM sized from its template) and `listIpForwardingRules`,
//! each allowed and refused.

mod support;

use serde_json::Value;
use support::api::{BOGUS, job_ok, on_both_backends, refused};
use support::vpc::{create_tier, create_vpc, deploy_vm, user, zone_env};

fn items(body: &Value, key: &str) -> Vec<Value> {
    body[key].as_array().cloned().unwrap_or_default()
}

/// The seeded template's virtual size (migration 0012): 1 GiB.
const TEMPLATE_SIZE: u64 = 1 << 30;

on_both_backends!(hypervisors_are_listed_per_zone, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "z1").await;
    let alice = user(&admin, "alice").await;
    let all = items(&alice.ok("listHypervisors", &[]).await, "hypervisor");
    assert_eq!(all.len(), 1, "{all:?}");
    let name = all[0]["name"].as_str().unwrap().to_string();
    assert!(!name.is_empty());
    // The templates name the same hypervisor (Ansible's cs_instance matches them).
    let templates = alice
        .ok("listTemplates", &[("templatefilter", "executable")])
        .await;
    assert_eq!(templates["template"][0]["hypervisor"], name.as_str());
    let in_zone = items(
        &alice.ok("listHypervisors", &[("zoneid", &env.zone)]).await,
        "hypervisor",
    );
    assert_eq!(in_zone, all);
    let unknown = alice.ok("listHypervisors", &[("zoneid", BOGUS)]).await;
    assert!(unknown.get("hypervisor").is_none(), "{unknown}");
    let (code, _) = refused(&alice, "listHypervisors", &[("zoneid", "not-a-uuid")]).await;
    assert_eq!(code, 431);
});

on_both_backends!(nics_and_root_volumes_of_a_vm, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "z1").await;
    let alice = user(&admin, "alice").await;
    let bob = user(&admin, "bob").await;
    let v = create_vpc(&alice, &env, "v1", "10.1.0.0/16").await;
    let vpc_id = v["id"].as_str().unwrap().to_string();
    let web = create_tier(&alice, &env, &vpc_id, "web", "10.1.1.1", "255.255.255.0").await;
    let db = create_tier(&alice, &env, &vpc_id, "db", "10.1.2.1", "255.255.255.0").await;
    let web_id = web["id"].as_str().unwrap().to_string();
    let db_id = db["id"].as_str().unwrap().to_string();
    let vm = deploy_vm(&alice, &env, &format!("{web_id},{db_id}"), "vm1").await;
    let vm_id = vm["id"].as_str().unwrap().to_string();

    // listNics: both NICs, the first default, as the VM shows them.
    let nics = items(
        &alice.ok("listNics", &[("virtualmachineid", &vm_id)]).await,
        "nic",
    );
    assert_eq!(nics.len(), 2, "{nics:?}");
    assert_eq!(nics[0]["isdefault"], true);
    assert_eq!(nics[1]["isdefault"], false);
    assert_eq!(nics[0]["networkid"], web_id.as_str());
    assert_eq!(nics[0]["ipaddress"], vm["nic"][0]["ipaddress"]);
    assert_eq!(nics[0]["virtualmachineid"], vm_id.as_str());
    let on_db = items(
        &alice
            .ok(
                "listNics",
                &[("virtualmachineid", &vm_id), ("networkid", &db_id)],
            )
            .await,
        "nic",
    );
    assert_eq!(on_db.len(), 1);
    assert_eq!(on_db[0]["networkid"], db_id.as_str());
    let nic_id = nics[1]["id"].as_str().unwrap();
    let one = alice
        .ok(
            "listNics",
            &[("virtualmachineid", &vm_id), ("nicid", nic_id)],
        )
        .await;
    assert_eq!(one["count"], 1);
    // Refused: no VM, an unknown VM, someone else's VM.
    let (code, text) = refused(&alice, "listNics", &[]).await;
    assert_eq!(code, 431);
    assert!(text.contains("virtualmachineid"), "{text}");
    let (code, _) = refused(&alice, "listNics", &[("virtualmachineid", BOGUS)]).await;
    assert_eq!(code, 431);
    let (code, _) = refused(&bob, "listNics", &[("virtualmachineid", &vm_id)]).await;
    assert_eq!(code, 531);

    // listVolumes: one ROOT volume per VM, sized from the template.
    let volumes = items(&alice.ok("listVolumes", &[]).await, "volume");
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let root = &volumes[0];
    assert_eq!(root["type"], "ROOT");
    assert_eq!(root["virtualmachineid"], vm_id.as_str());
    assert_eq!(root["size"].as_u64(), Some(TEMPLATE_SIZE));
    assert_eq!(root["state"], "Ready");
    assert!(root["name"].as_str().unwrap().starts_with("ROOT-"));
    let volume_id = root["id"].as_str().unwrap().to_string();
    assert_ne!(volume_id, vm_id);
    // The same id every time, by id and by VM.
    let by_id = items(
        &alice.ok("listVolumes", &[("id", &volume_id)]).await,
        "volume",
    );
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0]["id"], volume_id.as_str());
    let by_vm = items(
        &alice
            .ok("listVolumes", &[("virtualmachineid", &vm_id)])
            .await,
        "volume",
    );
    assert_eq!(by_vm[0]["id"], volume_id.as_str());
    // No data disks; nothing of alice's for bob; the admin sees it by id.
    let data = alice.ok("listVolumes", &[("type", "DATADISK")]).await;
    assert!(data.get("volume").is_none(), "{data}");
    let bobs = bob.ok("listVolumes", &[]).await;
    assert!(bobs.get("volume").is_none(), "{bobs}");
    let bobs = bob.ok("listVolumes", &[("id", &volume_id)]).await;
    assert!(bobs.get("volume").is_none(), "{bobs}");
    let admins = items(
        &admin.ok("listVolumes", &[("id", &volume_id)]).await,
        "volume",
    );
    assert_eq!(admins.len(), 1);
    let (code, _) = refused(&bob, "listVolumes", &[("account", "alice")]).await;
    assert_eq!(code, 531);
});

on_both_backends!(ip_forwarding_rules_are_listed_as_cloudstack_does, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "z1").await;
    let alice = user(&admin, "alice").await;
    let bob = user(&admin, "bob").await;
    let v = create_vpc(&alice, &env, "v1", "10.1.0.0/16").await;
    let vpc_id = v["id"].as_str().unwrap().to_string();
    let web = create_tier(&alice, &env, &vpc_id, "web", "10.1.1.1", "255.255.255.0").await;
    let web_id = web["id"].as_str().unwrap().to_string();
    let vm = deploy_vm(&alice, &env, &web_id, "vm1").await;
    let vm_id = vm["id"].as_str().unwrap().to_string();
    let ip = job_ok(&alice, "associateIpAddress", &[("vpcid", &vpc_id)]).await["ipaddress"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    alice
        .ok(
            "enableStaticNat",
            &[
                ("ipaddressid", &ip),
                ("virtualmachineid", &vm_id),
                ("networkid", &web_id),
            ],
        )
        .await;
    // enableStaticNat makes no IP forwarding rule (createIpForwardingRule
    // does, in CloudStack): the list is empty, whatever the filter.
    for params in [
        vec![],
        vec![("ipaddressid", ip.as_str())],
        vec![("virtualmachineid", vm_id.as_str())],
    ] {
        let listed = alice.ok("listIpForwardingRules", &params).await;
        assert!(listed.get("ipforwardingrule").is_none(), "{listed}");
    }
    // Refused: an address nobody holds, someone else's address and VM.
    let (code, text) = refused(&alice, "listIpForwardingRules", &[("ipaddressid", BOGUS)]).await;
    assert_eq!(code, 431);
    assert!(
        text.contains("not ready for port forwarding rules yet"),
        "{text}"
    );
    let (code, _) = refused(&bob, "listIpForwardingRules", &[("ipaddressid", &ip)]).await;
    assert_eq!(code, 531);
    let (code, _) = refused(
        &bob,
        "listIpForwardingRules",
        &[("virtualmachineid", &vm_id)],
    )
    .await;
    assert_eq!(code, 531);
});
