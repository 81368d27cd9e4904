//! Small formatting helpers shared by the pages: times, durations, JSON, run rows.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::status::Badge;
use crate::store::RunSummary;

/// Longest pretty JSON shown inline; the full value stays available from the admin API.
pub const JSON_LIMIT: usize = 64 * 1024;

/// A time as shown: UTC to the second.
pub fn when(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time for `<time datetime>` and links.
pub fn iso(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// How long ago `at` was, roughly (`5 s ago`, `3 min ago`, `2 h ago`, `4 d ago`).
pub fn ago(at: Timestamp, now: Timestamp) -> String {
    let seconds = now.duration_since(at).as_secs().max(0);
    match seconds {
        0..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..86_400 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

/// Time between two instants, in a unit that suits it.
pub fn span(start: Timestamp, end: Timestamp) -> String {
    let duration = Duration::try_from(end.duration_since(start)).unwrap_or(Duration::ZERO);
    human(duration)
}

/// A duration in a unit that suits it (`340 ms`, `1.2 s`, `2 min 3 s`, `1 h 5 min`).
pub fn human(duration: Duration) -> String {
    let millis = duration.as_millis();
    match millis {
        0..1000 => format!("{millis} ms"),
        1000..60_000 => format!("{:.1} s", duration.as_secs_f64()),
        60_000..3_600_000 => format!("{} min {} s", millis / 60_000, millis / 1000 % 60),
        _ => format!("{} h {} min", millis / 3_600_000, millis / 60_000 % 60),
    }
}

/// A value as indented JSON, cut at [`JSON_LIMIT`] bytes with a note.
pub fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    if text.len() > JSON_LIMIT {
        let mut end = JSON_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n… (cut here; the whole value is in the admin API's /api/runs/{id})");
    }
    text
}

/// The message of a stored `{"code", "message"}` error.
pub fn error_text(error: &Value) -> String {
    let code = error.get("code").and_then(Value::as_str);
    let message = error.get("message").and_then(Value::as_str);
    match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (None, Some(message)) => message.to_string(),
        (Some(code), None) => code.to_string(),
        (None, None) => error.to_string(),
    }
}

/// One run in a table.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    /// Full id.
    pub id: String,
    /// First characters of the id, for narrow columns.
    pub short_id: String,
    /// Flow name.
    pub flow: String,
    /// Status.
    pub badge: Badge,
    /// Creation time, as shown.
    pub created: String,
    /// Creation time, ISO.
    pub created_iso: String,
    /// How long ago.
    pub ago: String,
    /// Run time when it ran.
    pub duration: Option<String>,
    /// Error of a failed run.
    pub error: Option<String>,
    /// The run it resubmits.
    pub resubmit_of: Option<String>,
}

impl RunRow {
    /// The row of a run summary at `now`.
    pub fn of(run: &RunSummary, now: Timestamp) -> RunRow {
        let id = run.id.to_string();
        let duration = match (run.started_at, run.ended_at) {
            (Some(start), Some(end)) => Some(span(start, end)),
            (Some(start), None) if !run.status.is_terminal() => Some(format!("{} so far", span(start, now))),
            _ => None,
        };
        RunRow {
            short_id: id.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect(),
            id,
            flow: run.flow.clone(),
            badge: Badge::for_run(run.status),
            created: when(run.created_at),
            created_iso: iso(run.created_at),
            ago: ago(run.created_at, now),
            duration,
            error: run.error.as_ref().map(error_text),
            resubmit_of: run.resubmit_of.map(|id| id.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(human(Duration::from_millis(340)), "340 ms");
        assert_eq!(human(Duration::from_millis(1234)), "1.2 s");
        assert_eq!(human(Duration::from_secs(123)), "2 min 3 s");
        assert_eq!(human(Duration::from_secs(3900)), "1 h 5 min");
    }

    #[test]
    fn long_json_is_cut_with_a_note() {
        let big = Value::String("x".repeat(JSON_LIMIT * 2));
        let text = pretty(&big);
        assert!(text.len() < JSON_LIMIT + 200);
        assert!(text.ends_with("/api/runs/{id})"));
        assert_eq!(pretty(&serde_json::json!({"a": 1})), "{\n  \"a\": 1\n}");
    }

    #[test]
    fn errors_read_as_code_and_message() {
        let error = serde_json::json!({"code": "Http503", "message": "warehouse closed"});
        assert_eq!(error_text(&error), "Http503: warehouse closed");
        assert_eq!(error_text(&serde_json::json!("odd")), "\"odd\"");
    }

    #[test]
    fn ages_round_down() {
        let now: Timestamp = "2026-01-31T12:00:00Z".parse().unwrap();
        let at = |s: &str| -> Timestamp { s.parse().unwrap() };
        assert_eq!(ago(at("2026-01-31T11:59:30Z"), now), "30 s ago");
        assert_eq!(ago(at("2026-01-31T11:30:00Z"), now), "30 min ago");
        assert_eq!(ago(at("2026-01-30T11:00:00Z"), now), "1 d ago");
    }
}
