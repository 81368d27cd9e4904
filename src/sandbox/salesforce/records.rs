//! Record reads and writes with Salesforce's field validation, defaults and derived fields.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::errors::ApiError;
use super::ids::RecordId;
use super::schema::{FieldDef, FieldType, ObjectDef, STAGES};
use super::store::{Db, Record, Txn};
use super::value::{Val, now_ms, parse_date, parse_datetime};

/// Whether a write creates or changes a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// A new record.
    Insert,
    /// An existing record.
    Update,
}

/// The outcome of an upsert.
#[derive(Debug)]
pub enum Upserted {
    /// One record written; `created` tells insert from update.
    Written {
        /// The record.
        id: RecordId,
        /// Whether it was inserted.
        created: bool,
    },
    /// Several records matched the external id; nothing was written.
    Ambiguous(Vec<RecordId>),
}

/// `/services/data/vXX.X/sobjects/Type/Id`, the `attributes.url` of a record.
pub fn record_url(version: &str, object: &ObjectDef, id: &RecordId) -> String {
    format!("/services/data/{version}/sobjects/{}/{}", object.name, id)
}

/// Renders a record: `attributes`, then the requested fields (all fields when `None`).
pub fn render(
    object: &ObjectDef,
    id: &RecordId,
    record: &Record,
    fields: Option<&[usize]>,
    version: &str,
) -> Value {
    let mut map = Map::with_capacity(object.fields.len() + 1);
    map.insert("attributes".into(), attributes(object, id, version));
    let mut put = |i: usize| {
        let def = &object.fields[i];
        map.insert(def.name.clone(), record.values[i].to_json(def.ftype == FieldType::Int));
    };
    match fields {
        Some(list) => list.iter().copied().for_each(&mut put),
        None => (0..object.fields.len()).for_each(&mut put),
    }
    Value::Object(map)
}

/// `{"type": ..., "url": ...}`.
pub fn attributes(object: &ObjectDef, id: &RecordId, version: &str) -> Value {
    let mut attrs = Map::with_capacity(2);
    attrs.insert("type".into(), Value::String(object.name.clone()));
    attrs.insert("url".into(), Value::String(record_url(version, object, id)));
    Value::Object(attrs)
}

/// Resolves a `?fields=A,B` list against an object.
pub fn field_list(object: &ObjectDef, list: &str) -> Result<Vec<usize>, ApiError> {
    list.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| object.field_index(name).ok_or_else(|| no_such_column_query(object, name)))
        .collect()
}

/// The query-side `INVALID_FIELD` message.
pub fn no_such_column_query(object: &ObjectDef, name: &str) -> ApiError {
    ApiError::bad_request(
        "INVALID_FIELD",
        format!(
            "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
            object.name
        ),
    )
}

/// Parses an id from a URL segment, for an operation on `object`.
pub fn parse_record_id(object: &ObjectDef, text: &str) -> Result<RecordId, ApiError> {
    match RecordId::parse(text) {
        Some(id) if id.prefix() == object.key_prefix => Ok(id),
        Some(_) => Err(ApiError::not_found()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {text}"),
        )),
    }
}

/// Reads one record (live or, for a clear error, deleted).
pub fn get<'d>(db: &'d Db, object: usize, id: &RecordId) -> Result<&'d Record, ApiError> {
    match db.tables[object].records.get(id) {
        Some(record) if record.deleted_at.is_none() => Ok(record),
        Some(_) => Err(ApiError::new(StatusCode::NOT_FOUND, "ENTITY_IS_DELETED", "entity is deleted")),
        None => Err(ApiError::not_found()),
    }
}

/// Creates a record from a JSON field map.
pub fn create(tx: &mut Txn, object: usize, body: &Value) -> Result<RecordId, ApiError> {
    let body = as_object(body)?;
    create_with(tx, object, body, CreateOptions::default())
}

/// How a record is created: API calls use the defaults; seed data may choose ids and set
/// read-only fields such as `CreatedDate`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOptions {
    /// Use this id instead of a generated one.
    pub id: Option<RecordId>,
    /// Skip the read-only check and keep given audit fields.
    pub trusted: bool,
}

