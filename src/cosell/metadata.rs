//! The Salesforce customisation the co-sell flows need, read from its SFDX source
//! (`flows/salesforce/`): custom objects, custom fields and the permission set that lets the
//! integration user see them.
//!
//! Only what the checks need is read: names, types, lookups, picklist values and which fields
//! the permission set opens. Each item keeps the file it came from, so a report can say which
//! file installs what is missing.

use std::path::{Path, PathBuf};

use quick_xml::events::Event;

/// Where the objects live below the SFDX project folder.
pub const OBJECTS_DIR: &str = "force-app/main/default/objects";
/// Where the permission sets live below the SFDX project folder.
pub const PERMISSION_SETS_DIR: &str = "force-app/main/default/permissionsets";

/// Why the metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// A file or folder cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not well-formed XML.
    #[error("{} is not well-formed XML: {message}", path.display())]
    Xml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A file lacks an element every such file has.
    #[error("{} has no <{element}>: is it an SFDX {kind} file?", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// The element.
        element: &'static str,
        /// What kind of file it should be.
        kind: &'static str,
    },
    /// The folder is not an SFDX project.
    #[error("{} is not an SFDX project: it has no sfdx-project.json (expected the flows' salesforce/ folder)", path.display())]
    NotAProject {
        /// The folder.
        path: PathBuf,
    },
}

/// A custom object (`Microsoft_Solution__c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectDef {
    /// API name.
    pub name: String,
    /// Singular label.
    pub label: String,
    /// The `.object-meta.xml` file.
    pub path: PathBuf,
}

/// A custom field (`Opportunity.Audit__c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    /// The object it belongs to.
    pub object: String,
    /// API name.
    pub name: String,
    /// Label shown to users.
    pub label: String,
    /// Metadata type: `Checkbox`, `Text`, `Picklist`, `MasterDetail`...
    pub kind: String,
    /// Target of a lookup or master-detail field.
    pub reference_to: Option<String>,
    /// Relationship name of a lookup (`Microsoft_Solutions`; queries say `Microsoft_Solutions__r`).
    pub relationship_name: Option<String>,
    /// An external id.
    pub external_id: bool,
    /// Values must be unique.
    pub unique: bool,
    /// Picklist values (API names), in order.
    pub values: Vec<String>,
    /// The `.field-meta.xml` file.
    pub path: PathBuf,
}

impl FieldDef {
    /// `Object.Field`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.object, self.name)
    }

    /// The `type` an sObject describe gives this field.
    pub fn describe_type(&self) -> &'static str {
        match self.kind.as_str() {
            "Checkbox" => "boolean",
            "Text" => "string",
            "TextArea" | "LongTextArea" | "Html" => "textarea",
            "Picklist" => "picklist",
            "MultiselectPicklist" => "multipicklist",
            "Url" => "url",
            "Email" => "email",
            "Phone" => "phone",
            "Date" => "date",
            "DateTime" => "datetime",
            "Number" => "double",
            "Currency" => "currency",
            "Percent" => "percent",
            "Lookup" | "MasterDetail" => "reference",
            _ => "anyType",
        }
    }

    /// The child relationship name a lookup gives its parent in queries (`Microsoft_Solutions__r`).
    pub fn child_relationship(&self) -> Option<String> {
        self.relationship_name.as_ref().map(|name| format!("{name}__r"))
    }

    /// A master-detail field: always visible and required, so permission sets leave it out.
    pub fn is_master_detail(&self) -> bool {
        self.kind == "MasterDetail"
    }
}

/// A permission set and what it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionSetDef {
    /// API name (the file name).
    pub name: String,
    /// `Object.Field` entries readable and editable through it.
    pub editable_fields: Vec<String>,
    /// `Object.Field` entries readable through it.
    pub readable_fields: Vec<String>,
    /// Objects it lets users read.
    pub readable_objects: Vec<String>,
    /// The `.permissionset-meta.xml` file.
    pub path: PathBuf,
}

/// Everything read from one SFDX project.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// The project folder (the one with `sfdx-project.json`).
    pub root: PathBuf,
    /// Custom objects.
    pub objects: Vec<ObjectDef>,
    /// Custom fields, of standard and custom objects.
    pub fields: Vec<FieldDef>,
    /// Permission sets.
    pub permission_sets: Vec<PermissionSetDef>,
}

