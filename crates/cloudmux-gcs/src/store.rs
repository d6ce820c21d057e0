//! [`GcsStore`]: the [`Store`] implementation over the GCS JSON API.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use cloudmux_core::{
    Capabilities, Error, ErrorKind, GetResult, ListPage, ListRequest, ObjectMeta, Op, PutMode,
    PutResult, Result, Store, Version,
};
use gcloud_storage::client::Client;
use gcloud_storage::http::buckets::insert::{BucketCreationConfig, InsertBucketRequest};
use gcloud_storage::http::objects::Object;
use gcloud_storage::http::objects::delete::DeleteObjectRequest;
use gcloud_storage::http::objects::download::Range;
use gcloud_storage::http::objects::get::GetObjectRequest;
use gcloud_storage::http::objects::list::ListObjectsRequest;
use gcloud_storage::http::objects::upload::{UploadObjectRequest, UploadType};

use crate::config::GcsOptions;
use crate::error;

/// GCS allows about one write per second to any single object name; faster
/// rewrites of one name are answered with 429.
pub const MIN_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// The largest page one list request returns.
pub const MAX_LIST_PAGE: usize = 1000;

/// How often [`Store::get`] re-reads when the object is replaced between
/// reading its metadata and its bytes, before it reports `Transient`.
const GET_ATTEMPTS: usize = 5;

/// One GCS bucket as a [`Store`].
///
/// Keys are object names; the version token is the object's **generation**
/// (a decimal integer), not its ETag. Create is an upload with
/// `ifGenerationMatch=0`, compare-and-swap one with
/// `ifGenerationMatch=<generation>`, both as multipart uploads.
///
/// Cheap to clone around as `Arc<GcsStore>`; stores made by one
/// [`GcsClient`](crate::GcsClient) share its HTTP client.
#[derive(Clone)]
pub struct GcsStore {
    client: Client,
    bucket: String,
    endpoint: String,
}

