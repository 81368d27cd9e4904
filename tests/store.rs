//! The store conformance suite on SQLite (file and memory) and PostgreSQL, plus the properties
//! that need several store instances: separate pools on one database behave like separate
//! processes.
//!
//! PostgreSQL tests read `COFLOW_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and each works in a schema of its own, dropped at
//! the end, so tests and test processes run in parallel without seeing each other.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use coflow::store::conformance::{self, Harness};
use coflow::store::postgres::PgStore;
use coflow::store::sqlite::SqliteStore;
use coflow::store::{AcceptOutcome, ManualClock, NewEvent, OpenOptions, Store, StoreError, SystemClock};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

fn postgres_url() -> String {
    std::env::var("COFLOW_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A PostgreSQL schema private to one test, dropped when the guard goes.
struct PgSchema {
    name: String,
}

impl PgSchema {
    async fn create() -> Self {
        let name = format!("coflow_test_{}", Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&postgres_url()).await.expect("PostgreSQL is reachable");
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {name}"))).execute(&mut conn).await.unwrap();
        // Installed once for the database, as an administrator would, rather than by the first
        // store into its own schema, which its test drops. Fails only when a concurrent test
        // installs it first.
        let _ =
            sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public").execute(&mut conn).await;
        conn.close().await.unwrap();
        Self { name }
    }

    fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&postgres_url()).unwrap().options([("search_path", self.name.as_str())])
    }

    async fn store(&self, clock: Arc<dyn coflow::store::Clock>, max_connections: u32) -> PgStore {
        PgStore::connect(self.connect_options(), OpenOptions { clock, max_connections }).await.unwrap()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let sql = format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread of our own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&postgres_url()).await?;
                sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await?;
                conn.close().await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.name);
        }
    }
}

/// A directory private to one test, removed when the guard goes.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("coflow-store-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.join("coflow.db").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Keeps a harness's backing resources alive for the test's duration.
enum Guard {
    Dir(#[allow(dead_code)] TempDir),
    Schema(#[allow(dead_code)] PgSchema),
    None,
}

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(conformance::start_time()))
}

async fn sqlite_file_harness() -> (Harness, Guard) {
    let dir = TempDir::new();
    let clock = manual_clock();
    let options = OpenOptions { clock: clock.clone(), max_connections: 4 };
    let store = coflow::store::open_with(&dir.url(), options).await.unwrap();
    (Harness { store, clock }, Guard::Dir(dir))
}

async fn sqlite_memory_harness() -> (Harness, Guard) {
    let clock = manual_clock();
    let options = OpenOptions { clock: clock.clone(), max_connections: 4 };
    let store = coflow::store::open_with("sqlite::memory:", options).await.unwrap();
    (Harness { store, clock }, Guard::None)
}

async fn postgres_harness() -> (Harness, Guard) {
    let schema = PgSchema::create().await;
    let clock = manual_clock();
    let store = Arc::new(schema.store(clock.clone(), 8).await);
    (Harness { store, clock }, Guard::Schema(schema))
}

macro_rules! conformance_suite {
    ($($check:ident),* $(,)?) => {
        const LISTED: &[&str] = &[$(stringify!($check)),*];

        macro_rules! backend {
            ($backend:ident, $harness:path) => {
                mod $backend {
                    $(
                        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                        async fn $check() {
                            let (harness, _guard) = $harness().await;
                            coflow::store::conformance::$check(harness).await;
                        }
                    )*
                }
            };
        }

        backend!(sqlite_file, super::sqlite_file_harness);
        backend!(sqlite_memory, super::sqlite_memory_harness);
        backend!(postgres, super::postgres_harness);
    };
}

conformance_suite!(
    events_accept_and_dedup,
    a_batch_creates_and_starts_a_run_as_one,
    rejected_events_are_kept,
    queue_claims_oldest_due_first,
    queue_expired_lease_is_reclaimed,
    queue_fail_retries_then_dead_letters,
    queue_crash_on_last_attempt_dead_letters,
    queue_release_does_not_count_attempt,
    queue_stats_report_depth_and_age,
    concurrent_claimers_take_each_item_once,
    runs_record_actions_and_finish,
    list_runs_filters_and_pages,
    text_search_finds_substrings,
    run_counts_cover_the_window,
    resubmit_links_and_enqueues,
    watermarks_compare_and_set,
    singleton_lease_is_exclusive,
    purge_deletes_only_what_is_old_and_done,
    flows_enable_and_disable,
    write_batches_apply_each_write,
    leased_acceptance_skips_the_queue,
    a_large_batch_keeps_every_write_and_its_order,
    text_search_finds_runs_before_and_after_indexing,
);

