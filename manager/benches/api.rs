//! API benchmark, run with `cargo bench -p vpc-manager --bench api` (or
//! `scripts/bench/api.sh`, as root: the PostgreSQL half starts a throw-away
//! cluster as the `postgres` user).
//!
//! A manager runs in this process on SQLite (a temp dir), then on a fresh
//! PostgreSQL cluster. Against each, with 1 and with 16 concurrent clients over
//! loopback (one HTTP/1.1 connection per request, signed with the admin's API
//! keys, as the integration tests send them), for a measured window after a
//! short warm-up:
//!
//! - signed `listZones` requests per second (one zone exists);
//! - async cycles per second. The VPC async-create commands do not exist yet,
//!   so a cycle is the closest existing pair: `createDomain` (sync) of a new
//!   domain, `deleteDomain` of it (async, answers a `jobid`), then
//!   `queryAsyncJobResult` polled every [`POLL_EVERY`] until the job ends
//!   (a cycle counts only if the job succeeded).
//!
//! The same on PostgreSQL with three managers sharing the database (the
//! clients spread round-robin over them), and the failover time: from the
//! kill of a manager holding a job to the job final on another.
//!
//! The table is printed, and written to `$API_BENCH_REPORT` when set.

#[allow(dead_code)]
#[path = "../tests/support/api.rs"]
mod api;
#[allow(dead_code)]
#[path = "../tests/support/postgres.rs"]
mod postgres;
#[allow(dead_code)]
#[path = "../tests/support/restart.rs"]
mod restart;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use api::{Client, TestManager};

const WARM_UP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(3);
const CLIENTS: [usize; 2] = [1, 16];
const POLL_EVERY: Duration = Duration::from_millis(5);

/// What one measured run saw.
struct Run {
    /// Operations completed inside the measured window.
    done: usize,
    /// Their latencies, sorted.
    latencies: Vec<Duration>,
    /// queryAsyncJobResult calls made by those operations.
    polls: usize,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.done as f64 / MEASURE.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }
}

/// Runs `op` in `clients` concurrent loops for the warm-up and the measured
/// window; `op(client, task)` returns the number of polls it made.
async fn measure<F, Fut>(managers: &[Client], clients: usize, op: F) -> Run
where
    F: Fn(Client, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = usize> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let measured_from = start + WARM_UP;
    let until = measured_from + MEASURE;
    let mut tasks = Vec::new();
    for task in 0..clients {
        let op = op.clone();
        // Client i talks to manager i mod n: requests spread round-robin.
        let client = managers[task % managers.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut polls = 0;
            loop {
                let began = Instant::now();
                if began >= until {
                    break;
                }
                let n = op(client.clone(), task).await;
                let ended = Instant::now();
                if began >= measured_from && ended <= until {
                    latencies.push(ended - began);
                    polls += n;
                }
            }
            (latencies, polls)
        }));
    }
    let mut run = Run {
        done: 0,
        latencies: Vec::new(),
        polls: 0,
    };
    for task in tasks {
        let (latencies, polls) = task.await.expect("benchmark client");
        run.latencies.extend(latencies);
        run.polls += polls;
    }
    run.done = run.latencies.len();
    run.latencies.sort();
    run
}

async fn list_zones(client: Client, _task: usize) -> usize {
    let (status, body) = client.call("listZones", &[]).await;
    assert_eq!(status, 200, "listZones: {body}");
    assert_eq!(body["listzonesresponse"]["count"], 1, "{body}");
    0
}

static DOMAINS: AtomicU64 = AtomicU64::new(0);

/// createDomain, deleteDomain (async), then queryAsyncJobResult until done.
async fn domain_cycle(client: Client, task: usize) -> usize {
    let n = DOMAINS.fetch_add(1, Ordering::Relaxed);
    let name = format!("bench-{task}-{n}");
    let created = client.ok("createDomain", &[("name", &name)]).await;
    let id = created["domain"]["id"]
        .as_str()
        .expect("domain id")
        .to_string();
    let job = client.ok("deleteDomain", &[("id", &id)]).await;
    let job_id = job["jobid"].as_str().expect("jobid").to_string();
    let mut polls = 0;
    loop {
        let result = client
            .ok("queryAsyncJobResult", &[("jobid", &job_id)])
            .await;
        polls += 1;
        match result["jobstatus"].as_i64() {
            Some(0) => tokio::time::sleep(POLL_EVERY).await,
            Some(1) => return polls,
            _ => panic!("deleteDomain job failed: {result}"),
        }
    }
}

/// Both workloads with 1 and 16 clients against the managers (one, or
/// several sharing a database, the clients spread over them); table rows.
async fn bench_backend(backend: &str, ms: &[&TestManager], rows: &mut String) {
    let admin = ms[0].admin();
    let managers: Vec<Client> = ms.iter().map(|m| m.admin()).collect();
    admin
        .ok(
            "createZone",
            &[
                ("name", "bench"),
                ("networktype", "Advanced"),
                ("dns1", "198.51.100.1"),
                ("internaldns1", "198.51.100.2"),
            ],
        )
        .await;
    for clients in CLIENTS {
        let zones = measure(&managers, clients, list_zones).await;
        let cycles = measure(&managers, clients, domain_cycle).await;
        let polls = cycles.polls as f64 / cycles.done.max(1) as f64;
        let row = format!(
            "| {backend} | {clients} | {:.0} | {:.2} / {:.2} | {:.1} | {:.1} / {:.1} | {polls:.2} |",
            zones.per_second(),
            zones.percentile_ms(0.5),
            zones.percentile_ms(0.99),
            cycles.per_second(),
            cycles.percentile_ms(0.5),
            cycles.percentile_ms(0.99),
        );
        eprintln!("{row}");
        writeln!(rows, "{row}").unwrap();
    }
}

