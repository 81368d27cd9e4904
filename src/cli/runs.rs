//! `coflow runs list|show|resubmit`: the run history of a store, from the command line.
//!
//! It works on the store directly (the same URL `coflow serve` uses), so it needs no running
//! server; a resubmitted run is queued and the next server to claim work runs it.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use uuid::Uuid;

use crate::engine::Run;
use crate::store::{RunFilter, RunStatus, RunSummary, Store};

/// What to do with the history.
#[derive(Debug, Clone)]
pub enum RunsAction {
    /// List runs, newest first.
    List {
        /// Only this flow.
        flow: Option<String>,
        /// Only this status.
        status: Option<String>,
        /// Created at or after (RFC 3339).
        since: Option<String>,
        /// Text in inputs or outputs.
        text: Option<String>,
        /// How many.
        limit: u32,
    },
    /// Show one run with its actions.
    Show {
        /// The run id.
        id: String,
    },
    /// Queue a new run with the same trigger event.
    Resubmit {
        /// The run id.
        id: String,
    },
}

/// Runs the subcommand against the store at `store_url`.
pub fn run(store_url: &str, action: RunsAction, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let store = crate::store::open(store_url)
            .await
            .with_context(|| format!("cannot open the store {store_url}"))?;
        match action {
            RunsAction::List { flow, status, since, text, limit } => {
                list(store.as_ref(), flow, status, since, text, limit, json).await
            }
            RunsAction::Show { id } => show(store.as_ref(), &id, json).await,
            RunsAction::Resubmit { id } => resubmit(store.as_ref(), &id).await,
        }
    })
}

fn parse_id(text: &str) -> anyhow::Result<Uuid> {
    Uuid::parse_str(text).with_context(|| format!("`{text}` is not a run id (see `coflow runs list`)"))
}

async fn list(
    store: &dyn Store,
    flow: Option<String>,
    status: Option<String>,
    since: Option<String>,
    text: Option<String>,
    limit: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let status = status
        .map(|s| {
            RunStatus::parse(&s).map_err(|_| {
                let known: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                anyhow::anyhow!("unknown status `{s}`; use one of {}", known.join(", "))
            })
        })
        .transpose()?;
    let since = since
        .map(|s| {
            s.parse().with_context(|| format!("--since '{s}' is not a timestamp like 2026-01-31T08:00:00Z"))
        })
        .transpose()?;
    let filter = RunFilter { flow, status, since, text, limit, ..RunFilter::default() };
    let page = store.list_runs(filter).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&page.runs)?);
    } else {
        print!("{}", render_list(&page.runs));
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per run: id, flow, status, created, duration, error.
pub fn render_list(runs: &[RunSummary]) -> String {
    let mut out = String::new();
    let width = runs.iter().map(|r| r.flow.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(
        out,
        "{:<36}  {:<width$}  {:<9}  {:<20}  {:>8}  error",
        "run", "flow", "status", "created", "took"
    );
    for run in runs {
        let took = match (run.started_at, run.ended_at) {
            (Some(start), Some(end)) => format!("{} ms", end.duration_since(start).as_millis()),
            _ => String::new(),
        };
        let error =
            run.error.as_ref().and_then(|e| e.get("message")).and_then(|m| m.as_str()).unwrap_or_default();
        let created = run.created_at.strftime("%Y-%m-%d %H:%M:%S").to_string();
        let _ = writeln!(
            out,
            "{:<36}  {:<width$}  {:<9}  {created:<20}  {took:>8}  {error}",
            run.id, run.flow, run.status
        );
    }
    if runs.is_empty() {
        let _ = writeln!(out, "(no runs)");
    }
    out
}

async fn show(store: &dyn Store, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let id = parse_id(id)?;
    let detail = store.get_run(id).await?.with_context(|| format!("no run {id} in this store"))?;
    let detail = crate::server::with_full_record(detail);
    if json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
        return Ok(ExitCode::SUCCESS);
    }
    let summary = &detail.summary;
    match detail.record.clone().map(serde_json::from_value::<Run>) {
        Some(Ok(run)) => print!("{}", super::run::render_table(&run)),
        _ => {
            println!("flow {} run {}: {}", summary.flow, summary.id, summary.status);
            for action in &detail.actions {
                println!("  {:<40} {}", action.name, action.status);
            }
        }
    }
    if let Some(original) = summary.resubmit_of {
        println!("\nresubmits run {original}");
    }
    for again in &detail.resubmits {
        println!("resubmitted as run {again}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn resubmit(store: &dyn Store, id: &str) -> anyhow::Result<ExitCode> {
    let original = parse_id(id)?;
    let new_run = Uuid::now_v7();
    store.resubmit(original, new_run, crate::server::Settings::default().max_attempts).await?;
    println!("queued run {new_run} (resubmits {original}); a running `coflow serve` on this store runs it");
    Ok(ExitCode::SUCCESS)
}
