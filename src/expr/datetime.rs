//! Date and time functions with .NET semantics: lenient timestamp parsing, standard and custom
//! format strings (reference §5.10), arithmetic, and Windows time zone names.
//!
//! A timestamp is a civil date-time plus whether it is UTC (`Z` or an offset in the input, which
//! is converted to UTC) or has no zone. The kind decides what `K` prints: `Z` or nothing.

use std::sync::LazyLock;

use jiff::civil::{self, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use regex::Regex;
use serde_json::{Value, json};

use super::functions::{Def, int_arg};
use super::numfmt::{Culture, culture_or_err};
use super::timezones;
use super::values::describe;

/// A parsed timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The wall-clock date and time.
    pub dt: DateTime,
    /// `true` when the time is UTC (prints `K` as `Z`), `false` when it has no zone.
    pub utc: bool,
}

type R = Result<Value, String>;

const fn def(name: &'static str, min: usize, max: usize, f: fn(&[Value]) -> R) -> Def {
    Def { name, min, max, f }
}

/// Every date and time function.
pub(crate) const DATE: &[Def] = &[
    def("addDays", 2, 3, |a| add_unit(a, "Day")),
    def("addHours", 2, 3, |a| add_unit(a, "Hour")),
    def("addMinutes", 2, 3, |a| add_unit(a, "Minute")),
    def("addSeconds", 2, 3, |a| add_unit(a, "Second")),
    def("addToTime", 3, 4, add_to_time),
    def("subtractFromTime", 3, 4, subtract_from_time),
    def("convertFromUtc", 2, 3, convert_from_utc),
    def("convertTimeZone", 3, 4, convert_time_zone),
    def("convertToUtc", 2, 3, convert_to_utc),
    def("dateDifference", 2, 2, date_difference),
    def("dayOfMonth", 1, 1, |a| Ok(json!(stamp_arg(a, 0)?.dt.day()))),
    def("dayOfWeek", 1, 1, |a| Ok(json!(stamp_arg(a, 0)?.dt.weekday().to_sunday_zero_offset()))),
    def("dayOfYear", 1, 1, |a| Ok(json!(stamp_arg(a, 0)?.dt.day_of_year()))),
    def("formatDateTime", 1, 3, format_date_time),
    def("getFutureTime", 2, 3, |a| now_plus(a, 1)),
    def("getPastTime", 2, 3, |a| now_plus(a, -1)),
    def("parseDateTime", 1, 3, parse_date_time),
    def("startOfDay", 1, 2, |a| start_of(a, |d| d.date().to_datetime(civil::Time::midnight()))),
    def("startOfHour", 1, 2, |a| start_of(a, |d| d.date().at(d.hour(), 0, 0, 0))),
    def("startOfMonth", 1, 2, |a| {
        start_of(a, |d| d.date().first_of_month().to_datetime(civil::Time::midnight()))
    }),
    def("ticks", 1, 1, ticks),
    def("utcNow", 0, 1, utc_now),
];

// ---- parsing ----------------------------------------------------------------------------

static ISO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

static US: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(\d{1,4})[/.-](\d{1,2})[/.-](\d{1,4})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*(AM|PM)?)?\s*(Z)?$")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

fn num(c: Option<regex::Match<'_>>) -> i64 {
    c.and_then(|m| m.as_str().parse().ok()).unwrap_or(0)
}

fn fraction_nanos(fraction: Option<&str>) -> i32 {
    let Some(fraction) = fraction else { return 0 };
    let mut digits = fraction.to_string();
    digits.truncate(9);
    while digits.len() < 9 {
        digits.push('0');
    }
    digits.parse().unwrap_or(0)
}

/// What the `ISO` expression captures: year, month, day, hour, minute, second (0 when
/// absent), the fraction's digits and the zone.
struct IsoParts<'a> {
    fields: [i64; 6],
    fraction: Option<&'a str>,
    zone: Option<&'a str>,
}

