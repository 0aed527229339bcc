//! Typed reading of a [`Node`] tree that records every problem instead of stopping at the first.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use crate::diagnostic::Findings;
use crate::duration::GoDuration;
use crate::yaml::{Node, NodeKind, Position};

/// Joins a field path and a key: `services[0]` + `name` = `services[0].name`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Appends an index to a field path: `services` + 2 = `services[2]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The entries of one mapping, checked against the keys its type knows.
#[derive(Debug)]
pub(crate) struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node)>,
    pub(crate) path: String,
    pub(crate) position: Position,
}

impl<'n> Fields<'n> {
    /// Returns the value of `key`, or `None` when the key is absent or its value is null.
    pub(crate) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, node)| *node)
            .filter(|node| !node.is_null())
    }

    /// Returns true when `key` is written, even with a null value.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.entries.iter().any(|(name, _)| *name == key)
    }

    /// Returns the raw value of `key`, null included.
    pub(crate) fn raw(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, node)| *node)
    }

    /// The field path of `key` inside this mapping.
    pub(crate) fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

/// A set of keys one mapping type accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schema {
    /// Keys with a meaning.
    pub(crate) known: &'static [&'static str],
    /// Keys that only CI tools read; they are accepted with a warning.
    pub(crate) ci_only: &'static [&'static str],
    /// True for a free-form map such as `env`, where every key is accepted.
    pub(crate) open: bool,
}

impl Schema {
    /// A free-form map.
    pub(crate) const OPEN: Schema = Schema {
        known: &[],
        ci_only: &[],
        open: true,
    };

    /// A mapping type that accepts exactly `known`.
    pub(crate) const fn closed(known: &'static [&'static str]) -> Schema {
        Schema {
            known,
            ci_only: &[],
            open: false,
        }
    }
}

/// Reads typed values out of nodes and records what is wrong with them.
#[derive(Debug)]
pub(crate) struct Decoder {
    pub(crate) findings: Findings,
}

impl Decoder {
    pub(crate) fn new(file: &str) -> Self {
        Decoder {
            findings: Findings::new(file),
        }
    }

    pub(crate) fn error(&mut self, code: &'static str, path: &str, at: Position, message: String) {
        self.findings.error(code, path, Some(at), message);
    }

    pub(crate) fn warning(
        &mut self,
        code: &'static str,
        path: &str,
        at: Position,
        message: String,
    ) {
        self.findings.warning(code, path, Some(at), message);
    }

