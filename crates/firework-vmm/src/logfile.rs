//! The per-VM log file: Firecracker's stdout and stderr go straight into it, opened with
//! `O_APPEND`, so the process keeps logging while no agent runs. The runtime caps its size
//! by copy-and-truncate: because the writer appends, it continues at the new end of file
//! after a truncation instead of leaving a hole.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::layout::rotated_log_path;

/// Moves an existing log to `<log>.1` and opens a new empty log for appending, so that a
/// start keeps the previous run's log for diagnosis.
pub fn start_new_log(log_path: &Path) -> io::Result<File> {
    match fs::rename(log_path, rotated_log_path(log_path)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    OpenOptions::new().create(true).append(true).open(log_path)
}

/// If the log is larger than `max_bytes`, copies it to `<log>.1` (replacing the previous
/// copy) and truncates it to zero. Returns whether it rotated. Lines written between the
/// copy and the truncation are lost; the log may exceed `max_bytes` between two calls.
pub fn cap_log(log_path: &Path, max_bytes: u64) -> io::Result<bool> {
    let size = match fs::metadata(log_path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if size <= max_bytes {
        return Ok(false);
    }
    fs::copy(log_path, rotated_log_path(log_path))?;
    OpenOptions::new().write(true).open(log_path)?.set_len(0)?;
    Ok(true)
}

/// Returns the last `max_lines` lines of the log, read from at most its last `max_bytes`
/// bytes. A missing or unreadable log gives an empty string.
pub fn read_tail(log_path: &Path, max_lines: usize, max_bytes: u64) -> String {
    tail_of(log_path, max_lines, max_bytes).unwrap_or_default()
}

fn tail_of(path: &Path, max_lines: usize, max_bytes: u64) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    // A read that starts inside a line would show a fragment first; drop it.
    if start > 0 && lines.len() > 1 {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(max_lines);
    Ok(lines[skip..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn new_log_keeps_previous() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("firecracker.log");
        fs::write(&log, "old run\n").unwrap();
        let mut file = start_new_log(&log).unwrap();
        file.write_all(b"new run\n").unwrap();
        assert_eq!(fs::read_to_string(&log).unwrap(), "new run\n");
        assert_eq!(
            fs::read_to_string(rotated_log_path(&log)).unwrap(),
            "old run\n"
        );
    }

    #[test]
    fn cap_truncates_and_writer_appends_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("firecracker.log");
        let mut writer = start_new_log(&log).unwrap();
        writer.write_all(&[b'a'; 100]).unwrap();
        assert!(!cap_log(&log, 100).unwrap());
        writer.write_all(b"b").unwrap();
        assert!(cap_log(&log, 100).unwrap());
        assert_eq!(fs::metadata(&log).unwrap().len(), 0);
        assert_eq!(fs::metadata(rotated_log_path(&log)).unwrap().len(), 101);
        // The writer keeps its descriptor and appends at the new end, leaving no hole.
        writer.write_all(b"after\n").unwrap();
        assert_eq!(fs::read(&log).unwrap(), b"after\n");
    }

    #[test]
    fn cap_of_missing_log() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!cap_log(&dir.path().join("none.log"), 10).unwrap());
    }

    #[test]
    fn tail_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("firecracker.log");
        let text: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        fs::write(&log, &text).unwrap();
        assert_eq!(read_tail(&log, 2, 4096), "line 49\nline 50");
        // Reading only the last 12 bytes starts inside "line 49", which is dropped.
        assert_eq!(read_tail(&log, 5, 12), "line 50");
    }
}
