//! The tool list as a client receives it: every input and output schema is
//! portable (what the MCP Inspector's `--strict` check and Ajv-based
//! clients accept), and every tool carries its annotations.

mod common;

use common::*;
use serde_json::{Value, json};

/// The `format` values JSON Schema 2020-12 defines.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Keywords that constrain a value (the Inspector's list): a schema with
/// none of them accepts anything, like a bare `true`.
const CONSTRAINING: &[&str] = &[
    "type",
    "enum",
    "const",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "format",
    "contentMediaType",
    "contentEncoding",
    "contentSchema",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxContains",
    "minContains",
    "maxProperties",
    "minProperties",
    "required",
    "dependentRequired",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "items",
    "prefixItems",
    "contains",
    "additionalItems",
    "unevaluatedItems",
    "properties",
    "patternProperties",
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
    "dependentSchemas",
    "dependencies",
    "$ref",
    "$dynamicRef",
    "$recursiveRef",
];

/// Where a bare `true`/`false` is the usual spelling, not a finding.
const BOOLEAN_VALUED: &[&str] = &[
    "additionalProperties",
    "unevaluatedProperties",
    "additionalItems",
    "unevaluatedItems",
];

/// What is not portable in `schema`, one line per finding with its path.
fn findings(schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(schema, "", None, &mut found);
    found
}

fn walk(node: &Value, path: &str, keyword: Option<&str>, found: &mut Vec<String>) {
    let object = match node {
        Value::Bool(_) if keyword.is_some_and(|keyword| BOOLEAN_VALUED.contains(&keyword)) => return,
        Value::Bool(value) => return found.push(format!("{path}: bare `{value}` where a schema object is expected")),
        Value::Object(object) => object,
        _ => return,
    };
    if let Some(Value::Array(types)) = object.get("type") {
        found.push(format!("{path}: `type` is an array {types:?}"));
    }
    if let Some(format) = object.get("format")
        && !format.as_str().is_some_and(|format| STANDARD_FORMATS.contains(&format))
    {
        found.push(format!("{path}: `format` {format} is not a JSON Schema format"));
    }
    if object.contains_key("nullable") {
        found.push(format!("{path}: `nullable` is OpenAPI, not JSON Schema"));
    }
    if let Some(reference) = object.get("$ref").and_then(Value::as_str)
        && !reference.starts_with('#')
    {
        found.push(format!("{path}: `$ref` {reference} points outside the schema"));
    }
    let constrains = object.keys().any(|key| CONSTRAINING.contains(&key.as_str()))
        || (object.contains_key("if") && (object.contains_key("then") || object.contains_key("else")));
    if !constrains && keyword != Some("not") {
        found.push(format!("{path}: no validation keyword: accepts any value"));
    }
    for (key, value) in object {
        let here = format!("{path}.{key}");
        match key.as_str() {
            "properties" | "patternProperties" | "dependentSchemas" | "dependencies" | "$defs" | "definitions" => {
                for (name, subschema) in value.as_object().into_iter().flatten() {
                    walk(subschema, &format!("{here}.{name}"), Some(key), found);
                }
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                for (index, subschema) in value.as_array().into_iter().flatten().enumerate() {
                    walk(subschema, &format!("{here}[{index}]"), Some(key), found);
                }
            }
            "items" if value.is_array() => {
                for (index, subschema) in value.as_array().into_iter().flatten().enumerate() {
                    walk(subschema, &format!("{here}[{index}]"), Some(key), found);
                }
            }
            "items"
            | "contains"
            | "not"
            | "propertyNames"
            | "if"
            | "then"
            | "else"
            | "additionalProperties"
            | "unevaluatedProperties"
            | "additionalItems"
            | "unevaluatedItems"
            | "contentSchema" => {
                walk(value, &here, Some(key), found);
            }
            _ => {}
        }
    }
}

