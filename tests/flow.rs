//! Flow files: loader diagnostics (snapshots), valid fixtures, the schema, robustness against
//! random input, and the `validate` / `graph` commands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use coflow::flow::{self, ActionKind, Diagnostics, StatusSet};
use proptest::prelude::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flows")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Diagnostics of a broken fixture, named relative to the fixtures folder so snapshots are
/// the same on every machine.
fn broken(name: &str) -> Diagnostics {
    let path = fixtures().join("broken").join(format!("{name}.yaml"));
    let (flow, diagnostics) = flow::check_str(&read(&path), Some(&format!("broken/{name}.yaml")));
    assert!(flow.is_none(), "{name} should not compile");
    assert!(diagnostics.has_errors(), "{name} should have errors");
    diagnostics
}

macro_rules! broken_fixtures {
    ($($name:ident),* $(,)?) => {
        const BROKEN: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                insta::assert_snapshot!(concat!("broken_", stringify!($name)), broken(stringify!($name)).to_string());
            }
        )*
    };
}

broken_fixtures!(
    malformed_yaml,
    not_a_flow,
    wrong_type,
    unknown_key,
    key_of_other_type,
    missing_key,
    unknown_type,
    unknown_run_after,
    run_after_other_block,
    unknown_body_ref,
    not_yet_run,
    cycle,
    bad_template,
    unknown_function,
    undeclared_variable,
    nested_initialize_variable,
    terminate_in_loop,
    response_without_http,
    duplicate_name,
    bad_duration,
    out_of_range,
    unknown_connector,
    unknown_operation,
    undeclared_connection,
    unsupported_placeholder,
    two_errors,
);

#[test]
fn every_broken_fixture_has_a_snapshot_test() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures().join("broken"))
        .map(|dir| dir.flatten().filter_map(|e| Some(e.path().file_stem()?.to_str()?.to_string())).collect())
        .unwrap_or_default();
    let tested: BTreeSet<String> = BROKEN.iter().map(|s| s.to_string()).collect();
    assert_eq!(on_disk, tested);
}

#[test]
fn one_bad_key_in_two_actions_gives_two_positioned_diagnostics() {
    let diagnostics = broken("two_errors");
    let found: Vec<(&str, usize, usize)> = diagnostics.iter().map(|d| (d.code, d.line, d.column)).collect();
    assert_eq!(found, vec![("unknown_key", 7, 5), ("unknown_key", 11, 5)]);
    let hints: Vec<_> = diagnostics.iter().filter_map(|d| d.hint.as_deref()).collect();
    assert_eq!(hints, vec!["did you mean `description`?", "did you mean `timeout`?"]);
}

#[test]
fn decode_and_compile_problems_are_reported_together() {
    let text = "name: mixed\ntrigger: {type: manual}\nactions:\n  a:\n    type: compose\n    inputs: 1\n    then: {}\n  b:\n    type: compose\n    inputs: \"{{ body('zzz') }}\"\n";
    let diagnostics = flow::load_str(text).err().unwrap_or_default();
    let codes: Vec<&str> = diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, vec!["unknown_key", "unknown_action"]);
}

#[test]
fn diagnostics_serialize_for_json_output() {
    let diagnostics = broken("unknown_key");
    let json = serde_json::to_value(&diagnostics).unwrap_or_default();
    assert_eq!(json[0]["code"], "unknown_key");
    assert_eq!(json[0]["file"], "broken/unknown_key.yaml");
    assert_eq!(json[0]["line"], 9);
    assert_eq!(json[0]["column"], 5);
    assert_eq!(json[0]["severity"], "error");
    assert_eq!(json[0]["snippet"], "    run_afer: {first: [succeeded]}");
}

fn valid_fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("valid"))
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn valid_fixtures_compile_without_diagnostics() {
    let files = valid_fixtures();
    assert!(files.len() >= 3);
    for file in files {
        let (flow, diagnostics) = flow::check_file(&file);
        assert!(diagnostics.is_empty(), "{}:\n{diagnostics}", file.display());
        let flow = flow.unwrap_or_else(|| panic!("{} did not compile", file.display()));
        assert_eq!(flow.source.as_deref(), Some(file.as_path()));
    }
}

