//! Salesforce emulator: OAuth, sObjects, SOQL, composite and collections.
//!
//! Layout: [`ids`] (18-character ids), [`schema`] and [`describe`] (the data model),
//! [`value`] and [`store`] (records in memory with an undo log), [`records`] (validation and
//! CRUD), [`soql`] (parser and executor), [`query`] (paging), [`composite`], [`auth`] (OAuth and
//! sessions), [`api`] (routing of `/services/data`), [`http`] (the axum router and admin routes).

pub mod api;
pub mod auth;
pub mod composite;
pub mod describe;
pub mod errors;
pub mod http;
pub mod ids;
pub mod query;
pub mod records;
pub mod schema;
pub mod soql;
pub mod store;
pub mod value;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::Value;

pub use http::router;

use ids::RecordId;
use schema::Schema;
use store::{Db, Txn};

/// Problems loading the emulator's configuration or seed data.
#[derive(Debug, thiserror::Error)]
pub enum SalesforceError {
    /// The seed data is not an object of `{"Object": [records]}`.
    #[error(
        "seed data must map object names to arrays of records, e.g. {{\"Account\": [{{\"Name\": \"Contoso\"}}]}}"
    )]
    SeedShape,
    /// The seed data names an object the sandbox does not have.
    #[error("seed data names unknown object '{0}'; known objects: {1}")]
    UnknownObject(String, String),
    /// A seed record was rejected.
    #[error("seed record {index} of {object} was rejected: {message}")]
    SeedRecord {
        /// Object name.
        object: String,
        /// Position in its array.
        index: usize,
        /// The Salesforce error message.
        message: String,
    },
    /// The JWT key is not a PEM public key or certificate.
    #[error("the JWT verification key must be a PEM `PUBLIC KEY`, `RSA PUBLIC KEY` or `CERTIFICATE`")]
    JwtKey,
}

/// Settings of the Salesforce emulator.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// Base URL the emulator is reachable at (the `instance_url` it hands out).
    pub base_url: String,
    /// Connected-app consumer key.
    pub client_id: String,
    /// Connected-app consumer secret.
    pub client_secret: String,
    /// The API user's username.
    pub username: String,
    /// The API user's password.
    pub password: String,
    /// Security token appended to the password (accepted with or without it).
    pub security_token: String,
    /// A refresh token valid from the start.
    pub refresh_token: String,
    /// An access token valid from the start.
    pub access_token: String,
    /// Daily API request allocation; calls beyond it get 403 `REQUEST_LIMIT_EXCEEDED`.
    pub daily_api_limit: u64,
    /// PEM public key or certificate that JWT bearer assertions must be signed for.
    pub jwt_public_key_pem: Option<String>,
    /// Key prefix of the Microsoft Solutions custom object (assigned per org in real life).
    pub custom_object_prefix: String,
    /// Records loaded at start and on reset: `{"Object": [records]}`.
    pub seed_data: Option<Value>,
    /// Objects (`Microsoft_Solution__c`) and fields (`Opportunity.Audit__c`) this org lacks, as
    /// an org does before the co-sell metadata is installed.
    pub without: Vec<String>,
}

impl SalesforceConfig {
    /// Sandbox defaults for an emulator served at `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        SalesforceConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            client_id: "3MVG9coflowSandboxConsumerKey".to_string(),
            client_secret: "coflow-sandbox-consumer-secret".to_string(),
            username: "integration@coflow.sandbox".to_string(),
            password: "sandbox-password".to_string(),
            security_token: "SBXTOKEN".to_string(),
            refresh_token: "5Aep861coflowSandboxRefreshToken".to_string(),
            access_token: format!("{ORG_ID15}!AQ4AQcoflowSandboxAccessToken"),
            daily_api_limit: 15_000,
            jwt_public_key_pem: None,
            custom_object_prefix: "a0X".to_string(),
            seed_data: None,
            without: Vec::new(),
        }
    }

    /// DER of the JWT verification key, if one is configured and valid.
    pub fn jwt_public_key_der(&self) -> Option<Vec<u8>> {
        self.jwt_public_key_pem.as_deref().and_then(auth::pem_to_public_key_der)
    }
}

