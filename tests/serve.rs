//! `coflow serve` in-process: hooks, workers, admin API, scheduler and metrics, against the
//! sandbox where a connector is involved.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use coflow::connectors::config::{LoadedConnections, Secret};
use coflow::sandbox::{self, Sandbox, SandboxConfig};
use coflow::server::registry::FlowRegistry;
use coflow::server::{Server, Settings};
use coflow::store::{self, Store};
use serde_json::{Value, json};

const ECHO: &str = r#"
name: echo
trigger:
  type: http
  schema:
    type: object
    required: [name]
actions:
  Greeting:
    type: compose
    inputs: "Hello {{ triggerBody().name }}"
  Answer:
    type: response
    status: 201
    body: {greeting: "{{ outputs('Greeting') }}"}
"#;

const RECORD: &str = r#"
name: record
trigger: {type: http}
actions:
  Keep:
    type: compose
    inputs: "{{ triggerBody() }}"
"#;

const SLOW: &str = r#"
name: slow
trigger: {type: http}
actions:
  Wait:
    type: delay
    duration: PT1S
  Done:
    type: compose
    inputs: done
"#;

struct TestServer {
    server: Server,
    base: String,
    client: reqwest::Client,
    store: Arc<dyn Store>,
    _dir: PathBuf,
}

fn flow_dir(flows: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("coflow-serve-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    for (index, text) in flows.iter().enumerate() {
        std::fs::write(dir.join(format!("flow{index}.yaml")), text).unwrap();
    }
    dir
}

fn quick() -> Settings {
    Settings {
        workers: 4,
        tick: Duration::from_millis(100),
        poll_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(5),
        ..Settings::default()
    }
}

