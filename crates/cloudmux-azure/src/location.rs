//! Parsing the three URL forms of an Azure blob path.
//!
//! | form | example |
//! |---|---|
//! | `az://` | `az://myacct/mycontainer/runs/1` |
//! | public endpoint | `https://myacct.blob.core.windows.net/mycontainer/runs/1` |
//! | emulator (path style) | `http://127.0.0.1:10000/devstoreaccount1/mycontainer/runs/1` |
//!
//! The `az://` form carries no endpoint: the store finds it in the connection
//! string (its `BlobEndpoint`, which is how `az://devstoreaccount1/...`
//! reaches Azurite) or uses the public cloud's.

use cloudmux_core::{Error, Result};
use url::Url;

/// Host suffixes of the public and sovereign clouds' blob endpoints.
const BLOB_HOST_SUFFIXES: &[&str] = &[
    ".blob.core.windows.net",
    ".blob.core.chinacloudapi.cn",
    ".blob.core.usgovcloudapi.net",
    ".blob.storage.azure.net",
];

/// Where an Azure blob path lives: account, container, key and, for the
/// `http(s)` forms, the endpoint the URL named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The storage account.
    pub account: String,
    /// The container.
    pub container: String,
    /// The key below the container (may be empty), without a leading `/`.
    pub key: String,
    /// The account's blob endpoint when the URL named one (`http(s)` forms):
    /// `https://acct.blob.core.windows.net` or `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: Option<Url>,
}

/// True when `url` is one this crate serves: `az://`, an `https://` URL on a
/// blob-storage host, or an `http(s)://` URL in the emulator's path style on
/// a loopback or `azurite` host.
pub fn is_azure_url(url: &str) -> bool {
    if url.starts_with("az://") {
        return true;
    }
    let Ok(u) = Url::parse(url) else {
        return false;
    };
    if !matches!(u.scheme(), "http" | "https") {
        return false;
    }
    let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
    BLOB_HOST_SUFFIXES.iter().any(|s| host.ends_with(s)) || is_emulator_host(&host)
}

/// Loopback addresses and the conventional compose service name.
fn is_emulator_host(host: &str) -> bool {
    matches!(
        host,
        "127.0.0.1" | "localhost" | "[::1]" | "::1" | "azurite" | "host.docker.internal"
    )
}

/// An `InvalidInput` error naming the URL without its query (which may hold a SAS).
fn bad(url: &str, why: impl Into<String>) -> Error {
    let shown = url.split(['?', '#']).next().unwrap_or_default();
    Error::invalid("parse", why).with_path(shown)
}

