//! The org's data model: which objects exist, their fields, and how they relate.
//!
//! Standard objects follow the Salesforce object reference; the co-sell custom fields and the
//! Microsoft Solutions object follow Microsoft's Partner Center package, whose exact picklist
//! values are not published (marked [inferred] below and easy to change here).

use std::collections::HashMap;
use std::sync::Arc;

/// Field data types, as `describe` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Record id.
    Id,
    /// Short text.
    String,
    /// Long text.
    Textarea,
    /// Single-select picklist.
    Picklist,
    /// Multi-select picklist (`;`-separated).
    MultiPicklist,
    /// Checkbox.
    Boolean,
    /// Integer.
    Int,
    /// Decimal.
    Double,
    /// Money.
    Currency,
    /// Percentage.
    Percent,
    /// Calendar date.
    Date,
    /// Instant.
    DateTime,
    /// Email address.
    Email,
    /// Phone number.
    Phone,
    /// Web address.
    Url,
    /// Lookup to another record.
    Reference,
}

impl FieldType {
    /// The `type` value in describe.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Textarea => "textarea",
            FieldType::Picklist => "picklist",
            FieldType::MultiPicklist => "multipicklist",
            FieldType::Boolean => "boolean",
            FieldType::Int => "int",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Reference => "reference",
        }
    }

    /// The `soapType` value in describe.
    pub fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Int => "xsd:int",
            FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
            FieldType::Date => "xsd:date",
            FieldType::DateTime => "xsd:dateTime",
            _ => "xsd:string",
        }
    }

    /// Whether values are text on the wire.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::Id
                | FieldType::String
                | FieldType::Textarea
                | FieldType::Picklist
                | FieldType::MultiPicklist
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Reference
        )
    }

    /// Whether values are numbers.
    pub fn is_number(self) -> bool {
        matches!(self, FieldType::Int | FieldType::Double | FieldType::Currency | FieldType::Percent)
    }
}

/// One field of an object.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// API name.
    pub name: String,
    /// Label shown to users (and used in some error messages).
    pub label: String,
    /// Data type.
    pub ftype: FieldType,
    /// Maximum characters of text fields.
    pub length: u32,
    /// Digits of numbers.
    pub precision: u32,
    /// Digits after the decimal point.
    pub scale: u32,
    /// Settable on insert.
    pub createable: bool,
    /// Settable on update.
    pub updateable: bool,
    /// May be null.
    pub nillable: bool,
    /// Filled in by the server when absent on insert.
    pub defaulted_on_create: bool,
    /// A custom (`__c`) field.
    pub custom: bool,
    /// Usable as an upsert key.
    pub external_id: bool,
    /// Values must be unique.
    pub unique: bool,
    /// Picklist values (shared so stored records point at one copy).
    pub picklist: Vec<Arc<str>>,
    /// Picklist value selected when none is given.
    pub default_picklist: Option<Arc<str>>,
    /// Only listed picklist values are accepted.
    pub restricted: bool,
    /// Objects a reference points to.
    pub reference_to: Vec<String>,
    /// Name of the parent relationship (`Account` for `AccountId`).
    pub relationship_name: Option<String>,
    /// Name of the child relationship this lookup creates on its parent.
    pub child_relationship: Option<String>,
    /// Deleting the parent deletes this record.
    pub cascade_delete: bool,
    /// The object's name field.
    pub name_field: bool,
    /// Computed by the server (formula or derived).
    pub calculated: bool,
}

impl FieldDef {
    fn new(name: &str, label: &str, ftype: FieldType) -> Self {
        let (length, precision, scale) = match ftype {
            FieldType::Id | FieldType::Reference => (18, 0, 0),
            FieldType::String | FieldType::Email | FieldType::Picklist => (255, 0, 0),
            FieldType::Url => (255, 0, 0),
            FieldType::Phone => (40, 0, 0),
            FieldType::Textarea => (32000, 0, 0),
            FieldType::MultiPicklist => (4099, 0, 0),
            FieldType::Currency => (0, 18, 2),
            FieldType::Double => (0, 18, 2),
            FieldType::Percent => (0, 3, 0),
            FieldType::Int => (0, 9, 0),
            _ => (0, 0, 0),
        };
        FieldDef {
            name: name.to_string(),
            label: label.to_string(),
            ftype,
            length,
            precision,
            scale,
            createable: true,
            updateable: true,
            nillable: true,
            defaulted_on_create: false,
            custom: name.ends_with("__c"),
            external_id: false,
            unique: false,
            picklist: Vec::new(),
            default_picklist: None,
            restricted: false,
            reference_to: Vec::new(),
            relationship_name: None,
            child_relationship: None,
            cascade_delete: false,
            name_field: false,
            calculated: false,
        }
    }

