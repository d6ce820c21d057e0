//! Every key name of a dataset and its sessions, in one place.
//!
//! ```text
//! <path>/20261124T231539.120533Z-4f2a9c01-grid/    a dataset folder
//!     manifest.json                                 written last by `new`, removed last by `destroy`
//!     data.msgpack                                  one MessagePack array of the elements
//!     destroying.lock                               the lock `destroy` holds while it runs (workers stop when they see it)
//!     sessions/<session-id>/
//!         session.json                              the session document
//!         claims/<s>/<i>                            one object per handed-out element, i zero-padded to the session's width,
//!                                                   s its first digits but the last two (a folder per 100 indices)
//!         full/<k>                                  block k (indices k*1000 .. k*1000+999) seen fully claimed
//!         full/exhausted                            written once a worker knew every element claimed (beside the
//!                                                   block markers, so the one listing of them tells a worker in the tail)
//!         workers/<w>.json                          each worker's own progress summary (for stat)
//!         done/<s>/<i>                              leased sessions: element i completed
//!         failed/<s>/<i>                            leased sessions: element i failed for good
//!         completed                                 leased sessions: written once every element is completed or failed
//! ```

use cloudmux_core::{Result, UPath};

/// The manifest's name in a dataset folder.
pub const MANIFEST: &str = "manifest.json";
/// The data file's default name.
pub const DATA: &str = "data.msgpack";
/// The folder of sessions.
pub const SESSIONS: &str = "sessions";
/// The path whose lock `destroy` holds (the lock object is `destroying.lock`).
pub const DESTROYING: &str = "destroying";
/// The session document's name in a session folder.
pub const SESSION_DOC: &str = "session.json";
/// The claims folder of a session.
pub const CLAIMS: &str = "claims";
/// The block-marker folder of a session.
pub const FULL: &str = "full";
/// The exhausted marker of a session.
pub const EXHAUSTED: &str = "exhausted";
/// The worker-summary folder of a session.
pub const WORKERS: &str = "workers";
/// Leased sessions: completion markers.
pub const DONE: &str = "done";
/// Leased sessions: failure markers.
pub const FAILED: &str = "failed";
/// Leased sessions: written once every element is completed or failed.
pub const COMPLETED: &str = "completed";

/// Claims per block marker (`full/<k>` covers indices `k*BLOCK..(k+1)*BLOCK`).
pub const BLOCK: usize = 1000;

/// The paths of one dataset.
#[derive(Debug, Clone)]
pub struct DatasetLayout {
    root: UPath,
}

impl DatasetLayout {
    /// The layout of the dataset folder `root`.
    pub fn new(root: UPath) -> Self {
        DatasetLayout { root }
    }

    /// The dataset folder.
    pub fn root(&self) -> &UPath {
        &self.root
    }

    /// `manifest.json`.
    ///
    /// # Errors
    /// Never for a valid root; key-rule errors otherwise.
    pub fn manifest(&self) -> Result<UPath> {
        self.root.join(MANIFEST)
    }

    /// The data file named `name` (from the manifest).
    ///
    /// # Errors
    /// `InvalidInput` for a name that breaks the key rules.
    pub fn data(&self, name: &str) -> Result<UPath> {
        self.root.join(name)
    }

    /// The path whose lock `destroy` takes.
    ///
    /// # Errors
    /// Never for a valid root.
    pub fn destroying(&self) -> Result<UPath> {
        self.root.join(DESTROYING)
    }

    /// The folder of all sessions.
    ///
    /// # Errors
    /// Never for a valid root.
    pub fn sessions(&self) -> Result<UPath> {
        self.root.join(SESSIONS)
    }

    /// The layout of one session.
    ///
    /// # Errors
    /// `InvalidInput` for a session id that breaks the key rules.
    pub fn session(&self, id: &str) -> Result<SessionLayout> {
        Ok(SessionLayout {
            dir: self.sessions()?.join(id)?,
        })
    }
}

