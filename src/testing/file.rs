//! The test file model: exactly what a `*.test.yaml` file may say.
//!
//! These types are read from YAML with serde and are the source of
//! `schemas/flow-test.schema.json` (see [`super::schema`]); [`super::load`] checks them against
//! the flow under test and builds the runnable [`super::TestFile`].

use std::borrow::Cow;
use std::fmt;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A whole test file: the flow under test and its cases.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "coflow flow test")]
pub struct TestFileDef {
    /// The flow under test, as a path relative to this file.
    pub flow: String,
    /// What these cases cover.
    #[serde(default)]
    pub description: Option<String>,
    /// The time `utcNow()` reads in every case: a UTC timestamp, or `system` for the real
    /// clock. Default 2025-01-01T00:00:00Z, so rendered values never depend on the day.
    #[serde(default)]
    pub now: Option<String>,
    /// Parameter values for every case; a case's own values win.
    #[serde(default)]
    pub parameters: IndexMap<String, Value>,
    /// Mocked answers for every case, by action name; a case's own mock of an action wins.
    #[serde(default)]
    pub mocks: IndexMap<String, MockAnswers>,
    /// Sync settings for every case, in place of `settings/sync.yaml` (keys left out take
    /// their defaults).
    #[serde(default)]
    pub sync: Option<crate::expr::SyncSettings>,
    /// The cases, run in order.
    pub cases: Vec<CaseDef>,
}

/// One test case: an event, the answers of the systems the flow calls, and what must happen.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseDef {
    /// Shown in the report; unique in the file.
    pub name: String,
    /// What the case checks, for readers.
    #[serde(default)]
    pub description: Option<String>,
    /// The time `utcNow()` reads in this case (overrides the file's `now`).
    #[serde(default)]
    pub now: Option<String>,
    /// The event that starts the run.
    #[serde(default)]
    pub trigger: EventDef,
    /// Parameter values, overriding the file's and the flow's defaults.
    #[serde(default)]
    pub parameters: IndexMap<String, Value>,
    /// Mocked answers, by action name. Every connector or `http` action the run reaches must
    /// have one (or `sandbox: true`).
    #[serde(default)]
    pub mocks: IndexMap<String, MockAnswers>,
    /// Sync settings for this case, in place of the file's or `settings/sync.yaml`.
    #[serde(default)]
    pub sync: Option<crate::expr::SyncSettings>,
    /// Data loaded into the sandbox before the run, for mocks with `sandbox: true`.
    #[serde(default)]
    pub sandbox: Option<SandboxDef>,
    /// What the run must show.
    pub expect: ExpectDef,
}

/// The trigger event: what `triggerBody()` and `triggerOutputs()` read.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventDef {
    /// The event body.
    #[serde(default)]
    pub body: Value,
    /// Request headers (or connector metadata).
    #[serde(default)]
    pub headers: Map<String, Value>,
}

/// The answers of one action's calls: one answer for every call, or a list answered in call
/// order (retries count as calls) whose last answer repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct MockAnswers(pub Vec<MockDef>);

/// One mocked answer.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MockDef {
    /// HTTP status of the answer (default 200). 2xx succeeds; 408, 429 and 5xx are retried by
    /// the action's retry policy; any other status fails the action.
    #[serde(default)]
    #[schemars(range(min = 100, max = 599))]
    pub status: Option<u16>,
    /// Response headers, e.g. `Retry-After`.
    #[serde(default)]
    pub headers: IndexMap<String, Scalar>,
    /// Response body: what `body('action')` reads.
    #[serde(default)]
    pub body: Option<Value>,
    /// The call gets no answer at all, like a dropped connection, with this message (retried).
    #[serde(default)]
    pub error: Option<String>,
    /// `true`: make the call for real, against the sandbox started for the case.
    #[serde(default)]
    pub sandbox: bool,
}

/// A header value.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    /// Text.
    Text(String),
    /// A number, e.g. seconds.
    Number(serde_json::Number),
    /// `true` / `false`.
    Bool(bool),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Text(text) => f.write_str(text),
            Scalar::Number(n) => write!(f, "{n}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Records loaded into the sandbox before a case runs.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxDef {
    /// Salesforce records by object: `{Account: [{Name: Fabrikam}]}`.
    #[serde(default)]
    pub salesforce: IndexMap<String, Vec<Value>>,
    /// Partner Center referrals, kept as given (ids, statuses, times).
    #[serde(default)]
    pub partner_center: Vec<Value>,
}