#[test]
fn the_check_finds_what_the_inspector_and_ajv_complain_about() {
    let schema = json!({
        "type": "object",
        "properties": {
            "events": {"type": "array", "items": true},
            "timeout": {"type": ["integer", "null"], "format": "uint64", "minimum": 0},
            "anything": {"description": "no constraint"},
            "legacy": {"type": "string", "nullable": true},
            "remote": {"$ref": "https://example.com/schema.json"},
            "fine": {"anyOf": [{"$ref": "#/$defs/Fine"}, {"type": "null"}], "description": "ok"},
            "when": {"type": "string", "format": "date-time"}
        },
        "additionalProperties": false,
        "$defs": {"Fine": {"type": "string", "format": "int32"}}
    });
    let found = findings(&schema);
    let expected = [
        ".properties.events.items: bare `true`",
        ".properties.timeout: `type` is an array",
        ".properties.timeout: `format` \"uint64\"",
        ".properties.anything: no validation keyword",
        ".properties.legacy: `nullable`",
        ".properties.remote: `$ref` https://example.com/schema.json",
        ".$defs.Fine: `format` \"int32\"",
    ];
    for finding in expected {
        assert!(
            found.iter().any(|line| line.starts_with(finding)),
            "missing {finding:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

/// The tools as a client lists them (listing needs no Docker).
async fn listed_tools() -> Vec<rmcp::model::Tool> {
    let client = start_server_with_env(&[]).await;
    let tools = tokio::time::timeout(CALL_LIMIT, client.list_all_tools())
        .await
        .expect("tools/list answers within the call limit")
        .expect("tools/list failed");
    client.cancel().await.ok();
    tools
}

#[tokio::test]
async fn every_tool_schema_is_portable() {
    let tools = listed_tools().await;
    assert_eq!(tools.len(), 7);
    let mut found = Vec::new();
    for tool in &tools {
        let input = Value::Object(tool.input_schema.as_ref().clone());
        for finding in findings(&input) {
            found.push(format!("{} inputSchema{finding}", tool.name));
        }
        let output = tool
            .output_schema
            .as_ref()
            .unwrap_or_else(|| panic!("{} declares an output schema", tool.name));
        for finding in findings(&Value::Object(output.as_ref().clone())) {
            found.push(format!("{} outputSchema{finding}", tool.name));
        }
    }
    assert!(
        found.is_empty(),
        "{} unportable schema parts:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[tokio::test]
async fn every_tool_has_a_title_and_honest_hints() {
    let tools = listed_tools().await;
    // title, readOnlyHint, destructiveHint, idempotentHint, openWorldHint
    // (null: not given, meaningless for a read-only tool).
    let expected = [
        (
            "sandbox_execute",
            json!(["Run code in a sandbox", false, true, false, true]),
        ),
        (
            "sandbox_session",
            json!(["Manage sandbox sessions", false, true, false, true]),
        ),
        ("sandbox_install", json!(["Install packages", false, false, true, true])),
        ("sandbox_file_ops", json!(["Session files", false, true, true, false])),
        (
            "sandbox_inspect",
            json!(["Inspect the sandbox", true, null, null, false]),
        ),
        ("sandbox_security", json!(["Audit log", true, null, null, false])),
        (
            "sandbox_job",
            json!(["Collect a background job", false, true, false, false]),
        ),
    ];
    assert_eq!(tools.len(), expected.len());
    for (name, hints) in expected {
        let tool = tools
            .iter()
            .find(|tool| tool.name == name)
            .unwrap_or_else(|| panic!("{name} listed"));
        // As the client received it on the wire.
        let wire = serde_json::to_value(tool).expect("a tool serializes");
        let annotations = &wire["annotations"];
        let got = json!([
            annotations["title"],
            annotations["readOnlyHint"],
            annotations["destructiveHint"],
            annotations["idempotentHint"],
            annotations["openWorldHint"],
        ]);
        assert_eq!(got, hints, "{name}: {annotations}");
        assert_eq!(
            wire["title"], hints[0],
            "{name}: the tool's title and its annotation's agree"
        );
    }
}
