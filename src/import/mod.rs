//! `coflow import`: Power Automate and Logic Apps exports translated into coflow flow files.
//!
//! - This module reads the containers: a bare workflow definition (`triggers`, `actions`), a
//!   flow JSON with `properties.definition` (also the legacy package's `definition.json`), a
//!   Logic Apps Standard `<name>/workflow.json`, a Logic Apps ARM template (its
//!   `[variables()]`/`[parameters()]` resolved, nested deployments included), or a zip (a
//!   solution's `Workflows/*.json`, a legacy package's `Microsoft.Flow/flows/*/definition.json`);
//!   and it writes one YAML file per flow.
//! - [`definition`] walks the trigger and actions, [`conditions`] turns the designer's condition
//!   objects into expressions, [`connectors`] maps Salesforce and Partner Center calls to coflow
//!   operations, [`emit`] writes the YAML, and [`report`] says what was translated, what needs
//!   attention and why.
//!
//! Every `@…` expression goes through [`crate::expr::pa`]. What cannot be translated becomes a
//! `type: unsupported` placeholder that `coflow validate` reports by name; the written file is
//! also compiled here, so the report lists every problem validation would find.

mod conditions;
mod connectors;
mod definition;
mod emit;
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

pub use report::{Attention, FlowReport, ImportReport, Note, TRIGGER};

use crate::flow::{self, Severity};

/// Most bytes read from one file of an export (a flow is a few hundred kilobytes at most).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Why an export could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The export cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file of the export is not JSON.
    #[error("{path} is not JSON ({message}): export the flow again, or pass its definition JSON")]
    NotJson {
        /// The file (and entry of the zip).
        path: String,
        /// What the parser said.
        message: String,
    },
    /// The zip archive cannot be read.
    #[error("{path} is not a readable zip archive ({message}): export the solution again")]
    Zip {
        /// The file.
        path: String,
        /// What the reader said.
        message: String,
    },
    /// Nothing in the export looks like a flow.
    #[error(
        "{path} holds no flow: pass a workflow definition (with `triggers` and `actions`), a flow JSON with `properties.definition`, or a solution .zip with Workflows/*.json"
    )]
    NoFlow {
        /// The file.
        path: String,
    },
    /// A file to write exists and `--force` was not given.
    #[error("{path} already exists: pass --force to overwrite it, or choose another --out folder")]
    Exists {
        /// The file.
        path: String,
    },
    /// A file cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// One flow found in an export.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFlow {
    /// The flow's display name.
    pub display_name: String,
    /// Where in the export it was found, e.g. `solution.zip: Workflows/Sync-<guid>.json`.
    pub origin: String,
    /// The flow's description, when the export has one.
    pub description: Option<String>,
    /// The workflow definition (`triggers`, `actions`, `parameters`, ...).
    pub definition: Value,
    /// `properties.connectionReferences` of a Power Automate export: which connector each
    /// connection name stands for.
    pub connection_references: Map<String, Value>,
}

/// A flow translated into coflow YAML, not written yet.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedFlow {
    /// The flow's coflow name (kebab-case of its display name), also its file name.
    pub name: String,
    /// The flow file's text.
    pub yaml: String,
    /// What was translated and what needs attention.
    pub report: FlowReport,
}

/// Where and how `import` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The folder flow files are written to (created when missing).
    pub out: PathBuf,
    /// Overwrite files that exist.
    pub force: bool,
}

/// Reads an export, writes one flow file per flow into `options.out`, and reports.
pub fn import(path: &Path, options: &ImportOptions) -> Result<ImportReport, ImportError> {
    let flows = read_export(path)?;
    let mut used = BTreeSet::new();
    let imported: Vec<ImportedFlow> = flows
        .iter()
        .map(|source| {
            let name = unique(kebab(&source.display_name), &mut used);
            translate(source, &name)
        })
        .collect();
    let targets: Vec<PathBuf> =
        imported.iter().map(|f| options.out.join(format!("{}.yaml", f.name))).collect();
    if !options.force {
        if let Some(existing) = targets.iter().find(|t| t.exists()) {
            return Err(ImportError::Exists { path: existing.display().to_string() });
        }
    }
    std::fs::create_dir_all(&options.out)
        .map_err(|source| ImportError::Write { path: options.out.display().to_string(), source })?;
    let mut report = ImportReport::default();
    for (flow, target) in imported.into_iter().zip(targets) {
        std::fs::write(&target, &flow.yaml)
            .map_err(|source| ImportError::Write { path: target.display().to_string(), source })?;
        let mut flow_report = flow.report;
        flow_report.file = target.display().to_string();
        report.flows.push(flow_report);
    }
    Ok(report)
}

