//! `/query` and `/queryAll`: runs SOQL and pages results through query locators.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Salesforce;
use super::errors::ApiError;
use super::ids::{RecordId, make_id};
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

/// An open query: its plan and the selected ids; pages are rendered when fetched.
#[derive(Debug, Clone)]
struct Cursor {
    plan: Arc<exec::Plan>,
    ids: Arc<Vec<RecordId>>,
    batch: usize,
    all_rows: bool,
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
        return Err(missing_query());
    }
    let query = soql::parse(soql_text).map_err(|e| ApiError::bad_request(e.code, e.render(soql_text)))?;
    let plan =
        exec::plan(&db.schema, &query).map_err(|e| ApiError::bad_request(e.code, e.render(soql_text)))?;
    let ids = exec::select(db, &plan, all_rows);
    let total = ids.len();
    if exec::counts_only(&plan) {
        return Ok(json!({"totalSize": total, "done": true, "records": []}));
    }
    if total <= batch {
        let records = exec::render(db, &plan, &ids, all_rows, version);
        return Ok(json!({"totalSize": total, "done": true, "records": records}));
    }
    let first = exec::render(db, &plan, &ids[..batch], all_rows, version);
    let locator = sf.cursors().open(Cursor { plan: Arc::new(plan), ids: Arc::new(ids), batch, all_rows });
    Ok(json!({
        "totalSize": total,
        "done": false,
        "nextRecordsUrl": format!("/services/data/{version}/query/{locator}-{batch}"),
        "records": first,
    }))
}

/// Serves the page at a locator `01g...-offset`.
pub fn more(sf: &Salesforce, db: &Db, locator: &str, version: &str) -> Result<Value, ApiError> {
    let invalid = || ApiError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    let (id, offset) = locator.rsplit_once('-').ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    let mut cursors = sf.cursors();
    let Cursor { plan, ids, batch, all_rows } = cursors.get(id).ok_or_else(invalid)?;
    if offset >= ids.len() {
        return Err(invalid());
    }
    let end = (offset + batch).min(ids.len());
    let page = exec::render(db, &plan, &ids[offset..end], all_rows, version);
    if end == ids.len() {
        cursors.close(id);
        return Ok(json!({"totalSize": ids.len(), "done": true, "records": page}));
    }
    Ok(json!({
        "totalSize": ids.len(),
        "done": false,
        "nextRecordsUrl": format!("/services/data/{version}/query/{id}-{end}"),
        "records": page,
    }))
}

impl Cursors {
    fn open(&mut self, cursor: Cursor) -> String {
        self.next += 1;
        let id = make_id("01g", self.next).map(|id| id.to18()).unwrap_or_default();
        if self.open.len() >= MAX_CURSORS {
            self.open.pop_front();
        }
        self.open.push_back((id.clone(), cursor));
        id
    }

    fn get(&self, id: &str) -> Option<Cursor> {
        self.open.iter().find(|(k, _)| k == id).map(|(_, c)| c.clone())
    }

    fn close(&mut self, id: &str) {
        self.open.retain(|(k, _)| k != id);
    }
}

/// 400 for `/query` without `q`.
pub fn missing_query() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", "A query string has to be specified")
}
