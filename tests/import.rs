//! `coflow import`: exports of each container kind translate into flow files that load, run
//! with the statuses their structure implies, and name what could not be translated.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use coflow::engine::{self, RunOptions, Status, TriggerEvent};
use coflow::import::{self, ImportOptions, ImportReport, ImportedFlow, SourceFlow, TRIGGER};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(name)
}

fn read(name: &str) -> Vec<SourceFlow> {
    import::read_export(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The only flow of a fixture, translated.
fn imported(name: &str) -> ImportedFlow {
    let sources = read(name);
    assert_eq!(sources.len(), 1, "{name} holds one flow");
    import::translate(&sources[0], &import::kebab(&sources[0].display_name))
}

/// A fresh folder under the system's temporary folder.
fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("coflow-import-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn coflow(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_coflow")).args(args).output().expect("coflow runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

fn error_codes(yaml: &str) -> Vec<(&'static str, String)> {
    let (_, diagnostics) = coflow::flow::check_str(yaml, None);
    diagnostics
        .iter()
        .filter(|d| d.severity == coflow::flow::Severity::Error)
        .map(|d| (d.code, d.message.clone()))
        .collect()
}

// ---- a bare definition: every control construct ---------------------------------------------

#[test]
fn a_definition_translates_every_construct_and_compiles() {
    let flow = imported("order-approval.json");
    assert!(!flow.report.needs_attention(), "{:#?}", flow.report.attention);
    assert!(flow.report.trigger_translated);
    assert_eq!(flow.report.translated.len(), 28, "{:?}", flow.report.translated);
    assert!(flow.yaml.starts_with(
        "# yaml-language-server: $schema=../schemas/flow.schema.json\n# Imported by `coflow import`"
    ));
    insta::assert_snapshot!("order_approval", flow.yaml);
    coflow::flow::load_str(&flow.yaml).unwrap_or_else(|e| panic!("imported flow compiles:\n{e}"));
}

async fn run_order(tier: &str, lines: Value) -> engine::Run {
    let flow = coflow::flow::load_str(&imported("order-approval.json").yaml).expect("compiles");
    let body = json!({"orderId": "SO-7", "customer": {"name": "Ada", "tier": tier}, "lines": lines});
    engine::run(&flow, TriggerEvent::from_body(body), &RunOptions::new(false)).await
}

fn statuses(run: &engine::Run, names: &[&str]) -> Vec<(String, Status)> {
    names
        .iter()
        .map(|n| {
            let status =
                run.actions.get(*n).unwrap_or_else(|| panic!("`{n}` is not in the run record")).status;
            ((*n).to_string(), status)
        })
        .collect()
}

#[tokio::test]
async fn the_imported_flow_runs_with_the_statuses_its_structure_implies() {
    let lines = json!([{"sku": "A1", "qty": 2, "price": 300}, {"sku": "B2", "qty": 1, "price": 5}]);
    let run = run_order("gold", lines).await;
    assert_eq!(run.status, Status::Succeeded, "{:#?}", run.error);
    let expected = [
        // Total 605 is over the 500 limit and no line is a gift: the review branch, gold case.
        ("Needs_review", Status::Succeeded),
        ("Route_by_tier", Status::Succeeded),
        ("Note_gold_review", Status::Succeeded),
        ("Note_manager_review", Status::Skipped),
        ("Note_unknown_tier", Status::Skipped),
        ("Auto_approve", Status::Skipped),
        // The until loop runs three times, then the scope succeeds and its catch is skipped.
        ("Reserve_stock", Status::Succeeded),
        ("Check_reserved", Status::Succeeded),
        ("Respond", Status::Succeeded),
        ("Handle_reservation_failure", Status::Skipped),
        ("Stop_as_failed", Status::Skipped),
    ];
    let names: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    let want: Vec<(String, Status)> = expected.iter().map(|(n, s)| ((*n).to_string(), *s)).collect();
    assert_eq!(statuses(&run, &names), want);
    assert_eq!(run.actions["Retry_until_reserved"].iterations.as_ref().map(Vec::len), Some(3));
    let response = run.response.as_ref().expect("the flow answers");
    assert_eq!(response.status, 200);
    assert_eq!(response.body["log"], json!("order SO-7; gold review"));
    assert_eq!(response.body["total"].as_f64(), Some(605.0));
    assert_eq!(response.body["reservation"], json!("reserved"));

    // Under the limit: the else branch runs and the whole switch is skipped.
    let run = run_order("gold", json!([{"sku": "GIFT-1", "qty": 1, "price": 20}])).await;
    assert_eq!(run.status, Status::Succeeded, "{:#?}", run.error);
    let names = ["Needs_review", "Route_by_tier", "Note_gold_review", "Auto_approve"];
    let want = [Status::Succeeded, Status::Skipped, Status::Skipped, Status::Succeeded];
    let want: Vec<(String, Status)> = names.iter().map(|n| (*n).to_string()).zip(want).collect();
    assert_eq!(statuses(&run, &names), want);
    let response = run.response.as_ref().expect("the flow answers");
    assert_eq!(response.body["log"], json!("order SO-7; auto-approved"));
}

// ---- a flow JSON with connectors, and what cannot be translated -----------------------------

#[test]
fn a_flow_json_maps_connectors_and_marks_what_it_cannot_translate() {
    let flow = imported("referral-to-salesforce.flow.json");
    assert_eq!(flow.name, "referral-to-salesforce");
    insta::assert_snapshot!("referral_to_salesforce", flow.yaml);
    let attention: Vec<&str> = flow.report.attention.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(attention, ["Read_legacy_notes", "Send_an_email"]);
    // `coflow validate` names each placeholder, and finds nothing else.
    let errors = error_codes(&flow.yaml);
    let codes: Vec<&str> = errors.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, ["unsupported_action", "unsupported_action"], "{errors:#?}");
    assert!(errors[0].1.contains("`Read_legacy_notes`") && errors[0].1.contains("'xpath' is not supported"));
    assert!(errors[1].1.contains("`Send_an_email`") && errors[1].1.contains("shared_office365"));
    // Placeholders keep the source, without literal credentials.
    assert!(flow.yaml.contains("operationId: SendEmailV2"));
    assert!(!flow.yaml.contains("not-a-real-secret-value"));
}

#[test]
fn the_report_says_what_needs_attention_and_why() {
    let mut flow = imported("referral-to-salesforce.flow.json");
    flow.report.file = "flows/referral-to-salesforce.yaml".into();
    let report = ImportReport { flows: vec![flow.report] };
    assert!(report.needs_attention());
    insta::assert_snapshot!("referral_to_salesforce_report", report.render());
}

// ---- a solution zip built here ----------------------------------------------------------------

const CLEANUP_ID: &str = "B8BEFEEE-91B3-ED11-83FE-0022489ACD39";
const ORDERS_ID: &str = "4E2D8C51-0A7B-4C3E-9F21-6D5B8A7C9E01";

fn solution_zip(dir: &Path) -> PathBuf {
    let order_definition: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("order-approval.json")).expect("fixture"))
            .expect("json");
    let order_flow = json!({"properties": {"connectionReferences": {}, "definition": order_definition}, "schemaVersion": "1.0.0.0"});
    let customizations = format!(
        r#"<ImportExportXml><Workflows>
  <Workflow WorkflowId="{{{}}}" Name="Nightly Cleanup"><JsonFileName>/Workflows/NightlyCleanup-{CLEANUP_ID}.json</JsonFileName></Workflow>
  <Workflow Name="Order Approval" WorkflowId="{{{}}}"><JsonFileName>/Workflows/OrderApproval-{ORDERS_ID}.json</JsonFileName></Workflow>
</Workflows></ImportExportXml>"#,
        CLEANUP_ID.to_lowercase(),
        ORDERS_ID.to_lowercase()
    );
    let cleanup = std::fs::read(fixture("nightly-cleanup.flow.json")).expect("fixture");
    let path = dir.join("ContosoFlows_1_0_0_1.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).expect("zip file"));
    let options = zip::write::SimpleFileOptions::default();
    let entries: [(String, Vec<u8>); 5] = [
        ("[Content_Types].xml".into(), b"<Types/>".to_vec()),
        ("solution.xml".into(), b"<ImportExportXml/>".to_vec()),
        ("customizations.xml".into(), customizations.into_bytes()),
        (format!("Workflows/NightlyCleanup-{CLEANUP_ID}.json"), cleanup),
        (format!("Workflows/OrderApproval-{ORDERS_ID}.json"), order_flow.to_string().into_bytes()),
    ];
    for (name, bytes) in entries {
        zip.start_file(name, options).expect("zip entry");
        zip.write_all(&bytes).expect("zip write");
    }
    zip.finish().expect("zip finish");
    path
}