/// Translates one flow under the coflow name `name`; the report also lists every error
/// `coflow validate` would find in the result that no placeholder accounts for.
pub fn translate(source: &SourceFlow, name: &str) -> ImportedFlow {
    let (yaml, mut report) = definition::translate(source, name);
    let (_, diagnostics) = flow::check_str(&yaml, None);
    for diagnostic in diagnostics.iter().filter(|d| d.severity == Severity::Error) {
        if matches!(diagnostic.code, "unsupported_action" | "unsupported_trigger") {
            continue;
        }
        report.attention("(validate)", format!("line {}: {}", diagnostic.line, diagnostic.message));
    }
    ImportedFlow { name: name.to_string(), yaml, report }
}

/// Every flow in the export at `path`.
pub fn read_export(path: &Path) -> Result<Vec<SourceFlow>, ImportError> {
    let shown = path.display().to_string();
    let bytes = read_limited(std::fs::File::open(path), &shown)?;
    // `sync.flow.json` → `sync`.
    let stem = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or_default().to_string();
    // Logic Apps Standard keeps each workflow in `<workflow name>/workflow.json`.
    let stem = match path.parent().and_then(Path::file_name) {
        Some(folder) if stem.eq_ignore_ascii_case("workflow") => folder.to_string_lossy().into_owned(),
        _ => stem,
    };
    let file_name =
        path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| shown.clone());
    let flows = if bytes.starts_with(b"PK\x03\x04") {
        read_zip(&bytes, &file_name, &shown)?
    } else {
        let value = parse_json(&bytes, &shown)?;
        flows_in_json(&value, &file_name, &display_from_file(&stem))
    };
    if flows.is_empty() {
        return Err(ImportError::NoFlow { path: shown });
    }
    Ok(flows)
}

fn read_limited(file: std::io::Result<impl Read>, shown: &str) -> Result<Vec<u8>, ImportError> {
    let read_error = |source| ImportError::Read { path: shown.to_string(), source };
    let mut bytes = Vec::new();
    file.map_err(read_error)?.take(MAX_FILE_BYTES).read_to_end(&mut bytes).map_err(read_error)?;
    Ok(bytes)
}

fn parse_json(bytes: &[u8], shown: &str) -> Result<Value, ImportError> {
    // Exports saved by Windows tools may start with a byte order mark.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice(bytes)
        .map_err(|e| ImportError::NotJson { path: shown.to_string(), message: e.to_string() })
}

/// The flows in one JSON document: a flow, an ARM template, or a bare definition.
fn flows_in_json(value: &Value, origin: &str, fallback_name: &str) -> Vec<SourceFlow> {
    if let Some(definition) = value.pointer("/properties/definition") {
        let properties = &value["properties"];
        let display = properties.get("displayName").and_then(Value::as_str).unwrap_or(fallback_name);
        return vec![SourceFlow {
            display_name: display.to_string(),
            origin: origin.to_string(),
            description: properties.get("description").and_then(Value::as_str).map(str::to_string),
            definition: definition.clone(),
            connection_references: references(properties.get("connectionReferences")),
        }];
    }
    if value.get("resources").and_then(Value::as_array).is_some() {
        let mut flows = Vec::new();
        arm_workflows(value, value, origin, fallback_name, &mut flows, 0);
        return flows;
    }
    let definition =
        value.get("definition").filter(|d| d.get("triggers").is_some() || d.get("actions").is_some());
    let definition = definition
        .or_else(|| (value.get("triggers").is_some() || value.get("actions").is_some()).then_some(value));
    definition
        .map(|definition| SourceFlow {
            display_name: fallback_name.to_string(),
            origin: origin.to_string(),
            description: definition.get("description").and_then(Value::as_str).map(str::to_string),
            definition: definition.clone(),
            connection_references: Map::new(),
        })
        .into_iter()
        .collect()
}