async fn start_with(
    dir: PathBuf,
    store_url: &str,
    connections: LoadedConnections,
    settings: Settings,
) -> TestServer {
    let registry = Arc::new(FlowRegistry::load(&dir).unwrap());
    assert!(registry.snapshot().problems.is_empty(), "{:?}", registry.snapshot().problems);
    let store = store::open(store_url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::start(listener, registry, store.clone(), connections, settings).await.unwrap();
    let base = format!("http://{}", server.addr);
    TestServer { server, base, client: reqwest::Client::new(), store, _dir: dir }
}

async fn start(flows: &[&str], settings: Settings) -> TestServer {
    start_with(flow_dir(flows), "sqlite::memory:", LoadedConnections::default(), settings).await
}

impl TestServer {
    async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().await.unwrap()
    }

    /// Waits until the run has ended and returns its detail.
    async fn finished_run(&self, id: &str) -> Value {
        for _ in 0..200 {
            let response = self.client.get(format!("{}/api/runs/{id}", self.base)).send().await.unwrap();
            if response.status().is_success() {
                let run: Value = response.json().await.unwrap();
                let status = run["summary"]["status"].as_str().unwrap_or_default().to_string();
                if !matches!(status.as_str(), "queued" | "running") {
                    return run;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {id} did not finish");
    }

    async fn runs_of(&self, flow: &str) -> Vec<Value> {
        self.get_json(&format!("/api/runs?flow={flow}&limit=500")).await["runs"].as_array().cloned().unwrap()
    }

    async fn wait_for_runs(&self, flow: &str, count: usize) -> Vec<Value> {
        for _ in 0..300 {
            let runs = self.runs_of(flow).await;
            let done = runs.iter().filter(|r| r["status"] != "queued" && r["status"] != "running").count();
            if done >= count {
                return runs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("flow {flow} did not reach {count} finished runs");
    }
}

#[tokio::test]
async fn a_flow_with_a_response_answers_the_request_and_records_the_run() {
    let server = start(&[ECHO], quick()).await;
    let response = server.post("/hooks/echo", r#"{"name": "Ada"}"#).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"greeting": "Hello Ada"}));

    let runs = server.wait_for_runs("echo", 1).await;
    let run = server.finished_run(runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(run["summary"]["status"], "succeeded");
    let names: Vec<&str> =
        run["actions"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Greeting", "Answer"], "action results are persisted as they complete");
    assert_eq!(run["inputs"]["body"], json!({"name": "Ada"}));
    assert_eq!(run["record"]["actions"]["Greeting"]["outputs"], "Hello Ada");
    server.server.shutdown().await;
}

#[tokio::test]
async fn finished_runs_are_indexed_for_text_search_once_the_server_is_idle() {
    let server = start(&[ECHO], quick()).await;
    for name in ["Ada", "Grace", "Edsger"] {
        assert_eq!(server.post("/hooks/echo", &format!(r#"{{"name": "{name}"}}"#)).await.status(), 201);
    }
    server.wait_for_runs("echo", 3).await;
    // A few idle ticks (100 ms each) later, the scheduler has indexed every finished run.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(server.store.index_search(500).await.unwrap(), 0, "nothing left to index");
    let found = server.get_json("/api/runs?q=grace").await;
    assert_eq!(found["runs"].as_array().map(Vec::len), Some(1), "{found}");
}

#[tokio::test]
async fn a_flow_without_a_response_gets_202_with_the_run_to_follow() {
    let server = start(&[RECORD], quick()).await;
    let response = server.post("/hooks/record", r#"{"n": 1}"#).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    let run_id = body["run_id"].as_str().unwrap();
    assert_eq!(location, format!("/api/runs/{run_id}"));
    let run = server.finished_run(run_id).await;
    assert_eq!(run["summary"]["status"], "succeeded");
    assert_eq!(run["record"]["actions"]["Keep"]["outputs"], json!({"n": 1}));
    server.server.shutdown().await;
}

#[tokio::test]
async fn a_run_accepted_but_not_started_reads_as_queued() {
    // No worker: the accepted event waits in the queue.
    let server = start(&[RECORD], Settings { workers: 0, ..quick() }).await;
    let response = server.post("/hooks/record", r#"{"n": 2}"#).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let run_id = body["run_id"].as_str().unwrap();
    let run: Value = server
        .client
        .get(format!("{}/api/runs/{run_id}", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["summary"]["status"], "queued", "{run:#}");
    assert_eq!(run["summary"]["flow"], "record");
    let page = server.client.get(format!("{}/runs/{run_id}", server.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    server.server.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_reason_and_is_kept_for_inspection() {
    let settings = Settings { max_body_bytes: 256, ..quick() };
    let server = start(&[ECHO, RECORD], settings).await;
    let cases: Vec<(reqwest::Response, u16, &str)> = vec![
        (server.post("/hooks/nope", "{}").await, 404, "no flow named `nope`"),
        (server.post("/hooks/echo", "{not json").await, 400, "not valid JSON"),
        (server.post("/hooks/echo", r#"{"other": 1}"#).await, 400, "\"name\" is a required property"),
        (
            server
                .client
                .post(format!("{}/hooks/echo", server.base))
                .header("content-type", "text/plain")
                .body("name=Ada")
                .send()
                .await
                .unwrap(),
            415,
            "Content-Type: application/json",
        ),
        (
            server.post("/hooks/echo", &format!(r#"{{"name": "{}"}}"#, "x".repeat(300))).await,
            413,
            "256 byte limit",
        ),
        (server.client.get(format!("{}/hooks/echo", server.base)).send().await.unwrap(), 405, "takes POST"),
    ];
    for (response, status, reason) in cases {
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(reason), "{status}: {error}");
    }
    let rejected = server.get_json("/api/events/rejected").await;
    let rejected = rejected["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 6, "every refused request is kept");
    let statuses: Vec<u64> = rejected.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    for status in [404, 400, 415, 413, 405] {
        assert!(statuses.contains(&status), "{statuses:?}");
    }
    assert!(rejected.iter().any(|r| r["body"] == "{not json"), "the refused body is kept");
    assert!(server.runs_of("echo").await.is_empty(), "nothing refused was run");
    let health = server.client.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    server.server.shutdown().await;
}

#[tokio::test]
async fn the_same_idempotency_key_makes_one_run() {
    let server = start(&[RECORD], quick()).await;
    let send = || async {
        server
            .client
            .post(format!("{}/hooks/record", server.base))
            .header("content-type", "application/json")
            .header("idempotency-key", "order-42")
            .body(r#"{"order": 42}"#)
            .send()
            .await
            .unwrap()
    };
    assert_eq!(send().await.status(), 202);
    let again = send().await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "duplicate");
    server.wait_for_runs("record", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.runs_of("record").await.len(), 1);
    server.server.shutdown().await;
}

#[tokio::test]
async fn disabled_flows_refuse_events_until_enabled() {
    let server = start(&[RECORD], quick()).await;
    let switched = server.post("/api/flows/record/disable", "").await;
    assert_eq!(switched.status(), 200);
    let refused = server.post("/hooks/record", "{}").await;
    assert_eq!(refused.status(), 409);
    let flows = server.get_json("/api/flows").await;
    assert_eq!(flows["flows"][0]["enabled"], false);
    server.post("/api/flows/record/enable", "").await;
    assert_eq!(server.post("/hooks/record", "{}").await.status(), 202);
    server.server.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_needs_the_token_when_one_is_set() {
    let settings = Settings { admin_token: Some(Secret::new("s3cret-token")), ..quick() };
    let server = start(&[RECORD], settings).await;
    let url = format!("{}/api/flows", server.base);
    let anonymous = server.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = server.client.get(&url).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = server.client.get(&url).bearer_auth("s3cret-token").send().await.unwrap();
    assert_eq!(right.status(), 200);
    let hook = server.post("/hooks/record", "{}").await;
    assert_eq!(hook.status(), 202, "hooks are not behind the admin token");
    server.server.shutdown().await;
}

#[tokio::test]
async fn a_resubmitted_run_runs_again_with_the_same_inputs() {
    let server = start(&[RECORD], quick()).await;
    let body: Value = server.post("/hooks/record", r#"{"n": 7}"#).await.json().await.unwrap();
    let original = body["run_id"].as_str().unwrap().to_string();
    server.finished_run(&original).await;
    let response = server.post(&format!("/api/runs/{original}/resubmit"), "").await;
    assert_eq!(response.status(), 202);
    let resubmitted: Value = response.json().await.unwrap();
    let new_run = server.finished_run(resubmitted["run_id"].as_str().unwrap()).await;
    assert_eq!(new_run["summary"]["status"], "succeeded");
    assert_eq!(new_run["summary"]["resubmit_of"], original.as_str());
    assert_eq!(new_run["record"]["actions"]["Keep"]["outputs"], json!({"n": 7}));
    let detail = server.get_json(&format!("/api/runs/{original}")).await;
    assert_eq!(detail["resubmits"][0], new_run["summary"]["id"]);
    server.server.shutdown().await;
}

#[tokio::test]
async fn a_running_run_can_be_cancelled() {
    let server = start(&[SLOW], quick()).await;
    let body: Value = server.post("/hooks/slow", "{}").await.json().await.unwrap();
    let id = body["run_id"].as_str().unwrap().to_string();
    // Wait until a worker has it.
    for _ in 0..100 {
        if server.get_json("/api/runs?flow=slow").await["runs"][0]["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled = server.post(&format!("/api/runs/{id}/cancel"), "").await;
    assert_eq!(cancelled.status(), 200);
    let run = server.finished_run(&id).await;
    assert_eq!(run["summary"]["status"], "cancelled");
    assert_eq!(server.post(&format!("/api/runs/{id}/cancel"), "").await.status(), 409, "already ended");
    server.server.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_runs_finish() {
    let server = start(&[SLOW], quick()).await;
    let body: Value = server.post("/hooks/slow", "{}").await.json().await.unwrap();
    let id: uuid::Uuid = body["run_id"].as_str().unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let store = server.store.clone();
    server.server.shutdown().await;
    let run = store.get_run(id).await.unwrap().unwrap();
    assert_eq!(run.summary.status, coflow::store::RunStatus::Succeeded, "finished within the grace period");
    assert_eq!(store.queue_stats().await.unwrap().depth(), 0);
}

#[tokio::test]
async fn a_run_cut_off_by_shutdown_is_handed_back_and_finished_by_the_next_process() {
    let dir = flow_dir(&[SLOW]);
    let file = std::env::temp_dir().join(format!("coflow-handback-{}.db", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}", file.display());
    let settings = Settings { shutdown_grace: Duration::ZERO, ..quick() };
    let first = start_with(dir.clone(), &url, LoadedConnections::default(), settings).await;
    let body: Value = first.post("/hooks/slow", "{}").await.json().await.unwrap();
    let id = body["run_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.server.shutdown().await;
    let stats = first.store.queue_stats().await.unwrap();
    assert_eq!((stats.ready, stats.leased), (1, 0), "the item went back to the queue");

    let second = start_with(dir, &url, LoadedConnections::default(), quick()).await;
    let run = second.finished_run(&id).await;
    assert_eq!(run["summary"]["status"], "succeeded");
    second.server.shutdown().await;
}

#[tokio::test]
async fn metrics_count_runs_and_events() {
    let server = start(&[RECORD], quick()).await;
    server.post("/hooks/record", "{}").await;
    server.wait_for_runs("record", 1).await;
    let text =
        server.client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"coflow_runs_total{flow="record",status="succeeded"} 1"#), "{text}");
    assert!(text.contains(r#"coflow_events_total{flow="record",outcome="accepted"} 1"#), "{text}");
    assert!(text.contains("coflow_queue_ready"), "{text}");
    server.server.shutdown().await;
}

#[tokio::test]
async fn a_flow_file_added_while_running_is_served() {
    let server = start(&[RECORD], quick()).await;
    assert_eq!(server.post("/hooks/echo", r#"{"name": "x"}"#).await.status(), 404);
    std::fs::write(server._dir.join("echo.yaml"), ECHO).unwrap();
    let mut status = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = server.post("/hooks/echo", r#"{"name": "x"}"#).await.status().as_u16();
        if status == 201 {
            break;
        }
    }
    assert_eq!(status, 201);
    server.server.shutdown().await;
}

#[tokio::test]
async fn two_processes_fire_a_schedule_once_per_slot() {
    let flow = "name: tick\ntrigger: {type: recurrence, every: PT1S}\nactions:\n  A: {type: compose, inputs: \"{{ triggerBody().scheduledTime }}\"}\n";
    let dir = flow_dir(&[flow]);
    let file = std::env::temp_dir().join(format!("coflow-schedule-{}.db", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}", file.display());
    let a = start_with(dir.clone(), &url, LoadedConnections::default(), quick()).await;
    let b = start_with(dir, &url, LoadedConnections::default(), quick()).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let runs = a.runs_of("tick").await;
    assert!((2..=5).contains(&runs.len()), "{} runs in 3.5 s of a 1 s schedule", runs.len());
    let mut times = Vec::new();
    for run in &runs {
        let detail = a.finished_run(run["id"].as_str().unwrap()).await;
        times.push(detail["inputs"]["body"]["scheduledTime"].as_str().unwrap().to_string());
    }
    let total = times.len();
    times.sort();
    times.dedup();
    assert_eq!(times.len(), total, "each scheduled time fired once across both processes: {times:?}");
    let stamps: Vec<jiff::Timestamp> = times.iter().map(|t| t.parse().unwrap()).collect();
    for pair in stamps.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(gap >= jiff::SignedDuration::from_secs(1), "slots a second apart: {times:?}");
    }
    a.server.shutdown().await;
    b.server.shutdown().await;
}

#[tokio::test]
async fn a_sliding_window_moves_on_only_after_a_run_succeeds() {
    let ok = "name: window-ok\ntrigger: {type: recurrence, every: PT1S, window: true}\nactions:\n  A: {type: compose, inputs: ok}\n";
    let failing = "name: window-fail\ntrigger: {type: recurrence, every: PT1S, window: true}\nactions:\n  Stop: {type: terminate, status: failed, code: Broken, message: always}\n";
    let server = start(&[ok, failing], quick()).await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let windows = |flow: &'static str| {
        let server = &server;
        async move {
            let mut found = Vec::new();
            for run in server.runs_of(flow).await {
                let detail = server.finished_run(run["id"].as_str().unwrap()).await;
                let body = &detail["inputs"]["body"];
                found.push((
                    body["windowStartTime"].clone(),
                    body["windowEndTime"].as_str().unwrap().to_string(),
                ));
            }
            found.sort_by(|a, b| a.1.cmp(&b.1));
            found
        }
    };
    let ok = windows("window-ok").await;
    assert!(ok.len() >= 3, "{ok:?}");
    assert_eq!(ok[0].0, Value::Null, "the first window has no start");
    // Each window starts where an earlier, succeeded one ended (the one just before, unless it
    // had not finished when the next fired).
    for (i, (start, _)) in ok.iter().enumerate().skip(1) {
        let follows = ok[..i].iter().any(|(_, end)| json!(end) == *start);
        assert!(follows || start.is_null(), "window {i} of {ok:?}");
    }
    assert!(ok.iter().filter(|(start, _)| !start.is_null()).count() >= 2, "the window moved on: {ok:?}");
    let failing = windows("window-fail").await;
    assert!(failing.len() >= 3, "{failing:?}");
    assert!(
        failing.iter().all(|(start, _)| start.is_null()),
        "a failed run does not move the window: {failing:?}"
    );
    server.server.shutdown().await;
}

// ---- with the sandbox ------------------------------------------------------------------------

const PC_HOOK: &str = r#"
name: pc-events
connections: {pc: partner_center}
trigger:
  type: partner_center.webhook
  connection: pc
  events: [referral-created, referral-updated]
actions:
  Referral:
    type: compose
    inputs: "{{ triggerBody().referral_id }}"
"#;

const SF_POLL: &str = r#"
name: new-opportunities
connections: {sf: salesforce}
trigger:
  type: salesforce.poll
  connection: sf
  object: Opportunity
  on: created
  every: PT1S
actions:
  Opportunity:
    type: compose
    inputs: "{{ triggerBody().Id }}"
"#;

async fn start_sandboxed(flows: &[&str]) -> (TestServer, Sandbox) {
    let sandbox = sandbox::start(SandboxConfig::ephemeral()).await.unwrap();
    let connections = sandbox.connections().unwrap();
    let server = start_with(flow_dir(flows), "sqlite::memory:", connections, quick()).await;
    (server, sandbox)
}

fn signed_event(sandbox: &Sandbox, body: &str) -> reqwest::header::HeaderMap {
    let signer = coflow::sandbox::partner_center::delivery::Signer::shared().unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert(
        "authorization",
        format!("Signature {}", signer.sign(body.as_bytes()).unwrap()).parse().unwrap(),
    );
    headers.insert("x-ms-certificate-url", sandbox.partner_center.certificate_url().parse().unwrap());
    headers.insert("x-ms-signature-algorithm", "rsa-sha256".parse().unwrap());
    headers
}

#[tokio::test]
async fn partner_center_events_are_verified_and_a_redelivery_runs_once() {
    let (server, sandbox) = start_sandboxed(&[PC_HOOK]).await;
    let now = jiff::Timestamp::now().to_string();
    let body = format!(
        r#"{{"EventName":"referral-updated","ResourceUri":"{}/v1/engagements/referrals/ref-123","ResourceName":"referral","AuditUri":null,"ResourceChangeUtcDate":"{now}"}}"#,
        sandbox.partner_center_url
    );
    let url = format!("{}/hooks/pc-events", server.base);
    let send = |body: String| {
        let headers = signed_event(&sandbox, &body);
        let client = server.client.clone();
        let url = url.clone();
        async move { client.post(url).headers(headers).body(body).send().await.unwrap() }
    };
    assert_eq!(send(body.clone()).await.status(), 202);
    assert_eq!(send(body.clone()).await.status(), 200, "the redelivery is acknowledged");

    let headers = signed_event(&sandbox, &body);
    let forged = body.replace("ref-123", "ref-666");
    let refused = server.client.post(&url).headers(headers).body(forged).send().await.unwrap();
    assert_eq!(refused.status(), 401);

    let ignored = send(body.replace("referral-updated", "test-created")).await;
    assert_eq!(ignored.status(), 200);
    assert_eq!(ignored.json::<Value>().await.unwrap()["status"], "ignored");

    let runs = server.wait_for_runs("pc-events", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.runs_of("pc-events").await.len(), 1, "one run for the event and its redelivery");
    let run = server.finished_run(runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(run["record"]["actions"]["Referral"]["outputs"], "ref-123");
    let rejected = server.get_json("/api/events/rejected").await;
    assert_eq!(rejected["rejected"][0]["status"], 401);
    server.server.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_referral_shared_in_partner_center_reaches_the_flow_through_the_registered_webhook() {
    let (server, sandbox) = start_sandboxed(&[PC_HOOK]).await;
    let http = coflow::connectors::HttpClient::new(reqwest::Client::new(), false);
    let connections = sandbox.connections().unwrap();
    let pc = connections.partner_center["partner_center"].clone();
    let inputs = json!({"url": format!("{}/hooks/pc-events", server.base), "events": ["referral-created"], "overwrite": true});
    let call = coflow::connectors::OperationCall::new("register_webhook", &inputs, &http);
    coflow::connectors::Connector::call(pc.as_ref(), call).await.unwrap();
    let shared: Value = server
        .client
        .post(format!("{}/__sandbox/referrals", sandbox.partner_center_url))
        .json(&json!({"name": "Fabrikam"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let runs = server.wait_for_runs("pc-events", 1).await;
    let run = server.finished_run(runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(run["record"]["actions"]["Referral"]["outputs"], shared["id"]);
    server.server.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_new_salesforce_record_fires_the_poll_trigger_once() {
    let (server, sandbox) = start_sandboxed(&[SF_POLL]).await;
    // Let the first poll set its starting point, then create a record after it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let http = coflow::connectors::HttpClient::new(reqwest::Client::new(), false);
    let connections = sandbox.connections().unwrap();
    let sf = connections.salesforce["salesforce"].clone();
    let inputs = json!({"sobject": "Opportunity", "record": {"Name": "Polled", "StageName": "Prospecting", "CloseDate": "2027-01-01"}});
    let call = coflow::connectors::OperationCall::new("create_record", &inputs, &http);
    let created = coflow::connectors::Connector::call(sf.as_ref(), call).await.unwrap();
    let runs = server.wait_for_runs("new-opportunities", 1).await;
    let run = server.finished_run(runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(run["record"]["actions"]["Opportunity"]["outputs"], created.body["id"]);
    // Further polls (every second) must not fire it again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(server.runs_of("new-opportunities").await.len(), 1);
    server.server.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_runs_command_lists_shows_and_resubmits_from_the_store() {
    let file = std::env::temp_dir().join(format!("coflow-runs-cli-{}.db", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}", file.display());
    let server = start_with(flow_dir(&[RECORD]), &url, LoadedConnections::default(), quick()).await;
    let body: Value = server.post("/hooks/record", r#"{"n": 3}"#).await.json().await.unwrap();
    let id = body["run_id"].as_str().unwrap().to_string();
    server.finished_run(&id).await;

    let coflow = |args: &[&str]| {
        let started = std::time::Instant::now();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_coflow"))
            .args(args)
            .args(["--store", &url])
            .output()
            .unwrap();
        let ok = output.status.success();
        if !ok {
            let took = started.elapsed();
            eprintln!("coflow {args:?} failed after {took:?}: {}", String::from_utf8_lossy(&output.stderr));
        }
        (ok, String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (ok, listed) = coflow(&["runs", "list", "--json"]);
    assert!(ok);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    let (ok, shown) = coflow(&["runs", "show", &id]);
    assert!(ok);
    assert!(shown.contains("Keep") && shown.contains("succeeded"), "{shown}");
    let (ok, resubmitted) = coflow(&["runs", "resubmit", &id]);
    assert!(ok, "{resubmitted}");
    let new_id = resubmitted.split_whitespace().nth(2).unwrap().to_string();
    let run = server.finished_run(&new_id).await;
    assert_eq!(run["summary"]["resubmit_of"], id.as_str(), "the running server picked it up");
    let (ok, _) = coflow(&["runs", "show", "not-a-run"]);
    assert!(!ok);
    server.server.shutdown().await;
}

#[tokio::test]
async fn without_history_hooks_run_in_memory_and_nothing_is_recorded() {
    let settings = Settings { history: false, ..quick() };
    let server = start(&[ECHO, RECORD], settings).await;
    let response = server.post("/hooks/echo", r#"{"name": "Grace"}"#).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"greeting": "Hello Grace"}));
    assert_eq!(server.post("/hooks/record", "{}").await.status(), 202);
    assert_eq!(server.post("/hooks/echo", "{}").await.status(), 400, "input is still checked");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(server.get_json("/api/runs").await["runs"].as_array().unwrap().is_empty());
    let text =
        server.client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"coflow_runs_total{flow="echo",status="succeeded"} 1"#), "{text}");
    server.server.shutdown().await;
}

#[tokio::test]
async fn a_run_cancelled_through_another_process_stops_where_it_runs() {
    let flow = "name: slow\ntrigger: {type: http}\nactions:\n  Wait: {type: delay, duration: PT5S}\n  Done: {type: compose, inputs: done}\n";
    let dir = flow_dir(&[flow]);
    let file = std::env::temp_dir().join(format!("coflow-cancel-{}.db", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}", file.display());
    let settings = Settings { lease: Duration::from_millis(900), ..quick() };
    let a = start_with(dir.clone(), &url, LoadedConnections::default(), settings.clone()).await;
    let b = start_with(dir, &url, LoadedConnections::default(), settings).await;
    let body: Value = a.post("/hooks/slow", "{}").await.json().await.unwrap();
    let id = body["run_id"].as_str().unwrap().to_string();
    let mut owner = None;
    for _ in 0..100 {
        if a.server.state().running.len() == 1 {
            owner = Some((&a, &b));
        } else if b.server.state().running.len() == 1 {
            owner = Some((&b, &a));
        }
        if owner.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (runner, other) = owner.expect("one process runs it");
    let cancelled = other.post(&format!("/api/runs/{id}/cancel"), "").await;
    assert_eq!(cancelled.json::<Value>().await.unwrap()["status"], "cancelled", "ended in the store");
    for _ in 0..100 {
        if runner.server.state().running.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(runner.server.state().running.is_empty(), "the owner stopped the run well before its 5 s delay");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let run = runner.get_json(&format!("/api/runs/{id}")).await;
    assert_eq!(run["summary"]["status"], "cancelled");
    a.server.shutdown().await;
    b.server.shutdown().await;
}
