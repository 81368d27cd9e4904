//! The behaviour every [`Store`] implementation must show, as a suite any backend can run.
//!
//! Each check takes a fresh, empty store whose clock the check drives ([`Harness`]) and panics
//! when the store misbehaves, so a backend's test file runs every entry of [`CHECKS`] as one
//! test. Checks never sleep: lease expiry and retention are reached by moving the clock.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    AcceptOutcome, ActionRecord, ClaimToken, FailOutcome, ManualClock, NewEvent, NewRun, NewWork,
    RejectedEvent, RunFilter, RunOutcome, RunStatus, RunWrite, Store, StoreError, add,
};

/// A fresh store and the clock it reads.
#[derive(Debug, Clone)]
pub struct Harness {
    /// The store under test, empty.
    pub store: Arc<dyn Store>,
    /// The clock the store was opened with.
    pub clock: Arc<ManualClock>,
}

/// When every harness clock starts (2026-05-28T...Z), far from the epoch and from today.
pub fn start_time() -> Timestamp {
    Timestamp::from_second(1_780_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// One check of the suite.
pub type Check = fn(Harness) -> BoxFuture<'static, ()>;

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("events_accept_and_dedup", |h| Box::pin(events_accept_and_dedup(h))),
    ("a_batch_creates_and_starts_a_run_as_one", |h| Box::pin(a_batch_creates_and_starts_a_run_as_one(h))),
    ("rejected_events_are_kept", |h| Box::pin(rejected_events_are_kept(h))),
    ("queue_claims_oldest_due_first", |h| Box::pin(queue_claims_oldest_due_first(h))),
    ("queue_expired_lease_is_reclaimed", |h| Box::pin(queue_expired_lease_is_reclaimed(h))),
    ("queue_fail_retries_then_dead_letters", |h| Box::pin(queue_fail_retries_then_dead_letters(h))),
    ("queue_crash_on_last_attempt_dead_letters", |h| Box::pin(queue_crash_on_last_attempt_dead_letters(h))),
    ("queue_release_does_not_count_attempt", |h| Box::pin(queue_release_does_not_count_attempt(h))),
    ("queue_stats_report_depth_and_age", |h| Box::pin(queue_stats_report_depth_and_age(h))),
    ("concurrent_claimers_take_each_item_once", |h| Box::pin(concurrent_claimers_take_each_item_once(h))),
    ("runs_record_actions_and_finish", |h| Box::pin(runs_record_actions_and_finish(h))),
    ("list_runs_filters_and_pages", |h| Box::pin(list_runs_filters_and_pages(h))),
    ("text_search_finds_substrings", |h| Box::pin(text_search_finds_substrings(h))),
    ("run_counts_cover_the_window", |h| Box::pin(run_counts_cover_the_window(h))),
    ("resubmit_links_and_enqueues", |h| Box::pin(resubmit_links_and_enqueues(h))),
    ("watermarks_compare_and_set", |h| Box::pin(watermarks_compare_and_set(h))),
    ("singleton_lease_is_exclusive", |h| Box::pin(singleton_lease_is_exclusive(h))),
    ("purge_deletes_only_what_is_old_and_done", |h| Box::pin(purge_deletes_only_what_is_old_and_done(h))),
    ("flows_enable_and_disable", |h| Box::pin(flows_enable_and_disable(h))),
    ("write_batches_apply_each_write", |h| Box::pin(write_batches_apply_each_write(h))),
    ("leased_acceptance_skips_the_queue", |h| Box::pin(leased_acceptance_skips_the_queue(h))),
    ("a_large_batch_keeps_every_write_and_its_order", |h| {
        Box::pin(a_large_batch_keeps_every_write_and_its_order(h))
    }),
    ("text_search_finds_runs_before_and_after_indexing", |h| {
        Box::pin(text_search_finds_runs_before_and_after_indexing(h))
    }),
];

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

fn event(flow: &str, dedup_key: Option<&str>, at: Timestamp) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        flow: flow.to_owned(),
        source: "webhook".to_owned(),
        received_at: at,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-dup".to_owned(), "1".to_owned()),
            ("x-dup".to_owned(), "2".to_owned()),
        ],
        // Not UTF-8 on purpose: bodies are bytes, checked against signatures byte for byte.
        body: vec![b'{', 0xff, 0x00, b'}'],
        dedup_key: dedup_key.map(str::to_owned),
        max_attempts: 3,
    }
}

fn work(flow: &str, max_attempts: u32, not_before: Option<Timestamp>) -> NewWork {
    NewWork {
        id: Uuid::now_v7(),
        flow: flow.to_owned(),
        event_id: None,
        run_id: None,
        payload: json!({"n": 1}),
        max_attempts,
        not_before,
    }
}

fn new_run(flow: &str, at: Timestamp, inputs: Value) -> NewRun {
    NewRun {
        id: Uuid::now_v7(),
        flow: flow.to_owned(),
        status: RunStatus::Queued,
        event_id: None,
        resubmit_of: None,
        created_at: at,
        inputs,
    }
}

fn action(name: &str, status: &str, output: Value) -> ActionRecord {
    ActionRecord {
        name: name.to_owned(),
        status: status.to_owned(),
        started_at: Some(start_time()),
        ended_at: Some(add(start_time(), Duration::from_millis(1500))),
        result: json!({"status": status, "outputs": output, "attempts": 1}),
    }
}

fn outcome(status: RunStatus, at: Timestamp, record: Value) -> RunOutcome {
    let error = (status == RunStatus::Failed).then(|| json!({"code": "X", "message": "boom"}));
    RunOutcome { status, ended_at: at, error, record }
}

fn accepted_work(outcome: AcceptOutcome) -> Uuid {
    match outcome {
        AcceptOutcome::Accepted { work_id, .. } => work_id,
        other => panic!("expected the event to be accepted, got {other:?}"),
    }
}