    fn len(mut self, length: u32) -> Self {
        self.length = length;
        self
    }

    fn required(mut self) -> Self {
        self.nillable = false;
        self
    }

    fn read_only(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self.defaulted_on_create = true;
        self
    }

    fn create_only(mut self) -> Self {
        self.updateable = false;
        self
    }

    fn defaulted(mut self) -> Self {
        self.defaulted_on_create = true;
        self
    }

    fn derived(mut self) -> Self {
        self.calculated = true;
        self.read_only()
    }

    fn name_field(mut self) -> Self {
        self.name_field = true;
        self
    }

    fn external(mut self, unique: bool) -> Self {
        self.external_id = true;
        self.unique = unique;
        self
    }

    fn values(mut self, values: &[&str]) -> Self {
        self.picklist = values.iter().map(|v| Arc::from(*v)).collect();
        self
    }

    fn default_value(mut self, value: &str) -> Self {
        self.default_picklist = Some(Arc::from(value));
        self.defaulted_on_create = true;
        self
    }

    fn restricted(mut self) -> Self {
        self.restricted = true;
        self
    }

    fn lookup(mut self, target: &str, relationship: &str, children: Option<&str>) -> Self {
        self.reference_to = vec![target.to_string()];
        self.relationship_name = Some(relationship.to_string());
        self.child_relationship = children.map(str::to_string);
        self
    }

    fn cascade(mut self) -> Self {
        self.cascade_delete = true;
        self
    }

    /// Whether an insert must name this field.
    pub fn required_on_create(&self) -> bool {
        self.createable && !self.nillable && !self.defaulted_on_create
    }
}

/// A child relationship of an object (`Opportunity.OpportunityTeamMembers`).
#[derive(Debug, Clone)]
pub struct ChildRelationship {
    /// The child object.
    pub child: usize,
    /// The child's lookup field index.
    pub field: usize,
    /// Relationship name used in subqueries.
    pub name: String,
    /// Deleting the parent deletes the children.
    pub cascade_delete: bool,
}

/// One object type.
#[derive(Debug, Clone)]
pub struct ObjectDef {
    /// API name.
    pub name: String,
    /// Singular label.
    pub label: String,
    /// Plural label.
    pub label_plural: String,
    /// Three-character id prefix.
    pub key_prefix: String,
    /// A custom object.
    pub custom: bool,
    /// Fields in describe order; index 0 is `Id`.
    pub fields: Vec<FieldDef>,
    /// Child relationships pointing at this object.
    pub children: Vec<ChildRelationship>,
    by_lower: HashMap<String, usize>,
    relationships: HashMap<String, usize>,
}

impl ObjectDef {
    /// Index of a field by case-insensitive name.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.by_lower.get(&name.to_ascii_lowercase()).copied()
    }

    /// A field by case-insensitive name.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.field_index(name).map(|i| &self.fields[i])
    }

    /// The lookup field behind a parent relationship name (`Account` → `AccountId`).
    pub fn relationship_field(&self, relationship: &str) -> Option<usize> {
        self.relationships.get(&relationship.to_ascii_lowercase()).copied()
    }

    /// A child relationship by case-insensitive name.
    pub fn child_relationship(&self, name: &str) -> Option<&ChildRelationship> {
        self.children.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Index of the name field, if the object has one.
    pub fn name_field(&self) -> Option<usize> {
        self.fields.iter().position(|f| f.name_field)
    }

    fn index(&mut self) {
        self.by_lower =
            self.fields.iter().enumerate().map(|(i, f)| (f.name.to_ascii_lowercase(), i)).collect();
        self.relationships = self
            .fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.relationship_name.as_ref().map(|r| (r.to_ascii_lowercase(), i)))
            .collect();
    }
}

