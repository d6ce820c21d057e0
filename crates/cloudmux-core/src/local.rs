//! The local-filesystem backend.
//!
//! [`LocalFs`] maps key `a/b/c` to the file `ROOT/a/b/c`.
//!
//! # Protocol
//! - **Every write** goes to a temporary file (`.cmx-tmp-*`) in the target's
//!   directory first, so readers never see partial content. Directories are
//!   created only when a write finds them missing.
//! - **Create** publishes the temporary file with `link(2)`, which fails if
//!   the target exists: atomic across processes, no lock taken. This keeps the
//!   Multiplexer's claim path lock-free.
//! - **Overwrite, update (compare-and-swap) and delete** take an exclusive
//!   `flock(2)` on the directory's `.cmx-lock` file, check the current version
//!   (update), then `rename(2)` or `unlink(2)`. The lock file is verified to
//!   still be linked after locking, so pruning a directory is safe.
//! - **Versions** are a 128-bit hash (xxh3) of the content, like S3's ETag
//!   (an MD5): identical bytes give identical tokens.
//! - **Directories** exist only while a file lies below them: deleting the
//!   last file of a directory removes the directory, as on object storage,
//!   but never the directory the store was opened at (its prune floor). A
//!   delete removes the lock file again before it releases the lock and then
//!   tries `rmdir(2)`, which fails at once unless the directory is empty: no
//!   directory scan per delete.
//! - Names starting with `.cmx-` are reserved and never listed.
//!
//! # Symbolic links and special files
//! Only regular files are objects, and nothing leaves the store through a
//! symbolic link:
//! - The root is resolved once, when the store is opened: it may be, or lie
//!   below, a symbolic link. So may the directories down to the prune floor
//!   (a path opened with [`UPath::parse`](crate::UPath::parse) is a store at
//!   `/` whose floor is the directory given).
//! - Below that, symbolic links are never followed. A listing neither reports
//!   a link nor descends into one. A key whose path crosses a link, or that
//!   names one, is refused as `InvalidInput` by every operation: reads,
//!   creates, overwrites, updates and deletes. Links are left in place.
//! - FIFOs, sockets and devices are never opened: listings skip them and
//!   every operation on such a key is `InvalidInput` ("not a regular file").
//!
//! The checks go path by path (`lstat` of each directory below the trusted
//! part, files opened with `O_NOFOLLOW | O_NONBLOCK` where the platform's
//! values are known), not through directory handles. They hold against links
//! and special files present in the tree, as a user may create them; a
//! process that swaps a directory for a link while an operation runs can
//! race them.
//!
//! # Waits
//! The directory lock is only ever tried, never waited for in the kernel.
//! Tasks of one process take turns at a directory through an in-process
//! queue, so they never poll for each other; while another process holds
//! the lock, the operation polls with growing pauses on the store's
//! [`Clock`] for up to [`LocalFs::with_lock_wait`] (10 s by default), then
//! fails as `Transient` ("held by another process"). A process stopped while
//! holding a lock therefore delays writers to its directory by that bound
//! instead of hanging them. Creates take no lock and never wait.
//!
//! # Listing
//! Keys come in byte order, one directory at a time. A directory has no
//! sorted index, so its names are read whole and sorted:
//! - The pages after the first of a listing (those given its `next` token)
//!   are served from a sorted snapshot of each large directory (2,000 names
//!   or more) taken after the listing began and kept for up to 30 s. Paging
//!   through a directory so costs time linear in its size, even while it
//!   changes.
//! - A first page (no token; a page after `start_after` begins a listing
//!   too) shows each directory as it is: a changing directory is read whole
//!   (but not sorted) for it. A directory at rest, whose `ctime` was older
//!   than about 50 ms when it was read (3 s on filesystems that keep whole
//!   seconds) and has not changed since, is served from its snapshot.
//!
//! So a first page shows each directory as it was when read, as on object
//! stores. A later page shows every key that existed when the listing began
//! and still exists (each key is checked as it is listed, so deleted ones
//! are left out); a key created after the first page may be missing from the
//! later pages, as if the listing had been made in one go when it began.
//! Snapshots rest on the kernel changing a directory's `ctime` with every
//! entry added or removed, as local filesystems do. Deleting a large
//! directory by asking for its first page again and again reads it whole for
//! every page; continuing by the token does not.
//!
//! Tokens are opaque: the last key listed and when the listing began, which
//! only this process can use (elsewhere a token counts as the key alone).
//!
//! # Leftovers
//! A writer killed between writing its temporary file and publishing it
//! leaves the temporary file behind; pruning leaves a lone `.cmx-lock` or an
//! empty directory behind when it races or is interrupted. None of them is
//! listed. [`LocalFs::stale_temporaries`] reports old temporaries below a key
//! prefix and [`LocalFs::remove_leftovers`] removes them together with lock
//! files of empty directories and empty directories.
//!
//! # Threads
//! Small operations (bodies up to [`LocalFs::with_inline_limit`], 64 KiB by
//! default) run on the calling task: a handful of system calls costs less
//! than a hand-off to tokio's blocking pool. Larger bodies, `fsync`s and
//! listings run on the blocking pool.
//!
//! # Limits
//! Atomicity rests on `link`, `rename` and `flock` being atomic and honoured
//! by every process, which holds on one machine's local filesystems (ext4,
//! xfs, btrfs, tmpfs, APFS). On network filesystems it may not: NFS before v4
//! does not carry `flock` between clients, and a `link` whose reply is lost
//! may report `EEXIST` for a link that succeeded; SMB/CIFS and FUSE mounts
//! vary. Use an object store to coordinate machines; use this backend for one
//! machine's processes (and set the inline limit to 0 on a mount that can
//! stall, so that a stalled call blocks a pool thread and not the runtime).
//! A key and a longer key under it (`a` and `a/b`) cannot coexist here,
//! unlike on object stores: the second write is `InvalidInput`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, ErrorKind, Result, io_kind};
use crate::store::{
    Capabilities, GetResult, ListPage, ListRequest, ObjectMeta, PutMode, PutResult, Store, Version,
    page_from_sorted,
};

/// Prefix of every name this backend reserves (temporary files, lock files).
pub const RESERVED_PREFIX: &str = ".cmx-";
const LOCK_NAME: &str = ".cmx-lock";
const TMP_PREFIX: &str = ".cmx-tmp-";

/// How long a write waits for a directory lock held by someone else, unless
/// set with [`LocalFs::with_lock_wait`].
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Bodies up to this size are written and read on the calling task, unless
/// set with [`LocalFs::with_inline_limit`].
pub const DEFAULT_INLINE_LIMIT: usize = 64 * 1024;

/// The longest pause between two tries of a busy directory lock.
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(50);

/// Directories with fewer entries are re-read for each page (cheap).
const SNAPSHOT_MIN_ENTRIES: usize = 2_000;
/// At most this many entries are kept in snapshots, all directories together.
const SNAPSHOT_MAX_ENTRIES: usize = 4_000_000;
const SNAPSHOT_MAX_DIRS: usize = 64;
const SNAPSHOT_TTL: Duration = Duration::from_secs(30);
/// A directory unchanged for this long is at rest: any later change gets a
/// later `ctime`, however coarse the kernel's timestamp clock (a tick is at
/// most 10 ms).
const SETTLED_FINE: Duration = Duration::from_millis(50);
/// The same for filesystems that store whole seconds (a zero nanosecond part).
const SETTLED_COARSE: Duration = Duration::from_secs(3);

/// `O_NOFOLLOW | O_NONBLOCK` where their values are known; elsewhere 0 and
/// the `lstat` checks before each open stand alone.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    any(target_arch = "x86_64", target_arch = "x86", target_arch = "riscv64")
))]
const NOFOLLOW_NONBLOCK: i32 = 0x20000 | 0x800;
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    any(target_arch = "aarch64", target_arch = "arm")
))]
const NOFOLLOW_NONBLOCK: i32 = 0x8000 | 0x800;
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
const NOFOLLOW_NONBLOCK: i32 = 0x100 | 0x4;
#[cfg(not(any(
    all(
        any(target_os = "linux", target_os = "android"),
        any(
            target_arch = "x86_64",
            target_arch = "x86",
            target_arch = "riscv64",
            target_arch = "aarch64",
            target_arch = "arm"
        )
    ),
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
const NOFOLLOW_NONBLOCK: i32 = 0;

const SYMLINK_PARENT: &str =
    "a parent directory of this key is a symbolic link, which the local backend does not follow";
const SYMLINK_KEY: &str =
    "a symbolic link exists at this key, which the local backend does not follow";
