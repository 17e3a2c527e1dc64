//! Exporters: where the pipeline delivers batches of events. [`StdoutExporter`] (debugging),
//! [`FileExporter`] (JSON lines, rotated by size), `webhook::HttpExporter` (crate feature
//! `webhook`: an HTTP endpoint, with retries), `kafka::KafkaExporter` (crate feature `kafka`),
//! or your own [`AnalyticsExporter`].

mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "launchdarkly")]
pub mod launchdarkly;
mod stdout;
#[cfg(feature = "webhook")]
pub mod webhook;

pub use file::FileExporter;
pub use stdout::StdoutExporter;

use super::AnalyticsEvent;
use async_trait::async_trait;

/// TLS client configurations (webhook and Kafka exporters).
#[cfg(any(feature = "webhook", feature = "kafka"))]
pub(crate) mod tls {
    use std::sync::Arc;

    /// A client configuration trusting `roots`, with the aws-lc provider (whatever other
    /// providers the build has, so that no process-wide default is needed).
    pub(crate) fn client_config(
        roots: rustls::RootCertStore,
    ) -> Result<rustls::ClientConfig, rustls::Error> {
        Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
    }

    /// The system's root certificates (those it can parse), and how many there are.
    pub(crate) fn system_roots() -> (rustls::RootCertStore, usize) {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        (roots, added)
    }
}

/// The exporter `config` selects, if any.
pub(crate) fn from_config(
    config: &crate::config::EventsConfig,
) -> Result<Option<std::sync::Arc<dyn AnalyticsExporter>>, crate::ClientError> {
    use crate::config::ExporterKind;
    use std::sync::Arc;
    #[allow(unused)] // without the webhook and kafka features
    let failed = |exporter: &'static str, e: BoxError| crate::ClientError::Exporter {
        exporter,
        source: e,
    };
    Ok(Some(match config.exporter {
        None => return Ok(None),
        Some(ExporterKind::Stdout) => Arc::new(StdoutExporter::new()),
        Some(ExporterKind::File) => Arc::new(FileExporter::new(config.file_path())),
        #[cfg(feature = "webhook")]
        Some(ExporterKind::Webhook) => {
            let url = config.webhook_url.as_deref().unwrap_or_default();
            Arc::new(
                webhook::HttpExporter::with_system_roots(url, config.webhook_allow_insecure_http)
                    .map_err(|e| match e {
                    // The URL may carry credentials: never into an error message.
                    webhook::WebhookConfigError::Url { .. } => crate::ConfigError::Invalid {
                        variable: "FEATURE_EVENTS_WEBHOOK_URL",
                        value: feature_core::provider::redact_url(url),
                        expected: "an absolute https:// URL (http:// to loopback)",
                    }
                    .into(),
                    e => failed("webhook", Box::new(e)),
                })?,
            )
        }
        #[cfg(feature = "kafka")]
        Some(ExporterKind::Kafka) => {
            let security = &config.kafka_security;
            Arc::new(
                kafka::KafkaExporter::new(config.kafka_brokers.clone(), &config.kafka_topic)
                    .create_topic(config.kafka_create_topic)
                    .security_from(|name| {
                        security
                            .iter()
                            .find(|(k, _)| *k == name)
                            .map(|(_, v)| v.clone())
                    })
                    .map_err(|e| failed("kafka", Box::new(e)))?,
            )
        }
        // A sink of its own, built with the provider (`launchdarkly::from_config`).
        #[cfg(feature = "launchdarkly")]
        Some(ExporterKind::LaunchDarkly) => return Ok(None),
        #[allow(unreachable_patterns)] // every exporter compiled in
        Some(other) => return Err(crate::ConfigError::ExporterUnavailable(other.as_str()).into()),
    }))
}

/// A boxed error from an exporter's library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of exporters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Writing failed.
    #[error("{exporter}: I/O error: {source}")]
    Io {
        /// The exporter.
        exporter: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Events could not be encoded.
    #[error("{exporter}: cannot encode events: {source}")]
    Encode {
        /// The exporter.
        exporter: &'static str,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// The destination refused or could not be reached, after every retry.
    #[error("{exporter}: delivery failed after {attempts} attempt(s): {source}")]
    Delivery {
        /// The exporter.
        exporter: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        #[source]
        source: BoxError,
    },
    /// The exporter was closed.
    #[error("{0}: closed")]
    Closed(&'static str),
}

/// Where batches of events go. The pipeline calls one method
/// at a time, from its own thread; cancellation and deadlines are the caller's (drop the
/// future).
#[async_trait]
pub trait AnalyticsExporter: Send + Sync + 'static {
    /// Delivers a batch. An error means the batch was not delivered (after the exporter's own
    /// retries); the pipeline counts its events as failed.
    async fn export(&self, events: &[AnalyticsEvent]) -> Result<(), ExportError>;

    /// Makes everything delivered so far durable (flushes buffers).
    async fn flush(&self) -> Result<(), ExportError> {
        Ok(())
    }

    /// Flushes and releases resources. Later exports may fail with [`ExportError::Closed`].
    async fn close(&self) -> Result<(), ExportError> {
        self.flush().await
    }
}

/// Encodes events as JSON lines (one object and a `\n` each).
pub(crate) fn json_lines(
    exporter: &'static str,
    events: &[AnalyticsEvent],
) -> Result<Vec<u8>, ExportError> {
    let mut out = Vec::with_capacity(events.len() * 256);
    for e in events {
        serde_json::to_writer(&mut out, e)
            .map_err(|source| ExportError::Encode { exporter, source })?;
        out.push(b'\n');
    }
    Ok(out)
}
