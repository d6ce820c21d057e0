//! Configuration of one [`AzureStore`](crate::AzureStore): where the
//! container is and how to authenticate.
//!
//! Credentials are looked up in this order (first match wins):
//!
//! 1. `AZURE_STORAGE_CONNECTION_STRING`, when it names the URL's account (or
//!    names no account): its `AccountKey` (turned into a short-lived account
//!    SAS in process) or its `SharedAccessSignature`, and its `BlobEndpoint`.
//!    `UseDevelopmentStorage=true` means the emulator's development account.
//! 2. A SAS token: [`AzureConfig::credential`] set by the caller, or the
//!    environment variable `AZURE_STORAGE_SAS_TOKEN`.
//! 3. Microsoft Entra ID through `azure_identity`: a client secret
//!    (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), workload
//!    identity (`AZURE_FEDERATED_TOKEN_FILE`), then managed identity and the
//!    Azure CLI. Entra tokens are only sent over https.
//!
//! The account `devstoreaccount1` with nothing else configured means the
//! emulator at `http://127.0.0.1:10000/devstoreaccount1` with its published
//! development key.

use std::fmt;

use cloudmux_core::{Error, Result};
use url::Url;

use crate::location::Location;
use crate::sas::Secret;

/// The emulators' development account.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";

/// The published key of the development account (a well-known constant of
/// every Azure storage emulator, not a secret).
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The emulator's default blob endpoint.
pub const DEV_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// The environment variable holding a connection string.
pub const ENV_CONNECTION_STRING: &str = "AZURE_STORAGE_CONNECTION_STRING";
/// The environment variable holding a SAS token.
pub const ENV_SAS_TOKEN: &str = "AZURE_STORAGE_SAS_TOKEN";

/// How requests are authenticated.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// The account key (base64): an account SAS is minted from it in process.
    AccountKey(Secret),
    /// A SAS token (the query string, with or without the leading `?`).
    Sas(Secret),
    /// Microsoft Entra ID through `azure_identity` (https endpoints only).
    EntraId,
    /// No authentication (public containers).
    Anonymous,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets print as <redacted> through Secret's own Debug.
        match self {
            Credential::AccountKey(s) => write!(f, "AccountKey({s:?})"),
            Credential::Sas(s) => write!(f, "Sas({s:?})"),
            Credential::EntraId => f.write_str("EntraId"),
            Credential::Anonymous => f.write_str("Anonymous"),
        }
    }
}

/// Everything an [`AzureStore`](crate::AzureStore) needs. Account, endpoint
/// and credential make an [`AzureClient`](crate::AzureClient); the container
/// is chosen per store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AzureConfig {
    /// The storage account.
    pub account: String,
    /// The container the store works in.
    pub container: String,
    /// The account's blob endpoint, such as
    /// `https://acct.blob.core.windows.net` or the emulator's
    /// `http://127.0.0.1:10000/devstoreaccount1` (the endpoint override).
    pub endpoint: Url,
    /// How to authenticate.
    pub credential: Credential,
}

impl fmt::Display for AzureConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.credential {
            Credential::AccountKey(_) => "account key",
            Credential::Sas(_) => "SAS",
            Credential::EntraId => "Entra ID",
            Credential::Anonymous => "anonymous",
        };
        write!(
            f,
            "az://{}/{} at {} ({how})",
            self.account, self.container, self.endpoint
        )
    }
}

impl AzureConfig {
    /// A configuration for `account`/`container` at the public cloud's
    /// endpoint, authenticated as `credential`.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed account or container name.
    pub fn new(account: &str, container: &str, credential: Credential) -> Result<Self> {
        let loc = crate::location::parse(&format!("az://{account}/{container}"))?;
        Ok(AzureConfig {
            endpoint: public_endpoint(&loc.account, "https", "core.windows.net")?,
            account: loc.account,
            container: loc.container,
            credential,
        })
    }

