//! The co-sell solution end to end, through the service: both emulators and `coflow serve`
//! (`Server::start`) in-process, running the real `flows/` folder, with Partner Center's webhook
//! registered to the server's `/hooks/pc-to-sf` by the registration flow, as an admin does once.
//!
//! The emulators count every request by route (zero-delay fault rules, whose hit counts are
//! exact), so the loop-prevention test asserts how many writes one change makes on each side.
//! "Settled" means: no run queued or running, no webhook delivery pending, and nothing new for
//! 3 s, longer than a Salesforce poll takes to see a change (changes wait 2 s to settle, polls
//! run every 250 ms).
//!
//! The 500 + 500 initial sync is `#[ignore]`d (minutes in a debug build):
//! `cargo test --test e2e_cosell -- --ignored --nocapture` prints its wall time and API calls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coflow::connectors::config::LoadedConnections;
use coflow::connectors::salesforce::SalesforceConnector;
use coflow::connectors::{Connector, HttpClient, OperationCall};
use coflow::engine::{self, RunOptions, TriggerEvent};
use coflow::sandbox::faults::Faults;
use coflow::sandbox::{self, Sandbox, SandboxConfig};
use coflow::server::registry::FlowRegistry;
use coflow::server::{Server, Settings};
use coflow::store::{self, RunStatus};
use serde_json::{Value, json};

fn flows_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flows")
}

/// Zero-delay rules that only count requests; installed first, so a fault rule added later
/// still lets them count the requests it fails.
const COUNTED: &[(&str, &str)] = &[
    ("sf_create", "POST /services/data/*/sobjects/*"),
    ("sf_update", "PATCH /services/data/*/sobjects/*"),
    ("sf_delete", "DELETE /services/data/*/sobjects/*"),
    ("sf_composite", "* /services/data/*/composite*"),
    ("sf_api", "* /services/data/*"),
    ("sf_token", "POST /services/oauth2/token"),
    ("pc_create", "POST /v1.0/engagements/referrals"),
    ("pc_patch", "PATCH /v1.0/engagements/referrals/*"),
    ("pc_put", "PUT /v1.0/engagements/referrals/*"),
    ("pc_api", "* /v1.0/*"),
    ("pc_webhooks", "* /webhooks/*"),
    ("pc_token", "POST /*/oauth2/*token"),
];

/// Writes each emulator has taken so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Writes {
    salesforce: u64,
    partner_center: u64,
}

/// What moves while the systems are still converging.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Activity {
    writes: Writes,
    runs: u64,
    busy: u64,
    pending_deliveries: usize,
}

struct Env {
    sandbox: Sandbox,
    server: Server,
    base: String,
    client: reqwest::Client,
    http: HttpClient,
    salesforce: Arc<SalesforceConnector>,
    connections: LoadedConnections,
    counters: BTreeMap<&'static str, usize>,
    /// How long nothing may move before the systems count as settled.
    quiet_for: Duration,
}

fn settings() -> Settings {
    Settings {
        workers: 8,
        tick: Duration::from_millis(100),
        poll_interval: Duration::from_millis(50),
        poll_every: Some(Duration::from_millis(250)),
        shutdown_grace: Duration::from_secs(5),
        ..Settings::default()
    }
}

impl Env {
    async fn start(flows: &Path) -> Env {
        Env::start_with(flows, SandboxConfig::ephemeral(), settings()).await
    }

    async fn start_with(flows: &Path, config: SandboxConfig, settings: Settings) -> Env {
        let sandbox = sandbox::start(config).await.unwrap();
        let counters = count_requests(&sandbox.faults);
        let connections = sandbox.connections().unwrap();
        let registry = Arc::new(FlowRegistry::load(flows).unwrap());
        assert!(registry.snapshot().problems.is_empty(), "{:?}", registry.snapshot().problems);
        assert_eq!(registry.snapshot().flows.len(), 9, "the eight co-sell flows and the reconciliation");
        let store = store::open("sqlite::memory:").await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // A change waits 2 s to settle before a poll may see it, then the next poll takes it.
        let poll_every = settings.poll_every.unwrap_or(Duration::from_secs(300));
        let quiet_for = Duration::from_secs(2) + poll_every + Duration::from_millis(750);
        let server =
            Server::start(listener, registry.clone(), store, connections.clone(), settings).await.unwrap();
        let base = format!("http://{}", server.addr);
        let env = Env {
            salesforce: connections.salesforce["salesforce"].clone(),
            connections,
            sandbox,
            server,
            base,
            client: reqwest::Client::new(),
            http: HttpClient::new(reqwest::Client::new(), false),
            counters,
            quiet_for,
        };
        env.register_webhook(&registry).await;
        // The catch-up and reconciliation flows fire once when the service starts (interval
        // triggers turned on); let those runs end so they do not cross the scenarios.
        env.wait_for_runs("pc-cosell-referral-updates-to-sf", 1).await;
        env.wait_for_runs("reconcile-referrals", 1).await;
        env
    }

    /// Runs the registration flow with this server's hook URL, as an admin does once.
    async fn register_webhook(&self, registry: &FlowRegistry) {
        let loaded = registry.get("partner-center-webhook-registration").unwrap();
        let mut options = RunOptions::new(false);
        options.connections = self.connections.connections.clone();
        options.parameters.insert("webhook_url".into(), json!(format!("{}/hooks/pc-to-sf", self.base)));
        let run = engine::run(&loaded.flow, TriggerEvent::default(), &options).await;
        assert!(run.succeeded(), "{:?}", run.error);
    }

    fn count(&self, name: &str) -> u64 {
        self.sandbox.faults.report()[self.counters[name]].fired
    }

    fn writes(&self) -> Writes {
        let sf = ["sf_create", "sf_update", "sf_delete", "sf_composite"].iter().map(|n| self.count(n)).sum();
        let pc = ["pc_create", "pc_patch", "pc_put"].iter().map(|n| self.count(n)).sum();
        Writes { salesforce: sf, partner_center: pc }
    }

    /// Requests to both APIs, sign-ins included.
    fn api_calls(&self) -> u64 {
        ["sf_api", "sf_token", "pc_api", "pc_webhooks", "pc_token"].iter().map(|n| self.count(n)).sum()
    }

    /// Salesforce polls made by the scheduler, from the service's metrics.
    async fn poll_calls(&self) -> u64 {
        let text =
            self.client.get(format!("{}/metrics", self.base)).send().await.unwrap().text().await.unwrap();
        let polls: f64 = text
            .lines()
            .filter(|line| line.starts_with("coflow_connector_calls") && line.contains("operation=\"poll\""))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        polls as u64
    }

    async fn run_counts(&self) -> BTreeMap<(String, RunStatus), u64> {
        let store = &self.server.state().store;
        let from = jiff::Timestamp::UNIX_EPOCH;
        let to = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
        store.run_counts(from, to).await.unwrap().into_iter().map(|c| ((c.flow, c.status), c.count)).collect()
    }

