//! Templates and expressions: one minijinja environment with the Power Automate function library.
//!
//! A flow value is compiled once into a [`Template`]: a string that is exactly one
//! `{{ expression }}` keeps the expression's JSON type (Power Automate's `@expr`), any other string
//! containing `{{` renders to text (`@{expr}`), and everything else is literal. Rendering reads
//! the run through the [`Scope`] trait, which the engine implements.

mod mapping;
mod references;
pub mod secrets;
mod template;

pub use mapping::{Mapping, Mappings};
pub use template::{ExprError, References, Scope, Template, compile, compile_expression, environment};
