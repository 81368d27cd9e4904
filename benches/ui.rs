//! Web UI pages with 100,000 runs in a SQLite store, rendered through the router.
//!
//! `cargo bench --bench ui -- --warm-up-time 1 --measurement-time 3`
//!
//! The store holds the co-sell flows of `flows/` and 100,000 finished runs spread over them and
//! over the last 23 hours (so the flows page counts every one of them), one in seven failed. Each
//! run's record has a result for every action of its flow, like a worker writes it. Each page is
//! requested as a browser would, from loopback, and read to the end.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use coflow::flow::Block;
use coflow::server::registry::FlowRegistry;
use coflow::server::{Server, Settings};
use coflow::store::{NewRun, RunOutcome, RunStatus, Store};
use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;
use tower::ServiceExt as _;
use uuid::Uuid;

/// Runs in the store.
const RUNS: usize = 100_000;

/// Every action name of a block and the blocks nested in it, in written order.
fn action_names(block: &Block, out: &mut Vec<String>) {
    for action in &block.actions {
        out.push(action.name.clone());
        for inner in action.kind.blocks() {
            action_names(inner, out);
        }
    }
}

/// A run record with a result per action; the last action failed when `failed`. `full` adds
/// inputs, outputs and times to every result, as a real record has; the bulk of the runs go
/// without, to keep the database (and seeding) small enough for this machine.
fn record(flow: &str, actions: &[String], n: usize, failed: bool, full: bool, at: Timestamp) -> Value {
    let mut results = Map::new();
    for (index, name) in actions.iter().enumerate() {
        let failing = failed && index + 1 == actions.len();
        let mut result = json!({"status": if failing { "failed" } else { "succeeded" }, "error": null});
        if failing {
            result["error"] = json!({"code": "Http503", "message": "Service Unavailable: try again later"});
        }
        if full {
            result["attempts"] = json!(1);
            result["started_at"] = json!(at);
            result["ended_at"] = json!(at);
            result["inputs"] = json!({"method": "GET", "url": format!("https://example.invalid/items/{n}"),
                                      "body": {"n": n, "index": index}});
            result["outputs"] =
                json!({"statusCode": 200, "body": {"id": format!("ID-{n}-{index}"), "name": "Contoso Ltd"}});
        }
        results.insert(name.clone(), result);
    }
    json!({"flow": flow, "run_id": "", "status": if failed { "failed" } else { "succeeded" },
           "trigger": {"outputs": {}}, "started_at": at, "ended_at": at, "error": null, "actions": results})
}

/// Every flow's name and action names.
fn flows_of(registry: &FlowRegistry) -> Vec<(String, Vec<String>)> {
    registry
        .snapshot()
        .flows
        .values()
        .map(|loaded| {
            let mut names = Vec::new();
            action_names(&loaded.flow.root, &mut names);
            (loaded.flow.name.clone(), names)
        })
        .collect()
}

/// Stores one finished run `age` old.
async fn add_run(
    store: &dyn Store,
    flow: &str,
    actions: &[String],
    n: usize,
    full: bool,
    age: SignedDuration,
) -> Uuid {
    let failed = n % 7 == 3;
    let created = Timestamp::now().checked_sub(age).unwrap_or_else(|_| Timestamp::now());
    let id = Uuid::now_v7();
    let inputs = json!({"headers": {}, "body": {"opportunity": format!("006{n:012}"), "amount": n}});
    let run = NewRun {
        id,
        flow: flow.into(),
        status: RunStatus::Running,
        event_id: None,
        resubmit_of: None,
        created_at: created,
        inputs,
    };
    store.create_run(run).await.unwrap();
    let status = if failed { RunStatus::Failed } else { RunStatus::Succeeded };
    let error = failed.then(|| json!({"code": "Http503", "message": "Service Unavailable"}));
    let record = record(flow, actions, n, failed, full, created);
    store.finish_run(id, RunOutcome { status, ended_at: created, error, record }).await.unwrap();
    id
}

/// Creates `RUNS` finished runs over the registry's flows and the last 23 hours, 16 writers at a
/// time, then the newest: a failed `pc-to-sf` run with a full record, which it returns.
async fn seed(store: Arc<dyn Store>, registry: &FlowRegistry) -> Uuid {
    let flows = Arc::new(flows_of(registry));
    futures::stream::iter(0..RUNS)
        .map(|n| {
            let (store, flows) = (store.clone(), flows.clone());
            async move {
                let (flow, actions) = &flows[n % flows.len()];
                // Run 0 is the newest; the oldest is 23 hours old.
                let age = SignedDuration::from_millis((n as i64) * 23 * 3600 * 1000 / RUNS as i64);
                add_run(store.as_ref(), flow, actions, n, false, age).await;
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let (flow, actions) = flows.iter().find(|(name, _)| name == "pc-to-sf").expect("flows/ has pc-to-sf");
    add_run(store.as_ref(), flow, actions, 3, true, SignedDuration::ZERO).await
}

async fn page(app: &axum::Router, path: &str) -> usize {
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().len()
}

fn bench_ui(c: &mut Criterion) {
    let rt: Runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("coflow-ui-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("coflow.db").display());
    let registry = Arc::new(FlowRegistry::load(Path::new("flows")).unwrap());
    let (app, failed_run, server) = rt.block_on(async {
        let store = coflow::store::open(&url).await.unwrap();
        let started = std::time::Instant::now();
        let failed_run = seed(store.clone(), &registry).await;
        eprintln!("seeded {RUNS} runs in {:.1} s", started.elapsed().as_secs_f64());
        // What the server does while idle: index the finished runs for text search.
        let started = std::time::Instant::now();
        while store.index_search(1_000).await.unwrap() > 0 {}
        eprintln!("indexed them in {:.1} s", started.elapsed().as_secs_f64());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // No schedules: the pollers would need Salesforce; workers find an empty queue.
        let settings = Settings { schedule_triggers: false, workers: 1, ..Settings::default() };
        let server =
            Server::start(listener, registry.clone(), store, Default::default(), settings).await.unwrap();
        (coflow::server::router(server.state().clone()), failed_run, server)
    });

    let pages = [
        ("flows", "/".to_string()),
        ("flow_pc_to_sf", "/flows/pc-to-sf".to_string()),
        ("runs_newest", "/runs".to_string()),
        ("runs_flow_failed_24h", "/runs?flow=pc-to-sf&status=failed&range=24h".to_string()),
        ("runs_text", "/runs?q=006000000099999".to_string()),
        // In the error of every failed run: one in seven matches.
        ("runs_text_common", "/runs?q=unavailable".to_string()),
        ("run_failed_pc_to_sf", format!("/runs/{failed_run}")),
    ];
    let mut group = c.benchmark_group("ui_100k_runs");
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    for (name, path) in &pages {
        let bytes = rt.block_on(page(&app, path));
        eprintln!("{name}: {path} ({bytes} bytes)");
        group.bench_function(*name, |b| b.iter(|| rt.block_on(page(&app, path))));
    }
    group.finish();

    rt.block_on(server.shutdown());
    drop(app);
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, bench_ui);
criterion_main!(benches);