    async fn activity(&self) -> Activity {
        let counts = self.run_counts().await;
        let busy_runs: u64 = counts
            .iter()
            .filter(|((_, status), _)| matches!(status, RunStatus::Queued | RunStatus::Running))
            .map(|(_, n)| n)
            .sum();
        let queue = self.server.state().store.queue_stats().await.unwrap();
        let pending = self.deliveries().await.iter().filter(|d| d["state"] == "pending").count();
        Activity {
            writes: self.writes(),
            runs: counts.values().sum(),
            busy: busy_runs + queue.depth(),
            pending_deliveries: pending,
        }
    }

    /// Waits until nothing has moved for longer than a poll needs to see a change.
    async fn settle(&self) {
        self.settle_within(Duration::from_secs(90), false).await;
    }

    async fn settle_ignoring_deliveries(&self) {
        self.settle_within(Duration::from_secs(90), true).await;
    }

    async fn settle_within(&self, limit: Duration, ignore_deliveries: bool) {
        let quiet_for = self.quiet_for;
        let deadline = Instant::now() + limit;
        let mut last = self.activity().await;
        let mut quiet_since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.activity().await;
            let delivering = !ignore_deliveries && now.pending_deliveries > 0;
            if now != last || now.busy > 0 || delivering {
                last = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= quiet_for {
                return;
            }
            assert!(Instant::now() < deadline, "the systems did not settle: {last:?}");
        }
    }

    async fn wait_for_runs(&self, flow: &str, count: u64) {
        for _ in 0..300 {
            let done: u64 = self
                .run_counts()
                .await
                .iter()
                .filter(|((f, status), _)| {
                    f == flow && !matches!(status, RunStatus::Queued | RunStatus::Running)
                })
                .map(|(_, n)| n)
                .sum();
            if done >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{flow} did not finish {count} run(s)");
    }

    /// Every run ended well; a failed one is shown with its error.
    async fn assert_no_failed_runs(&self) {
        let failed: Vec<_> = self
            .run_counts()
            .await
            .into_iter()
            .filter(|((_, status), n)| *n > 0 && !matches!(status, RunStatus::Succeeded))
            .collect();
        if !failed.is_empty() {
            let runs = self.get("/api/runs?status=failed&limit=5").await;
            panic!("runs that did not succeed: {failed:?}\n{runs:#}");
        }
    }

    async fn get(&self, path: &str) -> Value {
        self.client.get(format!("{}{path}", self.base)).send().await.unwrap().json().await.unwrap()
    }

    async fn sf_call(&self, operation: &'static str, inputs: Value) -> Value {
        let call = OperationCall::new(operation, &inputs, &self.http);
        Connector::call(self.salesforce.as_ref(), call)
            .await
            .unwrap_or_else(|e| panic!("{operation} {inputs}: {e}"))
            .body
    }

    /// A Salesforce user creates a record.
    async fn sf_create(&self, object: &str, record: Value) -> String {
        let body = self.sf_call("create_record", json!({"sobject": object, "record": record})).await;
        body["id"].as_str().unwrap().to_string()
    }

    /// A Salesforce user edits a record.
    async fn sf_update(&self, object: &str, id: &str, record: Value) {
        self.sf_call("update_record", json!({"sobject": object, "id": id, "record": record})).await;
    }

    /// Records of one object, read from the emulator directly (no API call counted).
    fn sf_records(&self, object: &str) -> Vec<Value> {
        self.sandbox.salesforce.snapshot(false)[object].as_array().cloned().unwrap_or_default()
    }

    fn sf_record(&self, object: &str, id: &str) -> Value {
        self.sf_records(object)
            .into_iter()
            .find(|r| r["Id"] == id)
            .unwrap_or_else(|| panic!("no {object} {id}"))
    }

    fn opportunity_of_referral(&self, referral: &str) -> Value {
        let found: Vec<Value> = self
            .sf_records("Opportunity")
            .into_iter()
            .filter(|o| o["Referral_Identifier__c"] == referral)
            .collect();
        assert_eq!(found.len(), 1, "one Opportunity for referral {referral}: {found:#?}");
        found.into_iter().next().unwrap()
    }

    async fn pc_admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.sandbox.partner_center_url);
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap_or(Value::Null)
    }

    /// Microsoft shares a referral with the partner (emits `referral-created`).
    async fn share_referral(&self, referral: Value) -> Value {
        self.pc_admin(reqwest::Method::POST, "/__sandbox/referrals", Some(referral)).await
    }

    /// Someone changes the referral in Partner Center (emits `referral-updated`).
    async fn pc_edit(&self, id: &str, change: Value) {
        self.pc_admin(reqwest::Method::PATCH, &format!("/__sandbox/referrals/{id}"), Some(change)).await;
    }

    async fn referrals(&self) -> Vec<Value> {
        let snapshot = self.pc_admin(reqwest::Method::GET, "/__sandbox/snapshot", None).await;
        snapshot["referrals"].as_array().cloned().unwrap_or_default()
    }

    async fn referral(&self, id: &str) -> Value {
        self.referrals()
            .await
            .into_iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no referral {id}"))
    }

    async fn deliveries(&self) -> Vec<Value> {
        let body = self.pc_admin(reqwest::Method::GET, "/__sandbox/deliveries", None).await;
        body["value"].as_array().cloned().unwrap_or_default()
    }

    async fn stop(self) {
        self.server.shutdown().await;
        self.sandbox.shutdown().await;
    }
}

fn count_requests(faults: &Faults) -> BTreeMap<&'static str, usize> {
    assert!(faults.report().is_empty());
    COUNTED
        .iter()
        .enumerate()
        .map(|(index, (name, route))| {
            faults.add_spec(&format!("{route}: latency delay=0ms")).unwrap();
            (*name, index)
        })
        .collect()
}

/// A customer account with a contact, and an Opportunity being prepared for co-sell.
struct SalesforceDeal {
    account: String,
    opportunity: String,
}

