//! [`Registry`]: the cloud backends' clients, one per configuration, rebuilt
//! when they can no longer work.
//!
//! An SDK client owns a connection pool, and the pool's connections are
//! served by tasks on the tokio runtime that opened them. Two things break
//! such a client for good, and a client kept in a process-wide static meets
//! both:
//!
//! - **the runtime that built it shut down** (a program, or a test harness,
//!   that runs runtimes one after another): its connection tasks are gone;
//! - **the process forked**: the child inherits the client, but the
//!   connections' tasks live in threads that only the parent has, and the
//!   sockets are shared with the parent.
//!
//! A registry hands out one client per (backend, configuration): the
//! endpoint and credentials identity of S3 and GCS, and (account, endpoint,
//! credential) on Azure, so that every bucket or container of one account
//! shares one pool. Before handing out a client it checks that it was built
//! in this process and that the runtime that built it still runs, and builds
//! a new one otherwise. A client inherited from a parent process is never
//! dropped in the child (dropping it could touch sockets the parent still
//! uses): it is left alone, a small one-time leak per fork.
//!
//! [`Registry::global`] is the registry of [`crate::path()`] and
//! [`crate::AnyResolver`]; build your own with [`Registry::new`] to give the
//! backends configurations other than the environment's.
//!
//! A registry only keeps clients: credentials stay inside them and are never
//! part of its `Debug` output or of an error.
//!
//! ```
//! # tokio_test::block_on(async {
//! use cloudmux::{Registry, Resolver};
//! let registry = Registry::new();
//! let p = registry.resolve("mem://registry-doc/a.txt").await?;
//! p.write_text("hi").await?;
//! assert_eq!(cloudmux::path("mem://registry-doc/a.txt").await?.read_text().await?, "hi");
//! # Ok::<_, cloudmux::Error>(()) }).unwrap();
//! ```

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use cloudmux_core::{Error, Resolver, Result, UPath};

/// A flag that is true while the tokio runtime it watches runs.
#[derive(Debug, Clone)]
struct RuntimeAlive(Arc<AtomicBool>);