const NOT_REGULAR: &str =
    "not a regular file (a FIFO, socket or device), which the local backend never opens";
const PARENT_FILE: &str = "a parent of this key is a file";
const DIR_AT_KEY: &str = "a directory exists at this key";

/// A store rooted at a local directory.
///
/// ```
/// # tokio_test::block_on(async {
/// use cloudmux_core::{LocalFs, Store, PutMode};
/// let dir = tempfile::tempdir().unwrap();
/// let store = LocalFs::new(dir.path())?;
/// let v1 = store.put("x/counter", "1".into(), PutMode::Create).await?.version;
/// store.put("x/counter", "2".into(), PutMode::Update(v1.clone())).await?;
/// let stale = store.put("x/counter", "3".into(), PutMode::Update(v1)).await;
/// assert!(stale.unwrap_err().is_precondition());
/// # Ok::<_, cloudmux_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LocalFs {
    /// The root, resolved (no symbolic link in it).
    root: Arc<PathBuf>,
    /// The root as given (made absolute), to place a prune floor given
    /// relative to it.
    given_root: Arc<PathBuf>,
    /// Empty directories are pruned only strictly below this one.
    floor: Arc<PathBuf>,
    /// The floor as a key, when it lies below the root: the directories on
    /// the way to it are trusted (they may be symbolic links).
    floor_key: Option<Arc<str>>,
    sync: bool,
    lock_wait: Duration,
    inline_limit: usize,
    clock: Arc<dyn Clock>,
    snapshots: Arc<Snapshots>,
}

/// Stale temporary files found by [`LocalFs::stale_temporaries`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaleTemporaries {
    /// How many.
    pub count: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// What [`LocalFs::remove_leftovers`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemovedLeftovers {
    /// Stale temporary files.
    pub temporaries: u64,
    /// Their total size in bytes.
    pub temporary_bytes: u64,
    /// Lock files (`.cmx-lock`) of directories that held nothing else.
    pub lock_files: u64,
    /// Empty directories.
    pub directories: u64,
}

