//! `gs://bucket/optional/prefix` URLs.

use cloudmux_core::{Error, Result};

/// A parsed `gs://` URL: a bucket and a key prefix inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GsUrl {
    /// The bucket name.
    pub bucket: String,
    /// The key below the bucket, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl GsUrl {
    /// Parses `gs://BUCKET` or `gs://BUCKET/prefix/...`.
    ///
    /// Like every cloudmux URL, the part after the bucket is not
    /// percent-decoded: each character is part of the key. Trailing slashes
    /// are dropped. The prefix is checked by the core's key rules when it
    /// becomes a path.
    ///
    /// # Errors
    /// `InvalidInput` for another scheme or a malformed bucket name.
    pub fn parse(url: &str) -> Result<GsUrl> {
        let bad = |why: &str| Error::invalid("parse", why.to_string()).with_path(url);
        let rest = url
            .strip_prefix("gs://")
            .ok_or_else(|| bad("a GCS URL starts with gs://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("the URL names no bucket (gs://BUCKET/prefix)"));
        }
        check_bucket(bucket).map_err(|why| bad(&format!("bad bucket name '{bucket}': {why}")))?;
        Ok(GsUrl {
            bucket: bucket.to_string(),
            prefix: prefix.trim_end_matches('/').to_string(),
        })
    }
}

/// Google's bucket naming rules: 3 to 63 characters (up to 222 when dotted,
/// each dot-separated part at most 63), lowercase letters, digits, `-`, `_`
/// and `.`, starting and ending with a letter or digit.
fn check_bucket(name: &str) -> std::result::Result<(), &'static str> {
    let max = if name.contains('.') { 222 } else { 63 };
    if name.len() < 3 || name.len() > max {
        return Err("it must have 3 to 63 characters (222 with dots)");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    {
        return Err("only lowercase letters, digits, '-', '_' and '.' are allowed");
    }
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edge_ok(name.bytes().next()) || !edge_ok(name.bytes().last()) {
        return Err("it must start and end with a letter or digit");
    }
    if name
        .split('.')
        .any(|part| part.is_empty() || part.len() > 63)
    {
        return Err("each dot-separated part must have 1 to 63 characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudmux_core::ErrorKind;

    fn ok(url: &str) -> (String, String) {
        let u = GsUrl::parse(url).unwrap();
        (u.bucket, u.prefix)
    }

    #[test]
    fn bucket_and_prefix() {
        assert_eq!(ok("gs://my-bucket"), ("my-bucket".into(), "".into()));
        assert_eq!(ok("gs://my-bucket/"), ("my-bucket".into(), "".into()));
        assert_eq!(ok("gs://b_1/a/b/c"), ("b_1".into(), "a/b/c".into()));
        assert_eq!(
            ok("gs://b.example.com/runs/"),
            ("b.example.com".into(), "runs".into())
        );
        // Not percent-decoded: the key holds exactly these characters.
        assert_eq!(ok("gs://abc/x%20y?z"), ("abc".into(), "x%20y?z".into()));
    }

    #[test]
    fn bad_urls_are_invalid_input() {
        for url in [
            "s3://bucket/x",
            "gs:/bucket",
            "GS://bucket",
            "gs://",
            "gs:///prefix",
            "gs://ab",
            "gs://Upper",
            "gs://-start",
            "gs://end-",
            "gs://has space",
            "gs://a..b",
            "gs://user:pw@host",
        ] {
            let e = GsUrl::parse(url).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{url}");
            assert_eq!(e.path(), Some(url), "{url}");
        }
        let long = format!("gs://{}", "a".repeat(64));
        assert!(GsUrl::parse(&long).is_err());
        let dotted = format!("gs://{}.{}", "a".repeat(63), "b".repeat(63));
        assert!(GsUrl::parse(&dotted).is_ok());
    }
}