#[test]
fn compiled_flow_keeps_run_after_and_nesting() {
    let flow = flow::load_file(&fixtures().join("valid/try_catch.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = flow.root.actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, vec!["init_errors", "try", "catch", "summary"]);
    assert!(flow.root.actions[0].run_after.is_empty());
    assert_eq!(flow.root.actions[1].run_after[0].action, 0);
    assert_eq!(flow.root.actions[1].run_after[0].statuses, StatusSet::SUCCEEDED);
    let catch = &flow.root.actions[2].run_after[0];
    assert_eq!(catch.action, 1);
    assert_eq!(catch.statuses, StatusSet { failed: true, timed_out: true, ..StatusSet::default() });
    assert_eq!(flow.root.graph.edge_count(), 3);
    let ActionKind::Scope { actions } = &flow.root.actions[1].kind else { panic!("try is a scope") };
    assert_eq!(actions.actions[0].name, "fetch");
    assert_eq!(actions.actions[0].timeout, Some(std::time::Duration::from_secs(30)));
    assert_eq!(
        actions.actions[0].retry,
        flow::RetryPolicy::Fixed { count: 2, interval: std::time::Duration::from_secs(1) }
    );
}

#[test]
fn switch_case_keys_keep_their_yaml_type() {
    let flow = flow::load_file(&fixtures().join("valid/http_reply.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let ActionKind::Switch { cases, default, .. } = &flow.root.actions[0].kind else {
        panic!("route is a switch")
    };
    let values: Vec<&serde_json::Value> = cases.iter().map(|(v, _)| v).collect();
    assert_eq!(values, vec![&serde_json::json!("referral"), &serde_json::json!(1)]);
    assert_eq!(default.actions[0].name, "reject");
    assert_eq!(flow.trigger.kind, "http");
    assert_eq!(flow.trigger.settings["method"], "POST");
}

#[test]
fn an_until_condition_may_read_the_loop_body_but_an_if_condition_may_not() {
    let flow = |kind: &str| {
        format!(
            "name: x\ntrigger: {{type: manual}}\nactions:\n  loop:\n    type: {kind}\n    condition: \"{{{{ body('inner') }}}}\"\n    {}:\n      inner: {{type: compose, inputs: 1}}\n",
            if kind == "if" { "then" } else { "actions" }
        )
    };
    assert!(flow::load_str(&flow("until")).is_ok());
    let diagnostics = flow::load_str(&flow("if")).err().unwrap_or_default();
    assert_eq!(diagnostics.iter().map(|d| d.code).collect::<Vec<_>>(), vec!["not_yet_run"]);
}

#[test]
fn reading_an_action_nested_in_two_loops_from_outside_is_an_error() {
    let flow = |inner_kind: &str| {
        format!(
            "name: x\ntrigger: {{type: manual}}\nactions:\n  outer:\n    type: foreach\n    items: [1]\n    actions:\n      inner:\n        type: {inner_kind}\n        items: [2]\n        actions:\n          deep: {{type: compose, inputs: 1}}\n  after:\n    type: compose\n    inputs: \"{{{{ body('deep') }}}}\"\n"
        )
    };
    assert!(flow::load_str(&flow("scope").replace("        items: [2]\n", "")).is_ok());
    let diagnostics = flow::load_str(&flow("foreach")).err().unwrap_or_default();
    assert_eq!(diagnostics.iter().map(|d| d.code).collect::<Vec<_>>(), vec!["nested_loop_reference"]);
}

#[test]
fn variable_updates_in_parallel_iterations_are_a_warning_not_an_error() {
    let text = "name: x\ntrigger: {type: manual}\nactions:\n  init: {type: initialize_variable, name: n, variable_type: integer, value: 0}\n  each:\n    type: foreach\n    items: [1, 2]\n    concurrency: 5\n    actions:\n      bump: {type: increment_variable, name: n}\n";
    let (flow, diagnostics) = flow::check_str(text, None);
    assert!(flow.is_some());
    let found: Vec<_> = diagnostics.iter().map(|d| (d.severity, d.code, d.line)).collect();
    assert_eq!(found, vec![(flow::Severity::Warning, "parallel_variables", 8)]);
    assert!(flow::load_str(&text.replace("concurrency: 5", "concurrency: 1")).is_ok());
    assert!(flow::check_str(&text.replace("concurrency: 5", "concurrency: 1"), None).1.is_empty());
}

// ---- schema ------------------------------------------------------------------------------

#[test]
fn checked_in_schema_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/flow.schema.json");
    let generated = flow::schema::render();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "schemas/flow.schema.json is out of date with the flow types; regenerate it with\n    UPDATE_SCHEMA=1 cargo test --test flow checked_in_schema_matches_the_types"
    );
}

#[test]
fn schema_and_loader_accept_the_same_keys_per_action_type() {
    let schema = flow::schema::flow_schema();
    let variants = schema["definitions"]["Action"]["oneOf"].as_array().cloned().unwrap_or_default();
    let mut types = BTreeSet::new();
    for variant in &variants {
        let type_name = variant["properties"]["type"]["const"].as_str().unwrap_or("acme.op").to_string();
        let in_schema: BTreeSet<String> =
            variant["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
        let in_loader: BTreeSet<String> = flow::action_keys(&type_name)
            .unwrap_or_else(|| panic!("loader does not know `{type_name}`"))
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(in_schema, in_loader, "keys of `{type_name}`");
        types.insert(type_name);
    }
    let builtins: BTreeSet<String> = flow::BUILTIN_ACTION_TYPES.iter().map(|s| s.to_string()).collect();
    assert_eq!(types.len(), builtins.len() + 1);
    assert!(builtins.is_subset(&types));
}

// ---- robustness --------------------------------------------------------------------------

const YAML_PIECES: &[&str] = &[
    "name: x\n",
    "trigger: {type: manual}\n",
    "actions:\n",
    "  a:\n",
    "    type: compose\n",
    "    inputs: 1\n",
    "    run_after: {a: [failed]}\n",
    "{{ body('a') }}",
    "[",
    "]",
    "{",
    "}",
    ":",
    "- ",
    "&x ",
    "*x",
    "'",
    "\"",
    "\t",
    "\n",
    "  ",
    "|\n",
    ">-\n",
    "---\n",
    "!!str ",
    "? ",
    "#",
    "%YAML 1.2\n",
    "\u{feff}",
    "é",
    "{{",
    "}}",
];

fn valid_texts() -> Vec<String> {
    valid_fixtures().iter().map(|p| read(p)).collect()
}

/// Every reported position is inside the text, and the snippet is the line it names.
fn check_positions(text: &str, diagnostics: &Diagnostics) {
    let lines: Vec<&str> = text.split('\n').collect();
    for d in diagnostics.iter() {
        assert!(d.line >= 1 && d.line <= lines.len() + 1, "line {} of {}: {d}", d.line, lines.len());
        if let Some(snippet) = &d.snippet {
            assert_eq!(snippet, lines[d.line - 1].trim_end_matches('\r'));
        }
        let _ = d.to_string();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn loader_never_panics_on_random_yaml(pieces in prop::collection::vec(prop::sample::select(YAML_PIECES), 0..40)) {
        let text: String = pieces.concat();
        match flow::check_str(&text, Some("random.yaml")) {
            (Some(_), diagnostics) => prop_assert!(!diagnostics.has_errors()),
            (None, diagnostics) => {
                prop_assert!(diagnostics.has_errors());
                check_positions(&text, &diagnostics);
            }
        }
    }

    #[test]
    fn loader_never_panics_on_mutated_valid_flows(
        which in 0usize..3,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, prop::sample::select(YAML_PIECES)), 1..6),
    ) {
        let texts = valid_texts();
        let mut text = texts[which % texts.len()].clone();
        for (at, op, piece) in edits {
            let chars: Vec<char> = text.chars().collect();
            let i = at.index(chars.len() + 1);
            let (head, tail): (String, String) = (chars[..i].iter().collect(), chars[i..].iter().collect());
            text = match op {
                0 => format!("{head}{piece}{tail}"),
                1 => format!("{head}{}", tail.chars().skip(piece.len()).collect::<String>()),
                2 => format!("{head}{}", tail.replacen(|c: char| c.is_alphanumeric(), "", 1)),
                _ => {
                    let mut lines: Vec<&str> = text.lines().collect();
                    let n = at.index(lines.len().max(1));
                    if n + 1 < lines.len() { lines.swap(n, n + 1); }
                    lines.join("\n")
                }
            };
        }
        let (_, diagnostics) = flow::check_str(&text, None);
        check_positions(&text, &diagnostics);
    }
}

// ---- the commands ------------------------------------------------------------------------

fn coflow(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_coflow"))
        .args(args)
        .current_dir(fixtures())
        .output()
        .unwrap_or_else(|e| panic!("cannot run coflow: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    (output.status.code().unwrap_or(-1), stdout + &String::from_utf8_lossy(&output.stderr))
}

#[test]
fn validate_exits_zero_for_a_folder_of_valid_flows() {
    let (code, out) = coflow(&["validate", "valid"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 flow files checked: 3 valid, 0 invalid (0 errors, 0 warnings)"), "{out}");
}

#[test]
fn validate_exits_one_and_lists_every_problem() {
    let (code, out) =
        coflow(&["validate", "valid/loops.yaml", "broken/two_errors.yaml", "broken/cycle.yaml"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("broken/two_errors.yaml:7:5"), "{out}");
    assert!(out.contains("broken/two_errors.yaml:11:5"), "{out}");
    assert!(out.contains("forms a cycle"), "{out}");
    assert!(out.contains("3 flow files checked: 1 valid, 2 invalid (3 errors, 0 warnings)"), "{out}");
}

#[test]
fn validate_skips_mappings_and_unit_tests_in_folders() {
    let dir = std::env::temp_dir().join(format!("coflow-validate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("mappings")).unwrap_or_default();
    std::fs::copy(fixtures().join("valid/loops.yaml"), dir.join("loops.yaml")).unwrap_or_default();
    std::fs::write(dir.join("mappings/referral.yaml"), "target: Opportunity\nfields: {}\n")
        .unwrap_or_default();
    std::fs::write(dir.join("loops.test.yaml"), "cases: []\n").unwrap_or_default();
    let (code, out) = coflow(&["validate", dir.to_str().unwrap_or_default()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 flow file checked: 1 valid"), "{out}");
}

#[test]
fn validate_reports_missing_paths() {
    let (code, out) = coflow(&["validate", "does/not/exist.yaml"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no such file or folder"), "{out}");
}

#[test]
fn validate_json_lists_files_and_diagnostics() {
    let (code, out) = coflow(&["validate", "--format", "json", "broken/two_errors.yaml", "valid/loops.yaml"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["valid"], false);
    assert_eq!(report["summary"]["errors"], 2);
    assert_eq!(report["files"][0]["diagnostics"][1]["line"], 11);
    assert_eq!(report["files"][1]["valid"], true);
}

#[test]
fn graph_draws_nested_containers_and_labelled_edges() {
    let (code, mermaid) = coflow(&["graph", "valid/try_catch.yaml"]);
    assert_eq!(code, 0, "{mermaid}");
    assert!(mermaid.starts_with("flowchart TD\n"));
    assert!(mermaid.contains("subgraph a2 [\"try (scope)\"]"), "{mermaid}");
    assert!(mermaid.contains("a2 -->|\"failed, timed_out\"| a3"), "{mermaid}");
    let (code, dot) = coflow(&["graph", "--format", "dot", "valid/http_reply.yaml"]);
    assert_eq!(code, 0, "{dot}");
    assert!(dot.contains("subgraph cluster_a1 {"), "{dot}");
    assert!(dot.contains("label=\"case 1\""), "{dot}");
    assert!(dot.contains("a2 -> a3 [label=\"succeeded, skipped\", ltail=\"cluster_a2\"]"), "{dot}");
}

#[test]
fn graph_of_a_broken_flow_prints_its_diagnostics() {
    let (code, out) = coflow(&["graph", "broken/cycle.yaml"]);
    assert_eq!(code, 1);
    assert!(out.contains("forms a cycle"), "{out}");
}
