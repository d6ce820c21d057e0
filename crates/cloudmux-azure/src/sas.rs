//! Shared access signatures: minting an account SAS from an account key, and
//! the pipeline policy that puts a SAS on every request.
//!
//! The official SDK signs nothing itself except Entra ID bearer tokens, so an
//! account key (Azurite's well-known development key, or a real one from a
//! connection string) is turned into a short-lived **account SAS** here: an
//! HMAC-SHA256, keyed by the base64-decoded account key, over the documented
//! string-to-sign (service version 2020-12-06 and later):
//!
//! ```text
//! account \n sp \n ss \n srt \n st \n se \n sip \n spr \n sv \n ses \n
//! ```
//!
//! The token is cached and minted again when less than a quarter of its
//! lifetime remains. Neither the key nor the signature ever reaches a log, a
//! `Debug` output or an error: [`Secret`] redacts itself.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cloudmux_core::clock::Clock;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use cloudmux_core::{Error, Result};

/// A secret string (an account key or a SAS token) whose `Debug` and
/// `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself; only the signing and request code call this.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The service version named in minted tokens (`sv`). Old enough that every
/// Azurite release of the last years validates it, new enough to carry the
/// encryption-scope line in the string-to-sign.
pub(crate) const SAS_VERSION: &str = "2022-11-02";

/// Permissions of a minted token: read, write, delete, list, add, create,
/// in the order the service requires.
pub(crate) const SAS_PERMISSIONS: &str = "rwdlac";

/// How long a minted token is valid.
pub(crate) const SAS_LIFETIME: Duration = Duration::from_secs(3600);

/// The fields of one account SAS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountSas<'a> {
    pub(crate) account: &'a str,
    /// `sp`
    pub(crate) permissions: &'a str,
    /// `ss`: `b` for the blob service.
    pub(crate) services: &'a str,
    /// `srt`: `s` service, `c` container, `o` object.
    pub(crate) resource_types: &'a str,
    /// `st`, ISO 8601 UTC, or empty.
    pub(crate) start: &'a str,
    /// `se`, ISO 8601 UTC.
    pub(crate) expiry: &'a str,
    /// `spr`: `https` or `https,http`.
    pub(crate) protocol: &'a str,
    /// `sv`
    pub(crate) version: &'a str,
}

impl AccountSas<'_> {
    /// The documented string-to-sign (signed IP and encryption scope empty).
    pub(crate) fn string_to_sign(&self) -> String {
        [
            self.account,
            self.permissions,
            self.services,
            self.resource_types,
            self.start,
            self.expiry,
            "", // signed IP range
            self.protocol,
            self.version,
            "", // signed encryption scope
        ]
        .iter()
        .fold(String::new(), |mut s, f| {
            s.push_str(f);
            s.push('\n');
            s
        })
    }

    /// Signs with the base64 account key and returns the query string
    /// (`sv=..&ss=..&srt=..&sp=..&se=..&spr=..&sig=..`), URL-encoded.
    pub(crate) fn sign(&self, key: &Secret) -> Result<String> {
        let raw = B64.decode(key.expose().trim()).map_err(|_| {
            // Never echo the key, not even a part of it.
            Error::invalid("sign", "the account key is not valid base64")
        })?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&raw)
            .map_err(|_| Error::invalid("sign", "the account key is empty"))?;
        mac.update(self.string_to_sign().as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("sv", self.version)
            .append_pair("ss", self.services)
            .append_pair("srt", self.resource_types)
            .append_pair("sp", self.permissions);
        if !self.start.is_empty() {
            q.append_pair("st", self.start);
        }
        q.append_pair("se", self.expiry)
            .append_pair("spr", self.protocol)
            .append_pair("sig", &sig);
        Ok(q.finish())
    }
}

/// Formats a time as the SAS wants it: `YYYY-MM-DDThh:mm:ssZ`.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    dt.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// Query parameters that belong to a SAS; stripped before a fresh token is
/// appended so that a re-sent request never carries two signatures.
const SAS_PARAMS: &[&str] = &[
    "sv", "ss", "srt", "sp", "st", "se", "sip", "spr", "sig", "ses", "sr", "si", "sdd", "skoid",
    "sktid", "skt", "ske", "sks", "skv", "saoid", "suoid", "scid", "rscc", "rscd", "rsce", "rscl",
    "rsct",
];

/// Where a [`SasPolicy`] gets its token.
pub(crate) enum SasSource {
    /// A token given by the user (connection string, env, config).
    Fixed(Secret),
    /// Minted from the account key, cached until a quarter of its life remains.
    Minted {
        account: String,
        key: Secret,
        protocol: &'static str,
        clock: Arc<dyn Clock>,
        cache: Mutex<Option<(Secret, SystemTime)>>,
    },
}

impl fmt::Debug for SasSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SasSource::Fixed(_) => f.write_str("Fixed(<redacted>)"),
            SasSource::Minted { account, .. } => f
                .debug_struct("Minted")
                .field("account", account)
                .finish_non_exhaustive(),
        }
    }
}