/// Every object of the org.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Objects in describeGlobal order.
    pub objects: Vec<ObjectDef>,
    by_lower: HashMap<String, usize>,
    by_prefix: HashMap<String, usize>,
}

impl Schema {
    /// The sandbox org: standard sales objects plus the co-sell customisations.
    pub fn standard(custom_prefix: &str) -> Schema {
        let objects = vec![
            account(),
            contact(),
            lead(),
            opportunity(),
            opportunity_team_member(),
            note(),
            microsoft_solution(custom_prefix),
            user(),
        ];
        Schema::from_objects(objects)
    }

    /// The same org without some of its objects and fields, as an org looks before the co-sell
    /// metadata is (fully) installed: `Object` removes an object and the lookups to it,
    /// `Object.Field` removes one field. Names are case-insensitive; unknown names are ignored.
    pub fn without(&self, removed: &[String]) -> Schema {
        let removed: Vec<String> = removed.iter().map(|name| name.to_ascii_lowercase()).collect();
        let gone = |object: &str| removed.iter().any(|r| *r == object.to_ascii_lowercase());
        let field_gone = |object: &str, field: &str| {
            let qualified = format!("{object}.{field}").to_ascii_lowercase();
            removed.contains(&qualified)
        };
        let objects = self
            .objects
            .iter()
            .filter(|object| !gone(&object.name))
            .map(|object| {
                let mut object = object.clone();
                object.children.clear();
                let name = object.name.clone();
                object.fields.retain(|field| {
                    let dangling =
                        !field.reference_to.is_empty() && field.reference_to.iter().all(|t| gone(t));
                    !dangling && !field_gone(&name, &field.name)
                });
                object
            })
            .collect();
        Schema::from_objects(objects)
    }

    fn from_objects(mut objects: Vec<ObjectDef>) -> Schema {
        for object in &mut objects {
            object.index();
        }
        let by_lower = objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.name.to_ascii_lowercase(), i))
            .collect::<HashMap<_, _>>();
        let by_prefix = objects.iter().enumerate().map(|(i, o)| (o.key_prefix.clone(), i)).collect();
        let mut links = Vec::new();
        for (child, object) in objects.iter().enumerate() {
            for (field, def) in object.fields.iter().enumerate() {
                let Some(name) = &def.child_relationship else { continue };
                for target in &def.reference_to {
                    if let Some(parent) = by_lower.get(&target.to_ascii_lowercase()) {
                        links.push((
                            *parent,
                            ChildRelationship {
                                child,
                                field,
                                name: name.clone(),
                                cascade_delete: def.cascade_delete,
                            },
                        ));
                    }
                }
            }
        }
        for (parent, rel) in links {
            objects[parent].children.push(rel);
        }
        Schema { objects, by_lower, by_prefix }
    }

    /// Index of an object by case-insensitive name.
    pub fn object_index(&self, name: &str) -> Option<usize> {
        self.by_lower.get(&name.to_ascii_lowercase()).copied()
    }

    /// Index of the object owning an id prefix.
    pub fn object_by_prefix(&self, prefix: &str) -> Option<usize> {
        self.by_prefix.get(prefix).copied()
    }
}

fn object(name: &str, label: &str, plural: &str, prefix: &str, fields: Vec<FieldDef>) -> ObjectDef {
    ObjectDef {
        name: name.to_string(),
        label: label.to_string(),
        label_plural: plural.to_string(),
        key_prefix: prefix.to_string(),
        custom: name.ends_with("__c"),
        fields,
        children: Vec::new(),
        by_lower: HashMap::new(),
        relationships: HashMap::new(),
    }
}

use FieldType as T;

fn id_field(label: &str) -> FieldDef {
    let mut f = FieldDef::new("Id", label, T::Id).read_only().required();
    f.createable = false;
    f
}

