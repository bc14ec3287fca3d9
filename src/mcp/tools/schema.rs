//! Portable tool schemas: schemars' JSON Schema 2020-12 rewritten, once when
//! the tool list is built, into the form every validator and the MCP
//! Inspector's strict check accept. schemars writes `type: ["string",
//! "null"]` for each `Option` (the Inspector warns; single-type dialects
//! such as Gemini's reject it), formats of its own (`uint64`, `int64`,
//! `double`) that Ajv-based clients log as unknown on every call, and a bare
//! `true` for a value of any shape. What the schemas accept from a model and
//! promise about results stays what the code does.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{JsonObject, Tool};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The `format` values JSON Schema 2020-12 defines; others are dropped.
pub(crate) const STANDARD_FORMATS: &[&str] = &[
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

/// Keywords that describe a schema rather than constrain a value: they stay
/// on the outer schema when a `type` array is split into `anyOf` branches.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
    "$schema",
    "$id",
    "$defs",
    "definitions",
];

/// Every tool of `router` with portable input and output schemas.
pub(crate) fn portable_router<S>(mut router: ToolRouter<S>) -> ToolRouter<S> {
    for route in router.map.values_mut() {
        make_portable(&mut route.attr);
    }
    router
}

/// Rewrites a tool's input and output schemas into their portable form.
pub(crate) fn make_portable(tool: &mut Tool) {
    tool.input_schema = Arc::new(portable(&tool.input_schema));
    if let Some(output) = tool.output_schema.take() {
        tool.output_schema = Some(Arc::new(portable(&output)));
    }
}

/// The portable form of a schema.
pub(crate) fn portable(schema: &JsonObject) -> JsonObject {
    let mut schema = schema.clone();
    rewrite_object(&mut schema, false);
    schema
}

/// `optional`: the schema is a property its object may leave out. Then
/// `null` adds nothing: an argument left out and one sent as `null` mean the
/// same to the server, and a result field that may be left out is never
/// written as `null` (it is skipped when empty; a result field that is
/// written as `null` is required, and keeps its `null` branch).
fn rewrite(schema: &mut Value, optional: bool) {
    if let Value::Bool(accepts) = schema {
        *schema = if *accepts { json!({}) } else { json!({"not": {}}) };
    }
    if let Value::Object(object) = schema {
        rewrite_object(object, optional);
    }
}

fn rewrite_object(object: &mut JsonObject, optional: bool) {
    if optional {
        drop_null(object);
    }
    split_type_array(object);
    keep_standard_format(object);
    let required: Vec<String> = object
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    for (key, value) in object.iter_mut() {
        match key.as_str() {
            "properties" => {
                for (name, property) in value.as_object_mut().into_iter().flatten() {
                    rewrite(property, !required.contains(name));
                }
            }
            "patternProperties" | "dependentSchemas" | "$defs" | "definitions" => {
                for subschema in value.as_object_mut().into_iter().flat_map(|map| map.values_mut()) {
                    rewrite(subschema, false);
                }
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                for subschema in value.as_array_mut().into_iter().flatten() {
                    rewrite(subschema, false);
                }
            }
            // `true`/`false` are the usual spelling here (`additionalProperties: false`).
            "additionalProperties" | "unevaluatedProperties" | "additionalItems" | "unevaluatedItems"
                if value.is_object() =>
            {
                rewrite(value, false);
            }
            "items" if value.is_array() => {
                for subschema in value.as_array_mut().into_iter().flatten() {
                    rewrite(subschema, false);
                }
            }
            "items" | "contains" | "not" | "propertyNames" | "if" | "then" | "else" | "contentSchema" => {
                rewrite(value, false);
            }
            _ => {}
        }
    }
}

