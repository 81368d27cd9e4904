//! Decoding a positioned YAML tree into a [`FlowDef`], collecting every shape problem.
//!
//! Each map is read through [`Fields`], which remembers the keys asked for: what is left over is
//! an unknown key (with a did-you-mean from the keys of that very type), what was required and
//! absent is a missing key. Decoding goes on after a problem so that one file reports all of them.

use std::borrow::Cow;
use std::collections::BTreeSet;

use indexmap::IndexMap;

use super::def::*;
use super::diagnostic::{Diagnostic, did_you_mean};
use super::yaml::{Node, NodeValue, Span};

/// Built-in action types, by their name in flow files.
pub const BUILTIN_ACTION_TYPES: [&str; 22] = [
    "compose",
    "parse_json",
    "select",
    "filter",
    "join",
    "initialize_variable",
    "set_variable",
    "increment_variable",
    "decrement_variable",
    "append_to_array_variable",
    "append_to_string_variable",
    "if",
    "switch",
    "scope",
    "foreach",
    "until",
    "delay",
    "terminate",
    "response",
    "http",
    "run_flow",
    "unsupported",
];

/// Built-in trigger types.
pub const BUILTIN_TRIGGER_TYPES: [&str; 4] = ["manual", "http", "recurrence", "unsupported"];

const RUN_AFTER_HINT: &str = "expected a list of statuses: succeeded, failed, skipped, timed_out";

/// A decoded flow and the names of actions too broken to decode (so later checks do not
/// report references to them as unknown).
pub(crate) struct Decoded {
    pub def: FlowDef,
    pub broken: BTreeSet<String>,
}

/// Decodes a whole flow file. `None` when the document is not a map at all.
pub(crate) fn decode(root: &Node, diagnostics: &mut Vec<Diagnostic>) -> Option<Decoded> {
    let mut cx = Cx { diagnostics, broken: BTreeSet::new(), keys: None };
    let mut f = Fields::of(root, "the flow".into(), root.span, &mut cx)?;
    let name =
        f.require("name").and_then(|n| text(n, &mut cx)).unwrap_or_else(|| spanned(String::new(), root.span));
    let description = f.get("description").and_then(|n| text(n, &mut cx)).map(|s| s.value);
    let parameters =
        f.get("parameters").map(|n| map_of(n, "parameters", &mut cx, parameter)).unwrap_or_default();
    let connections = f
        .get("connections")
        .map(|n| map_of(n, "connections", &mut cx, |_, v, cx| text(v, cx).map(|s| s.value)))
        .unwrap_or_default();
    let trigger = f.require("trigger").and_then(|n| trigger(n, &mut cx));
    let actions = f.get("actions").map(|n| actions(n, &mut cx)).unwrap_or_default();
    f.finish(&mut cx);
    let trigger = trigger.unwrap_or(TriggerDef::Manual(ManualTrigger { inputs: None }));
    let def = FlowDef { name, description, parameters, connections, trigger, actions };
    Some(Decoded { def, broken: cx.broken })
}

/// The keys an action of `type_name` accepts (its own and the common ones), or `None` for an
/// unknown type. Used by docs and by the test that keeps the schema and the loader in step.
pub fn action_keys(type_name: &str) -> Option<Vec<&'static str>> {
    let mut diagnostics = Vec::new();
    let mut cx = Cx { diagnostics: &mut diagnostics, broken: BTreeSet::new(), keys: Some(Vec::new()) };
    let span = Span::at(1, 1, 1);
    let key = Node { value: NodeValue::String("probe".into()), span };
    let node = Node {
        value: NodeValue::Map(vec![(
            Node { value: NodeValue::String("type".into()), span },
            Node { value: NodeValue::String(type_name.into()), span },
        )]),
        span,
    };
    action(&key, &node, &mut cx)?;
    cx.keys
}

struct Cx<'d> {
    diagnostics: &'d mut Vec<Diagnostic>,
    broken: BTreeSet<String>,
    /// When set, [`Fields::finish`] records the keys each map accepts here.
    keys: Option<Vec<&'static str>>,
}

impl Cx<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }
}