impl LocalFs {
    /// A store rooted at `root`, which is created if missing. The root must be
    /// absolute or is made so against the current directory. It is resolved
    /// once, here: it may be, or lie below, a symbolic link.
    ///
    /// # Errors
    /// `InvalidInput` if the root exists and is not a directory;
    /// `PermissionDenied` if it cannot be created.
    pub fn new(root: impl AsRef<Path>) -> Result<Arc<Self>> {
        let root = root.as_ref();
        let given = if root.is_absolute() {
            root.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| io_err("open", root.display().to_string(), e))?
                .join(root)
        };
        let shown = || given.display().to_string();
        if given.exists() && !given.is_dir() {
            return Err(Error::invalid("open", "not a directory").with_path(shown()));
        }
        fs::create_dir_all(&given).map_err(|e| io_err("open", shown(), e))?;
        let resolved = fs::canonicalize(&given).map_err(|e| io_err("open", shown(), e))?;
        let root = Arc::new(resolved);
        Ok(Arc::new(LocalFs {
            floor: root.clone(),
            floor_key: Some(Arc::from("")),
            root,
            given_root: Arc::new(given),
            sync: false,
            lock_wait: DEFAULT_LOCK_WAIT,
            inline_limit: DEFAULT_INLINE_LIMIT,
            clock: crate::clock::system(),
            snapshots: Arc::new(Snapshots::default()),
        }))
    }

    fn with(self: Arc<Self>, f: impl FnOnce(&mut LocalFs)) -> Arc<Self> {
        let mut me = (*self).clone();
        f(&mut me);
        Arc::new(me)
    }

    /// Never prune directories at or above `floor` (default: the root), so a
    /// directory a user opened survives the removal of everything in it. The
    /// directories down to the floor are trusted: they may be symbolic links.
    pub fn with_prune_floor(self: Arc<Self>, floor: impl AsRef<Path>) -> Arc<Self> {
        let floor = floor.as_ref();
        // A floor given below the unresolved root moves with the root.
        let floor = match floor.strip_prefix(&*self.given_root) {
            Ok(rel) if rel.as_os_str().is_empty() => self.root.to_path_buf(),
            Ok(rel) => self.root.join(rel),
            Err(_) => floor.to_path_buf(),
        };
        let floor_key = floor.strip_prefix(&*self.root).ok().and_then(|rel| {
            let parts: Option<Vec<&str>> =
                rel.components().map(|c| c.as_os_str().to_str()).collect();
            parts.map(|p| Arc::from(p.join("/")))
        });
        self.with(|me| {
            me.floor = Arc::new(floor);
            me.floor_key = floor_key;
        })
    }

    /// Also `fsync` each written file and its directory before publishing, for
    /// durability across power loss (slower; off by default).
    pub fn with_sync(self: Arc<Self>, sync: bool) -> Arc<Self> {
        self.with(|me| me.sync = sync)
    }

    /// How long an overwrite, update or delete waits for its directory's lock
    /// while another process holds it before failing as `Transient`
    /// ([`DEFAULT_LOCK_WAIT`] unless set; zero tries once).
    pub fn with_lock_wait(self: Arc<Self>, wait: Duration) -> Arc<Self> {
        self.with(|me| me.lock_wait = wait)
    }

    /// Bodies up to `bytes` are written and read on the calling task instead
    /// of tokio's blocking pool ([`DEFAULT_INLINE_LIMIT`] unless set; 0 sends
    /// every operation to the pool).
    pub fn with_inline_limit(self: Arc<Self>, bytes: usize) -> Arc<Self> {
        self.with(|me| me.inline_limit = bytes)
    }

    /// The clock lock waits run on, and that ages of leftovers are measured by.
    pub fn with_clock(self: Arc<Self>, clock: Arc<dyn Clock>) -> Arc<Self> {
        self.with(|me| me.clock = clock)
    }

    /// The root directory (resolved).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How long writes wait for a directory lock.
    pub fn lock_wait(&self) -> Duration {
        self.lock_wait
    }

    /// Reports the temporary files below the key `prefix` (a string prefix,
    /// as in listings) last modified more than `older_than` ago on the
    /// store's clock. A writer's temporary file lives for milliseconds, so
    /// old ones were left by writers that were killed. Symbolic links are
    /// not followed.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed prefix; I/O errors of the walk.
    pub async fn stale_temporaries(
        &self,
        prefix: &str,
        older_than: Duration,
    ) -> Result<StaleTemporaries> {
        let prefix = self.leftover_prefix(prefix)?;
        let cutoff = self.cutoff(older_than);
        self.blocking(move |me| {
            let mut c = Counts::default();
            me.leftovers(&prefix, cutoff, false, &mut c)?;
            Ok(StaleTemporaries {
                count: c.temporaries,
                bytes: c.temporary_bytes,
            })
        })
        .await
    }

    /// Removes leftovers below the key `prefix` (a string prefix, as in
    /// listings): temporary files last modified more than `older_than` ago
    /// on the store's clock, the lock files of directories that hold nothing
    /// else, and empty directories. Then, like a delete, it prunes the
    /// emptied parents of the prefix's directory. Directories at or above the
    /// prune floor stay, symbolic links are not followed, and a directory
    /// whose lock is held is left alone.
    ///
    /// An `older_than` of a few minutes or more cannot race a live writer; a
    /// writer whose temporary file is removed under it fails as `Transient`
    /// and writes nothing.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed prefix; I/O errors of the walk.
    pub async fn remove_leftovers(
        &self,
        prefix: &str,
        older_than: Duration,
    ) -> Result<RemovedLeftovers> {
        let prefix = self.leftover_prefix(prefix)?;
        let cutoff = self.cutoff(older_than);
        self.blocking(move |me| {
            let mut c = Counts::default();
            me.leftovers(&prefix, cutoff, true, &mut c)?;
            Ok(RemovedLeftovers {
                temporaries: c.temporaries,
                temporary_bytes: c.temporary_bytes,
                lock_files: c.lock_files,
                directories: c.directories,
            })
        })
        .await
    }

    fn leftover_prefix(&self, prefix: &str) -> Result<String> {
        crate::key::validate_key(prefix.trim_end_matches('/'), true)?;
        Ok(prefix.to_string())
    }

    fn cutoff(&self, older_than: Duration) -> SystemTime {
        self.clock
            .now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        if key.split('/').any(|s| s.starts_with(RESERVED_PREFIX)) {
            return Err(Error::invalid(
                "key",
                format!(
                    "names starting with '{RESERVED_PREFIX}' are reserved by the local backend"
                ),
            )
            .with_path(key));
        }
        crate::key::validate_key(key, false)?;
        Ok(self.root.join(key))
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&LocalFs) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| Error::new(ErrorKind::Other, "local").with_message(e.to_string()))?
    }

    /// Runs `f` here (`inline`) or on the blocking pool.
    async fn run<T, F>(&self, inline: bool, f: F) -> Result<T>
    where
        F: FnOnce(&LocalFs) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        if inline {
            f(self)
        } else {
            self.blocking(f).await
        }
    }

    /// Runs `step` until it is done, pausing on the clock while it reports a
    /// busy directory lock, for up to the lock wait; then `timeout` decides.
    ///
    /// Each try first passes this process's gate for the directory, a fair
    /// queue held only while a step runs, so tasks of one process take turns
    /// without polling; only a lock held by another process is polled for.
    async fn with_lock_waits<S, T>(
        &self,
        inline: bool,
        mut state: S,
        step: fn(&LocalFs, &mut S) -> Result<Step<T>>,
        timeout: fn(&LocalFs, S) -> Result<T>,
    ) -> Result<T>
    where
        S: Locking + Send + 'static,
        T: Send + 'static,
    {
        let start = self.clock.now();
        let mut pause = Duration::from_millis(1);
        loop {
            let gate = gate_of(state.lock_dir()).lock_owned().await;
            let (s, r) = if inline {
                let r = step(self, &mut state);
                (state, r)
            } else {
                let me = self.clone();
                tokio::task::spawn_blocking(move || {
                    let r = step(&me, &mut state);
                    (state, r)
                })
                .await
                .map_err(|e| Error::new(ErrorKind::Other, "local").with_message(e.to_string()))?
            };
            drop(gate);
            state = s;
            if let Step::Done(t) = r? {
                return Ok(t);
            }
            let waited = self.clock.now().duration_since(start).unwrap_or_default();
            if waited >= self.lock_wait {
                return timeout(self, state);
            }
            // Jittered, so that contenders do not retry in step.
            let p = pause.mul_f64(0.5 + fastrand::f64() / 2.0);
            self.clock.sleep(p.min(self.lock_wait - waited)).await;
            pause = (pause * 2).min(MAX_LOCK_PAUSE);
        }
    }

    fn lock_timeout(&self, op: &'static str, key: &str) -> Error {
        Error::new(ErrorKind::Transient, op)
            .with_path(key)
            .with_message(format!(
                "the directory lock ({LOCK_NAME}) is held by another process; \
                 gave up after {:?}",
                self.lock_wait
            ))
    }

    /// How many leading segments of `key` name directories on the way to the
    /// prune floor, which may be symbolic links.
    fn trusted_segments(&self, key: &str) -> usize {
        let Some(fk) = self.floor_key.as_deref() else {
            return 0;
        };
        key.split('/')
            .zip(fk.split('/').filter(|s| !s.is_empty()))
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// True when the directory with key prefix `dir_key` (ending in `/`) is
    /// on the way to the prune floor.
    fn trusted_dir(&self, dir_key: &str) -> bool {
        let segs = dir_key.trim_end_matches('/').split('/').count();
        !dir_key.is_empty() && self.trusted_segments(dir_key.trim_end_matches('/')) == segs
    }

    /// Checks the directories of `key` (every segment but the last, and only
    /// those below the trusted part) with `lstat`: each must be a directory.
    /// `full` is `root.join(key)`. Gives the index of the first missing one.
    fn check_dirs(&self, full: &Path, key: &str) -> std::result::Result<Option<usize>, Problem> {
        let trusted = self.trusted_segments(key);
        let bytes = full.as_os_str().as_bytes();
        let base = bytes.len() - key.len();
        for (i, (pos, _)) in key.match_indices('/').enumerate() {
            if i < trusted {
                continue;
            }
            let p = Path::new(OsStr::from_bytes(&bytes[..base + pos]));
            match fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => return Err(Problem::Symlink),
                Ok(_) => return Err(Problem::NotDir),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(i)),
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                    return Err(Problem::NotDir);
                }
                Err(e) => return Err(Problem::Io(e)),
            }
        }
        Ok(None)
    }

    /// Creates the directories of `key` from segment `from` on: trusted ones
    /// as `mkdir -p` does, the others one `mkdir` at a time, each checked
    /// not to be a link when it already exists.
    fn make_dirs(&self, full: &Path, key: &str, from: usize) -> std::result::Result<(), Problem> {
        let trusted = self.trusted_segments(key);
        let bytes = full.as_os_str().as_bytes();
        let base = bytes.len() - key.len();
        let at = |end: usize| Path::new(OsStr::from_bytes(&bytes[..end]));
        for (i, (pos, _)) in key.match_indices('/').enumerate().skip(from) {
            let p = at(base + pos);
            if i < trusted {
                fs::create_dir_all(p).map_err(Problem::Io)?;
                continue;
            }
            let mut made = fs::create_dir(p);
            if matches!(&made, Err(e) if e.kind() == io::ErrorKind::NotFound) && i <= trusted {
                // The parent is the root or trusted: make it as `mkdir -p` does.
                let parent = p.parent().unwrap_or(p);
                fs::create_dir_all(parent).map_err(Problem::Io)?;
                made = fs::create_dir(p);
            }
            match made {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    match fs::symlink_metadata(p) {
                        Ok(m) if m.is_dir() => {}
                        Ok(m) if m.file_type().is_symlink() => return Err(Problem::Symlink),
                        Ok(_) => return Err(Problem::NotDir),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            return Err(Problem::Vanished);
                        }
                        Err(e) => return Err(Problem::Io(e)),
                    }
                }
                // A parent was pruned meanwhile: check again from the top.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Problem::Vanished),
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                    return Err(Problem::NotDir);
                }
                Err(e) => return Err(Problem::Io(e)),
            }
        }
        Ok(())
    }

    /// Writes `bytes` to a fresh temporary file in the directory of `key`,
    /// first creating missing directories when `create_dirs`. Without it, a
    /// missing directory is a `Precondition` failure (an update of a key
    /// that does not exist).
    fn prepare_temp(
        &self,
        op: &'static str,
        key: &str,
        path: &Path,
        bytes: &[u8],
        create_dirs: bool,
    ) -> Result<Temp> {
        let dir = path.parent().expect("a key has a parent");
        let missing = || {
            Error::new(ErrorKind::Precondition, op)
                .with_path(key)
                .with_message("the object does not exist")
        };
        let mut force = false;
        for _ in 0..100 {
            let gap = if force {
                Some(0)
            } else {
                match self.check_dirs(path, key) {
                    Ok(g) => g,
                    Err(Problem::NotDir) if !create_dirs => return Err(missing()),
                    Err(p) => return Err(p.into_error(op, key)),
                }
            };
            if let Some(i) = gap {
                if !create_dirs {
                    return Err(missing());
                }
                match self.make_dirs(path, key, i) {
                    Ok(()) => {}
                    Err(Problem::Vanished) => {
                        force = false;
                        continue;
                    }
                    Err(p) => return Err(p.into_error(op, key)),
                }
            }
            match write_temp(dir, bytes, self.sync) {
                Ok(t) => return Ok(t),
                // The directory is missing (its parents are trusted and
                // unchecked), or was pruned since it was checked.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !create_dirs {
                        return Err(missing());
                    }
                    force = true;
                }
                Err(e) => return Err(write_err(op, key, e)),
            }
        }
        Err(Error::new(ErrorKind::Transient, op)
            .with_path(key)
            .with_message("its directory kept vanishing (pruned by concurrent deletes)"))
    }

    fn sync_dir(&self, dir: &Path) {
        if self.sync
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
    }

    /// Whether empty directory `dir` may be removed: strictly below the floor.
    fn prunable(&self, dir: &Path) -> bool {
        dir.starts_with(&*self.floor) && dir != *self.floor && dir != *self.root
    }

    /// Removes the lock file and the directory `dir`, whose lock is held,
    /// if nothing else lies in it. The lock file is removed either way, which
    /// is safe under the lock (whoever opens it next makes a new one): it
    /// spares a directory scan on each delete.
    fn remove_locked_dir(&self, dir: &Path, lock: DirLock) -> bool {
        let _ = fs::remove_file(dir.join(LOCK_NAME));
        let removed = fs::remove_dir(dir).is_ok();
        drop(lock);
        removed
    }

    /// Prunes empty directories from `dir` upwards, trying each lock once;
    /// gives how many were removed.
    fn prune_once(&self, mut dir: PathBuf) -> u64 {
        let mut n = 0;
        while self.prunable(&dir) {
            let Ok(TryLock::Locked(lock)) = DirLock::try_acquire(&dir) else {
                return n;
            };
            if !self.remove_locked_dir(&dir, lock) {
                return n;
            }
            n += 1;
            match dir.parent() {
                Some(p) => dir = p.to_path_buf(),
                None => return n,
            }
        }
        n
    }

    /// Opens the object at `key` for reading: a regular file reached without
    /// crossing a symbolic link. Never opens anything else.
    fn open_object(
        &self,
        op: &'static str,
        key: &str,
        path: &Path,
    ) -> Result<(File, fs::Metadata)> {
        match self.check_dirs(path, key) {
            Ok(None) => {}
            Ok(Some(_)) => return Err(Error::new(ErrorKind::NotFound, op).with_path(key)),
            Err(p) => return Err(p.into_error(op, key)),
        }
        let md = fs::symlink_metadata(path).map_err(|e| read_err(op, key, e))?;
        let ft = md.file_type();
        if ft.is_dir() {
            return Err(Error::new(ErrorKind::NotFound, op)
                .with_path(key)
                .with_message("a directory, not an object"));
        }
        if ft.is_symlink() {
            return Err(Error::invalid(op, SYMLINK_KEY).with_path(key));
        }
        if !ft.is_file() {
            return Err(Error::invalid(op, NOT_REGULAR).with_path(key));
        }
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(NOFOLLOW_NONBLOCK)
            .open(path)
            .map_err(|e| match fs::symlink_metadata(path) {
                // Replaced by a link since the check (O_NOFOLLOW refused it).
                Ok(m) if m.file_type().is_symlink() => {
                    Error::invalid(op, SYMLINK_KEY).with_path(key)
                }
                _ => read_err(op, key, e),
            })?;
        let md = f.metadata().map_err(|e| io_err(op, key, e))?;
        if !md.is_file() {
            return Err(Error::invalid(op, NOT_REGULAR).with_path(key));
        }
        Ok((f, md))
    }

    /// Reads an object whole, here or on the blocking pool by its size.
    async fn read_object(&self, op: &'static str, key: &str) -> Result<(Vec<u8>, fs::Metadata)> {
        let path = self.path_of(key)?;
        if self.inline_limit == 0 {
            let key = key.to_string();
            return self
                .blocking(move |me| {
                    let (f, md) = me.open_object(op, &key, &path)?;
                    let buf = read_all(f, &md).map_err(|e| io_err(op, key, e))?;
                    Ok((buf, md))
                })
                .await;
        }
        let (f, md) = self.open_object(op, key, &path)?;
        if md.len() <= self.inline_limit as u64 {
            let buf = read_all(f, &md).map_err(|e| io_err(op, key, e))?;
            return Ok((buf, md));
        }
        let key = key.to_string();
        self.blocking(move |_| {
            let buf = read_all(f, &md).map_err(|e| io_err(op, key, e))?;
            Ok((buf, md))
        })
        .await
    }

    fn create_sync(&self, key: &str, path: &Path, bytes: &[u8]) -> Result<PutResult> {
        let op = "create";
        let tmp = self.prepare_temp(op, key, path, bytes, true)?;
        match fs::hard_link(&tmp.path, path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(occupied(op, key, path));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(vanished_temp(op, key)),
            Err(e) => return Err(write_err(op, key, e)),
        }
        drop(tmp);
        self.sync_dir(path.parent().expect("a key has a parent"));
        Ok(PutResult {
            version: hash_version(bytes),
        })
    }

    /// Holding the directory's lock: checks what the key holds (for an
    /// update, its version) and renames the temporary file over it.
    fn replace_locked(
        &self,
        op: &'static str,
        key: &str,
        path: &Path,
        expected: Option<&Version>,
        tmp: &mut Temp,
    ) -> Result<()> {
        match expected {
            None => match fs::symlink_metadata(path) {
                Ok(m) => {
                    let ft = m.file_type();
                    if ft.is_dir() {
                        return Err(Error::invalid(op, DIR_AT_KEY).with_path(key));
                    }
                    if ft.is_symlink() {
                        return Err(Error::invalid(op, SYMLINK_KEY).with_path(key));
                    }
                    if !ft.is_file() {
                        return Err(Error::invalid(op, NOT_REGULAR).with_path(key));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(write_err(op, key, e)),
            },
            Some(expected) => {
                let current = match self.open_object(op, key, path) {
                    Ok((f, md)) => {
                        let buf = read_all(f, &md).map_err(|e| io_err(op, key, e))?;
                        hash_version(&buf)
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        return Err(Error::new(ErrorKind::Precondition, op)
                            .with_path(key)
                            .with_message("the object does not exist"));
                    }
                    Err(e) => return Err(e),
                };
                if &current != expected {
                    return Err(Error::new(ErrorKind::Precondition, op)
                        .with_path(key)
                        .with_message("the version changed"));
                }
            }
        }
        fs::rename(&tmp.path, path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => vanished_temp(op, key),
            _ => write_err(op, key, e),
        })?;
        tmp.published = true;
        Ok(())
    }

    /// One try of an overwrite or update, its temporary file written: tries
    /// the directory lock and, holding it, checks and publishes.
    fn put_step(&self, st: &mut PutState) -> Result<Step<PutResult>> {
        let op = st.op();
        let dir = st.path.parent().expect("a key has a parent");
        let lock = match DirLock::try_acquire(dir).map_err(|e| write_err(op, &st.key, e))? {
            TryLock::Locked(l) => l,
            TryLock::Busy => return Ok(Step::Busy),
            TryLock::NoDir => {
                // Cannot happen while our temporary file lies in it.
                return Err(Error::new(ErrorKind::Transient, op)
                    .with_path(&st.key)
                    .with_message("the directory vanished"));
            }
        };
        let tmp = st.tmp.as_mut().expect("prepared above");
        self.replace_locked(op, &st.key, &st.path, st.expected.as_ref(), tmp)?;
        drop(lock);
        self.sync_dir(dir);
        Ok(Step::Done(PutResult {
            version: st.version.clone().expect("prepared above"),
        }))
    }

    /// One try of a delete, then of pruning the emptied directories.
    fn delete_step(&self, st: &mut DeleteState) -> Result<Step<()>> {
        let op = "delete";
        if let DeletePhase::Delete = st.phase {
            match self.check_dirs(&st.path, &st.key) {
                Ok(None) => {}
                Ok(Some(_)) => return Ok(Step::Done(())),
                Err(p) => return Err(p.into_error(op, &st.key)),
            }
            let dir = st.path.parent().expect("a key has a parent");
            let lock = match DirLock::try_acquire(dir).map_err(|e| io_err(op, &st.key, e))? {
                TryLock::Locked(l) => l,
                TryLock::Busy => return Ok(Step::Busy),
                TryLock::NoDir => return Ok(Step::Done(())),
            };
            remove_object(op, &st.key, &st.path)?;
            if !self.prunable(dir) || !self.remove_locked_dir(dir, lock) {
                return Ok(Step::Done(()));
            }
            st.phase = DeletePhase::Prune(dir.parent().unwrap_or(dir).to_path_buf());
        }
        let DeletePhase::Prune(dir) = &mut st.phase else {
            unreachable!("the delete phase ends above")
        };
        while self.prunable(dir) {
            match DirLock::try_acquire(dir) {
                Ok(TryLock::Locked(lock)) => {
                    if !self.remove_locked_dir(dir, lock) {
                        break;
                    }
                }
                Ok(TryLock::Busy) => return Ok(Step::Busy),
                Ok(TryLock::NoDir) | Err(_) => break,
            }
            match dir.parent() {
                Some(p) => *dir = p.to_path_buf(),
                None => break,
            }
        }
        Ok(Step::Done(()))
    }

    fn list_sync(&self, req: &ListRequest) -> Result<ListPage> {
        let (dir_key, name_prefix) = match req.prefix.rfind('/') {
            Some(i) => (&req.prefix[..=i], &req.prefix[i + 1..]),
            None => ("", req.prefix.as_str()),
        };
        // A continuation carries when its listing began; the first page
        // begins one now.
        let (token, session) = match req.token.as_deref().map(decode_token) {
            Some((key, session)) => (Some(key.to_string()), session),
            None => (None, None),
        };
        let start = session.unwrap_or_else(|| SNAPSHOT_SEQ.load(Ordering::SeqCst));
        let inner = ListRequest {
            token,
            ..req.clone()
        };
        let after = match (&inner.token, &inner.start_after) {
            (Some(t), Some(s)) => Some(t.clone().max(s.clone())),
            (Some(t), None) => Some(t.clone()),
            (None, s) => s.clone(),
        };
        let top = self.root.join(dir_key.trim_end_matches('/'));
        // A prefix whose directories cross a link or a file lists nothing.
        if !dir_key.is_empty() {
            match self.check_dirs(&self.root.join(dir_key), dir_key) {
                Ok(None) => {}
                Ok(Some(_)) | Err(Problem::Symlink | Problem::NotDir | Problem::Vanished) => {
                    return Ok(page_from_sorted(&inner, std::iter::empty(), 1000));
                }
                Err(Problem::Io(e)) => return Err(io_err("list", req.prefix.clone(), e)),
            }
        }
        let want = inner.limit.unwrap_or(1000).max(1) + 2;
        let mut walker = Walker {
            fs: self,
            stack: Vec::new(),
            delimiter: inner.delimiter,
            after,
            want,
            start,
            continuation: session.is_some(),
            err: None,
        };
        walker.push(top, dir_key.to_string(), name_prefix.to_string());
        let mut page = page_from_sorted(&inner, &mut walker, 1000);
        if let Some(e) = walker.err {
            return Err(io_err("list", req.prefix.clone(), e));
        }
        page.next = page.next.map(|k| encode_token(k, start));
        Ok(page)
    }

    /// Classifies a directory entry for listings and leftovers: `Some(true)`
    /// for a directory to descend into, `Some(false)` for a regular file,
    /// `None` for anything else. A link counts only when it is a trusted
    /// directory on the way to the prune floor.
    fn classify(&self, ent: &fs::DirEntry, dir_key: &str, name: &str) -> Option<bool> {
        let ft = ent.file_type().ok()?;
        if ft.is_dir() {
            Some(true)
        } else if ft.is_file() {
            Some(false)
        } else if ft.is_symlink()
            && self.trusted_dir(&format!("{dir_key}{name}/"))
            && fs::metadata(ent.path()).is_ok_and(|m| m.is_dir())
        {
            Some(true)
        } else {
            None
        }
    }

    /// Reads the listable names of `dir` (a `/` appended to directories)
    /// into `f`. A missing directory has none.
    fn read_names(&self, dir: &Path, dir_key: &str, mut f: impl FnMut(String)) -> io::Result<()> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for ent in rd {
            let ent = ent?;
            let Ok(mut name) = ent.file_name().into_string() else {
                continue;
            };
            if name.starts_with(RESERVED_PREFIX) {
                continue;
            }
            match self.classify(&ent, dir_key, &name) {
                Some(true) => name.push('/'),
                Some(false) => {}
                None => continue,
            }
            f(name);
        }
        Ok(())
    }

    /// The entries of `dir` that start with `prefix` and lie above `lower`,
    /// in order: all of them, or at least the first `want`.
    ///
    /// A snapshot serves when it is exact (taken with the directory at rest
    /// and the directory unchanged since) or, for a continuation of a
    /// listing that began at `start`, when it was taken after that. Without
    /// one, a directory at rest or a continuation reads and sorts the
    /// directory (kept as a snapshot when large); the first page of a
    /// listing of a changing directory keeps only the names it needs.
    #[allow(clippy::too_many_arguments)]
    fn dir_chunk(
        &self,
        dir: &Path,
        dir_key: &str,
        prefix: &str,
        lower: &Lower,
        want: usize,
        start: u64,
        continuation: bool,
    ) -> io::Result<Chunk> {
        let before = SystemClock.now();
        let md = match fs::symlink_metadata(dir) {
            Ok(m) if m.file_type().is_symlink() => fs::metadata(dir)?,
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Chunk::empty()),
            Err(e) => return Err(e),
        };
        let ident = DirIdent::of(&md);
        if let Some(names) = self.snapshots.get(dir, ident, start) {
            return Ok(Chunk::slice(names, prefix, lower));
        }
        let settled = ident.settled(before);
        if settled || continuation {
            // Taken after every listing that began before this number.
            let seq = SNAPSHOT_SEQ.fetch_add(1, Ordering::SeqCst) + 1;
            let mut names = Vec::new();
            self.read_names(dir, dir_key, |n| names.push(n))?;
            names.sort_unstable();
            let names = Arc::new(names);
            if names.len() >= SNAPSHOT_MIN_ENTRIES {
                self.snapshots.put(dir, ident, settled, seq, names.clone());
            }
            return Ok(Chunk::slice(names, prefix, lower));
        }
        // Changing: the `want` smallest names that fit, from one pass.
        let fits = |n: &str| n.starts_with(prefix) && lower.below(n);
        let mut names = Vec::new();
        self.read_names(dir, dir_key, |n| {
            if fits(&n) {
                names.push(n);
            }
        })?;
        let complete = names.len() <= want;
        if !complete {
            names.select_nth_unstable(want);
            names.truncate(want);
        }
        names.sort_unstable();
        let end = names.len();
        Ok(Chunk {
            names: Arc::new(names),
            pos: 0,
            end,
            complete,
        })
    }

    /// Any regular file below `dir` (unsorted; only its existence matters).
    fn any_file(&self, dir: &Path, dir_key: &str) -> io::Result<Option<String>> {
        let mut todo = vec![(dir.to_path_buf(), dir_key.to_string())];
        while let Some((d, k)) = todo.pop() {
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            for ent in rd {
                let ent = ent?;
                let Ok(name) = ent.file_name().into_string() else {
                    continue;
                };
                if name.starts_with(RESERVED_PREFIX) {
                    continue;
                }
                match self.classify(&ent, &k, &name) {
                    Some(false) => return Ok(Some(format!("{k}{name}"))),
                    Some(true) => todo.push((ent.path(), format!("{k}{name}/"))),
                    None => {}
                }
            }
        }
        Ok(None)
    }

    /// The walk of [`stale_temporaries`](Self::stale_temporaries) and
    /// [`remove_leftovers`](Self::remove_leftovers).
    fn leftovers(
        &self,
        prefix: &str,
        cutoff: SystemTime,
        remove: bool,
        c: &mut Counts,
    ) -> Result<()> {
        let (dir_key, name_prefix) = match prefix.rfind('/') {
            Some(i) => (&prefix[..=i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        if !dir_key.is_empty() {
            match self.check_dirs(&self.root.join(dir_key), dir_key) {
                Ok(None) => {}
                Ok(Some(_)) | Err(Problem::Symlink | Problem::NotDir | Problem::Vanished) => {
                    return Ok(());
                }
                Err(Problem::Io(e)) => return Err(io_err("leftovers", prefix, e)),
            }
        }
        let top = self.root.join(dir_key.trim_end_matches('/'));
        let removed = self
            .clean_dir(&top, dir_key, name_prefix, cutoff, remove, c)
            .map_err(|e| io_err("leftovers", prefix, e))?;
        if removed && let Some(parent) = top.parent() {
            c.directories += self.prune_once(parent.to_path_buf());
        }
        Ok(())
    }

    /// Deletes every regular file in `dir` and below, and the directories
    /// emptied, without following links (a link is left where it is, and so
    /// is the directory holding it); returns the objects deleted (files whose
    /// names are not reserved).
    fn purge_dir(dir: &Path) -> io::Result<u64> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        let mut n = 0;
        for ent in rd {
            let ent = ent?;
            let ft = ent.file_type()?;
            let path = ent.path();
            if ft.is_dir() {
                n += Self::purge_dir(&path)?;
                let _ = fs::remove_dir(&path);
            } else if ft.is_file() {
                match fs::remove_file(&path) {
                    Ok(()) => {
                        let reserved = ent
                            .file_name()
                            .to_str()
                            .is_none_or(|s| s.starts_with(RESERVED_PREFIX));
                        n += u64::from(!reserved);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }

    /// Counts or removes leftovers in `dir` and below (entries starting with
    /// `name_prefix` only); gives whether `dir` itself was removed.
    fn clean_dir(
        &self,
        dir: &Path,
        dir_key: &str,
        name_prefix: &str,
        cutoff: SystemTime,
        remove: bool,
        c: &mut Counts,
    ) -> io::Result<bool> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let mut kept = false;
        let mut lock = false;
        let mut subdirs = Vec::new();
        for ent in rd {
            let ent = ent?;
            let Ok(name) = ent.file_name().into_string() else {
                kept = true;
                continue;
            };
            if !name.starts_with(name_prefix) {
                kept = true;
                continue;
            }
            let ft = ent.file_type()?;
            if name == LOCK_NAME && ft.is_file() {
                lock = true;
            } else if name.starts_with(TMP_PREFIX) && ft.is_file() {
                let md = ent.metadata()?;
                let old = md.modified().is_ok_and(|t| t <= cutoff);
                if !old {
                    kept = true;
                } else if !remove {
                    c.temporaries += 1;
                    c.temporary_bytes += md.len();
                } else {
                    match fs::remove_file(ent.path()) {
                        Ok(()) => {
                            c.temporaries += 1;
                            c.temporary_bytes += md.len();
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(_) => kept = true,
                    }
                }
            } else if ft.is_dir() && !name.starts_with(RESERVED_PREFIX) {
                subdirs.push(name);
            } else {
                // Objects, links, special files, other reserved names.
                kept = true;
            }
        }
        for name in subdirs {
            let sub_key = format!("{dir_key}{name}/");
            if !self.clean_dir(&dir.join(&name), &sub_key, "", cutoff, remove, c)? {
                kept = true;
            }
        }
        if !remove || kept || !name_prefix.is_empty() || !self.prunable(dir) {
            return Ok(false);
        }
        if !lock {
            // Nothing at all in it: no one can hold its lock.
            let removed = fs::remove_dir(dir).is_ok();
            c.directories += u64::from(removed);
            return Ok(removed);
        }
        let Ok(TryLock::Locked(held)) = DirLock::try_acquire(dir) else {
            // In use.
            return Ok(false);
        };
        let only_lock = fs::read_dir(dir).is_ok_and(|rd| {
            rd.filter_map(|e| e.ok())
                .all(|e| e.file_name() == LOCK_NAME)
        });
        if !only_lock {
            return Ok(false);
        }
        let unlinked = fs::remove_file(dir.join(LOCK_NAME)).is_ok();
        let removed = fs::remove_dir(dir).is_ok();
        drop(held);
        c.lock_files += u64::from(unlinked);
        c.directories += u64::from(removed);
        Ok(removed)
    }
}

/// What a check of a key's directories found wrong.
enum Problem {
    Symlink,
    NotDir,
    /// A directory was removed while being made.
    Vanished,
    Io(io::Error),
}

impl Problem {
    fn into_error(self, op: &'static str, key: &str) -> Error {
        match self {
            Problem::Symlink => Error::invalid(op, SYMLINK_PARENT).with_path(key),
            Problem::NotDir => Error::invalid(op, PARENT_FILE).with_path(key),
            Problem::Vanished => Error::new(ErrorKind::Transient, op)
                .with_path(key)
                .with_message("a directory vanished (pruned by a concurrent delete)"),
            Problem::Io(e) => write_err(op, key, e),
        }
    }
}

/// The result of one try of an operation that needs a directory lock.
enum Step<T> {
    Done(T),
    Busy,
}

/// The state of an operation that needs a directory lock.
trait Locking {
    /// The directory whose lock the next try takes.
    fn lock_dir(&self) -> &Path;
}

impl Locking for PutState {
    fn lock_dir(&self) -> &Path {
        self.path.parent().expect("a key has a parent")
    }
}

impl Locking for DeleteState {
    fn lock_dir(&self) -> &Path {
        match &self.phase {
            DeletePhase::Delete => self.path.parent().expect("a key has a parent"),
            DeletePhase::Prune(d) => d,
        }
    }
}

type Gate = tokio::sync::Mutex<()>;

/// This process's gates, one per directory in use, shared by every store.
static GATES: std::sync::OnceLock<Mutex<HashMap<PathBuf, std::sync::Weak<Gate>>>> =
    std::sync::OnceLock::new();

fn gate_of(dir: &Path) -> Arc<Gate> {
    let mut map = GATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(g) = map.get(dir).and_then(|w| w.upgrade()) {
        return g;
    }
    if map.len() >= 1024 {
        map.retain(|_, w| w.strong_count() > 0);
    }
    let g = Arc::new(Gate::new(()));
    map.insert(dir.to_path_buf(), Arc::downgrade(&g));
    g
}

struct PutState {
    key: String,
    path: PathBuf,
    bytes: Bytes,
    /// `None` for an overwrite; the version to replace for an update.
    expected: Option<Version>,
    tmp: Option<Temp>,
    version: Option<Version>,
}

impl PutState {
    fn op(&self) -> &'static str {
        if self.expected.is_some() {
            "update"
        } else {
            "put"
        }
    }
}

enum DeletePhase {
    Delete,
    /// The object is gone; pruning continues at this directory.
    Prune(PathBuf),
}

struct DeleteState {
    key: String,
    path: PathBuf,
    phase: DeletePhase,
}

#[derive(Default)]
struct Counts {
    temporaries: u64,
    temporary_bytes: u64,
    lock_files: u64,
    directories: u64,
}

/// A temporary file, removed when dropped unless it was renamed into place.
struct Temp {
    path: PathBuf,
    published: bool,
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `bytes` to a new temporary file in `dir`.
fn write_temp(dir: &Path, bytes: &[u8], sync: bool) -> io::Result<Temp> {
    let mut tries = 0;
    loop {
        tries += 1;
        let path = dir.join(format!("{TMP_PREFIX}{:016x}", fastrand::u64(..)));
        let mut f = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(NOFOLLOW_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            // Another writer drew the same name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 16 => continue,
            Err(e) => return Err(e),
        };
        let tmp = Temp {
            path,
            published: false,
        };
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        return Ok(tmp);
    }
}

/// A write whose temporary file was removed (by a cleanup) before it was
/// published: nothing was written.
fn vanished_temp(op: &'static str, key: &str) -> Error {
    Error::new(ErrorKind::Transient, op)
        .with_path(key)
        .with_message("the temporary file vanished before it was published")
}

/// Holding the directory's lock: removes the object at `path`, if any. A
/// directory at the key is no object; a link or a special file is refused.
fn remove_object(op: &'static str, key: &str, path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(op, key, e)),
        },
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(Error::invalid(op, SYMLINK_KEY).with_path(key)),
        Ok(_) => Err(Error::invalid(op, NOT_REGULAR).with_path(key)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(op, key, e)),
    }
}

/// What `create` reports when `link` finds the key taken.
fn occupied(op: &'static str, key: &str, path: &Path) -> Error {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Error::invalid(op, DIR_AT_KEY).with_path(key),
        Ok(m) if m.file_type().is_symlink() => Error::invalid(op, SYMLINK_KEY).with_path(key),
        Ok(m) if !m.is_file() => Error::invalid(op, NOT_REGULAR).with_path(key),
        // A regular file, or one deleted since: the create lost either way.
        _ => Error::new(ErrorKind::AlreadyExists, op).with_path(key),
    }
}

/// An exclusive `flock` on a directory's `.cmx-lock` file.
struct DirLock {
    _file: File,
}

enum TryLock {
    Locked(DirLock),
    /// Someone else holds it.
    Busy,
    /// The directory does not exist.
    NoDir,
}

impl DirLock {
    /// One try at locking `dir`, creating its lock file if needed.
    fn try_acquire(dir: &Path) -> io::Result<TryLock> {
        let path = dir.join(LOCK_NAME);
        for _ in 0..100 {
            if NOFOLLOW_NONBLOCK == 0 && fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file()) {
                return Err(bad_lock_file());
            }
            let f = match OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .custom_flags(NOFOLLOW_NONBLOCK)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(TryLock::NoDir),
                Err(e) => {
                    return Err(match fs::symlink_metadata(&path) {
                        Ok(m) if !m.is_file() => bad_lock_file(),
                        _ => e,
                    });
                }
            };
            match f.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => return Ok(TryLock::Busy),
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
            // A pruner may have unlinked the file before we locked it: then
            // our lock is on a dead inode and protects nothing. Check and retry.
            let held = f.metadata()?;
            if !held.is_file() {
                return Err(bad_lock_file());
            }
            match fs::symlink_metadata(&path) {
                Ok(m) if m.ino() == held.ino() && m.dev() == held.dev() => {
                    return Ok(TryLock::Locked(DirLock { _file: f }));
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(TryLock::Busy)
    }
}

fn bad_lock_file() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("the directory's {LOCK_NAME} is not a regular file"),
    )
}

fn io_err(op: &'static str, path: impl Into<String>, e: io::Error) -> Error {
    let kind = io_kind(&e);
    Error::new(kind, op)
        .with_path(path)
        .with_message(e.to_string())
}

fn read_err(op: &'static str, key: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::NotADirectory => Error::invalid(op, PARENT_FILE).with_path(key),
        _ => io_err(op, key, e),
    }
}

