//! `work --joblog FILE`: one tab-separated line per element run, in GNU
//! parallel's `--joblog` column order, plus the element's index and attempt.
//!
//! ```text
//! Seq  Host  Starttime  JobRuntime  Send  Receive  Exitval  Signal  Command  Index  Attempt
//! ```
//!
//! - `Seq`: 1, 2, ... in the order this worker started its runs.
//! - `Host`: this machine's name (GNU parallel writes `:` for its own machine).
//! - `Starttime`: seconds since the Unix epoch, with milliseconds.
//! - `JobRuntime`: seconds, with milliseconds.
//! - `Send`, `Receive`: always 0 (the command's output is passed through,
//!   not counted).
//! - `Exitval`: the exit status; -1 when the command did not exit by itself
//!   (killed by a signal, by `--timeout-per-element`, or never started).
//! - `Signal`: the signal that ended it, or 0.
//! - `Command`: the command line as run (`{}` replaced), tabs and line
//!   breaks turned into spaces.
//!
//! The header line is written when the file is empty. Several workers may
//! append to one file on one machine: each line is one `write`.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

/// The header, in GNU parallel's column order plus ours.
pub(crate) const HEADER: &str =
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\tIndex\tAttempt";

/// An open joblog.
#[derive(Debug)]
pub(crate) struct JobLog {
    file: Mutex<std::fs::File>,
    host: String,
}

/// One run, as the joblog records it.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    pub(crate) seq: u64,
    pub(crate) start: SystemTime,
    pub(crate) runtime: Duration,
    pub(crate) exitval: i32,
    pub(crate) signal: i32,
    pub(crate) command: &'a str,
    pub(crate) index: usize,
    pub(crate) attempt: u64,
}

impl JobLog {
    /// Opens `path` for appending, writing the header if it is empty.
    pub(crate) fn open(path: &Path) -> Result<JobLog> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the joblog {}", path.display()))?;
        // Workers starting together on one machine: one header.
        let locked = file.lock().is_ok();
        if file.metadata().map(|m| m.len() == 0).unwrap_or(false) {
            file.write_all(format!("{HEADER}\n").as_bytes())
                .with_context(|| format!("cannot write the joblog {}", path.display()))?;
        }
        if locked {
            let _ = file.unlock();
        }
        let host = cloudmux::util::default_worker_id()
            .split('/')
            .next()
            .unwrap_or("localhost")
            .to_string();
        Ok(JobLog {
            file: Mutex::new(file),
            host,
        })
    }

    /// Appends one line; a failure to write is logged, not fatal.
    pub(crate) fn record(&self, e: &Entry<'_>) {
        let line = format_line(&self.host, e);
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(err) = f.write_all(line.as_bytes()) {
            tracing::warn!(error = %err, "cannot append to the joblog");
        }
    }
}

fn format_line(host: &str, e: &Entry<'_>) -> String {
    let start = e
        .start
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let command: String = e
        .command
        .chars()
        .map(|c| {
            if matches!(c, '\t' | '\n' | '\r') {
                ' '
            } else {
                c
            }
        })
        .collect();
    format!(
        "{}\t{host}\t{start:.3}\t{:.3}\t0\t0\t{}\t{}\t{command}\t{}\t{}\n",
        e.seq,
        e.runtime.as_secs_f64(),
        e.exitval,
        e.signal,
        e.index,
        e.attempt
    )
}

/// A command line for people and the joblog: arguments that need it are
/// single-quoted as a POSIX shell would read them.
pub(crate) fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars().all(|c| {
                    c.is_ascii_alphanumeric() || "-_./:=,+@%^".contains(c) || !c.is_ascii()
                });
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_columns_in_order() {
        let e = Entry {
            seq: 3,
            start: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            runtime: Duration::from_millis(1500),
            exitval: 2,
            signal: 0,
            command: "sh -c 'a\tb'",
            index: 17,
            attempt: 2,
        };
        let line = format_line("h1", &e);
        let cols: Vec<&str> = line.trim_end().split('\t').collect();
        assert_eq!(cols.len(), HEADER.split('\t').count());
        assert_eq!(
            cols,
            [
                "3",
                "h1",
                "1700000000.123",
                "1.500",
                "0",
                "0",
                "2",
                "0",
                "sh -c 'a b'",
                "17",
                "2"
            ]
        );
    }

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let argv: Vec<String> = ["sh", "-c", "echo $X", "it's", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(command_line(&argv), r#"sh -c 'echo $X' 'it'\''s' ''"#);
    }
}