/// Audit fields every object carries; `owner` adds `OwnerId`.
fn audit(fields: &mut Vec<FieldDef>, owner: bool) {
    if owner {
        fields.push(
            FieldDef::new("OwnerId", "Owner ID", T::Reference)
                .lookup("User", "Owner", None)
                .required()
                .defaulted(),
        );
    }
    fields.push(FieldDef::new("IsDeleted", "Deleted", T::Boolean).read_only().required());
    fields.push(FieldDef::new("CreatedDate", "Created Date", T::DateTime).read_only().required());
    fields.push(
        FieldDef::new("CreatedById", "Created By ID", T::Reference)
            .lookup("User", "CreatedBy", None)
            .read_only()
            .required(),
    );
    fields.push(FieldDef::new("LastModifiedDate", "Last Modified Date", T::DateTime).read_only().required());
    fields.push(
        FieldDef::new("LastModifiedById", "Last Modified By ID", T::Reference)
            .lookup("User", "LastModifiedBy", None)
            .read_only()
            .required(),
    );
    fields.push(FieldDef::new("SystemModstamp", "System Modstamp", T::DateTime).read_only().required());
}

fn address(fields: &mut Vec<FieldDef>, prefix: &str, label: &str) {
    fields.push(FieldDef::new(&format!("{prefix}Street"), &format!("{label} Street"), T::Textarea).len(255));
    fields.push(FieldDef::new(&format!("{prefix}City"), &format!("{label} City"), T::String).len(40));
    fields.push(
        FieldDef::new(&format!("{prefix}State"), &format!("{label} State/Province"), T::String).len(80),
    );
    fields.push(
        FieldDef::new(&format!("{prefix}PostalCode"), &format!("{label} Zip/Postal Code"), T::String).len(20),
    );
    fields.push(FieldDef::new(&format!("{prefix}Country"), &format!("{label} Country"), T::String).len(80));
}

const INDUSTRIES: &[&str] = &[
    "Agriculture",
    "Banking",
    "Communications",
    "Consulting",
    "Education",
    "Energy",
    "Finance",
    "Government",
    "Healthcare",
    "Manufacturing",
    "Media",
    "Retail",
    "Technology",
    "Other",
];

const LEAD_SOURCES: &[&str] = &["Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"];

fn account() -> ObjectDef {
    let mut f = vec![
        id_field("Account ID"),
        FieldDef::new("Name", "Account Name", T::String).required().name_field(),
        FieldDef::new("Type", "Account Type", T::Picklist).values(&[
            "Prospect",
            "Customer - Direct",
            "Customer - Channel",
            "Channel Partner / Reseller",
            "Installation Partner",
            "Technology Partner",
            "Other",
        ]),
        FieldDef::new("ParentId", "Parent Account ID", T::Reference).lookup(
            "Account",
            "Parent",
            Some("ChildAccounts"),
        ),
    ];
    address(&mut f, "Billing", "Billing");
    address(&mut f, "Shipping", "Shipping");
    f.extend([
        FieldDef::new("Phone", "Account Phone", T::Phone),
        FieldDef::new("Website", "Website", T::Url),
        FieldDef::new("Industry", "Industry", T::Picklist).values(INDUSTRIES),
        FieldDef::new("AnnualRevenue", "Annual Revenue", T::Currency),
        FieldDef::new("NumberOfEmployees", "Employees", T::Int).len(0),
        FieldDef::new("Description", "Account Description", T::Textarea),
        FieldDef::new("AccountNumber", "Account Number", T::String).len(40),
    ]);
    audit(&mut f, true);
    object("Account", "Account", "Accounts", "001", f)
}

fn contact() -> ObjectDef {
    let mut f = vec![
        id_field("Contact ID"),
        FieldDef::new("AccountId", "Account ID", T::Reference).lookup("Account", "Account", Some("Contacts")),
        FieldDef::new("LastName", "Last Name", T::String).len(80).required(),
        FieldDef::new("FirstName", "First Name", T::String).len(40),
        FieldDef::new("Salutation", "Salutation", T::Picklist)
            .values(&["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."]),
        FieldDef::new("Name", "Full Name", T::String).len(121).derived().name_field(),
        FieldDef::new("Email", "Email", T::Email).len(80),
        FieldDef::new("Phone", "Business Phone", T::Phone),
        FieldDef::new("MobilePhone", "Mobile Phone", T::Phone),
        FieldDef::new("Title", "Title", T::String).len(128),
        FieldDef::new("Department", "Department", T::String).len(80),
    ];
    address(&mut f, "Mailing", "Mailing");
    f.push(FieldDef::new("LeadSource", "Lead Source", T::Picklist).values(LEAD_SOURCES));
    audit(&mut f, true);
    object("Contact", "Contact", "Contacts", "003", f)
}

