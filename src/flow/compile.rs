//! Loading flow files and compiling a [`FlowDef`] into a [`Flow`], with every check collected.
//!
//! Compilation runs in two passes. The first indexes every action (name, block, container,
//! loop depth) and resolves `run_after` inside each block, so that the second pass, which
//! compiles templates, can tell whether an action referenced by `body('x')` can have run yet.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use petgraph::graph::DiGraph;
use serde_json::Value;

use super::decode::{Decoded, decode};
use super::def::*;
use super::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use super::model::{Action, ActionKind, Block, Flow, Parameter, RetryPolicy, RunAfter, StatusSet, Trigger};
use super::yaml::{self, Node, NodeValue, Span};
use crate::expr::{self, Template};

/// Compatibility name: loading and compiling fail with every diagnostic of the file.
pub type CompileError = Diagnostics;

/// Why a text is not a usable duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not ISO-8601 at all.
    #[error("`{0}` is not an ISO-8601 duration")]
    Syntax(String),
    /// Months and years have no fixed length.
    #[error("`{0}` uses months or years, which have no fixed length")]
    Calendar(String),
    /// Below zero.
    #[error("`{0}` is negative")]
    Negative(String),
}

/// Parses an ISO-8601 duration such as `PT5S`, `PT1H30M` or `P1D`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let span = jiff::fmt::temporal::SpanParser::new()
        .parse_span(text)
        .map_err(|_| DurationError::Syntax(text.to_string()))?;
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(DurationError::Calendar(text.to_string()));
    }
    if span.is_negative() {
        return Err(DurationError::Negative(text.to_string()));
    }
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| DurationError::Syntax(text.to_string()))?;
    Duration::try_from(signed).map_err(|_| DurationError::Negative(text.to_string()))
}

/// Reads and compiles a flow file.
pub fn load_file(path: &Path) -> Result<Flow, Diagnostics> {
    let (flow, diagnostics) = check_file(path);
    match flow {
        Some(flow) if !diagnostics.has_errors() => Ok(flow),
        _ => Err(diagnostics),
    }
}

/// Parses and compiles flow text.
pub fn load_str(text: &str) -> Result<Flow, Diagnostics> {
    let (flow, diagnostics) = check_str(text, None);
    match flow {
        Some(flow) if !diagnostics.has_errors() => Ok(flow),
        _ => Err(diagnostics),
    }
}

/// Reads and compiles a flow file, returning the flow (when it has no errors) together with
/// every diagnostic, warnings included.
pub fn check_file(path: &Path) -> (Option<Flow>, Diagnostics) {
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            let diagnostic = Diagnostic::file_error("io", &file, format!("cannot read the file: {err}"))
                .with_hint("check the path and its permissions");
            return (None, diagnostic.into());
        }
    };
    let (flow, mut diagnostics) = check_str(&text, Some(&file));
    let Some(mut flow) = flow else { return (None, diagnostics) };
    flow.source = Some(path.to_path_buf());
    match load_mappings(path, &text) {
        Ok(mappings) => flow.mappings = Arc::new(mappings),
        Err(found) => {
            diagnostics.0.extend(found);
            return (None, diagnostics);
        }
    }
    match expr::SyncSettings::load_for(path.parent().unwrap_or(Path::new("."))) {
        Ok(settings) => flow.sync = Arc::new(settings),
        Err(err) => {
            let hint = "fix the settings file, or delete it to use the defaults";
            diagnostics
                .0
                .push(Diagnostic::file_error("sync_settings", &file, err.to_string()).with_hint(hint));
            return (None, diagnostics);
        }
    }
    (Some(flow), diagnostics)
}

/// Loads the mapping files a flow names in `mapping('name', …)` from the `mappings/` folder
/// next to it, so a changed mapping file takes effect on the next load without recompiling.
fn load_mappings(flow_path: &Path, text: &str) -> Result<expr::Mappings, Vec<Diagnostic>> {
    static MAPPING_CALL: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r#"mapping\(\s*['"]([^'"]+)['"]"#).expect("valid regex"));
    let dir = flow_path.parent().unwrap_or(Path::new(".")).join("mappings");
    let names: BTreeSet<&str> =
        MAPPING_CALL.captures_iter(text).filter_map(|c| c.get(1)).map(|m| m.as_str()).collect();
    let mut mappings = expr::Mappings::default();
    let mut found = Vec::new();
    for name in names {
        match expr::Mappings::load_named(&dir, name) {
            Ok(mapping) => mappings.insert(mapping),
            Err(err) => found.push(
                Diagnostic::file_error("mapping", &flow_path.display().to_string(), err.to_string())
                    .with_hint(format!(
                        "mapping files live in {}; the name is the file name without .yaml",
                        dir.display()
                    )),
            ),
        }
    }
    if found.is_empty() { Ok(mappings) } else { Err(found) }
}

/// Error codes of the placeholders `coflow import` writes where it could not translate.
const PLACEHOLDER_CODES: [&str; 2] = ["unsupported_action", "unsupported_trigger"];

/// Reads and compiles a flow file to draw it: like [`load_file`], but a flow whose only errors
/// are `coflow import` placeholders (`type: unsupported`) is kept, with those errors. Such a
/// flow shows what is left to translate; it must never run.
pub fn load_file_for_drawing(path: &Path) -> Result<(Flow, Diagnostics), Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        Diagnostics::from(
            Diagnostic::file_error("io", &path.display().to_string(), format!("cannot read the file: {err}"))
                .with_hint("check the path and its permissions"),
        )
    })?;
    let (flow, diagnostics) = compile_text(&text, Some(&path.display().to_string()));
    let only_placeholders = diagnostics.errors().all(|d| PLACEHOLDER_CODES.contains(&d.code));
    match flow {
        Some(flow) if only_placeholders => Ok((flow, diagnostics)),
        _ => Err(diagnostics),
    }
}