impl<'a> IsoParts<'a> {
    /// The parts of the everyday ISO spellings, read without the regular expression: ASCII
    /// digits, `T` or a space before the time, the zone right after. Anything else gives
    /// `None` and is left to `ISO`, which captures exactly these parts for these spellings.
    fn plain(s: &'a str) -> Option<IsoParts<'a>> {
        let bytes = s.as_bytes();
        let mut at = 0;
        let digits = |at: &mut usize, min: usize, max: usize| -> Option<&'a str> {
            let start = *at;
            while *at < bytes.len() && *at - start < max && bytes[*at].is_ascii_digit() {
                *at += 1;
            }
            (*at - start >= min).then(|| &s[start..*at])
        };
        let expect =
            |at: &mut usize, byte: u8| -> Option<()> { (bytes.get(*at) == Some(&byte)).then(|| *at += 1) };
        let number = |text: &str| text.parse::<i64>().ok();
        let mut fields = [0; 6];
        fields[0] = number(digits(&mut at, 4, 4)?)?;
        expect(&mut at, b'-')?;
        fields[1] = number(digits(&mut at, 1, 2)?)?;
        expect(&mut at, b'-')?;
        fields[2] = number(digits(&mut at, 1, 2)?)?;
        let mut fraction = None;
        if matches!(bytes.get(at), Some(b'T' | b' ')) {
            at += 1;
            fields[3] = number(digits(&mut at, 1, 2)?)?;
            expect(&mut at, b':')?;
            fields[4] = number(digits(&mut at, 2, 2)?)?;
            if expect(&mut at, b':').is_some() {
                fields[5] = number(digits(&mut at, 2, 2)?)?;
                if matches!(bytes.get(at), Some(b'.' | b',')) {
                    at += 1;
                    fraction = Some(digits(&mut at, 1, 9)?);
                }
            }
        }
        let zone_start = at;
        match bytes.get(at) {
            None => {}
            Some(b'Z' | b'z') => at += 1,
            Some(b'+' | b'-') => {
                at += 1;
                digits(&mut at, 2, 2)?;
                if expect(&mut at, b':').is_some() || at < bytes.len() {
                    digits(&mut at, 2, 2)?;
                }
            }
            Some(_) => return None,
        }
        let zone = (at > zone_start).then(|| &s[zone_start..at]);
        (at == bytes.len()).then_some(IsoParts { fields, fraction, zone })
    }
}

fn build(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, ns: i32) -> Option<DateTime> {
    DateTime::new(
        i16::try_from(y).ok()?,
        i8::try_from(mo).ok()?,
        i8::try_from(d).ok()?,
        i8::try_from(h).ok()?,
        i8::try_from(mi).ok()?,
        i8::try_from(s).ok()?,
        ns,
    )
    .ok()
}