/// Parses any of the three forms. The key of `http(s)` URLs is
/// percent-decoded; the `az://` form is taken literally, like `s3://`.
///
/// # Errors
/// `InvalidInput` for another scheme, a missing or malformed account or
/// container name, or a host that is neither blob storage nor an emulator.
pub fn parse(url: &str) -> Result<Location> {
    if let Some(rest) = url.strip_prefix("az://") {
        let mut parts = rest.splitn(3, '/');
        let account = parts.next().unwrap_or_default();
        let container = parts.next().unwrap_or_default();
        let key = parts.next().unwrap_or_default().trim_end_matches('/');
        check_account(url, account)?;
        check_container(url, container)?;
        return Ok(Location {
            account: account.to_string(),
            container: container.to_string(),
            key: key.to_string(),
            endpoint: None,
        });
    }
    let u = Url::parse(url).map_err(|e| bad(url, format!("not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad(
            url,
            "an Azure blob URL starts with az://, https:// or http://",
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        // A SAS in the URL would end up in error messages and logs: refuse it.
        return Err(bad(
            url,
            "no query string or fragment allowed (pass a SAS through AZURE_STORAGE_SAS_TOKEN)",
        ));
    }
    let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
    let segs: Vec<String> = u
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode(s).ok_or_else(|| bad(url, "invalid percent-encoding")))
        .collect::<Result<_>>()?;
    let (account, rest, endpoint) = if let Some(sfx) =
        BLOB_HOST_SUFFIXES.iter().find(|s| host.ends_with(*s))
    {
        let account = host[..host.len() - sfx.len()].to_string();
        let mut ep = u.clone();
        ep.set_path("");
        (account, &segs[..], ep)
    } else if is_emulator_host(&host) {
        let account = segs.first().cloned().unwrap_or_default();
        let mut ep = u.clone();
        ep.set_path(&format!("/{account}"));
        (account, segs.get(1..).unwrap_or(&[]), ep)
    } else {
        return Err(bad(
            url,
            "the host is neither <account>.blob.core.windows.net nor an emulator (127.0.0.1, localhost, azurite)",
        ));
    };
    check_account(url, &account)?;
    let container = rest.first().cloned().unwrap_or_default();
    check_container(url, &container)?;
    let key = rest.get(1..).unwrap_or(&[]).join("/");
    Ok(Location {
        account,
        container,
        key: key.trim_end_matches('/').to_string(),
        endpoint: Some(endpoint),
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Account names: 3 to 24 lowercase letters and digits.
fn check_account(url: &str, a: &str) -> Result<()> {
    let ok = (3..=24).contains(&a.len())
        && a.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(bad(
            url,
            format!("'{a}' is not a storage account name (3-24 lowercase letters and digits)"),
        ))
    }
}

/// Container names: 3 to 63 of lowercase letters, digits and single hyphens,
/// starting and ending with a letter or digit (`$root` and `$web` too).
pub(crate) fn check_container(url: &str, c: &str) -> Result<()> {
    let special = c == "$root" || c == "$web" || c == "$logs";
    let ok = special
        || ((3..=63).contains(&c.len())
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
            && !c.contains("--"));
    if ok {
        Ok(())
    } else {
        Err(bad(
            url,
            format!(
                "'{c}' is not a container name (3-63 lowercase letters, digits and single hyphens)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudmux_core::ErrorKind;

    #[test]
    fn az_form() {
        let l = parse("az://acct01/data/runs/1/x.json").unwrap();
        assert_eq!(l.account, "acct01");
        assert_eq!(l.container, "data");
        assert_eq!(l.key, "runs/1/x.json");
        assert_eq!(l.endpoint, None);
        let l = parse("az://acct01/data").unwrap();
        assert_eq!(l.key, "");
        let l = parse("az://acct01/data/dir/").unwrap();
        assert_eq!(l.key, "dir");
    }

    #[test]
    fn public_https_form() {
        let l = parse("https://acct01.blob.core.windows.net/data/a%20b/c").unwrap();
        assert_eq!(
            (l.account.as_str(), l.container.as_str(), l.key.as_str()),
            ("acct01", "data", "a b/c")
        );
        assert_eq!(
            l.endpoint.unwrap().as_str(),
            "https://acct01.blob.core.windows.net/"
        );
        assert!(is_azure_url("https://acct01.blob.core.windows.net/data"));
        assert!(!is_azure_url("https://example.com/data"));
        assert!(!is_azure_url("s3://bucket/x"));
    }

    #[test]
    fn emulator_form() {
        let l = parse("http://127.0.0.1:10000/devstoreaccount1/ctr/k/1").unwrap();
        assert_eq!(l.account, "devstoreaccount1");
        assert_eq!(l.container, "ctr");
        assert_eq!(l.key, "k/1");
        assert_eq!(
            l.endpoint.unwrap().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert!(is_azure_url("http://localhost:10000/devstoreaccount1/ctr"));
        assert!(is_azure_url("az://a/b"));
    }

    #[test]
    fn bad_urls_are_invalid_input() {
        for u in [
            "az://",
            "az://acct01",
            "az://acct01/",
            "az://Acct/data",
            "az://ab/data",
            "az://acct01/Data",
            "az://acct01/da",
            "az://acct01/-data",
            "az://acct01/da--ta",
            "https://example.com/acct/data",
            "https://acct01.blob.core.windows.net/",
            "https://acct01.blob.core.windows.net/data/x?sig=secret",
            "ftp://acct01.blob.core.windows.net/data",
            "http://127.0.0.1:10000/devstoreaccount1",
            "http://127.0.0.1:10000/devstoreaccount1/c%ZZ",
            "not a url",
        ] {
            let e = parse(u).expect_err(u);
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{u}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }
}
