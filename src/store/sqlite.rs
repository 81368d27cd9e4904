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

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection, Transaction};
use uuid::Uuid;

use super::sql;
use super::{
    AcceptOutcome, ActionRecord, Claim, ClaimToken, Clock, Cursor, FailOutcome, FlowState, LeaseHolder,
    NewEvent, NewRun, NewWork, OpenOptions, PurgeReport, QueueStats, RejectedEvent, RunCount, RunDetail,
    RunFilter, RunOutcome, RunPage, RunStatus, RunSummary, Store, StoreError, StoreResult, StoredEvent,
    Watermark, WorkItem, add, count, is_missing_parent, micros, page_size, search_text, timestamp, to_json,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Runs per flow and status in a time window. SQLite plans without table statistics, so for the
/// plain query it reads the window through `runs_created` and fetches every row (search text
/// included) to learn its flow and status. `+created_at` keeps it off that index: it counts from
/// the covering `runs_flow_status` index instead, without touching the table (about 15 ms
/// rather than 230 ms for 100,000 runs in the window).
const RUN_COUNTS: &str = "SELECT flow, status, COUNT(*) AS n FROM runs
     WHERE +created_at >= $1 AND +created_at < $2 GROUP BY flow, status ORDER BY flow, status";

/// How long a writer from another process may hold the file before an operation gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

super::row_decoders!(SqliteRow);

/// Whether a write must survive power loss once committed (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Flush the WAL at commit: the commit is acknowledged to someone.
    Acknowledged,
    /// Flush at checkpoints: losing the commit on power loss only causes a retry.
    Recoverable,
}

/// The SQLite implementation of [`Store`].
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

    /// The writer connection, with the flush policy the next transaction needs.
    async fn writer(&self, durability: Durability) -> StoreResult<PoolConnection<Sqlite>> {
        let mut conn = self.writer.acquire().await?;
        // The safety level cannot change inside a transaction, so it is set before `BEGIN`.
        let pragma = match durability {
            Durability::Acknowledged => "PRAGMA synchronous = FULL",
            Durability::Recoverable => "PRAGMA synchronous = NORMAL",
        };
        sqlx::query(pragma).execute(&mut *conn).await?;
        Ok(conn)
    }
}

/// Starts a write transaction that holds the write lock from its first statement.
async fn begin(conn: &mut SqliteConnection) -> StoreResult<Transaction<'_, Sqlite>> {
    Ok(conn.begin_with("BEGIN IMMEDIATE").await?)
}

