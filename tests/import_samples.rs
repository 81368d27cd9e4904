//! `coflow import` on real exports that people outside this project wrote and published
//! (`tests/fixtures/import/samples/*`, each with a SOURCE.md naming its repository, commit and
//! licence). Every file goes through the command line: import → validate → graph. The report
//! of each flow names exactly what needs attention, validation fails only on those
//! placeholders, and the flows whose logic stands on its own run with the statuses their
//! source's structure implies, calls answered by a local server or by mocks.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::any;
use coflow::connectors::HttpResponse;
use coflow::engine::{self, MockAnswer, Mocks, OutboundCall, Run, RunOptions, Status, TriggerEvent};
use coflow::import::{self, ImportedFlow};
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use serde_yaml::Value as Yaml;

// ---- the samples and what their reports must say ----------------------------------------------

/// An export of the samples folder and the flows it must yield.
struct Sample {
    /// Path under tests/fixtures/import/samples; a folder is an unpacked solution, zipped here.
    path: &'static str,
    flows: &'static [Expected],
}

/// One flow of a sample: its file name, and each report line needing attention as
/// (action, words of the reason).
struct Expected {
    file: &'static str,
    attention: &'static [(&'static str, &'static str)],
}

const XPATH: &str = "the function 'xpath' is not supported by coflow";

const SAMPLES: &[Sample] = &[
    Sample {
        path: "try-catch-finally/definition.json",
        flows: &[Expected { file: "pattern-try-catch-finally.yaml", attention: &[] }],
    },
    Sample {
        path: "always-reply-to-request/definition.json",
        flows: &[Expected { file: "pattern-always-reply-to-http-request.yaml", attention: &[] }],
    },
    Sample {
        path: "do-until-exception/definition.json",
        flows: &[Expected { file: "pattern-exception-handing-in-do-until-loop.yaml", attention: &[] }],
    },
    Sample {
        path: "notify-last-working-day/definition.json",
        flows: &[Expected {
            file: "send-a-notification-the-last-working-day-of-the-month-except-holidays.yaml",
            attention: &[
                ("(trigger)", "trigger conditions `@greater(utcNow(),addDays(startOfMonth("),
                (
                    "Send_notification_-_today_is_the_last_working_day_of_the_month",
                    "connector `shared_flowpush` (operation `SendEmailNotification`) has no coflow equivalent",
                ),
            ],
        }],
    },
    Sample {
        path: "outlook-lunch-conflicts/definition.json",
        flows: &[Expected {
            file: "outlook-check-if-conflicts-with-lunch.yaml",
            attention: &[
                (
                    "(trigger)",
                    "trigger conditions `@not(equals(triggerOutputs()?['body/ActionType'], 'deleted'))`",
                ),
                ("(trigger)", "`splitOn` (@triggerOutputs()?['body/value']) was not translated"),
                ("(trigger)", "trigger type `OpenApiConnectionNotification` has no coflow equivalent"),
                ("Get_event_(V3)", "connector `shared_office365` (operation `V3CalendarGetItem`)"),
                (
                    "Get_calendar_view_of_events_(V3)",
                    "connector `shared_office365` (operation `GetEventsCalendarViewV3`)",
                ),
                (
                    "Send_Decline_to_Internal_Contact",
                    "connector `shared_office365` (operation `RespondToEvent_V2`)",
                ),
                (
                    "Send_Polite_Tentative_Accept",
                    "connector `shared_office365` (operation `RespondToEvent_V2`)",
                ),
            ],
        }],
    },
    Sample {
        path: "working-with-xpath/definition.json",
        flows: &[Expected {
            file: "working-with-xpath-expressions.yaml",
            attention: &[
                ("Return_all_email_inside_array_1", XPATH),
                ("Return_all_id_inside_array", XPATH),
                ("Return_all_customers", XPATH),
                ("Return_a_single_array_with_all_first_names", XPATH),
                ("Return_all_email_inside_array", XPATH),
                ("Return_the_names_of_all_products_purchased", XPATH),
                ("Count_purchases_by_customer_with_id_007", XPATH),
                ("Return_all_reviews_written_by_customers", XPATH),
                ("Return_the_preferred_language_of_Yoda", XPATH),
                ("Return_the_total_loyalty_points_of_Han_Solo", XPATH),
                ("Return_customers_with_'Starships'_as_preference_category", XPATH),
                ("Return_product_rating_for_'Lightsaber'_by_Darth_Vader", XPATH),
                ("Return_all_products_purchased_by_Leia_Organa", XPATH),
                ("Return_the_email_of_a_customer_with_id_001", XPATH),
                ("Return_all_customers_id", XPATH),
                ("Return_date_of_birth_of_all_customers", XPATH),
                ("Return_the_first_customer_with_preference_category_'Starships'", XPATH),
                ("Return_the_last_customer_with_preference_category_'Starships'", XPATH),
                ("Return_the_rating_and_text_of_reviews_for_a_specific_product", XPATH),
                ("Return_date_of_birth_for_customers_with_prefered_language_'Galactic_Basic'", XPATH),
                ("Return_the_wishlist_products_and_priority_according_to_customer_id", XPATH),
                ("Return_loyalty_points_where_loyalty_status_eq_'Jedi_Master'", XPATH),
                ("Return_names_of_customers_who_purchased_a_'Lightsaber'", XPATH),
                ("Return_preferred_colors_when_loyalty_points_greater_than_20000", XPATH),
            ],
        }],
    },
    Sample {
        path: "task2calendar-solution",
        flows: &[
            Expected {
                file: "task2calendar-manual-flow.yaml",
                attention: &[
                    ("Get_default_calendar_id", "connector `shared_office365` (operation `HttpRequest`)"),
                    (
                        "Get_events_(V4)_with_task_category",
                        "connector `shared_office365` (operation `V4CalendarGetItems`)",
                    ),
                    ("Delete_event_(V2)", "connector `shared_office365` (operation `CalendarDeleteItem_V2`)"),
                    ("List_all_to-do_lists_(V2)", "connector `shared_todo` (operation `GetAllTodoListsV2`)"),
                    (
                        "List_to-do's_by_folder_(V2)",
                        "connector `shared_todo` (operation `ListToDosByFolderV2`)",
                    ),
                    (
                        "Create_event_(V4)_for_To-Do_task",
                        "connector `shared_office365` (operation `V4CalendarPostItem`)",
                    ),
                    ("Send_an_HTTP_request", "connector `shared_office365` (operation `HttpRequest`)"),
                    ("List_my_tasks", "connector `shared_planner` (operation `ListMyTasks_V2`)"),
                    (
                        "Create_event_(V4)_for_To-Do_task_2",
                        "connector `shared_office365` (operation `V4CalendarPostItem`)",
                    ),
                    ("Send_an_HTTP_request_2", "connector `shared_office365` (operation `HttpRequest`)"),
                ],
            },
            Expected {
                file: "task2calendar-scheduled-flow.yaml",
                attention: &[("Run_manual_Task2Calendar_flow", "it calls another flow (child flow)")],
            },
        ],
    },
    Sample {
        path: "logicappunit-loop/loop-workflow/workflow.json",
        flows: &[Expected { file: "loop-workflow.yaml", attention: &[] }],
    },
    Sample {
        path: "logicappunit-salesforce-upsert/managed-api-connector-test-workflow/workflow.json",
        flows: &[Expected {
            file: "managed-api-connector-test-workflow.yaml",
            attention: &[(
                "Send_a_confirmation_email",
                "connector `outlook` (operation `POST /v2/Mail`) has no coflow equivalent",
            )],
        }],
    },
    Sample {
        path: "logicappunit-http/http-workflow/workflow.json",
        flows: &[Expected {
            file: "http-workflow.yaml",
            attention: &[(
                "Update_Customer_Details_in_Service_Two",
                "`@appsetting('ServiceTwo-DefaultAddressType')`: at position 2: the function 'appsetting' is not supported by coflow",
            )],
        }],
    },
    Sample {
        path: "quickstart-logic-app-create/azuredeploy.json",
        flows: &[Expected { file: "logic-app-name.yaml", attention: &[] }],
    },
    Sample {
        path: "quickstart-logicapps-jobscheduler/azuredeploy.json",
        flows: &[
            Expected {
                file: "create-timer-job.yaml",
                attention: &[("TimerJob", "it calls another flow (child flow)")],
            },
            Expected {
                file: "timer-job.yaml",
                attention: &[("CreateTimerJob", "it calls another flow (child flow)")],
            },
        ],
    },
];

