//! Flow files: the definition model, loading with file:line:column diagnostics, and compilation
//! into a validated, runnable [`Flow`].

mod compile;
pub mod def;
mod model;

pub use compile::{CompileError, compile, load_file, load_str};
pub use def::FlowDef;
pub use model::{
    Action, ActionKind, Block, Flow, Parameter, RetryPolicy, RunAfter, StatusSet, Trigger, VariableType,
};
