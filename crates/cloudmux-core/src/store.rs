//! The backend trait: a small, object-safe contract with conditional writes.
//!
//! A backend implements [`Store`]: six operations over flat, `/`-separated
//! keys. Everything else in the project (the [`UPath`](crate::UPath) API, the
//! [lock](crate::lock), and the Multiplexer of `cloudmux-mux`) is built on these six
//! and on nothing else, so a backend that passes the conformance suite
//! ([`testkit`](crate::testkit), feature `testkit`) runs the whole project.
//!
//! Conditional writes are part of the core types, not an extension:
//! [`PutMode::Create`] fails with [`AlreadyExists`](crate::ErrorKind::AlreadyExists)
//! when the key is present, and [`PutMode::Update`] is a compare-and-swap on an
//! opaque [`Version`] token that fails with [`Precondition`](crate::ErrorKind::Precondition).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};

use crate::error::Result;

/// An opaque version token of one stored object.
///
/// It is the ETag on S3 and Azure (quotes included, exactly as the service sent
/// it), the generation on GCS, a content hash on the local filesystem and a
/// counter in memory. Compare tokens only for equality, and only tokens of one
/// backend. Like an S3 ETag, a token may repeat when identical bytes are written
/// again: protocols that compare-and-swap put a nonce in every body.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Version(Arc<str>);

impl Version {
    /// Wraps a backend's token.
    pub fn new(token: impl Into<String>) -> Self {
        // Shared, so that copying a version into each entry of a listing
        // does not allocate.
        Version(Arc::from(token.into()))
    }

    /// The token as the backend spelled it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({})", self.0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a [`Store::put`] treats an existing object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there.
    Overwrite,
    /// Create-if-absent: fail with `AlreadyExists` when the key exists.
    Create,
    /// Compare-and-swap: fail with `Precondition` unless the current version
    /// equals this token (a missing object is also a `Precondition` failure).
    Update(Version),
}

impl PutMode {
    /// The [`Op`] a put in this mode is: `Put`, `Create` or `Update`.
    pub fn op(&self) -> Op {
        match self {
            PutMode::Overwrite => Op::Put,
            PutMode::Create => Op::Create,
            PutMode::Update(_) => Op::Update,
        }
    }
}

/// The one taxonomy of storage requests, shared by every backend: the same
/// HTTP status means different things to different requests (a 412 is a lost
/// create race for [`Create`](Op::Create) and a lost compare-and-swap for
/// [`Update`](Op::Update)), so error mappings take the operation as input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Read an object.
    Get,
    /// Read an object's metadata.
    Head,
    /// Unconditional write ([`PutMode::Overwrite`]).
    Put,
    /// Create-if-absent ([`PutMode::Create`]).
    Create,
    /// Compare-and-swap ([`PutMode::Update`]).
    Update,
    /// Unconditional delete.
    Delete,
    /// Delete if the version matches.
    DeleteIf,
    /// List one page.
    List,
    /// Create a bucket or container.
    CreateBucket,
    /// Delete a bucket or container.
    DeleteBucket,
    /// Build a client or obtain credentials.
    Connect,
}

impl Op {
    /// The verb used in [`Error`](crate::Error)s: `"get"`, `"create"`, ...
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Head => "head",
            Op::Put => "put",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::DeleteIf => "delete_if",
            Op::List => "list",
            Op::CreateBucket => "create_bucket",
            Op::DeleteBucket => "delete_bucket",
            Op::Connect => "connect",
        }
    }

    /// True for requests that change stored state.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Op::Put
                | Op::Create
                | Op::Update
                | Op::Delete
                | Op::DeleteIf
                | Op::CreateBucket
                | Op::DeleteBucket
        )
    }

    /// True for conditional writes, whose retry after an ambiguous attempt
    /// can meet the attempt's own effect.
    pub fn is_conditional(self) -> bool {
        matches!(self, Op::Create | Op::Update | Op::DeleteIf)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Metadata of one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The full key, relative to the store's root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time as the backend reports it.
    pub last_modified: SystemTime,
    /// The version token; `None` only in listings of backends that do not
    /// report versions there (call [`Store::head`] to get it).
    pub version: Option<Version>,
}

/// The result of a [`Store::get`]: the whole body and its metadata.
#[derive(Debug, Clone)]
pub struct GetResult {
    /// The object's bytes.
    pub bytes: Bytes,
    /// Its metadata; `meta.version` is always set.
    pub meta: ObjectMeta,
}

impl GetResult {
    /// The version token of the object read.
    pub fn version(&self) -> Version {
        self.meta
            .version
            .clone()
            .unwrap_or_else(|| Version::new(""))
    }
}

