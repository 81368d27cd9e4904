//! What the flows of a folder need from the systems they connect: the Salesforce objects and
//! fields they read and write, the Partner Center events their webhooks take and the webhook
//! registration they make. Read from the flow and mapping files, without running anything.
//!
//! Salesforce names come from the queries (`salesforce.query` and poll triggers, see
//! [`super::soql`]), from the records of `salesforce.create_record` / `update_record` /
//! `upsert_record` (literal keys, the fields of the mapping files they apply, and the quoted
//! field names of `setProperty(...)`), and from every mapping whose `target` is an object the
//! flow writes, since its fields end up in that object.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value as Yaml;

use super::soql::{self, Named};
use crate::expr::Mappings;

/// Why the flows could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The folder or a flow file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The mapping files do not load.
    #[error("{0}")]
    Mappings(#[from] crate::expr::MappingError),
}

/// One Salesforce name a flow uses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SalesforceUse {
    /// Connection name (from the flow's `connections`), when the flow says which.
    pub connection: Option<String>,
    /// The object the name starts from.
    pub object: String,
    /// A child relationship of `object` walked first (a subquery's `FROM`).
    pub child: Option<String>,
    /// Parent relationships walked next (`Account` of `Account.Name`).
    pub parents: Vec<String>,
    /// The field; `None` when only the object (or child relationship) is used.
    pub field: Option<String>,
    /// The flow writes this field.
    pub write: bool,
    /// The flow or mapping file that names it.
    pub source: PathBuf,
}

impl SalesforceUse {
    /// `Object.child.parent.Field` as written in queries.
    pub fn display(&self) -> String {
        let mut parts = vec![self.object.clone()];
        parts.extend(self.child.iter().cloned());
        parts.extend(self.parents.iter().cloned());
        parts.extend(self.field.iter().cloned());
        parts.join(".")
    }
}

/// A flow started by Partner Center webhook events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookFlow {
    /// The flow's name: events arrive at `/hooks/<name>`.
    pub flow: String,
    /// The Partner Center connection that verifies the events.
    pub connection: Option<String>,
    /// The events it takes.
    pub events: Vec<String>,
    /// The flow file.
    pub source: PathBuf,
}

/// The webhook registration a flow makes (`partner_center.register_webhook`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRegistration {
    /// The Partner Center connection it registers with.
    pub connection: Option<String>,
    /// The URL it registers, when it is written out or a parameter's default.
    pub url: Option<String>,
    /// The events it registers, likewise.
    pub events: Vec<String>,
    /// The flow's name.
    pub flow: String,
    /// The flow file.
    pub source: PathBuf,
}

/// Everything the flows of one folder use.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// The flow files read.
    pub flow_files: Vec<PathBuf>,
    /// Connection names the flows refer to, with the flow files that do.
    pub connections: BTreeMap<String, BTreeSet<PathBuf>>,
    /// Salesforce names, one entry per (name, file).
    pub salesforce: BTreeSet<SalesforceUse>,
    /// Flows started by Partner Center webhooks.
    pub webhook_flows: Vec<WebhookFlow>,
    /// Webhook registrations the flows make.
    pub registrations: Vec<WebhookRegistration>,
}

