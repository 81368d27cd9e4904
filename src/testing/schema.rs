//! The JSON Schema of test files, generated from [`super::file`]. The checked-in copy is
//! `schemas/flow-test.schema.json`; a test fails when it drifts.

use schemars::generate::SchemaSettings;
use serde_json::Value;

use super::file::TestFileDef;

/// The schema of test files, as JSON.
pub fn test_schema() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    generator.into_root_schema_for::<TestFileDef>().to_value()
}

/// The schema as the text of `schemas/flow-test.schema.json`.
pub fn render() -> String {
    let mut text = serde_json::to_string_pretty(&test_schema()).unwrap_or_default();
    text.push('\n');
    text
}
