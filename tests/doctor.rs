//! `coflow doctor` against the sandbox: an org with the co-sell metadata and a registered webhook
//! passes; a removed field or object, a webhook registered elsewhere or for too few events, and
//! refused credentials are each named, with what to do.

use std::path::PathBuf;

use coflow::connectors::config::{self, LoadedConnections};
use coflow::connectors::{Connector, HttpClient, OperationCall};
use coflow::cosell::doctor::{self, DoctorOptions, Level, Report};
use coflow::sandbox::{self, Sandbox, SandboxConfig};
use serde_json::json;

const HOOK: &str = "https://coflow.test/hooks/pc-to-sf";

fn flows_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flows")
}

async fn start(without: &[&str]) -> Sandbox {
    let mut config = SandboxConfig::ephemeral();
    config.salesforce_without = without.iter().map(|s| s.to_string()).collect();
    sandbox::start(config).await.unwrap()
}

fn http() -> HttpClient {
    HttpClient::new(reqwest::Client::new(), true)
}

async fn register(sandbox: &Sandbox, url: &str, events: &[&str]) {
    let connections = sandbox.connections().unwrap();
    let pc = connections.partner_center["partner_center"].clone();
    let inputs = json!({"url": url, "events": events, "overwrite": true});
    let sending = HttpClient::new(reqwest::Client::new(), false);
    let call = OperationCall::new("register_webhook", &inputs, &sending);
    Connector::call(pc.as_ref(), call).await.unwrap();
}

async fn check(connections: &LoadedConnections, webhook_url: Option<&str>) -> Report {
    let mut options = DoctorOptions::new(flows_dir());
    options.webhook_url = webhook_url.map(str::to_string);
    doctor::run(&options, connections, &http()).await
}

fn problems(report: &Report) -> Vec<String> {
    report.findings.iter().filter(|f| f.level == Level::Problem).map(|f| f.message.clone()).collect()
}

fn fix_of<'r>(report: &'r Report, message_start: &str) -> &'r str {
    report
        .findings
        .iter()
        .find(|f| f.message.starts_with(message_start))
        .and_then(|f| f.fix.as_deref())
        .unwrap_or_else(|| panic!("no finding starting with {message_start:?}:\n{}", report.to_text()))
}

