//! Conformance tests for the executor: one test per rule of the workflow semantics reference
//! (§2 and §3), each on a small flow.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use coflow::connectors::{
    Connector, ConnectorError, Effect, HttpClient, HttpRequest, HttpResponse, OperationCall, OperationOutput,
    OperationSpec,
};
use coflow::engine::{
    self, ActionError, ActionEvent, ActionResult, CancelToken, MockAnswer, Mocks, Observer, OutboundCall,
    ResponseRecord, Run, RunOptions, Status, TokioClock, TriggerEvent,
};
use coflow::flow::Flow;
use futures::future::BoxFuture;
use jiff::Timestamp;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers

fn load(yaml: &str) -> Flow {
    coflow::flow::load_str(yaml).expect("test flow compiles")
}

fn fixture(name: &str) -> Flow {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine").join(name);
    coflow::flow::load_file(&path).expect("fixture flow compiles")
}

/// A client without timers of its own, so paused-time tests only advance on the engine's waits.
fn test_client(dry_run: bool) -> HttpClient {
    let client = reqwest::Client::builder()
        .pool_idle_timeout(None)
        .pool_max_idle_per_host(0)
        .build()
        .expect("client builds");
    HttpClient::new(client, dry_run)
}

fn options() -> RunOptions {
    let mut options = RunOptions::with_http(test_client(false));
    options.clock = Arc::new(TokioClock::starting_at(base_time()));
    options
}

fn base_time() -> Timestamp {
    "2030-01-01T00:00:00Z".parse().expect("timestamp parses")
}

async fn run_flow(flow: &Flow, body: Value) -> Run {
    engine::run(flow, TriggerEvent::from_body(body), &options()).await
}

async fn run_yaml(yaml: &str) -> Run {
    run_flow(&load(yaml), Value::Null).await
}

fn action<'a>(run: &'a Run, name: &str) -> &'a ActionResult {
    run.actions
        .get(name)
        .unwrap_or_else(|| panic!("action `{name}` is not in the run record: {:#?}", run.actions.keys()))
}

fn status(run: &Run, name: &str) -> Status {
    action(run, name).status
}

fn error_code(run: &Run, name: &str) -> String {
    action(run, name).error.as_ref().map(|e| e.code.clone()).unwrap_or_default()
}

fn outputs(run: &Run, name: &str) -> Value {
    action(run, name).outputs.clone().unwrap_or(Value::Null)
}

fn gap(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).expect("later timestamp comes after")
}

/// An action that always fails: it reads a variable nobody initialized.
const FAILING: &str = "{type: compose, inputs: \"{{ int('not a number') }}\"}";

// ---------------------------------------------------------------------------------------------
// A loopback HTTP server with scripted answers and an in-flight counter.

/// A scripted answer: status and headers.
type Scripted = (u16, Vec<(&'static str, String)>);

#[derive(Default)]
struct ServerState {
    hits: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    script: Mutex<VecDeque<Scripted>>,
    bodies: Mutex<Vec<Value>>,
}

struct TestServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestServer {
    /// Starts the server on its own thread and runtime, so paused time in a test does not
    /// touch it.
    fn start() -> TestServer {
        let state = Arc::new(ServerState::default());
        let app = Router::new()
            .route("/scripted", any(scripted))
            .route("/slow", any(slow))
            .with_state(state.clone());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
                addr_tx.send(listener.local_addr().expect("local addr")).expect("send addr");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = shutdown_rx.await;
                    })
                    .await
                    .expect("server runs");
            });
        });
        let addr = addr_rx.recv().expect("server started");
        TestServer { addr, state, _shutdown: shutdown_tx }
    }

    fn script(&self, status: u16, headers: &[(&'static str, &str)]) {
        let headers = headers.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.state.script.lock().unwrap().push_back((status, headers));
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn event(&self) -> Value {
        json!({"addr": self.addr.to_string()})
    }
}

async fn scripted(State(state): State<Arc<ServerState>>, body: axum::body::Bytes) -> impl IntoResponse {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if let Ok(value) = serde_json::from_slice::<Value>(&body) {
        state.bodies.lock().unwrap().push(value);
    }
    let next = state.script.lock().unwrap().pop_front();
    let (status, headers) = next.unwrap_or((200, Vec::new()));
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(HeaderName::from_static(name), HeaderValue::from_str(&value).expect("header value"));
    }
    let status = StatusCode::from_u16(status).expect("status");
    (status, map, axum::Json(json!({"status": status.as_u16()})))
}

#[derive(serde::Deserialize)]
struct SlowQuery {
    ms: u64,
}

async fn slow(State(state): State<Arc<ServerState>>, Query(query): Query<SlowQuery>) -> impl IntoResponse {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(query.ms)).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    axum::Json(json!({"ms": query.ms}))
}

// ---------------------------------------------------------------------------------------------
// run_after (§2.2, §2.3)

#[tokio::test]
async fn run_after_defaults_to_the_previous_action_succeeded() {
    let run = run_yaml(
        r#"
name: chain
trigger: {type: manual}
actions:
  first: {type: compose, inputs: 20}
  second: {type: compose, inputs: "{{ body('first') + 1 }}"}
  third: {type: compose, inputs: "{{ body('second') * 2 }}"}
"#,
    )
    .await;
    assert_eq!(run.status, Status::Succeeded);
    assert_eq!(outputs(&run, "third"), json!(42));
}

#[tokio::test]
async fn run_after_needs_every_predecessor_in_its_list() {
    let yaml = format!(
        r#"
name: and-across
trigger: {{type: manual}}
actions:
  ok: {{type: compose, inputs: 1}}
  bad: {FAILING}
  both_succeeded:
    type: compose
    inputs: ran
    run_after: {{ok: [succeeded], bad: [succeeded]}}
  ok_and_bad_failed:
    type: compose
    inputs: ran
    run_after: {{ok: [succeeded], bad: [failed]}}
"#
    );
    let run = run_yaml(&yaml).await;
    assert_eq!(status(&run, "both_succeeded"), Status::Skipped);
    assert_eq!(error_code(&run, "both_succeeded"), "ActionConditionFailed");
    assert_eq!(status(&run, "ok_and_bad_failed"), Status::Succeeded);
}

#[tokio::test]
async fn run_after_statuses_in_one_list_are_alternatives() {
    let yaml = format!(
        r#"
name: or-within
trigger: {{type: manual}}
actions:
  ok: {{type: compose, inputs: 1}}
  bad: {FAILING}
  after_ok:
    type: compose
    inputs: ran
    run_after: {{ok: [failed, succeeded]}}
  after_bad:
    type: compose
    inputs: ran
    run_after: {{bad: [failed, succeeded]}}
"#
    );
    let run = run_yaml(&yaml).await;
    assert_eq!(status(&run, "after_ok"), Status::Succeeded);
    assert_eq!(status(&run, "after_bad"), Status::Succeeded);
}

