//! Walking a workflow definition: its trigger, parameters and actions (nested ones too) become
//! the coflow flow, in an order that lets most `run_after` entries go unwritten.
//!
//! Each action is translated whole or not at all: anything it holds that has no coflow
//! counterpart (a connector, an expression function, an authentication type) turns the action
//! into a `type: unsupported` placeholder carrying the reason and the source JSON.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value, json};
use serde_yaml::{Mapping, Value as Yaml};

use super::SourceFlow;
use super::conditions::condition;
use super::connectors::{self, Mapped};
use super::report::{FlowReport, TRIGGER};
use crate::expr::pa::{quote, translate_operand, translate_value};

/// Keys whose literal values are credentials: kept out of flow files and placeholders.
const SECRET_KEYS: [&str; 9] = [
    "password",
    "secret",
    "apikey",
    "api-key",
    "api_key",
    "token",
    "authorization",
    "sharedaccesskey",
    "connectionstring",
];

/// Translates a JSON value: every string goes through the expression translator.
pub(super) fn translate_json(value: &Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => Value::String(translate_text(text)?),
        Value::Array(items) => Value::Array(items.iter().map(translate_json).collect::<Result<_, _>>()?),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                if key.starts_with('@') || key.contains("@{") {
                    return Err(format!(
                        "the property name `{key}` is an expression, which coflow does not evaluate"
                    ));
                }
                out.insert(key.clone(), translate_json(value)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Translates one string value (`@expr`, `@{…}` interpolations or plain text).
pub(super) fn translate_text(text: &str) -> Result<String, String> {
    translate_value(text).map_err(|e| format!("cannot translate `{}`: {}", shorten(text), e.message))
}

/// An expression condition (string or designer object) as a `{{ }}` template.
fn translate_condition(value: &Value) -> Result<String, String> {
    let expression = condition(value).map_err(|e| {
        format!("cannot translate the condition `{}`: {}", shorten(&value.to_string()), e.message)
    })?;
    Ok(format!("{{{{ {expression} }}}}"))
}

fn shorten(text: &str) -> String {
    const MAX: usize = 100;
    if text.chars().count() <= MAX {
        return text.to_string();
    }
    let cut: String = text.chars().take(MAX).collect();
    format!("{cut}…")
}

/// A JSON value as YAML.
fn yaml(value: &Value) -> Yaml {
    serde_yaml::to_value(value).unwrap_or_default()
}

fn key(text: &str) -> Yaml {
    Yaml::String(text.to_string())
}

/// The source with literal credentials masked, for a placeholder's `original`.
pub(super) fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    let secret = SECRET_KEYS.iter().any(|s| lower.contains(s));
                    let masked = match v {
                        Value::String(s) if secret && is_literal(s) && !s.is_empty() => {
                            Value::String("***".into())
                        }
                        other => redact(other),
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// Text without any expression in it.
fn is_literal(text: &str) -> bool {
    !text.starts_with('@') && !text.contains("@{")
}

/// The flow as YAML text, and the report of its translation.
pub(super) fn translate(source: &SourceFlow, name: &str) -> (String, FlowReport) {
    let definition = &source.definition;
    let mut cx = Cx {
        references: &source.connection_references,
        report: FlowReport {
            flow: source.display_name.clone(),
            source: source.origin.clone(),
            ..FlowReport::default()
        },
        connectors: BTreeSet::new(),
        renames: Vec::new(),
        responds: false,
    };
    let empty = Map::new();
    let actions = definition.get("actions").and_then(Value::as_object).unwrap_or(&empty);
    let mut names = Vec::new();
    action_names(actions, &mut names, &mut cx.responds);
    let trigger = cx.trigger(definition.get("triggers"));
    let parameters = cx.parameters(definition.get("parameters"));
    let mut actions = Yaml::Mapping(cx.block(actions));
    canonical_references(&mut actions, &names);
    cx.apply_renames(&mut actions);

    let mut doc = Mapping::new();
    doc.insert(key("name"), key(name));
    let description =
        source.description.clone().unwrap_or_else(|| format!("Imported from \"{}\".", source.display_name));
    doc.insert(key("description"), key(&description));
    if !parameters.is_empty() {
        doc.insert(key("parameters"), Yaml::Mapping(parameters));
    }
    if !cx.connectors.is_empty() {
        let mut connections = Mapping::new();
        for connector in &cx.connectors {
            connections.insert(key(alias(connector)), key(connector));
        }
        doc.insert(key("connections"), Yaml::Mapping(connections));
    }
    doc.insert(key("trigger"), Yaml::Mapping(trigger));
    doc.insert(key("actions"), actions);
    let body = super::emit::to_yaml(&Yaml::Mapping(doc));
    (format!("{}{body}", header(source, &cx.report)), cx.report)
}

/// The connection alias a connector kind gets in imported flows.
fn alias(connector: &str) -> &'static str {
    match connector {
        "salesforce" => "sf",
        _ => "pc",
    }
}

fn header(source: &SourceFlow, report: &FlowReport) -> String {
    let mut text = String::from("# yaml-language-server: $schema=../schemas/flow.schema.json\n");
    text.push_str(&format!(
        "# Imported by `coflow import` from \"{}\" ({}).\n",
        one_line(&source.display_name),
        one_line(&source.origin)
    ));
    if !report.attention.is_empty() {
        text.push_str("# Needs attention before it runs like its source:\n");
        for item in &report.attention {
            text.push_str(&format!("#   - {}: {}\n", item.action, one_line(&item.reason)));
        }
        text.push_str("# Placeholders have `type: unsupported`; `coflow validate` lists them.\n");
    }
    text
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

struct Cx<'s> {
    references: &'s Map<String, Value>,
    report: FlowReport,
    /// Connector kinds the flow uses, for its `connections`.
    connectors: BTreeSet<&'static str>,
    /// Body properties coflow names differently: (action, source name, coflow name).
    renames: Vec<(String, &'static str, &'static str)>,
    /// Whether a `Response` action answers the caller somewhere in the flow.
    responds: bool,
}

/// A translated action body: its coflow `type` and its own keys.
type Body = (String, Vec<(&'static str, Yaml)>);

impl Cx<'_> {
    // ---- trigger -----------------------------------------------------------------------------

    fn trigger(&mut self, triggers: Option<&Value>) -> Mapping {
        let mut out = Mapping::new();
        let Some((name, def)) = triggers.and_then(Value::as_object).and_then(|t| t.iter().next()) else {
            self.report.note(TRIGGER, "the definition has no trigger: the flow starts with `coflow run`");
            self.report.trigger_translated = true;
            out.insert(key("type"), key("manual"));
            return out;
        };
        if let Some(all) = triggers.and_then(Value::as_object) {
            for extra in all.keys().skip(1) {
                self.report
                    .attention(TRIGGER, format!("a coflow flow has one trigger: `{extra}` was left out"));
            }
        }
        let translated = self.trigger_body(def);
        self.trigger_options(name, def);
        match translated {
            Ok(settings) => {
                self.report.trigger_translated = true;
                for (k, v) in settings {
                    out.insert(key(&k), yaml(&v));
                }
            }
            Err(reason) => {
                self.report.attention(TRIGGER, &reason);
                out.insert(key("type"), key("unsupported"));
                out.insert(key("reason"), key(&format!("trigger `{name}`: {reason}")));
                out.insert(key("original"), yaml(&redact(def)));
            }
        }
        out
    }

    /// The trigger's settings, `type` first.
    fn trigger_body(&mut self, def: &Value) -> Result<Map<String, Value>, String> {
        let kind = def.get("type").and_then(Value::as_str).unwrap_or_default();
        let inputs = def.get("inputs").cloned().unwrap_or(Value::Null);
        let mut out = Map::new();
        match kind.to_ascii_lowercase().as_str() {
            "request" => self.request_trigger(def, &inputs, &mut out),
            "recurrence" => {
                out.insert("type".into(), json!("recurrence"));
                let recurrence = def.get("recurrence").ok_or("the Recurrence trigger has no `recurrence`")?;
                out.extend(self.recurrence(recurrence)?);
            }
            "openapiconnection" | "apiconnection" => {
                let poll = connectors::salesforce_trigger(def, self.references).ok_or_else(|| {
                    let api =
                        connectors::api_name(&inputs, self.references).unwrap_or_else(|| "unknown".into());
                    let operation =
                        inputs.pointer("/host/operationId").and_then(Value::as_str).unwrap_or("?");
                    format!(
                        "the trigger of connector `{api}` (operation `{operation}`) has no coflow equivalent"
                    )
                })??;
                self.connectors.insert("salesforce");
                out.insert("type".into(), json!("salesforce.poll"));
                out.extend(poll.settings);
                let every = match def.get("recurrence") {
                    Some(recurrence) => self.recurrence(recurrence)?.remove("every"),
                    None => None,
                };
                let every = every.unwrap_or_else(|| {
                    self.report
                        .note(TRIGGER, "the source gives no polling interval: coflow polls every 5 minutes");
                    json!("PT5M")
                });
                out.insert("every".into(), every);
                for note in poll.notes {
                    self.report.note(TRIGGER, note);
                }
                let split = def.get("splitOn").is_some();
                if !split {
                    self.report.note(TRIGGER, "coflow starts one run per record: `triggerBody()` is the record, not a list under `value`");
                }
            }
            "" => return Err("the trigger has no `type`".into()),
            _ => return Err(format!("trigger type `{kind}` has no coflow equivalent")),
        }
        Ok(out)
    }

    fn request_trigger(&mut self, def: &Value, inputs: &Value, out: &mut Map<String, Value>) {
        let kind = def.get("kind").and_then(Value::as_str).unwrap_or("Http");
        let schema = inputs.get("schema").filter(|s| s.as_object().is_some_and(|o| !o.is_empty()));
        let button = kind.eq_ignore_ascii_case("button");
        if button && !self.responds {
            out.insert("type".into(), json!("manual"));
            if let Some(schema) = schema {
                out.insert("inputs".into(), schema.clone());
            }
            return;
        }
        if schema.is_some_and(is_partner_center_event) {
            self.connectors.insert("partner_center");
            out.insert("type".into(), json!("partner_center.webhook"));
            out.insert("events".into(), json!(["referral-created", "referral-updated"]));
            self.report.note(
                TRIGGER,
                "the request carries Partner Center events: partner_center.webhook checks their signature; set `events` to those the registration sends",
            );
            return;
        }
        out.insert("type".into(), json!("http"));
        if let Some(method) = inputs.get("method").and_then(Value::as_str) {
            out.insert("method".into(), json!(method.to_ascii_uppercase()));
        }
        if let Some(schema) = schema {
            out.insert("schema".into(), schema.clone());
        }
        if button {
            // "Respond to a PowerApp or flow" answers the app or parent flow that called this
            // one; in coflow only a request can be answered.
            self.report.note(
                TRIGGER,
                "the flow answers its caller with a response action: the manual (button) trigger became an http trigger at /hooks/<flow name>",
            );
        } else if !kind.eq_ignore_ascii_case("http") {
            self.report.note(
                TRIGGER,
                format!("a `{kind}` request trigger became an http trigger at /hooks/<flow name>"),
            );
        }
        if inputs.get("relativePath").is_some() {
            self.report.note(
                TRIGGER,
                "the request's relativePath parameters are not passed: read them from the body instead",
            );
        }
    }

    /// Trigger options that change when runs start.
    fn trigger_options(&mut self, name: &str, def: &Value) {
        if let Some(conditions) = def.get("conditions").and_then(Value::as_array).filter(|c| !c.is_empty()) {
            let expressions: Vec<String> = conditions
                .iter()
                .filter_map(|c| c.get("expression").and_then(Value::as_str))
                .map(|e| format!("`{}`", shorten(e)))
                .collect();
            self.report.attention(
                TRIGGER,
                format!(
                    "trigger conditions {} of `{name}` were not translated: every event starts a run; add an `if` at the start of the flow",
                    expressions.join(", ")
                ),
            );
        }
        let kind = def.get("type").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
        let polls_records = kind == "openapiconnection" || kind == "apiconnection";
        if let Some(split) = def.get("splitOn").and_then(Value::as_str).filter(|_| !polls_records) {
            self.report.attention(
                TRIGGER,
                format!("`splitOn` ({split}) was not translated: coflow starts one run per event; loop over the items with `foreach`"),
            );
        }
        if def.pointer("/runtimeConfiguration/concurrency").is_some() || def.get("operationOptions").is_some()
        {
            self.report.note(TRIGGER, "trigger concurrency options were left out");
        }
    }

    /// A `recurrence` object as `every` or `cron`, and `time_zone`.
    fn recurrence(&mut self, recurrence: &Value) -> Result<Map<String, Value>, String> {
        let frequency =
            recurrence.get("frequency").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
        let interval = recurrence
            .get("interval")
            .map_or(Some(1), whole)
            .ok_or("the recurrence's `interval` is not a whole number")?;
        let start = recurrence.get("startTime").and_then(Value::as_str);
        let schedule = recurrence.get("schedule").and_then(Value::as_object).filter(|s| !s.is_empty());
        let mut out = Map::new();
        match schedule {
            Some(schedule) => {
                out.insert("cron".into(), Value::String(cron(&frequency, interval, schedule, start)?));
            }
            None => {
                let every = match frequency.as_str() {
                    "second" => format!("PT{interval}S"),
                    "minute" => format!("PT{interval}M"),
                    "hour" => format!("PT{interval}H"),
                    "day" => format!("P{interval}D"),
                    "week" => format!("P{}D", interval * 7),
                    "month" if interval == 1 => {
                        let at = start.and_then(|s| s.parse::<jiff::civil::DateTime>().ok());
                        let at = at
                            .ok_or("a monthly recurrence needs a `startTime` to tell the day of the month")?;
                        out.insert(
                            "cron".into(),
                            json!(format!("{} {} {} * *", at.minute(), at.hour(), at.day())),
                        );
                        return self.time_zone(recurrence, out);
                    }
                    other => {
                        return Err(format!(
                            "a recurrence every {interval} `{other}` has no coflow equivalent"
                        ));
                    }
                };
                if let Some(start) = start {
                    self.report.note(TRIGGER, format!("the recurrence's startTime ({start}) was left out: runs are counted from when `coflow serve` starts"));
                }
                out.insert("every".into(), Value::String(every));
            }
        }
        self.time_zone(recurrence, out)
    }

    fn time_zone(
        &mut self,
        recurrence: &Value,
        mut out: Map<String, Value>,
    ) -> Result<Map<String, Value>, String> {
        let Some(zone) = recurrence.get("timeZone").and_then(Value::as_str) else { return Ok(out) };
        match crate::expr::windows_to_iana(zone) {
            Some(iana) => {
                out.insert("time_zone".into(), json!(iana));
            }
            None if zone.contains('/') => {
                out.insert("time_zone".into(), json!(zone));
            }
            None => return Err(format!("time zone `{zone}` is not a Windows or IANA time zone name")),
        }
        Ok(out)
    }

    // ---- parameters --------------------------------------------------------------------------

    fn parameters(&mut self, parameters: Option<&Value>) -> Mapping {
        let mut out = Mapping::new();
        let Some(parameters) = parameters.and_then(Value::as_object) else { return out };
        for (name, def) in parameters {
            if name.starts_with('$') {
                continue;
            }
            let kind = def.get("type").and_then(Value::as_str).unwrap_or("string").to_ascii_lowercase();
            let (coflow, secure) = match kind.as_str() {
                "int" | "integer" => ("integer", false),
                "float" => ("float", false),
                "bool" | "boolean" => ("boolean", false),
                "array" => ("array", false),
                "object" => ("object", false),
                "secureobject" => ("object", true),
                "securestring" => ("string", true),
                _ => ("string", false),
            };
            let mut parameter = Mapping::new();
            parameter.insert(key("type"), key(coflow));
            match def.get("defaultValue") {
                Some(_) if secure => self.report.note(
                    &format!("parameter {name}"),
                    "its default is secure and was left out: read the value with secret('NAME') instead",
                ),
                Some(default) => {
                    parameter.insert(key("default"), yaml(default));
                }
                None => {}
            }
            if let Some(description) = def.pointer("/metadata/description").and_then(Value::as_str) {
                parameter.insert(key("description"), key(description));
            }
            out.insert(key(name), Yaml::Mapping(parameter));
        }
        out
    }

    // ---- actions -----------------------------------------------------------------------------

    /// The actions of one block, ordered so that each follows what it runs after.
    fn block(&mut self, actions: &Map<String, Value>) -> Mapping {
        let mut out = Mapping::new();
        let mut previous: Option<&str> = None;
        for (position, name) in order(actions).into_iter().enumerate() {
            let def = &actions[name];
            let run_after = run_after(def, position, previous);
            out.insert(key(name), Yaml::Mapping(self.action(name, def, run_after)));
            previous = Some(name);
        }
        out
    }

    fn action(&mut self, name: &str, def: &Value, run_after: Option<Yaml>) -> Mapping {
        let kind = def.get("type").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
        let (type_name, entries) = match self.body(name, &kind, def) {
            Ok(body) => {
                self.report.translated.push(name.to_string());
                self.action_options(name, &kind, def);
                body
            }
            Err(reason) => {
                self.report.attention(name, &reason);
                let entries = vec![("reason", key(&reason)), ("original", yaml(&redact(def)))];
                ("unsupported".to_string(), entries)
            }
        };
        let mut out = Mapping::new();
        out.insert(key("type"), key(&type_name));
        if let Some(description) = def.get("description").and_then(Value::as_str).filter(|d| !d.is_empty()) {
            out.insert(key("description"), key(description));
        }
        if let Some(run_after) = run_after {
            out.insert(key("run_after"), run_after);
        }
        let timeout = def.pointer("/limit/timeout").and_then(Value::as_str).filter(|_| kind != "until");
        if let Some(timeout) = timeout.filter(|_| type_name != "unsupported") {
            out.insert(key("timeout"), key(timeout));
        }
        for (k, v) in entries {
            out.insert(key(k), v);
        }
        out
    }

    /// Options of a translated action that coflow has no place for.
    fn action_options(&mut self, name: &str, kind: &str, def: &Value) {
        if def.pointer("/runtimeConfiguration/staticResult").is_some() {
            self.report.note(name, "its static (mocked) result was left out: the action really runs");
        }
        if def.pointer("/runtimeConfiguration/secureData").is_some() {
            self.report.note(
                name,
                "secure inputs/outputs were left out: coflow masks only values read with secret()",
            );
        }
        if def.get("trackedProperties").is_some() {
            self.report.note(name, "tracked properties were left out");
        }
        let retry = def.pointer("/inputs/retryPolicy").is_some();
        let calls_out = matches!(kind, "http" | "openapiconnection" | "apiconnection");
        if retry && !calls_out {
            self.report.note(name, "its retry policy was left out: only http and connector actions retry");
        }
    }

    fn body(&mut self, name: &str, kind: &str, def: &Value) -> Result<Body, String> {
        let inputs = def.get("inputs").cloned().unwrap_or(Value::Null);
        let plain = |t: &str, entries: Vec<(&'static str, Yaml)>| Ok((t.to_string(), entries));
        match kind {
            "compose" => plain("compose", vec![("inputs", yaml(&translate_json(&inputs)?))]),
            "parsejson" => {
                let content = inputs.get("content").ok_or("Parse JSON has no `content`")?;
                let mut entries = vec![("content", yaml(&translate_json(content)?))];
                // A schema is data, never evaluated: it is copied as written.
                if let Some(schema) = inputs.get("schema").filter(|s| !s.is_null()) {
                    entries.push(("schema", yaml(schema)));
                }
                plain("parse_json", entries)
            }
            "select" => {
                let from = inputs.get("from").ok_or("Select has no `from`")?;
                let map = inputs.get("select").ok_or("Select has no `select`")?;
                plain(
                    "select",
                    vec![("from", yaml(&translate_json(from)?)), ("map", yaml(&translate_json(map)?))],
                )
            }
            "query" => {
                let from = inputs.get("from").ok_or("Filter array has no `from`")?;
                let condition = inputs.get("where").ok_or("Filter array has no `where`")?;
                plain(
                    "filter",
                    vec![
                        ("from", yaml(&translate_json(from)?)),
                        ("where", key(&translate_condition(condition)?)),
                    ],
                )
            }
            "join" => {
                let from = inputs.get("from").ok_or("Join has no `from`")?;
                let separator = inputs.get("joinWith").cloned().unwrap_or(json!(""));
                plain(
                    "join",
                    vec![
                        ("from", yaml(&translate_json(from)?)),
                        ("separator", yaml(&translate_json(&separator)?)),
                    ],
                )
            }
            "initializevariable" => initialize_variable(&inputs),
            "setvariable" => variable_value("set_variable", &inputs),
            "appendtoarrayvariable" => variable_value("append_to_array_variable", &inputs),
            "appendtostringvariable" => variable_value("append_to_string_variable", &inputs),
            "incrementvariable" => variable_by("increment_variable", &inputs),
            "decrementvariable" => variable_by("decrement_variable", &inputs),
            "if" => self.if_action(def),
            "switch" => self.switch_action(def),
            "scope" => plain("scope", vec![("actions", Yaml::Mapping(self.nested(def.get("actions"))))]),
            "foreach" => self.foreach_action(def),
            "until" => self.until_action(def),
            "wait" => wait(&inputs),
            "terminate" => terminate(&inputs),
            "response" => response(&inputs),
            "workflow" => Err(
                "it calls another flow (child flow): import that flow too and call it with a `run_flow` action"
                    .into(),
            ),
            "http" => self.http_action(name, &inputs),
            "openapiconnection" => {
                self.connector_action(name, connectors::open_api_action(&inputs, self.references), &inputs)
            }
            "apiconnection" => self.connector_action(
                name,
                connectors::api_connection_action(&inputs, self.references),
                &inputs,
            ),
            "openapiconnectionwebhook" | "apiconnectionwebhook" | "httpwebhook" => {
                let api = connectors::api_name(&inputs, self.references).unwrap_or_else(|| "http".into());
                Err(format!("it waits for a callback (`{kind}` on `{api}`), which coflow actions cannot do"))
            }
            "expression" => expression_action(def, &inputs),
            "" => Err("the action has no `type`".into()),
            _ => {
                let written = def.get("type").and_then(Value::as_str).unwrap_or(kind);
                Err(format!("action type `{written}` has no coflow equivalent"))
            }
        }
    }

    fn nested(&mut self, actions: Option<&Value>) -> Mapping {
        match actions.and_then(Value::as_object) {
            Some(actions) => self.block(actions),
            None => Mapping::new(),
        }
    }

    fn if_action(&mut self, def: &Value) -> Result<Body, String> {
        let expression = def.get("expression").ok_or("the condition has no `expression`")?;
        let condition = translate_condition(expression)?;
        let then = self.nested(def.get("actions"));
        let otherwise = self.nested(def.pointer("/else/actions"));
        let mut entries = vec![("condition", key(&condition)), ("then", Yaml::Mapping(then))];
        if !otherwise.is_empty() {
            entries.push(("else", Yaml::Mapping(otherwise)));
        }
        Ok(("if".into(), entries))
    }

    fn switch_action(&mut self, def: &Value) -> Result<Body, String> {
        let on = def.get("expression").ok_or("the switch has no `expression`")?;
        let on = translate_json(on)?;
        let cases = def.get("cases").and_then(Value::as_object).cloned().unwrap_or_default();
        // Case values come first so that a bad one leaves no half-translated actions behind.
        let mut values = Vec::with_capacity(cases.len());
        for (name, case) in &cases {
            let value = case.get("case").ok_or_else(|| format!("case `{name}` has no `case` value"))?;
            values.push(
                case_key(value).ok_or_else(|| format!("case `{name}` is not a constant text or number"))?,
            );
        }
        let mut out = Mapping::new();
        for ((_, case), value) in cases.iter().zip(values) {
            out.insert(value, Yaml::Mapping(self.nested(case.get("actions"))));
        }
        let mut entries = vec![("on", yaml(&on)), ("cases", Yaml::Mapping(out))];
        let default = self.nested(def.pointer("/default/actions"));
        if !default.is_empty() {
            entries.push(("default", Yaml::Mapping(default)));
        }
        Ok(("switch".into(), entries))
    }

    fn foreach_action(&mut self, def: &Value) -> Result<Body, String> {
        let items = def.get("foreach").ok_or("the loop has no `foreach`")?;
        let items = translate_json(items)?;
        let sequential = def
            .get("operationOptions")
            .and_then(Value::as_str)
            .is_some_and(|o| o.eq_ignore_ascii_case("sequential"));
        let repetitions = def.pointer("/runtimeConfiguration/concurrency/repetitions").and_then(whole);
        let mut entries = vec![("items", yaml(&items))];
        match repetitions {
            Some(n) if !sequential && n > 1 => entries.push(("concurrency", Yaml::Number(n.into()))),
            _ => {}
        }
        entries.push(("actions", Yaml::Mapping(self.nested(def.get("actions")))));
        Ok(("foreach".into(), entries))
    }

    fn until_action(&mut self, def: &Value) -> Result<Body, String> {
        let expression = def.get("expression").ok_or("the loop has no `expression`")?;
        let condition = translate_condition(expression)?;
        let mut entries = vec![("condition", key(&condition))];
        if let Some(limit) = def.get("limit").and_then(Value::as_object) {
            let mut out = Mapping::new();
            if let Some(count) = limit.get("count") {
                let count = whole(count).ok_or("the loop's `limit.count` is not a whole number")?;
                out.insert(key("count"), Yaml::Number(count.into()));
            }
            if let Some(timeout) = limit.get("timeout").and_then(Value::as_str) {
                if !is_literal(timeout) {
                    return Err(
                        "the loop's `limit.timeout` is an expression; coflow needs a fixed duration".into()
                    );
                }
                out.insert(key("timeout"), key(timeout));
            }
            if !out.is_empty() {
                entries.push(("limit", Yaml::Mapping(out)));
            }
        }
        entries.push(("actions", Yaml::Mapping(self.nested(def.get("actions")))));
        Ok(("until".into(), entries))
    }

    fn http_action(&mut self, name: &str, inputs: &Value) -> Result<Body, String> {
        if let Some(mapping) = connectors::partner_center_http(inputs) {
            return self.connector_action(name, mapping, inputs);
        }
        let method = inputs.get("method").ok_or("the HTTP action has no `method`")?;
        let url = inputs.get("uri").ok_or("the HTTP action has no `uri`")?;
        let mut entries =
            vec![("method", yaml(&translate_json(method)?)), ("url", yaml(&translate_json(url)?))];
        if let Some(headers) = inputs.get("headers") {
            entries.push(("headers", yaml(&self.secret_headers(name, headers)?)));
        }
        if let Some(query) = inputs.get("queries") {
            entries.push(("query", yaml(&translate_json(query)?)));
        }
        if let Some(body) = inputs.get("body") {
            entries.push(("body", yaml(&self.secret_form_fields(name, body)?)));
        }
        if let Some(auth) = inputs.get("authentication") {
            if let Some(auth) = self.authentication(name, auth)? {
                entries.push(("authentication", yaml(&auth)));
            }
        }
        if let Some(retry) = retry(inputs)? {
            entries.push(("retry", retry));
        }
        if url.as_str().is_some_and(|u| u.to_ascii_lowercase().contains("login.microsoftonline.com")) {
            self.report.note(name, "it signs in to Azure AD; coflow's connectors sign in through their connection in coflow.yaml, so it may be unneeded");
        }
        Ok(("http".into(), entries))
    }

    fn connector_action(
        &mut self,
        name: &str,
        mapping: connectors::Mapping,
        inputs: &Value,
    ) -> Result<Body, String> {
        let Mapped { connector, operation, inputs: operation_inputs, notes, renames } = mapping?;
        let retry = retry(inputs)?;
        self.connectors.insert(connector);
        for note in notes {
            self.report.note(name, note);
        }
        for (from, to) in renames {
            self.renames.push((name.to_string(), from, to));
        }
        let mut entries = Vec::new();
        if !operation_inputs.is_empty() {
            entries.push(("inputs", yaml(&Value::Object(operation_inputs))));
        }
        if let Some(retry) = retry {
            entries.push(("retry", retry));
        }
        Ok((format!("{connector}.{operation}"), entries))
    }

    /// `authentication` of an HTTP action: basic and raw carry over, credentials written as
    /// text become secrets.
    fn authentication(&mut self, name: &str, auth: &Value) -> Result<Option<Value>, String> {
        if auth.as_str().is_some() {
            return Err("its authentication is an expression, which coflow cannot tell the type of".into());
        }
        let kind = auth.get("type").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
        let mut out = Map::new();
        match kind.as_str() {
            "none" => return Ok(None),
            "basic" => {
                out.insert("type".into(), json!("basic"));
                out.insert("username".into(), translate_json(auth.get("username").unwrap_or(&Value::Null))?);
                out.insert("password".into(), self.secret_value(name, "password", auth.get("password"))?);
            }
            "raw" => {
                out.insert("type".into(), json!("raw"));
                out.insert("value".into(), self.secret_value(name, "authorization", auth.get("value"))?);
            }
            other => {
                return Err(format!(
                    "authentication type `{other}` is not supported by the http action (basic, bearer, raw); call the API through a connector or pass a token read with secret()"
                ));
            }
        }
        Ok(Some(Value::Object(out)))
    }

    /// A credential: an expression is translated, text becomes `secret('ACTION_FIELD')`.
    fn secret_value(&mut self, name: &str, field: &str, value: Option<&Value>) -> Result<Value, String> {
        match value {
            Some(Value::String(text)) if is_literal(text) && !text.is_empty() => {
                let secret = secret_name(name, field);
                self.report.note(name, format!("its {field} was written in the flow: it now reads secret('{secret}'); set that secret"));
                Ok(Value::String(format!("{{{{ secret('{secret}') }}}}")))
            }
            Some(value) => translate_json(value),
            None => Ok(Value::Null),
        }
    }

    fn secret_headers(&mut self, name: &str, headers: &Value) -> Result<Value, String> {
        let Value::Object(headers) = headers else { return translate_json(headers) };
        let mut out = Map::new();
        for (header, value) in headers {
            let lower = header.to_ascii_lowercase();
            let secret = SECRET_KEYS.iter().any(|s| lower.contains(s));
            let value = if secret {
                self.secret_value(name, &lower.replace('-', "_"), Some(value))?
            } else {
                translate_json(value)?
            };
            out.insert(header.clone(), value);
        }
        Ok(Value::Object(out))
    }

    /// A form body (`grant_type=…&client_secret=…`) with a credential written as text gets it
    /// from a secret instead.
    fn secret_form_fields(&mut self, name: &str, body: &Value) -> Result<Value, String> {
        static FORM_SECRET: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"(?i)\b(client_secret|password)=([^&@\s]+)").expect("valid regex"));
        let Value::String(text) = body else { return translate_json(body) };
        let Some(found) = FORM_SECRET.captures(text) else { return translate_json(body) };
        let field = found[1].to_ascii_lowercase();
        let secret = secret_name(name, &field);
        let replaced =
            FORM_SECRET.replace_all(text, |c: &regex::Captures| format!("{}=@{{secret('{secret}')}}", &c[1]));
        let translated = translate_text(&replaced)?;
        self.report.note(
            name,
            format!("its {field} was written in the body: it now reads secret('{secret}'); set that secret"),
        );
        Ok(Value::String(translated))
    }

    // ---- output renames ----------------------------------------------------------------------

    /// Rewrites references to body properties coflow names differently (`value` → `records`).
    fn apply_renames(&self, actions: &mut Yaml) {
        if self.renames.is_empty() {
            return;
        }
        let rules: Vec<(Regex, String)> =
            self.renames.iter().flat_map(|(action, from, to)| rename_rules(action, from, to)).collect();
        rewrite_strings(actions, &rules);
    }
}

/// Regexes matching a read of `from` in the body of `action`, with their replacement.
fn rename_rules(action: &str, from: &str, to: &str) -> Vec<(Regex, String)> {
    let name = regex::escape(&action.replace('\\', "\\\\").replace('\'', "\\'"));
    let from = regex::escape(from);
    let patterns = [
        (format!(r"(opt\(body\('{name}'\), ')({from})'"), "${1}TO'"),
        (format!(r"(opt\(outputs\('{name}'\), 'body', ')({from})'"), "${1}TO'"),
        (format!(r"(body\('{name}'\)\.)({from})\b"), "${1}TO"),
        (format!(r"(body\('{name}'\)\[')({from})'\]"), "${1}TO']"),
        (format!(r"(outputs\('{name}'\)\.body\.)({from})\b"), "${1}TO"),
    ];
    patterns
        .into_iter()
        .filter_map(|(pattern, replacement)| {
            Regex::new(&pattern).ok().map(|re| (re, replacement.replace("TO", to)))
        })
        .collect()
}

fn rewrite_strings(value: &mut Yaml, rules: &[(Regex, String)]) {
    match value {
        Yaml::String(text) if text.contains("{{") => {
            for (re, replacement) in rules {
                if re.is_match(text) {
                    *text = re.replace_all(text, replacement.as_str()).into_owned();
                }
            }
        }
        Yaml::Mapping(map) => map.iter_mut().for_each(|(_, v)| rewrite_strings(v, rules)),
        Yaml::Sequence(items) => items.iter_mut().for_each(|v| rewrite_strings(v, rules)),
        _ => {}
    }
}

/// `HTTP_call`, `password` → `HTTP_CALL_PASSWORD`.
fn secret_name(action: &str, field: &str) -> String {
    let raw = format!("{action}_{field}");
    let mut name: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    name.trim_matches('_').to_string()
}

fn whole(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A Request trigger whose body schema is a Partner Center event (`EventName`, `ResourceUri`).
fn is_partner_center_event(schema: &Value) -> bool {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return false };
    let has = |name: &str| properties.keys().any(|k| k.eq_ignore_ascii_case(name));
    has("EventName") && has("ResourceUri")
}

fn cron(
    frequency: &str,
    interval: u64,
    schedule: &Map<String, Value>,
    start: Option<&str>,
) -> Result<String, String> {
    if interval != 1 {
        return Err(format!("a schedule that repeats every {interval} {frequency}s has no cron equivalent"));
    }
    if schedule.contains_key("monthDays") || schedule.contains_key("monthlyOccurrences") {
        return Err(
            "monthly schedules (monthDays, monthlyOccurrences) have no coflow equivalent: write a `cron`"
                .into(),
        );
    }
    let at = start.and_then(|s| s.parse::<jiff::civil::DateTime>().ok());
    let list = |key: &str, default: String| -> Result<String, String> {
        match schedule.get(key) {
            None => Ok(default),
            Some(Value::Array(items)) if !items.is_empty() => {
                let numbers: Option<Vec<String>> =
                    items.iter().map(|i| whole(i).map(|n| n.to_string())).collect();
                numbers
                    .map(|n| n.join(","))
                    .ok_or_else(|| format!("the schedule's `{key}` are not whole numbers"))
            }
            Some(_) => Err(format!("the schedule's `{key}` is not a list")),
        }
    };
    let minutes = list("minutes", at.map_or(0, |a| i64::from(a.minute())).to_string())?;
    let hours = list("hours", at.map_or(0, |a| i64::from(a.hour())).to_string())?;
    let days = match schedule.get("weekDays") {
        None => "*".to_string(),
        Some(Value::Array(days)) => {
            let numbers: Option<Vec<&str>> = days.iter().map(|d| d.as_str().and_then(week_day)).collect();
            numbers.ok_or("the schedule's `weekDays` are not day names")?.join(",")
        }
        Some(_) => return Err("the schedule's `weekDays` is not a list".into()),
    };
    match frequency {
        "hour" => Ok(format!("{minutes} * * * {days}")),
        "day" | "week" => Ok(format!("{minutes} {hours} * * {days}")),
        other => Err(format!("a schedule on a `{other}` recurrence has no coflow equivalent")),
    }
}

fn week_day(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "sunday" => "0",
        "monday" => "1",
        "tuesday" => "2",
        "wednesday" => "3",
        "thursday" => "4",
        "friday" => "5",
        "saturday" => "6",
        _ => return None,
    })
}

