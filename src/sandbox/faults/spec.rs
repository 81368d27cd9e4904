//! The fault rule grammar: one rule per `--fault` flag or per line of the admin endpoint.
//!
//! ```text
//! rule    := [METHOD " "] PATH ":" ACTION (" " OPTION)*
//! METHOD  := GET | POST | PUT | PATCH | DELETE | HEAD | OPTIONS | *        (default *)
//! PATH    := a glob on the URL path, "*" matches any characters including "/"
//! ACTION  := STATUS          answer with this status (400..=599), Retry-After if retry_after= is set
//!          | drop            close the connection without an answer
//!          | hang            wait delay= (default 30s), then close without an answer
//!          | latency         wait delay=, then serve the request normally
//!          | token-expired   answer 401 as the emulator does for an expired access token
//! OPTION  := rate=F          fire for this fraction of matching requests (0..=1, default 1)
//!          | times=N         fire for the next N matching requests only
//!          | after=DUR       start firing DUR after the rule was installed
//!          | delay=DUR       wait this long first (latency, hang, or before any other action)
//!          | retry_after=S   Retry-After header in whole seconds (status actions)
//! DUR     := N "ms" | N "s" | N "m"   (a bare number means seconds)
//! ```
//!
//! Examples: `GET /services/data/*: 503 rate=0.2 retry_after=2`,
//! `/v1.0/engagements/referrals*: latency delay=250ms`, `POST *: drop times=1`,
//! `*: token-expired after=30s times=3`.

use std::{fmt, str::FromStr, time::Duration};

use serde::Serialize;

/// Why a fault rule could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultSpecError {
    /// The rule has no `:` between the route and the action.
    #[error("fault rule `{0}` has no `:`; write it as `[METHOD] PATH: ACTION [OPTION...]`")]
    MissingColon(String),
    /// The route part is not `[METHOD] /path`.
    #[error("fault route `{0}` must be `[METHOD] PATH` with PATH starting with `/` or `*`")]
    BadRoute(String),
    /// The method is not an HTTP method.
    #[error("unknown HTTP method `{0}` in fault rule; use GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or *")]
    BadMethod(String),
    /// The action word is unknown.
    #[error("unknown fault action `{0}`; use a status 400..=599, drop, hang, latency or token-expired")]
    BadAction(String),
    /// No action was given after the colon.
    #[error("fault rule `{0}` has no action after `:`")]
    MissingAction(String),
    /// An option is unknown or its value does not parse.
    #[error("bad fault option `{0}`: {1}")]
    BadOption(String, &'static str),
    /// `latency` was given without `delay=`.
    #[error("the latency action needs delay=DUR, for example `latency delay=250ms`")]
    LatencyWithoutDelay,
}

/// What a rule does to a request it fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FaultAction {
    /// Answer with this status instead of serving the request.
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// Close the connection without an answer.
    Drop,
    /// Wait, then close the connection without an answer.
    Hang,
    /// Wait, then serve normally.
    Latency,
    /// Answer 401 as for an expired access token.
    TokenExpired,
}

/// One parsed fault rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRule {
    /// Upper-case method, or `None` for any method.
    pub method: Option<String>,
    /// Glob on the URL path.
    pub path: String,
    /// What to do.
    pub action: FaultAction,
    /// Fraction of matching requests the rule fires on.
    pub rate: f64,
    /// Fire for this many matching requests only.
    pub times: Option<u64>,
    /// Start firing this long after installation.
    #[serde(with = "duration_ms")]
    pub after: Option<Duration>,
    /// Wait before acting.
    #[serde(with = "duration_ms")]
    pub delay: Option<Duration>,
    /// Retry-After seconds on status answers.
    pub retry_after: Option<u64>,
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// How long `hang` waits when no `delay=` is given.
pub const DEFAULT_HANG: Duration = Duration::from_secs(30);

impl FaultRule {
    /// True when the rule's method and path glob match the request.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method));
        method_ok && glob_match(self.path.as_bytes(), path.as_bytes())
    }
}

impl FromStr for FaultRule {
    type Err = FaultSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let spec = spec.trim();
        let (route, rest) =
            spec.split_once(':').ok_or_else(|| FaultSpecError::MissingColon(spec.to_owned()))?;
        let (method, path) = parse_route(route.trim())?;
        let mut words = rest.split_whitespace();
        let action_word = words.next().ok_or_else(|| FaultSpecError::MissingAction(spec.to_owned()))?;
        let mut rule = FaultRule {
            method,
            path,
            action: parse_action(action_word)?,
            rate: 1.0,
            times: None,
            after: None,
            delay: None,
            retry_after: None,
        };
        for word in words {
            apply_option(&mut rule, word)?;
        }
        if rule.action == FaultAction::Latency && rule.delay.is_none() {
            return Err(FaultSpecError::LatencyWithoutDelay);
        }
        Ok(rule)
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(method) = &self.method {
            write!(f, "{method} ")?;
        }
        write!(f, "{}: ", self.path)?;
        match self.action {
            FaultAction::Status { status } => write!(f, "{status}")?,
            FaultAction::Drop => f.write_str("drop")?,
            FaultAction::Hang => f.write_str("hang")?,
            FaultAction::Latency => f.write_str("latency")?,
            FaultAction::TokenExpired => f.write_str("token-expired")?,
        }
        if self.rate < 1.0 {
            write!(f, " rate={}", self.rate)?;
        }
        if let Some(times) = self.times {
            write!(f, " times={times}")?;
        }
        if let Some(after) = self.after {
            write!(f, " after={}ms", after.as_millis())?;
        }
        if let Some(delay) = self.delay {
            write!(f, " delay={}ms", delay.as_millis())?;
        }
        if let Some(retry_after) = self.retry_after {
            write!(f, " retry_after={retry_after}")?;
        }
        Ok(())
    }
}