#[tokio::test]
async fn empty_run_after_starts_with_the_block() {
    let yaml = format!(
        r#"
name: parallel-start
trigger: {{type: manual}}
actions:
  bad: {FAILING}
  independent:
    type: compose
    inputs: ran
    run_after: {{}}
"#
    );
    let run = run_yaml(&yaml).await;
    assert_eq!(status(&run, "bad"), Status::Failed);
    assert_eq!(status(&run, "independent"), Status::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn independent_branches_run_concurrently() {
    let run = run_yaml(
        r#"
name: branches
trigger: {type: manual}
actions:
  left: {type: delay, duration: PT10S}
  right: {type: delay, duration: PT10S, run_after: {}}
  join:
    type: compose
    inputs: both
    run_after: {left: [succeeded], right: [succeeded]}
"#,
    )
    .await;
    assert_eq!(status(&run, "join"), Status::Succeeded);
    let total = gap(run.started_at, run.ended_at);
    assert!(total >= Duration::from_secs(10) && total < Duration::from_secs(11), "took {total:?}");
}

// ---------------------------------------------------------------------------------------------
// Skipped propagation (§2.2)

#[tokio::test]
async fn skipped_spreads_down_the_default_chain_without_evaluating_inputs() {
    let yaml = format!(
        r#"
name: skip-chain
trigger: {{type: manual}}
actions:
  bad: {FAILING}
  next: {{type: compose, inputs: "{{{{ int('not a number') }}}}"}}
  after_next: {{type: compose, inputs: x}}
  whatever_happened:
    type: compose
    inputs: ran
    run_after: {{after_next: [skipped]}}
"#
    );
    let run = run_yaml(&yaml).await;
    // `next` would fail if its inputs were evaluated: being skipped, they are not.
    assert_eq!(status(&run, "next"), Status::Skipped);
    assert!(action(&run, "next").inputs.is_none());
    assert_eq!(status(&run, "after_next"), Status::Skipped);
    assert_eq!(status(&run, "whatever_happened"), Status::Succeeded);
}

#[tokio::test]
async fn join_after_branches_is_skipped_when_one_branch_is_skipped() {
    let run = run_yaml(
        r#"
name: join-after-if
trigger: {type: manual}
actions:
  start: {type: compose, inputs: 1}
  on_success: {type: compose, inputs: a, run_after: {start: [succeeded]}}
  on_failure: {type: compose, inputs: b, run_after: {start: [failed]}}
  strict_join:
    type: compose
    inputs: joined
    run_after: {on_success: [succeeded], on_failure: [succeeded]}
  tolerant_join:
    type: compose
    inputs: joined
    run_after: {on_success: [succeeded, skipped], on_failure: [succeeded, skipped]}
"#,
    )
    .await;
    assert_eq!(status(&run, "on_failure"), Status::Skipped);
    assert_eq!(status(&run, "strict_join"), Status::Skipped);
    assert_eq!(status(&run, "tolerant_join"), Status::Succeeded);
    // Leaves resolve: strict_join -> on_success (ok) and on_failure -> start (ok).
    assert_eq!(run.status, Status::Succeeded);
}

// ---------------------------------------------------------------------------------------------
// Run status (§2.4)

#[tokio::test]
async fn one_line_catch_makes_a_handled_failure_succeed() {
    let run = run_flow(&fixture("catch_one_line.yaml"), Value::Null).await;
    assert_eq!(status(&run, "risky"), Status::Failed);
    assert_eq!(status(&run, "catch"), Status::Succeeded);
    assert_eq!(run.status, Status::Succeeded);
    assert!(run.error.is_none());
}

#[tokio::test]
async fn catch_with_a_skipped_success_path_fails_the_run() {
    let run = run_flow(&fixture("catch_with_success_path.yaml"), Value::Null).await;
    assert_eq!(status(&run, "on_success"), Status::Skipped);
    assert_eq!(status(&run, "catch"), Status::Succeeded);
    assert_eq!(run.status, Status::Failed);
    let error = run.error.clone().expect("the run carries the failing action's error");
    assert_eq!(error.code, "InvalidTemplate");
    assert_eq!(Some(error), action(&run, "risky").error.clone());
}

#[tokio::test(start_paused = true)]
async fn timed_out_leaf_fails_the_run() {
    let run = run_yaml(
        r#"
name: timed-out-leaf
trigger: {type: manual}
actions:
  slow: {type: delay, duration: PT1H, timeout: PT1S}
"#,
    )
    .await;
    assert_eq!(status(&run, "slow"), Status::TimedOut);
    assert_eq!(run.status, Status::Failed);
}

// ---------------------------------------------------------------------------------------------
// Scope (§3.1)

#[tokio::test]
async fn scope_with_a_handled_failure_succeeds() {
    let yaml = format!(
        r#"
name: scope-handled
trigger: {{type: manual}}
actions:
  work:
    type: scope
    actions:
      bad: {FAILING}
      handler: {{type: compose, inputs: handled, run_after: {{bad: [failed]}}}}
  after: {{type: compose, inputs: ran}}
"#
    );
    let run = run_yaml(&yaml).await;
    assert_eq!(status(&run, "bad"), Status::Failed);
    assert_eq!(status(&run, "work"), Status::Succeeded);
    assert_eq!(status(&run, "after"), Status::Succeeded);
    assert_eq!(run.status, Status::Succeeded);
}

#[tokio::test]
async fn scope_with_an_unhandled_failure_fails_and_its_skipped_children_are_recorded() {
    let yaml = format!(
        r#"
name: scope-unhandled
trigger: {{type: manual}}
actions:
  gate: {FAILING}
  work:
    type: scope
    run_after: {{}}
    actions:
      bad: {FAILING}
  skipped_scope:
    type: scope
    run_after: {{gate: [succeeded]}}
    actions:
      never: {{type: compose, inputs: x}}
  catch: {{type: compose, inputs: caught, run_after: {{work: [failed], gate: [failed]}}}}
"#
    );
    let run = run_yaml(&yaml).await;
    assert_eq!(status(&run, "work"), Status::Failed);
    assert_eq!(error_code(&run, "work"), "ActionFailed");
    assert_eq!(status(&run, "skipped_scope"), Status::Skipped);
    assert_eq!(status(&run, "never"), Status::Skipped);
    assert_eq!(status(&run, "catch"), Status::Succeeded);
}

// ---------------------------------------------------------------------------------------------
// If and switch (§3.2, §3.3)

const IF_FLOW: &str = r#"
name: branch
trigger: {type: manual}
actions:
  check:
    type: if
    condition: "{{ triggerBody().n > 1 }}"
    then:
      big: {type: compose, inputs: big}
      bigger: {type: compose, inputs: "{{ body('big') ~ 'ger' }}"}
    else:
      small: {type: compose, inputs: small}
  after: {type: compose, inputs: "{{ triggerBody().n }}"}
"#;

#[tokio::test]
async fn if_runs_the_branch_taken_and_skips_the_other() {
    let flow = load(IF_FLOW);
    let run = run_flow(&flow, json!({"n": 5})).await;
    assert_eq!(status(&run, "check"), Status::Succeeded);
    assert_eq!(outputs(&run, "bigger"), json!("bigger"));
    assert_eq!(status(&run, "small"), Status::Skipped);
    assert_eq!(error_code(&run, "small"), "ActionBranchingConditionNotSatisfied");

    let run = run_flow(&flow, json!({"n": 0})).await;
    assert_eq!(status(&run, "small"), Status::Succeeded);
    assert_eq!(status(&run, "big"), Status::Skipped);
    assert_eq!(status(&run, "bigger"), Status::Skipped);
    assert_eq!(run.status, Status::Succeeded);
}

#[tokio::test]
async fn if_condition_must_be_a_boolean() {
    let run =
        run_flow(&load(&IF_FLOW.replace("triggerBody().n > 1", "triggerBody().n")), json!({"n": 5})).await;
    assert_eq!(status(&run, "check"), Status::Failed);
    assert_eq!(error_code(&run, "check"), "InvalidTemplate");
    assert_eq!(status(&run, "after"), Status::Skipped);
}

const SWITCH_FLOW: &str = r#"
name: switching
trigger: {type: manual}
actions:
  route:
    type: switch
    on: "{{ triggerBody().kind }}"
    cases:
      lead: {as_lead: {type: compose, inputs: lead}}
      "2": {as_two: {type: compose, inputs: two}}
    default:
      as_other: {type: compose, inputs: other}
"#;

#[tokio::test]
async fn switch_runs_the_matching_case_or_default() {
    let flow = load(SWITCH_FLOW);
    let run = run_flow(&flow, json!({"kind": "lead"})).await;
    assert_eq!(status(&run, "as_lead"), Status::Succeeded);
    assert_eq!(status(&run, "as_two"), Status::Skipped);
    assert_eq!(status(&run, "as_other"), Status::Skipped);

    let run = run_flow(&flow, json!({"kind": "account"})).await;
    assert_eq!(status(&run, "as_other"), Status::Succeeded);
    assert_eq!(status(&run, "as_lead"), Status::Skipped);
}

#[tokio::test]
async fn switch_matches_numbers_by_value() {
    let flow = load(SWITCH_FLOW);
    let run = run_flow(&flow, json!({"kind": 2})).await;
    assert_eq!(status(&run, "as_two"), Status::Succeeded);
    let run = run_flow(&flow, json!({"kind": 3})).await;
    assert_eq!(status(&run, "as_other"), Status::Succeeded);
}

// ---------------------------------------------------------------------------------------------
// Foreach (§3.4)

const FOREACH_HTTP: &str = r#"
name: fan-out
trigger: {type: manual}
actions:
  each:
    type: foreach
    items: "{{ triggerBody().delays }}"
    concurrency: CONCURRENCY
    actions:
      call:
        type: http
        method: GET
        url: "http://{{ triggerBody().addr }}/slow?ms={{ item() }}"
      doubled: {type: compose, inputs: "{{ body('call').ms * 2 }}"}
"#;

#[tokio::test]
async fn foreach_records_iterations_in_item_order() {
    let server = TestServer::start();
    let flow = load(&FOREACH_HTTP.replace("CONCURRENCY", "3"));
    let mut event = server.event();
    // The first item finishes last: the record must still list it first.
    event["delays"] = json!([300, 10, 120]);
    let run = run_flow(&flow, event).await;
    assert_eq!(run.status, Status::Succeeded, "{:#?}", run.actions);
    let iterations = action(&run, "each").iterations.as_ref().expect("iterations recorded");
    let seen: Vec<(usize, Value)> = iterations
        .iter()
        .map(|it| (it.index, it.actions["doubled"].outputs.clone().unwrap_or(Value::Null)))
        .collect();
    assert_eq!(seen, vec![(0, json!(600)), (1, json!(20)), (2, json!(240))]);
    assert_eq!(outputs(&run, "each")[0]["doubled"], json!(600));
}

#[tokio::test]
async fn foreach_runs_up_to_its_concurrency_at_once() {
    let server = TestServer::start();
    let flow = load(&FOREACH_HTTP.replace("CONCURRENCY", "4"));
    let mut event = server.event();
    event["delays"] = json!([250, 250, 250, 250, 250, 250, 250, 250]);
    let run = run_flow(&flow, event).await;
    assert_eq!(run.status, Status::Succeeded);
    let max = server.state.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=4).contains(&max), "max in flight {max}");
    assert_eq!(server.hits(), 8);
}