/// The actions' order: each after the actions it runs after, the successor of the action just
/// placed first (so its `run_after` can go unwritten), otherwise the order of the source.
fn order(actions: &Map<String, Value>) -> Vec<&str> {
    let names: Vec<&str> = actions.keys().map(String::as_str).collect();
    let predecessors: Vec<Vec<&str>> = actions
        .values()
        .map(|def| {
            def.get("runAfter")
                .and_then(Value::as_object)
                .map(|r| r.keys().map(String::as_str).filter(|p| actions.contains_key(*p)).collect())
                .unwrap_or_default()
        })
        .collect();
    let mut placed = vec![false; names.len()];
    let mut out: Vec<&str> = Vec::with_capacity(names.len());
    while out.len() < names.len() {
        let ready = |i: usize, out: &[&str]| !placed[i] && predecessors[i].iter().all(|p| out.contains(p));
        let follows_last = |i: usize| {
            out.last().is_some_and(|last| single_success(&actions[names[i]]).is_some_and(|p| p == *last))
        };
        let next = (0..names.len())
            .find(|&i| ready(i, &out) && follows_last(i))
            .or_else(|| (0..names.len()).find(|&i| ready(i, &out)))
            // A cycle: keep the source's order and let validation report it.
            .or_else(|| (0..names.len()).find(|&i| !placed[i]));
        let Some(next) = next else { break };
        placed[next] = true;
        out.push(names[next]);
    }
    out
}