fn hash_version(bytes: &[u8]) -> Version {
    Version::new(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes)))
}

/// Reads a published file whole. Published files never change in place
/// (writes replace them), so its size at opening is the size to read.
fn read_all(mut f: File, md: &fs::Metadata) -> io::Result<Vec<u8>> {
    let len = md.len() as usize;
    let mut buf = vec![0; len];
    let mut got = 0;
    while got < len {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

fn meta_of(key: &str, md: &fs::Metadata, version: Option<Version>) -> ObjectMeta {
    ObjectMeta {
        key: key.to_string(),
        size: md.len(),
        last_modified: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        version,
    }
}

/// Maps errors of writes where a path component is a file, or the target a
/// directory, onto `InvalidInput` with a message users understand.
fn write_err(op: &'static str, key: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::NotADirectory => Error::invalid(op, PARENT_FILE).with_path(key),
        io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty => {
            Error::invalid(op, DIR_AT_KEY).with_path(key)
        }
        _ => io_err(op, key, e),
    }
}

#[async_trait]
impl Store for LocalFs {
    fn root_url(&self) -> String {
        let s = self.root.display().to_string();
        format!("file://{}", s.trim_end_matches('/'))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// The temporary files, lock files and empty directories below `prefix`
    /// ([`LocalFs::stale_temporaries`], [`LocalFs::remove_leftovers`]). With
    /// `remove` and a directory prefix (`key/`), the directory itself goes
    /// too once it is empty, even at the prune floor: this is what removing
    /// a whole tree (`rmrf`, `destroy`) asks for.
    async fn leftovers(
        &self,
        prefix: &str,
        older_than: Duration,
        remove: bool,
    ) -> Result<crate::store::Leftovers> {
        if !remove {
            let t = self.stale_temporaries(prefix, older_than).await?;
            return Ok(crate::store::Leftovers {
                files: t.count,
                bytes: t.bytes,
                dirs: 0,
            });
        }
        let r = self.remove_leftovers(prefix, older_than).await?;
        let mut dirs = r.directories + r.lock_files;
        if let Some(dir_key) = prefix.strip_suffix('/')
            && !dir_key.is_empty()
        {
            let dir = self.root.join(dir_key);
            let removed = self
                .blocking(move |_| {
                    // Never through a link: only a real, empty directory.
                    match fs::symlink_metadata(&dir) {
                        Ok(m) if m.is_dir() => {
                            let _ = fs::remove_file(dir.join(LOCK_NAME));
                            Ok(fs::remove_dir(&dir).is_ok())
                        }
                        _ => Ok(false),
                    }
                })
                .await?;
            dirs += u64::from(removed);
        }
        Ok(crate::store::Leftovers {
            files: r.temporaries,
            bytes: r.temporary_bytes,
            dirs,
        })
    }

    /// Deletes a whole tree in one walk (no lock per file, no listing pages):
    /// for `rmrf` and `destroy`. Links are neither followed nor removed.
    async fn delete_prefix(&self, prefix: &str) -> Result<Option<u64>> {
        let Some(dir_key) = prefix.strip_suffix('/') else {
            return Ok(None);
        };
        if dir_key.is_empty() {
            return Ok(None);
        }
        crate::key::validate_key(dir_key, false)?;
        let full = self.root.join(dir_key);
        match self.check_dirs(&self.root.join(prefix), prefix) {
            Ok(None) => {}
            Ok(Some(_)) | Err(Problem::Symlink | Problem::NotDir | Problem::Vanished) => {
                return Ok(Some(0));
            }
            Err(Problem::Io(e)) => return Err(io_err("delete", prefix, e)),
        }
        let key = prefix.to_string();
        self.blocking(move |_| {
            match fs::symlink_metadata(&full) {
                Ok(m) if m.is_dir() => {}
                _ => return Ok(Some(0)),
            }
            LocalFs::purge_dir(&full)
                .map(Some)
                .map_err(|e| io_err("delete", key, e))
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<GetResult> {
        let (buf, md) = self.read_object("get", key).await?;
        let v = hash_version(&buf);
        Ok(GetResult {
            meta: meta_of(key, &md, Some(v)),
            bytes: Bytes::from(buf),
        })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let (buf, md) = self.read_object("head", key).await?;
        Ok(meta_of(key, &md, Some(hash_version(&buf))))
    }

    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutResult> {
        let path = self.path_of(key)?;
        let inline = !self.sync && bytes.len() <= self.inline_limit;
        let key = key.to_string();
        let expected = match mode {
            PutMode::Create => {
                return self
                    .run(inline, move |me| me.create_sync(&key, &path, &bytes))
                    .await;
            }
            PutMode::Overwrite => None,
            PutMode::Update(v) => Some(v),
        };
        let overwrite = expected.is_none();
        let dir = path.parent().expect("a key has a parent").to_path_buf();
        // The temporary file is written before the lock is taken, so the lock
        // is held only to check and rename.
        let state = self
            .run(inline, move |me| {
                let mut st = PutState {
                    key,
                    path,
                    bytes,
                    expected,
                    tmp: None,
                    version: None,
                };
                let tmp = me.prepare_temp(st.op(), &st.key, &st.path, &st.bytes, overwrite)?;
                st.tmp = Some(tmp);
                st.version = Some(hash_version(&st.bytes));
                Ok(st)
            })
            .await;
        let r = self
            .with_lock_waits(inline, state?, LocalFs::put_step, |me, st| {
                Err(me.lock_timeout(st.op(), &st.key))
            })
            .await;
        if r.is_err() && overwrite {
            // The overwrite may have made its (checked) directories for
            // nothing; its temporary file is gone with its state.
            let _ = self
                .run(inline, move |me| {
                    me.prune_once(dir);
                    Ok(())
                })
                .await;
        }
        r
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        let state = DeleteState {
            key: key.to_string(),
            path,
            phase: DeletePhase::Delete,
        };
        self.with_lock_waits(
            self.inline_limit > 0,
            state,
            LocalFs::delete_step,
            |me, st| match st.phase {
                DeletePhase::Delete => Err(me.lock_timeout("delete", &st.key)),
                // Deleted; an emptied directory stays behind.
                DeletePhase::Prune(_) => Ok(()),
            },
        )
        .await
    }

    async fn list(&self, req: ListRequest) -> Result<ListPage> {
        crate::key::validate_key(req.prefix.trim_end_matches('/'), true)?;
        self.blocking(move |me| me.list_sync(&req)).await
    }
}

/// The identity and last change of a directory, as its snapshot knew it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirIdent {
    dev: u64,
    ino: u64,
    ctime: i64,
    ctime_nsec: i64,
}

impl DirIdent {
    fn of(md: &fs::Metadata) -> Self {
        DirIdent {
            dev: md.dev(),
            ino: md.ino(),
            ctime: md.ctime(),
            ctime_nsec: md.ctime_nsec(),
        }
    }

    /// The same directory (not removed and made anew since).
    fn same_dir(&self, other: &DirIdent) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }

    /// True when the directory last changed long enough before `now` that
    /// any later change shows as a different `ctime`.
    fn settled(&self, now: SystemTime) -> bool {
        let Ok(secs) = u64::try_from(self.ctime) else {
            return false;
        };
        let changed = SystemTime::UNIX_EPOCH
            + Duration::new(secs, self.ctime_nsec.clamp(0, 999_999_999) as u32);
        let guard = if self.ctime_nsec == 0 {
            SETTLED_COARSE
        } else {
            SETTLED_FINE
        };
        now.duration_since(changed).is_ok_and(|age| age > guard)
    }
}

struct Snapshot {
    ident: DirIdent,
    /// Taken with the directory at rest: exact while its `ctime` holds.
    settled: bool,
    /// Its number in [`SNAPSHOT_SEQ`].
    seq: u64,
    names: Arc<Vec<String>>,
    /// When it was read, on this process's monotonic clock.
    taken: Duration,
}

/// This process's monotonic clock (the snapshot cache is process-wide, not
/// one store's: it ages by real time).
fn mono() -> Duration {
    crate::clock::Clock::elapsed(&crate::clock::SystemClock)
}

/// Numbers snapshots and the beginnings of listings in one order: a snapshot
/// numbered above a listing's number was read after the listing began.
static SNAPSHOT_SEQ: AtomicU64 = AtomicU64::new(0);

/// Tells this process's continuation tokens from others'.
fn process_nonce() -> u64 {
    static NONCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NONCE.get_or_init(|| fastrand::u64(..))
}

/// Keys never hold control characters, so this separates a token's key
/// from the listing's beginning.
const TOKEN_SEP: char = '\u{0}';

fn encode_token(key: String, start: u64) -> String {
    format!("{key}{TOKEN_SEP}{:016x}{start:016x}", process_nonce())
}

/// The key of a continuation token and, for this process's tokens, the
/// number its listing began at. Other tokens are keys.
fn decode_token(token: &str) -> (&str, Option<u64>) {
    let Some((key, tail)) = token.rsplit_once(TOKEN_SEP) else {
        return (token, None);
    };
    let parsed = (tail.len() == 32)
        .then(|| {
            let nonce = u64::from_str_radix(&tail[..16], 16).ok()?;
            let start = u64::from_str_radix(&tail[16..], 16).ok()?;
            (nonce == process_nonce()).then_some(start)
        })
        .flatten();
    (key, parsed)
}

/// Sorted names of large directories, for the next pages.
#[derive(Default)]
struct Snapshots {
    map: Mutex<HashMap<PathBuf, Snapshot>>,
}

impl std::fmt::Debug for Snapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.map.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("Snapshots").field("dirs", &n).finish()
    }
}

impl Snapshots {
    /// A snapshot of `dir` (now `ident`) that may serve a listing that
    /// began at `start`.
    fn get(&self, dir: &Path, ident: DirIdent, start: u64) -> Option<Arc<Vec<String>>> {
        let mut map = self.map.lock().ok()?;
        let s = map.get(dir)?;
        if mono().saturating_sub(s.taken) >= SNAPSHOT_TTL || !s.ident.same_dir(&ident) {
            map.remove(dir);
            return None;
        }
        let exact = s.settled && s.ident == ident;
        (exact || s.seq > start).then(|| s.names.clone())
    }

    fn put(&self, dir: &Path, ident: DirIdent, settled: bool, seq: u64, names: Arc<Vec<String>>) {
        if names.len() > SNAPSHOT_MAX_ENTRIES {
            return;
        }
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        map.retain(|_, s| mono().saturating_sub(s.taken) < SNAPSHOT_TTL);
        map.remove(dir);
        loop {
            let total: usize = map.values().map(|s| s.names.len()).sum();
            if map.len() < SNAPSHOT_MAX_DIRS && total + names.len() <= SNAPSHOT_MAX_ENTRIES {
                break;
            }
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.taken)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    map.remove(&k);
                }
                None => break,
            }
        }
        map.insert(
            dir.to_path_buf(),
            Snapshot {
                ident,
                settled,
                seq,
                names,
                taken: mono(),
            },
        );
    }
}