/// Accepted events are stored exactly and enqueued; redeliveries are recognised and create no
/// work.
pub async fn events_accept_and_dedup(h: Harness) {
    let store = &h.store;
    let now = store.now();
    let first = event("orders", Some("evt-1"), now);
    let work_id = accepted_work(store.accept_event(first.clone()).await.unwrap());

    let stored = store.get_event(first.id).await.unwrap().expect("accepted event is stored");
    assert_eq!(
        (stored.id, &stored.flow, &stored.source, stored.received_at),
        (first.id, &first.flow, &first.source, first.received_at)
    );
    assert_eq!(stored.headers, first.headers);
    assert_eq!(stored.body, first.body);
    assert_eq!(stored.dedup_key.as_deref(), Some("evt-1"));

    let redelivery = event("orders", Some("evt-1"), now);
    assert_eq!(
        store.accept_event(redelivery.clone()).await.unwrap(),
        AcceptOutcome::Duplicate { existing: first.id }
    );
    assert!(store.get_event(redelivery.id).await.unwrap().is_none(), "a duplicate is not stored");

    let same_id = NewEvent { dedup_key: None, ..first.clone() };
    assert_eq!(store.accept_event(same_id).await.unwrap(), AcceptOutcome::Duplicate { existing: first.id });

    let other_flow = event("invoices", Some("evt-1"), now);
    accepted_work(store.accept_event(other_flow).await.unwrap());
    let no_key = [event("orders", None, now), event("orders", None, now)];
    for e in no_key {
        accepted_work(store.accept_event(e).await.unwrap());
    }

    let batch = vec![event("orders", Some("evt-2"), now), event("orders", Some("evt-2"), now)];
    let batch_first = batch[0].id;
    let outcomes = store.accept_events(batch).await.unwrap();
    assert!(matches!(outcomes[0], AcceptOutcome::Accepted { .. }), "{outcomes:?}");
    assert_eq!(outcomes[1], AcceptOutcome::Duplicate { existing: batch_first });

    assert_eq!(store.queue_stats().await.unwrap().ready, 5, "one work item per accepted event");
    let claim = store.claim("w", MINUTE).await.unwrap().expect("work was enqueued");
    assert_eq!(claim.item.id, work_id);
    assert_eq!(claim.item.event_id, Some(first.id));
    assert_eq!(claim.item.flow, "orders");
    assert_eq!(claim.item.max_attempts, 3);
}

/// Refused events are kept with their reason, newest first.
pub async fn rejected_events_are_kept(h: Harness) {
    let store = &h.store;
    let older = RejectedEvent {
        id: Uuid::now_v7(),
        flow: None,
        source: "webhook".into(),
        received_at: store.now(),
        headers: vec![("content-type".into(), "text/plain".into())],
        body: b"not json".to_vec(),
        status: 415,
        reason: "expected application/json".into(),
    };
    h.clock.advance(MINUTE);
    let newer = RejectedEvent {
        id: Uuid::now_v7(),
        flow: Some("orders".into()),
        received_at: store.now(),
        status: 401,
        reason: "signature does not match".into(),
        ..older.clone()
    };
    store.reject_event(older.clone()).await.unwrap();
    store.reject_event(newer.clone()).await.unwrap();
    assert_eq!(store.list_rejected(10).await.unwrap(), vec![newer.clone(), older]);
    assert_eq!(store.list_rejected(1).await.unwrap(), vec![newer]);
    assert_eq!(store.queue_stats().await.unwrap().ready, 0, "refused events create no work");
}

/// Claims take the oldest due item; items due later wait; completion removes the item.
pub async fn queue_claims_oldest_due_first(h: Harness) {
    let store = &h.store;
    let now = store.now();
    let later = work("f", 3, Some(add(now, 10 * MINUTE)));
    let first = work("f", 3, None);
    let second = work("f", 3, None);
    for w in [&later, &first, &second] {
        store.enqueue(w.clone()).await.unwrap();
    }

    let queued = store.get_work(first.id).await.unwrap().expect("a queued item can be read");
    assert_eq!((queued.flow.as_str(), queued.attempts), ("f", 0));
    assert!(store.get_work(Uuid::now_v7()).await.unwrap().is_none());
    let a = store.claim("w1", MINUTE).await.unwrap().expect("an item is due");
    assert_eq!(a.item.id, first.id);
    assert_eq!(a.item.attempts, 1);
    assert_eq!(a.item.payload, json!({"n": 1}));
    assert_eq!(a.lease_until, add(now, MINUTE));
    let b = store.claim("w2", MINUTE).await.unwrap().expect("a second item is due");
    assert_eq!(b.item.id, second.id);
    assert!(store.claim("w3", MINUTE).await.unwrap().is_none(), "the last item is not due yet");

    store.complete(a.token).await.unwrap();
    assert!(matches!(store.complete(a.token).await, Err(StoreError::LeaseLost(id)) if id == first.id));
    store.complete(b.token).await.unwrap();
    assert!(store.get_work(first.id).await.unwrap().is_none(), "a completed item leaves the queue");

    h.clock.advance(10 * MINUTE);
    let c = store.claim("w1", MINUTE).await.unwrap().expect("the delayed item is due now");
    assert_eq!(c.item.id, later.id);
}

/// A crashed worker's lease expires and another worker takes the item; the first worker's
/// token is then worthless.
pub async fn queue_expired_lease_is_reclaimed(h: Harness) {
    let store = &h.store;
    let item = work("f", 5, None);
    store.enqueue(item.clone()).await.unwrap();
    let crashed = store.claim("w1", Duration::from_secs(30)).await.unwrap().expect("claimable");
    assert!(store.claim("w2", MINUTE).await.unwrap().is_none(), "leased items are not claimable");

    h.clock.advance(Duration::from_secs(31));
    let retaken = store.claim("w2", Duration::from_secs(30)).await.unwrap().expect("lease expired");
    assert_eq!(retaken.item.id, item.id);
    assert_eq!(retaken.item.attempts, 2, "the crashed attempt counts");
    assert_ne!(retaken.token, crashed.token);

    for result in [
        store.complete(crashed.token).await,
        store.heartbeat(crashed.token, MINUTE).await.map(drop),
        store.release(crashed.token).await,
        store.fail(crashed.token, "late", store.now()).await.map(drop),
    ] {
        assert!(matches!(result, Err(StoreError::LeaseLost(id)) if id == item.id), "{result:?}");
    }

    h.clock.advance(Duration::from_secs(20));
    let until = store.heartbeat(retaken.token, MINUTE).await.unwrap();
    assert_eq!(until, add(store.now(), MINUTE));
    h.clock.advance(Duration::from_secs(45));
    assert!(store.claim("w3", MINUTE).await.unwrap().is_none(), "the heartbeat extended the lease");
    store.complete(retaken.token).await.unwrap();
    assert_eq!(store.queue_stats().await.unwrap().leased, 0);
}

