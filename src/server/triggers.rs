//! What starts each flow when it runs as a service: the trigger of a flow, read into a plan the
//! HTTP routes and the scheduler act on.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use crate::connectors::salesforce::poll::{PollOn, PollSpec};
use crate::flow::{Flow, parse_duration};

/// Default interval of a `salesforce.poll` trigger without `every`.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// How a flow is started.
#[derive(Debug, Clone)]
pub enum TriggerPlan {
    /// Only by the admin API or `coflow run`.
    Manual,
    /// By a request to `/hooks/<flow>`.
    Http {
        /// Accepted method.
        method: String,
    },
    /// By a signed Partner Center event posted to `/hooks/<flow>`.
    PartnerCenterWebhook {
        /// Connection (in `coflow.yaml`) whose verification settings apply.
        connection: String,
        /// Event names the flow takes; others are acknowledged and ignored.
        events: Vec<String>,
    },
    /// On a schedule.
    Schedule {
        /// When it fires.
        schedule: Schedule,
        /// Whether each run gets the window since the last succeeded run (`window: true`).
        window: bool,
    },
    /// By new or changed Salesforce records, found by polling.
    SalesforcePoll {
        /// Connection (in `coflow.yaml`) to poll with.
        connection: String,
        /// What to ask for.
        spec: PollSpec,
        /// Time between polls.
        every: Duration,
    },
}

/// When a scheduled flow fires.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// At a fixed interval.
    Every(Duration),
    /// At the times a cron expression names, read in a time zone.
    Cron {
        /// The parsed expression.
        cron: Box<croner::Cron>,
        /// The zone its times are read in.
        zone: jiff::tz::TimeZone,
    },
}

/// A trigger the server cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("flow `{flow}`: trigger {kind}: {message}")]
pub struct TriggerError {
    /// The flow.
    pub flow: String,
    /// The trigger type.
    pub kind: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl TriggerPlan {
    /// Reads the trigger of `flow`.
    pub fn of(flow: &Flow) -> Result<Self, TriggerError> {
        let trigger = &flow.trigger;
        let error =
            |message: String| TriggerError { flow: flow.name.clone(), kind: trigger.kind.clone(), message };
        let text = |key: &str| trigger.settings.get(key).and_then(Value::as_str).map(str::to_string);
        let connection = || -> Result<String, TriggerError> {
            let alias = trigger.connection.clone().ok_or_else(|| error("no connection alias".into()))?;
            flow.connections.get(&alias).cloned().ok_or_else(|| {
                error(format!("connection alias `{alias}` is not declared under `connections`"))
            })
        };
        match trigger.kind.as_str() {
            "manual" => Ok(TriggerPlan::Manual),
            "http" => Ok(TriggerPlan::Http { method: text("method").unwrap_or_else(|| "POST".into()) }),
            "recurrence" => schedule(&text("every"), &text("cron"), &text("time_zone"))
                .map(|schedule| TriggerPlan::Schedule { schedule, window: has_window(flow) })
                .map_err(error),
            "partner_center.webhook" => {
                let events = match trigger.settings.get("events") {
                    None => Vec::new(),
                    Some(Value::Array(items)) => {
                        items.iter().filter_map(Value::as_str).map(str::to_string).collect()
                    }
                    Some(_) => return Err(error("`events` must be a list of event names".into())),
                };
                Ok(TriggerPlan::PartnerCenterWebhook { connection: connection()?, events })
            }
            "salesforce.poll" => {
                let object = text("object")
                    .ok_or_else(|| error("`object` is required, e.g. `object: Opportunity`".into()))?;
                let on = match text("on").as_deref() {
                    None | Some("created_or_modified") => PollOn::CreatedOrModified,
                    Some("created") => PollOn::Created,
                    Some(other) => {
                        return Err(error(format!(
                            "`on: {other}` is not `created` or `created_or_modified`"
                        )));
                    }
                };
                let mut spec = PollSpec::new(object, on);
                spec.condition = text("where");
                if let Some(Value::Array(fields)) = trigger.settings.get("fields") {
                    spec.fields = fields.iter().filter_map(Value::as_str).map(str::to_string).collect();
                }
                let every = match text("every") {
                    Some(every) => parse_duration(&every).map_err(|e| error(format!("`every`: {e}")))?,
                    None => DEFAULT_POLL_INTERVAL,
                };
                Ok(TriggerPlan::SalesforcePoll { connection: connection()?, spec, every })
            }
            other => Err(error(format!("`{other}` cannot be run by `coflow serve`"))),
        }
    }

    /// Whether requests to `/hooks/<flow>` start the flow.
    pub fn is_webhook(&self) -> bool {
        matches!(self, TriggerPlan::Http { .. } | TriggerPlan::PartnerCenterWebhook { .. })
    }
}

/// Whether `flow` has a sliding-window recurrence trigger: its runs read `windowStartTime` and
/// `windowEndTime`, and a succeeded run moves the window on.
pub fn has_window(flow: &Flow) -> bool {
    flow.trigger.kind == "recurrence" && flow.trigger.settings.get("window") == Some(&Value::Bool(true))
}

fn schedule(
    every: &Option<String>,
    cron: &Option<String>,
    zone: &Option<String>,
) -> Result<Schedule, String> {
    if let Some(every) = every {
        let every = parse_duration(every).map_err(|e| format!("`every`: {e}"))?;
        if every.is_zero() {
            return Err("`every` must be longer than zero".into());
        }
        return Ok(Schedule::Every(every));
    }
    let Some(pattern) = cron else { return Err("needs `every` or `cron`".into()) };
    let cron: croner::Cron = pattern.parse().map_err(|e| format!("cron `{pattern}`: {e}"))?;
    let zone = match zone {
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|e| format!("time zone `{name}`: {e}"))?,
        None => jiff::tz::TimeZone::UTC,
    };
    Ok(Schedule::Cron { cron: Box::new(cron), zone })
}

