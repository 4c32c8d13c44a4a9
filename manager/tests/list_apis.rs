//! `listApis` answers exactly what the stored snapshot holds, for each of
//! the three roles: the command set, kinds, parameters (names, types,
//! lengths, whether required), response fields and descriptions are what
//! clients (CloudMonkey's completion, generated SDKs) were built against.
//! A change to any of them is deliberate: regenerate the snapshot with
//! `VPC_UPDATE_SNAPSHOT=1 cargo test -p vpc-manager --test list_apis` and
//! review the diff.

mod support;

use serde_json::Value;
use support::api::{Client, TestManager};
use support::vpc::account_in;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/list_apis.json");

async fn apis(client: &Client) -> Value {
    client.ok("listApis", &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_apis_answers_what_the_snapshot_holds_for_every_role() {
    let m = TestManager::start(None).await;
    let admin = m.admin();
    let d = support::api::id(
        &admin.ok("createDomain", &[("name", "snap")]).await,
        "domain",
    );
    let domain_admin = account_in(&admin, "snapdadmin", &d, "2").await;
    let user = account_in(&admin, "snapuser", &d, "0").await;
    let seen = serde_json::json!({
        "admin": apis(&admin).await,
        "domainadmin": apis(&domain_admin).await,
        "user": apis(&user).await,
    });
    m.stop().await;
    let rendered = serde_json::to_string_pretty(&seen).unwrap() + "\n";
    if std::env::var_os("VPC_UPDATE_SNAPSHOT").is_some() {
        std::fs::write(SNAPSHOT, &rendered).unwrap();
    }
    let stored = std::fs::read_to_string(SNAPSHOT).expect("the listApis snapshot");
    let stored: Value = serde_json::from_str(&stored).unwrap();
    for role in ["admin", "domainadmin", "user"] {
        let (now, then) = (&seen[role]["api"], &stored[role]["api"]);
        let names = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(now), names(then), "{role}: the command set differs");
        for (a, b) in now.as_array().unwrap().iter().zip(then.as_array().unwrap()) {
            assert_eq!(a, b, "{role}: {} differs from the snapshot", a["name"]);
        }
        assert_eq!(seen[role], stored[role], "{role}: the answer differs");
    }
}