/// The predecessor of an action that runs after exactly one action's success.
fn single_success(def: &Value) -> Option<&str> {
    let run_after = def.get("runAfter")?.as_object()?;
    let (name, statuses) = run_after.iter().next().filter(|_| run_after.len() == 1)?;
    let statuses = statuses.as_array()?;
    let only_success =
        statuses.len() == 1 && statuses[0].as_str().is_some_and(|s| s.eq_ignore_ascii_case("succeeded"));
    only_success.then_some(name.as_str())
}

/// The `run_after` to write, or `None` when coflow's default (the action written just before,
/// `[succeeded]`; nothing for the first) says the same.
fn run_after(def: &Value, position: usize, previous: Option<&str>) -> Option<Yaml> {
    let entries = def.get("runAfter").and_then(Value::as_object).filter(|r| !r.is_empty());
    let Some(entries) = entries else {
        return (position > 0).then(|| Yaml::Mapping(Mapping::new()));
    };
    if previous.is_some() && single_success(def) == previous {
        return None;
    }
    let mut out = Mapping::new();
    for (name, statuses) in entries {
        let statuses: Vec<Yaml> = statuses
            .as_array()
            .map(|s| s.iter().filter_map(Value::as_str).map(|s| key(&status(s))).collect())
            .unwrap_or_default();
        out.insert(key(name), Yaml::Sequence(statuses));
    }
    Some(Yaml::Mapping(out))
}