/// `connectionReferences` as a map (older exports write a list).
fn references(value: Option<&Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    }
}

/// An ARM template string that is one `[variables('v')]` or `[parameters('p')]`.
static ARM_REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\[\s*(variables|parameters)\(\s*'([^']+)'\s*\)\s*\]$").expect("valid regex")
});

/// Nested deployments deeper than this are not searched for workflows.
const MAX_ARM_NESTING: usize = 8;

/// The `Microsoft.Logic/workflows` resources of an ARM template, with those of nested
/// deployments that carry their template inline. `root` is the template whose parameters and
/// variables the expressions read.
fn arm_workflows(
    root: &Value,
    template: &Value,
    origin: &str,
    fallback_name: &str,
    flows: &mut Vec<SourceFlow>,
    depth: usize,
) {
    let Some(resources) = template.get("resources").and_then(Value::as_array) else { return };
    for resource in resources {
        let kind = resource.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind.eq_ignore_ascii_case("Microsoft.Resources/deployments") {
            let Some(inner) = resource.pointer("/properties/template").filter(|_| depth < MAX_ARM_NESTING)
            else {
                continue;
            };
            // An `inner` scope reads the nested template's own parameters; the default,
            // `outer`, reads the enclosing template's.
            let inner_scope = resource
                .pointer("/properties/expressionEvaluationOptions/scope")
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case("inner"));
            let scope = if inner_scope { inner } else { root };
            arm_workflows(scope, inner, origin, fallback_name, flows, depth + 1);
            continue;
        }
        if !kind.eq_ignore_ascii_case("Microsoft.Logic/workflows") {
            continue;
        }
        let Some(definition) = resource.pointer("/properties/definition") else { continue };
        let name = resource.get("name").map(|n| resolve_arm(root, n, 0));
        let name = name.as_ref().and_then(Value::as_str).map_or(fallback_name.to_string(), |name| {
            // A name parameter without a default: the parameter's name says what it is.
            match ARM_REFERENCE.captures(name) {
                Some(found) => found[2].to_string(),
                None => name.to_string(),
            }
        });
        let flow = SourceFlow {
            display_name: name.clone(),
            origin: format!("{origin}: {name}"),
            description: None,
            definition: resolve_arm(root, definition, 0),
            connection_references: Map::new(),
        };
        // Deploying a workflow again under its name replaces it: a template that completes a
        // workflow in a nested deployment leaves that version in place.
        match flows.iter_mut().find(|f| f.display_name == name) {
            Some(earlier) => *earlier = flow,
            None => flows.push(flow),
        }
    }
}

/// A value of an ARM template with its `[variables('v')]` and `[parameters('p')]` strings
/// replaced by the variable's value and the parameter's default, and `[[` unescaped. Other
/// template expressions stay as written.
fn resolve_arm(template: &Value, value: &Value, depth: usize) -> Value {
    match value {
        Value::String(text) if text.starts_with("[[") => Value::String(text[1..].to_string()),
        Value::String(text) => {
            let Some(found) = ARM_REFERENCE.captures(text) else { return value.clone() };
            let (kind, name) = (&found[1], &found[2]);
            let target = match kind {
                "variables" => template.pointer(&format!("/variables/{name}")),
                _ => template.pointer(&format!("/parameters/{name}/defaultValue")),
            };
            match target {
                // A variable may itself read a parameter; the depth bounds a cycle.
                Some(target) if depth < MAX_ARM_NESTING => resolve_arm(template, target, depth + 1),
                _ => value.clone(),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve_arm(template, v, depth)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), resolve_arm(template, v, depth))).collect())
        }
        other => other.clone(),
    }
}

