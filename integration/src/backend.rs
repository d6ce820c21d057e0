//! Which backend the suite runs on: one arm per backend.
//!
//! Every check that applies to the backend calls [`setup`], which returns a
//! [`Backend`] whose root is a fresh place for this run of the test binary:
//! a new in-memory store, a new temporary directory, or a freshly created,
//! randomly named bucket or container (created once per run and shared by
//! the checks of that run). Parallel runs therefore never meet. A selected
//! backend that cannot be reached fails the check.
//!
//! To add a backend: a variant in [`Kind`], its name in [`Kind::from_env`],
//! an arm in `Kind::prepare` (the run's bucket or directory, made once per
//! process) and one in `Place::open` (a [`Backend`] per check: its root, the
//! [`SuiteConfig`] sizing the conformance checks, which read the backend's
//! capabilities from the store itself, and the environment its child
//! processes need).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cloudmux_core::testkit::SuiteConfig;
use cloudmux_core::util::nonce;
use cloudmux_core::{ErrorKind, InMemory, ListRequest, LocalFs, Store, UPath};
use cloudmux_s3::{S3Config, S3Store};
use tokio::sync::OnceCell;

/// The environment variable selecting the backend.
pub const BACKEND_VAR: &str = "CLOUDMUX_TEST_BACKEND";

/// The backends the suite knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The in-memory store of this process (the default).
    Memory,
    /// A fresh temporary directory.
    Local,
    /// S3 or an S3 emulator, configured by `CLOUDMUX_S3_*` and the AWS chain.
    S3,
    /// GCS or fake-gcs-server (`STORAGE_EMULATOR_HOST`), else Application
    /// Default Credentials.
    Gcs,
    /// Azure Blob Storage or Azurite, from `AZURE_STORAGE_CONNECTION_STRING`.
    Azure,
}

impl Kind {
    /// The backend named by `CLOUDMUX_TEST_BACKEND` (default `memory`).
    ///
    /// # Panics
    /// On an unknown name: a typo must not silently test the memory store.
    pub fn from_env() -> Kind {
        let v = std::env::var(BACKEND_VAR).unwrap_or_default();
        match v.trim().to_ascii_lowercase().as_str() {
            "" | "memory" | "mem" => Kind::Memory,
            "local" | "file" => Kind::Local,
            "s3" => Kind::S3,
            "gcs" | "gs" => Kind::Gcs,
            "azure" | "az" => Kind::Azure,
            other => {
                panic!("{BACKEND_VAR}={other:?} is not a backend (memory, local, s3, gcs, azure)")
            }
        }
    }

    /// True for the object stores reached through a cloud SDK (S3, GCS,
    /// Azure), whose clients a registry keeps.
    pub fn is_cloud(self) -> bool {
        matches!(self, Kind::S3 | Kind::Gcs | Kind::Azure)
    }

    /// The backend's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Local => "local",
            Kind::S3 => "s3",
            Kind::Gcs => "gcs",
            Kind::Azure => "azure",
        }
    }

    /// Prepares this run's place on the backend (once per process).
    async fn prepare(self) -> Result<Place, Unreachable> {
        match self {
            Kind::Memory => Ok(Place::Memory),
            Kind::Local => Ok(Place::Local(local_dir())),
            Kind::S3 => prepare_s3().await,
            Kind::Gcs => prepare_gcs().await,
            Kind::Azure => prepare_azure().await,
        }
    }
}

/// This run's place on the backend, shared by the tests of the run.
#[derive(Debug, Clone)]
enum Place {
    Memory,
    Local(std::path::PathBuf),
    S3 { bucket: String, prefix: String },
    Gcs { bucket: String },
    Azure { account: String, container: String },
}

impl Place {
    /// A backend handle for one test (its own client, on its own runtime).
    async fn open(&self, kind: Kind) -> Backend {
        match self {
            Place::Memory => Backend {
                kind,
                root: UPath::new(InMemory::new(), "suite").expect("valid key"),
                suite: SuiteConfig::default(),
                child_env: vec![],
                shared_across_processes: false,
            },
            Place::Local(dir) => Backend {
                kind,
                root: UPath::new(LocalFs::new(dir).expect("temp dir"), "suite").expect("valid key"),
                suite: SuiteConfig::default(),
                child_env: vec![],
                shared_across_processes: true,
            },
            Place::S3 { bucket, prefix } => open_s3(bucket, prefix).await,
            Place::Gcs { bucket } => open_gcs(bucket).await,
            Place::Azure { account, container } => open_azure(account, container),
        }
    }
}