/// Parses and compiles flow text; `file` names it in diagnostics.
pub fn check_str(text: &str, file: Option<&str>) -> (Option<Flow>, Diagnostics) {
    let (flow, diagnostics) = compile_text(text, file);
    let flow = if diagnostics.has_errors() { None } else { flow };
    (flow, diagnostics)
}

/// Parses and compiles flow text, keeping the flow whatever the errors (`None` only when the
/// text does not decode).
fn compile_text(text: &str, file: Option<&str>) -> (Option<Flow>, Diagnostics) {
    let mut found = Vec::new();
    let flow = yaml::parse(text, &mut found).and_then(|root| decode(&root, &mut found)).map(|decoded| {
        let Decoded { def, broken } = decoded;
        let (flow, more) = Compiler::run(&def, &broken);
        found.extend(more);
        flow
    });
    let mut diagnostics = Diagnostics(found);
    diagnostics.attach_source(file, text);
    diagnostics.normalize();
    (flow, diagnostics)
}

/// Compiles a definition into a runnable flow.
pub fn compile(def: &FlowDef) -> Result<Flow, Diagnostics> {
    let (flow, found) = Compiler::run(def, &BTreeSet::new());
    let mut diagnostics = Diagnostics(found);
    diagnostics.normalize();
    if diagnostics.has_errors() { Err(diagnostics) } else { Ok(flow) }
}

/// Function names templates may call: the environment's globals and minijinja's built-ins.
static FUNCTIONS: LazyLock<BTreeSet<String>> = LazyLock::new(|| {
    let mut names: BTreeSet<String> =
        expr::environment().globals().map(|(name, _)| name.to_string()).collect();
    names.extend(["range", "dict", "debug", "namespace"].map(String::from));
    names
});

struct ActionInfo<'d> {
    name: &'d str,
    def: &'d ActionDef,
    block: usize,
    index: usize,
    parent: Option<usize>,
    loop_depth: usize,
    children: Vec<usize>,
}

#[derive(Default)]
struct BlockInfo {
    /// Action ids in written order.
    actions: Vec<usize>,
    /// Per position: predecessors (positions in this block) and their statuses.
    preds: Vec<Vec<(usize, StatusSet)>>,
    /// The container action, `None` for the top level.
    owner: Option<usize>,
}

/// Where a template sits, for reference checks.
#[derive(Clone, Copy)]
struct At {
    action: usize,
    /// An `until` condition runs after each iteration, so it may read the loop's own actions.
    sees_descendants: bool,
}

struct Compiler<'d> {
    def: &'d FlowDef,
    broken: &'d BTreeSet<String>,
    diagnostics: Vec<Diagnostic>,
    actions: Vec<ActionInfo<'d>>,
    blocks: Vec<BlockInfo>,
    by_name: HashMap<&'d str, usize>,
    variables: HashMap<&'d str, (ValueType, &'d str)>,
    before: HashMap<usize, Vec<bool>>,
    /// Per block, what runs before each action; `None` where `run_after` has a cycle.
    ancestors: HashMap<usize, Option<Ancestors>>,
}

impl<'d> Compiler<'d> {
    fn run(def: &'d FlowDef, broken: &'d BTreeSet<String>) -> (Flow, Vec<Diagnostic>) {
        let mut c = Compiler {
            def,
            broken,
            diagnostics: Vec::new(),
            actions: Vec::new(),
            blocks: Vec::new(),
            by_name: HashMap::new(),
            variables: HashMap::new(),
            before: HashMap::new(),
            ancestors: HashMap::new(),
        };
        c.check_flow_keys();
        let root_block = c.index_block(&def.actions, None, 0);
        for block in 0..c.blocks.len() {
            c.resolve_run_after(block);
            c.check_cycles(block);
        }
        let root = c.build_block(&def.actions, root_block);
        let flow = Flow {
            name: def.name.value.clone(),
            description: def.description.clone(),
            source: None,
            parameters: def
                .parameters
                .iter()
                .map(|(k, p)| {
                    (k.clone(), Parameter { kind: p.kind, default: p.default.as_ref().map(Node::to_json) })
                })
                .collect(),
            connections: def.connections.clone(),
            trigger: c.trigger(),
            root,
            mappings: Default::default(),
            sync: Default::default(),
        };
        (flow, c.diagnostics)
    }

    fn error(&mut self, code: &'static str, span: Span, message: String, hint: impl Into<String>) {
        self.diagnostics.push(Diagnostic::error(code, span, message).with_hint(hint));
    }

    // ---- flow-level keys -------------------------------------------------------------------

    fn check_flow_keys(&mut self) {
        let name = &self.def.name;
        let valid =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid && !name.is_empty() {
            self.error(
                "invalid_name",
                name.span,
                format!("invalid flow name `{}`", name.value),
                "flow names use letters, digits, `-` and `_` only",
            );
        }
    }

    fn trigger(&mut self) -> Trigger {
        let def = &self.def.trigger;
        let mut settings = indexmap::IndexMap::new();
        let mut connection = None;
        match def {
            TriggerDef::Manual(t) => to_settings(t, &mut settings),
            TriggerDef::Http(t) => to_settings(t, &mut settings),
            TriggerDef::Recurrence(t) => {
                self.check_recurrence(t);
                to_settings(t, &mut settings);
            }
            TriggerDef::Connector(t) => {
                if crate::connectors::catalog(&t.connector).is_none() {
                    self.error(
                        "unknown_connector",
                        t.type_span,
                        format!("unknown connector `{}`", t.connector),
                        "the part before the dot names a connector compiled into coflow",
                    );
                }
                self.check_alias(t.connection.as_ref());
                connection = t.connection.as_ref().map(|c| c.value.clone());
                settings.extend(t.settings.iter().map(|(k, v)| (k.clone(), v.to_json())));
            }
            TriggerDef::Unsupported(t) => self.error(
                "unsupported_trigger",
                t.reason.span,
                format!("the trigger is a placeholder for one that was not translated: {}", t.reason.value),
                "replace it with a coflow trigger (manual, http, recurrence or `<connector>.<trigger>`); its source is under `original`",
            ),
        }
        Trigger { kind: def.type_name(), connection, settings }
    }