/// Flips the flag when dropped.
struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl RuntimeAlive {
    /// Watches the current tokio runtime; `None` outside of one.
    fn current() -> Option<RuntimeAlive> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let alive = Arc::new(AtomicBool::new(true));
        let guard = ClearOnDrop(alive.clone());
        // A task that never finishes: the runtime drops it, and so clears the
        // flag, exactly when it shuts down.
        drop(handle.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        }));
        Some(RuntimeAlive(alive))
    }

    fn is_alive(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// One client and where it may be used.
struct Slot<C> {
    client: C,
    /// The process that built it.
    pid: u32,
    /// The runtime that built it.
    runtime: RuntimeAlive,
}

/// Clients by key, each handed out only in the process, and while the
/// runtime, that built it.
struct Slots<K, C> {
    map: Mutex<HashMap<K, Slot<C>>>,
}

impl<K, C> Default for Slots<K, C> {
    fn default() -> Self {
        Slots {
            map: Mutex::new(HashMap::new()),
        }
    }
}

#[cfg_attr(
    not(any(feature = "s3", feature = "gcs", feature = "azure")),
    allow(dead_code)
)]
impl<K: Eq + Hash, C: Clone> Slots<K, C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Slot<C>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client for `key`, if one that still works is kept.
    fn get(&self, key: &K) -> Option<C> {
        let mut map = self.lock();
        let slot = map.get(key)?;
        let pid = std::process::id();
        if slot.pid == pid && slot.runtime.is_alive() {
            return Some(slot.client.clone());
        }
        let stale = map.remove(key).expect("just found");
        if stale.pid != pid {
            // Built before a fork: its connections are the parent's. Dropping
            // it could deregister sockets the parent still uses; leave it.
            std::mem::forget(stale);
        }
        None
    }

    /// Keeps `client` for `key` and returns the client to use: `client`, or
    /// one that another caller kept in the meantime. Outside a tokio runtime
    /// nothing is kept.
    fn insert(&self, key: K, client: C) -> C {
        let Some(runtime) = RuntimeAlive::current() else {
            return client;
        };
        let mut map = self.lock();
        let pid = std::process::id();
        if let Some(slot) = map.get(&key)
            && slot.pid == pid
            && slot.runtime.is_alive()
        {
            return slot.client.clone();
        }
        let slot = Slot {
            client: client.clone(),
            pid,
            runtime,
        };
        if let Some(old) = map.insert(key, slot)
            && old.pid != pid
        {
            std::mem::forget(old);
        }
        client
    }

    /// The number of clients kept (usable or not yet found stale).
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The clients of the cloud backends compiled into this build, one per
/// configuration, rebuilt after a `fork` or when the tokio runtime that
/// built them has shut down (see the [module docs](self)).
///
/// It implements [`Resolver`]: `registry.resolve(url)` opens any URL of this
/// build (see the [crate docs](crate)).
pub struct Registry {
    /// The S3 configuration; `None` for the environment's.
    #[cfg(feature = "s3")]
    s3_config: Option<cloudmux_s3::S3Config>,
    #[cfg(feature = "s3")]
    s3: Slots<cloudmux_s3::S3Config, cloudmux_s3::S3Client>,
    /// The GCS options; `None` for the environment's.
    #[cfg(feature = "gcs")]
    gcs_options: Option<cloudmux_gcs::GcsOptions>,
    #[cfg(feature = "gcs")]
    gcs: Slots<cloudmux_gcs::GcsOptions, cloudmux_gcs::GcsClient>,
    /// Keyed by account, endpoint and credential (the container left empty).
    #[cfg(feature = "azure")]
    azure: Slots<cloudmux_azure::AzureConfig, cloudmux_azure::AzureClient>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Counts only: configurations hold credentials.
        let mut d = f.debug_struct("Registry");
        #[cfg(feature = "s3")]
        d.field("s3_clients", &self.s3.len());
        #[cfg(feature = "gcs")]
        d.field("gcs_clients", &self.gcs.len());
        #[cfg(feature = "azure")]
        d.field("azure_clients", &self.azure.len());
        d.finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// An empty registry whose backends take their configuration from the
    /// environment (endpoints, regions, credentials), as the command line
    /// and the workers do.
    pub fn new() -> Registry {
        Registry {
            #[cfg(feature = "s3")]
            s3_config: None,
            #[cfg(feature = "s3")]
            s3: Slots::default(),
            #[cfg(feature = "gcs")]
            gcs_options: None,
            #[cfg(feature = "gcs")]
            gcs: Slots::default(),
            #[cfg(feature = "azure")]
            azure: Slots::default(),
        }
    }

    /// The process-wide registry, used by [`crate::path()`] and
    /// [`crate::AnyResolver`].
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(Registry::new)
    }

    /// Uses this S3 configuration for `s3://` URLs instead of the
    /// environment's.
    #[cfg(feature = "s3")]
    pub fn with_s3_config(mut self, config: cloudmux_s3::S3Config) -> Self {
        self.s3_config = Some(config);
        self
    }

    /// Uses these GCS options for `gs://` URLs instead of the environment's
    /// ([`GcsOptions::from_env`](cloudmux_gcs::GcsOptions::from_env)).
    #[cfg(feature = "gcs")]
    pub fn with_gcs_options(mut self, options: cloudmux_gcs::GcsOptions) -> Self {
        self.gcs_options = Some(options);
        self
    }

    /// The number of clients kept, over all backends.
    pub fn len(&self) -> usize {
        #[allow(unused_mut)]
        let mut n = 0;
        #[cfg(feature = "s3")]
        {
            n += self.s3.len();
        }
        #[cfg(feature = "gcs")]
        {
            n += self.gcs.len();
        }
        #[cfg(feature = "azure")]
        {
            n += self.azure.len();
        }
        n
    }

    /// True when no client is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(feature = "s3")]
    async fn s3(&self, url: &str) -> Result<UPath> {
        // A malformed URL fails before the AWS chain is loaded.
        cloudmux_s3::parse_url(url)?;
        let config = self
            .s3_config
            .clone()
            .unwrap_or_default()
            .with_env_endpoint();
        let client = match self.s3.get(&config) {
            Some(c) => c,
            None => {
                let c = cloudmux_s3::S3Client::new(&config).await;
                self.s3.insert(config, c)
            }
        };
        client.open_url(url)
    }

    #[cfg(feature = "gcs")]
    async fn gcs(&self, url: &str) -> Result<UPath> {
        // A malformed URL or key fails before credentials are looked up.
        let u = cloudmux_gcs::GsUrl::parse(url)?;
        cloudmux_core::key::validate_key(&u.prefix, true).map_err(|e| e.set_path(url))?;
        let options = self
            .gcs_options
            .clone()
            .unwrap_or_else(cloudmux_gcs::GcsOptions::from_env);
        let client = match self.gcs.get(&options) {
            Some(c) => c,
            None => {
                let c = cloudmux_gcs::GcsClient::connect(&options).await?;
                self.gcs.insert(options, c)
            }
        };
        client.open_url(url)
    }

    #[cfg(feature = "azure")]
    fn azure(&self, url: &str) -> Result<UPath> {
        let loc = cloudmux_azure::location::parse(url)?;
        let config = cloudmux_azure::AzureConfig::from_env(&loc)?;
        let key = cloudmux_azure::AzureConfig {
            container: String::new(),
            ..config.clone()
        };
        let client = match self.azure.get(&key) {
            Some(c) => c,
            None => {
                let c = cloudmux_azure::AzureClient::new(&config)?;
                self.azure.insert(key, c)
            }
        };
        client.open_url(url)
    }
}

