//! Flow files: the definition model, loading with file:line:column diagnostics, and compilation
//! into a validated, runnable [`Flow`].
//!
//! Text goes through three steps: [`yaml`] reads it into positioned nodes, `decode` builds the
//! typed [`FlowDef`] (unknown keys, wrong types and missing keys are reported here), and
//! `compile` checks the flow as a whole (names, `run_after`, references, templates) and builds
//! the [`Flow`] the engine runs. Every step collects all problems of the file.

mod compile;
mod decode;
pub mod def;
mod diagnostic;
mod model;
pub mod schema;
pub mod yaml;

pub use compile::{
    CompileError, DurationError, check_file, check_str, compile, load_file, load_file_for_drawing, load_str,
    parse_duration,
};
pub use decode::{BUILTIN_ACTION_TYPES, BUILTIN_TRIGGER_TYPES, action_keys};
pub use def::FlowDef;
pub use diagnostic::{Diagnostic, Diagnostics, Severity, did_you_mean};
pub use model::{
    Action, ActionKind, Block, Flow, Parameter, RetryPolicy, RunAfter, StatusSet, Trigger, VariableType,
};
