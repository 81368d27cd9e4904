//! `coflow doctor`: checks that the connected systems have what the flows need, before the
//! flows are turned on.
//!
//! - **Flows**: every flow file compiles, and every connection a flow names is in the
//!   connections file.
//! - **Salesforce**: signs in with each connection the flows use, describes every object they
//!   use, and names each missing object, field or relationship, each field the flows write that
//!   the user cannot write, and each customisation of the SFDX metadata (`flows/salesforce/`)
//!   whose type or picklist values differ, with the metadata file that installs it.
//! - **Partner Center**: signs in to the referrals API and the webhook registration API, and
//!   checks that the webhook is registered at the expected URL for the events the webhook flows
//!   take.
//!
//! Only reads are sent (the HTTP client holds back any write). The result is a [`Report`] of
//! findings; [`Report::problems`] counts what needs fixing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use super::metadata::{self, Metadata};
use super::usage::{self, SalesforceUse, Usage};
use crate::connectors::config::LoadedConnections;
use crate::connectors::partner_center::PartnerCenterConnector;
use crate::connectors::salesforce::SalesforceConnector;
use crate::connectors::{Connector, ConnectorError, HttpClient, OperationCall};

/// What to check.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The flows folder.
    pub flows_dir: PathBuf,
    /// The SFDX project of the Salesforce customisation (default `<flows>/salesforce`).
    pub metadata_dir: PathBuf,
    /// The URL Partner Center should post to; default: what the registration flow registers.
    pub webhook_url: Option<String>,
}

impl DoctorOptions {
    /// Checks for the flows of `flows_dir`, with the metadata in its `salesforce/` folder.
    pub fn new(flows_dir: impl Into<PathBuf>) -> Self {
        let flows_dir = flows_dir.into();
        DoctorOptions { metadata_dir: flows_dir.join("salesforce"), flows_dir, webhook_url: None }
    }
}

/// How a finding turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// As needed.
    Ok,
    /// Worth a look, but nothing fails because of it.
    Warning,
    /// Flows will fail or sync wrongly until it is fixed.
    Problem,
}

/// One thing checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The part checked: `flows`, `salesforce connection "salesforce"`, …
    pub area: String,
    /// How it turned out.
    pub level: Level,
    /// What was found.
    pub message: String,
    /// What to do about it.
    pub fix: Option<String>,
}

/// Everything checked, in order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The findings, grouped by area in the order the areas were checked.
    pub findings: Vec<Finding>,
}

impl Report {
    /// How many findings are problems.
    pub fn problems(&self) -> usize {
        self.findings.iter().filter(|f| f.level == Level::Problem).count()
    }

    fn push(&mut self, area: &str, level: Level, message: impl Into<String>, fix: Option<String>) {
        self.findings.push(Finding { area: area.to_string(), level, message: message.into(), fix });
    }

