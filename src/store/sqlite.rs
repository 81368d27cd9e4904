//! The embedded store: one SQLite file in WAL mode.
//!
//! One writer connection and a pool of read-only connections: SQLite admits one writer at a
//! time anyway, and queueing writers in the pool is cheaper than letting them spin on
//! `SQLITE_BUSY`. Every write transaction starts with `BEGIN IMMEDIATE`, so a second process
//! on the same file (a CLI command) waits on the busy timeout instead of failing a lock upgrade.
//!
//! Durability. In WAL mode `synchronous = NORMAL` survives a crash of the process but not of
//! the machine: the last commits may vanish on power loss because the WAL is only flushed at
//! checkpoints. `FULL` flushes the WAL on every commit, which costs one `fsync` (0.3 to 1.5 ms
//! on a typical VM disk, against 20 to 40 µs without). So the store uses `FULL` exactly for the
//! transactions whose commit is acknowledged to somebody else (accepting events, enqueueing
//! work, resubmitting) and `NORMAL` for the rest (leases, run progress, action results). That is
//! safe because the WAL is replayed as a prefix: a later `FULL` commit flushes every earlier
//! `NORMAL` one, and power loss can only drop a suffix of `NORMAL` commits made after the last
//! acknowledged one. What such a loss undoes (a completed queue item, a recorded action) is
//! redone by at-least-once retry, which connector writes make idempotent.
//!
//! The [`Store`](super::Store) methods themselves are written once for both backends, in the
//! `backend` module; this one says how SQLite differs.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};

use super::backend::{Dialect, Durability, sql_store};
use super::search;
use super::{Clock, OpenOptions, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer from another process may hold the file before an operation gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Most runs a text search reads through the trigram index. A text found in more runs is common
/// enough that reading runs newest first finds a page of them sooner than reading all its
/// matches from the index and sorting them, which takes longer the more runs match.
const INDEX_LOOKUP_LIMIT: i64 = 1_000;

/// How many runs, up to `$2`, contain the FTS5 phrase `$1`, and their rowids as a JSON array.
const INDEXED_ROWIDS: &str = "SELECT COUNT(*), json_group_array(rowid)
     FROM (SELECT rowid FROM runs_search WHERE runs_search MATCH $1 LIMIT $2)";

/// The SQLite implementation of [`Store`](super::Store).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    clock: Arc<dyn Clock>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and migrates it.
    pub async fn open(url: &str, options: OpenOptions) -> StoreResult<Self> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|err| StoreError::InvalidUrl(err.to_string()))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Normal)
            .statement_cache_capacity(super::backend::STATEMENT_CACHE)
            .pragma("temp_store", "memory");
        let connect = if in_memory { connect } else { connect.journal_mode(SqliteJournalMode::Wal) };
        // An in-memory database lives as long as its connection: keep exactly one, forever.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .connect_with(connect.read_only(true))
                .await?
        };
        Ok(Self { writer, reader, clock: options.clock })
    }

    /// Closes both pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

impl Dialect for SqliteStore {
    type Db = Sqlite;

    const CLAIM_CANDIDATE: &'static str = "SELECT seq, state, attempts, max_attempts FROM queue
         WHERE state IN ('ready', 'leased') AND due_at <= $1 ORDER BY due_at, seq LIMIT 1";

    /// Takes the write lock at once, so a transaction never fails upgrading a read lock.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    const BEGIN_SNAPSHOT: &'static str = "BEGIN";

    /// A lease commit lost in a power cut goes down with every process that could hold the lease.
    const LEASE_DURABILITY: Durability = Durability::Recoverable;

    const UNINDEXED_FINISHED_RUNS: &'static str = "SELECT r.id, COALESCE(d.inputs, ''), d.record
         FROM runs r LEFT JOIN run_data d ON d.run_id = r.id
         WHERE r.search_indexed = 0 AND r.status NOT IN ('queued', 'running')
         ORDER BY r.created_at LIMIT $1";