fn lead() -> ObjectDef {
    let mut f = vec![
        id_field("Lead ID"),
        FieldDef::new("LastName", "Last Name", T::String).len(80).required(),
        FieldDef::new("FirstName", "First Name", T::String).len(40),
        FieldDef::new("Name", "Full Name", T::String).len(121).derived().name_field(),
        FieldDef::new("Company", "Company", T::String).required(),
        FieldDef::new("Status", "Lead Status", T::Picklist)
            .values(&[
                "Open - Not Contacted",
                "Working - Contacted",
                "Closed - Converted",
                "Closed - Not Converted",
            ])
            .default_value("Open - Not Contacted")
            .required(),
        FieldDef::new("Email", "Email", T::Email).len(80),
        FieldDef::new("Phone", "Phone", T::Phone),
        FieldDef::new("Title", "Title", T::String).len(128),
        FieldDef::new("LeadSource", "Lead Source", T::Picklist).values(LEAD_SOURCES),
        FieldDef::new("Industry", "Industry", T::Picklist).values(INDUSTRIES),
        FieldDef::new("Rating", "Rating", T::Picklist).values(&["Hot", "Warm", "Cold"]),
        FieldDef::new("IsConverted", "Converted", T::Boolean).read_only().required(),
        FieldDef::new("ConvertedAccountId", "Converted Account ID", T::Reference)
            .lookup("Account", "ConvertedAccount", None)
            .read_only(),
        FieldDef::new("ConvertedContactId", "Converted Contact ID", T::Reference)
            .lookup("Contact", "ConvertedContact", None)
            .read_only(),
        FieldDef::new("ConvertedOpportunityId", "Converted Opportunity ID", T::Reference)
            .lookup("Opportunity", "ConvertedOpportunity", None)
            .read_only(),
        FieldDef::new("ConvertedDate", "Converted Date", T::Date).read_only(),
    ];
    audit(&mut f, true);
    object("Lead", "Lead", "Leads", "00Q", f)
}

/// Opportunity stages: (name, probability, closed, won, forecast category).
pub const STAGES: &[(&str, f64, bool, bool, &str)] = &[
    ("Prospecting", 10.0, false, false, "Pipeline"),
    ("Qualification", 10.0, false, false, "Pipeline"),
    ("Needs Analysis", 20.0, false, false, "Pipeline"),
    ("Value Proposition", 50.0, false, false, "Pipeline"),
    ("Id. Decision Makers", 60.0, false, false, "Pipeline"),
    ("Perception Analysis", 70.0, false, false, "Pipeline"),
    ("Proposal/Price Quote", 75.0, false, false, "Pipeline"),
    ("Negotiation/Review", 90.0, false, false, "Pipeline"),
    ("Closed Won", 100.0, true, true, "Closed"),
    ("Closed Lost", 0.0, true, false, "Omitted"),
];

/// Microsoft products a referral can name [inferred: the package's picklist is not published;
/// these are the Partner Center product tags].
const PRODUCTS: &[&str] = &[
    "Azure",
    "Dynamics365Business",
    "Dynamics365Enterprise",
    "EnterpriseMobilityAndSecurity",
    "Microsoft365",
    "PowerBI",
    "SQL",
    "Teams",
    "Windows",
    "Surface",
];

/// Kinds of help asked of Microsoft [inferred: mirrors Partner Center's `assistanceRequestCode`].
const HELP: &[&str] = &[
    "GeneralOrOther",
    "CustomerTechnicalArchitecture",
    "ProofOfConceptOrDemo",
    "QuotesOrLicensing",
    "PostSalesCustomerSuccess",
    "WorkloadSpecificValueProposition",
];

