//! Loading a test file: YAML with positions, the typed model, then checks against the flow
//! under test. Every problem is a [`Diagnostic`] with file, line and column, like flow files.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use jiff::Timestamp;
use jsonpath_rust::JsonPath as _;
use serde_json::Value;

use super::expect::{ActionExpect, Address, ErrorExpect, Expect};
use super::file::{
    ActionExpectDef, CaseDef, ErrorExpectDef, ExpectDef, MockAnswers, MockDef, StatusDef, TestFileDef,
};
use super::{Case, Mock, TestFile};
use crate::connectors::HttpResponse;
use crate::engine::{MockAnswer, Status, TriggerEvent};
use crate::flow::yaml::{self, Node, Span};
use crate::flow::{ActionKind, Block, Diagnostic, Diagnostics, Flow, did_you_mean};

/// The time `utcNow()` reads when a test file does not say.
pub const DEFAULT_NOW: &str = "2025-01-01T00:00:00Z";

/// Reads a test file, loads its flow and checks every case against it.
pub fn load_file(path: &Path) -> Result<TestFile, Diagnostics> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| {
        Diagnostics::from(
            Diagnostic::file_error("io", &file, format!("cannot read the test file: {err}"))
                .with_hint("check the path and its permissions"),
        )
    })?;
    let mut found = Vec::new();
    let outcome = yaml::parse(&text, &mut found).and_then(|root| {
        let def = decode(&root, &mut found)?;
        Checker::new(path, &root, &mut found).file(&def)
    });
    let mut diagnostics = Diagnostics(found);
    diagnostics.attach_source(Some(&file), &text);
    match outcome {
        Some(loaded) if !diagnostics.has_errors() => Ok(loaded),
        _ => Err(diagnostics),
    }
}

/// The typed model, or the first shape problem at its position.
fn decode(root: &Node, found: &mut Vec<Diagnostic>) -> Option<TestFileDef> {
    let json = root.to_json();
    match serde_path_to_error::deserialize::<_, TestFileDef>(&json) {
        Ok(def) => Some(def),
        Err(error) => {
            let steps: Vec<Step> = error
                .path()
                .iter()
                .filter_map(|segment| match segment {
                    serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                    _ => None,
                })
                .collect();
            let message = error.inner().to_string();
            let locator = Locator { root };
            let span = unknown_key(&message)
                .and_then(|name| {
                    // The path may end at the unknown key itself, or at the map holding it.
                    let parent = match steps.split_last() {
                        Some((Step::Key(last), parent)) if *last == name => parent,
                        _ => &steps[..],
                    };
                    locator.key(parent, &name)
                })
                .unwrap_or_else(|| locator.span(&steps));
            found.push(Diagnostic::error("test_shape", span, message).with_hint(
                "schemas/flow-test.schema.json describes every key of a test file and what it takes",
            ));
            None
        }
    }
}

/// The key an "unknown field `x`" message names.
fn unknown_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next().map(str::to_string)
}

/// One step into a YAML tree.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn key(name: &str) -> Step {
    Step::Key(name.to_string())
}

/// Finds where a value was written.
struct Locator<'n> {
    root: &'n Node,
}

impl<'n> Locator<'n> {
    /// The deepest node along `steps` (the whole file when the first step is missing).
    fn node(&self, steps: &[Step]) -> &'n Node {
        let mut node = self.root;
        for step in steps {
            let next = match (step, &node.value) {
                (Step::Key(name), yaml::NodeValue::Map(entries)) => {
                    entries.iter().find(|(k, _)| k.key_text().as_deref() == Some(name)).map(|(_, v)| v)
                }
                (Step::Index(index), yaml::NodeValue::Seq(items)) => items.get(*index),
                _ => None,
            };
            match next {
                Some(next) => node = next,
                None => break,
            }
        }
        node
    }

    fn span(&self, steps: &[Step]) -> Span {
        let span = self.node(steps).span;
        // A map or list spans many lines: point at where it starts.
        if span.end_line != span.line { Span::at(span.line, span.column, 1) } else { span }
    }

    /// The position of `name` as a key of the map at `steps`.
    fn key(&self, steps: &[Step], name: &str) -> Option<Span> {
        let entries = self.node(steps).as_map()?;
        entries.iter().find(|(k, _)| k.key_text().as_deref() == Some(name)).map(|(k, _)| k.span)
    }
}

