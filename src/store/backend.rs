//! The body of [`Store`] both SQL backends share.
//!
//! SQLite and PostgreSQL run the same statements (SQLite accepts PostgreSQL's `$n` parameters)
//! in the same transactions. Besides how they open their pools, they differ in a few statements:
//! how a connection is set for a durable or a cheap commit, how a transaction begins, how a claim
//! locks its item, how the runs list looks a text up in its index; and in how durably a singleton
//! lease is committed. A backend states those differences by implementing [`Dialect`] for its
//! store type, then expands [`sql_store!`], which writes every [`Store`] method once, with the
//! backend's own sqlx types.
//!
//! A macro rather than one implementation generic over `sqlx::Database`: the generic one would
//! have to spell out, on each impl and helper, every capability it uses (`&mut DB::Connection`
//! executes queries, `String`, `i64`, `bool` and `Vec<u8>` encode and decode, one-column rows
//! decode...), because Rust does not infer such bounds from `DB: Dialect`, and the count of rows
//! a statement changed is not behind any sqlx trait. Expanded per backend, the body is ordinary
//! code over concrete types.
//!
//! [`Store`]: super::Store

use futures::future::BoxFuture;
use sqlx::{Database, Pool, QueryBuilder};

use super::StoreResult;

/// Most rows one multi-row statement takes.
const MAX_ROWS_PER_STATEMENT: usize = 128;

/// Prepared statements each connection keeps: the fixed statements and every shape of the
/// multi-row ones (eight lengths, 1 to 128 rows, of about a dozen statements).
pub(crate) const STATEMENT_CACHE: usize = 256;

/// Splits `rows` into chunks whose lengths are powers of two, longest first and at most
/// [`MAX_ROWS_PER_STATEMENT`], so multi-row statements come in a few shapes that stay in the
/// prepared-statement cache (13 rows: 8, 4, 1).
pub(crate) fn multi_row_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = MAX_ROWS_PER_STATEMENT.min(1 << rest.len().ilog2());
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        Some(chunk)
    })
}

/// Whether a write must survive a crash of the machine or database server once committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Flush the log at commit: the commit is acknowledged to someone.
    Acknowledged,
    /// Leave the flush for later: losing the commit in a crash only causes a retry.
    Recoverable,
}

/// What one SQL backend does its own way; [`sql_store!`] writes the rest of [`Store`] once.
///
/// [`Store`]: super::Store
pub(crate) trait Dialect {
    /// The sqlx driver.
    type Db: Database;

    /// Selects `seq, state, attempts, max_attempts` of the oldest queue item claimable at `$1`,
    /// locked against concurrent claimers where the database needs it.
    const CLAIM_CANDIDATE: &'static str;

    /// Begins a write transaction.
    const BEGIN_WRITE: &'static str;

    /// Begins the read-only transaction in which one read sees a run, its data and its actions
    /// as of one instant.
    const BEGIN_SNAPSHOT: &'static str;

    /// How durably taking or giving up a singleton lease is committed.
    const LEASE_DURABILITY: Durability;

    /// Makes the connection's next commit wait until the commit is on disk.
    const FLUSH_AT_COMMIT: &'static str;

    /// Lets the connection's next commit return before the commit is on disk.
    const FLUSH_LATER: &'static str;

    /// The pool reads go to.
    fn read_pool(&self) -> &Pool<Self::Db>;

    /// The pool writes go to.
    fn write_pool(&self) -> &Pool<Self::Db>;

    /// Adds to a run list query ` AND ` and the condition that the run contains `text`
    /// (lowercased, not empty): its `search_text` once indexed, else its inputs, record or
    /// action results; may read the store to choose how.
    fn push_text_filter<'a>(
        &'a self,
        query: &'a mut QueryBuilder<Self::Db>,
        text: String,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// Selects `id, inputs, record` of up to `$1` of the oldest finished runs whose search text
    /// is not built yet, locked against other indexing processes where the database needs it.
    const UNINDEXED_FINISHED_RUNS: &'static str;

    /// Adds the runs whose ids are the JSON array `$1` to a text index kept apart from the
    /// `runs` table, if the backend has one.
    const ADD_TO_TEXT_INDEX: Option<&'static str>;
}

