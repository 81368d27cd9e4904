//! Showing test outcomes: readable text with a diff per unmet value, or JUnit XML for CI.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::expect::Failure;
use super::{CaseReport, FileOutcome, FileReport};

/// Values whose JSON is at most this long are shown inline rather than as a diff.
const INLINE_WIDTH: usize = 60;

/// Lines of unchanged context shown around each change of a long diff.
const DIFF_CONTEXT: usize = 3;

/// Values up to this many lines of pretty JSON are shown whole in a diff.
const WHOLE_DIFF_LINES: usize = 40;

/// Totals over a set of file reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Test files.
    pub files: usize,
    /// Files that did not load.
    pub broken: usize,
    /// Cases run.
    pub cases: usize,
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
}

impl Summary {
    /// Adds up `reports`.
    pub fn of(reports: &[FileReport]) -> Self {
        let mut summary = Summary { files: reports.len(), ..Summary::default() };
        for report in reports {
            match &report.outcome {
                FileOutcome::Broken(_) => summary.broken += 1,
                FileOutcome::Ran { cases, .. } => {
                    summary.cases += cases.len();
                    summary.passed += cases.iter().filter(|c| c.passed()).count();
                    summary.failed += cases.iter().filter(|c| !c.passed()).count();
                }
            }
        }
        summary
    }
}

/// The text report: per file a header, per case `✔`/`✘`, its name and duration, and under a
/// failed case each unmet expectation, with a diff when values differ.
pub fn text(reports: &[FileReport], total: Duration) -> String {
    let mut out = String::new();
    for report in reports {
        let path = report.path.display();
        match &report.outcome {
            FileOutcome::Broken(diagnostics) => {
                let _ = writeln!(out, "{path}: cannot run, the test file has errors\n\n{diagnostics}\n");
            }
            FileOutcome::Ran { flow, cases } => {
                let _ = writeln!(out, "{path} (flow {flow})");
                for case in cases {
                    case_text(case, &mut out);
                }
                let _ = writeln!(out);
            }
        }
    }
    let summary = Summary::of(reports);
    let mut line = format!("{} passed, {} failed", summary.passed, summary.failed);
    if summary.broken > 0 {
        let _ = write!(line, ", {} test file(s) with errors", summary.broken);
    }
    let _ =
        writeln!(out, "{line} ({} case(s) in {} file(s), {})", summary.cases, summary.files, human(total));
    out
}

fn case_text(case: &CaseReport, out: &mut String) {
    let mark = if case.passed() { '✔' } else { '✘' };
    let _ = writeln!(out, "  {mark} {} ({})", case.name, human(case.duration));
    for failure in &case.failures {
        for (i, line) in failure_text(failure).lines().enumerate() {
            let bullet = if i == 0 { "- " } else { "  " };
            let _ = writeln!(out, "      {bullet}{line}");
        }
    }
}