async fn prepare_deal(env: &Env, name: &str) -> SalesforceDeal {
    let account = env
        .sf_create(
            "Account",
            json!({"Name": name, "BillingStreet": "1 Harbour Rd", "BillingCity": "Seattle",
                   "BillingState": "WA", "BillingPostalCode": "98101", "BillingCountry": "United States"}),
        )
        .await;
    env.sf_create(
        "Contact",
        json!({"AccountId": account, "FirstName": "Ada", "LastName": "Moreno",
               "Email": format!("ada@{}.example", name.to_lowercase()), "Phone": "+12065550100", "Title": "CIO"}),
    )
    .await;
    let opportunity = env
        .sf_create(
            "Opportunity",
            json!({"Name": format!("{name} - Azure migration"), "StageName": "Prospecting",
                   "CloseDate": "2027-03-31", "Amount": 250000, "Description": "Landing zone for 40 VMs.",
                   "How_can_Microsoft_help__c": "ProofOfConceptOrDemo", "Products__c": "Azure;Teams",
                   "Sync_with_Partner_Center__c": false, "AccountId": account}),
        )
        .await;
    env.sf_create(
        "Microsoft_Solution__c",
        json!({"Name": "Azure Migrate", "Opportunity__c": opportunity, "Solution_Id__c": "SOL-15974-MQF",
               "Publisher_Name__c": "Microsoft", "Solution_Type__c": "1P", "Sync_with_Partner_Center__c": true}),
    )
    .await;
    SalesforceDeal { account, opportunity }
}

/// Prepares a deal and ticks "Sync with Partner Center", as a seller does when it is ready.
async fn share_from_salesforce(env: &Env, name: &str) -> SalesforceDeal {
    let deal = prepare_deal(env, name).await;
    env.sf_update("Opportunity", &deal.opportunity, json!({"Sync_with_Partner_Center__c": true})).await;
    deal
}

fn microsoft_referral(name: &str, email: &str) -> Value {
    json!({
        "name": format!("{name} - Sentinel rollout"),
        "customerProfile": {
            "name": name,
            "address": {"addressLine1": "1 Main St", "city": "Redmond", "state": "WA", "postalCode": "98052", "country": "US"},
            "team": [
                {"firstName": "Dana", "lastName": "Ortiz", "email": email, "phoneNumber": "+14255550100"},
                {"firstName": "Lee", "lastName": "Park", "email": format!("lee@{}.example", name.to_lowercase())}
            ]
        },
        "details": {"dealValue": 120000, "currency": "USD", "closingDateTime": "2026-12-31T00:00:00Z",
                    "notes": "Customer evaluating Microsoft Sentinel for 3 regions."},
        "inviteContext": {"invitedBy": {"name": "Microsoft"}, "assistanceRequestCode": "CustomerTechnicalArchitecture"}
    })
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

// ---- 1. Salesforce → Partner Center --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opportunity_marked_for_sync_becomes_a_referral_and_gets_its_id_link_and_audit() {
    let env = Env::start(&flows_dir()).await;
    let deal = share_from_salesforce(&env, "Contoso").await;
    env.settle().await;

    let referrals = env.referrals().await;
    assert_eq!(referrals.len(), 1, "{referrals:#?}");
    let referral = &referrals[0];
    let id = text(&referral["id"]).to_string();
    assert_eq!(referral["name"], "Contoso - Azure migration");
    assert_eq!(referral["externalReferenceId"], deal.opportunity.as_str());
    assert_eq!(referral["type"], "Shared", "help was asked of Microsoft");
    assert_eq!(referral["details"]["dealValue"], json!(250000.0));
    assert_eq!(referral["details"]["currency"], "USD");
    assert!(text(&referral["details"]["closingDateTime"]).starts_with("2027-03-31"), "{referral:#}");
    assert_eq!(referral["details"]["notes"], "Landing zone for 40 VMs.");
    assert_eq!(referral["details"]["requirements"]["products"], json!([{"id": "Azure"}, {"id": "Teams"}]));
    let solutions = &referral["details"]["requirements"]["solutions"];
    assert_eq!(solutions[0]["id"], "SOL-15974-MQF", "{solutions:#}");
    assert_eq!(solutions[0]["publisherName"], "Microsoft");
    assert_eq!(referral["inviteContext"]["assistanceRequestCode"], "ProofOfConceptOrDemo");
    assert_eq!(referral["customerProfile"]["name"], "Contoso");
    assert_eq!(referral["customerProfile"]["address"]["country"], "US", "country names become ISO codes");
    assert_eq!(referral["customerProfile"]["team"][0]["email"], "ada@contoso.example");
    assert_eq!((text(&referral["status"]), text(&referral["substatus"])), ("Active", "Accepted"));

    let opportunity = env.sf_record("Opportunity", &deal.opportunity);
    assert_eq!(opportunity["Referral_Identifier__c"], id.as_str());
    assert_eq!(
        opportunity["Referral_Link__c"],
        format!("https://partner.microsoft.com/dashboard/referrals/v2/opportunities/{id}")
    );
    let audit = text(&opportunity["Audit__c"]);
    assert!(audit.contains(&format!("✔ Created Partner Center referral {id} (Active/Accepted)")), "{audit}");
    assert!(opportunity["Last_Sync_Date__c"].is_string(), "{opportunity:#}");
    // Partner Center made the partner's referral Active/Accepted; the stage follows it.
    assert_eq!(opportunity["StageName"], "Qualification");
    assert_eq!(env.sf_record("Account", &deal.account)["Name"], "Contoso");
    env.assert_no_failed_runs().await;
    env.stop().await;
}

// ---- 2. Partner Center → Salesforce --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_shared_by_microsoft_becomes_an_open_opportunity_with_its_account_and_contacts() {
    let env = Env::start(&flows_dir()).await;
    // The customer is already in Salesforce, with one of the referral's contacts.
    let account = env.sf_create("Account", json!({"Name": "Fabrikam"})).await;
    let known = env
        .sf_create(
            "Contact",
            json!({"AccountId": account, "LastName": "Ortiz", "Email": "dana@fabrikam.example"}),
        )
        .await;
    let shared = env.share_referral(microsoft_referral("Fabrikam", "dana@fabrikam.example")).await;
    let id = text(&shared["id"]).to_string();
    // And a customer Salesforce does not know yet.
    let other = env.share_referral(microsoft_referral("Northwind", "kim@northwind.example")).await;
    env.settle().await;

    let opportunity = env.opportunity_of_referral(&id);
    assert_eq!(opportunity["Name"], "Fabrikam - Sentinel rollout");
    assert_eq!(opportunity["StageName"], "Prospecting", "New/Pending");
    assert_eq!(opportunity["IsClosed"], false);
    assert_eq!(opportunity["CloseDate"], "2026-12-31");
    assert_eq!(opportunity["Amount"], json!(120000.0));
    assert_eq!(opportunity["Description"], "Customer evaluating Microsoft Sentinel for 3 regions.");
    assert_eq!(opportunity["How_can_Microsoft_help__c"], "CustomerTechnicalArchitecture");
    assert_eq!(
        opportunity["Referral_Link__c"],
        format!("https://partner.microsoft.com/dashboard/referrals/v2/opportunities/{id}")
    );
    assert_eq!(opportunity["Sync_with_Partner_Center__c"], true);
    assert_eq!(opportunity["LeadSource"], "Partner Referral");
    assert_eq!(opportunity["AccountId"], account.as_str(), "the existing account is used");
    assert!(
        text(&opportunity["Audit__c"])
            .contains(&format!("Created from Partner Center referral {id} (New/Pending)"))
    );

    let accounts: Vec<Value> =
        env.sf_records("Account").into_iter().filter(|a| a["Name"] == "Fabrikam").collect();
    assert_eq!(accounts.len(), 1, "no duplicate account");
    let contacts = env.sf_records("Contact");
    let dana: Vec<&Value> = contacts.iter().filter(|c| c["Email"] == "dana@fabrikam.example").collect();
    assert_eq!(dana.len(), 1, "the known contact is not duplicated");
    assert_eq!(dana[0]["Id"], known.as_str());
    let lee: Vec<&Value> = contacts.iter().filter(|c| c["Email"] == "lee@fabrikam.example").collect();
    assert_eq!(lee.len(), 1);
    assert_eq!(
        (&lee[0]["FirstName"], &lee[0]["LastName"], &lee[0]["AccountId"]),
        (&json!("Lee"), &json!("Park"), &json!(account))
    );
    assert_eq!(lee[0]["LeadSource"], "Partner Referral");

    // A new customer gets a new account.
    let opportunity = env.opportunity_of_referral(text(&other["id"]));
    let created = env.sf_record("Account", text(&opportunity["AccountId"]));
    assert_eq!(
        (&created["Name"], &created["BillingCity"], &created["BillingCountry"]),
        (&json!("Northwind"), &json!("Redmond"), &json!("US"))
    );
    // Partner Center now knows which Opportunity each referral is.
    assert_eq!(env.referral(&id).await["externalReferenceId"], env.opportunity_of_referral(&id)["Id"]);
    env.assert_no_failed_runs().await;
    env.stop().await;
}