/// Creates a record from a field map.
pub fn create_with(
    tx: &mut Txn,
    object: usize,
    body: &Map<String, Value>,
    options: CreateOptions,
) -> Result<RecordId, ApiError> {
    let schema = tx.db.schema.clone();
    let def = &schema.objects[object];
    let id = options.id;
    if !options.trusted && body.keys().any(|k| k.eq_ignore_ascii_case("id")) {
        return Err(ApiError::fields(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "cannot specify Id in an insert call",
            vec!["Id".to_string()],
        ));
    }
    let mut values = vec![Val::Null; def.fields.len()];
    let set = apply_fields(tx.db, def, body, WriteMode::Insert, &mut values, options.trusted)?;
    let id = match id {
        Some(id) => id,
        None => tx.db.new_id(object).ok_or_else(|| internal("could not make an id"))?,
    };
    values[0] = Val::Str(Arc::from(id.to18()));
    fill_defaults(tx.db, def, &mut values, &set);
    derive(tx.db, def, &mut values, &set);
    stamp(tx.db, def, &mut values, true, &set);
    check_required(def, &values)?;
    check_unique(tx.db, object, &id, &values)?;
    tx.put(object, id, Record { values: values.into_boxed_slice(), deleted_at: None });
    Ok(id)
}

/// Updates a record from a JSON field map.
pub fn update(tx: &mut Txn, object: usize, id: &RecordId, body: &Value) -> Result<(), ApiError> {
    let body = as_object(body)?;
    let schema = tx.db.schema.clone();
    let def = &schema.objects[object];
    let mut values = get(tx.db, object, id)?.values.to_vec();
    let set = apply_fields(tx.db, def, body, WriteMode::Update, &mut values, false)?;
    derive(tx.db, def, &mut values, &set);
    stamp(tx.db, def, &mut values, false, &[]);
    check_required(def, &values)?;
    check_unique(tx.db, object, id, &values)?;
    tx.put(object, *id, Record { values: values.into_boxed_slice(), deleted_at: None });
    Ok(())
}

/// Moves a record (and its cascade-delete children) to the recycle bin.
pub fn delete(tx: &mut Txn, object: usize, id: &RecordId) -> Result<(), ApiError> {
    let record = get(tx.db, object, id)?.clone();
    let now = now_ms();
    let schema = tx.db.schema.clone();
    let def = &schema.objects[object];
    let id18 = id.to18();
    for rel in def.children.iter().filter(|r| r.cascade_delete) {
        let children: Vec<RecordId> = tx.db.tables[rel.child]
            .records
            .iter()
            .filter(|(_, r)| r.deleted_at.is_none() && r.values[rel.field].as_str() == Some(id18.as_str()))
            .map(|(cid, _)| *cid)
            .collect();
        for child in children {
            delete(tx, rel.child, &child)?;
        }
    }
    let mut values = record.values.to_vec();
    if let Some(i) = def.field_index("IsDeleted") {
        values[i] = Val::Bool(true);
    }
    if let Some(i) = def.field_index("SystemModstamp") {
        values[i] = Val::DateTime(now);
    }
    tx.put(object, *id, Record { values: values.into_boxed_slice(), deleted_at: Some(now) });
    Ok(())
}

/// Upserts by external id: insert when nothing matches, update when one record does.
pub fn upsert(
    tx: &mut Txn,
    object: usize,
    field: usize,
    key: &str,
    body: &Value,
) -> Result<Upserted, ApiError> {
    let matches = find_by_external_id(tx.db, object, field, key);
    match matches.as_slice() {
        [] => {
            let mut body = as_object(body)?.clone();
            let name = tx.db.schema.objects[object].fields[field].name.clone();
            body.retain(|k, _| !k.eq_ignore_ascii_case(&name));
            body.insert(name, Value::String(key.to_string()));
            let id = create_with(tx, object, &body, CreateOptions::default())?;
            Ok(Upserted::Written { id, created: true })
        }
        [id] => {
            let id = *id;
            update(tx, object, &id, body)?;
            Ok(Upserted::Written { id, created: false })
        }
        many => Ok(Upserted::Ambiguous(many.to_vec())),
    }
}

/// Live records whose external-id field (or `Id`) equals `key`.
pub fn find_by_external_id(db: &Db, object: usize, field: usize, key: &str) -> Vec<RecordId> {
    if field == 0 {
        return RecordId::parse(key).filter(|id| db.tables[object].live(id).is_some()).into_iter().collect();
    }
    db.tables[object].lookup(field, key).to_vec()
}

