//! Loading flow files and compiling [`FlowDef`] into [`Flow`].

use std::path::Path;
use std::time::Duration;

use petgraph::graph::DiGraph;
use serde_json::Value;

use super::def::{ActionDef, ActionDefs, FlowDef, RetryDef, RetryKind};
use super::model::*;
use crate::expr::{self, Template};

/// Why a flow could not be loaded or compiled.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(pub String);

/// Reads and compiles a flow file.
pub fn load_file(path: &Path) -> Result<Flow, CompileError> {
    let text = std::fs::read_to_string(path).map_err(|e| CompileError(format!("{}: {e}", path.display())))?;
    let mut flow = load_str(&text)?;
    flow.source = Some(path.to_path_buf());
    Ok(flow)
}

/// Parses and compiles flow text.
pub fn load_str(text: &str) -> Result<Flow, CompileError> {
    let def: FlowDef = serde_yaml::from_str(text).map_err(|e| CompileError(e.to_string()))?;
    compile(&def)
}

/// Compiles a definition into a runnable flow.
pub fn compile(def: &FlowDef) -> Result<Flow, CompileError> {
    Ok(Flow {
        name: def.name.clone(),
        description: def.description.clone(),
        source: None,
        parameters: def
            .parameters
            .iter()
            .map(|(k, p)| (k.clone(), Parameter { kind: p.kind, default: p.default.clone() }))
            .collect(),
        connections: def.connections.clone(),
        trigger: Trigger {
            kind: def.trigger.kind.clone(),
            connection: def.trigger.connection.clone(),
            settings: def.trigger.settings.clone(),
        },
        root: compile_block(&def.actions)?,
        mappings: Default::default(),
    })
}

fn compile_block(defs: &ActionDefs) -> Result<Block, CompileError> {
    let names: Vec<&String> = defs.keys().collect();
    let mut actions = Vec::with_capacity(defs.len());
    let mut graph = DiGraph::new();
    let nodes: Vec<_> = (0..defs.len()).map(|i| graph.add_node(i)).collect();
    for (index, (name, def)) in defs.iter().enumerate() {
        let run_after = match &def.run_after {
            None if index == 0 => Vec::new(),
            None => vec![RunAfter { action: index - 1, statuses: StatusSet::SUCCEEDED }],
            Some(map) => map
                .iter()
                .map(|(pred, statuses)| {
                    let action = names.iter().position(|n| *n == pred).ok_or_else(|| {
                        CompileError(format!("action `{name}` runs after unknown action `{pred}`"))
                    })?;
                    Ok(RunAfter { action, statuses: StatusSet::from_list(statuses) })
                })
                .collect::<Result<_, CompileError>>()?,
        };
        for pred in &run_after {
            graph.add_edge(nodes[pred.action], nodes[index], pred.statuses);
        }
        actions.push(compile_action(name, def, run_after)?);
    }
    Ok(Block { actions, graph })
}

fn compile_action(name: &str, def: &ActionDef, run_after: Vec<RunAfter>) -> Result<Action, CompileError> {
    let settings = Settings { name, def };
    let kind = match def.kind.as_str() {
        "compose" => ActionKind::Compose { inputs: settings.template_or_null("inputs")? },
        "parse_json" => ActionKind::ParseJson {
            content: settings.template("content")?,
            schema: settings.value("schema").cloned(),
        },
        "select" => ActionKind::Select { from: settings.template("from")?, map: settings.template("map")? },
        "filter" => {
            ActionKind::Filter { from: settings.template("from")?, condition: settings.template("where")? }
        }
        "join" => {
            ActionKind::Join { from: settings.template("from")?, separator: settings.template("separator")? }
        }
        "initialize_variable" => ActionKind::InitializeVariable {
            name: settings.string("name")?,
            kind: serde_json::from_value(settings.required("variable_type")?.clone())
                .map_err(|e| CompileError(format!("action `{name}`: variable_type: {e}")))?,
            value: settings.value("value").map(expr::compile).transpose().map_err(|e| settings.error(e))?,
        },
        "set_variable" => {
            ActionKind::SetVariable { name: settings.string("name")?, value: settings.template("value")? }
        }
        "increment_variable" => ActionKind::IncrementVariable {
            name: settings.string("name")?,
            by: settings.template_or("by", 1)?,
        },
        "decrement_variable" => ActionKind::DecrementVariable {
            name: settings.string("name")?,
            by: settings.template_or("by", 1)?,
        },
        "append_to_array_variable" => ActionKind::AppendToArrayVariable {
            name: settings.string("name")?,
            value: settings.template("value")?,
        },
        "append_to_string_variable" => ActionKind::AppendToStringVariable {
            name: settings.string("name")?,
            value: settings.template("value")?,
        },
        "if" => ActionKind::If {
            condition: settings.template("condition")?,
            then: settings.block("then")?,
            otherwise: settings.block("else")?,
        },
        "switch" => {
            let cases = match settings.value("cases") {
                Some(Value::Object(map)) => map
                    .iter()
                    .map(|(k, v)| Ok((Value::String(k.clone()), compile_block(&actions_of(name, v)?)?)))
                    .collect::<Result<_, CompileError>>()?,
                _ => Vec::new(),
            };
            ActionKind::Switch { on: settings.template("on")?, cases, default: settings.block("default")? }
        }
        "scope" => ActionKind::Scope { actions: settings.block("actions")? },
        "foreach" => ActionKind::Foreach {
            items: settings.template("items")?,
            actions: settings.block("actions")?,
            concurrency: settings.value("concurrency").and_then(Value::as_u64).unwrap_or(1) as usize,
        },
        "until" => {
            let limit = settings.value("limit");
            ActionKind::Until {
                condition: settings.template("condition")?,
                actions: settings.block("actions")?,
                limit_count: limit.and_then(|l| l.get("count")).and_then(Value::as_u64).unwrap_or(60) as u32,
                limit_timeout: limit
                    .and_then(|l| l.get("timeout"))
                    .and_then(Value::as_str)
                    .map(|s| parse_duration(name, s))
                    .transpose()?
                    .unwrap_or(Duration::from_secs(3600)),
            }
        }
        "delay" => ActionKind::Delay {
            duration: settings
                .value("duration")
                .and_then(Value::as_str)
                .map(|s| parse_duration(name, s))
                .transpose()?,
            until: settings.value("until").map(expr::compile).transpose().map_err(|e| settings.error(e))?,
        },
        "terminate" => ActionKind::Terminate {
            status: settings.value("status").and_then(Value::as_str).unwrap_or("failed").to_string(),
            code: settings.value("code").map(expr::compile).transpose().map_err(|e| settings.error(e))?,
            message: settings
                .value("message")
                .map(expr::compile)
                .transpose()
                .map_err(|e| settings.error(e))?,
        },
        "response" => ActionKind::Response {
            status: settings.template_or("status", 200)?,
            headers: settings.template_or("headers", serde_json::json!({}))?,
            body: settings.template_or_null("body")?,
        },
        "http" => ActionKind::Http {
            request: expr::compile(&Value::Object(def.settings.clone().into_iter().collect()))
                .map_err(|e| settings.error(e))?,
        },
        other => match other.split_once('.') {
            Some((connector, operation)) => ActionKind::Connector {
                connector: connector.to_string(),
                operation: operation.to_string(),
                connection: def.connection.clone(),
                inputs: settings.template_or_null("inputs")?,
            },
            None => return Err(CompileError(format!("action `{name}`: unknown type `{other}`"))),
        },
    };
    Ok(Action {
        name: name.to_string(),
        type_name: def.kind.clone(),
        run_after,
        retry: def.retry.as_ref().map(|r| retry_policy(name, r)).transpose()?.unwrap_or_default(),
        timeout: def.timeout.as_deref().map(|t| parse_duration(name, t)).transpose()?,
        description: def.description.clone(),
        kind,
    })
}

