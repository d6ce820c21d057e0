//! Session documents and claim bodies.

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
}

impl SessionMode {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            SessionMode::Once => "once",
        }
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
/// its nonce and epoch (the attempt number).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claim {
    /// Claim format version.
    pub v: u32,
    /// The claiming worker's id.
    pub worker: String,
    /// Claim time by the worker's clock, milliseconds since the epoch.
    pub t_ms: u64,
}
