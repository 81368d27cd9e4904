//! `coflow test [PATH...] [--format text|junit] [--junit FILE]`: run flow unit tests.
//!
//! Exit code 0 when every case passed, 1 when a case failed, 2 when a test file (or a path)
//! has errors, so CI can tell a broken test from a failing one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::ValueEnum;

use crate::flow::Diagnostics;
use crate::testing::report::{self, Summary};
use crate::testing::{self, FileOutcome, FileReport};

/// Where tests are looked for when no path is given.
const DEFAULT_PATHS: [&str; 2] = ["flows", "tests/flows"];

/// Report formats of `coflow test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum TestFormat {
    /// Readable text with a diff per unmet expectation.
    #[default]
    Text,
    /// JUnit XML, for CI.
    Junit,
}

/// Runs every test file under `paths` and reports; see the module doc for exit codes.
pub fn run(paths: &[PathBuf], format: TestFormat, junit_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let paths = if paths.is_empty() { default_paths() } else { paths.to_vec() };
    let (files, missing) = testing::discover(&paths);
    if !missing.is_empty() {
        eprintln!("{}", Diagnostics(missing));
        return Ok(ExitCode::from(2));
    }
    if files.is_empty() {
        let searched: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "error: no test files (*.test.yaml) under {}; write one next to a flow, or name test files",
            if searched.is_empty() { DEFAULT_PATHS.join(" or ") } else { searched.join(", ") }
        );
        return Ok(ExitCode::from(2));
    }
    let started = Instant::now();
    let reports: Vec<FileReport> = files.iter().map(|file| testing::run_path(file)).collect();
    let total = started.elapsed();
    match format {
        TestFormat::Text => print!("{}", report::text(&reports, total)),
        TestFormat::Junit => {
            print!("{}", report::junit(&reports, total));
            // The XML goes to a CI report; people reading the log still see what is broken.
            for report in &reports {
                if let FileOutcome::Broken(diagnostics) = &report.outcome {
                    eprintln!("{diagnostics}\n");
                }
            }
        }
    }
    if let Some(path) = junit_file {
        std::fs::write(path, report::junit(&reports, total))
            .with_context(|| format!("cannot write the JUnit report to {}", path.display()))?;
    }
    let summary = Summary::of(&reports);
    Ok(match (summary.broken, summary.failed) {
        (0, 0) => ExitCode::SUCCESS,
        (0, _) => ExitCode::FAILURE,
        _ => ExitCode::from(2),
    })
}

fn default_paths() -> Vec<PathBuf> {
    DEFAULT_PATHS.iter().map(PathBuf::from).filter(|p| p.is_dir()).collect()
}