    fn check_recurrence(&mut self, t: &RecurrenceTrigger) {
        match (&t.every, &t.cron) {
            (Some(every), None) => {
                if let Some(d) = self.duration(every) {
                    if d.is_zero() {
                        self.error(
                            "invalid_value",
                            every.span,
                            "`every` must be longer than zero".into(),
                            "e.g. `PT15M`",
                        );
                    }
                }
            }
            (None, Some(cron)) => {
                if cron.split_whitespace().count() != 5 {
                    self.error(
                        "invalid_value",
                        cron.span,
                        format!("invalid cron expression `{}`", cron.value),
                        "write five fields: minute hour day-of-month month day-of-week, e.g. `0 6 * * 1-5`",
                    );
                }
            }
            (Some(every), Some(_)) => self.error(
                "invalid_value",
                every.span,
                "a recurrence trigger takes `every` or `cron`, not both".into(),
                "remove one of them",
            ),
            (None, None) => self.diagnostics.push(
                Diagnostic::error(
                    "missing_key",
                    Span::at(1, 1, 1),
                    "the recurrence trigger needs `every` or `cron`",
                )
                .with_hint("e.g. `every: PT15M` or `cron: \"0 6 * * *\"`"),
            ),
        }
    }

    fn check_alias(&mut self, alias: Option<&Spanned<String>>) {
        let Some(alias) = alias else { return };
        if self.def.connections.contains_key(&alias.value) {
            return;
        }
        let hint = match did_you_mean(&alias.value, self.def.connections.keys().map(String::as_str)) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!(
                "declare it under `connections:`, e.g. `{}: <connection name in coflow.yaml>`",
                alias.value
            ),
        };
        self.error(
            "unknown_connection",
            alias.span,
            format!("connection alias `{}` is not declared in `connections`", alias.value),
            hint,
        );
    }

    fn duration(&mut self, text: &Spanned<String>) -> Option<Duration> {
        match parse_duration(&text.value) {
            Ok(d) => Some(d),
            Err(err) => {
                self.error(
                    "invalid_duration",
                    text.span,
                    format!("invalid duration: {err}"),
                    "write ISO-8601 durations such as PT30S, PT5M, PT1H or P1D",
                );
                None
            }
        }
    }

    // ---- pass 1: index actions and resolve run_after -----------------------------------------

    fn index_block(&mut self, defs: &'d ActionDefs, owner: Option<usize>, loop_depth: usize) -> usize {
        let block = self.blocks.len();
        self.blocks.push(BlockInfo { owner, ..BlockInfo::default() });
        for (index, (name, def)) in defs.iter().enumerate() {
            let id = self.actions.len();
            self.actions.push(ActionInfo {
                name,
                def,
                block,
                index,
                parent: owner,
                loop_depth,
                children: Vec::new(),
            });
            self.blocks[block].actions.push(id);
            self.register_name(id);
            self.register_variable(id);
            let inner_depth = loop_depth + usize::from(def.body.is_loop());
            let children: Vec<usize> = def
                .body
                .blocks()
                .into_iter()
                .map(|(_, actions)| self.index_block(actions, Some(id), inner_depth))
                .collect();
            self.actions[id].children = children;
        }
        block
    }

    fn register_name(&mut self, id: usize) {
        let info = &self.actions[id];
        let (name, span) = (info.name, info.def.name_span);
        match self.by_name.get(name) {
            Some(&first) => {
                let first_line = self.actions[first].def.name_span.line;
                self.error(
                    "duplicate_action",
                    span,
                    format!("duplicate action name `{name}`"),
                    format!("`{name}` is already defined at line {first_line}; action names are unique in the whole flow, nested ones too"),
                );
            }
            None => {
                self.by_name.insert(name, id);
            }
        }
    }

    fn register_variable(&mut self, id: usize) {
        let info = &self.actions[id];
        let ActionBody::InitializeVariable(init) = &info.def.body else { return };
        let (action, parent) = (info.name, info.parent);
        if let Some(parent) = parent {
            let container = self.actions[parent].name;
            self.error(
                "nested_variable",
                info.def.type_name.span,
                format!("`initialize_variable` must be at the top level of the flow, but `{action}` is inside `{container}`"),
                "move it to the top level and use `set_variable` inside the container",
            );
        }
        if init.name.is_empty() {
            return;
        }
        if let Some((_, first)) = self.variables.get(init.name.as_str()) {
            let first = *first;
            self.error(
                "duplicate_variable",
                init.name.span,
                format!("variable `{}` is already initialized by `{first}`", init.name.value),
                "initialize each variable once; use `set_variable` to change it",
            );
            return;
        }
        self.variables.insert(&init.name.value, (init.variable_type, action));
    }

    fn resolve_run_after(&mut self, block: usize) {
        let ids = self.blocks[block].actions.clone();
        let mut preds = Vec::with_capacity(ids.len());
        for (position, &id) in ids.iter().enumerate() {
            let def = self.actions[id].def;
            let resolved = match &def.common.run_after {
                None if position == 0 => Vec::new(),
                None => vec![(position - 1, StatusSet::SUCCEEDED)],
                Some(run_after) => run_after
                    .entries
                    .iter()
                    .filter_map(|entry| {
                        let target = self.run_after_target(block, id, &entry.action)?;
                        Some((target, StatusSet::from_list(&entry.statuses)))
                    })
                    .collect(),
            };
            preds.push(resolved);
        }
        self.blocks[block].preds = preds;
    }

    fn run_after_target(&mut self, block: usize, id: usize, target: &Spanned<String>) -> Option<usize> {
        let action = self.actions[id].name;
        let in_block =
            self.blocks[block].actions.iter().position(|&other| self.actions[other].name == target.value);
        if in_block.is_some() {
            return in_block;
        }
        if self.broken.contains(&target.value) {
            return None;
        }
        if let Some(&other) = self.by_name.get(target.value.as_str()) {
            let where_other = self.container_label(self.blocks[self.actions[other].block].owner);
            let where_here = self.container_label(self.blocks[block].owner);
            self.error(
                "run_after_other_block",
                target.span,
                format!("`{action}` runs after `{}`, which is in a different block ({where_other})", target.value),
                format!("an action can only run after actions of its own block ({where_here}); make the containers run after each other instead"),
            );
            return None;
        }
        let names: Vec<&str> = self.blocks[block].actions.iter().map(|&a| self.actions[a].name).collect();
        let hint = match did_you_mean(&target.value, names.iter().copied()) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!("actions of this block: {}", names.join(", ")),
        };
        self.error(
            "unknown_action",
            target.span,
            format!("`{action}` runs after unknown action `{}`", target.value),
            hint,
        );
        None
    }

    fn container_label(&self, owner: Option<usize>) -> String {
        match owner {
            Some(id) => format!("inside `{}`", self.actions[id].name),
            None => "the top level".into(),
        }
    }

    fn check_cycles(&mut self, block: usize) {
        let info = &self.blocks[block];
        let mut graph = DiGraph::<usize, ()>::new();
        let nodes: Vec<_> = (0..info.actions.len()).map(|i| graph.add_node(i)).collect();
        for (to, preds) in info.preds.iter().enumerate() {
            for (from, _) in preds {
                graph.add_edge(nodes[*from], nodes[to], ());
            }
        }
        let mut found = Vec::new();
        for scc in petgraph::algo::tarjan_scc(&graph) {
            let members: Vec<usize> = scc.iter().map(|n| graph[*n]).collect();
            let first = members.iter().copied().min().unwrap_or(0);
            let self_loop = members.len() == 1 && info.preds[first].iter().any(|(p, _)| *p == first);
            if members.len() < 2 && !self_loop {
                continue;
            }
            let path = cycle_path(&info.preds, first, &members);
            let names: Vec<&str> = path.iter().map(|&p| self.actions[info.actions[p]].name).collect();
            let def = self.actions[info.actions[first]].def;
            let span = def.common.run_after.as_ref().map(|r| r.span).unwrap_or(def.name_span);
            found.push((span, format!("`run_after` forms a cycle: {}", names.join(" → "))));
        }
        for (span, message) in found {
            self.error(
                "cycle",
                span,
                message,
                "an action cannot wait for itself; remove one of these `run_after` entries",
            );
        }
    }

    // ---- ordering of references --------------------------------------------------------------

    /// Whether the action at `index` in the block of action `id` finishes before `id` starts.
    fn runs_before(&mut self, id: usize, index: usize) -> bool {
        let info = &self.actions[id];
        let (block, position) = (info.block, info.index);
        let ancestors =
            self.ancestors.entry(block).or_insert_with(|| Ancestors::new(&self.blocks[block].preds));
        if let Some(ancestors) = ancestors {
            return ancestors.contains(position, index);
        }
        self.predecessors(id)[index]
    }

    /// Positions (in the action's block) of the actions that finish before it starts, found by
    /// walking `run_after`; used for blocks with a cycle, where [`Ancestors`] does not apply.
    fn predecessors(&mut self, id: usize) -> &Vec<bool> {
        if !self.before.contains_key(&id) {
            let info = &self.actions[id];
            let block = &self.blocks[info.block];
            let mut seen = vec![false; block.actions.len()];
            let mut stack: Vec<usize> = block.preds[info.index].iter().map(|(p, _)| *p).collect();
            while let Some(p) = stack.pop() {
                if !std::mem::replace(&mut seen[p], true) {
                    stack.extend(block.preds[p].iter().map(|(q, _)| *q));
                }
            }
            self.before.insert(id, seen);
        }
        &self.before[&id]
    }

    fn chain(&self, id: usize) -> Vec<usize> {
        let mut chain = vec![id];
        while let Some(parent) = chain.last().and_then(|&last| self.actions[last].parent) {
            chain.push(parent);
        }
        chain
    }

    /// Whether `target` (or a container holding it) finishes before `at` (or a container
    /// holding it) starts.
    fn has_run_before(&mut self, target: usize, at: At) -> bool {
        let targets = self.chain(target);
        if at.sees_descendants && targets[1..].contains(&at.action) {
            return true;
        }
        for a in self.chain(at.action) {
            let block = self.actions[a].block;
            let Some(&t) = targets.iter().find(|&&t| self.actions[t].block == block) else { continue };
            let index = self.actions[t].index;
            if t != a && self.runs_before(a, index) {
                return true;
            }
        }
        false
    }

    // ---- pass 2: build blocks, actions and templates ------------------------------------------

    fn build_block(&mut self, defs: &'d ActionDefs, block: usize) -> Block {
        let ids = self.blocks[block].actions.clone();
        let mut graph = DiGraph::new();
        let nodes: Vec<_> = (0..ids.len()).map(|i| graph.add_node(i)).collect();
        let mut actions = Vec::with_capacity(ids.len());
        for (position, (&id, def)) in ids.iter().zip(defs.values()).enumerate() {
            let preds = self.blocks[block].preds[position].clone();
            for (from, statuses) in &preds {
                graph.add_edge(nodes[*from], nodes[position], *statuses);
            }
            let run_after =
                preds.into_iter().map(|(action, statuses)| RunAfter { action, statuses }).collect();
            actions.push(self.build_action(id, def, run_after));
        }
        Block { actions, graph }
    }

    fn build_action(&mut self, id: usize, def: &'d ActionDef, run_after: Vec<RunAfter>) -> Action {
        let at = At { action: id, sees_descendants: false };
        let timeout = def.common.timeout.as_ref().and_then(|t| self.duration(t));
        let (kind, retry) = self.build_kind(id, def, at);
        Action {
            name: self.actions[id].name.to_string(),
            type_name: def.type_name.value.clone(),
            run_after,
            retry: retry.unwrap_or_default(),
            timeout,
            description: def.common.description.clone(),
            kind,
        }
    }

    fn child(&mut self, id: usize, n: usize, defs: &'d ActionDefs) -> Block {
        let block = self.actions[id].children.get(n).copied();
        block.map(|b| self.build_block(defs, b)).unwrap_or_default()
    }

    fn build_kind(&mut self, id: usize, def: &'d ActionDef, at: At) -> (ActionKind, Option<RetryPolicy>) {
        let kind = match &def.body {
            ActionBody::Compose(d) => ActionKind::Compose { inputs: self.template(&d.inputs, at) },
            ActionBody::RunFlow(d) => {
                if d.flow.value == self.def.name.value {
                    self.error(
                        "invalid_value",
                        d.flow.span,
                        "a flow cannot run itself".into(),
                        "name another flow of this folder",
                    );
                }
                let body = d.body.as_ref().map_or(Template::Literal(Value::Null), |b| self.template(b, at));
                ActionKind::RunFlow { flow: d.flow.value.clone(), body }
            }
            ActionBody::ParseJson(d) => ActionKind::ParseJson {
                content: self.template(&d.content, at),
                schema: d.schema.as_ref().map(Node::to_json),
            },
            ActionBody::Select(d) => {
                ActionKind::Select { from: self.template(&d.from, at), map: self.template(&d.map, at) }
            }
            ActionBody::Filter(d) => ActionKind::Filter {
                from: self.template(&d.from, at),
                condition: self.condition(&d.condition, at),
            },
            ActionBody::Join(d) => ActionKind::Join {
                from: self.template(&d.from, at),
                separator: self.template(&d.separator, at),
            },
            ActionBody::InitializeVariable(d) => ActionKind::InitializeVariable {
                name: d.name.value.clone(),
                kind: d.variable_type,
                value: d.value.as_ref().map(|v| self.template(v, at)),
            },
            ActionBody::SetVariable(d) => {
                self.check_variable(&d.name, None);
                ActionKind::SetVariable { name: d.name.value.clone(), value: self.template(&d.value, at) }
            }
            ActionBody::IncrementVariable(d) => {
                self.check_variable(&d.name, Some(&[ValueType::Integer, ValueType::Float]));
                ActionKind::IncrementVariable { name: d.name.value.clone(), by: self.by(d.by.as_ref(), at) }
            }
            ActionBody::DecrementVariable(d) => {
                self.check_variable(&d.name, Some(&[ValueType::Integer, ValueType::Float]));
                ActionKind::DecrementVariable { name: d.name.value.clone(), by: self.by(d.by.as_ref(), at) }
            }
            ActionBody::AppendToArrayVariable(d) => {
                self.check_variable(&d.name, Some(&[ValueType::Array]));
                ActionKind::AppendToArrayVariable {
                    name: d.name.value.clone(),
                    value: self.template(&d.value, at),
                }
            }
            ActionBody::AppendToStringVariable(d) => {
                self.check_variable(&d.name, Some(&[ValueType::String]));
                ActionKind::AppendToStringVariable {
                    name: d.name.value.clone(),
                    value: self.template(&d.value, at),
                }
            }
            ActionBody::If(d) => ActionKind::If {
                condition: self.condition(&d.condition, at),
                then: self.child(id, 0, &d.then),
                otherwise: self.child(id, 1, &d.otherwise),
            },
            ActionBody::Switch(d) => {
                let on = self.template(&d.on, at);
                let mut cases = Vec::with_capacity(d.cases.len());
                for (n, (value, actions)) in d.cases.iter().enumerate() {
                    cases.push((case_value(value), self.child(id, n, actions)));
                }
                let default = self.child(id, d.cases.len(), &d.default);
                ActionKind::Switch { on, cases, default }
            }
            ActionBody::Scope(d) => ActionKind::Scope { actions: self.child(id, 0, &d.actions) },
            ActionBody::Foreach(d) => {
                let concurrency = self.ranged(d.concurrency.as_ref(), 1..=50, "foreach `concurrency`", 1);
                self.warn_parallel_variables(d, concurrency);
                ActionKind::Foreach {
                    items: self.template(&d.items, at),
                    actions: self.child(id, 0, &d.actions),
                    concurrency: concurrency as usize,
                }
            }
            ActionBody::Until(d) => {
                let limit = d.limit.as_ref();
                let limit_count =
                    self.ranged(limit.and_then(|l| l.count.as_ref()), 1..=5000, "until `limit.count`", 60);
                let limit_timeout = limit
                    .and_then(|l| l.timeout.as_ref())
                    .and_then(|t| self.duration(t))
                    .unwrap_or(Duration::from_secs(3600));
                ActionKind::Until {
                    condition: self.condition(&d.condition, At { sees_descendants: true, ..at }),
                    actions: self.child(id, 0, &d.actions),
                    limit_count,
                    limit_timeout,
                }
            }
            ActionBody::Delay(d) => self.delay(def, d, at),
            ActionBody::Unsupported(d) => {
                let name = self.actions[id].name;
                self.error(
                    "unsupported_action",
                    d.reason.span,
                    format!("`{name}` is a placeholder for an action that was not translated: {}", d.reason.value),
                    "replace it with coflow actions that do the same (its source is under `original`), or remove it",
                );
                // Never run: the error keeps the flow from loading.
                ActionKind::Compose { inputs: Template::Literal(Value::Null) }
            }
            ActionBody::Terminate(d) => {
                self.not_in_loop(id, "terminate");
                let status = match d.status.unwrap_or(TerminateStatus::Failed) {
                    TerminateStatus::Succeeded => "succeeded",
                    TerminateStatus::Failed => "failed",
                    TerminateStatus::Cancelled => "cancelled",
                };
                ActionKind::Terminate {
                    status: status.into(),
                    code: d.code.as_ref().map(|n| self.template(n, at)),
                    message: d.message.as_ref().map(|n| self.template(n, at)),
                }
            }
            ActionBody::Response(d) => {
                self.not_in_loop(id, "response");
                // A manual flow answers the flow that runs it (`run_flow`), like Power Automate's
                // "Respond to a PowerApp or flow".
                if !matches!(self.def.trigger, TriggerDef::Http(_) | TriggerDef::Manual(_)) {
                    self.error(
                        "response_without_http",
                        def.type_name.span,
                        format!("`response` needs an `http` or `manual` trigger, but this flow's trigger is `{}`", self.def.trigger.type_name()),
                        "only a flow started by an HTTP request or by another flow has a caller to answer; remove the action or change the trigger",
                    );
                }
                ActionKind::Response {
                    status: self.optional(d.status.as_ref(), Value::from(200), at),
                    headers: self.optional(d.headers.as_ref(), serde_json::json!({}), at),
                    body: self.optional(d.body.as_ref(), Value::Null, at),
                }
            }
            ActionBody::Http(d) => {
                let mut request = vec![("method".to_string(), self.template(&d.method, at))];
                request.push(("url".into(), self.template(&d.url, at)));
                let optional = [
                    ("headers", &d.headers),
                    ("query", &d.query),
                    ("body", &d.body),
                    ("authentication", &d.authentication),
                ];
                for (key, node) in optional {
                    if let Some(node) = node {
                        request.push((key.into(), self.template(node, at)));
                    }
                }
                let retry = d.retry.as_ref().map(|r| self.retry(r));
                return (ActionKind::Http { request: Template::Object(request) }, retry);
            }
            ActionBody::Connector(d) => {
                self.check_operation(def, d);
                self.check_alias(d.connection.as_ref());
                let kind = ActionKind::Connector {
                    connector: d.connector.clone(),
                    operation: d.operation.clone(),
                    connection: d.connection.as_ref().map(|c| c.value.clone()),
                    inputs: self.optional(d.inputs.as_ref(), Value::Null, at),
                };
                let retry = d.retry.as_ref().map(|r| self.retry(r));
                return (kind, retry);
            }
        };
        (kind, None)
    }

    /// Power Automate warns that variable updates in parallel iterations give unpredictable
    /// results; the loop should run with concurrency 1.
    fn warn_parallel_variables(&mut self, d: &ForeachDef, concurrency: u32) {
        let Some(span) = d.concurrency.as_ref().map(|c| c.span) else { return };
        if concurrency <= 1 {
            return;
        }
        let Some(name) = first_variable_update(&d.actions) else { return };
        self.diagnostics.push(
            Diagnostic::error(
                "parallel_variables",
                span,
                format!("`{name}` changes a variable while iterations run {concurrency} at a time"),
            )
            .with_hint(
                "iterations race on the variable; use `concurrency: 1` or collect results with `select`",
            )
            .warning(),
        );
    }

    fn delay(&mut self, def: &ActionDef, d: &'d DelayDef, at: At) -> ActionKind {
        if d.duration.is_some() == d.until.is_some() {
            self.error(
                "invalid_value",
                def.type_name.span,
                "a `delay` takes exactly one of `duration` and `until`".into(),
                "e.g. `duration: PT30S` or `until: \"{{ addDays(utcNow(), 1) }}\"`",
            );
        }
        ActionKind::Delay {
            duration: d.duration.as_ref().and_then(|t| self.duration(t)),
            until: d.until.as_ref().map(|n| self.template(n, at)),
        }
    }

    fn not_in_loop(&mut self, id: usize, what: &str) {
        let info = &self.actions[id];
        if info.loop_depth == 0 {
            return;
        }
        let span = info.def.type_name.span;
        let name = info.name;
        let looping = self.chain(id).into_iter().skip(1).find(|&a| self.actions[a].def.body.is_loop());
        let container = looping.map(|a| self.actions[a].name).unwrap_or_default();
        self.error(
            "not_allowed_in_loop",
            span,
            format!("`{what}` is not allowed inside `foreach` or `until`, but `{name}` is inside `{container}`"),
            "move it after the loop; inside a loop, record the outcome in a variable and act on it afterwards",
        );
    }

    fn check_operation(&mut self, def: &ActionDef, d: &ConnectorDef) {
        let span = def.type_name.span;
        let Some(operations) = crate::connectors::catalog(&d.connector) else {
            self.error(
                "unknown_connector",
                span,
                format!("unknown connector `{}`", d.connector),
                "the part before the dot names a connector compiled into coflow",
            );
            return;
        };
        if operations.iter().any(|op| op.name == d.operation) {
            return;
        }
        let names: Vec<&str> = operations.iter().map(|op| op.name).collect();
        let hint = match did_you_mean(&d.operation, names.iter().copied()) {
            Some(close) => format!("did you mean `{}.{close}`?", d.connector),
            None => format!("the part after the dot names an operation of `{}`", d.connector),
        };
        self.error(
            "unknown_operation",
            span,
            format!("connector `{}` has no operation `{}`", d.connector, d.operation),
            hint,
        );
    }

    fn check_variable(&mut self, name: &Spanned<String>, types: Option<&[ValueType]>) {
        if name.is_empty() {
            return;
        }
        match self.variables.get(name.as_str()).copied() {
            None => self.unknown_variable(&name.value, name.span),
            Some((kind, _)) => {
                let Some(types) = types else { return };
                if !types.contains(&kind) {
                    let expected: Vec<&str> =
                        ValueType::ALL.iter().filter(|(_, t)| types.contains(t)).map(|(n, _)| *n).collect();
                    let actual =
                        ValueType::ALL.iter().find(|(_, t)| *t == kind).map(|(n, _)| *n).unwrap_or_default();
                    self.error(
                        "variable_type",
                        name.span,
                        format!(
                            "variable `{}` is of type {actual}, but this action needs {}",
                            name.value,
                            expected.join(" or ")
                        ),
                        "change the action or the variable's `variable_type`",
                    );
                }
            }
        }
    }

    fn unknown_variable(&mut self, name: &str, span: Span) {
        let hint = match did_you_mean(name, self.variables.keys().copied()) {
            Some(close) => format!("did you mean `{close}`?"),
            None => {
                format!("add a top-level `initialize_variable` action with `name: {name}` before it is used")
            }
        };
        self.error("unknown_variable", span, format!("variable `{name}` is never initialized"), hint);
    }

    fn ranged(
        &mut self,
        value: Option<&Spanned<u32>>,
        range: std::ops::RangeInclusive<u32>,
        what: &str,
        default: u32,
    ) -> u32 {
        let Some(value) = value else { return default };
        if range.contains(&value.value) {
            return value.value;
        }
        self.error(
            "out_of_range",
            value.span,
            format!("{what} is {}, outside {}..={}", value.value, range.start(), range.end()),
            format!("use a number from {} to {}", range.start(), range.end()),
        );
        default
    }

    fn retry(&mut self, def: &RetryDef) -> RetryPolicy {
        let count = self.ranged(def.count.as_ref(), 1..=90, "retry `count`", 4);
        let mut interval = |text: &Option<Spanned<String>>, default: u64| {
            text.as_ref().and_then(|t| self.duration(t)).unwrap_or(Duration::from_secs(default))
        };
        match def.kind {
            RetryKind::None => RetryPolicy::None,
            RetryKind::Fixed => RetryPolicy::Fixed { count, interval: interval(&def.interval, 7) },
            RetryKind::Exponential => RetryPolicy::Exponential {
                count,
                interval: interval(&def.interval, 7),
                min_interval: interval(&def.min_interval, 5),
                max_interval: interval(&def.max_interval, 3600),
            },
        }
    }

    fn by(&mut self, by: Option<&Node>, at: At) -> Template {
        self.optional(by, Value::from(1), at)
    }

    fn optional(&mut self, node: Option<&Node>, default: Value, at: At) -> Template {
        match node {
            Some(node) => self.template(node, at),
            None => Template::Literal(default),
        }
    }

    fn condition(&mut self, node: &Node, at: At) -> Template {
        if !matches!(node.value, NodeValue::String(_) | NodeValue::Bool(_) | NodeValue::Null) {
            self.error(
                "wrong_type",
                node.span,
                format!("expected a condition, found {}", node.describe()),
                "write a `{{ expression }}` that yields true or false",
            );
        }
        self.template(node, at)
    }

    /// Compiles a value into a template, string by string, so that each problem points at
    /// the string that has it.
    fn template(&mut self, node: &Node, at: At) -> Template {
        if !node.has_template() {
            return Template::Literal(node.to_json());
        }
        match &node.value {
            NodeValue::String(text) => self.string_template(text, node.span, at),
            NodeValue::Seq(items) => {
                Template::Array(items.iter().map(|item| self.template(item, at)).collect())
            }
            NodeValue::Map(entries) => Template::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text().unwrap_or_default(), self.template(v, at)))
                    .collect(),
            ),
            _ => Template::Literal(node.to_json()),
        }
    }

    fn string_template(&mut self, text: &str, span: Span, at: At) -> Template {
        let template = match expr::compile(&Value::String(text.to_string())) {
            Ok(template) => template,
            Err(err) => {
                // minijinja names the pseudo-file `<expression>`; the diagnostic already has a position.
                let message = err.message.split(" (in <expression>").next().unwrap_or_default();
                self.error(
                    "template_syntax",
                    span,
                    format!("invalid template: {message}"),
                    "expressions use minijinja syntax inside `{{ }}`, e.g. `{{ body('get_referral').id }}`",
                );
                return Template::Literal(Value::Null);
            }
        };
        self.check_references(&template, span, at);
        template
    }

    fn check_references(&mut self, template: &Template, span: Span, at: At) {
        let refs = template.references();
        for function in &refs.functions {
            if !FUNCTIONS.contains(function) {
                let hint = match did_you_mean(function, FUNCTIONS.iter().map(String::as_str)) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => "functions are the Power Automate library (concat, equals, formatDateTime, ...) and minijinja's range, dict, namespace".into(),
                };
                self.error("unknown_function", span, format!("unknown function `{function}`"), hint);
            }
        }
        for variable in &refs.variables {
            if !self.variables.contains_key(variable.as_str()) {
                self.unknown_variable(variable, span);
            }
        }
        for action in &refs.actions {
            self.check_action_reference(action, span, at);
        }
    }

    fn check_action_reference(&mut self, target: &str, span: Span, at: At) {
        if self.broken.contains(target) {
            return;
        }
        let here = self.actions[at.action].name;
        let Some(&id) = self.by_name.get(target) else {
            let hint = match did_you_mean(target, self.by_name.keys().copied()) {
                Some(close) => format!("did you mean `{close}`?"),
                None => "name an action of this flow".into(),
            };
            self.error("unknown_action", span, format!("`{here}` refers to unknown action `{target}`"), hint);
            return;
        };
        let loops_outside = self
            .chain(id)
            .into_iter()
            .skip(1)
            .filter(|&a| matches!(self.actions[a].def.body, ActionBody::Foreach(_)))
            .filter(|&a| !self.chain(at.action).contains(&a))
            .count();
        if loops_outside >= 2 {
            self.error(
                "nested_loop_reference",
                span,
                format!("`{here}` refers to `{target}`, which is nested in {loops_outside} levels of `foreach`"),
                "Power Automate only allows reading an action inside a loop from outside it with one level of nesting; collect the values with `select` or a variable",
            );
            return;
        }
        if self.has_run_before(id, at) {
            return;
        }
        self.error(
            "not_yet_run",
            span,
            format!("`{here}` refers to `{target}`, which cannot have run before it"),
            format!("make `{here}` (or the block holding it) run after `{target}` (or the block holding it) through `run_after`"),
        );
    }
}