    /// The report as text: one line per finding under its area, fixes indented below.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut area = "";
        for finding in &self.findings {
            if finding.area != area {
                area = &finding.area;
                out.push_str(&format!("{area}\n"));
            }
            let mark = match finding.level {
                Level::Ok => "✔",
                Level::Warning => "!",
                Level::Problem => "✘",
            };
            out.push_str(&format!("  {mark} {}\n", finding.message));
            if let Some(fix) = &finding.fix {
                out.push_str(&format!("      fix: {fix}\n"));
            }
        }
        let problems = self.problems();
        let warnings = self.findings.iter().filter(|f| f.level == Level::Warning).count();
        match (problems, warnings) {
            (0, 0) => out.push_str("\nEverything the flows need is in place.\n"),
            (0, w) => out.push_str(&format!("\nNo problems; {w} warning{}.\n", plural(w))),
            (p, _) => out.push_str(&format!("\n{p} problem{} found.\n", plural(p))),
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Runs every check. `http` should hold back writes (doctor only reads); see [`HttpClient::new`].
pub async fn run(options: &DoctorOptions, connections: &LoadedConnections, http: &HttpClient) -> Report {
    let mut report = Report::default();
    let flows_area = format!("flows ({})", options.flows_dir.display());
    let usage = match usage::scan(&options.flows_dir) {
        Ok(usage) => usage,
        Err(err) => {
            report.push(
                &flows_area,
                Level::Problem,
                err.to_string(),
                Some("pass --flows with the flows folder".into()),
            );
            return report;
        }
    };
    check_flows(&usage, &flows_area, &mut report);
    let metadata = load_metadata(options, &flows_area, &mut report);
    check_connections_exist(&usage, connections, &flows_area, &mut report);
    for (name, connector) in &connections.salesforce {
        if usage.connections.contains_key(name) {
            let mut org = Org::new(name, connector.clone(), http, &metadata);
            org.check(&usage).await;
            report.findings.extend(org.findings);
        }
    }
    for (name, connector) in &connections.partner_center {
        if usage.connections.contains_key(name) {
            check_partner_center(name, connector, http, &usage, options, &mut report).await;
        }
    }
    report
}

fn check_flows(usage: &Usage, area: &str, report: &mut Report) {
    let mut broken = 0;
    for path in &usage.flow_files {
        let (flow, diagnostics) = crate::flow::check_file(path);
        if flow.is_none() {
            broken += 1;
            let first = diagnostics.0.first().map(|d| d.message.clone()).unwrap_or_default();
            report.push(
                area,
                Level::Problem,
                format!("{} does not compile: {first}", file_name(path)),
                Some(format!("run `coflow validate {}` for every diagnostic", path.display())),
            );
        }
    }
    if usage.flow_files.is_empty() {
        report.push(
            area,
            Level::Problem,
            "no flow files found",
            Some("pass --flows with the flows folder".into()),
        );
    } else if broken == 0 {
        let n = usage.flow_files.len();
        report.push(area, Level::Ok, format!("{n} flow{} compile", plural(n)), None);
    }
}

fn load_metadata(options: &DoctorOptions, area: &str, report: &mut Report) -> Option<Metadata> {
    match metadata::load(&options.metadata_dir) {
        Ok(metadata) => {
            report.push(
                area,
                Level::Ok,
                format!(
                    "Salesforce metadata in {}: {} custom object{}, {} custom field{}",
                    options.metadata_dir.display(),
                    metadata.objects.len(),
                    plural(metadata.objects.len()),
                    metadata.fields.len(),
                    plural(metadata.fields.len())
                ),
                None,
            );
            Some(metadata)
        }
        Err(err) => {
            report.push(
                area,
                Level::Warning,
                format!("{err}; missing fields are named without the file that installs them"),
                Some("pass --metadata with the SFDX project of the Salesforce customisation".into()),
            );
            None
        }
    }
}

fn check_connections_exist(usage: &Usage, connections: &LoadedConnections, area: &str, report: &mut Report) {
    for (name, files) in &usage.connections {
        let known =
            connections.salesforce.contains_key(name) || connections.partner_center.contains_key(name);
        if !known {
            report.push(
                area,
                Level::Problem,
                format!("connection `{name}` (used by {}) is not in the connections file", used_by(files)),
                Some(format!(
                    "add a `{name}` connection to coflow.yaml, or pass --config with the file that has it"
                )),
            );
        }
    }
}

/// `a.yaml, b.yaml and 3 more`.
fn used_by(files: &BTreeSet<PathBuf>) -> String {
    let names: Vec<String> =
        files.iter().map(|p| file_name(p)).collect::<BTreeSet<_>>().into_iter().collect();
    match names.len() {
        0..=4 => names.join(", "),
        n => format!("{} and {} more", names[..3].join(", "), n - 3),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A problem's message, its fix, and the files that use what it is about.
type Problem = (String, Option<String>, BTreeSet<PathBuf>);

/// What describe says about one object: `None` when the object does not exist.
type Described = Option<Arc<Value>>;

/// The checks of one Salesforce connection.
struct Org<'a> {
    connection: String,
    area: String,
    connector: Arc<SalesforceConnector>,
    http: &'a HttpClient,
    metadata: &'a Option<Metadata>,
    described: HashMap<String, Described>,
    /// Problems by subject (`Opportunity.Audit__c`), so every use of one name is one finding.
    problems: BTreeMap<String, Problem>,
    findings: Vec<Finding>,
    signed_in: Option<Result<(), String>>,
}

impl<'a> Org<'a> {
    fn new(
        name: &str,
        connector: Arc<SalesforceConnector>,
        http: &'a HttpClient,
        metadata: &'a Option<Metadata>,
    ) -> Self {
        Org {
            connection: name.to_string(),
            area: format!("Salesforce connection `{name}`"),
            connector,
            http,
            metadata,
            described: HashMap::new(),
            problems: BTreeMap::new(),
            findings: Vec::new(),
            signed_in: None,
        }
    }

    async fn check(&mut self, usage: &Usage) {
        let uses: Vec<&SalesforceUse> = usage
            .salesforce
            .iter()
            .filter(|u| u.connection.as_deref().is_none_or(|c| c == self.connection))
            .collect();
        for found in &uses {
            if self.resolve(found).await.is_none() {
                break;
            }
        }
        if let Some(Err(message)) = self.signed_in.clone() {
            let fix = "check the connection's URL and credentials in coflow.yaml (and the secrets it reads)";
            self.push(Level::Problem, format!("cannot sign in: {message}"), Some(fix.into()));
            return;
        }
        self.push(Level::Ok, "signed in".into(), None);
        self.check_metadata().await;
        let problems = std::mem::take(&mut self.problems);
        self.objects_in_place(&uses, &problems);
        for (message, fix, files) in problems.into_values() {
            let used =
                if files.is_empty() { String::new() } else { format!(" (used by {})", used_by(&files)) };
            self.push(Level::Problem, format!("{message}{used}"), fix);
        }
    }

    /// One line per object the flows use that has everything they need.
    fn objects_in_place(&mut self, uses: &[&SalesforceUse], problems: &BTreeMap<String, Problem>) {
        let objects: BTreeSet<&str> = uses.iter().map(|u| u.object.as_str()).collect();
        for object in objects {
            let prefix = format!("{object}.");
            if problems.keys().any(|subject| subject == object || subject.starts_with(&prefix)) {
                continue;
            }
            let fields: BTreeSet<String> = uses
                .iter()
                .filter(|u| u.object == object && u.field.is_some())
                .map(|u| u.display())
                .collect();
            let count = fields.len();
            self.push(
                Level::Ok,
                format!("{object}: the {count} field{} the flows use are there", plural(count)),
                None,
            );
        }
    }

    fn push(&mut self, level: Level, message: String, fix: Option<String>) {
        self.findings.push(Finding { area: self.area.clone(), level, message, fix });
    }

    fn problem(&mut self, subject: &str, message: String, fix: Option<String>, source: Option<&Path>) {
        let entry =
            self.problems.entry(subject.to_string()).or_insert_with(|| (message, fix, BTreeSet::new()));
        if let Some(source) = source {
            entry.2.insert(source.to_path_buf());
        }
    }

    /// Describes `object` once; `None` in the outer option when signing in failed.
    async fn describe(&mut self, object: &str) -> Option<Described> {
        let key = object.to_ascii_lowercase();
        if let Some(found) = self.described.get(&key) {
            return Some(found.clone());
        }
        if matches!(self.signed_in, Some(Err(_))) {
            return None;
        }
        let inputs = json!({"sobject": object});
        let call = OperationCall::new("describe", &inputs, self.http);
        let described = match Connector::call(self.connector.as_ref(), call).await {
            Ok(output) => Some(Arc::new(output.body)),
            Err(ConnectorError::Status { status: 404, .. }) => None,
            Err(err) => {
                self.signed_in = Some(Err(err.to_string()));
                return None;
            }
        };
        self.signed_in = Some(Ok(()));
        self.described.insert(key, described.clone());
        Some(described)
    }

    /// Follows one use to its field, reporting what is missing; `None` when signing in failed.
    async fn resolve(&mut self, found: &SalesforceUse) -> Option<()> {
        let source = Some(found.source.as_path());
        let Some(described) = self.describe(&found.object).await? else {
            let (message, fix) = self.missing_object(&found.object);
            self.problem(&found.object.clone(), message, fix, source);
            return Some(());
        };
        let mut object = found.object.clone();
        let mut current = described;
        let mut subject = object.clone();
        if let Some(child) = &found.child {
            subject = format!("{subject}.{child}");
            let Some(child_object) = child_object(&current, child) else {
                let (message, fix) = self.missing_child(&object, child);
                self.problem(&subject, message, fix, source);
                return Some(());
            };
            let Some(child_described) = self.describe(&child_object).await? else {
                let (message, fix) = self.missing_object(&child_object);
                self.problem(&child_object.clone(), message, fix, source);
                return Some(());
            };
            object = child_object;
            current = child_described;
        }
        for parent in &found.parents {
            subject = format!("{subject}.{parent}");
            let Some(target) = parent_object(&current, parent) else {
                let message = format!("{object} has no relationship `{parent}`");
                let fix = format!(
                    "check the lookup field behind `{parent}` exists on {object} and is visible to the user"
                );
                self.problem(&subject, message, Some(fix), source);
                return Some(());
            };
            let Some(parent_described) = self.describe(&target).await? else {
                let (message, fix) = self.missing_object(&target);
                self.problem(&target.clone(), message, fix, source);
                return Some(());
            };
            object = target;
            current = parent_described;
        }
        let Some(field_name) = &found.field else { return Some(()) };
        let Some(field) = field_entry(&current, field_name) else {
            let qualified = format!("{object}.{field_name}");
            let (message, fix) = self.missing_field(&object, field_name);
            self.problem(&qualified, message, fix, source);
            return Some(());
        };
        let writable = field.get("updateable") == Some(&Value::Bool(true))
            || field.get("createable") == Some(&Value::Bool(true));
        if found.write && !writable {
            let qualified = format!("{object}.{field_name}");
            let message = format!("{qualified} is written by the flows but the user cannot write it");
            let fix = "give the user coflow signs in as edit access to the field (field-level security)";
            self.problem(&qualified, message, Some(fix.into()), source);
        }
        Some(())
    }

    fn install_hint(&self, path: &Path) -> String {
        let project = self.metadata.as_ref().map(|m| m.root.display().to_string()).unwrap_or_default();
        let permission = self
            .metadata
            .as_ref()
            .and_then(|m| m.permission_sets.first())
            .map(|set| {
                format!(", then `sf org assign permset -n {}` for the user coflow signs in as", set.name)
            })
            .unwrap_or_default();
        format!("install {} (`sf project deploy start -d {project}`{permission})", path.display())
    }

    fn missing_object(&self, object: &str) -> (String, Option<String>) {
        let message = format!("object {object} is missing");
        let fix = match self.metadata.as_ref().and_then(|m| m.object_folder(object)) {
            Some(folder) => self.install_hint(&folder),
            None => format!("check that {object} exists and the user coflow signs in as can read it"),
        };
        (message, Some(fix))
    }

    fn missing_field(&self, object: &str, field: &str) -> (String, Option<String>) {
        let message = format!("field {object}.{field} is missing");
        let fix = match self.metadata.as_ref().and_then(|m| m.field(object, field)) {
            Some(def) => self.install_hint(&def.path),
            None => format!(
                "check that {object}.{field} exists and the user coflow signs in as can see it (field-level security)"
            ),
        };
        (message, Some(fix))
    }

    fn missing_child(&self, object: &str, child: &str) -> (String, Option<String>) {
        let message = format!("{object} has no child relationship `{child}`");
        let fix = match self.metadata.as_ref().and_then(|m| m.child_lookup(object, child)) {
            Some(def) => self.install_hint(&def.path),
            None => format!("check the lookup to {object} whose child relationship is `{child}`"),
        };
        (message, Some(fix))
    }

    /// Every customisation in the metadata: there, of the right type, with its picklist values.
    async fn check_metadata(&mut self) {
        let Some(metadata) = self.metadata else { return };
        for object in &metadata.objects {
            if self.describe(&object.name).await.flatten().is_none() {
                let (message, fix) = self.missing_object(&object.name);
                self.problem(&object.name, message, fix, None);
            }
        }
        for def in &metadata.fields {
            let Some(described) = self.describe(&def.object).await.flatten() else { continue };
            let qualified = def.qualified();
            let Some(field) = field_entry(&described, &def.name) else {
                let (message, fix) = self.missing_field(&def.object, &def.name);
                self.problem(&qualified, message, fix, None);
                continue;
            };
            let actual = field.get("type").and_then(Value::as_str).unwrap_or_default();
            if actual != def.describe_type() {
                let message = format!(
                    "{qualified} is a {actual} field; the flows need a {} ({})",
                    def.describe_type(),
                    def.kind
                );
                let fix = format!("change its type to match {}", def.path.display());
                self.problem(&qualified, message, Some(fix), None);
                continue;
            }
            let values: BTreeSet<&str> = field
                .get("picklistValues")
                .and_then(Value::as_array)
                .map(|values| values.iter().filter_map(|v| v.get("value").and_then(Value::as_str)).collect())
                .unwrap_or_default();
            let missing: Vec<&str> =
                def.values.iter().map(String::as_str).filter(|v| !values.contains(v)).collect();
            if !missing.is_empty() {
                let message = format!(
                    "{qualified} lacks the picklist value{} {}",
                    plural(missing.len()),
                    missing.join(", ")
                );
                let fix = format!("add them as in {} (the mappings write them)", def.path.display());
                self.problem(&qualified, message, Some(fix), None);
            }
        }
    }
}

fn field_entry<'v>(described: &'v Value, name: &str) -> Option<&'v Value> {
    described
        .get("fields")?
        .as_array()?
        .iter()
        .find(|f| f.get("name").and_then(Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case(name)))
}

fn child_object(described: &Value, relationship: &str) -> Option<String> {
    described.get("childRelationships")?.as_array()?.iter().find_map(|rel| {
        let name = rel.get("relationshipName").and_then(Value::as_str)?;
        name.eq_ignore_ascii_case(relationship)
            .then(|| rel.get("childSObject").and_then(Value::as_str).map(str::to_string))?
    })
}

fn parent_object(described: &Value, relationship: &str) -> Option<String> {
    described.get("fields")?.as_array()?.iter().find_map(|field| {
        let name = field.get("relationshipName").and_then(Value::as_str)?;
        if !name.eq_ignore_ascii_case(relationship) {
            return None;
        }
        field.get("referenceTo")?.as_array()?.first()?.as_str().map(str::to_string)
    })
}

async fn check_partner_center(
    name: &str,
    connector: &Arc<PartnerCenterConnector>,
    http: &HttpClient,
    usage: &Usage,
    options: &DoctorOptions,
    report: &mut Report,
) {
    let area = format!("Partner Center connection `{name}`");
    let call = |operation: &'static str, inputs: Value| async move {
        let call = OperationCall::new(operation, &inputs, http);
        Connector::call(connector.as_ref(), call).await
    };
    match call("list_referrals", json!({"top": 1, "max_items": 1})).await {
        Ok(_) => report.push(&area, Level::Ok, "signed in to the referrals API", None),
        Err(err) => report.push(
            &area,
            Level::Problem,
            format!("cannot read referrals: {err}"),
            Some("check referrals_url and the auth settings of the connection; the user needs the Referral Admin role".into()),
        ),
    }
    let registration = match call("get_registration", json!({})).await {
        Ok(output) => Some(output.body),
        Err(ConnectorError::Status { status: 404, .. }) => None,
        Err(err) => {
            let fix = "check webhooks_url and the auth settings of the connection";
            report.push(
                &area,
                Level::Problem,
                format!("cannot read the webhook registration: {err}"),
                Some(fix.into()),
            );
            return;
        }
    };
    report.push(&area, Level::Ok, "signed in to the webhook registration API", None);
    check_registration(name, &area, registration.as_ref(), usage, options, report);
}

