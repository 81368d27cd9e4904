//! Sync controls: the file `settings/sync.yaml` beside the flows, and the functions the co-sell
//! flows read it with.
//!
//! ```yaml
//! directions:                 # per object: bidirectional (default), salesforce_to_partner_center,
//!   opportunity: bidirectional #   partner_center_to_salesforce or off
//!   lead: off
//! integration_user: 005000000000001AAA   # its changes are never sent back
//! audit: {max_entries: 20, max_length: 131072}
//! conflicts: {default: newest_wins}
//! fields:                      # Opportunity fields kept in step both ways
//!   Amount: {partner_center: [/details/dealValue]}
//!   StageName: {partner_center: [/status, /substatus], conflict: partner_center_wins}
//! ```
//!
//! The file is read with each flow, so `coflow serve` applies a change at its next reload, without
//! a restart. A missing file means the defaults below. The functions:
//!
//! - `sync_allows('opportunity', 'salesforce_to_partner_center')`: whether that direction is on;
//! - `is_integration_user(user_id)`: whether the id is the configured integration user (15- and
//!   18-character Salesforce ids compare equal);
//! - `audit_append(existing, entry)`: the Audit text with `entry` added, keeping the last
//!   `max_entries` entries within `max_length` characters;
//! - `index_by(list, 'key')`: an object of the list's items by their `key` property;
//! - `pair_by({'opportunity': [list, 'Referral_Identifier__c'], 'referral': [list, 'id']})`:
//!   the items of several lists matched by key, one `{"key", "opportunity", "referral"}` per
//!   key (null where a list has none), in one pass however long the lists;
//! - `sync_plan(referral, opportunity, referral_as_opportunity, opportunity_as_referral)`: what
//!   to write on each side to bring a pair back in step (see [`plan`]).

pub mod plan;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use minijinja::value::Value as JinjaValue;
use minijinja::{Environment, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::template::{invalid, scope_handle};
use super::values::{from_json_owned, text, to_json};

/// Where the settings live, relative to the folder of the flows.
pub const SETTINGS_FILE: &str = "settings/sync.yaml";

/// The names this module provides.
pub(crate) const NAMES: &[&str] =
    &["sync_allows", "is_integration_user", "audit_append", "index_by", "pair_by", "sync_plan"];

/// The synchronised objects a direction can be set for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SyncObject {
    /// Opportunities and their referrals.
    Opportunity,
    /// Leads shared as referrals.
    Lead,
    /// Microsoft Solutions sent as the referral's solutions.
    MicrosoftSolution,
}

impl SyncObject {
    /// Every object, by the name the settings and `sync_allows()` use.
    pub const ALL: [(&'static str, SyncObject); 3] = [
        ("opportunity", SyncObject::Opportunity),
        ("lead", SyncObject::Lead),
        ("microsoft_solution", SyncObject::MicrosoftSolution),
    ];

    /// The object named `name`.
    pub fn parse(name: &str) -> Option<SyncObject> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, o)| *o)
    }
}

/// Which way changes of an object flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Both ways (the default).
    #[default]
    Bidirectional,
    /// Salesforce changes reach Partner Center; Partner Center changes are not written to Salesforce.
    SalesforceToPartnerCenter,
    /// Partner Center changes reach Salesforce; Salesforce changes are not sent to Partner Center.
    PartnerCenterToSalesforce,
    /// Nothing is written either way.
    Off,
}

impl Direction {
    /// The names `sync_allows()` takes for its second argument.
    pub const WAYS: [&'static str; 2] = ["salesforce_to_partner_center", "partner_center_to_salesforce"];

    /// Whether changes may flow the way `way` (one of [`Self::WAYS`]) names.
    pub fn allows(self, way: Way) -> bool {
        matches!(
            (self, way),
            (Direction::Bidirectional, _)
                | (Direction::SalesforceToPartnerCenter, Way::ToPartnerCenter)
                | (Direction::PartnerCenterToSalesforce, Way::ToSalesforce)
        )
    }
}

/// One way a change can travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// From Salesforce to Partner Center.
    ToPartnerCenter,
    /// From Partner Center to Salesforce.
    ToSalesforce,
}

impl Way {
    fn parse(name: &str) -> Option<Way> {
        match name {
            "salesforce_to_partner_center" => Some(Way::ToPartnerCenter),
            "partner_center_to_salesforce" => Some(Way::ToSalesforce),
            _ => None,
        }
    }
}

/// Who wins when both sides changed a field since the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The side changed most recently (the default).
    #[default]
    NewestWins,
    /// Partner Center's value is kept.
    PartnerCenterWins,
    /// Salesforce's value is kept.
    SalesforceWins,
}