/// The lower bound of a directory's entries in a listing that continues
/// after some key: a name (with `/` for a directory), inclusive or not.
#[derive(Debug, Clone)]
struct Lower(Option<(String, bool)>);

impl Lower {
    /// The bound for the directory with key prefix `dir_key` (ending in `/`,
    /// or empty) of a listing that continues after `after`.
    fn of(after: Option<&str>, dir_key: &str) -> Self {
        match after.and_then(|a| a.strip_prefix(dir_key)) {
            // Keys below `name/` may still come after it.
            Some(rest) => match rest.find('/') {
                Some(i) => Lower(Some((rest[..=i].to_string(), true))),
                None => Lower(Some((rest.to_string(), false))),
            },
            None => Lower(None),
        }
    }

    /// True when `name` is at or above the bound.
    fn below(&self, name: &str) -> bool {
        match &self.0 {
            None => true,
            Some((b, true)) => name >= b.as_str(),
            Some((b, false)) => name > b.as_str(),
        }
    }
}

/// Sorted names of one directory being listed, from `pos` to `end`.
struct Chunk {
    names: Arc<Vec<String>>,
    pos: usize,
    end: usize,
    /// No further names fit beyond `end`; otherwise ask again after the last.
    complete: bool,
}

impl Chunk {
    fn empty() -> Self {
        Chunk {
            names: Arc::new(Vec::new()),
            pos: 0,
            end: 0,
            complete: true,
        }
    }

