//! Loopback emulators of the Partner Center and Salesforce REST APIs, with fault injection.
//!
//! [`start`] binds both emulators (port 0 picks free ports, as tests do), serves them in the
//! background and returns their URLs and a [`Sandbox`] handle that shuts them down.

mod connections;
pub mod faults;
pub mod partner_center;
pub mod salesforce;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use partner_center::{PartnerCenter, PartnerCenterConfig};
use salesforce::{Salesforce, SalesforceConfig};

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// An address could not be bound.
    #[error(
        "cannot listen on {addr}: {source} (is another process using the port? pass another address, or port 0 for any free port)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The seed-data file could not be read.
    #[error("cannot read seed data {path}: {source}")]
    SeedRead {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The seed-data file is neither JSON nor YAML.
    #[error("seed data {path} is not valid JSON or YAML: {message}")]
    SeedParse {
        /// The file.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// The JWT key file could not be read.
    #[error("cannot read JWT certificate {path}: {source}")]
    JwtRead {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Salesforce emulator rejected its configuration.
    #[error(transparent)]
    Salesforce(#[from] salesforce::SalesforceError),
    /// A fault rule given at start does not parse.
    #[error("bad fault rule: {0}")]
    Fault(String),
}

/// What to start.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where the Salesforce emulator listens.
    pub salesforce_addr: SocketAddr,
    /// Where the Partner Center emulator listens.
    pub partner_center_addr: SocketAddr,
    /// Seed for fault injection's random choices.
    pub seed: u64,
    /// Records (`{"Object": [records]}`) loaded into Salesforce at start and on reset.
    pub seed_data: Option<serde_json::Value>,
    /// Salesforce's daily API allocation (`None`: the emulator default).
    pub daily_api_limit: Option<u64>,
    /// PEM public key or certificate for JWT bearer logins.
    pub jwt_public_key_pem: Option<String>,
    /// Fault rules active from the start (grammar in [`faults`]).
    pub faults: Vec<String>,
    /// Salesforce objects and fields the org lacks (see [`SalesforceConfig::without`]).
    pub salesforce_without: Vec<String>,
}

impl SandboxConfig {
    /// Both emulators on loopback port 0 (any free port), no seed data.
    pub fn ephemeral() -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        SandboxConfig {
            salesforce_addr: any,
            partner_center_addr: any,
            seed: 0,
            seed_data: None,
            daily_api_limit: None,
            jwt_public_key_pem: None,
            faults: Vec::new(),
            salesforce_without: Vec::new(),
        }
    }
}

/// Reads a seed-data file (JSON, or YAML for any other extension).
pub fn load_seed_data(path: &Path) -> Result<serde_json::Value, SandboxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| SandboxError::SeedRead { path: path.to_path_buf(), source })?;
    let parse_error = |message: String| SandboxError::SeedParse { path: path.to_path_buf(), message };
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        return serde_json::from_str(&text).map_err(|e| parse_error(e.to_string()));
    }
    serde_yaml::from_str(&text).map_err(|e| parse_error(e.to_string()))
}

/// Reads a PEM file for JWT verification.
pub fn load_pem(path: &Path) -> Result<String, SandboxError> {
    std::fs::read_to_string(path).map_err(|source| SandboxError::JwtRead { path: path.to_path_buf(), source })
}

/// Running emulators.
#[derive(Debug)]
pub struct Sandbox {
    /// Base URL of the Salesforce emulator (its `instance_url`).
    pub salesforce_url: String,
    /// Base URL of the Partner Center emulator.
    pub partner_center_url: String,
    /// The Salesforce emulator's state.
    pub salesforce: Arc<Salesforce>,
    /// The Partner Center emulator's state.
    pub partner_center: Arc<PartnerCenter>,
    /// Fault injection shared by both.
    pub faults: Arc<faults::Faults>,
    shutdown: Option<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Sandbox {
    /// Stops both servers and waits for them to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

/// Binds and serves both emulators in the background.
pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
    let sf_listener = bind(config.salesforce_addr).await?;
    let pc_listener = bind(config.partner_center_addr).await?;
    let salesforce_url = url_of(&sf_listener, config.salesforce_addr);
    let partner_center_url = url_of(&pc_listener, config.partner_center_addr);

    let mut sf_config = SalesforceConfig::new(salesforce_url.clone());
    sf_config.seed_data = config.seed_data.clone();
    sf_config.jwt_public_key_pem = config.jwt_public_key_pem.clone();
    sf_config.without = config.salesforce_without.clone();
    if let Some(limit) = config.daily_api_limit {
        sf_config.daily_api_limit = limit;
    }
    let salesforce = Salesforce::new(sf_config)?;
    let partner_center = PartnerCenter::new(PartnerCenterConfig::new(partner_center_url.clone()));
    let faults = faults::Faults::from_specs(config.seed, &config.faults).map_err(|errors| {
        SandboxError::Fault(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
    })?;

    partner_center.fault_deliveries(faults.clone());
    let sf_router = faults::apply(salesforce::router(salesforce.clone()), faults.clone());
    let pc_router = faults::apply(partner_center::router(partner_center.clone()), faults.clone());

    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let shared = futures::FutureExt::shared(async move {
        let _ = shutdown_rx.await;
    });
    let tasks = vec![serve(sf_listener, sf_router, shared.clone()), serve(pc_listener, pc_router, shared)];
    Ok(Sandbox {
        salesforce_url,
        partner_center_url,
        salesforce,
        partner_center,
        faults,
        shutdown: Some(shutdown_tx),
        tasks,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, SandboxError> {
    TcpListener::bind(addr).await.map_err(|source| SandboxError::Bind { addr, source })
}

fn url_of(listener: &TcpListener, requested: SocketAddr) -> String {
    let addr = listener.local_addr().unwrap_or(requested);
    format!("http://{addr}")
}

fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(err) = axum::serve(listener, service).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %err, "sandbox server stopped");
        }
    })
}
