//! The store's SQL and the helpers both backends share. SQLite accepts PostgreSQL's `$n`
//! parameters, so every statement here runs unchanged on either; the few that cannot are each
//! backend's [`Dialect`](super::backend::Dialect).

use jiff::Timestamp;
use serde_json::Value;
use uuid::Uuid;

use super::{ClaimToken, FailOutcome, NewEvent, NewRun, NewWork, StoreError, StoreResult};

/// The work item that runs a flow for an accepted event.
pub(crate) fn event_work(event: &NewEvent) -> NewWork {
    NewWork {
        id: Uuid::now_v7(),
        flow: event.flow.clone(),
        event_id: Some(event.id),
        run_id: None,
        payload: Value::Null,
        max_attempts: event.max_attempts,
        not_before: None,
    }
}

/// The work item that executes a resubmitted run.
pub(crate) fn resubmit_work(run: &NewRun, max_attempts: u32) -> NewWork {
    NewWork {
        id: Uuid::now_v7(),
        flow: run.flow.clone(),
        event_id: run.event_id,
        run_id: Some(run.id),
        payload: Value::Null,
        max_attempts,
        not_before: None,
    }
}

/// Interprets the state [`FAIL_WORK`] returned.
pub(crate) fn fail_outcome(
    token: ClaimToken,
    state: Option<String>,
    retry_at: Timestamp,
) -> StoreResult<FailOutcome> {
    match state.as_deref() {
        None => Err(StoreError::LeaseLost(token.item)),
        Some("dead") => Ok(FailOutcome::DeadLettered),
        Some(_) => Ok(FailOutcome::Retrying { retry_at }),
    }
}

pub(crate) const FIND_DUPLICATE: &str = "SELECT id FROM events
     WHERE id = $1 OR (flow = $2 AND dedup_key = $3) ORDER BY received_at LIMIT 1";

pub(crate) const GET_EVENT: &str =
    "SELECT id, flow, source, received_at, headers, body, dedup_key FROM events WHERE id = $1";

pub(crate) const INSERT_REJECTED: &str =
    "INSERT INTO rejected_events (id, flow, source, received_at, headers, body, status, reason)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING";

/// Newest first.
pub(crate) const LIST_REJECTED: &str =
    "SELECT id, flow, source, received_at, headers, body, status, reason FROM rejected_events
     ORDER BY received_at DESC, id DESC LIMIT $1";

pub(crate) const INSERT_WORK: &str = "INSERT INTO queue
     (id, flow, event_id, run_id, payload, state, due_at, enqueued_at, attempts, max_attempts)
     VALUES ($1, $2, $3, $4, $5, 'ready', $6, $7, 0, $8)";

/// Leases the item at `seq` to a worker and counts the attempt.
pub(crate) const LEASE_WORK: &str =
    "UPDATE queue SET state = 'leased', attempts = attempts + 1, lease_owner = $1,
     lease_token = $2, due_at = $3
     WHERE seq = $4
     RETURNING id, flow, event_id, run_id, payload, attempts, max_attempts, enqueued_at, last_error";

/// Whether any queue item is claimable at `$1`; read without locks, so idle workers polling
/// the queue never take the write lock another process may be waiting for.
pub(crate) const CLAIM_PROBE: &str =
    "SELECT 1 FROM queue WHERE state IN ('ready', 'leased') AND due_at <= $1 LIMIT 1";

pub(crate) const DEAD_LETTER_EXPIRED: &str = "UPDATE queue SET state = 'dead', lease_owner = NULL,
     lease_token = NULL, last_error = 'the lease of the last attempt expired (worker crashed or hung)'
     WHERE seq = $1";

pub(crate) const HEARTBEAT: &str =
    "UPDATE queue SET due_at = $1 WHERE id = $2 AND lease_token = $3 AND state = 'leased'";

pub(crate) const COMPLETE_WORK: &str =
    "DELETE FROM queue WHERE id = $1 AND lease_token = $2 AND state = 'leased'";

pub(crate) const FAIL_WORK: &str = "UPDATE queue
     SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'ready' END,
         due_at = $1, last_error = $2, lease_owner = NULL, lease_token = NULL
     WHERE id = $3 AND lease_token = $4 AND state = 'leased'
     RETURNING state";

/// Hands a claimed item back without counting the attempt.
pub(crate) const RELEASE_WORK: &str = "UPDATE queue
     SET state = 'ready', due_at = $1, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
         lease_owner = NULL, lease_token = NULL
     WHERE id = $2 AND lease_token = $3 AND state = 'leased'";

pub(crate) const QUEUE_STATS: &str =
    "SELECT state, COUNT(*) AS n, MIN(enqueued_at) AS oldest FROM queue GROUP BY state";

pub(crate) const GET_WORK: &str =
    "SELECT id, flow, event_id, run_id, payload, attempts, max_attempts, enqueued_at, last_error
     FROM queue WHERE id = $1";

pub(crate) const LIST_DEAD: &str =
    "SELECT id, flow, event_id, run_id, payload, attempts, max_attempts, enqueued_at, last_error
     FROM queue WHERE state = 'dead' ORDER BY seq LIMIT $1";

/// A fresh attempt budget, claimable at `$1`.
pub(crate) const REQUEUE_DEAD: &str =
    "UPDATE queue SET state = 'ready', attempts = 0, due_at = $1 WHERE id = $2 AND state = 'dead'";

