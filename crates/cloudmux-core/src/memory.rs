//! The in-memory backend: exact semantics, for fast protocol tests.
//!
//! [`InMemory`] keeps objects in a sorted map behind one mutex. Every
//! operation is atomic and linearizable; versions are a store-wide counter, so
//! a version token never repeats (stricter than S3's content ETag).
//!
//! `mem://NAME/key` URLs resolve to a process-wide registry of named stores,
//! so two paths parsed from the same URL share their objects.

use std::collections::{BTreeMap, HashMap};
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
    generation: u64,
    modified: SystemTime,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, Obj>,
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
            version: Some(Version::new(o.generation.to_string())),
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
            (PutMode::Update(v), Some(o)) if v.as_str() != o.generation.to_string() => {
                return Err(Error::new(ErrorKind::Precondition, "update")
                    .with_path(key)
                    .with_message("the version changed"));
            }
            _ => {}
        }
        st.generation += 1;
        let generation = st.generation;
        st.objects.insert(
            key.to_string(),
            Obj {
                bytes,
                generation,
                modified: now,
            },
        );
        Ok(PutResult {
            version: Version::new(generation.to_string()),
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.state.write().unwrap().objects.remove(key);
        Ok(())
    }

    async fn delete_if(&self, key: &str, version: &Version) -> Result<()> {
        let mut st = self.state.write().unwrap();
        match st.objects.get(key) {
            Some(o) if o.generation.to_string() == version.as_str() => {
                st.objects.remove(key);
                Ok(())
            }
            _ => Err(Error::new(ErrorKind::Precondition, "delete_if").with_path(key)),
        }
    }

    async fn list(&self, req: ListRequest) -> Result<ListPage> {
        let st = self.state.read().unwrap();
        let start = match (&req.token, &req.start_after) {
            (Some(t), _) => t.clone().max(req.prefix.clone()),
            (None, Some(s)) => s.clone().max(req.prefix.clone()),
            (None, None) => req.prefix.clone(),
        };
        let iter = st.objects.range(start..).map(|(k, o)| Self::meta(k, o));
        Ok(page_from_sorted(&req, iter, 1000))
    }
}