/// The entries of one YAML map, read key by key.
struct Fields<'n> {
    what: String,
    type_name: Option<String>,
    anchor: Span,
    entries: Vec<(Cow<'n, str>, &'n Node, &'n Node)>,
    used: Vec<bool>,
    known: Vec<&'static str>,
    missing: Vec<&'static str>,
    open: bool,
}

impl<'n> Fields<'n> {
    /// Reads `node` as a map; null counts as an empty map.
    fn of(node: &'n Node, what: String, anchor: Span, cx: &mut Cx) -> Option<Self> {
        let entries = match &node.value {
            NodeValue::Null => Vec::new(),
            NodeValue::Map(entries) => {
                entries.iter().filter_map(|(k, v)| Some((k.key_str()?, k, v))).collect::<Vec<_>>()
            }
            _ => {
                cx.push(
                    Diagnostic::error(
                        "wrong_type",
                        node.span,
                        format!("expected a map for {what}, found {}", node.describe()),
                    )
                    .with_hint("write `key: value` pairs, one per line, indented under the name"),
                );
                return None;
            }
        };
        let used = vec![false; entries.len()];
        Some(Fields {
            what,
            type_name: None,
            anchor,
            entries,
            used,
            known: Vec::new(),
            missing: Vec::new(),
            open: false,
        })
    }

