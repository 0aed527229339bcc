//! Host CPU and memory, read from `/proc`, and the resources services ask for.

use std::fmt::Debug;
use std::io;
use std::path::PathBuf;

use firework_model::node::Service;
use firework_model::registry::Resources;
use tracing::warn;

/// Where host capacity comes from; tests script it.
pub trait CapacitySource: Send + Sync + Debug {
    /// Reads the host's CPU count and memory.
    fn read(&self) -> io::Result<Resources>;
}

/// Reads `/proc/cpuinfo` (count of `processor` lines) and `/proc/meminfo` (`MemTotal`).
#[derive(Debug, Clone)]
pub struct ProcCapacity {
    /// The proc file system root, `/proc` on a host.
    pub proc_root: PathBuf,
}

impl Default for ProcCapacity {
    fn default() -> Self {
        ProcCapacity {
            proc_root: PathBuf::from("/proc"),
        }
    }
}

impl CapacitySource for ProcCapacity {
    fn read(&self) -> io::Result<Resources> {
        let cpuinfo = std::fs::read_to_string(self.proc_root.join("cpuinfo"))?;
        let meminfo = std::fs::read_to_string(self.proc_root.join("meminfo"))?;
        Ok(Resources {
            vcpus: parse_cpu_count(&cpuinfo)?,
            memory_mb: parse_mem_total_mb(&meminfo)?,
        })
    }
}

/// Configured vCPUs and memory that replace what a [`CapacitySource`] reads, each when set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapacityOverride {
    /// vCPUs in place of the host's CPU count.
    pub vcpus: Option<u32>,
    /// Memory in MiB in place of the host's `MemTotal`.
    pub memory_mb: Option<u64>,
}

impl CapacityOverride {
    /// Returns `source` itself when nothing is overridden, otherwise a source that reads
    /// `source` and replaces the overridden figures.
    pub fn wrap(self, source: Box<dyn CapacitySource>) -> Box<dyn CapacitySource> {
        if self == CapacityOverride::default() {
            return source;
        }
        Box::new(OverriddenCapacity {
            source,
            settings: self,
        })
    }
}

#[derive(Debug)]
struct OverriddenCapacity {
    source: Box<dyn CapacitySource>,
    settings: CapacityOverride,
}

impl CapacitySource for OverriddenCapacity {
    fn read(&self) -> io::Result<Resources> {
        // Both figures written: the host is not read at all, so a host without /proc works.
        if let (Some(vcpus), Some(memory_mb)) = (self.settings.vcpus, self.settings.memory_mb) {
            return Ok(Resources { vcpus, memory_mb });
        }
        let host = self.source.read()?;
        Ok(Resources {
            vcpus: self.settings.vcpus.unwrap_or(host.vcpus),
            memory_mb: self.settings.memory_mb.unwrap_or(host.memory_mb),
        })
    }
}

/// Counts the `processor` entries of `/proc/cpuinfo`.
pub fn parse_cpu_count(cpuinfo: &str) -> io::Result<u32> {
    let count = cpuinfo
        .lines()
        .filter(|line| {
            line.split(':')
                .next()
                .is_some_and(|key| key.trim() == "processor")
        })
        .count();
    if count == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no processor entry in cpuinfo",
        ));
    }
    u32::try_from(count).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Reads `MemTotal` (in kB) from `/proc/meminfo` and returns MiB.
pub fn parse_mem_total_mb(meminfo: &str) -> io::Result<u64> {
    let value = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse::<u64>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no MemTotal in meminfo"))?;
    Ok(value / 1024)
}

/// A capacity source that falls back to its last good read when a read fails.
#[derive(Debug)]
pub struct CapacityReader {
    source: Box<dyn CapacitySource>,
    last_good: Option<Resources>,
    /// The value read in the current tick, so one tick reads the host once.
    this_tick: Option<Resources>,
}

impl CapacityReader {
    /// Wraps `source`.
    pub fn new(source: Box<dyn CapacitySource>) -> CapacityReader {
        CapacityReader {
            source,
            last_good: None,
            this_tick: None,
        }
    }