/// `TimedOut` → `timed_out`, `Succeeded` → `succeeded`.
fn status(text: &str) -> String {
    match text.to_ascii_lowercase().as_str() {
        "timedout" => "timed_out".into(),
        other => other.to_string(),
    }
}

fn case_key(value: &Value) -> Option<Yaml> {
    match value {
        Value::String(s) if is_literal(s) => Some(key(s)),
        Value::Number(_) | Value::Bool(_) => Some(yaml(value)),
        _ => None,
    }
}

/// A built-in "Date Time" action (`type: Expression`): "Convert time zone" becomes a `compose`
/// of `convertTimeZone()`, which yields the same text.
fn expression_action(def: &Value, inputs: &Value) -> Result<Body, String> {
    let what = def.get("kind").and_then(Value::as_str).unwrap_or("Expression");
    if !what.eq_ignore_ascii_case("ConvertTimeZone") {
        return Err(format!(
            "the built-in `{what}` action has no coflow equivalent: use a `compose` with the matching function"
        ));
    }
    let operand = |name: &str| -> Result<Option<String>, String> {
        let Some(value) = inputs.get(name) else { return Ok(None) };
        translate_operand(value)
            .map(Some)
            .map_err(|e| format!("cannot translate `{}`: {}", shorten(&value.to_string()), e.message))
    };
    let mut args = Vec::with_capacity(4);
    for name in ["baseTime", "sourceTimeZone", "destinationTimeZone"] {
        args.push(operand(name)?.ok_or_else(|| format!("Convert time zone has no `{name}`"))?);
    }
    args.extend(operand("formatString")?);
    let inputs = format!("{{{{ convertTimeZone({}) }}}}", args.join(", "));
    Ok(("compose".into(), vec![("inputs", key(&inputs))]))
}

