//! The scale-out store: PostgreSQL, shared by several `coflow serve` processes.
//!
//! Workers in any process claim queue items with `FOR UPDATE SKIP LOCKED`, so concurrent
//! claimers never wait on each other and never take the same item. Singleton leases are one
//! row per name updated with an atomic upsert, so exactly one process holds each at a time.
//!
//! Durability mirrors the SQLite store. A commit that is acknowledged to somebody (accepting
//! events, enqueueing, resubmitting, leases) waits for the WAL flush (`synchronous_commit =
//! on`); the rest (claims, run progress, action results) commits asynchronously, which saves
//! the flush (several milliseconds on a virtual disk) and, should the database server crash,
//! can only lose a suffix of those commits: the work they recorded is retried, at least once.
//! Other sessions see an asynchronous commit at once, so claims stay exclusive.
//!
//! The [`Store`](super::Store) methods themselves are written once for both backends, in the
//! `backend` module; this one says how PostgreSQL differs.

use std::str::FromStr;
use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder};

use super::backend::{Dialect, Durability, sql_store};
use super::search;
use super::{Clock, OpenOptions, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The PostgreSQL implementation of [`Store`](super::Store).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl PgStore {
    /// Connects to the database at `url` and migrates it.
    pub async fn open(url: &str, options: OpenOptions) -> StoreResult<Self> {
        let connect =
            PgConnectOptions::from_str(url).map_err(|err| StoreError::InvalidUrl(err.to_string()))?;
        Self::connect(connect, options).await
    }

    /// Connects with explicit connection options (a `search_path`, TLS...) and migrates.
    pub async fn connect(connect: PgConnectOptions, options: OpenOptions) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect_with(connect.statement_cache_capacity(super::backend::STATEMENT_CACHE))
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, clock: options.clock })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl Dialect for PgStore {
    type Db = Postgres;

    /// Skips items other claimers have locked instead of waiting for them.
    const CLAIM_CANDIDATE: &'static str = "SELECT seq, state, attempts, max_attempts FROM queue
         WHERE state IN ('ready', 'leased') AND due_at <= $1 ORDER BY due_at, seq LIMIT 1
         FOR UPDATE SKIP LOCKED";

    /// Read committed: the statements lock the rows they decide on.
    const BEGIN_WRITE: &'static str = "BEGIN";

    const BEGIN_SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

    /// The database server can crash while the processes holding leases live on: a lost lease
    /// commit would let two of them hold one lease.
    /// Runs another process is indexing are skipped.
    const UNINDEXED_FINISHED_RUNS: &'static str = "SELECT r.id, COALESCE(d.inputs, ''), d.record
         FROM runs r LEFT JOIN run_data d ON d.run_id = r.id
         WHERE NOT r.search_indexed AND r.ended_at IS NOT NULL
         ORDER BY r.created_at LIMIT $1 FOR UPDATE OF r SKIP LOCKED";

    /// The trigram index is on `runs.search_text` itself.
    const ADD_TO_TEXT_INDEX: Option<&'static str> = None;

    const LEASE_DURABILITY: Durability = Durability::Acknowledged;

    const FLUSH_AT_COMMIT: &'static str = "SET synchronous_commit = on";

    /// Other sessions see the commit at once, before it is on disk.
    const FLUSH_LATER: &'static str = "SET synchronous_commit = off";

    fn read_pool(&self) -> &PgPool {
        &self.pool
    }

    fn write_pool(&self) -> &PgPool {
        &self.pool
    }

    /// A `LIKE` on the search text of the runs indexed, which the trigram index serves for
    /// texts of 3 or more characters (where the index is missing, it reads their text), and on
    /// the inputs, record and action results of the runs not indexed yet, read directly.
    fn push_text_filter<'a>(
        &'a self,
        query: &'a mut QueryBuilder<Postgres>,
        text: String,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let pattern = search::like_containing(&text);
        query
            .push(" AND id IN (SELECT id FROM runs WHERE search_indexed AND search_text LIKE ")
            .push_bind(pattern.clone())
            .push(" UNION ALL SELECT id FROM runs WHERE NOT search_indexed AND (EXISTS (SELECT 1 FROM run_data d ")
            .push("WHERE d.run_id = runs.id AND (lower(d.inputs) LIKE ")
            .push_bind(pattern.clone())
            .push(" OR lower(d.record) LIKE ")
            .push_bind(pattern.clone())
            .push(")) OR EXISTS (SELECT 1 FROM action_results a WHERE a.run_id = runs.id AND lower(a.result) LIKE ")
            .push_bind(pattern)
            .push(")))");
        Box::pin(std::future::ready(Ok(())))
    }
}

