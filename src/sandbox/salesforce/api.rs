//! Routing of `/services/data/...`: one dispatcher shared by the HTTP layer and by composite
//! subrequests, so both behave identically.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::Salesforce;
use super::composite;
use super::describe;
use super::errors::ApiError;
use super::query;
use super::records::{self, Upserted};
use super::store::{Db, Txn};
use super::value::{format_datetime, now_ms, parse_datetime};

/// Newest API version served.
pub const LATEST_VERSION: &str = "v62.0";
/// Oldest API version served.
const OLDEST_VERSION: u32 = 20;
/// Newest API version number served.
const NEWEST_VERSION: u32 = 62;
/// Upsert answers 200 with `created` from this version on (204 before).
const UPSERT_CREATED_VERSION: u32 = 46;

/// One REST call, already authenticated and counted.
#[derive(Debug, Clone)]
pub struct ApiRequest<'a> {
    /// HTTP method.
    pub method: Method,
    /// Path after `/services/data/`, e.g. `v59.0/sobjects/Account`.
    pub path: &'a str,
    /// Raw query string.
    pub query: Option<&'a str>,
    /// Parsed JSON body.
    pub body: Option<Value>,
    /// Rows per query page.
    pub batch_size: usize,
}

/// A REST answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body (`None` for 204).
    pub body: Option<Value>,
    /// `Location` of a created record.
    pub location: Option<String>,
}

impl ApiResponse {
    fn ok(body: Value) -> Self {
        ApiResponse { status: StatusCode::OK, body: Some(body), location: None }
    }

    fn no_content() -> Self {
        ApiResponse { status: StatusCode::NO_CONTENT, body: None, location: None }
    }

    /// An error answer.
    pub fn error(err: &ApiError) -> Self {
        ApiResponse { status: err.status, body: Some(err.to_json()), location: None }
    }
}