#[tokio::test]
async fn foreach_is_sequential_by_default() {
    let server = TestServer::start();
    let flow = load(&FOREACH_HTTP.replace("    concurrency: CONCURRENCY\n", ""));
    let mut event = server.event();
    event["delays"] = json!([50, 50, 50]);
    let run = run_flow(&flow, event).await;
    assert_eq!(run.status, Status::Succeeded);
    assert_eq!(server.state.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn foreach_fails_when_an_iteration_fails_and_runs_the_others() {
    let run = run_flow(
        &load(
            r#"
name: loop-failure
trigger: {type: manual}
actions:
  each:
    type: foreach
    items: "{{ triggerBody() }}"
    actions:
      check: {type: parse_json, content: "{{ item() }}"}
"#,
        ),
        json!(["1", "{oops", "3"]),
    )
    .await;
    let each = action(&run, "each");
    assert_eq!(each.status, Status::Failed);
    let statuses: Vec<Status> = each.iterations.as_ref().unwrap().iter().map(|it| it.status).collect();
    assert_eq!(statuses, vec![Status::Succeeded, Status::Failed, Status::Succeeded]);
    assert_eq!(run.status, Status::Failed);
}

#[tokio::test]
async fn foreach_items_must_be_an_array() {
    let run = run_flow(
        &load(
            r#"
name: loop-not-array
trigger: {type: manual}
actions:
  each:
    type: foreach
    items: "{{ triggerBody() }}"
    actions:
      x: {type: compose, inputs: 1}
"#,
        ),
        json!({"not": "an array"}),
    )
    .await;
    assert_eq!(status(&run, "each"), Status::Failed);
    assert_eq!(error_code(&run, "each"), "InvalidTemplate");
}

// ---------------------------------------------------------------------------------------------
// Until (§3.5)

#[tokio::test]
async fn until_stops_when_its_condition_holds_and_runs_at_least_once() {
    let run = run_yaml(
        r#"
name: until-condition
trigger: {type: manual}
actions:
  n: {type: initialize_variable, name: n, variable_type: integer, value: 0}
  count:
    type: until
    condition: "{{ variables('n') >= 3 }}"
    actions:
      step: {type: increment_variable, name: n}
  once:
    type: until
    condition: "{{ true }}"
    actions:
      step_once: {type: increment_variable, name: n}
"#,
    )
    .await;
    assert_eq!(action(&run, "count").iterations.as_ref().unwrap().len(), 3);
    assert_eq!(action(&run, "once").iterations.as_ref().unwrap().len(), 1);
    assert_eq!(status(&run, "count"), Status::Succeeded);
}

#[tokio::test]
async fn until_stops_at_its_count_limit_without_failing() {
    let run = run_yaml(
        r#"
name: until-count
trigger: {type: manual}
actions:
  forever:
    type: until
    condition: "{{ false }}"
    limit: {count: 4}
    actions:
      tick: {type: compose, inputs: tick}
"#,
    )
    .await;
    assert_eq!(status(&run, "forever"), Status::Succeeded);
    assert_eq!(action(&run, "forever").iterations.as_ref().unwrap().len(), 4);
    assert_eq!(outputs(&run, "forever")["stopped_by"], json!("count"));
}

#[tokio::test(start_paused = true)]
async fn until_stops_at_its_timeout_between_iterations() {
    let run = run_yaml(
        r#"
name: until-timeout
trigger: {type: manual}
actions:
  poll:
    type: until
    condition: "{{ false }}"
    limit: {count: 100, timeout: PT25M}
    actions:
      wait: {type: delay, duration: PT10M}
"#,
    )
    .await;
    // Checked after each iteration: 10 and 20 minutes are under the limit, 30 is not.
    assert_eq!(action(&run, "poll").iterations.as_ref().unwrap().len(), 3);
    assert_eq!(outputs(&run, "poll")["stopped_by"], json!("timeout"));
    assert_eq!(status(&run, "poll"), Status::Succeeded);
}

#[tokio::test]
async fn until_takes_the_status_of_its_last_iteration() {
    let run = run_yaml(
        r#"
name: until-last
trigger: {type: manual}
actions:
  n: {type: initialize_variable, name: n, variable_type: integer, value: 0}
  retrying:
    type: until
    condition: "{{ variables('n') >= 2 }}"
    actions:
      step: {type: increment_variable, name: n}
      fails_first_time: {type: parse_json, content: "{{ '{' if variables('n') == 1 else '{}' }}"}
"#,
    )
    .await;
    let iterations = action(&run, "retrying").iterations.as_ref().unwrap();
    assert_eq!(iterations[0].status, Status::Failed);
    assert_eq!(iterations[1].status, Status::Succeeded);
    assert_eq!(status(&run, "retrying"), Status::Succeeded);
}

// ---------------------------------------------------------------------------------------------
// Variables (§3.6)

#[tokio::test]
async fn initialize_variable_checks_the_declared_type() {
    let run = run_yaml(
        r#"
name: init
trigger: {type: manual}
actions:
  good: {type: initialize_variable, name: count, variable_type: integer, value: 3}
  bad: {type: initialize_variable, name: label, variable_type: integer, value: "three", run_after: {}}
  defaulted: {type: initialize_variable, name: items, variable_type: array, run_after: {}}
  read: {type: compose, inputs: "{{ variables('count') }}", run_after: {good: [succeeded]}}
"#,
    )
    .await;
    assert_eq!(outputs(&run, "read"), json!(3));
    assert_eq!(status(&run, "bad"), Status::Failed);
    assert_eq!(error_code(&run, "bad"), "InvalidVariableType");
    assert_eq!(outputs(&run, "defaulted")["value"], json!([]));
}

#[tokio::test]
async fn set_variable_replaces_the_value_and_keeps_the_type() {
    let run = run_yaml(
        r#"
name: set
trigger: {type: manual}
actions:
  init: {type: initialize_variable, name: s, variable_type: string, value: a}
  set: {type: set_variable, name: s, value: b}
  wrong: {type: set_variable, name: s, value: 5}
  read: {type: compose, inputs: "{{ variables('s') }}", run_after: {wrong: [failed]}}
"#,
    )
    .await;
    assert_eq!(status(&run, "wrong"), Status::Failed);
    assert_eq!(outputs(&run, "read"), json!("b"));
}

#[tokio::test]
async fn increment_variable_adds_by_default_one() {
    let run = run_yaml(
        r#"
name: increment
trigger: {type: manual}
actions:
  init: {type: initialize_variable, name: n, variable_type: integer, value: 10}
  plus_one: {type: increment_variable, name: n}
  plus_five: {type: increment_variable, name: n, by: 5}
  f: {type: initialize_variable, name: f, variable_type: float, value: 0.5}
  plus_half: {type: increment_variable, name: f, by: 0.25}
  read: {type: compose, inputs: ["{{ variables('n') }}", "{{ variables('f') }}"]}
"#,
    )
    .await;
    assert_eq!(outputs(&run, "read"), json!([16, 0.75]));
}

#[tokio::test]
async fn decrement_variable_subtracts() {
    let run = run_yaml(
        r#"
name: decrement
trigger: {type: manual}
actions:
  init: {type: initialize_variable, name: n, variable_type: integer, value: 10}
  minus_one: {type: decrement_variable, name: n}
  minus_four: {type: decrement_variable, name: n, by: 4}
  bad: {type: decrement_variable, name: n, by: "{{ 'x' }}"}
  read: {type: compose, inputs: "{{ variables('n') }}", run_after: {bad: [failed]}}
"#,
    )
    .await;
    assert_eq!(outputs(&run, "read"), json!(5));
    assert_eq!(error_code(&run, "bad"), "InvalidInputs");
}

#[tokio::test]
async fn append_to_array_variable_adds_one_item() {
    let run = run_yaml(
        r#"
name: append-array
trigger: {type: manual}
actions:
  init: {type: initialize_variable, name: a, variable_type: array, value: [1, 2, 3]}
  add: {type: append_to_array_variable, name: a, value: red}
  add_object: {type: append_to_array_variable, name: a, value: {k: v}}
  read: {type: compose, inputs: "{{ variables('a') }}"}
"#,
    )
    .await;
    assert_eq!(outputs(&run, "read"), json!([1, 2, 3, "red", {"k": "v"}]));
}

#[tokio::test]
async fn append_to_string_variable_concatenates() {
    let run = run_yaml(
        r#"
name: append-string
trigger: {type: manual}
actions:
  init: {type: initialize_variable, name: s, variable_type: string, value: abc}
  add: {type: append_to_string_variable, name: s, value: def}
  add_number: {type: append_to_string_variable, name: s, value: 12}
  read: {type: compose, inputs: "{{ variables('s') }}"}
"#,
    )
    .await;
    assert_eq!(outputs(&run, "read"), json!("abcdef12"));
}

#[tokio::test]
async fn variables_take_every_update_from_concurrent_iterations() {
    let run = run_flow(
        &load(
            r#"
name: concurrent-increments
trigger: {type: manual}
actions:
  n: {type: initialize_variable, name: n, variable_type: integer, value: 0}
  each:
    type: foreach
    items: "{{ triggerBody() }}"
    concurrency: 20
    actions:
      pause: {type: delay, duration: PT0S}
      add: {type: increment_variable, name: n, by: "{{ item() }}"}
  read: {type: compose, inputs: "{{ variables('n') }}"}
"#,
        ),
        json!((1..=40).collect::<Vec<i64>>()),
    )
    .await;
    assert_eq!(outputs(&run, "read"), json!(820));
}

// ---------------------------------------------------------------------------------------------
// Data actions (§3.7 - §3.11)

#[tokio::test]
async fn select_filter_and_join_transform_arrays() {
    let run = run_yaml(
        r#"
name: data
trigger: {type: manual}
actions:
  numbers: {type: compose, inputs: [1, 3, 0, 5, 4, 2]}
  big: {type: filter, from: "{{ body('numbers') }}", where: "{{ item() > 2 }}"}
  shaped: {type: select, from: "{{ body('big') }}", map: {number: "{{ item() }}"}}
  joined: {type: join, from: "{{ body('big') }}", separator: ","}
"#,
    )
    .await;
    assert_eq!(outputs(&run, "big"), json!([3, 5, 4]));
    assert_eq!(outputs(&run, "shaped"), json!([{"number": 3}, {"number": 5}, {"number": 4}]));
    assert_eq!(outputs(&run, "joined"), json!("3,5,4"));
}

#[tokio::test]
async fn parse_json_fails_when_content_breaks_the_schema() {
    let run = run_flow(
        &load(
            r#"
name: parse
trigger: {type: manual}
actions:
  parsed:
    type: parse_json
    content: "{{ triggerBody().raw }}"
    schema:
      type: object
      required: [id]
      properties: {id: {type: string}}
"#,
        ),
        json!({"raw": "{\"id\": null}"}),
    )
    .await;
    assert_eq!(status(&run, "parsed"), Status::Failed);
    assert_eq!(error_code(&run, "parsed"), "ValidationFailed");
    let message = &action(&run, "parsed").error.as_ref().unwrap().message;
    assert!(message.contains("/id"), "{message}");
}

#[tokio::test]
async fn parse_json_gives_the_parsed_value() {
    let run = run_flow(
        &load(
            r#"
name: parse-ok
trigger: {type: manual}
actions:
  parsed: {type: parse_json, content: "{{ triggerBody() }}", schema: {type: object, required: [id]}}
  id: {type: compose, inputs: "{{ body('parsed').id }}"}
"#,
        ),
        json!("{\"id\": \"A-1\"}"),
    )
    .await;
    assert_eq!(outputs(&run, "id"), json!("A-1"));
}

#[tokio::test]
async fn expression_errors_fail_with_invalid_template() {
    let run = run_yaml(
        r#"
name: bad-expression
trigger: {type: manual}
actions:
  broken: {type: compose, inputs: "{{ int('never_ran') }}"}
"#,
    )
    .await;
    assert_eq!(status(&run, "broken"), Status::Failed);
    let error = action(&run, "broken").error.clone().unwrap();
    assert_eq!(error.code, "InvalidTemplate");
    assert!(error.message.contains("never_ran"), "{}", error.message);
}

#[tokio::test(start_paused = true)]
async fn delay_waits_for_a_duration_or_until_a_timestamp() {
    let run = run_yaml(
        r#"
name: delays
trigger: {type: manual}
actions:
  short: {type: delay, duration: PT90S}
  until: {type: delay, until: "2030-01-01T01:00:00Z"}
"#,
    )
    .await;
    let short = action(&run, "short");
    assert_eq!(gap(short.started_at.unwrap(), short.ended_at.unwrap()), Duration::from_secs(90));
    let until = action(&run, "until");
    assert_eq!(until.ended_at.unwrap(), "2030-01-01T01:00:00Z".parse::<Timestamp>().unwrap());
}

// ---------------------------------------------------------------------------------------------
// Terminate (§2.8)

const TERMINATE_FLOW: &str = r#"
name: terminating
trigger: {type: manual}
actions:
  long_running: {type: delay, duration: PT1H}
  quick: {type: delay, duration: PT1S, run_after: {}}
  stop:
    type: terminate
    status: STATUS
    code: NoReferral
    message: "nothing to sync for {{ triggerBody() }}"
  later: {type: compose, inputs: never}
"#;

async fn terminate_with(status_text: &str) -> Run {
    run_flow(&load(&TERMINATE_FLOW.replace("STATUS", status_text)), json!("r-1")).await
}

#[tokio::test(start_paused = true)]
async fn terminate_failed_ends_the_run_with_its_error() {
    let run = terminate_with("failed").await;
    assert_eq!(run.status, Status::Failed);
    let error = run.error.clone().unwrap();
    assert_eq!((error.code.as_str(), error.message.as_str()), ("NoReferral", "nothing to sync for r-1"));
    assert_eq!(status(&run, "stop"), Status::Succeeded);
    assert_eq!(status(&run, "long_running"), Status::Cancelled);
    assert_eq!(status(&run, "later"), Status::Skipped);
    // The hour-long delay was cut short, not waited for.
    assert!(gap(run.started_at, run.ended_at) < Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn terminate_succeeded_overrides_failures() {
    let yaml = TERMINATE_FLOW.replace("STATUS", "succeeded").replace(
        "  quick: {type: delay, duration: PT1S, run_after: {}}",
        &format!(
            "  quick: {FAILING}\n  after_quick: {{type: compose, inputs: x, run_after: {{quick: [failed]}}}}"
        ),
    );
    let run = run_flow(&load(&yaml), json!("r-1")).await;
    assert_eq!(status(&run, "quick"), Status::Failed);
    assert_eq!(run.status, Status::Succeeded);
    assert!(run.error.is_none());
    assert_eq!(status(&run, "later"), Status::Skipped);
}

#[tokio::test(start_paused = true)]
async fn terminate_cancelled_cancels_the_run() {
    let run = terminate_with("cancelled").await;
    assert_eq!(run.status, Status::Cancelled);
    assert!(run.error.is_none());
    assert_eq!(status(&run, "long_running"), Status::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_run_cancels_running_actions() {
    let flow = load(
        r#"
name: cancellable
trigger: {type: manual}
actions:
  wait: {type: delay, duration: PT1H}
  after: {type: compose, inputs: x}
"#,
    );
    let options = options();
    let cancel: CancelToken = options.cancel.clone();
    let canceller = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        cancel.cancel();
    };
    let (run, ()) = tokio::join!(engine::run(&flow, TriggerEvent::default(), &options), canceller);
    assert_eq!(run.status, Status::Cancelled);
    assert_eq!(status(&run, "wait"), Status::Cancelled);
    assert_eq!(status(&run, "after"), Status::Skipped);
}

// ---------------------------------------------------------------------------------------------
// Timeouts (§2.6)

#[tokio::test(start_paused = true)]
async fn action_timeout_marks_it_timed_out_and_run_after_can_follow() {
    let run = run_yaml(
        r#"
name: timeouts
trigger: {type: manual}
actions:
  slow: {type: delay, duration: PT10M, timeout: PT30S}
  on_timeout: {type: compose, inputs: handled, run_after: {slow: [timed_out]}}
"#,
    )
    .await;
    let slow = action(&run, "slow");
    assert_eq!(slow.status, Status::TimedOut);
    assert_eq!(slow.error.as_ref().unwrap().code, "ActionTimedOut");
    assert_eq!(gap(slow.started_at.unwrap(), slow.ended_at.unwrap()), Duration::from_secs(30));
    assert_eq!(status(&run, "on_timeout"), Status::Succeeded);
    assert_eq!(run.status, Status::Succeeded);
}

// ---------------------------------------------------------------------------------------------
// Retries (§2.5)

const HTTP_FLOW: &str = r#"
name: calling
trigger: {type: manual}
actions:
  call:
    type: http
    method: METHOD
    url: "http://{{ triggerBody().addr }}/scripted"
    body: {hello: world}
    RETRY
"#;

fn http_flow(method: &str, retry: &str) -> Flow {
    load(&HTTP_FLOW.replace("METHOD", method).replace("RETRY", retry))
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_sets_the_wait_between_attempts() {
    let server = TestServer::start();
    server.script(429, &[("retry-after", "7")]);
    server.script(503, &[("retry-after", "3")]);
    let run = run_flow(&http_flow("GET", ""), server.event()).await;
    let call = action(&run, "call");
    assert_eq!(call.status, Status::Succeeded);
    assert_eq!(call.attempts, 3);
    assert_eq!(server.hits(), 3);
    let history = &call.retry_history;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].error.code, "Http429");
    assert_eq!(history[1].error.code, "Http503");
    let first_wait = gap(history[0].ended_at, history[1].started_at);
    assert!(first_wait >= Duration::from_secs(7) && first_wait < Duration::from_secs(8), "{first_wait:?}");
    let second_wait = gap(history[1].ended_at, call.ended_at.unwrap());
    assert!(second_wait >= Duration::from_secs(3) && second_wait < Duration::from_secs(4), "{second_wait:?}");
    assert_eq!(outputs(&run, "call")["statusCode"], json!(200));
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_is_read_against_the_clock() {
    let server = TestServer::start();
    // The test clock reads 2030-01-01T00:00:00Z at the start of the run.
    server.script(429, &[("retry-after", "Tue, 01 Jan 2030 00:01:00 GMT")]);
    let run = run_flow(&http_flow("GET", ""), server.event()).await;
    let call = action(&run, "call");
    assert_eq!(call.attempts, 2);
    let wait = gap(call.retry_history[0].ended_at, call.ended_at.unwrap());
    assert!(wait >= Duration::from_secs(59) && wait <= Duration::from_secs(61), "{wait:?}");
}

#[tokio::test(start_paused = true)]
async fn default_policy_retries_five_hundreds_four_times_then_fails_with_the_response() {
    let server = TestServer::start();
    for _ in 0..5 {
        server.script(500, &[]);
    }
    let run = run_flow(&http_flow("GET", ""), server.event()).await;
    let call = action(&run, "call");
    assert_eq!(call.status, Status::Failed);
    assert_eq!(call.attempts, 5);
    assert_eq!(server.hits(), 5);
    assert_eq!(call.outputs.as_ref().unwrap()["statusCode"], json!(500));
    assert_eq!(call.error.as_ref().unwrap().code, "Http500");
    // Exponential waits: the first in [5 s, 7 s], the fourth capped at 1 h but at least 28 s.
    let waits: Vec<Duration> =
        call.retry_history.windows(2).map(|w| gap(w[0].ended_at, w[1].started_at)).collect();
    assert!(waits[0] >= Duration::from_secs(5) && waits[0] <= Duration::from_secs(7), "{waits:?}");
    assert!(waits[3] >= Duration::from_secs(28) && waits[3] <= Duration::from_secs(56), "{waits:?}");
}

#[tokio::test(start_paused = true)]
async fn fixed_policy_waits_its_interval_count_times() {
    let server = TestServer::start();
    for _ in 0..5 {
        server.script(503, &[]);
    }
    let run =
        run_flow(&http_flow("GET", "retry: {type: fixed, count: 2, interval: PT5S}"), server.event()).await;
    let call = action(&run, "call");
    assert_eq!(call.attempts, 3);
    for pair in call.retry_history.windows(2) {
        let wait = gap(pair[0].ended_at, pair[1].started_at);
        assert!(wait >= Duration::from_secs(5) && wait < Duration::from_secs(6), "{wait:?}");
    }
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = TestServer::start();
    server.script(404, &[]);
    let run = run_flow(&http_flow("GET", ""), server.event()).await;
    let call = action(&run, "call");
    assert_eq!(call.status, Status::Failed);
    assert_eq!(call.attempts, 1);
    assert_eq!(server.hits(), 1);
    assert_eq!(call.outputs.as_ref().unwrap()["body"], json!({"status": 404}));
}

#[tokio::test]
async fn connection_failures_are_retried() {
    // Bind and drop a listener to get a loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let flow = http_flow("GET", "retry: {type: fixed, count: 2, interval: PT0S}");
    let run = run_flow(&flow, json!({"addr": format!("127.0.0.1:{port}")})).await;
    let call = action(&run, "call");
    assert_eq!(call.status, Status::Failed);
    assert_eq!(call.attempts, 3);
    assert_eq!(call.error.as_ref().unwrap().code, "ConnectionFailed");
}

// ---------------------------------------------------------------------------------------------
// HTTP and dry-run

#[tokio::test]
async fn http_action_sends_and_records_the_response() {
    let server = TestServer::start();
    let run = run_flow(&http_flow("POST", ""), server.event()).await;
    assert_eq!(status(&run, "call"), Status::Succeeded);
    assert_eq!(server.state.bodies.lock().unwrap().as_slice(), &[json!({"hello": "world"})]);
    let call = outputs(&run, "call");
    assert_eq!(call["statusCode"], json!(200));
    assert_eq!(call["body"], json!({"status": 200}));
    assert_eq!(action(&run, "call").inputs.as_ref().unwrap()["method"], json!("POST"));
}

#[tokio::test]
async fn dry_run_holds_back_writes_and_sends_reads() {
    let server = TestServer::start();
    let mut options = options();
    options.http = test_client(true);
    let write = engine::run(&http_flow("POST", ""), TriggerEvent::from_body(server.event()), &options).await;
    assert_eq!(server.hits(), 0);
    assert!(write.dry_run);
    let held = outputs(&write, "call");
    assert_eq!(held["dry_run"], json!(true));
    assert_eq!(held["request"]["method"], json!("POST"));
    assert_eq!(held["request"]["url"], json!(format!("http://{}/scripted", server.addr)));
    assert_eq!(held["request"]["body"], json!({"hello": "world"}));

    let read = engine::run(&http_flow("GET", ""), TriggerEvent::from_body(server.event()), &options).await;
    assert_eq!(server.hits(), 1);
    assert_eq!(outputs(&read, "call")["statusCode"], json!(200));
}

#[tokio::test]
async fn credentials_are_masked_in_the_record() {
    let mut options = options();
    options.http = test_client(true);
    let flow = load(
        r#"
name: auth
trigger: {type: manual}
actions:
  call:
    type: http
    method: POST
    url: http://127.0.0.1:9/items
    authentication: {type: bearer, token: s3cr3t-token}
"#,
    );
    let run = engine::run(&flow, TriggerEvent::default(), &options).await;
    let record = serde_json::to_string(&run).unwrap();
    assert!(!record.contains("s3cr3t-token"), "{record}");
    assert_eq!(outputs(&run, "call")["request"]["headers"]["Authorization"], json!("Bearer ***"));
}

// ---------------------------------------------------------------------------------------------
// Mocked calls (the seam `coflow test` uses)

/// Answers every call from a script, one answer per attempt, and remembers what it saw.
#[derive(Debug)]
struct MockScript {
    answers: Mutex<VecDeque<MockAnswer>>,
    seen: Mutex<Vec<(String, String, u32, Value)>>,
}

impl MockScript {
    fn new(answers: Vec<MockAnswer>) -> Arc<Self> {
        Arc::new(MockScript { answers: Mutex::new(answers.into()), seen: Mutex::default() })
    }
}

impl Mocks for MockScript {
    fn answer(&self, call: &OutboundCall<'_>) -> Option<MockAnswer> {
        let seen = (call.action.to_string(), call.target.to_string(), call.attempt, call.inputs.clone());
        self.seen.lock().unwrap().push(seen);
        self.answers.lock().unwrap().pop_front()
    }
}

fn answer(status: u16, body: Value) -> MockAnswer {
    MockAnswer::Response(HttpResponse { status, headers: Default::default(), body })
}

const QUERY_FLOW: &str = r#"
name: mocked
trigger: {type: manual}
actions:
  find:
    type: salesforce.query
    inputs: {soql: "SELECT Id FROM Account WHERE Name = {{ soql_quote(triggerBody().name) }}"}
  first_id:
    type: compose
    inputs: "{{ first(body('find').records).Id }}"
"#;

#[tokio::test(start_paused = true)]
async fn mocks_answer_each_attempt_in_place_of_the_connection() {
    let mocks = MockScript::new(vec![
        answer(503, json!({"error": "busy"})),
        answer(200, json!({"totalSize": 1, "records": [{"Id": "001A"}]})),
    ]);
    let mut options = options();
    options.mocks = Some(mocks.clone());
    let run =
        engine::run(&load(QUERY_FLOW), TriggerEvent::from_body(json!({"name": "Fabrikam"})), &options).await;
    assert!(run.succeeded(), "no connection is configured, yet the mocked call succeeds: {run:#?}");
    let find = action(&run, "find");
    assert_eq!(find.attempts, 2);
    assert_eq!(find.retry_history[0].error.code, "Http503");
    assert_eq!(find.inputs, Some(json!({"soql": "SELECT Id FROM Account WHERE Name = 'Fabrikam'"})));
    assert_eq!(outputs(&run, "find")["statusCode"], json!(200));
    assert_eq!(outputs(&run, "first_id"), json!("001A"));
    let seen = mocks.seen.lock().unwrap().clone();
    let attempts: Vec<(String, String, u32)> =
        seen.iter().map(|(a, t, n, _)| (a.clone(), t.clone(), *n)).collect();
    assert_eq!(
        attempts,
        [
            ("find".to_string(), "salesforce.query".to_string(), 1),
            ("find".to_string(), "salesforce.query".to_string(), 2)
        ]
    );
    assert_eq!(seen[0].3, json!({"soql": "SELECT Id FROM Account WHERE Name = 'Fabrikam'"}));
}

#[tokio::test]
async fn a_refused_call_fails_at_once_and_an_unanswered_one_is_left_to_the_connection() {
    let refused = MockScript::new(vec![MockAnswer::Refused(ActionError::new("NotMocked", "no mock"))]);
    let mut options = options();
    options.mocks = Some(refused);
    let run = engine::run(&load(QUERY_FLOW), TriggerEvent::from_body(json!({"name": "x"})), &options).await;
    assert_eq!(status(&run, "find"), Status::Failed);
    assert_eq!(action(&run, "find").attempts, 1);
    assert_eq!(error_code(&run, "find"), "NotMocked");

    // No answer: the call goes to the connection, and there is none.
    options.mocks = Some(MockScript::new(Vec::new()));
    let run = engine::run(&load(QUERY_FLOW), TriggerEvent::from_body(json!({"name": "x"})), &options).await;
    assert_eq!(error_code(&run, "find"), "ConnectionNotFound");
}

#[tokio::test]
async fn a_mocked_http_answer_is_recorded_like_a_real_one() {
    let mocks = MockScript::new(vec![answer(201, json!({"id": 7}))]);
    let mut options = options();
    options.mocks = Some(mocks.clone());
    let flow = load(
        r#"
name: mocked-http
trigger: {type: manual}
actions:
  call:
    type: http
    method: POST
    url: http://192.0.2.1/items
    authentication: {type: bearer, token: s3cr3t-token}
    body: {name: widget}
"#,
    );
    let run = engine::run(&flow, TriggerEvent::default(), &options).await;
    assert_eq!(outputs(&run, "call"), json!({"statusCode": 201, "headers": {}, "body": {"id": 7}}));
    let seen = mocks.seen.lock().unwrap().clone();
    assert_eq!(seen[0].1, "http");
    assert_eq!(seen[0].3["headers"]["Authorization"], json!("Bearer ***"), "mocks see masked credentials");
}

#[tokio::test]
async fn the_run_record_holds_each_variable_s_final_value() {
    let run = run_yaml(
        r#"
name: vars
trigger: {type: manual}
actions:
  count: {type: initialize_variable, name: count, variable_type: integer, value: 1}
  names: {type: initialize_variable, name: names, variable_type: array}
  loop:
    type: foreach
    items: [a, b, c]
    actions:
      add: {type: increment_variable, name: count}
      remember: {type: append_to_array_variable, name: names, value: "{{ item() }}"}
"#,
    )
    .await;
    let variables: Vec<(&str, &Value)> = run.variables.iter().map(|(k, v)| (k.as_str(), v)).collect();
    assert_eq!(variables, [("count", &json!(4)), ("names", &json!(["a", "b", "c"]))]);
    let record = serde_json::to_value(&run).unwrap();
    assert_eq!(record["variables"], json!({"count": 4, "names": ["a", "b", "c"]}));
}

// ---------------------------------------------------------------------------------------------
// Response (§2.9)

/// What the observer saw of one action: name, enclosing loops, status.
type Seen = (String, Vec<(String, usize)>, Status);

#[derive(Debug, Default)]
struct Recorder {
    finished: Mutex<Vec<Seen>>,
    responses: Mutex<Vec<ResponseRecord>>,
}

impl Observer for Recorder {
    fn action_finished(&self, event: &ActionEvent<'_>) {
        self.finished.lock().unwrap().push((
            event.name.to_string(),
            event.iterations.to_vec(),
            event.result.status,
        ));
    }
    fn response(&self, response: &ResponseRecord) {
        self.responses.lock().unwrap().push(response.clone());
    }
}

#[tokio::test]
async fn response_is_recorded_on_the_run_and_a_second_one_fails() {
    let recorder = Arc::new(Recorder::default());
    let mut options = options();
    options.observer = Some(recorder.clone());
    let flow = load(
        r#"
name: answering
trigger: {type: http}
actions:
  answer:
    type: response
    status: 201
    headers: {x-run: "yes"}
    body: {id: "{{ triggerBody().id }}"}
  again: {type: response, status: 200, body: late}
"#,
    );
    let run = engine::run(&flow, TriggerEvent::from_body(json!({"id": "r-9"})), &options).await;
    let response = run.response.clone().expect("response recorded");
    assert_eq!(response.status, 201);
    assert_eq!(response.headers["x-run"], "yes");
    assert_eq!(response.body, json!({"id": "r-9"}));
    assert_eq!(status(&run, "again"), Status::Failed);
    assert_eq!(error_code(&run, "again"), "ResponseAlreadySent");
    assert_eq!(recorder.responses.lock().unwrap().as_slice(), &[response]);
}

// ---------------------------------------------------------------------------------------------
// Observer and run record (§7, FLOW-LANGUAGE.md)

#[tokio::test]
async fn observer_sees_every_action_as_it_completes() {
    let recorder = Arc::new(Recorder::default());
    let mut options = options();
    options.observer = Some(recorder.clone());
    let flow = load(
        r#"
name: observed
trigger: {type: manual}
actions:
  first: {type: compose, inputs: 1}
  each:
    type: foreach
    items: [a, b]
    actions:
      inner: {type: compose, inputs: "{{ item() }}"}
"#,
    );
    engine::run(&flow, TriggerEvent::default(), &options).await;
    let finished = recorder.finished.lock().unwrap().clone();
    let names: Vec<&str> = finished.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, vec!["first", "inner", "inner", "each"]);
    assert_eq!(finished[1].1, vec![("each".to_string(), 0)]);
    assert_eq!(finished[2].1, vec![("each".to_string(), 1)]);
}

#[tokio::test]
async fn run_record_has_the_documented_shape() {
    let flow = load(
        r#"
name: shaped
trigger: {type: manual}
actions:
  group:
    type: scope
    actions:
      inside: {type: compose, inputs: "{{ triggerBody().x }}"}
  each:
    type: foreach
    items: [1]
    actions:
      looped: {type: compose, inputs: "{{ item() }}"}
"#,
    );
    let run = engine::run(
        &flow,
        TriggerEvent::from_json(json!({"headers": {"h": "1"}, "body": {"x": 7}})),
        &options(),
    )
    .await;
    let record = serde_json::to_value(&run).unwrap();
    assert_eq!(record["flow"], json!("shaped"));
    assert_eq!(record["status"], json!("succeeded"));
    assert_eq!(record["trigger"]["outputs"], json!({"headers": {"h": "1"}, "body": {"x": 7}}));
    assert_eq!(record["error"], Value::Null);
    let actions = record["actions"].as_object().unwrap();
    assert_eq!(actions.keys().collect::<Vec<_>>(), vec!["group", "inside", "each"]);
    let inside = &actions["inside"];
    assert_eq!(inside["status"], json!("succeeded"));
    assert_eq!(inside["inputs"], json!(7));
    assert_eq!(inside["outputs"], json!(7));
    assert_eq!(inside["attempts"], json!(1));
    assert_eq!(inside["error"], Value::Null);
    assert!(inside["started_at"].as_str().unwrap().parse::<Timestamp>().is_ok());
    let iteration = &actions["each"]["iterations"][0];
    assert_eq!(iteration["index"], json!(0));
    assert_eq!(iteration["status"], json!("succeeded"));
    assert_eq!(iteration["actions"]["looped"]["outputs"], json!(1));
    assert!(run.run_id.len() >= 32);
    let back: Run = serde_json::from_value(record).unwrap();
    assert_eq!(back, run);
}

// ---------------------------------------------------------------------------------------------
// Connector actions

#[derive(Debug)]
struct FakeConnector {
    label: &'static str,
    calls: AtomicUsize,
    failures_first: usize,
}

impl FakeConnector {
    fn new(label: &'static str, failures_first: usize) -> Arc<FakeConnector> {
        Arc::new(FakeConnector { label, calls: AtomicUsize::new(0), failures_first })
    }
}

const FAKE_OPERATIONS: &[OperationSpec] = &[
    OperationSpec {
        name: "get_record",
        effect: Effect::Read,
        description: "Echoes its inputs.",
        required_inputs: &[],
    },
    OperationSpec {
        name: "create_record",
        effect: Effect::Write,
        description: "Creates a record.",
        required_inputs: &[],
    },
];

impl Connector for FakeConnector {
    fn kind(&self) -> &'static str {
        "salesforce"
    }
    fn operations(&self) -> &'static [OperationSpec] {
        FAKE_OPERATIONS
    }
    fn call<'a>(&'a self, call: OperationCall<'a>) -> BoxFuture<'a, Result<OperationOutput, ConnectorError>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.failures_first {
                return Err(ConnectorError::Status {
                    status: 503,
                    message: "busy".into(),
                    body: json!({"error": "busy"}),
                    retry_after: Some(Duration::from_secs(2)),
                });
            }
            match call.operation {
                "get_record" => Ok(OperationOutput {
                    status: Some(200),
                    headers: Default::default(),
                    body: json!({"connection": self.label, "got": call.inputs}),
                }),
                "create_record" => {
                    let request = HttpRequest {
                        method: "POST".into(),
                        url: "http://127.0.0.1:9/records".into(),
                        headers: Default::default(),
                        body: Some(call.inputs.clone()),
                    };
                    match call.http.send(&request, Effect::Write).await? {
                        Some(response) => Ok(OperationOutput {
                            status: Some(response.status),
                            headers: response.headers,
                            body: response.body,
                        }),
                        None => Ok(OperationOutput::default()),
                    }
                }
                other => Err(ConnectorError::UnknownOperation(other.to_string())),
            }
        })
    }
}