/// Failures come back after their back-off; the last allowed failure dead-letters the item,
/// which can be requeued by hand.
pub async fn queue_fail_retries_then_dead_letters(h: Harness) {
    let store = &h.store;
    let item = work("f", 2, None);
    store.enqueue(item.clone()).await.unwrap();

    let first = store.claim("w", MINUTE).await.unwrap().expect("claimable");
    let retry_at = add(store.now(), Duration::from_secs(10));
    assert_eq!(
        store.fail(first.token, "HTTP 503", retry_at).await.unwrap(),
        FailOutcome::Retrying { retry_at }
    );
    assert!(store.claim("w", MINUTE).await.unwrap().is_none(), "waiting for the back-off");

    h.clock.advance(Duration::from_secs(10));
    let second = store.claim("w", MINUTE).await.unwrap().expect("back-off over");
    assert_eq!(second.item.attempts, 2);
    assert_eq!(second.item.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(
        store.fail(second.token, "HTTP 500", add(store.now(), MINUTE)).await.unwrap(),
        FailOutcome::DeadLettered
    );
    h.clock.advance(10 * MINUTE);
    assert!(store.claim("w", MINUTE).await.unwrap().is_none(), "dead items are never claimed");

    let dead = store.list_dead(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempts), (item.id, 2));
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(store.queue_stats().await.unwrap().dead, 1);

    assert!(store.requeue_dead(item.id).await.unwrap());
    assert!(!store.requeue_dead(item.id).await.unwrap(), "no longer dead");
    let again = store.claim("w", MINUTE).await.unwrap().expect("requeued");
    assert_eq!((again.item.id, again.item.attempts), (item.id, 1));
}

/// A worker that keeps dying on an item does not get it forever: once the last attempt's lease
/// expires, the item is dead-lettered instead of claimed.
pub async fn queue_crash_on_last_attempt_dead_letters(h: Harness) {
    let store = &h.store;
    let poison = work("f", 1, None);
    let healthy = work("f", 1, None);
    store.enqueue(poison.clone()).await.unwrap();
    let claim = store.claim("w", MINUTE).await.unwrap().expect("claimable");
    assert_eq!(claim.item.id, poison.id);
    store.enqueue(healthy.clone()).await.unwrap();
    h.clock.advance(2 * MINUTE);

    let next = store.claim("w", MINUTE).await.unwrap().expect("the healthy item");
    assert_eq!(next.item.id, healthy.id);
    assert!(store.claim("w", MINUTE).await.unwrap().is_none(), "the poison item is not handed out");
    let dead = store.list_dead(10).await.unwrap();
    assert_eq!(dead.iter().map(|item| item.id).collect::<Vec<_>>(), vec![poison.id]);
    assert!(dead[0].last_error.as_deref().is_some_and(|e| e.contains("lease")), "{dead:?}");
}

/// An item handed back at shutdown is claimable at once and keeps its attempt budget.
pub async fn queue_release_does_not_count_attempt(h: Harness) {
    let store = &h.store;
    let item = work("f", 3, None);
    store.enqueue(item.clone()).await.unwrap();
    let claim = store.claim("w1", MINUTE).await.unwrap().expect("claimable");
    store.release(claim.token).await.unwrap();
    let again = store.claim("w2", MINUTE).await.unwrap().expect("released items are claimable");
    assert_eq!((again.item.id, again.item.attempts), (item.id, 1));
}

/// Depth counts ready and leased items; age is the oldest unfinished enqueue time.
pub async fn queue_stats_report_depth_and_age(h: Harness) {
    let store = &h.store;
    let empty = store.queue_stats().await.unwrap();
    assert_eq!((empty.ready, empty.leased, empty.dead, empty.oldest_enqueued_at), (0, 0, 0, None));

    let t0 = store.now();
    store.enqueue(work("f", 1, None)).await.unwrap();
    h.clock.advance(MINUTE);
    store.enqueue(work("f", 1, None)).await.unwrap();
    store.enqueue(work("f", 1, Some(add(store.now(), DAY)))).await.unwrap();
    let claim = store.claim("w", MINUTE).await.unwrap().expect("claimable");

    let stats = store.queue_stats().await.unwrap();
    assert_eq!((stats.ready, stats.leased, stats.dead), (2, 1, 0));
    assert_eq!(stats.oldest_enqueued_at, Some(t0), "the leased item is the oldest unfinished");
    store.fail(claim.token, "x", store.now()).await.unwrap();
    let stats = store.queue_stats().await.unwrap();
    assert_eq!((stats.ready, stats.leased, stats.dead), (2, 0, 1));
    assert_eq!(stats.oldest_enqueued_at, Some(add(t0, MINUTE)), "dead items are not waiting");
}

/// Eight workers draining 500 items concurrently take each item exactly once.
pub async fn concurrent_claimers_take_each_item_once(h: Harness) {
    const ITEMS: usize = 500;
    let expected = enqueue_many(h.store.as_ref(), ITEMS).await;
    let taken = drain_concurrently(std::slice::from_ref(&h.store), 8).await;
    assert_eq!(taken.len(), ITEMS, "every claim returned a distinct item");
    let seen: BTreeSet<Uuid> = taken.into_iter().collect();
    assert_eq!(seen, expected);
    assert_eq!(h.store.queue_stats().await.unwrap().ready, 0);
}

/// Enqueues `n` items, 16 at a time (so commits can share a flush), and returns their ids.
pub async fn enqueue_many(store: &dyn Store, n: usize) -> BTreeSet<Uuid> {
    let items: Vec<NewWork> = (0..n).map(|_| work("f", 3, None)).collect();
    let ids = items.iter().map(|item| item.id).collect();
    futures::stream::iter(items)
        .map(|item| store.enqueue(item))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    ids
}

