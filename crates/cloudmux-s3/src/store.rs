//! [`S3Store`]: the [`Store`] trait over one S3 bucket.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use bytes::Bytes;
use cloudmux_core::{
    Capabilities, Error, ErrorKind, GetResult, ListPage, ListRequest, ObjectMeta, Op, PutMode,
    PutResult, Result, Store, Version,
};

use crate::config::{DEFAULT_REGION, S3Config};
use crate::error::from_sdk;

/// The largest page ListObjectsV2 returns.
const MAX_LIST_PAGE: usize = 1000;

/// One S3 bucket as a [`Store`]. Keys are the object keys; the root URL is
/// `s3://BUCKET`.
///
/// Version tokens are ETags exactly as S3 sends them, quotes included.
/// Create-if-absent is `If-None-Match: *` and compare-and-swap is
/// `If-Match: <etag>`. Conditional delete is not offered
/// ([`Capabilities::conditional_delete`] is false): LocalStack answers it with
/// 501 and nothing in cloudmux needs it.
///
/// Cloning is cheap: the SDK client is shared.
#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// A store for `bucket` with a new client built from `config`.
    ///
    /// # Errors
    /// `InvalidInput` when the bucket name is malformed. Credentials are
    /// resolved lazily, on the first request.
    pub async fn new(bucket: &str, config: &S3Config) -> Result<Arc<S3Store>> {
        crate::url::validate_bucket(bucket)?;
        crate::S3Client::new(config).await.store(bucket)
    }

    /// A store for `bucket` sharing an existing client (crate-internal, so
    /// no SDK type appears in the public API).
    pub(crate) fn with_client(client: aws_sdk_s3::Client, bucket: &str) -> Arc<S3Store> {
        Arc::new(S3Store {
            client,
            bucket: bucket.to_string(),
        })
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket (in the client's region).
    ///
    /// # Errors
    /// `AlreadyExists` when it exists (owned by anyone); `PermissionDenied`.
    pub async fn create_bucket(&self) -> Result<()> {
        let mut req = self.client.create_bucket().bucket(&self.bucket);
        let region = self
            .client
            .config()
            .region()
            .map(|r| r.as_ref().to_string())
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        // us-east-1 is the one region that must not be named here.
        if region != DEFAULT_REGION {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| from_sdk(Op::CreateBucket, &self.bucket, "", e))
    }

    /// Deletes the bucket, which must be empty.
    ///
    /// # Errors
    /// `NotFound` when it does not exist; `Other` when it is not empty.
    pub async fn delete_bucket(&self) -> Result<()> {
        self.client
            .delete_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| from_sdk(Op::DeleteBucket, &self.bucket, "", e))
    }

    fn meta(
        &self,
        key: String,
        size: Option<i64>,
        modified: Option<&DateTime>,
        etag: Option<&str>,
    ) -> ObjectMeta {
        ObjectMeta {
            key,
            size: size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            last_modified: modified
                .and_then(|d| SystemTime::try_from(*d).ok())
                .unwrap_or(SystemTime::UNIX_EPOCH),
            version: etag.map(Version::new),
        }
    }

    fn missing_etag(&self, op: Op, key: &str) -> Error {
        Error::new(ErrorKind::Other, op.name())
            .with_path(key.to_string())
            .with_message(format!(
                "S3 sent no ETag (bucket '{}'): cannot compare-and-swap on this store",
                self.bucket
            ))
    }
}

#[async_trait]
impl Store for S3Store {
    fn root_url(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
            .with_conditional_delete(false)
            .with_list_start_after(true)
            .with_max_list_page(MAX_LIST_PAGE)
    }

