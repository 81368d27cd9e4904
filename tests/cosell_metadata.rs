//! The Salesforce metadata of the co-sell solution (`flows/salesforce/`, SFDX source format)
//! matches the flows: every custom object, field and relationship the flows and mappings name
//! is defined there with the type the flows need, nothing there goes unused, the picklists hold
//! the values the mappings write, the permission set opens every field, and the sandbox org is
//! that metadata installed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use coflow::cosell::metadata::{self, Metadata};
use coflow::cosell::usage;
use coflow::sandbox::salesforce::describe;
use coflow::sandbox::salesforce::schema::Schema;
use serde_json::Value;

fn flows_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flows")
}

fn load() -> Metadata {
    metadata::load(&flows_dir().join("salesforce")).unwrap_or_else(|e| panic!("{e}"))
}

/// `Object.Field` → metadata type, for the fields the issue lists by name.
#[test]
fn the_custom_fields_and_the_microsoft_solutions_object_have_the_types_the_flows_need() {
    let metadata = load();
    let kinds: BTreeMap<String, String> =
        metadata.fields.iter().map(|f| (f.qualified(), f.kind.clone())).collect();
    let expected = [
        ("Opportunity.Sync_with_Partner_Center__c", "Checkbox"),
        ("Opportunity.Referral_Identifier__c", "Text"),
        ("Opportunity.Referral_Link__c", "Url"),
        ("Opportunity.How_can_Microsoft_help__c", "Picklist"),
        ("Opportunity.Products__c", "MultiselectPicklist"),
        ("Opportunity.Audit__c", "LongTextArea"),
        ("Opportunity.Last_Sync_Date__c", "DateTime"),
        ("Microsoft_Solution__c.Opportunity__c", "MasterDetail"),
        ("Microsoft_Solution__c.Solution_Id__c", "Text"),
        ("Microsoft_Solution__c.Publisher_Name__c", "Text"),
        ("Microsoft_Solution__c.Solution_Type__c", "Text"),
        ("Microsoft_Solution__c.Sync_with_Partner_Center__c", "Checkbox"),
    ];
    for (field, kind) in expected {
        assert_eq!(kinds.get(field).map(String::as_str), Some(kind), "{field}");
    }
    assert_eq!(kinds.len(), expected.len(), "fields: {kinds:?}");
    let identifier = metadata.field("Opportunity", "Referral_Identifier__c").unwrap();
    assert!(identifier.external_id && identifier.unique, "the sync finds Opportunities by it, one each");
    let lookup = metadata.field("Microsoft_Solution__c", "Opportunity__c").unwrap();
    assert_eq!(lookup.reference_to.as_deref(), Some("Opportunity"));
    assert_eq!(lookup.child_relationship().as_deref(), Some("Microsoft_Solutions__r"));
    let objects: Vec<&str> = metadata.objects.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(objects, ["Microsoft_Solution__c"]);
    let project: Value =
        serde_json::from_str(&std::fs::read_to_string(metadata.root.join("sfdx-project.json")).unwrap())
            .unwrap();
    let package = project["packageDirectories"][0]["path"].as_str().unwrap();
    assert!(metadata.root.join(package).join("main/default/objects").is_dir(), "{package}");
}

/// Every `…__c` / `…__r` name written anywhere in the flow and mapping files.
fn custom_names_in_files() -> BTreeMap<String, BTreeSet<String>> {
    let pattern = regex::Regex::new(r"\b[A-Za-z][A-Za-z0-9_]*__[cr]\b").unwrap();
    let mut files = usage::flow_files(&flows_dir()).unwrap();
    for entry in std::fs::read_dir(flows_dir().join("mappings")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let label = file.file_name().unwrap().to_string_lossy().into_owned();
        for found in pattern.find_iter(&text) {
            names.entry(found.as_str().to_string()).or_default().insert(label.clone());
        }
    }
    names
}