/// The sandbox org's id (15 characters).
const ORG_ID15: &str = "00D5g00000Cfl0w";
/// The API user's id (15 characters).
const USER_ID15: &str = "0055g00000Sync1";

/// The emulator's state.
#[derive(Debug)]
pub struct Salesforce {
    config: SalesforceConfig,
    schema: Arc<Schema>,
    db: RwLock<Db>,
    tokens: RwLock<auth::Tokens>,
    cursors: Mutex<query::Cursors>,
    api_used: AtomicU64,
    writes: AtomicU64,
    org_id: String,
    user_id: String,
    started: i64,
}

impl Salesforce {
    /// An org with the API user and any seed data loaded.
    pub fn new(config: SalesforceConfig) -> Result<Arc<Self>, SalesforceError> {
        if config.jwt_public_key_pem.is_some() && config.jwt_public_key_der().is_none() {
            return Err(SalesforceError::JwtKey);
        }
        let schema = Arc::new(Schema::standard(&config.custom_object_prefix).without(&config.without));
        let org_id = RecordId::parse(ORG_ID15).map(|id| id.to18()).unwrap_or_default();
        let user_id = RecordId::parse(USER_ID15).map(|id| id.to18()).unwrap_or_default();
        let started = value::now_ms();
        let db = fresh_db(&schema, &config, &user_id, started)?;
        let mut tokens = auth::Tokens::default();
        tokens.add_access(config.access_token.clone(), None);
        tokens.add_refresh(config.refresh_token.clone());
        Ok(Arc::new(Salesforce {
            config,
            schema,
            db: RwLock::new(db),
            tokens: RwLock::new(tokens),
            cursors: Mutex::new(query::Cursors::default()),
            api_used: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            org_id,
            user_id,
            started,
        }))
    }

    /// Its settings.
    pub fn config(&self) -> &SalesforceConfig {
        &self.config
    }

    /// The data model.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The identity URL whose last two segments are the org and user ids.
    pub fn identity_url(&self) -> String {
        format!("{}/id/{}/{}", self.config.base_url, self.org_id, self.user_id)
    }

    /// The org id (18 characters).
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// The API user's id (18 characters).
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Reads the records.
    pub fn db(&self) -> RwLockReadGuard<'_, Db> {
        self.db.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the records.
    pub fn db_mut(&self) -> RwLockWriteGuard<'_, Db> {
        self.db.write().unwrap_or_else(|e| e.into_inner())
    }

    fn tokens_read(&self) -> RwLockReadGuard<'_, auth::Tokens> {
        self.tokens.read().unwrap_or_else(|e| e.into_inner())
    }

    fn tokens_write(&self) -> RwLockWriteGuard<'_, auth::Tokens> {
        self.tokens.write().unwrap_or_else(|e| e.into_inner())
    }

    fn cursors(&self) -> MutexGuard<'_, query::Cursors> {
        self.cursors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an access token is currently valid.
    pub fn token_is_valid(&self, token: &str) -> bool {
        self.tokens_read().is_valid(token)
    }

    /// Issues a new access token.
    pub fn issue_access_token(&self, refresh: Option<String>) -> String {
        let token = format!("{ORG_ID15}!AQ4AQ{}", uuid::Uuid::new_v4().simple());
        self.tokens_write().add_access(token.clone(), refresh);
        token
    }

    /// Revokes a token; false when it was unknown.
    pub fn revoke_token(&self, token: &str) -> bool {
        self.tokens_write().revoke(token)
    }

    /// Ends every session, so clients must refresh (refresh tokens stay valid).
    pub fn expire_sessions(&self) {
        self.tokens_write().expire_access();
    }

    /// Counts one API request; `None` once the daily allocation is spent.
    pub fn count_api_call(&self) -> Option<u64> {
        let max = self.config.daily_api_limit;
        self.api_used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| (used < max).then_some(used + 1))
            .ok()
            .map(|used| used + 1)
    }

    /// API requests used so far today.
    pub fn api_used(&self) -> u64 {
        self.api_used.load(Ordering::SeqCst)
    }

    /// Counts one API request that may write (any method but GET and HEAD).
    pub(super) fn count_write(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }

    /// API requests that may write, received so far (tests asserting a write was not repeated).
    pub fn writes_received(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// The value of the `Sforce-Limit-Info` header.
    pub fn limit_info(&self) -> String {
        format!("api-usage={}/{}", self.api_used(), self.config.daily_api_limit)
    }

    fn now_seconds(&self) -> i64 {
        value::now_ms() / 1000
    }

    /// Back to the seed data: records, cursors and API usage reset; sessions are kept.
    pub fn reset(&self) -> Result<(), SalesforceError> {
        let db = fresh_db(&self.schema, &self.config, &self.user_id, value::now_ms())?;
        *self.db_mut() = db;
        *self.cursors() = query::Cursors::default();
        self.api_used.store(0, Ordering::SeqCst);
        self.writes.store(0, Ordering::SeqCst);
        Ok(())
    }

    /// Every record by object name, for tests asserting final state.
    pub fn snapshot(&self, include_deleted: bool) -> Value {
        let db = self.db();
        let mut out = serde_json::Map::new();
        for (object, def) in self.schema.objects.iter().enumerate() {
            let records: Vec<Value> = db.tables[object]
                .records
                .iter()
                .filter(|(_, r)| include_deleted || r.deleted_at.is_none())
                .map(|(id, r)| records::render(def, id, r, None, api::LATEST_VERSION))
                .collect();
            out.insert(def.name.clone(), Value::Array(records));
        }
        Value::Object(out)
    }

    /// When the org started (the delete log's horizon).
    pub fn started_ms(&self) -> i64 {
        self.started
    }
}