/// What the checks need to know of one action of the flow.
#[derive(Debug, Clone)]
struct ActionInfo {
    /// The innermost loop the action runs in.
    in_loop: Option<String>,
    /// `<connector>.<operation>` or `http` for actions that call out.
    target: Option<String>,
    /// Whether the action is a `foreach` or `until`.
    is_loop: bool,
    /// The `type` as written.
    type_name: String,
}

/// The flow's actions and variables, by name.
struct FlowIndex {
    actions: IndexMap<String, ActionInfo>,
    variables: BTreeSet<String>,
}

impl FlowIndex {
    fn of(flow: &Flow) -> Self {
        let mut index = FlowIndex { actions: IndexMap::new(), variables: BTreeSet::new() };
        index.walk(&flow.root, None);
        index
    }

    fn walk(&mut self, block: &Block, in_loop: Option<&str>) {
        for action in &block.actions {
            let (target, is_loop) = match &action.kind {
                ActionKind::Connector { connector, operation, .. } => {
                    (Some(format!("{connector}.{operation}")), false)
                }
                ActionKind::Http { .. } => (Some("http".to_string()), false),
                ActionKind::RunFlow { .. } => (Some("run_flow".to_string()), false),
                ActionKind::Foreach { .. } | ActionKind::Until { .. } => (None, true),
                _ => (None, false),
            };
            if let ActionKind::InitializeVariable { name, .. } = &action.kind {
                self.variables.insert(name.clone());
            }
            self.actions.insert(
                action.name.clone(),
                ActionInfo {
                    in_loop: in_loop.map(str::to_string),
                    target,
                    is_loop,
                    type_name: action.type_name.clone(),
                },
            );
            let inner_loop = if is_loop { Some(action.name.as_str()) } else { in_loop };
            for child in children(&action.kind) {
                self.walk(child, inner_loop);
            }
        }
    }
}

/// Every block directly inside an action.
fn children(kind: &ActionKind) -> Vec<&Block> {
    match kind {
        ActionKind::If { then, otherwise, .. } => vec![then, otherwise],
        ActionKind::Switch { cases, default, .. } => cases.iter().map(|(_, b)| b).chain([default]).collect(),
        ActionKind::Scope { actions }
        | ActionKind::Foreach { actions, .. }
        | ActionKind::Until { actions, .. } => {
            vec![actions]
        }
        _ => Vec::new(),
    }
}

/// What every case of a file starts from.
#[derive(Clone, Copy)]
struct FileLevel<'d> {
    flow: &'d Flow,
    index: &'d FlowIndex,
    def: &'d TestFileDef,
    /// The file's `now`: `None` when not given, `Some(None)` for the system clock.
    now: Option<Option<Timestamp>>,
    mocks: &'d IndexMap<String, Mock>,
}

/// Checks a decoded file against its flow, collecting every problem.
struct Checker<'a, 'n> {
    path: &'a Path,
    at: Locator<'n>,
    found: &'a mut Vec<Diagnostic>,
}

impl<'a, 'n> Checker<'a, 'n> {
    fn new(path: &'a Path, root: &'n Node, found: &'a mut Vec<Diagnostic>) -> Self {
        Checker { path, at: Locator { root }, found }
    }

    fn error(&mut self, code: &'static str, span: Span, message: String, hint: Option<String>) {
        let mut diagnostic = Diagnostic::error(code, span, message);
        diagnostic.hint = hint;
        self.found.push(diagnostic);
    }

