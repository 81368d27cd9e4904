//! `coflow serve`: runs the flows of a folder as a service until SIGTERM or Ctrl-C.
//!
//! With `--sandbox` it also starts both emulators in-process, points the connections at them,
//! registers the Partner Center webhook and plays a little demo (a Salesforce opportunity marked
//! for co-sell, a referral shared by Microsoft), so one command shows both directions syncing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::connectors::config::{LoadedConnections, Secret};
use crate::connectors::{HttpClient, OperationCall};
use crate::engine::{self, RunOptions, TriggerEvent};
use crate::sandbox::{self, Sandbox, SandboxConfig};
use crate::server::registry::FlowRegistry;
use crate::server::{Server, Settings};

use super::LogFormat;

/// Demo data of `--sandbox`.
const DEMO: &str = include_str!("../sandbox/demo.yaml");

/// Options of `coflow serve`, as given on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Folder of flow files (mapping files in its `mappings/`).
    #[arg(long, default_value = "flows")]
    pub flows: PathBuf,
    /// Connections file; defaults to `coflow.yaml` in the current folder when it exists.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Store URL: `sqlite://FILE` (default `sqlite://coflow.db`), `sqlite::memory:` or
    /// `postgres://USER@HOST/DB`.
    #[arg(long, env = "COFLOW_STORE")]
    pub store: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "COFLOW_LISTEN")]
    pub listen: String,
    /// Runs executed at once by this process.
    #[arg(long, default_value_t = 32)]
    pub workers: usize,
    /// Limit one flow's concurrent runs (repeatable): `FLOW=N`.
    #[arg(long = "flow-concurrency", value_name = "FLOW=N")]
    pub flow_concurrency: Vec<String>,
    /// Bearer token of the admin API (without one, it answers loopback only).
    #[arg(long, env = "COFLOW_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Days of run history kept.
    #[arg(long, default_value_t = crate::store::DEFAULT_RETENTION_DAYS)]
    pub retention_days: u32,
    /// Seconds in-flight runs get to finish on SIGTERM before they are handed back.
    #[arg(long, default_value_t = 20)]
    pub shutdown_grace: u64,
    /// Seconds a claimed run stays leased without a heartbeat: how soon another process
    /// takes over the runs of one that died.
    #[arg(long, default_value_t = 30)]
    pub lease: u64,
    /// Do not reload flows when their files change.
    #[arg(long)]
    pub no_reload: bool,
    /// Do not fire recurrence and polling triggers in this process.
    #[arg(long)]
    pub no_schedule: bool,
    /// Hold back every write (runs show the requests they would make).
    #[arg(long)]
    pub dry_run: bool,
    /// Run hooks in memory without queueing or recording runs: fastest, but an event is lost
    /// if the process dies and there is no run history.
    #[arg(long)]
    pub no_history: bool,
    /// Start the Partner Center and Salesforce emulators, point the connections at them and
    /// play a demo.
    #[arg(long)]
    pub sandbox: bool,
    /// Poll every polling trigger at this interval (ISO-8601, e.g. `PT10S`) instead of its
    /// own `every`; `--sandbox` defaults it to 5 seconds.
    #[arg(long)]
    pub poll_every: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t)]
    pub log_format: LogFormat,
}

/// Validated settings, built before anything starts.
struct Plan {
    listen: SocketAddr,
    store: String,
    settings: Settings,
}

fn plan(args: &ServeArgs) -> anyhow::Result<Plan> {
    let listen = args
        .listen
        .parse()
        .with_context(|| format!("--listen '{}' is not an address like 127.0.0.1:8080", args.listen))?;
    let mut flow_concurrency = HashMap::new();
    for item in &args.flow_concurrency {
        let (flow, limit) = item
            .split_once('=')
            .and_then(|(flow, n)| Some((flow.to_string(), n.parse::<usize>().ok().filter(|n| *n > 0)?)))
            .with_context(|| format!("--flow-concurrency '{item}' must be FLOW=N with N at least 1"))?;
        flow_concurrency.insert(flow, limit);
    }
    let poll_every = match &args.poll_every {
        Some(text) => Some(
            crate::flow::parse_duration(text)
                .with_context(|| format!("--poll-every '{text}' is not an ISO-8601 duration like PT10S"))?,
        ),
        // The demo should show polled changes within seconds, not at the flows' own pace.
        None if args.sandbox => Some(Duration::from_secs(5)),
        None => None,
    };
    let default_store =
        if args.sandbox || args.no_history { "sqlite::memory:" } else { "sqlite://coflow.db" };
    let settings = Settings {
        workers: args.workers.max(1),
        flow_concurrency,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        lease: Duration::from_secs(args.lease.max(3)),
        max_body_bytes: args.max_body_bytes,
        retention_days: args.retention_days,
        reload: !args.no_reload,
        schedule_triggers: !args.no_schedule,
        admin_token: args.admin_token.clone().filter(|t| !t.is_empty()).map(Secret::new),
        dry_run: args.dry_run,
        poll_every,
        history: !args.no_history,
        ..Settings::default()
    };
    Ok(Plan { listen, store: args.store.clone().unwrap_or_else(|| default_store.to_string()), settings })
}