/// Takes `null` out of an optional property's schema: from a `type` array,
/// an `anyOf` branch (the one left is merged in when it can be), and a
/// `default: null`.
fn drop_null(object: &mut JsonObject) {
    if let Some(Value::Array(types)) = object.get_mut("type")
        && types.iter().any(|kind| kind != "null")
    {
        types.retain(|kind| kind != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            object.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(mut branches)) = object.remove("anyOf") {
        if branches.iter().any(|branch| !is_null_schema(branch)) {
            branches.retain(|branch| !is_null_schema(branch));
        }
        match branches.as_slice() {
            [Value::Object(only)] if only.keys().all(|key| !object.contains_key(key)) => {
                object.extend(only.clone());
            }
            _ => {
                object.insert("anyOf".into(), Value::Array(branches));
            }
        }
    }
    if object.get("default") == Some(&Value::Null) {
        object.remove("default");
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema
        .as_object()
        .is_some_and(|branch| branch.len() == 1 && branch.get("type") == Some(&json!("null")))
}

/// `type: [A, B]` becomes `anyOf: [{type: A, …}, {type: B}]`: one type per
/// schema, each branch with the constraints (formats, bounds, items) the
/// outer schema had, so validators that check keywords against the
/// declared type find it; a `null` branch is just `{type: null}`.
fn split_type_array(object: &mut JsonObject) {
    let Some(Value::Array(types)) = object.get("type") else {
        return;
    };
    let types = types.clone();
    object.remove("type");
    let constraint_keys: Vec<String> = object
        .keys()
        .filter(|key| !ANNOTATIONS.contains(&key.as_str()))
        .cloned()
        .collect();
    let mut constraints = Map::new();
    for key in constraint_keys {
        if let Some(value) = object.remove(&key) {
            constraints.insert(key, value);
        }
    }
    let branches = types
        .into_iter()
        .map(|kind| {
            let mut branch = Map::new();
            if kind != "null" {
                branch.extend(constraints.clone());
            }
            branch.insert("type".into(), kind);
            Value::Object(branch)
        })
        .collect();
    object.insert("anyOf".into(), Value::Array(branches));
}

/// Drops a `format` JSON Schema does not define. schemars' integer formats
/// (`uint64`, `uint32`, `uint`) come with `minimum: 0`, which says the same
/// in standard words; it is added if missing.
fn keep_standard_format(object: &mut JsonObject) {
    let Some(format) = object.get("format").and_then(Value::as_str) else {
        return;
    };
    if STANDARD_FORMATS.contains(&format) {
        return;
    }
    let unsigned = format.starts_with("uint");
    object.remove("format");
    if unsigned {
        object.entry("minimum").or_insert(json!(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn portable_value(schema: Value) -> Value {
        let Value::Object(object) = schema else {
            panic!("a test schema is an object")
        };
        Value::Object(portable(&object))
    }

    #[test]
    fn an_optional_argument_loses_null_and_its_null_default() {
        let schema = json!({
            "type": "object",
            "properties": {
                "timeout": {"default": null, "description": "ms", "format": "uint64", "minimum": 0,
                            "type": ["integer", "null"]},
                "encoding": {"anyOf": [{"$ref": "#/$defs/Encoding"}, {"type": "null"}], "default": null,
                             "description": "utf8 or base64"},
                "code": {"type": "string"}
            },
            "required": ["code"],
            "$defs": {"Encoding": {"type": "string", "enum": ["utf8", "base64"]}}
        });
        let portable = portable_value(schema);
        assert_eq!(
            portable["properties"]["timeout"],
            json!({"description": "ms", "minimum": 0, "type": "integer"})
        );
        assert_eq!(
            portable["properties"]["encoding"],
            json!({"$ref": "#/$defs/Encoding", "description": "utf8 or base64"})
        );
        assert_eq!(portable["properties"]["code"], json!({"type": "string"}));
    }

    #[test]
    fn a_required_nullable_field_keeps_null_as_a_branch_of_its_own() {
        let schema = json!({
            "type": "object",
            "properties": {
                "first_seq": {"description": "seq", "format": "uint64", "minimum": 0, "type": ["integer", "null"]},
                "first_bad": {"anyOf": [{"$ref": "#/$defs/BadLine"}, {"type": "null"}]}
            },
            "required": ["first_seq", "first_bad"]
        });
        let portable = portable_value(schema);
        assert_eq!(
            portable["properties"]["first_seq"],
            json!({"description": "seq", "anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]})
        );
        assert_eq!(
            portable["properties"]["first_bad"],
            json!({"anyOf": [{"$ref": "#/$defs/BadLine"}, {"type": "null"}]})
        );
    }

    #[test]
    fn formats_outside_the_standard_go_and_unsigned_ones_keep_a_minimum() {
        let schema = json!({
            "type": "object",
            "properties": {
                "count": {"type": "integer", "format": "uint"},
                "size": {"type": "integer", "format": "int64"},
                "rate": {"type": "number", "format": "double"},
                "at": {"type": "string", "format": "date-time"},
                "by_type": {"type": "object", "additionalProperties": {"type": "integer", "format": "uint64", "minimum": 0}}
            },
            "required": ["count", "size", "rate", "at", "by_type"]
        });
        let portable = portable_value(schema);
        let properties = &portable["properties"];
        assert_eq!(properties["count"], json!({"type": "integer", "minimum": 0}));
        assert_eq!(properties["size"], json!({"type": "integer"}));
        assert_eq!(properties["rate"], json!({"type": "number"}));
        assert_eq!(properties["at"], json!({"type": "string", "format": "date-time"}));
        assert_eq!(
            properties["by_type"]["additionalProperties"],
            json!({"type": "integer", "minimum": 0})
        );
    }

    #[test]
    fn boolean_schemas_become_objects_except_where_booleans_are_the_usual_spelling() {
        let schema = json!({
            "type": "object",
            "properties": {"events": {"type": "array", "items": true}, "never": false},
            "required": ["events", "never"],
            "additionalProperties": false
        });
        let portable = portable_value(schema);
        assert_eq!(portable["properties"]["events"]["items"], json!({}));
        assert_eq!(portable["properties"]["never"], json!({"not": {}}));
        assert_eq!(portable["additionalProperties"], json!(false));
    }
}
