//! Resource limits hold under parallel requests (one manager, and two
//! managers on one PostgreSQL database), domain limits and the network
//! (tier), CPU and memory limits are enforced, and parallel auto-numbered ACL items get
//! distinct numbers.

use serde_json::Value;

use crate::support::api::{Client, TestManager, id, job_ok, on_both_backends, refused};
use crate::support::vpc::{
    Env, SMALL, account_in, create_tier, create_vpc, deploy_vm, vm_params, zone_env,
};

/// Sets limit `max` of resource type `code` on account `name` of `domain`.
async fn account_limit(admin: &Client, name: &str, domain: &str, code: &str, max: &str) {
    admin
        .ok(
            "updateResourceLimit",
            &[
                ("account", name),
                ("domainid", domain),
                ("resourcetype", code),
                ("max", max),
            ],
        )
        .await;
}

fn vpc_params<'a>(env: &'a Env, name: &'a str, cidr: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("displaytext", name),
        ("cidr", cidr),
        ("zoneid", &env.zone),
        ("vpcofferingid", &env.vpc_offering),
    ]
}

/// Sends 16 createVPC at once (alternating between `clients`), waits for
/// the accepted ones' jobs; returns how many jobs succeeded and the texts of
/// the refusals.
async fn sixteen_vpcs(clients: &[Client], env: &Env) -> (usize, Vec<String>) {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..16 {
        let client = clients[i % clients.len()].clone();
        let env = env.clone();
        set.spawn(async move {
            let (name, cidr) = (format!("par{i}"), format!("10.{}.0.0/16", 100 + i));
            let (status, body) = client
                .call("createVPC", &vpc_params(&env, &name, &cidr))
                .await;
            if status != 200 {
                return Err(body["createvpcresponse"].clone());
            }
            let job = body["createvpcresponse"]["jobid"]
                .as_str()
                .expect("jobid")
                .to_string();
            Ok(client.wait_job(&job).await)
        });
    }
    let (mut done, mut refused) = (0, Vec::new());
    while let Some(joined) = set.join_next().await {
        match joined.expect("request task") {
            Ok(job) => {
                assert_eq!(job["jobstatus"], 1, "an accepted VPC's job: {job}");
                done += 1;
            }
            Err(error) => {
                assert_eq!(error["errorcode"], 535, "{error}");
                refused.push(error["errortext"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    (done, refused)
}

/// What account `client` holds: VPCs, routers (as the root admin sees
/// them) and public addresses.
async fn holdings(admin: &Client, client: &Client) -> (u64, u64, u64) {
    let count = |v: &Value| v["count"].as_u64().unwrap_or(0);
    let vpcs = count(&client.ok("listVPCs", &[]).await);
    let ips = count(&client.ok("listPublicIpAddresses", &[]).await);
    let routers = admin.ok("listRouters", &[("listall", "true")]).await;
    let account = client.ok("listVPCs", &[]).await["vpc"][0]["account"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let routers = routers["router"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|r| r["account"] == account.as_str())
        .count() as u64;
    (vpcs, routers, ips)
}

on_both_backends!(
    parallel_create_vpc_stops_exactly_at_the_account_limit,
    |m, url| {
        let admin = m.admin();
        let env = zone_env(&admin, "limz").await;
        let domain = id(
            &admin.ok("createDomain", &[("name", "limd")]).await,
            "domain",
        );
        let racer = account_in(&admin, "racer", &domain, "0").await;
        account_limit(&admin, "racer", &domain, "7", "3").await;
        let (done, refused) = sixteen_vpcs(std::slice::from_ref(&racer), &env).await;
        assert_eq!((done, refused.len()), (3, 13), "{refused:?}");
        assert!(
            refused[0].contains("Type = 'vpc'") && refused[0].contains("Resource Limit = 3"),
            "{}",
            refused[0]
        );
        assert_eq!(
            holdings(&admin, &racer).await,
            (3, 3, 3),
            "3 VPCs, each with its router and source NAT address"
        );

        // Two managers on one PostgreSQL database: only the database's lock on
        // the account row keeps them apart.
        if url.starts_with("postgres") {
            let m2 = TestManager::start(Some(url.to_string())).await;
            let other = account_in(&admin, "racer2", &domain, "0").await;
            account_limit(&admin, "racer2", &domain, "7", "3").await;
            let on_m2 = Client {
                addr: m2.addr,
                ..other.clone()
            };
            let (done, refused) = sixteen_vpcs(&[other.clone(), on_m2], &env).await;
            assert_eq!((done, refused.len()), (3, 13), "{refused:?}");
            assert_eq!(holdings(&admin, &other).await, (3, 3, 3));
            m2.stop().await;
        }
    }
);

on_both_backends!(domain_limits_count_every_account_of_the_domain, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "domlz").await;
    let parent = id(
        &admin.ok("createDomain", &[("name", "dlp")]).await,
        "domain",
    );
    let child = id(
        &admin
            .ok(
                "createDomain",
                &[("name", "dlc"), ("parentdomainid", &parent)],
            )
            .await,
        "domain",
    );
    let one = account_in(&admin, "dlone", &parent, "0").await;
    let two = account_in(&admin, "dltwo", &child, "0").await;
    admin
        .ok(
            "updateResourceLimit",
            &[("domainid", &parent), ("resourcetype", "7"), ("max", "2")],
        )
        .await;
    create_vpc(&one, &env, "d1", "10.81.0.0/16").await;
    create_vpc(&two, &env, "d2", "10.82.0.0/16").await;
    // The parent's limit counts the sub-domain's VPCs too.
    for client in [&one, &two] {
        let (status, body) = client
            .call("createVPC", &vpc_params(&env, "d3", "10.83.0.0/16"))
            .await;
        assert_eq!(status, 535, "{body}");
        let text = body["createvpcresponse"]["errortext"]
            .as_str()
            .unwrap_or_default();
        assert!(
            text.contains(&format!("Domain Id = {parent}"))
                && text.contains("Domain Resource Limit = 2"),
            "{text}"
        );
    }
    assert_eq!(one.ok("listVPCs", &[]).await["count"], 1);
});

on_both_backends!(the_network_limit_counts_tiers, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "netlz").await;
    let domain = id(
        &admin.ok("createDomain", &[("name", "netld")]).await,
        "domain",
    );
    let tiers = account_in(&admin, "tiers", &domain, "0").await;
    // Resource type 6 is CloudStack's `network`.
    account_limit(&admin, "tiers", &domain, "6", "1").await;
    let vpc = create_vpc(&tiers, &env, "t", "10.84.0.0/16").await["id"]
        .as_str()
        .expect("VPC id")
        .to_string();
    create_tier(&tiers, &env, &vpc, "t1", "10.84.1.1", "255.255.255.0").await;
    let (status, body) = tiers
        .call(
            "createNetwork",
            &[
                ("name", "t2"),
                ("displaytext", "t2"),
                ("zoneid", &env.zone),
                ("vpcid", &vpc),
                ("networkofferingid", &env.tier_offering),
                ("gateway", "10.84.2.1"),
                ("netmask", "255.255.255.0"),
            ],
        )
        .await;
    assert_eq!(status, 535, "{body}");
    let text = body["createnetworkresponse"]["errortext"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("Type = 'network'"), "{text}");
    assert_eq!(
        tiers.ok("listNetworks", &[("vpcid", &vpc)]).await["count"],
        1
    );
});

on_both_backends!(
    parallel_auto_numbered_acl_items_get_distinct_numbers,
    |m, url| {
        let admin = m.admin();
        let env = zone_env(&admin, "aclnz").await;
        let domain = id(
            &admin.ok("createDomain", &[("name", "aclnd")]).await,
            "domain",
        );
        let owner = account_in(&admin, "numberer", &domain, "0").await;
        let vpc = create_vpc(&owner, &env, "n", "10.85.0.0/16").await["id"]
            .as_str()
            .expect("VPC id")
            .to_string();
        let list = job_ok(
            &owner,
            "createNetworkACLList",
            &[("name", "n"), ("description", "n"), ("vpcid", &vpc)],
        )
        .await["networkacllist"]["id"]
            .as_str()
            .expect("list id")
            .to_string();
        // On PostgreSQL half the requests go to a second manager: only the
        // database's lock on the list keeps the two apart.
        let m2 = if url.starts_with("postgres") {
            Some(TestManager::start(Some(url.to_string())).await)
        } else {
            None
        };
        let mut set = tokio::task::JoinSet::new();
        for port in 0..12 {
            let list = list.clone();
            let owner = match &m2 {
                Some(m2) if port % 2 == 1 => Client {
                    addr: m2.addr,
                    ..owner.clone()
                },
                _ => owner.clone(),
            };
            set.spawn(async move {
                let port = (1000 + port).to_string();
                owner
                    .call(
                        "createNetworkACL",
                        &[("aclid", &list), ("protocol", "tcp"), ("startport", &port)],
                    )
                    .await
            });
        }
        while let Some(joined) = set.join_next().await {
            let (status, body) = joined.expect("request task");
            assert_eq!(status, 200, "{body}");
            let job = body["createnetworkaclresponse"]["jobid"]
                .as_str()
                .expect("jobid");
            assert_eq!(owner.wait_job(job).await["jobstatus"], 1);
        }
        let items = owner.ok("listNetworkACLs", &[("aclid", &list)]).await;
        let mut numbers: Vec<i64> = items["networkacl"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["number"].as_i64().expect("number"))
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=12).collect::<Vec<_>>());
        if let Some(m2) = m2 {
            m2.stop().await;
        }
    }
);