/// Implements [`Store`](super::Store) for `$store`, a [`Dialect`] whose sqlx database,
/// connection and row types are `$db`, `$conn` and `$row`. The store type must have a field
/// `clock: Arc<dyn Clock>`.
macro_rules! sql_store {
    ($store:ident, $db:ty, $conn:ty, $row:ty) => {
        /// The [`Store`] methods, written once for every SQL backend.
        mod shared {
            use std::collections::{HashMap, HashSet};
            use std::time::Duration;

            use futures::future::BoxFuture;
            use jiff::Timestamp;
            use serde_json::Value;
            use sqlx::pool::PoolConnection;
            use sqlx::{Connection as _, QueryBuilder};
            use uuid::Uuid;

            use super::$store;
            use $crate::store::backend::{Dialect as _, Durability, multi_row_chunks};
            use $crate::store::sql;
            use $crate::store::{
                AcceptOutcome, ActionRecord, Claim, ClaimToken, Cursor, FailOutcome, FlowState, LeaseHolder,
                LeasedOutcome, NewEvent, NewRun, NewWork, PurgeReport, QueueStats, RejectedEvent, RunCount,
                RunDetail, RunFilter, RunOutcome, RunPage, RunStatus, RunSummary, RunWrite, Store,
                StoreError, StoreResult, StoredEvent, Watermark, WorkItem, add, count, is_missing_parent,
                micros, page_size, search_text, searched_record, timestamp, to_json,
            };

            $crate::store::row_decoders!($row);

            impl $store {
                /// A connection for writes whose next commit is as durable as `durability` asks.
                async fn writer(&self, durability: Durability) -> StoreResult<PoolConnection<$db>> {
                    let mut conn = self.write_pool().acquire().await?;
                    // Set before `BEGIN`: SQLite cannot change its safety level inside a transaction.
                    let flush = match durability {
                        Durability::Acknowledged => Self::FLUSH_AT_COMMIT,
                        Durability::Recoverable => Self::FLUSH_LATER,
                    };
                    sqlx::query(flush).execute(&mut *conn).await?;
                    Ok(conn)
                }
            }

            impl Store for $store {
                fn now(&self) -> Timestamp {
                    self.clock.now()
                }

                fn accept_events(
                    &self,
                    events: Vec<NewEvent>,
                ) -> BoxFuture<'_, StoreResult<Vec<AcceptOutcome>>> {
                    Box::pin(async move {
                        let unleased = events.into_iter().map(|event| (event, false)).collect();
                        let outcomes = self.accept_events_leased(unleased, "", Duration::ZERO).await?;
                        Ok(outcomes.into_iter().map(|(outcome, _)| outcome).collect())
                    })
                }

                fn accept_events_leased<'a>(
                    &'a self,
                    events: Vec<(NewEvent, bool)>,
                    worker: &'a str,
                    lease: Duration,
                ) -> BoxFuture<'a, StoreResult<Vec<LeasedOutcome>>> {
                    Box::pin(async move {
                        let now = self.now();
                        let lease_until = add(now, lease);
                        let mut conn = self.writer(Durability::Acknowledged).await?;
                        let mut tx = conn.begin_with(Self::BEGIN_WRITE).await?;
                        let outcomes = accept_batch(&mut tx, &events, worker, lease_until).await?;
                        tx.commit().await?;
                        Ok(outcomes)
                    })
                }

                fn reject_event(&self, event: RejectedEvent) -> BoxFuture<'_, StoreResult<()>> {
                    Box::pin(async move {
                        let mut conn = self.writer(Durability::Recoverable).await?;
                        sqlx::query(sql::INSERT_REJECTED)
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
                        let row = sqlx::query(sql::GET_EVENT)
                            .bind(id.to_string())
                            .fetch_optional(self.read_pool())
                            .await?;
                        row.as_ref().map(stored_event).transpose()
                    })
                }

                fn list_rejected(&self, limit: u32) -> BoxFuture<'_, StoreResult<Vec<RejectedEvent>>> {
                    Box::pin(async move {
                        let rows = sqlx::query(sql::LIST_REJECTED)
                            .bind(i64::from(limit))
                            .fetch_all(self.read_pool())
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

                fn claim<'a>(
                    &'a self,
                    worker: &'a str,
                    lease: Duration,
                ) -> BoxFuture<'a, StoreResult<Option<Claim>>> {
                    Box::pin(async move {
                        let now = self.now();
                        let lease_until = add(now, lease);
                        let token = Uuid::new_v4();
                        let probe = sqlx::query(sql::CLAIM_PROBE).bind(micros(now));
                        if probe.fetch_optional(self.read_pool()).await?.is_none() {
                            return Ok(None);
                        }
                        let mut conn = self.writer(Durability::Recoverable).await?;
                        let mut tx = conn.begin_with(Self::BEGIN_WRITE).await?;
                        loop {
                            let Some(candidate) = sqlx::query(Self::CLAIM_CANDIDATE)
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
                            let row = sqlx::query(sql::LEASE_WORK)
                                .bind(worker)
                                .bind(token.to_string())
                                .bind(micros(lease_until))
                                .bind(seq)
                                .fetch_one(&mut *tx)
                                .await?;
                            tx.commit().await?;
                            let item = work_item(&row)?;
                            return Ok(Some(Claim {
                                token: ClaimToken { item: item.id, token },
                                item,
                                lease_until,
                            }));
                        }
                    })
                }

                fn heartbeat(
                    &self,
                    token: ClaimToken,
                    lease: Duration,
                ) -> BoxFuture<'_, StoreResult<Timestamp>> {
                    Box::pin(async move {
                        let lease_until = add(self.now(), lease);
                        let mut conn = self.writer(Durability::Recoverable).await?;
                        update_claimed(&mut conn, sql::HEARTBEAT, lease_until, token).await?;
                        Ok(lease_until)
                    })
                }

                fn complete(&self, token: ClaimToken) -> BoxFuture<'_, StoreResult<()>> {
                    Box::pin(async move {
                        let mut conn = self.writer(Durability::Recoverable).await?;
                        complete_on(&mut conn, token).await
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
                        update_claimed(&mut conn, sql::RELEASE_WORK, now, token).await
                    })
                }

                fn queue_stats(&self) -> BoxFuture<'_, StoreResult<QueueStats>> {
                    Box::pin(async move {
                        let rows = sqlx::query(sql::QUEUE_STATS).fetch_all(self.read_pool()).await?;
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
                        let rows = sqlx::query(sql::LIST_DEAD)
                            .bind(i64::from(limit))
                            .fetch_all(self.read_pool())
                            .await?;
                        rows.iter().map(work_item).collect()
                    })
                }

                fn get_work(&self, id: Uuid) -> BoxFuture<'_, StoreResult<Option<WorkItem>>> {
                    Box::pin(async move {
                        let row = sqlx::query(sql::GET_WORK)
                            .bind(id.to_string())
                            .fetch_optional(self.read_pool())
                            .await?;
                        row.as_ref().map(work_item).transpose()
                    })
                }

                fn requeue_dead(&self, id: Uuid) -> BoxFuture<'_, StoreResult<bool>> {
                    Box::pin(async move {
                        let now = self.now();
                        let mut conn = self.writer(Durability::Acknowledged).await?;
                        let done = sqlx::query(sql::REQUEUE_DEAD)
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
                        let mut tx = conn.begin_with(Self::BEGIN_WRITE).await?;
                        let created = insert_run(&mut tx, &run, &inputs, None).await?;
                        tx.commit().await?;
                        Ok(created)
                    })
                }

                fn start_run(&self, id: Uuid, at: Timestamp) -> BoxFuture<'_, StoreResult<()>> {
                    Box::pin(async move {
                        let mut conn = self.writer(Durability::Recoverable).await?;
                        start_on(&mut conn, id, at).await
                    })
                }

                fn record_action(&self, run: Uuid, action: ActionRecord) -> BoxFuture<'_, StoreResult<()>> {
                    Box::pin(async move {
                        let result = to_json("action result", &action.result)?;
                        let mut conn = self.writer(Durability::Recoverable).await?;
                        let done = upsert_action(&mut conn, run, &action, result).await;
                        match done {
                            Err(StoreError::Database(err)) if is_missing_parent(&err) => {
                                Err(StoreError::RunNotFound(run))
                            }
                            other => other,
                        }
                    })
                }

                fn completed_actions(&self, run: Uuid) -> BoxFuture<'_, StoreResult<Vec<ActionRecord>>> {
                    Box::pin(async move {
                        let rows = sqlx::query(sql::RUN_ACTIONS)
                            .bind(run.to_string())
                            .fetch_all(self.read_pool())
                            .await?;
                        rows.iter().map(action_record).collect()
                    })
                }

                fn finish_run(&self, id: Uuid, outcome: RunOutcome) -> BoxFuture<'_, StoreResult<()>> {
                    Box::pin(async move {
                        let mut conn = self.writer(Durability::Recoverable).await?;
                        let mut tx = conn.begin_with(Self::BEGIN_WRITE).await?;
                        finish_on(&mut tx, id, &outcome).await?;
                        tx.commit().await?;
                        Ok(())
                    })
                }

                fn write_batch(
                    &self,
                    writes: Vec<RunWrite>,
                ) -> BoxFuture<'_, StoreResult<Vec<StoreResult<()>>>> {
                    Box::pin(async move {
                        let mut conn = self.writer(Durability::Recoverable).await?;
                        let mut tx = conn.begin_with(Self::BEGIN_WRITE).await?;
                        let outcomes = apply_batch(&mut tx, &writes).await?;
                        tx.commit().await?;
                        Ok(outcomes)
                    })
                }

                fn get_run(&self, id: Uuid) -> BoxFuture<'_, StoreResult<Option<RunDetail>>> {
                    Box::pin(async move {
                        // One read transaction: the summary, data and actions come from one snapshot.
                        let mut tx = self.read_pool().begin_with(Self::BEGIN_SNAPSHOT).await?;
                        let Some(row) =
                            sqlx::query(sql::GET_RUN).bind(id.to_string()).fetch_optional(&mut *tx).await?
                        else {
                            return Ok(None);
                        };
                        let actions =
                            sqlx::query(sql::RUN_ACTIONS).bind(id.to_string()).fetch_all(&mut *tx).await?;
                        let resubmits: Vec<String> = sqlx::query_scalar(sql::RESUBMITS_OF)
                            .bind(id.to_string())
                            .fetch_all(&mut *tx)
                            .await?;
                        tx.commit().await?;
                        Ok(Some(RunDetail {
                            summary: run_summary(&row)?,
                            inputs: crate::store::from_json("run inputs", row.try_get("inputs")?)?,
                            record: crate::store::opt_json("run record", row.try_get("record")?)?,
                            actions: actions.iter().map(action_record).collect::<StoreResult<_>>()?,
                            resubmits: resubmits
                                .iter()
                                .map(|id| crate::store::uuid(id))
                                .collect::<StoreResult<_>>()?,
                        }))
                    })
                }

                fn list_runs(&self, filter: RunFilter) -> BoxFuture<'_, StoreResult<RunPage>> {
                    Box::pin(async move {
                        let limit = page_size(&filter);
                        let cursor = filter.cursor.as_deref().map(Cursor::parse).transpose()?;
                        let mut query = QueryBuilder::<$db>::new(sql::LIST_RUNS);
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
                            self.push_text_filter(&mut query, text.to_lowercase()).await?;
                        }
                        if let Some(cursor) = cursor {
                            query
                                .push(" AND (created_at, id) < (")
                                .push_bind(cursor.created_at)
                                .push(", ")
                                .push_bind(cursor.id)
                                .push(")");
                        }
                        query
                            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
                            .push_bind(i64::from(limit) + 1);
                        let rows = query.build().fetch_all(self.read_pool()).await?;
                        page(&rows, limit)
                    })
                }

                fn run_counts(
                    &self,
                    since: Timestamp,
                    until: Timestamp,
                ) -> BoxFuture<'_, StoreResult<Vec<RunCount>>> {
                    Box::pin(async move {
                        let rows = sqlx::query(sql::RUN_COUNTS)
                            .bind(micros(since))
                            .bind(micros(until))
                            .fetch_all(self.read_pool())
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

                fn resubmit(
                    &self,
                    original: Uuid,
                    new_run: Uuid,
                    max_attempts: u32,
                ) -> BoxFuture<'_, StoreResult<()>> {
                    Box::pin(async move {
                        let now = self.now();
                        let mut conn = self.writer(Durability::Acknowledged).await?;
                        let mut tx = conn.begin_with(Self::BEGIN_WRITE).await?;
                        let Some(row) = sqlx::query(sql::RESUBMIT_SOURCE)
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
                        if insert_run(&mut tx, &run, &inputs, None).await? {
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
                        let row = sqlx::query(sql::GET_WATERMARK)
                            .bind(flow)
                            .bind(trigger)
                            .fetch_optional(self.read_pool())
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
                        let query = sqlx::query_scalar(sql::SET_WATERMARK);
                        let write = bind_watermark(query, flow, trigger, value, self.now());
                        Ok(write.fetch_one(&mut *conn).await?)
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
                        let write = bind_watermark(query, flow, trigger, value, self.now());
                        Ok(write.fetch_optional(&mut *conn).await?)
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
                        let mut conn = self.writer(Self::LEASE_DURABILITY).await?;
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

                fn release_lease<'a>(
                    &'a self,
                    name: &'a str,
                    holder: &'a str,
                ) -> BoxFuture<'a, StoreResult<bool>> {
                    Box::pin(async move {
                        let mut conn = self.writer(Self::LEASE_DURABILITY).await?;
                        let done = sqlx::query(sql::RELEASE_LEASE)
                            .bind(name)
                            .bind(holder)
                            .execute(&mut *conn)
                            .await?;
                        Ok(done.rows_affected() > 0)
                    })
                }

                fn lease_holder<'a>(
                    &'a self,
                    name: &'a str,
                ) -> BoxFuture<'a, StoreResult<Option<LeaseHolder>>> {
                    Box::pin(async move {
                        let row = sqlx::query(sql::LEASE_HOLDER)
                            .bind(name)
                            .bind(micros(self.now()))
                            .fetch_optional(self.read_pool())
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

                fn index_search(&self, max: u32) -> BoxFuture<'_, StoreResult<u64>> {
                    Box::pin(async move {
                        let mut conn = self.writer(Durability::Recoverable).await?;
                        let mut tx = conn.begin_with(Self::BEGIN_WRITE).await?;
                        let runs: Vec<(String, String, Option<String>)> =
                            sqlx::query_as(Self::UNINDEXED_FINISHED_RUNS).bind(i64::from(max)).fetch_all(&mut *tx).await?;
                        let texts = search_texts(&mut tx, runs).await?;
                        set_search_texts(&mut tx, &texts).await?;
                        if let (Some(statement), false) = (Self::ADD_TO_TEXT_INDEX, texts.is_empty()) {
                            let ids: Vec<&str> = texts.iter().map(|(id, _)| id.as_str()).collect();
                            let ids = to_json("run ids", &ids)?;
                            sqlx::query(statement).bind(ids).execute(&mut *tx).await?;
                        }
                        tx.commit().await?;
                        Ok(texts.len() as u64)
                    })
                }

                fn purge(&self, cutoff: Timestamp) -> BoxFuture<'_, StoreResult<PurgeReport>> {
                    Box::pin(async move {
                        let cutoff = micros(cutoff);
                        let mut conn = self.writer(Durability::Recoverable).await?;
                        let mut tx = conn.begin_with(Self::BEGIN_WRITE).await?;
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

                fn set_flow_enabled<'a>(
                    &'a self,
                    flow: &'a str,
                    enabled: bool,
                ) -> BoxFuture<'a, StoreResult<()>> {
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
                        let enabled: Option<bool> = sqlx::query_scalar(sql::FLOW_ENABLED)
                            .bind(flow)
                            .fetch_optional(self.read_pool())
                            .await?;
                        Ok(enabled.unwrap_or(true))
                    })
                }

                fn flow_states(&self) -> BoxFuture<'_, StoreResult<Vec<FlowState>>> {
                    Box::pin(async move {
                        let rows = sqlx::query(sql::FLOW_STATES).fetch_all(self.read_pool()).await?;
                        rows.iter().map(flow_state).collect()
                    })
                }
            }

            /// Stores events and their work items, or recognises them as redeliveries, with a
            /// few multi-row statements; the work of an event marked `true` is leased to `worker`
            /// until `lease_until` as it is inserted.
            async fn accept_batch(
                tx: &mut $conn,
                events: &[(NewEvent, bool)],
                worker: &str,
                lease_until: Timestamp,
            ) -> StoreResult<Vec<LeasedOutcome>> {
                let mut stored: HashSet<Uuid> = HashSet::new();
                for chunk in multi_row_chunks(events) {
                    let mut query = QueryBuilder::<$db>::new(
                        "INSERT INTO events (id, flow, source, received_at, headers, body, dedup_key) ",
                    );
                    let mut rows = Vec::with_capacity(chunk.len());
                    for (event, _) in chunk {
                        rows.push((event, to_json("event headers", &event.headers)?));
                    }
                    query.push_values(rows, |mut row, (event, headers)| {
                        row.push_bind(event.id.to_string())
                            .push_bind(event.flow.as_str())
                            .push_bind(event.source.as_str())
                            .push_bind(micros(event.received_at))
                            .push_bind(headers)
                            .push_bind(event.body.as_slice())
                            .push_bind(event.dedup_key.as_deref());
                    });
                    query.push(" ON CONFLICT DO NOTHING RETURNING id");
                    let ids: Vec<String> = query.build_query_scalar().fetch_all(&mut *tx).await?;
                    for id in &ids {
                        stored.insert(crate::store::uuid(id)?);
                    }
                }

                // The work of each stored event, with the claim token of those leased here.
                let mut work: Vec<(&NewEvent, NewWork, Option<Uuid>)> = Vec::new();
                let mut outcomes: Vec<(AcceptOutcome, Option<Uuid>)> = Vec::with_capacity(events.len());
                for (event, leased) in events {
                    if stored.remove(&event.id) {
                        let item = sql::event_work(event);
                        let token = leased.then(Uuid::new_v4);
                        outcomes.push((AcceptOutcome::Accepted { event_id: event.id, work_id: item.id }, token));
                        work.push((event, item, token));
                    } else {
                        let existing: String = sqlx::query_scalar(sql::FIND_DUPLICATE)
                            .bind(event.id.to_string())
                            .bind(&event.flow)
                            .bind(&event.dedup_key)
                            .fetch_one(&mut *tx)
                            .await?;
                        let existing = crate::store::uuid(&existing)?;
                        outcomes.push((AcceptOutcome::Duplicate { existing }, None));
                    }
                }
                let mut leased_items: HashMap<Uuid, WorkItem> = HashMap::new();
                for chunk in multi_row_chunks(&work) {
                    let mut query = QueryBuilder::<$db>::new(
                        "INSERT INTO queue (id, flow, event_id, run_id, payload, state, due_at, enqueued_at, \
                         attempts, max_attempts, lease_owner, lease_token) ",
                    );
                    let mut rows = Vec::with_capacity(chunk.len());
                    for (event, item, token) in chunk {
                        rows.push((event, item, token, to_json("work payload", &item.payload)?));
                    }
                    query.push_values(rows, |mut row, (event, item, token, payload)| {
                        let (state, due_at, attempts) = match token {
                            Some(_) => ("leased", lease_until, 1_i64),
                            None => ("ready", event.received_at, 0),
                        };
                        row.push_bind(item.id.to_string())
                            .push_bind(item.flow.as_str())
                            .push_bind(item.event_id.map(|id| id.to_string()))
                            .push_bind(item.run_id.map(|id| id.to_string()))
                            .push_bind(payload)
                            .push_bind(state)
                            .push_bind(micros(due_at))
                            .push_bind(micros(event.received_at))
                            .push_bind(attempts)
                            .push_bind(i64::from(item.max_attempts))
                            .push_bind(token.map(|_| worker.to_owned()))
                            .push_bind(token.map(|t| t.to_string()));
                    });
                    query.push(
                        " RETURNING id, flow, event_id, run_id, payload, attempts, max_attempts, enqueued_at, last_error",
                    );
                    for row in query.build().fetch_all(&mut *tx).await? {
                        let item = work_item(&row)?;
                        if item.attempts > 0 {
                            leased_items.insert(item.id, item);
                        }
                    }
                }
                outcomes
                    .into_iter()
                    .map(|(outcome, token)| {
                        let claim = match (&outcome, token) {
                            (AcceptOutcome::Accepted { work_id, .. }, Some(token)) => {
                                let item = leased_items.remove(work_id).ok_or_else(|| {
                                    StoreError::Corrupt(format!("the leased work item {work_id} was not stored"))
                                })?;
                                Some(Claim { token: ClaimToken { item: item.id, token }, item, lease_until })
                            }
                            _ => None,
                        };
                        Ok((outcome, claim))
                    })
                    .collect()
            }

            /// Removes a finished work item; [`StoreError::LeaseLost`] if the claim no longer holds it.
            async fn complete_on(conn: &mut $conn, token: ClaimToken) -> StoreResult<()> {
                let done = sqlx::query(sql::COMPLETE_WORK)
                    .bind(token.item.to_string())
                    .bind(token.token.to_string())
                    .execute(&mut *conn)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::LeaseLost(token.item));
                }
                Ok(())
            }

            /// Marks a run as running.
            async fn start_on(conn: &mut $conn, id: Uuid, at: Timestamp) -> StoreResult<()> {
                let done = sqlx::query(sql::START_RUN)
                    .bind(micros(at))
                    .bind(id.to_string())
                    .execute(&mut *conn)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::RunNotFound(id));
                }
                Ok(())
            }

            /// Stores or replaces one action result; `result` is its JSON text.
            async fn upsert_action(
                conn: &mut $conn,
                run: Uuid,
                action: &ActionRecord,
                result: String,
            ) -> StoreResult<()> {
                sqlx::query(sql::UPSERT_ACTION)
                    .bind(run.to_string())
                    .bind(&action.name)
                    .bind(&action.status)
                    .bind(action.started_at.map(micros))
                    .bind(action.ended_at.map(micros))
                    .bind(result)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// Records how a run ended, inside the caller's transaction.
            async fn finish_on(conn: &mut $conn, id: Uuid, outcome: &RunOutcome) -> StoreResult<()> {
                let record = to_json("run record", &outcome.record)?;
                let error = outcome.error.as_ref().map(|e| to_json("run error", e)).transpose()?;
                let finished = sqlx::query(sql::FINISH_RUN)
                    .bind(outcome.status.as_str())
                    .bind(micros(outcome.ended_at))
                    .bind(error)
                    .bind(id.to_string())
                    .execute(&mut *conn)
                    .await?;
                if finished.rows_affected() == 0 {
                    return Err(StoreError::RunNotFound(id));
                }
                sqlx::query(sql::SET_RUN_RECORD)
                    .bind(record)
                    .bind(id.to_string())
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// Inserts a work item, ready at `not_before` or `now`.
            async fn insert_work(conn: &mut $conn, work: &NewWork, now: Timestamp) -> StoreResult<()> {
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

            /// Applies a batch of run writes in lifecycle order (creations, starts, action
            /// results, finishes, completions; each kind in the order given), a few multi-row
            /// statements per kind rather than one statement per write, so a batch costs the
            /// same handful of round trips whatever its size.
            async fn apply_batch(tx: &mut $conn, writes: &[RunWrite]) -> StoreResult<Vec<StoreResult<()>>> {
                let mut outcomes: Vec<StoreResult<()>> = writes.iter().map(|_| Ok(())).collect();
                let folded = starts_folded_into_creates(writes);

                // Creations: the first of each run, inserted as running when its start follows.
                let mut created: HashSet<Uuid> = HashSet::new();
                let mut creates: Vec<(&NewRun, String, Option<Timestamp>)> = Vec::new();
                for write in writes {
                    if let RunWrite::Create(run) = write {
                        if created.insert(run.id) {
                            let inputs = to_json("run inputs", &run.inputs)?;
                            creates.push((run, inputs, folded.get(&run.id).map(|(_, at)| *at)));
                        }
                    }
                }
                let inserted = insert_runs(tx, &creates).await?;
                // Every run a write of the batch names that is known to exist.
                let mut known: HashSet<Uuid> = created;

                // Starts, but those folded into the insertion of their run.
                let mut starts: Vec<(usize, Uuid, Timestamp)> = Vec::new();
                for (index, write) in writes.iter().enumerate() {
                    if let RunWrite::Start { run, at } = write {
                        let folded_here = folded.get(run).is_some_and(|(i, _)| *i == index);
                        if !(folded_here && inserted.contains(run)) {
                            starts.push((index, *run, *at));
                        }
                    }
                }
                let started = start_runs(tx, &starts).await?;
                for (index, run, _) in &starts {
                    if !started.contains(run) {
                        outcomes[*index] = Err(StoreError::RunNotFound(*run));
                    }
                }
                known.extend(started);

                // Action results, of runs that exist (checked first: a foreign-key error would
                // end the whole transaction on PostgreSQL); the last result of an action wins.
                let action_runs = writes.iter().filter_map(|w| match w {
                    RunWrite::Action { run, .. } => Some(*run),
                    _ => None,
                });
                let unknown: Vec<Uuid> = action_runs.filter(|run| !known.contains(run)).collect();
                known.extend(existing_runs(tx, &unknown).await?);
                let mut rows: Vec<ActionRow<'_>> = Vec::new();
                let mut row_of: HashMap<(Uuid, &str), usize> = HashMap::new();
                let mut new_in_run: HashMap<Uuid, i64> = HashMap::new();
                for (index, write) in writes.iter().enumerate() {
                    let RunWrite::Action { run, action } = write else { continue };
                    if !known.contains(run) {
                        outcomes[index] = Err(StoreError::RunNotFound(*run));
                        continue;
                    }
                    let result = to_json("action result", &action.result)?;
                    match row_of.get(&(*run, action.name.as_str())) {
                        Some(&row) => {
                            rows[row].action = action;
                            rows[row].result = result;
                        }
                        None => {
                            let position = new_in_run.entry(*run).or_default();
                            row_of.insert((*run, action.name.as_str()), rows.len());
                            rows.push(ActionRow { run: *run, action, result, position: *position });
                            *position += 1;
                        }
                    }
                }
                upsert_actions(tx, &rows).await?;

                // Finishes: the last of each run.
                let mut finishes: Vec<(Uuid, &RunOutcome)> = Vec::new();
                let mut finish_of: HashMap<Uuid, usize> = HashMap::new();
                for write in writes {
                    if let RunWrite::Finish { run, outcome } = write {
                        match finish_of.get(run) {
                            Some(&at) => finishes[at].1 = outcome,
                            None => {
                                finish_of.insert(*run, finishes.len());
                                finishes.push((*run, outcome));
                            }
                        }
                    }
                }
                let mut rows: Vec<FinishRow> = Vec::with_capacity(finishes.len());
                for (run, outcome) in finishes {
                    rows.push(FinishRow {
                        run: run.to_string(),
                        status: outcome.status.as_str(),
                        ended_at: micros(outcome.ended_at),
                        error: outcome.error.as_ref().map(|e| to_json("run error", e)).transpose()?,
                        record: to_json("run record", &outcome.record)?,
                    });
                }
                let finished = finish_runs(tx, &rows).await?;
                for (index, write) in writes.iter().enumerate() {
                    if let RunWrite::Finish { run, .. } = write {
                        if !finished.contains(run) {
                            outcomes[index] = Err(StoreError::RunNotFound(*run));
                        }
                    }
                }

                // Completions of the work items whose claims still hold.
                let tokens: Vec<ClaimToken> = writes
                    .iter()
                    .filter_map(|w| match w {
                        RunWrite::Complete(token) => Some(*token),
                        _ => None,
                    })
                    .collect();
                let completed = complete_items(tx, &tokens).await?;
                for (index, write) in writes.iter().enumerate() {
                    if let RunWrite::Complete(token) = write {
                        if !completed.contains(token) {
                            outcomes[index] = Err(StoreError::LeaseLost(token.item));
                        }
                    }
                }
                Ok(outcomes)
            }

            /// The search text of each run `(id, inputs, record)`: its inputs, its record but the
            /// trigger (which repeats the inputs) and its action results, lowercased.
            async fn search_texts(
                tx: &mut $conn,
                runs: Vec<(String, String, Option<String>)>,
            ) -> StoreResult<Vec<(String, String)>> {
                let mut results: HashMap<String, Vec<String>> = HashMap::new();
                for chunk in multi_row_chunks(&runs) {
                    let mut query =
                        QueryBuilder::<$db>::new("SELECT run_id, result FROM action_results WHERE run_id IN (");
                    let mut list = query.separated(", ");
                    for (id, _, _) in chunk {
                        list.push_bind(id.as_str());
                    }
                    query.push(") ORDER BY run_id, seq");
                    let rows: Vec<(String, String)> = query.build_query_as().fetch_all(&mut *tx).await?;
                    for (run, result) in rows {
                        results.entry(run).or_default().push(result);
                    }
                }
                let mut texts = Vec::with_capacity(runs.len());
                for (id, inputs, record) in runs {
                    let record = match record {
                        Some(text) => searched_record(&crate::store::from_json("run record", &text)?)?,
                        None => String::new(),
                    };
                    let mut parts: Vec<&str> = vec![&inputs, &record];
                    parts.extend(results.get(&id).into_iter().flatten().map(String::as_str));
                    let text = search_text(&parts);
                    texts.push((id, text));
                }
                Ok(texts)
            }

            /// Stores the search texts built by [`search_texts`] and marks their runs indexed.
            async fn set_search_texts(tx: &mut $conn, texts: &[(String, String)]) -> StoreResult<()> {
                for chunk in multi_row_chunks(texts) {
                    let mut query = QueryBuilder::<$db>::new(
                        "UPDATE runs SET search_text = v.column2, search_indexed = true FROM (",
                    );
                    query.push_values(chunk, |mut row, (id, text)| {
                        row.push_bind(id.as_str()).push_bind(text.as_str());
                    });
                    query.push(") AS v WHERE runs.id = v.column1");
                    query.build().execute(&mut *tx).await?;
                }
                Ok(())
            }

            /// An action result on its way to a multi-row upsert.
            struct ActionRow<'a> {
                run: Uuid,
                action: &'a ActionRecord,
                /// The result's JSON text.
                result: String,
                /// Its place among the actions of its run new in this batch (orders them).
                position: i64,
            }

            /// A finished run on its way to the multi-row updates.
            struct FinishRow {
                run: String,
                status: &'static str,
                ended_at: i64,
                error: Option<String>,
                record: String,
            }

            /// Inserts runs (with the JSON text of their inputs, and when they started if they
            /// start with their creation) and their data; returns those that did not exist.
            async fn insert_runs(
                tx: &mut $conn,
                creates: &[(&NewRun, String, Option<Timestamp>)],
            ) -> StoreResult<HashSet<Uuid>> {
                let mut inserted = HashSet::new();
                for chunk in multi_row_chunks(creates) {
                    let mut query = QueryBuilder::<$db>::new(
                        "INSERT INTO runs (id, flow, status, event_id, resubmit_of, created_at, search_text, started_at) ",
                    );
                    query.push_values(chunk, |mut row, (run, _, started_at)| {
                        let status = if started_at.is_some() { RunStatus::Running } else { run.status };
                        row.push_bind(run.id.to_string())
                            .push_bind(run.flow.as_str())
                            .push_bind(status.as_str())
                            .push_bind(run.event_id.map(|id| id.to_string()))
                            .push_bind(run.resubmit_of.map(|id| id.to_string()))
                            .push_bind(micros(run.created_at))
                            .push_bind("")
                            .push_bind(started_at.map(micros));
                    });
                    query.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
                    let ids: Vec<String> = query.build_query_scalar().fetch_all(&mut *tx).await?;
                    let ids: HashSet<Uuid> = ids.iter().map(|id| crate::store::uuid(id)).collect::<StoreResult<_>>()?;
                    let data: Vec<_> = chunk.iter().filter(|(run, _, _)| ids.contains(&run.id)).collect();
                    if !data.is_empty() {
                        let mut query = QueryBuilder::<$db>::new("INSERT INTO run_data (run_id, inputs) ");
                        query.push_values(data, |mut row, (run, inputs, _)| {
                            row.push_bind(run.id.to_string()).push_bind(inputs.as_str());
                        });
                        query.build().execute(&mut *tx).await?;
                    }
                    inserted.extend(ids);
                }
                Ok(inserted)
            }

            /// Marks runs as running since the first start given (or the start they have);
            /// returns those that exist.
            async fn start_runs(tx: &mut $conn, starts: &[(usize, Uuid, Timestamp)]) -> StoreResult<HashSet<Uuid>> {
                let mut first: Vec<(Uuid, Timestamp)> = Vec::new();
                let mut seen = HashSet::new();
                for (_, run, at) in starts {
                    if seen.insert(*run) {
                        first.push((*run, *at));
                    }
                }
                let mut started = HashSet::new();
                for chunk in multi_row_chunks(&first) {
                    let mut query = QueryBuilder::<$db>::new(
                        "UPDATE runs SET status = 'running', started_at = COALESCE(runs.started_at, v.column2) FROM (",
                    );
                    query.push_values(chunk, |mut row, (run, at)| {
                        row.push_bind(run.to_string()).push_bind(micros(*at));
                    });
                    query.push(") AS v WHERE runs.id = v.column1 RETURNING id");
                    let ids: Vec<String> = query.build_query_scalar().fetch_all(&mut *tx).await?;
                    for id in &ids {
                        started.insert(crate::store::uuid(id)?);
                    }
                }
                Ok(started)
            }

            /// Which of `runs` exist.
            async fn existing_runs(tx: &mut $conn, runs: &[Uuid]) -> StoreResult<Vec<Uuid>> {
                let runs: Vec<Uuid> = runs.iter().copied().collect::<HashSet<_>>().into_iter().collect();
                let mut found = Vec::new();
                for chunk in multi_row_chunks(&runs) {
                    let mut query = QueryBuilder::<$db>::new("SELECT id FROM runs WHERE id IN (");
                    let mut list = query.separated(", ");
                    for run in chunk {
                        list.push_bind(run.to_string());
                    }
                    query.push(")");
                    let ids: Vec<String> = query.build_query_scalar().fetch_all(&mut *tx).await?;
                    for id in &ids {
                        found.push(crate::store::uuid(id)?);
                    }
                }
                Ok(found)
            }

            /// Stores or replaces action results; a new one goes after its run's earlier ones.
            async fn upsert_actions(tx: &mut $conn, rows: &[ActionRow<'_>]) -> StoreResult<()> {
                for chunk in multi_row_chunks(rows) {
                    let mut query = QueryBuilder::<$db>::new(
                        "INSERT INTO action_results (run_id, name, seq, status, started_at, ended_at, result) VALUES ",
                    );
                    for (n, row) in chunk.iter().enumerate() {
                        if n > 0 {
                            query.push(", ");
                        }
                        let run = row.run.to_string();
                        query
                            .push("(")
                            .push_bind(run.clone())
                            .push(", ")
                            .push_bind(row.action.name.as_str())
                            .push(", (SELECT COUNT(*) FROM action_results WHERE run_id = ")
                            .push_bind(run)
                            .push(") + ")
                            .push_bind(row.position)
                            .push(", ")
                            .push_bind(row.action.status.as_str())
                            .push(", ")
                            .push_bind(row.action.started_at.map(micros))
                            .push(", ")
                            .push_bind(row.action.ended_at.map(micros))
                            .push(", ")
                            .push_bind(row.result.as_str())
                            .push(")");
                    }
                    query.push(
                        " ON CONFLICT (run_id, name) DO UPDATE SET status = excluded.status, \
                         started_at = excluded.started_at, ended_at = excluded.ended_at, result = excluded.result",
                    );
                    query.build().execute(&mut *tx).await?;
                }
                Ok(())
            }

            /// Records how runs ended: their status, error and record. Their search text waits
            /// for [`Store::index_search`]. Returns the ids of the runs that exist.
            async fn finish_runs(tx: &mut $conn, rows: &[FinishRow]) -> StoreResult<HashSet<Uuid>> {
                let mut finished = HashSet::new();
                for chunk in multi_row_chunks(rows) {
                    let mut query = QueryBuilder::<$db>::new(
                        "UPDATE runs SET status = v.column2, ended_at = v.column3, error = v.column4, \
                         search_text = '', search_indexed = false FROM (",
                    );
                    query.push_values(chunk, |mut row, run| {
                        row.push_bind(run.run.as_str())
                            .push_bind(run.status)
                            .push_bind(run.ended_at)
                            .push_bind(run.error.as_deref());
                    });
                    query.push(") AS v WHERE runs.id = v.column1 RETURNING runs.id");
                    let ids: Vec<String> = query.build_query_scalar().fetch_all(&mut *tx).await?;
                    for id in &ids {
                        finished.insert(crate::store::uuid(id)?);
                    }
                    let mut query = QueryBuilder::<$db>::new("UPDATE run_data SET record = v.column2 FROM (");
                    query.push_values(chunk, |mut row, run| {
                        row.push_bind(run.run.as_str()).push_bind(run.record.as_str());
                    });
                    query.push(") AS v WHERE run_data.run_id = v.column1");
                    query.build().execute(&mut *tx).await?;
                }
                Ok(finished)
            }

            /// Removes finished work items whose claims still hold; returns the claims that did.
            async fn complete_items(tx: &mut $conn, tokens: &[ClaimToken]) -> StoreResult<HashSet<ClaimToken>> {
                let mut completed = HashSet::new();
                for chunk in multi_row_chunks(tokens) {
                    let mut query = QueryBuilder::<$db>::new(
                        "DELETE FROM queue WHERE state = 'leased' AND (id, lease_token) IN (SELECT column1, column2 FROM (",
                    );
                    query.push_values(chunk, |mut row, token| {
                        row.push_bind(token.item.to_string()).push_bind(token.token.to_string());
                    });
                    query.push(") AS v) RETURNING id, lease_token");
                    let rows: Vec<(String, String)> = query.build_query_as().fetch_all(&mut *tx).await?;
                    for (item, token) in &rows {
                        completed.insert(ClaimToken { item: crate::store::uuid(item)?, token: crate::store::uuid(token)? });
                    }
                }
                Ok(completed)
            }

            /// The runs whose first `Start` in `writes` follows their `Create`, with that start's
            /// index and time: such a run is inserted as running, one write instead of two.
            fn starts_folded_into_creates(writes: &[RunWrite]) -> HashMap<Uuid, (usize, Timestamp)> {
                let mut created = HashSet::new();
                let mut folded = HashMap::new();
                for (index, write) in writes.iter().enumerate() {
                    match write {
                        RunWrite::Create(run) => {
                            created.insert(run.id);
                        }
                        RunWrite::Start { run, at } if created.contains(run) => {
                            folded.entry(*run).or_insert((index, *at));
                        }
                        _ => {}
                    }
                }
                folded
            }

            /// Inserts a run and its data; false if the id exists. `inputs` is the JSON text of the
            /// inputs; with `started_at`, the run is inserted as running since then.
            async fn insert_run(
                conn: &mut $conn,
                run: &NewRun,
                inputs: &str,
                started_at: Option<Timestamp>,
            ) -> StoreResult<bool> {
                let id = run.id.to_string();
                let status = if started_at.is_some() { RunStatus::Running } else { run.status };
                let inserted = sqlx::query(sql::INSERT_RUN)
                    .bind(&id)
                    .bind(&run.flow)
                    .bind(status.as_str())
                    .bind(run.event_id.map(|id| id.to_string()))
                    .bind(run.resubmit_of.map(|id| id.to_string()))
                    .bind(micros(run.created_at))
                    .bind("")
                    .bind(started_at.map(micros))
                    .execute(&mut *conn)
                    .await?;
                if inserted.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(sql::INSERT_RUN_DATA).bind(&id).bind(inputs).execute(&mut *conn).await?;
                Ok(true)
            }

            /// Runs `statement` on a claimed item (`$1`: a time, `$2`: the item, `$3`: the claim
            /// token); fails with [`StoreError::LeaseLost`] if the claim no longer holds the item.
            async fn update_claimed(
                conn: &mut $conn,
                statement: &'static str,
                at: Timestamp,
                token: ClaimToken,
            ) -> StoreResult<()> {
                let done = sqlx::query(statement)
                    .bind(micros(at))
                    .bind(token.item.to_string())
                    .bind(token.token.to_string())
                    .execute(&mut *conn)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::LeaseLost(token.item));
                }
                Ok(())
            }

            /// A watermark write: returns the new version.
            type WatermarkWrite<'q> =
                sqlx::query::QueryScalar<'q, $db, i64, <$db as sqlx::Database>::Arguments>;

            /// Binds the parameters every watermark write takes after its own: flow, trigger,
            /// value and the time of the write.
            fn bind_watermark<'q>(
                query: WatermarkWrite<'q>,
                flow: &'q str,
                trigger: &'q str,
                value: String,
                at: Timestamp,
            ) -> WatermarkWrite<'q> {
                query.bind(flow).bind(trigger).bind(value).bind(micros(at))
            }

            /// Turns `limit + 1` fetched rows into a page and the cursor of the next one.
            fn page(rows: &[$row], limit: u32) -> StoreResult<RunPage> {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                let runs: Vec<RunSummary> =
                    rows.iter().take(limit).map(run_summary).collect::<StoreResult<_>>()?;
                let next = if rows.len() > limit { runs.last().map(Cursor::after) } else { None };
                Ok(RunPage { runs, next })
            }
        }
    };
}
pub(crate) use sql_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_chunks_are_powers_of_two_longest_first() {
        let lengths = |n: usize| -> Vec<usize> {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = multi_row_chunks(&rows).collect();
            assert_eq!(chunks.concat(), rows, "every row once, in order");
            chunks.iter().map(|c| c.len()).collect()
        };
        assert_eq!(lengths(0), Vec::<usize>::new());
        assert_eq!(lengths(1), vec![1]);
        assert_eq!(lengths(13), vec![8, 4, 1]);
        assert_eq!(lengths(300), vec![128, 128, 32, 8, 4]);
    }
}