// ---- 3. updates both ways ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_flow_both_ways_including_closing_won_and_lost() {
    let env = Env::start(&flows_dir()).await;
    let deal = share_from_salesforce(&env, "Contoso").await;
    let shared = env.share_referral(microsoft_referral("Fabrikam", "dana@fabrikam.example")).await;
    let from_pc = text(&shared["id"]).to_string();
    env.settle().await;
    let from_sf =
        text(&env.sf_record("Opportunity", &deal.opportunity)["Referral_Identifier__c"]).to_string();

    // A seller changes the deal in Salesforce.
    env.sf_update(
        "Opportunity",
        &deal.opportunity,
        json!({"Amount": 310000, "CloseDate": "2027-05-15", "Description": "Now 55 VMs.", "StageName": "Proposal/Price Quote"}),
    )
    .await;
    // Someone changes the other deal in Partner Center.
    env.pc_edit(&from_pc, json!({"details": {"dealValue": 99000, "notes": "Two regions only."}})).await;
    env.settle().await;
    let referral = env.referral(&from_sf).await;
    assert_eq!(referral["details"]["dealValue"], json!(310000.0));
    assert!(text(&referral["details"]["closingDateTime"]).starts_with("2027-05-15"));
    assert_eq!(referral["details"]["notes"], "Now 55 VMs.");
    assert_eq!(referral["salesStage"], "Propose");
    assert_eq!((text(&referral["status"]), text(&referral["substatus"])), ("Active", "Accepted"));
    let opportunity = env.opportunity_of_referral(&from_pc);
    assert_eq!(opportunity["Amount"], json!(99000.0));
    assert_eq!(opportunity["Description"], "Two regions only.");
    let audit = text(&opportunity["Audit__c"]);
    assert!(
        audit.contains(&format!("Updated from Partner Center referral {from_pc}: Amount, Description")),
        "{audit}"
    );

    // The seller wins the first deal; Microsoft's side of the second is lost.
    env.sf_update("Opportunity", &deal.opportunity, json!({"StageName": "Closed Won"})).await;
    env.pc_edit(&from_pc, json!({"status": "Closed", "substatus": "Lost"})).await;
    env.settle().await;
    let won = env.referral(&from_sf).await;
    assert_eq!((text(&won["status"]), text(&won["substatus"])), ("Closed", "Won"));
    let lost = env.opportunity_of_referral(&from_pc);
    assert_eq!(
        (&lost["StageName"], &lost["IsClosed"], &lost["IsWon"]),
        (&json!("Closed Lost"), &json!(true), &json!(false))
    );
    let won_opportunity = env.sf_record("Opportunity", &deal.opportunity);
    assert_eq!(
        (&won_opportunity["StageName"], &won_opportunity["IsWon"]),
        (&json!("Closed Won"), &json!(true))
    );
    let lost_referral = env.referral(&from_pc).await;
    assert_eq!((text(&lost_referral["status"]), text(&lost_referral["substatus"])), ("Closed", "Lost"));
    env.assert_no_failed_runs().await;
    env.stop().await;
}