impl Metadata {
    /// The custom object called `name` (case-insensitive).
    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.objects.iter().find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// The field `object.name` (case-insensitive).
    pub fn field(&self, object: &str, name: &str) -> Option<&FieldDef> {
        self.fields
            .iter()
            .find(|f| f.object.eq_ignore_ascii_case(object) && f.name.eq_ignore_ascii_case(name))
    }

    /// The lookup whose child relationship on `parent` is `relationship` (`Microsoft_Solutions__r`).
    pub fn child_lookup(&self, parent: &str, relationship: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| {
            f.reference_to.as_deref().is_some_and(|target| target.eq_ignore_ascii_case(parent))
                && f.child_relationship().is_some_and(|r| r.eq_ignore_ascii_case(relationship))
        })
    }

    /// The folder that installs an object: its object file's folder.
    pub fn object_folder(&self, name: &str) -> Option<PathBuf> {
        self.object(name).and_then(|o| o.path.parent().map(Path::to_path_buf))
    }
}

/// Reads the SFDX project at `root`.
pub fn load(root: &Path) -> Result<Metadata, MetadataError> {
    if !root.join("sfdx-project.json").is_file() {
        return Err(MetadataError::NotAProject { path: root.to_path_buf() });
    }
    let mut metadata = Metadata { root: root.to_path_buf(), ..Metadata::default() };
    let objects_dir = root.join(OBJECTS_DIR);
    for object_dir in sorted_entries(&objects_dir)?.into_iter().filter(|p| p.is_dir()) {
        let object = file_name(&object_dir);
        let object_file = object_dir.join(format!("{object}.object-meta.xml"));
        if object_file.is_file() {
            metadata.objects.push(read_object(&object, &object_file)?);
        }
        let fields_dir = object_dir.join("fields");
        if !fields_dir.is_dir() {
            continue;
        }
        for path in sorted_entries(&fields_dir)? {
            if file_name(&path).ends_with(".field-meta.xml") {
                metadata.fields.push(read_field(&object, &path)?);
            }
        }
    }
    let sets_dir = root.join(PERMISSION_SETS_DIR);
    if sets_dir.is_dir() {
        for path in sorted_entries(&sets_dir)? {
            if file_name(&path).ends_with(".permissionset-meta.xml") {
                metadata.permission_sets.push(read_permission_set(&path)?);
            }
        }
    }
    Ok(metadata)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, MetadataError> {
    let io = |source| MetadataError::Io { path: dir.to_path_buf(), source };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        paths.push(entry.map_err(io)?.path());
    }
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn read_object(name: &str, path: &Path) -> Result<ObjectDef, MetadataError> {
    let root = read_xml(path)?;
    let label = root.text("label").ok_or(missing(path, "label", "CustomObject"))?;
    Ok(ObjectDef { name: name.to_string(), label: label.to_string(), path: path.to_path_buf() })
}

fn read_field(object: &str, path: &Path) -> Result<FieldDef, MetadataError> {
    let root = read_xml(path)?;
    let name = root.text("fullName").ok_or(missing(path, "fullName", "CustomField"))?;
    let kind = root.text("type").ok_or(missing(path, "type", "CustomField"))?;
    let values = root
        .child("valueSet")
        .and_then(|set| set.child("valueSetDefinition"))
        .map(|definition| {
            definition
                .children_named("value")
                .filter_map(|v| v.text("fullName"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(FieldDef {
        object: object.to_string(),
        name: name.to_string(),
        label: root.text("label").unwrap_or(name).to_string(),
        kind: kind.to_string(),
        reference_to: root.text("referenceTo").map(str::to_string),
        relationship_name: root.text("relationshipName").map(str::to_string),
        external_id: root.text("externalId") == Some("true"),
        unique: root.text("unique") == Some("true"),
        values,
        path: path.to_path_buf(),
    })
}

fn read_permission_set(path: &Path) -> Result<PermissionSetDef, MetadataError> {
    let root = read_xml(path)?;
    let name = file_name(path).trim_end_matches(".permissionset-meta.xml").to_string();
    let mut set = PermissionSetDef {
        name,
        editable_fields: Vec::new(),
        readable_fields: Vec::new(),
        readable_objects: Vec::new(),
        path: path.to_path_buf(),
    };
    for permission in root.children_named("fieldPermissions") {
        let Some(field) = permission.text("field") else { continue };
        if permission.text("readable") == Some("true") {
            set.readable_fields.push(field.to_string());
        }
        if permission.text("editable") == Some("true") {
            set.editable_fields.push(field.to_string());
        }
    }
    for permission in root.children_named("objectPermissions") {
        if permission.text("allowRead") == Some("true") {
            if let Some(object) = permission.text("object") {
                set.readable_objects.push(object.to_string());
            }
        }
    }
    Ok(set)
}

fn missing(path: &Path, element: &'static str, kind: &'static str) -> MetadataError {
    MetadataError::Missing { path: path.to_path_buf(), element, kind }
}

/// One XML element: its local name, its text (trimmed) and its child elements.
#[derive(Debug, Default)]
struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child called `name`.
    fn text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

fn read_xml(path: &Path) -> Result<Element, MetadataError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| MetadataError::Io { path: path.to_path_buf(), source })?;
    parse_xml(&text).map_err(|message| MetadataError::Xml { path: path.to_path_buf(), message })
}

/// Parses a document into its root element. Metadata files are small, so a tree is simplest.
fn parse_xml(text: &str) -> Result<Element, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    // The open elements, innermost last; the bottom one collects the root.
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                stack.push(Element { name, ..Element::default() });
            }
            Event::Empty(empty) => {
                let name = String::from_utf8_lossy(empty.local_name().as_ref()).into_owned();
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(Element { name, ..Element::default() });
                }
            }
            Event::End(_) => {
                let mut done = stack.pop().ok_or("an end tag closes nothing")?;
                done.text = done.text.trim().to_string();
                stack.last_mut().ok_or("an end tag closes nothing")?.children.push(done);
            }
            Event::Text(text) => push_text(&mut stack, &text.decode().map_err(|e| e.to_string())?),
            Event::CData(data) => push_text(&mut stack, &data.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => named_entity(&reference.decode().map_err(|e| e.to_string())?)?.to_string(),
                };
                push_text(&mut stack, &resolved);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err("the document ends inside an element".into());
    }
    stack
        .pop()
        .and_then(|document| document.children.into_iter().next())
        .ok_or_else(|| "no root element".into())
}

