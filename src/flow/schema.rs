//! The JSON Schema of flow files, generated from the definition types in [`super::def`].
//!
//! Each action type and trigger type is its own subschema, told apart by `type`, so an editor
//! with `# yaml-language-server: $schema=...` completes and checks the keys of that very type.
//! The checked-in copy is `schemas/flow.schema.json`; a test fails when it drifts.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

use super::def::*;

/// Connector types: `<connector>.<operation>` (or `.<trigger>`).
const CONNECTOR_TYPE_PATTERN: &str = r"^[A-Za-z0-9_]+\.[A-Za-z0-9_]+$";

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The built-in action types and the schema of their own keys.
const ACTION_BODIES: [(&str, SchemaFn); 22] = [
    ("compose", ComposeDef::json_schema),
    ("parse_json", ParseJsonDef::json_schema),
    ("select", SelectDef::json_schema),
    ("filter", FilterDef::json_schema),
    ("join", JoinDef::json_schema),
    ("initialize_variable", InitializeVariableDef::json_schema),
    ("set_variable", VariableValueDef::json_schema),
    ("increment_variable", VariableByDef::json_schema),
    ("decrement_variable", VariableByDef::json_schema),
    ("append_to_array_variable", VariableValueDef::json_schema),
    ("append_to_string_variable", VariableValueDef::json_schema),
    ("if", IfDef::json_schema),
    ("switch", SwitchDef::json_schema),
    ("scope", ScopeDef::json_schema),
    ("foreach", ForeachDef::json_schema),
    ("until", UntilDef::json_schema),
    ("delay", DelayDef::json_schema),
    ("terminate", TerminateDef::json_schema),
    ("response", ResponseDef::json_schema),
    ("http", HttpDef::json_schema),
    ("run_flow", RunFlowDef::json_schema),
    ("unsupported", UnsupportedDef::json_schema),
];

/// The schema of flow files, as JSON.
pub fn flow_schema() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<FlowDef>().to_value();
    drop_null(&mut schema);
    schema
}

/// Optional keys are absent, never `null`: the loader rejects `key:` with no value, so the
/// schema must not offer null either.
fn drop_null(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any_of)) = map.get_mut("anyOf") {
                any_of.retain(|s| s.get("type") != Some(&json!("null")));
                if any_of.len() == 1 {
                    if let Some(Value::Object(only)) = any_of.pop() {
                        map.remove("anyOf");
                        for (k, v) in only {
                            map.entry(k).or_insert(v);
                        }
                    }
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

/// The schema as the text of `schemas/flow.schema.json`.
pub fn render() -> String {
    let mut text = serde_json::to_string_pretty(&flow_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// Merges the `type` property, the keys every action (or trigger) takes and the type's own
/// keys into one closed object schema.
fn variant(type_schema: Value, own: Schema, common: Option<&Value>, open: bool) -> Value {
    let own = own.to_value();
    let mut properties = Map::new();
    properties.insert("type".into(), type_schema);
    for source in [common, Some(&own)].into_iter().flatten() {
        if let Some(Value::Object(props)) = source.get("properties") {
            properties.extend(props.clone());
        }
    }
    let mut required = vec![json!("type")];
    if let Some(Value::Array(own_required)) = own.get("required") {
        required.extend(own_required.iter().cloned());
    }
    let mut schema = json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": open,
    });
    if let Some(description) = own.get("description") {
        schema["description"] = description.clone();
    }
    schema
}

impl JsonSchema for ActionDef {
    fn schema_name() -> Cow<'static, str> {
        "Action".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let common = ActionCommon::json_schema(generator).to_value();
        let mut variants: Vec<Value> = ACTION_BODIES
            .iter()
            .map(|(name, own)| variant(json!({"const": name}), own(generator), Some(&common), false))
            .collect();
        let connector_type = json!({
            "type": "string",
            "pattern": CONNECTOR_TYPE_PATTERN,
            "description": "`<connector>.<operation>`, e.g. `salesforce.query`",
        });
        variants.push(variant(connector_type, ConnectorDef::json_schema(generator), Some(&common), false));
        json_schema!({
            "description": "An action: `type` is a built-in type or `<connector>.<operation>`.",
            "type": "object",
            "required": ["type"],
            "oneOf": variants,
        })
    }
}

impl JsonSchema for TriggerDef {
    fn schema_name() -> Cow<'static, str> {
        "Trigger".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let connector_type = json!({
            "type": "string",
            "pattern": CONNECTOR_TYPE_PATTERN,
            "description": "`<connector>.<trigger>`, e.g. `salesforce.poll`",
        });
        let variants = vec![
            variant(json!({"const": "manual"}), ManualTrigger::json_schema(generator), None, false),
            variant(json!({"const": "http"}), HttpTrigger::json_schema(generator), None, false),
            variant(json!({"const": "recurrence"}), RecurrenceTrigger::json_schema(generator), None, false),
            variant(json!({"const": "unsupported"}), UnsupportedDef::json_schema(generator), None, false),
            variant(connector_type, ConnectorTrigger::json_schema(generator), None, true),
        ];
        json_schema!({
            "description": "What starts a run: `manual`, `http`, `recurrence` or `<connector>.<trigger>`.",
            "type": "object",
            "required": ["type"],
            "oneOf": variants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_builtin_action_type_has_a_closed_subschema() {
        let schema = flow_schema();
        let action = &schema["definitions"]["Action"];
        let variants = action["oneOf"].as_array().map(Vec::as_slice).unwrap_or_default();
        assert_eq!(variants.len(), ACTION_BODIES.len() + 1);
        let compose = variants.iter().find(|v| v["properties"]["type"]["const"] == "compose");
        let compose = compose.cloned().unwrap_or_default();
        assert_eq!(compose["additionalProperties"], json!(false));
        assert!(compose["properties"].get("inputs").is_some());
        assert!(compose["properties"].get("run_after").is_some());
        assert!(compose["properties"].get("then").is_none());
        assert_eq!(compose["required"], json!(["type", "inputs"]));
    }
}