on_both_backends!(cpu_and_memory_limits_count_the_vms_service_offerings, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "cpulz").await;
    let domain = id(
        &admin.ok("createDomain", &[("name", "cpuld")]).await,
        "domain",
    );
    let owner = account_in(&admin, "cpus", &domain, "0").await;
    let small =
        admin.ok("listServiceOfferings", &[("id", SMALL)]).await["serviceoffering"][0].clone();
    let (cpus, memory) = (
        small["cpunumber"].as_i64().expect("cpunumber"),
        small["memory"].as_i64().expect("memory"),
    );
    let vpc = create_vpc(&owner, &env, "c", "10.86.0.0/16").await["id"]
        .as_str()
        .expect("VPC id")
        .to_string();
    let tier = create_tier(&owner, &env, &vpc, "c1", "10.86.1.1", "255.255.255.0").await["id"]
        .as_str()
        .expect("tier id")
        .to_string();
    // Type 8 is CloudStack's `cpu`, 9 its `memory` (MiB).
    account_limit(&admin, "cpus", &domain, "8", &cpus.to_string()).await;
    account_limit(&admin, "cpus", &domain, "9", &(2 * memory - 1).to_string()).await;
    deploy_vm(&owner, &env, &tier, "first").await;
    let (code, text) = refused(
        &owner,
        "deployVirtualMachine",
        &vm_params(&env, &tier, "second"),
    )
    .await;
    assert_eq!(code, 535, "{text}");
    assert!(text.contains("Type = 'cpu'"), "{text}");
    account_limit(&admin, "cpus", &domain, "8", "-1").await;
    let (code, text) = refused(
        &owner,
        "deployVirtualMachine",
        &vm_params(&env, &tier, "second"),
    )
    .await;
    assert_eq!(code, 535, "{text}");
    assert!(text.contains("Type = 'memory'"), "{text}");
    assert_eq!(owner.ok("listVirtualMachines", &[]).await["count"], 1);
});