/// A backend ready for one test.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Which backend.
    pub kind: Kind,
    /// A root the test may write below (checks add their own random prefix).
    pub root: UPath,
    /// What the conformance suite should expect of this backend.
    pub suite: SuiteConfig,
    /// Environment variables a child process needs to open [`Backend::root`]
    /// by its URL (endpoint, region; credentials are inherited).
    pub child_env: Vec<(String, String)>,
    /// Whether other OS processes can see this backend's objects (false for
    /// the in-memory store).
    pub shared_across_processes: bool,
}

/// Why a backend could not be reached.
#[derive(Debug)]
struct Unreachable(String);

/// The backend selected by the environment, with a fresh root for this run.
///
/// # Panics
/// When the selected backend cannot be reached (or refuses the setup): a
/// test that was asked to run on a backend fails without it, it never
/// passes unchecked.
pub async fn setup() -> Backend {
    static PLACE: OnceCell<Result<Place, String>> = OnceCell::const_new();
    let kind = Kind::from_env();
    let r = PLACE
        .get_or_init(|| async move { kind.prepare().await.map_err(|u| u.0) })
        .await;
    match r {
        Ok(place) => place.open(kind).await,
        Err(why) => panic!(
            "backend '{}' (selected by {BACKEND_VAR}) cannot be reached: {why}\n\
             Start the emulators with `bash localstack/run-tests.sh`, or one of them with \
             `CLOUDMUX_EMULATORS=<name> bash localstack/up.sh && source localstack/.state/env`.",
            kind.name()
        ),
    }
}

/// The conformance suite's setup: the root and the suite configuration.
pub async fn suite_root() -> (UPath, SuiteConfig) {
    let b = setup().await;
    (b.root, b.suite)
}

/// One temporary directory per run, kept (the tests of the run share it).
fn local_dir() -> std::path::PathBuf {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir").keep())
        .clone()
}

