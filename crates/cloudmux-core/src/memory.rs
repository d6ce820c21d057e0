//! The in-memory backend: exact semantics, for fast protocol tests.
//!
//! [`InMemory`] keeps objects in a sorted map behind one lock. Every
//! operation is atomic and linearizable; versions are a store-wide counter, so
//! a version token never repeats (stricter than S3's content ETag).
//!
//! `mem://NAME/key` URLs resolve to a process-wide registry of named stores,
//! so two paths parsed from the same URL share their objects.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::clock::{self, Clock};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{
    Capabilities, GetResult, ListPage, ListRequest, ObjectMeta, PutMode, PutResult, Store, Version,
    page_from_sorted,
};

#[derive(Debug, Clone)]
struct Obj {
    bytes: Bytes,
    /// The store-wide generation of this write, as its version token (kept
    /// ready-made: listings copy it into every entry).
    version: Version,
    modified: SystemTime,
}

#[derive(Debug, Default)]
struct State {
    /// Keys are shared so that a listing copies them out cheaply.
    objects: BTreeMap<Arc<str>, Obj>,
    generation: u64,
}

/// A thread-safe in-memory object store.
///
/// ```
/// # tokio_test::block_on(async {
/// use cloudmux_core::{InMemory, Store, PutMode};
/// let store = InMemory::new();
/// store.put("a", "1".into(), PutMode::Create).await?;
/// let err = store.put("a", "2".into(), PutMode::Create).await.unwrap_err();
/// assert!(err.is_already_exists());
/// # Ok::<_, cloudmux_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct InMemory {
    name: String,
    state: RwLock<State>,
    clock: Arc<dyn Clock>,
}

impl Default for InMemory {
    fn default() -> Self {
        InMemory {
            name: "anonymous".into(),
            state: RwLock::new(State::default()),
            clock: clock::system(),
        }
    }
}

impl InMemory {
    /// A new, empty, unnamed store.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A new, empty store whose timestamps come from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(InMemory {
            clock,
            ..Self::default()
        })
    }

    /// The process-wide store registered under `name` (created on first use).
    /// `mem://NAME/...` URLs resolve here.
    pub fn named(name: &str) -> Arc<Self> {
        static REG: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
        let reg = REG.get_or_init(Default::default);
        let mut reg = reg.lock().unwrap();
        reg.entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(InMemory {
                    name: name.to_string(),
                    ..Self::default()
                })
            })
            .clone()
    }

    /// The number of objects stored.
    pub fn len(&self) -> usize {
        self.state.read().unwrap().objects.len()
    }

    /// True when no object is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn meta(key: &str, o: &Obj) -> ObjectMeta {
        ObjectMeta {
            key: key.to_string(),
            size: o.bytes.len() as u64,
            last_modified: o.modified,
            version: Some(o.version.clone()),
        }
    }
}

#[async_trait]
impl Store for InMemory {
    fn root_url(&self) -> String {
        format!("mem://{}", self.name)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default().with_conditional_delete(true)
    }

    async fn get(&self, key: &str) -> Result<GetResult> {
        let st = self.state.read().unwrap();
        match st.objects.get(key) {
            Some(o) => Ok(GetResult {
                bytes: o.bytes.clone(),
                meta: Self::meta(key, o),
            }),
            None => Err(Error::new(ErrorKind::NotFound, "get").with_path(key)),
        }
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let st = self.state.read().unwrap();
        match st.objects.get(key) {
            Some(o) => Ok(Self::meta(key, o)),
            None => Err(Error::new(ErrorKind::NotFound, "head").with_path(key)),
        }
    }

    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutResult> {
        let now = self.clock.now();
        let mut st = self.state.write().unwrap();
        match (&mode, st.objects.get(key)) {
            (PutMode::Create, Some(_)) => {
                return Err(Error::new(ErrorKind::AlreadyExists, "create").with_path(key));
            }
            (PutMode::Update(_), None) => {
                return Err(Error::new(ErrorKind::Precondition, "update")
                    .with_path(key)
                    .with_message("the object does not exist"));
            }
            (PutMode::Update(v), Some(o)) if *v != o.version => {
                return Err(Error::new(ErrorKind::Precondition, "update")
                    .with_path(key)
                    .with_message("the version changed"));
            }
            _ => {}
        }
        st.generation += 1;
        let version = Version::new(st.generation.to_string());
        st.objects.insert(
            Arc::from(key),
            Obj {
                bytes,
                version: version.clone(),
                modified: now,
            },
        );
        Ok(PutResult { version })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.state.write().unwrap().objects.remove(key);
        Ok(())
    }

    async fn delete_if(&self, key: &str, version: &Version) -> Result<()> {
        let mut st = self.state.write().unwrap();
        match st.objects.get(key) {
            Some(o) if o.version == *version => {
                st.objects.remove(key);
                Ok(())
            }
            _ => Err(Error::new(ErrorKind::Precondition, "delete_if").with_path(key)),
        }
    }