impl Store for SqliteStore {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn accept_events(&self, events: Vec<NewEvent>) -> BoxFuture<'_, StoreResult<Vec<AcceptOutcome>>> {
        Box::pin(async move {
            let mut conn = self.writer(Durability::Acknowledged).await?;
            let mut tx = begin(&mut conn).await?;
            let mut outcomes = Vec::with_capacity(events.len());
            for event in &events {
                outcomes.push(accept_one(&mut tx, event).await?);
            }
            tx.commit().await?;
            Ok(outcomes)
        })
    }

    fn reject_event(&self, event: RejectedEvent) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let mut conn = self.writer(Durability::Recoverable).await?;
            sqlx::query(
                "INSERT INTO rejected_events (id, flow, source, received_at, headers, body, status, reason)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(event.id.to_string())
            .bind(&event.flow)
            .bind(&event.source)
            .bind(micros(event.received_at))
            .bind(to_json("event headers", &event.headers)?)
            .bind(&event.body)
            .bind(i64::from(event.status))
            .bind(&event.reason)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }

    fn get_event(&self, id: Uuid) -> BoxFuture<'_, StoreResult<Option<StoredEvent>>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT id, flow, source, received_at, headers, body, dedup_key FROM events WHERE id = $1",
            )
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
            row.as_ref().map(stored_event).transpose()
        })
    }

    fn list_rejected(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<RejectedEvent>>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, flow, source, received_at, headers, body, status, reason FROM rejected_events
                 ORDER BY received_at DESC, id DESC LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(rejected_event).collect()
        })
    }

    fn enqueue(&self, work: NewWork) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let now = self.now();
            let mut conn = self.writer(Durability::Acknowledged).await?;
            insert_work(&mut conn, &work, now).await
        })
    }

    fn claim<'a>(&'a self, worker: &'a str, lease: Duration) -> BoxFuture<'a, StoreResult<Option<Claim>>> {
        Box::pin(async move {
            let now = self.now();
            let lease_until = add(now, lease);
            let token = Uuid::new_v4();
            let mut conn = self.writer(Durability::Recoverable).await?;
            let mut tx = begin(&mut conn).await?;
            loop {
                let Some(candidate) = sqlx::query(
                    "SELECT seq, state, attempts, max_attempts FROM queue
                     WHERE state IN ('ready', 'leased') AND due_at <= $1 ORDER BY due_at, seq LIMIT 1",
                )
                .bind(micros(now))
                .fetch_optional(&mut *tx)
                .await?
                else {
                    tx.commit().await?;
                    return Ok(None);
                };
                let seq: i64 = candidate.try_get("seq")?;
                let state: String = candidate.try_get("state")?;
                let attempts: i64 = candidate.try_get("attempts")?;
                let max_attempts: i64 = candidate.try_get("max_attempts")?;
                if state == "leased" && attempts >= max_attempts {
                    // A worker died holding the last attempt: the item is poison, not work.
                    sqlx::query(sql::DEAD_LETTER_EXPIRED).bind(seq).execute(&mut *tx).await?;
                    continue;
                }
                let row = sqlx::query(
                    "UPDATE queue SET state = 'leased', attempts = attempts + 1, lease_owner = $1,
                         lease_token = $2, due_at = $3
                     WHERE seq = $4
                     RETURNING id, flow, event_id, run_id, payload, attempts, max_attempts, enqueued_at, last_error",
                )
                .bind(worker)
                .bind(token.to_string())
                .bind(micros(lease_until))
                .bind(seq)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                let item = work_item(&row)?;
                return Ok(Some(Claim { token: ClaimToken { item: item.id, token }, item, lease_until }));
            }
        })
    }

    fn heartbeat(&self, token: ClaimToken, lease: Duration) -> BoxFuture<'_, StoreResult<Timestamp>> {
        Box::pin(async move {
            let lease_until = add(self.now(), lease);
            let mut conn = self.writer(Durability::Recoverable).await?;
            let done = sqlx::query(
                "UPDATE queue SET due_at = $1 WHERE id = $2 AND lease_token = $3 AND state = 'leased'",
            )
            .bind(micros(lease_until))
            .bind(token.item.to_string())
            .bind(token.token.to_string())
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::LeaseLost(token.item));
            }
            Ok(lease_until)
        })
    }

    fn complete(&self, token: ClaimToken) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let mut conn = self.writer(Durability::Recoverable).await?;
            let done =
                sqlx::query("DELETE FROM queue WHERE id = $1 AND lease_token = $2 AND state = 'leased'")
                    .bind(token.item.to_string())
                    .bind(token.token.to_string())
                    .execute(&mut *conn)
                    .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::LeaseLost(token.item));
            }
            Ok(())
        })
    }

    fn fail<'a>(
        &'a self,
        token: ClaimToken,
        error: &'a str,
        retry_at: Timestamp,
    ) -> BoxFuture<'a, StoreResult<FailOutcome>> {
        Box::pin(async move {
            let mut conn = self.writer(Durability::Recoverable).await?;
            let state: Option<String> = sqlx::query_scalar(sql::FAIL_WORK)
                .bind(micros(retry_at))
                .bind(error)
                .bind(token.item.to_string())
                .bind(token.token.to_string())
                .fetch_optional(&mut *conn)
                .await?;
            sql::fail_outcome(token, state, retry_at)
        })
    }

    fn release(&self, token: ClaimToken) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let now = self.now();
            let mut conn = self.writer(Durability::Recoverable).await?;
            let done = sqlx::query(RELEASE_WORK)
                .bind(micros(now))
                .bind(token.item.to_string())
                .bind(token.token.to_string())
                .execute(&mut *conn)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::LeaseLost(token.item));
            }
            Ok(())
        })
    }

    fn queue_stats(&self) -> BoxFuture<'_, StoreResult<QueueStats>> {
        Box::pin(async move {
            let rows = sqlx::query(sql::QUEUE_STATS).fetch_all(&self.reader).await?;
            let mut stats = QueueStats::default();
            for row in &rows {
                let state: String = row.try_get("state")?;
                let n = count(row.try_get("n")?);
                let oldest: Option<i64> = row.try_get("oldest")?;
                match state.as_str() {
                    "ready" => stats.ready = n,
                    "leased" => stats.leased = n,
                    _ => stats.dead = n,
                }
                if state != "dead" {
                    let oldest = crate::store::opt_timestamp(oldest)?;
                    stats.oldest_enqueued_at = match (stats.oldest_enqueued_at, oldest) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
            }
            Ok(stats)
        })
    }

    fn list_dead(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<WorkItem>>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, flow, event_id, run_id, payload, attempts, max_attempts, enqueued_at, last_error
                 FROM queue WHERE state = 'dead' ORDER BY seq LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(work_item).collect()
        })
    }

    fn requeue_dead(&self, id: Uuid) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let now = self.now();
            let mut conn = self.writer(Durability::Acknowledged).await?;
            let done = sqlx::query(
                "UPDATE queue SET state = 'ready', attempts = 0, due_at = $1 WHERE id = $2 AND state = 'dead'",
            )
            .bind(micros(now))
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn create_run(&self, run: NewRun) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let inputs = to_json("run inputs", &run.inputs)?;
            let mut conn = self.writer(Durability::Recoverable).await?;
            let mut tx = begin(&mut conn).await?;
            let created = insert_run(&mut tx, &run, &inputs).await?;
            tx.commit().await?;
            Ok(created)
        })
    }

    fn start_run(&self, id: Uuid, at: Timestamp) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let mut conn = self.writer(Durability::Recoverable).await?;
            let done = sqlx::query(
                "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, $1) WHERE id = $2",
            )
            .bind(micros(at))
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::RunNotFound(id));
            }
            Ok(())
        })
    }

    fn record_action(&self, run: Uuid, action: ActionRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let result = to_json("action result", &action.result)?;
            let mut conn = self.writer(Durability::Recoverable).await?;
            let done = sqlx::query(sql::UPSERT_ACTION)
                .bind(run.to_string())
                .bind(&action.name)
                .bind(&action.status)
                .bind(action.started_at.map(micros))
                .bind(action.ended_at.map(micros))
                .bind(result)
                .execute(&mut *conn)
                .await;
            match done {
                Err(err) if is_missing_parent(&err) => Err(StoreError::RunNotFound(run)),
                Err(err) => Err(err.into()),
                Ok(_) => Ok(()),
            }
        })
    }

    fn completed_actions(&self, run: Uuid) -> BoxFuture<'_, StoreResult<Vec<ActionRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT name, status, started_at, ended_at, result FROM action_results
                 WHERE run_id = $1 ORDER BY seq, name",
            )
            .bind(run.to_string())
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(action_record).collect()
        })
    }

    fn finish_run(&self, id: Uuid, outcome: RunOutcome) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let record = to_json("run record", &outcome.record)?;
            let error = outcome.error.as_ref().map(|e| to_json("run error", e)).transpose()?;
            let mut conn = self.writer(Durability::Recoverable).await?;
            let mut tx = begin(&mut conn).await?;
            let inputs: Option<String> = sqlx::query_scalar("SELECT inputs FROM run_data WHERE run_id = $1")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(inputs) = inputs else {
                return Err(StoreError::RunNotFound(id));
            };
            sqlx::query(
                "UPDATE runs SET status = $1, ended_at = $2, error = $3, search_text = $4 WHERE id = $5",
            )
            .bind(outcome.status.as_str())
            .bind(micros(outcome.ended_at))
            .bind(error)
            .bind(search_text(&[&inputs, &record]))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE run_data SET record = $1 WHERE run_id = $2")
                .bind(record)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn get_run(&self, id: Uuid) -> BoxFuture<'_, StoreResult<Option<RunDetail>>> {
        Box::pin(async move {
            let mut conn = self.reader.acquire().await?;
            // One read transaction: the summary, data and actions come from one snapshot.
            let mut tx = conn.begin().await?;
            let Some(row) = sqlx::query(
                "SELECT r.id, r.flow, r.status, r.event_id, r.resubmit_of, r.created_at, r.started_at,
                        r.ended_at, r.error, d.inputs, d.record
                 FROM runs r JOIN run_data d ON d.run_id = r.id WHERE r.id = $1",
            )
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            else {
                return Ok(None);
            };
            let actions = sqlx::query(
                "SELECT name, status, started_at, ended_at, result FROM action_results
                 WHERE run_id = $1 ORDER BY seq, name",
            )
            .bind(id.to_string())
            .fetch_all(&mut *tx)
            .await?;
            let resubmits: Vec<String> =
                sqlx::query_scalar("SELECT id FROM runs WHERE resubmit_of = $1 ORDER BY created_at, id")
                    .bind(id.to_string())
                    .fetch_all(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(Some(RunDetail {
                summary: run_summary(&row)?,
                inputs: crate::store::from_json("run inputs", row.try_get("inputs")?)?,
                record: crate::store::opt_json("run record", row.try_get("record")?)?,
                actions: actions.iter().map(action_record).collect::<StoreResult<_>>()?,
                resubmits: resubmits.iter().map(|id| crate::store::uuid(id)).collect::<StoreResult<_>>()?,
            }))
        })
    }

    fn list_runs(&self, filter: RunFilter) -> BoxFuture<'_, StoreResult<RunPage>> {
        Box::pin(async move {
            let limit = page_size(&filter);
            let cursor = filter.cursor.as_deref().map(Cursor::parse).transpose()?;
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT id, flow, status, event_id, resubmit_of, created_at, started_at, ended_at, error
                 FROM runs WHERE 1 = 1",
            );
            if let Some(flow) = &filter.flow {
                query.push(" AND flow = ").push_bind(flow.clone());
            }
            if let Some(status) = filter.status {
                query.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(since) = filter.since {
                query.push(" AND created_at >= ").push_bind(micros(since));
            }
            if let Some(until) = filter.until {
                query.push(" AND created_at < ").push_bind(micros(until));
            }
            if let Some(text) = filter.text.as_deref().filter(|text| !text.is_empty()) {
                query.push(" AND instr(search_text, ").push_bind(text.to_lowercase()).push(") > 0");
            }
            if let Some(cursor) = cursor {
                query
                    .push(" AND (created_at, id) < (")
                    .push_bind(cursor.created_at)
                    .push(", ")
                    .push_bind(cursor.id)
                    .push(")");
            }
            query.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(limit) + 1);
            let rows = query.build().fetch_all(&self.reader).await?;
            page(&rows, limit)
        })
    }

    fn run_counts(&self, since: Timestamp, until: Timestamp) -> BoxFuture<'_, StoreResult<Vec<RunCount>>> {
        Box::pin(async move {
            let rows = sqlx::query(RUN_COUNTS)
                .bind(micros(since))
                .bind(micros(until))
                .fetch_all(&self.reader)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(RunCount {
                        flow: row.try_get("flow")?,
                        status: RunStatus::parse(row.try_get("status")?)?,
                        count: count(row.try_get("n")?),
                    })
                })
                .collect()
        })
    }

    fn resubmit(&self, original: Uuid, new_run: Uuid, max_attempts: u32) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let now = self.now();
            let mut conn = self.writer(Durability::Acknowledged).await?;
            let mut tx = begin(&mut conn).await?;
            let Some(row) = sqlx::query(
                "SELECT r.flow, r.event_id, d.inputs FROM runs r JOIN run_data d ON d.run_id = r.id
                 WHERE r.id = $1",
            )
            .bind(original.to_string())
            .fetch_optional(&mut *tx)
            .await?
            else {
                return Err(StoreError::RunNotFound(original));
            };
            let inputs: String = row.try_get("inputs")?;
            let run = NewRun {
                id: new_run,
                flow: row.try_get("flow")?,
                status: RunStatus::Queued,
                event_id: crate::store::opt_uuid(row.try_get("event_id")?)?,
                resubmit_of: Some(original),
                created_at: now,
                inputs: Value::Null,
            };
            if insert_run(&mut tx, &run, &inputs).await? {
                let work = sql::resubmit_work(&run, max_attempts);
                insert_work(&mut tx, &work, now).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn get_watermark<'a>(
        &'a self,
        flow: &'a str,
        trigger: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Watermark>>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT value, version, updated_at FROM watermarks WHERE flow = $1 AND trigger_name = $2",
            )
            .bind(flow)
            .bind(trigger)
            .fetch_optional(&self.reader)
            .await?;
            row.as_ref().map(watermark).transpose()
        })
    }

    fn set_watermark<'a>(
        &'a self,
        flow: &'a str,
        trigger: &'a str,
        value: Value,
    ) -> BoxFuture<'a, StoreResult<i64>> {
        Box::pin(async move {
            let value = to_json("watermark", &value)?;
            let mut conn = self.writer(Durability::Recoverable).await?;
            Ok(sqlx::query_scalar(sql::SET_WATERMARK)
                .bind(flow)
                .bind(trigger)
                .bind(value)
                .bind(micros(self.now()))
                .fetch_one(&mut *conn)
                .await?)
        })
    }

    fn cas_watermark<'a>(
        &'a self,
        flow: &'a str,
        trigger: &'a str,
        expected: Option<i64>,
        value: Value,
    ) -> BoxFuture<'a, StoreResult<Option<i64>>> {
        Box::pin(async move {
            let value = to_json("watermark", &value)?;
            let mut conn = self.writer(Durability::Recoverable).await?;
            let query = match expected {
                Some(version) => sqlx::query_scalar(sql::CAS_WATERMARK).bind(version),
                None => sqlx::query_scalar(sql::CREATE_WATERMARK),
            };
            Ok(query
                .bind(flow)
                .bind(trigger)
                .bind(value)
                .bind(micros(self.now()))
                .fetch_optional(&mut *conn)
                .await?)
        })
    }

    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let now = self.now();
            let mut conn = self.writer(Durability::Recoverable).await?;
            let granted: Option<String> = sqlx::query_scalar(sql::ACQUIRE_LEASE)
                .bind(name)
                .bind(holder)
                .bind(micros(add(now, ttl)))
                .bind(micros(now))
                .fetch_optional(&mut *conn)
                .await?;
            Ok(granted.is_some())
        })
    }

    fn release_lease<'a>(&'a self, name: &'a str, holder: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let mut conn = self.writer(Durability::Recoverable).await?;
            let done = sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(&mut *conn)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn lease_holder<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<LeaseHolder>>> {
        Box::pin(async move {
            let row =
                sqlx::query("SELECT holder, expires_at FROM leases WHERE name = $1 AND expires_at > $2")
                    .bind(name)
                    .bind(micros(self.now()))
                    .fetch_optional(&self.reader)
                    .await?;
            row.map(|row| {
                Ok(LeaseHolder {
                    holder: row.try_get("holder")?,
                    expires_at: timestamp(row.try_get("expires_at")?)?,
                })
            })
            .transpose()
        })
    }

    fn purge(&self, cutoff: Timestamp) -> BoxFuture<'_, StoreResult<PurgeReport>> {
        Box::pin(async move {
            let cutoff = micros(cutoff);
            let mut conn = self.writer(Durability::Recoverable).await?;
            let mut tx = begin(&mut conn).await?;
            let mut report = PurgeReport::default();
            for (sql, slot) in [
                (sql::PURGE_RUNS, &mut report.runs),
                (sql::PURGE_DEAD_WORK, &mut report.dead_work),
                (sql::PURGE_EVENTS, &mut report.events),
                (sql::PURGE_REJECTED, &mut report.rejected),
            ] {
                *slot = sqlx::query(sql).bind(cutoff).execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(report)
        })
    }

    fn set_flow_enabled<'a>(&'a self, flow: &'a str, enabled: bool) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut conn = self.writer(Durability::Acknowledged).await?;
            sqlx::query(sql::SET_FLOW_STATE)
                .bind(flow)
                .bind(enabled)
                .bind(micros(self.now()))
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    }

    fn flow_enabled<'a>(&'a self, flow: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let enabled: Option<bool> = sqlx::query_scalar("SELECT enabled FROM flow_states WHERE flow = $1")
                .bind(flow)
                .fetch_optional(&self.reader)
                .await?;
            Ok(enabled.unwrap_or(true))
        })
    }

    fn flow_states(&self) -> BoxFuture<'_, StoreResult<Vec<FlowState>>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT flow, enabled, updated_at FROM flow_states ORDER BY flow")
                .fetch_all(&self.reader)
                .await?;
            rows.iter().map(flow_state).collect()
        })
    }
}