/// Claims and completes items from `stores` with `workers_per_store` tasks each until the queue
/// is empty; returns every claimed item id in claim order (a duplicate would appear twice).
pub async fn drain_concurrently(stores: &[Arc<dyn Store>], workers_per_store: usize) -> Vec<Uuid> {
    let mut tasks = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for w in 0..workers_per_store {
            let store = store.clone();
            let worker = format!("store{s}-worker{w}");
            tasks.push(tokio::spawn(async move {
                let mut taken = Vec::new();
                while let Some(claim) = store.claim(&worker, Duration::from_secs(600)).await.unwrap() {
                    taken.push(claim.item.id);
                    store.complete(claim.token).await.unwrap();
                }
                taken
            }));
        }
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let mut counts: HashMap<Uuid, usize> = HashMap::new();
    for id in &all {
        *counts.entry(*id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "items claimed more than once: {twice:?}");
    all
}

/// A run is created once, records its actions as they complete (upserting), and finishes with
/// its record; everything reads back.
pub async fn runs_record_actions_and_finish(h: Harness) {
    let store = &h.store;
    let mut run = new_run("orders", store.now(), json!({"body": {"id": 7, "name": "Contoso"}}));
    run.event_id = Some(Uuid::now_v7());
    assert!(store.create_run(run.clone()).await.unwrap());
    assert!(!store.create_run(run.clone()).await.unwrap(), "creating twice is a no-op");

    h.clock.advance(Duration::from_secs(1));
    let started = store.now();
    store.start_run(run.id, started).await.unwrap();
    store.record_action(run.id, action("get", "failed", json!(null))).await.unwrap();
    store.record_action(run.id, action("map", "succeeded", json!({"a": 1}))).await.unwrap();
    // The run crashed and `get` was retried on resume: its result is replaced, its place kept.
    store.start_run(run.id, add(started, MINUTE)).await.unwrap();
    let retried = action("get", "succeeded", json!({"id": 7}));
    store.record_action(run.id, retried.clone()).await.unwrap();
    let done = store.completed_actions(run.id).await.unwrap();
    assert_eq!(done.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["get", "map"]);
    assert_eq!(done[0], retried);

    let record = json!({"flow": "orders", "status": "failed", "z": 1, "a": 2});
    let ended = add(started, Duration::from_secs(5));
    store.finish_run(run.id, outcome(RunStatus::Failed, ended, record.clone())).await.unwrap();

    let detail = store.get_run(run.id).await.unwrap().expect("run exists");
    assert_eq!(detail.summary.id, run.id);
    assert_eq!(detail.summary.flow, "orders");
    assert_eq!(detail.summary.status, RunStatus::Failed);
    assert_eq!(detail.summary.event_id, run.event_id);
    assert_eq!(detail.summary.created_at, run.created_at);
    assert_eq!(detail.summary.started_at, Some(started), "resuming keeps the first start");
    assert_eq!(detail.summary.ended_at, Some(ended));
    assert_eq!(detail.summary.error, Some(json!({"code": "X", "message": "boom"})));
    assert_eq!(detail.inputs, run.inputs);
    assert_eq!(detail.record, Some(record.clone()));
    let keys: Vec<_> = detail
        .record
        .as_ref()
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["flow", "status", "z", "a"], "records keep their key order");
    assert_eq!(detail.actions, done);
    assert!(detail.resubmits.is_empty());

    let missing = Uuid::now_v7();
    assert!(store.get_run(missing).await.unwrap().is_none());
    assert!(store.completed_actions(missing).await.unwrap().is_empty());
    for result in [
        store.start_run(missing, started).await,
        store.record_action(missing, action("x", "succeeded", json!(1))).await,
        store.finish_run(missing, outcome(RunStatus::Succeeded, ended, json!({}))).await,
    ] {
        assert!(matches!(result, Err(StoreError::RunNotFound(id)) if id == missing), "{result:?}");
    }
}

/// Filters combine, pages follow each other without gaps or repeats, newest first, even when
/// runs share a creation time.
pub async fn list_runs_filters_and_pages(h: Harness) {
    let store = &h.store;
    let t0 = store.now();
    let mut created = Vec::new();
    for i in 0..30u32 {
        if i % 4 != 3 {
            // Every fourth run shares its predecessor's timestamp: ties are broken by id.
            h.clock.advance(MINUTE);
        }
        let flow = if i % 3 == 0 { "invoices" } else { "orders" };
        let customer = if i % 5 == 0 { "Contoso Ltd" } else { "Fabrikam" };
        let run = new_run(flow, store.now(), json!({"body": {"customer": customer, "n": i}}));
        store.create_run(run.clone()).await.unwrap();
        let status = match i % 3 {
            0 => RunStatus::Succeeded,
            1 => RunStatus::Failed,
            _ => RunStatus::Queued,
        };
        if status.is_terminal() {
            let record = json!({"actions": {"post": {"outputs": {"ticket": format!("TCK-{i}")}}}});
            store.finish_run(run.id, outcome(status, store.now(), record)).await.unwrap();
        }
        created.push((run, status));
    }
    let newest_first = |keep: &dyn Fn(&(NewRun, RunStatus)) -> bool| -> Vec<Uuid> {
        let mut runs: Vec<_> = created.iter().filter(|r| keep(r)).map(|(r, _)| r).collect();
        runs.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id.to_string())));
        runs.into_iter().map(|r| r.id).collect()
    };

    let all = collect_pages(store.as_ref(), RunFilter { limit: 7, ..RunFilter::default() }).await;
    assert_eq!(all, newest_first(&|_| true));

    let orders = RunFilter { flow: Some("orders".into()), limit: 4, ..RunFilter::default() };
    assert_eq!(collect_pages(store.as_ref(), orders).await, newest_first(&|(r, _)| r.flow == "orders"));

    let failed = RunFilter { status: Some(RunStatus::Failed), limit: 3, ..RunFilter::default() };
    assert_eq!(collect_pages(store.as_ref(), failed).await, newest_first(&|(_, s)| *s == RunStatus::Failed));

    let (since, until) = (add(t0, 5 * MINUTE), add(t0, 12 * MINUTE));
    let window = RunFilter { since: Some(since), until: Some(until), limit: 5, ..RunFilter::default() };
    let expected = newest_first(&|(r, _)| r.created_at >= since && r.created_at < until);
    assert!(!expected.is_empty());
    assert_eq!(collect_pages(store.as_ref(), window).await, expected);

    let text =
        RunFilter { text: Some("contoso".into()), flow: Some("invoices".into()), ..RunFilter::default() };
    let expected = newest_first(&|(r, _)| r.flow == "invoices" && r.inputs.to_string().contains("Contoso"));
    assert!(!expected.is_empty());
    assert_eq!(collect_pages(store.as_ref(), text).await, expected);

    let in_record = RunFilter { text: Some("tck-13".into()), ..RunFilter::default() };
    let found = collect_pages(store.as_ref(), in_record).await;
    assert_eq!(found, vec![created[13].0.id], "text in the run record is found");

    let none = RunFilter { text: Some("no such text".into()), ..RunFilter::default() };
    let page = store.list_runs(none).await.unwrap();
    assert!(page.runs.is_empty() && page.next.is_none());

    let bad = RunFilter { cursor: Some("garbage".into()), ..RunFilter::default() };
    assert!(matches!(store.list_runs(bad).await, Err(StoreError::InvalidCursor(_))));

    let first = store.list_runs(RunFilter { limit: 2, ..RunFilter::default() }).await.unwrap();
    assert_eq!(first.runs.len(), 2);
    assert_eq!(first.runs[0].status, created[29].1, "summaries carry the status");
}

