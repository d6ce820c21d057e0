//! [`UPath`]: a pathlib-style path over any [`Store`].
//!
//! A `UPath` is a store plus a key. It is cheap to clone, displays as its
//! URL, and offers the familiar operations: `join` (or `/`), `parent`, `name`,
//! `stem`, `suffix`, reading and writing bytes, text, JSON and MessagePack,
//! listing, removal, copying and a [lock](UPath::lock).
//!
//! Writes are **create-only by default**: `write_*` fails with
//! [`AlreadyExists`](crate::ErrorKind::AlreadyExists) when the object exists;
//! `overwrite_*` replaces it. Every request goes through the path's policy
//! layers ([`crate::layers`]): a per-request timeout (none by default) and
//! retries of transient failures by the path's [`RetryPolicy`]. A
//! create-only write whose outcome became unknown under retries fails with
//! [`OutcomeUnknown`](crate::ErrorKind::OutcomeUnknown), never with a guess;
//! protocol documents that must settle such outcomes use [`crate::cond`].
//!
//! ```
//! # tokio_test::block_on(async {
//! use cloudmux_core::UPath;
//! let root = UPath::parse("mem://guide-path")?;
//! let cfg = root.join("runs/1/config.json")?;
//! cfg.write_json(&serde_json::json!({"lr": 0.1})).await?;
//! assert!(cfg.write_text("again").await.unwrap_err().is_already_exists());
//! assert_eq!(cfg.name(), "config.json");
//! assert_eq!(cfg.suffix(), ".json");
//! assert_eq!(cfg.parent().unwrap().to_string(), "mem://guide-path/runs/1");
//! assert!(root.join("runs")?.is_dir().await?);
//! assert_eq!(root.join("runs")?.rmrf().await?, 1);
//! # Ok::<_, cloudmux_core::Error>(()) }).unwrap();
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::{self, Clock};
use crate::error::{Error, Result};
use crate::key::{validate_key, validate_segment};
use crate::layers::{Retry, Timeout};
use crate::lock::{LockGuard, LockOptions};
use crate::retry::RetryPolicy;
use crate::store::{Entry, GetResult, ListPage, ListRequest, ObjectMeta, PutMode, Store, Version};
use crate::{InMemory, LocalFs};

/// Settings shared by a path and everything joined from it, and the layered
/// store built from them.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Option<Duration>,
    /// `Retry(Timeout(store))`: what every request goes through.
    io: Arc<dyn Store>,
}

impl Ctx {
    fn new(
        store: &Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        retry: RetryPolicy,
        timeout: Option<Duration>,
    ) -> Ctx {
        let mut io = store.clone();
        if let Some(t) = timeout {
            io = Timeout::new(io, t, clock.clone());
        }
        if retry.max_attempts > 1 {
            io = Retry::with_clock(io, retry, clock.clone());
        }
        Ctx {
            clock,
            retry,
            timeout,
            io,
        }
    }
}

/// A listing request relative to a directory ([`UPath::list_page`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only names below the directory that start with this string (relative
    /// to the directory; empty for all).
    pub prefix: String,
    /// Only names (relative to the directory) strictly greater than this one.
    pub start_after: Option<String>,
    /// One level only: deeper names fold into common prefixes.
    pub delimiter: bool,
    /// At most this many entries (the backend may return fewer).
    pub limit: Option<usize>,
    /// The continuation token of the previous page.
    pub token: Option<String>,
}

/// A path on an object store: a backend and a key.
#[derive(Clone)]
pub struct UPath {
    store: Arc<dyn Store>,
    key: String,
    ctx: Arc<Ctx>,
}

impl fmt::Debug for UPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UPath({self})")
    }
}

impl fmt::Display for UPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root = self.store.root_url();
        if self.key.is_empty() {
            f.write_str(&root)
        } else {
            write!(f, "{root}/{}", self.key)
        }
    }
}