/// How the Audit field is kept within its length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// At most this many entries (lines) are kept, the newest.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// The field's declared length, in characters.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings { max_entries: default_max_entries(), max_length: default_max_length() }
    }
}

fn default_max_entries() -> usize {
    50
}

/// `Audit__c` is a long text area of 131,072 characters in the SFDX metadata.
fn default_max_length() -> usize {
    131_072
}

/// Conflict policies: a default and exceptions per field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConflictSettings {
    /// The policy of fields that do not name one.
    #[serde(default)]
    pub default: ConflictPolicy,
}

/// An Opportunity field kept in step with Partner Center both ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSync {
    /// JSON pointers of the referral values the field corresponds to (`/details/dealValue`).
    pub partner_center: Vec<String>,
    /// This field's conflict policy, if not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictPolicy>,
}

/// The contents of `settings/sync.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// Direction per object; objects not listed sync both ways.
    #[serde(default)]
    pub directions: BTreeMap<SyncObject, Direction>,
    /// Id of the Salesforce user coflow signs in as: changes it made are not sent back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_user: Option<String>,
    /// How much of the Audit trail is kept.
    #[serde(default)]
    pub audit: AuditSettings,
    /// Who wins a conflict.
    #[serde(default)]
    pub conflicts: ConflictSettings,
    /// Opportunity fields kept in step both ways, with the referral values they correspond to.
    #[serde(default = "default_fields")]
    pub fields: IndexMap<String, FieldSync>,
    /// Salesforce stamps `LastModifiedDate` when coflow writes `Last_Sync_Date__c`, a moment
    /// later: a modification within this many seconds after the stamp is taken for that write.
    #[serde(default = "default_grace")]
    pub own_write_grace_seconds: u32,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            directions: BTreeMap::new(),
            integration_user: None,
            audit: AuditSettings::default(),
            conflicts: ConflictSettings::default(),
            fields: default_fields(),
            own_write_grace_seconds: default_grace(),
        }
    }
}

fn default_grace() -> u32 {
    60
}

/// The fields both mappings carry: deal value, closing date, notes and stage.
fn default_fields() -> IndexMap<String, FieldSync> {
    let field = |paths: &[&str], conflict| FieldSync {
        partner_center: paths.iter().map(|p| p.to_string()).collect(),
        conflict,
    };
    IndexMap::from([
        ("Amount".to_string(), field(&["/details/dealValue"], None)),
        ("CloseDate".to_string(), field(&["/details/closingDateTime"], None)),
        ("Description".to_string(), field(&["/details/notes"], None)),
        ("StageName".to_string(), field(&["/status", "/substatus"], None)),
    ])
}

/// A settings file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SyncSettingsError {
    /// The file exists but cannot be read.
    #[error("{}: cannot read the sync settings: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid YAML or has the wrong shape.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl SyncSettings {
    /// Reads the settings of the flows in `flows_dir`; the defaults when the file does not exist.
    pub fn load_for(flows_dir: &Path) -> Result<SyncSettings, SyncSettingsError> {
        let path = flows_dir.join(SETTINGS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SyncSettings::default()),
            Err(source) => Err(SyncSettingsError::Io { path, source }),
        }
    }

    /// Reads settings from YAML text; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<SyncSettings, SyncSettingsError> {
        if text.trim().is_empty() {
            return Ok(SyncSettings::default());
        }
        let settings: SyncSettings = serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            SyncSettingsError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: format!("{e} (see the comments at the top of the file for what each key takes)"),
            }
        })?;
        settings.check().map_err(|message| SyncSettingsError::Invalid {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message,
        })?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), String> {
        if self.audit.max_entries == 0 || self.audit.max_length < 80 {
            return Err("audit: max_entries must be at least 1 and max_length at least 80".into());
        }
        for (field, sync) in &self.fields {
            if sync.partner_center.is_empty() {
                return Err(format!("fields.{field}: list at least one referral path in `partner_center`"));
            }
            if let Some(bad) = sync.partner_center.iter().find(|p| !p.starts_with('/')) {
                return Err(format!(
                    "fields.{field}: `{bad}` is not a JSON pointer: write it as /details/dealValue"
                ));
            }
        }
        Ok(())
    }

    /// The direction set for `object`.
    pub fn direction(&self, object: SyncObject) -> Direction {
        self.directions.get(&object).copied().unwrap_or_default()
    }

    /// The conflict policy of an Opportunity field.
    pub fn policy(&self, field: &str) -> ConflictPolicy {
        self.fields.get(field).and_then(|f| f.conflict).unwrap_or(self.conflicts.default)
    }

    /// Whether `user_id` is the configured integration user.
    pub fn is_integration_user(&self, user_id: &str) -> bool {
        let Some(configured) = self.integration_user.as_deref().filter(|u| !u.is_empty()) else {
            return false;
        };
        // An 18-character id is the 15-character one plus a case-safe suffix.
        let short = |id: &str| id.get(..15).unwrap_or(id).to_string();
        !user_id.is_empty() && short(configured) == short(user_id)
    }

    /// `existing` with `entry` appended, keeping the newest entries that fit the limits. An
    /// entry longer than the field on its own is shortened, ending in `…`.
    pub fn audit_append(&self, existing: &str, entry: &str) -> String {
        let max = self.audit.max_length;
        let mut entry: String = entry.replace(['\r', '\n'], " ");
        if entry.chars().count() > max {
            entry = entry.chars().take(max - 1).collect::<String>() + "…";
        }
        let mut kept: Vec<&str> = vec![&entry];
        let mut length = entry.chars().count();
        for line in existing.lines().rev().filter(|l| !l.trim().is_empty()) {
            let with = length + 1 + line.chars().count();
            if kept.len() >= self.audit.max_entries || with > max {
                break;
            }
            kept.push(line);
            length = with;
        }
        kept.reverse();
        kept.join("\n")
    }
}

