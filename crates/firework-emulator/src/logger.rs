//! Log lines in Firecracker's format.
//!
//! Firecracker writes `<time> [<id>:<thread>[:<LEVEL>]] <message>` lines to stdout until
//! `--log-path` or `PUT /logger` names a file or FIFO. The emulator prints the time in UTC
//! because it does not read the local time zone.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Log level, ordered from most to least severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// Parses a level name case-insensitively; `Warning` and `Warn` are the same level.
    pub fn parse(raw: &str) -> Option<Level> {
        match raw.to_ascii_lowercase().as_str() {
            "off" => Some(Level::Off),
            "error" => Some(Level::Error),
            "warning" | "warn" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            "trace" => Some(Level::Trace),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Level::Off => "OFF",
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }
}

/// Thread name that Firecracker puts in each line.
#[derive(Debug, Clone, Copy)]
pub enum Thread {
    Main,
    Api,
}

impl Thread {
    fn name(self) -> &'static str {
        match self {
            Thread::Main => "main",
            Thread::Api => "fc_api",
        }
    }
}

#[derive(Debug)]
enum Target {
    Stdout,
    File(File),
}

/// Logger state: target, level and line decorations.
#[derive(Debug)]
pub struct Logger {
    instance_id: String,
    target: Target,
    level: Level,
    show_level: bool,
    show_origin: bool,
    module: Option<String>,
}

impl Logger {
    /// Creates a logger that writes to stdout at level Info, Firecracker's start-up default.
    pub fn new(instance_id: &str) -> Logger {
        Logger {
            instance_id: instance_id.to_string(),
            target: Target::Stdout,
            level: Level::Info,
            show_level: false,
            show_origin: false,
            module: None,
        }
    }

    /// Opens (creating it when missing) a file or FIFO and sends further lines there.
    pub fn set_path(&mut self, path: &Path) -> io::Result<()> {
        let file = open_output(path)?;
        self.target = Target::File(file);
        Ok(())
    }

    pub fn set_level(&mut self, level: Level) {
        self.level = level;
    }

    pub fn set_decorations(&mut self, show_level: bool, show_origin: bool) {
        self.show_level = show_level;
        self.show_origin = show_origin;
    }

    pub fn set_module(&mut self, module: Option<String>) {
        self.module = module;
    }

    /// Writes one line when `level` passes the filter. Write errors are dropped, as
    /// Firecracker drops lines it cannot write and only counts them.
    pub fn log(&mut self, level: Level, thread: Thread, message: &str) {
        if level == Level::Off || level > self.level {
            return;
        }
        // Every record of the emulator comes from this module path, so a module filter
        // passes only when it is a prefix of it, like Firecracker's filter on its own paths.
        if let Some(module) = &self.module
            && !"vmm::emulator".starts_with(module.as_str())
        {
            return;
        }
        let mut line = format!(
            "{} [{}:{}",
            format_utc_now(),
            self.instance_id,
            thread.name()
        );
        if self.show_level {
            line.push(':');
            line.push_str(level.label());
        }
        if self.show_origin {
            line.push_str(":src/emulator.rs:0");
        }
        line.push_str("] ");
        line.push_str(message);
        line.push('\n');
        let _ = match &mut self.target {
            Target::Stdout => io::stdout().write_all(line.as_bytes()),
            Target::File(file) => file.write_all(line.as_bytes()),
        };
    }

    pub fn info(&mut self, thread: Thread, message: &str) {
        self.log(Level::Info, thread, message);
    }

    pub fn error(&mut self, thread: Thread, message: &str) {
        self.log(Level::Error, thread, message);
    }
}

/// Opens a log or metrics target the way Firecracker does: read-write, created when
/// missing, appending, and non-blocking so a FIFO without a reader does not block.
pub fn open_output(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
}

/// Formats the current time as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn` in UTC.
fn format_utc_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let second_of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}",
        second_of_day / 3600,
        (second_of_day / 60) % 60,
        second_of_day % 60,
        now.subsec_nanos()
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn level_names() {
        assert_eq!(Level::parse("Warning"), Some(Level::Warn));
        assert_eq!(Level::parse("TRACE"), Some(Level::Trace));
        assert_eq!(Level::parse("verbose"), None);
    }

    #[test]
    fn file_target_gets_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut logger = Logger::new("vm1");
        logger.set_path(&path).unwrap();
        logger.set_decorations(true, false);
        logger.info(Thread::Api, "hello");
        logger.log(Level::Debug, Thread::Api, "filtered");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with(" [vm1:fc_api:INFO] hello\n"), "{text}");
        assert_eq!(text.lines().count(), 1);
    }
}
