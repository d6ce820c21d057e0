//! The local-filesystem backend.
//!
//! [`LocalFs`] maps key `a/b/c` to the file `ROOT/a/b/c`.
//!
//! # Protocol
//! - **Every write** goes to a temporary file (`.cmx-tmp-*`) in the target's
//!   directory first, so readers never see partial content.
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
//!   but never the directory the store was opened at (its prune floor).
//! - Names starting with `.cmx-` are reserved and never listed.
//!
//! # Limits
//! Atomicity rests on `link`, `rename` and `flock` being atomic and honoured
//! by every process, which holds on one machine's local filesystems (ext4,
//! xfs, btrfs, tmpfs, APFS). On network filesystems it may not: NFS before v4
//! does not carry `flock` between clients, and a `link` whose reply is lost
//! may report `EEXIST` for a link that succeeded; SMB/CIFS and FUSE mounts
//! vary. Use an object store to coordinate machines; use this backend for one
//! machine's processes. A key and a longer key under it (`a` and `a/b`) cannot
//! coexist here, unlike on object stores: the second write is `InvalidInput`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, ErrorKind, Result, io_kind};
use crate::store::{
    Capabilities, GetResult, ListPage, ListRequest, ObjectMeta, PutMode, PutResult, Store, Version,
    page_from_sorted,
};

/// Prefix of every name this backend reserves (temporary files, lock files).
pub const RESERVED_PREFIX: &str = ".cmx-";
const LOCK_NAME: &str = ".cmx-lock";
const TMP_PREFIX: &str = ".cmx-tmp-";

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
    root: Arc<PathBuf>,
    /// Empty directories are pruned only strictly below this one.
    floor: Arc<PathBuf>,
    sync: bool,
}