fn opportunity() -> ObjectDef {
    let stage_names: Vec<&str> = STAGES.iter().map(|s| s.0).collect();
    let mut f = vec![
        id_field("Opportunity ID"),
        FieldDef::new("AccountId", "Account ID", T::Reference).lookup(
            "Account",
            "Account",
            Some("Opportunities"),
        ),
        FieldDef::new("Name", "Name", T::String).len(120).required().name_field(),
        FieldDef::new("Description", "Description", T::Textarea),
        FieldDef::new("StageName", "Stage", T::Picklist).values(&stage_names).required(),
        FieldDef::new("Amount", "Amount", T::Currency),
        FieldDef::new("Probability", "Probability (%)", T::Percent).defaulted(),
        FieldDef::new("ExpectedRevenue", "Expected Amount", T::Currency).derived(),
        FieldDef::new("CloseDate", "Close Date", T::Date).required(),
        FieldDef::new("Type", "Opportunity Type", T::Picklist).values(&[
            "Existing Customer - Upgrade",
            "Existing Customer - Replacement",
            "Existing Customer - Downgrade",
            "New Customer",
        ]),
        FieldDef::new("NextStep", "Next Step", T::String),
        FieldDef::new("LeadSource", "Lead Source", T::Picklist).values(LEAD_SOURCES),
        FieldDef::new("IsClosed", "Closed", T::Boolean).read_only().required(),
        FieldDef::new("IsWon", "Won", T::Boolean).read_only().required(),
        FieldDef::new("ForecastCategory", "Forecast Category", T::Picklist)
            .values(&["Omitted", "Pipeline", "BestCase", "Forecast", "Closed"])
            .read_only()
            .required(),
        FieldDef::new("ForecastCategoryName", "Forecast Category", T::Picklist)
            .values(&["Omitted", "Pipeline", "Best Case", "Commit", "Closed"])
            .defaulted(),
        FieldDef::new("IsPrivate", "Private", T::Boolean).defaulted(),
        FieldDef::new("TotalOpportunityQuantity", "Quantity", T::Double),
        FieldDef::new("HasOpportunityLineItem", "Has Line Item", T::Boolean).read_only().required(),
        FieldDef::new("FiscalQuarter", "Fiscal Quarter", T::Int).derived(),
        FieldDef::new("FiscalYear", "Fiscal Year", T::Int).derived(),
        FieldDef::new("Fiscal", "Fiscal Period", T::String).len(6).derived(),
        FieldDef::new("LastActivityDate", "Last Activity", T::Date).read_only(),
        FieldDef::new("LastViewedDate", "Last Viewed Date", T::DateTime).read_only(),
        FieldDef::new("LastReferencedDate", "Last Referenced Date", T::DateTime).read_only(),
        FieldDef::new("Sync_with_Partner_Center__c", "Sync with Partner Center", T::Boolean).defaulted(),
        FieldDef::new("Referral_Identifier__c", "Referral Identifier", T::String).len(64).external(true),
        FieldDef::new("Referral_Id__c", "Referral Id", T::String).len(64).external(true),
        FieldDef::new("Referral_Link__c", "Referral Link", T::Url),
        FieldDef::new("How_can_Microsoft_help__c", "How can Microsoft help?", T::Picklist)
            .values(HELP)
            .restricted(),
        FieldDef::new("Products__c", "Products", T::MultiPicklist).values(PRODUCTS).restricted(),
        FieldDef::new("Audit__c", "Audit", T::Textarea).len(131072),
        FieldDef::new("Last_Sync_Date__c", "Last Sync Date", T::DateTime),
    ];
    audit(&mut f, true);
    object("Opportunity", "Opportunity", "Opportunities", "006", f)
}

fn opportunity_team_member() -> ObjectDef {
    let mut f = vec![
        id_field("Opportunity Team Member ID"),
        FieldDef::new("OpportunityId", "Opportunity ID", T::Reference)
            .lookup("Opportunity", "Opportunity", Some("OpportunityTeamMembers"))
            .cascade()
            .required()
            .create_only(),
        FieldDef::new("UserId", "User ID", T::Reference)
            .lookup("User", "User", None)
            .required()
            .create_only(),
        FieldDef::new("Name", "Team Member Name", T::String).len(121).derived().name_field(),
        FieldDef::new("TeamMemberRole", "Team Role", T::Picklist).values(&[
            "Account Manager",
            "Channel Manager",
            "Executive Sponsor",
            "Lead Qualifier",
            "Pre-Sales Consultant",
            "Sales Manager",
            "Sales Rep",
            "Microsoft Seller",
        ]),
        FieldDef::new("OpportunityAccessLevel", "Opportunity Access", T::Picklist)
            .values(&["Read", "Edit", "All"])
            .default_value("Read")
            .restricted(),
        FieldDef::new("Title", "Title", T::String).len(80).derived(),
        FieldDef::new("PhotoUrl", "Photo", T::Url).len(1024).derived(),
    ];
    audit(&mut f, false);
    object("OpportunityTeamMember", "Opportunity Team Member", "Opportunity Team Members", "00q", f)
}

