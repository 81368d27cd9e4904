//! coflow runs declarative flows with Power Automate semantics, and ships the flows that keep
//! Microsoft Partner Center co-sell referrals and Salesforce in sync.
//!
//! A tour of the modules, in the order data moves through them:
//!
//! - [`flow`]: flow files. `FlowDef` is exactly what the YAML says; loading keeps line and column
//!   for every diagnostic; compilation checks the flow and builds a [`flow::Flow`] with its
//!   `run_after` graph and precompiled templates.
//! - [`expr`]: templates and expressions. One minijinja environment carrying the Power Automate
//!   function library; a value that is exactly one `{{ expression }}` keeps its JSON type.
//! - [`engine`]: runs a [`flow::Flow`] for one trigger event and produces the run record:
//!   `run_after`, statuses, scopes, conditions, loops, variables, retries, timeouts.
//! - [`connectors`]: the systems flows call (`http`, Partner Center, Salesforce) behind one trait.
//! - [`store`]: durable events, queue and run history (SQLite or PostgreSQL).
//! - [`server`]: `coflow serve`, webhooks, scheduling, workers, admin API and web UI.
//! - [`sandbox`]: loopback emulators of the Partner Center and Salesforce APIs.
//! - [`import`]: Power Automate and Logic Apps exports translated into flow files.
//! - [`cosell`]: what the co-sell flows need from Salesforce and Partner Center (custom fields,
//!   the SFDX metadata that installs them, the webhook) and `coflow doctor`'s check of it.
//! - [`testing`]: flow unit tests (`*.test.yaml`): mocked calls, expectations, reports.
//! - [`cli`]: the `coflow` command line.

pub mod cli;
pub mod connectors;
pub mod cosell;
pub mod engine;
pub mod expr;
pub mod flow;
pub mod import;
pub mod sandbox;
pub mod server;
pub mod store;
pub mod testing;
