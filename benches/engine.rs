//! Executor overhead: one run of a chain of 100 `compose` actions, each reading the previous
//! one's output. Divide the time per run by 100 for the cost of one action.
//!
//! `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 3`

use std::fmt::Write as _;
use std::hint::black_box;

use coflow::engine::{self, RunOptions, Status, TriggerEvent};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CHAIN_LENGTH: usize = 100;

fn compose_chain(length: usize) -> String {
    let mut yaml =
        String::from("name: chain\ntrigger: {type: manual}\nactions:\n  a0: {type: compose, inputs: 0}\n");
    for i in 1..length {
        let _ = writeln!(yaml, "  a{i}: {{type: compose, inputs: \"{{{{ body('a{}') + 1 }}}}\"}}", i - 1);
    }
    yaml
}

fn bench_compose_chain(c: &mut Criterion) {
    let flow = coflow::flow::load_str(&compose_chain(CHAIN_LENGTH)).expect("benchmark flow compiles");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let options = RunOptions::new(false);
    let check = runtime.block_on(engine::run(&flow, TriggerEvent::default(), &options));
    assert_eq!(check.status, Status::Succeeded);
    assert_eq!(check.actions[CHAIN_LENGTH - 1].outputs, Some(serde_json::json!(CHAIN_LENGTH - 1)));

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(CHAIN_LENGTH as u64));
    group.bench_function("compose_chain_100", |b| {
        b.iter(|| runtime.block_on(engine::run(black_box(&flow), TriggerEvent::default(), &options)));
    });
    group.finish();
}

criterion_group!(benches, bench_compose_chain);
criterion_main!(benches);
