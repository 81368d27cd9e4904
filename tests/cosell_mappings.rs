//! The co-sell solution's flows and field mappings: every flow in `flows/` validates, every
//! mapping file turns the fixture records into the expected Salesforce / Partner Center record,
//! an edited mapping file changes the output, and the status ↔ stage tables agree both ways.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coflow::expr::{Mapping, Mappings};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn mappings_dir() -> PathBuf {
    root().join("flows/mappings")
}

fn fixture(name: &str) -> Value {
    let path = root().join("tests/fixtures/cosell").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(dir: &Path) -> Mappings {
    Mappings::load_dir(dir).unwrap_or_else(|e| panic!("mappings in {} do not load: {e}", dir.display()))
}

fn mapping<'a>(all: &'a Mappings, name: &str) -> &'a Arc<Mapping> {
    all.get(name).unwrap_or_else(|| panic!("no mapping file {name}.yaml"))
}

fn apply(all: &Mappings, name: &str, source: &Value) -> Value {
    mapping(all, name).render(source, None).unwrap_or_else(|e| panic!("mapping {name}: {e}"))
}

fn flow_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("flows"))
        .expect("flows/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| !p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    files.sort();
    files
}

// ---- flows ---------------------------------------------------------------------------------

const FLOWS: &[&str] = &[
    "partner-center-webhook-registration",
    "create-cosell-referral-sf-to-pc",
    "pc-cosell-referral-updates-to-sf",
    "pc-to-sf",
    "sf-to-pc",
    "sf-opportunity-to-pc",
    "sf-microsoft-solutions-to-pc",
    "sf-leads-to-pc",
    // Beyond Microsoft's eight: the scheduled safety net.
    "reconcile-referrals",
];

#[test]
fn the_co_sell_flows_are_there() {
    let names: Vec<String> =
        flow_files().iter().filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned())).collect();
    for flow in FLOWS {
        assert!(names.iter().any(|n| n == flow), "flows/{flow}.yaml is missing (found {names:?})");
    }
    assert_eq!(names.len(), FLOWS.len(), "unexpected flow files: {names:?}");
}

#[test]
fn every_flow_validates_without_diagnostics() {
    let files = flow_files();
    assert!(!files.is_empty());
    for file in files {
        let (flow, diagnostics) = coflow::flow::check_file(&file);
        let listed: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert!(diagnostics.is_empty(), "{}:\n{}", file.display(), listed.join("\n\n"));
        let flow = flow.unwrap_or_else(|| panic!("{} did not compile", file.display()));
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        assert_eq!(flow.name, stem, "the flow's name matches its file name");
    }
}

#[test]
fn every_flow_starts_with_the_schema_line_and_a_header() {
    for file in flow_files() {
        let text = std::fs::read_to_string(&file).expect("readable");
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("# yaml-language-server: $schema=../schemas/flow.schema.json"),
            "{}",
            file.display()
        );
        let header: Vec<&str> = lines.take_while(|l| l.starts_with('#')).collect();
        let header = header.join("\n").to_lowercase();
        for part in ["what it does", "when it runs", "customize"] {
            assert!(header.contains(part), "{}: the header comment says {part:?}", file.display());
        }
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        assert!(text.lines().any(|l| l == format!("name: {stem}")), "{}: `name: {stem}`", file.display());
    }
}

#[test]
fn every_mapping_a_flow_names_exists() {
    let all = load(&mappings_dir());
    let names: Vec<&str> = all.names().collect();
    let call = regex::Regex::new(r"mapping\('([^']+)'").expect("regex");
    for file in flow_files() {
        let text = std::fs::read_to_string(&file).expect("readable");
        for found in call.captures_iter(&text) {
            assert!(names.contains(&&found[1]), "{} uses unknown mapping {}", file.display(), &found[1]);
        }
    }
}

// ---- mappings applied to the fixtures ------------------------------------------------------