impl PartialEq for UPath {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}
impl Eq for UPath {}

impl PartialOrd for UPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for UPath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.to_string().cmp(&other.to_string())
    }
}

/// Lexically normalizes an absolute local path into a key below `/`.
fn local_key(path: &str) -> Result<String> {
    let mut segs: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if segs.pop().is_none() {
                    return Err(
                        Error::invalid("parse", "'..' leaves the filesystem root").with_path(path)
                    );
                }
            }
            s => segs.push(s),
        }
    }
    Ok(segs.join("/"))
}

impl UPath {
    /// A path for `key` on `store`. The empty key is the store's root.
    ///
    /// # Errors
    /// `InvalidInput` when the key breaks the [key rules](crate::key).
    pub fn new(store: Arc<dyn Store>, key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        validate_key(&key, true)?;
        let ctx = Ctx::new(&store, clock::system(), RetryPolicy::default(), None);
        Ok(UPath {
            store,
            key,
            ctx: Arc::new(ctx),
        })
    }

    /// Parses a URL of a backend built into the core:
    ///
    /// - `mem://NAME/key`: the process-wide in-memory store `NAME`;
    /// - `file:///abs/dir` or a plain local path (absolute, or relative to the
    ///   current directory): the local filesystem.
    ///
    /// `s3://`, `gs://` and `az://` come with the `cloudmux` facade crate
    /// (`cloudmux::path`). URLs are not percent-decoded: every character
    /// after the scheme is part of the key.
    ///
    /// # Errors
    /// `InvalidInput` for an unknown scheme or a malformed key.
    pub fn parse(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("mem://") {
            let (name, key) = rest.split_once('/').unwrap_or((rest, ""));
            if name.is_empty() {
                return Err(Error::invalid("parse", "mem:// URL needs a store name").with_path(url));
            }
            let key = key.trim_end_matches('/');
            return UPath::new(InMemory::named(name), key).map_err(|e| e.set_path(url));
        }
        if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(Error::invalid(
                    "parse",
                    "file:// URL needs an absolute path (file:///dir)",
                )
                .with_path(url));
            }
            return Self::local(rest);
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(Error::invalid(
                "parse",
                format!(
                    "the scheme '{scheme}' is not built into cloudmux-core; \
                     use the cloudmux crate (features s3, gcs, azure) to open it"
                ),
            )
            .with_path(url));
        }
        if url.is_empty() {
            return Err(Error::invalid("parse", "empty path"));
        }
        if url.starts_with('/') {
            Self::local(url)
        } else {
            let cwd = std::env::current_dir()
                .map_err(|e| Error::invalid("parse", format!("no current directory: {e}")))?;
            Self::local(&format!("{}/{url}", cwd.display()))
        }
    }

    fn local(abs: &str) -> Result<Self> {
        let key = local_key(abs)?;
        // Rooted at `/` so that `parent()` works as in pathlib; the directory
        // given is the prune floor, so removing its contents never removes it.
        let fs = LocalFs::new("/")?.with_prune_floor(format!("/{key}"));
        UPath::new(fs, key).map_err(|e| e.set_path(abs))
    }

    fn derive(&self, key: String) -> UPath {
        UPath {
            store: self.store.clone(),
            key,
            ctx: self.ctx.clone(),
        }
    }

    fn with_ctx(&self, f: impl FnOnce(&mut Ctx)) -> UPath {
        let mut c = (*self.ctx).clone();
        f(&mut c);
        let ctx = Ctx::new(&self.store, c.clock, c.retry, c.timeout);
        UPath {
            store: self.store.clone(),
            key: self.key.clone(),
            ctx: Arc::new(ctx),
        }
    }

    /// Another key (a full key of the same store, as listings report them),
    /// with the same store and settings.
    ///
    /// # Errors
    /// `InvalidInput` when the key breaks the [key rules](crate::key).
    pub fn with_key(&self, key: &str) -> Result<UPath> {
        validate_key(key, true)?;
        Ok(self.derive(key.to_string()))
    }

    /// The same key on another store (a wrapper around this one, say), with
    /// the same settings.
    pub fn with_store(&self, store: Arc<dyn Store>) -> UPath {
        let ctx = Ctx::new(
            &store,
            self.ctx.clock.clone(),
            self.ctx.retry,
            self.ctx.timeout,
        );
        UPath {
            store,
            key: self.key.clone(),
            ctx: Arc::new(ctx),
        }
    }

    /// The same path with another clock (for deterministic lease tests).
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> UPath {
        self.with_ctx(|c| c.clock = clock)
    }

    /// The same path with another retry policy.
    pub fn with_retry(&self, retry: RetryPolicy) -> UPath {
        self.with_ctx(|c| c.retry = retry)
    }

    /// The same path with a timeout on each storage request (a request that
    /// takes longer fails as `Transient` and is retried).
    pub fn with_timeout(&self, timeout: Option<Duration>) -> UPath {
        self.with_ctx(|c| c.timeout = timeout)
    }

    /// The clock this path uses.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.ctx.clock
    }

    /// The retry policy this path uses.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.ctx.retry
    }

    /// The per-request timeout, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.ctx.timeout
    }

    /// The backend, without the path's policy layers.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The backend with the path's policy layers (timeout, retries): what
    /// this path's own requests go through.
    pub fn io(&self) -> &Arc<dyn Store> {
        &self.ctx.io
    }

    /// The name of `key` (a full key, as listings report them) relative to
    /// this directory, or `None` when it does not lie below it.
    pub fn relative<'a>(&self, key: &'a str) -> Option<&'a str> {
        if self.key.is_empty() {
            return Some(key);
        }
        key.strip_prefix(self.key.as_str())?.strip_prefix('/')
    }

    /// The key, relative to the store's root (empty for the root).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// True for the store's root.
    pub fn is_root(&self) -> bool {
        self.key.is_empty()
    }

    /// The URL (same as `to_string()`).
    pub fn url(&self) -> String {
        self.to_string()
    }

    /// Joins a relative path (`"a"`, `"a/b/c"`).
    ///
    /// # Errors
    /// `InvalidInput` for an absolute path, `..`, `.`, empty segments or NUL.
    pub fn join(&self, rel: &str) -> Result<UPath> {
        if rel.starts_with('/') {
            return Err(Error::invalid("join", "cannot join an absolute path").with_path(rel));
        }
        let rel = rel.trim_end_matches('/');
        if rel.is_empty() {
            return Ok(self.clone());
        }
        validate_key(rel, false).map_err(|e| e.set_path(format!("{self} + {rel}")))?;
        let key = if self.key.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.key)
        };
        validate_key(&key, false)?;
        Ok(self.derive(key))
    }

    /// The parent directory, or `None` at the root.
    pub fn parent(&self) -> Option<UPath> {
        if self.key.is_empty() {
            return None;
        }
        Some(self.derive(match self.key.rfind('/') {
            Some(i) => self.key[..i].to_string(),
            None => String::new(),
        }))
    }

    /// The last segment (`"c.tar.gz"` for `a/b/c.tar.gz`), empty at the root.
    pub fn name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or("")
    }

    /// The last suffix of the name, dot included (`".gz"`), or empty.
    pub fn suffix(&self) -> &str {
        let n = self.name();
        match n.rfind('.') {
            Some(0) | None => "",
            Some(i) => &n[i..],
        }
    }

    /// The name without its last suffix (`"c.tar"`).
    pub fn stem(&self) -> &str {
        let n = self.name();
        &n[..n.len() - self.suffix().len()]
    }

    /// The same directory with another name.
    ///
    /// # Errors
    /// `InvalidInput` at the root or for a bad name.
    pub fn with_name(&self, name: &str) -> Result<UPath> {
        validate_segment(name)?;
        match self.parent() {
            Some(p) => p.join(name),
            None => {
                Err(Error::invalid("with_name", "the root has no name").with_path(self.to_string()))
            }
        }
    }

    /// The same path with another suffix (`".json"`, or `""` to remove it).
    ///
    /// # Errors
    /// `InvalidInput` at the root or for a suffix without a leading dot.
    pub fn with_suffix(&self, suffix: &str) -> Result<UPath> {
        if !suffix.is_empty() && (!suffix.starts_with('.') || suffix.len() < 2) {
            return Err(Error::invalid(
                "with_suffix",
                format!("invalid suffix '{suffix}'"),
            ));
        }
        self.with_name(&format!("{}{suffix}", self.stem()))
    }

    fn object_key(&self, op: &'static str) -> Result<&str> {
        if self.key.is_empty() {
            return Err(Error::invalid(op, "the root is a directory, not an object")
                .with_path(self.to_string()));
        }
        Ok(&self.key)
    }

    /// Runs one request on the layered store and names the path's URL in
    /// any error.
    pub(crate) async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        fut.await.map_err(|e| self.name_error(e))
    }

    fn name_error(&self, e: Error) -> Error {
        // The store names keys; replace with the full URL of the object.
        match e.path() {
            Some(p) if p.contains("://") => e,
            Some(p) => {
                let url = format!("{}/{p}", self.store.root_url());
                e.set_path(url)
            }
            None => e.set_path(self.to_string()),
        }
    }

    // ---- reading ----

    /// Reads the object's bytes and version.
    ///
    /// # Errors
    /// `NotFound` when it does not exist; `InvalidInput` at the root.
    pub async fn get(&self) -> Result<GetResult> {
        let key = self.object_key("get")?;
        self.call(self.ctx.io.get(key)).await
    }

    /// Reads the object's bytes.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn read_bytes(&self) -> Result<Bytes> {
        Ok(self.get().await?.bytes)
    }

    /// Reads the object as UTF-8 text.
    ///
    /// # Errors
    /// As [`get`](Self::get); `Corrupt` when the bytes are not UTF-8.
    pub async fn read_text(&self) -> Result<String> {
        let b = self.read_bytes().await?;
        String::from_utf8(b.to_vec()).map_err(|e| {
            Error::corrupt("read_text", format!("not UTF-8: {e}")).with_path(self.to_string())
        })
    }

    /// Reads and decodes a JSON object.
    ///
    /// # Errors
    /// As [`get`](Self::get); `Corrupt` when decoding fails.
    pub async fn read_json<T: DeserializeOwned>(&self) -> Result<T> {
        let b = self.read_bytes().await?;
        serde_json::from_slice(&b)
            .map_err(|e| Error::corrupt("read_json", e.to_string()).with_path(self.to_string()))
    }

    /// Reads and decodes a MessagePack object.
    ///
    /// # Errors
    /// As [`get`](Self::get); `Corrupt` when decoding fails.
    pub async fn read_msgpack<T: DeserializeOwned>(&self) -> Result<T> {
        let b = self.read_bytes().await?;
        rmp_serde::from_slice(&b)
            .map_err(|e| Error::corrupt("read_msgpack", e.to_string()).with_path(self.to_string()))
    }

    /// The object's metadata (size, modification time, version).
    ///
    /// # Errors
    /// `NotFound` when it does not exist.
    pub async fn file_info(&self) -> Result<ObjectMeta> {
        let key = self.object_key("head")?;
        self.call(self.ctx.io.head(key)).await
    }

    /// True when an object or a directory exists here.
    ///
    /// # Errors
    /// Only for failures other than absence.
    pub async fn exists(&self) -> Result<bool> {
        Ok(self.is_file().await? || self.is_dir().await?)
    }

    /// True when an object exists at this key.
    ///
    /// # Errors
    /// Only for failures other than absence.
    pub async fn is_file(&self) -> Result<bool> {
        if self.key.is_empty() {
            return Ok(false);
        }
        match self.file_info().await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// True when some object lies below this path (the root always is one).
    ///
    /// # Errors
    /// Only for failures other than absence.
    pub async fn is_dir(&self) -> Result<bool> {
        if self.key.is_empty() {
            return Ok(true);
        }
        let page = self
            .list_page(&ListQuery {
                delimiter: true,
                limit: Some(1),
                ..ListQuery::default()
            })
            .await?;
        Ok(!page.objects.is_empty() || !page.prefixes.is_empty())
    }

    /// The directory prefix of this path: `key/`, or empty at the root.
    pub(crate) fn dir_prefix(&self) -> String {
        if self.key.is_empty() {
            String::new()
        } else {
            format!("{}/", self.key)
        }
    }

    /// Lists one page under this directory. The query's prefix and
    /// start-after are relative to the directory; the page's keys are full
    /// keys of the store (see [`relative`](Self::relative)).
    ///
    /// # Errors
    /// As [`Store::list`]; `InvalidInput` for a relative name that breaks the key rules.
    pub async fn list_page(&self, q: &ListQuery) -> Result<ListPage> {
        let base = self.dir_prefix();
        if q.prefix.contains('\0') || q.start_after.as_deref().is_some_and(|a| a.contains('\0')) {
            return Err(
                Error::invalid("list", "NUL in a listing prefix").with_path(self.to_string())
            );
        }
        let req = ListRequest {
            prefix: format!("{base}{}", q.prefix),
            delimiter: q.delimiter,
            start_after: q.start_after.as_ref().map(|a| format!("{base}{a}")),
            token: q.token.clone(),
            limit: q.limit,
        };
        self.call(self.ctx.io.list(req)).await
    }

    fn entries(&self, delimiter: bool) -> BoxStream<'_, Result<Entry>> {
        futures::stream::unfold(
            (Some(None::<String>), self),
            move |(token, me)| async move {
                let token = token?;
                let q = ListQuery {
                    delimiter,
                    token,
                    ..ListQuery::default()
                };
                match me.list_page(&q).await {
                    Err(e) => Some((vec![Err(e)], (None, me))),
                    Ok(page) => {
                        let next = page.next.clone().map(Some);
                        let mut v: Vec<Result<Entry>> = Vec::new();
                        let mut objs = page.objects.into_iter().peekable();
                        let mut pres = page.prefixes.into_iter().peekable();
                        loop {
                            let take_obj = match (objs.peek(), pres.peek()) {
                                (Some(o), Some(p)) => o.key.as_str() <= p.as_str(),
                                (Some(_), None) => true,
                                (None, Some(_)) => false,
                                (None, None) => break,
                            };
                            if take_obj {
                                v.push(Ok(Entry::Object(objs.next().unwrap())));
                            } else {
                                v.push(Ok(Entry::Prefix(pres.next().unwrap())));
                            }
                        }
                        Some((v, (next, me)))
                    }
                }
            },
        )
        .flat_map(futures::stream::iter)
        .boxed()
    }

    /// The immediate children (objects and directories), in key order,
    /// streamed page by page.
    pub fn iterdir(&self) -> BoxStream<'_, Result<UPath>> {
        self.entries(true)
            .map_ok(|e| match e {
                Entry::Object(o) => self.derive(o.key),
                Entry::Prefix(p) => self.derive(p.trim_end_matches('/').to_string()),
            })
            .boxed()
    }

    /// Every object below this directory (recursively), in key order, streamed.
    pub fn riterdir(&self) -> BoxStream<'_, Result<UPath>> {
        self.entries(false)
            .try_filter_map(move |e| {
                let me = self;
                async move {
                    Ok(match e {
                        Entry::Object(o) => Some(me.derive(o.key)),
                        Entry::Prefix(_) => None,
                    })
                }
            })
            .boxed()
    }

    /// Metadata of every object below this directory, streamed.
    pub fn riterdir_meta(&self) -> BoxStream<'_, Result<ObjectMeta>> {
        self.entries(false)
            .try_filter_map(|e| async move {
                Ok(match e {
                    Entry::Object(o) => Some(o),
                    Entry::Prefix(_) => None,
                })
            })
            .boxed()
    }

    /// The immediate children, collected and sorted.
    ///
    /// # Errors
    /// As [`Store::list`].
    pub async fn ls(&self) -> Result<Vec<UPath>> {
        let mut v: Vec<UPath> = self.iterdir().try_collect().await?;
        v.sort();
        Ok(v)
    }

    // ---- writing ----

    /// Writes with an explicit mode and returns the new version.
    ///
    /// # Behavior
    /// Transient failures are retried with the same bytes. A conditional
    /// write (`Create`, `Update`) whose earlier attempt may have been applied
    /// and whose retry then meets `AlreadyExists` or `Precondition` fails
    /// with `OutcomeUnknown`: it is never reported as done because the bytes
    /// look the same, and never as a lost race. Documents that must settle
    /// such outcomes carry a nonce and use [`crate::cond`].
    ///
    /// # Errors
    /// `AlreadyExists`, `Precondition` as [`Store::put`]; `OutcomeUnknown`;
    /// `InvalidInput` at the root.
    pub async fn put(&self, bytes: Bytes, mode: PutMode) -> Result<Version> {
        let key = self.object_key("put")?;
        self.call(self.ctx.io.put(key, bytes, mode))
            .await
            .map(|p| p.version)
    }

    /// Creates the object with these bytes; fails if it exists.
    ///
    /// # Errors
    /// `AlreadyExists` when the object exists.
    pub async fn write_bytes(&self, bytes: impl Into<Bytes>) -> Result<Version> {
        self.put(bytes.into(), PutMode::Create).await
    }

    /// Writes these bytes, replacing any object.
    ///
    /// # Errors
    /// Backend failures only.
    pub async fn overwrite_bytes(&self, bytes: impl Into<Bytes>) -> Result<Version> {
        self.put(bytes.into(), PutMode::Overwrite).await
    }

    /// Creates the object with this text; fails if it exists.
    ///
    /// # Errors
    /// `AlreadyExists` when the object exists.
    pub async fn write_text(&self, text: &str) -> Result<Version> {
        self.write_bytes(Bytes::copy_from_slice(text.as_bytes()))
            .await
    }

    /// Writes this text, replacing any object.
    ///
    /// # Errors
    /// Backend failures only.
    pub async fn overwrite_text(&self, text: &str) -> Result<Version> {
        self.overwrite_bytes(Bytes::copy_from_slice(text.as_bytes()))
            .await
    }

    fn json_bytes<T: Serialize + ?Sized>(&self, v: &T) -> Result<Bytes> {
        serde_json::to_vec(v).map(Bytes::from).map_err(|e| {
            Error::invalid("write_json", format!("cannot encode: {e}")).with_path(self.to_string())
        })
    }

    fn msgpack_bytes<T: Serialize + ?Sized>(&self, v: &T) -> Result<Bytes> {
        rmp_serde::to_vec_named(v).map(Bytes::from).map_err(|e| {
            Error::invalid("write_msgpack", format!("cannot encode: {e}"))
                .with_path(self.to_string())
        })
    }

    /// Creates the object as JSON; fails if it exists.
    ///
    /// # Errors
    /// `AlreadyExists`; `InvalidInput` when the value cannot be encoded.
    pub async fn write_json<T: Serialize + ?Sized>(&self, v: &T) -> Result<Version> {
        let b = self.json_bytes(v)?;
        self.put(b, PutMode::Create).await
    }

    /// Writes the object as JSON, replacing any object.
    ///
    /// # Errors
    /// `InvalidInput` when the value cannot be encoded.
    pub async fn overwrite_json<T: Serialize + ?Sized>(&self, v: &T) -> Result<Version> {
        let b = self.json_bytes(v)?;
        self.put(b, PutMode::Overwrite).await
    }

    /// Creates the object as MessagePack (named fields); fails if it exists.
    ///
    /// # Errors
    /// `AlreadyExists`; `InvalidInput` when the value cannot be encoded.
    pub async fn write_msgpack<T: Serialize + ?Sized>(&self, v: &T) -> Result<Version> {
        let b = self.msgpack_bytes(v)?;
        self.put(b, PutMode::Create).await
    }

    /// Writes the object as MessagePack, replacing any object.
    ///
    /// # Errors
    /// `InvalidInput` when the value cannot be encoded.
    pub async fn overwrite_msgpack<T: Serialize + ?Sized>(&self, v: &T) -> Result<Version> {
        let b = self.msgpack_bytes(v)?;
        self.put(b, PutMode::Overwrite).await
    }

    // ---- removing and copying ----

    /// Deletes the object. Deleting a missing object succeeds.
    ///
    /// # Errors
    /// `InvalidInput` at the root; backend failures.
    pub async fn remove_file(&self) -> Result<()> {
        let key = self.object_key("delete")?;
        self.call(self.ctx.io.delete(key)).await
    }

    /// Removes an empty directory: a no-op, since directories exist only
    /// through the objects below them.
    ///
    /// # Errors
    /// `InvalidInput` when objects remain below this path.
    pub async fn remove_dir(&self) -> Result<()> {
        if self.is_dir().await? && !self.key.is_empty() {
            return Err(
                Error::invalid("remove_dir", "directory not empty").with_path(self.to_string())
            );
        }
        Ok(())
    }

    /// Deletes the object at this path and every object below it, and
    /// returns how many were deleted.
    ///
    /// # Errors
    /// `InvalidInput` at the root (it refuses to wipe a whole store).
    pub async fn rmrf(&self) -> Result<usize> {
        if self.key.is_empty() {
            return Err(
                Error::invalid("rmrf", "refusing to remove the root of a store")
                    .with_path(self.to_string()),
            );
        }
        let mut n = 0;
        if self.is_file().await? {
            self.remove_file().await?;
            n += 1;
        }
        // A backend that deletes a tree in one pass (the local disk) does.
        let prefix = self.dir_prefix();
        if let Some(deleted) = self.call(self.ctx.io.delete_prefix(&prefix)).await? {
            n += deleted as usize;
        }
        // Delete page by page, 16 requests in flight, continuing by token
        // (a listing that restarts at its first page after every page of
        // deletes is quadratic on a local directory); then once more from
        // the start, for keys created behind the cursor meanwhile.
        let mut token: Option<String> = None;
        let mut deleted_this_pass = 0usize;
        loop {
            let q = ListQuery {
                token: token.take(),
                ..ListQuery::default()
            };
            let page = self.list_page(&q).await?;
            token = page.next.clone();
            let keys: Vec<String> = page.objects.into_iter().map(|o| o.key).collect();
            let count = keys.len();
            futures::stream::iter(keys)
                .map(|k| async move { self.derive(k).remove_file().await })
                .buffer_unordered(16)
                .try_collect::<Vec<()>>()
                .await?;
            n += count;
            deleted_this_pass += count;
            if token.is_none() {
                // The end of a pass: another from the start, unless this
                // one found nothing.
                if deleted_this_pass == 0 {
                    break;
                }
                deleted_this_pass = 0;
            }
        }
        // What the backend itself left below (temporary files of killed writers).
        let prefix = self.dir_prefix();
        let left = self
            .call(self.ctx.io.leftovers(&prefix, Duration::ZERO, true))
            .await?;
        if left.files > 0 || left.dirs > 0 {
            tracing::debug!(path = %self, files = left.files, dirs = left.dirs, "removed leftovers");
        }
        Ok(n)
    }

    /// Copies this object to `dst`, possibly on another backend.
    ///
    /// # Errors
    /// `NotFound` when the source is missing; `AlreadyExists` when `dst`
    /// exists and `overwrite` is false.
    pub async fn copy_file(&self, dst: &UPath, overwrite: bool) -> Result<()> {
        let b = self.read_bytes().await?;
        let mode = if overwrite {
            PutMode::Overwrite
        } else {
            PutMode::Create
        };
        dst.put(b, mode).await.map(|_| ())
    }

    /// Copies every object below this directory to the same relative keys
    /// below `dst`, possibly on another backend; returns the count.
    ///
    /// # Errors
    /// As [`copy_file`](Self::copy_file) for each object.
    pub async fn copy_dir(&self, dst: &UPath, overwrite: bool) -> Result<usize> {
        let prefix = self.dir_prefix();
        let mut n = 0;
        let mut files = self.riterdir();
        while let Some(f) = files.next().await {
            let f = f?;
            let rel = &f.key()[prefix.len()..];
            f.copy_file(&dst.join(rel)?, overwrite).await?;
            n += 1;
        }
        Ok(n)
    }

    // ---- locking ----

    /// Takes the lock on this path, waiting up to `timeout`.
    /// `Duration::ZERO` makes exactly one attempt. See [`crate::lock`].
    ///
    /// # Errors
    /// `LockTimeout` naming the holder; `InvalidInput` at the root.
    pub async fn lock(&self, timeout: Duration) -> Result<LockGuard> {
        self.lock_with(LockOptions::new(timeout)).await
    }

    /// Takes the lock with full options (TTL, holder name).
    ///
    /// # Errors
    /// As [`lock`](Self::lock).
    pub async fn lock_with(&self, opts: LockOptions) -> Result<LockGuard> {
        crate::lock::acquire(self, opts).await
    }
}