/// Parses a timestamp as .NET does for Power Automate: ISO 8601 with or without a zone,
/// `MM/dd/yyyy [HH:mm[:ss]] [AM|PM]` (en-US) or `dd/MM/yyyy` for `day_first` locales,
/// RFC 1123. An offset is converted to UTC.
pub(crate) fn parse_with(s: &str, day_first: bool) -> Option<Stamp> {
    let s = s.trim();
    let iso = IsoParts::plain(s).or_else(|| {
        ISO.captures(s).map(|c| IsoParts {
            fields: [1, 2, 3, 4, 5, 6].map(|i| num(c.get(i))),
            fraction: c.get(7).map(|m| m.as_str()),
            zone: c.get(8).map(|m| m.as_str()),
        })
    });
    if let Some(IsoParts { fields: [y, mo, d, h, mi, sec], fraction, zone }) = iso {
        let dt = build(y, mo, d, h, mi, sec, fraction_nanos(fraction))?;
        return match zone {
            None => Some(Stamp { dt, utc: false }),
            Some("Z" | "z") => Some(Stamp { dt, utc: true }),
            Some(offset) => Some(Stamp { dt: apply_offset(dt, offset)?, utc: true }),
        };
    }
    if let Some(c) = US.captures(s) {
        let (a, b, cc) = (num(c.get(1)), num(c.get(2)), num(c.get(3)));
        let (y, mo, d) = if c.get(1).is_some_and(|m| m.as_str().len() == 4) {
            (a, b, cc)
        } else if day_first {
            (cc, b, a)
        } else {
            (cc, a, b)
        };
        let mut h = num(c.get(4));
        match c.get(8).map(|m| m.as_str().to_ascii_uppercase()) {
            Some(p) if p == "PM" && h < 12 => h += 12,
            Some(p) if p == "AM" && h == 12 => h = 0,
            _ => {}
        }
        let fraction = c.get(7).map(|m| m.as_str());
        let dt = build(y, mo, d, h, num(c.get(5)), num(c.get(6)), fraction_nanos(fraction))?;
        return Some(Stamp { dt, utc: c.get(9).is_some() });
    }
    let zoned = jiff::fmt::rfc2822::parse(s).ok()?;
    Some(Stamp { dt: zoned.timestamp().to_zoned_datetime(TimeZone::UTC).datetime(), utc: true })
}

fn apply_offset(dt: DateTime, offset: &str) -> Option<DateTime> {
    let sign: i64 = if offset.starts_with('-') { -1 } else { 1 };
    let digits: String = offset[1..].chars().filter(char::is_ascii_digit).collect();
    let hours: i64 = digits.get(0..2)?.parse().ok()?;
    let minutes: i64 = digits.get(2..4).and_then(|m| m.parse().ok()).unwrap_or(0);
    dt.checked_sub(SignedDuration::from_secs(sign * (hours * 3600 + minutes * 60))).ok()
}

/// Parses a timestamp in the en-US conventions.
pub(crate) fn parse(s: &str) -> Option<Stamp> {
    parse_with(s, false)
}

fn stamp_arg(args: &[Value], i: usize) -> Result<Stamp, String> {
    match args.get(i) {
        Some(Value::String(s)) => parse(s).ok_or_else(|| {
            format!(
                "'{s}' is not a valid timestamp: use ISO 8601 such as '2018-03-15T13:00:00Z' or 'MM/dd/yyyy'"
            )
        }),
        Some(other) => Err(format!("the timestamp must be a string, not {}", describe(other))),
        None => Err("the timestamp is missing".into()),
    }
}

fn format_arg(args: &[Value], i: usize) -> Result<&str, String> {
    match args.get(i) {
        None | Some(Value::Null) => Ok("o"),
        Some(Value::String(s)) if s.is_empty() => Ok("o"),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("the format must be a string, not {}", describe(other))),
    }
}

// ---- formatting -------------------------------------------------------------------------

fn standard_pattern(c: char, culture: &Culture) -> Option<String> {
    let en = culture.decimal == ".";
    let long_date = if en { "dddd, MMMM d, yyyy" } else { "dddd d MMMM yyyy" };
    let (short_time, long_time) = if en { ("h:mm tt", "h:mm:ss tt") } else { ("HH:mm", "HH:mm:ss") };
    Some(match c {
        'o' | 'O' => "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK".into(),
        's' => "yyyy'-'MM'-'dd'T'HH':'mm':'ss".into(),
        'u' => "yyyy'-'MM'-'dd HH':'mm':'ss'Z'".into(),
        'd' => culture.short_date.into(),
        'D' => long_date.into(),
        't' => short_time.into(),
        'T' => long_time.into(),
        'f' => format!("{long_date} {short_time}"),
        'F' | 'U' => format!("{long_date} {long_time}"),
        'g' => format!("{} {short_time}", culture.short_date),
        'G' => format!("{} {long_time}", culture.short_date),
        'M' | 'm' => if en { "MMMM d" } else { "d MMMM" }.into(),
        'Y' | 'y' => "MMMM yyyy".into(),
        'R' | 'r' => "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'".into(),
        _ => return None,
    })
}

