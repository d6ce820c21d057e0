//! The mux id: a readable, versioned string naming a dataset and a session.
//!
//! ```text
//! cmx1:<session-id>@<dataset-url>
//! cmx1:20261124T231539.120533Z-4f2a9c@s3://bucket/jobs/20261124T231500.004211Z-77aa01c3-grid
//! ```
//!
//! - `cmx1` is the format version. Readers refuse other versions with a
//!   clear `InvalidInput` error instead of guessing.
//! - The session id is `[0-9A-Za-z._-]`, so the first `@` ends it; the
//!   dataset URL is everything after it, so URLs may contain any character.
//! - The id holds no credentials: a worker resolves the URL with its own
//!   ambient credentials (environment, instance role, ...).

use std::fmt;
use std::str::FromStr;

use cloudmux_core::{Error, Result};

/// The version prefix this build writes and reads.
pub const MUX_ID_PREFIX: &str = "cmx1:";

/// A parsed mux id. Display and `FromStr` round-trip.
///
/// ```
/// use cloudmux_mux::MuxId;
/// let id: MuxId = "cmx1:s1@mem://x/ds".parse()?;
/// assert_eq!(id.session(), "s1");
/// assert_eq!(id.dataset_url(), "mem://x/ds");
/// assert_eq!(id.to_string(), "cmx1:s1@mem://x/ds");
/// assert!("cmx9:s1@mem://x/ds".parse::<MuxId>().is_err());
/// # Ok::<_, cloudmux_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MuxId {
    session: String,
    dataset_url: String,
}

/// True for a valid session id: 1 to 128 characters of `[0-9A-Za-z._-]`,
/// not starting with `.`.
pub fn valid_session_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The one normal form of a dataset URL, so that a mux id names its dataset
/// the same way however the URL was spelled: local paths (plain, relative,
/// `file://`, with `.`, `..` or a trailing `/`) become `file:///abs/path`;
/// other URLs lose trailing slashes.
pub fn normalize_dataset_url(url: &str) -> String {
    let is_local = !url.contains("://") || url.starts_with("file://");
    if is_local && let Ok(p) = cloudmux_core::UPath::parse(url) {
        return p.url();
    }
    let t = url.trim_end_matches('/');
    if t.ends_with(':') || t.is_empty() {
        url.to_string()
    } else {
        t.to_string()
    }
}

/// True when two dataset URLs name the same dataset.
pub fn same_dataset(a: &str, b: &str) -> bool {
    normalize_dataset_url(a) == normalize_dataset_url(b)
}

impl MuxId {
    /// Builds an id from its parts.
    ///
    /// # Errors
    /// `InvalidInput` for a bad session id or an empty URL.
    pub fn new(session: impl Into<String>, dataset_url: impl Into<String>) -> Result<Self> {
        let session = session.into();
        let dataset_url = dataset_url.into();
        if !valid_session_id(&session) {
            return Err(Error::invalid(
                "mux id",
                format!(
                    "invalid session id '{session}' (expected [0-9A-Za-z._-], 1 to 128 characters)"
                ),
            ));
        }
        if dataset_url.is_empty() {
            return Err(Error::invalid("mux id", "the dataset URL is empty"));
        }
        if dataset_url.chars().any(|c| c.is_control()) {
            return Err(Error::invalid(
                "mux id",
                "the dataset URL contains control characters",
            ));
        }
        Ok(MuxId {
            session,
            dataset_url: normalize_dataset_url(&dataset_url),
        })
    }

    /// The session id.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The dataset folder's URL.
    pub fn dataset_url(&self) -> &str {
        &self.dataset_url
    }
}

impl fmt::Display for MuxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{MUX_ID_PREFIX}{}@{}", self.session, self.dataset_url)
    }
}

impl FromStr for MuxId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let Some(rest) = s.strip_prefix(MUX_ID_PREFIX) else {
            if let Some((ver, _)) = s.split_once(':')
                && ver.starts_with("cmx")
            {
                return Err(Error::invalid(
                    "mux id",
                    format!("unsupported mux id version '{ver}' (this build reads cmx1)"),
                ));
            }
            return Err(Error::invalid(
                "mux id",
                "not a cloudmux mux id (expected cmx1:<session>@<dataset-url>)",
            ));
        };
        let Some((session, url)) = rest.split_once('@') else {
            return Err(Error::invalid(
                "mux id",
                "missing '@' between the session id and the dataset URL",
            ));
        };
        MuxId::new(session, url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudmux_core::ErrorKind;

    #[test]
    fn round_trips_any_url() {
        for url in [
            "s3://b/p/20261124T000000.000000Z-aa-tag",
            "file:///tmp/with space/x@y#z",
            "az://acct/cont/a/b",
        ] {
            let id = MuxId::new("20261124T000000.000000Z-abc", url).unwrap();
            let back: MuxId = id.to_string().parse().unwrap();
            assert_eq!(back, id);
            assert_eq!(back.dataset_url(), url);
        }
    }

    #[test]
    fn malformed_ids_are_typed_and_explained() {
        let cases = [
            ("", "not a cloudmux mux id"),
            ("hello", "not a cloudmux mux id"),
            ("gAN9cQAu", "not a cloudmux mux id"),
            ("cmx2:s@mem://x", "unsupported mux id version 'cmx2'"),
            ("cmx1:s", "missing '@'"),
            ("cmx1:@mem://x", "invalid session id"),
            ("cmx1:a/b@mem://x", "invalid session id"),
            ("cmx1:s@", "dataset URL is empty"),
        ];
        for (input, msg) in cases {
            let e = input.parse::<MuxId>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{input}");
            assert!(e.to_string().contains(msg), "{input}: {e}");
        }
    }
}