impl std::ops::Div<&str> for &UPath {
    type Output = UPath;

    /// `&path / "a/b"`: like [`UPath::join`], panicking on an invalid segment.
    /// Use `join` to handle the error instead.
    fn div(self, rhs: &str) -> UPath {
        match self.join(rhs) {
            Ok(p) => p,
            Err(e) => panic!("invalid path segment: {e}"),
        }
    }
}

impl std::str::FromStr for UPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        UPath::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn pure_path_ops() {
        let p = UPath::parse("mem://t-pure/a/b/c.tar.gz").unwrap();
        assert_eq!(p.to_string(), "mem://t-pure/a/b/c.tar.gz");
        assert_eq!(p.name(), "c.tar.gz");
        assert_eq!(p.suffix(), ".gz");
        assert_eq!(p.stem(), "c.tar");
        assert_eq!(p.with_suffix(".zip").unwrap().name(), "c.tar.zip");
        assert_eq!(p.with_name("d").unwrap().to_string(), "mem://t-pure/a/b/d");
        assert_eq!(p.parent().unwrap().parent().unwrap().key(), "a");
        let root = UPath::parse("mem://t-pure").unwrap();
        assert!(root.parent().is_none());
        assert_eq!((&root / "x/y").key(), "x/y");
        assert!(root.join("../x").is_err());
        assert!(root.join("/x").is_err());
        assert!(root.join("a//b").is_err());
        assert_eq!(UPath::parse("mem://t-pure/.hidden").unwrap().suffix(), "");
    }

    #[test]
    fn local_paths_normalize_and_refuse_escape() {
        let p = UPath::parse("/tmp/./x/../y").unwrap();
        assert_eq!(p.to_string(), "file:///tmp/y");
        let q = UPath::parse("file:///tmp/y").unwrap();
        assert_eq!(p, q);
        assert!(UPath::parse("/..").is_err());
        assert!(UPath::parse("file://relative").is_err());
        let e = UPath::parse("ftp://x/y").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