/// Text search finds any part of a run's inputs and record, in any case and of any length,
/// takes quotes and wildcards for the characters they are, and forgets purged runs.
pub async fn text_search_finds_substrings(h: Harness) {
    let store = &h.store;
    let mut runs = Vec::new();
    for inputs in [
        json!({"customer": "Contoso Ltd"}),
        json!({"code": "50%_off"}),
        json!({"code": "50xyoff"}),
        json!({"customer": "Société Générale"}),
    ] {
        h.clock.advance(MINUTE);
        let run = new_run("orders", store.now(), inputs);
        store.create_run(run.clone()).await.unwrap();
        runs.push(run.id);
    }
    let (contoso, percent, xy, societe) = (runs[0], runs[1], runs[2], runs[3]);
    // One written in a batch, as workers write: created, then finished with a record.
    h.clock.advance(MINUTE);
    let batched = new_run("orders", store.now(), json!({"customer": "Fabrikam"}));
    let record = json!({"actions": {"post": {"outputs": {"ticket": "TCK-4711"}}}});
    let writes = vec![
        RunWrite::Create(batched.clone()),
        RunWrite::Finish { run: batched.id, outcome: outcome(RunStatus::Succeeded, store.now(), record) },
    ];
    assert!(store.write_batch(writes).await.unwrap().iter().all(Result::is_ok));

    let none: Vec<Uuid> = Vec::new();
    let search = |text: &'static str| {
        let filter = RunFilter { text: Some(text.into()), limit: 2, ..RunFilter::default() };
        async move { collect_pages(store.as_ref(), filter).await }
    };
    assert_eq!(search("TOSO").await, vec![contoso], "the middle of a word, in another case");
    assert_eq!(search("contoso ltd").await, vec![contoso], "across a space");
    assert_eq!(search("ÉTÉ GÉ").await, vec![societe], "non-ASCII text in another case");
    assert_eq!(search("ck-471").await, vec![batched.id], "the record written in a batch");
    assert_eq!(search(r#"off""#).await, vec![xy, percent], "several runs, over pages");
    assert_eq!(search(r#""contoso ltd""#).await, vec![contoso], "quotes are characters to find");
    assert_eq!(search(r#"contoso" OR "fabrikam"#).await, none, "no query syntax: one literal text");
    assert_eq!(search("toso*").await, none, "no prefix query either");
    assert_eq!(search("50%_off").await, vec![percent], "% and _ match only themselves");
    assert_eq!(search("%_").await, vec![percent]);
    assert_eq!(search("_").await, vec![percent]);
    assert_eq!(search(r"\").await, none, "nor does the escape character");
    assert_eq!(search("0xy").await, vec![xy]);
    assert_eq!(search("50").await, vec![xy, percent], "two characters");
    assert_eq!(search("LT").await, vec![contoso]);
    assert_eq!(search("É").await, vec![societe], "one character");

    let closed = outcome(RunStatus::Succeeded, store.now(), json!({"note": "closed"}));
    store.finish_run(contoso, closed).await.unwrap();
    assert_eq!(search("closed").await, vec![contoso], "a finished run's record is found");
    assert_eq!(search("contoso").await, vec![contoso], "its inputs still are");

    h.clock.advance(DAY * (super::DEFAULT_RETENTION_DAYS + 1));
    let recent = new_run("orders", store.now(), json!({"customer": "Contoso Inc"}));
    store.create_run(recent.clone()).await.unwrap();
    for id in [percent, xy, societe] {
        store.finish_run(id, outcome(RunStatus::Failed, store.now(), json!({}))).await.unwrap();
    }
    let report = store.purge_older_than_days(super::DEFAULT_RETENTION_DAYS).await.unwrap();
    assert_eq!(report.runs, 5, "{report:?}");
    assert_eq!(search("contoso").await, vec![recent.id], "a purged run is no longer found");
    assert_eq!(search("ck-471").await, none);
    assert_eq!(search("lt").await, none, "not by a short text either");
}

async fn collect_pages(store: &dyn Store, filter: RunFilter) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut cursor = None;
    for _ in 0..100 {
        let page = store.list_runs(RunFilter { cursor: cursor.take(), ..filter.clone() }).await.unwrap();
        let limit = if filter.limit == 0 { 50 } else { filter.limit as usize };
        assert!(page.runs.len() <= limit, "page larger than asked");
        ids.extend(page.runs.iter().map(|r| r.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return ids,
        }
    }
    panic!("paging did not end");
}

/// Counts per flow and status include exactly the runs created inside the window.
pub async fn run_counts_cover_the_window(h: Harness) {
    let store = &h.store;
    let before = store.now();
    store.create_run(new_run("orders", before, json!({}))).await.unwrap();
    h.clock.advance(DAY);
    let since = store.now();
    for (flow, status) in [
        ("orders", RunStatus::Succeeded),
        ("orders", RunStatus::Succeeded),
        ("orders", RunStatus::Failed),
        ("invoices", RunStatus::Succeeded),
        ("invoices", RunStatus::Queued),
    ] {
        let run = new_run(flow, store.now(), json!({}));
        store.create_run(run.clone()).await.unwrap();
        if status.is_terminal() {
            store.finish_run(run.id, outcome(status, store.now(), json!({}))).await.unwrap();
        }
        h.clock.advance(MINUTE);
    }
    let until = store.now();
    store.create_run(new_run("orders", until, json!({}))).await.unwrap();

    let counts: Vec<(String, RunStatus, u64)> = store
        .run_counts(since, until)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.flow, c.status, c.count))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut expected = vec![
        ("invoices".to_owned(), RunStatus::Queued, 1),
        ("invoices".to_owned(), RunStatus::Succeeded, 1),
        ("orders".to_owned(), RunStatus::Failed, 1),
        ("orders".to_owned(), RunStatus::Succeeded, 2),
    ];
    expected.sort();
    assert_eq!(counts, expected);
}

/// A resubmission is a new queued run of the same flow, event and inputs, linked to the
/// original and enqueued in the same transaction.
pub async fn resubmit_links_and_enqueues(h: Harness) {
    let store = &h.store;
    let mut original = new_run("orders", store.now(), json!({"body": {"id": 1}}));
    original.event_id = Some(Uuid::now_v7());
    store.create_run(original.clone()).await.unwrap();
    store.finish_run(original.id, outcome(RunStatus::Failed, store.now(), json!({}))).await.unwrap();

    h.clock.advance(MINUTE);
    let again = Uuid::now_v7();
    store.resubmit(original.id, again, 4).await.unwrap();
    store.resubmit(original.id, again, 4).await.unwrap();

    let detail = store.get_run(again).await.unwrap().expect("resubmitted run exists");
    assert_eq!(detail.summary.status, RunStatus::Queued);
    assert_eq!(detail.summary.resubmit_of, Some(original.id));
    assert_eq!(detail.summary.event_id, original.event_id);
    assert_eq!(detail.summary.flow, "orders");
    assert_eq!(detail.summary.created_at, store.now());
    assert_eq!(detail.inputs, original.inputs);
    assert_eq!(store.get_run(original.id).await.unwrap().map(|d| d.resubmits), Some(vec![again]));

    let claim = store.claim("w", MINUTE).await.unwrap().expect("the resubmission was enqueued");
    assert_eq!(
        (claim.item.run_id, claim.item.event_id, claim.item.max_attempts),
        (Some(again), original.event_id, 4)
    );
    assert!(store.claim("w", MINUTE).await.unwrap().is_none(), "resubmitting twice enqueues once");

    let missing = Uuid::now_v7();
    let result = store.resubmit(missing, Uuid::now_v7(), 4).await;
    assert!(matches!(result, Err(StoreError::RunNotFound(id)) if id == missing), "{result:?}");
}

/// Watermarks are per flow and trigger; compare-and-set succeeds only on the expected version.
pub async fn watermarks_compare_and_set(h: Harness) {
    let store = &h.store;
    assert!(store.get_watermark("f", "poll").await.unwrap().is_none());
    assert_eq!(store.cas_watermark("f", "poll", None, json!("2026-01-01")).await.unwrap(), Some(1));
    assert_eq!(store.cas_watermark("f", "poll", None, json!("lost race")).await.unwrap(), None);
    assert_eq!(
        store.cas_watermark("f", "poll", Some(1), json!({"since": "2026-01-02"})).await.unwrap(),
        Some(2)
    );
    assert_eq!(store.cas_watermark("f", "poll", Some(1), json!("stale writer")).await.unwrap(), None);
    assert_eq!(store.cas_watermark("f", "other", Some(1), json!("no such row")).await.unwrap(), None);

    h.clock.advance(MINUTE);
    let mark = store.get_watermark("f", "poll").await.unwrap().expect("written");
    assert_eq!((mark.value, mark.version), (json!({"since": "2026-01-02"}), 2));
    assert_eq!(store.set_watermark("f", "poll", json!(3)).await.unwrap(), 3);
    assert_eq!(store.set_watermark("g", "poll", json!(1)).await.unwrap(), 1);
    let mark = store.get_watermark("f", "poll").await.unwrap().expect("written");
    assert_eq!((mark.value, mark.version, mark.updated_at), (json!(3), 3, store.now()));
    assert!(store.get_watermark("f", "other").await.unwrap().is_none());
}

/// One holder at a time: others are refused until it releases or its lease expires, and
/// concurrent contenders get exactly one grant.
pub async fn singleton_lease_is_exclusive(h: Harness) {
    let store = &h.store;
    let ttl = Duration::from_secs(30);
    assert!(store.acquire_lease("poll:orders", "a", ttl).await.unwrap());
    assert!(!store.acquire_lease("poll:orders", "b", ttl).await.unwrap());
    assert!(store.acquire_lease("poll:invoices", "b", ttl).await.unwrap(), "leases are per name");

    h.clock.advance(Duration::from_secs(20));
    assert!(store.acquire_lease("poll:orders", "a", ttl).await.unwrap(), "the holder renews");
    h.clock.advance(Duration::from_secs(20));
    assert!(!store.acquire_lease("poll:orders", "b", ttl).await.unwrap(), "renewal extended it");
    let holder = store.lease_holder("poll:orders").await.unwrap().expect("held");
    assert_eq!(holder.holder, "a");
    assert!(!store.release_lease("poll:orders", "b").await.unwrap(), "only the holder releases");

    h.clock.advance(Duration::from_secs(11));
    assert!(store.lease_holder("poll:orders").await.unwrap().is_none(), "expired");
    assert!(store.acquire_lease("poll:orders", "b", ttl).await.unwrap(), "expired leases are taken over");
    assert!(!store.acquire_lease("poll:orders", "a", ttl).await.unwrap(), "the old holder lost it");
    assert!(store.release_lease("poll:orders", "b").await.unwrap());
    assert!(store.lease_holder("poll:orders").await.unwrap().is_none());

    let contenders: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.acquire_lease("race", &format!("p{i}"), ttl).await.unwrap() })
        })
        .collect();
    let mut granted = 0;
    for contender in contenders {
        granted += usize::from(contender.await.unwrap());
    }
    assert_eq!(granted, 1, "exactly one contender wins");
}

/// Retention deletes finished runs, events, refusals and dead work older than the cutoff, and
/// keeps what is recent or still needed.
pub async fn purge_deletes_only_what_is_old_and_done(h: Harness) {
    let store = &h.store;
    let old = store.now();

    let dead = work("f", 1, None);
    store.enqueue(dead.clone()).await.unwrap();
    let claim = store.claim("w", MINUTE).await.unwrap().expect("claimable");
    assert_eq!(store.fail(claim.token, "x", old).await.unwrap(), FailOutcome::DeadLettered);

    let done_event = event("f", Some("done"), old);
    let run_event = event("f", Some("run"), old);
    for e in [&done_event, &run_event] {
        accepted_work(store.accept_event(e.clone()).await.unwrap());
        let claim = store.claim("w", MINUTE).await.unwrap().expect("claimable");
        store.complete(claim.token).await.unwrap();
    }
    let pending_event = event("f", Some("pending"), old);
    accepted_work(store.accept_event(pending_event.clone()).await.unwrap());

    let old_done = new_run("f", old, json!({}));
    let mut old_running = new_run("f", old, json!({}));
    old_running.event_id = Some(run_event.id);
    for run in [&old_done, &old_running] {
        store.create_run(run.clone()).await.unwrap();
    }
    store.record_action(old_done.id, action("a", "succeeded", json!(1))).await.unwrap();
    store.finish_run(old_done.id, outcome(RunStatus::Succeeded, old, json!({}))).await.unwrap();
    let refused = |at| RejectedEvent {
        id: Uuid::now_v7(),
        flow: None,
        source: "webhook".into(),
        received_at: at,
        headers: vec![],
        body: vec![],
        status: 400,
        reason: "invalid JSON".into(),
    };
    store.reject_event(refused(old)).await.unwrap();

    h.clock.advance(29 * DAY);
    let recent_run = new_run("f", store.now(), json!({}));
    store.create_run(recent_run.clone()).await.unwrap();
    store.finish_run(recent_run.id, outcome(RunStatus::Succeeded, store.now(), json!({}))).await.unwrap();
    let recent_refusal = refused(store.now());
    store.reject_event(recent_refusal.clone()).await.unwrap();

    let nothing = store.purge_older_than_days(30).await.unwrap();
    assert_eq!(nothing, super::PurgeReport::default(), "nothing is 30 days old");

    let report = store.purge_older_than_days(super::DEFAULT_RETENTION_DAYS).await.unwrap();
    assert_eq!((report.runs, report.events, report.rejected, report.dead_work), (1, 1, 1, 1), "{report:?}");

    assert!(store.get_run(old_done.id).await.unwrap().is_none());
    assert!(store.completed_actions(old_done.id).await.unwrap().is_empty(), "actions go with their run");
    assert!(store.get_run(old_running.id).await.unwrap().is_some(), "unfinished runs are kept");
    assert!(store.get_run(recent_run.id).await.unwrap().is_some());
    assert!(store.get_event(done_event.id).await.unwrap().is_none());
    assert!(store.get_event(run_event.id).await.unwrap().is_some(), "a kept run's event is kept");
    assert!(store.get_event(pending_event.id).await.unwrap().is_some(), "pending work's event is kept");
    assert!(store.list_dead(10).await.unwrap().is_empty());
    assert_eq!(store.list_rejected(10).await.unwrap(), vec![recent_refusal]);
    assert_eq!(store.queue_stats().await.unwrap().ready, 1, "pending work is never purged");
}

/// Flows are enabled until disabled; the state is remembered.
pub async fn flows_enable_and_disable(h: Harness) {
    let store = &h.store;
    assert!(store.flow_enabled("orders").await.unwrap());
    store.set_flow_enabled("orders", false).await.unwrap();
    assert!(!store.flow_enabled("orders").await.unwrap());
    assert!(store.flow_enabled("invoices").await.unwrap());
    h.clock.advance(MINUTE);
    store.set_flow_enabled("orders", true).await.unwrap();
    store.set_flow_enabled("invoices", false).await.unwrap();
    let states: Vec<_> =
        store.flow_states().await.unwrap().into_iter().map(|s| (s.flow, s.enabled, s.updated_at)).collect();
    assert_eq!(states, vec![("invoices".into(), false, store.now()), ("orders".into(), true, store.now())]);
}

/// A batch of run writes applies each in order, in one go; a write naming a missing run or a
/// lost claim fails alone.
pub async fn write_batches_apply_each_write(h: Harness) {
    let store = h.store.as_ref();
    store.enqueue(work("f", 3, None)).await.unwrap();
    let claim = store.claim("w", MINUTE).await.unwrap().expect("an item to claim");
    let run = new_run("f", start_time(), json!({"body": {"n": 1}}));
    let id = run.id;
    let missing = Uuid::now_v7();
    let stale = ClaimToken { item: claim.token.item, token: Uuid::now_v7() };
    let writes = vec![
        RunWrite::Create(run),
        RunWrite::Start { run: id, at: start_time() },
        RunWrite::Action { run: id, action: action("A", "succeeded", json!(1)) },
        RunWrite::Action { run: missing, action: action("A", "succeeded", json!(2)) },
        RunWrite::Finish {
            run: id,
            outcome: outcome(RunStatus::Succeeded, start_time(), json!({"ok": true})),
        },
        RunWrite::Complete(stale),
        RunWrite::Complete(claim.token),
    ];
    let outcomes = store.write_batch(writes).await.unwrap();
    assert_eq!(outcomes.len(), 7);
    assert!(outcomes[..3].iter().all(Result::is_ok), "{outcomes:?}");
    assert!(matches!(outcomes[3], Err(StoreError::RunNotFound(run)) if run == missing), "{outcomes:?}");
    assert!(outcomes[4].is_ok(), "{outcomes:?}");
    assert!(matches!(outcomes[5], Err(StoreError::LeaseLost(_))), "{outcomes:?}");
    assert!(outcomes[6].is_ok(), "{outcomes:?}");

    let detail = store.get_run(id).await.unwrap().expect("the run was created");
    assert_eq!(detail.summary.status, RunStatus::Succeeded);
    assert!(detail.summary.started_at.is_some());
    assert_eq!(detail.actions.len(), 1);
    assert_eq!(detail.record, Some(json!({"ok": true})));
    assert_eq!(store.queue_stats().await.unwrap().depth(), 0, "the item was completed");
}

/// A run created and started in one batch reads as running since the start; a second create
/// of the same run changes nothing, and a start after it still applies.
pub async fn a_batch_creates_and_starts_a_run_as_one(h: Harness) {
    let store = h.store.as_ref();
    let run = new_run("f", start_time(), json!({"body": {"n": 1}}));
    let id = run.id;
    let started = start_time() + Duration::from_secs(5);
    let writes = vec![RunWrite::Create(run.clone()), RunWrite::Start { run: id, at: started }];
    assert!(store.write_batch(writes).await.unwrap().iter().all(Result::is_ok));
    let summary = store.get_run(id).await.unwrap().expect("created").summary;
    assert_eq!((summary.status, summary.started_at), (RunStatus::Running, Some(started)));

    let other = new_run("f", start_time(), json!({}));
    store.create_run(other.clone()).await.unwrap();
    let later = started + Duration::from_secs(5);
    let writes = vec![RunWrite::Create(other.clone()), RunWrite::Start { run: other.id, at: later }];
    assert!(store.write_batch(writes).await.unwrap().iter().all(Result::is_ok));
    let summary = store.get_run(other.id).await.unwrap().expect("created").summary;
    assert_eq!((summary.status, summary.started_at), (RunStatus::Running, Some(later)));
    let writes = vec![
        RunWrite::Create(run),
        RunWrite::Start { run: id, at: later },
        RunWrite::Action { run: id, action: action("A", "succeeded", json!(1)) },
    ];
    assert!(store.write_batch(writes).await.unwrap().iter().all(Result::is_ok));
    let detail = store.get_run(id).await.unwrap().expect("created");
    assert_eq!(detail.summary.started_at, Some(started), "the first start time is kept");
    assert_eq!(detail.actions.len(), 1);
}

/// A batch larger than one statement takes, with several runs in every state: each run ends
/// with its own actions in the order they first completed, the last result of an action wins,
/// its text is searchable, and writes naming missing runs fail alone.
pub async fn a_large_batch_keeps_every_write_and_its_order(h: Harness) {
    let store = h.store.as_ref();
    const RUNS: usize = 150;
    let runs: Vec<NewRun> = (0..RUNS)
        .map(|n| new_run("bulk", start_time(), json!({"body": {"order": format!("ord-{n:03}")}})))
        .collect();
    let ids: Vec<Uuid> = runs.iter().map(|run| run.id).collect();
    let missing = Uuid::now_v7();
    let mut writes: Vec<RunWrite> = runs.into_iter().map(RunWrite::Create).collect();
    writes.extend(ids.iter().map(|&run| RunWrite::Start { run, at: start_time() }));
    writes.push(RunWrite::Start { run: missing, at: start_time() });
    for name in ["Map", "Post", "Answer"] {
        writes.extend(
            ids.iter().map(|&run| RunWrite::Action { run, action: action(name, "failed", json!(name)) }),
        );
    }
    // A second result of the same action in the same batch replaces the first.
    writes.extend(
        ids.iter().map(|&run| RunWrite::Action { run, action: action("Post", "succeeded", json!(2)) }),
    );
    writes.push(RunWrite::Action { run: missing, action: action("Map", "succeeded", json!(1)) });
    writes.extend(ids.iter().enumerate().map(|(n, &run)| RunWrite::Finish {
        run,
        outcome: outcome(RunStatus::Succeeded, start_time(), json!({"total": format!("tck-{n:03}")})),
    }));
    writes.push(RunWrite::Finish {
        run: missing,
        outcome: outcome(RunStatus::Succeeded, start_time(), json!({})),
    });
    let outcomes = store.write_batch(writes).await.unwrap();
    let failed: Vec<String> =
        outcomes.iter().filter_map(|o| o.as_ref().err()).map(ToString::to_string).collect();
    assert_eq!(failed.len(), 3, "only the three writes naming a missing run fail: {failed:?}");
    assert!(
        outcomes
            .iter()
            .filter_map(|o| o.as_ref().err())
            .all(|e| matches!(e, StoreError::RunNotFound(r) if *r == missing))
    );

    for (n, &id) in ids.iter().enumerate() {
        let detail = store.get_run(id).await.unwrap().expect("the run was created");
        assert_eq!(detail.summary.status, RunStatus::Succeeded);
        let names: Vec<&str> = detail.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["Map", "Post", "Answer"], "run {n}: in the order they first completed");
        assert_eq!(
            (detail.actions[1].status.as_str(), &detail.actions[1].result["outputs"]),
            ("succeeded", &json!(2))
        );
        assert_eq!(detail.record, Some(json!({"total": format!("tck-{n:03}")})));
    }
    let found = |text: &str| {
        let filter = RunFilter { text: Some(text.into()), ..RunFilter::default() };
        async move { store.list_runs(filter).await.unwrap().runs.iter().map(|r| r.id).collect::<Vec<_>>() }
    };
    assert_eq!(found("ord-137").await, vec![ids[137]], "found by its inputs");
    assert_eq!(found("tck-042").await, vec![ids[42]], "found by its record");
}

