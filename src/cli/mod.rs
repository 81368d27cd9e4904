//! The `coflow` command line: one module per subcommand.

pub mod run;
pub mod runs;
pub mod sandbox;
pub mod serve;
pub mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod doctor;
mod eval;
mod graph;
mod import;
mod validate;

/// coflow runs declarative flows with Power Automate semantics.
#[derive(Debug, Parser)]
#[command(name = "coflow", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats of reporting commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Readable text.
    #[default]
    Text,
    /// JSON for tools.
    Json,
}

/// Graph drawing formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum GraphFormat {
    /// Mermaid flowchart.
    #[default]
    Mermaid,
    /// Graphviz dot.
    Dot,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check flow files (or folders of them) and report every problem.
    Validate {
        /// Flow files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Draw a flow's actions and their `run_after` edges.
    Graph {
        /// The flow file.
        flow: PathBuf,
        /// Drawing format.
        #[arg(long, value_enum, default_value_t)]
        format: GraphFormat,
    },
    /// Run a flow once.
    Run {
        /// The flow file.
        flow: PathBuf,
        /// JSON file with the trigger event (its body, or `{"headers", "body"}`).
        #[arg(long)]
        event: Option<PathBuf>,
        /// Send reads, hold back writes and show the requests they would make.
        #[arg(long)]
        dry_run: bool,
        /// Print the run record as JSON.
        #[arg(long)]
        json: bool,
        /// Connections file; defaults to `coflow.yaml` in the current folder when it exists.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run flow unit tests (`*.test.yaml`) with mocked calls.
    Test {
        /// Test files or folders; default `flows/` and `tests/flows/`.
        paths: Vec<PathBuf>,
        /// Report format.
        #[arg(long, value_enum, default_value_t)]
        format: test::TestFormat,
        /// Also write a JUnit XML report to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Evaluate an expression and print the result as JSON.
    Eval {
        /// The expression (minijinja syntax, or Power Automate syntax with `--pa`).
        expr: String,
        /// JSON made available as `triggerBody()`.
        #[arg(long)]
        data: Option<String>,
        /// Read the expression as Power Automate syntax.
        #[arg(long)]
        pa: bool,
    },
    /// Translate a Power Automate / Logic Apps export (definition JSON, flow JSON or solution
    /// zip) into flow files, and report what needs attention.
    Import {
        /// The export file.
        file: PathBuf,
        /// Folder the flow files are written to.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Overwrite flow files that exist.
        #[arg(long)]
        force: bool,
        /// Report format.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Check that Salesforce and Partner Center have what the flows need: sign-in, objects and
    /// fields (with the SFDX file that installs a missing one), the webhook registration.
    Doctor {
        /// Folder of flow files (mapping files in its `mappings/`).
        #[arg(long, default_value = "flows")]
        flows: PathBuf,
        /// Connections file; defaults to `coflow.yaml` in the current folder when it exists.
        #[arg(long)]
        config: Option<PathBuf>,
        /// SFDX project of the Salesforce customisation; default `<flows>/salesforce`.
        #[arg(long)]
        metadata: Option<PathBuf>,
        /// The URL Partner Center should post events to; default: the one the registration
        /// flow registers.
        #[arg(long)]
        webhook_url: Option<String>,
        /// Report format.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Start the Partner Center and Salesforce emulators on loopback.
    Sandbox {
        /// Address of the Salesforce emulator.
        #[arg(long, default_value = "127.0.0.1:8091")]
        salesforce_addr: String,
        /// Address of the Partner Center emulator.
        #[arg(long, default_value = "127.0.0.1:8092")]
        partner_center_addr: String,
        /// JSON or YAML file of records to load into Salesforce: `{"Account": [{...}], ...}`.
        #[arg(long)]
        seed_data: Option<PathBuf>,
        /// Seed for fault injection's random choices.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Salesforce's daily API request allocation.
        #[arg(long)]
        daily_api_limit: Option<u64>,
        /// PEM public key or certificate that JWT bearer logins must be signed for.
        #[arg(long)]
        jwt_cert: Option<PathBuf>,
        /// Inject a fault (repeatable): `[METHOD] PATH: ACTION [rate=F] [times=N] [after=DUR]
        /// [delay=DUR] [retry_after=S]`, ACTION a status, `drop`, `hang`, `latency` or
        /// `token-expired`; change them at run time through `/__sandbox/faults`.
        #[arg(long = "fault", value_name = "RULE")]
        faults: Vec<String>,
        /// Leave a Salesforce object or field out of the org (repeatable), as before the co-sell
        /// metadata is installed: `Microsoft_Solution__c`, `Opportunity.Audit__c`.
        #[arg(long = "without", value_name = "OBJECT[.FIELD]")]
        without: Vec<String>,
    },
    /// Inspect and resubmit runs in a store (the one `coflow serve` uses).
    Runs {
        /// What to do.
        #[command(subcommand)]
        action: RunsCommand,
        /// Store URL.
        #[arg(long, env = "COFLOW_STORE", default_value = "sqlite://coflow.db", global = true)]
        store: String,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Run the flows of a folder as a service: webhooks, schedules, polls, queue, history.
    Serve(serve::ServeArgs),
    /// Sync controls: `coflow sync status` counts, per object, what is in step.
    Sync {
        /// What to do.
        #[command(subcommand)]
        action: SyncCommand,
    },
}

/// `coflow sync` subcommands.
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Per object: in sync, pending, failed and drifted records, and the oldest pending change,
    /// read off Salesforce and Partner Center (list calls only; nothing is written).
    Status {
        /// Folder of flow files (with `mappings/` and `settings/sync.yaml`).
        #[arg(long, default_value = "flows")]
        flows: PathBuf,
        /// Connections file; defaults to `coflow.yaml` in the current folder when it exists.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Report format.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
}

/// `coflow runs` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only this flow.
        #[arg(long)]
        flow: Option<String>,
        /// Only this status (queued, running, succeeded, failed, cancelled, timed_out).
        #[arg(long)]
        status: Option<String>,
        /// Only runs created at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only runs whose inputs or record contain this text.
        #[arg(long)]
        text: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one run with every action.
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

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Parses the command line, runs the subcommand and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.command);
    let result = match cli.command {
        Command::Validate { paths, format } => validate::run(&paths, format),
        Command::Graph { flow, format } => graph::run(&flow, format),
        Command::Run { flow, event, dry_run, json, config } => {
            run::run(&flow, event.as_deref(), dry_run, json, config.as_deref())
        }
        Command::Test { paths, format, junit } => test::run(&paths, format, junit.as_deref()),
        Command::Eval { expr, data, pa } => eval::run(&expr, data.as_deref(), pa),
        Command::Import { file, out, force, format } => import::run(&file, &out, force, format),
        Command::Doctor { flows, config, metadata, webhook_url, format } => {
            doctor::run(doctor::DoctorArgs { flows, config, metadata, webhook_url, format })
        }
        Command::Sandbox {
            salesforce_addr,
            partner_center_addr,
            seed_data,
            seed,
            daily_api_limit,
            jwt_cert,
            faults,
            without,
        } => sandbox::run(sandbox::SandboxArgs {
            salesforce_addr,
            partner_center_addr,
            seed_data,
            seed,
            daily_api_limit,
            jwt_cert,
            faults,
            without,
        }),
        Command::Runs { action, store, json } => {
            let action = match action {
                RunsCommand::List { flow, status, since, text, limit } => {
                    runs::RunsAction::List { flow, status, since, text, limit }
                }
                RunsCommand::Show { id } => runs::RunsAction::Show { id },
                RunsCommand::Resubmit { id } => runs::RunsAction::Resubmit { id },
            };
            runs::run(&store, action, json)
        }
        Command::Serve(args) => serve::run(args),
        Command::Sync { action: SyncCommand::Status { flows, config, format } } => {
            doctor::sync_status(&flows, config.as_deref(), format)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The connections of `path`, or of `./coflow.yaml` when no file is named and it exists; none
/// otherwise.
pub(crate) fn load_connections(
    path: Option<&std::path::Path>,
) -> anyhow::Result<crate::connectors::config::LoadedConnections> {
    use anyhow::Context as _;
    let default = std::path::Path::new("coflow.yaml");
    let path = match path {
        Some(path) => path,
        None if default.exists() => default,
        None => return Ok(Default::default()),
    };
    crate::connectors::config::load(path, &crate::connectors::config::CoflowSecrets)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot load connections from {}", path.display()))
}

/// Logs to stderr, filtered by `COFLOW_LOG` (`serve` logs `info` by default).
fn init_logging(command: &Command) {
    let (default, json) = match command {
        Command::Serve(args) => ("info", args.log_format == LogFormat::Json),
        _ => ("warn", false),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("COFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
