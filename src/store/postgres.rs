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

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::backend::{Dialect, Durability, sql_store};
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
            .connect_with(connect)
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

    const POSITION: &'static str = "strpos";

    /// Read committed: the statements lock the rows they decide on.
    const BEGIN_WRITE: &'static str = "BEGIN";

    const BEGIN_SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

    /// The database server can crash while the processes holding leases live on: a lost lease
    /// commit would let two of them hold one lease.
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
}

sql_store!(PgStore, sqlx::Postgres, sqlx::PgConnection, sqlx::postgres::PgRow);
