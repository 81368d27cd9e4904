//! `coflow sandbox`: serves both emulators until Ctrl-C and prints how to reach them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::sandbox::{self, SandboxConfig};

/// Options of `coflow sandbox`, as given on the command line.
#[derive(Debug, Clone)]
pub struct SandboxArgs {
    /// Salesforce listen address.
    pub salesforce_addr: String,
    /// Partner Center listen address.
    pub partner_center_addr: String,
    /// Seed-data file (JSON or YAML).
    pub seed_data: Option<PathBuf>,
    /// Fault-injection seed.
    pub seed: u64,
    /// Salesforce daily API allocation.
    pub daily_api_limit: Option<u64>,
    /// PEM public key or certificate for JWT bearer logins.
    pub jwt_cert: Option<PathBuf>,
    /// Fault rules, e.g. `GET /services/data/*: 503 rate=0.2 retry_after=2`.
    pub faults: Vec<String>,
    /// Salesforce objects and fields the org lacks, e.g. `Opportunity.Audit__c`.
    pub without: Vec<String>,
}

/// Turns the arguments into a validated configuration before anything starts.
fn settings(args: &SandboxArgs) -> anyhow::Result<SandboxConfig> {
    let parse = |flag: &str, text: &str| -> anyhow::Result<SocketAddr> {
        text.parse().with_context(|| format!("{flag} '{text}' is not an address like 127.0.0.1:8091"))
    };
    let seed_data = args.seed_data.as_deref().map(sandbox::load_seed_data).transpose()?;
    let jwt_public_key_pem = args.jwt_cert.as_deref().map(sandbox::load_pem).transpose()?;
    Ok(SandboxConfig {
        salesforce_addr: parse("--salesforce-addr", &args.salesforce_addr)?,
        partner_center_addr: parse("--partner-center-addr", &args.partner_center_addr)?,
        seed: args.seed,
        seed_data,
        daily_api_limit: args.daily_api_limit,
        jwt_public_key_pem,
        faults: args.faults.clone(),
        salesforce_without: args.without.clone(),
    })
}

/// Runs the sandbox until Ctrl-C.
pub fn run(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    let config = settings(&args)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let sandbox = sandbox::start(config).await?;
        print_banner(&sandbox);
        tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
        println!("stopping the sandbox");
        sandbox.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The URLs and credentials; one `key: value` per line so scripts can read them.
fn print_banner(sandbox: &sandbox::Sandbox) {
    let sf = sandbox.salesforce.config();
    println!("coflow sandbox is running (Ctrl-C stops it)");
    println!("salesforce_url: {}", sandbox.salesforce_url);
    println!("partner_center_url: {}", sandbox.partner_center_url);
    println!();
    println!("Salesforce credentials (sandbox only):");
    println!("  instance_url: {}", sandbox.salesforce_url);
    println!("  token_url: {}/services/oauth2/token", sandbox.salesforce_url);
    println!("  client_id: {}", sf.client_id);
    println!("  client_secret: {}", sf.client_secret);
    println!("  username: {}", sf.username);
    println!("  password: {}", sf.password);
    println!("  security_token: {}", sf.security_token);
    println!("  refresh_token: {}", sf.refresh_token);
    println!("  access_token: {}", sf.access_token);
    println!("  api_version: 59.0");
}
