//! Crash safety of `coflow serve`: the real binary is killed with SIGKILL under load and
//! restarted on the same store; every event that was acknowledged must end in exactly one
//! completed run, and the Salesforce emulator must hold exactly one record per event and have
//! received exactly one write for it.

mod support;

use std::collections::HashSet;
use std::time::Instant;

use support::{Acked, Setup};

const EVENTS: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_under_load_loses_nothing_it_acknowledged() {
    let setup = Setup::new(&[("upsert", support::UPSERT)]).await;
    let store = support::sqlite_url(&setup.dir);
    let port = support::free_port();
    let base = vec![format!("http://127.0.0.1:{port}")];
    let client = reqwest::Client::new();
    let acked: Acked = Acked::default();

    let mut first = setup.spawn(port, &store, &["--no-schedule"], "first.log");
    support::wait_ready(&client, &base[0]).await;
    let started = Instant::now();
    let all = (0..EVENTS).collect();
    let cut_off = support::send_all(&client, &base, all, 32, &acked, Some((EVENTS / 3, &mut first))).await;
    let acked_before_kill = acked.lock().unwrap().len();
    assert!(acked_before_kill < EVENTS, "the kill came too late to interrupt anything");

    let _second = setup.spawn(port, &store, &["--no-schedule"], "second.log");
    support::wait_ready(&client, &base[0]).await;
    // The client delivers again what was not acknowledged, as Partner Center would.
    let still_failed = support::send_all(&client, &base, cut_off.clone(), 32, &acked, None).await;
    assert!(still_failed.is_empty(), "{} events refused after the restart", still_failed.len());
    support::wait_until_drained(&client, &base[0]).await;
    let took = started.elapsed();

    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), EVENTS);
    let runs = support::all_runs(&store).await;
    support::assert_exactly_once(&acked, &runs);
    assert_eq!(runs.len(), EVENTS, "no run without an acknowledged event");

    let keys = setup.opportunity_keys();
    assert_eq!(keys.len(), EVENTS, "one Opportunity per event, none duplicated");
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), EVENTS);
    let writes = setup.sandbox.salesforce.writes_received();
    let calls = setup.sandbox.salesforce.api_used();
    println!(
        "crash test: {EVENTS} events, {acked_before_kill} acknowledged before SIGKILL, {} resent after restart; \
         all {EVENTS} with exactly one succeeded run and one record, in {:.1} s; {writes} writes, {calls} API calls",
        cut_off.len(),
        took.as_secs_f64(),
    );
    // Runs interrupted by the kill check whether their upsert landed before sending it again.
    assert_eq!(writes, EVENTS as u64, "the emulator received exactly one write per event");
}
