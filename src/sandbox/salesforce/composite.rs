//! `/composite` (subrequests with `@{ref.path}` references, allOrNone) and the sObject
//! Collections resources under `/composite/sobjects`.

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::Salesforce;
use super::api::{self, Access, ApiRequest, ApiResponse, Params};
use super::errors::ApiError;
use super::ids::RecordId;
use super::records::{self, Upserted};
use super::store::Txn;

/// Subrequests per composite call.
const MAX_SUBREQUESTS: usize = 25;
/// Records per collection call.
const MAX_RECORDS: usize = 200;
/// Ids per collection retrieve.
const MAX_RETRIEVE: usize = 2000;

const ROLLED_BACK: &str =
    "The transaction was rolled back since another operation in the same transaction failed.";

/// `POST /composite`.
pub fn composite(
    sf: &Salesforce,
    tx: &mut Txn,
    body: Option<&Value>,
    batch_size: usize,
) -> Result<ApiResponse, ApiError> {
    let body = body.ok_or_else(|| {
        ApiError::bad_request(
            "JSON_PARSER_ERROR",
            "The HTTP entity body is required, but this request has no entity body.",
        )
    })?;
    let all_or_none = body.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
    let subrequests = body
        .get("compositeRequest")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("INVALID_INPUT", "compositeRequest is required"))?;
    validate_subrequests(subrequests)?;
    let start = tx.savepoint();
    let mut results: Vec<(String, ApiResponse)> = Vec::with_capacity(subrequests.len());
    let mut done: HashMap<String, Option<Value>> = HashMap::new();
    let mut failed_at = None;
    for (i, sub) in subrequests.iter().enumerate() {
        let reference = sub.get("referenceId").and_then(Value::as_str).unwrap_or_default().to_string();
        let response = run_subrequest(sf, tx, sub, &done, batch_size);
        let ok = response.status.is_success();
        done.insert(reference.clone(), ok.then(|| response.body.clone()).flatten());
        results.push((reference, response));
        if !ok && all_or_none {
            failed_at = Some(i);
            break;
        }
    }
    if let Some(failed) = failed_at {
        tx.rollback_to(start);
        let halted = ApiError::bad_request("PROCESSING_HALTED", ROLLED_BACK);
        for (i, sub) in subrequests.iter().enumerate() {
            if i == failed {
                continue;
            }
            let reference = sub.get("referenceId").and_then(Value::as_str).unwrap_or_default().to_string();
            let entry = (reference, ApiResponse::error(&halted));
            if i < results.len() {
                results[i] = entry;
            } else {
                results.push(entry);
            }
        }
    }
    let entries: Vec<Value> = results
        .into_iter()
        .map(|(reference, resp)| {
            let mut headers = Map::new();
            if let Some(location) = resp.location {
                headers.insert("Location".into(), json!(location));
            }
            json!({"body": resp.body, "httpHeaders": headers, "httpStatusCode": resp.status.as_u16(), "referenceId": reference})
        })
        .collect();
    Ok(ApiResponse {
        status: StatusCode::OK,
        body: Some(json!({"compositeResponse": entries})),
        location: None,
    })
}

fn validate_subrequests(subrequests: &[Value]) -> Result<(), ApiError> {
    if subrequests.is_empty() || subrequests.len() > MAX_SUBREQUESTS {
        return Err(ApiError::bad_request(
            "INVALID_INPUT",
            format!("compositeRequest must have between 1 and {MAX_SUBREQUESTS} subrequests"),
        ));
    }
    let mut seen = Vec::new();
    for sub in subrequests {
        let reference = sub.get("referenceId").and_then(Value::as_str).unwrap_or_default();
        if reference.is_empty() || !reference.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ApiError::bad_request(
                "INVALID_INPUT",
                format!(
                    "Invalid referenceId '{reference}'. Reference IDs must contain only letters, numbers and underscores."
                ),
            ));
        }
        if seen.contains(&reference) {
            return Err(ApiError::bad_request(
                "INVALID_INPUT",
                format!("Duplicate referenceId '{reference}' provided."),
            ));
        }
        seen.push(reference);
        if sub.get("method").and_then(Value::as_str).is_none()
            || sub.get("url").and_then(Value::as_str).is_none()
        {
            return Err(ApiError::bad_request(
                "INVALID_INPUT",
                format!("Subrequest '{reference}' needs a method and a url."),
            ));
        }
    }
    Ok(())
}