    /// Starts a new tick: the next [`CapacityReader::read`] reads the source again.
    pub fn begin_tick(&mut self) {
        self.this_tick = None;
    }

    /// Reads the capacity once. A failed read returns the last good value, or the error
    /// when there has been none.
    /// Within one tick (see [`CapacityReader::begin_tick`]) a successful read is reused.
    pub fn read(&mut self) -> io::Result<Resources> {
        if let Some(resources) = self.this_tick {
            return Ok(resources);
        }
        match self.source.read() {
            Ok(resources) => {
                self.last_good = Some(resources);
                self.this_tick = Some(resources);
                Ok(resources)
            }
            Err(error) => match &self.last_good {
                Some(last) => {
                    warn!(%error, "cannot read host capacity; using the last good value");
                    Ok(*last)
                }
                None => Err(error),
            },
        }
    }
}

/// Sums the vCPUs and memory of `services`.
pub fn sum_resources<'a>(services: impl IntoIterator<Item = &'a Service>) -> Resources {
    let mut total = Resources {
        vcpus: 0,
        memory_mb: 0,
    };
    for service in services {
        total.vcpus += service.vcpus;
        total.memory_mb += u64::from(service.memory_mb);
    }
    total
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_counts_processors() {
        let text = "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\nmodel name\t: x\n";
        assert_eq!(parse_cpu_count(text).unwrap(), 2);
        assert!(parse_cpu_count("model name: x\n").is_err());
    }

    #[test]
    fn meminfo_total_in_mib() {
        let text = "MemTotal:       24576000 kB\nMemFree:        1000 kB\n";
        assert_eq!(parse_mem_total_mb(text).unwrap(), 24000);
        assert!(parse_mem_total_mb("MemFree: 1 kB\n").is_err());
    }

    #[test]
    fn proc_capacity_reads_this_host() {
        let resources = ProcCapacity::default().read().unwrap();
        assert!(resources.vcpus >= 1);
        assert!(resources.memory_mb >= 1);
    }

    #[derive(Debug)]
    struct Fixed(io::Result<Resources>);

    impl CapacitySource for Fixed {
        fn read(&self) -> io::Result<Resources> {
            match &self.0 {
                Ok(resources) => Ok(*resources),
                Err(error) => Err(io::Error::new(error.kind(), error.to_string())),
            }
        }
    }

    fn host() -> Box<dyn CapacitySource> {
        Box::new(Fixed(Ok(Resources {
            vcpus: 2,
            memory_mb: 4096,
        })))
    }

    #[test]
    fn override_replaces_each_figure() {
        let vcpus_only = CapacityOverride {
            vcpus: Some(16),
            memory_mb: None,
        };
        let read = vcpus_only.wrap(host()).read().unwrap();
        assert_eq!(read.vcpus, 16);
        assert_eq!(read.memory_mb, 4096);

        let memory_only = CapacityOverride {
            vcpus: None,
            memory_mb: Some(1024),
        };
        let read = memory_only.wrap(host()).read().unwrap();
        assert_eq!(read.vcpus, 2);
        assert_eq!(read.memory_mb, 1024);

        let read = CapacityOverride::default().wrap(host()).read().unwrap();
        assert_eq!(read.vcpus, 2);
        assert_eq!(read.memory_mb, 4096);
    }

    #[test]
    fn override_of_both_skips_host() {
        let failing: Box<dyn CapacitySource> = Box::new(Fixed(Err(io::Error::other("no /proc"))));
        let both = CapacityOverride {
            vcpus: Some(8),
            memory_mb: Some(2048),
        };
        let read = both.wrap(failing).read().unwrap();
        assert_eq!(read.vcpus, 8);
        assert_eq!(read.memory_mb, 2048);

        let failing: Box<dyn CapacitySource> = Box::new(Fixed(Err(io::Error::other("no /proc"))));
        let error = CapacityOverride {
            vcpus: Some(8),
            memory_mb: None,
        }
        .wrap(failing)
        .read()
        .unwrap_err();
        assert_eq!(error.to_string(), "no /proc");
    }
}