/// What a run must show. Anything not named is not checked.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectDef {
    /// The run's status.
    #[serde(default)]
    pub status: Option<StatusDef>,
    /// The run's error.
    #[serde(default)]
    pub error: Option<ErrorExpectDef>,
    /// Per action: its status, or an object of expectations. Actions inside a loop are named
    /// with the iteration: `For_each_contact[0]/Create_contact`.
    #[serde(default)]
    pub actions: IndexMap<String, ActionExpectation>,
    /// Actions that must not run: skipped, or never reached (in any loop iteration).
    #[serde(default)]
    pub not_run: Vec<String>,
    /// Variables' values when the run ended.
    #[serde(default)]
    pub variables: IndexMap<String, Value>,
}

/// A status of a run or an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusDef {
    /// Finished successfully.
    Succeeded,
    /// Failed.
    Failed,
    /// Did not run.
    Skipped,
    /// Stopped by its timeout.
    TimedOut,
    /// Stopped by a terminate or a cancellation.
    Cancelled,
}

/// An expected error: every key given must match.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorExpectDef {
    /// The exact error code, e.g. `Http500` or `SyncFailed`.
    #[serde(default)]
    pub code: Option<String>,
    /// Text the error message contains.
    #[serde(default)]
    pub message_contains: Option<String>,
}

/// Expectations of one action: a status alone (`Create_account: skipped`), or an object.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionExpectDef {
    /// The action's status.
    #[serde(default)]
    pub status: Option<StatusDef>,
    /// The exact rendered inputs, compared as a whole.
    #[serde(default)]
    pub inputs: Option<Value>,
    /// Values in the rendered inputs, by JSONPath: `{"$.record.Name": "Fabrikam"}`.
    #[serde(default)]
    pub inputs_at: IndexMap<String, Value>,
    /// The exact outputs (for calls: `{statusCode, headers, body}`).
    #[serde(default)]
    pub outputs: Option<Value>,
    /// Values in the outputs, by JSONPath: `{"$.body.id": "006…"}`.
    #[serde(default)]
    pub outputs_at: IndexMap<String, Value>,
    /// The action's error.
    #[serde(default)]
    pub error: Option<ErrorExpectDef>,
    /// How many attempts the action made (1 plus its retries).
    #[serde(default)]
    pub attempts: Option<u32>,
}

impl<'de> Deserialize<'de> for MockAnswers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrMany;
        impl<'de> Visitor<'de> for OneOrMany {
            type Value = MockAnswers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a mocked answer (`status`, `body`, `headers`, `error` or `sandbox`) or a list of them",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MockAnswers, A::Error> {
                MockDef::deserialize(MapAccessDeserializer::new(map)).map(|one| MockAnswers(vec![one]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<MockAnswers, A::Error> {
                let many = Vec::<MockDef>::deserialize(SeqAccessDeserializer::new(seq))?;
                if many.is_empty() {
                    return Err(de::Error::custom("a list of mocked answers needs at least one answer"));
                }
                Ok(MockAnswers(many))
            }
        }
        deserializer.deserialize_any(OneOrMany)
    }
}

impl JsonSchema for MockAnswers {
    fn schema_name() -> Cow<'static, str> {
        "MockAnswers".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let one = generator.subschema_for::<MockDef>();
        json_schema!({
            "description": "One answer for every call, or a list answered in call order (retries count as calls) whose last answer repeats.",
            "anyOf": [one, {"type": "array", "items": one, "minItems": 1}],
        })
    }
}

/// How an action expectation is written: a status, or an object.
#[derive(Debug, Clone)]
pub struct ActionExpectation(pub ActionExpectDef);

impl<'de> Deserialize<'de> for ActionExpectation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatusOrObject;
        impl<'de> Visitor<'de> for StatusOrObject {
            type Value = ActionExpectation;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a status (succeeded, failed, skipped, timed_out, cancelled) or a map of expectations",
                )
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ActionExpectation, E> {
                let status = StatusDef::deserialize(de::value::StrDeserializer::<E>::new(text))?;
                Ok(ActionExpectation(ActionExpectDef { status: Some(status), ..ActionExpectDef::default() }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ActionExpectation, A::Error> {
                ActionExpectDef::deserialize(MapAccessDeserializer::new(map)).map(ActionExpectation)
            }
        }
        deserializer.deserialize_any(StatusOrObject)
    }
}

impl JsonSchema for ActionExpectation {
    fn schema_name() -> Cow<'static, str> {
        "ActionExpectation".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let status = generator.subschema_for::<StatusDef>();
        let object = generator.subschema_for::<ActionExpectDef>();
        json_schema!({
            "description": "The action's status alone, or a map of expectations.",
            "anyOf": [status, object],
        })
    }
}
