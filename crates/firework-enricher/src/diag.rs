//! Building diagnostics for findings that have a file and field but no position.

use firework_model::diagnostic::{Diagnostic, Severity};

pub(crate) fn error(code: &'static str, file: &str, path: &str, message: String) -> Diagnostic {
    make(Severity::Error, code, file, path, message)
}

pub(crate) fn warning(code: &'static str, file: &str, path: &str, message: String) -> Diagnostic {
    make(Severity::Warning, code, file, path, message)
}

fn make(
    severity: Severity,
    code: &'static str,
    file: &str,
    path: &str,
    message: String,
) -> Diagnostic {
    Diagnostic {
        severity,
        code,
        file: file.to_string(),
        path: path.to_string(),
        line: None,
        column: None,
        message,
    }
}
