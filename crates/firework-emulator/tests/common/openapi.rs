//! A small OpenAPI (Swagger 2.0) validator over serde_json values: resolves `$ref`s and
//! checks required fields, types, enums, integer bounds and `additionalProperties` where the
//! file sets it. The file is Firecracker's, read in place from the shared reference folder
//! next to the repository.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

use super::RawResponse;

pub fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/firecracker/firecracker-api.yaml")
}

pub fn load_spec() -> Option<Value> {
    let path = spec_path();
    if !path.exists() {
        eprintln!("skipping: OpenAPI file {} not found", path.display());
        return None;
    }
    let text = std::fs::read_to_string(&path).unwrap();
    // YAML 1.2 booleans only: under YAML 1.1 rules the enum value `Off` would read as false.
    let options = serde_saphyr::options! { strict_booleans: true };
    Some(
        serde_saphyr::from_str_with_options::<Value>(&text, options)
            .expect("parse the OpenAPI YAML"),
    )
}

/// Where null is accepted for a property the schema does not require.
#[derive(Clone, Copy, PartialEq)]
pub enum Nulls {
    /// Requests: a null is a type error, as Firecracker's decoder would mostly treat it.
    Reject,
    /// Replies: Firecracker serialises unset optional fields as `null` in `GET /vm/config`
    /// although the file does not mark them nullable.
    AllowForOptional,
}

pub struct Validator<'a> {
    pub spec: &'a Value,
    pub nulls: Nulls,
    /// Skips `required` at the top level. `PATCH /machine-config` reuses the full
    /// `MachineConfiguration` schema in the file, but its description and Firecracker
    /// accept any subset of the fields.
    pub partial: bool,
}

impl Validator<'_> {
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference
                    .strip_prefix("#/definitions/")
                    .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
                let target = &self.spec["definitions"][name];
                assert!(!target.is_null(), "unresolved $ref {reference}");
                self.resolve(target)
            }
            None => schema,
        }
    }

    pub fn validate(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            // The logger level's description declares its values case-insensitive.
            let case_insensitive = schema
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|text| text.contains("case-insensitive"));
            let matches = allowed.iter().any(|candidate| {
                if case_insensitive
                    && let (Some(candidate), Some(value)) = (candidate.as_str(), value.as_str())
                {
                    return candidate.eq_ignore_ascii_case(value);
                }
                candidate == value
                    || candidate
                        .as_str()
                        .is_some_and(|c| Some(c) == value.as_str())
                    || (candidate.is_number() && value.as_str() == Some(&candidate.to_string()))
            });
            if !matches {
                errors.push(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        let Some(kind) = schema.get("type").and_then(Value::as_str) else {
            if schema.get("properties").is_some() {
                self.validate_object(schema, value, at, errors);
            }
            return;
        };
        match kind {
            "object" => self.validate_object(schema, value, at, errors),
            "string" if !value.is_string() => {
                errors.push(format!("{at}: expected a string, got {value}"))
            }
            "boolean" if !value.is_boolean() => {
                errors.push(format!("{at}: expected a boolean, got {value}"))
            }
            "number" if !value.is_number() => {
                errors.push(format!("{at}: expected a number, got {value}"))
            }
            "integer" => {
                if !(value.is_i64() || value.is_u64()) {
                    errors.push(format!("{at}: expected an integer, got {value}"));
                    return;
                }
                let number = value.as_f64().unwrap();
                if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
                    && number < minimum
                {
                    errors.push(format!("{at}: {number} is below the minimum {minimum}"));
                }
                if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
                    && number > maximum
                {
                    errors.push(format!("{at}: {number} is above the maximum {maximum}"));
                }
            }
            "array" => match value.as_array() {
                Some(items) => {
                    for (index, item) in items.iter().enumerate() {
                        self.validate(&schema["items"], item, &format!("{at}[{index}]"), errors);
                    }
                }
                None => errors.push(format!("{at}: expected an array, got {value}")),
            },
            _ => {}
        }
    }

    fn validate_object(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(object) = value.as_object() else {
            errors.push(format!("{at}: expected an object, got {value}"));
            return;
        };
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let skip_required = self.partial && !at.contains('.') && !at.contains('[');
        for name in &required {
            if !skip_required && !object.contains_key(*name) {
                errors.push(format!("{at}: missing required field {name}"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, item) in object {
            let child = format!("{at}.{key}");
            match properties.and_then(|properties| properties.get(key)) {
                Some(_)
                    if item.is_null()
                        && self.nulls == Nulls::AllowForOptional
                        && !required.contains(&key.as_str()) => {}
                Some(property) => self.validate(property, item, &child, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{child}: property not allowed"));
                    }
                    Some(extra) if extra.is_object() => self.validate(extra, item, &child, errors),
                    _ => {}
                },
            }
        }
    }
}

/// Finds the operation for a concrete path such as `/drives/rootfs`.
pub fn operation<'s>(spec: &'s Value, method: &str, path: &str) -> Option<(&'s str, &'s Value)> {
    let paths = spec["paths"].as_object()?;
    let segments: Vec<&str> = path.split('/').collect();
    paths.iter().find_map(|(template, item)| {
        let parts: Vec<&str> = template.split('/').collect();
        let matches = parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(part, segment)| part.starts_with('{') || part == segment);
        let op = item.get(method.to_ascii_lowercase())?;
        matches.then_some((template.as_str(), op))
    })
}