/// The first action in `defs` (at any depth) that changes a variable.
fn first_variable_update(defs: &ActionDefs) -> Option<&str> {
    for (name, def) in defs {
        let updates = matches!(
            def.body,
            ActionBody::SetVariable(_)
                | ActionBody::IncrementVariable(_)
                | ActionBody::DecrementVariable(_)
                | ActionBody::AppendToArrayVariable(_)
                | ActionBody::AppendToStringVariable(_)
        );
        if updates {
            return Some(name);
        }
        if let Some(inner) =
            def.body.blocks().into_iter().find_map(|(_, actions)| first_variable_update(actions))
        {
            return Some(inner);
        }
    }
    None
}

fn to_settings<T: serde::Serialize>(value: &T, settings: &mut indexmap::IndexMap<String, Value>) {
    if let Ok(Value::Object(map)) = serde_json::to_value(value) {
        settings.extend(map);
    }
}

/// A switch case's key keeps its YAML type: `1:` matches the number 1, `"1":` the text.
fn case_value(key: &Node) -> Value {
    match &key.value {
        NodeValue::Seq(_) | NodeValue::Map(_) => Value::String(key.key_text().unwrap_or_default()),
        _ => key.to_json(),
    }
}

/// For each position of an acyclic block, the set of positions that finish before it starts
/// (its predecessors through `run_after`, transitively), one bit per position.
struct Ancestors {
    /// 64-bit words per set.
    words: usize,
    /// The sets, one after the other, in position order.
    bits: Vec<u64>,
}

