//! Jobs of the physical network and offering commands across a manager
//! restart: a job row stored by the previous version (its JSON keys) still
//! runs; an async-create job its manager died running runs again at the
//! next start (the row its request made is kept and answered).

mod support;

use serde_json::json;
use support::api::TestManager;
use support::restart::{DeadManager, dead_manager};
use vpc_manager::server::jobs::ABANDONED;
use vpc_manager::store::{Db, job, offering, user, zone};

/// A job row as a previous manager stored it.
async fn stored_job(
    db: &Db,
    admin: &user::User,
    cmd: &str,
    info: serde_json::Value,
    instance: (&str, uuid::Uuid),
    sync_object: String,
) -> job::Job {
    job::insert(
        db,
        job::NewJob {
            user_id: admin.id,
            account_id: admin.account_id,
            cmd: cmd.into(),
            cmd_info: info.to_string(),
            instance_type: Some(instance.0.into()),
            instance_uuid: Some(instance.1),
            sync_object: Some(sync_object),
            uuid: None,
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_jobs_run_and_crashed_creations_run_again() {
    let DeadManager {
        dir,
        settings,
        db,
        admin,
    } = dead_manager().await;
    let z = zone::create(
        &db,
        zone::NewZone {
            name: "lab".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    // Rows that async-create requests made, whose jobs were running on this
    // manager when it died.
    let crashed_pn = zone::create_physical_network(&db, z.id, "crashed", "VLAN", None, &[])
        .await
        .unwrap();
    let crashed_offering = offering::create_vpc_offering(
        &db,
        offering::NewVpcOffering {
            name: "crashed".into(),
            unique_name: None,
            display_text: "crashed".into(),
            state: offering::STATE_DISABLED.into(),
            is_default: false,
            distributed_router: false,
            redundant_router: false,
            network_mode: "NATTED".into(),
            internet_protocol: "ipv4".into(),
            services: vec![offering::ServiceProvider::new(
                "SourceNat",
                offering::PROVIDER_VPC_VIRTUAL_ROUTER,
            )],
        },
    )
    .await
    .unwrap();
    let crashed = [
        stored_job(
            &db,
            &admin,
            "createPhysicalNetwork",
            json!({ "id": crashed_pn.id }),
            ("PhysicalNetwork", crashed_pn.uuid),
            format!("physicalnetwork:{}", crashed_pn.id),
        )
        .await,
        stored_job(
            &db,
            &admin,
            "createVPCOffering",
            json!({ "id": crashed_offering.id }),
            ("VpcOffering", crashed_offering.uuid),
            format!("vpcoffering:{}", crashed_offering.id),
        )
        .await,
    ];
    for j in &crashed {
        assert!(job::claim(&db, j.id, "manager-1").await.unwrap());
    }

    // Jobs given back at a graceful shutdown (pending, no owner), with the
    // keys the previous version wrote.
    let kept = zone::create_physical_network(&db, z.id, "kept", "VLAN", None, &[])
        .await
        .unwrap();
    let add_traffic = stored_job(
        &db,
        &admin,
        "addTrafficType",
        json!({ "physical_network_id": kept.id, "traffic_type": "Public", "label": "br-pub" }),
        ("PhysicalNetwork", kept.uuid),
        format!("physicalnetwork:{}", kept.id),
    )
    .await;
    let update_pn = stored_job(
        &db,
        &admin,
        "updatePhysicalNetwork",
        json!({ "id": kept.id, "vnet_range": "100-199", "state": null }),
        ("PhysicalNetwork", kept.uuid),
        format!("physicalnetwork:{}", kept.id),
    )
    .await;
    let default_offering = offering::list_vpc_offerings(
        &db,
        &offering::OfferingFilter {
            is_default: Some(true),
            ..Default::default()
        },
        vpc_manager::store::Page::ALL,
    )
    .await
    .unwrap()
    .items
    .into_iter()
    .next()
    .unwrap();
    let update_offering = stored_job(
        &db,
        &admin,
        "updateVPCOffering",
        json!({
            "id": default_offering.id,
            "name": null,
            "displaytext": "renamed by a stored job",
            "state": null,
            "sortkey": 7,
        }),
        ("VpcOffering", default_offering.uuid),
        format!("vpcoffering:{}", default_offering.id),
    )
    .await;
    db.close().await;

    let (second, _) = TestManager::start_real(settings, dir).await;
    let client = second.admin();

    let mut answered = Vec::new();
    for j in &crashed {
        let done = client.wait_job(&j.uuid.to_string()).await;
        assert_eq!(done["jobstatus"], 1, "run again: {done}");
        assert_ne!(done["jobresult"]["errortext"], ABANDONED);
        answered.push(done);
    }
    assert_eq!(
        answered[0]["jobresult"]["physicalnetwork"]["name"], "crashed",
        "{}",
        answered[0]
    );
    assert_eq!(
        answered[1]["jobresult"]["vpcoffering"]["name"], "crashed",
        "{}",
        answered[1]
    );
    let physnets = client
        .ok(
            "listPhysicalNetworks",
            &[("zoneid", z.uuid.to_string().as_str())],
        )
        .await;
    let mut names: Vec<&str> = physnets["physicalnetwork"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["crashed", "kept"],
        "the crashed creation's row is kept: {physnets}"
    );

    let added = client.wait_job(&add_traffic.uuid.to_string()).await;
    assert_eq!(added["jobstatus"], 1, "{added}");
    assert_eq!(added["jobresult"]["traffictype"]["traffictype"], "Public");
    assert_eq!(
        added["jobresult"]["traffictype"]["kvmnetworklabel"],
        "br-pub"
    );
    let updated = client.wait_job(&update_pn.uuid.to_string()).await;
    assert_eq!(updated["jobstatus"], 1, "{updated}");
    assert_eq!(updated["jobresult"]["physicalnetwork"]["vlan"], "100-199");
    let renamed = client.wait_job(&update_offering.uuid.to_string()).await;
    assert_eq!(renamed["jobstatus"], 1, "{renamed}");
    assert_eq!(
        renamed["jobresult"]["vpcoffering"]["displaytext"],
        "renamed by a stored job"
    );
    assert_eq!(
        renamed["jobresult"]["vpcoffering"]["name"],
        default_offering.name.as_str()
    );

    second.stop().await;
}