#[async_trait]
impl Resolver for Registry {
    async fn resolve(&self, url: &str) -> Result<UPath> {
        let scheme = url.split_once("://").map(|(s, _)| s);
        match scheme {
            None | Some("file") | Some("mem") => UPath::parse(url),
            #[cfg(feature = "gcs")]
            Some("gs") => self.gcs(url).await,
            #[cfg(feature = "azure")]
            Some("az") => self.azure(url),
            // http(s) only for blob-storage hosts and the emulator's path style.
            #[cfg(feature = "azure")]
            Some("https" | "http") if cloudmux_azure::is_azure_url(url) => self.azure(url),
            #[cfg(feature = "s3")]
            Some("s3") => self.s3(url).await,
            Some(other) => Err(Error::invalid(
                "resolve",
                format!(
                    "the scheme '{other}' is not supported by this build \
                     (enable the cloudmux features s3, gcs or azure)"
                ),
            )
            .with_path(url)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A client that counts how many of its kind were dropped.
    #[derive(Clone)]
    struct Counted(Arc<Drops>);
    struct Drops {
        id: usize,
        dropped: Arc<AtomicUsize>,
    }
    impl Drop for Drops {
        fn drop(&mut self) {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn counted(id: usize, dropped: &Arc<AtomicUsize>) -> Counted {
        Counted(Arc::new(Drops {
            id,
            dropped: dropped.clone(),
        }))
    }

    fn runtime(multi: bool) -> tokio::runtime::Runtime {
        let mut b = if multi {
            tokio::runtime::Builder::new_multi_thread()
        } else {
            tokio::runtime::Builder::new_current_thread()
        };
        b.worker_threads(2).enable_all().build().unwrap()
    }

    #[test]
    fn a_client_is_rebuilt_after_its_runtime_is_gone() {
        for multi in [false, true] {
            let slots: Slots<&str, Counted> = Slots::default();
            let dropped = Arc::new(AtomicUsize::new(0));
            let rt = runtime(multi);
            rt.block_on(async {
                assert!(slots.get(&"k").is_none());
                let c = slots.insert("k", counted(1, &dropped));
                assert_eq!(c.0.id, 1);
                // Shared while its runtime runs.
                let again = slots.get(&"k").expect("kept");
                assert!(Arc::ptr_eq(&c.0, &again.0));
            });
            drop(rt);
            let rt = runtime(multi);
            rt.block_on(async {
                assert!(slots.get(&"k").is_none(), "its runtime is gone");
                assert_eq!(
                    dropped.load(Ordering::SeqCst),
                    1,
                    "the stale one is dropped"
                );
                let c = slots.insert("k", counted(2, &dropped));
                assert_eq!(slots.get(&"k").expect("kept").0.id, 2);
                drop(c);
            });
            assert_eq!(slots.len(), 1);
        }
    }

    #[test]
    fn a_client_of_another_process_is_left_alone() {
        let slots: Slots<&str, Counted> = Slots::default();
        let dropped = Arc::new(AtomicUsize::new(0));
        let rt = runtime(false);
        rt.block_on(async {
            // As a forked child sees what its parent built.
            slots.lock().insert(
                "k",
                Slot {
                    client: counted(1, &dropped),
                    pid: std::process::id().wrapping_add(1),
                    runtime: RuntimeAlive::current().unwrap(),
                },
            );
            assert!(slots.get(&"k").is_none(), "built in another process");
            assert_eq!(dropped.load(Ordering::SeqCst), 0, "never dropped here");
            assert_eq!(slots.insert("k", counted(2, &dropped)).0.id, 2);
            assert_eq!(slots.get(&"k").unwrap().0.id, 2);
        });
    }

    #[test]
    fn nothing_is_kept_outside_a_runtime() {
        let slots: Slots<&str, Counted> = Slots::default();
        let dropped = Arc::new(AtomicUsize::new(0));
        let c = slots.insert("k", counted(1, &dropped));
        assert_eq!(c.0.id, 1);
        assert!(slots.get(&"k").is_none());
        assert_eq!(slots.len(), 0);
    }

    #[test]
    fn the_first_kept_client_wins_a_race() {
        let slots: Slots<&str, Counted> = Slots::default();
        let dropped = Arc::new(AtomicUsize::new(0));
        runtime(false).block_on(async {
            let a = slots.insert("k", counted(1, &dropped));
            let b = slots.insert("k", counted(2, &dropped));
            assert!(Arc::ptr_eq(&a.0, &b.0), "one client per key");
        });
    }

    #[cfg(feature = "s3")]
    #[tokio::test]
    async fn one_s3_client_per_configuration() {
        let r = Registry::new().with_s3_config(
            cloudmux_s3::S3Config::new()
                .endpoint("http://127.0.0.1:9")
                .region("us-east-1"),
        );
        let a = r.resolve("s3://bucket-a/x").await.unwrap();
        let b = r.resolve("s3://bucket-b").await.unwrap();
        assert_eq!(a.to_string(), "s3://bucket-a/x");
        assert_eq!(b.to_string(), "s3://bucket-b");
        assert_eq!(r.s3.len(), 1, "buckets share a client");
        // Credentials never show.
        let r3 = Registry::new().with_s3_config(
            cloudmux_s3::S3Config::new()
                .endpoint("http://127.0.0.1:9")
                .static_credentials("AKIDSHOWNNOWHERE", "VERYSECRET"),
        );
        r3.resolve("s3://bucket-c").await.unwrap();
        let shown = format!("{r3:?} {:?}", r3.s3.get(&r3.s3_config.clone().unwrap()));
        assert!(
            !shown.contains("VERYSECRET") && !shown.contains("AKIDSHOWN"),
            "{shown}"
        );
        // A malformed URL is refused before any client is built.
        let r2 = Registry::new();
        assert!(r2.resolve("s3://bad bucket/x").await.is_err());
        assert!(r2.is_empty());
    }

    #[cfg(feature = "azure")]
    #[tokio::test]
    async fn one_azure_client_per_account_and_secrets_stay_out_of_debug() {
        let r = Registry::new();
        let a = r.resolve("az://devstoreaccount1/ctr-a/x").await.unwrap();
        let b = r
            .resolve("http://127.0.0.1:10000/devstoreaccount1/ctr-b")
            .await
            .unwrap();
        assert_eq!(a.to_string(), "az://devstoreaccount1/ctr-a/x");
        assert_eq!(b.to_string(), "az://devstoreaccount1/ctr-b");
        let shown = format!("{r:?}");
        assert!(!shown.contains("Eby8"), "{shown}");
        if std::env::var_os(cloudmux_azure::config::ENV_CONNECTION_STRING).is_none() {
            // Both forms name the emulator's development account.
            assert_eq!(r.azure.len(), 1, "{shown}");
        }
    }
}