/// Collects every action name of a block, nested ones too, and notes whether one of them is
/// a `Response`.
fn action_names(actions: &Map<String, Value>, names: &mut Vec<String>, responds: &mut bool) {
    for (name, def) in actions {
        names.push(name.clone());
        let kind = def.get("type").and_then(Value::as_str).unwrap_or_default();
        *responds |= kind.eq_ignore_ascii_case("response");
        let cases = def.get("cases").and_then(Value::as_object).into_iter().flat_map(|c| c.values());
        let blocks = [def.get("actions"), def.pointer("/else/actions"), def.pointer("/default/actions")]
            .into_iter()
            .flatten()
            .chain(cases.filter_map(|case| case.get("actions")));
        for block in blocks.filter_map(Value::as_object) {
            action_names(block, names, responds);
        }
    }
}

/// Power Automate finds actions by name whatever the case (`body('get_items')` reads
/// `Get_items`); coflow names are exact, so references take the case of the action they mean.
fn canonical_references(actions: &mut Yaml, names: &[String]) {
    static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b(body|outputs|actions|result|items|iterationIndexes)\('((?:[^'\\]|\\.)*)'\)")
            .expect("valid regex")
    });
    let by_lower: std::collections::HashMap<String, &str> =
        names.iter().map(|n| (n.to_lowercase(), n.as_str())).collect();
    let fix = |text: &mut String| {
        let fixed = REFERENCE.replace_all(text, |c: &regex::Captures| {
            let written = unquote(&c[2]);
            match by_lower.get(&written.to_lowercase()) {
                Some(name) if *name != written => format!("{}({})", &c[1], quote(name)),
                _ => c[0].to_string(),
            }
        });
        if let std::borrow::Cow::Owned(fixed) = fixed {
            *text = fixed;
        }
    };
    visit_templates(actions, &fix);
}