/// Formats a timestamp with a .NET standard (one letter) or custom format string.
pub(crate) fn format(stamp: Stamp, fmt: &str, locale: &str) -> Result<String, String> {
    let culture = culture_or_err(locale)?;
    let mut chars = fmt.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        let pattern = standard_pattern(c, culture)
            .ok_or_else(|| format!("'{fmt}' is not a valid standard date and time format: use o, s, u, d, D, t, T, f, F, g, G, M, Y or R, or a custom pattern"))?;
        // `R` and `u` name invariant English names; `D` etc. follow the locale.
        let culture = if matches!(c, 'R' | 'r') { culture_or_err("en-US")? } else { culture };
        return Ok(custom(stamp, &pattern, culture));
    }
    Ok(custom(stamp, fmt, culture))
}

fn abbreviation(name: &str, english: bool) -> String {
    let short: String = name.chars().take(3).collect();
    if english || name.chars().count() <= 4 { short } else { format!("{short}.") }
}

fn run_len(chars: &[char], i: usize) -> usize {
    chars[i..].iter().take_while(|c| **c == chars[i]).count()
}

fn custom(stamp: Stamp, fmt: &str, culture: &Culture) -> String {
    let dt = stamp.dt;
    let english = culture.decimal == ".";
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let n = run_len(&chars, i);
        match c {
            'd' => {
                match n {
                    1 => out.push_str(&dt.day().to_string()),
                    2 => out.push_str(&format!("{:02}", dt.day())),
                    3 => out.push_str(&abbreviation(day_name(dt, culture), english)),
                    _ => out.push_str(day_name(dt, culture)),
                }
                i += n;
            }
            'M' => {
                let name = culture.months[(dt.month() - 1) as usize];
                match n {
                    1 => out.push_str(&dt.month().to_string()),
                    2 => out.push_str(&format!("{:02}", dt.month())),
                    3 => out.push_str(&abbreviation(name, english)),
                    _ => out.push_str(name),
                }
                i += n;
            }
            'y' => {
                let y = i64::from(dt.year());
                match n {
                    1 => out.push_str(&(y % 100).to_string()),
                    2 => out.push_str(&format!("{:02}", y % 100)),
                    _ => out.push_str(&format!("{y:0n$}")),
                }
                i += n;
            }
            'h' => {
                let h12 = match dt.hour() % 12 {
                    0 => 12,
                    h => h,
                };
                out.push_str(&if n == 1 { h12.to_string() } else { format!("{h12:02}") });
                i += n.min(2);
            }
            'H' | 'm' | 's' => {
                let v = match c {
                    'H' => dt.hour(),
                    'm' => dt.minute(),
                    _ => dt.second(),
                };
                out.push_str(&if n == 1 { v.to_string() } else { format!("{v:02}") });
                i += n.min(2);
            }
            'f' | 'F' => {
                let digits = format!("{:09}", dt.subsec_nanosecond());
                let take = n.min(7);
                let mut frac = digits[..take].to_string();
                if c == 'F' {
                    while frac.ends_with('0') {
                        frac.pop();
                    }
                    if frac.is_empty() && out.ends_with('.') {
                        out.pop();
                    }
                }
                out.push_str(&frac);
                i += n;
            }
            't' => {
                let ampm = if dt.hour() < 12 { "AM" } else { "PM" };
                let ampm = if english { ampm } else { "" };
                out.push_str(if n == 1 { &ampm[..ampm.len().min(1)] } else { ampm });
                i += n;
            }
            'K' => {
                if stamp.utc {
                    out.push('Z');
                }
                i += 1;
            }
            'z' => {
                out.push_str(match n {
                    1 => "+0",
                    2 => "+00",
                    _ => "+00:00",
                });
                i += n;
            }
            'g' => {
                out.push_str("A.D.");
                i += n;
            }
            '\'' | '"' => {
                let end = chars[i + 1..].iter().position(|x| *x == c).map_or(chars.len(), |p| i + 1 + p);
                out.extend(&chars[i + 1..end]);
                i = end + 1;
            }
            '\\' => {
                if let Some(next) = chars.get(i + 1) {
                    out.push(*next);
                }
                i += 2;
            }
            '%' => i += 1,
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

fn day_name(dt: DateTime, culture: &Culture) -> &'static str {
    culture.days[dt.weekday().to_sunday_zero_offset() as usize]
}

fn output(stamp: Stamp, args: &[Value], format_at: usize) -> R {
    Ok(Value::String(format(stamp, format_arg(args, format_at)?, "en-US")?))
}

// ---- functions --------------------------------------------------------------------------

fn format_date_time(args: &[Value]) -> R {
    let stamp = stamp_arg(args, 0)?;
    let locale = match args.get(2) {
        Some(Value::String(l)) => l.as_str(),
        _ => "en-US",
    };
    Ok(Value::String(format(stamp, format_arg(args, 1)?, locale)?))
}

/// Adds `amount` of `unit` (`Second` … `Year`, case-insensitive) to a timestamp.
pub(crate) fn add(stamp: Stamp, amount: i64, unit: &str) -> Result<Stamp, String> {
    let out_of_range = |e: jiff::Error| format!("the result is out of range: {e}");
    let dt = stamp.dt;
    let result = match unit.to_ascii_lowercase().trim_end_matches('s') {
        "second" => dt.checked_add(seconds(amount, 1)?),
        "minute" => dt.checked_add(seconds(amount, 60)?),
        "hour" => dt.checked_add(seconds(amount, 3600)?),
        "day" => dt.checked_add(Span::new().try_days(amount).map_err(out_of_range)?),
        "week" => dt.checked_add(Span::new().try_weeks(amount).map_err(out_of_range)?),
        "month" => dt.checked_add(Span::new().try_months(amount).map_err(out_of_range)?),
        "year" => dt.checked_add(Span::new().try_years(amount).map_err(out_of_range)?),
        _ => {
            return Err(format!(
                "unknown time unit '{unit}': use Second, Minute, Hour, Day, Week, Month or Year"
            ));
        }
    };
    Ok(Stamp { dt: result.map_err(out_of_range)?, utc: stamp.utc })
}

fn seconds(amount: i64, unit: i64) -> Result<SignedDuration, String> {
    amount
        .checked_mul(unit)
        .map(SignedDuration::from_secs)
        .ok_or_else(|| format!("the interval {amount} is too large"))
}

fn add_unit(args: &[Value], unit: &str) -> R {
    let stamp = add(stamp_arg(args, 0)?, int_arg(args, 1, "the interval")?, unit)?;
    output(stamp, args, 2)
}

fn unit_arg(args: &[Value], i: usize) -> Result<&str, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        _ => Err("the time unit must be a string such as 'Day'".into()),
    }
}