    /// The names of a whole sorted directory that start with `prefix` and
    /// lie above `lower`: a contiguous run.
    fn slice(names: Arc<Vec<String>>, prefix: &str, lower: &Lower) -> Self {
        let pos = names.partition_point(|n| !(n.as_str() >= prefix && lower.below(n)));
        let end =
            pos + names[pos..].partition_point(|n| n.starts_with(prefix) || n.as_str() < prefix);
        Chunk {
            names,
            pos,
            end,
            complete: true,
        }
    }
}

/// One directory of a walk.
struct Level {
    /// The key prefix of its entries (ends in `/`, or empty at the root).
    dir_key: String,
    path: PathBuf,
    /// Only names starting with this (the listing prefix's last part, at the top).
    name_prefix: String,
    chunk: Chunk,
    /// How many names to ask for when the chunk runs out.
    want: usize,
}

/// A lazy, sorted, depth-first walk that yields file keys in byte order.
struct Walker<'a> {
    fs: &'a LocalFs,
    stack: Vec<Level>,
    delimiter: bool,
    after: Option<String>,
    want: usize,
    /// When the listing began, in [`SNAPSHOT_SEQ`].
    start: u64,
    /// This page continues an earlier one of the same listing.
    continuation: bool,
    err: Option<io::Error>,
}