impl SasSource {
    /// The token to use now.
    pub(crate) fn token(&self) -> Result<Secret> {
        match self {
            SasSource::Fixed(s) => Ok(s.clone()),
            SasSource::Minted {
                account,
                key,
                protocol,
                clock,
                cache,
            } => {
                let now = clock.now();
                let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((tok, exp)) = c.as_ref()
                    && exp
                        .duration_since(now)
                        .is_ok_and(|left| left > SAS_LIFETIME / 4)
                {
                    return Ok(tok.clone());
                }
                let expiry = now + SAS_LIFETIME;
                // A start 5 minutes back tolerates clock skew between us and the service.
                let start = iso8601(now - Duration::from_secs(300));
                let exp_s = iso8601(expiry);
                let tok = AccountSas {
                    account,
                    permissions: SAS_PERMISSIONS,
                    services: "b",
                    resource_types: "sco",
                    start: &start,
                    expiry: &exp_s,
                    protocol,
                    version: SAS_VERSION,
                }
                .sign(key)?;
                let tok = Secret::new(tok);
                *c = Some((tok.clone(), expiry));
                Ok(tok)
            }
        }
    }
}

/// Appends `token` (a query string) to `url`, replacing any SAS already there.
pub(crate) fn apply_sas(url: &mut url::Url, token: &Secret) {
    let keep: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !SAS_PARAMS.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let tok = token.expose().trim_start_matches('?');
    let mut q = url.query_pairs_mut();
    q.clear();
    for (k, v) in &keep {
        q.append_pair(k, v);
    }
    for (k, v) in url::form_urlencoded::parse(tok.as_bytes()) {
        q.append_pair(&k, &v);
    }
    drop(q);
    if url.query() == Some("") {
        url.set_query(None);
    }
}

/// A per-try pipeline policy that signs every request with a SAS.
#[derive(Debug)]
pub(crate) struct SasPolicy {
    pub(crate) source: SasSource,
}

// The trait spells the context's lifetime elided; so must the impl.
#[allow(elided_lifetimes_in_paths)]
#[async_trait]
impl Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let token = self.source.token().map_err(|e| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                e.message().unwrap_or("cannot sign").to_string(),
            )
        })?;
        apply_sas(request.url_mut(), &token);
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published key of the storage emulators' development account.
    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn sample() -> AccountSas<'static> {
        AccountSas {
            account: "devstoreaccount1",
            permissions: "rwdlac",
            services: "b",
            resource_types: "sco",
            start: "",
            expiry: "2030-01-01T00:00:00Z",
            protocol: "https,http",
            version: "2022-11-02",
        }
    }

    #[test]
    fn string_to_sign_has_ten_lines_in_the_documented_order() {
        assert_eq!(
            sample().string_to_sign(),
            "devstoreaccount1\nrwdlac\nb\nsco\n\n2030-01-01T00:00:00Z\n\nhttps,http\n2022-11-02\n\n"
        );
    }

    #[test]
    fn signature_matches_an_independently_computed_vector() {
        // Computed outside Rust (Python's hmac + hashlib + base64) over the
        // string-to-sign above with the development key.
        let q = sample().sign(&Secret::new(DEV_KEY)).unwrap();
        let sig: String = url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "sig")
            .unwrap()
            .1
            .into_owned();
        assert_eq!(sig, EXPECTED_SIG);
        assert!(q.starts_with(
            "sv=2022-11-02&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00%3A00%3A00Z&spr=https%2Chttp&sig="
        ));
    }

    const EXPECTED_SIG: &str = "8wjnWxP8F5T/UlX9mpdTCIE1FcMiFLJkQG7OPybci4k=";

    #[test]
    fn bad_key_is_invalid_input_and_not_echoed() {
        let e = sample().sign(&Secret::new("not base64 !!")).unwrap_err();
        assert_eq!(e.kind(), cloudmux_core::ErrorKind::InvalidInput);
        assert!(!e.to_string().contains("not base64 !!"));
    }

    #[test]
    fn secret_debug_and_display_are_redacted() {
        let s = Secret::new(DEV_KEY);
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
    }

    #[test]
    fn apply_sas_replaces_an_old_token_and_keeps_other_params() {
        let mut u = url::Url::parse("http://h/acct/c?comp=list&sig=old&sv=1").unwrap();
        apply_sas(&mut u, &Secret::new("?sv=2&sig=a%2Bb"));
        assert_eq!(u.query(), Some("comp=list&sv=2&sig=a%2Bb"));
        let mut u = url::Url::parse("http://h/acct/c/blob").unwrap();
        apply_sas(&mut u, &Secret::new("sv=2&sig=x"));
        assert_eq!(u.query(), Some("sv=2&sig=x"));
    }

    #[test]
    fn minted_tokens_are_cached_then_renewed() {
        let clock = cloudmux_core::clock::ManualClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000),
        );
        let src = SasSource::Minted {
            account: "devstoreaccount1".into(),
            key: Secret::new(DEV_KEY),
            protocol: "https,http",
            clock: clock.clone(),
            cache: Mutex::new(None),
        };
        let a = src.token().unwrap();
        clock.advance(Duration::from_secs(60));
        assert_eq!(src.token().unwrap(), a, "cached while fresh");
        clock.advance(Duration::from_secs(50 * 60));
        let b = src.token().unwrap();
        assert_ne!(b, a, "renewed when a quarter of its life is left");
        assert!(b.expose().contains("se=2030-03-17T"), "{}", b.expose());
        assert!(!format!("{src:?}").contains(DEV_KEY));
    }

    #[test]
    fn iso8601_has_no_fraction() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_900_000_000_123);
        assert_eq!(iso8601(t), "2030-03-17T17:46:40Z");
    }
}