/// What a successful [`Store::put`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// The version token of the object just written.
    pub version: Version,
}

/// One page request of [`Store::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// Only keys that start with this string (a plain string prefix, as on S3:
    /// `"a/b"` matches `"a/bc"`). Use a trailing `/` for a directory.
    pub prefix: String,
    /// One level only: keys containing a further `/` after the prefix are
    /// folded into [`ListPage::prefixes`] (S3's delimiter).
    pub delimiter: bool,
    /// Only keys (and common prefixes) strictly greater than this one.
    pub start_after: Option<String>,
    /// The continuation token of the previous page, if any.
    pub token: Option<String>,
    /// At most this many entries (objects plus prefixes); the backend may
    /// return fewer. `None` means the backend's default (about 1,000).
    pub limit: Option<usize>,
}

/// One page of a listing, sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects on this page, in ascending key order.
    pub objects: Vec<ObjectMeta>,
    /// With `delimiter`: the common prefixes (each ends with `/`), ascending.
    pub prefixes: Vec<String>,
    /// Pass as [`ListRequest::token`] to get the next page; `None` at the end.
    pub next: Option<String>,
}

/// What a backend can and cannot do. Protocols consult these; the
/// conformance suite takes them as parameters instead of skipping tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`Store::delete_if`] is honoured. Nothing in the project depends on it:
    /// LocalStack answers 501 and fake-gcs-server ignores the precondition.
    pub conditional_delete: bool,
    /// [`ListRequest::start_after`] is served natively (cheaply). Without it
    /// the backend emulates it by skipping, which costs requests.
    pub list_start_after: bool,
    /// The shortest interval at which one object may be rewritten without
    /// throttling (GCS: about one second). Heartbeats and lock retries respect it.
    pub min_write_interval: std::time::Duration,
    /// The largest page a single list request returns.
    pub max_list_page: usize,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            conditional_delete: false,
            list_start_after: true,
            min_write_interval: std::time::Duration::ZERO,
            max_list_page: 1000,
        }
    }
}

impl Capabilities {
    /// Sets [`conditional_delete`](Self::conditional_delete).
    pub fn with_conditional_delete(mut self, yes: bool) -> Self {
        self.conditional_delete = yes;
        self
    }
    /// Sets [`list_start_after`](Self::list_start_after).
    pub fn with_list_start_after(mut self, yes: bool) -> Self {
        self.list_start_after = yes;
        self
    }
    /// Sets [`min_write_interval`](Self::min_write_interval).
    pub fn with_min_write_interval(mut self, d: std::time::Duration) -> Self {
        self.min_write_interval = d;
        self
    }
    /// Sets [`max_list_page`](Self::max_list_page).
    pub fn with_max_list_page(mut self, n: usize) -> Self {
        self.max_list_page = n;
        self
    }
}

