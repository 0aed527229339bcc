//! A small OpenAPI 3.1 response checker over serde_json: status code, content type,
//! required fields, types (with `null`), enums, `oneOf` and local `$ref`s.

#![allow(dead_code, clippy::unwrap_used)]

use serde_json::Value;

pub struct Spec {
    root: Value,
}

impl Spec {
    pub fn load() -> Spec {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/agent-api.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        Spec {
            root: serde_saphyr::from_str(&text).unwrap(),
        }
    }

    fn resolve<'a>(&'a self, node: &'a Value) -> &'a Value {
        match node.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').unwrap();
                self.resolve(self.root.pointer(pointer).unwrap_or_else(|| {
                    panic!("unresolved $ref {reference}");
                }))
            }
            None => node,
        }
    }

    /// Checks one response; returns the problems found.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: &str,
        body: &str,
    ) -> Vec<String> {
        let operation = self
            .root
            .pointer(&format!("/paths/{}/{method}", path.replace('/', "~1")))
            .unwrap_or_else(|| panic!("{method} {path} is not in the OpenAPI file"));
        let Some(response) = operation["responses"].get(status.to_string()) else {
            return vec![format!(
                "{method} {path}: status {status} is not documented"
            )];
        };
        let response = self.resolve(response);
        let media = content_type.split(';').next().unwrap().trim();
        let Some(schema) = response["content"].get(media).map(|c| &c["schema"]) else {
            return vec![format!(
                "{method} {path} {status}: content type {media} is not documented"
            )];
        };
        let mut problems = Vec::new();
        if media == "application/json" {
            match serde_json::from_str::<Value>(body) {
                Ok(value) => self.validate(schema, &value, "$", &mut problems),
                Err(error) => problems.push(format!("body is not JSON: {error}")),
            }
        }
        problems
    }

    fn validate(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let matching = options
                .iter()
                .filter(|option| {
                    let mut inner = Vec::new();
                    self.validate(option, value, at, &mut inner);
                    inner.is_empty()
                })
                .count();
            if matching != 1 {
                problems.push(format!("{at}: matches {matching} of the oneOf schemas"));
            }
            return;
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let actual = match value {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            let ok = types
                .iter()
                .any(|t| *t == actual || (*t == "number" && actual == "integer"));
            if !ok {
                problems.push(format!("{at}: {actual} where {types:?} is expected"));
                return;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            problems.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        if let Value::Object(fields) = value {
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !fields.contains_key(required) {
                    problems.push(format!("{at}: required field {required} is missing"));
                }
            }
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    if let Some(field) = fields.get(name) {
                        self.validate(property, field, &format!("{at}.{name}"), problems);
                    }
                }
            }
        }
        if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
            for (index, item) in items.iter().enumerate() {
                self.validate(item_schema, item, &format!("{at}[{index}]"), problems);
            }
        }
    }
}

#[test]
fn validator_reports_missing_fields_and_wrong_types() {
    let spec = Spec::load();
    let problems = spec.check(
        "post",
        "/v1/reconcile",
        202,
        "application/json",
        r#"{"queued": "yes"}"#,
    );
    assert_eq!(
        problems,
        ["$.queued: string where [\"boolean\"] is expected"]
    );
    let problems = spec.check("post", "/v1/reconcile", 202, "application/json", "{}");
    assert_eq!(problems, ["$: required field queued is missing"]);
    let problems = spec.check("get", "/status", 418, "application/json", "{}");
    assert_eq!(problems, ["get /status: status 418 is not documented"]);
}