/// Adds the sync functions to the environment.
pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_function("sync_allows", |state: &State, object: String, way: String| {
        let settings = settings(state)?;
        let object = SyncObject::parse(&object).ok_or_else(|| {
            let known: Vec<&str> = SyncObject::ALL.iter().map(|(n, _)| *n).collect();
            invalid(format!("sync_allows(): unknown object '{object}' (known: {})", known.join(", ")))
        })?;
        let way = Way::parse(&way).ok_or_else(|| {
            invalid(format!(
                "sync_allows(): the direction is one of {}, not '{way}'",
                Direction::WAYS.join(", ")
            ))
        })?;
        Ok(settings.direction(object).allows(way))
    });
    env.add_function("is_integration_user", |state: &State, user: JinjaValue| {
        let settings = settings(state)?;
        Ok(settings.is_integration_user(&text(&to_json(&user))))
    });
    env.add_function("audit_append", |state: &State, existing: JinjaValue, entry: JinjaValue| {
        let settings = settings(state)?;
        Ok(settings.audit_append(&text(&to_json(&existing)), &text(&to_json(&entry))))
    });
    env.add_function("index_by", |list: JinjaValue, key: String| index_by(&to_json(&list), &key));
    env.add_function("pair_by", |sides: JinjaValue| pair_by(&to_json(&sides)));
    env.add_function(
        "sync_plan",
        |state: &State,
         referral: JinjaValue,
         opportunity: JinjaValue,
         as_opportunity: JinjaValue,
         as_referral: JinjaValue| {
            let settings = settings(state)?;
            let pair = plan::Pair {
                referral: &to_json(&referral),
                opportunity: &to_json(&opportunity),
                referral_as_opportunity: &to_json(&as_opportunity),
                opportunity_as_referral: &to_json(&as_referral),
            };
            let plan = plan::plan(&settings, &pair);
            Ok(from_json_owned(serde_json::to_value(plan).unwrap_or(Value::Null)))
        },
    );
}

/// The settings of the run rendering the template.
fn settings(state: &State) -> Result<std::sync::Arc<SyncSettings>, minijinja::Error> {
    Ok(scope_handle(state)?.scope.sync_settings())
}

/// `index_by(list, 'key')`: `{key value: item}` for each item with that property; the first
/// item wins when two share a key.
fn index_by(list: &Value, key: &str) -> Result<JinjaValue, minijinja::Error> {
    let Value::Array(items) = list else {
        return Err(invalid(format!("index_by() takes a list, not {}", super::values::type_name(list))));
    };
    let mut index = serde_json::Map::new();
    for item in items {
        if let Some(k) = item.get(key).filter(|k| !k.is_null()) {
            index.entry(text(k).into_owned()).or_insert_with(|| item.clone());
        }
    }
    Ok(from_json_owned(Value::Object(index)))
}

