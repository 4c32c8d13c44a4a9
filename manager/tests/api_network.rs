//! Physical networks, traffic types, public IP ranges and offerings through
//! the HTTP API, on SQLite and on PostgreSQL: each command's allowed case and
//! its refusals with CloudStack's error codes.

mod support;

use support::api::{BOGUS, Client, id, job_ok, on_both_backends, refused, run_job};
use vpc_manager::store::{Db, account, domain, vlan, zone};

/// A user account (type 0) with API keys.
async fn user(admin: &Client, name: &str) -> Client {
    let d = id(&admin.ok("createDomain", &[("name", name)]).await, "domain");
    let a = admin
        .ok(
            "createAccount",
            &[
                ("username", name),
                ("password", "pw"),
                ("email", "x@example.org"),
                ("firstname", "F"),
                ("lastname", "L"),
                ("domainid", &d),
            ],
        )
        .await;
    let user_id = a["account"]["user"][0]["id"].as_str().unwrap().to_string();
    let keys = admin.ok("registerUserKeys", &[("id", &user_id)]).await;
    Client {
        addr: admin.addr,
        key: keys["userkeys"]["apikey"].as_str().unwrap().into(),
        secret: keys["userkeys"]["secretkey"].as_str().unwrap().into(),
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

/// createPhysicalNetwork is async-create: the answer carries the new id and
/// the job, and the job's result is the same physical network.
async fn create_physnet(admin: &Client, zone_id: &str, name: &str, vlan: &str) -> String {
    let accepted = admin
        .ok(
            "createPhysicalNetwork",
            &[("zoneid", zone_id), ("name", name), ("vlan", vlan)],
        )
        .await;
    let new_id = accepted["id"]
        .as_str()
        .expect("async-create answers with id")
        .to_string();
    let done = admin
        .wait_job(accepted["jobid"].as_str().expect("and jobid"))
        .await;
    assert_eq!(done["jobstatus"], 1, "{done}");
    assert_eq!(done["jobinstanceid"], new_id.as_str());
    assert_eq!(id(&done["jobresult"], "physicalnetwork"), new_id);
    new_id
}

async fn add_public(admin: &Client, physnet: &str) {
    job_ok(
        admin,
        "addTrafficType",
        &[("physicalnetworkid", physnet), ("traffictype", "Public")],
    )
    .await;
}

on_both_backends!(
    physical_networks_are_created_listed_updated_and_deleted,
    |m, url| {
        let admin = m.admin();
        let zone_id = create_zone(&admin, "pz").await;
        let ruth = user(&admin, "pnu").await;

        let (code, _) = refused(
            &ruth,
            "createPhysicalNetwork",
            &[("zoneid", &zone_id), ("name", "p")],
        )
        .await;
        assert_eq!(code, 432, "users may not create physical networks");
        let (code, text) = refused(
            &admin,
            "createPhysicalNetwork",
            &[("zoneid", BOGUS), ("name", "p")],
        )
        .await;
        assert_eq!(code, 431);
        assert!(
            text.starts_with(&format!("Invalid parameter zoneid value={BOGUS}")),
            "{text}"
        );
        for (name, value) in [
            ("vlan", "100-5000"),
            ("vlan", "300-200"),
            ("vlan", "100-199,150-160"),
            ("vlan", "ten"),
            ("isolationmethods", "GRE"),
            ("isolationmethods", "VLAN,VXLAN"),
            ("broadcastdomainrange", "POD"),
        ] {
            let (code, _) = refused(
                &admin,
                "createPhysicalNetwork",
                &[("zoneid", &zone_id), ("name", "p"), (name, value)],
            )
            .await;
            assert_eq!(code, 431, "{name}={value}");
        }

        let created = job_ok(
            &admin,
            "createPhysicalNetwork",
            &[
                ("zoneid", &zone_id),
                ("name", "physnet1"),
                ("isolationmethods", "vlan"),
                ("vlan", "100-199, 300-310"),
                ("broadcastdomainrange", "zone"),
            ],
        )
        .await;
        let pn = &created["physicalnetwork"];
        let pn_id = id(&created, "physicalnetwork");
        assert_eq!(pn["name"], "physnet1");
        assert_eq!(pn["zoneid"], zone_id.as_str());
        assert_eq!(pn["zonename"], "pz");
        assert_eq!(pn["isolationmethods"], "VLAN");
        assert_eq!(pn["vlan"], "100-199,300-310");
        assert_eq!(pn["state"], "Enabled");
        assert_eq!(pn["broadcastdomainrange"], "ZONE");
        // A zone may have several physical networks; VXLAN takes 24-bit ids.
        let vx = job_ok(
            &admin,
            "createPhysicalNetwork",
            &[
                ("zoneid", &zone_id),
                ("name", "physnet2"),
                ("isolationmethods", "VXLAN"),
                ("vlan", "5000-100000"),
            ],
        )
        .await;
        let vx_id = id(&vx, "physicalnetwork");
        assert_eq!(vx["physicalnetwork"]["isolationmethods"], "VXLAN");

        let listed = admin
            .ok("listPhysicalNetworks", &[("zoneid", &zone_id)])
            .await;
        assert_eq!(listed["count"], 2, "{listed}");
        let one = admin.ok("listPhysicalNetworks", &[("id", &pn_id)]).await;
        assert_eq!(one["count"], 1);
        assert_eq!(one["physicalnetwork"][0]["vlan"], "100-199,300-310");
        let kw = admin
            .ok("listPhysicalNetworks", &[("keyword", "NET2")])
            .await;
        assert_eq!(kw["physicalnetwork"][0]["id"], vx_id.as_str());
        let paged = admin
            .ok("listPhysicalNetworks", &[("page", "2"), ("pagesize", "1")])
            .await;
        assert_eq!(paged["count"], 2);
        assert_eq!(paged["physicalnetwork"].as_array().unwrap().len(), 1);
        assert_eq!(refused(&ruth, "listPhysicalNetworks", &[]).await.0, 432);
        assert_eq!(
            refused(&admin, "listPhysicalNetworks", &[("zoneid", BOGUS)])
                .await
                .0,
            431
        );

        let updated = job_ok(
            &admin,
            "updatePhysicalNetwork",
            &[("id", &pn_id), ("vlan", "200-299"), ("state", "disabled")],
        )
        .await;
        assert_eq!(updated["physicalnetwork"]["vlan"], "200-299");
        assert_eq!(updated["physicalnetwork"]["state"], "Disabled");
        let updated = job_ok(
            &admin,
            "updatePhysicalNetwork",
            &[("id", &pn_id), ("state", "Enabled")],
        )
        .await;
        assert_eq!(updated["physicalnetwork"]["vlan"], "200-299", "kept");
        assert_eq!(updated["physicalnetwork"]["state"], "Enabled");
        assert_eq!(
            refused(
                &admin,
                "updatePhysicalNetwork",
                &[("id", &pn_id), ("vlan", "0-10")]
            )
            .await
            .0,
            431
        );
        assert_eq!(
            refused(
                &admin,
                "updatePhysicalNetwork",
                &[("id", &vx_id), ("vlan", "1-16777215")]
            )
            .await
            .0,
            431
        );
        assert_eq!(
            refused(
                &admin,
                "updatePhysicalNetwork",
                &[("id", &pn_id), ("state", "Broken")]
            )
            .await
            .0,
            431
        );
        assert_eq!(
            refused(&admin, "updatePhysicalNetwork", &[("id", BOGUS)])
                .await
                .0,
            431
        );
        assert_eq!(
            refused(&ruth, "updatePhysicalNetwork", &[("id", &pn_id)])
                .await
                .0,
            432
        );

        let deleted = job_ok(&admin, "deletePhysicalNetwork", &[("id", &vx_id)]).await;
        assert_eq!(deleted["success"], true, "{deleted}");
        let (code, text) = refused(&admin, "deletePhysicalNetwork", &[("id", &vx_id)]).await;
        assert_eq!(code, 431, "a deleted network is unknown");
        assert!(
            text.starts_with(&format!("Invalid parameter id value={vx_id}")),
            "{text}"
        );
        assert_eq!(
            refused(&ruth, "deletePhysicalNetwork", &[("id", &pn_id)])
                .await
                .0,
            432
        );
        let listed = admin.ok("listPhysicalNetworks", &[]).await;
        assert_eq!(listed["count"], 1);
        let _ = url;
    }
);

on_both_backends!(
    traffic_types_are_added_once_per_physical_network,
    |m, url| {
        let admin = m.admin();
        let zone_id = create_zone(&admin, "tz").await;
        let pn = create_physnet(&admin, &zone_id, "tp", "100-110").await;
        let ruth = user(&admin, "ttu").await;

        let added = job_ok(
            &admin,
            "addTrafficType",
            &[
                ("physicalnetworkid", &pn),
                ("traffictype", "public"),
                ("kvmnetworklabel", "cloudbr0"),
            ],
        )
        .await;
        let t = &added["traffictype"];
        assert_eq!(t["traffictype"], "Public");
        assert_eq!(t["physicalnetworkid"], pn.as_str());
        assert_eq!(t["kvmnetworklabel"], "cloudbr0");
        assert_eq!(t["id"].as_str().unwrap().len(), 36);
        job_ok(
            &admin,
            "addTrafficType",
            &[("physicalnetworkid", &pn), ("traffictype", "Guest")],
        )
        .await;

        let (code, text) = refused(
            &admin,
            "addTrafficType",
            &[("physicalnetworkid", &pn), ("traffictype", "PUBLIC")],
        )
        .await;
        assert_eq!(code, 431, "one traffic type per kind: {text}");
        assert_eq!(
            refused(
                &admin,
                "addTrafficType",
                &[("physicalnetworkid", &pn), ("traffictype", "Backbone")],
            )
            .await
            .0,
            431
        );
        assert_eq!(
            refused(
                &admin,
                "addTrafficType",
                &[("physicalnetworkid", BOGUS), ("traffictype", "Guest")],
            )
            .await
            .0,
            431
        );
        assert_eq!(
            refused(
                &ruth,
                "addTrafficType",
                &[("physicalnetworkid", &pn), ("traffictype", "Storage")],
            )
            .await
            .0,
            432
        );

        let listed = admin
            .ok("listTrafficTypes", &[("physicalnetworkid", &pn)])
            .await;
        assert_eq!(listed["count"], 2, "{listed}");
        let kinds: Vec<&str> = listed["traffictype"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traffictype"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["Public", "Guest"]);
        assert_eq!(
            listed["traffictype"][0]["id"], t["id"],
            "ids are stable between add and list"
        );
        let (code, text) = refused(&admin, "listTrafficTypes", &[]).await;
        assert_eq!(code, 431);
        assert!(
            text.contains("missing parameter physicalnetworkid"),
            "{text}"
        );
        assert_eq!(
            refused(&ruth, "listTrafficTypes", &[("physicalnetworkid", &pn)])
                .await
                .0,
            432
        );
        let _ = url;
    }
);

on_both_backends!(
    public_ip_ranges_are_validated_and_never_overlap,
    |m, url| {
        let admin = m.admin();
        let zone_id = create_zone(&admin, "rz").await;
        let pn = create_physnet(&admin, &zone_id, "rp", "100-199").await;
        let ruth = user(&admin, "rru").await;
        let range = |start: &'static str, end: &'static str| {
            vec![
                ("gateway", "203.0.113.1"),
                ("netmask", "255.255.255.0"),
                ("startip", start),
                ("endip", end),
            ]
        };
        let with = |mut base: Vec<(&'static str, &'static str)>,
                    extra: &[(&'static str, &'static str)]| {
            base.extend_from_slice(extra);
            base
        };

        let mut p = range("203.0.113.10", "203.0.113.20");
        p.push(("zoneid", &zone_id));
        let (code, text) = refused(&admin, "createVlanIpRange", &p).await;
        assert_eq!(code, 431, "no physical network carries Public traffic yet");
        assert!(text.contains("Public"), "{text}");
        add_public(&admin, &pn).await;

        let created = admin.ok("createVlanIpRange", &p).await;
        let v = &created["vlan"];
        let first = id(&created, "vlan");
        assert_eq!(v["zoneid"], zone_id.as_str());
        assert_eq!(
            v["physicalnetworkid"],
            pn.as_str(),
            "the zone's Public network"
        );
        assert_eq!(v["vlan"], "vlan://untagged");
        assert_eq!(v["forvirtualnetwork"], true);
        assert_eq!(v["gateway"], "203.0.113.1");
        assert_eq!(v["netmask"], "255.255.255.0");
        assert_eq!(v["startip"], "203.0.113.10");
        assert_eq!(v["endip"], "203.0.113.20");
        assert!(
            v.get("account").is_none() && v.get("networkid").is_none(),
            "{v}"
        );

        // Overlaps, in every shape, are refused with 431.
        for (start, end) in [
            ("203.0.113.20", "203.0.113.30"),
            ("203.0.113.5", "203.0.113.10"),
            ("203.0.113.12", "203.0.113.14"),
            ("203.0.113.2", "203.0.113.250"),
        ] {
            let mut q = range(start, end);
            q.push(("zoneid", &zone_id));
            let (code, text) = refused(&admin, "createVlanIpRange", &q).await;
            assert_eq!(code, 431, "{start}-{end}: {text}");
            assert!(text.contains("overlaps"), "{text}");
        }
        let pn_ref: &str = &pn;
        for bad in [
            with(range("203.0.113.30", "203.0.113.25"), &[]),
            with(range("203.0.113.30", "203.0.114.5"), &[]),
            with(range("203.0.113.0", "203.0.113.5"), &[]),
            with(range("203.0.113.250", "203.0.113.255"), &[]),
            with(range("203.0.113.300", "203.0.113.310"), &[]),
            with(range("203.0.113.30", "203.0.113.40"), &[("vlan", "4095")]),
            with(
                range("203.0.113.30", "203.0.113.40"),
                &[("forvirtualnetwork", "false")],
            ),
            vec![
                ("gateway", "203.0.113.35"),
                ("netmask", "255.255.255.0"),
                ("startip", "203.0.113.30"),
                ("endip", "203.0.113.40"),
            ],
            vec![
                ("gateway", "203.0.113.1"),
                ("netmask", "255.0.255.0"),
                ("startip", "203.0.113.30"),
            ],
            // The same subnet on another VLAN.
            with(range("203.0.113.30", "203.0.113.40"), &[("vlan", "100")]),
        ] {
            let mut q = bad.clone();
            q.push(("physicalnetworkid", pn_ref));
            let (code, text) = refused(&admin, "createVlanIpRange", &q).await;
            assert_eq!(code, 431, "{bad:?}: {text}");
        }
        let (code, text) = refused(
            &admin,
            "createVlanIpRange",
            &range("203.0.113.30", "203.0.113.40"),
        )
        .await;
        assert_eq!(code, 431, "zone or physical network needed: {text}");
        let mut q = range("203.0.113.30", "203.0.113.40");
        q.push(("zoneid", BOGUS));
        assert_eq!(refused(&admin, "createVlanIpRange", &q).await.0, 431);
        let mut q = range("203.0.113.30", "203.0.113.40");
        q.push(("zoneid", &zone_id));
        assert_eq!(refused(&ruth, "createVlanIpRange", &q).await.0, 432);

        // A tagged range of another subnet, on the explicit physical network;
        // endip defaults to startip. Dedicating it to an account is refused
        // (it was accepted and dropped).
        let tagged_params = [
            ("physicalnetworkid", pn.as_str()),
            ("vlan", "100"),
            ("gateway", "198.51.100.1"),
            ("netmask", "255.255.255.0"),
            ("startip", "198.51.100.50"),
        ];
        let mut dedicated = tagged_params.to_vec();
        dedicated.push(("account", "ignored"));
        let (code, text) = refused(&admin, "createVlanIpRange", &dedicated).await;
        assert_eq!(code, 431);
        assert!(text.contains("Parameter account"), "{text}");
        let tagged = admin.ok("createVlanIpRange", &tagged_params).await;
        let second = id(&tagged, "vlan");
        assert_eq!(tagged["vlan"]["vlan"], "vlan://100");
        assert_eq!(tagged["vlan"]["endip"], "198.51.100.50");
        assert_eq!(tagged["vlan"]["zoneid"], zone_id.as_str());

        let listed = admin.ok("listVlanIpRanges", &[("zoneid", &zone_id)]).await;
        assert_eq!(listed["count"], 2, "{listed}");
        assert_eq!(listed["vlaniprange"].as_array().unwrap().len(), 2);
        let by_vlan = admin
            .ok("listVlanIpRanges", &[("vlan", "vlan://100")])
            .await;
        assert_eq!(by_vlan["count"], 1);
        assert_eq!(by_vlan["vlaniprange"][0]["id"], second.as_str());
        let by_id = admin.ok("listVlanIpRanges", &[("id", &first)]).await;
        assert_eq!(by_id["vlaniprange"][0]["startip"], "203.0.113.10");
        let by_pn = admin
            .ok(
                "listVlanIpRanges",
                &[("physicalnetworkid", &pn), ("page", "2"), ("pagesize", "1")],
            )
            .await;
        assert_eq!(by_pn["count"], 2);
        assert_eq!(by_pn["vlaniprange"].as_array().unwrap().len(), 1);
        let kw = admin.ok("listVlanIpRanges", &[("keyword", "198.51")]).await;
        assert_eq!(kw["count"], 1);
        assert_eq!(refused(&ruth, "listVlanIpRanges", &[]).await.0, 432);
        assert_eq!(
            refused(&admin, "listVlanIpRanges", &[("physicalnetworkid", BOGUS)])
                .await
                .0,
            431
        );

        // A physical network with public ranges cannot go (the job fails, 536).
        let failed = run_job(&admin, "deletePhysicalNetwork", &[("id", &pn)]).await;
        assert_eq!(failed["jobstatus"], 2, "{failed}");
        assert_eq!(failed["jobresultcode"], 536);
        assert_eq!(failed["jobresult"]["errorcode"], 536);

        // A range with an allocated address cannot go either. No command
        // allocates addresses yet, so take one through the store.
        let db = Db::connect(url).await.expect("open the manager's store");
        let root = domain::root(&db).await.unwrap();
        let owner = account::get_by_name(&db, root.id, "admin")
            .await
            .unwrap()
            .unwrap();
        let z = zone::get_by_uuid(&db, zone_id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let ip = vlan::allocate_ip(
            &db,
            z.id,
            Some("203.0.113.15".parse().unwrap()),
            vlan::IpOwner {
                account_id: owner.id,
                domain_id: root.id,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .expect("a free address");
        let (code, text) = refused(&admin, "deleteVlanIpRange", &[("id", &first)]).await;
        assert_eq!(code, 536, "{text}");
        vlan::release_ip(&db, ip.id).await.unwrap();

        assert_eq!(
            refused(&ruth, "deleteVlanIpRange", &[("id", &first)])
                .await
                .0,
            432
        );
        assert_eq!(
            refused(&admin, "deleteVlanIpRange", &[("id", BOGUS)])
                .await
                .0,
            431
        );
        let gone = admin.ok("deleteVlanIpRange", &[("id", &first)]).await;
        assert_eq!(gone["success"], true, "{gone}");
        assert_eq!(
            refused(&admin, "deleteVlanIpRange", &[("id", &first)])
                .await
                .0,
            431
        );
        // Its addresses are free for a new range again.
        let mut p = range("203.0.113.10", "203.0.113.12");
        p.push(("zoneid", &zone_id));
        let again = id(&admin.ok("createVlanIpRange", &p).await, "vlan");
        for r in [&again, &second] {
            admin.ok("deleteVlanIpRange", &[("id", r)]).await;
        }
        assert_eq!(
            admin.ok("listVlanIpRanges", &[]).await,
            serde_json::json!({})
        );
        job_ok(&admin, "deletePhysicalNetwork", &[("id", &pn)]).await;
        db.close().await;
    }
);

on_both_backends!(offerings_are_listed_for_every_role, |m, url| {
    let admin = m.admin();
    let ruth = user(&admin, "ofu").await;

    for client in [&admin, &ruth] {
        let vpc = client.ok("listVPCOfferings", &[]).await;
        assert!(vpc["count"].as_u64().unwrap() >= 1, "{vpc}");
        let default = vpc["vpcoffering"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "Default VPC offering")
            .unwrap_or_else(|| panic!("no default VPC offering: {vpc}"));
        assert_eq!(default["isdefault"], true);
        assert_eq!(default["state"], "Enabled");
        assert_eq!(default["distributedvpcrouter"], false);
        assert_eq!(default["supportsregionLevelvpc"], false);
        assert!(default["created"].is_string());
        let services: Vec<&str> = default["service"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        for s in [
            "Dhcp",
            "Dns",
            "SourceNat",
            "StaticNat",
            "PortForwarding",
            "Lb",
            "NetworkACL",
            "UserData",
            "Vpn",
        ] {
            assert!(services.contains(&s), "{s} in {services:?}");
        }
        assert_eq!(
            default["service"][0]["provider"][0]["name"],
            "VpcVirtualRouter"
        );
    }
    let vpc_id =
        admin.ok("listVPCOfferings", &[("isdefault", "true")]).await["vpcoffering"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
    let by_id = ruth.ok("listVPCOfferings", &[("id", &vpc_id)]).await;
    assert_eq!(by_id["count"], 1);
    let by_service = admin
        .ok(
            "listVPCOfferings",
            &[("supportedservices", "sourcenat,NetworkACL")],
        )
        .await;
    assert_eq!(by_service["count"], 1);
    assert_eq!(
        admin
            .ok("listVPCOfferings", &[("supportedservices", "Firewall")])
            .await,
        serde_json::json!({})
    );
    assert_eq!(
        admin.ok("listVPCOfferings", &[("state", "Disabled")]).await,
        serde_json::json!({})
    );
    assert_eq!(
        admin
            .ok("listVPCOfferings", &[("keyword", "default vpc")])
            .await["count"],
        1
    );
    assert_eq!(
        refused(&ruth, "listVPCOfferings", &[("id", "nope")])
            .await
            .0,
        431
    );
    assert_eq!(
        refused(&ruth, "listVPCOfferings", &[("state", "Weird")])
            .await
            .0,
        431
    );

    let tiers = ruth.ok("listNetworkOfferings", &[("forvpc", "true")]).await;
    let names: Vec<&str> = tiers["networkoffering"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"DefaultIsolatedNetworkOfferingForVpcNetworks"),
        "{names:?}"
    );
    let tier = tiers["networkoffering"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "DefaultIsolatedNetworkOfferingForVpcNetworks")
        .unwrap();
    assert_eq!(tier["forvpc"], true);
    assert_eq!(tier["traffictype"], "Guest");
    assert_eq!(tier["guestiptype"], "Isolated");
    assert_eq!(tier["state"], "Enabled");
    assert_eq!(tier["specifyvlan"], false);
    assert!(tier["conservemode"].is_boolean() && tier["egressdefaultpolicy"].is_boolean());
    assert!(tier.get("networkrate").is_none());
    assert!(tier["created"].is_string());
    assert_eq!(
        tier["service"][0]["provider"][0]["name"],
        "VpcVirtualRouter"
    );
    let no_lb = admin
        .ok(
            "listNetworkOfferings",
            &[("forvpc", "true"), ("supportedservices", "Lb")],
        )
        .await;
    assert_eq!(no_lb["count"], 1, "the NoLB offering lacks Lb: {no_lb}");
    let paged = admin
        .ok(
            "listNetworkOfferings",
            &[("forvpc", "true"), ("page", "2"), ("pagesize", "1")],
        )
        .await;
    assert_eq!(paged["count"], tiers["count"]);
    assert_eq!(paged["networkoffering"].as_array().unwrap().len(), 1);
    assert_eq!(
        admin
            .ok("listNetworkOfferings", &[("forvpc", "false")])
            .await,
        serde_json::json!({}),
        "no offering outside VPCs yet"
    );
    assert_eq!(
        admin
            .ok("listNetworkOfferings", &[("guestiptype", "Shared")])
            .await,
        serde_json::json!({})
    );
    let by_name = admin
        .ok(
            "listNetworkOfferings",
            &[("name", "DefaultIsolatedNetworkOfferingForVpcNetworksNoLB")],
        )
        .await;
    assert_eq!(by_name["count"], 1);
    assert_eq!(
        refused(&ruth, "listNetworkOfferings", &[("id", "42")])
            .await
            .0,
        431
    );
    assert_eq!(
        refused(&ruth, "listNetworkOfferings", &[("page", "1")])
            .await
            .0,
        431,
        "page without pagesize"
    );
    let _ = url;
});

on_both_backends!(list_apis_describes_the_new_commands, |m, url| {
    let apis = m.admin().ok("listApis", &[]).await;
    let all = apis["api"].as_array().unwrap();
    for name in [
        "createPhysicalNetwork",
        "listPhysicalNetworks",
        "updatePhysicalNetwork",
        "deletePhysicalNetwork",
        "addTrafficType",
        "listTrafficTypes",
        "createVlanIpRange",
        "listVlanIpRanges",
        "deleteVlanIpRange",
        "listNetworkOfferings",
        "listVPCOfferings",
    ] {
        let api = all
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in listApis"));
        let is_async = [
            "createPhysicalNetwork",
            "updatePhysicalNetwork",
            "deletePhysicalNetwork",
            "addTrafficType",
        ]
        .contains(&name);
        assert_eq!(api["isasync"], is_async, "{name}");
        for p in api["params"].as_array().unwrap() {
            assert!(!p["description"].as_str().unwrap().is_empty(), "{api}");
        }
    }
    let user = user(&m.admin(), "lau").await;
    let seen = user.ok("listApis", &[]).await;
    let names: Vec<&str> = seen["api"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"listVPCOfferings") && names.contains(&"listNetworkOfferings"));
    assert!(!names.contains(&"createVlanIpRange") && !names.contains(&"listPhysicalNetworks"));
    let _ = url;
});