fn note() -> ObjectDef {
    let mut f = vec![
        id_field("Note ID"),
        FieldDef::new("ParentId", "Parent ID", T::Reference)
            .lookup("Opportunity", "Parent", Some("Notes"))
            .cascade()
            .required()
            .create_only(),
        FieldDef::new("Title", "Title", T::String).len(80).required().name_field(),
        FieldDef::new("Body", "Body", T::Textarea),
        FieldDef::new("IsPrivate", "Private", T::Boolean).defaulted(),
    ];
    // A classic note can hang off any record; the emulator's parents are the sales objects.
    if let Some(parent) = f.get_mut(1) {
        parent.reference_to = ["Opportunity", "Account", "Contact", "Lead"].map(String::from).to_vec();
    }
    audit(&mut f, true);
    object("Note", "Note", "Notes", "002", f)
}

fn microsoft_solution(prefix: &str) -> ObjectDef {
    let mut f = vec![
        id_field("Record ID"),
        FieldDef::new("Name", "Microsoft Solution Name", T::String).len(80).required().name_field(),
        FieldDef::new("Opportunity__c", "Opportunity", T::Reference)
            .lookup("Opportunity", "Opportunity__r", Some("Microsoft_Solutions__r"))
            .cascade()
            .required(),
        FieldDef::new("Solution_Id__c", "Solution Id", T::String).len(64).external(false),
        FieldDef::new("Solution_Area__c", "Solution Area", T::String).len(255),
        FieldDef::new("Solution_Play__c", "Solution Play", T::String).len(255),
        FieldDef::new("Publisher_Name__c", "Publisher Name", T::String).len(255),
        FieldDef::new("Solution_Type__c", "Solution Type", T::String).len(40),
        FieldDef::new("Sync_with_Partner_Center__c", "Sync with Partner Center", T::Boolean).defaulted(),
    ];
    audit(&mut f, false);
    object("Microsoft_Solution__c", "Microsoft Solution", "Microsoft Solutions", prefix, f)
}

fn user() -> ObjectDef {
    let mut f = vec![
        id_field("User ID"),
        FieldDef::new("Username", "Username", T::String).len(80).required(),
        FieldDef::new("LastName", "Last Name", T::String).len(80).required(),
        FieldDef::new("FirstName", "First Name", T::String).len(40),
        FieldDef::new("Name", "Full Name", T::String).len(121).derived().name_field(),
        FieldDef::new("Email", "Email", T::Email).len(128).required(),
        FieldDef::new("Alias", "Alias", T::String).len(8),
        FieldDef::new("Title", "Title", T::String).len(80),
        FieldDef::new("IsActive", "Active", T::Boolean).defaulted(),
    ];
    audit(&mut f, false);
    object("User", "User", "Users", "005", f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relationships_link_parents_and_children() {
        let schema = Schema::standard("a0X");
        let opp = &schema.objects[schema.object_index("opportunity").unwrap_or_default()];
        assert!(opp.child_relationship("OpportunityTeamMembers").is_some());
        assert!(opp.child_relationship("microsoft_solutions__r").is_some());
        assert!(opp.child_relationship("Notes").is_some());
        assert!(opp.relationship_field("account").is_some());
        assert_eq!(schema.object_by_prefix("a0X"), schema.object_index("Microsoft_Solution__c"));
    }

    #[test]
    fn an_org_without_some_customisations_lacks_exactly_those() {
        let full = Schema::standard("a0X");
        let partial = full.without(&["Microsoft_Solution__c".into(), "opportunity.audit__c".into()]);
        assert!(partial.object_index("Microsoft_Solution__c").is_none());
        let opp = &partial.objects[partial.object_index("Opportunity").unwrap_or_default()];
        assert!(opp.field("Audit__c").is_none());
        assert!(opp.field("Referral_Link__c").is_some());
        assert!(
            opp.child_relationship("Microsoft_Solutions__r").is_none(),
            "the child relationship went with it"
        );
        assert!(opp.child_relationship("Notes").is_some());
        assert_eq!(partial.objects.len(), full.objects.len() - 1);
    }
}