/// `pair_by({name: [list, 'key'], …})`: one object per key found in any list, with the key
/// and each list's first item of that key under the list's name (null when it has none).
fn pair_by(sides: &Value) -> Result<JinjaValue, minijinja::Error> {
    let usage = "pair_by() takes an object of name: [list, 'key property'], e.g. {'opportunity': [opportunities, 'Referral_Identifier__c'], 'referral': [referrals, 'id']}";
    let Value::Object(sides) = sides else { return Err(invalid(usage.into())) };
    let mut pairs: IndexMap<String, serde_json::Map<String, Value>> = IndexMap::new();
    for (name, side) in sides {
        let (Some(Value::Array(items)), Some(Value::String(key))) = (side.get(0), side.get(1)) else {
            return Err(invalid(format!("{usage}; '{name}' is not [list, 'key property']")));
        };
        for item in items {
            let Some(k) = item.get(key).filter(|k| !k.is_null()) else { continue };
            let pair = pairs.entry(text(k).into_owned()).or_default();
            pair.entry(name.clone()).or_insert_with(|| item.clone());
        }
    }
    let names: Vec<&String> = sides.keys().collect();
    let list: Vec<Value> = pairs
        .into_iter()
        .map(|(key, mut found)| {
            let mut pair = serde_json::Map::new();
            pair.insert("key".into(), Value::String(key));
            for name in &names {
                pair.insert((*name).clone(), found.remove(*name).unwrap_or(Value::Null));
            }
            Value::Object(pair)
        })
        .collect();
    Ok(from_json_owned(Value::Array(list)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> SyncSettings {
        SyncSettings::parse(yaml, Path::new("sync.yaml")).unwrap()
    }

    #[test]
    fn directions_default_to_both_ways() {
        let s = settings("directions: {lead: off, opportunity: partner_center_to_salesforce}");
        assert!(s.direction(SyncObject::MicrosoftSolution).allows(Way::ToPartnerCenter));
        assert!(!s.direction(SyncObject::Lead).allows(Way::ToSalesforce));
        assert!(s.direction(SyncObject::Opportunity).allows(Way::ToSalesforce));
        assert!(!s.direction(SyncObject::Opportunity).allows(Way::ToPartnerCenter));
    }

    #[test]
    fn a_misspelt_key_names_its_place() {
        let err = SyncSettings::parse("directions:\n  oportunity: off\n", Path::new("s.yaml")).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("s.yaml:2:"), "{message}");
        assert!(message.contains("opportunity"), "{message}");
    }

    #[test]
    fn integration_user_ids_compare_by_their_first_fifteen_characters() {
        let s = settings("integration_user: 005000000000001AAA");
        assert!(s.is_integration_user("005000000000001"));
        assert!(s.is_integration_user("005000000000001AAA"));
        assert!(!s.is_integration_user("005000000000002AAA"));
        assert!(!SyncSettings::default().is_integration_user("005000000000001AAA"));
    }

    #[test]
    fn audit_keeps_the_newest_entries_within_both_limits() {
        let s = settings("audit: {max_entries: 3, max_length: 100}");
        let mut audit = String::new();
        for i in 0..10 {
            audit = s.audit_append(&audit, &format!("entry {i}"));
        }
        assert_eq!(audit, "entry 7\nentry 8\nentry 9");
        let long = "x".repeat(60);
        let audit = s.audit_append(&s.audit_append("old", &long), &long);
        assert_eq!(audit.lines().count(), 1, "two 60-character entries do not fit in 100");
        let huge = s.audit_append("", &"y".repeat(500));
        assert_eq!(huge.chars().count(), 100);
        assert!(huge.ends_with('…'));
    }

    #[test]
    fn paths_must_be_json_pointers() {
        let err =
            SyncSettings::parse("fields: {Amount: {partner_center: [details.dealValue]}}", Path::new("s"));
        assert!(err.unwrap_err().to_string().contains("/details/dealValue"));
    }

    #[test]
    fn pair_by_matches_lists_by_key_with_nulls_for_the_missing_side() {
        let sides = serde_json::json!({
            "opportunity": [[{"Id": "o1", "Ref": "r1"}, {"Id": "o2", "Ref": "r2"}, {"Id": "o3"}], "Ref"],
            "referral": [[{"id": "r2"}, {"id": "r3"}], "id"],
        });
        let pairs = to_json(&pair_by(&sides).unwrap());
        assert_eq!(
            pairs,
            serde_json::json!([
                {"key": "r1", "opportunity": {"Id": "o1", "Ref": "r1"}, "referral": null},
                {"key": "r2", "opportunity": {"Id": "o2", "Ref": "r2"}, "referral": {"id": "r2"}},
                {"key": "r3", "opportunity": null, "referral": {"id": "r3"}},
            ])
        );
        assert!(pair_by(&serde_json::json!({"x": [1, "id"]})).is_err());
    }

    #[test]
    fn index_by_keys_items_by_a_property() {
        let list = serde_json::json!([{"id": "a", "n": 1}, {"id": "b"}, {"id": "a", "n": 2}, {"x": 1}]);
        let index = to_json(&index_by(&list, "id").unwrap());
        assert_eq!(index, serde_json::json!({"a": {"id": "a", "n": 1}, "b": {"id": "b"}}));
    }
}
