//! Public IPs of VPCs through the HTTP API, on SQLite and PostgreSQL:
//! associateIpAddress / disassociateIpAddress / listPublicIpAddresses with
//! each rule allowed and refused, the IpAssoc each step sends, failed pushes,
//! ownership, and the refusal of per-address firewall rules.

mod support;

use serde_json::Value;
use support::api::{BOGUS, Client, TestManager, job_ok, on_both_backends, refused, run_job};
use support::vpc::{account_in, create_vpc, user, zone_env};
use vpc_manager::orchestration::{AgentCommand, AgentError};
use vpc_manager::server::command::AsyncCommand;
use vpc_manager::services::ip::{AssociateIpAddress, AssociateIpJob};
use vpc_manager::store::vlan;

/// The addresses a client lists with `params`.
async fn ips(client: &Client, params: &[(&str, &str)]) -> (u64, Vec<Value>) {
    let listed = client.ok("listPublicIpAddresses", params).await;
    let count = listed["count"].as_u64().unwrap_or(0);
    let items = listed["publicipaddress"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    (count, items)
}

/// The last generation the router was sent.
fn last_generation(m: &TestManager) -> u64 {
    m.agent
        .commands()
        .iter()
        .filter_map(AgentCommand::generation)
        .max()
        .expect("the router got commands")
}

/// The only command sent since the last clear, which must be an IpAssoc.
fn only_ip_assoc(m: &TestManager) -> vpc_proto::v1::IpAssocRequest {
    let commands = m.agent.commands();
    assert_eq!(m.agent.rpcs(), ["IpAssoc"], "{commands:?}");
    match &commands[0] {
        AgentCommand::IpAssoc(r) => r.clone(),
        other => panic!("{other:?}"),
    }
}

on_both_backends!(addresses_are_acquired_listed_and_released, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "ipz1").await;
    let ann = user(&admin, "ann").await;
    let bob = user(&admin, "bob").await;
    let vpc = create_vpc(&ann, &env, "ann-vpc", "10.1.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let ann_domain = vpc["domainid"].as_str().unwrap().to_string();

    // The VPC's source NAT address exists from its creation.
    let (count, listed) = ips(&ann, &[("vpcid", &vpc_id)]).await;
    assert_eq!(count, 1, "{listed:?}");
    let snat = listed[0].clone();
    assert_eq!(snat["issourcenat"], true);
    assert_eq!(snat["isstaticnat"], false);
    assert_eq!(snat["vpcid"], vpc_id.as_str());
    assert_eq!(snat["vpcname"], "ann-vpc");
    assert_eq!(snat["state"], "Allocated");
    assert_eq!(snat["zoneid"], env.zone.as_str());
    assert_eq!(snat["account"], "ann");
    assert_eq!(snat["domainid"], ann_domain.as_str());
    assert_eq!(snat["forvirtualnetwork"], true);
    assert!(snat.get("associatednetworkid").is_none(), "{snat}");
    assert!(snat.get("vlanid").is_none(), "users do not see ranges");
    let snat_id = snat["id"].as_str().unwrap().to_string();
    let generation = last_generation(m);
    m.agent.clear();

    // associateIpAddress: the address belongs to the VPC, not to a tier, and
    // the router gets one IpAssoc with the next generation.
    let started = ann.ok("associateIpAddress", &[("vpcid", &vpc_id)]).await;
    let new_id = started["id"].as_str().unwrap().to_string();
    let done = ann.wait_job(started["jobid"].as_str().unwrap()).await;
    assert_eq!(done["jobstatus"], 1, "{done}");
    assert_eq!(done["jobinstancetype"], "IpAddress");
    assert_eq!(done["jobinstanceid"], new_id.as_str());
    let ip = done["jobresult"]["ipaddress"].clone();
    assert_eq!(ip["id"], new_id.as_str());
    assert_eq!(ip["issourcenat"], false);
    assert_eq!(ip["vpcid"], vpc_id.as_str());
    assert_eq!(ip["state"], "Allocated");
    assert_eq!(ip["hasrules"], false);
    assert!(ip.get("associatednetworkid").is_none(), "{ip}");
    let address = ip["ipaddress"].as_str().unwrap().to_string();
    let assoc = only_ip_assoc(m);
    assert_eq!(assoc.generation, generation + 1);
    assert_eq!(assoc.ips.len(), 1);
    let sent = &assoc.ips[0];
    assert!(sent.add);
    assert_eq!(sent.ip_address, address);
    assert!(!sent.source_nat);
    assert_eq!(sent.prefix_length, 24);
    assert_eq!(sent.gateway, "203.0.113.1");
    m.agent.clear();

    // A specific address; the same one again is not free.
    let chosen = job_ok(
        &ann,
        "associateIpAddress",
        &[("vpcid", &vpc_id), ("ipaddress", "203.0.113.50")],
    )
    .await["ipaddress"]
        .clone();
    assert_eq!(chosen["ipaddress"], "203.0.113.50");
    assert_eq!(only_ip_assoc(m).generation, generation + 2);
    let (code, text) = refused(
        &ann,
        "associateIpAddress",
        &[("vpcid", &vpc_id), ("ipaddress", "203.0.113.50")],
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("203.0.113.50 is not a free"), "{text}");

    // Refusals: no VPC named, unknown ids, another account's VPC, a zone
    // that is not the VPC's.
    let (code, text) = refused(&ann, "associateIpAddress", &[]).await;
    assert_eq!(code, 431);
    assert!(text.contains("vpcid is required"), "{text}");
    let (code, text) = refused(&ann, "associateIpAddress", &[("vpcid", BOGUS)]).await;
    assert_eq!(code, 431);
    assert!(
        text.starts_with(&format!("Invalid parameter vpcid value={BOGUS}")),
        "{text}"
    );
    let (code, _) = refused(&bob, "associateIpAddress", &[("vpcid", &vpc_id)]).await;
    assert_eq!(code, 531);
    let (code, text) = refused(
        &ann,
        "associateIpAddress",
        &[("vpcid", &vpc_id), ("zoneid", BOGUS)],
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("zoneid"), "{text}");
    let (code, text) = refused(
        &ann,
        "associateIpAddress",
        &[("vpcid", &vpc_id), ("ipaddress", "not-an-ip")],
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("ipaddress"), "{text}");

    // The public_ip resource limit (type 1): ann holds 3 addresses.
    admin
        .ok(
            "updateResourceLimit",
            &[
                ("resourcetype", "1"),
                ("max", "3"),
                ("account", "ann"),
                ("domainid", &ann_domain),
            ],
        )
        .await;
    let (code, text) = refused(&ann, "associateIpAddress", &[("vpcid", &vpc_id)]).await;
    assert_eq!(code, 535);
    assert!(text.contains("Type = 'public_ip'"), "{text}");
    admin
        .ok(
            "updateResourceLimit",
            &[
                ("resourcetype", "1"),
                ("max", "-1"),
                ("account", "ann"),
                ("domainid", &ann_domain),
            ],
        )
        .await;

    // Lists: filters, paging, ownership.
    assert_eq!(ips(&ann, &[("vpcid", &vpc_id)]).await.0, 3);
    let (count, only) = ips(&ann, &[("issourcenat", "true")]).await;
    assert_eq!((count, only[0]["id"].as_str()), (1, Some(snat_id.as_str())));
    assert_eq!(ips(&ann, &[("isstaticnat", "true")]).await.0, 0);
    assert_eq!(ips(&ann, &[("ipaddress", &address)]).await.0, 1);
    let (count, one) = ips(&ann, &[("id", &new_id)]).await;
    assert_eq!(
        (count, one[0]["ipaddress"].as_str()),
        (1, Some(address.as_str()))
    );
    let (count, page) = ips(&ann, &[("page", "2"), ("pagesize", "2")]).await;
    assert_eq!((count, page.len()), (3, 1));
    let (status, empty) = bob.call("listPublicIpAddresses", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        empty["listpublicipaddressesresponse"],
        serde_json::json!({})
    );
    let (code, _) = refused(&bob, "listPublicIpAddresses", &[("vpcid", &vpc_id)]).await;
    assert_eq!(code, 531);
    // The admin sees ann's addresses with listall, and the zone's free ones
    // with allocatedonly=false (203.0.113.10-60: 51 addresses in all).
    let (count, all) = ips(&admin, &[("listall", "true"), ("vpcid", &vpc_id)]).await;
    assert_eq!(count, 3);
    assert!(all[0].get("vlanid").is_some(), "admins see the range");
    let (count, _) = ips(
        &admin,
        &[
            ("listall", "true"),
            ("zoneid", &env.zone),
            ("allocatedonly", "false"),
        ],
    )
    .await;
    assert_eq!(count, 51);
    // A domain admin of ann's domain sees them too; one of another does not.
    let ann_admin = account_in(&admin, "ann-admin", &ann_domain, "2").await;
    assert_eq!(ips(&ann_admin, &[("listall", "true")]).await.0, 3);
    let bob_vpc = create_vpc(&bob, &env, "bob-vpc", "10.2.0.0/16").await;
    let bob_domain = bob_vpc["domainid"].as_str().unwrap().to_string();
    let bob_admin = account_in(&admin, "bob-admin", &bob_domain, "2").await;
    assert_eq!(ips(&bob_admin, &[("listall", "true")]).await.0, 1);

    // disassociateIpAddress refusals.
    let (code, text) = refused(&ann, "disassociateIpAddress", &[("id", &snat_id)]).await;
    assert_eq!(code, 431);
    assert!(
        text.contains("is used for source nat purposes and can not be disassociated"),
        "{text}"
    );
    let (code, text) = refused(&ann, "disassociateIpAddress", &[]).await;
    assert_eq!(code, 431);
    assert!(text.contains("Either id or ipaddress"), "{text}");
    let (code, text) = refused(
        &ann,
        "disassociateIpAddress",
        &[("id", &new_id), ("ipaddress", &address)],
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.contains("mutually exclusive"), "{text}");
    let (code, text) = refused(&ann, "disassociateIpAddress", &[("id", BOGUS)]).await;
    assert_eq!(code, 431);
    assert!(text.starts_with("Invalid parameter id value="), "{text}");
    let (code, _) = refused(&bob, "disassociateIpAddress", &[("id", &new_id)]).await;
    assert_eq!(code, 531);

    // Released by address: IpAssoc add=false, and the address is free.
    m.agent.clear();
    let done = job_ok(&ann, "disassociateIpAddress", &[("ipaddress", &address)]).await;
    assert_eq!(done["success"], true);
    let assoc = only_ip_assoc(m);
    assert_eq!(assoc.generation, generation + 3);
    assert!(!assoc.ips[0].add);
    assert_eq!(assoc.ips[0].ip_address, address);
    assert_eq!(ips(&ann, &[("vpcid", &vpc_id)]).await.0, 2);
    let (code, _) = refused(&ann, "disassociateIpAddress", &[("id", &new_id)]).await;
    assert_eq!(code, 431, "a released address is unknown to its old owner");

    // The router refuses an association: the job fails and the address goes
    // back to the pool.
    m.agent
        .fail("IpAssoc", AgentError::Failed("no such device".into()));
    let failed = run_job(&ann, "associateIpAddress", &[("vpcid", &vpc_id)]).await;
    assert_eq!(failed["jobstatus"], 2, "{failed}");
    assert_eq!(failed["jobresultcode"], 530);
    let text = failed["jobresult"]["errortext"].as_str().unwrap();
    assert!(text.contains("IpAssoc"), "{text}");
    assert_eq!(ips(&ann, &[("vpcid", &vpc_id)]).await.0, 2);

    // A failed release leaves the address Releasing (never handed out); a
    // second release finishes it.
    let failed = run_job(
        &ann,
        "disassociateIpAddress",
        &[("id", chosen["id"].as_str().unwrap())],
    )
    .await;
    assert_eq!(failed["jobstatus"], 2, "{failed}");
    assert_eq!(failed["jobresultcode"], 530);
    let (_, left) = ips(&ann, &[("ipaddress", "203.0.113.50")]).await;
    assert_eq!(left[0]["state"], "Releasing");
    m.agent.unfail("IpAssoc");
    job_ok(
        &ann,
        "disassociateIpAddress",
        &[("ipaddress", "203.0.113.50")],
    )
    .await;
    assert_eq!(ips(&ann, &[("vpcid", &vpc_id)]).await.0, 1);
    let again = job_ok(&ann, "associateIpAddress", &[("vpcid", &vpc_id)]).await;
    assert_eq!(again["ipaddress"]["state"], "Allocated");
});

