//! Findings about a config file: errors that make it invalid and warnings that do not.

use std::fmt;

use serde::Serialize;

use crate::yaml::Position;

/// Severity of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file is accepted; something in it is ignored or replaced by a default.
    Warning,
    /// The file is rejected.
    Error,
}

/// One finding, located by file, field path and, where known, line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable identifier of the rule, such as `invalid-name` or `unknown-key`.
    pub code: &'static str,
    /// The file the finding is about, as the caller named it.
    pub file: String,
    /// The field path, such as `services[2].health_check.port`; empty for the whole file.
    pub path: String,
    /// Line of the offending value, counted from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Column of the offending value, counted from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Description of the problem, with the bad value and what is allowed.
    pub message: String,
}

impl Diagnostic {
    /// Returns true for an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// Formats the finding the way compilers do: `file:line:column: error: path: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {severity}")?;
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {} [{}]", self.message, self.code)
    }
}

/// Collects the findings of one file while it is decoded and validated.
#[derive(Debug, Clone)]
pub struct Findings {
    file: String,
    items: Vec<Diagnostic>,
}

impl Findings {
    /// Starts an empty collection for `file`.
    pub fn new(file: impl Into<String>) -> Self {
        Findings {
            file: file.into(),
            items: Vec::new(),
        }
    }

    /// Returns the file these findings are about.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Records an error.
    pub fn error(
        &mut self,
        code: &'static str,
        path: &str,
        at: Option<Position>,
        message: impl Into<String>,
    ) {
        self.push(Severity::Error, code, path, at, message.into());
    }

    /// Records a warning.
    pub fn warning(
        &mut self,
        code: &'static str,
        path: &str,
        at: Option<Position>,
        message: impl Into<String>,
    ) {
        self.push(Severity::Warning, code, path, at, message.into());
    }

    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        path: &str,
        at: Option<Position>,
        message: String,
    ) {
        self.items.push(Diagnostic {
            severity,
            code,
            file: self.file.clone(),
            path: path.to_string(),
            line: at.map(|p| p.line),
            column: at.map(|p| p.column),
            message,
        });
    }

    /// Returns true when at least one error was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// Returns every finding in the order they were recorded.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }

    /// Returns the findings recorded so far.
    pub fn as_slice(&self) -> &[Diagnostic] {
        &self.items
    }
}

/// A decoded value together with the warnings found while decoding it.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    /// The decoded and validated value.
    pub value: T,
    /// Warnings: unknown keys, defaults applied in place of harmless bad input.
    pub warnings: Vec<Diagnostic>,
}

/// A config file that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The path that failed.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but has errors; `diagnostics` holds all of them and the warnings.
    #[error("{file} is invalid: {}", summary(diagnostics))]
    Invalid {
        /// The file that is invalid.
        file: String,
        /// Every error and warning found in the file.
        diagnostics: Vec<Diagnostic>,
    },
}

impl ConfigError {
    /// Returns the findings of an invalid file, or nothing for a read error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { diagnostics, .. } => diagnostics,
        }
    }

    /// Builds the result of a decode: the value with its warnings, or every finding.
    pub(crate) fn check<T>(findings: Findings, value: T) -> Result<Parsed<T>, ConfigError> {
        if findings.has_errors() {
            return Err(ConfigError::Invalid {
                file: findings.file().to_string(),
                diagnostics: findings.into_vec(),
            });
        }
        Ok(Parsed {
            value,
            warnings: findings.into_vec(),
        })
    }
}

fn summary(diagnostics: &[Diagnostic]) -> String {
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
    let Some(first) = errors.first() else {
        return "no errors recorded".to_string();
    };
    let location = match (first.line, first.path.is_empty()) {
        (Some(line), false) => format!("line {line}: {}: ", first.path),
        (Some(line), true) => format!("line {line}: "),
        (None, false) => format!("{}: ", first.path),
        (None, true) => String::new(),
    };
    let more = match errors.len() {
        1 => String::new(),
        n => format!(" (and {} more errors)", n - 1),
    };
    format!("{location}{}{more}", first.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_compiler_style() {
        let mut findings = Findings::new("nodes/a.yaml");
        findings.error(
            "invalid-port",
            "services[2].health_check.port",
            Some(Position {
                line: 7,
                column: 13,
            }),
            "invalid port 70000: allowed 1 to 65535",
        );
        let text = findings.into_vec()[0].to_string();
        assert_eq!(
            text,
            "nodes/a.yaml:7:13: error: services[2].health_check.port: invalid port 70000: \
             allowed 1 to 65535 [invalid-port]"
        );
    }

    #[test]
    fn invalid_error_summarises_first_error_and_count() {
        let mut findings = Findings::new("agent.yaml");
        findings.warning("unknown-key", "colour", None, "unknown key");
        findings.error("missing", "store_url", None, "missing store_url");
        findings.error("invalid-value", "log_level", None, "invalid log_level");
        let error = ConfigError::check(findings, ()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "agent.yaml is invalid: store_url: missing store_url (and 1 more errors)"
        );
        assert_eq!(error.diagnostics().len(), 3);
    }
}
