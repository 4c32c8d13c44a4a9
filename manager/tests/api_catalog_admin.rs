//! The offerings test suites create before anything else (issue 15), on
//! SQLite and PostgreSQL: create/update/delete of service offerings and of
//! network offerings by the root admin, refused to others and refused with
//! CloudStack's texts; `listDiskOfferings`.

mod support;

use serde_json::Value;
use support::api::{BOGUS, id, job_ok, on_both_backends, refused};
use support::vpc::{TEMPLATE, create_vpc, user, zone_env};

fn items(body: &Value, key: &str) -> Vec<Value> {
    body[key].as_array().cloned().unwrap_or_default()
}

on_both_backends!(
    service_offerings_are_created_used_updated_and_deleted,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "z1").await;
        let alice = user(&admin, "alice").await;
        let params = [
            ("name", "tiny"),
            ("displaytext", "Tiny"),
            ("cpunumber", "1"),
            ("cpuspeed", "500"),
            ("memory", "128"),
            ("rootdisksize", "4"),
        ];
        // Only the root admin creates offerings.
        let (code, _) = refused(&alice, "createServiceOffering", &params).await;
        assert_eq!(code, 432);
        let created = admin.ok("createServiceOffering", &params).await["serviceoffering"].clone();
        let offering = created["id"].as_str().unwrap().to_string();
        assert_eq!(created["memory"], 128);
        assert_eq!(created["rootdisksize"], 4);
        // Everybody lists and uses it; its VMs' ROOT volume takes its disk size.
        let listed = items(
            &alice.ok("listServiceOfferings", &[("id", &offering)]).await,
            "serviceoffering",
        );
        assert_eq!(listed[0]["name"], "tiny");
        let v = create_vpc(&alice, &env, "v1", "10.1.0.0/16").await;
        let tier = support::vpc::create_tier(
            &alice,
            &env,
            v["id"].as_str().unwrap(),
            "web",
            "10.1.1.1",
            "255.255.255.0",
        )
        .await;
        let vm = job_ok(
            &alice,
            "deployVirtualMachine",
            &[
                ("zoneid", env.zone.as_str()),
                ("serviceofferingid", offering.as_str()),
                ("templateid", TEMPLATE),
                ("networkids", tier["id"].as_str().unwrap()),
                ("name", "vm1"),
            ],
        )
        .await["virtualmachine"]
            .clone();
        assert_eq!(vm["serviceofferingid"], offering.as_str());
        let volume = items(
            &alice
                .ok(
                    "listVolumes",
                    &[("virtualmachineid", vm["id"].as_str().unwrap())],
                )
                .await,
            "volume",
        );
        assert_eq!(volume[0]["size"].as_i64(), Some(4 << 30));

        // Refused sizes, CloudStack's texts.
        for (key, value, text) in [
            ("cpunumber", "0", "cpu number value between 1"),
            ("memory", "16", "memory value between 32"),
            ("cpuspeed", "-5", "cpu speed value between 0"),
        ] {
            let mut p = params.to_vec();
            p.retain(|(k, _)| *k != key);
            p.push((key, value));
            let (code, err) = refused(&admin, "createServiceOffering", &p).await;
            assert_eq!(code, 431, "{key}");
            assert!(err.contains(text), "{key}: {err}");
        }
        let (code, err) = refused(&admin, "createServiceOffering", &[("name", "custom")]).await;
        assert_eq!(code, 431);
        assert!(err.contains("custom compute offerings"), "{err}");

        // Update: name and description.
        let updated = admin
            .ok(
                "updateServiceOffering",
                &[
                    ("id", &offering),
                    ("name", "tiny2"),
                    ("displaytext", "Tiny 2"),
                ],
            )
            .await["serviceoffering"]
            .clone();
        assert_eq!(updated["name"], "tiny2");
        assert_eq!(updated["displaytext"], "Tiny 2");
        let (code, _) = refused(&alice, "updateServiceOffering", &[("id", &offering)]).await;
        assert_eq!(code, 432);
        let (code, _) = refused(&admin, "updateServiceOffering", &[("id", BOGUS)]).await;
        assert_eq!(code, 431);

        // Delete: gone from the list; the VM keeps it; defaults stay.
        admin
            .ok("deleteServiceOffering", &[("id", &offering)])
            .await;
        let after = alice.ok("listServiceOfferings", &[("id", &offering)]).await;
        assert!(after.get("serviceoffering").is_none(), "{after}");
        let vm_now = alice
            .ok("listVirtualMachines", &[("id", vm["id"].as_str().unwrap())])
            .await;
        assert_eq!(
            vm_now["virtualmachine"][0]["serviceofferingid"],
            offering.as_str()
        );
        let (code, _) = refused(&admin, "deleteServiceOffering", &[("id", &offering)]).await;
        assert_eq!(code, 431);
        let small = support::vpc::SMALL;
        let (code, err) = refused(&admin, "deleteServiceOffering", &[("id", small)]).await;
        assert_eq!(code, 431);
        assert!(
            err.contains("Default service offerings cannot be deleted"),
            "{err}"
        );
    }
);