// ---- helpers ----------------------------------------------------------------------------------

fn sample(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/samples").join(path)
}

/// A fresh folder under the system's temporary folder, its own for each call (tests run in
/// parallel).
fn temp_dir(label: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("coflow-samples-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn coflow(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_coflow")).args(args).output().expect("coflow runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

/// The export file of a sample: the file itself, or its unpacked solution zipped as Power
/// Automate exports it.
fn export_file(path: &str, dir: &Path) -> PathBuf {
    let source = sample(path);
    if source.is_file() {
        return source;
    }
    let zip_path = dir.join(format!("{}.zip", path.replace('/', "_")));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).expect("zip file"));
    let mut entries = vec!["solution.xml".to_string(), "customizations.xml".to_string()];
    let mut workflows: Vec<String> = std::fs::read_dir(source.join("Workflows"))
        .expect("Workflows folder")
        .map(|e| format!("Workflows/{}", e.expect("entry").file_name().to_string_lossy()))
        .collect();
    workflows.sort();
    entries.extend(workflows);
    for entry in entries {
        zip.start_file(entry.as_str(), zip::write::SimpleFileOptions::default()).expect("zip entry");
        zip.write_all(&std::fs::read(source.join(&entry)).expect("solution file")).expect("zip write");
    }
    zip.finish().expect("zip finish");
    zip_path
}

/// The flows of a sample, translated in-process (the same text `coflow import` writes).
fn imported(path: &str) -> Vec<ImportedFlow> {
    let dir = temp_dir("read");
    let file = export_file(path, &dir);
    let sources = import::read_export(&file).unwrap_or_else(|e| panic!("{path}: {e}"));
    let flows = sources.iter().map(|s| import::translate(s, &import::kebab(&s.display_name))).collect();
    let _ = std::fs::remove_dir_all(&dir);
    flows
}

fn the_flow(path: &str, name: &str) -> ImportedFlow {
    let flows = imported(path);
    let names: Vec<String> = flows.iter().map(|f| f.name.clone()).collect();
    flows
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{path} has no flow {name}: {names:?}"))
}