/// `/services/data/` — every version, oldest first.
pub fn versions() -> Value {
    let versions: Vec<Value> = (OLDEST_VERSION..=NEWEST_VERSION)
        .map(|v| json!({"label": version_label(v), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")}))
        .collect();
    Value::Array(versions)
}

fn version_label(v: u32) -> String {
    // v20 was Winter '11; three releases a year (Spring, Summer, Winter).
    let index = v - 20;
    let season = ["Winter", "Spring", "Summer"][(index % 3) as usize];
    let year = 11 + index / 3;
    format!("{season} '{year}")
}

/// Parses `vNN.N`, returning the major version.
pub fn parse_version(text: &str) -> Option<u32> {
    let number = text.strip_prefix('v')?;
    let (major, minor) = number.split_once('.')?;
    let major: u32 = major.parse().ok()?;
    (minor == "0" && (OLDEST_VERSION..=NEWEST_VERSION).contains(&major)).then_some(major)
}

/// Whether a request only reads (so it can run under the shared lock).
pub fn is_read(req: &ApiRequest) -> bool {
    matches!(req.method, Method::GET | Method::HEAD)
}

/// Serves a read-only request.
pub fn read(sf: &Salesforce, db: &Db, req: &ApiRequest) -> ApiResponse {
    match route(sf, Access::Read(db), req) {
        Ok(resp) => resp,
        Err(err) => ApiResponse::error(&err),
    }
}

/// Serves a request that may write, inside `tx`.
pub fn write(sf: &Salesforce, tx: &mut Txn, req: &ApiRequest) -> ApiResponse {
    match route(sf, Access::Write(tx), req) {
        Ok(resp) => resp,
        Err(err) => ApiResponse::error(&err),
    }
}

/// What a handler may touch.
pub enum Access<'a, 'b> {
    /// Shared read access.
    Read(&'a Db),
    /// A write transaction.
    Write(&'a mut Txn<'b>),
}

impl Access<'_, '_> {
    fn db(&self) -> &Db {
        match self {
            Access::Read(db) => db,
            Access::Write(tx) => tx.db,
        }
    }
}

fn route(sf: &Salesforce, mut access: Access, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let Some((version_text, rest)) = segments.split_first() else {
        return Err(ApiError::not_found());
    };
    let version_num = parse_version(version_text).ok_or_else(ApiError::not_found)?;
    let version = *version_text;
    let method = req.method.as_str();
    let params = Params::new(req.query);
    match rest {
        [] => only_get(method, || resources(sf, version)),
        ["limits"] => only_get(method, || limits(sf)),
        ["sobjects"] => only_get(method, || describe::describe_global(&access.db().schema, version)),
        ["query"] | ["queryAll"] => {
            let q = params.get("q").ok_or_else(query::missing_query)?;
            check_get(method)?;
            let all = rest[0] == "queryAll";
            query::run(sf, access.db(), &q, all, req.batch_size, version).map(ApiResponse::ok)
        }
        ["query", locator] | ["queryAll", locator] => {
            check_get(method)?;
            query::more(sf, locator, version).map(ApiResponse::ok)
        }
        ["sobjects", object, tail @ ..] => {
            sobject(sf, &mut access, req, version, version_num, object, tail, &params)
        }
        ["composite"] => {
            check_method(method, "POST", "POST")?;
            let Access::Write(tx) = access else { return Err(ApiError::method_not_allowed(method, "POST")) };
            composite::composite(sf, tx, req.body.as_ref(), req.batch_size)
        }
        ["composite", "sobjects", tail @ ..] => {
            composite::collections(&mut access, req, version, version_num, tail, &params)
        }
        _ => Err(ApiError::not_found()),
    }
}

fn only_get(method: &str, f: impl FnOnce() -> Value) -> Result<ApiResponse, ApiError> {
    check_get(method)?;
    Ok(ApiResponse::ok(f()))
}

fn check_get(method: &str) -> Result<(), ApiError> {
    check_method(method, "GET", "GET,HEAD")
}

fn check_method(method: &str, wanted: &str, allowed: &str) -> Result<(), ApiError> {
    if method == wanted || (wanted == "GET" && method == "HEAD") {
        return Ok(());
    }
    Err(ApiError::method_not_allowed(method, allowed))
}

#[allow(clippy::too_many_arguments)]
fn sobject(
    sf: &Salesforce,
    access: &mut Access,
    req: &ApiRequest,
    version: &str,
    version_num: u32,
    object_name: &str,
    tail: &[&str],
    params: &Params,
) -> Result<ApiResponse, ApiError> {
    let schema = access.db().schema.clone();
    let object = schema.object_index(object_name).ok_or_else(ApiError::not_found)?;
    let def = &schema.objects[object];
    let method = req.method.as_str();
    match tail {
        [] => match method {
            "GET" | "HEAD" => Ok(ApiResponse::ok(basic_info(access.db(), object, version))),
            "POST" => {
                let tx = writer(access, method)?;
                let id = records::create(tx, object, body(req)?)?;
                Ok(created(version, def, &id))
            }
            _ => Err(ApiError::method_not_allowed(method, "GET,HEAD,POST")),
        },
        ["describe"] => only_get(method, || describe::describe(&schema, def, version, &sf.config().base_url)),
        ["updated"] => {
            check_get(method)?;
            replication(access.db(), object, params, false, sf.started_ms())
        }
        ["deleted"] => {
            check_get(method)?;
            replication(access.db(), object, params, true, sf.started_ms())
        }
        ["Id"] if method == "POST" => {
            let tx = writer(access, method)?;
            let id = records::create(tx, object, body(req)?)?;
            Ok(created(version, def, &id))
        }
        [id_text] => {
            let id = records::parse_record_id(def, id_text)?;
            match method {
                "GET" | "HEAD" => {
                    let record = records::get(access.db(), object, &id)?;
                    let fields = params.get("fields").map(|f| records::field_list(def, &f)).transpose()?;
                    Ok(ApiResponse::ok(records::render(def, &id, record, fields.as_deref(), version)))
                }
                "PATCH" => {
                    let tx = writer(access, method)?;
                    records::update(tx, object, &id, body(req)?)?;
                    Ok(ApiResponse::no_content())
                }
                "DELETE" => {
                    let tx = writer(access, method)?;
                    records::delete(tx, object, &id)?;
                    Ok(ApiResponse::no_content())
                }
                _ => Err(ApiError::method_not_allowed(method, "GET,HEAD,PATCH,DELETE")),
            }
        }
        [field_name, key] => {
            let field = records::external_id_field(def, field_name)?;
            match method {
                "GET" | "HEAD" => by_external_id(access.db(), object, field, key, params, version),
                "PATCH" | "POST" => {
                    let tx = writer(access, method)?;
                    let outcome = records::upsert(tx, object, field, key, body(req)?)?;
                    Ok(upsert_response(outcome, def, version, version_num))
                }
                "DELETE" => {
                    let tx = writer(access, method)?;
                    let ids = records::find_by_external_id(tx.db, object, field, key);
                    match ids.as_slice() {
                        [] => Err(ApiError::not_found()),
                        [id] => {
                            records::delete(tx, object, id)?;
                            Ok(ApiResponse::no_content())
                        }
                        many => Ok(multiple_choices(def, many, version)),
                    }
                }
                _ => Err(ApiError::method_not_allowed(method, "GET,HEAD,PATCH,DELETE")),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

/// The write transaction, or 405 when the route was taken under the read lock.
fn writer<'a, 'b>(access: &'a mut Access<'_, 'b>, method: &str) -> Result<&'a mut Txn<'b>, ApiError> {
    match access {
        Access::Write(tx) => Ok(tx),
        Access::Read(_) => Err(ApiError::method_not_allowed(method, "GET,HEAD")),
    }
}

fn body<'r>(req: &'r ApiRequest) -> Result<&'r Value, ApiError> {
    req.body.as_ref().ok_or_else(|| {
        ApiError::bad_request(
            "JSON_PARSER_ERROR",
            "The HTTP entity body is required, but this request has no entity body.",
        )
    })
}

fn created(version: &str, def: &super::schema::ObjectDef, id: &super::ids::RecordId) -> ApiResponse {
    ApiResponse {
        status: StatusCode::CREATED,
        body: Some(json!({"id": id.to18(), "success": true, "errors": []})),
        location: Some(records::record_url(version, def, id)),
    }
}

fn upsert_response(
    outcome: Upserted,
    def: &super::schema::ObjectDef,
    version: &str,
    version_num: u32,
) -> ApiResponse {
    match outcome {
        Upserted::Written { id, created: true } => {
            let mut body = json!({"id": id.to18(), "success": true, "errors": []});
            if version_num >= UPSERT_CREATED_VERSION {
                body["created"] = json!(true);
            }
            ApiResponse {
                status: StatusCode::CREATED,
                body: Some(body),
                location: Some(records::record_url(version, def, &id)),
            }
        }
        Upserted::Written { id, created: false } if version_num >= UPSERT_CREATED_VERSION => ApiResponse {
            status: StatusCode::OK,
            body: Some(json!({"id": id.to18(), "success": true, "errors": [], "created": false})),
            location: Some(records::record_url(version, def, &id)),
        },
        Upserted::Written { .. } => ApiResponse::no_content(),
        Upserted::Ambiguous(ids) => multiple_choices(def, &ids, version),
    }
}

fn multiple_choices(
    def: &super::schema::ObjectDef,
    ids: &[super::ids::RecordId],
    version: &str,
) -> ApiResponse {
    let urls: Vec<Value> = ids.iter().map(|id| json!(records::record_url(version, def, id))).collect();
    ApiResponse { status: StatusCode::MULTIPLE_CHOICES, body: Some(Value::Array(urls)), location: None }
}

fn by_external_id(
    db: &Db,
    object: usize,
    field: usize,
    key: &str,
    params: &Params,
    version: &str,
) -> Result<ApiResponse, ApiError> {
    let def = &db.schema.objects[object];
    let ids = records::find_by_external_id(db, object, field, key);
    match ids.as_slice() {
        [] => Err(ApiError::not_found()),
        [id] => {
            let record = records::get(db, object, id)?;
            let fields = params.get("fields").map(|f| records::field_list(def, &f)).transpose()?;
            Ok(ApiResponse::ok(records::render(def, id, record, fields.as_deref(), version)))
        }
        many => Ok(multiple_choices(def, many, version)),
    }
}

/// `GET /services/data/vXX.X/` — resource names to paths.
fn resources(sf: &Salesforce, version: &str) -> Value {
    let base = format!("/services/data/{version}");
    let mut map = serde_json::Map::new();
    for name in [
        "tooling",
        "metadata",
        "eclair",
        "folders",
        "prechatForms",
        "contact-tracing",
        "chatter",
        "tabs",
        "appMenu",
        "quickActions",
        "queryAll",
        "commerce",
        "wave",
        "iot",
        "analytics",
        "search",
        "smartdatadiscovery",
        "theme",
        "nouns",
        "domino",
        "event",
        "serviceTemplates",
        "recent",
        "connect",
        "licensing",
        "limits",
        "process",
        "dedupe",
        "async-queries",
        "query",
        "jsonxform",
        "match",
        "emailConnect",
        "compactLayouts",
        "knowledgeManagement",
        "sobjects",
        "actions",
        "support",
    ] {
        map.insert(name.to_string(), json!(format!("{base}/{name}")));
    }
    map.insert("composite".into(), json!(format!("{base}/composite")));
    map.insert("identity".into(), json!(sf.identity_url()));
    Value::Object(map)
}

fn limits(sf: &Salesforce) -> Value {
    let max = sf.config().daily_api_limit;
    let remaining = max.saturating_sub(sf.api_used());
    json!({
        "DailyApiRequests": {"Max": max, "Remaining": remaining},
        "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
        "ConcurrentSyncReportRuns": {"Max": 20, "Remaining": 20},
        "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
        "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
        "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
        "DataStorageMB": {"Max": 5, "Remaining": 5},
        "FileStorageMB": {"Max": 20, "Remaining": 20},
        "HourlyTimeBasedWorkflow": {"Max": 50, "Remaining": 50},
        "SingleEmail": {"Max": 15, "Remaining": 15},
    })
}

fn basic_info(db: &Db, object: usize, version: &str) -> Value {
    let def = &db.schema.objects[object];
    let name_field = def.name_field();
    let recent: Vec<Value> = db.tables[object]
        .records
        .iter()
        .rev()
        .filter(|(_, r)| r.deleted_at.is_none())
        .take(5)
        .map(|(id, r)| {
            let mut fields = vec![0];
            fields.extend(name_field);
            records::render(def, id, r, Some(&fields), version)
        })
        .collect();
    json!({"objectDescribe": describe::global_entry(def, version), "recentItems": recent})
}

/// `/updated` and `/deleted`: ids changed or deleted between `start` and `end`.
fn replication(
    db: &Db,
    object: usize,
    params: &Params,
    deleted: bool,
    started: i64,
) -> Result<ApiResponse, ApiError> {
    let parse = |name: &str| -> Result<i64, ApiError> {
        let text = params
            .get(name)
            .ok_or_else(|| ApiError::bad_request("MISSING_ARGUMENT", format!("{name} was not specified")))?;
        parse_datetime(&text).ok_or_else(|| {
            ApiError::bad_request("INVALID_REPLICATION_DATE", format!("Unable to parse {name} date: {text}"))
        })
    };
    let start = parse("start")?;
    let end = parse("end")?;
    if end < start {
        return Err(ApiError::bad_request("INVALID_REPLICATION_DATE", "end date must be after start date"));
    }
    // The end has minute granularity; coverage stops at the current second, so a change in
    // this second shows up in the next window.
    let minute = 60_000;
    let latest = (end - end.rem_euclid(minute)).min(now_ms());
    let def = &db.schema.objects[object];
    let table = &db.tables[object];
    if deleted {
        let records: Vec<Value> = table
            .records
            .iter()
            .filter_map(|(id, r)| r.deleted_at.map(|at| (id, at)))
            .filter(|(_, at)| *at >= start && *at < latest.max(start))
            .map(|(id, at)| json!({"id": id.to18(), "deletedDate": format_datetime(at)}))
            .collect();
        let earliest = started - started.rem_euclid(minute);
        return Ok(ApiResponse::ok(json!({
            "deletedRecords": records,
            "earliestDateAvailable": format_datetime(earliest),
            "latestDateCovered": format_datetime(latest),
        })));
    }
    let stamp = def.field_index("SystemModstamp").unwrap_or(0);
    let ids: Vec<Value> = table
        .records
        .iter()
        .filter(|(_, r)| r.deleted_at.is_none())
        .filter(|(_, r)| match r.values[stamp] {
            super::value::Val::DateTime(ms) => ms >= start && ms < latest.max(start),
            _ => false,
        })
        .map(|(id, _)| json!(id.to18()))
        .collect();
    Ok(ApiResponse::ok(json!({"ids": ids, "latestDateCovered": format_datetime(latest)})))
}

/// Decoded query-string parameters.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string.
    pub fn new(query: Option<&str>) -> Self {
        Params(
            query
                .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    /// The first value of a parameter.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
}