    /// The FTS5 trigram table `runs_search`, whose content is `runs.search_text`.
    const ADD_TO_TEXT_INDEX: Option<&'static str> = Some(
        "INSERT INTO runs_search (rowid, search_text)
         SELECT rowid, search_text FROM runs WHERE id IN (SELECT value FROM json_each($1))",
    );

    /// `FULL` flushes the WAL at every commit.
    const FLUSH_AT_COMMIT: &'static str = "PRAGMA synchronous = FULL";

    /// `NORMAL` flushes the WAL at checkpoints.
    const FLUSH_LATER: &'static str = "PRAGMA synchronous = NORMAL";

    fn read_pool(&self) -> &SqlitePool {
        &self.reader
    }

    /// The one writer connection.
    fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// A text of 3 or more characters in at most [`INDEX_LOOKUP_LIMIT`] indexed runs is looked
    /// up in the trigram index, and only those runs and the runs not indexed yet are read.
    /// Shorter texts, which the index cannot look up, and commoner ones are found by reading runs
    /// newest first. The runs read are checked for the text either way, so one written between
    /// the two reads cannot be listed wrongly.
    fn push_text_filter<'a>(
        &'a self,
        query: &'a mut QueryBuilder<Sqlite>,
        text: String,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            if search::indexable(&text) {
                let (found, rowids): (i64, String) = sqlx::query_as(INDEXED_ROWIDS)
                    .bind(search::fts5_phrase(&text))
                    .bind(INDEX_LOOKUP_LIMIT + 1)
                    .fetch_one(&self.reader)
                    .await?;
                if found <= INDEX_LOOKUP_LIMIT {
                    query
                        .push(" AND rowid IN (SELECT value FROM json_each(")
                        .push_bind(rowids)
                        .push(") UNION ALL SELECT rowid FROM runs WHERE search_indexed = 0)");
                }
            }
            query.push(" AND CASE WHEN search_indexed = 1 THEN instr(search_text, ").push_bind(text.clone());
            query.push(") > 0 ELSE ");
            push_unindexed_contains(query, &text);
            query.push(" END");
            Ok(())
        })
    }
}

/// Pushes whether the run `runs` of the enclosing query, not indexed yet, contains `text` in
/// its inputs, record or action results. SQLite's `lower` folds ASCII letters only, so until a
/// run is indexed, other letters match only in the case they were written in.
fn push_unindexed_contains(query: &mut QueryBuilder<Sqlite>, text: &str) {
    query.push("(EXISTS (SELECT 1 FROM run_data d WHERE d.run_id = runs.id AND (instr(lower(d.inputs), ");
    query.push_bind(text.to_owned()).push(") > 0 OR instr(lower(COALESCE(d.record, '')), ");
    query.push_bind(text.to_owned()).push(") > 0))");
    query.push(
        " OR EXISTS (SELECT 1 FROM action_results a WHERE a.run_id = runs.id AND instr(lower(a.result), ",
    );
    query.push_bind(text.to_owned()).push(") > 0))");
}

