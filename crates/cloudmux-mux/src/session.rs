//! Session documents and claim bodies.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The session format version this build writes and reads.
pub const SESSION_FORMAT: u32 = 2;

/// How a session hands out its elements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum SessionMode {
    /// Each element is handed out exactly once, to the first worker whose
    /// claim is created. A worker that dies holding an element loses it.
    Once,
    /// Each element is held under a lease renewed by heartbeat, completed
    /// by an acknowledgement, and handed out again when its lease expires,
    /// up to a number of attempts (see [`crate::lease`]).
    Leased(LeaseTerms),
}

impl SessionMode {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            SessionMode::Once => "once",
            SessionMode::Leased(_) => "leased",
        }
    }

    /// The lease terms of a leased session.
    pub fn lease(&self) -> Option<&LeaseTerms> {
        match self {
            SessionMode::Once => None,
            SessionMode::Leased(t) => Some(t),
        }
    }
}

/// The terms of a leased session, recorded in its session document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTerms {
    /// How long a claim is held without a heartbeat, in milliseconds.
    pub lease_ms: u64,
    /// Failed attempts (expired leases and reported failures) after which an
    /// element is recorded as failed and not handed out again.
    pub max_attempts: u32,
    /// Stop handing out new elements once this many elements have failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed: Option<u64>,
}

impl LeaseTerms {
    /// The lease as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
}

/// Options of [`Multiplexer::create_read_session_with`](crate::Multiplexer::create_read_session_with).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// `Some(lease)`: a leased session (crash-safe); `None`: hand each
    /// element out exactly once (the default).
    pub lease: Option<Duration>,
    /// Failed attempts before an element is recorded as failed (leased
    /// sessions; default 3).
    pub max_attempts: Option<u32>,
    /// Stop handing out new elements once this many have failed (leased
    /// sessions; default: never stop).
    pub max_failed: Option<u64>,
}

impl SessionOptions {
    /// A leased session with this lease.
    pub fn leased(lease: Duration) -> Self {
        SessionOptions {
            lease: Some(lease),
            ..Self::default()
        }
    }
    /// Sets the attempt budget.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Sets the failure limit.
    pub fn max_failed(mut self, n: u64) -> Self {
        self.max_failed = Some(n);
        self
    }
}

/// A session's document (`sessions/<id>/session.json`). A worker reads only
/// this and the data file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionDoc {
    /// The format version ([`SESSION_FORMAT`]).
    pub version: u32,
    /// The session id.
    pub session: String,
    /// The number of elements (copied from the manifest).
    pub count: usize,
    /// Digits of the zero-padded claim index.
    pub width: usize,
    /// The data file's name within the dataset folder.
    pub data: String,
    /// The hand-out mode.
    pub mode: SessionMode,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
}

/// The body of a claim object; the [stamp](cloudmux_core::cond::Stamp) adds
/// its nonce and epoch (the attempt number, which is the fencing token).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claim {
    /// Claim format version.
    pub v: u32,
    /// The worker holding (or last holding) the element.
    pub worker: String,
    /// When this attempt started, by the worker's clock, ms since the epoch.
    pub t_ms: u64,
    /// Leased sessions: the lease, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// Leased sessions: the last heartbeat, by the worker's clock (shown to
    /// people; expiry is judged without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed_ms: Option<u64>,
    /// Leased sessions: where the element stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ClaimState>,
    /// Leased sessions: the earlier attempts and how each ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AttemptRecord>,
    /// Leased sessions: attempts from before a `retry-failed`, kept for the
    /// record and no longer counted against the budget.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<AttemptRecord>,
}

impl Claim {
    /// Failed attempts so far (expired leases and reported failures).
    pub fn failures(&self) -> u32 {
        self.history
            .iter()
            .filter(|a| a.outcome != AttemptOutcome::Released)
            .count() as u32
    }
}

/// Where an element of a leased session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimState {
    /// Held by `worker` under a lease.
    Running,
    /// Completed (acknowledged by its holder).
    Done,
    /// Recorded as failed after its attempts ran out: not handed out again.
    Failed,
    /// Given back by its holder (a failure report, or a worker stopping):
    /// another worker may take it at once.
    Released,
}

/// One earlier attempt at an element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The attempt number.
    pub attempt: u64,
    /// Who held it.
    pub worker: String,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Why (a failure report's reason, or what the observer saw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    /// Its lease ran out (the worker died or stalled).
    Expired,
    /// Its worker reported a failure.
    Failed,
    /// Its worker gave it back without failing (it was stopping).
    Released,
}