/// An org holding only the API user and the seed records.
fn fresh_db(
    schema: &Arc<Schema>,
    config: &SalesforceConfig,
    user_id: &str,
    now: i64,
) -> Result<Db, SalesforceError> {
    let user_arc: Arc<str> = Arc::from(user_id);
    let mut db = Db::new(schema.clone(), user_arc, now);
    let mut tx = Txn::new(&mut db);
    let user = serde_json::json!({
        "Username": config.username, "LastName": "Integration", "FirstName": "Coflow",
        "Email": config.username, "Alias": "coflow", "Title": "API user",
    });
    let user_object = schema.object_index("User").unwrap_or_default();
    let options = records::CreateOptions { id: RecordId::parse(user_id), trusted: true };
    if let Some(map) = user.as_object() {
        records::create_with(&mut tx, user_object, map, options).map_err(|e| {
            SalesforceError::SeedRecord { object: "User".into(), index: 0, message: e.to_string() }
        })?;
    }
    if let Some(seed) = &config.seed_data {
        load_seed(&mut tx, schema, seed)?;
    }
    Ok(db)
}

fn load_seed(tx: &mut Txn, schema: &Schema, seed: &Value) -> Result<(), SalesforceError> {
    let objects = seed.as_object().ok_or(SalesforceError::SeedShape)?;
    for (name, list) in objects {
        let object = schema.object_index(name).ok_or_else(|| {
            let known: Vec<&str> = schema.objects.iter().map(|o| o.name.as_str()).collect();
            SalesforceError::UnknownObject(name.clone(), known.join(", "))
        })?;
        let list = list.as_array().ok_or(SalesforceError::SeedShape)?;
        for (index, record) in list.iter().enumerate() {
            let map = record.as_object().ok_or(SalesforceError::SeedShape)?;
            let id = map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("id"))
                .and_then(|(_, v)| v.as_str())
                .and_then(RecordId::parse);
            let options = records::CreateOptions { id, trusted: true };
            records::create_with(tx, object, map, options).map_err(|e| SalesforceError::SeedRecord {
                object: name.clone(),
                index,
                message: e.items.first().map(|i| i.message.clone()).unwrap_or_default(),
            })?;
        }
    }
    Ok(())
}