#[test]
fn every_conformance_check_runs_on_every_backend() {
    let suite: Vec<&str> = conformance::CHECKS.iter().map(|(name, _)| *name).collect();
    assert_eq!(suite, LISTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_separate_stores_process_each_item_once() {
    let schema = PgSchema::create().await;
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(schema.store(Arc::new(SystemClock), 3).await));
    }
    let expected = conformance::enqueue_many(stores[0].as_ref(), 1_000).await;
    let taken = conformance::drain_concurrently(&stores, 3).await;
    assert_eq!(taken.len(), expected.len(), "no item was claimed twice");
    assert_eq!(taken.into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(stores[3].queue_stats().await.unwrap().ready, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_singleton_lease_holds_across_stores() {
    let schema = PgSchema::create().await;
    let mut contenders = Vec::new();
    for i in 0..5 {
        let store: Arc<dyn Store> = Arc::new(schema.store(Arc::new(SystemClock), 1).await);
        contenders.push(tokio::spawn(async move {
            let won =
                store.acquire_lease("poll:orders", &format!("process-{i}"), Duration::from_secs(60)).await;
            (won.unwrap(), store)
        }));
    }
    let mut winners = Vec::new();
    let mut stores = Vec::new();
    for contender in contenders {
        let (won, store) = contender.await.unwrap();
        if won {
            winners.push(stores.len());
        }
        stores.push(store);
    }
    assert_eq!(winners.len(), 1, "exactly one process polls");
    let holder = stores[0].lease_holder("poll:orders").await.unwrap().expect("held");
    assert_eq!(holder.holder, format!("process-{}", winners[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_separate_stores_on_one_file_process_each_item_once() {
    let dir = TempDir::new();
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..2 {
        stores.push(coflow::store::open(&dir.url()).await.unwrap());
    }
    let expected = conformance::enqueue_many(stores[0].as_ref(), 300).await;
    let taken = conformance::drain_concurrently(&stores, 3).await;
    assert_eq!(taken.len(), expected.len(), "no item was claimed twice");
    assert_eq!(taken.into_iter().collect::<BTreeSet<_>>(), expected);
}

#[tokio::test]
async fn sqlite_file_keeps_accepted_events_across_reopen() {
    let dir = TempDir::new();
    let event = NewEvent {
        id: Uuid::now_v7(),
        flow: "orders".into(),
        source: "webhook".into(),
        received_at: jiff::Timestamp::now(),
        headers: vec![],
        body: br#"{"id": 1}"#.to_vec(),
        dedup_key: Some("1".into()),
        max_attempts: 3,
    };
    let store = SqliteStore::open(&dir.url(), OpenOptions::default()).await.unwrap();
    assert!(matches!(store.accept_event(event.clone()).await.unwrap(), AcceptOutcome::Accepted { .. }));
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut sqlx::SqliteConnection::connect(&dir.url()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    store.close().await;

    let reopened = SqliteStore::open(&dir.url(), OpenOptions::default()).await.unwrap();
    assert_eq!(reopened.get_event(event.id).await.unwrap().map(|e| e.body), Some(event.body.clone()));
    assert_eq!(reopened.queue_stats().await.unwrap().ready, 1);
    assert_eq!(
        reopened.accept_event(NewEvent { id: Uuid::now_v7(), ..event.clone() }).await.unwrap(),
        AcceptOutcome::Duplicate { existing: event.id },
        "dedup keys survive a restart"
    );
}

#[tokio::test]
async fn open_explains_bad_urls() {
    let err = coflow::store::open("mysql://root:hunter2@localhost/db").await.unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err}");
    assert!(err.to_string().contains("sqlite://PATH") && !err.to_string().contains("hunter2"), "{err}");

    let missing_dir = std::env::temp_dir().join(format!("no-such-dir-{}", Uuid::new_v4().simple()));
    let url = format!("sqlite://{}/coflow.db", missing_dir.display());
    assert!(coflow::store::open(&url).await.is_err(), "a database in a missing folder cannot be created");

    let err = coflow::store::open("postgres://postgres@127.0.0.1:notaport/test").await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidUrl(_)), "{err}");
}
