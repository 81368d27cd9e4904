//! Stored field values and the Salesforce wire formats of dates and datetimes.

use std::cmp::Ordering;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::Value;

/// One stored field value, kept small because an org holds hundreds of thousands of records.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// No value (`null` on the wire).
    Null,
    /// A checkbox.
    Bool(bool),
    /// Any number (int, double, currency, percent).
    Num(f64),
    /// Text of any kind: strings, picklists, ids, emails.
    Str(Arc<str>),
    /// A calendar date.
    Date(Date),
    /// A UTC instant in milliseconds since the epoch.
    DateTime(i64),
}

impl Val {
    /// Whether the value is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as JSON; `int` fields render without a fraction.
    pub fn to_json(&self, integer: bool) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Num(n) if integer && n.fract() == 0.0 => Value::from(*n as i64),
            Val::Num(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Date(d) => Value::String(d.to_string()),
            Val::DateTime(ms) => Value::String(format_datetime(*ms)),
        }
    }

    /// SOQL ordering: text compares case-insensitively, nulls are handled by the caller.
    pub fn compare(&self, other: &Val) -> Option<Ordering> {
        match (self, other) {
            (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
            (Val::Num(a), Val::Num(b)) => a.partial_cmp(b),
            (Val::Str(a), Val::Str(b)) => Some(cmp_ignore_case(a, b)),
            (Val::Date(a), Val::Date(b)) => Some(a.cmp(b)),
            (Val::DateTime(a), Val::DateTime(b)) => Some(a.cmp(b)),
            (Val::Date(a), Val::DateTime(b)) => Some(date_start_ms(*a).cmp(b)),
            (Val::DateTime(a), Val::Date(b)) => Some(a.cmp(&date_start_ms(*b))),
            _ => None,
        }
    }
}

/// Case-insensitive comparison without allocating.
pub fn cmp_ignore_case(a: &str, b: &str) -> Ordering {
    let left = a.chars().flat_map(char::to_lowercase);
    let right = b.chars().flat_map(char::to_lowercase);
    left.cmp(right)
}

/// The current instant truncated to whole seconds, as Salesforce stamps records.
pub fn now_ms() -> i64 {
    let ms = Timestamp::now().as_millisecond();
    ms - ms.rem_euclid(1000)
}

/// Today's date in the org's time zone (UTC).
pub fn today() -> Date {
    Timestamp::now().to_zoned_datetime(TimeZone::UTC).date()
}

/// Midnight UTC at the start of `date`, in milliseconds.
pub fn date_start_ms(date: Date) -> i64 {
    date.to_zoned_datetime(TimeZone::UTC).map(|z| z.timestamp().as_millisecond()).unwrap_or(0)
}

/// `yyyy-MM-ddTHH:mm:ss.SSS+0000`, the only datetime format Salesforce sends.
pub fn format_datetime(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.to_zoned_datetime(TimeZone::UTC).strftime("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        Err(_) => String::new(),
    }
}

/// Parses an ISO-8601 datetime with `Z`, `+hh:mm` or `+hhmm`; a bare date means midnight UTC.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(date) = text.parse::<Date>() {
        if text.len() == 10 {
            return Some(date_start_ms(date));
        }
    }
    let normalized = normalize_offset(text);
    normalized.parse::<Timestamp>().ok().map(|ts| ts.as_millisecond())
}

/// Parses `yyyy-MM-dd` (a datetime is accepted and cut to its UTC date, as Salesforce does).
pub fn parse_date(text: &str) -> Option<Date> {
    let text = text.trim();
    if text.len() == 10 {
        return text.parse::<Date>().ok();
    }
    let ms = parse_datetime(text)?;
    Timestamp::from_millisecond(ms).ok().map(|ts| ts.to_zoned_datetime(TimeZone::UTC).date())
}

/// Turns a `+hhmm` offset into `+hh:mm`, which the timestamp parser understands.
fn normalize_offset(text: &str) -> String {
    let bytes = text.as_bytes();
    let n = bytes.len();
    if n > 5
        && (bytes[n - 5] == b'+' || bytes[n - 5] == b'-')
        && bytes[n - 4..].iter().all(u8::is_ascii_digit)
        && text.contains('T')
    {
        return format!("{}:{}", &text[..n - 2], &text[n - 2..]);
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_round_trip_in_salesforce_format() {
        let ms = parse_datetime("2024-05-21T08:02:11.000+0000").unwrap_or_default();
        assert_eq!(format_datetime(ms), "2024-05-21T08:02:11.000+0000");
        assert_eq!(parse_datetime("2024-05-21T08:02:11Z"), Some(ms));
        assert_eq!(parse_datetime("2024-05-21T10:02:11+02:00"), Some(ms));
        assert_eq!(parse_datetime("2024-05-21T10:02:11+0200"), Some(ms));
        assert_eq!(parse_datetime("not a date"), None);
    }

    #[test]
    fn text_compares_without_case() {
        assert_eq!(cmp_ignore_case("abc", "ABD"), Ordering::Less);
        assert_eq!(cmp_ignore_case("Contoso", "contoso"), Ordering::Equal);
    }
}
