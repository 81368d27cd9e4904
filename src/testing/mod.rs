//! Flow unit tests: `*.test.yaml` files that run a flow with mocked calls and check the run.
//!
//! A test file names a flow and holds cases. Each case gives the trigger event, parameters,
//! the answers of the calls the flow makes (or `sandbox: true` to let a call reach the
//! in-process sandbox) and what the run must show: statuses, rendered inputs, outputs,
//! variables, actions that must not run. Files are loaded with positioned diagnostics
//! ([`load`]), each case runs through [`crate::engine::run`] with the engine's mock seam
//! ([`crate::engine::Mocks`]), and the outcome is checked ([`expect`]) and reported
//! ([`report`]: text with diffs, or JUnit XML).
//!
//! Runs are deterministic: `utcNow()` reads a fixed time unless a file asks for the real
//! clock, and cases without the sandbox run on a paused tokio clock, so retries and delays
//! take no real time.

pub mod expect;
pub mod file;
pub mod load;
mod mocks;
pub mod report;
pub mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use jiff::Timestamp;
use serde_json::Value;

use crate::connectors::{Connections, HttpClient};
use crate::engine::{self, MockAnswer, RunOptions, TokioClock, TriggerEvent};
use crate::flow::{Diagnostic, Diagnostics, Flow};
use crate::sandbox::{self, Sandbox, SandboxConfig};
pub use expect::{Expect, Failure};
pub use file::SandboxDef;
pub use load::load_file;
use mocks::CaseMocks;

/// The run id every test run gets, so `workflow().run.name` renders the same every time.
pub const TEST_RUN_ID: &str = "00000000-0000-7000-8000-000000000000";

/// The HTTP client of cases that reach no real system. Building one costs far more than a
/// mocked run, and such a client never sends anything: every call is answered by the mocks.
static MOCKED_ONLY_HTTP: LazyLock<HttpClient> = LazyLock::new(|| RunOptions::new(false).http);

/// Why a case could not run at all (as opposed to running and failing its expectations).
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The async runtime could not be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// The sandbox did not start.
    #[error("cannot start the sandbox: {0}")]
    Sandbox(#[from] sandbox::SandboxError),
    /// Connections to the sandbox could not be built.
    #[error("cannot connect to the sandbox: {0}")]
    SandboxConnections(String),
    /// The case's Partner Center referrals were refused by the sandbox.
    #[error("the sandbox refused the case's Partner Center referrals: {0}; check `sandbox.partner_center`")]
    SandboxSeed(String),
}

/// A loaded test file, checked against its flow and ready to run.
#[derive(Debug, Clone)]
pub struct TestFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The flow under test.
    pub flow: Flow,
    /// Its cases, in written order.
    pub cases: Vec<Case>,
}

/// One case, ready to run.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its name.
    pub name: String,
    /// The time `utcNow()` reads; `None` for the system clock.
    pub now: Option<Timestamp>,
    /// The trigger event.
    pub event: TriggerEvent,
    /// Parameter values (file and case merged).
    pub parameters: IndexMap<String, Value>,
    /// Mocks by action name (file and case merged).
    pub mocks: IndexMap<String, Mock>,
    /// The sandbox's data, when some mock lets its call reach the sandbox.
    pub sandbox: Option<SandboxDef>,
    /// Sync settings replacing the flow's, if the case or its file gives some.
    pub sync: Option<std::sync::Arc<crate::expr::SyncSettings>>,
    /// What the run must show.
    pub expect: Expect,
}

/// How one action's calls are answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Mock {
    /// In call order; the last answer repeats.
    Answers(Vec<MockAnswer>),
    /// For real, against the sandbox.
    Sandbox,
}

/// How one case went.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// The case's name.
    pub name: String,
    /// Wall-clock time it took.
    pub duration: Duration,
    /// Unmet expectations; empty when the case passed.
    pub failures: Vec<Failure>,
}

impl CaseReport {
    /// Whether every expectation was met.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// How one test file went.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The test file.
    pub path: PathBuf,
    /// Its cases' reports, or why the file could not be loaded.
    pub outcome: FileOutcome,
}

/// A test file's outcome.
#[derive(Debug, Clone)]
pub enum FileOutcome {
    /// The file loaded and its cases ran.
    Ran {
        /// The flow's name.
        flow: String,
        /// One report per case.
        cases: Vec<CaseReport>,
    },
    /// The file has errors; nothing ran.
    Broken(Diagnostics),
}