/// The flows of a solution zip (`Workflows/*.json`) or a legacy package
/// (`Microsoft.Flow/flows/<guid>/definition.json`).
fn read_zip(bytes: &[u8], file_name: &str, shown: &str) -> Result<Vec<SourceFlow>, ImportError> {
    let zip_error =
        |e: zip::result::ZipError| ImportError::Zip { path: shown.to_string(), message: e.to_string() };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(zip_error)?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let display_names = match names.iter().find(|n| n.eq_ignore_ascii_case("customizations.xml")) {
        Some(entry) => workflow_names(&String::from_utf8_lossy(&read_entry(&mut archive, entry, shown)?)),
        None => BTreeMap::new(),
    };
    let mut wanted: Vec<&String> = names.iter().filter(|n| is_flow_entry(n)).collect();
    wanted.sort();
    let mut flows = Vec::new();
    for entry in wanted {
        let entry_shown = format!("{shown}: {entry}");
        let value = parse_json(&read_entry(&mut archive, entry, shown)?, &entry_shown)?;
        let stem = Path::new(entry).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let fallback = guid_of(&stem)
            .and_then(|guid| display_names.get(&guid).cloned())
            .unwrap_or_else(|| display_from_file(&stem));
        flows.extend(flows_in_json(&value, &format!("{file_name}: {entry}"), &fallback));
    }
    Ok(flows)
}

fn read_entry(
    archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    entry: &str,
    shown: &str,
) -> Result<Vec<u8>, ImportError> {
    let file = archive.by_name(entry).map_err(|e| std::io::Error::other(e.to_string()));
    read_limited(file, &format!("{shown}: {entry}"))
}

fn is_flow_entry(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let solution = lower.starts_with("workflows/") && lower.ends_with(".json") && !lower[10..].contains('/');
    let package = lower.contains("microsoft.flow/flows/") && lower.ends_with("/definition.json");
    solution || package
}

/// Workflow GUID (upper case, no braces) → display name, from a solution's customizations.xml.
fn workflow_names(xml: &str) -> BTreeMap<String, String> {
    static WORKFLOW: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"<Workflow\s([^>]*)>").expect("valid regex"));
    static ATTRIBUTE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"(\w+)="([^"]*)""#).expect("valid regex"));
    let mut names = BTreeMap::new();
    for tag in WORKFLOW.captures_iter(xml) {
        let attributes: BTreeMap<&str, &str> = ATTRIBUTE
            .captures_iter(tag.get(1).map_or("", |m| m.as_str()))
            .filter_map(|a| Some((a.get(1)?.as_str(), a.get(2)?.as_str())))
            .collect();
        let (Some(id), Some(name)) = (attributes.get("WorkflowId"), attributes.get("Name")) else { continue };
        let id = id.trim_matches(|c| c == '{' || c == '}').to_ascii_uppercase();
        names.insert(id, unescape_xml(name));
    }
    names
}

fn unescape_xml(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

static GUID_SUFFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)-?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$").expect("valid regex")
});

fn guid_of(stem: &str) -> Option<String> {
    GUID_SUFFIX.captures(stem).and_then(|c| c.get(1)).map(|m| m.as_str().to_ascii_uppercase())
}

/// A display name from a file name: `OrderSync-<GUID>` → `OrderSync`.
fn display_from_file(stem: &str) -> String {
    let name = GUID_SUFFIX.replace(stem, "").into_owned();
    if name.is_empty() || name.eq_ignore_ascii_case("definition") { "imported flow".into() } else { name }
}