#[tokio::test]
async fn an_org_with_the_metadata_and_the_registered_webhook_has_no_problems() {
    let sandbox = start(&[]).await;
    register(&sandbox, HOOK, &["referral-created", "referral-updated"]).await;
    let report = check(&sandbox.connections().unwrap(), Some(HOOK)).await;
    let text = report.to_text();
    assert_eq!(report.problems(), 0, "{text}");
    for expected in [
        "✔ 9 flows compile",
        "✔ Salesforce metadata in",
        "Salesforce connection `salesforce`\n  ✔ signed in",
        "✔ Microsoft_Solution__c: the ",
        "✔ Opportunity: the ",
        "✔ signed in to the referrals API",
        "✔ webhook registered at https://coflow.test/hooks/pc-to-sf for referral-created, referral-updated",
        "Everything the flows need is in place.",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_removed_field_and_object_are_named_with_the_metadata_that_installs_them() {
    let sandbox = start(&["Opportunity.Audit__c", "Microsoft_Solution__c"]).await;
    register(&sandbox, HOOK, &["referral-created", "referral-updated"]).await;
    let report = check(&sandbox.connections().unwrap(), Some(HOOK)).await;
    let found = problems(&report);
    assert_eq!(found.len(), 3, "{}", report.to_text());
    assert!(
        found[0].starts_with(
            "object Microsoft_Solution__c is missing (used by sf-microsoft-solutions-to-pc.yaml)"
        ),
        "{found:?}"
    );
    assert!(
        found[1].starts_with(
            "field Opportunity.Audit__c is missing (used by create-cosell-referral-sf-to-pc.yaml, "
        ),
        "{found:?}"
    );
    assert!(
        found[2].starts_with("Opportunity has no child relationship `Microsoft_Solutions__r`"),
        "{found:?}"
    );
    let audit_fix = fix_of(&report, "field Opportunity.Audit__c");
    assert!(
        audit_fix.contains(
            "flows/salesforce/force-app/main/default/objects/Opportunity/fields/Audit__c.field-meta.xml"
        ),
        "{audit_fix}"
    );
    assert!(
        audit_fix.contains("sf project deploy start -d ") && audit_fix.contains("Coflow_Cosell"),
        "{audit_fix}"
    );
    let object_fix = fix_of(&report, "object Microsoft_Solution__c");
    assert!(object_fix.contains("objects/Microsoft_Solution__c ("), "{object_fix}");
    let child_fix = fix_of(&report, "Opportunity has no child relationship");
    assert!(child_fix.contains("Microsoft_Solution__c/fields/Opportunity__c.field-meta.xml"), "{child_fix}");
    assert!(report.to_text().ends_with("3 problems found.\n"));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_standard_field_the_user_cannot_see_is_named_without_a_metadata_file() {
    let sandbox = start(&["Lead.Rating"]).await;
    register(&sandbox, HOOK, &["referral-created", "referral-updated"]).await;
    let report = check(&sandbox.connections().unwrap(), Some(HOOK)).await;
    assert_eq!(problems(&report), ["field Lead.Rating is missing (used by sf-leads-to-pc.yaml)"]);
    assert!(fix_of(&report, "field Lead.Rating").contains("field-level security"));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_webhook_missing_registered_elsewhere_or_for_too_few_events_is_a_problem() {
    let sandbox = start(&[]).await;
    let connections = sandbox.connections().unwrap();
    let none = check(&connections, Some(HOOK)).await;
    assert_eq!(problems(&none), ["no webhook is registered: referral events will not reach coflow"]);
    assert!(fix_of(&none, "no webhook").contains("partner-center-webhook-registration.yaml"));

    register(&sandbox, "https://old.example.net/hooks/pc-to-sf", &["referral-created"]).await;
    let wrong = check(&connections, Some(HOOK)).await;
    assert_eq!(
        problems(&wrong),
        [
            "the webhook is registered at https://old.example.net/hooks/pc-to-sf, not at https://coflow.test/hooks/pc-to-sf",
            "https://old.example.net/hooks/pc-to-sf is not registered for referral-updated (flow pc-to-sf)",
        ]
    );

    // Without --webhook-url the registration flow's own URL is expected, and it is the example.
    let example = check(&connections, None).await;
    let warnings: Vec<&str> =
        example.findings.iter().filter(|f| f.level == Level::Warning).map(|f| f.message.as_str()).collect();
    assert_eq!(
        warnings,
        [
            "the webhook URL the flows register is still the example, https://coflow.example.com/hooks/pc-to-sf"
        ]
    );

    let off_path = check(&connections, Some("https://coflow.test/hooks/elsewhere")).await;
    assert!(
        problems(&off_path)
            .iter()
            .any(|p| p.contains("does not end with a webhook flow's path (/hooks/pc-to-sf)"))
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn refused_credentials_are_sign_in_problems_and_unknown_connections_are_named() {
    let sandbox = start(&[]).await;
    let yaml = sandbox.connections_yaml();
    let mut secrets = sandbox.secrets();
    secrets.0.insert("SANDBOX_SF_CLIENT_SECRET".into(), "wrong".into());
    secrets.0.insert("SANDBOX_PC_REFRESH_TOKEN".into(), "wrong".into());
    let connections = config::parse(&yaml, "test").unwrap().build(&secrets).unwrap();
    let report = check(&connections, Some(HOOK)).await;
    let found = problems(&report);
    assert_eq!(found.len(), 3, "{}", report.to_text());
    assert!(found[0].starts_with("cannot sign in: "), "{found:?}");
    assert!(found[1].starts_with("cannot read referrals: "), "{found:?}");
    assert!(found[2].starts_with("cannot read the webhook registration: "), "{found:?}");
    assert!(!report.to_text().contains("wrong"), "secrets stay out of the report");

    let nothing = check(&LoadedConnections::default(), Some(HOOK)).await;
    let found = problems(&nothing);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("connection `partner_center` (used by "), "{found:?}");
    assert!(found[1].starts_with("connection `salesforce` (used by "), "{found:?}");
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_exits_1_and_prints_the_missing_field() {
    let sandbox = start(&["Opportunity.Referral_Link__c"]).await;
    register(&sandbox, HOOK, &["referral-created", "referral-updated"]).await;
    let dir = std::env::temp_dir().join(format!("coflow-doctor-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("coflow.yaml");
    std::fs::write(&config, sandbox.connections_yaml()).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_coflow"));
    command
        .args(["doctor", "--flows"])
        .arg(flows_dir())
        .arg("--config")
        .arg(&config)
        .args(["--webhook-url", HOOK]);
    for (name, value) in &sandbox.secrets().0 {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("✘ field Opportunity.Referral_Link__c is missing (used by "), "{stdout}");
    assert!(stdout.contains("objects/Opportunity/fields/Referral_Link__c.field-meta.xml"), "{stdout}");
    assert!(stdout.ends_with("1 problem found.\n"), "{stdout}");

    let mut json = std::process::Command::new(env!("CARGO_BIN_EXE_coflow"));
    json.args(["doctor", "--format", "json", "--flows"]).arg(flows_dir()).arg("--config").arg(&config);
    json.args(["--webhook-url", HOOK]);
    for (name, value) in &sandbox.secrets().0 {
        json.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || json.output().unwrap()).await.unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let problems: Vec<&serde_json::Value> =
        report["findings"].as_array().unwrap().iter().filter(|f| f["level"] == "problem").collect();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0]["area"], "Salesforce connection `salesforce`");
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// `coflow sync status` reads both systems: an open referral no Opportunity carries and a
/// synced Opportunity without a referral are pending, one whose last Audit line is a failure
/// is failed; a Microsoft Solution waiting for its Opportunity's referral is pending; nothing
/// is written.
#[tokio::test]
async fn sync_status_counts_pending_and_failed_records() {
    let sandbox = start(&[]).await;
    let connections = sandbox.connections().unwrap();
    let url = format!("{}/__sandbox/referrals", sandbox.partner_center_url);
    let referral = json!({"name": "Fabrikam - Sentinel", "customerProfile": {"name": "Fabrikam"},
                          "details": {"dealValue": 1000, "currency": "USD"}});
    let response = reqwest::Client::new().post(url).json(&referral).send().await.unwrap();
    assert!(response.status().is_success());
    let sf = connections.salesforce["salesforce"].clone();
    let sending = HttpClient::new(reqwest::Client::new(), false);
    let mut created = Vec::new();
    for (name, audit) in
        [("Waiting", ""), ("Refused", "2026-01-01T00:00:00Z ✘ Partner Center referral not created: 400")]
    {
        let inputs = json!({"sobject": "Opportunity", "record": {"Name": name, "StageName": "Prospecting",
            "CloseDate": "2026-12-31", "Sync_with_Partner_Center__c": true, "Audit__c": audit}});
        let call = OperationCall::new("create_record", &inputs, &sending);
        created
            .push(Connector::call(sf.as_ref(), call).await.unwrap().body["id"].as_str().unwrap().to_string());
    }
    // A Microsoft Solution of the Opportunity that has no referral yet waits with it.
    let inputs = json!({"sobject": "Microsoft_Solution__c", "record": {"Name": "Sentinel",
        "Opportunity__c": created[0], "Solution_Id__c": "sol-1", "Sync_with_Partner_Center__c": true}});
    let call = OperationCall::new("create_record", &inputs, &sending);
    Connector::call(sf.as_ref(), call).await.unwrap();
    let status = coflow::cosell::status::sync_status(&flows_dir(), &connections, &http()).await.unwrap();
    let opportunity = &status.objects[0];
    assert_eq!(opportunity.object, "opportunity");
    assert_eq!(opportunity.direction, "bidirectional");
    assert_eq!(
        (opportunity.in_sync, opportunity.pending, opportunity.failed, opportunity.drifted),
        (0, 2, 1, 0)
    );
    assert!(opportunity.oldest_pending.is_some());
    let solution = &status.objects[2];
    assert_eq!(solution.object, "microsoft_solution");
    assert_eq!((solution.in_sync, solution.pending, solution.failed, solution.drifted), (0, 1, 0, 0));
    let text = status.to_text();
    assert!(text.lines().nth(1).unwrap().starts_with("opportunity"), "{text}");
    assert!(text.contains("lead") && text.contains("(not tracked)"), "{text}");
    sandbox.shutdown().await;
}