    async fn list(&self, req: ListRequest) -> Result<ListPage> {
        let after = match (&req.token, &req.start_after) {
            (Some(t), Some(s)) => Some(t.max(s)),
            (t, s) => t.as_ref().or(s.as_ref()),
        };
        let lower = match after {
            Some(a) if a.as_str() >= req.prefix.as_str() => Bound::Excluded(a.as_str()),
            _ => Bound::Included(req.prefix.as_str()),
        };
        if req.delimiter {
            let st = self.state.read().unwrap();
            let iter = st
                .objects
                .range::<str, _>((lower, Bound::Unbounded))
                .map(|(k, o)| Self::meta(k, o));
            return Ok(page_from_sorted(&req, iter, 1000));
        }
        // Without a delimiter a page is the next `limit` keys under the
        // prefix, plus one more to tell whether a next page exists. Copy
        // just those under the lock (reference counts, no strings) and
        // build the page after releasing it: many workers list while
        // others write, and a page of 1,000 fresh strings built under the
        // lock made every writer wait.
        let limit = req.limit.unwrap_or(1000).max(1);
        let mut picked: Vec<(Arc<str>, u64, Version, SystemTime)> = {
            let st = self.state.read().unwrap();
            st.objects
                .range::<str, _>((lower, Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(req.prefix.as_str()))
                .take(limit + 1)
                .map(|(k, o)| {
                    (
                        k.clone(),
                        o.bytes.len() as u64,
                        o.version.clone(),
                        o.modified,
                    )
                })
                .collect()
        };
        let more = picked.len() > limit;
        picked.truncate(limit);
        Ok(ListPage {
            next: if more {
                picked.last().map(|p| p.0.to_string())
            } else {
                None
            },
            objects: picked
                .into_iter()
                .map(|(key, size, version, last_modified)| ObjectMeta {
                    key: key.to_string(),
                    size,
                    last_modified,
                    version: Some(version),
                })
                .collect(),
            prefixes: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn keys(store: &InMemory, req: ListRequest) -> (Vec<String>, Option<String>) {
        let p = store.list(req).await.unwrap();
        (p.objects.into_iter().map(|o| o.key).collect(), p.next)
    }

    #[tokio::test]
    async fn pages_stop_at_the_prefix_and_chain_by_token() {
        let s = InMemory::new();
        for k in ["a/b", "a/b0", "a/b1", "a/b2", "a/bc", "a/c", "b"] {
            s.put(k, Bytes::from_static(b"x"), PutMode::Create)
                .await
                .unwrap();
        }
        let req = |token: Option<&str>, after: Option<&str>, limit| ListRequest {
            prefix: "a/b".into(),
            token: token.map(str::to_string),
            start_after: after.map(str::to_string),
            limit: Some(limit),
            ..Default::default()
        };
        // Exactly `limit` keys, and a token only when more keys follow.
        let (k, next) = keys(&s, req(None, None, 2)).await;
        assert_eq!(k, ["a/b", "a/b0"]);
        assert_eq!(next.as_deref(), Some("a/b0"));
        let (k, next) = keys(&s, req(next.as_deref(), None, 2)).await;
        assert_eq!(k, ["a/b1", "a/b2"]);
        let (k, next) = keys(&s, req(next.as_deref(), None, 2)).await;
        assert_eq!(k, ["a/bc"], "'a/c' and 'b' are outside the prefix");
        assert_eq!(next, None);
        // A page that ends exactly at the last key has no token.
        let (k, next) = keys(&s, req(None, Some("a/b1"), 2)).await;
        assert_eq!(k, ["a/b2", "a/bc"]);
        assert_eq!(next, None);
        // start_after before the prefix starts at the prefix; the larger
        // of token and start_after wins.
        let (k, _) = keys(&s, req(None, Some("a/a"), 1)).await;
        assert_eq!(k, ["a/b"]);
        let (k, _) = keys(&s, req(Some("a/b1"), Some("a/b"), 5)).await;
        assert_eq!(k, ["a/b2", "a/bc"]);
        let (k, _) = keys(&s, req(Some("a/b"), Some("a/b1"), 5)).await;
        assert_eq!(k, ["a/b2", "a/bc"]);
    }

    #[tokio::test]
    async fn listed_versions_match_the_written_ones() {
        let s = InMemory::new();
        let v1 = s
            .put("k", "1".into(), PutMode::Create)
            .await
            .unwrap()
            .version;
        let p = s.list(ListRequest::default()).await.unwrap();
        assert_eq!(p.objects[0].version.as_ref(), Some(&v1));
        let v2 = s
            .put("k", "2".into(), PutMode::Update(v1.clone()))
            .await
            .unwrap()
            .version;
        assert_ne!(v1, v2);
        let p = s.list(ListRequest::default()).await.unwrap();
        assert_eq!(p.objects[0].version.as_ref(), Some(&v2));
        assert!(s.delete_if("k", &v1).await.unwrap_err().is_precondition());
        s.delete_if("k", &v2).await.unwrap();
        assert!(s.is_empty());
    }
}