/// Finished runs enter the text-search index in batches, oldest first; running runs wait.
/// A search finds the same runs before, during and after.
pub async fn text_search_finds_runs_before_and_after_indexing(h: Harness) {
    let store = h.store.as_ref();
    let mut ids = Vec::new();
    for n in 0..5 {
        let run = new_run("orders", start_time(), json!({"body": {"order": format!("idx-{n}")}}));
        ids.push(run.id);
        store.create_run(run).await.unwrap();
    }
    for id in &ids[..4] {
        let record = json!({"total": "idx-total"});
        store.finish_run(*id, outcome(RunStatus::Succeeded, start_time(), record)).await.unwrap();
    }
    let found = |text: &'static str| {
        let filter = RunFilter { text: Some(text.into()), ..RunFilter::default() };
        async move {
            let mut ids: Vec<Uuid> =
                store.list_runs(filter).await.unwrap().runs.iter().map(|r| r.id).collect();
            ids.sort();
            ids
        }
    };
    let mut finished = ids[..4].to_vec();
    finished.sort();
    let check = async || {
        assert_eq!(found("idx-3").await, vec![ids[3]]);
        assert_eq!(found("idx-4").await, vec![ids[4]], "a running run is found by its inputs");
        assert_eq!(found("idx-total").await, finished, "finished runs are found by their record");
    };
    check().await;
    let first = store.index_search(3).await.unwrap();
    check().await;
    let rest = store.index_search(100).await.unwrap();
    check().await;
    assert_eq!((first, rest), (3, 1), "the four finished runs, at most three at a time");
    assert_eq!(store.index_search(100).await.unwrap(), 0, "the running run waits");
}

