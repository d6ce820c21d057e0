//! Listing. The SDK's `list_blobs` has no delimiter, so one-level listings
//! (and, for one code path, flat ones too) send List Blobs through the same
//! pipeline (auth, transport) and parse the XML here.
//!
//! Azure has no start-after: it is emulated by skipping. A page that stops in
//! the middle of a service page gets a token of our own, `marker NUL after`,
//! so that the next call re-reads that service page and skips what was
//! returned (keys never contain NUL).

use std::time::SystemTime;

use azure_core::http::{Context, Method, Pipeline, PipelineSendOptions, Request, Url};
use cloudmux_core::{Error, ListPage, ListRequest, ObjectMeta, Op, Result, Version};
use serde::Deserialize;

use crate::error::from_azure;

/// Azure's largest page.
pub(crate) const MAX_PAGE: usize = 5000;

#[derive(Debug, Deserialize)]
struct EnumerationResults {
    #[serde(rename = "Blobs", default)]
    blobs: Blobs,
    #[serde(rename = "NextMarker", default)]
    next_marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Blobs {
    // Blob and BlobPrefix interleave in key order.
    #[serde(rename = "$value", default)]
    items: Vec<Item>,
}

#[derive(Debug, Deserialize)]
enum Item {
    Blob(BlobXml),
    BlobPrefix(PrefixXml),
}

#[derive(Debug, Deserialize)]
struct BlobXml {
    #[serde(rename = "Name")]
    name: Name,
    #[serde(rename = "Properties", default)]
    properties: Option<Props>,
}

#[derive(Debug, Deserialize)]
struct PrefixXml {
    #[serde(rename = "Name")]
    name: Name,
}

/// A name, percent-encoded by the service when `Encoded="true"` (names with
/// characters XML cannot carry).
#[derive(Debug, Deserialize)]
struct Name {
    #[serde(rename = "@Encoded", default)]
    encoded: Option<bool>,
    #[serde(rename = "$text", default)]
    text: String,
}

impl Name {
    fn decode(self) -> String {
        if self.encoded == Some(true) {
            url::form_urlencoded::parse(format!("k={}", self.text.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or(self.text)
        } else {
            self.text
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct Props {
    #[serde(rename = "Last-Modified", default)]
    last_modified: Option<String>,
    #[serde(rename = "Etag", default)]
    etag: Option<String>,
    #[serde(rename = "Content-Length", default)]
    content_length: Option<u64>,
}

/// One service page: its entries in key order and the next marker.
pub(crate) type ServicePage = Result<(Vec<Entry>, Option<String>)>;

/// One entry of a service page, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Object(ObjectMeta),
    Prefix(String),
}

impl Entry {
    fn key(&self) -> &str {
        match self {
            Entry::Object(o) => &o.key,
            Entry::Prefix(p) => p,
        }
    }
}

/// The ETag as the blob's headers spell it: listings give it bare
/// (`0x8D...`), headers quoted (`"0x8D..."`). Versions must compare equal.
pub(crate) fn normalize_etag(e: &str) -> String {
    if e.starts_with('"') || e.starts_with("W/") {
        e.to_string()
    } else {
        format!("\"{e}\"")
    }
}

pub(crate) fn parse_http_date(s: &str) -> Option<SystemTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc2822)
        .ok()
        .map(SystemTime::from)
}

/// Parses one List Blobs answer.
pub(crate) fn parse_page(body: &[u8]) -> ServicePage {
    let r: EnumerationResults = azure_core::xml::from_xml(body)
        .map_err(|e| Error::corrupt("list", format!("unreadable List Blobs answer: {e}")))?;
    let entries = r
        .blobs
        .items
        .into_iter()
        .map(|it| match it {
            Item::Blob(b) => {
                let p = b.properties.unwrap_or_default();
                Entry::Object(ObjectMeta {
                    key: b.name.decode(),
                    size: p.content_length.unwrap_or(0),
                    last_modified: p
                        .last_modified
                        .as_deref()
                        .and_then(parse_http_date)
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                    version: p.etag.as_deref().map(|e| Version::new(normalize_etag(e))),
                })
            }
            Item::BlobPrefix(p) => Entry::Prefix(p.name.decode()),
        })
        .collect();
    Ok((entries, r.next_marker.filter(|m| !m.is_empty())))
}

/// Our continuation token: the service marker to resume from, and the last
/// key already returned from that service page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Cursor {
    pub(crate) marker: Option<String>,
    pub(crate) after: Option<String>,
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        format!(
            "{}\0{}",
            self.marker.as_deref().unwrap_or_default(),
            self.after.as_deref().unwrap_or_default()
        )
    }