    fn get(&mut self, key: &'static str) -> Option<&'n Node> {
        self.known.push(key);
        let index = self.entries.iter().position(|(k, _, _)| k == key)?;
        self.used[index] = true;
        Some(self.entries[index].2)
    }

    fn require(&mut self, key: &'static str) -> Option<&'n Node> {
        let found = self.get(key);
        if found.is_none() {
            self.missing.push(key);
        }
        found
    }

    /// A required value, or a null placeholder when missing (the problem is reported by `finish`).
    fn node(&mut self, key: &'static str) -> Node {
        self.require(key).cloned().unwrap_or_else(|| Node::null(self.anchor))
    }

    /// The entries not asked for yet; they are accepted as they are.
    fn rest(&mut self) -> IndexMap<String, Node> {
        self.open = true;
        let mut rest = IndexMap::new();
        for (index, (key, _, value)) in self.entries.iter().enumerate() {
            if !self.used[index] {
                self.used[index] = true;
                rest.insert(key.to_string(), (*value).clone());
            }
        }
        rest
    }

    fn subject(&self) -> String {
        match &self.type_name {
            Some(t) => format!("{} (type `{t}`)", self.what),
            None => self.what.clone(),
        }
    }

    fn accepted(&self) -> String {
        let keys: Vec<&str> = self.known.iter().copied().filter(|k| *k != "type").collect();
        let owner = match &self.type_name {
            Some(t) => format!("`{t}` takes"),
            None => format!("{} takes", self.what),
        };
        if keys.is_empty() {
            format!("{owner} no other keys")
        } else {
            format!("{owner}: {}", keys.join(", "))
        }
    }

    /// Reports unknown and missing keys.
    fn finish(self, cx: &mut Cx) {
        if let Some(keys) = &mut cx.keys {
            keys.extend(self.known.iter().copied());
        }
        for (index, (key, key_node, _)) in self.entries.iter().enumerate() {
            if self.used[index] || self.open {
                continue;
            }
            let hint = match did_you_mean(key, self.known.iter().copied()) {
                Some(close) => format!("did you mean `{close}`?"),
                None => self.accepted(),
            };
            cx.push(
                Diagnostic::error(
                    "unknown_key",
                    key_node.span,
                    format!("unknown key `{key}` in {}", self.subject()),
                )
                .with_hint(hint),
            );
        }
        for key in &self.missing {
            cx.push(
                Diagnostic::error(
                    "missing_key",
                    self.anchor,
                    format!("missing key `{key}` in {}", self.subject()),
                )
                .with_hint(self.accepted()),
            );
        }
    }
}

fn spanned<T>(value: T, span: Span) -> Spanned<T> {
    Spanned { value, span }
}

fn wrong_type(node: &Node, expected: &str) -> Diagnostic {
    Diagnostic::error("wrong_type", node.span, format!("expected {expected}, found {}", node.describe()))
}

fn text(node: &Node, cx: &mut Cx) -> Option<Spanned<String>> {
    match node.as_str() {
        Some(s) => Some(spanned(s.to_string(), node.span)),
        None => {
            cx.push(wrong_type(node, "text").with_hint("put the value in quotes to make it text"));
            None
        }
    }
}

fn flag(node: &Node, cx: &mut Cx) -> Option<bool> {
    match node.value {
        NodeValue::Bool(b) => Some(b),
        _ => {
            cx.push(wrong_type(node, "true or false"));
            None
        }
    }
}

fn count(node: &Node, cx: &mut Cx) -> Option<Spanned<u32>> {
    let value = match &node.value {
        NodeValue::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    };
    if value.is_none() {
        cx.push(wrong_type(node, "a whole number"));
    }
    value.map(|v| spanned(v, node.span))
}

fn choice<T: Copy>(node: &Node, options: &[(&'static str, T)], what: &str, cx: &mut Cx) -> Option<T> {
    let names = || options.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let Some(s) = node.as_str() else {
        cx.push(wrong_type(node, &format!("{what}: one of {}", names())));
        return None;
    };
    if let Some((_, value)) = options.iter().find(|(n, _)| *n == s) {
        return Some(*value);
    }
    let hint = match did_you_mean(s, options.iter().map(|(n, _)| *n)) {
        Some(close) => format!("did you mean `{close}`? ({what}: {})", names()),
        None => format!("{what}: {}", names()),
    };
    cx.push(Diagnostic::error("unknown_value", node.span, format!("unknown {what} `{s}`")).with_hint(hint));
    None
}

/// A map of name -> item, each decoded by `item`; broken items are left out.
fn map_of<T>(
    node: &Node,
    what: &str,
    cx: &mut Cx,
    mut item: impl FnMut(&Node, &Node, &mut Cx) -> Option<T>,
) -> IndexMap<String, T> {
    let mut out = IndexMap::new();
    let entries = match &node.value {
        NodeValue::Null => return out,
        NodeValue::Map(entries) => entries,
        _ => {
            cx.push(wrong_type(node, &format!("a map for `{what}`")).with_hint("write `name: value` pairs"));
            return out;
        }
    };
    for (key, value) in entries {
        let Some(name) = key.key_text() else { continue };
        if let Some(decoded) = item(key, value, cx) {
            out.insert(name, decoded);
        }
    }
    out
}

fn parameter(key: &Node, node: &Node, cx: &mut Cx) -> Option<ParameterDef> {
    let name = key.key_text().unwrap_or_default();
    let mut f = Fields::of(node, format!("parameter `{name}`"), key.span, cx)?;
    let kind = f.require("type").and_then(|n| choice(n, &ValueType::ALL, "parameter type", cx));
    let default = f.get("default").cloned();
    let description = f.get("description").and_then(|n| text(n, cx)).map(|s| s.value);
    f.finish(cx);
    Some(ParameterDef { kind: kind?, default, description })
}

fn trigger(node: &Node, cx: &mut Cx) -> Option<TriggerDef> {
    let mut f = Fields::of(node, "the trigger".into(), node.span, cx)?;
    let type_node = f.require("type");
    let Some(type_name) = type_node.and_then(|n| text(n, cx)) else {
        f.finish(cx);
        return None;
    };
    f.type_name = Some(type_name.value.clone());
    let def = match type_name.as_str() {
        "manual" => Some(TriggerDef::Manual(ManualTrigger { inputs: f.get("inputs").cloned() })),
        "http" => Some(TriggerDef::Http(HttpTrigger {
            method: f.get("method").and_then(|n| choice(n, &HttpMethod::ALL, "HTTP method", cx)),
            schema: f.get("schema").cloned(),
        })),
        "recurrence" => Some(TriggerDef::Recurrence(RecurrenceTrigger {
            every: f.get("every").and_then(|n| text(n, cx)),
            cron: f.get("cron").and_then(|n| text(n, cx)),
            time_zone: f.get("time_zone").and_then(|n| text(n, cx)).map(|s| s.value),
            window: f.get("window").and_then(|n| flag(n, cx)),
        })),
        "unsupported" => Some(TriggerDef::Unsupported(unsupported(&mut f, cx))),
        other => match split_connector(other) {
            Some((connector, trigger)) => Some(TriggerDef::Connector(ConnectorTrigger {
                connector,
                trigger,
                type_span: type_name.span,
                connection: f.get("connection").and_then(|n| text(n, cx)),
                settings: f.rest(),
            })),
            None => {
                let hint = match did_you_mean(other, BUILTIN_TRIGGER_TYPES) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => "trigger types: manual, http, recurrence, or `<connector>.<trigger>`".into(),
                };
                cx.push(
                    Diagnostic::error(
                        "unknown_type",
                        type_name.span,
                        format!("unknown trigger type `{other}`"),
                    )
                    .with_hint(hint),
                );
                f.rest();
                None
            }
        },
    };
    f.finish(cx);
    def
}

/// `<connector>.<name>` with both parts made of letters, digits and `_`.
fn split_connector(type_name: &str) -> Option<(String, String)> {
    let (connector, name) = type_name.split_once('.')?;
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (ok(connector) && ok(name)).then(|| (connector.to_string(), name.to_string()))
}

fn actions(node: &Node, cx: &mut Cx) -> ActionDefs {
    let mut out = ActionDefs::new();
    let entries = match &node.value {
        NodeValue::Null => return out,
        NodeValue::Map(entries) => entries,
        _ => {
            cx.push(
                wrong_type(node, "a map of actions (name -> action)")
                    .with_hint("write each action as `name:` followed by its indented keys"),
            );
            return out;
        }
    };
    for (key, value) in entries {
        let Some(name) = key.key_text() else { continue };
        match action(key, value, cx) {
            Some(def) => {
                out.insert(name, def);
            }
            None => {
                cx.broken.insert(name);
            }
        }
    }
    out
}

fn action(key: &Node, node: &Node, cx: &mut Cx) -> Option<ActionDef> {
    let name = key.key_text().unwrap_or_default();
    let mut f = Fields::of(node, format!("action `{name}`"), key.span, cx)?;
    let Some(type_node) = f.get("type") else {
        cx.push(
            Diagnostic::error("missing_key", key.span, format!("missing key `type` in action `{name}`"))
                .with_hint("add `type:` with a built-in type (compose, if, foreach, http, ...) or `<connector>.<operation>`"),
        );
        return None;
    };
    let type_name = text(type_node, cx)?;
    f.type_name = Some(type_name.value.clone());
    let common = ActionCommon {
        run_after: f.get("run_after").and_then(|n| run_after(n, cx)),
        timeout: f.get("timeout").and_then(|n| text(n, cx)),
        description: f.get("description").and_then(|n| text(n, cx)).map(|s| s.value),
    };
    let Some(body) = body(&type_name, &mut f, cx) else {
        f.rest();
        return None;
    };
    f.finish(cx);
    Some(ActionDef { name_span: key.span, type_name, common, body })
}

fn body(type_name: &Spanned<String>, f: &mut Fields, cx: &mut Cx) -> Option<ActionBody> {
    let name = |f: &mut Fields, cx: &mut Cx| {
        f.require("name").and_then(|n| text(n, cx)).unwrap_or_else(|| spanned(String::new(), f.anchor))
    };
    let body = match type_name.as_str() {
        "compose" => ActionBody::Compose(ComposeDef { inputs: f.node("inputs") }),
        "run_flow" => ActionBody::RunFlow(RunFlowDef {
            flow: f
                .require("flow")
                .and_then(|n| text(n, cx))
                .unwrap_or_else(|| spanned(String::new(), f.anchor)),
            body: f.get("body").cloned(),
        }),
        "parse_json" => ActionBody::ParseJson(ParseJsonDef {
            content: f.node("content"),
            schema: f.get("schema").cloned(),
        }),
        "select" => ActionBody::Select(SelectDef { from: f.node("from"), map: f.node("map") }),
        "filter" => ActionBody::Filter(FilterDef { from: f.node("from"), condition: f.node("where") }),
        "join" => ActionBody::Join(JoinDef { from: f.node("from"), separator: f.node("separator") }),
        "initialize_variable" => {
            let name = name(f, cx);
            let kind =
                f.require("variable_type").and_then(|n| choice(n, &ValueType::ALL, "variable type", cx));
            let value = f.get("value").cloned();
            ActionBody::InitializeVariable(InitializeVariableDef {
                name,
                variable_type: kind.unwrap_or(ValueType::String),
                value,
            })
        }
        "set_variable" => {
            ActionBody::SetVariable(VariableValueDef { name: name(f, cx), value: f.node("value") })
        }
        "append_to_array_variable" => {
            ActionBody::AppendToArrayVariable(VariableValueDef { name: name(f, cx), value: f.node("value") })
        }
        "append_to_string_variable" => {
            ActionBody::AppendToStringVariable(VariableValueDef { name: name(f, cx), value: f.node("value") })
        }
        "increment_variable" => {
            ActionBody::IncrementVariable(VariableByDef { name: name(f, cx), by: f.get("by").cloned() })
        }
        "decrement_variable" => {
            ActionBody::DecrementVariable(VariableByDef { name: name(f, cx), by: f.get("by").cloned() })
        }
        "if" => ActionBody::If(IfDef {
            condition: f.node("condition"),
            then: f.get("then").map(|n| actions(n, cx)).unwrap_or_default(),
            otherwise: f.get("else").map(|n| actions(n, cx)).unwrap_or_default(),
        }),
        "switch" => ActionBody::Switch(SwitchDef {
            on: f.node("on"),
            cases: f.get("cases").map(|n| cases(n, cx)).unwrap_or_default(),
            default: f.get("default").map(|n| actions(n, cx)).unwrap_or_default(),
        }),
        "scope" => ActionBody::Scope(ScopeDef {
            actions: f.get("actions").map(|n| actions(n, cx)).unwrap_or_default(),
        }),
        "foreach" => ActionBody::Foreach(ForeachDef {
            items: f.node("items"),
            actions: f.get("actions").map(|n| actions(n, cx)).unwrap_or_default(),
            concurrency: f.get("concurrency").and_then(|n| count(n, cx)),
        }),
        "until" => ActionBody::Until(UntilDef {
            condition: f.node("condition"),
            actions: f.get("actions").map(|n| actions(n, cx)).unwrap_or_default(),
            limit: f.get("limit").and_then(|n| until_limit(n, cx)),
        }),
        "delay" => ActionBody::Delay(DelayDef {
            duration: f.get("duration").and_then(|n| text(n, cx)),
            until: f.get("until").cloned(),
        }),
        "terminate" => ActionBody::Terminate(TerminateDef {
            status: f.get("status").and_then(|n| choice(n, &TerminateStatus::ALL, "terminate status", cx)),
            code: f.get("code").cloned(),
            message: f.get("message").cloned(),
        }),
        "response" => ActionBody::Response(ResponseDef {
            status: f.get("status").cloned(),
            headers: f.get("headers").cloned(),
            body: f.get("body").cloned(),
        }),
        "http" => ActionBody::Http(HttpDef {
            method: f.node("method"),
            url: f.node("url"),
            headers: f.get("headers").cloned(),
            query: f.get("query").cloned(),
            body: f.get("body").cloned(),
            authentication: f.get("authentication").cloned(),
            retry: f.get("retry").and_then(|n| retry(n, cx)),
        }),
        "unsupported" => {
            let def = unsupported(f, cx);
            if let Some(original) = &def.original {
                nested_action_names(original, &mut cx.broken);
            }
            ActionBody::Unsupported(def)
        }
        other => {
            let Some((connector, operation)) = split_connector(other) else {
                let hint = match did_you_mean(other, BUILTIN_ACTION_TYPES) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!(
                        "use a built-in type ({}) or `<connector>.<operation>`",
                        BUILTIN_ACTION_TYPES.join(", ")
                    ),
                };
                cx.push(
                    Diagnostic::error(
                        "unknown_type",
                        type_name.span,
                        format!("unknown action type `{other}`"),
                    )
                    .with_hint(hint),
                );
                return None;
            };
            ActionBody::Connector(ConnectorDef {
                connector,
                operation,
                connection: f.get("connection").and_then(|n| text(n, cx)),
                inputs: f.get("inputs").cloned(),
                retry: f.get("retry").and_then(|n| retry(n, cx)),
            })
        }
    };
    Some(body)
}

fn unsupported(f: &mut Fields, cx: &mut Cx) -> UnsupportedDef {
    let reason =
        f.require("reason").and_then(|n| text(n, cx)).unwrap_or_else(|| spanned(String::new(), f.anchor));
    UnsupportedDef { reason, original: f.get("original").cloned() }
}

/// Names of the actions nested in a placeholder's Power Automate source (`actions`, `else`,
/// `cases`, `default`). They exist in the source, so a reference to one is not an unknown name;
/// the placeholder itself is what gets reported.
fn nested_action_names(original: &Node, names: &mut BTreeSet<String>) {
    let NodeValue::Map(entries) = &original.value else { return };
    for (key, value) in entries {
        match key.key_text().as_deref() {
            Some("actions") => {
                let NodeValue::Map(actions) = &value.value else { continue };
                for (name, action) in actions {
                    names.extend(name.key_text());
                    nested_action_names(action, names);
                }
            }
            Some("else" | "default") => nested_action_names(value, names),
            Some("cases") => {
                let NodeValue::Map(cases) = &value.value else { continue };
                for (_, case) in cases {
                    nested_action_names(case, names);
                }
            }
            _ => {}
        }
    }
}

fn cases(node: &Node, cx: &mut Cx) -> Vec<(Node, ActionDefs)> {
    match &node.value {
        NodeValue::Null => Vec::new(),
        NodeValue::Map(entries) => entries.iter().map(|(k, v)| (k.clone(), actions(v, cx))).collect(),
        _ => {
            cx.push(wrong_type(node, "a map of case value -> actions"));
            Vec::new()
        }
    }
}

fn until_limit(node: &Node, cx: &mut Cx) -> Option<UntilLimitDef> {
    let mut f = Fields::of(node, "`limit`".into(), node.span, cx)?;
    let limit = UntilLimitDef {
        count: f.get("count").and_then(|n| count(n, cx)),
        timeout: f.get("timeout").and_then(|n| text(n, cx)),
    };
    f.finish(cx);
    Some(limit)
}

fn retry(node: &Node, cx: &mut Cx) -> Option<RetryDef> {
    let mut f = Fields::of(node, "`retry`".into(), node.span, cx)?;
    let kind = f.require("type").and_then(|n| choice(n, &RetryKind::ALL, "retry type", cx));
    let def = RetryDef {
        kind: kind.unwrap_or(RetryKind::Exponential),
        count: f.get("count").and_then(|n| count(n, cx)),
        interval: f.get("interval").and_then(|n| text(n, cx)),
        min_interval: f.get("min_interval").and_then(|n| text(n, cx)),
        max_interval: f.get("max_interval").and_then(|n| text(n, cx)),
    };
    f.finish(cx);
    Some(def)
}

fn run_after(node: &Node, cx: &mut Cx) -> Option<RunAfterDef> {
    let entries = match &node.value {
        NodeValue::Map(entries) => entries,
        _ => {
            cx.push(wrong_type(node, "a map of action name -> statuses").with_hint(
                "e.g. `run_after: {get_referral: [succeeded, failed]}`; `{}` starts with the block",
            ));
            return None;
        }
    };
    let mut def = RunAfterDef { span: node.span, entries: Vec::new() };
    for (key, value) in entries {
        let Some(action) = key.key_text() else { continue };
        let statuses = statuses(value, cx);
        def.entries.push(RunAfterEntry { action: spanned(action, key.span), statuses });
    }
    Some(def)
}

fn statuses(node: &Node, cx: &mut Cx) -> Vec<RunAfterStatus> {
    let NodeValue::Seq(items) = &node.value else {
        let hint = match node.as_str() {
            Some(s) => format!("write `[{s}]`"),
            None => "e.g. `[succeeded, failed]`".into(),
        };
        cx.push(Diagnostic::error("wrong_type", node.span, RUN_AFTER_HINT).with_hint(hint));
        return vec![RunAfterStatus::Succeeded];
    };
    if items.is_empty() {
        cx.push(
            Diagnostic::error("wrong_type", node.span, RUN_AFTER_HINT).with_hint("list at least one status"),
        );
    }
    items.iter().filter_map(|item| choice(item, &RunAfterStatus::ALL, "status", cx)).collect()
}