#[test]
fn mapping_files_give_the_expected_records() {
    let all = load(&mappings_dir());
    let referral = fixture("referral_incoming.json");
    let cases = [
        ("referral_to_opportunity", referral.clone(), "expected_opportunity.json"),
        ("referral_to_opportunity", fixture("referral_minimal.json"), "expected_opportunity_minimal.json"),
        ("referral_to_account", referral.clone(), "expected_account.json"),
        ("referral_to_contact", referral["customerProfile"]["team"][0].clone(), "expected_contact.json"),
        ("opportunity_to_referral", fixture("opportunity.json"), "expected_referral.json"),
        ("lead_to_referral", fixture("lead.json"), "expected_lead_referral.json"),
        ("microsoft_solution_to_solution", fixture("microsoft_solution.json"), "expected_solution.json"),
        ("contact_to_member", fixture("contact.json"), "expected_member.json"),
    ];
    for (name, source, expected) in cases {
        assert_eq!(
            apply(&all, name, &source),
            fixture(expected),
            "{name} applied to the fixture for {expected}"
        );
    }
}

#[test]
fn every_mapping_file_is_covered_by_a_fixture_case() {
    let covered = [
        "referral_to_opportunity",
        "referral_to_account",
        "referral_to_contact",
        "opportunity_to_referral",
        "lead_to_referral",
        "microsoft_solution_to_solution",
        "contact_to_member",
    ];
    let all = load(&mappings_dir());
    let names: Vec<&str> = all.names().collect();
    assert_eq!(names, {
        let mut c = covered.to_vec();
        c.sort();
        c
    });
}

#[test]
fn an_opportunity_without_help_or_products_is_a_partner_led_referral() {
    let all = load(&mappings_dir());
    let mut opportunity = fixture("opportunity.json");
    opportunity["How_can_Microsoft_help__c"] = Value::Null;
    opportunity["Products__c"] = Value::Null;
    opportunity["Amount"] = Value::Null;
    opportunity["Account"]["BillingCountry"] = Value::Null;
    let referral = apply(&all, "opportunity_to_referral", &opportunity);
    assert_eq!(referral["customerProfile"]["address"]["country"], Value::Null);
    assert_eq!(referral["type"], "Independent");
    assert_eq!(referral["inviteContext"], json!({"assistanceRequestCode": "Unknown"}));
    assert_eq!(referral["details"]["requirements"]["products"], json!([]));
    assert_eq!(referral["details"]["dealValue"], 0);
}

// ---- admins edit mapping files -------------------------------------------------------------

/// A fresh copy of `flows/mappings` in a folder of its own.
fn copy_of_mappings(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("coflow-cosell-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    for entry in std::fs::read_dir(mappings_dir()).expect("mappings") {
        let path = entry.expect("entry").path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, dir.join(name)).expect("copy");
        }
    }
    dir
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("readable");
    assert!(text.contains(from), "{} contains {from:?}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).expect("writable");
}