fn run_subrequest(
    sf: &Salesforce,
    tx: &mut Txn,
    sub: &Value,
    done: &HashMap<String, Option<Value>>,
    batch_size: usize,
) -> ApiResponse {
    let url = sub.get("url").and_then(Value::as_str).unwrap_or_default();
    let url = match substitute_text(url, done) {
        Ok(url) => url,
        Err(err) => return ApiResponse::error(&err),
    };
    let body = match sub.get("body").map(|b| substitute_value(b, done)).transpose() {
        Ok(body) => body,
        Err(err) => return ApiResponse::error(&err),
    };
    let method = sub.get("method").and_then(Value::as_str).unwrap_or("GET").to_ascii_uppercase();
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return ApiResponse::error(&ApiError::bad_request(
            "INVALID_INPUT",
            format!("Invalid method {method}"),
        ));
    };
    let Some(rest) = url.strip_prefix("/services/data/") else {
        return ApiResponse::error(&ApiError::not_found());
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.trim_end_matches('/').ends_with("/composite") {
        return ApiResponse::error(&ApiError::bad_request(
            "INVALID_INPUT",
            "composite subrequests cannot be composite requests",
        ));
    }
    let req = ApiRequest { method, path, query, body, batch_size };
    api::write(sf, tx, &req)
}

/// Replaces every `@{ref.path}` in a string.
fn substitute_text(text: &str, done: &HashMap<String, Option<Value>>) -> Result<String, ApiError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let value = resolve_reference(&after[..end], done)?;
        match value {
            Value::String(s) => out.push_str(&s),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// References inside a body; a string that is exactly one reference keeps the value's type.
fn substitute_value(value: &Value, done: &HashMap<String, Option<Value>>) -> Result<Value, ApiError> {
    Ok(match value {
        Value::String(s) => {
            let trimmed = s.trim();
            if trimmed.starts_with("@{") && trimmed.ends_with('}') && trimmed.matches("@{").count() == 1 {
                resolve_reference(&trimmed[2..trimmed.len() - 1], done)?
            } else {
                Value::String(substitute_text(s, done)?)
            }
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| substitute_value(v, done)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| substitute_value(v, done).map(|v| (k.clone(), v)))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// Resolves `refId.path.to[0].field` against earlier results.
fn resolve_reference(expr: &str, done: &HashMap<String, Option<Value>>) -> Result<Value, ApiError> {
    let (reference, path) = expr.split_once('.').unwrap_or((expr, ""));
    let halted = |detail: String| ApiError::bad_request("PROCESSING_HALTED", detail);
    let Some(result) = done.get(reference) else {
        return Err(halted(format!(
            "Invalid reference specified. No value for {expr} found in {reference}. Provided referenceId ('{reference}') doesn't exist or isn't defined before this subrequest."
        )));
    };
    let Some(body) = result else {
        return Err(halted(format!(
            "Invalid reference specified. No value for {expr} found in {reference}. Provided referenceId ('{reference}') refers to a subrequest that failed."
        )));
    };
    let mut current = body;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (name, indexes) = split_indexes(segment);
        if !name.is_empty() {
            current = current.get(name).ok_or_else(|| {
                halted(format!("Invalid reference specified. No value for {expr} found in {reference}."))
            })?;
        }
        for index in indexes {
            current = current.get(index).ok_or_else(|| {
                halted(format!("Invalid reference specified. No value for {expr} found in {reference}."))
            })?;
        }
    }
    Ok(current.clone())
}

fn split_indexes(segment: &str) -> (&str, Vec<usize>) {
    let name_end = segment.find('[').unwrap_or(segment.len());
    let indexes = segment[name_end..]
        .split(['[', ']'])
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    (&segment[..name_end], indexes)
}

/// `/composite/sobjects[/Type[/ExtField]]`.
pub fn collections(
    access: &mut Access,
    req: &ApiRequest,
    version: &str,
    version_num: u32,
    tail: &[&str],
    params: &Params,
) -> Result<ApiResponse, ApiError> {
    let method = req.method.as_str();
    match (tail, method) {
        ([], "POST") => write_records(access, req, version, Mode::Create),
        ([], "PATCH") => write_records(access, req, version, Mode::Update),
        ([], "DELETE") => delete_records(access, params),
        ([], _) => Err(ApiError::method_not_allowed(method, "POST,PATCH,DELETE")),
        ([object], "GET" | "HEAD") => {
            let ids = params.get("ids").unwrap_or_default();
            let fields = params
                .get("fields")
                .ok_or_else(|| ApiError::bad_request("MALFORMED_QUERY", "fields is required"))?;
            retrieve(access, object, ids.split(',').map(str::to_string).collect(), &fields, version)
        }
        ([object], "POST") => {
            let body = req
                .body
                .as_ref()
                .ok_or_else(|| ApiError::bad_request("JSON_PARSER_ERROR", "body required"))?;
            let ids: Vec<String> = body
                .get("ids")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            let fields: Vec<String> = body
                .get("fields")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            retrieve(access, object, ids, &fields.join(","), version)
        }
        ([object, field], "PATCH") => {
            let _ = version_num;
            write_records(
                access,
                req,
                version,
                Mode::Upsert { object: (*object).to_string(), field: (*field).to_string() },
            )
        }
        _ => Err(ApiError::not_found()),
    }
}

enum Mode {
    Create,
    Update,
    Upsert { object: String, field: String },
}

fn write_records(
    access: &mut Access,
    req: &ApiRequest,
    version: &str,
    mode: Mode,
) -> Result<ApiResponse, ApiError> {
    let Access::Write(tx) = access else {
        return Err(ApiError::method_not_allowed(req.method.as_str(), "GET"));
    };
    let body = req.body.as_ref().ok_or_else(|| {
        ApiError::bad_request(
            "JSON_PARSER_ERROR",
            "The HTTP entity body is required, but this request has no entity body.",
        )
    })?;
    let all_or_none = body.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
    let list = body
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("INVALID_INPUT", "records is required"))?;
    check_count(list.len())?;
    let schema = tx.db.schema.clone();
    let upsert_target = match &mode {
        Mode::Upsert { object, field } => {
            let index = schema.object_index(object).ok_or_else(ApiError::not_found)?;
            let field = records::external_id_field(&schema.objects[index], field)?;
            Some((index, field))
        }
        _ => None,
    };
    let start = tx.savepoint();
    let mut outcomes: Vec<WriteOutcome> = Vec::with_capacity(list.len());
    for record in list {
        let outcome = write_one(tx, &schema, record, &mode, upsert_target);
        outcomes.push(outcome);
    }
    let failed = outcomes.iter().any(Result::is_err);
    if failed && all_or_none {
        tx.rollback_to(start);
    }
    let rolled_back = json!([{
        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
        "fields": [],
    }]);
    let _ = version;
    let results: Vec<Value> = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok((id, created)) if failed && all_or_none => {
                let id = if matches!(mode, Mode::Update) {
                    id.map(|i| json!(i.to18())).unwrap_or(Value::Null)
                } else {
                    Value::Null
                };
                let _ = created;
                json!({"id": id, "success": false, "errors": rolled_back})
            }
            Ok((id, created)) => {
                let mut v = json!({"id": id.map(|i| i.to18()), "success": true, "errors": []});
                if let Some(created) = created {
                    v["created"] = json!(created);
                }
                v
            }
            Err((id, err)) => {
                let mut v = json!({"success": false, "errors": err.to_collection_errors()});
                match (id, all_or_none) {
                    (Some(id), _) => v["id"] = json!(id.to18()),
                    (None, true) => v["id"] = Value::Null,
                    (None, false) => {}
                }
                v
            }
        })
        .collect();
    Ok(ApiResponse { status: StatusCode::OK, body: Some(Value::Array(results)), location: None })
}

