//! A manager started in-process on a free port, and a small HTTP client that
//! signs requests the way CloudStack clients do.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vpc_manager::api::sign;
use vpc_manager::orchestration::recording::{RecordingAgentClient, RecordingDriver};
use vpc_manager::provision::Backend;
use vpc_manager::serve::Manager;
use vpc_manager::settings::Settings;

/// A running manager and the admin's credentials from its cloudstack.ini.
pub struct TestManager {
    pub addr: SocketAddr,
    pub key: String,
    pub secret: String,
    pub data_dir: tempfile::TempDir,
    /// What the manager's routers were told, in order.
    pub agent: Arc<RecordingAgentClient>,
    /// What the manager asked of the router driver.
    pub driver: Arc<RecordingDriver>,
    /// The running manager's state (store, network, settings), for tests
    /// that call its background tasks directly.
    pub app: Arc<vpc_manager::server::App>,
    database_url: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Writes the suite's database key into `dir` and returns its path. Every
/// test manager seals secrets with this one key, as the managers of one
/// cluster share theirs: a second manager on a database (and the PostgreSQL
/// template the test databases are copied from) must open what the first
/// sealed.
pub fn suite_database_key(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("suite-database.key");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .expect("suite database key");
    // base64 of 32 bytes: "vpc-manager test suite key 32 by".
    file.write_all(b"dnBjLW1hbmFnZXIgdGVzdCBzdWl0ZSBrZXkgMzIgYnk=\n")
        .expect("suite database key");
    path
}

impl TestManager {
    /// Starts a manager on 127.0.0.1 with `database_url` (None: SQLite in
    /// the data directory), with the recording agent and driver.
    pub async fn start(database_url: Option<String>) -> TestManager {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.path().to_path_buf(),
            database_url: database_url.clone(),
            // The recording backend below: ask for the simulation by name.
            driver: vpc_manager::settings::DriverKind::Simulated,
            database_key_file: Some(suite_database_key(data_dir.path())),
            ..Settings::default()
        };
        let agent = Arc::new(RecordingAgentClient::new());
        let driver = Arc::new(RecordingDriver::new());
        let backend = Backend {
            agent: agent.clone(),
            driver: driver.clone(),
            endpoints: Arc::default(),
        };
        let manager = Manager::start_with(settings, backend)
            .await
            .expect("manager starts");
        Self::serve(manager, data_dir, agent, driver, database_url)
    }

    /// Starts a manager with the backend its settings name (`Manager::start`:
    /// the netns driver for end-to-end tests), its data in `data_dir`. The
    /// recording handles stay empty.
    pub async fn start_real(
        settings: Settings,
        data_dir: tempfile::TempDir,
    ) -> (TestManager, Option<vpc_manager::driver::NetnsDriver>) {
        let database_url = settings.database_url.clone();
        let manager = Manager::start(settings).await.expect("manager starts");
        let netns = manager.netns.clone();
        let m = Self::serve(
            manager,
            data_dir,
            Arc::new(RecordingAgentClient::new()),
            Arc::new(RecordingDriver::new()),
            database_url,
        );
        (m, netns)
    }

    fn serve(
        manager: Manager,
        data_dir: tempfile::TempDir,
        agent: Arc<RecordingAgentClient>,
        driver: Arc<RecordingDriver>,
        database_url: Option<String>,
    ) -> TestManager {
        let addr = manager.app.settings.listen;
        let app = manager.app.clone();
        let ini = std::fs::read_to_string(&manager.cloudstack_ini).expect("cloudstack.ini");
        let value = |k: &str| {
            ini.lines()
                .find_map(|l| l.strip_prefix(&format!("{k} = ")))
                .expect("key in cloudstack.ini")
                .to_string()
        };
        let (key, secret) = (value("key"), value("secret"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(manager.serve(async move {
            let _ = stopped.await;
        }));
        TestManager {
            addr,
            key,
            secret,
            data_dir,
            agent,
            driver,
            app,
            database_url,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The URL of the manager's database (its SQLite file unless given).
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            Settings {
                data_dir: self.data_dir.path().to_path_buf(),
                ..Settings::default()
            }
            .database_url()
        })
    }

    /// A client signing with the admin's keys.
    pub fn admin(&self) -> Client {
        Client {
            addr: self.addr,
            key: self.key.clone(),
            secret: self.secret.clone(),
        }
    }

    /// A client signing with other keys.
    pub fn client(&self, key: &str, secret: &str) -> Client {
        Client {
            addr: self.addr,
            key: key.into(),
            secret: secret.into(),
        }
    }

    /// Ends the manager as a kill would: its tasks stop where they are,
    /// nothing is recorded (no job released, no cluster leave).
    #[allow(dead_code)]
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops the server gracefully and hands back its data directory, for
    /// a next manager on the same data.
    pub async fn stop_keeping_data(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server ends cleanly");
        }
        self.data_dir
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server ends cleanly");
        }
    }
}