/// The flow files of a folder the server would run: `*.yaml` / `*.yml` at its top level, but
/// not unit tests (`*.test.yaml`) nor the connections file.
pub fn flow_files(dir: &Path) -> Result<Vec<PathBuf>, UsageError> {
    let io = |source| UsageError::Io { path: dir.to_path_buf(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        let excluded = name.contains(".test.") || name == "coflow.yaml" || name == "coflow.yml";
        if path.is_file() && yaml && !excluded {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads every flow of `dir` and the mapping files in `dir/mappings`.
pub fn scan(dir: &Path) -> Result<Usage, UsageError> {
    let mappings = Mappings::load_dir(&dir.join("mappings"))?;
    let mut usage = Usage::default();
    for path in flow_files(dir)? {
        let text =
            std::fs::read_to_string(&path).map_err(|source| UsageError::Io { path: path.clone(), source })?;
        // A file that is not YAML is `coflow validate`'s to report; it names nothing here.
        if let Ok(yaml) = serde_yaml::from_str::<Yaml>(&text) {
            FlowScan::new(&path, &yaml, &mappings).scan(&mut usage);
        }
        usage.flow_files.push(path);
    }
    Ok(usage)
}

/// Scanning one flow file.
struct FlowScan<'a> {
    path: &'a Path,
    yaml: &'a Yaml,
    mappings: &'a Mappings,
    name: String,
    connections: BTreeMap<String, String>,
    /// Names that are not fields when quoted in a template: actions, variables, parameters, mappings.
    not_fields: BTreeSet<String>,
    found: Vec<SalesforceUse>,
}

fn text_of<'y>(yaml: &'y Yaml, key: &str) -> Option<&'y str> {
    yaml.get(key).and_then(Yaml::as_str)
}

/// A literal (not a template) string.
fn literal(yaml: Option<&Yaml>) -> Option<&str> {
    yaml.and_then(Yaml::as_str).filter(|text| !text.contains("{{"))
}

impl<'a> FlowScan<'a> {
    fn new(path: &'a Path, yaml: &'a Yaml, mappings: &'a Mappings) -> Self {
        let connections = yaml
            .get("connections")
            .and_then(Yaml::as_mapping)
            .map(|map| {
                map.iter()
                    .filter_map(|(alias, name)| {
                        Some((alias.as_str()?.to_string(), name.as_str()?.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut not_fields: BTreeSet<String> = mappings.names().map(str::to_string).collect();
        if let Some(parameters) = yaml.get("parameters").and_then(Yaml::as_mapping) {
            not_fields.extend(parameters.keys().filter_map(Yaml::as_str).map(str::to_string));
        }
        let mut scan = FlowScan {
            path,
            yaml,
            mappings,
            name: text_of(yaml, "name").unwrap_or_default().to_string(),
            connections,
            not_fields,
            found: Vec::new(),
        };
        let mut actions = Vec::new();
        if let Some(block) = yaml.get("actions") {
            collect_actions(block, &mut actions);
        }
        for (name, action) in &actions {
            scan.not_fields.insert(name.clone());
            if let Some(variable) = text_of(action, "name") {
                scan.not_fields.insert(variable.to_string());
            }
        }
        scan
    }

    /// The connection an action or trigger uses: its alias resolved, or the flow's only one.
    fn connection(&self, node: &Yaml) -> Option<String> {
        match text_of(node, "connection") {
            Some(alias) => Some(self.connections.get(alias).cloned().unwrap_or_else(|| alias.to_string())),
            None if self.connections.len() == 1 => self.connections.values().next().cloned(),
            None => None,
        }
    }

    fn scan(mut self, usage: &mut Usage) {
        for name in self.connections.values() {
            usage.connections.entry(name.clone()).or_default().insert(self.path.to_path_buf());
        }
        let trigger = self.yaml.get("trigger").cloned().unwrap_or(Yaml::Null);
        self.trigger(&trigger, usage);
        let mut actions = Vec::new();
        if let Some(block) = self.yaml.get("actions") {
            collect_actions(block, &mut actions);
        }
        let mut written = BTreeSet::new();
        for (_, action) in &actions {
            self.action(action, &mut written, usage);
        }
        self.mapping_targets(&actions, &written);
        usage.salesforce.extend(self.found);
    }

    fn trigger(&mut self, trigger: &Yaml, usage: &mut Usage) {
        let connection = self.connection(trigger);
        match text_of(trigger, "type") {
            Some("salesforce.poll") => {
                let Some(object) = literal(trigger.get("object")) else { return };
                for field in ["Id", "CreatedDate", "SystemModstamp"] {
                    self.add(&connection, object, None, &[], Some(field), false, None);
                }
                if let Some(condition) = literal(trigger.get("where")) {
                    for named in soql::condition_names(object, condition) {
                        self.add_named(&connection, object, &named);
                    }
                }
            }
            Some("partner_center.webhook") => usage.webhook_flows.push(WebhookFlow {
                flow: self.name.clone(),
                connection,
                events: strings(trigger.get("events")),
                source: self.path.to_path_buf(),
            }),
            _ => {}
        }
    }

    fn action(&mut self, action: &Yaml, written: &mut BTreeSet<String>, usage: &mut Usage) {
        let connection = self.connection(action);
        let inputs = action.get("inputs").cloned().unwrap_or(Yaml::Null);
        match text_of(action, "type").unwrap_or_default() {
            "salesforce.query" | "salesforce.query_all" => {
                if let Some(query) = text_of(&inputs, "soql").and_then(soql::names) {
                    self.add_query(&connection, &query);
                }
            }
            "salesforce.create_record" | "salesforce.update_record" | "salesforce.upsert_record" => {
                let Some(object) = literal(inputs.get("sobject")) else { return };
                written.insert(object.to_string());
                self.add(&connection, object, None, &[], None, true, None);
                if let Some(field) = literal(inputs.get("external_id_field")) {
                    self.add(&connection, object, None, &[], Some(field), true, None);
                }
                self.record(&connection, object, inputs.get("record"));
            }
            "salesforce.get_record" | "salesforce.describe" => {
                if let Some(object) = literal(inputs.get("sobject")) {
                    self.add(&connection, object, None, &[], None, false, None);
                }
            }
            "partner_center.register_webhook" => usage.registrations.push(WebhookRegistration {
                connection,
                url: self.resolved(inputs.get("url")).and_then(|v| v.as_str().map(str::to_string)),
                events: self.resolved(inputs.get("events")).map(|v| strings(Some(&v))).unwrap_or_default(),
                flow: self.name.clone(),
                source: self.path.to_path_buf(),
            }),
            _ => {}
        }
    }

    /// The fields a written record names.
    fn record(&mut self, connection: &Option<String>, object: &str, record: Option<&Yaml>) {
        match record {
            Some(Yaml::Mapping(map)) => {
                for key in map.keys().filter_map(Yaml::as_str).filter(|k| !k.contains("{{")) {
                    self.add(connection, object, None, &[], Some(key), true, None);
                }
            }
            Some(Yaml::String(template)) => {
                for mapping in mapping_calls(template) {
                    self.add_mapping_fields(connection, object, &mapping);
                }
                for field in quoted_names(template) {
                    if !self.not_fields.contains(&field) {
                        self.add(connection, object, None, &[], Some(&field), true, None);
                    }
                }
            }
            _ => {}
        }
    }

    /// Mappings whose target is an object this flow writes: their fields reach that object even
    /// when the flow picks them out first (compare before write).
    fn mapping_targets(&mut self, actions: &[(String, Yaml)], written: &BTreeSet<String>) {
        let mut called = BTreeSet::new();
        for (_, action) in actions {
            let text = serde_yaml::to_string(action).unwrap_or_default();
            called.extend(mapping_calls(&text));
        }
        for name in called {
            let Some(target) = self.mappings.get(&name).and_then(|m| m.target.clone()) else { continue };
            if written.contains(&target) {
                // Which connection does not show here; the object's writes name it.
                let connection = self
                    .found
                    .iter()
                    .find(|u| u.object == target && u.write)
                    .and_then(|u| u.connection.clone());
                self.add_mapping_fields(&connection, &target, &name);
            }
        }
    }

    fn add_mapping_fields(&mut self, connection: &Option<String>, object: &str, mapping: &str) {
        let Some(found) = self.mappings.get(mapping) else { return };
        let source = found.path.clone();
        let fields: Vec<String> = found.field_names().map(str::to_string).collect();
        for field in fields {
            self.add(connection, object, None, &[], Some(&field), true, source.clone());
        }
    }

    fn add_query(&mut self, connection: &Option<String>, query: &soql::QueryNames) {
        self.add(connection, &query.object, None, &[], None, false, None);
        for child in &query.children {
            self.add(connection, &query.object, Some(child), &[], None, false, None);
        }
        for named in &query.names {
            self.add_named(connection, &query.object, named);
        }
        for nested in &query.nested {
            self.add_query(connection, nested);
        }
    }

    fn add_named(&mut self, connection: &Option<String>, object: &str, named: &Named) {
        self.add(connection, object, named.child.as_deref(), &named.parents, Some(&named.field), false, None);
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        connection: &Option<String>,
        object: &str,
        child: Option<&str>,
        parents: &[String],
        field: Option<&str>,
        write: bool,
        source: Option<PathBuf>,
    ) {
        self.found.push(SalesforceUse {
            connection: connection.clone(),
            object: object.to_string(),
            child: child.map(str::to_string),
            parents: parents.to_vec(),
            field: field.map(str::to_string),
            write,
            source: source.unwrap_or_else(|| self.path.to_path_buf()),
        });
    }

    /// A value written out, or `{{ parameters('x') }}` resolved to the parameter's default.
    fn resolved(&self, value: Option<&Yaml>) -> Option<Yaml> {
        let value = value?;
        let Some(text) = value.as_str() else { return Some(value.clone()) };
        if !text.contains("{{") {
            return Some(value.clone());
        }
        let parameter = parameter_reference(text)?;
        self.yaml.get("parameters")?.get(parameter)?.get("default").cloned()
    }
}

/// Actions of a block and of the blocks inside them (`then`, `else`, `actions`, `cases`,
/// `default`), by name.
fn collect_actions(block: &Yaml, out: &mut Vec<(String, Yaml)>) {
    let Some(map) = block.as_mapping() else { return };
    for (name, action) in map {
        let (Some(name), Some(_)) = (name.as_str(), action.get("type")) else { continue };
        out.push((name.to_string(), action.clone()));
        for key in ["then", "else", "actions", "default"] {
            if let Some(inner) = action.get(key) {
                collect_actions(inner, out);
            }
        }
        if let Some(cases) = action.get("cases").and_then(Yaml::as_mapping) {
            for case in cases.values() {
                collect_actions(case, out);
            }
        }
    }
}

fn strings(value: Option<&Yaml>) -> Vec<String> {
    value
        .and_then(Yaml::as_sequence)
        .map(|items| items.iter().filter_map(Yaml::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The names of `mapping('name', ...)` calls in a template.
fn mapping_calls(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("mapping(") {
        rest = &rest[at + "mapping(".len()..];
        let trimmed = rest.trim_start();
        let Some(quote) = trimmed.chars().next().filter(|c| *c == '\'' || *c == '"') else { continue };
        let inner = &trimmed[1..];
        if let Some(end) = inner.find(quote) {
            names.push(inner[..end].to_string());
        }
    }
    names
}

/// Quoted words that look like Salesforce API names (`'AccountId'`, `'Audit__c'`): what
/// `setProperty(record, 'Field', value)` and `opt(record, 'Field')` name in a record template.
fn quoted_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for part in text.split('\'').skip(1).step_by(2) {
        let api_name = part.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if api_name {
            names.push(part.to_string());
        }
    }
    names
}

/// `x` of a template that is exactly `{{ parameters('x') }}`.
fn parameter_reference(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let argument = inner.strip_prefix("parameters(")?.strip_suffix(')')?.trim();
    argument
        .strip_prefix('\'')
        .and_then(|a| a.strip_suffix('\''))
        .or_else(|| argument.strip_prefix('"').and_then(|a| a.strip_suffix('"')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_helpers() {
        assert_eq!(
            mapping_calls(
                "{{ setProperty(mapping('referral_to_account', x), 'AccountId', mapping( \"b\" )) }}"
            ),
            ["referral_to_account", "b"]
        );
        assert_eq!(
            quoted_names(
                "{{ setProperty(setProperty(x, 'AccountId', y), 'Audit__c', concat(' Created ', 'Current_opportunity')) }}"
            ),
            ["AccountId", "Audit__c", "Current_opportunity"]
        );
        assert_eq!(parameter_reference("{{ parameters('webhook_url') }}"), Some("webhook_url"));
        assert_eq!(parameter_reference("{{ parameters('a') ~ 'b' }}"), None);
    }

    #[test]
    fn a_flow_names_what_it_queries_and_writes() {
        let flow = r#"
name: f
connections: {sf: salesforce}
parameters:
  url: {type: string, default: "https://x/hooks/f"}
trigger: {type: salesforce.poll, connection: sf, object: Opportunity, where: "Sync__c = true"}
actions:
  Get:
    type: salesforce.query
    connection: sf
    inputs: {soql: "SELECT Id, Account.Name FROM Opportunity WHERE Id = {{ x }}"}
  Branch:
    type: if
    condition: "{{ true }}"
    then:
      Write:
        type: salesforce.update_record
        inputs:
          sobject: Opportunity
          id: "{{ x }}"
          record: "{{ setProperty(outputs('Get'), 'Audit__c', 1) }}"
"#;
        let yaml: Yaml = serde_yaml::from_str(flow).unwrap();
        let mappings = Mappings::default();
        let mut usage = Usage::default();
        FlowScan::new(Path::new("f.yaml"), &yaml, &mappings).scan(&mut usage);
        let names: BTreeSet<String> = usage.salesforce.iter().map(SalesforceUse::display).collect();
        let expected: BTreeSet<String> = [
            "Opportunity",
            "Opportunity.Id",
            "Opportunity.CreatedDate",
            "Opportunity.SystemModstamp",
            "Opportunity.Sync__c",
            "Opportunity.Account.Name",
            "Opportunity.Audit__c",
        ]
        .into_iter()
        .map(str::to_string)
        .collect();
        assert_eq!(names, expected);
        let audit = usage.salesforce.iter().find(|u| u.field.as_deref() == Some("Audit__c")).unwrap();
        assert!(audit.write);
        assert_eq!(audit.connection.as_deref(), Some("salesforce"), "the flow's only connection");
        assert_eq!(usage.connections.keys().collect::<Vec<_>>(), ["salesforce"]);
    }
}