impl Walker<'_> {
    fn push(&mut self, path: PathBuf, dir_key: String, name_prefix: String) -> bool {
        let lower = Lower::of(self.after.as_deref(), &dir_key);
        match self.fs.dir_chunk(
            &path,
            &dir_key,
            &name_prefix,
            &lower,
            self.want,
            self.start,
            self.continuation,
        ) {
            Ok(chunk) => {
                self.stack.push(Level {
                    dir_key,
                    path,
                    name_prefix,
                    chunk,
                    want: self.want,
                });
                true
            }
            Err(e) => {
                self.err = Some(e);
                false
            }
        }
    }

    /// The next name of the deepest directory, reading more when needed.
    fn next_name(&mut self) -> io::Result<Option<(usize, String)>> {
        loop {
            let depth = self.stack.len();
            let Some(lvl) = self.stack.last_mut() else {
                return Ok(None);
            };
            if lvl.chunk.pos < lvl.chunk.end {
                let name = lvl.chunk.names[lvl.chunk.pos].clone();
                lvl.chunk.pos += 1;
                return Ok(Some((depth, name)));
            }
            if lvl.chunk.complete || lvl.chunk.end == 0 {
                self.stack.pop();
                continue;
            }
            let last = lvl.chunk.names[lvl.chunk.end - 1].clone();
            lvl.want = lvl.want.saturating_mul(2);
            lvl.chunk = self.fs.dir_chunk(
                &lvl.path,
                &lvl.dir_key,
                &lvl.name_prefix,
                &Lower(Some((last, false))),
                lvl.want,
                self.start,
                self.continuation,
            )?;
        }
    }
}