    /// The same configuration with another endpoint (for emulators and
    /// private endpoints).
    pub fn with_endpoint(mut self, endpoint: Url) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Resolves a parsed URL against the process environment, in the order
    /// documented on this module.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed connection string.
    pub fn from_env(loc: &Location) -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Self::resolve(
            loc,
            env(ENV_CONNECTION_STRING).as_deref(),
            env(ENV_SAS_TOKEN).as_deref(),
        )
    }

    /// [`from_env`](Self::from_env) with the environment passed in (tested).
    pub(crate) fn resolve(loc: &Location, conn: Option<&str>, sas: Option<&str>) -> Result<Self> {
        if let Some(cs) = conn {
            let cs = ConnectionString::parse(cs)?;
            if cs.account().is_none_or(|a| a == loc.account) {
                let endpoint = match &loc.endpoint {
                    Some(e) => e.clone(),
                    None => cs.blob_endpoint(&loc.account)?,
                };
                let credential = if let Some(s) = cs.sas {
                    Credential::Sas(s)
                } else if let Some(k) = cs.key {
                    Credential::AccountKey(k)
                } else {
                    Credential::Anonymous
                };
                return Ok(AzureConfig {
                    account: loc.account.clone(),
                    container: loc.container.clone(),
                    endpoint,
                    credential,
                });
            }
        }
        let dev = loc.account == DEV_ACCOUNT;
        let endpoint = match &loc.endpoint {
            Some(e) => e.clone(),
            None if dev => Url::parse(DEV_BLOB_ENDPOINT).expect("constant URL"),
            None => public_endpoint(&loc.account, "https", "core.windows.net")?,
        };
        let credential = if let Some(s) = sas {
            Credential::Sas(Secret::new(s))
        } else if dev {
            Credential::AccountKey(Secret::new(DEV_ACCOUNT_KEY))
        } else {
            Credential::EntraId
        };
        Ok(AzureConfig {
            account: loc.account.clone(),
            container: loc.container.clone(),
            endpoint,
            credential,
        })
    }
}

fn public_endpoint(account: &str, proto: &str, suffix: &str) -> Result<Url> {
    Url::parse(&format!("{proto}://{account}.blob.{suffix}"))
        .map_err(|e| Error::invalid("config", format!("bad endpoint: {e}")))
}

/// The fields of a storage connection string that matter here.
#[derive(Default, PartialEq, Eq)]
pub(crate) struct ConnectionString {
    pub(crate) account: Option<String>,
    pub(crate) key: Option<Secret>,
    pub(crate) sas: Option<Secret>,
    pub(crate) blob_endpoint: Option<Url>,
    pub(crate) protocol: Option<String>,
    pub(crate) suffix: Option<String>,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("account", &self.account)
            .field("key", &self.key)
            .field("sas", &self.sas)
            .field("blob_endpoint", &self.blob_endpoint)
            .finish_non_exhaustive()
    }
}

