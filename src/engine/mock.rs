//! The seam where outbound calls can be answered without reaching the network.
//!
//! When [`super::RunOptions::mocks`] is set, every attempt of an `http` or connector action asks
//! it first, after the action's inputs are rendered. An answer takes the place of the call: the
//! action records the same inputs, outputs, status and retries as if the remote system had
//! answered that way. `None` lets the call go out as usual. `coflow test` uses this; a run
//! without mocks is unchanged.

use serde_json::Value;

use super::record::ActionError;
use crate::connectors::HttpResponse;

/// One attempt of an outbound call, as the mocks see it.
#[derive(Debug)]
pub struct OutboundCall<'a> {
    /// The action's name.
    pub action: &'a str,
    /// Enclosing loops, outermost first, as `(loop name, iteration index)`.
    pub iterations: &'a [(String, usize)],
    /// What is called: `http`, or `<connector>.<operation>` such as `salesforce.query`.
    pub target: &'a str,
    /// The rendered inputs (for `http`, the request with credentials masked).
    pub inputs: &'a Value,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
}

/// What a mock answers in place of the call.
#[derive(Debug, Clone, PartialEq)]
pub enum MockAnswer {
    /// The remote system answered: a 2xx status succeeds, any other fails the action the way
    /// a real answer would (408, 429 and 5xx are retried, `Retry-After` is honoured).
    Response(HttpResponse),
    /// The call got no answer, like a dropped connection (retried).
    NoAnswer(String),
    /// The call is refused before it is made: the action fails with this error, no retries.
    Refused(ActionError),
}

/// Answers outbound calls in place of the systems they would reach.
pub trait Mocks: Send + Sync + std::fmt::Debug {
    /// The answer for one attempt, or `None` to make the call for real.
    fn answer(&self, call: &OutboundCall<'_>) -> Option<MockAnswer>;
}
