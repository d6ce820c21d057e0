//! Child processes and signals, shared by `work` and `lock`.
//!
//! Each child runs in a process group of its own, so that
//!
//! - a signal reaches the whole command: a `sh -c` script and whatever it
//!   started (killing only the shell would leave its children running and
//!   holding our standard output);
//! - Ctrl-C in a terminal reaches cloudmux alone, which decides what the
//!   children get (and, in a leased session, gives their elements back).

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};

/// How long a child that was sent SIGTERM (a timeout, a lost lease or lock)
/// has to exit before it gets SIGKILL.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(5);

/// Sends `sig` to the process group led by `pid` (a child spawned with
/// `process_group(0)`). A group that is already gone is fine.
pub(crate) fn signal_group(pid: Option<u32>, sig: Signal) {
    let Some(pid) = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = kill_process_group(pid, sig) {
        tracing::debug!(pid = pid.as_raw_nonzero().get(), error = %e, "signal to a child's process group");
    }
}

/// Sends `sig` to the child `pid` alone (one that shares our process group).
pub(crate) fn signal_process(pid: Option<u32>, sig: Signal) {
    let Some(pid) = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::kill_process(pid, sig) {
        tracing::debug!(pid = pid.as_raw_nonzero().get(), error = %e, "signal to a child");
    }
}

/// The signal of a number we forward (SIGINT, SIGTERM) or escalate to.
pub(crate) fn signal_of(signo: i32) -> Signal {
    match signo {
        2 => Signal::INT,
        9 => Signal::KILL,
        _ => Signal::TERM,
    }
}

/// A signal's usual name, for messages.
pub(crate) fn signal_name(signo: i32) -> &'static str {
    match signo {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

/// `exit status 3` or `killed by signal 9 (SIGKILL)`.
pub(crate) fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s} ({})", signal_name(s)),
        _ => "ended without a status".into(),
    }
}

/// The status a shell would report: the exit code, or 128 + the signal.
pub(crate) fn shell_status(status: &ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c & 0xff).unwrap_or(1),
        (None, Some(s)) => u8::try_from(128 + (s & 0x7f)).unwrap_or(255),
        _ => 1,
    }
}

/// SIGINT and SIGTERM as a stream of signal numbers.
pub(crate) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals")
    }
}

impl Signals {
    /// Installs the handlers (from then on the signals no longer kill this
    /// process: the caller decides).
    pub(crate) fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// The next SIGINT (2) or SIGTERM (15).
    pub(crate) async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => 2,
            _ = self.term.recv() => 15,
        }
    }
}
