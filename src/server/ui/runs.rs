//! `/runs`: runs filtered by flow, status, time and text, newest first, a page at a time.

use std::sync::Arc;

use axum::extract::{Query, State as AxumState};
use jiff::{SignedDuration, Timestamp};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::view::RunRow;
use super::{UiResult, data, render};
use crate::server::State;
use crate::store::{RunFilter, RunStatus};

/// Runs on one page.
pub const PAGE_SIZE: u32 = 50;

/// Quick time ranges offered next to the explicit dates.
const RANGES: [(&str, &str, i64); 4] = [
    ("1h", "last hour", 1),
    ("24h", "last 24 hours", 24),
    ("7d", "last 7 days", 24 * 7),
    ("28d", "last 28 days", 24 * 28),
];

/// Query of `GET /runs`; every field may be empty (a submitted form sends them all).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RunsQuery {
    /// Flow name.
    pub flow: String,
    /// Run status.
    pub status: String,
    /// A quick range (`1h`, `24h`, `7d`, `28d`), used when `since` is empty.
    pub range: String,
    /// Created at or after: RFC 3339, or a `datetime-local` value read as UTC.
    pub since: String,
    /// Created before; same forms as `since`.
    pub until: String,
    /// Text in the inputs or the record.
    pub q: String,
    /// Cursor of the page.
    pub cursor: String,
    /// Page number, for display only.
    pub page: u32,
}

impl RunsQuery {
    /// The store filter this query asks for at `now`, or what is wrong with it.
    pub fn filter(&self, now: Timestamp) -> Result<RunFilter, String> {
        let status = match self.status.as_str() {
            "" => None,
            text => Some(RunStatus::parse(text).map_err(|_| format!("unknown status `{text}`"))?),
        };
        let range_start = RANGES
            .iter()
            .find(|(key, _, _)| *key == self.range)
            .and_then(|(_, _, hours)| now.checked_sub(SignedDuration::from_hours(*hours)).ok());
        let since = parse_time("from", &self.since)?.or(range_start);
        let until = parse_time("to", &self.until)?;
        Ok(RunFilter {
            flow: Some(self.flow.clone()).filter(|f| !f.is_empty()),
            status,
            since,
            until,
            text: Some(self.q.trim().to_string()).filter(|q| !q.is_empty()),
            limit: PAGE_SIZE,
            cursor: Some(self.cursor.clone()).filter(|c| !c.is_empty()),
        })
    }

    /// This query's address with another cursor and page number.
    fn with_page(&self, cursor: &str, page: u32) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("flow", self.flow.as_str()),
            ("status", &self.status),
            ("range", &self.range),
            ("since", &self.since),
            ("until", &self.until),
            ("q", &self.q),
            ("cursor", cursor),
        ] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        if page > 1 {
            query.append_pair("page", &page.to_string());
        }
        format!("/runs?{}", query.finish())
    }

    fn is_filtered(&self) -> bool {
        [&self.flow, &self.status, &self.range, &self.since, &self.until, &self.q]
            .iter()
            .any(|v| !v.is_empty())
    }
}

/// Reads `2026-01-31T08:00:00Z`, or `2026-01-31T08:00` (a `datetime-local` input) as UTC.
fn parse_time(label: &str, text: &str) -> Result<Option<Timestamp>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(Some(at));
    }
    text.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|civil| jiff::tz::TimeZone::UTC.to_timestamp(civil).ok())
        .map(Some)
        .ok_or_else(|| format!("`{label}` must be a time like 2026-01-31T08:00 (UTC)"))
}

/// `GET /runs`.
pub async fn list(AxumState(state): AxumState<Arc<State>>, Query(query): Query<RunsQuery>) -> UiResult {
    let now = state.store.now();
    let page = query.page.max(1);
    let (runs, next, problem) = match query.filter(now) {
        Ok(filter) => {
            let found = state.store.list_runs(filter).await?;
            let rows: Vec<RunRow> = found.runs.iter().map(|run| RunRow::of(run, now)).collect();
            (rows, found.next.map(|cursor| query.with_page(&cursor, page + 1)), None)
        }
        Err(problem) => (Vec::new(), None, Some(problem)),
    };
    let flows: Vec<String> = state.registry.snapshot().flows.keys().cloned().collect();
    let statuses: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
    let ranges: Vec<(&str, &str)> = RANGES.iter().map(|(key, label, _)| (*key, *label)).collect();
    let first = (page > 1).then(|| query.with_page("", 1));
    let values = context! {
        query => data(&query),
        runs => data(&runs),
        next,
        first,
        page_number => page,
        problem,
        flows,
        statuses,
        ranges,
        filtered => query.is_filtered(),
    };
    render(&state, "runs.html", "Runs", "runs", values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-31T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn an_empty_form_filters_nothing() {
        let filter = RunsQuery::default().filter(now()).unwrap();
        assert_eq!(filter, RunFilter { limit: PAGE_SIZE, ..RunFilter::default() });
    }

    #[test]
    fn form_values_become_a_store_filter() {
        let query = RunsQuery {
            flow: "orders".into(),
            status: "failed".into(),
            since: "2026-01-30T08:00".into(),
            until: "2026-01-31T10:00:00Z".into(),
            q: "  ACME ".into(),
            ..RunsQuery::default()
        };
        let filter = query.filter(now()).unwrap();
        assert_eq!(filter.flow.as_deref(), Some("orders"));
        assert_eq!(filter.status, Some(RunStatus::Failed));
        assert_eq!(filter.since, Some("2026-01-30T08:00:00Z".parse().unwrap()));
        assert_eq!(filter.until, Some("2026-01-31T10:00:00Z".parse().unwrap()));
        assert_eq!(filter.text.as_deref(), Some("ACME"));
    }

    #[test]
    fn a_quick_range_counts_back_from_now_unless_a_start_is_given() {
        let query = RunsQuery { range: "24h".into(), ..RunsQuery::default() };
        assert_eq!(query.filter(now()).unwrap().since, Some("2026-01-30T12:00:00Z".parse().unwrap()));
        let query =
            RunsQuery { range: "24h".into(), since: "2026-01-01T00:00:00Z".into(), ..RunsQuery::default() };
        assert_eq!(query.filter(now()).unwrap().since, Some("2026-01-01T00:00:00Z".parse().unwrap()));
    }

    #[test]
    fn bad_values_are_explained() {
        let query = RunsQuery { status: "broken".into(), ..RunsQuery::default() };
        assert!(query.filter(now()).unwrap_err().contains("unknown status `broken`"));
        let query = RunsQuery { since: "yesterday".into(), ..RunsQuery::default() };
        assert!(query.filter(now()).unwrap_err().contains("`from` must be a time"));
    }

    #[test]
    fn page_links_keep_the_filter() {
        let query = RunsQuery { flow: "a b".into(), q: "x&y".into(), ..RunsQuery::default() };
        assert_eq!(query.with_page("123.abc", 2), "/runs?flow=a+b&q=x%26y&cursor=123.abc&page=2");
        assert_eq!(query.with_page("", 1), "/runs?flow=a+b&q=x%26y");
    }
}
