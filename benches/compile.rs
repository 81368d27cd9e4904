//! Loading and compiling a generated 1,000-action flow (target: under 20 ms).

use std::fmt::Write as _;

use criterion::{Criterion, criterion_group, criterion_main};

/// A flow of `groups` groups of ten actions: a variable update, composes reading earlier
/// bodies, an `if` with two branches and a `foreach`, all chained by `run_after`.
fn generated_flow(groups: usize) -> String {
    let mut text = String::from(
        "name: generated\ntrigger: {type: manual}\nactions:\n  init:\n    type: initialize_variable\n    name: total\n    variable_type: integer\n    value: 0\n",
    );
    let mut previous = "init".to_string();
    for g in 0..groups {
        let _ = write!(
            text,
            r#"  g{g}_start:
    type: compose
    inputs:
      id: "{{{{ triggerBody().id }}}}"
      previous: "{{{{ body('{previous}') }}}}"
  g{g}_add:
    type: increment_variable
    name: total
    by: 2
  g{g}_check:
    type: if
    condition: "{{{{ body('g{g}_start').id == {g} }}}}"
    then:
      g{g}_yes:
        type: compose
        inputs: "yes {{{{ variables('total') }}}}"
      g{g}_yes_2:
        type: compose
        inputs: "{{{{ body('g{g}_yes') }}}}"
    else:
      g{g}_no:
        type: compose
        inputs: "no {{{{ body('g{g}_start').previous }}}}"
  g{g}_loop:
    type: foreach
    items: "{{{{ body('g{g}_start').items }}}}"
    actions:
      g{g}_item:
        type: compose
        inputs: "{{{{ item() }}}}"
      g{g}_item_2:
        type: compose
        inputs: {{value: "{{{{ body('g{g}_item') }}}}"}}
  g{g}_end:
    type: compose
    run_after: {{g{g}_check: [succeeded, skipped], g{g}_loop: [succeeded, failed]}}
    inputs: "{{{{ body('g{g}_yes_2') }}}} {{{{ body('g{g}_item_2') }}}}"
"#
        );
        previous = format!("g{g}_end");
    }
    text
}

fn count_actions(text: &str) -> usize {
    text.lines().filter(|l| l.trim_start().starts_with("type: ") && l.starts_with("    ")).count()
}

fn bench_compile(c: &mut Criterion) {
    let text = generated_flow(100);
    let actions = count_actions(&text);
    assert!(actions >= 1000, "generated {actions} actions");
    if let Err(diagnostics) = coflow::flow::load_str(&text) {
        panic!("generated flow is invalid:\n{diagnostics}");
    }
    c.bench_function(&format!("load_and_compile_{actions}_actions"), |b| {
        b.iter(|| coflow::flow::load_str(std::hint::black_box(&text)))
    });
}

criterion_group!(benches, bench_compile);
criterion_main!(benches);