on_both_backends!(disk_offerings_are_cloudstacks_built_ins, |m| {
    let admin = m.admin();
    let alice = user(&admin, "alice").await;
    let all = items(&alice.ok("listDiskOfferings", &[]).await, "diskoffering");
    let names: Vec<&str> = all.iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Small", "Medium", "Large", "Custom"]);
    assert_eq!(all[1]["disksize"], 20);
    assert_eq!(all[3]["iscustomized"], true);
    let one = alice
        .ok(
            "listDiskOfferings",
            &[("id", all[0]["id"].as_str().unwrap())],
        )
        .await;
    assert_eq!(one["count"], 1);
    let large = alice.ok("listDiskOfferings", &[("keyword", "large")]).await;
    assert_eq!(large["count"], 1);
    let none = alice.ok("listDiskOfferings", &[("id", BOGUS)]).await;
    assert!(none.get("diskoffering").is_none());
});

on_both_backends!(
    network_offerings_are_created_enabled_used_and_deleted,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "z1").await;
        let alice = user(&admin, "alice").await;
        let params = [
            ("name", "web-tiers"),
            ("displaytext", "Web tiers"),
            ("traffictype", "GUEST"),
            ("guestiptype", "Isolated"),
            ("forvpc", "true"),
            (
                "supportedservices",
                "Dhcp,Dns,UserData,SourceNat,StaticNat,PortForwarding,Lb,NetworkACL",
            ),
            ("serviceproviderlist[0].service", "Lb"),
            ("serviceproviderlist[0].provider", "VpcVirtualRouter"),
        ];
        let (code, _) = refused(&alice, "createNetworkOffering", &params).await;
        assert_eq!(code, 432);
        let created = admin.ok("createNetworkOffering", &params).await["networkoffering"].clone();
        let offering = created["id"].as_str().unwrap().to_string();
        assert_eq!(created["state"], "Disabled");
        assert_eq!(created["forvpc"], true);
        assert_eq!(created["guestiptype"], "Isolated");
        assert!(created["serviceofferingid"].is_string(), "{created}");
        let services: Vec<&str> = created["service"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert!(
            services.contains(&"Lb") && services.contains(&"NetworkACL"),
            "{services:?}"
        );

        // Refused: other traffic or guest IP types, other providers, services
        // the router does not give.
        for (key, value, text) in [
            ("traffictype", "Public", "Only traffic type Guest"),
            ("guestiptype", "Shared", "only Isolated"),
            (
                "serviceproviderlist[0].provider",
                "InternalLbVm",
                "only VpcVirtualRouter",
            ),
            (
                "supportedservices",
                "Dhcp,Firewall",
                "Invalid service Firewall",
            ),
        ] {
            let mut p = params.to_vec();
            p.retain(|(k, _)| *k != key);
            p.push((key, value));
            let (code, err) = refused(&admin, "createNetworkOffering", &p).await;
            assert_eq!(code, 431, "{key}");
            assert!(err.contains(text), "{key}: {err}");
        }

        // A Disabled offering makes no tier; once Enabled it does.
        let v = create_vpc(&alice, &env, "v1", "10.1.0.0/16").await;
        let tier = [
            ("name", "web"),
            ("displaytext", "web"),
            ("zoneid", env.zone.as_str()),
            ("vpcid", v["id"].as_str().unwrap()),
            ("networkofferingid", offering.as_str()),
            ("gateway", "10.1.1.1"),
            ("netmask", "255.255.255.0"),
        ];
        let (code, _) = refused(&alice, "createNetwork", &tier).await;
        assert_eq!(code, 431);
        let (code, err) = refused(
            &admin,
            "updateNetworkOffering",
            &[("id", &offering), ("state", "Sleeping")],
        )
        .await;
        assert_eq!(code, 431, "{err}");
        let enabled = admin
            .ok(
                "updateNetworkOffering",
                &[
                    ("id", &offering),
                    ("state", "Enabled"),
                    ("name", "web-tiers-2"),
                ],
            )
            .await["networkoffering"]
            .clone();
        assert_eq!(enabled["state"], "Enabled");
        assert_eq!(enabled["name"], "web-tiers-2");
        let t = alice.ok("createNetwork", &tier).await;
        let tier_id = id(&t, "network");

        // Delete: refused while a tier uses it, and for defaults; then allowed.
        let (code, err) = refused(&admin, "deleteNetworkOffering", &[("id", &offering)]).await;
        assert_eq!(code, 431);
        assert!(err.contains("as its used by 1 networks"), "{err}");
        let (code, err) = refused(
            &admin,
            "deleteNetworkOffering",
            &[("id", &env.tier_offering)],
        )
        .await;
        assert_eq!(code, 431);
        assert!(
            err.contains("Default network offering can't be deleted"),
            "{err}"
        );
        job_ok(&alice, "deleteNetwork", &[("id", &tier_id)]).await;
        admin
            .ok("deleteNetworkOffering", &[("id", &offering)])
            .await;
        let gone = alice.ok("listNetworkOfferings", &[("id", &offering)]).await;
        assert!(gone.get("networkoffering").is_none(), "{gone}");
        let (code, _) = refused(&admin, "deleteNetworkOffering", &[("id", &offering)]).await;
        assert_eq!(code, 431);
    }
);