#[test]
fn a_solution_zip_imports_every_workflow_under_its_display_name() {
    let dir = temp_dir("zip");
    let zip = solution_zip(&dir);
    let out = dir.join("flows");
    let report = import::import(&zip, &ImportOptions { out: out.clone(), force: false }).expect("imports");
    let names: Vec<&str> = report.flows.iter().map(|f| f.flow.as_str()).collect();
    assert_eq!(names, ["Nightly Cleanup", "Order Approval"]);
    assert!(!report.needs_attention(), "{}", report.render());
    let cleanup = std::fs::read_to_string(out.join("nightly-cleanup.yaml")).expect("written");
    insta::assert_snapshot!("nightly_cleanup", cleanup);
    // Round trip: every written file loads.
    for name in ["nightly-cleanup.yaml", "order-approval.yaml"] {
        coflow::flow::load_file(&out.join(name)).unwrap_or_else(|e| panic!("{name} compiles:\n{e}"));
    }
    // The literal password became a secret, and the report says which.
    assert!(!cleanup.contains("not-a-real-password"));
    let notes = &report.flows[0].notes;
    assert!(
        notes.iter().any(|n| n.action == "List_stale_items" && n.note.contains("LIST_STALE_ITEMS_PASSWORD"))
    );
    // Files that exist are not overwritten without --force.
    let again = import::import(&zip, &ImportOptions { out: out.clone(), force: false });
    assert!(again.is_err_and(|e| e.to_string().contains("--force")));
    assert!(import::import(&zip, &ImportOptions { out, force: true }).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- a Logic Apps template with API connections -----------------------------------------------

#[test]
fn a_logic_apps_template_maps_salesforce_api_connections() {
    let connection =
        json!({"connection": {"name": "@parameters('$connections')['salesforce']['connectionId']"}});
    let template = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "parameters": {"workflows_account_contacts_name": {"defaultValue": "Account contacts", "type": "String"}},
        "resources": [{
            "type": "Microsoft.Logic/workflows",
            "name": "[parameters('workflows_account_contacts_name')]",
            "properties": {"definition": {
                "triggers": {"When_an_account_is_created": {
                    "type": "ApiConnection",
                    "inputs": {"host": connection, "method": "get",
                        "path": "/datasets/default/tables/@{encodeURIComponent(encodeURIComponent('Account'))}/onnewitems",
                        "queries": {"$filter": "Type eq 'Customer'"}},
                    "recurrence": {"frequency": "Minute", "interval": 3},
                    "splitOn": "@triggerBody()?['value']"
                }},
                "actions": {"Create_contact": {
                    "type": "ApiConnection",
                    "runAfter": {},
                    "inputs": {"host": connection, "method": "post",
                        "path": "/datasets/default/tables/@{encodeURIComponent(encodeURIComponent('Contact'))}/items",
                        "body": {"LastName": "@triggerBody()?['Name']", "AccountId": "@triggerBody()?['Id']"}}
                }}
            }}
        }]
    });
    let dir = temp_dir("arm");
    let path = dir.join("template.json");
    std::fs::write(&path, template.to_string()).expect("write");
    let sources = import::read_export(&path).expect("reads");
    assert_eq!(sources[0].display_name, "Account contacts");
    let flow = import::translate(&sources[0], "account-contacts");
    assert!(!flow.report.needs_attention(), "{:#?}", flow.report.attention);
    let def: Value = serde_yaml::from_str(&flow.yaml).expect("yaml");
    assert_eq!(
        def["trigger"],
        json!({"type": "salesforce.poll", "object": "Account", "on": "created", "where": "Type = 'Customer'", "every": "PT3M"})
    );
    assert_eq!(def["connections"], json!({"sf": "salesforce"}));
    assert_eq!(
        def["actions"]["Create_contact"],
        json!({"type": "salesforce.create_record", "inputs": {"sobject": "Contact", "record": {
            "LastName": "{{ opt(triggerBody(), 'Name') }}", "AccountId": "{{ opt(triggerBody(), 'Id') }}"}}})
    );
    coflow::flow::load_str(&flow.yaml).unwrap_or_else(|e| panic!("compiles:\n{e}"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn untranslatable_triggers_and_options_are_reported() {
    let definition = json!({
        "triggers": {"When_a_new_email_arrives": {
            "type": "OpenApiConnection",
            "inputs": {"host": {"apiId": "/providers/Microsoft.PowerApps/apis/shared_office365", "operationId": "OnNewEmailV3"}},
            "conditions": [{"expression": "@contains(triggerBody()?['subject'], 'order')"}]
        }},
        "actions": {"Log": {"type": "Compose", "inputs": "@triggerBody()?['subject']", "runAfter": {}}}
    });
    let source = SourceFlow {
        display_name: "Mail orders".into(),
        origin: "test".into(),
        description: None,
        definition,
        connection_references: Default::default(),
    };
    let flow = import::translate(&source, "mail-orders");
    assert!(!flow.report.trigger_translated);
    let reasons: Vec<&str> =
        flow.report.attention.iter().filter(|a| a.action == TRIGGER).map(|a| a.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("trigger conditions `@contains(triggerBody()?['subject'], 'order')`"));
    assert!(reasons[1].contains("`shared_office365` (operation `OnNewEmailV3`)"));
    let codes: Vec<&str> = error_codes(&flow.yaml).into_iter().map(|(c, _)| c).collect();
    assert_eq!(codes, ["unsupported_trigger"]);
}

#[test]
fn problems_validation_would_find_are_in_the_report() {
    // `Early` reads `Late`, which runs after it: the translation is faithful, the flow is not.
    let definition = json!({
        "triggers": {"manual": {"type": "Request", "kind": "Button", "inputs": {"schema": {}}}},
        "actions": {
            "Early": {"type": "Compose", "inputs": "@outputs('Late')", "runAfter": {}},
            "Late": {"type": "Compose", "inputs": 1, "runAfter": {"Early": ["Succeeded"]}}
        }
    });
    let source = SourceFlow {
        display_name: "Out of order".into(),
        origin: "test".into(),
        description: None,
        definition,
        connection_references: Default::default(),
    };
    let flow = import::translate(&source, "out-of-order");
    assert_eq!(flow.report.translated, ["Early", "Late"]);
    let attention: Vec<(&str, &str)> =
        flow.report.attention.iter().map(|a| (a.action.as_str(), a.reason.as_str())).collect();
    assert_eq!(attention.len(), 1, "{attention:?}");
    assert_eq!(attention[0].0, "(validate)");
    assert!(
        attention[0].1.contains("`Early` refers to `Late`, which cannot have run before it"),
        "{attention:?}"
    );
}

#[test]
fn partner_center_http_calls_become_connector_operations() {
    let call = |method: &str, uri: &str, body: Value| {
        json!({"type": "Http", "runAfter": {}, "inputs": {"method": method, "uri": uri, "body": body,
            "headers": {"Authorization": "Bearer @{variables('token')}", "If-Match": "@variables('etag')"}}})
    };
    let referrals = "https://api.partner.microsoft.com/v1.0/engagements/referrals";
    let registration = "https://api.partnercenter.microsoft.com/webhooks/v1/registration";
    let actions = json!({
        "Init_token": {"type": "InitializeVariable", "runAfter": {}, "inputs": {"variables": [{"name": "token", "type": "String", "value": ""}]}},
        "Init_etag": {"type": "InitializeVariable", "runAfter": {"Init_token": ["Succeeded"]}, "inputs": {"variables": [{"name": "etag", "type": "String", "value": ""}]}},
        "Create": call("POST", referrals, json!({"name": "@triggerBody()?['name']"})),
        "Replace": call("PUT", &format!("{referrals}/@{{body('Create')?['id']}}"), json!({"status": "Active"})),
        "Patch": call("PATCH", &format!("{referrals}/@{{body('Create')?['id']}}"), json!([{"op": "replace", "path": "/status", "value": "Closed"}])),
        "Register": call("POST", registration, json!({"WebhookUrl": "https://sync.example.com/hook", "WebhookEvents": ["referral-created"]})),
        "Test_event": call("POST", &format!("{registration}/validationEvents"), Value::Null),
    });
    let mut actions: serde_json::Map<String, Value> = serde_json::from_value(actions).expect("map");
    let mut previous = "Init_etag".to_string();
    for name in ["Create", "Replace", "Patch", "Register", "Test_event"] {
        actions[name]["runAfter"] = json!({previous.as_str(): ["Succeeded"]});
        previous = name.to_string();
    }
    let source = SourceFlow {
        display_name: "PC calls".into(),
        origin: "test".into(),
        description: None,
        definition: json!({"triggers": {"manual": {"type": "Request", "kind": "Http"}}, "actions": actions}),
        connection_references: Default::default(),
    };
    let flow = import::translate(&source, "pc-calls");
    assert!(!flow.report.needs_attention(), "{:#?}", flow.report.attention);
    let def: Value = serde_yaml::from_str(&flow.yaml).expect("yaml");
    let a = &def["actions"];
    assert_eq!(
        a["Create"],
        json!({"type": "partner_center.create_referral", "inputs": {"referral": {"name": "{{ opt(triggerBody(), 'name') }}"}}})
    );
    assert_eq!(a["Replace"]["type"], json!("partner_center.update_referral"));
    assert_eq!(
        a["Replace"]["inputs"],
        json!({"id": "{{ string(opt(body('Create'), 'id')) }}", "changes": {"status": "Active"}})
    );
    assert_eq!(a["Patch"]["type"], json!("partner_center.patch_referral"));
    assert_eq!(a["Patch"]["inputs"]["etag"], json!("{{ variables('etag') }}"));
    assert_eq!(
        a["Register"],
        json!({"type": "partner_center.register_webhook", "inputs": {"overwrite": false, "url": "https://sync.example.com/hook", "events": ["referral-created"]}})
    );
    assert_eq!(a["Test_event"], json!({"type": "partner_center.validate"}));
    assert_eq!(def["connections"], json!({"pc": "partner_center"}));
}

// ---- the command line: import → validate → graph ----------------------------------------------

#[test]
fn the_command_line_imports_validates_and_draws() {
    let dir = temp_dir("cli");
    let out = dir.join("flows");
    let out_text = out.display().to_string();
    let orders = fixture("order-approval.json").display().to_string();
    let (code, stdout, stderr) = coflow(&["import", &orders, "--out", &out_text]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("translated: the trigger and 28 of 28 actions"), "{stdout}");
    let written = out.join("order-approval.yaml").display().to_string();
    let (code, stdout, _) = coflow(&["validate", &written]);
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout, _) = coflow(&["graph", &written]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("Handle_reservation_failure"), "{stdout}");

    let referrals = fixture("referral-to-salesforce.flow.json").display().to_string();
    let (code, stdout, _) = coflow(&["import", &referrals, "--out", &out_text, "--format", "json"]);
    assert_eq!(code, 1, "something needs attention: {stdout}");
    let report: Value = serde_json::from_str(&stdout).expect("json report");
    assert_eq!(report["flows"][0]["attention"][1]["action"], json!("Send_an_email"));
    let written = out.join("referral-to-salesforce.yaml").display().to_string();
    let (code, stdout, _) = coflow(&["validate", &written]);
    assert_eq!(code, 1);
    assert!(stdout.contains("`Send_an_email` is a placeholder"), "{stdout}");
    // The graph shows the placeholders where they stand.
    let (code, stdout, stderr) = coflow(&["graph", &written]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Send_an_email<br/>unsupported"), "{stdout}");
    assert!(stderr.contains("2 placeholder(s)"), "{stderr}");
    let (code, _, stderr) = coflow(&["import", &referrals, "--out", &out_text]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_that_is_no_export_says_what_is_expected() {
    let dir = temp_dir("none");
    let path = dir.join("notes.json");
    std::fs::write(&path, r#"{"hello": "world"}"#).expect("write");
    let error = import::read_export(&path).unwrap_err().to_string();
    assert!(error.contains("holds no flow") && error.contains("Workflows/*.json"), "{error}");
    std::fs::write(&path, "not json").expect("write");
    assert!(import::read_export(&path).unwrap_err().to_string().contains("is not JSON"));
    let _ = std::fs::remove_dir_all(&dir);
}