/// One unmet expectation: its message, then `expected …, got …` for short values or a diff.
pub fn failure_text(failure: &Failure) -> String {
    let Some((expected, actual)) = &failure.values else { return failure.message.clone() };
    let expected_line = compact(expected);
    let actual_line = compact(actual);
    if expected_line.chars().count() <= INLINE_WIDTH && actual_line.chars().count() <= INLINE_WIDTH {
        return format!("{}: expected {expected_line}, got {actual_line}", failure.message);
    }
    let diff = diff(expected, actual);
    format!("{}: not as expected (- expected, + actual):\n{}", failure.message, diff.trim_end())
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A line diff of the two values' pretty JSON, with a little context around each change.
pub fn diff(expected: &Value, actual: &Value) -> String {
    let expected = serde_json::to_string_pretty(expected).unwrap_or_default();
    let actual = serde_json::to_string_pretty(actual).unwrap_or_default();
    let diff = TextDiff::from_lines(&expected, &actual);
    let longest = expected.lines().count().max(actual.lines().count());
    let context = if longest <= WHOLE_DIFF_LINES { longest } else { DIFF_CONTEXT };
    let mut out = String::new();
    for (i, group) in diff.grouped_ops(context).iter().enumerate() {
        if i > 0 {
            out.push_str("  ⋮\n");
        }
        let mut removed: Vec<&str> = Vec::new();
        for op in group {
            for change in diff.iter_changes(op) {
                let line = change.value().trim_end_matches('\n');
                let sign = match change.tag() {
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                    ChangeTag::Equal => ' ',
                };
                let _ = writeln!(out, "{sign} {line}");
                match change.tag() {
                    ChangeTag::Delete => removed.push(line),
                    ChangeTag::Insert if removed.len() == 1 => {
                        out.push_str(&caret(removed[0], line));
                        removed.clear();
                    }
                    _ => removed.clear(),
                }
            }
        }
    }
    out
}

/// A line pointing at the first character where a changed line differs from the line it
/// replaced, so a long line's one-word change is found at a glance.
fn caret(before: &str, after: &str) -> String {
    let same = before.chars().zip(after.chars()).take_while(|(a, b)| a == b).count();
    format!("  {}^\n", " ".repeat(same))
}

/// JUnit XML: one `testsuite` per file, one `testcase` per case; a file that does not load is
/// a suite with one `error`.
pub fn junit(reports: &[FileReport], total: Duration) -> String {
    let summary = Summary::of(reports);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"coflow test\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{}\">",
        summary.cases + summary.broken,
        summary.failed,
        summary.broken,
        seconds(total)
    );
    for report in reports {
        let path = xml(&report.path.display().to_string());
        match &report.outcome {
            FileOutcome::Broken(diagnostics) => {
                let _ = writeln!(
                    out,
                    "  <testsuite name=\"{path}\" tests=\"1\" failures=\"0\" errors=\"1\" time=\"0.000\">"
                );
                let _ = writeln!(out, "    <testcase classname=\"{path}\" name=\"load\" time=\"0.000\">");
                let _ = writeln!(
                    out,
                    "      <error message=\"the test file has errors\">{}</error>",
                    xml(&diagnostics.to_string())
                );
                let _ = writeln!(out, "    </testcase>\n  </testsuite>");
            }
            FileOutcome::Ran { flow, cases } => suite_xml(&path, flow, cases, &mut out),
        }
    }
    out.push_str("</testsuites>\n");
    out
}

fn suite_xml(path: &str, flow: &str, cases: &[CaseReport], out: &mut String) {
    let failed = cases.iter().filter(|c| !c.passed()).count();
    let time: Duration = cases.iter().map(|c| c.duration).sum();
    let _ = writeln!(
        out,
        "  <testsuite name=\"{path}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" time=\"{}\">",
        cases.len(),
        seconds(time)
    );
    for case in cases {
        let head = format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
            xml(flow),
            xml(&case.name),
            seconds(case.duration)
        );
        if case.passed() {
            let _ = writeln!(out, "{head}/>");
            continue;
        }
        let details: Vec<String> = case.failures.iter().map(failure_text).collect();
        let message = format!("{} expectation(s) not met", case.failures.len());
        let _ = writeln!(out, "{head}>");
        let _ = writeln!(out, "      <failure message=\"{message}\">{}</failure>", xml(&details.join("\n")));
        let _ = writeln!(out, "    </testcase>");
    }
    let _ = writeln!(out, "  </testsuite>");
}

/// Text made safe for XML attributes and content; characters XML 1.0 forbids are dropped.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn seconds(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64())
}

/// A duration as people read it: `850µs`, `12ms`, `1.4s`.
pub fn human(duration: Duration) -> String {
    if duration < Duration::from_millis(1) {
        format!("{}µs", duration.as_micros())
    } else if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_values_are_shown_inline_and_long_ones_as_a_diff() {
        let short = Failure { message: "variable `n`".into(), values: Some((json!(1), json!(2))) };
        assert_eq!(failure_text(&short), "variable `n`: expected 1, got 2");
        let expected =
            json!({"Name": "Fabrikam - Azure migration", "StageName": "Qualification", "Amount": 120000});
        let actual =
            json!({"Name": "Fabrikam - Azure migration", "StageName": "Prospecting", "Amount": 120000});
        let long = Failure { message: "action `Create`: inputs".into(), values: Some((expected, actual)) };
        let text = failure_text(&long);
        assert!(
            text.starts_with("action `Create`: inputs: not as expected (- expected, + actual):\n  {\n"),
            "{text}"
        );
        let changed = "-   \"StageName\": \"Qualification\",\n+   \"StageName\": \"Prospecting\",\n";
        let caret = format!("  {}^\n", " ".repeat("  \"StageName\": \"".len()));
        assert!(text.contains(&format!("{changed}{caret}")), "{text}");
    }

    #[test]
    fn xml_text_is_escaped() {
        assert_eq!(xml("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
