//! `coflow run FLOW [--event FILE] [--dry-run] [--json]`: run a flow once and show what happened.
//!
//! The event file holds JSON: either the trigger body itself, or an object whose only keys are
//! `body` and `headers` (`{"headers": {…}, "body": …}`) when headers matter.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use indexmap::IndexMap;
use serde_json::Value;

use crate::engine::{self, ActionResult, Run, RunOptions, TriggerEvent};

/// Longest output or error shown in one table cell.
const CELL_WIDTH: usize = 72;

/// Runs the flow and prints the table (or the JSON record); exit 0 only if the run succeeded.
pub fn run(
    flow_path: &Path,
    event: Option<&Path>,
    dry_run: bool,
    json: bool,
    config: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let flow = crate::flow::load_file(flow_path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot load flow {}", flow_path.display()))?;
    let event = read_event(event)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut options = RunOptions::new(dry_run);
    options.connections = super::load_connections(config)?.connections;
    let folder = flow_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    options.flows = Some(std::sync::Arc::new(engine::FlowFolder(folder.to_path_buf())));
    let run = runtime.block_on(engine::run(&flow, event, &options));
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print!("{}", render_table(&run));
    }
    Ok(if run.succeeded() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn read_event(path: Option<&Path>) -> anyhow::Result<TriggerEvent> {
    let Some(path) = path else { return Ok(TriggerEvent::default()) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read event file {}", path.display()))?;
    let value: Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "event file {} is not JSON: write the trigger body, or {{\"headers\": …, \"body\": …}}",
            path.display()
        )
    })?;
    Ok(TriggerEvent::from_json(value))
}

/// The readable report: a header, one row per action (loop iterations indented below their
/// loop) and, for dry-runs, every held-back request in full.
pub fn render_table(run: &Run) -> String {
    let mut rows = Vec::new();
    collect_rows(&run.actions, 0, &mut rows);
    let name_width = rows.iter().map(|r| r.name.chars().count()).max().unwrap_or(6).max(6);
    let mut out = String::new();
    let total = Duration::try_from(run.ended_at.duration_since(run.started_at)).unwrap_or_default();
    let dry = if run.dry_run { " (dry-run)" } else { "" };
    let _ = writeln!(out, "flow {} run {}{dry}: {} in {}", run.flow, run.run_id, run.status, human(total));
    if let Some(error) = &run.error {
        let _ = writeln!(out, "error: {}: {}", error.code, error.message);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<name_width$}  {:<9}  {:>8}  {:>8}  detail",
        "action", "status", "duration", "attempts"
    );
    for row in &rows {
        let _ = writeln!(
            out,
            "{:<name_width$}  {:<9}  {:>8}  {:>8}  {}",
            row.name, row.status, row.duration, row.attempts, row.detail
        );
    }
    let held: Vec<(&String, &Value)> =
        rows.iter().filter_map(|r| r.held_back.as_ref().map(|v| (&r.name, v))).collect();
    if !held.is_empty() {
        let _ = writeln!(out, "\nwrites held back by the dry-run:");
        for (name, request) in held {
            let pretty = serde_json::to_string_pretty(request).unwrap_or_default();
            let _ = writeln!(out, "\n{}:\n{pretty}", name.trim_start());
        }
    }
    if let Some(response) = &run.response {
        let body = serde_json::to_string(&response.body).unwrap_or_default();
        let _ = writeln!(out, "\nresponse: {} {}", response.status, shorten(&body));
    }
    out
}

struct Row {
    name: String,
    status: String,
    duration: String,
    attempts: String,
    detail: String,
    held_back: Option<Value>,
}

fn collect_rows(actions: &IndexMap<String, ActionResult>, depth: usize, rows: &mut Vec<Row>) {
    for (name, result) in actions {
        let indent = "  ".repeat(depth);
        rows.push(row(format!("{indent}{name}"), result));
        for iteration in result.iterations.iter().flatten() {
            rows.push(Row {
                name: format!("{indent}  [{}]", iteration.index),
                status: iteration.status.to_string(),
                duration: String::new(),
                attempts: String::new(),
                detail: String::new(),
                held_back: None,
            });
            collect_rows(&iteration.actions, depth + 2, rows);
        }
    }
}

fn row(name: String, result: &ActionResult) -> Row {
    let held_back = result
        .outputs
        .as_ref()
        .filter(|o| o.get("dry_run") == Some(&Value::Bool(true)))
        .and_then(|o| o.get("request").cloned());
    let detail = match (&result.error, &held_back, &result.outputs) {
        (Some(error), _, _) => format!("{}: {}", error.code, error.message),
        (None, Some(request), _) => {
            let method = request.get("method").and_then(Value::as_str).unwrap_or("?");
            let url = request.get("url").and_then(Value::as_str).unwrap_or("?");
            format!("held back: {method} {url}")
        }
        (None, None, Some(outputs)) if result.iterations.is_none() => {
            serde_json::to_string(outputs).unwrap_or_default()
        }
        _ => String::new(),
    };
    Row {
        name,
        status: result.status.to_string(),
        duration: match result.status {
            crate::engine::Status::Skipped => String::new(),
            _ => result.duration().map(human).unwrap_or_default(),
        },
        attempts: if result.attempts > 0 { result.attempts.to_string() } else { String::new() },
        detail: shorten(&detail),
        held_back,
    }
}

fn shorten(text: &str) -> String {
    let single: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if single.chars().count() <= CELL_WIDTH {
        return single;
    }
    let cut: String = single.chars().take(CELL_WIDTH - 1).collect();
    format!("{cut}…")
}

fn human(duration: Duration) -> String {
    if duration < Duration::from_millis(1) {
        format!("{}µs", duration.as_micros())
    } else if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}