impl LocalFs {
    /// A store rooted at `root`, which is created if missing. The root must be
    /// absolute or is made so against the current directory.
    ///
    /// # Errors
    /// `InvalidInput` if the root exists and is not a directory;
    /// `PermissionDenied` if it cannot be created.
    pub fn new(root: impl AsRef<Path>) -> Result<Arc<Self>> {
        let root = root.as_ref();
        let root = if root.is_absolute() {
            root.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| io_err("open", root.display().to_string(), e))?
                .join(root)
        };
        if root.exists() && !root.is_dir() {
            return Err(
                Error::invalid("open", "not a directory").with_path(root.display().to_string())
            );
        }
        fs::create_dir_all(&root).map_err(|e| io_err("open", root.display().to_string(), e))?;
        let root = Arc::new(root);
        Ok(Arc::new(LocalFs {
            floor: root.clone(),
            root,
            sync: false,
        }))
    }

    /// Never prune directories at or above `floor` (default: the root), so a
    /// directory a user opened survives the removal of everything in it.
    pub fn with_prune_floor(self: Arc<Self>, floor: impl AsRef<Path>) -> Arc<Self> {
        Arc::new(LocalFs {
            root: self.root.clone(),
            floor: Arc::new(floor.as_ref().to_path_buf()),
            sync: self.sync,
        })
    }

    /// Also `fsync` each written file and its directory before publishing, for
    /// durability across power loss (slower; off by default).
    pub fn with_sync(self: Arc<Self>, sync: bool) -> Arc<Self> {
        Arc::new(LocalFs {
            root: self.root.clone(),
            floor: self.floor.clone(),
            sync,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
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

    fn write_temp(&self, dir: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            fs::create_dir_all(dir)?;
            let tmp = dir.join(format!("{TMP_PREFIX}{}", fastrand::u64(..)));
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(mut f) => {
                    let r = f
                        .write_all(bytes)
                        .and_then(|_| if self.sync { f.sync_all() } else { Ok(()) });
                    if let Err(e) = r {
                        let _ = fs::remove_file(&tmp);
                        return Err(e);
                    }
                    return Ok(tmp);
                }
                // The directory was pruned between create_dir_all and open.
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 100 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn sync_dir(&self, dir: &Path) {
        if self.sync
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
    }

    /// Removes empty directories from `dir` upwards, stopping at the root.
    fn prune(&self, mut dir: PathBuf) {
        while dir.starts_with(&*self.floor) && dir != *self.floor && dir != *self.root {
            let Ok(Some(lock)) = DirLock::acquire(&dir, false) else {
                return;
            };
            let only_lock = match fs::read_dir(&dir) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok())
                    .all(|e| e.file_name() == LOCK_NAME),
                Err(_) => false,
            };
            if !only_lock {
                return;
            }
            let _ = fs::remove_file(dir.join(LOCK_NAME));
            let removed = fs::remove_dir(&dir).is_ok();
            drop(lock);
            if !removed {
                return;
            }
            match dir.parent() {
                Some(p) => dir = p.to_path_buf(),
                None => return,
            }
        }
    }
}

/// An exclusive `flock` on a directory's `.cmx-lock` file.
struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir`. With `create = false`, a missing directory gives `None`.
    fn acquire(dir: &Path, create: bool) -> io::Result<Option<DirLock>> {
        let path = dir.join(LOCK_NAME);
        loop {
            if create {
                fs::create_dir_all(dir)?;
            }
            let f = match OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if create {
                        continue;
                    }
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            f.lock()?;
            // A pruner may have unlinked the file while we waited: then our
            // lock is on a dead inode and protects nothing. Check and retry.
            let held = f.metadata()?.ino();
            match fs::metadata(&path) {
                Ok(m) if m.ino() == held => return Ok(Some(DirLock { _file: f })),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

fn io_err(op: &'static str, path: impl Into<String>, e: io::Error) -> Error {
    let kind = io_kind(&e);
    Error::new(kind, op)
        .with_path(path)
        .with_message(e.to_string())
}

fn hash_version(bytes: &[u8]) -> Version {
    Version::new(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes)))
}

fn read_file(path: &Path) -> io::Result<(Vec<u8>, fs::Metadata)> {
    let mut f = File::open(path)?;
    let md = f.metadata()?;
    if md.is_dir() {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    let mut buf = Vec::with_capacity(md.len() as usize);
    f.read_to_end(&mut buf)?;
    Ok((buf, md))
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
        io::ErrorKind::NotADirectory => {
            Error::invalid(op, "a parent of this key is a file").with_path(key)
        }
        io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty => {
            Error::invalid(op, "a directory exists at this key").with_path(key)
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

    async fn get(&self, key: &str) -> Result<GetResult> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        self.blocking(move |_| {
            let (buf, md) = read_file(&path).map_err(|e| io_err("get", key.clone(), e))?;
            let v = hash_version(&buf);
            Ok(GetResult {
                meta: meta_of(&key, &md, Some(v)),
                bytes: Bytes::from(buf),
            })
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        self.blocking(move |_| {
            let (buf, md) = read_file(&path).map_err(|e| io_err("head", key.clone(), e))?;
            Ok(meta_of(&key, &md, Some(hash_version(&buf))))
        })
        .await
    }

    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutResult> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        self.blocking(move |me| {
            let op = match mode {
                PutMode::Overwrite => "put",
                PutMode::Create => "create",
                PutMode::Update(_) => "update",
            };
            let dir = path.parent().expect("a key has a parent").to_path_buf();
            let version = hash_version(&bytes);
            if let PutMode::Update(_) = mode
                && !dir.is_dir()
            {
                return Err(Error::new(ErrorKind::Precondition, op)
                    .with_path(key)
                    .with_message("the object does not exist"));
            }
            let tmp = me
                .write_temp(&dir, &bytes)
                .map_err(|e| write_err(op, &key, e))?;
            let result = match &mode {
                PutMode::Create => match fs::hard_link(&tmp, &path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        if path.is_dir() {
                            Err(Error::invalid(op, "a directory exists at this key")
                                .with_path(&key))
                        } else {
                            Err(Error::new(ErrorKind::AlreadyExists, op).with_path(&key))
                        }
                    }
                    Err(e) => Err(write_err(op, &key, e)),
                },
                PutMode::Overwrite => (|| {
                    let _lock = DirLock::acquire(&dir, true).map_err(|e| write_err(op, &key, e))?;
                    fs::rename(&tmp, &path).map_err(|e| write_err(op, &key, e))
                })(),
                PutMode::Update(expected) => (|| {
                    let _lock = DirLock::acquire(&dir, true).map_err(|e| write_err(op, &key, e))?;
                    let current = match read_file(&path) {
                        Ok((buf, _)) => hash_version(&buf),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            return Err(Error::new(ErrorKind::Precondition, op)
                                .with_path(&key)
                                .with_message("the object does not exist"));
                        }
                        Err(e) => return Err(io_err(op, key.clone(), e)),
                    };
                    if &current != expected {
                        return Err(Error::new(ErrorKind::Precondition, op)
                            .with_path(&key)
                            .with_message("the version changed"));
                    }
                    fs::rename(&tmp, &path).map_err(|e| write_err(op, &key, e))
                })(),
            };
            // After a rename the temp name is gone; after a link it remains.
            let _ = fs::remove_file(&tmp);
            if result.is_err() && !matches!(mode, PutMode::Create) {
                // An update on a missing file may have created its directory
                // for the lock: remove it again if nothing else lives there.
                me.prune(dir.clone());
            }
            result?;
            me.sync_dir(&dir);
            Ok(PutResult { version })
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        self.blocking(move |me| {
            let dir = path.parent().expect("a key has a parent").to_path_buf();
            {
                let Some(_lock) =
                    DirLock::acquire(&dir, false).map_err(|e| io_err("delete", key.clone(), e))?
                else {
                    return Ok(());
                };
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::NotFound | io::ErrorKind::IsADirectory
                        ) => {}
                    // EPERM/EISDIR vary by OS for directories.
                    Err(_) if path.is_dir() => {}
                    Err(e) => return Err(io_err("delete", key, e)),
                }
            }
            me.prune(dir);
            Ok(())
        })
        .await
    }

    async fn list(&self, req: ListRequest) -> Result<ListPage> {
        crate::key::validate_key(req.prefix.trim_end_matches('/'), true)?;
        self.blocking(move |me| {
            let (dir_key, name_prefix) = match req.prefix.rfind('/') {
                Some(i) => (&req.prefix[..=i], &req.prefix[i + 1..]),
                None => ("", req.prefix.as_str()),
            };
            let after = match (&req.token, &req.start_after) {
                (Some(t), Some(s)) => Some(t.clone().max(s.clone())),
                (Some(t), None) => Some(t.clone()),
                (None, s) => s.clone(),
            };
            let walker = Walker::new(
                me.root.join(dir_key.trim_end_matches('/')),
                dir_key.to_string(),
                name_prefix.to_string(),
                req.delimiter,
                after,
            );
            let mut err = None;
            let iter = walker.map_while(|r| match r {
                Ok(m) => Some(m),
                Err(e) => {
                    err = Some(e);
                    None
                }
            });
            let page = page_from_sorted(&req, iter, 1000);
            match err {
                Some(e) => Err(io_err("list", req.prefix.clone(), e)),
                None => Ok(page),
            }
        })
        .await
    }
}

/// One directory being walked: its key prefix, its path, and its remaining
/// sorted entries `(name, is_dir)`.
type Level = (String, PathBuf, std::vec::IntoIter<(String, bool)>);

/// A lazy, sorted, depth-first walk that yields file keys in byte order.
struct Walker {
    stack: Vec<Level>,
    delimiter: bool,
    after: Option<String>,
    top: Option<(PathBuf, String, String)>,
}

impl Walker {
    fn new(
        dir: PathBuf,
        dir_key: String,
        name_prefix: String,
        delimiter: bool,
        after: Option<String>,
    ) -> Self {
        Walker {
            stack: Vec::new(),
            delimiter,
            after,
            top: Some((dir, dir_key, name_prefix)),
        }
    }

    /// Sorted entries of a directory: (name, is_dir), skipping reserved
    /// names and names that are not UTF-8. Directories sort as `name/`.
    fn entries(dir: &Path, name_prefix: &str) -> io::Result<Vec<(String, bool)>> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(vec![]);
            }
            Err(e) => return Err(e),
        };
        let mut v = Vec::new();
        for ent in rd {
            let ent = ent?;
            let Ok(name) = ent.file_name().into_string() else {
                continue;
            };
            if name.starts_with(RESERVED_PREFIX) || !name.starts_with(name_prefix) {
                continue;
            }
            let ft = match ent.file_type() {
                Ok(ft) => ft,
                Err(_) => continue,
            };
            let is_dir = if ft.is_symlink() {
                ent.path().is_dir()
            } else {
                ft.is_dir()
            };
            v.push((name, is_dir));
        }
        v.sort_by(|a, b| {
            let ka = (a.0.as_bytes(), if a.1 { &b"/"[..] } else { &b""[..] });
            let kb = (b.0.as_bytes(), if b.1 { &b"/"[..] } else { &b""[..] });
            ka.0.iter().chain(ka.1).cmp(kb.0.iter().chain(kb.1))
        });
        Ok(v)
    }

    /// The first file key below `dir` (key prefix `dir_key`), if any.
    fn first_file(dir: &Path, dir_key: &str) -> io::Result<Option<String>> {
        for (name, is_dir) in Self::entries(dir, "")? {
            if is_dir {
                if let Some(k) = Self::first_file(&dir.join(&name), &format!("{dir_key}{name}/"))? {
                    return Ok(Some(k));
                }
            } else {
                return Ok(Some(format!("{dir_key}{name}")));
            }
        }
        Ok(None)
    }

    /// True when a whole subtree with key prefix `sub` sorts at or before `after`.
    fn skip_subtree(&self, sub: &str) -> bool {
        match &self.after {
            Some(a) => a.as_str() > sub && !a.starts_with(sub),
            None => false,
        }
    }
}

impl Iterator for Walker {
    type Item = io::Result<ObjectMeta>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some((dir, dir_key, name_prefix)) = self.top.take() {
            match Self::entries(&dir, &name_prefix) {
                Ok(v) => self.stack.push((dir_key, dir, v.into_iter())),
                Err(e) => return Some(Err(e)),
            }
        }
        loop {
            let depth = self.stack.len();
            let (dir_key, dir, it) = self.stack.last_mut()?;
            let Some((name, is_dir)) = it.next() else {
                self.stack.pop();
                continue;
            };
            let key = format!("{dir_key}{name}");
            let path = dir.join(&name);
            if is_dir {
                let sub = format!("{key}/");
                if self.skip_subtree(&sub) {
                    continue;
                }
                if self.delimiter && depth == 1 {
                    // One level: report the directory once, as the first file
                    // under it, which the pager folds into a common prefix.
                    match Self::first_file(&path, &sub) {
                        Ok(Some(k)) => {
                            return Some(Ok(ObjectMeta {
                                key: k,
                                size: 0,
                                last_modified: SystemTime::UNIX_EPOCH,
                                version: None,
                            }));
                        }
                        Ok(None) => continue,
                        Err(e) => return Some(Err(e)),
                    }
                }
                match Self::entries(&path, "") {
                    Ok(v) => self.stack.push((sub, path, v.into_iter())),
                    Err(e) => return Some(Err(e)),
                }
                continue;
            }
            if let Some(a) = &self.after
                && key.as_str() <= a.as_str()
            {
                continue;
            }
            match fs::metadata(&path) {
                Ok(md) => return Some(Ok(meta_of(&key, &md, None))),
                // Deleted since the directory was read: not part of the listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
