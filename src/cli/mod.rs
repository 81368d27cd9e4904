//! The `coflow` command line: one module per subcommand.

pub mod run;
pub mod sandbox;
pub mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod eval;
mod graph;
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
    },
}

/// Parses the command line, runs the subcommand and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("COFLOW_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Validate { paths, format } => validate::run(&paths, format),
        Command::Graph { flow, format } => graph::run(&flow, format),
        Command::Run { flow, event, dry_run, json, config } => {
            run::run(&flow, event.as_deref(), dry_run, json, config.as_deref())
        }
        Command::Test { paths, format, junit } => test::run(&paths, format, junit.as_deref()),
        Command::Eval { expr, data, pa } => eval::run(&expr, data.as_deref(), pa),
        Command::Sandbox {
            salesforce_addr,
            partner_center_addr,
            seed_data,
            seed,
            daily_api_limit,
            jwt_cert,
            faults,
        } => sandbox::run(sandbox::SandboxArgs {
            salesforce_addr,
            partner_center_addr,
            seed_data,
            seed,
            daily_api_limit,
            jwt_cert,
            faults,
        }),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
