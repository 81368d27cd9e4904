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

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::backend::{Dialect, Durability, sql_store};
use super::{Clock, OpenOptions, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer from another process may hold the file before an operation gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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

    const POSITION: &'static str = "instr";

    /// Takes the write lock at once, so a transaction never fails upgrading a read lock.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    const BEGIN_SNAPSHOT: &'static str = "BEGIN";

    /// A lease commit lost in a power cut goes down with every process that could hold the lease.
    const LEASE_DURABILITY: Durability = Durability::Recoverable;

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
}

sql_store!(SqliteStore, sqlx::Sqlite, sqlx::SqliteConnection, sqlx::sqlite::SqliteRow);

#[cfg(test)]
mod tests {
    use sqlx::{AssertSqlSafe, Row as _};

    use super::*;
    use crate::store::sql;

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
}