/// Runs the service until it is told to stop.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let plan = plan(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args, plan))
}

async fn serve(args: ServeArgs, plan: Plan) -> anyhow::Result<ExitCode> {
    let sandbox = if args.sandbox { Some(start_sandbox().await?) } else { None };
    let connections = match &sandbox {
        Some(sandbox) => sandbox.connections().map_err(|e| anyhow::anyhow!("{e}"))?,
        None => super::load_connections(args.config.as_deref())?,
    };
    let registry = FlowRegistry::load(&args.flows)
        .with_context(|| format!("cannot read the flows folder {}", args.flows.display()))?;
    for problem in &registry.snapshot().problems {
        eprintln!(
            "warning: {} does not compile and is not served:\n{}",
            problem.path.display(),
            problem.message
        );
    }
    let store = crate::store::open(&plan.store)
        .await
        .with_context(|| format!("cannot open the store {}", redact_url(&plan.store)))?;
    let listener = tokio::net::TcpListener::bind(plan.listen)
        .await
        .with_context(|| format!("cannot listen on {}", plan.listen))?;
    let registry = Arc::new(registry);
    let mut settings = plan.settings;
    settings.sandbox = sandbox.as_ref().map(crate::server::ui::SandboxView::of);
    let server = Server::start(listener, registry.clone(), store, connections.clone(), settings).await?;
    let base = format!("http://{}", server.addr);
    print_banner(&base, &registry, &plan.store);
    if let Some(sandbox) = &sandbox {
        play_demo(sandbox, &connections, &registry, &base).await?;
    }
    wait_for_signal().await;
    eprintln!("stopping: finishing in-flight runs");
    server.shutdown().await;
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Hides the password of a database URL.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

fn print_banner(base: &str, registry: &FlowRegistry, store: &str) {
    println!("coflow serve is listening on {base} (store: {})", redact_url(store));
    for (name, loaded) in &registry.snapshot().flows {
        let started_by = match crate::server::triggers::TriggerPlan::of(&loaded.flow) {
            Ok(plan) if plan.is_webhook() => format!("POST {base}/hooks/{name}"),
            _ => loaded.flow.trigger.kind.clone(),
        };
        println!("  {name:<40} {started_by}");
    }
    println!(
        "run history: {base}/   admin API: {base}/api/flows   metrics: {base}/metrics   health: {base}/healthz"
    );
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn start_sandbox() -> anyhow::Result<Sandbox> {
    let demo: Value = serde_yaml::from_str(DEMO).context("the built-in demo data does not parse")?;
    let mut config = SandboxConfig::ephemeral();
    config.seed_data = Some(json!({"Account": demo["salesforce"]["Account"].clone()}));
    let sandbox = sandbox::start(config).await?;
    println!("sandbox: Salesforce {}  Partner Center {}", sandbox.salesforce_url, sandbox.partner_center_url);
    Ok(sandbox)
}

/// Registers the webhook, creates the demo opportunities and shares the demo referrals.
async fn play_demo(
    sandbox: &Sandbox,
    connections: &LoadedConnections,
    registry: &FlowRegistry,
    base: &str,
) -> anyhow::Result<()> {
    let demo: Value = serde_yaml::from_str(DEMO).context("the built-in demo data does not parse")?;
    register_webhook(connections, registry, base).await?;
    let http = HttpClient::new(reqwest::Client::new(), false);
    if let Some(salesforce) = connections.salesforce.get("salesforce") {
        for record in demo["salesforce"]["Opportunity"].as_array().into_iter().flatten() {
            let inputs = json!({"sobject": "Opportunity", "record": record});
            let call = OperationCall::new("create_record", &inputs, &http);
            crate::connectors::Connector::call(salesforce.as_ref(), call)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create a demo opportunity: {e}"))?;
        }
    }
    let client = reqwest::Client::new();
    for share in demo["partner_center_shares"].as_array().into_iter().flatten() {
        client
            .post(format!("{}/__sandbox/referrals", sandbox.partner_center_url))
            .json(share)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("cannot share a demo referral")?;
    }
    println!(
        "demo: opportunities created in Salesforce and a referral shared by Microsoft; watch {base}/sandbox"
    );
    Ok(())
}

/// Runs the registration flow with this server's hook URL, like an admin would once.
async fn register_webhook(
    connections: &LoadedConnections,
    registry: &FlowRegistry,
    base: &str,
) -> anyhow::Result<()> {
    let Some(loaded) = registry.get("partner-center-webhook-registration") else {
        return Ok(());
    };
    let mut options = RunOptions::new(false);
    options.connections = connections.connections.clone();
    options.parameters.insert("webhook_url".into(), Value::String(format!("{base}/hooks/pc-to-sf")));
    let run = engine::run(&loaded.flow, TriggerEvent::default(), &options).await;
    if !run.succeeded() {
        let error = run.error.map(|e| e.message).unwrap_or_default();
        anyhow::bail!("the webhook registration flow failed: {error}");
    }
    println!("demo: Partner Center webhook registered at {base}/hooks/pc-to-sf");
    Ok(())
}