/// The paths of one session.
#[derive(Debug, Clone)]
pub struct SessionLayout {
    dir: UPath,
}

impl SessionLayout {
    /// The session folder.
    pub fn dir(&self) -> &UPath {
        &self.dir
    }

    /// The session id (the folder's name).
    pub fn id(&self) -> &str {
        self.dir.name()
    }

    /// `session.json`.
    ///
    /// # Errors
    /// Never for a valid session folder.
    pub fn doc(&self) -> Result<UPath> {
        self.dir.join(SESSION_DOC)
    }

    /// The claims folder.
    ///
    /// # Errors
    /// Never for a valid session folder.
    pub fn claims(&self) -> Result<UPath> {
        self.dir.join(CLAIMS)
    }

    /// The block-marker folder.
    ///
    /// # Errors
    /// Never for a valid session folder.
    pub fn full(&self) -> Result<UPath> {
        self.dir.join(FULL)
    }

    /// The marker of block `k`.
    ///
    /// # Errors
    /// Never for a valid session folder.
    pub fn full_block(&self, k: usize) -> Result<UPath> {
        self.full()?.join(&format!("{k:06}"))
    }

    /// The exhausted marker (among the block markers).
    ///
    /// # Errors
    /// Never for a valid session folder.
    pub fn exhausted(&self) -> Result<UPath> {
        self.full()?.join(EXHAUSTED)
    }

    /// Leased sessions: the completion markers' folder.
    ///
    /// # Errors
    /// Never for a valid session folder.
    pub fn done(&self) -> Result<UPath> {
        self.dir.join(DONE)
    }

    /// Leased sessions: the failure markers' folder.
    ///
    /// # Errors
    /// Never for a valid session folder.
    pub fn failed(&self) -> Result<UPath> {
        self.dir.join(FAILED)
    }

    /// Leased sessions: the marker written once everything is completed or failed.
    ///
    /// # Errors
    /// Never for a valid session folder.
    pub fn completed(&self) -> Result<UPath> {
        self.dir.join(COMPLETED)
    }

    /// The worker-summary folder.
    ///
    /// # Errors
    /// Never for a valid session folder.
    pub fn workers(&self) -> Result<UPath> {
        self.dir.join(WORKERS)
    }

    /// One worker's summary object, from its id and a per-instance suffix.
    ///
    /// # Errors
    /// Never: the name is made safe.
    pub fn worker_summary(&self, worker: &str, instance: &str) -> Result<UPath> {
        self.workers()?
            .join(&format!("{}-{instance}.json", safe_name(worker)))
    }
}

/// Indices per claim folder. Writes spread over one folder (one key prefix)
/// per 100 indices: S3 accepts about 3,500 writes per second per prefix,
/// and a thousand workers claim faster than that.
pub const SHARD: usize = 100;

/// The claim object name of index `i`, relative to the claims folder:
/// `<s>/<i>`, with `i` zero-padded to `width` digits and `s` its first
/// `width - 2` digits (the folder of its 100 indices). Sessions of at most
/// 100 elements have no folder level. Names sort in index order, so one
/// listing of the claims folder with `start_after` walks indices in order.
pub fn claim_name(i: usize, width: usize) -> String {
    if width > 2 {
        format!("{:0sw$}/{i:0width$}", i / SHARD, sw = width - 2)
    } else {
        format!("{i:0width$}")
    }
}

/// The key prefix, relative to the claims folder, of the claim names whose
/// first `digits` digits are those of `i`.
pub fn claim_prefix(i: usize, width: usize, digits: usize) -> String {
    let full = format!("{i:0width$}");
    if width <= 2 {
        return full[..digits].to_string();
    }
    let shard = &full[..width - 2];
    if digits <= width - 2 {
        shard[..digits].to_string()
    } else {
        format!("{shard}/{}", &full[..digits])
    }
}

