//! OS error texts as Firecracker's release binaries print them.
//!
//! Firecracker releases are static musl builds, so an `io::Error` inside a fault message
//! reads with musl's `strerror` wording (`Resource busy (os error 16)`), which differs from
//! glibc's for several codes. The emulator is built against glibc and rewrites the text.

use std::io;

/// Formats an I/O error as `<musl text> (os error <n>)`, or with Rust's own text when the
/// error carries no OS code or the code is not in the table.
pub fn musl_error_text(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => match musl_strerror(code) {
            Some(text) => format!("{text} (os error {code})"),
            None => error.to_string(),
        },
        None => error.to_string(),
    }
}

/// Returns musl's `strerror` text for the error codes that file, socket and TAP operations
/// produce.
fn musl_strerror(code: i32) -> Option<&'static str> {
    let text = match code {
        1 => "Operation not permitted",
        2 => "No such file or directory",
        5 => "I/O error",
        6 => "No such device or address",
        9 => "Bad file descriptor",
        12 => "Out of memory",
        13 => "Permission denied",
        16 => "Resource busy",
        17 => "File exists",
        19 => "No such device",
        20 => "Not a directory",
        21 => "Is a directory",
        22 => "Invalid argument",
        24 => "No file descriptors available",
        26 => "Text file busy",
        28 => "No space left on device",
        30 => "Read-only file system",
        36 => "Filename too long",
        40 => "Symbolic link loop",
        98 => "Address in use",
        111 => "Connection refused",
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_uses_musl_wording() {
        let error = io::Error::from_raw_os_error(16);
        assert_eq!(musl_error_text(&error), "Resource busy (os error 16)");
    }

    #[test]
    fn address_in_use_musl_wording() {
        let error = io::Error::from_raw_os_error(98);
        assert_eq!(musl_error_text(&error), "Address in use (os error 98)");
    }

    #[test]
    fn unknown_code_falls_back() {
        let error = io::Error::from_raw_os_error(71);
        assert_eq!(musl_error_text(&error), error.to_string());
    }
}