fn add_to_time(args: &[Value]) -> R {
    let stamp = add(stamp_arg(args, 0)?, int_arg(args, 1, "the interval")?, unit_arg(args, 2)?)?;
    output(stamp, args, 3)
}

fn subtract_from_time(args: &[Value]) -> R {
    let n = int_arg(args, 1, "the interval")?;
    let stamp = add(stamp_arg(args, 0)?, -n, unit_arg(args, 2)?)?;
    output(stamp, args, 3)
}

tokio::task_local! {
    /// The time `utcNow()` reads inside [`with_fixed_now`].
    static FIXED_NOW: Timestamp;
}

/// Runs `work` with `utcNow()` (and the functions built on it) reading `now`, so a run's
/// rendered values do not depend on when it ran. Only `work`'s own task sees the fixed time.
pub async fn with_fixed_now<F: std::future::Future>(now: Timestamp, work: F) -> F::Output {
    FIXED_NOW.scope(now, work).await
}

/// The current time: a time fixed by [`with_fixed_now`], else `COFLOW_NOW` (a UTC timestamp,
/// for replays), else the system clock.
pub(crate) fn now() -> Stamp {
    if let Ok(fixed) = FIXED_NOW.try_with(|now| *now) {
        return Stamp { dt: fixed.to_zoned_datetime(TimeZone::UTC).datetime(), utc: true };
    }
    if let Some(fixed) = std::env::var("COFLOW_NOW").ok().and_then(|s| parse(&s)) {
        return Stamp { utc: true, ..fixed };
    }
    Stamp { dt: Timestamp::now().to_zoned_datetime(TimeZone::UTC).datetime(), utc: true }
}