/// An HTTP response: status, raw headers, body.
pub struct HttpResponse {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one HTTP/1.1 request and reads the whole response.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &str,
    extra_headers: &[(&str, &str)],
) -> HttpResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    for (name, value) in extra_headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    HttpResponse {
        status,
        headers: headers.to_string(),
        body: body.to_string(),
    }
}

/// Encodes pairs as a query string.
pub fn query(pairs: &[(String, String)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// A client with API keys.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub key: String,
    pub secret: String,
}

impl Client {
    /// The signed parameter list of a JSON request.
    pub fn signed(&self, command: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = vec![
            ("command".into(), command.into()),
            ("response".into(), "json".into()),
            ("apiKey".into(), self.key.clone()),
        ];
        pairs.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let signature = sign(&self.secret, &pairs);
        pairs.push(("signature".into(), signature));
        pairs
    }

    /// Calls `command` with GET; returns the status and the JSON body.
    pub async fn call(&self, command: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let target = format!("/client/api?{}", query(&self.signed(command, params)));
        let response = http(self.addr, "GET", &target, "", &[]).await;
        (response.status, response.json())
    }

    /// Calls `command` with POST (the parameters in a form body); returns
    /// the status and the JSON body.
    #[allow(dead_code)]
    pub async fn call_post(&self, command: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let body = query(&self.signed(command, params));
        let response = http(self.addr, "POST", "/client/api", &body, &[]).await;
        (response.status, response.json())
    }

    /// Calls `command` and returns the content of its response envelope,
    /// panicking unless the status is 200.
    pub async fn ok(&self, command: &str, params: &[(&str, &str)]) -> Value {
        let (status, body) = self.call(command, params).await;
        assert_eq!(status, 200, "{command}: {body}");
        let key = format!("{}response", command.to_lowercase());
        body.get(&key)
            .cloned()
            .unwrap_or_else(|| panic!("{command}: no {key} in {body}"))
    }

    /// Polls queryAsyncJobResult until the job ends; returns its body.
    pub async fn wait_job(&self, job_id: &str) -> Value {
        for _ in 0..200 {
            let job = self.ok("queryAsyncJobResult", &[("jobid", job_id)]).await;
            if job["jobstatus"] != 0 {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("job {job_id} did not finish");
    }
}

/// Declares a test whose body runs against a manager on SQLite, then on a
/// fresh database of the shared PostgreSQL test cluster. The `|m, url|` form
/// also gets the manager's database URL, to reach state the API cannot set up.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($name:ident, |$m:ident| $body:block) => {
        $crate::support::api::on_both_backends!($name, |$m, _url| $body);
    };
    ($name:ident, |$m:ident, $url:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            #[allow(unused_variables)]
            async fn body($m: &$crate::support::api::TestManager, $url: &str) $body

            let m = $crate::support::api::TestManager::start(None).await;
            let url = m.database_url();
            eprintln!("--- {} on SQLite", stringify!($name));
            body(&m, &url).await;
            m.stop().await;

            let cluster = tokio::task::spawn_blocking($crate::support::postgres::Cluster::shared)
                .await
                .expect("PostgreSQL test cluster");
            let url = cluster.create_database().await;
            let m = $crate::support::api::TestManager::start(Some(url.clone())).await;
            eprintln!("--- {} on PostgreSQL", stringify!($name));
            body(&m, &url).await;
            m.stop().await;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

/// A well-formed UUID that names nothing.
pub const BOGUS: &str = "6b1e9e5f-1f0e-4d3c-9a55-2f2f7b1a0c11";

/// The `id` of the object under `object` in a response.
pub fn id(v: &Value, object: &str) -> String {
    v[object]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {object}.id in {v}"))
        .to_string()
}

/// The error code and text of a refused call, checking the envelope too.
pub async fn refused(client: &Client, command: &str, params: &[(&str, &str)]) -> (u16, String) {
    let (status, body) = client.call(command, params).await;
    assert_ne!(status, 200, "{command} should be refused: {body}");
    let key = if status == 432 {
        "errorresponse".to_string()
    } else {
        format!("{}response", command.to_lowercase())
    };
    assert_eq!(body[&key]["errorcode"], status, "{body}");
    let text = body[&key]["errortext"].as_str().unwrap_or_default();
    (status, text.to_string())
}

/// Runs an async command to its end; returns the finished job.
pub async fn run_job(admin: &Client, command: &str, params: &[(&str, &str)]) -> Value {
    let started = admin.ok(command, params).await;
    let job_id = started["jobid"]
        .as_str()
        .unwrap_or_else(|| panic!("{command}: no jobid in {started}"));
    admin.wait_job(job_id).await
}

/// Runs an async command that must succeed; returns its job result.
pub async fn job_ok(admin: &Client, command: &str, params: &[(&str, &str)]) -> Value {
    let done = run_job(admin, command, params).await;
    assert_eq!(done["jobstatus"], 1, "{command}: {done}");
    assert_eq!(done["jobresultcode"], 0);
    done["jobresult"].clone()
}
