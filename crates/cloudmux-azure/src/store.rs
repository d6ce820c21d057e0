//! [`AzureStore`]: the [`Store`] implementation for one container.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use azure_core::http::policies::Policy;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::{
    ClientOptions, Etag, NoFormat, Pipeline, RequestContent, RetryOptions, Transport,
};
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobClientGetPropertiesResultHeaders, BlockBlobClientUploadOptions,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use bytes::Bytes;
use cloudmux_core::{
    Capabilities, Error, ErrorKind, GetResult, ListPage, ListRequest, ObjectMeta, Op, PutMode,
    PutResult, Result, Store, UPath, Version,
};

use crate::config::{AzureConfig, Credential};
use crate::error::from_azure;
use crate::list;
use crate::sas::{SasPolicy, SasSource};

/// A [`Store`] over one Azure Blob Storage container.
///
/// - Versions are ETags exactly as the service sends them (quotes included).
/// - `PutMode::Create` sends `If-None-Match: *`, `PutMode::Update` sends
///   `If-Match`; [`delete_if`](Store::delete_if) is supported (`If-Match`).
/// - One attempt per request: the SDK's retry policy is off
///   (`RetryOptions::none()`) and so are reqwest's own retries, since a
///   retry of a create whose answer was lost would report a false
///   `AlreadyExists`. Every request of a [`UPath`]
///   goes through the core's [`Retry`](cloudmux_core::layers::Retry) layer,
///   which retries `Transient` failures and settles retried conditional
///   writes.
/// - `start_after` is emulated by skipping (declared in the capabilities).
pub struct AzureStore {
    config: AzureConfig,
    client: BlobContainerClient,
    /// The same policies and transport as `client`, for List Blobs with a delimiter.
    pipeline: Pipeline,
    /// The `x-ms-version` the SDK sends; the raw listing sends the same.
    api_version: String,
}

impl fmt::Debug for AzureStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config's Debug redacts the credential.
        f.debug_struct("AzureStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// An Azure client for one account, endpoint and credential: stores for any
/// number of containers share its HTTP connection pool, its policies and (for
/// an account key) the account SAS minted from the key.
///
/// Each [`AzureClient::new`] builds a new client; nothing is kept. Pooled
/// connections are served by the tokio runtime that opened them and do not
/// survive a `fork`: programs that run several runtimes in turn, or fork,
/// keep clients in a registry that rebuilds them (the `cloudmux` facade's
/// `Registry`). Cloning is cheap.
#[derive(Clone)]
pub struct AzureClient {
    /// Account, endpoint and credential; the container is set per store.
    config: AzureConfig,
    /// Authentication and the retry-less transport, shared by every store.
    client_options: ClientOptions,
    /// The same policies and transport, for List Blobs with a delimiter.
    pipeline: Pipeline,
}

impl fmt::Debug for AzureClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config's Debug redacts the credential.
        f.debug_struct("AzureClient")
            .field("account", &self.config.account)
            .field("endpoint", &self.config.endpoint.as_str())
            .field("credential", &self.config.credential)
            .finish_non_exhaustive()
    }
}

impl AzureClient {
    /// Builds a client for the account, endpoint and credential of `config`
    /// (its container is not used). Nothing is sent yet.
    ///
    /// # Errors
    /// `InvalidInput` for an Entra ID credential on a plain-http endpoint or an
    /// unusable endpoint; `PermissionDenied` when no Entra credential can be built.
    pub fn new(config: &AzureConfig) -> Result<Self> {
        let mut per_try: Vec<Arc<dyn Policy>> = Vec::new();
        let https = config.endpoint.scheme() == "https";
        let protocol = if https { "https" } else { "https,http" };
        match &config.credential {
            Credential::AccountKey(key) => per_try.push(Arc::new(SasPolicy {
                source: SasSource::Minted {
                    account: config.account.clone(),
                    key: key.clone(),
                    protocol,
                    clock: cloudmux_core::clock::system(),
                    cache: std::sync::Mutex::new(None),
                },
            })),
            Credential::Sas(tok) => per_try.push(Arc::new(SasPolicy {
                source: SasSource::Fixed(tok.clone()),
            })),
            Credential::EntraId => {
                if !https {
                    return Err(Error::invalid(
                        "open",
                        format!(
                            "Entra ID tokens are only sent over https, and {} is http: \
                             set {} (an account key or a SAS)",
                            config.endpoint,
                            crate::config::ENV_CONNECTION_STRING
                        ),
                    ));
                }
                let cred = crate::entra::credential()?;
                per_try.push(Arc::new(BearerTokenAuthorizationPolicy::new(
                    cred,
                    vec!["https://storage.azure.com/.default"],
                )));
            }
            Credential::Anonymous => {}
        }
        let client_options = ClientOptions {
            per_try_policies: per_try,
            retry: RetryOptions::none(),
            transport: Some(transport()?),
            ..Default::default()
        };
        let pipeline = Pipeline::new(
            Some("cloudmux-azure"),
            Some(env!("CARGO_PKG_VERSION")),
            client_options.clone(),
            Vec::new(),
            Vec::new(),
            None,
        );
        Ok(AzureClient {
            config: config.clone(),
            client_options,
            pipeline,
        })
    }

