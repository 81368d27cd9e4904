//! `coflow eval EXPR [--data JSON] [--pa]`: evaluates one expression and prints it as JSON.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::expr;

/// Evaluates `source` (minijinja syntax, or Power Automate syntax when `pa`) with `data` as
/// `triggerBody()`, and prints the result as JSON on stdout.
pub fn run(source: &str, data: Option<&str>, pa: bool) -> anyhow::Result<ExitCode> {
    let data = data
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()
        .context("--data is not valid JSON")?;
    let expression = if pa { expr::pa::translate_expression(source)? } else { source.to_string() };
    let mut value = expr::eval_expression(&expression, data)?;
    expr::secrets::redact_value(&mut value);
    println!("{}", serde_json::to_string(&value)?);
    Ok(ExitCode::SUCCESS)
}
