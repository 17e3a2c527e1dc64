//! Network settings for enterprise networks: an HTTP(S) proxy and extra root certificates,
//! shared by the flag-data and the events requests.

use crate::error::BuildError;
use std::path::PathBuf;
use std::time::Duration;

/// An HTTP proxy and extra trusted root certificates (on top of the platform's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkConfig {
    proxy: Option<String>,
    ca_files: Vec<PathBuf>,
}

impl NetworkConfig {
    /// No proxy, the platform's roots only.
    pub fn new() -> NetworkConfig {
        NetworkConfig::default()
    }

    /// Sends every request through this proxy (`http://host:port`; HTTPS goes through a
    /// `CONNECT` tunnel). Credentials in the URL are used for the proxy.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }

    /// Also trusts the certificates of this PEM file (a company's root, or a Relay Proxy's).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// An HTTP client builder with these settings.
    pub(crate) fn client_builder(
        &self,
        connect_timeout: Duration,
    ) -> Result<reqwest::ClientBuilder, BuildError> {
        let mut b = reqwest::Client::builder().connect_timeout(connect_timeout);
        if let Some(p) = &self.proxy {
            let proxy = reqwest::Proxy::all(p.as_str()).map_err(|source| BuildError::Proxy {
                proxy: feature_core::provider::redact_url(p),
                source,
            })?;
            b = b.proxy(proxy);
        }
        for path in &self.ca_files {
            let pem = std::fs::read(path).map_err(|source| BuildError::CaFile {
                path: path.clone(),
                source: Box::new(source),
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                BuildError::CaFile {
                    path: path.clone(),
                    source: Box::new(source),
                }
            })?;
            if certs.is_empty() {
                return Err(BuildError::CaFile {
                    path: path.clone(),
                    source: "no certificate in the file".into(),
                });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        Ok(b)
    }
}