fn utc_now(args: &[Value]) -> R {
    output(now(), args, 0)
}

fn now_plus(args: &[Value], sign: i64) -> R {
    let n = int_arg(args, 0, "the interval")?;
    let stamp = add(now(), sign * n, unit_arg(args, 1)?)?;
    output(stamp, args, 2)
}

fn start_of(args: &[Value], f: fn(DateTime) -> DateTime) -> R {
    let stamp = stamp_arg(args, 0)?;
    output(Stamp { dt: f(stamp.dt), utc: stamp.utc }, args, 1)
}

const EPOCH_TICKS_BASE: DateTime = civil::datetime(1, 1, 1, 0, 0, 0, 0);

fn ticks(args: &[Value]) -> R {
    let stamp = stamp_arg(args, 0)?;
    let nanos = stamp.dt.duration_since(EPOCH_TICKS_BASE).as_nanos();
    Ok(json!(i64::try_from(nanos / 100).map_err(|_| "the timestamp is out of range".to_string())?))
}

fn date_difference(args: &[Value]) -> R {
    let (start, end) = (stamp_arg(args, 0)?, stamp_arg(args, 1)?);
    let d = end.dt.duration_since(start.dt);
    let negative = d.is_negative();
    let total = d.abs();
    let secs = total.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if days > 0 {
        out.push_str(&format!("{days}."));
    }
    out.push_str(&format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60));
    let ticks = total.subsec_nanos() / 100;
    if ticks > 0 {
        out.push_str(&format!(".{ticks:07}"));
    }
    Ok(Value::String(out))
}

fn zone_arg(args: &[Value], i: usize) -> Result<TimeZone, String> {
    match args.get(i) {
        Some(Value::String(name)) => timezones::resolve(name),
        _ => Err("the time zone must be a Windows time zone name such as 'Pacific Standard Time'".into()),
    }
}

/// Converts `stamp` from zone `from` to zone `to`. A UTC stamp is an instant whatever `from` says.
fn convert(stamp: Stamp, from: &TimeZone, to: &TimeZone) -> Result<Stamp, String> {
    let instant = if stamp.utc {
        stamp.dt.to_zoned_datetime(TimeZone::UTC)
    } else {
        stamp.dt.to_zoned_datetime(from.clone())
    }
    .map_err(|e| format!("cannot place the time in its time zone: {e}"))?;
    let dt = instant.timestamp().to_zoned_datetime(to.clone()).datetime();
    Ok(Stamp { dt, utc: timezones::is_utc(to) })
}

fn convert_time_zone(args: &[Value]) -> R {
    let stamp = stamp_arg(args, 0)?;
    let converted = convert(stamp, &zone_arg(args, 1)?, &zone_arg(args, 2)?)?;
    output(converted, args, 3)
}

fn convert_from_utc(args: &[Value]) -> R {
    let stamp = stamp_arg(args, 0)?;
    let zone = zone_arg(args, 1)?;
    let converted = convert(Stamp { utc: true, ..stamp }, &TimeZone::UTC, &zone)?;
    // Documented: the result carries no zone, even for UTC.
    output(Stamp { utc: false, ..converted }, args, 2)
}