    pub(crate) fn decode(tok: &str) -> Self {
        match tok.split_once('\0') {
            Some((m, a)) => Cursor {
                marker: (!m.is_empty()).then(|| m.to_string()),
                after: (!a.is_empty()).then(|| a.to_string()),
            },
            // A bare service marker (from another client) is accepted as is.
            None => Cursor {
                marker: Some(tok.to_string()),
                after: None,
            },
        }
    }
}

/// True when `e` is to be skipped because of `after`: entries at or before
/// it, and a common prefix that `after` lies inside (already reported).
pub(crate) fn skipped(e: &Entry, after: Option<&str>) -> bool {
    let Some(a) = after else { return false };
    match e {
        Entry::Object(o) => o.key.as_str() <= a,
        Entry::Prefix(p) => p.as_str() <= a || a.starts_with(p.as_str()),
    }
}

/// Sends one List Blobs request.
pub(crate) async fn fetch(
    pipeline: &Pipeline,
    container_url: &Url,
    version: &str,
    container: &str,
    req: &ListRequest,
    marker: Option<&str>,
    max: usize,
) -> ServicePage {
    let mut url = container_url.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("restype", "container")
            .append_pair("comp", "list");
        if !req.prefix.is_empty() {
            q.append_pair("prefix", &req.prefix);
        }
        if req.delimiter {
            q.append_pair("delimiter", "/");
        }
        if let Some(m) = marker {
            q.append_pair("marker", m);
        }
        q.append_pair("maxresults", &max.to_string());
    }
    let mut request = Request::new(url, Method::Get);
    request.insert_header("accept", "application/xml");
    request.insert_header("x-ms-version", version.to_string());
    let rsp = pipeline
        .send(
            &Context::new(),
            &mut request,
            Some(PipelineSendOptions::default()),
        )
        .await
        .map_err(|e| from_azure(Op::List, container, &req.prefix, &e))?;
    parse_page(rsp.body())
}

/// Assembles one page for `req` from service pages fetched by `get`,
/// emulating `start_after` by skipping.
pub(crate) async fn page<F, Fut>(req: &ListRequest, mut get: F) -> Result<ListPage>
where
    F: FnMut(Option<String>, usize) -> Fut,
    Fut: std::future::Future<Output = ServicePage>,
{
    let limit = req.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let mut cur = req.token.as_deref().map(Cursor::decode).unwrap_or_default();
    if let Some(sa) = &req.start_after
        && cur.after.as_deref().is_none_or(|a| a < sa.as_str())
    {
        cur.after = Some(sa.clone());
    }
    loop {
        // While skipping, read big service pages; otherwise exactly `limit`.
        let max = if cur.after.is_some() { MAX_PAGE } else { limit };
        let (entries, next) = get(cur.marker.clone(), max).await?;
        let fresh: Vec<Entry> = entries
            .into_iter()
            .filter(|e| !skipped(e, cur.after.as_deref()))
            .collect();
        if fresh.len() > limit {
            let last = fresh[limit - 1].key().to_string();
            let out = to_page(fresh.into_iter().take(limit));
            return Ok(ListPage {
                next: Some(
                    Cursor {
                        marker: cur.marker,
                        after: Some(last),
                    }
                    .encode(),
                ),
                ..out
            });
        }
        if !fresh.is_empty() || next.is_none() {
            let out = to_page(fresh.into_iter());
            // Everything on later service pages sorts after `after`.
            let next = next.map(|m| {
                Cursor {
                    marker: Some(m),
                    after: None,
                }
                .encode()
            });
            return Ok(ListPage { next, ..out });
        }
        cur.marker = next;
    }
}

