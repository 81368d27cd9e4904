//! Crash safety of `coflow serve`: the real binary is killed with SIGKILL under load and
//! restarted on the same store; every event that was acknowledged must end in exactly one
//! completed run, and the Salesforce emulator must hold exactly one record per event.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coflow::sandbox::{self, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const EVENTS: usize = 2000;
const SENDERS: usize = 32;

const UPSERT: &str = r#"
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
"#;

struct Setup {
    dir: PathBuf,
    sandbox: Sandbox,
    port: u16,
}

async fn setup() -> Setup {
    let mut config = SandboxConfig::ephemeral();
    config.daily_api_limit = Some(10_000_000);
    let sandbox = sandbox::start(config).await.unwrap();
    let dir = std::env::temp_dir().join(format!("coflow-crash-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::write(dir.join("flows/upsert.yaml"), UPSERT).unwrap();
    std::fs::write(dir.join("coflow.yaml"), sandbox.connections_yaml()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    Setup { dir, sandbox, port }
}

fn spawn(setup: &Setup, log: &str) -> Child {
    let log = std::fs::File::create(setup.dir.join(log)).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_coflow"));
    command
        .current_dir(&setup.dir)
        .args(["serve", "--flows", "flows", "--config", "coflow.yaml", "--no-schedule"])
        .args(["--store", "sqlite://coflow.db", "--listen", &format!("127.0.0.1:{}", setup.port)])
        .args(["--workers", "16", "--lease", "3"])
        .stdout(Stdio::null())
        .stderr(log);
    for (name, value) in &setup.sandbox.secrets().0 {
        command.env(name, value);
    }
    command.kill_on_drop(true).spawn().unwrap()
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await {
            if response.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become ready");
}

/// What the server acknowledged: our event number -> (event id, run id).
type Acked = Arc<Mutex<HashMap<usize, (String, String)>>>;

async fn send(client: &reqwest::Client, base: &str, n: usize) -> Option<(String, String)> {
    let body = json!({"id": format!("evt-{n:05}"), "name": format!("Deal {n}")});
    let response = client.post(format!("{base}/hooks/upsert")).json(&body).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let answer: Value = response.json().await.ok()?;
    Some((answer["event_id"].as_str()?.to_string(), answer["run_id"].as_str()?.to_string()))
}

/// Sends every event in `numbers` with `SENDERS` concurrent senders; returns the ones refused
/// or cut off. Kills `child` once `kill_after` events were acknowledged.
async fn send_all(
    client: &reqwest::Client,
    base: &str,
    numbers: Vec<usize>,
    acked: &Acked,
    kill_after: Option<(usize, &mut Child)>,
) -> Vec<usize> {
    let queue = Arc::new(Mutex::new(numbers));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (client, base, queue, acked, failed) =
            (client.clone(), base.to_string(), queue.clone(), acked.clone(), failed.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let Some(n) = queue.lock().unwrap().pop() else { return };
                match send(&client, &base, n).await {
                    Some(ids) => {
                        acked.lock().unwrap().insert(n, ids);
                    }
                    None => failed.lock().unwrap().push(n),
                }
            }
        }));
    }
    if let Some((threshold, child)) = kill_after {
        while acked.lock().unwrap().len() < threshold {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
    for sender in senders {
        sender.await.unwrap();
    }
    failed.lock().unwrap().clone()
}

async fn wait_until_drained(client: &reqwest::Client, base: &str) {
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

/// Every run in the store: run id -> (event id, status).
async fn all_runs(store_file: &Path) -> HashMap<String, (String, String)> {
    let store = coflow::store::open(&format!("sqlite://{}", store_file.display())).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_under_load_loses_nothing_it_acknowledged() {
    let setup = setup().await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let base = format!("http://127.0.0.1:{}", setup.port);
    let acked: Acked = Arc::default();

    let mut first = spawn(&setup, "first.log");
    wait_ready(&client, &base).await;
    let started = Instant::now();
    let cut_off =
        send_all(&client, &base, (0..EVENTS).collect(), &acked, Some((EVENTS / 3, &mut first))).await;
    let acked_before_kill = acked.lock().unwrap().len();
    assert!(acked_before_kill < EVENTS, "the kill came too late to interrupt anything");

    let _second = spawn(&setup, "second.log");
    wait_ready(&client, &base).await;
    // The client delivers again what was not acknowledged, as Partner Center would.
    let still_failed = send_all(&client, &base, cut_off.clone(), &acked, None).await;
    assert!(still_failed.is_empty(), "{} events refused after the restart", still_failed.len());
    wait_until_drained(&client, &base).await;
    let took = started.elapsed();

    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), EVENTS);
    let runs = all_runs(&setup.dir.join("coflow.db")).await;
    let mut runs_per_event: HashMap<&str, usize> = HashMap::new();
    for (event, status) in runs.values() {
        assert_eq!(status, "succeeded", "every run completes");
        *runs_per_event.entry(event.as_str()).or_default() += 1;
    }
    for (n, (event_id, run_id)) in &acked {
        assert_eq!(runs_per_event.get(event_id.as_str()), Some(&1), "event {n} has exactly one run");
        assert!(runs.contains_key(run_id), "event {n}: the run id answered is the run recorded");
    }
    assert_eq!(runs.len(), EVENTS, "no run without an acknowledged event");

    let query = json!({"soql": "SELECT Id, Referral_Identifier__c FROM Opportunity"});
    let http = coflow::connectors::HttpClient::new(reqwest::Client::new(), false);
    let connections = setup.sandbox.connections().unwrap();
    let salesforce = connections.salesforce["salesforce"].clone();
    let call = coflow::connectors::OperationCall { operation: "query_all", inputs: &query, http: &http };
    let records = coflow::connectors::Connector::call(salesforce.as_ref(), call).await.unwrap().body;
    let records = records["records"].as_array().unwrap();
    let ids: HashSet<&str> = records.iter().filter_map(|r| r["Referral_Identifier__c"].as_str()).collect();
    assert_eq!(records.len(), EVENTS, "one Opportunity per event, none duplicated");
    assert_eq!(ids.len(), EVENTS);
    // One query above; the rest are the upserts (a call cut off by the kill is sent again).
    let upserts = setup.sandbox.salesforce.api_used() - 1;
    println!(
        "crash test: {EVENTS} events, {acked_before_kill} acknowledged before SIGKILL, {} resent after restart, \
         all {EVENTS} with exactly one succeeded run and one record, in {:.1} s; {upserts} upsert calls",
        cut_off.len(),
        took.as_secs_f64(),
    );
}