impl ConnectionString {
    /// Parses `Key=Value;Key=Value;...` (keys case-insensitive, values may
    /// contain `=`). Errors never quote the string: it holds the key.
    pub(crate) fn parse(s: &str) -> Result<Self> {
        let err = |why: &str| Error::invalid("config", format!("{ENV_CONNECTION_STRING}: {why}"));
        let mut cs = ConnectionString::default();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| err("a field without '='"))?;
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "accountname" => cs.account = Some(v.to_string()),
                "accountkey" => cs.key = Some(Secret::new(v)),
                "sharedaccesssignature" => cs.sas = Some(Secret::new(v)),
                "blobendpoint" => {
                    let u = Url::parse(v).map_err(|_| err("BlobEndpoint is not a URL"))?;
                    cs.blob_endpoint = Some(u);
                }
                "defaultendpointsprotocol" => cs.protocol = Some(v.to_ascii_lowercase()),
                "endpointsuffix" => cs.suffix = Some(v.to_string()),
                "usedevelopmentstorage" if v.eq_ignore_ascii_case("true") => {
                    cs.account = Some(DEV_ACCOUNT.into());
                    cs.key = Some(Secret::new(DEV_ACCOUNT_KEY));
                    cs.blob_endpoint = Some(Url::parse(DEV_BLOB_ENDPOINT).expect("constant"));
                }
                // Other services' endpoints and unknown fields do not concern blobs.
                _ => {}
            }
        }
        if cs.key.is_some() && cs.account.is_none() {
            return Err(err("AccountKey without AccountName"));
        }
        Ok(cs)
    }

    /// The account it names, from `AccountName` or else from `BlobEndpoint`.
    pub(crate) fn account(&self) -> Option<String> {
        if let Some(a) = &self.account {
            return Some(a.clone());
        }
        let ep = self.blob_endpoint.as_ref()?;
        crate::location::parse(&format!("{}/x", ep.as_str().trim_end_matches('/')))
            .ok()
            .map(|l| l.account)
    }

    /// `BlobEndpoint`, or the endpoint built from protocol and suffix.
    pub(crate) fn blob_endpoint(&self, account: &str) -> Result<Url> {
        if let Some(e) = &self.blob_endpoint {
            return Ok(e.clone());
        }
        public_endpoint(
            account,
            self.protocol.as_deref().unwrap_or("https"),
            self.suffix.as_deref().unwrap_or("core.windows.net"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::parse;

    fn azurite_cs() -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
        )
    }

    #[test]
    fn azurite_connection_string_gives_key_and_endpoint() {
        let c = AzureConfig::resolve(
            &parse("az://devstoreaccount1/ctr/k").unwrap(),
            Some(&azurite_cs()),
            None,
        )
        .unwrap();
        assert_eq!(
            c.endpoint.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(
            c.credential,
            Credential::AccountKey(Secret::new(DEV_ACCOUNT_KEY))
        );
    }

    #[test]
    fn connection_string_for_another_account_is_skipped() {
        let c = AzureConfig::resolve(
            &parse("az://otheracct/ctr").unwrap(),
            Some(&azurite_cs()),
            Some("sv=1&sig=abc"),
        )
        .unwrap();
        assert_eq!(
            c.endpoint.as_str(),
            "https://otheracct.blob.core.windows.net/"
        );
        assert_eq!(c.credential, Credential::Sas(Secret::new("sv=1&sig=abc")));
        let c = AzureConfig::resolve(&parse("az://otheracct/ctr").unwrap(), None, None).unwrap();
        assert_eq!(c.credential, Credential::EntraId);
    }

    #[test]
    fn sas_connection_string_and_suffix() {
        let cs = "BlobEndpoint=https://acct01.blob.core.windows.net;SharedAccessSignature=sv=2022&sig=zz";
        let c = AzureConfig::resolve(&parse("az://acct01/ctr").unwrap(), Some(cs), None).unwrap();
        assert_eq!(c.credential, Credential::Sas(Secret::new("sv=2022&sig=zz")));
        let cs = "DefaultEndpointsProtocol=https;AccountName=acct01;AccountKey=AAAA;EndpointSuffix=core.chinacloudapi.cn";
        let c = AzureConfig::resolve(&parse("az://acct01/ctr").unwrap(), Some(cs), None).unwrap();
        assert_eq!(
            c.endpoint.as_str(),
            "https://acct01.blob.core.chinacloudapi.cn/"
        );
    }

    #[test]
    fn dev_account_defaults_to_the_emulator() {
        let c =
            AzureConfig::resolve(&parse("az://devstoreaccount1/ctr").unwrap(), None, None).unwrap();
        assert_eq!(c.endpoint.as_str(), DEV_BLOB_ENDPOINT);
        let c = AzureConfig::resolve(
            &parse("az://devstoreaccount1/ctr").unwrap(),
            Some("UseDevelopmentStorage=true"),
            None,
        )
        .unwrap();
        assert_eq!(c.endpoint.as_str(), DEV_BLOB_ENDPOINT);
        assert!(matches!(c.credential, Credential::AccountKey(_)));
    }

    #[test]
    fn url_endpoint_wins_over_connection_string() {
        let c = AzureConfig::resolve(
            &parse("http://localhost:20000/devstoreaccount1/ctr").unwrap(),
            Some(&azurite_cs()),
            None,
        )
        .unwrap();
        assert_eq!(
            c.endpoint.as_str(),
            "http://localhost:20000/devstoreaccount1"
        );
    }

    #[test]
    fn malformed_connection_strings_do_not_echo_the_key() {
        for cs in [
            "AccountKey=SECRETKEY",
            "AccountName=a;SECRETKEY",
            "BlobEndpoint=SECRETKEY",
        ] {
            let e = ConnectionString::parse(cs).unwrap_err();
            assert_eq!(e.kind(), cloudmux_core::ErrorKind::InvalidInput);
            assert!(!format!("{e} {e:?}").contains("SECRETKEY"), "{e}");
        }
    }

    #[test]
    fn debug_and_display_hide_the_key() {
        let c = AzureConfig::resolve(
            &parse("az://devstoreaccount1/ctr").unwrap(),
            Some(&azurite_cs()),
            None,
        )
        .unwrap();
        let shown = format!("{c:?} {c}");
        assert!(!shown.contains(DEV_ACCOUNT_KEY), "{shown}");
        assert!(!shown.contains("Eby8"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("account key"));
        let cs = ConnectionString::parse(&azurite_cs()).unwrap();
        assert!(!format!("{cs:?}").contains("Eby8"));
        let sas = Credential::Sas(Secret::new("sv=1&sig=TOPSECRET"));
        assert!(!format!("{sas:?}").contains("TOPSECRET"));
    }
}