// ---- 4. loop prevention --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_change_on_either_side_makes_a_fixed_number_of_writes_and_then_none() {
    let env = Env::start(&flows_dir()).await;
    let deal = share_from_salesforce(&env, "Contoso").await;
    env.settle().await;
    let referral =
        text(&env.sf_record("Opportunity", &deal.opportunity)["Referral_Identifier__c"]).to_string();

    // Salesforce side: the seller's edit (1), the referral patched (1), the audit line (1).
    let before = env.writes();
    env.sf_update("Opportunity", &deal.opportunity, json!({"Amount": 275000})).await;
    env.settle().await;
    let after = env.writes();
    assert_eq!(
        (after.salesforce - before.salesforce, after.partner_center - before.partner_center),
        (2, 1),
        "the edit and its audit line in Salesforce, one patch in Partner Center"
    );
    assert_eq!(env.referral(&referral).await["details"]["dealValue"], json!(275000.0));

    // Partner Center side (the edit itself is the emulator's, not an API write): one update.
    let before = env.writes();
    env.pc_edit(&referral, json!({"details": {"notes": "Moved to phase 2."}})).await;
    env.settle().await;
    let after = env.writes();
    assert_eq!(
        (after.salesforce - before.salesforce, after.partner_center - before.partner_center),
        (1, 0),
        "one Opportunity update, nothing sent back"
    );
    assert_eq!(env.sf_record("Opportunity", &deal.opportunity)["Description"], "Moved to phase 2.");

    // More poll cycles and the catch-up flow change nothing.
    let resting = env.writes();
    let runs_before: u64 = env.run_counts().await.values().sum();
    let started: Value = env
        .client
        .post(format!("{}/api/flows/pc-cosell-referral-updates-to-sf/run", env.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(started["run_id"].is_string());
    env.settle().await;
    assert_eq!(env.writes(), resting, "no ping-pong");
    assert_eq!(env.run_counts().await.values().sum::<u64>(), runs_before + 1, "only the catch-up run ran");
    env.assert_no_failed_runs().await;
    env.stop().await;
}

// ---- 5. faults -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_outages_expired_sessions_and_a_lost_webhook_lose_nothing() {
    let env = Env::start(&flows_dir()).await;
    let faults = &env.sandbox.faults;
    let rules = [
        "POST /v1.0/engagements/referrals: 429 times=1 retry_after=1",
        "GET /v1.0/engagements/referrals/*: 429 times=2 retry_after=1",
        "PATCH /services/data/*/sobjects/Opportunity/*: 503 times=2 retry_after=1",
        "POST /services/data/*/sobjects/Opportunity: 503 times=1 retry_after=1",
        "GET /services/data/*/query*: 503 times=3 retry_after=1",
        "/v1.0/*: token-expired times=1",
    ];
    // The seller's own calls come first; Salesforce changes reach coflow's poll 2 s later, by
    // when the faults are in place, so every fault below hits coflow.
    let deal = share_from_salesforce(&env, "Contoso").await;
    let first_rule = faults.report().len();
    for rule in rules {
        faults.add_spec(rule).unwrap();
    }
    let shared = env.share_referral(microsoft_referral("Fabrikam", "dana@fabrikam.example")).await;
    let from_pc = text(&shared["id"]).to_string();
    env.settle().await;
    let report = faults.report();
    for (offset, rule) in rules.iter().enumerate() {
        let installed = &report[first_rule + offset];
        assert_eq!(Some(installed.fired), installed.rule.times, "{rule} did not fire fully: {report:#?}");
    }
    let from_sf =
        text(&env.sf_record("Opportunity", &deal.opportunity)["Referral_Identifier__c"]).to_string();
    assert!(!from_sf.is_empty(), "the Salesforce deal reached Partner Center");
    assert_eq!(env.referral(&from_sf).await["externalReferenceId"], deal.opportunity.as_str());
    assert_eq!(env.opportunity_of_referral(&from_pc)["Amount"], json!(120000.0));

    // An expired Salesforce session mid-way: the next calls sign in again.
    let signed_in = env.count("sf_token");
    env.client
        .post(format!("{}/__sandbox/sessions/expire", env.sandbox.salesforce_url))
        .send()
        .await
        .unwrap();
    env.sf_update("Opportunity", &deal.opportunity, json!({"Amount": 260000})).await;
    env.settle().await;
    assert!(env.count("sf_token") > signed_in, "sessions were renewed");
    assert_eq!(env.referral(&from_sf).await["details"]["dealValue"], json!(260000.0));

    // Every delivery of one webhook event is lost: the catch-up flow brings the change.
    faults.add_spec("POST /hooks/pc-to-sf: drop").unwrap();
    let lost_rule = faults.report().len() - 1;
    let delivered_before = env.deliveries().await.len();
    env.pc_edit(&from_pc, json!({"details": {"dealValue": 88000}})).await;
    for _ in 0..100 {
        if faults.report()[lost_rule].fired > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(faults.report()[lost_rule].fired > 0, "the delivery was dropped");
    env.settle_ignoring_deliveries().await;
    assert_eq!(env.opportunity_of_referral(&from_pc)["Amount"], json!(120000.0), "the event did not arrive");
    env.client
        .post(format!("{}/api/flows/pc-cosell-referral-updates-to-sf/run", env.base))
        .send()
        .await
        .unwrap();
    env.settle_ignoring_deliveries().await;
    let caught_up = env.opportunity_of_referral(&from_pc);
    assert_eq!(caught_up["Amount"], json!(88000.0), "the catch-up flow brought the change");
    assert!(
        text(&caught_up["Audit__c"])
            .contains(&format!("Updated from Partner Center referral {from_pc}: Amount"))
    );

    // Partner Center retries the event later; it finds nothing left to do. (Putting back only
    // the counting rules restarts their counts, at the same positions.)
    faults.replace(
        COUNTED.iter().map(|(_, route)| format!("{route}: latency delay=0ms").parse().unwrap()).collect(),
        None,
    );
    let resting = env.writes();
    env.settle().await;
    let deliveries = env.deliveries().await;
    let late = &deliveries[delivered_before];
    assert_eq!(late["state"], "delivered", "{late:#}");
    assert!(late["attempts"].as_array().unwrap().len() > 1);
    assert_eq!(env.writes(), resting, "the late delivery writes nothing");
    env.assert_no_failed_runs().await;
    env.stop().await;
}

// ---- customisation -------------------------------------------------------------------------

/// The flows with their mapping and settings files, copied where a test may edit them.
fn copy_of_flows() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("coflow-e2e-flows-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in coflow::cosell::usage::flow_files(&flows_dir()).unwrap() {
        std::fs::copy(&file, dir.join(file.file_name().unwrap())).unwrap();
    }
    for folder in ["mappings", "settings"] {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
        for entry in std::fs::read_dir(flows_dir().join(folder)).unwrap() {
            let file = entry.unwrap().path();
            std::fs::copy(&file, dir.join(folder).join(file.file_name().unwrap())).unwrap();
        }
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_mapping_file_is_used_by_the_next_run_without_a_restart() {
    let flows = copy_of_flows();
    let env = Env::start(&flows).await;
    let first = env.share_referral(microsoft_referral("Fabrikam", "dana@fabrikam.example")).await;
    let mut created = Vec::new();
    for _ in 0..200 {
        created = env.sf_records("Opportunity");
        if !created.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(created.len(), 1, "the first referral arrived");
    assert_eq!(created[0]["Referral_Identifier__c"], first["id"]);
    assert_eq!(created[0]["NextStep"], Value::Null);

    // An admin adds a field to the referral → Opportunity mapping. (A field that also maps back,
    // like Description ↔ notes, must stay the inverse of its return mapping, or it would bounce.)
    let file = flows.join("mappings/referral_to_opportunity.yaml");
    let text_before = std::fs::read_to_string(&file).unwrap();
    let edited = text_before.replace(
        "  Sync_with_Partner_Center__c: true\n",
        "  Sync_with_Partner_Center__c: true\n  NextStep: \"Plan the co-sell call for {{ source.customerProfile.name }}\"\n",
    );
    assert_ne!(edited, text_before);
    std::fs::write(&file, edited).unwrap();
    let registry = env.server.state().registry.clone();
    let mut reloaded = false;
    for _ in 0..100 {
        let flow = registry.get("pc-to-sf").unwrap();
        let mapping = flow.flow.mappings.get("referral_to_opportunity").unwrap().clone();
        if mapping.field_names().any(|f| f == "NextStep") {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the service reloads a changed mapping file");

    let second = env.share_referral(microsoft_referral("Northwind", "kim@northwind.example")).await;
    env.settle().await;
    let opportunity = env.opportunity_of_referral(text(&second["id"]));
    assert_eq!(opportunity["NextStep"], "Plan the co-sell call for Northwind");
    assert_eq!(opportunity["Name"], "Northwind - Sentinel rollout", "the other fields are as before");
    env.assert_no_failed_runs().await;
    env.stop().await;
    let _ = std::fs::remove_dir_all(flows);
}

// ---- 6. initial sync at volume -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes in a debug build: cargo test --test e2e_cosell -- --ignored --nocapture"]
async fn five_hundred_referrals_and_five_hundred_opportunities_converge() {
    const N: usize = 500;
    let mut config = SandboxConfig::ephemeral();
    config.daily_api_limit = Some(10_000_000);
    // Polls every 2 s: each poll reads every Opportunity changed in the last minutes, which at
    // this volume would otherwise be most of the work (and of the API calls).
    let bulk = Settings { workers: 16, poll_every: Some(Duration::from_secs(2)), ..settings() };
    let env = Env::start_with(&flows_dir(), config, bulk).await;
    let started = Instant::now();
    let calls_at_start = env.api_calls();

    // Salesforce: 50 customers and 500 opportunities marked for co-sell, loaded in batches of 200.
    let accounts: Vec<Value> =
        (0..50).map(|i| json!({"Name": format!("Customer {i:02}"), "BillingCountry": "US"})).collect();
    let created = env.sf_call("create_records", json!({"sobject": "Account", "records": accounts})).await;
    let account_ids: Vec<String> =
        created.as_array().unwrap().iter().map(|r| text(&r["id"]).to_string()).collect();
    assert_eq!(account_ids.len(), 50, "{created:#}");
    let opportunities: Vec<Value> = (0..N)
        .map(|i| {
            json!({"Name": format!("Deal {i:03}"), "StageName": "Prospecting", "CloseDate": "2027-06-30",
                   "Amount": 1000 * (i + 1), "Sync_with_Partner_Center__c": true,
                   "How_can_Microsoft_help__c": "GeneralOrOther", "AccountId": account_ids[i % 50]})
        })
        .collect();
    env.sf_call("create_records", json!({"sobject": "Opportunity", "records": opportunities})).await;
    let loading_calls = env.api_calls() - calls_at_start;
    // Partner Center: Microsoft shares 500 referrals.
    for i in 0..N {
        let mut referral = microsoft_referral(&format!("Shared {i:03}"), &format!("buyer{i}@shared.example"));
        referral["details"]["dealValue"] = json!(500 * (i + 1));
        env.share_referral(referral).await;
    }
    env.settle_within(Duration::from_secs(900), false).await;
    let wall = started.elapsed().saturating_sub(env.quiet_for);

    let opportunities = env.sf_records("Opportunity");
    assert_eq!(opportunities.len(), 2 * N);
    let referrals = env.referrals().await;
    assert_eq!(referrals.len(), 2 * N);
    let by_id: BTreeMap<&str, &Value> = referrals.iter().map(|r| (text(&r["id"]), r)).collect();
    for opportunity in &opportunities {
        let referral = by_id
            .get(text(&opportunity["Referral_Identifier__c"]))
            .unwrap_or_else(|| panic!("{} has no referral", opportunity["Name"]));
        assert_eq!(referral["externalReferenceId"], opportunity["Id"]);
        assert_eq!(
            referral["details"]["dealValue"].as_f64(),
            opportunity["Amount"].as_f64(),
            "{}",
            opportunity["Name"]
        );
    }
    env.assert_no_failed_runs().await;
    let runs: u64 = env.run_counts().await.values().sum();
    let polls = env.poll_calls().await;
    let by_flows = env.api_calls() - calls_at_start - loading_calls - polls;
    let salesforce = env.count("sf_api") + env.count("sf_token");
    let partner_center = env.count("pc_api") + env.count("pc_webhooks") + env.count("pc_token");
    println!(
        "initial sync of {N} referrals + {N} opportunities: {:.1} s, {runs} runs; API calls by the flows {by_flows} \
         = {:.2} per record, plus {polls} polls (all requests: Salesforce {salesforce}, Partner Center \
         {partner_center}; writes {:?})",
        wall.as_secs_f64(),
        by_flows as f64 / (2 * N) as f64,
        env.writes(),
    );
    env.stop().await;
}

// ---- sync controls ---------------------------------------------------------------------------

/// A copy of the flows whose `settings/sync.yaml` is `settings`.
fn flows_with_sync_settings(settings: &str) -> PathBuf {
    let flows = copy_of_flows();
    std::fs::write(flows.join("settings/sync.yaml"), settings).unwrap();
    flows
}

/// Writes new sync settings and waits until the server has reloaded the flows.
async fn change_sync_settings(env: &Env, flows: &Path, settings: &str) {
    // Reloads notice a change by modification time and size; a new size is certain.
    std::fs::write(flows.join("settings/sync.yaml"), format!("{settings}\n# changed\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    env.settle().await;
}

impl Env {
    /// Starts a run of `flow` through the admin API and waits until it has ended.
    async fn run_now(&self, flow: &str) -> Value {
        let started: Value = self
            .client
            .post(format!("{}/api/flows/{flow}/run", self.base))
            // The reconciliation leaves referrals younger than a few minutes to the webhook;
            // these scenarios are seconds long.
            .json(&json!({"settle_minutes": 0}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = text(&started["run_id"]).to_string();
        for _ in 0..600 {
            let run = self.get(&format!("/api/runs/{id}")).await;
            if run["summary"]["status"].as_str().is_some_and(|s| !matches!(s, "queued" | "running")) {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("run {id} of {flow} did not end");
    }

    /// Drops every webhook delivery from now on and returns the index of the rule.
    fn drop_webhooks(&self) -> usize {
        self.sandbox.faults.add_spec("POST /hooks/pc-to-sf: drop").unwrap();
        self.sandbox.faults.report().len() - 1
    }

    async fn wait_for_fault(&self, rule: usize, fired: u64) {
        for _ in 0..200 {
            if self.sandbox.faults.report()[rule].fired >= fired {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("rule {rule} fired {} times, not {fired}", self.sandbox.faults.report()[rule].fired);
    }
}

fn action_outputs<'a>(run: &'a Value, action: &str) -> &'a Value {
    &run["record"]["actions"][action]["outputs"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reconciliation_repairs_ten_referrals_whose_webhooks_were_all_lost() {
    let flows = flows_with_sync_settings("audit: {max_entries: 2, max_length: 400}\n");
    let env = Env::start(&flows).await;
    let mut known = Vec::new();
    for i in 0..5 {
        let shared =
            env.share_referral(microsoft_referral(&format!("Known{i}"), &format!("a{i}@k.example"))).await;
        known.push(text(&shared["id"]).to_string());
    }
    env.settle().await;
    let lost_rule = env.drop_webhooks();
    let mut unseen = Vec::new();
    for i in 0..5 {
        let shared =
            env.share_referral(microsoft_referral(&format!("Unseen{i}"), &format!("b{i}@u.example"))).await;
        unseen.push(text(&shared["id"]).to_string());
    }
    for (i, id) in known.iter().enumerate() {
        env.pc_edit(id, json!({"details": {"dealValue": 90000 + i, "notes": format!("Scope grew ({i}).")}}))
            .await;
    }
    env.wait_for_fault(lost_rule, 10).await;
    env.settle_ignoring_deliveries().await;
    for id in &unseen {
        assert!(env.sf_records("Opportunity").iter().all(|o| o["Referral_Identifier__c"] != id.as_str()));
    }
    assert_eq!(env.opportunity_of_referral(&known[0])["Amount"], json!(120000.0), "the edit was lost");
    let status = env.get("/api/sync/status").await;
    let opportunity = &status["objects"][0];
    assert_eq!(opportunity["object"], "opportunity");
    assert_eq!(
        [&opportunity["in_sync"], &opportunity["pending"], &opportunity["failed"], &opportunity["drifted"]],
        [&json!(0), &json!(10), &json!(0), &json!(0)],
        "{status:#}"
    );
    assert!(opportunity["oldest_pending"].is_string(), "{status:#}");

    let run = env.run_now("reconcile-referrals").await;
    assert_eq!(run["summary"]["status"], "succeeded", "{:#}", run["record"]["error"]);
    let summary = action_outputs(&run, "Summary");
    assert_eq!(summary["fixed"].as_array().unwrap().len(), 5, "{summary:#}");
    assert_eq!(summary["created"].as_array().unwrap().len(), 5, "{summary:#}");
    env.settle_ignoring_deliveries().await;
    for (i, id) in known.iter().enumerate() {
        let opportunity = env.opportunity_of_referral(id);
        assert_eq!(opportunity["Amount"], json!(90000.0 + i as f64));
        assert_eq!(opportunity["Description"], format!("Scope grew ({i})."));
        let audit = text(&opportunity["Audit__c"]);
        assert!(
            audit
                .lines()
                .last()
                .unwrap()
                .contains(&format!("Reconciled with referral {id}: Amount, Description from Partner Center")),
            "{audit}"
        );
    }
    for id in &unseen {
        let opportunity = env.opportunity_of_referral(id);
        assert_eq!(opportunity["Amount"], json!(120000.0));
    }
    // Every Audit field keeps at most its two newest entries within 400 characters.
    for opportunity in env.sf_records("Opportunity") {
        let audit = text(&opportunity["Audit__c"]);
        assert!(audit.lines().count() <= 2 && audit.chars().count() <= 400, "{audit}");
    }
    let status = env.get("/api/sync/status").await;
    assert_eq!(status["objects"][0]["in_sync"], 10, "{status:#}");
    let page = env.client.get(format!("{}/sync", env.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"<span aria-hidden="true">✔</span> 10</span>"#), "{page}");
    assert_eq!(status["objects"][0]["pending"], 0, "{status:#}");
    // A second cycle finds nothing left to do.
    let writes = env.writes();
    let again = env.run_now("reconcile-referrals").await;
    assert_eq!(action_outputs(&again, "Summary")["fixed"], json!([]));
    assert_eq!(action_outputs(&again, "Summary")["created"], json!([]));
    assert_eq!(env.writes(), writes, "nothing to repair, nothing written");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_direction_mode_blocks_the_other_direction_and_applies_on_reload() {
    let flows = copy_of_flows();
    let env = Env::start(&flows).await;
    let shared = env.share_referral(microsoft_referral("Modes", "dana@modes.example")).await;
    let referral = text(&shared["id"]).to_string();
    env.settle().await;
    let opportunity = text(&env.opportunity_of_referral(&referral)["Id"]).to_string();

    // Partner Center → Salesforce only: a seller's change is not sent.
    change_sync_settings(&env, &flows, "directions: {opportunity: partner_center_to_salesforce}").await;
    env.sf_update("Opportunity", &opportunity, json!({"Amount": 150000})).await;
    let before = env.writes();
    env.settle().await;
    assert_eq!(env.writes().partner_center, before.partner_center, "no write to Partner Center");
    assert_eq!(env.referral(&referral).await["details"]["dealValue"].as_f64(), Some(120000.0));
    // ... while Partner Center's changes still arrive.
    env.pc_edit(&referral, json!({"details": {"notes": "Arrives."}})).await;
    env.settle().await;
    assert_eq!(env.opportunity_of_referral(&referral)["Description"], "Arrives.");

    // Salesforce → Partner Center only: Partner Center's change is not written.
    change_sync_settings(&env, &flows, "directions: {opportunity: salesforce_to_partner_center}").await;
    let before = env.writes();
    env.pc_edit(&referral, json!({"details": {"notes": "Stays in Partner Center."}})).await;
    env.settle().await;
    assert_eq!(env.writes().salesforce, before.salesforce, "no write to Salesforce");
    assert_eq!(env.opportunity_of_referral(&referral)["Description"], "Arrives.");
    // ... and the reconciliation holds it back too.
    let run = env.run_now("reconcile-referrals").await;
    assert_eq!(run["summary"]["status"], "succeeded");
    assert_eq!(env.writes().salesforce, before.salesforce, "the reconciliation wrote nothing either");

    // Off: nothing either way.
    change_sync_settings(&env, &flows, "directions: {opportunity: 'off'}").await;
    let before = env.writes();
    env.sf_update("Opportunity", &opportunity, json!({"Amount": 175000})).await;
    env.pc_edit(&referral, json!({"details": {"dealValue": 99000}})).await;
    env.settle().await;
    let after = env.writes();
    assert_eq!(after.partner_center, before.partner_center);
    assert_eq!(after.salesforce, before.salesforce + 1, "only the seller's own edit");
    env.assert_no_failed_runs().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_by_the_integration_user_are_not_sent_back() {
    let flows = copy_of_flows();
    let env = Env::start(&flows).await;
    let deal = share_from_salesforce(&env, "Guarded").await;
    env.settle().await;
    let referral =
        text(&env.sf_record("Opportunity", &deal.opportunity)["Referral_Identifier__c"]).to_string();
    assert!(!referral.is_empty());
    // Every API call of the emulator is made as its one user: name it the integration user.
    let user = env.sandbox.salesforce.user_id().to_string();
    change_sync_settings(&env, &flows, &format!("integration_user: {user}")).await;
    let before = env.writes();
    let deal_value = env.referral(&referral).await["details"]["dealValue"].clone();
    env.sf_update(
        "Opportunity",
        &deal.opportunity,
        json!({"Amount": 310000, "Description": "Edited by the integration user."}),
    )
    .await;
    env.settle().await;
    assert_eq!(env.writes().partner_center, before.partner_center, "nothing sent back");
    assert_eq!(env.referral(&referral).await["details"]["dealValue"], deal_value);
    assert_ne!(deal_value.as_f64(), Some(310000.0));
    env.assert_no_failed_runs().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_edits_on_both_sides_resolve_by_the_field_policy_with_an_audit_entry() {
    let flows = flows_with_sync_settings(
        "own_write_grace_seconds: 1\nfields:\n  Amount: {partner_center: [/details/dealValue], conflict: partner_center_wins}\n  Description: {partner_center: [/details/notes]}\n",
    );
    let env = Env::start(&flows).await;
    let shared = env.share_referral(microsoft_referral("Conflict", "dana@conflict.example")).await;
    let referral = text(&shared["id"]).to_string();
    env.settle().await;
    let opportunity = text(&env.opportunity_of_referral(&referral)["Id"]).to_string();
    // Neither change may travel before the reconciliation: no poll, no webhook.
    env.client.post(format!("{}/api/flows/sf-opportunity-to-pc/disable", env.base)).send().await.unwrap();
    let lost_rule = env.drop_webhooks();
    env.pc_edit(&referral, json!({"details": {"dealValue": 111000, "notes": "Partner Center's notes."}}))
        .await;
    env.wait_for_fault(lost_rule, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    env.sf_update(
        "Opportunity",
        &opportunity,
        json!({"Amount": 222000, "Description": "Salesforce's notes."}),
    )
    .await;
    env.settle_ignoring_deliveries().await;

    let run = env.run_now("reconcile-referrals").await;
    assert_eq!(run["summary"]["status"], "succeeded", "{:#}", run["record"]["error"]);
    let conflicts = &action_outputs(&run, "Summary")["fixed"][0]["conflicts"];
    assert_eq!(conflicts.as_array().map(Vec::len), Some(2), "{conflicts:#}");
    // Amount: Partner Center wins by its policy although Salesforce changed last.
    let synced = env.opportunity_of_referral(&referral);
    assert_eq!(synced["Amount"], json!(111000.0));
    // Description: the default, newest wins: Salesforce's notes reach Partner Center.
    assert_eq!(synced["Description"], "Salesforce's notes.");
    let pc = env.referral(&referral).await;
    assert_eq!(pc["details"]["notes"], "Salesforce's notes.");
    assert_eq!(pc["details"]["dealValue"].as_f64(), Some(111000.0));
    let audit = text(&synced["Audit__c"]);
    let last = audit.lines().last().unwrap();
    assert!(last.contains("conflict on Amount (Partner Center 111000, Salesforce 222000): Partner Center wins by partner_center_wins"), "{audit}");
    assert!(last.contains("conflict on Description (Partner Center Partner Center's notes., Salesforce Salesforce's notes.): Salesforce wins by newest_wins"), "{audit}");
    env.stop().await;
}

/// The API calls of one reconciliation cycle over 1,000 changed referrals whose Opportunities
/// are already in step: list calls only. Run with `--nocapture` to see the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciliation_of_a_thousand_referrals_in_step_makes_list_calls_only() {
    let sandbox = sandbox::start(SandboxConfig::ephemeral()).await.unwrap();
    let counters = count_requests(&sandbox.faults);
    sandbox.faults.add_spec("GET /v1.0/engagements/referrals/*: latency delay=0ms").unwrap();
    let reads = sandbox.faults.report().len() - 1;
    let connections = sandbox.connections().unwrap();
    let client = reqwest::Client::new();
    let window_start = jiff::Timestamp::now();
    let mut opportunities = Vec::new();
    for i in 0..1000 {
        let url = format!("{}/__sandbox/referrals", sandbox.partner_center_url);
        let referral: Value = client
            .post(url)
            .json(&microsoft_referral(&format!("Customer{i}"), &format!("c{i}@example.com")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (referral["status"].as_str(), referral["substatus"].as_str()),
            (Some("New"), Some("Pending"))
        );
        opportunities.push(json!({
            "attributes": {"type": "Opportunity"},
            "Name": referral["name"], "StageName": "Prospecting", "CloseDate": "2026-12-31",
            "Amount": 120000, "Description": referral["details"]["notes"],
            "Referral_Identifier__c": referral["id"], "Sync_with_Partner_Center__c": true,
            "Last_Sync_Date__c": jiff::Timestamp::now().to_string(),
        }));
    }
    let http = HttpClient::new(reqwest::Client::new(), false);
    let salesforce = connections.salesforce["salesforce"].clone();
    for batch in opportunities.chunks(200) {
        let inputs = json!({"records": batch});
        let call = OperationCall::new("create_records", &inputs, &http);
        Connector::call(salesforce.as_ref(), call).await.unwrap();
    }
    let count = |name: &str| sandbox.faults.report()[counters[name]].fired;
    let calls = |names: &[&str]| names.iter().map(|n| count(n)).sum::<u64>();
    let (pc_before, sf_before) = (calls(&["pc_api"]), calls(&["sf_api"]));
    let (pc_writes, sf_writes) =
        (calls(&["pc_create", "pc_patch", "pc_put"]), calls(&["sf_create", "sf_update", "sf_composite"]));

    let flow = coflow::flow::load_file(&flows_dir().join("reconcile-referrals.yaml")).unwrap();
    let mut options = RunOptions::new(false);
    options.connections = connections.connections.clone();
    options.flows = Some(Arc::new(engine::FlowFolder(flows_dir())));
    let started = Instant::now();
    let event = TriggerEvent::from_body(json!({"windowStartTime": window_start.to_string()}));
    let run = engine::run(&flow, event, &options).await;
    let took = started.elapsed();
    assert!(run.succeeded(), "{:#?}", run.error);
    let summary = run.actions["Summary"].outputs.clone().unwrap();
    assert_eq!(summary["referrals_changed"], 1000);
    assert_eq!(summary["opportunities_checked"], 1000);
    assert_eq!((summary["fixed"].clone(), summary["created"].clone()), (json!([]), json!([])));
    let pc_calls = calls(&["pc_api"]) - pc_before;
    let sf_calls = calls(&["sf_api"]) - sf_before;
    assert_eq!(sandbox.faults.report()[reads].fired, 0, "no referral read one by one");
    assert_eq!(calls(&["pc_create", "pc_patch", "pc_put"]), pc_writes, "no write to Partner Center");
    assert_eq!(calls(&["sf_create", "sf_update", "sf_composite"]), sf_writes, "no write to Salesforce");
    // Partner Center lists 100 referrals a page; the changed Opportunities take one query and
    // the referrals' Opportunities one per 200 ids.
    assert_eq!(pc_calls, 10, "Partner Center list pages");
    assert_eq!(sf_calls, 6, "Salesforce queries");
    println!(
        "reconciliation of 1,000 referrals in step: {pc_calls} Partner Center calls, {sf_calls} Salesforce calls, 0 writes, {took:.2?}"
    );
    sandbox.shutdown().await;
}
