//! `customjobid` of async commands works as in CloudStack: any caller may
//! choose the id of the job it starts, a lower-case UUID no job has yet;
//! a malformed or taken id gets CloudStack's 431 before anything changes.

use crate::support::api::{Client, id, job_ok, on_both_backends, refused};
use crate::support::vpc::{account_in, create_vpc, zone_env};

async fn vpc_count(client: &Client) -> u64 {
    client.ok("listVPCs", &[]).await["count"]
        .as_u64()
        .unwrap_or(0)
}

on_both_backends!(customjobid_names_the_job_once_and_is_checked_first, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "cjz").await;
    let domain = id(
        &admin.ok("createDomain", &[("name", "cjd")]).await,
        "domain",
    );
    let user = account_in(&admin, "cju", &domain, "0").await;
    let chosen = "5d0c6f0e-4b7a-4c1e-9f3a-0a1b2c3d4e5f";
    let create = |name: &'static str, cidr: &'static str, job: &'static str| {
        vec![
            ("name", name),
            ("cidr", cidr),
            ("zoneid", env.zone.as_str()),
            ("vpcofferingid", env.vpc_offering.as_str()),
            ("customjobid", job),
        ]
    };
    // A user's createVPC (async-create) runs as the job it named.
    let started = user
        .ok("createVPC", &create("cj1", "10.81.0.0/16", chosen))
        .await;
    assert_eq!(started["jobid"], chosen, "{started}");
    let done = user.wait_job(chosen).await;
    assert_eq!(done["jobstatus"], 1, "{done}");
    assert_eq!(done["jobresult"]["vpc"]["id"], started["id"]);
    let before = vpc_count(&user).await;

    // Taken (by a finished job, by the caller or anyone): refused before
    // the VPC row is made.
    let (code, text) = refused(&user, "createVPC", &create("cj2", "10.82.0.0/16", chosen)).await;
    assert_eq!(code, 431, "{text}");
    assert_eq!(
        text,
        format!("UUID: {chosen} already exists so can't create/update with custom id")
    );
    let (code, _) = refused(&admin, "createVPC", &create("cj2", "10.82.0.0/16", chosen)).await;
    assert_eq!(code, 431);
    // Not CloudStack's UUID form (upper case, short, not hex).
    for bad in [
        "5D0C6F0E-4B7A-4C1E-9F3A-0A1B2C3D4E5F",
        "5d0c6f0e-4b7a-4c1e-9f3a",
        "job-1",
        "zd0c6f0e-4b7a-4c1e-9f3a-0a1b2c3d4e5f",
    ] {
        let (code, text) = refused(&user, "createVPC", &create("cj3", "10.83.0.0/16", bad)).await;
        assert_eq!(code, 431, "{bad}: {text}");
        assert_eq!(text, format!("UUID: {bad} doesn't follow the UUID format"));
    }
    assert_eq!(vpc_count(&user).await, before, "no VPC was created");

    // Async commands take it too (updateVPC), and a sync command ignores it
    // as CloudStack's sync commands have no such parameter.
    let vpc = create_vpc(&user, &env, "cj4", "10.84.0.0/16").await["id"]
        .as_str()
        .expect("VPC id")
        .to_string();
    let other = "0f9e8d7c-6b5a-4948-8372-615041302010";
    let started = user
        .ok(
            "updateVPC",
            &[("id", &vpc), ("name", "renamed"), ("customjobid", other)],
        )
        .await;
    assert_eq!(started["jobid"], other);
    assert_eq!(user.wait_job(other).await["jobstatus"], 1);
    let listed = user.ok("listVPCs", &[("customjobid", "junk")]).await;
    assert!(listed["count"].as_u64().unwrap_or(0) >= 2, "{listed}");
    // Without it, jobs get ids of their own.
    let done = job_ok(&user, "updateVPC", &[("id", &vpc), ("name", "again")]).await;
    assert_eq!(done["vpc"]["name"], "again");
});
