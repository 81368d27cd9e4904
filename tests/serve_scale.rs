//! Scale-out: three `coflow serve` processes share one PostgreSQL database. Events sent to any
//! of them run exactly once, one process at a time polls each trigger, and killing one process
//! mid-load loses nothing.
//!
//! Reads `COFLOW_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`) and
//! works in a database of its own, dropped at the end.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use support::{Acked, Setup};

const EVENTS: usize = 3000;

const NEW_ACCOUNTS: &str = r#"
name: new-accounts
connections: {sf: salesforce}
trigger:
  type: salesforce.poll
  connection: sf
  object: Account
  on: created
  every: PT1S
actions:
  Account:
    type: compose
    inputs: "{{ triggerBody().Id }}"
"#;

fn postgres_url() -> String {
    std::env::var("COFLOW_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database of its own, dropped when the guard goes.
struct Database {
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Database {
        let name = format!("coflow_scale_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&postgres_url()).await.expect("PostgreSQL is reachable");
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
        let mut url = url::Url::parse(&postgres_url()).unwrap();
        url.set_path(&name);
        Database { name, url: url.to_string() }
    }

    async fn drop_now(self) {
        let mut conn = PgConnection::connect(&postgres_url()).await.unwrap();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_on_postgres_run_each_event_once_and_poll_each_trigger_once() {
    let database = Database::create().await;
    let setup = Setup::new(&[("upsert", support::UPSERT), ("new-accounts", NEW_ACCOUNTS)]).await;
    let client = reqwest::Client::new();
    let ports: Vec<u16> = (0..3).map(|_| support::free_port()).collect();
    let bases: Vec<String> = ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    let extra = ["--poll-every", "PT0.5S"];
    let mut processes: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| setup.spawn(*port, &database.url, &extra, &format!("p{i}.log")))
        .collect();
    for base in &bases {
        support::wait_ready(&client, base).await;
    }
    // Let the poll trigger take its starting point before records appear.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let accounts = tokio::spawn(create_accounts(
        setup.sandbox.salesforce_url.clone(),
        setup.sandbox.connections().unwrap(),
    ));
    let acked: Acked = Acked::default();
    let started = Instant::now();
    let victim = &mut processes[1];
    let all = (0..EVENTS).collect();
    let failed = support::send_all(&client, &bases, all, 48, &acked, Some((EVENTS / 3, victim))).await;
    let survivors = vec![bases[0].clone(), bases[2].clone()];
    let failed = support::send_all(&client, &survivors, failed, 32, &acked, None).await;
    assert!(failed.is_empty(), "{} events refused by the surviving processes", failed.len());
    let created: Vec<String> = accounts.await.unwrap();
    support::wait_until_drained(&client, &bases[0]).await;
    // The last accounts may still be waiting for a poll.
    let polled = wait_for_polled_runs(&database.url, created.len()).await;
    let took = started.elapsed();

    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), EVENTS);
    let runs = support::all_runs(&database.url).await;
    let upsert_runs: HashMap<String, (String, String)> =
        runs.into_iter().filter(|(_, (event, _))| !polled.contains_key(event)).collect();
    support::assert_exactly_once(&acked, &upsert_runs);
    assert_eq!(upsert_runs.len(), EVENTS);
    let keys = setup.opportunity_keys();
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), EVENTS);
    assert_eq!(keys.len(), EVENTS, "one record per event");
    // One upsert per event (the killed process's interrupted runs check before writing again),
    // plus the accounts this test created.
    let writes = setup.sandbox.salesforce.writes_received();
    assert_eq!(writes, (EVENTS + created.len()) as u64, "one write per event");

    let fired: Vec<&String> = polled.values().collect();
    let unique: HashSet<&String> = fired.iter().copied().collect();
    assert_eq!(unique.len(), fired.len(), "no account fired twice: {fired:?}");
    assert_eq!(unique, created.iter().collect(), "every new account fired once");
    println!(
        "scale-out: {EVENTS} events over 3 processes (one killed after {} acknowledgements), {} accounts polled, \
         all exactly once, in {:.1} s",
        EVENTS / 3,
        created.len(),
        took.as_secs_f64()
    );
    drop(processes);
    database.drop_now().await;
}

/// Creates 10 accounts while the load runs; returns their ids.
async fn create_accounts(
    _url: String,
    connections: coflow::connectors::config::LoadedConnections,
) -> Vec<String> {
    let http = coflow::connectors::HttpClient::new(reqwest::Client::new(), false);
    let salesforce = connections.salesforce["salesforce"].clone();
    let mut ids = Vec::new();
    for n in 0..10 {
        let inputs = json!({"sobject": "Account", "record": {"Name": format!("Scale {n}")}});
        let call = coflow::connectors::OperationCall::new("create_record", &inputs, &http);
        let created = coflow::connectors::Connector::call(salesforce.as_ref(), call).await.unwrap();
        ids.push(created.body["id"].as_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    ids
}

/// Runs of the poll flow once `count` have finished: event id -> the account id it fired for.
async fn wait_for_polled_runs(url: &str, count: usize) -> HashMap<String, String> {
    let store = coflow::store::open(url).await.unwrap();
    for _ in 0..200 {
        let filter =
            coflow::store::RunFilter { flow: Some("new-accounts".into()), limit: 500, ..Default::default() };
        let page = store.list_runs(filter).await.unwrap();
        let done = page.runs.iter().filter(|r| r.status.is_terminal()).count();
        if done >= count {
            let mut fired = HashMap::new();
            for run in page.runs {
                let detail = store.get_run(run.id).await.unwrap().unwrap();
                let account = detail.inputs["body"]["Id"].as_str().unwrap_or_default().to_string();
                fired.insert(run.event_id.unwrap().to_string(), account);
            }
            // Give a second poller the chance to fire a duplicate, then read again.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let again = store.list_runs(coflow::store::RunFilter {
                flow: Some("new-accounts".into()),
                limit: 500,
                ..Default::default()
            });
            assert_eq!(
                again.await.unwrap().runs.len(),
                fired.len(),
                "no further runs after every account fired"
            );
            return fired;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the poll flow did not fire for every account");
}
