//! Microsoft Entra ID credentials, chosen from the environment.
//!
//! 1. a client secret: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`;
//! 2. workload identity (Kubernetes): `AZURE_FEDERATED_TOKEN_FILE`;
//! 3. otherwise a chain of managed identity, then the developer tools
//!    (Azure CLI, Azure Developer CLI); the first that yields a token is kept.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_identity::{
    ClientSecretCredential, DeveloperToolsCredential, ManagedIdentityCredential,
    WorkloadIdentityCredential,
};
use cloudmux_core::{Error, ErrorKind, Result};

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

fn denied(what: &str, e: &azure_core::Error) -> Error {
    Error::new(ErrorKind::PermissionDenied, "open").with_message(format!(
        "cannot set up {what}: {}",
        crate::error::redact(&e.to_string())
    ))
}

/// The Entra ID credential for this process.
pub(crate) fn credential() -> Result<Arc<dyn TokenCredential>> {
    if let (Some(tenant), Some(client), Some(secret)) = (
        env("AZURE_TENANT_ID"),
        env("AZURE_CLIENT_ID"),
        env("AZURE_CLIENT_SECRET"),
    ) {
        return ClientSecretCredential::new(&tenant, client, Secret::new(secret), None)
            .map(|c| c as Arc<dyn TokenCredential>)
            .map_err(|e| denied("a client-secret credential", &e));
    }
    if env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        return WorkloadIdentityCredential::new(None)
            .map(|c| c as Arc<dyn TokenCredential>)
            .map_err(|e| denied("workload identity", &e));
    }
    let mut sources: Vec<Arc<dyn TokenCredential>> = Vec::new();
    if let Ok(c) = ManagedIdentityCredential::new(None) {
        sources.push(c);
    }
    if let Ok(c) = DeveloperToolsCredential::new(None) {
        sources.push(c);
    }
    if sources.is_empty() {
        return Err(Error::new(ErrorKind::PermissionDenied, "open")
            .with_message("no Entra ID credential is available"));
    }
    Ok(Arc::new(Chain {
        sources,
        chosen: AtomicUsize::new(usize::MAX),
    }))
}

/// Tries each source in turn; the first to give a token is used from then on.
struct Chain {
    sources: Vec<Arc<dyn TokenCredential>>,
    chosen: AtomicUsize,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenCredential for Chain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let chosen = self.chosen.load(Ordering::Relaxed);
        if let Some(s) = self.sources.get(chosen) {
            return s.get_token(scopes, options).await;
        }
        let mut failures = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            match s.get_token(scopes, options.clone()).await {
                Ok(t) => {
                    self.chosen.store(i, Ordering::Relaxed);
                    return Ok(t);
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            format!(
                "no Entra ID credential worked (managed identity, Azure CLI): {}",
                failures.join("; ")
            ),
        ))
    }
}