    fn file(&mut self, def: &TestFileDef) -> Option<TestFile> {
        let flow = self.flow(&def.flow)?;
        let index = FlowIndex::of(&flow);
        let file_now = self.now(def.now.as_deref(), &[key("now")]);
        self.parameters(&flow, &def.parameters, &[key("parameters")]);
        let file_mocks = self.mocks(&index, &def.mocks, &[key("mocks")]);
        if def.cases.is_empty() {
            self.error(
                "no_cases",
                self.at.span(&[key("cases")]),
                "the test file has no cases".into(),
                Some("add at least one case under `cases:`".into()),
            );
        }
        let shared = FileLevel { flow: &flow, index: &index, def, now: file_now, mocks: &file_mocks };
        let mut names = HashMap::new();
        let mut cases = Vec::new();
        for (position, case) in def.cases.iter().enumerate() {
            let base = [key("cases"), Step::Index(position)];
            let first = *names.entry(case.name.clone()).or_insert(position);
            if first != position {
                let span = self.at.span(&[base[0].clone(), base[1].clone(), key("name")]);
                self.error(
                    "duplicate_case",
                    span,
                    format!("two cases are named `{}`", case.name),
                    Some(format!("case {} has this name already; give each case its own name", first + 1)),
                );
            }
            cases.extend(self.case(&shared, case, &base));
        }
        Some(TestFile { path: self.path.to_path_buf(), flow, cases })
    }

    /// Loads the flow under test; its own diagnostics are passed on as they are.
    fn flow(&mut self, relative: &str) -> Option<Flow> {
        let flow_path: PathBuf = self.path.parent().unwrap_or(Path::new(".")).join(relative);
        let (flow, diagnostics) = crate::flow::check_file(&flow_path);
        let errors = diagnostics.errors().count();
        if flow.is_none() || errors > 0 {
            let span = self.at.span(&[key("flow")]);
            let (message, hint) = if flow_path.exists() {
                let message = format!(
                    "the flow {} does not load ({errors} error(s), listed below)",
                    flow_path.display()
                );
                (message, None)
            } else {
                let message = format!("there is no flow at {}", flow_path.display());
                (message, Some("`flow` is a path relative to this test file".to_string()))
            };
            self.error("flow", span, message, hint);
            self.found.extend(diagnostics.errors().cloned());
            return None;
        }
        flow
    }

    /// `None` is the system clock.
    fn now(&mut self, text: Option<&str>, steps: &[Step]) -> Option<Option<Timestamp>> {
        let text = text?;
        if text == "system" {
            return Some(None);
        }
        match text.parse::<Timestamp>() {
            Ok(now) => Some(Some(now)),
            Err(_) => {
                self.error(
                    "bad_time",
                    self.at.span(steps),
                    format!("`now` must be a UTC timestamp such as {DEFAULT_NOW}, or `system`, not `{text}`"),
                    None,
                );
                Some(None)
            }
        }
    }

    fn parameters(&mut self, flow: &Flow, given: &IndexMap<String, Value>, steps: &[Step]) {
        for name in given.keys() {
            if flow.parameters.contains_key(name) {
                continue;
            }
            let span = self.at.key(steps, name).unwrap_or_else(|| self.at.span(steps));
            let known: Vec<&str> = flow.parameters.keys().map(String::as_str).collect();
            self.error(
                "unknown_parameter",
                span,
                format!("flow `{}` has no parameter `{name}`", flow.name),
                Some(hint_from(name, &known, "its parameters are")),
            );
        }
    }

    fn mocks(
        &mut self,
        index: &FlowIndex,
        given: &IndexMap<String, MockAnswers>,
        steps: &[Step],
    ) -> IndexMap<String, Mock> {
        let mut mocks = IndexMap::new();
        for (name, answers) in given {
            let name_span = self.at.key(steps, name).unwrap_or_else(|| self.at.span(steps));
            let Some(info) = self.action(index, name, name_span) else { continue };
            let Some(target) = info.target.clone() else {
                self.error(
                    "not_a_call",
                    name_span,
                    format!(
                        "action `{name}` has type `{}`: only connector and `http` actions can be mocked",
                        info.type_name
                    ),
                    Some("mock the calls it reads from instead".into()),
                );
                continue;
            };
            let mut value_steps = steps.to_vec();
            value_steps.push(key(name));
            if let Some(mock) = self.mock(name, name_span, &target, &answers.0, &value_steps) {
                mocks.insert(name.clone(), mock);
            }
        }
        mocks
    }

