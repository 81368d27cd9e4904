//! Templates and expressions: one minijinja environment with the Power Automate function library.
//!
//! A flow value is compiled once into a [`Template`]: a string that is exactly one
//! `{{ expression }}` keeps the expression's JSON type (Power Automate's `@expr`), any other string
//! containing `{{` renders to text (`@{expr}`), and everything else is literal. Rendering reads
//! the run through the [`Scope`] trait, which the engine implements.
//!
//! # The function library
//!
//! Every Power Automate function keeps its name, arguments and results (`concat`, `formatDateTime`,
//! `addDays`, `coalesce`, `triggerBody`, `body`, `variables`, …), with these differences, all of
//! which [`pa::translate_expression`] applies when importing Power Automate expressions:
//!
//! - `if`, `and`, `or` and `not` are minijinja keywords, so they are called **`if_`, `and_`,
//!   `or_` and `not_`**. Literals are minijinja's: `true`, `false`, `none` (Power Automate `null`).
//! - Function names are case-sensitive (Power Automate's are not; the translator fixes the case).
//! - `range(start, count)` is Power Automate's, not minijinja's.
//! - Text interpolation prints `null` as empty text, booleans as `True`/`False`, whole floats
//!   without `.0`, objects and arrays as compact JSON.
//!
//! coflow adds `jsonpath(value, '$.path')` (an array of matches), `secret('NAME')`,
//! `mapping('file', value)`, `lookup('table', key, default?)` (inside mapping files),
//! `soql_quote(text)`, `opt()` (below) and the sync functions of [`sync`] (`sync_allows`,
//! `is_integration_user`, `audit_append`, `index_by`, `sync_plan`).
//!
//! # Missing properties
//!
//! As in Power Automate, reading a property that does not exist (`triggerBody().x`,
//! `body('a')['x']`, `items[5]`) is an error that names it. The null-safe form, Power Automate's
//! `value?['x']?['y']`, is **`opt(value, 'x', 'y')`**: `null` as soon as a property is missing
//! or a value along the path is `null`. `coalesce` treats only `null` as missing; `empty(null)`
//! is true; comparison functions treat `null` as `""`.
//!
//! [`with_fixed_now`] fixes the clock of `utcNow()`, `getFutureTime()` and `getPastTime()` for
//! one run (flow unit tests do); outside it, the environment variable `COFLOW_NOW` (a UTC
//! timestamp) fixes it for the whole process, for replays.
//!
//! Not supported: `xpath`, XML-to-JSON conversion, multipart bodies, `action()` and
//! `listCallbackUrl()` (they fail with a message saying so).

mod datetime;
mod functions;
mod json_view;
mod mapping;
mod native;
mod numfmt;
pub mod pa;
mod references;
pub mod secrets;
pub mod sync;
mod template;
mod timezones;
mod values;
mod workflow;

pub use datetime::with_fixed_now;
pub use mapping::{Mapping, MappingError, Mappings};
pub use sync::{SyncSettings, SyncSettingsError};
pub use template::{
    ActionOutputs, Compiled, DataScope, ExprError, Part, References, Scope, Template, compile,
    compile_expression, environment, eval_expression, function_names,
};
pub use timezones::windows_to_iana;

/// Reads a timestamp the way the date functions do (ISO 8601 with any offset, Salesforce's
/// `+0000` included, US dates); a time without a zone is taken as UTC.
pub fn parse_timestamp(text: &str) -> Option<jiff::Timestamp> {
    let stamp = datetime::parse(text)?;
    stamp.dt.to_zoned_datetime(jiff::tz::TimeZone::UTC).ok().map(|zoned| zoned.timestamp())
}
pub use values::text;