fn parse_route(route: &str) -> Result<(Option<String>, String), FaultSpecError> {
    let mut parts = route.split_whitespace();
    let (first, second, extra) = (parts.next(), parts.next(), parts.next());
    let (method, path) = match (first, second, extra) {
        (Some(path), None, None) => (None, path),
        (Some(method), Some(path), None) => (parse_method(method)?, path),
        _ => return Err(FaultSpecError::BadRoute(route.to_owned())),
    };
    if !(path.starts_with('/') || path.starts_with('*')) {
        return Err(FaultSpecError::BadRoute(route.to_owned()));
    }
    Ok((method, path.to_owned()))
}

fn parse_method(word: &str) -> Result<Option<String>, FaultSpecError> {
    if word == "*" {
        return Ok(None);
    }
    let upper = word.to_ascii_uppercase();
    if METHODS.contains(&upper.as_str()) {
        Ok(Some(upper))
    } else {
        Err(FaultSpecError::BadMethod(word.to_owned()))
    }
}

fn parse_action(word: &str) -> Result<FaultAction, FaultSpecError> {
    match word.to_ascii_lowercase().as_str() {
        "drop" => Ok(FaultAction::Drop),
        "hang" => Ok(FaultAction::Hang),
        "latency" => Ok(FaultAction::Latency),
        "token-expired" | "token_expired" => Ok(FaultAction::TokenExpired),
        other => match other.parse::<u16>() {
            Ok(status) if (400..=599).contains(&status) => Ok(FaultAction::Status { status }),
            _ => Err(FaultSpecError::BadAction(word.to_owned())),
        },
    }
}

fn apply_option(rule: &mut FaultRule, word: &str) -> Result<(), FaultSpecError> {
    let bad = |why| FaultSpecError::BadOption(word.to_owned(), why);
    let (key, value) = word.split_once('=').ok_or_else(|| bad("options are written key=value"))?;
    match key {
        "rate" => {
            let rate: f64 = value.parse().map_err(|_| bad("rate is a number"))?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(bad("rate must be between 0 and 1"));
            }
            rule.rate = rate;
        }
        "times" => rule.times = Some(value.parse().map_err(|_| bad("times is a count"))?),
        "after" => rule.after = Some(parse_duration(value).ok_or_else(|| bad(DURATION_HINT))?),
        "delay" => rule.delay = Some(parse_duration(value).ok_or_else(|| bad(DURATION_HINT))?),
        "retry_after" | "retry-after" => {
            rule.retry_after = Some(value.parse().map_err(|_| bad("retry_after is whole seconds"))?)
        }
        _ => return Err(bad("known options: rate, times, after, delay, retry_after")),
    }
    Ok(())
}

const DURATION_HINT: &str = "durations look like 250ms, 2s or 1m";

/// Reads `250ms`, `2s`, `1m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// Glob match where `*` matches any run of bytes, `/` included.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            backtrack = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

mod duration_ms {
    use std::time::Duration;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let rule: FaultRule = "GET /services/data/*: 503 rate=0.2 retry_after=2".parse().unwrap();
        assert_eq!(rule.method.as_deref(), Some("GET"));
        assert_eq!(rule.action, FaultAction::Status { status: 503 });
        assert_eq!(rule.rate, 0.2);
        assert_eq!(rule.retry_after, Some(2));
        assert!(rule.matches("get", "/services/data/v62.0/query"));
        assert!(!rule.matches("POST", "/services/data/v62.0/query"));
        assert!(!rule.matches("GET", "/services/oauth2/token"));
    }

    #[test]
    fn display_round_trips() {
        for spec in [
            "POST /v1.0/*: drop times=1",
            "*: token-expired times=3 after=1500ms",
            "/a/*/b: latency delay=250ms",
            "PUT /x: 429 rate=0.5 retry_after=7",
        ] {
            let rule: FaultRule = spec.parse().unwrap();
            let again: FaultRule = rule.to_string().parse().unwrap();
            assert_eq!(rule, again, "{spec}");
        }
    }

    #[test]
    fn rejects_bad_rules_with_a_hint() {
        assert!(matches!("GET /x 503".parse::<FaultRule>(), Err(FaultSpecError::MissingColon(_))));
        assert!(matches!("FETCH /x: 503".parse::<FaultRule>(), Err(FaultSpecError::BadMethod(_))));
        assert!(matches!("/x: 302".parse::<FaultRule>(), Err(FaultSpecError::BadAction(_))));
        assert!(matches!("/x: 503 rate=2".parse::<FaultRule>(), Err(FaultSpecError::BadOption(..))));
        assert_eq!("/x: latency".parse::<FaultRule>(), Err(FaultSpecError::LatencyWithoutDelay));
        assert!(matches!("x: 503".parse::<FaultRule>(), Err(FaultSpecError::BadRoute(_))));
    }

    #[test]
    fn globs_match_anywhere() {
        assert!(glob_match(b"/a/*/c", b"/a/b/x/c"));
        assert!(glob_match(b"*", b"/anything"));
        assert!(!glob_match(b"/a/*/c", b"/a/b/x/d"));
        assert!(glob_match(b"/exact", b"/exact"));
        assert!(!glob_match(b"/exact", b"/exact/more"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), None);
    }
}