#[test]
fn every_custom_name_in_the_flows_is_in_the_metadata_and_every_metadata_name_is_used() {
    let metadata = load();
    let mut defined: BTreeSet<String> = metadata.objects.iter().map(|o| o.name.clone()).collect();
    defined.extend(metadata.fields.iter().map(|f| f.name.clone()));
    defined.extend(metadata.fields.iter().filter_map(|f| f.child_relationship()));
    let used = custom_names_in_files();
    let undefined: Vec<String> = used
        .iter()
        .filter(|(name, _)| !defined.contains(*name))
        .map(|(n, files)| format!("{n} ({files:?})"))
        .collect();
    assert!(undefined.is_empty(), "named by the flows but not in flows/salesforce: {undefined:?}");
    let unused: Vec<&String> = defined.iter().filter(|name| !used.contains_key(*name)).collect();
    assert!(unused.is_empty(), "in flows/salesforce but no flow or mapping names it: {unused:?}");
}

/// The object a use ends on, following a child relationship through the metadata; `None`
/// past a standard parent relationship (`Account.Name`), which no metadata defines.
fn object_of(metadata: &Metadata, found: &usage::SalesforceUse) -> Option<String> {
    if !found.parents.is_empty() {
        return None;
    }
    match &found.child {
        None => Some(found.object.clone()),
        Some(child) => {
            let lookup = metadata.child_lookup(&found.object, child);
            assert!(
                lookup.is_some() || !child.ends_with("__r"),
                "{} reads child relationship {child} of {}, which flows/salesforce does not define",
                found.source.display(),
                found.object
            );
            lookup.map(|l| l.object.clone())
        }
    }
}

#[test]
fn every_custom_field_a_flow_reads_or_writes_is_defined_on_that_object_and_each_is_used() {
    let metadata = load();
    let found = usage::scan(&flows_dir()).unwrap();
    let mut used: BTreeSet<String> = BTreeSet::new();
    for item in &found.salesforce {
        let Some(object) = object_of(&metadata, item) else { continue };
        if object.ends_with("__c") {
            assert!(
                metadata.object(&object).is_some(),
                "{}: object {object} has no metadata",
                item.source.display()
            );
        }
        let Some(field) = item.field.as_deref().filter(|f| f.ends_with("__c")) else { continue };
        assert!(
            metadata.field(&object, field).is_some(),
            "{} uses {object}.{field}, which flows/salesforce does not define",
            item.source.display()
        );
        used.insert(format!("{object}.{field}"));
    }
    let defined: BTreeSet<String> = metadata.fields.iter().map(|f| f.qualified()).collect();
    let unused: Vec<&String> = defined.difference(&used).collect();
    assert!(unused.is_empty(), "defined but read or written by no flow: {unused:?}");
    let written: BTreeSet<String> = found
        .salesforce
        .iter()
        .filter(|u| u.write && u.child.is_none())
        .filter_map(|u| Some(format!("{}.{}", u.object, u.field.as_deref()?)))
        .collect();
    for field in
        ["Opportunity.Referral_Identifier__c", "Opportunity.Audit__c", "Opportunity.Last_Sync_Date__c"]
    {
        assert!(written.contains(field), "{field} is written back by the flows: {written:?}");
    }
}

fn mapping_table(file: &str, table: &str) -> BTreeMap<String, String> {
    let path = flows_dir().join("mappings").join(file);
    let yaml: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    serde_yaml::from_value(yaml["lookups"][table].clone()).unwrap_or_else(|e| panic!("{file} {table}: {e}"))
}

#[test]
fn the_help_picklist_holds_every_value_the_mappings_write_and_read() {
    let metadata = load();
    let help: BTreeSet<String> =
        metadata.field("Opportunity", "How_can_Microsoft_help__c").unwrap().values.iter().cloned().collect();
    let written: BTreeSet<String> =
        mapping_table("referral_to_opportunity.yaml", "assistance_to_help").into_values().collect();
    let read: BTreeSet<String> =
        mapping_table("opportunity_to_referral.yaml", "help_to_assistance").into_keys().collect();
    assert_eq!(written, help, "referral_to_opportunity.yaml writes exactly the picklist's values");
    assert_eq!(read, help, "opportunity_to_referral.yaml reads every value of the picklist");
}