fn to_page(entries: impl Iterator<Item = Entry>) -> ListPage {
    let mut p = ListPage::default();
    for e in entries {
        match e {
            Entry::Object(o) => p.objects.push(o),
            Entry::Prefix(s) => p.prefixes.push(s),
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="c">
  <Prefix>p/</Prefix><MaxResults>3</MaxResults><Delimiter>/</Delimiter>
  <Blobs>
    <Blob><Name>p/a</Name><Properties><Last-Modified>Tue, 24 Nov 2026 23:30:00 GMT</Last-Modified><Etag>0x8DD1</Etag><Content-Length>3</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob>
    <BlobPrefix><Name>p/d/</Name></BlobPrefix>
    <Blob><Name Encoded="true">p/%EF%BF%BE</Name><Properties><Etag>"0x8DD2"</Etag><Content-Length>0</Content-Length></Properties></Blob>
  </Blobs>
  <NextMarker>m2</NextMarker>
</EnumerationResults>"#;

    #[test]
    fn parses_interleaved_blobs_and_prefixes() {
        let (entries, next) = parse_page(BODY.as_bytes()).unwrap();
        assert_eq!(next.as_deref(), Some("m2"));
        assert_eq!(entries.len(), 3);
        let Entry::Object(a) = &entries[0] else {
            panic!()
        };
        assert_eq!(a.key, "p/a");
        assert_eq!(a.size, 3);
        assert_eq!(a.version, Some(Version::new("\"0x8DD1\"")));
        assert_eq!(
            a.last_modified,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_563_000)
        );
        assert_eq!(entries[1], Entry::Prefix("p/d/".into()));
        let Entry::Object(c) = &entries[2] else {
            panic!()
        };
        assert_eq!(c.key, "p/\u{FFFE}");
        assert_eq!(c.version, Some(Version::new("\"0x8DD2\"")));
    }

    #[test]
    fn empty_answer() {
        let body = r#"<?xml version="1.0"?><EnumerationResults><Blobs /><NextMarker /></EnumerationResults>"#;
        let (entries, next) = parse_page(body.as_bytes()).unwrap();
        assert!(entries.is_empty());
        assert_eq!(next, None);
        assert_eq!(
            parse_page(b"<html>").unwrap_err().kind(),
            cloudmux_core::ErrorKind::Corrupt
        );
    }

    fn obj(k: &str) -> Entry {
        Entry::Object(ObjectMeta {
            key: k.into(),
            size: 0,
            last_modified: SystemTime::UNIX_EPOCH,
            version: None,
        })
    }

    /// A fake service over sorted entries whose markers are indexes.
    fn service(
        all: Vec<Entry>,
    ) -> impl FnMut(Option<String>, usize) -> std::future::Ready<ServicePage> {
        move |marker, max| {
            let from: usize = marker.map_or(0, |m| m.parse().unwrap());
            let to = (from + max).min(all.len());
            let next = (to < all.len()).then(|| to.to_string());
            std::future::ready(Ok((all[from..to].to_vec(), next)))
        }
    }

    fn keys(p: &ListPage) -> Vec<String> {
        let mut v: Vec<String> = p.objects.iter().map(|o| o.key.clone()).collect();
        v.extend(p.prefixes.iter().cloned());
        v.sort();
        v
    }

    #[tokio::test]
    async fn start_after_is_emulated_across_pages() {
        let all: Vec<Entry> = (0..12000).map(|i| obj(&format!("k{i:05}"))).collect();
        let req = ListRequest {
            start_after: Some("k06000".into()),
            limit: Some(10),
            ..Default::default()
        };
        let p = page(&req, service(all.clone())).await.unwrap();
        assert_eq!(keys(&p).first().map(String::as_str), Some("k06001"));
        assert_eq!(p.objects.len(), 10);
        // Continue with the token: no repeats, no gaps, until the end.
        let mut seen = keys(&p);
        let mut tok = p.next;
        let mut calls = 0;
        while let Some(t) = tok {
            let req = ListRequest {
                token: Some(t),
                start_after: Some("k06000".into()),
                limit: Some(2500),
                ..Default::default()
            };
            let p = page(&req, service(all.clone())).await.unwrap();
            assert!(p.objects.len() <= 2500);
            seen.extend(keys(&p));
            tok = p.next;
            calls += 1;
            assert!(calls < 20);
        }
        let want: Vec<String> = (6001..12000).map(|i| format!("k{i:05}")).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_prefix_containing_after_is_skipped() {
        assert!(skipped(&Entry::Prefix("d/".into()), Some("d/k1")));
        assert!(skipped(&Entry::Prefix("d/".into()), Some("d/")));
        assert!(!skipped(&Entry::Prefix("e/".into()), Some("d/k1")));
        assert!(skipped(&obj("a"), Some("a")));
        assert!(!skipped(&obj("b"), Some("a")));
        assert!(!skipped(&obj("a"), None));
    }

    #[test]
    fn cursor_round_trips() {
        let c = Cursor {
            marker: Some("2!abc".into()),
            after: Some("x/y".into()),
        };
        assert_eq!(Cursor::decode(&c.encode()), c);
        assert_eq!(
            Cursor::decode("bare"),
            Cursor {
                marker: Some("bare".into()),
                after: None
            }
        );
        assert_eq!(
            Cursor::decode(&Cursor::default().encode()),
            Cursor::default()
        );
    }
}
