//! The web UI of `coflow serve`, rendered through the router: each page's content for a failed
//! and a succeeded run of a real flow, the resubmit and cancel forms, and who may see what.
//!
//! The flow (`tests/fixtures/ui/order-to-warehouse.yaml`) posts an order to a warehouse; the
//! test's warehouse answers 503 under `/down` and 201 under `/up`, so one event fails and
//! another succeeds through the whole server (hook, queue, worker, store).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::routing::post;
use coflow::connectors::config::Secret;
use coflow::server::registry::FlowRegistry;
use coflow::server::ui::SandboxView;
use coflow::server::{Server, Settings};
use coflow::store::{NewRun, RunDetail, RunOutcome, RunStatus, Store};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use uuid::Uuid;

const FLOW: &str = "order-to-warehouse";
const TOKEN: &str = "s3cret-admin-token";

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

fn remote() -> SocketAddr {
    SocketAddr::from(([10, 1, 2, 3], 40000))
}

/// A warehouse that is down under `/down` and up under `/up`.
async fn warehouse() -> SocketAddr {
    let app = axum::Router::new()
        .route(
            "/down/orders",
            post(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({"error": "warehouse closed for stocktaking"})),
                )
            }),
        )
        .route("/up/orders", post(|| async { (StatusCode::CREATED, axum::Json(json!({"accepted": true}))) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Ui {
    server: Server,
    app: axum::Router,
    warehouse: SocketAddr,
}

impl Ui {
    async fn start(settings: Settings) -> Ui {
        let registry = Arc::new(FlowRegistry::load(Path::new("tests/fixtures/ui")).unwrap());
        assert!(registry.snapshot().problems.is_empty(), "{:?}", registry.snapshot().problems);
        let store = coflow::store::open("sqlite::memory:").await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let settings = Settings { poll_interval: Duration::from_millis(50), ..settings };
        let server = Server::start(listener, registry, store, Default::default(), settings).await.unwrap();
        let app = coflow::server::router(server.state().clone());
        Ui { server, app, warehouse: warehouse().await }
    }

    async fn open() -> Ui {
        Ui::start(Settings::default()).await
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.server.state().store
    }

    async fn send(&self, request: Request<Body>, peer: SocketAddr) -> Page {
        let mut request = request;
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Page { status, headers, body: unescape(&String::from_utf8_lossy(&bytes)) }
    }

    async fn get(&self, path: &str) -> Page {
        self.get_with(path, loopback(), &[]).await
    }

    async fn get_with(&self, path: &str, peer: SocketAddr, headers: &[(&str, &str)]) -> Page {
        let mut request = Request::get(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::empty()).unwrap(), peer).await
    }

    async fn post_form(&self, path: &str, form: &str, headers: &[(&str, &str)]) -> Page {
        let mut request =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(form.to_string())).unwrap(), loopback()).await
    }

    /// Sends an order through the flow's hook and waits for its run to end.
    async fn order(&self, id: &str, warehouse_path: &str) -> RunDetail {
        let body = json!({
            "order": {"id": id, "customer": "Contoso", "lines": [{"sku": "BOLT-7", "qty": 3, "price": 4}]},
            "warehouse": format!("http://{}/{warehouse_path}", self.warehouse),
        });
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("/hooks/{FLOW}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let answer = self.send(request, loopback()).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        let run: Value = serde_json::from_str(&answer.body).unwrap();
        let id = Uuid::parse_str(run["run_id"].as_str().unwrap()).unwrap();
        self.wait_for_end(id).await
    }

    async fn wait_for_end(&self, id: Uuid) -> RunDetail {
        for _ in 0..400 {
            if let Some(run) = self.store().get_run(id).await.unwrap() {
                if run.summary.status.is_terminal() {
                    return run;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {id} did not end in 20 s");
    }
}

/// A response, its body with the HTML entities the templates write turned back into text, so
/// assertions read like the page does.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Page {
    fn ok(self) -> Page {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        self
    }

    fn has(&self, text: &str) -> bool {
        self.body.contains(text)
    }

    fn expect(&self, texts: &[&str]) {
        for text in texts {
            assert!(self.has(text), "page lacks {text:?}:\n{}", self.body);
        }
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The value of the hidden input `name`.
    fn hidden(&self, name: &str) -> String {
        let marker = format!(r#"name="{name}" value=""#);
        let start = self.body.find(&marker).unwrap_or_else(|| panic!("no {name} input:\n{}", self.body))
            + marker.len();
        self.body[start..].split('"').next().unwrap().to_string()
    }
}

/// A failed and a succeeded run of the flow, in that order.
async fn two_runs(ui: &Ui) -> (RunDetail, RunDetail) {
    let failed = ui.order("A-1", "down").await;
    let succeeded = ui.order("B-2", "up").await;
    assert_eq!(failed.summary.status, RunStatus::Failed);
    assert_eq!(succeeded.summary.status, RunStatus::Succeeded);
    (failed, succeeded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_page_lists_each_flow_with_counts_and_recent_outcomes() {
    let ui = Ui::open().await;
    let (failed, succeeded) = two_runs(&ui).await;
    let page = ui.get("/").await.ok();
    page.expect(&[
        "<a href=\"/flows/order-to-warehouse\">order-to-warehouse</a>",
        "Prices an order's lines",
        "<code>http</code>",
        "POST /hooks/order-to-warehouse",
        "enabled",
        "2 runs</a>",
        "1 failed</a>",
        "last 24 hours: 2 runs, 1 failed",
    ]);
    // The bar: oldest first, each cell a link with its status in words.
    let failed_cell =
        page.body.find(&format!(r#"class="cell s-failed" href="/runs/{}""#, failed.summary.id)).unwrap();
    let succeeded_cell = page
        .body
        .find(&format!(r#"class="cell s-succeeded" href="/runs/{}""#, succeeded.summary.id))
        .unwrap();
    assert!(failed_cell < succeeded_cell, "oldest first");
    // The last run is the succeeded one.
    let last_run = page.body.split("<td>").find(|cell| cell.contains("class=\"badge")).unwrap();
    assert!(
        last_run.contains(&succeeded.summary.id.to_string()) && last_run.contains("succeeded"),
        "{last_run}"
    );
    assert!(page.header(header::CONTENT_SECURITY_POLICY).contains("default-src 'self'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_page_draws_the_flow_and_shows_its_files_and_runs() {
    let ui = Ui::open().await;
    let (failed, succeeded) = two_runs(&ui).await;
    let page = ui.get("/flows/order-to-warehouse").await.ok();
    page.expect(&[
        "<svg",
        "trigger: http",
        ">Post_order</text>",
        "Has_lines · if",
        "Price_lines · foreach",
        ">then</text>",
        ">else</text>",
        // The catch scope waits for a failure: its edge says so.
        "failed, timed out",
        // The YAML and the mapping file it uses.
        "code: WarehouseRefused",
        "<code>order_to_warehouse</code> → WarehouseOrder",
        "reference: \"{{ source.id }}\"",
        &format!("/runs/{}", failed.summary.id),
        &format!("/runs/{}", succeeded.summary.id),
    ]);
    let missing = ui.get("/flows/no-such-flow").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    missing.expect(&["no flow named `no-such-flow` is loaded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_page_shows_the_failed_action_its_error_and_attempts() {
    let ui = Ui::open().await;
    let (failed, succeeded) = two_runs(&ui).await;
    let page = ui.get(&format!("/runs/{}", failed.summary.id)).await.ok();
    page.expect(&[
        "Run of order-to-warehouse",
        "WarehouseRefused: the warehouse did not take order A-1",
        // The picture colours each action and says its status in words.
        r#"<g class="node action s-failed"><title>Post_order (http): failed</title>"#,
        r#"<g class="node action s-succeeded"><title>Read_order (parse_json): succeeded</title>"#,
        r#"<g class="node action s-skipped"><title>Nothing_to_send (compose): skipped</title>"#,
        // A skipped action's reason is a note, not an error.
        "<p class=\"note\">Skipped: its branch of 'Has_lines' did not run</p>",
        "Http503: POST http://",
        "/down/orders answered HTTP 503",
        "warehouse closed for stocktaking",
        "Failed attempts that were retried",
        "Attempts</dt><dd>2</dd>",
        // Pretty inputs of the failed request and the trigger.
        "\"reference\": \"A-1\"",
        "\"sku\": \"BOLT-7\"",
        // Loop bodies show per iteration.
        "Price_lines #1",
        "Resubmit…",
    ]);
    assert!(!page.has("Cancel run…"), "an ended run cannot be cancelled");
    // The failed action is open; its node links to it.
    let anchor = page
        .body
        .split(r#"<details id=""#)
        .find(|d| d.contains(r#"class="action-name">Post_order<"#))
        .unwrap();
    let anchor_id = anchor.split('"').next().unwrap();
    assert!(
        anchor.starts_with(&format!(r#"{anchor_id}" class="action depth-2 s-failed" open>"#)),
        "{anchor}"
    );
    page.expect(&[&format!(r##"<a href="#{anchor_id}" class="node-link">"##)]);
    assert!(!page.has("data-poll"), "an ended run is not polled");

    let ok = ui.get(&format!("/runs/{}", succeeded.summary.id)).await.ok();
    ok.expect(&[
        r#"<g class="node action s-succeeded"><title>Post_order (http): succeeded</title>"#,
        "\"accepted\": true",
    ]);
    assert!(!ok.has("error-box"), "a succeeded run shows no error");

    let state = ui.get(&format!("/runs/{}/state", failed.summary.id)).await.ok();
    let state: Value = serde_json::from_str(&state.body).unwrap();
    assert_eq!(state["status"], "failed");
    assert_eq!(state["terminal"], true);
    assert!(state["actions"].as_u64().unwrap() >= 5, "{state}");

    assert_eq!(ui.get(&format!("/runs/{}", Uuid::now_v7())).await.status, StatusCode::NOT_FOUND);
    assert_eq!(ui.get("/runs/not-a-run").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_run_is_followed_live() {
    let ui = Ui::open().await;
    let id = Uuid::now_v7();
    let run = NewRun {
        id,
        flow: FLOW.into(),
        status: RunStatus::Running,
        event_id: None,
        resubmit_of: None,
        created_at: ui.store().now(),
        inputs: json!({"body": {}}),
    };
    ui.store().create_run(run).await.unwrap();
    let page = ui.get(&format!("/runs/{id}")).await.ok();
    page.expect(&[
        &format!(r#"data-poll="/runs/{id}/state" data-state="running/0""#),
        r#"<meta http-equiv="refresh" content="5">"#,
        "Cancel run…",
        r#"s-pending"><span aria-hidden="true">◌</span> pending"#,
    ]);
    assert!(!page.has("Resubmit…"), "a running run is not resubmitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_page_filters_and_pages() {
    let ui = Ui::open().await;
    let (failed, succeeded) = two_runs(&ui).await;
    let (failed_id, succeeded_id) = (failed.summary.id.to_string(), succeeded.summary.id.to_string());

    let all = ui.get("/runs").await.ok();
    all.expect(&[&failed_id, &succeeded_id, "Page 1: 2 runs"]);
    let only_failed = ui.get("/runs?flow=order-to-warehouse&status=failed&range=24h").await.ok();
    assert!(only_failed.has(&failed_id) && !only_failed.has(&succeeded_id));
    only_failed.expect(&[r#"<option value="failed" selected>"#, r#"<option value="24h" selected>"#]);
    let by_text = ui.get("/runs?q=b-2").await.ok();
    assert!(by_text.has(&succeeded_id) && !by_text.has(&failed_id));
    let later = ui.get("/runs?since=2999-01-01T00:00").await.ok();
    later.expect(&["No run matches"]);

    let bad = ui.get("/runs?since=yesterday").await.ok();
    bad.expect(&["`from` must be a time like 2026-01-31T08:00 (UTC)"]);

    // 55 more runs of another flow: two pages, the second reached through the cursor.
    for n in 0..55 {
        let id = Uuid::now_v7();
        let run = NewRun {
            id,
            flow: "bulk".into(),
            status: RunStatus::Running,
            event_id: None,
            resubmit_of: None,
            created_at: ui.store().now(),
            inputs: json!({"n": n}),
        };
        ui.store().create_run(run).await.unwrap();
        let outcome = RunOutcome {
            status: RunStatus::Succeeded,
            ended_at: ui.store().now(),
            error: None,
            record: json!({}),
        };
        ui.store().finish_run(id, outcome).await.unwrap();
    }
    let first = ui.get("/runs?flow=bulk").await.ok();
    first.expect(&["Page 1: 50 runs"]);
    let next =
        first.body.split(r#"<a href=""#).find(|a| a.contains("Older →")).unwrap().split('"').next().unwrap();
    assert!(next.starts_with("/runs?flow=bulk&cursor="), "{next}");
    let second = ui.get(next).await.ok();
    second.expect(&["Page 2: 5 runs", "← Newest"]);
    assert!(!second.has("Older →"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmit_asks_for_confirmation_and_starts_a_new_run() {
    let ui = Ui::open().await;
    let (failed, _) = two_runs(&ui).await;
    let id = failed.summary.id;
    let confirm = ui.get(&format!("/runs/{id}/resubmit")).await.ok();
    confirm.expect(&[
        "Resubmit this run?",
        "Yes, resubmit the run",
        &format!(r#"action="/runs/{id}/resubmit""#),
    ]);
    let csrf = confirm.hidden("csrf");

    let forged = ui.post_form(&format!("/runs/{id}/resubmit"), "csrf=forged", &[]).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    forged.expect(&["not one this server made"]);
    let other_action = ui.post_form(&format!("/runs/{id}/cancel"), &format!("csrf={csrf}"), &[]).await;
    assert_eq!(other_action.status, StatusCode::BAD_REQUEST, "a resubmit token does not cancel");

    let done = ui.post_form(&format!("/runs/{id}/resubmit"), &format!("csrf={csrf}"), &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let location = done.header(header::LOCATION).to_string();
    let new_id = Uuid::parse_str(location.strip_prefix("/runs/").unwrap()).unwrap();
    let new_run = ui.wait_for_end(new_id).await;
    assert_eq!(new_run.summary.resubmit_of, Some(id));
    assert_eq!(new_run.inputs, failed.inputs, "same trigger inputs");
    let page = ui.get(&location).await.ok();
    page.expect(&[&format!(r#"<a href="/runs/{id}" class="mono">{id}</a>"#)]);
    let original = ui.get(&format!("/runs/{id}")).await.ok();
    original.expect(&["Resubmitted as", &new_id.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_waiting_run_and_refuses_an_ended_one() {
    let ui = Ui::open().await;
    let (_, succeeded) = two_runs(&ui).await;
    let ended = succeeded.summary.id;
    let confirm = ui.get(&format!("/runs/{ended}/cancel")).await;
    assert_eq!(confirm.status, StatusCode::CONFLICT, "no confirmation to cancel an ended run");
    let csrf = coflow::server::ui::form_token("cancel", &ended.to_string());
    let refused = ui.post_form(&format!("/runs/{ended}/cancel"), &format!("csrf={csrf}"), &[]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    refused.expect(&["has already ended (succeeded)"]);

    let waiting = Uuid::now_v7();
    let run = NewRun {
        id: waiting,
        flow: FLOW.into(),
        status: RunStatus::Queued,
        event_id: None,
        resubmit_of: None,
        created_at: ui.store().now(),
        inputs: json!({}),
    };
    ui.store().create_run(run).await.unwrap();
    let csrf = ui.get(&format!("/runs/{waiting}/cancel")).await.ok().hidden("csrf");
    let done = ui.post_form(&format!("/runs/{waiting}/cancel"), &format!("csrf={csrf}"), &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let run = ui.store().get_run(waiting).await.unwrap().unwrap();
    assert_eq!(run.summary.status, RunStatus::Cancelled);
    ui.get(&format!("/runs/{waiting}")).await.ok().expect(&["the run was cancelled from the web UI"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_loopback_is_served() {
    let ui = Ui::open().await;
    ui.get("/").await.ok();
    let remote_page = ui.get_with("/", remote(), &[]).await;
    assert_eq!(remote_page.status, StatusCode::FORBIDDEN);
    remote_page.expect(&["--admin-token"]);
    assert_eq!(ui.get_with("/runs", remote(), &[]).await.status, StatusCode::FORBIDDEN);
    // Assets and the sign-in page are public; they show nothing of the runs.
    let css = ui.get_with("/ui/assets/ui.css", remote(), &[]).await.ok();
    assert!(css.header(header::CONTENT_TYPE).starts_with("text/css"));
    assert!(css.has(".flow-graph"));
    let js = ui.get_with("/ui/assets/ui.js", remote(), &[]).await.ok();
    assert!(js.header(header::CONTENT_TYPE).starts_with("text/javascript"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_visitors_sign_in_once() {
    let settings = Settings { admin_token: Some(Secret::new(TOKEN.to_string())), ..Settings::default() };
    let ui = Ui::start(settings).await;
    let (failed, _) = two_runs(&ui).await;

    let asked = ui.get("/runs?status=failed").await;
    assert_eq!(asked.status, StatusCode::UNAUTHORIZED, "even loopback signs in when a token is set");
    asked.expect(&[r#"name="token""#, r#"name="next" value="/runs?status=failed""#]);
    assert!(!asked.has(&failed.summary.id.to_string()));

    let bearer = format!("Bearer {TOKEN}");
    ui.get_with("/", remote(), &[("authorization", &bearer)]).await.ok();

    let wrong = ui.post_form("/login", "token=guess&next=/runs", &[]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    wrong.expect(&["That is not the admin token"]);
    assert!(wrong.header(header::SET_COOKIE).is_empty());

    let signed_in = ui.post_form("/login", &format!("token={TOKEN}&next=/runs%3Fstatus%3Dfailed"), &[]).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_in.header(header::LOCATION), "/runs?status=failed");
    let cookie = signed_in.header(header::SET_COOKIE).to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(TOKEN), "the cookie never holds the token: {cookie}");
    let session = cookie.split(';').next().unwrap().to_string();

    let page = ui.get_with("/runs?status=failed", remote(), &[("cookie", &session)]).await.ok();
    page.expect(&[&failed.summary.id.to_string(), "Sign out"]);
    let forged = ui.get_with("/", loopback(), &[("cookie", "coflow_session=0000")]).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);

    // Forms need the session too, and bring the visitor back to the run after signing in.
    let id = failed.summary.id;
    let anonymous = ui.post_form(&format!("/runs/{id}/resubmit"), "csrf=x", &[]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    anonymous.expect(&[&format!(r#"name="next" value="/runs/{id}""#)]);

    let elsewhere = ui.post_form("/login", &format!("token={TOKEN}&next=https://evil.example/"), &[]).await;
    assert_eq!(elsewhere.header(header::LOCATION), "/");
    let out = ui.post_form("/logout", "", &[]).await;
    assert!(out.header(header::SET_COOKIE).contains("Max-Age=0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_page_explains_what_is_missing_without_connections() {
    let ui = Ui::open().await;
    let page = ui.get("/sync").await.ok();
    page.expect(&[
        "Sync status",
        "Cannot read the systems:",
        "no salesforce connection",
        r#"aria-current="page">Sync"#,
    ]);
}

#[tokio::test]
async fn sandbox_page_shows_both_systems_and_their_sync_state() {
    let ui = Ui::open().await;
    assert_eq!(ui.get("/sandbox").await.status, StatusCode::NOT_FOUND, "only with --sandbox");
    assert!(!ui.get("/").await.has(r#"href="/sandbox""#));

    let mut config = coflow::sandbox::SandboxConfig::ephemeral();
    config.seed_data = Some(json!({"Opportunity": [
        {"Name": "Woodgrove - landing zone", "StageName": "Prospecting", "CloseDate": "2026-12-15",
         "Amount": 250000, "Sync_with_Partner_Center__c": true, "Referral_Identifier__c": "ref-linked"},
        {"Name": "Woodgrove - new deal", "StageName": "Prospecting", "CloseDate": "2026-12-15",
         "Amount": 1000, "Sync_with_Partner_Center__c": true},
        {"Name": "Internal pilot", "StageName": "Prospecting", "CloseDate": "2026-12-15",
         "Sync_with_Partner_Center__c": false}
    ]}));
    let sandbox = coflow::sandbox::start(config).await.unwrap();
    let referrals = json!([
        {"id": "ref-linked", "name": "Woodgrove - landing zone", "details": {"dealValue": 250000, "currency": "USD"}},
        {"id": "ref-new", "name": "Fabrikam - Sentinel", "details": {"dealValue": 120000, "currency": "USD"}}
    ]);
    coflow::sandbox::partner_center::admin::seed(&sandbox.partner_center, referrals).unwrap();
    let settings = Settings { sandbox: Some(SandboxView::of(&sandbox)), ..Settings::default() };
    let with_sandbox = Ui::start(settings).await;
    let page = with_sandbox.get("/sandbox").await.ok();
    page.expect(&[
        &sandbox.salesforce_url,
        &sandbox.partner_center_url,
        "Woodgrove - landing zone",
        "Fabrikam - Sentinel",
        "Internal pilot",
        "1 in sync",
        "2 pending",
        "1 not shared",
        "0 failed",
        "linked both ways, same name and deal value",
        "no referral yet: the next poll creates it",
        "no opportunity yet: the webhook flow creates it",
        r#"data-refresh="4""#,
    ]);
    assert!(with_sandbox.get("/").await.has(r#"href="/sandbox""#), "the menu offers it");
    sandbox.shutdown().await;
}