sql_store!(SqliteStore, sqlx::Sqlite, sqlx::SqliteConnection, sqlx::sqlite::SqliteRow);

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use serde_json::json;
    use sqlx::{AssertSqlSafe, Row as _};
    use uuid::Uuid;

    use super::*;
    use crate::store::{NewRun, RunFilter, RunOutcome, RunStatus, Store, sql, uuid};

    /// The `detail` column of `EXPLAIN QUERY PLAN` for `statement`, with `binds` as parameters.
    async fn plan(store: &SqliteStore, statement: &str, binds: &[i64]) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {statement}");
        let mut query = sqlx::query(AssertSqlSafe(explain));
        for bind in binds {
            query = query.bind(*bind);
        }
        let rows = query.fetch_all(&store.reader).await.unwrap();
        rows.iter().map(|row| row.try_get("detail").unwrap()).collect()
    }

    #[tokio::test]
    async fn claim_uses_the_due_index() {
        let store = SqliteStore::open("sqlite::memory:", OpenOptions::default()).await.unwrap();
        let details = plan(&store, SqliteStore::CLAIM_CANDIDATE, &[1]).await;
        assert!(details.iter().any(|d| d.contains("queue_due")), "{details:?}");
    }

    #[tokio::test]
    async fn run_counts_read_only_the_covering_index() {
        let store = SqliteStore::open("sqlite::memory:", OpenOptions::default()).await.unwrap();
        let details = plan(&store, sql::RUN_COUNTS, &[0, 1]).await;
        let covering = "SEARCH runs USING COVERING INDEX runs_created_flow_status";
        assert!(details.iter().any(|d| d.starts_with(covering)), "{details:?}");
    }

    #[tokio::test]
    async fn rare_texts_are_looked_up_in_the_trigram_index() {
        let store = SqliteStore::open("sqlite::memory:", OpenOptions::default()).await.unwrap();
        let mut query = QueryBuilder::<Sqlite>::new(format!("EXPLAIN QUERY PLAN {}", sql::LIST_RUNS));
        store.push_text_filter(&mut query, "acme".into()).await.unwrap();
        query.push(" ORDER BY created_at DESC, id DESC LIMIT 51");
        let rows = query.build().fetch_all(&store.reader).await.unwrap();
        let details: Vec<String> = rows.iter().map(|row| row.get("detail")).collect();
        assert!(
            details.iter().any(|d| d.starts_with("SEARCH runs USING INTEGER PRIMARY KEY")),
            "{details:?}"
        );
        assert!(details.iter().any(|d| d.contains("INDEX runs_unindexed")), "{details:?}");
    }

    /// A temporary database file's URL; the directory goes when the guard does.
    struct TempDb(std::path::PathBuf);

    impl TempDb {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("coflow-sqlite-test-{}", Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn url(&self) -> String {
            format!("sqlite://{}", self.0.join("coflow.db").display())
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn find(store: &SqliteStore, text: &str) -> Vec<String> {
        let filter = RunFilter { text: Some(text.into()), ..RunFilter::default() };
        let page = store.list_runs(filter).await.unwrap();
        page.runs.iter().map(|run| run.id.to_string()).collect()
    }

    /// Fails unless the trigram index holds exactly the text of `runs`.
    async fn check_index(store: &SqliteStore) {
        sqlx::query("INSERT INTO runs_search (runs_search, rank) VALUES ('integrity-check', 1)")
            .execute(&store.writer)
            .await
            .expect("the trigram index matches the runs");
    }

    #[tokio::test]
    async fn common_texts_are_found_newest_first() {
        let store = SqliteStore::open("sqlite::memory:", OpenOptions::default()).await.unwrap();
        let runs = 2 * INDEX_LOOKUP_LIMIT + 4;
        sqlx::raw_sql(
            "CREATE TEMP TABLE n AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2004)
             SELECT i, printf('00000000-0000-7000-8000-%012d', i) AS id FROM n;
             INSERT INTO runs (id, flow, status, created_at, search_text) SELECT id, 'orders', 'succeeded', i, '' FROM n;
             INSERT INTO run_data (run_id, inputs)
             SELECT id, json_quote(CASE WHEN i % 2 = 0 THEN 'even ' ELSE 'odd ' END || i) FROM n;",
        )
        .execute(&store.writer)
        .await
        .unwrap();
        assert_eq!(runs, 2004, "the runs inserted above");
        let newest = runs - 1;
        for indexed in [false, true] {
            if indexed {
                assert_eq!(store.index_search(10_000).await.unwrap(), u64::try_from(runs).unwrap());
            }
            let filter = RunFilter { text: Some("ODD".into()), limit: 3, ..RunFilter::default() };
            let page = store.list_runs(filter).await.unwrap();
            let created: Vec<i64> = page.runs.iter().map(|run| run.created_at.as_microsecond()).collect();
            assert_eq!(created, vec![newest, newest - 2, newest - 4], "indexed: {indexed}");
        }
    }

    #[tokio::test]
    async fn migrating_indexes_the_runs_already_stored() {
        let db = TempDb::new();
        let connect = SqliteConnectOptions::from_str(&db.url()).unwrap().create_if_missing(true);
        let old = SqlitePool::connect_with(connect).await.unwrap();
        MIGRATOR.run_to(2, &old).await.unwrap();
        let id = Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO runs (id, flow, status, created_at, search_text)
             VALUES ($1, 'orders', 'succeeded', 1, '{\"customer\":\"contoso\"}')",
        )
        .bind(&id)
        .execute(&old)
        .await
        .unwrap();
        old.close().await;

        let store = SqliteStore::open(&db.url(), OpenOptions::default()).await.unwrap();
        assert_eq!(find(&store, "ntoso").await, vec![id]);
        check_index(&store).await;
        store.close().await;
    }

    async fn finished_run(store: &SqliteStore, n: i64, status: RunStatus) -> Uuid {
        let run = NewRun {
            id: Uuid::now_v7(),
            flow: "orders".into(),
            status: RunStatus::Queued,
            event_id: None,
            resubmit_of: None,
            created_at: Timestamp::from_second(1_000 + n).unwrap(),
            inputs: json!({"order": format!("ord-{n:03}")}),
        };
        store.create_run(run.clone()).await.unwrap();
        if status.is_terminal() {
            let record = json!({"trigger": {"outputs": "trg-{n:03}"}, "ticket": format!("tck-{n:03}")});
            let outcome = RunOutcome { status, ended_at: run.created_at, error: None, record };
            store.finish_run(run.id, outcome).await.unwrap();
        }
        run.id
    }

    #[tokio::test]
    async fn finished_runs_are_indexed_in_batches_and_found_before_too() {
        let store = SqliteStore::open("sqlite::memory:", OpenOptions::default()).await.unwrap();
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(finished_run(&store, n, RunStatus::Succeeded).await.to_string());
        }
        let running = finished_run(&store, 5, RunStatus::Running).await.to_string();
        assert_eq!(find(&store, "tck-003").await, vec![ids[3].clone()], "found before it is indexed");
        assert_eq!(store.index_search(2).await.unwrap(), 2);
        assert_eq!(store.index_search(500).await.unwrap(), 3, "the running run waits");
        assert_eq!(store.index_search(500).await.unwrap(), 0);
        assert_eq!(find(&store, "tck-003").await, vec![ids[3].clone()]);
        assert_eq!(find(&store, "ord-005").await, vec![running.clone()], "unindexed runs are read directly");
        assert_eq!(find(&store, "trg-001").await, Vec::<String>::new(), "the trigger repeats the inputs");
        let outcome = RunOutcome {
            status: RunStatus::Succeeded,
            ended_at: Timestamp::now(),
            error: None,
            record: json!({}),
        };
        store.finish_run(uuid(&running).unwrap(), outcome).await.unwrap();
        assert_eq!(store.index_search(500).await.unwrap(), 1);
        // The integrity check compares the index with every run: it holds only when all are indexed.
        check_index(&store).await;

        // An indexed run whose text changes leaves the index and goes back in with the new text.
        let id = uuid(&ids[1]).unwrap();
        let record = json!({"ticket": "tck-new"});
        let outcome =
            RunOutcome { status: RunStatus::Failed, ended_at: Timestamp::now(), error: None, record };
        store.finish_run(id, outcome).await.unwrap();
        assert_eq!(find(&store, "tck-new").await, vec![ids[1].clone()]);
        assert_eq!(find(&store, "tck-001").await, Vec::<String>::new());
        assert_eq!(store.index_search(500).await.unwrap(), 1);
        check_index(&store).await;
        assert_eq!(find(&store, "tck-new").await, vec![ids[1].clone()]);
    }

    #[tokio::test]
    async fn the_index_follows_runs_through_writes_deletes_and_vacuum() {
        let db = TempDb::new();
        let store = SqliteStore::open(&db.url(), OpenOptions::default()).await.unwrap();
        let mut ids = Vec::new();
        for n in 0..20 {
            ids.push(finished_run(&store, n, RunStatus::Succeeded).await.to_string());
            // Half the runs to be purged are indexed, half are not.
            if n == 4 {
                assert_eq!(store.index_search(500).await.unwrap(), 5);
            }
        }
        // Purging the first half leaves gaps in the rowids, which VACUUM could close.
        let purged = store.purge(Timestamp::from_second(1_010).unwrap()).await.unwrap();
        assert_eq!(purged.runs, 10);
        sqlx::raw_sql("VACUUM").execute(&store.writer).await.unwrap();
        assert_eq!(store.index_search(500).await.unwrap(), 10);
        check_index(&store).await;
        assert_eq!(find(&store, "tck-015").await, vec![ids[15].clone()]);
        assert_eq!(find(&store, "ord-005").await, Vec::<String>::new());
        store.close().await;
    }
}