/// Stores one event and its work item, or recognises it as a redelivery.
async fn accept_one(conn: &mut SqliteConnection, event: &NewEvent) -> StoreResult<AcceptOutcome> {
    let id = event.id.to_string();
    let inserted = sqlx::query(
        "INSERT INTO events (id, flow, source, received_at, headers, body, dedup_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(&event.flow)
    .bind(&event.source)
    .bind(micros(event.received_at))
    .bind(to_json("event headers", &event.headers)?)
    .bind(&event.body)
    .bind(&event.dedup_key)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        let existing: String = sqlx::query_scalar(sql::FIND_DUPLICATE)
            .bind(&id)
            .bind(&event.flow)
            .bind(&event.dedup_key)
            .fetch_one(&mut *conn)
            .await?;
        return Ok(AcceptOutcome::Duplicate { existing: crate::store::uuid(&existing)? });
    }
    let work = sql::event_work(event);
    insert_work(conn, &work, event.received_at).await?;
    Ok(AcceptOutcome::Accepted { event_id: event.id, work_id: work.id })
}

/// Inserts a work item, ready at `not_before` or `now`.
async fn insert_work(conn: &mut SqliteConnection, work: &NewWork, now: Timestamp) -> StoreResult<()> {
    sqlx::query(sql::INSERT_WORK)
        .bind(work.id.to_string())
        .bind(&work.flow)
        .bind(work.event_id.map(|id| id.to_string()))
        .bind(work.run_id.map(|id| id.to_string()))
        .bind(to_json("work payload", &work.payload)?)
        .bind(micros(work.not_before.unwrap_or(now)))
        .bind(micros(now))
        .bind(i64::from(work.max_attempts))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts a run and its data; false if the id exists. `inputs` is the JSON text of the inputs.
async fn insert_run(conn: &mut SqliteConnection, run: &NewRun, inputs: &str) -> StoreResult<bool> {
    let id = run.id.to_string();
    let inserted = sqlx::query(sql::INSERT_RUN)
        .bind(&id)
        .bind(&run.flow)
        .bind(run.status.as_str())
        .bind(run.event_id.map(|id| id.to_string()))
        .bind(run.resubmit_of.map(|id| id.to_string()))
        .bind(micros(run.created_at))
        .bind(search_text(&[inputs]))
        .execute(&mut *conn)
        .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("INSERT INTO run_data (run_id, inputs) VALUES ($1, $2)")
        .bind(&id)
        .bind(inputs)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// Turns `limit + 1` fetched rows into a page and the cursor of the next one.
fn page(rows: &[SqliteRow], limit: u32) -> StoreResult<RunPage> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let runs: Vec<RunSummary> = rows.iter().take(limit).map(run_summary).collect::<StoreResult<_>>()?;
    let next = if rows.len() > limit { runs.last().map(Cursor::after) } else { None };
    Ok(RunPage { runs, next })
}

/// Hands a claimed item back without counting the attempt.
const RELEASE_WORK: &str = "UPDATE queue
     SET state = 'ready', due_at = $1, attempts = MAX(attempts - 1, 0), lease_owner = NULL, lease_token = NULL
     WHERE id = $2 AND lease_token = $3 AND state = 'leased'";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn claim_uses_the_due_index() {
        let store = SqliteStore::open("sqlite::memory:", OpenOptions::default()).await.unwrap();
        let rows = sqlx::query(
            "EXPLAIN QUERY PLAN SELECT seq FROM queue
             WHERE state IN ('ready', 'leased') AND due_at <= 1 ORDER BY due_at, seq LIMIT 1",
        )
        .fetch_all(&store.reader)
        .await
        .unwrap();
        let details: Vec<String> = rows.iter().map(|row| row.try_get("detail").unwrap()).collect();
        assert!(details.iter().any(|d| d.contains("queue_due")), "{details:?}");
    }
}
