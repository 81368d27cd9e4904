//! Salesforce emulator benchmarks: record GETs through the router in-process, SOQL parsing,
//! and the memory taken by 100,000 Opportunities (printed before the criterion runs).
//!
//! `cargo bench --bench sandbox -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request};
use coflow::sandbox::salesforce::api::ApiRequest;
use coflow::sandbox::salesforce::{self, Salesforce, SalesforceConfig, soql};
use criterion::{Criterion, Throughput};
use serde_json::{Value, json};
use tower::ServiceExt;

const OPPORTUNITIES: usize = 100_000;
const QUERY: &str = "SELECT Id, Name, StageName, Amount, Account.Name, (SELECT UserId FROM OpportunityTeamMembers) \
    FROM Opportunity WHERE (StageName IN ('Prospecting', 'Qualification') OR Amount >= 1000) \
    AND Sync_with_Partner_Center__c = true AND SystemModstamp > 2024-05-01T00:00:00Z \
    ORDER BY SystemModstamp ASC, Id ASC LIMIT 2000";

fn org() -> Arc<Salesforce> {
    let mut config = SalesforceConfig::new("http://127.0.0.1:8091");
    // The bench makes far more calls than a day's allocation.
    config.daily_api_limit = u64::MAX;
    Salesforce::new(config).expect("org")
}

fn call(sf: &Salesforce, method: Method, path: &str, body: Option<Value>) -> Value {
    let req = ApiRequest { method, path, query: None, body, batch_size: 2000 };
    salesforce::http::serve(sf, &req).body.unwrap_or(Value::Null)
}

/// Loads `n` Opportunities through sObject Collections, as a client would.
fn load_opportunities(sf: &Salesforce, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(200) {
        let records: Vec<Value> = (0..200.min(n - chunk * 200))
            .map(|i| {
                let k = chunk * 200 + i;
                json!({
                    "attributes": {"type": "Opportunity"},
                    "Name": format!("Contoso - Azure Migration {k}"),
                    "StageName": if k % 3 == 0 { "Prospecting" } else { "Qualification" },
                    "CloseDate": "2025-09-30",
                    "Amount": (k % 1000) as f64 * 250.0,
                    "Referral_Id__c": format!("3f2b6c1e-8a9d-4e5f-b0c1-{k:012}"),
                    "Sync_with_Partner_Center__c": k % 2 == 0,
                })
            })
            .collect();
        let results = call(
            sf,
            Method::POST,
            "v59.0/composite/sobjects",
            Some(json!({"allOrNone": true, "records": records})),
        );
        for r in results.as_array().into_iter().flatten() {
            ids.push(r["id"].as_str().unwrap_or_default().to_string());
        }
    }
    ids
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Prints the resident memory an org of 100,000 Opportunities takes.
fn report_memory() {
    let before = rss_kib();
    let sf = org();
    let ids = load_opportunities(&sf, OPPORTUNITIES);
    let after = rss_kib();
    println!(
        "memory: {} Opportunities, RSS grew {:.1} MiB (process RSS {:.1} MiB)",
        ids.len(),
        (after.saturating_sub(before)) as f64 / 1024.0,
        after as f64 / 1024.0
    );
}

fn bench_get(c: &mut Criterion) {
    let sf = org();
    let ids = load_opportunities(&sf, 10_000);
    let token = sf.config().access_token.clone();
    let router = salesforce::router(sf);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("salesforce");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("record_get", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            let req = Request::builder()
                .uri(format!("/services/data/v59.0/sobjects/Opportunity/{}", ids[i]))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request");
            let resp = runtime.block_on(router.clone().oneshot(req)).expect("response");
            assert!(resp.status().is_success());
            black_box(runtime.block_on(axum::body::to_bytes(resp.into_body(), usize::MAX)).expect("body"))
        })
    });
    group.bench_function("soql_parse", |b| {
        b.iter(|| black_box(soql::parse(black_box(QUERY)).expect("parses")))
    });
    group.finish();
}

fn main() {
    report_memory();
    let mut criterion = Criterion::default().configure_from_args();
    bench_get(&mut criterion);
    criterion.final_summary();
}