pub(crate) const INSERT_RUN: &str = "INSERT INTO runs
     (id, flow, status, event_id, resubmit_of, created_at, search_text, started_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING";

pub(crate) const INSERT_RUN_DATA: &str = "INSERT INTO run_data (run_id, inputs) VALUES ($1, $2)";

/// Keeps the first start time when a run is resumed.
pub(crate) const START_RUN: &str =
    "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, $1) WHERE id = $2";

pub(crate) const UPSERT_ACTION: &str = "INSERT INTO action_results
     (run_id, name, seq, status, started_at, ended_at, result)
     VALUES ($1, $2, (SELECT COUNT(*) FROM action_results WHERE run_id = $1), $3, $4, $5, $6)
     ON CONFLICT (run_id, name) DO UPDATE SET status = excluded.status,
         started_at = excluded.started_at, ended_at = excluded.ended_at, result = excluded.result";

/// In the order the actions first completed.
pub(crate) const RUN_ACTIONS: &str = "SELECT name, status, started_at, ended_at, result FROM action_results
     WHERE run_id = $1 ORDER BY seq, name";

/// The run's search text waits for the indexer (`Store::index_search`).
pub(crate) const FINISH_RUN: &str = "UPDATE runs SET status = $1, ended_at = $2, error = $3,
     search_text = '', search_indexed = false WHERE id = $4";

pub(crate) const SET_RUN_RECORD: &str = "UPDATE run_data SET record = $1 WHERE run_id = $2";

pub(crate) const GET_RUN: &str =
    "SELECT r.id, r.flow, r.status, r.event_id, r.resubmit_of, r.created_at, r.started_at,
     r.ended_at, r.error, d.inputs, d.record
     FROM runs r JOIN run_data d ON d.run_id = r.id WHERE r.id = $1";

pub(crate) const RESUBMITS_OF: &str = "SELECT id FROM runs WHERE resubmit_of = $1 ORDER BY created_at, id";

/// The start of a run list query; the filters follow as `AND` clauses.
pub(crate) const LIST_RUNS: &str =
    "SELECT id, flow, status, event_id, resubmit_of, created_at, started_at, ended_at, error
     FROM runs WHERE 1 = 1";

pub(crate) const RUN_COUNTS: &str = "SELECT flow, status, COUNT(*) AS n FROM runs
     WHERE created_at >= $1 AND created_at < $2 GROUP BY flow, status ORDER BY flow, status";

/// What a resubmission copies from the original run.
pub(crate) const RESUBMIT_SOURCE: &str =
    "SELECT r.flow, r.event_id, d.inputs FROM runs r JOIN run_data d ON d.run_id = r.id
     WHERE r.id = $1";

pub(crate) const GET_WATERMARK: &str =
    "SELECT value, version, updated_at FROM watermarks WHERE flow = $1 AND trigger_name = $2";

pub(crate) const SET_WATERMARK: &str =
    "INSERT INTO watermarks (flow, trigger_name, value, version, updated_at)
     VALUES ($1, $2, $3, 1, $4)
     ON CONFLICT (flow, trigger_name) DO UPDATE SET value = excluded.value,
         version = watermarks.version + 1, updated_at = excluded.updated_at
     RETURNING version";

pub(crate) const CREATE_WATERMARK: &str =
    "INSERT INTO watermarks (flow, trigger_name, value, version, updated_at)
     VALUES ($1, $2, $3, 1, $4)
     ON CONFLICT (flow, trigger_name) DO NOTHING
     RETURNING version";

/// The expected version comes first so that the other parameters keep their places.
pub(crate) const CAS_WATERMARK: &str =
    "UPDATE watermarks SET value = $4, version = version + 1, updated_at = $5
     WHERE flow = $2 AND trigger_name = $3 AND version = $1
     RETURNING version";

pub(crate) const ACQUIRE_LEASE: &str = "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
     WHERE leases.holder = excluded.holder OR leases.expires_at <= $4
     RETURNING holder";

pub(crate) const RELEASE_LEASE: &str = "DELETE FROM leases WHERE name = $1 AND holder = $2";

/// The holder, if the lease has not expired at `$2`.
pub(crate) const LEASE_HOLDER: &str =
    "SELECT holder, expires_at FROM leases WHERE name = $1 AND expires_at > $2";

pub(crate) const PURGE_RUNS: &str =
    "DELETE FROM runs WHERE created_at < $1 AND status NOT IN ('queued', 'running')";

pub(crate) const PURGE_DEAD_WORK: &str = "DELETE FROM queue WHERE state = 'dead' AND enqueued_at < $1";

/// Keeps events that pending work or a remaining run (unfinished, or a recent resubmission)
/// still needs.
pub(crate) const PURGE_EVENTS: &str = "DELETE FROM events WHERE received_at < $1
     AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.event_id = events.id)
     AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.event_id = events.id)";

pub(crate) const PURGE_REJECTED: &str = "DELETE FROM rejected_events WHERE received_at < $1";

pub(crate) const SET_FLOW_STATE: &str =
    "INSERT INTO flow_states (flow, enabled, updated_at) VALUES ($1, $2, $3)
     ON CONFLICT (flow) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at";

pub(crate) const FLOW_ENABLED: &str = "SELECT enabled FROM flow_states WHERE flow = $1";

pub(crate) const FLOW_STATES: &str = "SELECT flow, enabled, updated_at FROM flow_states ORDER BY flow";