impl Schedule {
    /// The first firing time strictly after `after`, if the schedule has one.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Every(every) => after.checked_add(jiff::SignedDuration::try_from(*every).ok()?).ok(),
            Schedule::Cron { cron, zone } => {
                let civil = after.to_zoned_datetime(zone.clone()).datetime();
                let naive = to_naive(civil)?;
                let next = cron.find_next_occurrence(&naive, false).ok()?;
                let civil = from_naive(next)?;
                civil.to_zoned_datetime(zone.clone()).ok().map(|z| z.timestamp())
            }
        }
    }

    /// The latest firing time at or before `now`, walking from `last` (a time that fired).
    pub fn latest_due(&self, last: Timestamp, now: Timestamp) -> Option<Timestamp> {
        let mut due = None;
        let mut cursor = last;
        // Bounded, so a schedule far behind (a long outage) fires once, not thousands of times.
        for _ in 0..10_000 {
            match self.next_after(cursor) {
                Some(next) if next <= now => {
                    due = Some(next);
                    cursor = next;
                }
                _ => return due,
            }
        }
        if let Schedule::Every(every) = self {
            // Jump straight to the last slot before `now`.
            let step = every.as_micros().max(1) as i128;
            let behind = (now.as_microsecond() as i128 - last.as_microsecond() as i128) / step;
            let at = last.as_microsecond() as i128 + behind * step;
            return Timestamp::from_microsecond(at as i64).ok();
        }
        due
    }
}

fn to_naive(civil: jiff::civil::DateTime) -> Option<chrono::NaiveDateTime> {
    let date =
        chrono::NaiveDate::from_ymd_opt(i32::from(civil.year()), civil.month() as u32, civil.day() as u32)?;
    let time =
        chrono::NaiveTime::from_hms_opt(civil.hour() as u32, civil.minute() as u32, civil.second() as u32)?;
    Some(chrono::NaiveDateTime::new(date, time))
}

fn from_naive(naive: chrono::NaiveDateTime) -> Option<jiff::civil::DateTime> {
    use chrono::{Datelike, Timelike};
    jiff::civil::DateTime::new(
        i16::try_from(naive.year()).ok()?,
        i8::try_from(naive.month()).ok()?,
        i8::try_from(naive.day()).ok()?,
        i8::try_from(naive.hour()).ok()?,
        i8::try_from(naive.minute()).ok()?,
        i8::try_from(naive.second()).ok()?,
        0,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn plan(yaml: &str) -> Result<TriggerPlan, TriggerError> {
        let flow = crate::flow::load_str(yaml).unwrap_or_else(|d| panic!("{d}"));
        TriggerPlan::of(&flow)
    }

    #[test]
    fn every_fires_at_intervals_and_catches_up_once() {
        let schedule = Schedule::Every(Duration::from_secs(900));
        assert_eq!(schedule.next_after(at("2026-01-01T00:00:00Z")), Some(at("2026-01-01T00:15:00Z")));
        let due = schedule.latest_due(at("2026-01-01T00:00:00Z"), at("2026-01-01T01:07:00Z"));
        assert_eq!(due, Some(at("2026-01-01T01:00:00Z")), "four slots missed, the latest fires");
        assert_eq!(schedule.latest_due(at("2026-01-01T00:00:00Z"), at("2026-01-01T00:14:59Z")), None);
    }

    #[test]
    fn cron_is_read_in_its_time_zone() {
        let plan = plan(
            "name: c\ntrigger: {type: recurrence, cron: '0 6 * * 1-5', time_zone: Europe/Paris}\nactions:\n  A: {type: compose, inputs: 1}\n",
        )
        .unwrap();
        let TriggerPlan::Schedule { schedule, .. } = plan else { panic!("not a schedule") };
        // Friday 2026-01-02 06:00 in Paris is 05:00 UTC; the next is Monday the 5th.
        assert_eq!(schedule.next_after(at("2026-01-01T12:00:00Z")), Some(at("2026-01-02T05:00:00Z")));
        assert_eq!(schedule.next_after(at("2026-01-02T05:00:00Z")), Some(at("2026-01-05T05:00:00Z")));
        // Summer time: 06:00 in Paris is 04:00 UTC.
        assert_eq!(schedule.next_after(at("2026-07-01T12:00:00Z")), Some(at("2026-07-02T04:00:00Z")));
    }

    #[test]
    fn poll_triggers_resolve_their_connection() {
        let plan = plan(
            "name: p\nconnections: {sf: salesforce}\ntrigger: {type: salesforce.poll, connection: sf, object: Lead, on: created, where: \"IsConverted = false\", every: PT5M}\nactions:\n  A: {type: compose, inputs: 1}\n",
        )
        .unwrap();
        let TriggerPlan::SalesforcePoll { connection, spec, every } = plan else { panic!("not a poll") };
        assert_eq!(connection, "salesforce");
        assert_eq!(spec.object, "Lead");
        assert_eq!(spec.on, PollOn::Created);
        assert_eq!(spec.condition.as_deref(), Some("IsConverted = false"));
        assert_eq!(every, Duration::from_secs(300));
    }
}