/// Two managers on `url` with `threshold` ms; the first holds a planted
/// job (a `deleteDomain`, claimed under its name) when it is killed; how
/// long until the second has made the job final.
async fn failover_once(url: &str, threshold: u64) -> Duration {
    let a = TestManager::start(Some(url.to_string())).await;
    let b = TestManager::start(Some(url.to_string())).await;
    let admin = b.admin();
    for (name, value) in [
        ("cluster.heartbeat.interval", "500".to_string()),
        ("cluster.heartbeat.threshold", threshold.to_string()),
    ] {
        admin
            .ok("updateConfiguration", &[("name", name), ("value", &value)])
            .await;
    }
    let db = vpc_manager::store::Db::connect(url)
        .await
        .expect("database");
    let root = vpc_manager::store::domain::root(&db).await.expect("root");
    let admin_user = vpc_manager::store::user::get_by_username(&db, root.id, "admin")
        .await
        .expect("admin")
        .expect("admin");
    let (job, _) = restart::planted_delete_domain(&db, &admin_user, "failover").await;
    let owner = a.app.jobs.owner().to_string();
    assert!(
        vpc_manager::store::job::claim(&db, job.id, &owner)
            .await
            .expect("claim")
    );
    // Let a beat or two land, then kill it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = Instant::now();
    a.kill().await;
    let id = job.uuid.to_string();
    loop {
        let j = admin.ok("queryAsyncJobResult", &[("jobid", &id)]).await;
        if j["jobstatus"] != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = killed.elapsed();
    db.close().await;
    b.stop().await;
    took
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: then
    // there is nothing to do.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut rows = String::new();

    runtime.block_on(async {
        let m = TestManager::start(None).await;
        bench_backend("SQLite", &[&m], &mut rows).await;
        m.stop().await;
    });

    let cluster = postgres::Cluster::start();
    runtime.block_on(async {
        let url = cluster.create_database().await;
        let m = TestManager::start(Some(url)).await;
        bench_backend("PostgreSQL", &[&m], &mut rows).await;
        m.stop().await;
    });
    let mut failover = String::new();
    runtime.block_on(async {
        let url = cluster.create_database().await;
        let ms = [
            TestManager::start(Some(url.clone())).await,
            TestManager::start(Some(url.clone())).await,
            TestManager::start(Some(url)).await,
        ];
        bench_backend(
            "PostgreSQL, 3 managers",
            &ms.iter().collect::<Vec<_>>(),
            &mut rows,
        )
        .await;
        for m in ms {
            m.stop().await;
        }
        for threshold in [3000, 15_000] {
            let url = cluster.create_database().await;
            let took = failover_once(&url, threshold).await;
            let row = format!("| {threshold} | {:.2} |", took.as_secs_f64());
            eprintln!("{row}");
            writeln!(failover, "{row}").unwrap();
        }
    });
    drop(cluster);

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut report = String::from("# vpc-manager API benchmark\n\n");
    writeln!(
        report,
        "In-process manager, clients over loopback TCP, one HTTP/1.1 connection per \
         request, every request signed with the admin's API keys; {cores} CPU cores shared \
         by server and clients. Each figure: {} s measured after {} ms of warm-up. \
         Latencies are per operation (p50 / p99).\n",
        MEASURE.as_secs(),
        WARM_UP.as_millis()
    )
    .unwrap();
    writeln!(
        report,
        "Async cycle: the VPC async-create commands do not exist yet, so one cycle is \
         `createDomain` (sync) + `deleteDomain` (async) + `queryAsyncJobResult` polled every \
         {} ms until the job succeeds.\n",
        POLL_EVERY.as_millis()
    )
    .unwrap();
    report.push_str(
        "| backend | clients | signed listZones req/s | listZones ms p50 / p99 \
         | async cycles/s (createDomain + deleteDomain + poll) | cycle ms p50 / p99 \
         | polls per cycle |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    report.push_str(&rows);
    report.push_str(
        "\nThe three managers run in this one process, on the same two cores as the \
         clients and PostgreSQL: the rows show what spreading requests costs or saves \
         here, not what three machines would do.\n\n## Failover\n\nTwo managers on one \
         PostgreSQL database (heartbeat every 500 ms); one holds a job in progress and is \
         killed (its tasks stop where they are, it neither leaves nor hands the job back); \
         the time from the kill until the job is final on the other, for two \
         `cluster.heartbeat.threshold` values (15000 is the default):\n\n\
         | threshold ms | kill to job final, s |\n|---:|---:|\n",
    );
    report.push_str(&failover);
    println!("{report}");
    if let Ok(path) = std::env::var("API_BENCH_REPORT") {
        std::fs::write(&path, &report).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }
}