/// The field usable as an upsert key, or 404 as Salesforce answers.
pub fn external_id_field(object: &ObjectDef, name: &str) -> Result<usize, ApiError> {
    match object.field_index(name) {
        Some(i) if i == 0 || object.fields[i].external_id => Ok(i),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {name}"),
        )),
    }
}

fn as_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| {
        ApiError::bad_request(
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of SObject out of non-object token at [line:1, column:1]",
        )
    })
}

fn internal(message: &str) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN_EXCEPTION", message)
}

/// Validates and converts every field of `body` into `values`; returns the indexes set.
fn apply_fields(
    db: &Db,
    def: &ObjectDef,
    body: &Map<String, Value>,
    mode: WriteMode,
    values: &mut [Val],
    trusted: bool,
) -> Result<Vec<usize>, ApiError> {
    let mut fields = Vec::with_capacity(body.len());
    let mut read_only = Vec::new();
    for (key, value) in body {
        if key == "attributes" || (key.eq_ignore_ascii_case("id") && (mode == WriteMode::Update || trusted)) {
            continue;
        }
        let Some(i) = def.field_index(key) else {
            return Err(ApiError::bad_request(
                "INVALID_FIELD",
                format!("No such column '{key}' on sobject of type {}", def.name),
            ));
        };
        let field = &def.fields[i];
        let writable = match mode {
            WriteMode::Insert => field.createable,
            WriteMode::Update => field.updateable,
        };
        if !writable && !trusted {
            read_only.push(field.name.clone());
            continue;
        }
        fields.push((i, value));
    }
    if !read_only.is_empty() {
        return Err(ApiError::fields(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                read_only.join(", ")
            ),
            read_only,
        ));
    }
    let mut set = Vec::with_capacity(fields.len());
    for (i, value) in fields {
        values[i] = convert(db, &def.fields[i], value)?;
        set.push(i);
    }
    Ok(set)
}

/// Converts one JSON value to a stored value, checking type, length and picklist rules.
fn convert(db: &Db, field: &FieldDef, value: &Value) -> Result<Val, ApiError> {
    if value.is_null() {
        return Ok(if field.ftype == FieldType::Boolean { Val::Bool(false) } else { Val::Null });
    }
    match field.ftype {
        FieldType::Boolean => match value {
            Value::Bool(b) => Ok(Val::Bool(*b)),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Val::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Val::Bool(false)),
            other => Err(deserialize_error("boolean", other)),
        },
        FieldType::Int | FieldType::Double | FieldType::Currency | FieldType::Percent => {
            let n = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            let Some(n) = n.filter(|n| n.is_finite()) else {
                return Err(deserialize_error(
                    if field.ftype == FieldType::Int { "int" } else { "double" },
                    value,
                ));
            };
            if field.ftype == FieldType::Int && n.fract() != 0.0 {
                return Err(deserialize_error("int", value));
            }
            Ok(Val::Num(n))
        }
        FieldType::Date => {
            value.as_str().and_then(parse_date).map(Val::Date).ok_or_else(|| deserialize_error("date", value))
        }
        FieldType::DateTime => value
            .as_str()
            .and_then(parse_datetime)
            .map(Val::DateTime)
            .ok_or_else(|| deserialize_error("datetime", value)),
        FieldType::Reference | FieldType::Id => convert_reference(db, field, value),
        _ => convert_text(field, value),
    }
}

fn convert_text(field: &FieldDef, value: &Value) -> Result<Val, ApiError> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => return Err(deserialize_error("String", other)),
    };
    if field.length > 0 && text.chars().count() > field.length as usize {
        return Err(ApiError::fields(
            "STRING_TOO_LONG",
            format!(
                "{}: data value too large: {} (max length={})",
                field.label,
                truncate(&text, 40),
                field.length
            ),
            vec![field.name.clone()],
        ));
    }
    match field.ftype {
        FieldType::Picklist => picklist_value(field, &text),
        FieldType::MultiPicklist => {
            let parts: Result<Vec<Arc<str>>, ApiError> = text
                .split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    picklist_value(field, p).map(|v| match v {
                        Val::Str(s) => s,
                        _ => Arc::from(p),
                    })
                })
                .collect();
            let parts = parts?;
            if parts.is_empty() {
                return Ok(Val::Null);
            }
            Ok(Val::Str(Arc::from(parts.join(";"))))
        }
        _ if text.is_empty() => Ok(Val::Null),
        _ => Ok(Val::Str(Arc::from(text))),
    }
}