/// A flow name from a display name: `Partner Center → Salesforce (v2)` →
/// `partner-center-salesforce-v2`; `OrderSync` → `order-sync`.
pub fn kebab(display: &str) -> String {
    let camel = !display.contains([' ', '_', '-']);
    let mut out = String::new();
    let mut previous: Option<char> = None;
    for c in display.chars() {
        if c.is_ascii_alphanumeric() {
            let boundary = camel
                && c.is_ascii_uppercase()
                && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
            if boundary {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        previous = Some(c);
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() { "imported-flow".into() } else { out }
}

/// `name`, or `name-2`, `name-3`... when an earlier flow of the export took it.
fn unique(name: String, used: &mut BTreeSet<String>) -> String {
    let mut candidate = name.clone();
    let mut n = 2;
    while used.contains(&candidate) {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    used.insert(candidate.clone());
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_kebab_case() {
        assert_eq!(kebab("Partner Center → Salesforce (v2)"), "partner-center-salesforce-v2");
        assert_eq!(kebab("Task2CalendarManualFlow"), "task2-calendar-manual-flow");
        assert_eq!(kebab("HTTP_Request"), "http-request");
        assert_eq!(kebab("  "), "imported-flow");
        assert_eq!(display_from_file("OrderSync-B8BEFEEE-91B3-ED11-83FE-0022489ACD39"), "OrderSync");
        let mut used = BTreeSet::new();
        assert_eq!(unique("a".into(), &mut used), "a");
        assert_eq!(unique("a".into(), &mut used), "a-2");
    }

    #[test]
    fn arm_templates_resolve_their_variables_and_nested_deployments() {
        let definition = |action_type: &str| {
            serde_json::json!({
                "triggers": {"t": {"type": "[variables('trigger')]", "recurrence": {"frequency": "Hour", "interval": "[variables('every')]"}}},
                "actions": {"a": {"type": action_type, "inputs": {"uri": "[parameters('uri')]", "note": "[[literal]", "where": "[resourceGroup().location]"}}}
            })
        };
        let template = serde_json::json!({
            "parameters": {"uri": {"type": "string", "defaultValue": "https://example.com/"}, "name": {"type": "string"}},
            "variables": {"trigger": "recurrence", "every": "[parameters('hours')]"},
            "resources": [
                {"type": "Microsoft.Logic/workflows", "name": "[parameters('name')]", "properties": {"definition": definition("Http")}},
                {"type": "Microsoft.Logic/workflows", "name": "Later", "properties": {"definition": definition("Http")}},
                {"type": "Microsoft.Resources/deployments", "name": "nested", "properties": {"template": {"resources": [
                    {"type": "Microsoft.Logic/workflows", "name": "Later", "properties": {"definition": definition("Compose")}}
                ]}}}
            ]
        });
        let flows = flows_in_json(&template, "t.json", "fallback");
        let names: Vec<&str> = flows.iter().map(|f| f.display_name.as_str()).collect();
        // A name parameter without a default is named after the parameter; the nested
        // deployment's `Later` replaces the first one.
        assert_eq!(names, ["name", "Later"]);
        let first = &flows[0].definition;
        assert_eq!(first["triggers"]["t"]["type"], "recurrence");
        // `hours` has no default: the variable's reference stays as written.
        assert_eq!(first["triggers"]["t"]["recurrence"]["interval"], "[parameters('hours')]");
        assert_eq!(first["actions"]["a"]["inputs"]["uri"], "https://example.com/");
        assert_eq!(first["actions"]["a"]["inputs"]["note"], "[literal]");
        assert_eq!(first["actions"]["a"]["inputs"]["where"], "[resourceGroup().location]");
        assert_eq!(flows[1].definition["actions"]["a"]["type"], "Compose");
        assert_eq!(flows[1].origin, "t.json: Later");
    }

    #[test]
    fn solution_customizations_name_the_workflows() {
        let xml = r#"<Workflows><Workflow WorkflowId="{b8befeee-91b3-ed11-83fe-0022489acd39}" Name="Sync &amp; Notify"><JsonFileName>/Workflows/x.json</JsonFileName></Workflow></Workflows>"#;
        let names = workflow_names(xml);
        assert_eq!(
            names.get("B8BEFEEE-91B3-ED11-83FE-0022489ACD39").map(String::as_str),
            Some("Sync & Notify")
        );
        assert!(is_flow_entry("Workflows/Sync-B8BEFEEE-91B3-ED11-83FE-0022489ACD39.json"));
        assert!(is_flow_entry("Microsoft.Flow/flows/1234/definition.json"));
        assert!(!is_flow_entry("Workflows/sub/x.json"));
        assert!(!is_flow_entry("solution.xml"));
    }
}