/// The S3 configuration from `CLOUDMUX_S3_*` and the AWS chain.
pub fn s3_config() -> S3Config {
    let mut cfg = S3Config::new();
    if let Some(e) = env("CLOUDMUX_S3_ENDPOINT") {
        cfg = cfg.endpoint(e);
    }
    if let Some(r) = env("CLOUDMUX_S3_REGION").or_else(|| env("AWS_REGION")) {
        cfg = cfg.region(r);
    }
    cfg
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

async fn prepare_s3() -> Result<Place, Unreachable> {
    let cfg = s3_config();
    let where_ = cfg
        .effective_endpoint()
        .unwrap_or_else(|| "AWS (no endpoint override)".into());
    let (bucket, prefix, create) = match env("CLOUDMUX_S3_BUCKET") {
        Some(b) => (b, format!("cmx-it-{}", &nonce()[..12]), false),
        None => (
            format!("cmx-it-{}", &nonce()[..16]),
            "suite".to_string(),
            true,
        ),
    };
    // Probe with a short connect timeout (and, as always, one attempt), so
    // an absent emulator is reported at once.
    let mut probe_cfg = cfg.clone();
    probe_cfg.connect_timeout = Duration::from_secs(3);
    let probe = S3Store::new(&bucket, &probe_cfg)
        .await
        .map_err(|e| Unreachable(e.to_string()))?;
    let probe_result = if create {
        probe.create_bucket().await
    } else {
        probe
            .list(ListRequest {
                prefix: format!("{prefix}/"),
                limit: Some(1),
                ..Default::default()
            })
            .await
            .map(|_| ())
    };
    match probe_result {
        Ok(()) => Ok(Place::S3 { bucket, prefix }),
        Err(e) if e.kind() == ErrorKind::Transient => {
            Err(Unreachable(format!("S3 at {where_}: {e}")))
        }
        // Reached, but refused: a configuration error, never a skip.
        Err(e) => panic!("S3 at {where_} answered, but setting up bucket '{bucket}' failed: {e}"),
    }
}

async fn open_s3(bucket: &str, prefix: &str) -> Backend {
    let cfg = s3_config();
    // Each test builds its own client: every test runs on a runtime of its
    // own, and an SDK client's pooled connections are served by the runtime
    // that opened them.
    let store = S3Store::new(bucket, &cfg)
        .await
        .expect("bucket name checked");
    let mut child_env = vec![];
    if let Some(e) = cfg.effective_endpoint() {
        child_env.push(("AWS_ENDPOINT_URL_S3".to_string(), e));
    }
    if let Some(r) = &cfg.region {
        child_env.push(("AWS_REGION".to_string(), r.clone()));
    }
    Backend {
        kind: Kind::S3,
        root: UPath::new(store as Arc<dyn Store>, prefix).expect("valid key"),
        suite: SuiteConfig::default(),
        child_env,
        shared_across_processes: true,
    }
}

/// A fresh, randomly named bucket on GCS or fake-gcs-server.
async fn prepare_gcs() -> Result<Place, Unreachable> {
    let opts = cloudmux_gcs::GcsOptions::from_env().connect_timeout(Duration::from_secs(3));
    let where_ = opts.endpoint_url().to_string();
    let bucket = format!("cmx-it-{}", &nonce()[..16]);
    let store = cloudmux_gcs::GcsStore::connect(&bucket, &opts)
        .await
        .map_err(|e| Unreachable(format!("GCS at {where_}: {e}")))?;
    match store.create_bucket("cloudmux-integration").await {
        Ok(()) => Ok(Place::Gcs { bucket }),
        Err(e) if e.kind() == ErrorKind::Transient => {
            Err(Unreachable(format!("GCS at {where_}: {e}")))
        }
        Err(e) => panic!("GCS at {where_} answered, but creating bucket '{bucket}' failed: {e}"),
    }
}

async fn open_gcs(bucket: &str) -> Backend {
    let opts = cloudmux_gcs::GcsOptions::from_env();
    let store = cloudmux_gcs::GcsStore::connect(bucket, &opts)
        .await
        .expect("bucket reached before");
    let mut child_env = vec![];
    if let Some(h) = env(cloudmux_gcs::EMULATOR_ENV) {
        child_env.push((cloudmux_gcs::EMULATOR_ENV.to_string(), h));
    }
    Backend {
        kind: Kind::Gcs,
        root: UPath::new(store as Arc<dyn Store>, "suite").expect("valid key"),
        // fake-gcs-server ignores the precondition of a conditional DELETE,
        // so the backend declares no conditional delete (and never sends one).
        suite: SuiteConfig::default(),
        child_env,
        shared_across_processes: true,
    }
}

/// The account named by the connection string (Azurite's by default).
fn azure_account() -> String {
    env("AZURE_STORAGE_CONNECTION_STRING")
        .and_then(|cs| {
            cs.split(';')
                .find_map(|p| p.trim().strip_prefix("AccountName=").map(str::to_string))
        })
        .unwrap_or_else(|| "devstoreaccount1".to_string())
}

fn azure_store(account: &str, container: &str) -> Result<Arc<cloudmux_azure::AzureStore>, String> {
    let loc = cloudmux_azure::location::parse(&format!("az://{account}/{container}"))
        .map_err(|e| e.to_string())?;
    let cfg = cloudmux_azure::AzureConfig::from_env(&loc).map_err(|e| e.to_string())?;
    cloudmux_azure::AzureStore::new(cfg)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// A fresh, randomly named container on Azure or Azurite.
async fn prepare_azure() -> Result<Place, Unreachable> {
    if env("AZURE_STORAGE_CONNECTION_STRING").is_none() && env("AZURE_STORAGE_SAS_TOKEN").is_none()
    {
        return Err(Unreachable(
            "AZURE_STORAGE_CONNECTION_STRING is not set (start Azurite with localstack/up.sh)"
                .into(),
        ));
    }
    let account = azure_account();
    let container = format!("cmx-it-{}", &nonce()[..16]);
    let store = azure_store(&account, &container).map_err(Unreachable)?;
    match store.create_container().await {
        Ok(_) => Ok(Place::Azure { account, container }),
        Err(e) if e.kind() == ErrorKind::Transient => {
            Err(Unreachable(format!("Azure account {account}: {e}")))
        }
        Err(e) => panic!("Azure answered, but creating container '{container}' failed: {e}"),
    }
}

fn open_azure(account: &str, container: &str) -> Backend {
    let store = azure_store(account, container).expect("configuration checked before");
    Backend {
        kind: Kind::Azure,
        root: UPath::new(store as Arc<dyn Store>, "suite").expect("valid key"),
        suite: SuiteConfig::default(),
        // The connection string is inherited by child processes.
        child_env: vec![],
        shared_across_processes: true,
    }
}