on_both_backends!(vpc_addresses_take_no_firewall_rules, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "ipz2").await;
    let cid = user(&admin, "cid").await;
    let dan = user(&admin, "dan").await;
    let vpc = create_vpc(&cid, &env, "cid-vpc", "10.3.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let ip = job_ok(&cid, "associateIpAddress", &[("vpcid", &vpc_id)]).await["ipaddress"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    m.agent.clear();

    let rule = [
        ("ipaddressid", ip.as_str()),
        ("protocol", "tcp"),
        ("startport", "22"),
        ("endport", "22"),
        ("cidrlist", "0.0.0.0/0"),
    ];
    let (code, text) = refused(&cid, "createFirewallRule", &rule).await;
    assert_eq!(code, 431);
    assert!(text.contains("VPC tiers use network ACLs"), "{text}");
    assert!(text.contains("createNetworkACL"), "{text}");
    let (code, text) = refused(
        &cid,
        "createFirewallRule",
        &[("ipaddressid", BOGUS), ("protocol", "tcp")],
    )
    .await;
    assert_eq!(code, 431);
    assert!(text.starts_with("Invalid parameter ipaddressid"), "{text}");
    let (code, _) = refused(&dan, "createFirewallRule", &rule).await;
    assert_eq!(code, 531);
    let (code, text) = refused(&cid, "createFirewallRule", &[("ipaddressid", &ip)]).await;
    assert_eq!(code, 431);
    assert!(text.contains("missing parameter protocol"), "{text}");

    // Listing answers an empty list (there can be none); unknown ids are
    // refused as everywhere.
    let (status, body) = cid.call("listFirewallRules", &[("ipaddressid", &ip)]).await;
    assert_eq!(status, 200);
    assert_eq!(body["listfirewallrulesresponse"], serde_json::json!({}));
    let (code, _) = refused(&cid, "listFirewallRules", &[("ipaddressid", BOGUS)]).await;
    assert_eq!(code, 431);
    let (code, text) = refused(&cid, "deleteFirewallRule", &[("id", BOGUS)]).await;
    assert_eq!(code, 431);
    assert!(text.starts_with("Invalid parameter id value="), "{text}");
    assert!(m.agent.commands().is_empty(), "nothing reached the router");
});