type WriteOutcome = Result<(Option<RecordId>, Option<bool>), (Option<RecordId>, ApiError)>;

fn write_one(
    tx: &mut Txn,
    schema: &super::schema::Schema,
    record: &Value,
    mode: &Mode,
    upsert: Option<(usize, usize)>,
) -> WriteOutcome {
    let type_name = record.get("attributes").and_then(|a| a.get("type")).and_then(Value::as_str);
    let object = match (upsert, type_name) {
        (Some((object, _)), _) => Some(object),
        (None, Some(name)) => schema.object_index(name),
        (None, None) => None,
    };
    let id_text = record.get("id").or_else(|| record.get("Id")).and_then(Value::as_str);
    let Some(object) = object else {
        let err = ApiError::fields("INVALID_TYPE", "Must send a concrete entity type.", vec![]);
        return Err((None, err));
    };
    let def = &schema.objects[object];
    match mode {
        Mode::Create => records::create(tx, object, record).map(|id| (Some(id), None)).map_err(|e| (None, e)),
        Mode::Update => {
            let Some(id) = id_text.and_then(RecordId::parse) else {
                let err = ApiError::fields(
                    "MALFORMED_ID",
                    format!("{} ID: id value of incorrect type: {}", def.label, id_text.unwrap_or("")),
                    vec!["Id".to_string()],
                );
                return Err((None, err));
            };
            let outcome = if id.prefix() != def.key_prefix {
                Err(ApiError::fields(
                    "MALFORMED_ID",
                    format!("{} ID: id value of incorrect type: {id}", def.label),
                    vec!["Id".to_string()],
                ))
            } else {
                records::update(tx, object, &id, record).map_err(|e| {
                    if e.status == StatusCode::NOT_FOUND {
                        ApiError::fields("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", vec![])
                    } else {
                        e
                    }
                })
            };
            outcome.map(|()| (Some(id), None)).map_err(|e| (Some(id), e))
        }
        Mode::Upsert { .. } => {
            let Some((_, field)) = upsert else { return Err((None, ApiError::not_found())) };
            let field_name = &def.fields[field].name;
            let key = record
                .as_object()
                .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(field_name)))
                .and_then(|(_, v)| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
            let Some(key) = key else {
                let err = ApiError::fields("MISSING_ARGUMENT", format!("{field_name} not specified"), vec![]);
                return Err((None, err));
            };
            let mut body = record.clone();
            if let Some(map) = body.as_object_mut() {
                map.retain(|k, _| !k.eq_ignore_ascii_case(field_name));
            }
            match records::upsert(tx, object, field, &key, &body) {
                Ok(Upserted::Written { id, created }) => Ok((Some(id), Some(created))),
                Ok(Upserted::Ambiguous(ids)) => {
                    let list: Vec<String> = ids.iter().map(RecordId::to18).collect();
                    Err((
                        None,
                        ApiError::fields(
                            "DUPLICATE_EXTERNAL_ID",
                            format!(
                                "{field_name}: more than one record found for external id field: {}",
                                list.join(", ")
                            ),
                            vec![field_name.clone()],
                        ),
                    ))
                }
                Err(e) => Err((None, e)),
            }
        }
    }
}

