//! `coflow doctor`: checks the connected Salesforce org and Partner Center tenant against what
//! the flows need, and exits 1 when something must be fixed first. `coflow sync status`, which
//! reads the same two systems, lives here too.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::OutputFormat;
use crate::connectors::HttpClient;
use crate::cosell::doctor::{self, DoctorOptions};

/// Options of `coflow doctor`, as given on the command line.
#[derive(Debug, Clone)]
pub struct DoctorArgs {
    /// The flows folder.
    pub flows: PathBuf,
    /// Connections file.
    pub config: Option<PathBuf>,
    /// SFDX project of the Salesforce customisation.
    pub metadata: Option<PathBuf>,
    /// Expected webhook URL.
    pub webhook_url: Option<String>,
    /// Report format.
    pub format: OutputFormat,
}

/// Runs the checks and prints the report; exit code 1 when there are problems.
pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let connections = super::load_connections(args.config.as_deref())?;
    let mut options = DoctorOptions::new(&args.flows);
    if let Some(metadata) = args.metadata {
        options.metadata_dir = metadata;
    }
    options.webhook_url = args.webhook_url;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Held back, not sent: the doctor only reads, and a slip must not write to a live org.
    let http = HttpClient::new(reqwest::Client::new(), true);
    let report = runtime.block_on(doctor::run(&options, &connections, &http));
    match args.format {
        OutputFormat::Text => print!("{}", report.to_text()),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.problems() == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `coflow sync status`: reads both systems and prints the counts per object.
pub fn sync_status(flows: &Path, config: Option<&Path>, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let connections = super::load_connections(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Held back, not sent: the status only reads.
    let http = HttpClient::new(reqwest::Client::new(), true);
    let status = runtime.block_on(crate::cosell::status::sync_status(flows, &connections, &http))?;
    match format {
        OutputFormat::Text => print!("{}", status.to_text()),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
    }
    Ok(ExitCode::SUCCESS)
}