/// Digits needed for indices `0..count`.
pub fn claim_width(count: usize) -> usize {
    count.saturating_sub(1).max(1).to_string().len()
}

/// The index of a claim object (or marker) from its key: the key must end
/// with exactly the [`claim_name`] of an index below `count`. Anything else
/// (`+5`, `05.tmp`, a claim in the wrong folder) is not a claim. Done on
/// bytes: workers in the tail parse thousands of keys per listing.
pub fn claim_index(key: &str, width: usize, count: usize) -> Option<usize> {
    let k = key.as_bytes();
    if k.len() <= width || k[k.len() - width - 1] != b'/' {
        return None;
    }
    let digits = &k[k.len() - width..];
    let i = digits.iter().try_fold(0usize, |acc, d| {
        d.is_ascii_digit()
            .then(|| acc.checked_mul(10)?.checked_add(usize::from(d - b'0')))
            .flatten()
    })?;
    if i >= count {
        return None;
    }
    if width > 2 {
        // The folder must be the first digits of the name, and be its own segment.
        let sw = width - 2;
        let end = k.len() - width - 1;
        if end < sw || k[end - sw..end] != digits[..sw] || (end > sw && k[end - sw - 1] != b'/') {
            return None;
        }
    }
    Some(i)
}

/// A name made safe as one key segment: `[A-Za-z0-9._-]`, at most 80
/// characters, not starting with `.`.
pub fn safe_name(s: &str) -> String {
    let mut t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if t.is_empty() || t.starts_with('.') {
        t.insert(0, '_');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_keys_parse_by_width_and_count() {
        assert_eq!(
            claim_index("d/sessions/s/claims/000/00042", 5, 100),
            Some(42)
        );
        assert_eq!(claim_index("d/claims/042/04217", 5, 100_000), Some(4217));
        assert_eq!(claim_index("claims/9", 1, 10), Some(9));
        assert_eq!(claim_index("claims/42", 2, 100), Some(42));
        assert_eq!(claim_index("d/claims/000/0042", 5, 100), None, "too short");
        assert_eq!(claim_index("d/claims/000/000042", 5, 100), None, "too long");
        assert_eq!(claim_index("d/claims/000/00a42", 5, 100), None);
        assert_eq!(claim_index("d/claims/000/+0042", 5, 100), None);
        assert_eq!(claim_index("d/claims/00042", 5, 100), None, "no folder");
        assert_eq!(
            claim_index("d/claims/001/00042", 5, 100),
            None,
            "wrong folder"
        );
        assert_eq!(
            claim_index("d/claims/x001/00142", 5, 1000),
            None,
            "folder not a segment"
        );
        assert_eq!(claim_index("000/00042", 5, 100), Some(42));
        assert_eq!(claim_index("00042", 5, 100), None, "no separator");
        assert_eq!(
            claim_index("d/claims/001/00142", 5, 100),
            None,
            "beyond the count"
        );
        assert_eq!(claim_name(42, 5), "000/00042");
        assert_eq!(claim_name(4217, 5), "042/04217");
        assert_eq!(claim_name(7, 2), "07");
        assert_eq!(claim_prefix(4217, 5, 2), "04");
        assert_eq!(claim_prefix(4217, 5, 3), "042");
        assert_eq!(claim_prefix(4217, 5, 4), "042/0421");
        assert_eq!(claim_prefix(42, 2, 1), "4");
        // Names sort in index order.
        let names: Vec<String> = (0..1200).map(|i| claim_name(i, 4)).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(claim_width(1), 1);
        assert_eq!(claim_width(10), 1);
        assert_eq!(claim_width(11), 2);
        assert_eq!(claim_width(100_000), 5);
    }

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_name("host/1/main"), "host_1_main");
        assert_eq!(safe_name(".x"), "_.x");
        assert_eq!(safe_name(""), "_");
        assert_eq!(safe_name(&"é".repeat(100)).len(), 80);
    }
}