#[test]
fn editing_a_mapping_file_changes_the_output() {
    let dir = copy_of_mappings("edit");
    let referral = fixture("referral_incoming.json");
    let before = apply(&load(&dir), "referral_to_opportunity", &referral);

    let file = dir.join("referral_to_opportunity.yaml");
    // A changed field, a new field and a changed lookup row.
    edit(
        &file,
        "Sync_with_Partner_Center__c: true",
        "Sync_with_Partner_Center__c: false\n  NextStep: \"Call {{ source.team[0].firstName }}\"",
    );
    edit(&file, "Active/Accepted: Qualification", "Active/Accepted: Needs Analysis");
    let after = apply(&load(&dir), "referral_to_opportunity", &referral);

    let mut expected = before.clone();
    expected["Sync_with_Partner_Center__c"] = json!(false);
    expected["NextStep"] = json!("Call Priya");
    expected["StageName"] = json!("Needs Analysis");
    assert_eq!(after, expected);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_broken_mapping_file_names_the_file_and_field() {
    let dir = copy_of_mappings("broken");
    let file = dir.join("contact_to_member.yaml");
    edit(&file, "email: \"{{ opt(source, 'Email') }}\"", "email: \"{{ opt(source, 'Email' }}\"");
    let err = Mappings::load_dir(&dir).expect_err("a template that does not compile is refused");
    let message = err.to_string();
    assert!(message.contains("contact_to_member.yaml") && message.contains("'email'"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- status and stage, both ways -------------------------------------------------------------

/// Every status/substatus pair the transition table allows (reference §2.8).
const DOCUMENTED_PAIRS: &[(&str, &str)] = &[
    ("New", "Pending"),
    ("New", "Received"),
    ("Active", "Accepted"),
    ("Closed", "Won"),
    ("Closed", "Lost"),
    ("Closed", "Declined"),
    ("Closed", "Expired"),
];

/// The default Salesforce stages.
const STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];

fn stage_of(all: &Mappings, status: &str, substatus: &str) -> String {
    let mut referral = fixture("referral_incoming.json");
    referral["status"] = json!(status);
    referral["substatus"] = json!(substatus);
    let opportunity = apply(all, "referral_to_opportunity", &referral);
    opportunity["StageName"]
        .as_str()
        .unwrap_or_else(|| panic!("no stage for {status}/{substatus}"))
        .to_string()
}

fn status_of(all: &Mappings, stage: &str) -> (String, String) {
    let mut opportunity = fixture("opportunity.json");
    opportunity["StageName"] = json!(stage);
    let referral = apply(all, "opportunity_to_referral", &opportunity);
    let text = |k: &str| referral[k].as_str().unwrap_or_else(|| panic!("no {k} for {stage}")).to_string();
    (text("status"), text("substatus"))
}

#[test]
fn status_to_stage_to_status_keeps_the_status_for_every_documented_pair() {
    let all = load(&mappings_dir());
    for &(status, substatus) in DOCUMENTED_PAIRS {
        let stage = stage_of(&all, status, substatus);
        assert!(STAGES.contains(&stage.as_str()), "{status}/{substatus} maps to unknown stage {stage}");
        let (back, back_sub) = status_of(&all, &stage);
        assert_eq!(back, status, "{status}/{substatus} -> {stage} -> {back}/{back_sub}");
        assert!(DOCUMENTED_PAIRS.contains(&(back.as_str(), back_sub.as_str())), "{back}/{back_sub}");
        // The pair we come back with maps to the same stage: no flip-flop between systems.
        assert_eq!(stage_of(&all, &back, &back_sub), stage, "{status}/{substatus}");
    }
}

#[test]
fn the_won_and_lost_pairs_and_stages_round_trip_exactly() {
    let all = load(&mappings_dir());
    for (status, substatus, stage) in [
        ("Closed", "Won", "Closed Won"),
        ("Closed", "Lost", "Closed Lost"),
        ("New", "Pending", "Prospecting"),
    ] {
        assert_eq!(stage_of(&all, status, substatus), stage);
        assert_eq!(status_of(&all, stage), (status.to_string(), substatus.to_string()));
    }
}

#[test]
fn every_stage_maps_to_a_documented_pair_that_maps_back_to_a_stable_stage() {
    let all = load(&mappings_dir());
    for stage in STAGES {
        let (status, substatus) = status_of(&all, stage);
        assert!(
            DOCUMENTED_PAIRS.contains(&(status.as_str(), substatus.as_str())),
            "{stage}: {status}/{substatus}"
        );
        let again = stage_of(&all, &status, &substatus);
        assert_eq!(status_of(&all, &again), (status.clone(), substatus.clone()), "{stage} -> {again}");
        assert_eq!(
            stage.starts_with("Closed"),
            status == "Closed",
            "{stage} is closed exactly when {status} is"
        );
    }
}

#[test]
fn assistance_codes_and_the_help_picklist_round_trip() {
    let all = load(&mappings_dir());
    let codes = [
        "GeneralOrOther",
        "CustomerTechnicalArchitecture",
        "ProofOfConceptOrDemo",
        "QuotesOrLicensing",
        "PostSalesCustomerSuccess",
        "WorkloadSpecificValueProposition",
    ];
    for code in codes {
        let mut referral = fixture("referral_incoming.json");
        referral["inviteContext"]["assistanceRequestCode"] = json!(code);
        let help = apply(&all, "referral_to_opportunity", &referral)["How_can_Microsoft_help__c"].clone();
        assert!(help.is_string(), "{code} has a picklist value");
        let mut opportunity = fixture("opportunity.json");
        opportunity["How_can_Microsoft_help__c"] = help;
        let back = apply(&all, "opportunity_to_referral", &opportunity);
        assert_eq!(back["inviteContext"]["assistanceRequestCode"], code);
        assert_eq!(back["type"], "Shared", "asking Microsoft for help is co-sell");
    }
    let mut referral = fixture("referral_incoming.json");
    referral["inviteContext"]["assistanceRequestCode"] = json!("Unknown");
    let opportunity = apply(&all, "referral_to_opportunity", &referral);
    assert!(opportunity.get("How_can_Microsoft_help__c").is_none(), "Unknown leaves the picklist alone");
}

// ---- the flows against the sandbox ---------------------------------------------------------

mod against_the_sandbox {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use coflow::connectors::config::{self, MapSecrets};
    use coflow::connectors::{Connector, HttpClient, OperationCall};
    use coflow::engine::{self, Run, RunOptions, TriggerEvent};
    use coflow::expr::Mappings;
    use coflow::sandbox::partner_center::{self as pc_sandbox, PartnerCenter, PartnerCenterConfig};
    use coflow::sandbox::salesforce::{self as sf_sandbox, Salesforce, SalesforceConfig};
    use serde_json::{Value, json};

    use super::{fixture, mappings_dir, root};

    struct Env {
        pc: Arc<dyn Connector>,
        sf: Arc<dyn Connector>,
        pc_sandbox: Arc<PartnerCenter>,
        options: RunOptions,
    }

    async fn start(salesforce_seed: Value) -> Env {
        let pc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let pc_url = format!("http://{}", pc_listener.local_addr().expect("address"));
        let pc_sandbox =
            PartnerCenter::try_new(PartnerCenterConfig::new(pc_url.clone())).expect("pc sandbox");
        let app = pc_sandbox::router(pc_sandbox.clone());
        tokio::spawn(async move { axum::serve(pc_listener, app).await.expect("serve") });
        let sf_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let sf_url = format!("http://{}", sf_listener.local_addr().expect("address"));
        let mut sf_config = SalesforceConfig::new(sf_url.clone());
        sf_config.seed_data = Some(salesforce_seed);
        sf_config.daily_api_limit = 1_000_000;
        let sf = Salesforce::new(sf_config).expect("sf sandbox");
        let app = sf_sandbox::router(sf.clone());
        tokio::spawn(async move { axum::serve(sf_listener, app).await.expect("serve") });

        let text = format!(
            r#"
connections:
  partner_center:
    kind: partner_center
    referrals_url: {pc_url}
    webhooks_url: {pc_url}
    auth: {{type: password, token_url: '{pc_url}/common/oauth2/token', client_id: coflow-sandbox-app, client_secret: "secret('PC_CLIENT_SECRET')", username: admin@coflow-sandbox.onmicrosoft.com, password: "secret('PC_PASSWORD')"}}
  salesforce:
    kind: salesforce
    login_url: {sf_url}
    auth: {{type: client_credentials, client_id: 3MVG9coflowSandboxConsumerKey, client_secret: "secret('SF_CLIENT_SECRET')"}}
"#
        );
        let mut secrets = BTreeMap::new();
        secrets.insert("PC_CLIENT_SECRET".to_string(), "coflow-sandbox-secret".to_string());
        secrets.insert("PC_PASSWORD".to_string(), "sandbox-admin-password".to_string());
        secrets.insert("SF_CLIENT_SECRET".to_string(), "coflow-sandbox-consumer-secret".to_string());
        let loaded = config::parse(&text, "coflow.yaml")
            .expect("connections parse")
            .build(&MapSecrets(secrets))
            .expect("connections build");
        let pc: Arc<dyn Connector> = loaded.partner_center["partner_center"].clone();
        let sf: Arc<dyn Connector> = loaded.salesforce["salesforce"].clone();
        let mut options = RunOptions::new(false);
        options.connections = loaded.connections;
        Env { pc, sf, pc_sandbox, options }
    }

    impl Env {
        async fn call(&self, connector: &Arc<dyn Connector>, operation: &str, inputs: Value) -> Value {
            let http = HttpClient::new(reqwest::Client::new(), false);
            match connector.call(OperationCall::new(operation, &inputs, &http)).await {
                Ok(output) => output.body,
                Err(e) => panic!("{operation}: {e}"),
            }
        }

        async fn query(&self, soql: &str) -> Vec<Value> {
            let body = self.call(&self.sf, "query", json!({"soql": soql})).await;
            body["records"].as_array().cloned().unwrap_or_default()
        }

        async fn run(&self, flow: &str, body: Value) -> Run {
            let path = root().join("flows").join(format!("{flow}.yaml"));
            let mut flow = coflow::flow::load_file(&path).unwrap_or_else(|d| panic!("{d}"));
            flow.mappings = Arc::new(Mappings::load_dir(&mappings_dir()).expect("mappings"));
            engine::run(&flow, TriggerEvent::from_body(body), &self.options).await
        }
    }

    fn status_of(run: &Run, action: &str) -> String {
        run.actions.get(action).map(|a| a.status.to_string()).unwrap_or_else(|| "absent".into())
    }

    fn explain(run: &Run) -> String {
        serde_json::to_string_pretty(run).unwrap_or_default()
    }

    #[tokio::test]
    async fn a_new_referral_becomes_an_opportunity_with_its_existing_account_and_a_new_contact() {
        let env = start(json!({"Account": [{"Name": "Fabrikam Inc"}]})).await;
        let mut referral = fixture("referral_incoming.json");
        referral.as_object_mut().map(|r| r.remove("externalReferenceId"));
        pc_sandbox::admin::seed(&env.pc_sandbox, json!([referral])).expect("seed referral");
        let id = referral["id"].as_str().expect("id").to_string();
        let event = json!({"EventName": "referral-created", "referral_id": id});

        let run = env.run("pc-to-sf", event.clone()).await;
        assert!(run.succeeded(), "{}", explain(&run));
        let accounts = env.query("SELECT Id FROM Account WHERE Name = 'Fabrikam Inc'").await;
        assert_eq!(accounts.len(), 1, "the existing account is used, not duplicated");
        let opportunities = env
            .query(&format!(
                "SELECT Id, Name, StageName, Amount, CloseDate, AccountId, How_can_Microsoft_help__c, LeadSource, Audit__c FROM Opportunity WHERE Referral_Identifier__c = '{id}'"
            ))
            .await;
        assert_eq!(opportunities.len(), 1);
        let opportunity = &opportunities[0];
        assert_eq!(opportunity["StageName"], "Qualification");
        assert_eq!(opportunity["Amount"].as_f64(), Some(120000.0));
        assert_eq!(opportunity["CloseDate"], "2024-06-30");
        assert_eq!(opportunity["AccountId"], accounts[0]["Id"]);
        assert_eq!(opportunity["How_can_Microsoft_help__c"], "ProofOfConceptOrDemo");
        assert_eq!(opportunity["LeadSource"], "Partner Referral");
        let contacts =
            env.query("SELECT Id, AccountId FROM Contact WHERE Email = 'dana.reyes@fabrikam.com'").await;
        assert_eq!(contacts.len(), 1);
        assert_eq!(contacts[0]["AccountId"], accounts[0]["Id"]);

        // The same event again: nothing differs, so nothing is written.
        let again = env.run("pc-to-sf", event).await;
        assert!(again.succeeded(), "{}", explain(&again));
        assert_eq!(status_of(&again, "Update_existing_opportunity"), "skipped", "{}", explain(&again));
        assert_eq!(env.query("SELECT Id FROM Contact").await.len(), 1);

        // A seller moves the stage on in Salesforce; Partner Center changes the deal value.
        let opportunity_id = opportunity["Id"].as_str().expect("id").to_string();
        env.call(
            &env.sf,
            "update_record",
            json!({"sobject": "Opportunity", "id": opportunity_id, "record": {"StageName": "Negotiation/Review"}}),
        )
        .await;
        env.call(
            &env.pc,
            "patch_referral",
            json!({"id": id, "operations": [{"op": "replace", "path": "/details/dealValue", "value": 130000}]}),
        )
        .await;
        let update = env.run("pc-to-sf", json!({"EventName": "referral-updated", "referral_id": id})).await;
        assert!(update.succeeded(), "{}", explain(&update));
        let sent = update.actions.get("Update_existing_opportunity").and_then(|a| a.inputs.clone());
        let record = sent.map(|i| i["record"].clone()).unwrap_or_default();
        let mut fields: Vec<&str> =
            record.as_object().map(|r| r.keys().map(String::as_str).collect()).unwrap_or_default();
        fields.sort();
        assert_eq!(
            fields,
            ["Amount", "Audit__c", "Last_Sync_Date__c"],
            "only the changed field (and the audit line and sync time) is written"
        );
        let soql =
            format!("SELECT StageName, Amount, Audit__c FROM Opportunity WHERE Id = '{opportunity_id}'");
        let now = env.query(&soql).await[0].clone();
        assert_eq!(now["StageName"], "Negotiation/Review", "an Active referral does not pull the stage back");
        assert_eq!(now["Amount"].as_f64(), Some(130000.0));
        assert!(now["Audit__c"].as_str().is_some_and(|a| a.lines().count() == 2 && a.contains("Amount")));

        // Microsoft closes the deal as won: the stage follows.
        let ops = json!([{"op": "replace", "path": "/status", "value": "Closed"}, {"op": "replace", "path": "/substatus", "value": "Won"}]);
        env.call(&env.pc, "patch_referral", json!({"id": id, "operations": ops})).await;
        let won = env.run("pc-to-sf", json!({"EventName": "referral-updated", "referral_id": id})).await;
        assert!(won.succeeded(), "{}", explain(&won));
        assert_eq!(env.query(&soql).await[0]["StageName"], "Closed Won");
    }

    #[tokio::test]
    async fn the_on_demand_solutions_leads_and_catch_up_flows_run() {
        let env = start(json!({"Account": [{"Name": "Contoso Pharma"}]})).await;
        let account = env.query("SELECT Id FROM Account").await[0]["Id"].clone();
        let created = env
            .call(
                &env.sf,
                "create_record",
                json!({"sobject": "Opportunity", "record": {
                    "Name": "Contoso Pharma - Fabric", "StageName": "Qualification", "CloseDate": "2026-10-01",
                    "Amount": 90000, "AccountId": account, "Sync_with_Partner_Center__c": true}}),
            )
            .await;
        let opportunity_id = created["id"].as_str().expect("id").to_string();

        let run = env.run("sf-to-pc", json!({"id": opportunity_id})).await;
        assert!(run.succeeded(), "{}", explain(&run));
        assert_eq!(status_of(&run, "Create_Microsoft_referral"), "succeeded");
        let soql = format!("SELECT Referral_Identifier__c FROM Opportunity WHERE Id = '{opportunity_id}'");
        let referral_id =
            env.query(&soql).await[0]["Referral_Identifier__c"].as_str().expect("written back").to_string();

        let solution = env
            .call(
                &env.sf,
                "create_record",
                json!({"sobject": "Microsoft_Solution__c", "record": {
                    "Name": "Contoso Managed SOC", "Opportunity__c": opportunity_id, "Solution_Id__c": "SOL-6115380-IPC", "Sync_with_Partner_Center__c": true}}),
            )
            .await;
        let run = env.run("sf-microsoft-solutions-to-pc", json!({"Id": solution["id"]})).await;
        assert!(run.succeeded(), "{}", explain(&run));
        let referral = env.call(&env.pc, "get_referral", json!({"id": referral_id})).await;
        let ids: Vec<&Value> = referral["details"]["requirements"]["solutions"]
            .as_array()
            .map(|s| s.iter().map(|x| &x["id"]).collect())
            .unwrap_or_default();
        assert_eq!(ids, [&json!("SOL-6115380-IPC")], "{}", explain(&run));
        let again = env.run("sf-microsoft-solutions-to-pc", json!({"Id": solution["id"]})).await;
        assert_eq!(status_of(&again, "Update_Microsoft_referral"), "skipped", "{}", explain(&again));

        let lead = env
            .call(
                &env.sf,
                "create_record",
                json!({"sobject": "Lead", "record": {"LastName": "Souza", "FirstName": "Ana", "Company": "Tailspin Toys", "LeadSource": "Partner Referral", "Email": "ana@tailspintoys.com"}}),
            )
            .await;
        let run = env.run("sf-leads-to-pc", json!({"Id": lead["id"]})).await;
        assert!(run.succeeded(), "{}", explain(&run));
        assert_eq!(status_of(&run, "Create_Microsoft_referral"), "succeeded");
        let twice = env.run("sf-leads-to-pc", json!({"Id": lead["id"]})).await;
        assert!(twice.succeeded(), "{}", explain(&twice));
        assert_eq!(status_of(&twice, "Create_Microsoft_referral"), "skipped", "a lead is shared once");

        let catch_up = env.run("pc-cosell-referral-updates-to-sf", Value::Null).await;
        assert!(catch_up.succeeded(), "{}", explain(&catch_up));
    }

    #[tokio::test]
    async fn a_dry_run_reads_for_real_and_holds_back_every_write() {
        let mut env = start(json!({})).await;
        let referral = fixture("referral_minimal.json");
        pc_sandbox::admin::seed(&env.pc_sandbox, json!([referral])).expect("seed referral");
        let dry = RunOptions::new(true);
        env.options.http = dry.http;
        let run = env
            .run("pc-to-sf", json!({"EventName": "referral-created", "referral_id": referral["id"]}))
            .await;
        assert!(run.succeeded(), "{}", explain(&run));
        for write in ["Create_account", "Create_opportunity"] {
            let outputs = run.actions.get(write).and_then(|a| a.outputs.clone()).unwrap_or_default();
            assert_eq!(outputs["dry_run"], true, "{write}: {}", explain(&run));
        }
        assert!(env.query("SELECT Id FROM Opportunity").await.is_empty());
        assert!(env.query("SELECT Id FROM Account").await.is_empty());
    }

    #[tokio::test]
    async fn a_synced_opportunity_becomes_a_referral_and_later_edits_patch_only_what_differs() {
        let env =
            start(json!({"Account": [{"Name": "Woodgrove Bank", "BillingCountry": "United States"}]})).await;
        let account = env.query("SELECT Id FROM Account").await[0]["Id"].clone();
        let created = env
            .call(
                &env.sf,
                "create_record",
                json!({"sobject": "Opportunity", "record": {
                    "Name": "Woodgrove Bank - Azure landing zone", "StageName": "Prospecting",
                    "CloseDate": "2026-12-15", "Amount": 250000, "AccountId": account,
                    "How_can_Microsoft_help__c": "CustomerTechnicalArchitecture",
                    "Sync_with_Partner_Center__c": true}}),
            )
            .await;
        let opportunity_id = created["id"].as_str().expect("id").to_string();

        let run = env.run("create-cosell-referral-sf-to-pc", json!({"Id": opportunity_id})).await;
        assert!(run.succeeded(), "{}", explain(&run));
        let soql = format!(
            "SELECT Referral_Identifier__c, Referral_Link__c, Audit__c FROM Opportunity WHERE Id = '{opportunity_id}'"
        );
        let written = env.query(&soql).await[0].clone();
        let referral_id =
            written["Referral_Identifier__c"].as_str().expect("referral id written back").to_string();
        assert!(written["Referral_Link__c"].as_str().is_some_and(|l| l.ends_with(&referral_id)));
        assert!(
            written["Audit__c"].as_str().is_some_and(|a| a.contains("✔ Created Partner Center referral"))
        );
        let referral = env.call(&env.pc, "get_referral", json!({"id": referral_id})).await;
        assert_eq!(referral["externalReferenceId"], opportunity_id.as_str());
        assert_eq!(referral["customerProfile"]["address"]["country"], "US");

        // Partner Center's referral-created event can arrive before the write-back: the
        // Opportunity is found by the referral's externalReferenceId, not created twice.
        env.call(
            &env.sf,
            "update_record",
            json!({"sobject": "Opportunity", "id": opportunity_id, "record": {"Referral_Identifier__c": null}}),
        )
        .await;
        let echo =
            env.run("pc-to-sf", json!({"EventName": "referral-created", "referral_id": referral_id})).await;
        assert!(echo.succeeded(), "{}", explain(&echo));
        assert_eq!(env.query("SELECT Id FROM Opportunity").await.len(), 1, "{}", explain(&echo));
        assert_eq!(env.query(&soql).await[0]["Referral_Identifier__c"], referral_id.as_str());

        // Nothing changed on the Opportunity: no patch.
        let quiet = env.run("sf-opportunity-to-pc", json!({"Id": opportunity_id})).await;
        assert!(quiet.succeeded(), "{}", explain(&quiet));
        assert_eq!(status_of(&quiet, "Update_Microsoft_referral"), "skipped", "{}", explain(&quiet));

        // Won, with a new amount: both reach the referral.
        env.call(
            &env.sf,
            "update_record",
            json!({"sobject": "Opportunity", "id": opportunity_id, "record": {"StageName": "Closed Won", "Amount": 260000}}),
        )
        .await;
        let won = env.run("sf-opportunity-to-pc", json!({"Id": opportunity_id})).await;
        assert!(won.succeeded(), "{}", explain(&won));
        let referral = env.call(&env.pc, "get_referral", json!({"id": referral_id})).await;
        assert_eq!(
            (referral["status"].as_str(), referral["substatus"].as_str()),
            (Some("Closed"), Some("Won"))
        );
        assert_eq!(referral["details"]["dealValue"].as_f64(), Some(260000.0));
    }
}