const CONNECTOR_FLOW: &str = r#"
name: connecting
connections: {primary: fake_a}
trigger: {type: manual}
actions:
  by_alias: {type: salesforce.get_record, connection: primary, inputs: {n: 1}}
  id: {type: compose, inputs: "{{ body('by_alias').connection }}"}
"#;

#[tokio::test]
async fn connector_alias_resolves_through_the_flow_connections() {
    let mut options = options();
    options.connections.insert("fake_a", FakeConnector::new("a", 0));
    options.connections.insert("fake_b", FakeConnector::new("b", 0));
    let run = engine::run(&load(CONNECTOR_FLOW), TriggerEvent::default(), &options).await;
    assert_eq!(outputs(&run, "id"), json!("a"));
    assert_eq!(outputs(&run, "by_alias")["body"]["got"], json!({"n": 1}));
}

#[tokio::test]
async fn connector_without_alias_needs_exactly_one_connection_of_its_kind() {
    let flow = load(
        r#"
name: implicit
trigger: {type: manual}
actions:
  call: {type: salesforce.get_record, inputs: {}}
"#,
    );
    let mut options = options();
    options.connections.insert("only", FakeConnector::new("only", 0));
    let run = engine::run(&flow, TriggerEvent::default(), &options).await;
    assert_eq!(outputs(&run, "call")["body"]["connection"], json!("only"));

    options.connections.insert("second", FakeConnector::new("second", 0));
    let run = engine::run(&flow, TriggerEvent::default(), &options).await;
    assert_eq!(status(&run, "call"), Status::Failed);
    assert_eq!(error_code(&run, "call"), "ConnectionNotFound");
}