    /// Reads a mapping; null counts as an empty mapping. Unknown keys become warnings and
    /// duplicate keys errors. `<<` merge keys are applied, with explicit keys winning.
    pub(crate) fn mapping<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        schema: Schema,
    ) -> Option<Fields<'n>> {
        let mut entries: Vec<(&'n str, &'n Node)> = Vec::new();
        let mut merged: Vec<(&'n str, &'n Node)> = Vec::new();
        match &node.kind {
            NodeKind::Null => {}
            NodeKind::Mapping(pairs) => {
                let mut seen = HashSet::new();
                for (key, value) in pairs {
                    let Some(name) = self.key_text(key, path) else {
                        continue;
                    };
                    if name == "<<" {
                        self.collect_merge(value, path, &mut merged);
                        continue;
                    }
                    if !seen.insert(name) {
                        self.error(
                            "duplicate-key",
                            &join(path, name),
                            key.position,
                            format!("duplicate key `{name}`: each key may appear once"),
                        );
                        continue;
                    }
                    entries.push((name, value));
                }
            }
            _ => {
                self.error(
                    "invalid-type",
                    path,
                    node.position,
                    format!("expected a mapping, found {}", node.type_name()),
                );
                return None;
            }
        }
        for (name, value) in merged {
            if !entries.iter().any(|(existing, _)| *existing == name) {
                entries.push((name, value));
            }
        }
        for (name, value) in &entries {
            if schema.open || schema.known.contains(name) {
                continue;
            }
            let field = join(path, name);
            if schema.ci_only.contains(name) {
                self.warning(
                    "ci-only-key",
                    &field,
                    value.position,
                    format!("`{name}` is read only by CI tools; it is ignored here"),
                );
            } else {
                self.warning(
                    "unknown-key",
                    &field,
                    value.position,
                    format!("unknown key `{name}`; it is ignored"),
                );
            }
        }
        Some(Fields {
            entries,
            path: path.to_string(),
            position: node.position,
        })
    }

    fn key_text<'n>(&mut self, key: &'n Node, path: &str) -> Option<&'n str> {
        match &key.kind {
            NodeKind::Scalar(scalar) => Some(scalar.text.as_str()),
            _ => {
                self.error(
                    "invalid-key",
                    path,
                    key.position,
                    format!("mapping keys must be strings, found {}", key.type_name()),
                );
                None
            }
        }
    }

    fn collect_merge<'n>(
        &mut self,
        value: &'n Node,
        path: &str,
        out: &mut Vec<(&'n str, &'n Node)>,
    ) {
        match &value.kind {
            NodeKind::Mapping(pairs) => {
                for (key, item) in pairs {
                    if let Some(name) = self.key_text(key, path)
                        && !out.iter().any(|(existing, _)| *existing == name)
                    {
                        out.push((name, item));
                    }
                }
            }
            NodeKind::Sequence(items) => {
                for item in items {
                    self.collect_merge(item, path, out);
                }
            }
            _ => self.error(
                "invalid-merge",
                &join(path, "<<"),
                value.position,
                format!("a merge key needs a mapping, found {}", value.type_name()),
            ),
        }
    }

    /// Reads a scalar as text exactly as written. Null gives `None` without a finding.
    pub(crate) fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Scalar(scalar) => Some(scalar.text.clone()),
            _ => {
                self.error(
                    "invalid-type",
                    path,
                    node.position,
                    format!("expected a string, found {}", node.type_name()),
                );
                None
            }
        }
    }

    /// Reads an optional string field; an empty string counts as absent, as in the Go firework.
    pub(crate) fn opt_string(&mut self, fields: &Fields<'_>, key: &str) -> Option<String> {
        let node = fields.get(key)?;
        self.string(node, &fields.path_of(key))
            .filter(|s| !s.is_empty())
    }

    /// Reads a required, non-empty string field.
    pub(crate) fn required_string(&mut self, fields: &Fields<'_>, key: &str) -> Option<String> {
        match self.opt_string(fields, key) {
            Some(value) => Some(value),
            None => {
                let at = fields.raw(key).map_or(fields.position, |n| n.position);
                self.error(
                    "missing",
                    &fields.path_of(key),
                    at,
                    format!("missing required key `{key}`"),
                );
                None
            }
        }
    }

    /// Reads an unsigned integer written as a decimal number (quoted or not).
    pub(crate) fn integer<T>(&mut self, node: &Node, path: &str) -> Option<T>
    where
        T: FromStr + TryFrom<u64>,
    {
        let text = match &node.kind {
            NodeKind::Null => return None,
            NodeKind::Scalar(scalar) => scalar.text.trim(),
            _ => {
                self.error(
                    "invalid-type",
                    path,
                    node.position,
                    format!("expected a whole number, found {}", node.type_name()),
                );
                return None;
            }
        };
        let digits = text.strip_prefix('+').unwrap_or(text);
        let parsed = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse::<u64>().ok()
        } else {
            None
        };
        match parsed.and_then(|n| T::try_from(n).ok()) {
            Some(value) => Some(value),
            None => {
                let reason = if text.starts_with('-') {
                    "it must not be negative"
                } else if parsed.is_some() {
                    "it is too large"
                } else {
                    "expected a whole number"
                };
                self.error(
                    "invalid-number",
                    path,
                    node.position,
                    format!("invalid number {text:?}: {reason}"),
                );
                None
            }
        }
    }

    /// Reads an optional integer field.
    pub(crate) fn opt_integer<T>(&mut self, fields: &Fields<'_>, key: &str) -> Option<T>
    where
        T: FromStr + TryFrom<u64>,
    {
        let node = fields.get(key)?;
        self.integer(node, &fields.path_of(key))
    }

    /// Reads a boolean: `true` or `false` in any of YAML 1.2's spellings.
    pub(crate) fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        let text = match &node.kind {
            NodeKind::Null => return None,
            NodeKind::Scalar(scalar) => scalar.text.as_str(),
            _ => {
                self.error(
                    "invalid-type",
                    path,
                    node.position,
                    format!("expected true or false, found {}", node.type_name()),
                );
                return None;
            }
        };
        match text {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => {
                self.error(
                    "invalid-bool",
                    path,
                    node.position,
                    format!("invalid boolean {text:?}: write true or false"),
                );
                None
            }
        }
    }

    /// Reads an optional IP address field.
    pub(crate) fn opt_ip(&mut self, fields: &Fields<'_>, key: &str) -> Option<std::net::IpAddr> {
        let text = self.opt_string(fields, key)?;
        match text.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                let at = fields.get(key).map_or(fields.position, |n| n.position);
                self.error(
                    "invalid-value",
                    &fields.path_of(key),
                    at,
                    format!("invalid {key} {text:?}: write an IP address such as 10.0.1.5"),
                );
                None
            }
        }
    }

    /// Reads an optional boolean field.
    pub(crate) fn opt_boolean(&mut self, fields: &Fields<'_>, key: &str) -> Option<bool> {
        let node = fields.get(key)?;
        self.boolean(node, &fields.path_of(key))
    }

    /// Reads an optional Go-style duration field.
    pub(crate) fn opt_duration(&mut self, fields: &Fields<'_>, key: &str) -> Option<GoDuration> {
        let node = fields.get(key)?;
        let path = fields.path_of(key);
        let text = self.string(node, &path)?;
        match text.parse::<GoDuration>() {
            Ok(duration) => Some(duration),
            Err(error) => {
                self.error("invalid-duration", &path, node.position, error.to_string());
                None
            }
        }
    }

    /// Reads a sequence; null counts as empty.
    pub(crate) fn sequence<'n>(&mut self, node: &'n Node, path: &str) -> &'n [Node] {
        match &node.kind {
            NodeKind::Null => &[],
            NodeKind::Sequence(items) => items,
            _ => {
                self.error(
                    "invalid-type",
                    path,
                    node.position,
                    format!("expected a sequence, found {}", node.type_name()),
                );
                &[]
            }
        }
    }

    /// Reads a sequence of strings.
    pub(crate) fn string_list(&mut self, node: &Node, path: &str) -> Vec<(String, Position)> {
        let mut out = Vec::new();
        for (i, item) in self.sequence(node, path).iter().enumerate() {
            if let Some(text) = self.string(item, &index(path, i)) {
                out.push((text, item.position));
            }
        }
        out
    }

    /// Reads a mapping of string keys to scalar values, keeping each value's text as written.
    pub(crate) fn string_map(
        &mut self,
        node: &Node,
        path: &str,
    ) -> BTreeMap<String, (String, Position)> {
        let mut out = BTreeMap::new();
        let Some(fields) = self.mapping(node, path, Schema::OPEN) else {
            return out;
        };
        for (key, value) in fields.entries {
            let field = join(path, key);
            let text = match &value.kind {
                NodeKind::Null => String::new(),
                NodeKind::Scalar(scalar) => scalar.text.clone(),
                _ => {
                    self.error(
                        "invalid-type",
                        &field,
                        value.position,
                        format!("expected a string value, found {}", value.type_name()),
                    );
                    continue;
                }
            };
            out.insert(key.to_string(), (text, value.position));
        }
        out
    }
}