    fn mock(
        &mut self,
        name: &str,
        name_span: Span,
        target: &str,
        answers: &[MockDef],
        steps: &[Step],
    ) -> Option<Mock> {
        let sandboxed = answers.iter().any(|a| a.sandbox);
        if sandboxed {
            let one = &answers[0];
            let alone = answers.len() == 1
                && one.status.is_none()
                && one.body.is_none()
                && one.headers.is_empty()
                && one.error.is_none();
            if !alone {
                self.error(
                    "bad_mock",
                    name_span,
                    format!("the mock of `{name}` says `sandbox: true` together with an answer"),
                    Some("`sandbox: true` stands alone: the sandbox gives the answer".into()),
                );
                return None;
            }
            if target == "http" {
                self.error(
                    "bad_mock",
                    name_span,
                    format!("`{name}` is an `http` action: only connector actions can call the sandbox"),
                    Some("give it a mocked answer instead".into()),
                );
                return None;
            }
            return Some(Mock::Sandbox);
        }
        let mut built = Vec::with_capacity(answers.len());
        for (position, answer) in answers.iter().enumerate() {
            let mut at = steps.to_vec();
            if answers.len() > 1 {
                at.push(Step::Index(position));
            }
            built.extend(self.answer(name, answer, &at));
        }
        (built.len() == answers.len()).then_some(Mock::Answers(built))
    }

    fn answer(&mut self, name: &str, answer: &MockDef, steps: &[Step]) -> Option<MockAnswer> {
        if let Some(message) = &answer.error {
            if answer.status.is_some() || answer.body.is_some() || !answer.headers.is_empty() {
                self.error(
                    "bad_mock",
                    self.at.span(steps),
                    format!("the mock of `{name}` has both `error` and a response"),
                    Some(
                        "`error` means no answer came: drop `status`, `body` and `headers`, or drop `error`"
                            .into(),
                    ),
                );
                return None;
            }
            return Some(MockAnswer::NoAnswer(message.clone()));
        }
        let status = answer.status.unwrap_or(200);
        if !(100..=599).contains(&status) {
            let mut at = steps.to_vec();
            at.push(key("status"));
            self.error(
                "bad_mock",
                self.at.span(&at),
                format!("{status} is not an HTTP status"),
                Some("use a status from 100 to 599".into()),
            );
            return None;
        }
        let headers = answer.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
        let body = answer.body.clone().unwrap_or(Value::Null);
        Some(MockAnswer::Response(HttpResponse { status, headers, body }))
    }