impl Iterator for Walker<'_> {
    type Item = ObjectMeta;

    fn next(&mut self) -> Option<ObjectMeta> {
        if self.err.is_some() {
            return None;
        }
        loop {
            let (depth, name) = match self.next_name() {
                Ok(Some(x)) => x,
                Ok(None) => return None,
                Err(e) => {
                    self.err = Some(e);
                    return None;
                }
            };
            let lvl = self.stack.last().expect("a name comes from a level");
            let key = format!("{}{name}", lvl.dir_key);
            let path = lvl.path.join(name.trim_end_matches('/'));
            if key.ends_with('/') {
                if self.delimiter && depth == 1 {
                    if self.after.as_deref().is_some_and(|a| a.starts_with(&key)) {
                        // This common prefix was reported on an earlier page.
                        continue;
                    }
                    // One level: report the directory once, as some file
                    // under it, which the pager folds into a common prefix.
                    match self.fs.any_file(&path, &key) {
                        Ok(Some(k)) => {
                            return Some(ObjectMeta {
                                key: k,
                                size: 0,
                                last_modified: SystemTime::UNIX_EPOCH,
                                version: None,
                            });
                        }
                        Ok(None) => continue,
                        Err(e) => {
                            self.err = Some(e);
                            return None;
                        }
                    }
                }
                if !self.push(path, key, String::new()) {
                    return None;
                }
                continue;
            }
            if let Some(a) = &self.after
                && key.as_str() <= a.as_str()
            {
                continue;
            }
            match fs::symlink_metadata(&path) {
                Ok(md) if md.is_file() => return Some(meta_of(&key, &md, None)),
                // Replaced by something that is not an object since the
                // directory was read, or deleted: not part of the listing.
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.err = Some(e);
                    return None;
                }
            }
        }
    }
}
