//! `/query` and `/queryAll`: runs SOQL and pages results through query locators.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Salesforce;
use super::errors::ApiError;
use super::ids::make_id;
use super::soql::{self, exec};
use super::store::Db;

/// Default and maximum rows per page.
pub const MAX_BATCH: usize = 2000;
/// Smallest batch size Salesforce honours.
pub const MIN_BATCH: usize = 200;
/// Open cursors kept per org; the oldest is closed beyond this, as Salesforce does per user.
const MAX_CURSORS: usize = 50;

/// Rows not yet fetched, by locator id.
#[derive(Debug, Default)]
pub struct Cursors {
    open: VecDeque<(String, Cursor)>,
    next: u64,
}

#[derive(Debug)]
struct Cursor {
    rows: Arc<Vec<Value>>,
    batch: usize,
}

/// The batch size requested by `Sforce-Query-Options: batchSize=n`, clamped to 200..=2000.
pub fn batch_size(header: Option<&str>) -> usize {
    header
        .and_then(|h| {
            h.split(',')
                .filter_map(|part| part.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("batchSize"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        })
        .map_or(MAX_BATCH, |n| n.clamp(MIN_BATCH, MAX_BATCH))
}

/// Runs a query and returns its first page.
pub fn run(
    sf: &Salesforce,
    db: &Db,
    soql_text: &str,
    all_rows: bool,
    batch: usize,
    version: &str,
) -> Result<Value, ApiError> {
    let soql_text = soql_text.trim();
    if soql_text.is_empty() {
        return Err(ApiError::bad_request("MALFORMED_QUERY", "A query string has to be specified"));
    }
    let query = soql::parse(soql_text).map_err(|e| ApiError::bad_request(e.code, e.render(soql_text)))?;
    let plan =
        exec::plan(&db.schema, &query).map_err(|e| ApiError::bad_request(e.code, e.render(soql_text)))?;
    let rows = exec::run(db, &plan, all_rows, version);
    if rows.records.len() <= batch {
        return Ok(json!({"totalSize": rows.total, "done": true, "records": rows.records}));
    }
    let total = rows.total;
    let rows = Arc::new(rows.records);
    let first: Vec<Value> = rows[..batch].to_vec();
    let locator = sf.cursors().open(rows, batch);
    Ok(json!({
        "totalSize": total,
        "done": false,
        "nextRecordsUrl": format!("/services/data/{version}/query/{locator}-{batch}"),
        "records": first,
    }))
}

/// Serves the page at a locator `01g...-offset`.
pub fn more(sf: &Salesforce, locator: &str, version: &str) -> Result<Value, ApiError> {
    let invalid = || ApiError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    let (id, offset) = locator.rsplit_once('-').ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    let mut cursors = sf.cursors();
    let (rows, batch) = cursors.get(id).ok_or_else(invalid)?;
    if offset >= rows.len() {
        return Err(invalid());
    }
    let end = (offset + batch).min(rows.len());
    let page: Vec<Value> = rows[offset..end].to_vec();
    if end == rows.len() {
        cursors.close(id);
        return Ok(json!({"totalSize": rows.len(), "done": true, "records": page}));
    }
    Ok(json!({
        "totalSize": rows.len(),
        "done": false,
        "nextRecordsUrl": format!("/services/data/{version}/query/{id}-{end}"),
        "records": page,
    }))
}

impl Cursors {
    fn open(&mut self, rows: Arc<Vec<Value>>, batch: usize) -> String {
        self.next += 1;
        let id = make_id("01g", self.next).map(|id| id.to18()).unwrap_or_default();
        if self.open.len() >= MAX_CURSORS {
            self.open.pop_front();
        }
        self.open.push_back((id.clone(), Cursor { rows, batch }));
        id
    }

    fn get(&self, id: &str) -> Option<(Arc<Vec<Value>>, usize)> {
        self.open.iter().find(|(k, _)| k == id).map(|(_, c)| (c.rows.clone(), c.batch))
    }

    fn close(&mut self, id: &str) {
        self.open.retain(|(k, _)| k != id);
    }
}

/// 400 for `/query` without `q`.
pub fn missing_query() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", "A query string has to be specified")
}