/// Events accepted with a lease are stored like any other, but their work is already leased to
/// the receiving worker; when that worker dies, the item is claimable once the lease lapses.
pub async fn leased_acceptance_skips_the_queue(h: Harness) {
    let store = h.store.as_ref();
    let first = event("f", Some("a"), start_time());
    let second = event("f", None, start_time());
    let again = event("f", Some("a"), start_time());
    let outcomes = store
        .accept_events_leased(vec![(first, true), (second, false), (again, true)], "w1", MINUTE)
        .await
        .unwrap();
    let (AcceptOutcome::Accepted { work_id, .. }, Some(claim)) = &outcomes[0] else {
        panic!("the first event is accepted and leased: {outcomes:?}");
    };
    assert_eq!(claim.item.id, *work_id);
    assert_eq!(claim.item.attempts, 1, "the first attempt is counted");
    assert!(matches!(outcomes[1], (AcceptOutcome::Accepted { .. }, None)), "{outcomes:?}");
    assert!(matches!(outcomes[2], (AcceptOutcome::Duplicate { .. }, None)), "{outcomes:?}");

    let other = store.claim("w2", MINUTE).await.unwrap().expect("the unleased item is claimable");
    assert_ne!(other.item.id, *work_id);
    assert!(store.claim("w2", MINUTE).await.unwrap().is_none(), "the leased item is not");
    h.clock.advance(MINUTE + Duration::from_secs(1));
    let taken_over = store.claim("w2", MINUTE).await.unwrap().expect("the lapsed lease is reclaimed");
    assert_eq!(taken_over.item.id, *work_id);
    assert_eq!(taken_over.item.attempts, 2);
    assert!(matches!(store.complete(claim.token).await, Err(StoreError::LeaseLost(_))));
}
