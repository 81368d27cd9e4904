//! `coflow import FILE [--out DIR]`: Power Automate / Logic Apps exports become flow files.

use std::path::Path;
use std::process::ExitCode;

use super::OutputFormat;
use crate::import::{self, ImportOptions};

/// Imports every flow of `file` into `out` and prints the report. Exit code 0 when everything
/// was translated, 1 when something needs attention (the files are written all the same).
pub fn run(file: &Path, out: &Path, force: bool, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let options = ImportOptions { out: out.to_path_buf(), force };
    let report = import::import(file, &options)?;
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => print!("{}", report.render()),
    }
    Ok(if report.needs_attention() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
