//! The machine a run was measured on, read from `/proc` and `/etc/os-release`.

use serde::Serialize;

/// What the report says about the machine.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    /// Logical CPUs available to this process.
    pub(crate) cores: usize,
    /// CPU model name from `/proc/cpuinfo`.
    pub(crate) cpu: String,
    /// Total memory in MiB, from `/proc/meminfo`.
    pub(crate) memory_mib: u64,
    /// Operating system name and kernel release.
    pub(crate) os: String,
    /// The compiler that built this binary.
    pub(crate) rustc: String,
    /// True for an optimized build (numbers from debug builds mean little).
    pub(crate) release_build: bool,
}

impl Machine {
    /// Reads the machine's description; unknown fields say `unknown`.
    pub(crate) fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = kib_field(&meminfo, "MemTotal").unwrap_or(0) / 1024;
        let os_name = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("PRETTY_NAME=")
                        .map(|v| v.trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let os = if kernel.is_empty() {
            os_name
        } else {
            format!("{os_name}, kernel {kernel}")
        };
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            memory_mib,
            os,
            rustc: env!("CMX_BENCH_RUSTC").to_string(),
            release_build: !cfg!(debug_assertions),
        }
    }

    /// One line per field.
    pub(crate) fn render(&self) -> String {
        format!(
            "machine: {} cores, {}, {:.1} GiB memory\nos: {}\nrustc: {}{}",
            self.cores,
            self.cpu,
            self.memory_mib as f64 / 1024.0,
            self.os,
            self.rustc,
            if self.release_build {
                ""
            } else {
                " (DEBUG BUILD: use --release)"
            }
        )
    }
}

/// A `Name:  1234 kB` field of a `/proc` status-like file, in KiB.
pub(crate) fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k.trim() != name {
            return None;
        }
        v.split_whitespace().next()?.parse().ok()
    })
}

/// This process's `VmHWM` (peak resident memory) in KiB, if the OS reports it.
pub(crate) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmHWM")
}

/// CPU time (user + system) this process has used, in seconds, if known.
pub(crate) fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second
    // on Linux); the command name in field 2 may contain spaces, so count
    // from the closing parenthesis.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let t = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t 99 kB\n";
        assert_eq!(kib_field(t, "VmHWM"), Some(12345));
        assert_eq!(kib_field(t, "VmRSS"), Some(99));
        assert_eq!(kib_field(t, "VmPeak"), None);
    }

    #[test]
    fn own_peak_memory_is_reported_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_kib().unwrap() > 0);
        }
    }
}
