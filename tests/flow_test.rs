//! `coflow test`: test files that pass, fail and do not load, their reports (snapshots), the
//! JUnit output, exit codes, the schema, and the unit tests shipped with the co-sell flows.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use coflow::testing::{self, FileOutcome, FileReport};

/// Test fixtures, relative to the package root (the tests' working folder), so paths in
/// reports and snapshots are the same on every machine.
const FIXTURES: &str = "tests/fixtures/flow_test";

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn coflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coflow"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the coflow binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Durations vary from run to run; snapshots show them as `…`.
fn without_timings(text: &str) -> String {
    let durations = regex::Regex::new(r"\(\d+(\.\d+)?(µs|ms|s)\)").expect("valid regex");
    let totals = regex::Regex::new(r", \d+(\.\d+)?(µs|ms|s)\)").expect("valid regex");
    let seconds = regex::Regex::new(r#"time="\d+\.\d+""#).expect("valid regex");
    let text = durations.replace_all(text, "(…)");
    let text = totals.replace_all(&text, ", …)");
    seconds.replace_all(&text, r#"time="…""#).into_owned()
}

fn cases(report: &FileReport) -> &[testing::CaseReport] {
    match &report.outcome {
        FileOutcome::Ran { cases, .. } => cases,
        FileOutcome::Broken(diagnostics) => panic!("{} does not load:\n{diagnostics}", report.path.display()),
    }
}

// ---- passing and failing files ----------------------------------------------------------

#[test]
fn every_case_of_the_passing_file_passes() {
    let report = testing::run_path(&fixture("passing.test.yaml"));
    let cases = cases(&report);
    assert_eq!(cases.len(), 3);
    for case in cases {
        assert!(case.passed(), "{}: {:#?}", case.name, case.failures);
    }
}

#[test]
fn the_failing_file_reports_every_unmet_expectation_with_diffs() {
    let report = testing::run_path(&fixture("failing.test.yaml"));
    let cases = cases(&report);
    assert!(cases[0].passed(), "{:#?}", cases[0].failures);
    assert_eq!(cases[1].failures.len(), 10, "{:#?}", cases[1].failures);
    let text = testing::report::text(std::slice::from_ref(&report), Default::default());
    insta::assert_snapshot!("failing_report", without_timings(&text));
}

#[test]
fn an_unmocked_call_fails_the_case_and_never_leaves_the_process() {
    let report = testing::run_path(&fixture("failing.test.yaml"));
    let failures = &cases(&report)[1].failures;
    assert_eq!(
        failures[0].message,
        "action `Notify` calls http but has no mock; add a mock or `sandbox: true`"
    );
    assert!(
        failures.iter().any(|f| f.message.contains("got failed (NotMocked:")),
        "the action fails instead of calling hooks.example.com: {failures:#?}"
    );
}

// ---- files that do not load -------------------------------------------------------------

fn diagnostics(name: &str) -> String {
    match testing::load_file(&fixture(name)) {
        Ok(_) => panic!("{name} should not load"),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

#[test]
fn a_misspelt_key_is_shown_where_it_is_written() {
    insta::assert_snapshot!("broken_shape", diagnostics("broken-shape.test.yaml"));
}

#[test]
fn every_name_the_flow_does_not_know_is_reported_at_once() {
    let text = diagnostics("broken-checks.test.yaml");
    for code in [
        "unknown_parameter",
        "bad_time",
        "unknown_action",
        "not_a_call",
        "bad_mock",
        "bad_address",
        "bad_jsonpath",
        "unknown_variable",
        "duplicate_case",
    ] {
        assert!(text.contains(&format!("error[{code}]")), "no {code} in:\n{text}");
    }
    insta::assert_snapshot!("broken_checks", text);
}

#[test]
fn a_test_of_a_missing_flow_points_at_the_flow_key() {
    let dir = std::env::temp_dir().join(format!("coflow-flow-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("lost.test.yaml");
    std::fs::write(&file, "flow: nowhere.yaml\ncases: []\n").expect("write");
    let text = testing::load_file(&file).err().map(|d| d.to_string()).unwrap_or_default();
    assert!(text.contains("error[flow]: there is no flow at"), "{text}");
    assert!(text.contains("lost.test.yaml:1:7"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- the command ------------------------------------------------------------------------

#[test]
fn exit_codes_tell_passing_failing_and_broken_apart() {
    let passing = fixture("passing.test.yaml");
    let failing = fixture("failing.test.yaml");
    let broken = fixture("broken-shape.test.yaml");
    let code = |paths: &[&Path]| {
        let args: Vec<&str> =
            std::iter::once("test").chain(paths.iter().filter_map(|p| p.to_str())).collect();
        coflow(&args).status.code()
    };
    assert_eq!(code(&[&passing]), Some(0));
    assert_eq!(code(&[&passing, &failing]), Some(1));
    assert_eq!(code(&[&passing, &failing, &broken]), Some(2));
    assert_eq!(code(&[Path::new("tests/fixtures/flow_test/none.test.yaml")]), Some(2));
}

#[test]
fn a_summary_line_per_case_with_its_duration() {
    let output = coflow(&["test", "tests/fixtures/flow_test/passing.test.yaml"]);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("  ✔ ")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    let duration = regex::Regex::new(r"\(\d+(\.\d+)?(µs|ms|s)\)$").expect("valid regex");
    assert!(lines.iter().all(|l| duration.is_match(l)), "{text}");
    assert!(text.contains("\n3 passed, 0 failed (3 case(s) in 1 file(s), "), "{text}");
}

#[test]
fn junit_output_has_a_suite_per_file_and_the_failures() {
    let output = coflow(&[
        "test",
        "--format",
        "junit",
        "tests/fixtures/flow_test/passing.test.yaml",
        "tests/fixtures/flow_test/failing.test.yaml",
        "tests/fixtures/flow_test/broken-shape.test.yaml",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let xml = stdout(&output);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"), "{xml}");
    assert!(xml.contains(r#"tests="6" failures="1" errors="1""#), "{xml}");
    assert_eq!(xml.matches("<testsuite ").count(), 3, "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 6, "{xml}");
    assert!(xml.contains("<failure message=\"10 expectation(s) not met\">"), "{xml}");
    assert!(
        xml.contains("&quot;Email&quot;: &quot;grace.hopper@example.com&quot;"),
        "diffs are escaped: {xml}"
    );
    assert!(xml.contains("<error message=\"the test file has errors\">"), "{xml}");
    insta::assert_snapshot!("junit", without_timings(&xml));
}

#[test]
fn junit_can_be_written_to_a_file_beside_the_text_report() {
    let path = std::env::temp_dir().join(format!("coflow-junit-{}.xml", std::process::id()));
    let path_text = path.to_string_lossy().into_owned();
    let output = coflow(&["test", "--junit", &path_text, "tests/fixtures/flow_test/passing.test.yaml"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("3 passed, 0 failed"));
    let xml = std::fs::read_to_string(&path).expect("the JUnit file is written");
    assert!(xml.contains(r#"tests="3" failures="0" errors="0""#), "{xml}");
    let _ = std::fs::remove_file(&path);
}

// ---- the schema ------------------------------------------------------------------------------

#[test]
fn checked_in_schema_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/flow-test.schema.json");
    let generated = testing::schema::render();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "schemas/flow-test.schema.json is out of date with the test file types; regenerate it with\n    UPDATE_SCHEMA=1 cargo test --test flow_test checked_in_schema_matches_the_types"
    );
}

fn yaml_as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut found = Vec::new();
    let node = coflow::flow::yaml::parse(&text, &mut found).expect("parses");
    node.to_json()
}

#[test]
fn the_schema_accepts_every_shipped_test_file_and_refuses_a_misspelt_key() {
    let validator = jsonschema::validator_for(&testing::schema::test_schema()).expect("the schema compiles");
    let mut files = test_files(Path::new("flows"));
    files.push(fixture("passing.test.yaml"));
    files.push(fixture("failing.test.yaml"));
    for file in files {
        let errors: Vec<String> =
            validator.iter_errors(&yaml_as_json(&file)).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
    assert!(!validator.is_valid(&yaml_as_json(&fixture("broken-shape.test.yaml"))));
}

// ---- the co-sell flows' own tests ------------------------------------------------------------

fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.retain(|p| p.to_string_lossy().ends_with(".test.yaml"));
    files.sort();
    files
}

#[test]
fn every_cosell_flow_has_unit_tests_and_they_pass() {
    let flows = [
        "partner-center-webhook-registration",
        "create-cosell-referral-sf-to-pc",
        "pc-cosell-referral-updates-to-sf",
        "pc-to-sf",
        "sf-to-pc",
        "sf-opportunity-to-pc",
        "sf-microsoft-solutions-to-pc",
        "sf-leads-to-pc",
    ];
    for flow in flows {
        let path = Path::new("flows").join(format!("{flow}.test.yaml"));
        assert!(path.exists(), "{} is missing", path.display());
        let report = testing::run_path(&path);
        let cases = cases(&report);
        assert!(cases.len() >= 3, "{flow}: only {} case(s)", cases.len());
        let failed: Vec<String> =
            cases.iter().filter(|c| !c.passed()).map(|c| format!("{}: {:#?}", c.name, c.failures)).collect();
        assert!(failed.is_empty(), "{flow}:\n{}", failed.join("\n"));
    }
}