// A job whose manager died is failed at the next start and its command's
// `abandon` runs: an acquisition then ends as a refused one does, and the
// router, which may already hold the address, gets its whole state again.
on_both_backends!(
    an_abandoned_acquisition_gives_the_address_back_and_resyncs_the_router,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "ipz3").await;
        let ann = user(&admin, "ann").await;
        let vpc = create_vpc(&ann, &env, "ann-vpc", "10.1.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        let ip =
            job_ok(&ann, "associateIpAddress", &[("vpcid", &vpc_id)]).await["ipaddress"].clone();
        let address = ip["ipaddress"].as_str().unwrap().to_string();
        let row = vlan::ip_by_uuid(&m.app.db, ip["id"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ips(&ann, &[("vpcid", &vpc_id)]).await.0, 2);
        let generation = last_generation(m);
        m.agent.clear();

        let job = AssociateIpJob {
            ip: row.id,
            vpc: row.vpc_id.unwrap(),
            source_nat: false,
            allocated: row.allocated,
        };
        AssociateIpAddress::abandon(&m.app, job).await.unwrap();

        let (count, left) = ips(&ann, &[("vpcid", &vpc_id)]).await;
        assert_eq!(count, 1, "{left:?}");
        assert_eq!(left[0]["issourcenat"], true, "the source NAT address stays");
        assert_eq!(m.agent.rpcs(), ["ApplyConfig"]);
        let AgentCommand::ApplyConfig(sent) = m.agent.commands().remove(0) else {
            unreachable!("the rpc names say ApplyConfig")
        };
        assert!(
            sent.generation > generation,
            "{} <= {generation}",
            sent.generation
        );
        let config = sent.config.unwrap();
        let held: Vec<&str> = config
            .public_ips
            .iter()
            .map(|p| p.ip_address.as_str())
            .collect();
        assert!(!held.contains(&address.as_str()), "{held:?}");
        assert_eq!(held.len(), 1, "{held:?}");

        // The address is free: it can be acquired again.
        let again = job_ok(
            &ann,
            "associateIpAddress",
            &[("vpcid", &vpc_id), ("ipaddress", &address)],
        )
        .await;
        assert_eq!(again["ipaddress"]["ipaddress"], address.as_str());
    }
);