/// An object store backend.
///
/// Keys are relative to the store's root, `/`-separated, never start with `/`
/// and have been validated by [`validate_key`](crate::key::validate_key): a
/// backend may assume no `.`/`..`/empty segments and no NUL. The trait is
/// object-safe; the project holds backends as `Arc<dyn Store>`.
///
/// Errors carry the key as their path; the [`UPath`](crate::UPath) layer
/// replaces it with the full URL.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The URL of the store's root, without a trailing slash, such as
    /// `s3://bucket/prefix`, `file:///data` or `mem://name`. Joined with a key
    /// by `/` it names an object. It never contains credentials.
    fn root_url(&self) -> String;

    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Reads a whole object.
    ///
    /// # Behavior
    /// - Returns the bytes and metadata of one consistent version.
    /// - `meta.version` is always set.
    ///
    /// # Errors
    /// - `NotFound` when the key does not exist.
    /// - `Transient` for failures that may pass; `PermissionDenied`.
    async fn get(&self, key: &str) -> Result<GetResult>;

    /// Reads an object's metadata only.
    ///
    /// # Behavior
    /// - `version` is always set.
    ///
    /// # Errors
    /// - `NotFound` when the key does not exist.
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Writes a whole object.
    ///
    /// # Behavior
    /// - Atomic: readers see the old or the new bytes, never a mix.
    /// - [`PutMode::Create`] succeeds for exactly one of any number of
    ///   concurrent creators of one key.
    /// - [`PutMode::Update`] succeeds for at most one of the writers that hold
    ///   the same current version.
    ///
    /// # Errors
    /// - `AlreadyExists` for `Create` when the key exists.
    /// - `Precondition` for `Update` when the version differs or the key is gone.
    /// - `Transient` when the outcome is unknown: the write may or may not have
    ///   happened. Callers that must know read the object back (by a nonce).
    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutResult>;

    /// Deletes an object unconditionally.
    ///
    /// # Behavior
    /// - Deleting a missing key succeeds.
    ///
    /// # Errors
    /// - `Transient`, `PermissionDenied`.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Deletes an object only if its version matches: an optional capability
    /// ([`Capabilities::conditional_delete`]). Nothing in the project relies on it.
    ///
    /// # Behavior
    /// - The default implementation returns `Unsupported`.
    ///
    /// # Errors
    /// - `Precondition` when the version differs or the key is missing.
    /// - `Unsupported` when the backend cannot do it.
    async fn delete_if(&self, key: &str, version: &Version) -> Result<()> {
        let _ = version;
        Err(
            crate::Error::new(crate::ErrorKind::Unsupported, "delete_if")
                .with_path(key)
                .with_message("conditional delete is not offered by this backend"),
        )
    }

    /// Lists one page of keys under a prefix, in ascending key order.
    ///
    /// # Behavior
    /// - Keys are compared as byte strings.
    /// - With `delimiter`, keys with a further `/` after the prefix are folded
    ///   into common prefixes, each reported once across all pages.
    /// - A page may be shorter than `limit` and still have a `next` token.
    /// - Listing a prefix with no keys returns an empty page, not `NotFound`.
    ///
    /// # Errors
    /// - `NotFound` only when the bucket/container itself is missing.
    async fn list(&self, req: ListRequest) -> Result<ListPage>;

    /// Deletes every object below the directory prefix `prefix` (ending in
    /// `/`) in one pass, when the backend can do that faster than one delete
    /// per object; returns how many objects it deleted, or `None` when it
    /// offers no such thing (the default: callers then delete page by page).
    ///
    /// # Behavior
    /// - Never leaves `prefix` (the local backend follows no links).
    /// - Objects written meanwhile may or may not be deleted.
    ///
    /// # Errors
    /// Backend failures.
    async fn delete_prefix(&self, prefix: &str) -> Result<Option<u64>> {
        let _ = prefix;
        Ok(None)
    }

    /// Finds, and with `remove` deletes, what the backend itself left below
    /// `prefix` older than `older_than`: never objects, only its own
    /// bookkeeping (the local backend's temporary files of writers that were
    /// killed, lock files and empty directories).
    ///
    /// # Behavior
    /// - The default implementation has nothing to find (object stores keep
    ///   no such leftovers).
    /// - Never leaves `prefix`.
    ///
    /// # Errors
    /// Backend failures.
    async fn leftovers(
        &self,
        prefix: &str,
        older_than: std::time::Duration,
        remove: bool,
    ) -> Result<Leftovers> {
        let _ = (prefix, older_than, remove);
        Ok(Leftovers::default())
    }
}

/// What [`Store::leftovers`] found (or removed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Temporary files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Empty directories and lock files removed (with `remove`).
    pub dirs: u64,
}

/// Conveniences on top of [`Store`] that every backend gets for free.
pub trait StoreExt: Store {
    /// Streams every object under `prefix` (recursively), page by page, so
    /// that 100,000 keys never sit in memory more than one page at a time.
    fn list_all(&self, prefix: &str) -> BoxStream<'_, Result<ObjectMeta>> {
        list_stream(self, prefix.to_string(), false)
            .map(|r| {
                r.map(|e| match e {
                    Entry::Object(o) => vec![Ok(o)],
                    Entry::Prefix(_) => vec![],
                })
                .unwrap_or_else(|e| vec![Err(e)])
            })
            .flat_map(stream::iter)
            .boxed()
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// One entry of a listing: an object or a common prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A stored object.
    Object(ObjectMeta),
    /// A common prefix ending in `/` (a "directory").
    Prefix(String),
}

/// Streams all entries under `prefix`, page by page, objects and prefixes
/// merged in key order.
pub fn list_stream<S: Store + ?Sized>(
    store: &S,
    prefix: String,
    delimiter: bool,
) -> BoxStream<'_, Result<Entry>> {
    struct St {
        token: Option<String>,
        done: bool,
    }
    stream::unfold(
        St {
            token: None,
            done: false,
        },
        move |mut st| {
            let prefix = prefix.clone();
            async move {
                if st.done {
                    return None;
                }
                let page = store
                    .list(ListRequest {
                        prefix,
                        delimiter,
                        start_after: None,
                        token: st.token.take(),
                        limit: None,
                    })
                    .await;
                match page {
                    Err(e) => {
                        st.done = true;
                        Some((vec![Err(e)], st))
                    }
                    Ok(page) => {
                        st.token = page.next.clone();
                        st.done = st.token.is_none();
                        Some((merge_page(page).into_iter().map(Ok).collect(), st))
                    }
                }
            }
        },
    )
    .flat_map(stream::iter)
    .boxed()
}