/// The text of a quoted coflow string literal's inside (`it\'s` → `it's`).
fn unquote(inside: &str) -> String {
    let mut out = String::with_capacity(inside.len());
    let mut chars = inside.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Calls `f` on every string of `value` that holds a template.
fn visit_templates(value: &mut Yaml, f: &impl Fn(&mut String)) {
    match value {
        Yaml::String(text) if text.contains("{{") => f(text),
        Yaml::Mapping(map) => map.iter_mut().for_each(|(_, v)| visit_templates(v, f)),
        Yaml::Sequence(items) => items.iter_mut().for_each(|v| visit_templates(v, f)),
        _ => {}
    }
}

fn initialize_variable(inputs: &Value) -> Result<Body, String> {
    let variables =
        inputs.get("variables").and_then(Value::as_array).ok_or("Initialize variable has no `variables`")?;
    let [variable] = variables.as_slice() else {
        return Err("Initialize variable declares exactly one variable".into());
    };
    let name = variable.get("name").and_then(Value::as_str).ok_or("the variable has no `name`")?;
    let kind = variable.get("type").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    let kind = match kind.as_str() {
        "boolean" | "integer" | "float" | "string" | "array" | "object" => kind,
        other => return Err(format!("variable type `{other}` has no coflow equivalent")),
    };
    let mut entries = vec![("name", key(name)), ("variable_type", key(&kind))];
    if let Some(value) = variable.get("value") {
        entries.push(("value", yaml(&translate_json(value)?)));
    }
    Ok(("initialize_variable".into(), entries))
}

fn variable_value(kind: &str, inputs: &Value) -> Result<Body, String> {
    let name = inputs.get("name").and_then(Value::as_str).ok_or("the action names no variable")?;
    let value = inputs.get("value").cloned().unwrap_or(Value::Null);
    Ok((kind.into(), vec![("name", key(name)), ("value", yaml(&translate_json(&value)?))]))
}

fn variable_by(kind: &str, inputs: &Value) -> Result<Body, String> {
    let name = inputs.get("name").and_then(Value::as_str).ok_or("the action names no variable")?;
    let mut entries = vec![("name", key(name))];
    if let Some(by) = inputs.get("value") {
        entries.push(("by", yaml(&translate_json(by)?)));
    }
    Ok((kind.into(), entries))
}

fn wait(inputs: &Value) -> Result<Body, String> {
    if let Some(until) = inputs.pointer("/until/timestamp") {
        return Ok(("delay".into(), vec![("until", yaml(&translate_json(until)?))]));
    }
    let interval = inputs.get("interval").ok_or("Delay has neither `interval` nor `until`")?;
    let count = interval.get("count").and_then(whole).ok_or("the delay's `count` is not a whole number")?;
    let unit = interval.get("unit").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    let duration = match unit.as_str() {
        "second" => format!("PT{count}S"),
        "minute" => format!("PT{count}M"),
        "hour" => format!("PT{count}H"),
        "day" => format!("P{count}D"),
        "week" => format!("P{}D", count * 7),
        other => return Err(format!("a delay in `{other}` units has no fixed length")),
    };
    Ok(("delay".into(), vec![("duration", key(&duration))]))
}

fn terminate(inputs: &Value) -> Result<Body, String> {
    let status = inputs.get("runStatus").and_then(Value::as_str).unwrap_or("Failed").to_ascii_lowercase();
    if !matches!(status.as_str(), "succeeded" | "failed" | "cancelled") {
        return Err(format!("terminate status `{status}` is not succeeded, failed or cancelled"));
    }
    let mut entries = vec![("status", key(&status))];
    if let Some(code) = inputs.pointer("/runError/code") {
        entries.push(("code", yaml(&translate_json(code)?)));
    }
    if let Some(message) = inputs.pointer("/runError/message") {
        entries.push(("message", yaml(&translate_json(message)?)));
    }
    Ok(("terminate".into(), entries))
}

fn response(inputs: &Value) -> Result<Body, String> {
    let mut entries = Vec::new();
    for (from, to) in [("statusCode", "status"), ("headers", "headers"), ("body", "body")] {
        if let Some(value) = inputs.get(from) {
            entries.push((to, yaml(&translate_json(value)?)));
        }
    }
    Ok(("response".into(), entries))
}

/// `retryPolicy` as `retry`; `None` for the platform default.
fn retry(inputs: &Value) -> Result<Option<Yaml>, String> {
    let Some(policy) = inputs.get("retryPolicy") else { return Ok(None) };
    let kind = policy.get("type").and_then(Value::as_str).unwrap_or("default").to_ascii_lowercase();
    let mut out = Mapping::new();
    match kind.as_str() {
        "default" => return Ok(None),
        "none" | "fixed" | "exponential" => {
            out.insert(key("type"), key(&kind));
        }
        other => return Err(format!("retry policy type `{other}` has no coflow equivalent")),
    }
    if kind != "none" {
        if let Some(count) = policy.get("count") {
            let count = whole(count).ok_or("the retry policy's `count` is not a whole number")?;
            out.insert(key("count"), Yaml::Number(count.into()));
        }
        for (from, to) in [
            ("interval", "interval"),
            ("minimumInterval", "min_interval"),
            ("maximumInterval", "max_interval"),
        ] {
            if let Some(value) = policy.get(from).and_then(Value::as_str) {
                out.insert(key(to), key(value));
            }
        }
    }
    Ok(Some(Yaml::Mapping(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_run_after_and_keeps_chains_together() {
        let actions: Map<String, Value> = serde_json::from_value(json!({
            "C": {"runAfter": {"A": ["Succeeded"]}},
            "B": {"runAfter": {}},
            "A": {"runAfter": {}},
            "D": {"runAfter": {"C": ["Failed", "TimedOut"], "B": ["Succeeded"]}},
        }))
        .unwrap();
        assert_eq!(order(&actions), vec!["B", "A", "C", "D"]);
        assert_eq!(run_after(&actions["B"], 0, None), None);
        assert_eq!(run_after(&actions["A"], 1, Some("B")), Some(Yaml::Mapping(Mapping::new())));
        assert_eq!(run_after(&actions["C"], 2, Some("A")), None);
        let written = serde_yaml::to_string(&run_after(&actions["D"], 3, Some("C")).unwrap()).unwrap();
        assert_eq!(written, "C:\n- failed\n- timed_out\nB:\n- succeeded\n");
    }

    #[test]
    fn credentials_are_masked_and_named() {
        let masked = redact(&json!({"password": "hunter22", "token": "@body('a')", "user": "me"}));
        assert_eq!(masked, json!({"password": "***", "token": "@body('a')", "user": "me"}));
        assert_eq!(secret_name("Call API (v2)", "password"), "CALL_API_V2_PASSWORD");
    }

    #[test]
    fn references_take_the_case_of_the_action_they_mean() {
        let names = vec!["Get_Items".to_string(), "Set_'Status'".to_string(), "Loop".to_string()];
        let mut actions = yaml(&json!({
            "A": {"type": "compose", "inputs": "{{ opt(body('get_items'), 'value') }} {{ outputs('Get_Items') }}"},
            "B": {"type": "compose", "inputs": "{{ actions('set_\\'status\\'').status }} {{ items('LOOP') }} {{ body('Unknown') }}"},
            "C": {"type": "compose", "inputs": "body('get_items') is text, not a template"},
        }));
        canonical_references(&mut actions, &names);
        let inputs = |name: &str| actions[name]["inputs"].as_str().unwrap().to_string();
        assert_eq!(inputs("A"), "{{ opt(body('Get_Items'), 'value') }} {{ outputs('Get_Items') }}");
        assert_eq!(
            inputs("B"),
            "{{ actions('Set_\\'Status\\'').status }} {{ items('Loop') }} {{ body('Unknown') }}"
        );
        assert_eq!(inputs("C"), "body('get_items') is text, not a template");
        assert_eq!(unquote(r"it\'s \\ a\nb"), "it's \\ a\nb");
    }

    #[test]
    fn convert_time_zone_actions_become_a_compose() {
        let def = json!({"type": "Expression", "kind": "ConvertTimeZone", "inputs": {
            "baseTime": "@{addDays(utcNow(),1)}", "formatString": "yyyy-MM-dd",
            "sourceTimeZone": "UTC", "destinationTimeZone": "W. Europe Standard Time"}});
        let (kind, entries) = expression_action(&def, &def["inputs"]).unwrap();
        assert_eq!(kind, "compose");
        assert_eq!(
            entries,
            vec![(
                "inputs",
                key(
                    "{{ convertTimeZone(string(addDays(utcNow(), 1)), 'UTC', 'W. Europe Standard Time', 'yyyy-MM-dd') }}"
                )
            )]
        );
        let missing = json!({"type": "Expression", "kind": "ConvertTimeZone", "inputs": {"baseTime": "x"}});
        assert!(expression_action(&missing, &missing["inputs"]).unwrap_err().contains("`sourceTimeZone`"));
        let other = json!({"type": "Expression", "kind": "GetPastTime", "inputs": {}});
        assert!(expression_action(&other, &other["inputs"]).unwrap_err().contains("`GetPastTime`"));
    }

    #[test]
    fn a_button_flow_that_answers_its_caller_gets_an_http_trigger() {
        let flow = |actions: Value| SourceFlow {
            display_name: "Child".into(),
            origin: "test".into(),
            description: None,
            definition: json!({
                "triggers": {"manual": {"type": "Request", "kind": "Button",
                    "inputs": {"schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}}},
                "actions": actions,
            }),
            connection_references: Map::new(),
        };
        let respond = json!({"Check": {"type": "If", "expression": "@true", "runAfter": {},
            "actions": {"Answer": {"type": "Response", "kind": "PowerApp", "inputs": {"statusCode": 200}}}}});
        let (yaml, report) = translate(&flow(respond), "child");
        let def: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(def["trigger"]["type"], json!("http"));
        assert_eq!(def["trigger"]["schema"]["properties"]["n"], json!({"type": "integer"}));
        assert!(report.notes.iter().any(|n| n.action == TRIGGER && n.note.contains("answers its caller")));
        let quiet = json!({"Log": {"type": "Compose", "inputs": 1, "runAfter": {}}});
        let (yaml, _) = translate(&flow(quiet), "child");
        let def: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(def["trigger"]["type"], json!("manual"));
    }

    #[test]
    fn schedules_become_cron() {
        let schedule: Map<String, Value> = serde_json::from_value(
            json!({"hours": ["6", 18], "minutes": [30], "weekDays": ["Monday", "Friday"]}),
        )
        .unwrap();
        assert_eq!(cron("week", 1, &schedule, None).unwrap(), "30 6,18 * * 1,5");
        assert!(cron("day", 2, &schedule, None).is_err());
    }
}
