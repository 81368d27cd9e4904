//! SQL and helpers both backends share; SQLite accepts PostgreSQL's `$n` parameters, so most
//! statements run unchanged on either.

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

pub(crate) const INSERT_WORK: &str = "INSERT INTO queue
     (id, flow, event_id, run_id, payload, state, due_at, enqueued_at, attempts, max_attempts)
     VALUES ($1, $2, $3, $4, $5, 'ready', $6, $7, 0, $8)";

pub(crate) const DEAD_LETTER_EXPIRED: &str = "UPDATE queue SET state = 'dead', lease_owner = NULL,
     lease_token = NULL, last_error = 'the lease of the last attempt expired (worker crashed or hung)'
     WHERE seq = $1";

pub(crate) const FAIL_WORK: &str = "UPDATE queue
     SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'ready' END,
         due_at = $1, last_error = $2, lease_owner = NULL, lease_token = NULL
     WHERE id = $3 AND lease_token = $4 AND state = 'leased'
     RETURNING state";

pub(crate) const QUEUE_STATS: &str =
    "SELECT state, COUNT(*) AS n, MIN(enqueued_at) AS oldest FROM queue GROUP BY state";

pub(crate) const INSERT_RUN: &str = "INSERT INTO runs
     (id, flow, status, event_id, resubmit_of, created_at, search_text)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING";

pub(crate) const UPSERT_ACTION: &str = "INSERT INTO action_results
     (run_id, name, seq, status, started_at, ended_at, result)
     VALUES ($1, $2, (SELECT COUNT(*) FROM action_results WHERE run_id = $1), $3, $4, $5, $6)
     ON CONFLICT (run_id, name) DO UPDATE SET status = excluded.status,
         started_at = excluded.started_at, ended_at = excluded.ended_at, result = excluded.result";

pub(crate) const RUN_COUNTS: &str = "SELECT flow, status, COUNT(*) AS n FROM runs
     WHERE created_at >= $1 AND created_at < $2 GROUP BY flow, status ORDER BY flow, status";

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