pub fn body_schema(op: &Value) -> Option<&Value> {
    op.get("parameters")?
        .as_array()?
        .iter()
        .find(|parameter| parameter["in"] == "body")
        .map(|parameter| &parameter["schema"])
}

/// The parsed OpenAPI file, or `None` (with a skip message) when it is absent.
pub fn spec() -> Option<&'static Value> {
    static SPEC: OnceLock<Option<Value>> = OnceLock::new();
    SPEC.get_or_init(load_spec).as_ref()
}

/// Checks one exchange against the file: an accepted request body against the operation's
/// body schema, and the reply against the schema declared for its status (or `default`).
/// Returns the violations; an operation that is not in the file has none to check.
pub fn check(
    spec: &Value,
    method: &str,
    path: &str,
    body: Option<&str>,
    response: &RawResponse,
) -> Result<(), Vec<String>> {
    let Some((template, op)) = operation(spec, method, path) else {
        return Ok(());
    };
    let mut errors = Vec::new();
    if response.status < 300
        && let Some(body) = body
    {
        match (body_schema(op), serde_json::from_str::<Value>(body)) {
            (Some(schema), Ok(value)) => {
                let partial = method == "PATCH" && template == "/machine-config";
                Validator {
                    spec,
                    nulls: Nulls::Reject,
                    partial,
                }
                .validate(schema, &value, "request", &mut errors);
            }
            (None, _) => errors.push(format!(
                "{method} {template} accepted a body it does not take"
            )),
            (_, Err(error)) => errors.push(format!("accepted request body is not JSON: {error}")),
        }
    }

    // Errors of the HTTP layer (bad method, payload too large) are not API replies: like
    // Firecracker's, their body `{ "error": "...\n..." }` has a raw newline inside a JSON
    // string, so it is not even valid JSON.
    if response.status >= 400 && response.body.starts_with("{ \"error\": ") {
        return if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        };
    }

    let responses = &op["responses"];
    let Some(declared) = responses
        .get(response.status.to_string())
        .or_else(|| responses.get("default"))
    else {
        errors.push(format!("status {} is not declared", response.status));
        return Err(errors);
    };
    match declared.get("schema") {
        Some(schema) => match serde_json::from_str::<Value>(&response.body) {
            Ok(value) => Validator {
                spec,
                nulls: Nulls::AllowForOptional,
                partial: false,
            }
            .validate(schema, &value, "reply", &mut errors),
            Err(error) => errors.push(format!("reply is not JSON ({error}): {}", response.body)),
        },
        None if !response.body.is_empty() => {
            errors.push(format!("status {} must have no body", response.status));
        }
        None => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