fn push_text(stack: &mut [Element], text: &str) {
    if let Some(open) = stack.last_mut() {
        open.text.push_str(text);
    }
}

fn named_entity(name: &str) -> Result<&'static str, String> {
    match name {
        "amp" => Ok("&"),
        "lt" => Ok("<"),
        "gt" => Ok(">"),
        "quot" => Ok("\""),
        "apos" => Ok("'"),
        other => Err(format!("unknown entity &{other};")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_entities_and_nesting() {
        let root = parse_xml(
            "<?xml version=\"1.0\"?>\n<CustomField xmlns=\"x\"><fullName>A__c</fullName>\
             <description>Tom &amp; Jerry &#x2714; <![CDATA[<raw>]]></description><empty/>\
             <valueSet><valueSetDefinition><value><fullName>One</fullName></value>\
             <value><fullName>Two</fullName></value></valueSetDefinition></valueSet></CustomField>",
        )
        .unwrap();
        assert_eq!(root.name, "CustomField");
        assert_eq!(root.text("fullName"), Some("A__c"));
        assert_eq!(root.text("description"), Some("Tom & Jerry ✔ <raw>"));
        assert_eq!(root.text("empty"), Some(""));
        let values: Vec<&str> =
            root.children[3].children[0].children_named("value").filter_map(|v| v.text("fullName")).collect();
        assert_eq!(values, ["One", "Two"]);
    }

    #[test]
    fn broken_xml_is_an_error() {
        assert!(parse_xml("<a><b></a>").is_err());
        assert!(parse_xml("<a>").is_err());
        assert!(parse_xml("<a>&nope;</a>").is_err());
    }

    #[test]
    fn describe_types_of_metadata_types() {
        let field = |kind: &str| FieldDef {
            object: "Opportunity".into(),
            name: "X__c".into(),
            label: "X".into(),
            kind: kind.into(),
            reference_to: None,
            relationship_name: Some("Things".into()),
            external_id: false,
            unique: false,
            values: Vec::new(),
            path: PathBuf::new(),
        };
        assert_eq!(field("LongTextArea").describe_type(), "textarea");
        assert_eq!(field("MultiselectPicklist").describe_type(), "multipicklist");
        assert_eq!(field("MasterDetail").describe_type(), "reference");
        assert_eq!(field("MasterDetail").child_relationship().as_deref(), Some("Things__r"));
    }
}