    /// The flow's action called `name`, or a diagnostic saying it does not exist.
    fn action<'i>(&mut self, index: &'i FlowIndex, name: &str, span: Span) -> Option<&'i ActionInfo> {
        if let Some(info) = index.actions.get(name) {
            return Some(info);
        }
        let known: Vec<&str> = index.actions.keys().map(String::as_str).collect();
        self.error(
            "unknown_action",
            span,
            format!("the flow has no action `{name}`"),
            Some(hint_from(name, &known, "its actions are")),
        );
        None
    }

    fn case(&mut self, shared: &FileLevel<'_>, case: &CaseDef, base: &[Step]) -> Option<Case> {
        let FileLevel { flow, index, def: file, now: file_now, mocks: file_mocks } = *shared;
        let at = |more: &str| {
            let mut steps = base.to_vec();
            steps.push(key(more));
            steps
        };
        let default_now = DEFAULT_NOW.parse::<Timestamp>().ok();
        let now = self.now(case.now.as_deref(), &at("now")).or(file_now).unwrap_or(default_now);
        self.parameters(flow, &case.parameters, &at("parameters"));
        let mut parameters = file.parameters.clone();
        parameters.extend(case.parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut mocks = file_mocks.clone();
        mocks.extend(self.mocks(index, &case.mocks, &at("mocks")));
        let uses_sandbox = mocks.values().any(|m| matches!(m, Mock::Sandbox));
        if case.sandbox.is_some() && !uses_sandbox {
            self.error(
                "sandbox_unused",
                self.at.span(&at("sandbox")),
                "sandbox data is given but no mock says `sandbox: true`".into(),
                Some("add `sandbox: true` to the mocks of the calls that should reach the sandbox".into()),
            );
        }
        let sandbox = uses_sandbox.then(|| case.sandbox.clone().unwrap_or_default());
        let expect = self.expect(index, &case.expect, &at("expect"))?;
        let event = TriggerEvent { headers: case.trigger.headers.clone(), body: case.trigger.body.clone() };
        let sync = case.sync.clone().or_else(|| file.sync.clone()).map(std::sync::Arc::new);
        Some(Case { name: case.name.clone(), now, event, parameters, mocks, sandbox, sync, expect })
    }

    fn expect(&mut self, index: &FlowIndex, def: &ExpectDef, base: &[Step]) -> Option<Expect> {
        let at = |more: &str| {
            let mut steps = base.to_vec();
            steps.push(key(more));
            steps
        };
        let errors_before = self.found.len();
        let mut actions = Vec::new();
        for (text, expectation) in &def.actions {
            let span = self.at.key(&at("actions"), text).unwrap_or_else(|| self.at.span(&at("actions")));
            let Some(address) = self.address(index, text, span, false) else { continue };
            let mut steps = at("actions");
            steps.push(key(text));
            actions.extend(self.action_expect(&expectation.0, &steps).map(|e| (address, e)));
        }
        let mut not_run = Vec::new();
        for (position, text) in def.not_run.iter().enumerate() {
            let mut steps = at("not_run");
            steps.push(Step::Index(position));
            let span = self.at.span(&steps);
            not_run.extend(self.address(index, text, span, true));
        }
        for name in def.variables.keys() {
            if index.variables.contains(name) {
                continue;
            }
            let span = self.at.key(&at("variables"), name).unwrap_or_else(|| self.at.span(&at("variables")));
            let known: Vec<&str> = index.variables.iter().map(String::as_str).collect();
            self.error(
                "unknown_variable",
                span,
                format!("the flow initializes no variable `{name}`"),
                Some(hint_from(name, &known, "its variables are")),
            );
        }
        let expect = Expect {
            status: def.status.map(status),
            error: def.error.as_ref().map(error_expect),
            actions,
            not_run,
            variables: def.variables.clone(),
        };
        (self.found.len() == errors_before).then_some(expect)
    }

    fn action_expect(&mut self, def: &ActionExpectDef, steps: &[Step]) -> Option<ActionExpect> {
        let inputs_at = self.paths(&def.inputs_at, steps, "inputs_at")?;
        let outputs_at = self.paths(&def.outputs_at, steps, "outputs_at")?;
        Some(ActionExpect {
            status: def.status.map(status),
            inputs: def.inputs.clone(),
            inputs_at,
            outputs: def.outputs.clone(),
            outputs_at,
            error: def.error.as_ref().map(error_expect),
            attempts: def.attempts,
        })
    }

    /// JSONPath → value pairs, each path checked to parse.
    fn paths(
        &mut self,
        given: &IndexMap<String, Value>,
        steps: &[Step],
        field: &str,
    ) -> Option<Vec<(String, Value)>> {
        let mut at = steps.to_vec();
        at.push(key(field));
        let mut ok = true;
        for path in given.keys() {
            if let Err(err) = Value::Null.query(path) {
                let span = self.at.key(&at, path).unwrap_or_else(|| self.at.span(&at));
                self.error(
                    "bad_jsonpath",
                    span,
                    format!("`{path}` is not a valid JSONPath: {}", parser_message(&err.to_string())),
                    Some("write paths such as `$.record.Name` or `$.records[0].Id`".into()),
                );
                ok = false;
            }
        }
        ok.then(|| given.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// Reads `Loop[0]/Inner[2]/Action`, checking each name and that each loop holds the next.
    /// A bare name inside a loop is allowed only when `any_iteration` (for `not_run`).
    fn address(&mut self, index: &FlowIndex, text: &str, span: Span, any_iteration: bool) -> Option<Address> {
        let Some(address) = Address::parse(text) else {
            self.error(
                "bad_address",
                span,
                format!("`{text}` does not name an action"),
                Some("write an action's name, or `Loop[0]/Action` for an action inside a loop".into()),
            );
            return None;
        };
        let mut outer: Option<&str> = None;
        for (loop_name, _) in &address.loops {
            let info = self.action(index, loop_name, span)?;
            if !info.is_loop {
                self.error(
                    "bad_address",
                    span,
                    format!(
                        "`{loop_name}` has type `{}`, not a loop: only foreach and until take `[index]`",
                        info.type_name
                    ),
                    None,
                );
                return None;
            }
            if info.in_loop.as_deref() != outer {
                self.error("bad_address", span, not_directly_inside(loop_name, info, outer), None);
                return None;
            }
            outer = Some(loop_name);
        }
        let info = self.action(index, &address.name, span)?;
        let bare_in_loop = address.loops.is_empty() && info.in_loop.is_some();
        if bare_in_loop && any_iteration {
            return Some(Address { any_iteration: true, ..address });
        }
        if info.in_loop.as_deref() != outer {
            let mut message = not_directly_inside(&address.name, info, outer);
            let mut hint = None;
            if let (true, Some(loop_name)) = (bare_in_loop, &info.in_loop) {
                message = format!("action `{}` runs inside loop `{loop_name}`", address.name);
                hint = Some(format!("name one iteration: `{}`", iteration_path(index, &address.name)));
            }
            self.error("bad_address", span, message, hint);
            return None;
        }
        Some(address)
    }
}

/// The JSONPath parser's multi-line message in one line: where, and what it expected.
fn parser_message(text: &str) -> String {
    let at = text.split("--> ").nth(1).and_then(|rest| rest.lines().next()).and_then(|p| p.split(':').nth(1));
    let what = text.lines().find_map(|l| l.trim().strip_prefix("= "));
    match (at, what) {
        (Some(at), Some(what)) => format!("at character {at}, {what}"),
        _ => text.lines().next().unwrap_or_default().to_string(),
    }
}

fn not_directly_inside(name: &str, info: &ActionInfo, outer: Option<&str>) -> String {
    match (&info.in_loop, outer) {
        (Some(actual), _) => {
            format!("action `{name}` runs inside loop `{actual}`, name that loop's iteration before it")
        }
        (None, Some(outer)) => format!("action `{name}` is not inside loop `{outer}`"),
        (None, None) => format!("action `{name}` is not inside a loop"),
    }
}

/// `Outer[0]/Inner[0]/name` for an action inside loops.
fn iteration_path(index: &FlowIndex, name: &str) -> String {
    let mut parts = vec![name.to_string()];
    let mut current = index.actions.get(name).and_then(|i| i.in_loop.clone());
    while let Some(loop_name) = current {
        parts.push(format!("{loop_name}[0]"));
        current = index.actions.get(&loop_name).and_then(|i| i.in_loop.clone());
    }
    parts.reverse();
    parts.join("/")
}

fn hint_from(name: &str, known: &[&str], these: &str) -> String {
    if let Some(close) = did_you_mean(name, known.iter().copied()) {
        return format!("did you mean `{close}`?");
    }
    if known.is_empty() {
        return "the flow has none".into();
    }
    format!("{these}: {}", known.join(", "))
}

fn status(def: StatusDef) -> Status {
    match def {
        StatusDef::Succeeded => Status::Succeeded,
        StatusDef::Failed => Status::Failed,
        StatusDef::Skipped => Status::Skipped,
        StatusDef::TimedOut => Status::TimedOut,
        StatusDef::Cancelled => Status::Cancelled,
    }
}

fn error_expect(def: &ErrorExpectDef) -> ErrorExpect {
    ErrorExpect { code: def.code.clone(), message_contains: def.message_contains.clone() }
}
