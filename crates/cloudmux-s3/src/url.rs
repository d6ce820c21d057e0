//! `s3://bucket/prefix` URLs.

use cloudmux_core::{Error, Result, UPath};

use crate::client::S3Client;
use crate::config::S3Config;

/// Splits `s3://bucket/optional/prefix` into the bucket and the key prefix
/// (without leading or trailing `/`).
///
/// # Errors
/// `InvalidInput` for another scheme, a missing or malformed bucket name, or a
/// query or fragment.
///
/// ```
/// let (b, k) = cloudmux_s3::parse_url("s3://my-bucket/runs/7/").unwrap();
/// assert_eq!((b.as_str(), k.as_str()), ("my-bucket", "runs/7"));
/// assert!(cloudmux_s3::parse_url("gs://my-bucket").is_err());
/// ```
pub fn parse_url(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| {
        Error::invalid("parse", "an S3 URL starts with s3://").with_path(url.to_string())
    })?;
    if rest.contains(['?', '#']) {
        return Err(Error::invalid(
            "parse",
            "an S3 URL has no query or fragment (s3://bucket/prefix)",
        )
        .with_path(url.to_string()));
    }
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    validate_bucket(bucket).map_err(|e| e.set_path(url.to_string()))?;
    Ok((bucket.to_string(), key.trim_end_matches('/').to_string()))
}

/// Checks a bucket name: 1 to 255 characters of `a-z A-Z 0-9 . - _`
/// (today's rules are stricter; legacy buckets may hold capitals and `_`).
pub(crate) fn validate_bucket(bucket: &str) -> Result<()> {
    if bucket.is_empty() {
        return Err(Error::invalid(
            "parse",
            "the S3 URL names no bucket (s3://bucket/prefix)",
        ));
    }
    let ok = bucket.len() <= 255
        && bucket
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'));
    if !ok {
        return Err(Error::invalid(
            "parse",
            format!("'{bucket}' is not a valid S3 bucket name"),
        ));
    }
    Ok(())
}

/// Opens `s3://bucket/optional/prefix` as a path on a new client built from
/// `config` (see [`S3Config`]; `S3Config::new()` takes everything from the
/// environment).
///
/// Every call builds its own client, and nothing is kept: to open many paths
/// on one client, build an [`S3Client`] and call [`S3Client::open_url`].
/// Nothing is sent until the path is used.
///
/// # Errors
/// `InvalidInput` for a malformed URL.
pub async fn open_url(url: &str, config: &S3Config) -> Result<UPath> {
    // Reject a bad URL before loading the AWS chain.
    parse_url(url)?;
    S3Client::new(config).await.open_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudmux_core::ErrorKind;

    #[test]
    fn good_urls() {
        let p = |u: &str| parse_url(u).unwrap();
        assert_eq!(p("s3://b"), ("b".into(), "".into()));
        assert_eq!(p("s3://b/"), ("b".into(), "".into()));
        assert_eq!(
            p("s3://my.bucket-1/a/b"),
            ("my.bucket-1".into(), "a/b".into())
        );
        assert_eq!(p("s3://b/a/b//"), ("b".into(), "a/b".into()));
        assert_eq!(
            p("s3://Legacy_Bucket/x"),
            ("Legacy_Bucket".into(), "x".into())
        );
    }

    #[test]
    fn bad_urls() {
        for u in [
            "",
            "s3:/b",
            "S3://b",
            "gs://b/x",
            "s3://",
            "s3:///key",
            "s3://bu cket/x",
            "s3://b?versionId=1",
            "s3://b/x#frag",
            "s3://user:pw@b/x",
        ] {
            let e = parse_url(u).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{u}: {e}");
        }
        let long = format!("s3://{}", "b".repeat(256));
        assert!(parse_url(&long).is_err());
    }

    #[tokio::test]
    async fn open_url_checks_keys() {
        let cfg = S3Config::new().region("us-east-1");
        let a = open_url("s3://bucket-a/x/y", &cfg).await.unwrap();
        assert_eq!(a.to_string(), "s3://bucket-a/x/y");
        assert_eq!(a.key(), "x/y");
        let client = S3Client::new(&cfg).await;
        let b = client.open_url("s3://bucket-b").unwrap();
        assert_eq!(b.to_string(), "s3://bucket-b");
        assert!(b.is_root());
        assert_eq!(a.store().root_url(), "s3://bucket-a");
        // A key breaking the key rules is refused before any request.
        let e = client.open_url("s3://bucket-a/x/../y").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.path(), Some("s3://bucket-a/x/../y"));
        let e = open_url("s3://bucket-a/x//y", &cfg).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = client.store("bu cket").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