on_both_backends!(routers_show_and_change_their_system_offering, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "z1").await;
    let alice = user(&admin, "alice").await;
    let v = create_vpc(&alice, &env, "v1", "10.1.0.0/16").await;
    let router = admin
        .ok(
            "listRouters",
            &[("vpcid", v["id"].as_str().unwrap()), ("listall", "true")],
        )
        .await["router"][0]
        .clone();
    let router_id = router["id"].as_str().unwrap().to_string();
    let system = "4c3e1a52-0003-4b8e-8d1f-5e0a00000003";
    assert_eq!(router["serviceofferingid"], system, "{router}");
    assert_eq!(
        router["serviceofferingname"],
        "System Offering For Software Router"
    );
    // Refused: a running router, an offering of VMs, an unknown offering,
    // a user.
    let change = |offering: &'static str| {
        vec![
            ("id", router_id.clone()),
            ("serviceofferingid", offering.to_string()),
        ]
    };
    let call = |p: &Vec<(&'static str, String)>| -> Vec<(&'static str, String)> { p.clone() };
    for (offering, text) in [
        (system, "make sure the router is stopped"),
        (support::vpc::SMALL, "non system service offering"),
        (BOGUS, "Unable to find service offering"),
    ] {
        let p = call(&change(offering));
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, err) = refused(&admin, "changeServiceForRouter", &p).await;
        assert_eq!(code, 431, "{offering}: {err}");
        assert!(err.contains(text), "{offering}: {err}");
    }
    let (code, _) = refused(
        &alice,
        "changeServiceForRouter",
        &[("id", &router_id), ("serviceofferingid", system)],
    )
    .await;
    assert_eq!(code, 432);
    // Stopped, it takes the system offering.
    job_ok(&admin, "stopRouter", &[("id", &router_id)]).await;
    let changed = admin
        .ok(
            "changeServiceForRouter",
            &[("id", &router_id), ("serviceofferingid", system)],
        )
        .await["router"]
        .clone();
    assert_eq!(changed["serviceofferingid"], system, "{changed}");
    assert_eq!(changed["state"], "Stopped");
});