fn convert_to_utc(args: &[Value]) -> R {
    let stamp = stamp_arg(args, 0)?;
    let converted = convert(stamp, &zone_arg(args, 1)?, &TimeZone::UTC)?;
    output(Stamp { utc: true, ..converted }, args, 2)
}

// ---- parseDateTime ----------------------------------------------------------------------

fn parse_date_time(args: &[Value]) -> R {
    let s = match args.first() {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(format!("the timestamp must be a string, not {}", describe(other))),
        None => return Err("the timestamp is missing".into()),
    };
    let locale = match args.get(1) {
        Some(Value::String(l)) if !l.is_empty() => l.as_str(),
        _ => "en-US",
    };
    let culture = culture_or_err(locale)?;
    let stamp = match args.get(2) {
        Some(Value::String(f)) if !f.is_empty() => parse_exact(s, f, culture),
        _ => parse_with(s, !culture.short_date.starts_with('M')).or_else(|| parse_words(s, culture)),
    }
    .ok_or_else(|| format!("'{s}' is not a timestamp in the locale '{locale}'"))?;
    Ok(Value::String(format(stamp, "o", "en-US")?))
}

/// Parses text like `20 octobre 2010` or `martes 20 octubre 2020`: a month name, a day, a year.
fn parse_words(s: &str, culture: &Culture) -> Option<Stamp> {
    let lower = s.to_lowercase();
    let mut day = None;
    let mut year = None;
    let mut month = None;
    for word in lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        if let Ok(n) = word.parse::<i64>() {
            if word.len() == 4 { year = Some(n) } else { day = Some(n) }
        } else if let Some(m) = culture.months.iter().position(|m| m.to_lowercase() == word) {
            month = Some(m as i64 + 1);
        }
    }
    let dt = build(year?, month?, day?, 0, 0, 0, 0)?;
    Some(Stamp { dt, utc: false })
}