/// Merges a page's objects and prefixes into one key-ordered list.
fn merge_page(page: ListPage) -> Vec<Entry> {
    let mut out = Vec::with_capacity(page.objects.len() + page.prefixes.len());
    let mut objs = page.objects.into_iter().peekable();
    let mut pres = page.prefixes.into_iter().peekable();
    loop {
        match (objs.peek(), pres.peek()) {
            (Some(o), Some(p)) => {
                if o.key.as_str() <= p.as_str() {
                    out.push(Entry::Object(objs.next().unwrap()));
                } else {
                    out.push(Entry::Prefix(pres.next().unwrap()));
                }
            }
            (Some(_), None) => out.push(Entry::Object(objs.next().unwrap())),
            (None, Some(_)) => out.push(Entry::Prefix(pres.next().unwrap())),
            (None, None) => break,
        }
    }
    out
}

/// Pages a sorted iterator of `(key, meta)` the way every simple backend
/// does: applies prefix, `start_after`/token, delimiter folding and limit.
///
/// `keys` must yield keys in ascending order, starting at or after `prefix`.
/// Backends whose native listing is a sorted scan (memory, local) use it so
/// that they all agree on the semantics.
pub fn page_from_sorted<I>(req: &ListRequest, keys: I, default_limit: usize) -> ListPage
where
    I: IntoIterator<Item = ObjectMeta>,
{
    let limit = req.limit.unwrap_or(default_limit).max(1);
    let after = match (&req.token, &req.start_after) {
        (Some(t), Some(s)) => Some(if t > s { t.clone() } else { s.clone() }),
        (Some(t), None) => Some(t.clone()),
        (None, s) => s.clone(),
    };
    let mut page = ListPage {
        objects: Vec::with_capacity(limit.min(1024)),
        ..ListPage::default()
    };
    let mut count = 0usize;
    let mut last: Option<String> = None;
    for meta in keys {
        if !meta.key.starts_with(&req.prefix) {
            if meta.key.as_str() > req.prefix.as_str() {
                break;
            }
            continue;
        }
        if let Some(a) = &after
            && meta.key.as_str() <= a.as_str()
        {
            // A key inside a prefix already reported is also skipped, since
            // the prefix string is a prefix of the key and both compare <= a.
            continue;
        }
        if count == limit {
            page.next = last.clone();
            return page;
        }
        if req.delimiter {
            let rest = &meta.key[req.prefix.len()..];
            if let Some(pos) = rest.find('/') {
                let cp = format!("{}{}", req.prefix, &rest[..=pos]);
                if page.prefixes.last() == Some(&cp) {
                    continue;
                }
                if let Some(a) = &after
                    && a.starts_with(&cp)
                {
                    continue;
                }
                // Everything under cp sorts after cp itself, and a token equal
                // to cp's last key skips the rest; use a sentinel just past cp.
                last = Some(format!("{cp}\u{10FFFF}"));
                page.prefixes.push(cp);
                count += 1;
                continue;
            }
        }
        last = Some(meta.key.clone());
        page.objects.push(meta);
        count += 1;
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(k: &str) -> ObjectMeta {
        ObjectMeta {
            key: k.into(),
            size: 0,
            last_modified: SystemTime::UNIX_EPOCH,
            version: None,
        }
    }

    #[test]
    fn paging_with_delimiter_reports_each_prefix_once() {
        let keys = ["a/1", "a/2", "b", "c/x/1", "c/y", "d"];
        let mut req = ListRequest {
            prefix: String::new(),
            delimiter: true,
            limit: Some(1),
            ..Default::default()
        };
        let mut seen = vec![];
        loop {
            let p = page_from_sorted(&req, keys.iter().map(|k| meta(k)), 1000);
            seen.extend(p.objects.iter().map(|o| o.key.clone()));
            seen.extend(p.prefixes.iter().cloned());
            match p.next {
                Some(t) => req.token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, vec!["a/", "b", "c/", "d"]);
    }

    #[test]
    fn start_after_skips() {
        let keys = ["p/1", "p/2", "p/3", "q"];
        let req = ListRequest {
            prefix: "p/".into(),
            start_after: Some("p/1".into()),
            ..Default::default()
        };
        let p = page_from_sorted(&req, keys.iter().map(|k| meta(k)), 1000);
        let got: Vec<_> = p.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(got, vec!["p/2", "p/3"]);
        assert!(p.next.is_none());
    }
}