fn check_count(n: usize) -> Result<(), ApiError> {
    if n > MAX_RECORDS {
        return Err(ApiError::bad_request(
            "EXCEEDED_ID_LIMIT",
            format!("record limit reached. cannot submit more than {MAX_RECORDS} records into this call"),
        ));
    }
    Ok(())
}

fn delete_records(access: &mut Access, params: &Params) -> Result<ApiResponse, ApiError> {
    let Access::Write(tx) = access else { return Err(ApiError::method_not_allowed("DELETE", "GET")) };
    let ids_text = params.get("ids").unwrap_or_default();
    let ids: Vec<&str> = ids_text.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    check_count(ids.len())?;
    let all_or_none = params.get("allOrNone").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let start = tx.savepoint();
    let mut outcomes = Vec::with_capacity(ids.len());
    for text in &ids {
        let outcome = match RecordId::parse(text) {
            None => Err(ApiError::fields("MALFORMED_ID", format!("malformed id {text}"), vec![])),
            Some(id) => match tx.db.object_of(&id) {
                None => Err(ApiError::fields("MALFORMED_ID", format!("malformed id {text}"), vec![])),
                Some(object) => records::delete(tx, object, &id).map_err(|e| match e.code() {
                    "ENTITY_IS_DELETED" => ApiError::fields("ENTITY_IS_DELETED", "entity is deleted", vec![]),
                    _ => {
                        ApiError::fields("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", vec![])
                    }
                }),
            },
        };
        outcomes.push(outcome);
    }
    let failed = outcomes.iter().any(Result::is_err);
    if failed && all_or_none {
        tx.rollback_to(start);
    }
    let results: Vec<Value> = ids
        .iter()
        .zip(outcomes)
        .map(|(text, outcome)| {
            let id = RecordId::parse(text).map(|i| i.to18()).unwrap_or_else(|| (*text).to_string());
            match outcome {
                Ok(()) if failed && all_or_none => json!({"id": id, "success": false, "errors": [{
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
                    "fields": [],
                }]}),
                Ok(()) => json!({"id": id, "success": true, "errors": []}),
                Err(e) => json!({"id": id, "success": false, "errors": e.to_collection_errors()}),
            }
        })
        .collect();
    Ok(ApiResponse { status: StatusCode::OK, body: Some(Value::Array(results)), location: None })
}

fn retrieve(
    access: &Access,
    object_name: &str,
    ids: Vec<String>,
    fields: &str,
    version: &str,
) -> Result<ApiResponse, ApiError> {
    let db = match access {
        Access::Read(db) => *db,
        Access::Write(tx) => &*tx.db,
    };
    let object = db.schema.object_index(object_name).ok_or_else(ApiError::not_found)?;
    let def = &db.schema.objects[object];
    let ids: Vec<String> = ids.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if ids.len() > MAX_RETRIEVE {
        return Err(ApiError::bad_request(
            "EXCEEDED_ID_LIMIT",
            format!("Maximum number of ids is {MAX_RETRIEVE}"),
        ));
    }
    let fields = records::field_list(def, fields)?;
    if fields.is_empty() {
        return Err(ApiError::bad_request("MALFORMED_QUERY", "fields is required"));
    }
    let records: Vec<Value> = ids
        .iter()
        .map(|text| {
            RecordId::parse(text)
                .filter(|id| id.prefix() == def.key_prefix)
                .and_then(|id| {
                    db.tables[object].live(&id).map(|r| records::render(def, &id, r, Some(&fields), version))
                })
                .unwrap_or(Value::Null)
        })
        .collect();
    Ok(ApiResponse { status: StatusCode::OK, body: Some(Value::Array(records)), location: None })
}