    /// A store for `container` on this client. Nothing is sent: a missing
    /// container shows up as `NotFound` on first use.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed container name or an endpoint that
    /// cannot carry a path.
    pub fn store(&self, container: &str) -> Result<AzureStore> {
        crate::location::check_container(container, container)?;
        let config = AzureConfig {
            container: container.to_string(),
            ..self.config.clone()
        };
        let defaults = BlobContainerClientOptions::default();
        let api_version = defaults.version.clone();
        let mut url = config.endpoint.clone();
        url.path_segments_mut()
            .map_err(|_| Error::invalid("open", "the endpoint cannot carry a path"))?
            .pop_if_empty()
            .push(&config.container);
        let client = BlobContainerClient::new(
            url,
            None,
            Some(BlobContainerClientOptions {
                client_options: self.client_options.clone(),
                ..defaults
            }),
        )
        .map_err(|e| from_azure(Op::Connect, &config.container, "", &e))?;
        Ok(AzureStore {
            config,
            client,
            pipeline: self.pipeline.clone(),
            api_version,
        })
    }

    /// Opens an Azure blob URL of this client's account as a path (see
    /// [`crate::open_url`] for the forms).
    ///
    /// # Errors
    /// `InvalidInput` for a malformed URL, or one of another account.
    pub fn open_url(&self, url: &str) -> Result<UPath> {
        let loc = crate::location::parse(url)?;
        if loc.account != self.config.account {
            return Err(Error::invalid(
                "open",
                format!(
                    "the URL names the account '{}', this client serves '{}'",
                    loc.account, self.config.account
                ),
            )
            .with_path(url.split(['?', '#']).next().unwrap_or_default()));
        }
        let store: Arc<dyn Store> = Arc::new(self.store(&loc.container)?);
        UPath::new(store, &loc.key)
    }
}

impl AzureStore {
    /// Builds a store (and a client of its own) from a configuration.
    /// Nothing is sent yet.
    ///
    /// # Errors
    /// As [`AzureClient::new`].
    pub fn new(config: AzureConfig) -> Result<Self> {
        AzureClient::new(&config)?.store(&config.container)
    }

    /// The configuration (its `Debug` hides the credential).
    pub fn config(&self) -> &AzureConfig {
        &self.config
    }

