//! Helpers for tests that run the real `coflow serve` binary against the in-process sandbox:
//! start and kill processes, send events under load, wait for the queue to drain.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coflow::sandbox::{self, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// A flow that upserts one Opportunity per event, keyed by the event's `id`, and answers the
/// request: the receiving process runs it at once when it has a free slot, else a worker does.
pub const UPSERT: &str = r#"
name: upsert
connections: {sf: salesforce}
trigger: {type: http}
actions:
  Upsert:
    type: salesforce.upsert_record
    connection: sf
    inputs:
      sobject: Opportunity
      external_id_field: Referral_Identifier__c
      external_id: "{{ triggerBody().id }}"
      record: {Name: "{{ triggerBody().name }}", StageName: Prospecting, CloseDate: "2027-01-01"}
  Answer:
    type: response
    status: 200
    body: {run_id: "{{ workflow().run.name }}", opportunity: "{{ body('Upsert').id }}"}
"#;

/// A folder with flows and a connections file pointing at a running sandbox.
pub struct Setup {
    /// The folder (flows in `flows/`, `coflow.yaml`).
    pub dir: PathBuf,
    /// The emulators.
    pub sandbox: Sandbox,
}

impl Setup {
    /// Starts the sandbox and writes `flows` (name, text) and the connections file.
    pub async fn new(flows: &[(&str, &str)]) -> Setup {
        let mut config = SandboxConfig::ephemeral();
        config.daily_api_limit = Some(10_000_000);
        let sandbox = sandbox::start(config).await.unwrap();
        let dir = std::env::temp_dir().join(format!("coflow-process-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(dir.join("flows")).unwrap();
        for (name, text) in flows {
            std::fs::write(dir.join("flows").join(format!("{name}.yaml")), text).unwrap();
        }
        std::fs::write(dir.join("coflow.yaml"), sandbox.connections_yaml()).unwrap();
        Setup { dir, sandbox }
    }

    /// Starts `coflow serve` on `port` with `store` and extra flags; its log goes to `log`.
    pub fn spawn(&self, port: u16, store: &str, extra: &[&str], log: &str) -> Child {
        let log = std::fs::File::create(self.dir.join(log)).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_coflow"));
        command
            .current_dir(&self.dir)
            .args(["serve", "--flows", "flows", "--config", "coflow.yaml", "--store", store])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--workers", "16", "--lease", "3"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log);
        for (name, value) in &self.sandbox.secrets().0 {
            command.env(name, value);
        }
        command.kill_on_drop(true).spawn().unwrap()
    }

    /// Every Opportunity's external id in the Salesforce emulator.
    pub fn opportunity_keys(&self) -> Vec<String> {
        let snapshot = self.sandbox.salesforce.snapshot(false);
        snapshot["Opportunity"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["Referral_Identifier__c"].as_str().map(str::to_string))
            .collect()
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits for `/readyz`.
pub async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await {
            if response.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not become ready");
}

/// What the servers acknowledged: event number -> stored event id.
pub type Acked = Arc<Mutex<HashMap<usize, String>>>;

/// Sends event `n` with its id as the idempotency key, as a webhook sender redelivers it;
/// returns the stored event id once acknowledged.
async fn send(client: &reqwest::Client, base: &str, n: usize) -> Option<String> {
    let id = format!("evt-{n:05}");
    let body = json!({"id": id, "name": format!("Deal {n}")});
    let request = client.post(format!("{base}/hooks/upsert")).header("idempotency-key", &id).json(&body);
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let event = response.headers().get("x-coflow-event-id")?.to_str().ok()?.to_string();
    let _: Value = response.json().await.ok()?;
    Some(event)
}

/// Sends events `numbers` with `senders` concurrent senders, spreading them over `bases`;
/// returns the ones refused or cut off. Once `kill.0` events are acknowledged, kills `kill.1`.
pub async fn send_all(
    client: &reqwest::Client,
    bases: &[String],
    numbers: Vec<usize>,
    senders: usize,
    acked: &Acked,
    kill: Option<(usize, &mut Child)>,
) -> Vec<usize> {
    let queue = Arc::new(Mutex::new(numbers));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for index in 0..senders {
        let base = bases[index % bases.len()].clone();
        let (client, queue, acked, failed) = (client.clone(), queue.clone(), acked.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(n) = queue.lock().unwrap().pop() else { return };
                match send(&client, &base, n).await {
                    Some(event) => {
                        acked.lock().unwrap().insert(n, event);
                    }
                    None => failed.lock().unwrap().push(n),
                }
            }
        }));
    }
    if let Some((threshold, child)) = kill {
        while acked.lock().unwrap().len() < threshold {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
    for task in tasks {
        task.await.unwrap();
    }
    failed.lock().unwrap().clone()
}

/// Waits until no work is ready or leased; nothing may be dead-lettered.
pub async fn wait_until_drained(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let queue: Value =
            client.get(format!("{base}/api/queue")).send().await.unwrap().json().await.unwrap();
        if queue["ready"] == 0 && queue["leased"] == 0 {
            assert_eq!(queue["dead"], 0, "nothing may be dead-lettered: {queue}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the queue did not drain");
}

/// Every run in the store at `url`: run id -> (event id, status).
pub async fn all_runs(url: &str) -> HashMap<String, (String, String)> {
    let store = coflow::store::open(url).await.unwrap();
    let mut runs = HashMap::new();
    let mut filter = coflow::store::RunFilter { limit: 500, ..Default::default() };
    loop {
        let page = store.list_runs(filter.clone()).await.unwrap();
        for run in &page.runs {
            let event = run.event_id.map(|id| id.to_string()).unwrap_or_default();
            runs.insert(run.id.to_string(), (event, run.status.to_string()));
        }
        match page.next {
            Some(next) => filter.cursor = Some(next),
            None => return runs,
        }
    }
}

/// Asserts that every acknowledged event has exactly one succeeded run and that every run
/// belongs to an acknowledged event.
pub fn assert_exactly_once(acked: &HashMap<usize, String>, runs: &HashMap<String, (String, String)>) {
    let mut runs_per_event: HashMap<&str, usize> = HashMap::new();
    for (event, status) in runs.values() {
        assert_eq!(status, "succeeded", "every run completes");
        *runs_per_event.entry(event.as_str()).or_default() += 1;
    }
    for (n, event) in acked {
        assert_eq!(runs_per_event.get(event.as_str()), Some(&1), "event {n} has exactly one run");
    }
    let acked_events: std::collections::HashSet<&str> = acked.values().map(String::as_str).collect();
    for event in runs_per_event.keys() {
        assert!(acked_events.contains(event), "run for event {event}, which was never acknowledged");
    }
}

/// The SQLite URL of a store file in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("coflow.db").display())
}