fn actions_of(name: &str, value: &Value) -> Result<ActionDefs, CompileError> {
    serde_json::from_value(value.clone()).map_err(|e| CompileError(format!("action `{name}`: {e}")))
}

struct Settings<'a> {
    name: &'a str,
    def: &'a ActionDef,
}

impl Settings<'_> {
    fn value(&self, key: &str) -> Option<&Value> {
        if key == "inputs" {
            return self.def.inputs.as_ref();
        }
        self.def.settings.get(key)
    }
    fn required(&self, key: &str) -> Result<&Value, CompileError> {
        self.value(key).ok_or_else(|| CompileError(format!("action `{}` needs `{key}`", self.name)))
    }
    fn error(&self, e: expr::ExprError) -> CompileError {
        CompileError(format!("action `{}`: {e}", self.name))
    }
    fn template(&self, key: &str) -> Result<Template, CompileError> {
        expr::compile(self.required(key)?).map_err(|e| self.error(e))
    }
    fn template_or(&self, key: &str, default: impl Into<Value>) -> Result<Template, CompileError> {
        expr::compile(self.value(key).unwrap_or(&default.into())).map_err(|e| self.error(e))
    }
    fn template_or_null(&self, key: &str) -> Result<Template, CompileError> {
        self.template_or(key, Value::Null)
    }
    fn string(&self, key: &str) -> Result<String, CompileError> {
        self.required(key)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| CompileError(format!("action `{}`: `{key}` must be a string", self.name)))
    }
    fn block(&self, key: &str) -> Result<Block, CompileError> {
        match self.value(key) {
            None | Some(Value::Null) => Ok(Block::default()),
            Some(v) => compile_block(&actions_of(self.name, v)?),
        }
    }
}

fn retry_policy(name: &str, def: &RetryDef) -> Result<RetryPolicy, CompileError> {
    let interval = |s: &Option<String>, default: u64| {
        s.as_deref()
            .map(|s| parse_duration(name, s))
            .transpose()
            .map(|d| d.unwrap_or(Duration::from_secs(default)))
    };
    Ok(match def.kind {
        RetryKind::None => RetryPolicy::None,
        RetryKind::Fixed => {
            RetryPolicy::Fixed { count: def.count.unwrap_or(4), interval: interval(&def.interval, 7)? }
        }
        RetryKind::Exponential => RetryPolicy::Exponential {
            count: def.count.unwrap_or(4),
            interval: interval(&def.interval, 7)?,
            min_interval: interval(&def.min_interval, 5)?,
            max_interval: interval(&def.max_interval, 3600)?,
        },
    })
}

/// Parses an ISO-8601 duration such as `PT5S` or `P1DT2H`.
pub fn parse_duration(name: &str, text: &str) -> Result<Duration, CompileError> {
    let span: jiff::Span = text
        .parse()
        .map_err(|e| CompileError(format!("action `{name}`: `{text}` is not an ISO-8601 duration ({e})")))?;
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| CompileError(format!("action `{name}`: `{text}`: {e}")))?;
    Duration::try_from(signed).map_err(|e| CompileError(format!("action `{name}`: `{text}`: {e}")))
}