    async fn get(&self, key: &str) -> Result<GetResult> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| from_sdk(Op::Get, &self.bucket, key, e))?;
        let etag = out
            .e_tag()
            .ok_or_else(|| self.missing_etag(Op::Get, key))?
            .to_string();
        let meta = self.meta(
            key.to_string(),
            out.content_length(),
            out.last_modified(),
            Some(&etag),
        );
        let bytes = out.body.collect().await.map_err(|e| {
            // The body broke off mid-way: the connection, not the object.
            Error::new(ErrorKind::Transient, "get")
                .with_path(key.to_string())
                .with_message(format!(
                    "reading the body from bucket '{}' failed: {e}",
                    self.bucket
                ))
        })?;
        let bytes = bytes.into_bytes();
        let meta = ObjectMeta {
            size: bytes.len() as u64,
            ..meta
        };
        Ok(GetResult { bytes, meta })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| from_sdk(Op::Head, &self.bucket, key, e))?;
        let etag = out
            .e_tag()
            .ok_or_else(|| self.missing_etag(Op::Head, key))?;
        Ok(self.meta(
            key.to_string(),
            out.content_length(),
            out.last_modified(),
            Some(etag),
        ))
    }

    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutResult> {
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes));
        // One attempt per request (the client makes no retries of its own):
        // a retry of a conditional write whose response was lost would meet
        // its own object and report a lost race. The UPath layer retries
        // and settles such outcomes by reading the object back.
        let op = mode.op();
        let out = match mode {
            PutMode::Overwrite => req.send().await,
            PutMode::Create => req.if_none_match("*").send().await,
            PutMode::Update(v) => req.if_match(v.as_str()).send().await,
        };
        let out = out.map_err(|e| from_sdk(op, &self.bucket, key, e))?;
        match out.e_tag() {
            Some(etag) => Ok(PutResult {
                version: Version::new(etag),
            }),
            None => Err(self.missing_etag(op, key)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let r = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| from_sdk(Op::Delete, &self.bucket, key, e));
        match r {
            Ok(_) => Ok(()),
            // S3 answers 204 for a missing key; some compatibles answer 404
            // NoSuchKey. Either way the key is gone, which is what was asked.
            Err(e) if e.is_not_found() && !e.is_bucket_missing() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, req: ListRequest) -> Result<ListPage> {
        let limit = req.limit.unwrap_or(MAX_LIST_PAGE).clamp(1, MAX_LIST_PAGE);
        let mut call = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .max_keys(i32::try_from(limit).unwrap_or(1000));
        if !req.prefix.is_empty() {
            call = call.prefix(&req.prefix);
        }
        if req.delimiter {
            call = call.delimiter("/");
        }
        if let Some(s) = &req.start_after {
            call = call.start_after(s);
        }
        if let Some(t) = &req.token {
            call = call.continuation_token(t);
        }
        let out = call
            .send()
            .await
            .map_err(|e| from_sdk(Op::List, &self.bucket, &req.prefix, e))?;
        let mut objects: Vec<ObjectMeta> = out
            .contents()
            .iter()
            .filter_map(|o| {
                let key = o.key()?.to_string();
                Some(self.meta(key, o.size(), o.last_modified(), o.e_tag()))
            })
            .collect();
        let mut prefixes: Vec<String> = out
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix().map(str::to_string))
            .collect();
        // S3 sorts by UTF-8 bytes already; compatibles are not all careful.
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        prefixes.sort();
        let next = if out.is_truncated() == Some(true) {
            out.next_continuation_token().map(str::to_string)
        } else {
            None
        };
        Ok(ListPage {
            objects,
            prefixes,
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capabilities_are_what_the_backend_does() {
        let cfg = S3Config::new()
            .endpoint("http://127.0.0.1:9")
            .region("us-east-1");
        let s = S3Store::new("b", &cfg).await.unwrap();
        let caps = s.capabilities();
        // LocalStack answers a conditional delete with 501: not offered
        // (and `delete_if` answers Unsupported without a request).
        assert!(!caps.conditional_delete);
        // ListObjectsV2 has StartAfter.
        assert!(caps.list_start_after);
        assert_eq!(caps.max_list_page, 1000);
        assert_eq!(caps.min_write_interval, std::time::Duration::ZERO);
        let e = s.delete_if("k", &Version::new("\"v\"")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }
}
