//! Store throughput on SQLite (a file) and PostgreSQL.
//!
//! `cargo bench --bench store -- --warm-up-time 1 --measurement-time 3`
//!
//! PostgreSQL is read from `COFLOW_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); its benches are skipped when it is unreachable.
//! Each backend works in a private schema or file, removed afterwards.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use coflow::store::postgres::PgStore;
use coflow::store::{
    ActionRecord, NewEvent, NewRun, NewWork, OpenOptions, RunFilter, RunOutcome, RunStatus, Store,
    SystemClock,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::runtime::Runtime;
use uuid::Uuid;

/// Runs in the store when the list benchmark measures a page.
const LISTED_RUNS: usize = 100_000;

fn postgres_url() -> String {
    std::env::var("COFLOW_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A store under benchmark and how to clean up after it.
struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(std::path::PathBuf),
    Schema(String),
}

impl Backend {
    fn sqlite(rt: &Runtime) -> Self {
        let dir = std::env::temp_dir().join(format!("coflow-store-bench-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("coflow.db").display());
        let store = rt.block_on(coflow::store::open(&url)).unwrap();
        Self { name: "sqlite_file", store, cleanup: Cleanup::Dir(dir) }
    }

    fn postgres(rt: &Runtime) -> Option<Self> {
        let schema = format!("coflow_bench_{}", Uuid::new_v4().simple());
        let store = rt.block_on(async {
            let mut conn = PgConnection::connect(&postgres_url()).await.ok()?;
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut conn).await.ok()?;
            let connect =
                PgConnectOptions::from_str(&postgres_url()).ok()?.options([("search_path", schema.as_str())]);
            let options = OpenOptions { clock: Arc::new(SystemClock), max_connections: 16 };
            PgStore::connect(connect, options).await.ok()
        });
        let Some(store) = store else {
            eprintln!("PostgreSQL at {} is unreachable: skipping its benches", postgres_url());
            return None;
        };
        Some(Self { name: "postgres", store: Arc::new(store), cleanup: Cleanup::Schema(schema) })
    }

    fn cleanup(self, rt: &Runtime) {
        drop(self.store);
        match self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema(schema) => rt.block_on(async {
                let mut conn = PgConnection::connect(&postgres_url()).await.unwrap();
                sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }),
        }
    }
}

fn backends(rt: &Runtime) -> Vec<Backend> {
    let mut all = vec![Backend::sqlite(rt)];
    all.extend(Backend::postgres(rt));
    all
}

fn inputs(n: usize) -> Value {
    json!({"headers": {"content-type": "application/json"},
           "body": {"referral_id": format!("REF-{n:06}"), "customer": "Contoso Ltd", "value": n}})
}

fn action(i: usize) -> ActionRecord {
    let now = Timestamp::now();
    ActionRecord {
        name: format!("action_{i}"),
        status: "succeeded".into(),
        started_at: Some(now),
        ended_at: Some(now),
        result: json!({"status": "succeeded", "attempts": 1,
                       "inputs": {"method": "POST", "url": "http://127.0.0.1/api", "body": {"field": i}},
                       "outputs": {"statusCode": 201, "body": {"id": format!("ID-{i}")}}}),
    }
}

/// One whole run as a worker records it: create, start, ten action results, finish.
async fn record_run(store: &dyn Store, n: usize) {
    let run = NewRun {
        id: Uuid::now_v7(),
        flow: "bench".into(),
        status: RunStatus::Queued,
        event_id: None,
        resubmit_of: None,
        created_at: Timestamp::now(),
        inputs: inputs(n),
    };
    let id = run.id;
    store.create_run(run).await.unwrap();
    store.start_run(id, Timestamp::now()).await.unwrap();
    let mut actions = serde_json::Map::new();
    for i in 0..10 {
        let action = action(i);
        actions.insert(action.name.clone(), action.result.clone());
        store.record_action(id, action).await.unwrap();
    }
    let record =
        json!({"flow": "bench", "run_id": id.to_string(), "status": "succeeded", "actions": actions});
    let outcome =
        RunOutcome { status: RunStatus::Succeeded, ended_at: Timestamp::now(), error: None, record };
    store.finish_run(id, outcome).await.unwrap();
}

fn new_work() -> NewWork {
    NewWork {
        id: Uuid::now_v7(),
        flow: "bench".into(),
        event_id: None,
        run_id: None,
        payload: json!(null),
        max_attempts: 3,
        not_before: None,
    }
}

fn new_event() -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        flow: "bench".into(),
        source: "webhook".into(),
        received_at: Timestamp::now(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"referral_id":"REF-1","customer":"Contoso Ltd"}"#.to_vec(),
        dedup_key: Some(Uuid::new_v4().to_string()),
        max_attempts: 3,
    }
}