/// The flow with every import placeholder replaced by a `compose` stand-in that succeeds, so
/// the translated parts around an untranslatable call can run. Stand-ins produce nothing the
/// source's call would have: tests assert only on the translated actions.
fn with_stand_ins(yaml: &str) -> coflow::flow::Flow {
    let mut doc: Yaml = serde_yaml::from_str(yaml).expect("imported YAML parses");
    if let Some(actions) = doc.get_mut("actions") {
        replace_placeholders(actions);
    }
    let text = serde_yaml::to_string(&doc).expect("YAML serializes");
    coflow::flow::load_str(&text).unwrap_or_else(|e| panic!("the flow with stand-ins compiles:\n{e}\n{text}"))
}

fn replace_placeholders(block: &mut Yaml) {
    let Some(actions) = block.as_mapping_mut() else { return };
    for (_, action) in actions.iter_mut() {
        let Some(action) = action.as_mapping_mut() else { continue };
        if action.get("type").and_then(Yaml::as_str) == Some("unsupported") {
            let reason = action.get("reason").cloned().unwrap_or(Yaml::Null);
            action.remove("reason");
            action.remove("original");
            action.insert("type".into(), "compose".into());
            let mut inputs = serde_yaml::Mapping::new();
            inputs.insert("stand_in_for".into(), reason);
            action.insert("inputs".into(), Yaml::Mapping(inputs));
            continue;
        }
        for key in ["actions", "then", "else", "default"] {
            if let Some(inner) = action.get_mut(key) {
                replace_placeholders(inner);
            }
        }
        if let Some(cases) = action.get_mut("cases").and_then(Yaml::as_mapping_mut) {
            cases.iter_mut().for_each(|(_, case)| replace_placeholders(case));
        }
    }
}

fn load(flow: &ImportedFlow) -> coflow::flow::Flow {
    coflow::flow::load_str(&flow.yaml).unwrap_or_else(|e| panic!("{} compiles:\n{e}", flow.name))
}

fn options(parameters: &[(&str, Value)]) -> RunOptions {
    let mut options = RunOptions::new(false);
    options.parameters = parameters.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect();
    options
}

fn event(headers: Value, body: Value) -> TriggerEvent {
    let headers: Map<String, Value> = serde_json::from_value(headers).expect("headers object");
    TriggerEvent { headers, body }
}

fn at(timestamp: &str) -> Timestamp {
    timestamp.parse().expect("timestamp parses")
}

/// Asserts the statuses of the named actions, listing them all on a mismatch.
#[track_caller]
fn assert_statuses(run: &Run, expected: &[(&str, Status)]) {
    let actual: Vec<(String, Option<Status>)> =
        expected.iter().map(|(n, _)| ((*n).to_string(), run.actions.get(*n).map(|a| a.status))).collect();
    let want: Vec<(String, Option<Status>)> =
        expected.iter().map(|(n, s)| ((*n).to_string(), Some(*s))).collect();
    assert_eq!(actual, want, "run status {:?}, error {:?}", run.status, run.error);
}

fn outputs<'r>(run: &'r Run, name: &str) -> &'r Value {
    run.actions[name].outputs.as_ref().unwrap_or_else(|| panic!("`{name}` has no outputs"))
}

/// The statuses of one loop iteration's actions, by name.
fn iteration_statuses(run: &Run, loop_name: &str, index: usize) -> BTreeMap<String, Status> {
    let iterations = run.actions[loop_name].iterations.as_ref().expect("a loop");
    iterations[index].actions.iter().map(|(n, a)| (n.clone(), a.status)).collect()
}

// ---- a local HTTP server ----------------------------------------------------------------------

type Handler = dyn Fn(&str, &str, &Value) -> (u16, Value) + Send + Sync;

/// A server on loopback answering every request through `handler(method, path, body)`, and
/// keeping (method, path, body) of each request. It runs on its own thread and runtime.
struct LocalServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<(String, String, Value)>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

#[derive(Clone)]
struct ServerState {
    handler: Arc<Handler>,
    requests: Arc<Mutex<Vec<(String, String, Value)>>>,
}

async fn answer(
    State(state): State<ServerState>,
    method: Method,
    uri: Uri,
    body: axum::body::Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, reply) = (state.handler)(method.as_str(), uri.path(), &body);
    state.requests.lock().expect("lock").push((method.to_string(), uri.path().to_string(), body));
    (StatusCode::from_u16(status).expect("status"), axum::Json(reply))
}