fn check_registration(
    connection: &str,
    area: &str,
    registration: Option<&Value>,
    usage: &Usage,
    options: &DoctorOptions,
    report: &mut Report,
) {
    let uses_connection = |c: &Option<String>| c.as_deref().is_none_or(|c| c == connection);
    let flows: Vec<_> = usage.webhook_flows.iter().filter(|f| uses_connection(&f.connection)).collect();
    let registering = usage.registrations.iter().find(|r| uses_connection(&r.connection));
    let register_fix = match registering {
        Some(r) => format!(
            "set webhook_url in {0} to coflow's public address followed by /hooks/<flow>, then run `coflow run {0}`",
            r.source.display()
        ),
        None => "register the webhook (see the setup guide)".to_string(),
    };
    let expected = options.webhook_url.clone().or_else(|| registering.and_then(|r| r.url.clone()));
    if let Some(url) = &expected {
        let host =
            url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
        if options.webhook_url.is_none() && host.ends_with("example.com") {
            report.push(
                area,
                Level::Warning,
                format!("the webhook URL the flows register is still the example, {url}"),
                Some("set the webhook_url parameter of the registration flow to coflow's public address, or pass --webhook-url".into()),
            );
        }
        let points_at_flow =
            flows.iter().any(|f| url.trim_end_matches('/').ends_with(&format!("/hooks/{}", f.flow)));
        if !flows.is_empty() && !points_at_flow {
            let hooks: Vec<String> = flows.iter().map(|f| format!("/hooks/{}", f.flow)).collect();
            report.push(
                area,
                Level::Problem,
                format!(
                    "the webhook URL {url} does not end with a webhook flow's path ({})",
                    hooks.join(", ")
                ),
                Some("point webhook_url at the pc-to-sf flow's hook".into()),
            );
        }
    }
    let Some(registration) =
        registration.filter(|r| r.get("WebhookUrl").and_then(Value::as_str).is_some_and(|u| !u.is_empty()))
    else {
        if !flows.is_empty() {
            report.push(
                area,
                Level::Problem,
                "no webhook is registered: referral events will not reach coflow",
                Some(register_fix),
            );
        }
        return;
    };
    let registered_url = registration.get("WebhookUrl").and_then(Value::as_str).unwrap_or_default();
    let registered: BTreeSet<&str> = registration
        .get("WebhookEvents")
        .and_then(Value::as_array)
        .map(|events| events.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut fine = true;
    if let Some(url) = &expected {
        if url != registered_url {
            fine = false;
            report.push(
                area,
                Level::Problem,
                format!("the webhook is registered at {registered_url}, not at {url}"),
                Some(register_fix.clone()),
            );
        }
    }
    for flow in &flows {
        let missing: Vec<&str> =
            flow.events.iter().map(String::as_str).filter(|e| !registered.contains(e)).collect();
        if !missing.is_empty() {
            fine = false;
            report.push(
                area,
                Level::Problem,
                format!(
                    "{} is not registered for {} (flow {})",
                    registered_url,
                    missing.join(", "),
                    flow.flow
                ),
                Some(register_fix.clone()),
            );
        }
    }
    if fine {
        let events: Vec<&str> = registered.into_iter().collect();
        report.push(
            area,
            Level::Ok,
            format!("webhook registered at {registered_url} for {}", events.join(", ")),
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_report_groups_by_area_and_counts_problems() {
        let mut report = Report::default();
        report.push("flows (flows)", Level::Ok, "8 flows compile", None);
        report.push(
            "Salesforce connection `salesforce`",
            Level::Problem,
            "field Opportunity.Audit__c is missing",
            Some("install it".into()),
        );
        report.push("Salesforce connection `salesforce`", Level::Warning, "odd", None);
        assert_eq!(report.problems(), 1);
        assert_eq!(
            report.to_text(),
            "flows (flows)\n  ✔ 8 flows compile\nSalesforce connection `salesforce`\n  ✘ field Opportunity.Audit__c is missing\n      fix: install it\n  ! odd\n\n1 problem found.\n"
        );
    }

    #[test]
    fn describe_lookups() {
        let described = json!({
            "fields": [{"name": "AccountId", "relationshipName": "Account", "referenceTo": ["Account"]}],
            "childRelationships": [{"relationshipName": "Microsoft_Solutions__r", "childSObject": "Microsoft_Solution__c"}]
        });
        assert_eq!(parent_object(&described, "account").as_deref(), Some("Account"));
        assert_eq!(
            child_object(&described, "Microsoft_Solutions__r").as_deref(),
            Some("Microsoft_Solution__c")
        );
        assert!(field_entry(&described, "accountid").is_some());
        assert!(field_entry(&described, "Nope").is_none());
    }
}