    /// Creates the container. Returns `false` when it existed already.
    ///
    /// # Errors
    /// `PermissionDenied`, `Transient` and the like.
    pub async fn create_container(&self) -> Result<bool> {
        match self.client.create(None).await {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = from_azure(Op::CreateBucket, &self.config.container, "", &e);
                if err.kind() == ErrorKind::AlreadyExists {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Deletes the container and everything in it (tests use it to clean up).
    ///
    /// # Errors
    /// `NotFound` when it does not exist; `PermissionDenied`, `Transient`.
    pub async fn delete_container(&self) -> Result<()> {
        self.client
            .delete(None)
            .await
            .map(|_| ())
            .map_err(|e| from_azure(Op::DeleteBucket, &self.config.container, "", &e))
    }

    fn err(&self, op: Op, key: &str, e: &azure_core::Error) -> Error {
        from_azure(op, &self.config.container, key, e)
    }
}

/// The HTTP transport: reqwest, as the SDK's default one, but with reqwest's
/// own retries off (one attempt per request) and no automatic decompression
/// (the SDK wants the bytes as sent).
fn transport() -> Result<Transport> {
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(20))
        .read_timeout(std::time::Duration::from_secs(60))
        // REST APIs do not redirect; following one would re-send the body.
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .build()
        .map_err(|e| {
            Error::new(ErrorKind::Other, Op::Connect.name())
                .with_message(format!("cannot build the HTTP client: {}", e.without_url()))
        })?;
    Ok(Transport::new(Arc::new(client)))
}

fn version_of(op: Op, key: &str, etag: Option<Etag>) -> Result<Version> {
    etag.map(|e| Version::new(e.to_string())).ok_or_else(|| {
        Error::new(ErrorKind::Other, op.name())
            .with_path(key)
            .with_message("the service sent no ETag")
    })
}

fn time_of(t: Option<time::OffsetDateTime>) -> SystemTime {
    t.map(SystemTime::from).unwrap_or(SystemTime::UNIX_EPOCH)
}

#[async_trait]
impl Store for AzureStore {
    fn root_url(&self) -> String {
        format!("az://{}/{}", self.config.account, self.config.container)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
            .with_conditional_delete(true)
            .with_list_start_after(false)
            .with_max_list_page(list::MAX_PAGE)
    }

    async fn get(&self, key: &str) -> Result<GetResult> {
        let blob = self.client.blob_client(key);
        let rsp = blob
            .download(None)
            .await
            .map_err(|e| self.err(Op::Get, key, &e))?;
        let props = rsp.properties;
        let bytes: Bytes = rsp
            .body
            .collect()
            .await
            .map_err(|e| self.err(Op::Get, key, &e))?;
        Ok(GetResult {
            meta: ObjectMeta {
                key: key.to_string(),
                size: bytes.len() as u64,
                last_modified: time_of(props.last_modified),
                version: Some(version_of(Op::Get, key, props.etag)?),
            },
            bytes,
        })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let rsp = self
            .client
            .blob_client(key)
            .get_properties(None)
            .await
            .map_err(|e| self.err(Op::Head, key, &e))?;
        let conv = |e: azure_core::Error| self.err(Op::Head, key, &e);
        Ok(ObjectMeta {
            key: key.to_string(),
            size: rsp.content_length().map_err(conv)?.unwrap_or(0),
            last_modified: time_of(rsp.last_modified().map_err(conv)?),
            version: Some(version_of(Op::Head, key, rsp.etag().map_err(conv)?)?),
        })
    }

    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutResult> {
        let op = mode.op();
        let opts = match &mode {
            PutMode::Overwrite => BlockBlobClientUploadOptions::default(),
            PutMode::Create => BlockBlobClientUploadOptions::default().if_not_exists(),
            PutMode::Update(v) => BlockBlobClientUploadOptions {
                if_match: Some(Etag::from(v.as_str())),
                ..Default::default()
            },
        };
        // `RequestContent::from` is an inherent fn taking Vec<u8>; the trait
        // conversion from Bytes avoids a copy.
        let content: RequestContent<Bytes, NoFormat> = Into::into(bytes);
        let rsp = self
            .client
            .blob_client(key)
            .upload(content, Some(opts))
            .await
            .map_err(|e| self.err(op, key, &e))?;
        Ok(PutResult {
            version: version_of(op, key, rsp.etag)?,
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.client.blob_client(key).delete(None).await {
            Ok(_) => Ok(()),
            // Deleting a missing blob succeeds; a missing container does not.
            Err(e) => match self.err(Op::Delete, key, &e) {
                err if err.is_not_found() && !err.is_bucket_missing() => Ok(()),
                err => Err(err),
            },
        }
    }

    async fn delete_if(&self, key: &str, version: &Version) -> Result<()> {
        let opts = BlobClientDeleteOptions {
            if_match: Some(Etag::from(version.as_str())),
            ..Default::default()
        };
        self.client
            .blob_client(key)
            .delete(Some(opts))
            .await
            .map(|_| ())
            .map_err(|e| self.err(Op::DeleteIf, key, &e))
    }

    async fn list(&self, req: ListRequest) -> Result<ListPage> {
        let url = self.client.url().clone();
        list::page(&req, |marker, max| {
            let url = url.clone();
            let req = &req;
            async move {
                list::fetch(
                    &self.pipeline,
                    &url,
                    &self.api_version,
                    &self.config.container,
                    req,
                    marker.as_deref(),
                    max,
                )
                .await
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_what_the_backend_does() {
        let cfg = AzureConfig::new("acct01", "ctr", Credential::Anonymous).unwrap();
        let s = AzureStore::new(cfg).unwrap();
        let caps = s.capabilities();
        // If-Match on Delete Blob: Azure and Azurite honour it.
        assert!(caps.conditional_delete);
        // List Blobs has no start-after: it is emulated by skipping.
        assert!(!caps.list_start_after);
        assert_eq!(caps.max_list_page, 5000);
        assert_eq!(caps.min_write_interval, std::time::Duration::ZERO);
    }
}