impl LocalServer {
    fn start(handler: impl Fn(&str, &str, &Value) -> (u16, Value) + Send + Sync + 'static) -> LocalServer {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = ServerState { handler: Arc::new(handler), requests: requests.clone() };
        let app = Router::new().fallback(any(answer)).with_state(state);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
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
        LocalServer { addr, requests, _shutdown: shutdown_tx }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<(String, String, Value)> {
        self.requests.lock().expect("lock").clone()
    }
}

/// Mocks answering every call to `target` with `status` and `body`.
#[derive(Debug)]
struct Answer {
    target: &'static str,
    status: u16,
    body: Value,
}

impl Mocks for Answer {
    fn answer(&self, call: &OutboundCall<'_>) -> Option<MockAnswer> {
        (call.target == self.target).then(|| {
            MockAnswer::Response(HttpResponse {
                status: self.status,
                headers: BTreeMap::new(),
                body: self.body.clone(),
            })
        })
    }
}

// ---- every sample: import → validate → graph ------------------------------------------------

#[test]
fn every_sample_imports_validates_and_draws() {
    let dir = temp_dir("cli");
    let mut flows_seen = 0;
    for sample in SAMPLES {
        let export = export_file(sample.path, &dir);
        let out = dir.join(sample.path.replace('/', "_"));
        let (out_text, export_text) = (out.display().to_string(), export.display().to_string());
        let (code, stdout, stderr) =
            coflow(&["import", &export_text, "--out", &out_text, "--format", "json"]);
        let needs_attention = sample.flows.iter().any(|f| !f.attention.is_empty());
        assert_eq!(code, i32::from(needs_attention), "{}: {stdout}{stderr}", sample.path);
        let report: Value = serde_json::from_str(&stdout).expect("json report");
        let reports = report["flows"].as_array().expect("flows");
        let files: Vec<String> = reports
            .iter()
            .map(|f| {
                Path::new(f["file"].as_str().unwrap_or_default())
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into()
            })
            .collect();
        let expected_files: Vec<&str> = sample.flows.iter().map(|f| f.file).collect();
        assert_eq!(files, expected_files, "{}", sample.path);

        for (expected, report) in sample.flows.iter().zip(reports) {
            flows_seen += 1;
            let what = format!("{} → {}", sample.path, expected.file);
            let attention: Vec<(&str, &str)> = report["attention"]
                .as_array()
                .expect("attention")
                .iter()
                .map(|a| (a["action"].as_str().unwrap_or_default(), a["reason"].as_str().unwrap_or_default()))
                .collect();
            let actions: Vec<&str> = attention.iter().map(|(a, _)| *a).collect();
            let expected_actions: Vec<&str> = expected.attention.iter().map(|(a, _)| *a).collect();
            assert_eq!(actions, expected_actions, "{what}: {attention:#?}");
            for ((action, reason), (_, words)) in attention.iter().zip(expected.attention) {
                assert!(reason.contains(words), "{what}: `{action}` says {reason:?}, expected {words:?}");
            }
            let file = out.join(expected.file);
            let file_text = file.display().to_string();

            // `coflow validate` fails exactly on the placeholders, naming each.
            let (code, stdout, _) = coflow(&["validate", &file_text]);
            let placeholders: Vec<&str> =
                expected_actions.iter().copied().filter(|a| *a != "(trigger)").collect();
            let trigger_placeholder = report["trigger_translated"] == json!(false);
            let (_, diagnostics) = coflow::flow::check_file(&file);
            let errors: Vec<(&str, String)> =
                diagnostics.errors().map(|d| (d.code, d.message.clone())).collect();
            let expected_errors = placeholders.len() + usize::from(trigger_placeholder);
            assert_eq!(errors.len(), expected_errors, "{what}: {errors:#?}");
            for (code, _) in &errors {
                assert!(["unsupported_action", "unsupported_trigger"].contains(code), "{what}: {errors:#?}");
            }
            for name in &placeholders {
                assert!(
                    stdout.contains(&format!("`{name}` is a placeholder")),
                    "{what}: validate misses {name}:\n{stdout}"
                );
            }
            assert_eq!(code, i32::from(expected_errors > 0), "{what}: {stdout}");

            // `coflow graph` draws it, placeholders included.
            let (code, graph, stderr) = coflow(&["graph", &file_text]);
            assert_eq!(code, 0, "{what}: {stderr}");
            assert!(graph.starts_with("flowchart TD"), "{what}: {graph}");
            for name in &placeholders {
                assert!(graph.contains(&format!("{name}<br/>unsupported")), "{what}: graph misses {name}");
            }
        }
    }
    assert!(SAMPLES.len() >= 10 && flows_seen == 14, "{} samples, {flows_seen} flows", SAMPLES.len());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- runs: patterns with self-contained logic -------------------------------------------------

#[tokio::test]
async fn try_catch_finally_runs_finally_after_the_skipped_catch() {
    let flow = load(&the_flow("try-catch-finally/definition.json", "pattern-try-catch-finally"));
    let run = engine::run(&flow, TriggerEvent::from_body(json!({})), &options(&[])).await;
    // Try has nothing to fail, so Catch (after Try failed) is skipped and Finally (after Catch
    // in any state) runs.
    assert_statuses(
        &run,
        &[("Try", Status::Succeeded), ("Catch", Status::Skipped), ("Finally", Status::Succeeded)],
    );
    assert_eq!(run.status, Status::Succeeded);
}

#[tokio::test]
async fn always_reply_answers_the_scope_error_and_terminates_failed() {
    let flow =
        load(&the_flow("always-reply-to-request/definition.json", "pattern-always-reply-to-http-request"));
    let run = engine::run(&flow, TriggerEvent::from_body(Value::Null), &options(&[])).await;
    // div(5, 0) fails the scope: the error branch answers 500 with the scope's error, then
    // the run ends failed with the terminate's code and message.
    assert_statuses(
        &run,
        &[
            ("Actual_Work", Status::Failed),
            ("Scope", Status::Failed),
            ("Response_OK", Status::Skipped),
            ("Response_Error", Status::Succeeded),
            ("Terminate_with_Failed", Status::Succeeded),
        ],
    );
    assert_eq!(run.status, Status::Failed);
    let error = run.error.as_ref().expect("the run's error");
    assert_eq!((error.code.as_str(), error.message.as_str()), ("500", "An error has occured"));
    let response = run.response.as_ref().expect("the flow answers");
    assert_eq!(response.status, 500);
    let scope_error = run.actions["Actual_Work"].error.as_ref().expect("the failed action's error");
    assert_eq!(response.body["code"], json!(scope_error.code), "{:#?}", response.body);
}

#[tokio::test]
async fn do_until_ends_on_completion_or_on_a_handled_exception() {
    let flow =
        load(&the_flow("do-until-exception/definition.json", "pattern-exception-handing-in-do-until-loop"));
    // `rand(0, 5)` picks the divisor: 0 fails the work (the exception branch), 3 or 4 give 1
    // (complete), 1 or 2 go round again, at most 5 times. Every run must follow the source's
    // structure whatever it drew; over many runs both endings show up.
    let mut endings = BTreeMap::new();
    for _ in 0..60 {
        let run = engine::run(&flow, TriggerEvent::from_body(json!({})), &options(&[])).await;
        let iterations = run.actions["Do_until"].iterations.as_ref().expect("iterations");
        assert!((1..=5).contains(&iterations.len()), "{} iterations", iterations.len());
        for (index, iteration) in iterations.iter().enumerate() {
            let statuses = iteration_statuses(&run, "Do_until", index);
            let last = index + 1 == iterations.len();
            let work = &iteration.actions["Actual_work"];
            let (scope, handler, set_complete) = match (work.status, work.outputs.as_ref()) {
                (Status::Failed, _) => (Status::Failed, Status::Succeeded, Status::Skipped),
                (Status::Succeeded, Some(one)) if one == &json!(1) => {
                    (Status::Succeeded, Status::Skipped, Status::Succeeded)
                }
                (Status::Succeeded, _) => (Status::Succeeded, Status::Skipped, Status::Skipped),
                other => panic!("Actual_work ended {other:?}"),
            };
            // The loop stops after an iteration that set the status, or at its limit of 5.
            let ends_loop = scope == Status::Failed || set_complete == Status::Succeeded;
            assert_eq!(ends_loop || (last && iterations.len() == 5), last, "iteration {index}: {statuses:?}");
            assert_eq!(statuses["Scope"], scope, "iteration {index}: {statuses:?}");
            assert_eq!(statuses["On_failure_set_'Do_Until_Status'_to_Exception"], handler);
            assert_eq!(statuses["Set_'Do_Until_Status'_to_Complete"], set_complete);
            // A handled failure leaves the iteration succeeded.
            assert_eq!(iteration.status, Status::Succeeded, "iteration {index}: {statuses:?}");
        }
        assert_eq!(run.actions["Do_until"].status, Status::Succeeded);
        let state = run.variables["Do Until Status"].as_str().unwrap_or_default().to_string();
        let complete = state == "complete";
        assert_statuses(
            &run,
            &[
                ("Check_'Do_Until_status'_and_terminate_with_correct_status", Status::Succeeded),
                ("Terminate_with_Succeeded", if complete { Status::Succeeded } else { Status::Skipped }),
                ("Terminate_with_Failed", if complete { Status::Skipped } else { Status::Succeeded }),
            ],
        );
        assert_eq!(run.status, if complete { Status::Succeeded } else { Status::Failed });
        *endings.entry(state).or_insert(0) += 1;
    }
    assert!(endings.contains_key("complete") && endings.contains_key("exception"), "{endings:?}");
}

#[tokio::test]
async fn notify_last_working_day_walks_back_over_the_weekend() {
    let imported = the_flow(
        "notify-last-working-day/definition.json",
        "send-a-notification-the-last-working-day-of-the-month-except-holidays",
    );
    let flow = with_stand_ins(&imported.yaml);
    let notify = "Send_notification_-_today_is_the_last_working_day_of_the_month";
    // (now, iterations of the walk back from the month's last day, notified?)
    let cases = [
        // 31 May 2024 is a Friday and the month's last day.
        ("2024-05-31T10:00:00Z", 1, true),
        // 30 June 2024 is a Sunday: the walk passes Sunday and Saturday to Friday the 28th.
        ("2024-06-28T10:00:00Z", 3, true),
        ("2024-06-27T10:00:00Z", 3, false),
        // Late on the 30th in UTC is already 1 July in Central Europe: July's last working
        // day is Wednesday the 31st, not today.
        ("2024-06-30T23:30:00Z", 1, false),
    ];
    for (now, walked, notified) in cases {
        let options = options(&[]);
        let work = engine::run(&flow, TriggerEvent::from_body(json!({})), &options);
        let run = coflow::expr::with_fixed_now(at(now), work).await;
        let walk = "Do_the_loop_until_find_the_working_day_(Mon-Fri)";
        let iterations = run.actions[walk].iterations.as_ref().map(Vec::len);
        assert_eq!(iterations, Some(walked), "{now}: {:#?}", run.variables);
        let (then, otherwise) = if notified {
            (Status::Succeeded, Status::Skipped)
        } else {
            (Status::Skipped, Status::Succeeded)
        };
        assert_statuses(
            &run,
            &[
                (walk, Status::Succeeded),
                ("Notify_if_the_'DateCountBack'_=_'Date'", Status::Succeeded),
                (notify, then),
                ("Terminate_the_flow", otherwise),
            ],
        );
        assert_eq!(run.status, Status::Succeeded, "{now}");
    }
}

#[tokio::test]
async fn xpath_sample_runs_its_selects_around_the_placeholders() {
    let imported = the_flow("working-with-xpath/definition.json", "working-with-xpath-expressions");
    let run =
        engine::run(&with_stand_ins(&imported.yaml), TriggerEvent::from_body(json!({})), &options(&[])).await;
    assert_statuses(
        &run,
        &[
            ("Sample_of_complex_JSON_nesting_of_objects_and_arrays", Status::Succeeded),
            ("Nested_objects_inside_'root'_object", Status::Succeeded),
            ("Select_-_email", Status::Succeeded),
            ("Select_-_id", Status::Succeeded),
            ("Wrap_sample_data_inside_a_root_object_1", Status::Succeeded),
            ("Only_'root'_object", Status::Succeeded),
            ("Wrap_sample_data_inside_a_root_object", Status::Succeeded),
            ("Convert_JSON_to_XML", Status::Succeeded),
            ("Return_preferred_colors_when_loyalty_points_greater_than_20000", Status::Succeeded),
        ],
    );
    assert_eq!(run.status, Status::Succeeded);
    // The selects map the ten customers of the sample data.
    let ids: Vec<Value> = (1..=10).map(|n| json!({"id": format!("{n:03}")})).collect();
    assert_eq!(outputs(&run, "Select_-_id"), &Value::Array(ids));
    let emails = outputs(&run, "Select_-_email").as_array().expect("an array");
    assert_eq!(emails.len(), 10);
    assert_eq!(emails[0], json!({"email": "luke@rebellion.net"}));
    assert_eq!(emails[9], json!({"email": "r2d2@droids.net"}));
    let wrapped = outputs(&run, "Wrap_sample_data_inside_a_root_object_1");
    assert_eq!(wrapped["root"]["email"][4], json!({"email": "vader@empire.net"}));
    assert_eq!(wrapped["root"]["id"][6], json!({"id": "007"}));
}

#[tokio::test]
async fn task2calendar_scheduled_flow_converts_dates_across_daylight_saving() {
    let imported = the_flow("task2calendar-solution", "task2calendar-scheduled-flow");
    let flow = with_stand_ins(&imported.yaml);
    let options = options(&[]);
    let work = engine::run(&flow, TriggerEvent::from_body(json!({})), &options);
    // Tomorrow at this time is 2024-03-31T23:30Z, which is 1 April in Berlin (summer time
    // began that night); ten days on is 10 April there.
    let run = coflow::expr::with_fixed_now(at("2024-03-30T23:30:00Z"), work).await;
    assert_statuses(
        &run,
        &[
            ("Create_start_date", Status::Succeeded),
            ("Create_end_date", Status::Succeeded),
            ("Run_manual_Task2Calendar_flow", Status::Succeeded),
        ],
    );
    assert_eq!(outputs(&run, "Create_start_date"), &json!("2024-04-01"));
    assert_eq!(outputs(&run, "Create_end_date"), &json!("2024-04-10"));
}

// ---- runs: calls answered by a local server or mocks ------------------------------------------

#[tokio::test]
async fn logicappunit_loop_calls_service_one_until_done_then_service_two_for_each_answer() {
    let flow = load(&the_flow("logicappunit-loop/loop-workflow/workflow.json", "loop-workflow"));
    // Service One refuses the second iteration; the append runs after it anyway (its run_after
    // is written `FAILED` in the source), so the loop goes on.
    let server = LocalServer::start(|_, path, body| match path {
        "/doSomethingInsideUntilLoop" if body["iterationNumber"] == json!(2) => (400, json!({"refused": 2})),
        "/doSomethingInsideUntilLoop" => (200, json!({"done": body["iterationNumber"]})),
        "/doSomethingInsideForEachLoop" => (200, json!({"echo": body})),
        _ => (404, json!({})),
    });
    let parameters = [("ServiceOne-Url", json!(server.url())), ("ServiceTwo-Url", json!(server.url()))];
    let run =
        engine::run(&flow, TriggerEvent::from_body(json!({"numberOfIterations": 3})), &options(&parameters))
            .await;
    assert_statuses(
        &run,
        &[
            ("Initialize_loopCounter", Status::Succeeded),
            ("Until_Loop", Status::Succeeded),
            ("For_Each_Loop", Status::Succeeded),
            ("Response", Status::Succeeded),
        ],
    );
    let until = run.actions["Until_Loop"].iterations.as_ref().expect("iterations");
    assert_eq!(until.len(), 3);
    let second = iteration_statuses(&run, "Until_Loop", 1);
    assert_eq!(second["Call_Service_One"], Status::Failed);
    assert_eq!(second["Append_response_to_systemOneResponses"], Status::Succeeded);
    for index in [0, 2] {
        assert!(iteration_statuses(&run, "Until_Loop", index).values().all(|s| *s == Status::Succeeded));
    }
    let foreach = run.actions["For_Each_Loop"].iterations.as_ref().expect("iterations");
    assert_eq!(foreach.len(), 3);
    assert!(foreach.iter().all(|i| i.status == Status::Succeeded));

    let response = run.response.as_ref().expect("the flow answers");
    assert_eq!(response.status, 200);
    let one = json!([{"done": 1}, {"refused": 2}, {"done": 3}]);
    assert_eq!(
        response.body,
        json!({
            "loopCounter": 3,
            "serviceOneResponses": one,
            "serviceTwoResponses": [{"echo": {"done": 1}}, {"echo": {"refused": 2}}, {"echo": {"done": 3}}],
        })
    );
    let paths: Vec<String> = server.requests().into_iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    assert_eq!(paths.len(), 6, "{paths:?}");
    assert!(paths[..3].iter().all(|p| p == "POST /doSomethingInsideUntilLoop"), "{paths:?}");
    assert!(paths[3..].iter().all(|p| p == "POST /doSomethingInsideForEachLoop"), "{paths:?}");
}

#[tokio::test]
async fn logicappunit_upsert_answers_by_the_outcome_of_its_scope() {
    let imported = the_flow(
        "logicappunit-salesforce-upsert/managed-api-connector-test-workflow/workflow.json",
        "managed-api-connector-test-workflow",
    );
    let flow = with_stand_ins(&imported.yaml);
    let customer = json!({"id": 42, "title": "Dr", "firstName": "Ada", "lastName": "Lovelace",
        "address": {"addressLine1": "1 St James's Sq", "addressLine2": "Flat 2", "addressLine3": "Westminster",
            "town": "London", "county": "Greater London", "postcode": "SW1Y 4JU", "countryName": "United Kingdom"}});

    // Salesforce accepts: the scope succeeds (the e-mail, which coflow cannot send, stands in).
    let mut options = options(&[]);
    options.mocks = Some(Arc::new(Answer {
        target: "salesforce.upsert_record",
        status: 201,
        body: json!({"id": "a0B000000000001", "success": true, "errors": [], "created": true}),
    }));
    let run = engine::run(&flow, TriggerEvent::from_body(customer.clone()), &options).await;
    assert_statuses(
        &run,
        &[
            ("Parse_JSON", Status::Succeeded),
            ("Upsert_Customer", Status::Succeeded),
            ("Send_a_confirmation_email", Status::Succeeded),
            ("Scope", Status::Succeeded),
            ("Success_Response", Status::Succeeded),
            ("Failure_Response", Status::Skipped),
        ],
    );
    let response = run.response.as_ref().expect("the flow answers");
    assert_eq!((response.status, &response.body), (200, &json!("Upsert is successful")));
    // The upsert sends what the Logic Apps path and body said, the id no longer URL-encoded.
    let inputs = run.actions["Upsert_Customer"].inputs.as_ref().expect("inputs");
    assert_eq!(inputs["sobject"], json!("Account_Staging__c"));
    assert_eq!(inputs["external_id_field"], json!("External_Id__c"));
    assert_eq!(inputs["external_id"], json!("42"));
    assert_eq!(inputs["record"]["LastName__c"], json!("Lovelace"));
    assert_eq!(inputs["record"]["Address_Line_2__c"], json!("Flat 2, Westminster"));
    assert_eq!(inputs["record"]["Status__c"], json!("Active"));

    // Salesforce refuses: the e-mail is skipped, the scope fails and the failure branch answers.
    let mut options = self::options(&[]);
    options.mocks = Some(Arc::new(Answer {
        target: "salesforce.upsert_record",
        status: 400,
        body: json!([{"errorCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing"}]),
    }));
    let run = engine::run(&flow, TriggerEvent::from_body(customer), &options).await;
    assert_statuses(
        &run,
        &[
            ("Upsert_Customer", Status::Failed),
            ("Send_a_confirmation_email", Status::Skipped),
            ("Scope", Status::Failed),
            ("Success_Response", Status::Skipped),
            ("Failure_Response", Status::Succeeded),
        ],
    );
    let response = run.response.as_ref().expect("the flow answers");
    assert_eq!((response.status, &response.body), (500, &json!("Upsert failed")));
}

#[tokio::test]
async fn logicappunit_http_answers_unauthorized_and_failed_lookups() {
    let imported = the_flow("logicappunit-http/http-workflow/workflow.json", "http-workflow");
    let flow = with_stand_ins(&imported.yaml);
    let server = LocalServer::start(|_, path, _| match path {
        "/customers/404" => (404, json!({"message": "no customer 404"})),
        _ => (200, json!({"id": 54624, "title": "Mr", "firstName": "Peter", "lastName": "Smith"})),
    });
    let parameters = [
        ("ServiceOne-Url", json!(server.url())),
        ("ServiceTwo-Url", json!(server.url())),
        ("ServiceOne-Authentication-WebHook-APIKey", json!("hook-key")),
        ("ServiceOne-Authentication-APIKey", json!("one-key")),
        ("ServiceTwo-Authentication-APIKey", json!("two-key")),
    ];
    let options = options(&parameters);

    // A wrong key: only the else branch of the first condition runs.
    let wrong = event(json!({"x-api-key": "guess"}), json!({"customerId": 54624}));
    let run = engine::run(&flow, wrong, &options).await;
    assert_statuses(
        &run,
        &[
            ("Validate_API_Key", Status::Succeeded),
            ("Get_Customer_Details_from_Service_One", Status::Skipped),
            ("Get_Customer_Details_Success", Status::Skipped),
            ("Unauthorized_Response", Status::Succeeded),
        ],
    );
    let response = run.response.as_ref().expect("the flow answers");
    assert_eq!((response.status, &response.body), (401, &json!("Invalid/No authorization header passed")));
    assert!(server.requests().is_empty());

    // Service One has no such customer: the lookup fails, and the condition after it (which
    // runs after any outcome) answers with the service's status.
    let missing = event(json!({"x-api-key": "hook-key"}), json!({"customerId": 404}));
    let run = engine::run(&flow, missing, &options).await;
    assert_statuses(
        &run,
        &[
            ("Get_Customer_Details_from_Service_One", Status::Failed),
            ("Get_Customer_Details_Success", Status::Succeeded),
            ("Parse_Customer", Status::Skipped),
            ("Update_Customer_Details_in_Service_Two", Status::Skipped),
            ("Failed_Get_Response", Status::Succeeded),
            ("Unauthorized_Response", Status::Skipped),
        ],
    );
    let response = run.response.as_ref().expect("the flow answers");
    assert_eq!(response.status, 404);
    assert_eq!(response.body, json!(r#"Unable to get customer details: {"message":"no customer 404"}"#));
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!((requests[0].0.as_str(), requests[0].1.as_str()), ("GET", "/customers/404"));
}

#[tokio::test]
async fn quickstart_logic_app_create_calls_its_test_uri() {
    let flow = load(&the_flow("quickstart-logic-app-create/azuredeploy.json", "logic-app-name"));
    // The template's variables made the trigger hourly and the action a GET of the template
    // parameter `testUri`, whose default the deployment writes into the workflow.
    assert_eq!(flow.trigger.kind, "recurrence");
    assert_eq!(flow.trigger.settings.get("every"), Some(&json!("PT1H")));
    let mut options = options(&[]);
    options.mocks = Some(Arc::new(Answer { target: "http", status: 200, body: json!({"status": "up"}) }));
    let run = engine::run(&flow, TriggerEvent::from_body(json!({})), &options).await;
    assert_statuses(&run, &[("actionType", Status::Succeeded)]);
    assert_eq!(run.status, Status::Succeeded);
    let inputs = run.actions["actionType"].inputs.as_ref().expect("inputs");
    assert_eq!(inputs["method"], json!("GET"));
    assert_eq!(inputs["url"], json!("https://azure.status.microsoft/status/"));
    assert_eq!(outputs(&run, "actionType")["body"], json!({"status": "up"}));
}

#[tokio::test]
async fn jobscheduler_creates_the_next_job_or_cancels_when_the_count_is_reached() {
    const TEMPLATE: &str = "quickstart-logicapps-jobscheduler/azuredeploy.json";
    let flow = with_stand_ins(&the_flow(TEMPLATE, "create-timer-job").yaml);
    let job = |execution_count: u64| {
        json!({"timerjobid": "job-1", "startTime": "2030-01-01T00:00:00Z",
            "jobRecurrence": {"frequency": "minute", "interval": 5, "count": 3},
            "jobStatus": {"executionCount": execution_count}})
    };
    let now = at("2029-12-31T12:00:00Z");
    let options = options(&[]);

    // Two runs of three so far: the next job is created (the child flow stands in) and the
    // caller learns when it runs.
    let run =
        coflow::expr::with_fixed_now(now, engine::run(&flow, TriggerEvent::from_body(job(2)), &options))
            .await;
    assert_statuses(
        &run,
        &[
            ("Initialize_startTime", Status::Succeeded),
            ("Initialize_nextTime", Status::Succeeded),
            ("If_not_past_endTime_or_exceeds_count", Status::Succeeded),
            ("TimerJob", Status::Succeeded),
            ("Created_Response", Status::Succeeded),
            ("Catch_TimerJob_error", Status::Skipped),
            ("Exceeded_Criteria_Response", Status::Skipped),
            ("Cancelled", Status::Skipped),
        ],
    );
    assert_eq!(run.status, Status::Succeeded);
    let response = run.response.as_ref().expect("the flow answers");
    assert_eq!(response.status, 201);
    let body = response.body.as_str().expect("text");
    assert!(body.starts_with("Next execution time will be at 2030-01-01T00:05:00"), "{body}");

    // Three of three: the completion criteria are met, the caller gets 409 and the run is
    // cancelled.
    let run =
        coflow::expr::with_fixed_now(now, engine::run(&flow, TriggerEvent::from_body(job(3)), &options))
            .await;
    assert_statuses(
        &run,
        &[
            ("If_not_past_endTime_or_exceeds_count", Status::Succeeded),
            ("TimerJob", Status::Skipped),
            ("Created_Response", Status::Skipped),
            ("Exceeded_Criteria_Response", Status::Succeeded),
            ("Cancelled", Status::Succeeded),
        ],
    );
    assert_eq!(run.status, Status::Cancelled);
    assert_eq!(run.response.as_ref().map(|r| r.status), Some(409));
}

#[tokio::test]
async fn jobscheduler_timer_job_counts_a_failed_job_and_goes_on() {
    // The nested deployment completes TimerJob; its job calls a public API, mocked here.
    let imported = the_flow("quickstart-logicapps-jobscheduler/azuredeploy.json", "timer-job");
    let flow = with_stand_ins(&imported.yaml);
    let mut options = options(&[]);
    options.mocks = Some(Arc::new(Answer { target: "http", status: 404, body: json!({"error": "gone"}) }));
    let body = json!({"timerjobid": "job-1", "jobRecurrence": {"frequency": "minute", "interval": 5},
        "jobStatus": {"nextExecutionTime": "2020-01-01T00:00:00Z", "faultedCount": 1, "executionCount": 4}});
    let run = engine::run(&flow, TriggerEvent::from_body(body), &options).await;
    // The job fails, the failure is counted, the error scope runs, the next job is created
    // (standing in for the child flow), and the "create failed" condition is skipped.
    assert_statuses(
        &run,
        &[
            ("Response", Status::Succeeded),
            ("Delay_until_nextExecutionTime", Status::Succeeded),
            ("Initialize_faultedCount", Status::Succeeded),
            ("HTTP", Status::Failed),
            ("Job", Status::Failed),
            ("Increment_faultedCount", Status::Succeeded),
            ("On_Error", Status::Succeeded),
            ("CreateTimerJob", Status::Succeeded),
            ("If_CreateTimerJob_failed_and_no_next_recurrence", Status::Skipped),
        ],
    );
    assert_eq!(run.variables["faultedCount"], json!(2));
    let response = run.response.as_ref().expect("the flow answers at once");
    assert_eq!((response.status, &response.body["jobid"]), (200, &json!(run.run_id)));
}