/// Picklist values share the schema's copy; restricted picklists reject unknown values.
fn picklist_value(field: &FieldDef, text: &str) -> Result<Val, ApiError> {
    if text.is_empty() {
        return Ok(Val::Null);
    }
    if let Some(v) = field.picklist.iter().find(|v| v.as_ref() == text) {
        return Ok(Val::Str(v.clone()));
    }
    if field.restricted {
        return Err(ApiError::fields(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            format!("{}: bad value for restricted picklist field: {text}", field.label),
            vec![field.name.clone()],
        ));
    }
    Ok(Val::Str(Arc::from(text)))
}

fn convert_reference(db: &Db, field: &FieldDef, value: &Value) -> Result<Val, ApiError> {
    let Some(text) = value.as_str() else {
        return Err(deserialize_error("String", value));
    };
    if text.is_empty() {
        return Ok(Val::Null);
    }
    let malformed = || {
        ApiError::fields(
            "MALFORMED_ID",
            format!("{}: id value of incorrect type: {text}", field.label),
            vec![field.name.clone()],
        )
    };
    let id = RecordId::parse(text).ok_or_else(malformed)?;
    let object = db.object_of(&id).ok_or_else(malformed)?;
    let target = &db.schema.objects[object].name;
    if !field.reference_to.iter().any(|t| t.eq_ignore_ascii_case(target)) {
        return Err(malformed());
    }
    if db.tables[object].live(&id).is_none() {
        return Err(ApiError::fields(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id".to_string(),
            vec![field.name.clone()],
        ));
    }
    if db.user_id.as_ref() == id.to18() {
        return Ok(Val::Str(db.user_id.clone()));
    }
    Ok(Val::Str(Arc::from(id.to18())))
}

fn deserialize_error(kind: &str, value: &Value) -> ApiError {
    let (token, shown) = match value {
        Value::String(s) => ("VALUE_STRING", s.clone()),
        Value::Number(n) => ("VALUE_NUMBER_INT", n.to_string()),
        Value::Bool(b) => (if *b { "VALUE_TRUE" } else { "VALUE_FALSE" }, b.to_string()),
        Value::Array(_) => ("START_ARRAY", "[".to_string()),
        Value::Object(_) => ("START_OBJECT", "{".to_string()),
        Value::Null => ("VALUE_NULL", "null".to_string()),
    };
    ApiError::bad_request(
        "JSON_PARSER_ERROR",
        format!(
            "Cannot deserialize instance of {kind} from {token} value {shown} or request may be missing a required field"
        ),
    )
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}...")
}

/// Server-side defaults for fields the insert left out.
fn fill_defaults(db: &Db, def: &ObjectDef, values: &mut [Val], set: &[usize]) {
    for (i, field) in def.fields.iter().enumerate() {
        if set.contains(&i) || !values[i].is_null() {
            continue;
        }
        if let Some(default) = &field.default_picklist {
            values[i] = Val::Str(default.clone());
        } else if field.ftype == FieldType::Boolean {
            values[i] = Val::Bool(false);
        } else if field.name == "OwnerId" {
            values[i] = Val::Str(db.user_id.clone());
        }
    }
}

/// Fields Salesforce computes: names, stage-driven opportunity fields, fiscal period.
fn derive(db: &Db, def: &ObjectDef, values: &mut [Val], set: &[usize]) {
    let idx = |name: &str| def.field_index(name);
    let was_set = |name: &str| idx(name).is_some_and(|i| set.contains(&i));
    if let (Some(name), Some(last)) = (idx("Name"), idx("LastName")) {
        if def.fields[name].calculated {
            let first = idx("FirstName").and_then(|i| values[i].as_str().map(str::to_string));
            let last = values[last].as_str().unwrap_or_default().to_string();
            let full = match first {
                Some(first) if !first.is_empty() => format!("{first} {last}"),
                _ => last,
            };
            values[name] = Val::Str(Arc::from(full));
        }
    }
    match def.name.as_str() {
        "Opportunity" => derive_opportunity(
            def,
            values,
            was_set("StageName"),
            was_set("Probability"),
            was_set("ForecastCategoryName"),
        ),
        "OpportunityTeamMember" => derive_team_member(db, def, values),
        _ => {}
    }
}

