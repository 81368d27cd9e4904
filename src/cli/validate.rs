//! `coflow validate PATH...`: check flow files (or folders of them) and report every problem.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use super::OutputFormat;
use crate::flow::{self, Diagnostic, Diagnostics, Severity};

/// The outcome for one file.
#[derive(Debug, Serialize)]
struct FileReport {
    file: String,
    valid: bool,
    diagnostics: Diagnostics,
}

/// Totals over every file.
#[derive(Debug, Default, Serialize)]
struct Summary {
    files: usize,
    valid: usize,
    invalid: usize,
    errors: usize,
    warnings: usize,
}

/// What `--format json` prints.
#[derive(Debug, Serialize)]
struct Report {
    valid: bool,
    files: Vec<FileReport>,
    summary: Summary,
}

/// Checks every flow file under `paths`; exit code 0 when all are valid, 1 otherwise.
pub fn run(paths: &[PathBuf], format: OutputFormat) -> anyhow::Result<ExitCode> {
    let report = check(paths);
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => print_text(&report),
    }
    Ok(if report.valid { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn check(paths: &[PathBuf]) -> Report {
    let mut files = Vec::new();
    for path in paths {
        let found = flow_files(path);
        if found.is_empty() {
            let file = path.display().to_string();
            let message = if path.exists() {
                "no flow files (*.yaml, *.yml) found here"
            } else {
                "no such file or folder"
            };
            let diagnostic = Diagnostic::file_error("no_flows", &file, message).with_hint(
                "name flow files or folders that contain them; `mappings/` and `*.test.yaml` are skipped",
            );
            files.push(FileReport { file, valid: false, diagnostics: diagnostic.into() });
        }
        for file in found {
            let (_, diagnostics) = flow::check_file(&file);
            files.push(FileReport {
                file: file.display().to_string(),
                valid: !diagnostics.has_errors(),
                diagnostics,
            });
        }
    }
    let mut summary = Summary { files: files.len(), ..Summary::default() };
    for file in &files {
        if file.valid {
            summary.valid += 1;
        } else {
            summary.invalid += 1;
        }
        for diagnostic in file.diagnostics.iter() {
            match diagnostic.severity {
                Severity::Error => summary.errors += 1,
                Severity::Warning => summary.warnings += 1,
            }
        }
    }
    Report { valid: summary.invalid == 0, files, summary }
}

fn print_text(report: &Report) {
    for file in &report.files {
        for diagnostic in file.diagnostics.iter() {
            println!("{diagnostic}\n");
        }
        if file.valid {
            println!("ok: {}", file.file);
        }
    }
    let s = &report.summary;
    println!(
        "{} flow file{} checked: {} valid, {} invalid ({} error{}, {} warning{})",
        s.files,
        plural(s.files),
        s.valid,
        s.invalid,
        s.errors,
        plural(s.errors),
        s.warnings,
        plural(s.warnings)
    );
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The flow files named by `path`: the file itself, or the `*.yaml`/`*.yml` files below a
/// folder, skipping `mappings/` and `settings/` folders, hidden folders, `*.test.yaml` unit tests and the
/// `coflow.yaml` connection config.
pub fn flow_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut found = Vec::new();
    collect(path, &mut found);
    found.sort();
    found
}

fn collect(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if name != "mappings" && name != "settings" && !name.starts_with('.') {
                collect(&path, found);
            }
        } else if is_flow_file(&name) {
            found.push(path);
        }
    }
}

fn is_flow_file(name: &str) -> bool {
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    let test = name.ends_with(".test.yaml") || name.ends_with(".test.yml");
    let config = name == "coflow.yaml" || name == "coflow.yml";
    yaml && !test && !config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_flow_files_by_name() {
        assert!(is_flow_file("sync.yaml"));
        assert!(is_flow_file("sync.yml"));
        assert!(!is_flow_file("sync.test.yaml"));
        assert!(!is_flow_file("coflow.yaml"));
        assert!(!is_flow_file("notes.md"));
    }
}