impl Ancestors {
    /// The sets of a block whose positions have the predecessors `preds`; `None` when
    /// `run_after` forms a cycle.
    fn new(preds: &[Vec<(usize, StatusSet)>]) -> Option<Self> {
        let n = preds.len();
        let words = n.div_ceil(64);
        // Kahn's algorithm: a position is done once all of its predecessors are.
        let mut waiting: Vec<usize> = preds.iter().map(Vec::len).collect();
        let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (position, list) in preds.iter().enumerate() {
            for &(p, _) in list {
                successors[p].push(position);
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&p| waiting[p] == 0).collect();
        let mut bits = vec![0u64; n * words];
        let mut done = 0;
        while let Some(position) = ready.pop() {
            done += 1;
            for &(p, _) in &preds[position] {
                let (from, to) = (p * words, position * words);
                for w in 0..words {
                    bits[to + w] |= bits[from + w];
                }
                bits[to + p / 64] |= 1 << (p % 64);
            }
            for &next in &successors[position] {
                waiting[next] -= 1;
                if waiting[next] == 0 {
                    ready.push(next);
                }
            }
        }
        (done == n).then_some(Ancestors { words, bits })
    }

    /// Whether `other` finishes before `position` starts.
    fn contains(&self, position: usize, other: usize) -> bool {
        self.bits[position * self.words + other / 64] & (1 << (other % 64)) != 0
    }
}

/// A path `first → … → first` through the members of one strongly connected component.
fn cycle_path(preds: &[Vec<(usize, StatusSet)>], first: usize, members: &[usize]) -> Vec<usize> {
    // Walk predecessor edges backwards from `first` until it comes round again.
    let mut came_from: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([first]);
    while let Some(node) = queue.pop_front() {
        for &(pred, _) in &preds[node] {
            if !members.contains(&pred) || came_from.contains_key(&pred) {
                continue;
            }
            came_from.insert(pred, node);
            if pred == first {
                queue.clear();
                break;
            }
            queue.push_back(pred);
        }
    }
    // came_from[p] = the action that runs after p, so following it from `first` walks forwards.
    let mut path = vec![first];
    let mut node = first;
    while let Some(&next) = came_from.get(&node) {
        path.push(next);
        if next == first || path.len() > members.len() + 1 {
            break;
        }
        node = next;
    }
    if path.last() != Some(&first) {
        path.push(first);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iso_durations_only() {
        assert_eq!(parse_duration("PT1M30S"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("P1D"), Ok(Duration::from_secs(86_400)));
        assert!(matches!(parse_duration("5 minutes"), Err(DurationError::Syntax(_))));
        assert!(matches!(parse_duration("P1M"), Err(DurationError::Calendar(_))));
        assert!(matches!(parse_duration("-PT1S"), Err(DurationError::Negative(_))));
    }

    #[test]
    fn ancestors_follow_run_after_transitively() {
        // 1 and 2 run after 0, 3 after 2, 4 after 1 and 3; 5 runs after nothing.
        let s = StatusSet::SUCCEEDED;
        let preds = vec![vec![], vec![(0, s)], vec![(0, s)], vec![(2, s)], vec![(1, s), (3, s)], vec![]];
        let Some(ancestors) = Ancestors::new(&preds) else { panic!("the block has no cycle") };
        let before = |p: usize| (0..preds.len()).filter(|&o| ancestors.contains(p, o)).collect::<Vec<_>>();
        assert_eq!(before(0), Vec::<usize>::new());
        assert_eq!(before(3), vec![0, 2]);
        assert_eq!(before(4), vec![0, 1, 2, 3]);
        assert_eq!(before(5), Vec::<usize>::new());
    }

    #[test]
    fn ancestors_span_more_than_one_word_and_refuse_cycles() {
        let s = StatusSet::SUCCEEDED;
        let chain: Vec<Vec<(usize, StatusSet)>> =
            (0..130).map(|p| if p == 0 { vec![] } else { vec![(p - 1, s)] }).collect();
        let Some(ancestors) = Ancestors::new(&chain) else { panic!("a chain has no cycle") };
        assert!(ancestors.contains(129, 0) && ancestors.contains(129, 64) && ancestors.contains(100, 99));
        assert!(!ancestors.contains(64, 64) && !ancestors.contains(64, 65));
        assert!(Ancestors::new(&[vec![(1, s)], vec![(0, s)]]).is_none());
    }

    #[test]
    fn cycle_path_walks_forward_through_the_component() {
        // 0 runs after 2, 1 after 0, 2 after 1.
        let s = StatusSet::SUCCEEDED;
        let preds = vec![vec![(2, s)], vec![(0, s)], vec![(1, s)]];
        assert_eq!(cycle_path(&preds, 0, &[0, 1, 2]), vec![0, 1, 2, 0]);
    }
}