fn derive_opportunity(
    def: &ObjectDef,
    values: &mut [Val],
    stage_set: bool,
    probability_set: bool,
    forecast_set: bool,
) {
    let idx = |name: &str| def.field_index(name).unwrap_or(0);
    let stage = values[idx("StageName")].as_str().unwrap_or_default().to_string();
    let known = STAGES.iter().find(|s| s.0 == stage);
    let (probability, closed, won, category) =
        known.map_or((0.0, false, false, "Pipeline"), |s| (s.1, s.2, s.3, s.4));
    values[idx("IsClosed")] = Val::Bool(closed);
    values[idx("IsWon")] = Val::Bool(won);
    if stage_set || values[idx("ForecastCategory")].is_null() {
        let api = if category == "Closed" || category == "Omitted" || category == "Pipeline" {
            category
        } else {
            "Pipeline"
        };
        values[idx("ForecastCategory")] = Val::Str(Arc::from(api));
        if !forecast_set {
            values[idx("ForecastCategoryName")] = Val::Str(Arc::from(category));
        }
    }
    if (stage_set && !probability_set) || values[idx("Probability")].is_null() {
        values[idx("Probability")] = Val::Num(probability);
    }
    let amount = match &values[idx("Amount")] {
        Val::Num(n) => Some(*n),
        _ => None,
    };
    let prob = match &values[idx("Probability")] {
        Val::Num(n) => *n,
        _ => 0.0,
    };
    values[idx("ExpectedRevenue")] =
        amount.map_or(Val::Null, |a| Val::Num((a * prob / 100.0 * 100.0).round() / 100.0));
    if let Val::Date(date) = values[idx("CloseDate")].clone() {
        let quarter = (date.month() as i64 - 1) / 3 + 1;
        values[idx("FiscalYear")] = Val::Num(date.year() as f64);
        values[idx("FiscalQuarter")] = Val::Num(quarter as f64);
        values[idx("Fiscal")] = Val::Str(Arc::from(format!("{} {quarter}", date.year())));
    }
}

fn derive_team_member(db: &Db, def: &ObjectDef, values: &mut [Val]) {
    let Some(user_field) = def.field_index("UserId") else { return };
    let Some(user) = values[user_field].as_str().and_then(RecordId::parse) else { return };
    let Some((object, record)) = db.find_live(&user) else { return };
    let user_def = &db.schema.objects[object];
    for name in ["Name", "Title"] {
        if let (Some(from), Some(to)) = (user_def.field_index(name), def.field_index(name)) {
            values[to] = record.values[from].clone();
        }
    }
}

/// Audit fields: created on insert, last-modified and modstamp on every write.
fn stamp(db: &Db, def: &ObjectDef, values: &mut [Val], insert: bool, given: &[usize]) {
    let now = now_ms();
    let mut put = |name: &str, v: Val| {
        if let Some(i) = def.field_index(name).filter(|i| !given.contains(i)) {
            values[i] = v;
        }
    };
    if insert {
        put("CreatedDate", Val::DateTime(now));
        put("CreatedById", Val::Str(db.user_id.clone()));
        put("IsDeleted", Val::Bool(false));
    }
    put("LastModifiedDate", Val::DateTime(now));
    put("LastModifiedById", Val::Str(db.user_id.clone()));
    put("SystemModstamp", Val::DateTime(now));
}

fn check_required(def: &ObjectDef, values: &[Val]) -> Result<(), ApiError> {
    let missing: Vec<String> = def
        .fields
        .iter()
        .zip(values)
        .filter(|(f, v)| f.createable && !f.nillable && v.is_null())
        .map(|(f, _)| f.name.clone())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::fields(
        "REQUIRED_FIELD_MISSING",
        format!("Required fields are missing: [{}]", missing.join(", ")),
        missing,
    ))
}

fn check_unique(db: &Db, object: usize, id: &RecordId, values: &[Val]) -> Result<(), ApiError> {
    let def = &db.schema.objects[object];
    for (i, field) in def.fields.iter().enumerate().filter(|(_, f)| f.unique) {
        let Some(value) = values[i].as_str() else { continue };
        if let Some(other) = db.tables[object].lookup(i, value).iter().find(|other| *other != id) {
            return Err(ApiError::fields(
                "DUPLICATE_VALUE",
                format!("duplicate value found: {} duplicates value on record with id: {other}", field.name),
                vec![field.name.clone()],
            ));
        }
    }
    Ok(())
}