sql_store!(PgStore, sqlx::Postgres, sqlx::PgConnection, sqlx::postgres::PgRow);

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::{AssertSqlSafe, Connection as _, PgConnection, Row as _};
    use uuid::Uuid;

    use super::*;
    use crate::store::{Store as _, sql};

    fn postgres_url() -> String {
        std::env::var("COFLOW_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// Runs `test` on a store in a schema of its own, dropped afterwards.
    async fn in_own_schema<T>(test: impl AsyncFnOnce(&PgStore) -> T) -> T {
        let schema = format!("coflow_plan_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&postgres_url()).await.expect("PostgreSQL is reachable");
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut admin).await.unwrap();
        // Installed once for the database, as an administrator would, rather than by the first
        // store into its own schema, which its test drops. Fails only when a concurrent test
        // installs it first.
        let _ =
            sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public").execute(&mut admin).await;
        let connect =
            PgConnectOptions::from_str(&postgres_url()).unwrap().options([("search_path", schema.as_str())]);
        let store = PgStore::connect(connect, OpenOptions::default()).await.unwrap();
        let outcome = test(&store).await;
        store.close().await;
        sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut admin)
            .await
            .unwrap();
        outcome
    }

    #[tokio::test]
    async fn run_counts_read_only_the_covering_index() {
        let plan = in_own_schema(plan_one_day_of_counts).await;
        assert!(plan.contains("Index Only Scan using runs_created_flow_status"), "{plan}");
    }

    #[tokio::test]
    async fn text_search_uses_the_trigram_index() {
        let plan = in_own_schema(async |store: &PgStore| {
            sqlx::raw_sql(
                "INSERT INTO runs (id, flow, status, created_at, search_text)
                 SELECT 'run-' || i, 'orders', 'running', i, '' FROM generate_series(1, 10000) AS i;
                 INSERT INTO run_data (run_id, inputs)
                 SELECT 'run-' || i, '{\"order\":\"ORD-' || i || '\"}' FROM generate_series(1, 10000) AS i",
            )
            .execute(&store.pool)
            .await
            .unwrap();
            assert_eq!(store.index_search(20_000).await.unwrap(), 0, "running runs wait");
            sqlx::query("UPDATE runs SET ended_at = created_at + 1").execute(&store.pool).await.unwrap();
            assert_eq!(store.index_search(20_000).await.unwrap(), 10_000);
            let text: String = sqlx::query_scalar("SELECT search_text FROM runs WHERE id = 'run-42'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert!(text.contains(r#""order":"ord-42""#), "{text}");
            sqlx::raw_sql("VACUUM ANALYZE runs").execute(&store.pool).await.unwrap();
            let mut query = QueryBuilder::<Postgres>::new(format!("EXPLAIN {}", sql::LIST_RUNS));
            store.push_text_filter(&mut query, "ord-4242\"".into()).await.unwrap();
            query.push(" ORDER BY created_at DESC, id DESC LIMIT 51");
            let rows = query.build().fetch_all(&store.pool).await.unwrap();
            rows.iter().map(|row| row.get::<String, _>(0)).collect::<Vec<_>>().join("\n")
        })
        .await;
        assert!(plan.contains("Bitmap Index Scan on runs_search_trgm"), "{plan}");
        assert!(plan.contains("runs_unindexed"), "runs not indexed yet are found by their own index: {plan}");
    }

    /// The plan of counting one day's runs among 10 000 spread over 100 days, with fresh
    /// statistics and visibility map, as a long-running database has them.
    async fn plan_one_day_of_counts(store: &PgStore) -> String {
        let day: i64 = 86_400_000_000;
        sqlx::query(
            "INSERT INTO runs (id, flow, status, created_at, search_text)
             SELECT gen_random_uuid()::text, 'flow_' || (i % 5), 'succeeded', i * $1, ''
             FROM generate_series(1, 10000) AS i",
        )
        .bind(day / 100)
        .execute(&store.pool)
        .await
        .unwrap();
        sqlx::raw_sql("VACUUM ANALYZE runs").execute(&store.pool).await.unwrap();
        let rows = sqlx::query(AssertSqlSafe(format!("EXPLAIN {}", sql::RUN_COUNTS)))
            .bind(0_i64)
            .bind(day)
            .fetch_all(&store.pool)
            .await
            .unwrap();
        rows.iter().map(|row| row.get::<String, _>(0)).collect::<Vec<_>>().join("\n")
    }
}