impl fmt::Debug for GcsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsStore")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl GcsStore {
    /// A store for `bucket` with a new client built from `options`.
    ///
    /// The bucket is not checked here: operations on a missing bucket fail
    /// with `NotFound`.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed bucket name; `PermissionDenied` when no
    /// credentials are found or they are refused.
    pub async fn connect(bucket: &str, options: &GcsOptions) -> Result<Arc<GcsStore>> {
        crate::url::GsUrl::parse(&format!("gs://{bucket}"))?;
        crate::GcsClient::connect(options).await?.store(bucket)
    }

    pub(crate) fn with_client(client: Client, bucket: &str, options: &GcsOptions) -> GcsStore {
        GcsStore {
            client,
            bucket: bucket.to_string(),
            endpoint: options.endpoint_url().to_string(),
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket in `project`, in the `US` multi-region (emulators
    /// ignore both). Meant for tests and first-time setup.
    ///
    /// # Errors
    /// `AlreadyExists` when the name is taken; `PermissionDenied`.
    pub async fn create_bucket(&self, project: &str) -> Result<()> {
        let req = InsertBucketRequest {
            name: self.bucket.clone(),
            param: gcloud_storage::http::buckets::insert::InsertBucketParam {
                project: project.to_string(),
                ..Default::default()
            },
            bucket: BucketCreationConfig {
                location: "US".to_string(),
                ..Default::default()
            },
        };
        self.client
            .insert_bucket(&req)
            .await
            .map(|_| ())
            .map_err(|e| error::map(Op::CreateBucket, &e, &self.bucket, ""))
    }

    fn err(&self, op: Op, e: &gcloud_storage::http::Error, key: &str) -> Error {
        error::map(op, e, &self.bucket, key)
    }

    fn object_req(&self, key: &str) -> GetObjectRequest {
        GetObjectRequest {
            bucket: self.bucket.clone(),
            object: key.to_string(),
            ..Default::default()
        }
    }

    async fn metadata(&self, key: &str, op: Op) -> Result<Object> {
        self.client
            .get_object(&self.object_req(key))
            .await
            .map_err(|e| self.err(op, &e, key))
    }
}

/// Turns the service's object resource into core metadata.
fn meta_of(o: &Object) -> ObjectMeta {
    let when = o.updated.or(o.time_created).map(SystemTime::from);
    ObjectMeta {
        key: o.name.clone(),
        size: u64::try_from(o.size).unwrap_or(0),
        last_modified: when.unwrap_or(SystemTime::UNIX_EPOCH),
        version: Some(Version::new(o.generation.to_string())),
    }
}

/// The generation a version token stands for. Tokens of other backends, and
/// zero (which GCS reads as "no live object"), cannot match any object.
fn parse_generation(v: &Version) -> Option<i64> {
    v.as_str().parse::<i64>().ok().filter(|g| *g > 0)
}

/// The precondition of a write mode, as `ifGenerationMatch`.
fn if_generation_match(mode: &PutMode) -> std::result::Result<Option<i64>, ()> {
    match mode {
        PutMode::Overwrite => Ok(None),
        PutMode::Create => Ok(Some(0)),
        PutMode::Update(v) => parse_generation(v).map(Some).ok_or(()),
    }
}

/// Keeps only entries strictly after `start_after`. GCS's `startOffset` is
/// inclusive, and it reports the common prefix of the start key's own
/// directory; the contract wants neither.
fn trim_page(mut page: ListPage, start_after: Option<&str>) -> ListPage {
    if let Some(after) = start_after {
        page.objects.retain(|o| o.key.as_str() > after);
        page.prefixes.retain(|p| p.as_str() > after);
    }
    page
}

#[async_trait]
impl Store for GcsStore {
    fn root_url(&self) -> String {
        format!("gs://{}", self.bucket)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
            // fake-gcs-server ignores ifGenerationMatch on DELETE and deletes
            // anyway; see `delete_if`.
            .with_conditional_delete(false)
            .with_list_start_after(true)
            .with_min_write_interval(MIN_WRITE_INTERVAL)
            .with_max_list_page(MAX_LIST_PAGE)
    }

    async fn get(&self, key: &str) -> Result<GetResult> {
        // The media download does not report which generation it sent (the
        // SDK returns only the bytes), so read the metadata first and then
        // download exactly that generation. If the object was replaced in
        // between, that generation is gone (404): start over.
        for _ in 0..GET_ATTEMPTS {
            let o = self.metadata(key, Op::Get).await?;
            let req = GetObjectRequest {
                generation: Some(o.generation),
                ..self.object_req(key)
            };
            match self.client.download_object(&req, &Range::default()).await {
                Ok(bytes) => {
                    return Ok(GetResult {
                        bytes: Bytes::from(bytes),
                        meta: meta_of(&o),
                    });
                }
                Err(e) => {
                    let err = self.err(Op::Get, &e, key);
                    // A missing bucket is no replaced object.
                    if !err.is_not_found() || err.is_bucket_missing() {
                        return Err(err);
                    }
                    tracing::debug!(key, "object replaced while reading; reading again");
                }
            }
        }
        Err(Error::new(ErrorKind::Transient, "get")
            .with_path(key)
            .with_message(format!(
                "the object changed between metadata and download {GET_ATTEMPTS} times"
            )))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        Ok(meta_of(&self.metadata(key, Op::Head).await?))
    }

    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutResult> {
        let op = mode.op();
        let Ok(if_generation_match) = if_generation_match(&mode) else {
            return Err(Error::new(ErrorKind::Precondition, op.name())
                .with_path(key)
                .with_message("the version is not a GCS generation"));
        };
        let req = UploadObjectRequest {
            bucket: self.bucket.clone(),
            if_generation_match,
            ..Default::default()
        };
        // Multipart, never a media or resumable upload: fake-gcs-server
        // enforces ifGenerationMatch only on multipart uploads and silently
        // overwrites on the others.
        let upload = UploadType::Multipart(Box::new(Object {
            name: key.to_string(),
            content_type: Some("application/octet-stream".to_string()),
            ..Default::default()
        }));
        let o = self
            .client
            .upload_object(&req, bytes, &upload)
            .await
            .map_err(|e| self.err(op, &e, key))?;
        Ok(PutResult {
            version: Version::new(o.generation.to_string()),
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let req = DeleteObjectRequest {
            bucket: self.bucket.clone(),
            object: key.to_string(),
            ..Default::default()
        };
        match self.client.delete_object(&req).await {
            Ok(()) => Ok(()),
            Err(e) => match self.err(Op::Delete, &e, key) {
                // Deleting a missing object succeeds (a missing bucket does not).
                err if err.is_not_found() && !err.is_bucket_missing() => Ok(()),
                err => Err(err),
            },
        }
    }

    async fn delete_if(&self, key: &str, version: &Version) -> Result<()> {
        // GCS itself honours ifGenerationMatch on DELETE, but fake-gcs-server
        // ignores it and deletes whatever is there. A conditional delete that
        // may silently be unconditional is worse than none, so the capability
        // is not offered and no request is sent.
        let _ = version;
        Err(Error::new(ErrorKind::Unsupported, Op::DeleteIf.name())
            .with_path(key)
            .with_message("conditional delete is not offered by the GCS backend"))
    }

    async fn list(&self, req: ListRequest) -> Result<ListPage> {
        let limit = req.limit.map(|l| l.clamp(1, MAX_LIST_PAGE));
        let gcs = ListObjectsRequest {
            bucket: self.bucket.clone(),
            prefix: (!req.prefix.is_empty()).then(|| req.prefix.clone()),
            delimiter: req.delimiter.then(|| "/".to_string()),
            start_offset: req.start_after.clone(),
            page_token: req.token.clone(),
            max_results: limit.map(|l| l as i32),
            ..Default::default()
        };
        let resp = self
            .client
            .list_objects(&gcs)
            .await
            .map_err(|e| self.err(Op::List, &e, &req.prefix))?;
        let mut objects: Vec<ObjectMeta> =
            resp.items.unwrap_or_default().iter().map(meta_of).collect();
        let mut prefixes = resp.prefixes.unwrap_or_default();
        // GCS returns both sorted; sort anyway, cheaply, so an emulator's
        // ordering quirk cannot break the contract.
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        prefixes.sort();
        let page = ListPage {
            objects,
            prefixes,
            next: resp.next_page_token.filter(|t| !t.is_empty()),
        };
        Ok(trim_page(page, req.start_after.as_deref()))
    }
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
    fn write_modes_become_generation_preconditions() {
        assert_eq!(if_generation_match(&PutMode::Overwrite), Ok(None));
        assert_eq!(if_generation_match(&PutMode::Create), Ok(Some(0)));
        assert_eq!(
            if_generation_match(&PutMode::Update(Version::new("1795562124700855"))),
            Ok(Some(1_795_562_124_700_855))
        );
        // An ETag, or generation 0 (which would mean "create"), never matches.
        for bad in ["\"abc\"", "0", "-3", ""] {
            assert_eq!(
                if_generation_match(&PutMode::Update(Version::new(bad))),
                Err(()),
                "{bad}"
            );
        }
    }

    #[test]
    fn start_after_is_exclusive() {
        let page = ListPage {
            objects: vec![meta("p/a"), meta("p/b"), meta("p/c")],
            prefixes: vec!["p/b/".into(), "p/d/".into()],
            next: Some("t".into()),
        };
        let p = trim_page(page.clone(), Some("p/b"));
        let keys: Vec<_> = p.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["p/c"]);
        assert_eq!(p.prefixes, ["p/b/", "p/d/"]);
        // A start key inside a directory drops that directory's prefix.
        let p = trim_page(page.clone(), Some("p/b/x"));
        assert_eq!(p.prefixes, ["p/d/"]);
        assert_eq!(p.next.as_deref(), Some("t"));
        assert_eq!(trim_page(page.clone(), None), page);
    }

    #[test]
    fn object_metadata_uses_the_generation() {
        let o = Object {
            name: "k".into(),
            size: 5,
            generation: 42,
            etag: "CKih".into(),
            ..Default::default()
        };
        let m = meta_of(&o);
        assert_eq!(m.version, Some(Version::new("42")));
        assert_eq!(m.size, 5);
        assert_eq!(m.last_modified, SystemTime::UNIX_EPOCH);
    }
}