/// The test files under `paths`: files as given, folders searched for `*.test.yaml` (and
/// `*.test.yml`), skipping hidden folders. Paths that do not exist are diagnostics.
pub fn discover(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for path in paths {
        if path.is_file() {
            files.push(path.clone());
        } else if path.is_dir() {
            let mut found = Vec::new();
            collect(path, &mut found);
            found.sort();
            files.extend(found);
        } else {
            let file = path.display().to_string();
            missing.push(
                Diagnostic::file_error("no_tests", &file, "no such file or folder")
                    .with_hint("name test files (*.test.yaml) or folders that contain them"),
            );
        }
    }
    (files, missing)
}

fn collect(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !name.starts_with('.') {
                collect(&path, found);
            }
        } else if name.ends_with(".test.yaml") || name.ends_with(".test.yml") {
            found.push(path);
        }
    }
}

/// Loads the test file at `path` and runs its cases.
pub fn run_path(path: &Path) -> FileReport {
    let outcome = match load_file(path) {
        Ok(file) => {
            let cases = file.cases.iter().map(|case| run_case(&file, case)).collect();
            FileOutcome::Ran { flow: file.flow.name.clone(), cases }
        }
        Err(diagnostics) => FileOutcome::Broken(diagnostics),
    };
    FileReport { path: path.to_path_buf(), outcome }
}

/// Runs one case on its own runtime and checks its expectations.
pub fn run_case(file: &TestFile, case: &Case) -> CaseReport {
    let started = Instant::now();
    let failures = match run_on_own_runtime(file, case) {
        Ok(failures) => failures,
        Err(error) => vec![Failure::new(error.to_string())],
    };
    CaseReport { name: case.name.clone(), duration: started.elapsed(), failures }
}

fn run_on_own_runtime(file: &TestFile, case: &Case) -> Result<Vec<Failure>, TestError> {
    // Without the sandbox nothing waits on real I/O, so a paused clock lets retry back-off and
    // delays pass at once; the sandbox's HTTP needs the real clock.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(case.sandbox.is_none())
        .build()?;
    runtime.block_on(execute(file, case))
}

/// Runs the flow for the case and lists every unmet expectation.
pub async fn execute(file: &TestFile, case: &Case) -> Result<Vec<Failure>, TestError> {
    let mocks = Arc::new(CaseMocks::new(case.mocks.clone()));
    // Cases with the sandbox get a client of their own: pooled connections belong to the
    // runtime that opened them.
    let mut options = match case.sandbox {
        Some(_) => RunOptions::new(false),
        None => RunOptions::with_http(MOCKED_ONLY_HTTP.clone()),
    };
    options.parameters = case.parameters.clone();
    options.run_id = Some(TEST_RUN_ID.to_string());
    options.mocks = Some(mocks.clone());
    options.clock = Arc::new(match case.now {
        Some(now) => TokioClock::starting_at(now),
        None => TokioClock::system(),
    });
    let sandbox = match &case.sandbox {
        Some(data) => {
            let (sandbox, connections) = start_sandbox(data).await?;
            options.connections = connections;
            Some(sandbox)
        }
        None => None,
    };
    let flow = match &case.sync {
        Some(settings) => {
            let mut flow = file.flow.clone();
            flow.sync = settings.clone();
            std::borrow::Cow::Owned(flow)
        }
        None => std::borrow::Cow::Borrowed(&file.flow),
    };
    let work = engine::run(&flow, case.event.clone(), &options);
    let run = match case.now {
        Some(now) => crate::expr::with_fixed_now(now, work).await,
        None => work.await,
    };
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    let mut failures = mocks.unmocked();
    failures.extend(expect::check(&case.expect, &run));
    Ok(failures)
}

/// A fresh sandbox holding the case's data, and connections to it.
async fn start_sandbox(data: &SandboxDef) -> Result<(Sandbox, Connections), TestError> {
    let mut config = SandboxConfig::ephemeral();
    if !data.salesforce.is_empty() {
        config.seed_data = serde_json::to_value(&data.salesforce).ok();
    }
    let sandbox = sandbox::start(config).await?;
    if !data.partner_center.is_empty() {
        let referrals = Value::Array(data.partner_center.clone());
        if let Err(error) = sandbox::partner_center::admin::seed(&sandbox.partner_center, referrals) {
            sandbox.shutdown().await;
            return Err(TestError::SandboxSeed(error.to_string()));
        }
    }
    match sandbox.connections() {
        Ok(loaded) => Ok((sandbox, loaded.connections)),
        Err(errors) => {
            sandbox.shutdown().await;
            Err(TestError::SandboxConnections(errors.to_string()))
        }
    }
}