fn bench_store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let all = backends(&rt);

    let mut group = c.benchmark_group("store");
    for backend in &all {
        let store = backend.store.as_ref();
        group.bench_function(BenchmarkId::new("run_with_10_actions", backend.name), |b| {
            let mut n = 0;
            b.iter(|| {
                n += 1;
                rt.block_on(record_run(store, n));
            });
        });
        group.bench_function(BenchmarkId::new("enqueue_claim_complete", backend.name), |b| {
            b.iter(|| {
                rt.block_on(async {
                    store.enqueue(new_work()).await.unwrap();
                    let claim = store.claim("bench", Duration::from_secs(60)).await.unwrap().unwrap();
                    store.complete(claim.token).await.unwrap();
                });
            });
        });
        group.bench_function(BenchmarkId::new("accept_event", backend.name), |b| {
            b.iter(|| rt.block_on(store.accept_event(new_event())).unwrap());
        });
        group.bench_function(BenchmarkId::new("accept_batch_of_64_events", backend.name), |b| {
            b.iter(|| rt.block_on(store.accept_events((0..64).map(|_| new_event()).collect())).unwrap());
        });
    }
    group.finish();

    let mut group = c.benchmark_group("store_list_100k");
    for backend in &all {
        let store = backend.store.clone();
        // Seeded on first use, so that filtering the list benches out also skips the seeding.
        let seeded = std::cell::Cell::new(false);
        let seed = || {
            if !seeded.replace(true) {
                rt.block_on(seed_runs(store.clone(), LISTED_RUNS));
            }
        };
        let filters = [
            ("newest_page", RunFilter::default()),
            (
                "flow_and_status_page",
                RunFilter {
                    flow: Some("orders".into()),
                    status: Some(RunStatus::Failed),
                    ..RunFilter::default()
                },
            ),
            ("text_page", RunFilter { text: Some("ref-0999".into()), ..RunFilter::default() }),
        ];
        for (name, filter) in filters {
            group.bench_function(BenchmarkId::new(name, backend.name), |b| {
                seed();
                b.iter(|| rt.block_on(store.list_runs(filter.clone())).unwrap());
            });
        }
        group.bench_function(BenchmarkId::new("page_101", backend.name), |b| {
            seed();
            let deep_cursor = rt.block_on(cursor_after_pages(store.as_ref(), 100));
            let filter = RunFilter { cursor: Some(deep_cursor.clone()), ..RunFilter::default() };
            b.iter(|| rt.block_on(store.list_runs(filter.clone())).unwrap());
        });
        group.bench_function(BenchmarkId::new("counts_24h", backend.name), |b| {
            seed();
            let now = Timestamp::now();
            let since = now.checked_sub(jiff::SignedDuration::from_hours(24)).unwrap();
            b.iter(|| rt.block_on(store.run_counts(since, now)).unwrap());
        });
    }
    group.finish();

    for backend in all {
        backend.cleanup(&rt);
    }
}

/// Creates `n` finished runs over three flows and three statuses, 16 writers at a time.
async fn seed_runs(store: Arc<dyn Store>, n: usize) {
    futures::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            async move {
                let flow = ["orders", "invoices", "contacts"][i % 3];
                let status = [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Succeeded][i % 7 % 3];
                let run = NewRun {
                    id: Uuid::now_v7(),
                    flow: flow.into(),
                    status: RunStatus::Running,
                    event_id: None,
                    resubmit_of: None,
                    created_at: Timestamp::now(),
                    inputs: inputs(i),
                };
                let id = run.id;
                store.create_run(run).await?;
                let record =
                    json!({"flow": flow, "status": status.as_str(), "actions": {"a": action(1).result}});
                let outcome = RunOutcome { status, ended_at: Timestamp::now(), error: None, record };
                store.finish_run(id, outcome).await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
}

async fn cursor_after_pages(store: &dyn Store, pages: usize) -> String {
    let mut cursor = None;
    for _ in 0..pages {
        let page =
            store.list_runs(RunFilter { cursor: cursor.take(), ..RunFilter::default() }).await.unwrap();
        cursor = page.next;
    }
    cursor.unwrap()
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