#[test]
fn the_permission_set_opens_every_custom_field_and_the_object() {
    let metadata = load();
    let set = metadata.permission_sets.first().expect("a permission set for the integration user");
    for field in &metadata.fields {
        // Master-detail fields are required, hence always visible; permission sets must leave them out.
        let listed = set.editable_fields.contains(&field.qualified());
        assert_eq!(listed, !field.is_master_detail(), "{} in {}", field.qualified(), set.path.display());
    }
    for object in &metadata.objects {
        assert!(set.readable_objects.contains(&object.name), "{}", object.name);
    }
}

#[test]
fn the_sandbox_org_is_the_metadata_installed() {
    let metadata = load();
    let schema = Schema::standard("a0X");
    for field in &metadata.fields {
        let object =
            &schema.objects[schema.object_index(&field.object).unwrap_or_else(|| panic!("{}", field.object))];
        let def =
            object.field(&field.name).unwrap_or_else(|| panic!("the sandbox lacks {}", field.qualified()));
        let described = describe::field(def);
        assert_eq!(described["type"], field.describe_type(), "{}", field.qualified());
        let values: Vec<&str> = described["picklistValues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["value"].as_str().unwrap())
            .collect();
        assert_eq!(
            values,
            field.values.iter().map(String::as_str).collect::<Vec<_>>(),
            "{}",
            field.qualified()
        );
        assert_eq!(described["externalId"], field.external_id, "{}", field.qualified());
    }
    let opportunity = &schema.objects[schema.object_index("Opportunity").unwrap()];
    assert!(opportunity.child_relationship("Microsoft_Solutions__r").is_some());
}

#[test]
fn a_broken_metadata_file_is_named() {
    let dir = std::env::temp_dir().join(format!("coflow-sfdx-{}", uuid::Uuid::now_v7()));
    let fields = dir.join(metadata::OBJECTS_DIR).join("Opportunity/fields");
    std::fs::create_dir_all(&fields).unwrap();
    assert!(matches!(metadata::load(&dir), Err(metadata::MetadataError::NotAProject { .. })));
    std::fs::write(dir.join("sfdx-project.json"), "{}").unwrap();
    std::fs::write(fields.join("X__c.field-meta.xml"), "<CustomField><fullName>X__c</fullName>").unwrap();
    let err = metadata::load(&dir).unwrap_err().to_string();
    assert!(err.contains("X__c.field-meta.xml") && err.contains("not well-formed"), "{err}");
    std::fs::write(
        fields.join("X__c.field-meta.xml"),
        "<CustomField><fullName>X__c</fullName></CustomField>",
    )
    .unwrap();
    let err = metadata::load(&dir).unwrap_err().to_string();
    assert!(err.contains("has no <type>"), "{err}");
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}

/// The Audit trail is trimmed to the length Salesforce declares for the field, so an append
/// never fails with STRING_TOO_LONG.
#[test]
fn the_audit_limit_of_the_sync_settings_is_the_declared_length_of_the_field() {
    let field = flows_dir()
        .join("salesforce/force-app/main/default/objects/Opportunity/fields/Audit__c.field-meta.xml");
    let xml = std::fs::read_to_string(field).unwrap();
    let declared: usize = xml
        .split("<length>")
        .nth(1)
        .and_then(|rest| rest.split("</length>").next())
        .and_then(|n| n.trim().parse().ok())
        .expect("Audit__c declares its length");
    let settings = coflow::expr::SyncSettings::load_for(&flows_dir()).unwrap();
    assert_eq!(settings.audit.max_length, declared);
    assert_eq!(
        coflow::expr::SyncSettings::default().audit.max_length,
        declared,
        "the default when the file is absent"
    );
}