/// Parses `s` against a custom .NET format (`ddMMyyyy`, `MM/dd/yyyy HH\h`).
fn parse_exact(s: &str, fmt: &str, culture: &Culture) -> Option<Stamp> {
    let f: Vec<char> = fmt.chars().collect();
    let text: Vec<char> = s.chars().collect();
    let (mut y, mut mo, mut d, mut h, mut mi, mut sec, mut ns, mut pm) =
        (1i64, 1i64, 1i64, 0i64, 0i64, 0i64, 0i32, None);
    let (mut i, mut p) = (0usize, 0usize);
    let take_num = |p: &mut usize, max: usize| -> Option<i64> {
        let start = *p;
        while *p < text.len() && *p - start < max && text[*p].is_ascii_digit() {
            *p += 1;
        }
        text[start..*p].iter().collect::<String>().parse().ok()
    };
    while i < f.len() {
        let c = f[i];
        let n = run_len(&f, i);
        match c {
            'y' => y = take_num(&mut p, if n <= 2 { 2 } else { n.max(4) })?,
            'M' if n >= 3 => {
                let rest: String = text[p..].iter().collect::<String>().to_lowercase();
                let (idx, name) =
                    culture.months.iter().enumerate().find(|(_, m)| rest.starts_with(&m.to_lowercase()))?;
                mo = idx as i64 + 1;
                p += name.chars().count();
            }
            'M' => mo = take_num(&mut p, 2)?,
            'd' if n >= 3 => {
                while p < text.len() && text[p].is_alphabetic() {
                    p += 1;
                }
            }
            'd' => d = take_num(&mut p, 2)?,
            'H' | 'h' => h = take_num(&mut p, 2)?,
            'm' => mi = take_num(&mut p, 2)?,
            's' => sec = take_num(&mut p, 2)?,
            'f' | 'F' => {
                let start = p;
                let v = take_num(&mut p, n)?;
                ns = (v * 10i64.pow(9 - (p - start) as u32)) as i32;
            }
            't' => {
                let rest: String = text[p..].iter().take(2).collect::<String>().to_ascii_uppercase();
                pm = Some(rest.starts_with('P'));
                p += n.min(2);
            }
            '\\' => {
                if text.get(p) != f.get(i + 1) {
                    return None;
                }
                p += 1;
                i += 2;
                continue;
            }
            '\'' | '"' => {
                let end = f[i + 1..].iter().position(|x| *x == c).map_or(f.len(), |e| i + 1 + e);
                for lit in &f[i + 1..end] {
                    if text.get(p) != Some(lit) {
                        return None;
                    }
                    p += 1;
                }
                i = end + 1;
                continue;
            }
            other => {
                if text.get(p) != Some(&other) {
                    return None;
                }
                p += 1;
                i += 1;
                continue;
            }
        }
        i += n;
    }
    if p != text.len() {
        return None;
    }
    if y < 100 {
        y += 2000;
    }
    match pm {
        Some(true) if h < 12 => h += 12,
        Some(false) if h == 12 => h = 0,
        _ => {}
    }
    Some(Stamp { dt: build(y, mo, d, h, mi, sec, ns)?, utc: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_iso_spellings_are_read_as_the_expression_reads_them() {
        let by_regex = |s: &str| {
            ISO.captures(s).map(|c| {
                let fields = [1, 2, 3, 4, 5, 6].map(|i| num(c.get(i)));
                (fields, c.get(7).map(|m| m.as_str().to_string()), c.get(8).map(|m| m.as_str().to_string()))
            })
        };
        let plain = |s: &str| {
            IsoParts::plain(s).map(|p| (p.fields, p.fraction.map(str::to_string), p.zone.map(str::to_string)))
        };
        for s in [
            "2026-11-25",
            "2026-11-25T10:00",
            "2026-1-5 9:05:07.123Z",
            "2026-11-25T10:00:00.1234567+02:00",
            "2026-11-25T10:00:00,5-0530",
            "2026-11-25T10:00:00+02",
            "2026-11-25+02:00",
            "2026-11-25T10:00z",
        ] {
            assert!(plain(s).is_some(), "{s} is a plain spelling");
            assert_eq!(plain(s), by_regex(s), "{s}");
        }
        for s in [
            "2026-11-25 Z",
            "2026-11-25T10:00:00+02:",
            "2026-11-25T10:00:00.1234567890Z",
            "2026-11-25T",
            "\u{ff12}026-11-25",
            "2026-11-25T10:00:00 +02:00",
            "2026-11-25T10:00:00+0200x",
            "20261-11-25",
            "2026-11-25t10:00",
        ] {
            assert_eq!(plain(s), None, "{s} is left to the expression");
        }
    }

    #[test]
    fn parses_the_usual_shapes() {
        assert_eq!(parse("2018-03-15T13:27:36Z").map(|s| s.utc), Some(true));
        assert_eq!(parse("03/15/2018").map(|s| s.utc), Some(false));
        let off = parse("2018-03-15T10:00:00+02:00").map(|s| s.dt.hour());
        assert_eq!(off, Some(8));
        assert!(parse("not a date").is_none());
    }

    #[test]
    fn formats_like_dotnet() {
        let s = parse("2018-03-15T13:27:36Z").unwrap();
        assert_eq!(format(s, "o", "en-US").unwrap(), "2018-03-15T13:27:36.0000000Z");
        assert_eq!(format(s, "R", "en-US").unwrap(), "Thu, 15 Mar 2018 13:27:36 GMT");
        assert_eq!(format(s, "T", "en-US").unwrap(), "1:27:36 PM");
        assert_eq!(format(s, "yyyy-MM-dd HH:mm:ss.FFF", "en-US").unwrap(), "2018-03-15 13:27:36");
        assert!(format(s, "Q", "en-US").is_err());
    }
}