#[tokio::test(start_paused = true)]
async fn connector_errors_are_retried_and_recorded() {
    let connector = FakeConnector::new("a", 2);
    let mut options = options();
    options.connections.insert("fake_a", connector.clone());
    let run = engine::run(&load(CONNECTOR_FLOW), TriggerEvent::default(), &options).await;
    let call = action(&run, "by_alias");
    assert_eq!(call.status, Status::Succeeded);
    assert_eq!(call.attempts, 3);
    assert_eq!(call.retry_history[0].error.code, "Http503");
    let wait = gap(call.retry_history[0].ended_at, call.retry_history[1].started_at);
    assert_eq!(wait, Duration::from_secs(2));
    assert_eq!(connector.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn connector_writes_are_held_back_in_a_dry_run() {
    let mut options = options();
    options.http = test_client(true);
    options.connections.insert("fake_a", FakeConnector::new("a", 0));
    let flow = load(
        r#"
name: connector-write
connections: {primary: fake_a}
trigger: {type: manual}
actions:
  make: {type: salesforce.create_record, connection: primary, inputs: {Name: Contoso}}
"#,
    );
    let run = engine::run(&flow, TriggerEvent::default(), &options).await;
    let held = outputs(&run, "make");
    assert_eq!(held["dry_run"], json!(true));
    assert_eq!(held["request"]["body"], json!({"Name": "Contoso"}));
    assert_eq!(held["request"]["url"], json!("http://127.0.0.1:9/records"));
}

// ---------------------------------------------------------------------------------------------
// Trigger events

#[test]
fn event_files_are_a_body_or_headers_and_body() {
    let full = TriggerEvent::from_json(json!({"headers": {"a": "1"}, "body": [1]}));
    assert_eq!(full.body, json!([1]));
    assert_eq!(full.headers.get("a"), Some(&json!("1")));
    let plain = TriggerEvent::from_json(json!({"body": 1, "other": 2}));
    assert_eq!(plain.body, json!({"body": 1, "other": 2}));
}

// ---------------------------------------------------------------------------------------------
// `coflow run`

fn coflow_run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_coflow"))
        .arg("run")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("coflow runs")
}

#[test]
fn coflow_run_dry_run_shows_the_held_back_write_in_full() {
    let output = coflow_run(&["flows/examples/hello.yaml", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("held back: POST https://greetings.example.com/api/greetings"), "{stdout}");
    assert!(stdout.contains("\"message\": \"Hello, world!\""), "{stdout}");
}

#[test]
fn coflow_run_json_prints_the_run_record_for_an_event_file() {
    let output = coflow_run(&[
        "flows/examples/hello.yaml",
        "--dry-run",
        "--json",
        "--event",
        "tests/fixtures/engine/event_ada.json",
    ]);
    assert!(output.status.success());
    let record: Value = serde_json::from_slice(&output.stdout).expect("stdout is the JSON run record");
    assert_eq!(record["status"], json!("succeeded"));
    assert_eq!(record["trigger"]["outputs"]["headers"]["x-source"], json!("test"));
    assert_eq!(record["actions"]["greeting"]["outputs"]["message"], json!("Hello, Ada!"));
}

#[test]
fn coflow_run_exits_one_when_the_run_fails() {
    let output = coflow_run(&["tests/fixtures/engine/catch_with_success_path.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(": failed in"), "{stdout}");
    assert!(stdout.contains("InvalidTemplate"), "{stdout}");
}

#[test]
fn coflow_run_explains_a_missing_event_file() {
    let output = coflow_run(&["flows/examples/hello.yaml", "--event", "no/such/event.json"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot read event file no/such/event.json"), "{stderr}");
}

const TWO_CALLS: &str = r#"
name: two-calls
trigger: {type: manual}
actions:
  first:
    type: http
    method: POST
    url: "http://{{ triggerBody().addr }}/scripted"
    body: {n: 1}
  second:
    type: http
    method: POST
    url: "http://{{ triggerBody().addr }}/scripted"
    body: {n: "{{ body('first').status }}"}
"#;

#[tokio::test]
async fn a_resumed_run_reuses_calls_that_succeeded_before_and_makes_the_rest() {
    let server = TestServer::start();
    let flow = load(TWO_CALLS);
    let first_time = run_flow(&flow, server.event()).await;
    assert_eq!(first_time.status, Status::Succeeded, "{:#?}", first_time.actions);
    assert_eq!(server.hits(), 2);

    // The process died after `first` was recorded: only `second` is sent again.
    let mut completed = std::collections::HashMap::new();
    completed.insert("first".to_string(), action(&first_time, "first").clone());
    let mut options = options();
    options.resume = Some(Arc::new(completed));
    let resumed = engine::run(&flow, TriggerEvent::from_body(server.event()), &options).await;
    assert_eq!(resumed.status, Status::Succeeded, "{:#?}", resumed.actions);
    assert_eq!(server.hits(), 3, "the first call was not made again");
    assert_eq!(action(&resumed, "first"), action(&first_time, "first"));
    assert_eq!(outputs(&resumed, "second")["body"], outputs(&first_time, "second")["body"]);
}

// ---------------------------------------------------------------------------------------------
// run_flow: child flows

/// Flows by name, for `run_flow`.
#[derive(Debug)]
struct Flows(Vec<Arc<Flow>>);

impl coflow::engine::FlowSource for Flows {
    fn flow(&self, name: &str) -> Option<Arc<Flow>> {
        self.0.iter().find(|f| f.name == name).cloned()
    }
}

const GREETER: &str = r#"
name: greeter
trigger: {type: manual}
actions:
  Check:
    type: if
    condition: "{{ empty(triggerBody().who) }}"
    then:
      Refuse:
        type: terminate
        status: failed
        code: NoName
        message: nobody to greet
  Answer:
    type: response
    status: 200
    body: {greeting: "Hello, {{ triggerBody().who }}!"}
"#;

const CALLER: &str = r#"
name: caller
trigger: {type: manual}
actions:
  Greet:
    type: run_flow
    flow: greeter
    body: {who: "{{ triggerBody().who }}"}
  Use_it:
    type: compose
    inputs: "{{ body('Greet').greeting }}"
"#;

async fn run_with_flows(flow: &Flow, flows: Vec<Flow>, body: Value) -> Run {
    let mut options = options();
    options.flows = Some(Arc::new(Flows(flows.into_iter().map(Arc::new).collect())));
    engine::run(flow, TriggerEvent::from_body(body), &options).await
}

#[tokio::test]
async fn run_flow_runs_the_child_and_outputs_its_response() {
    let run = run_with_flows(&load(CALLER), vec![load(GREETER)], json!({"who": "Ada"})).await;
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    assert_eq!(outputs(&run, "Greet")["status"], json!("succeeded"));
    assert_eq!(outputs(&run, "Greet")["body"], json!({"greeting": "Hello, Ada!"}));
    assert!(outputs(&run, "Greet")["run"].as_str().is_some_and(|id| id != run.run_id));
    assert_eq!(outputs(&run, "Use_it"), json!("Hello, Ada!"));
}

#[tokio::test]
async fn run_flow_fails_with_the_child_error() {
    let run = run_with_flows(&load(CALLER), vec![load(GREETER)], json!({"who": ""})).await;
    assert_eq!(run.status, Status::Failed);
    assert_eq!(error_code(&run, "Greet"), "ChildFlowFailed");
    let message = &action(&run, "Greet").error.as_ref().unwrap().message;
    assert!(message.contains("flow 'greeter' ended failed: nobody to greet"), "{message}");
    assert_eq!(status(&run, "Use_it"), Status::Skipped);
}

#[tokio::test]
async fn run_flow_names_a_missing_flow_and_stops_endless_nesting() {
    let run = run_with_flows(&load(CALLER), vec![], json!({"who": "Ada"})).await;
    assert_eq!(error_code(&run, "Greet"), "FlowNotFound");
    let ping = "name: ping\ntrigger: {type: manual}\nactions:\n  Call:\n    type: run_flow\n    flow: pong\n";
    let pong = "name: pong\ntrigger: {type: manual}\nactions:\n  Call:\n    type: run_flow\n    flow: ping\n";
    let run = run_with_flows(&load(ping), vec![load(ping), load(pong)], Value::Null).await;
    assert_eq!(run.status, Status::Failed);
    let message = &action(&run, "Call").error.as_ref().unwrap().message;
    assert!(message.contains("child flows are nested more than 8 deep"), "{message}");
}

#[test]
fn a_flow_cannot_run_itself() {
    let errors = coflow::flow::load_str(
        "name: me\ntrigger: {type: manual}\nactions:\n  Again:\n    type: run_flow\n    flow: me\n",
    )
    .unwrap_err()
    .to_string();
    assert!(errors.contains("a flow cannot run itself"), "{errors}");
}
