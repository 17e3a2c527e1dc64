//! An exporter producing events to a Kafka topic (crate feature `kafka`).
//!
//! ```
//! use feature::analytics::exporters::kafka::KafkaExporter;
//! let exporter = KafkaExporter::new(vec!["127.0.0.1:9092".to_owned()], "feature-events")
//!     .partition(0)
//!     .create_topic(true);
//! # let _ = exporter;
//! ```
//!
//! Each event is one record: key = the event's `id` (a UUIDv7; the context key `user_key` when
//! the id is empty), value = the event as JSON, headers `content-type: application/json` and
//! `idempotency-key` (one per batch, as the webhook's), timestamp = the event's. A batch is one
//! produce request to one partition (so events keep their order). The connection is made on the
//! first export, on the pipeline's thread; failed produces are retried by the client with
//! backoff up to [`KafkaExporter::timeout`].
//!
//! ## TLS and SASL
//!
//! [`KafkaExporter::tls_with_system_roots`], [`KafkaExporter::tls_with_ca_file`] or
//! [`KafkaExporter::tls`] (any `rustls` client configuration, e.g. with a client certificate)
//! encrypt the connections; [`KafkaExporter::sasl`] authenticates with `PLAIN`,
//! `SCRAM-SHA-256` or `SCRAM-SHA-512` (use `PLAIN` only over TLS: it sends the password as is).
//! [`KafkaExporter::security_from_env`] reads the same settings from the environment, so that
//! no secret sits in code or configuration files:
//!
//! | variable | meaning |
//! | --- | --- |
//! | `FEATURE_KAFKA_TLS` | `true`: TLS, trusting the system's root certificates |
//! | `FEATURE_KAFKA_TLS_CA_FILE` | TLS, trusting the CA certificates of this PEM file instead |
//! | `FEATURE_KAFKA_SASL_MECHANISM` | `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` |
//! | `FEATURE_KAFKA_SASL_USERNAME`, `FEATURE_KAFKA_SASL_PASSWORD` | the SASL credentials |
//!
//! `Debug` output shows whether TLS and which SASL mechanism are used, never the password.
//!
//! ## Duplicates
//!
//! `rskafka` has no idempotent producer (it sends no producer id or sequence numbers, so the
//! broker cannot drop a produce it already wrote): a produce retried after a lost answer can
//! write a batch twice. Consumers deduplicate by record key (the event id), and a compacted
//! topic keeps one record per id.
//!
//! ## Why `rskafka`
//!
//! It is a pure-Rust, tokio-native client (by InfluxData, used in production by InfluxDB IOx):
//! no C library, so no `librdkafka`/`cmake` build in CI and no system packages to install,
//! unlike `rdkafka`; it is maintained and async, unlike the older synchronous `kafka` crate.
//! Its scope (produce and fetch on partitions, topic creation) is exactly what an exporter
//! needs; consumer groups and transactions, which it lacks, are not.

use super::{AnalyticsEvent, AnalyticsExporter, ExportError};
use crate::analytics::event::new_event_id;
use async_trait::async_trait;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Environment variable: `true` for TLS with the system's root certificates.
pub const TLS_ENV: &str = "FEATURE_KAFKA_TLS";
/// Environment variable: a PEM file of CA certificates to trust (implies TLS).
pub const TLS_CA_FILE_ENV: &str = "FEATURE_KAFKA_TLS_CA_FILE";
/// Environment variable: the SASL mechanism (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`).
pub const SASL_MECHANISM_ENV: &str = "FEATURE_KAFKA_SASL_MECHANISM";
/// Environment variable: the SASL user name.
pub const SASL_USERNAME_ENV: &str = "FEATURE_KAFKA_SASL_USERNAME";
/// Environment variable: the SASL password.
pub const SASL_PASSWORD_ENV: &str = "FEATURE_KAFKA_SASL_PASSWORD";

/// A SASL mechanism the exporter can authenticate with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaslMechanism {
    /// `PLAIN`: the password is sent as is (use only over TLS).
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl std::str::FromStr for SaslMechanism {
    type Err = KafkaConfigError;

    /// The mechanism's IANA name, in any case: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    fn from_str(s: &str) -> Result<Self, KafkaConfigError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            _ => Err(KafkaConfigError::Invalid {
                setting: SASL_MECHANISM_ENV,
                expected: "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
            }),
        }
    }
}

/// Errors configuring the security of a [`KafkaExporter`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaConfigError {
    /// A setting has a value it cannot have (the value is not repeated: it may be a secret).
    #[error("{setting}: expected {expected}")]
    Invalid {
        /// The setting (environment variable).
        setting: &'static str,
        /// What it accepts.
        expected: &'static str,
    },
    /// A SASL mechanism is set without a user name or password.
    #[error("SASL needs {0}")]
    Missing(&'static str),
    /// The CA file cannot be read or parsed.
    #[error("cannot read CA certificates from {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// No usable CA certificate was found (in the file, or in the system's store).
    #[error("no usable CA certificate in {0}")]
    NoCertificates(String),
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
}

/// SASL settings; the password never appears in `Debug` output.
#[derive(Clone)]
struct Sasl {
    mechanism: SaslMechanism,
    username: String,
    password: String,
}

/// Produces events to a Kafka topic. See the [module docs](self).
pub struct KafkaExporter {
    brokers: Vec<String>,
    topic: String,
    partition: i32,
    create_topic: bool,
    timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<Sasl>,
    client: Mutex<Option<PartitionClient>>,
}

impl std::fmt::Debug for KafkaExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaExporter")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(|s| s.mechanism))
            .finish()
    }
}

/// A TLS client configuration trusting `roots`.
fn tls_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, KafkaConfigError> {
    super::tls::client_config(roots).map_err(KafkaConfigError::Tls)
}

impl KafkaExporter {
    /// Produces to `topic` (partition 0) through `brokers` (`host:port` bootstrap addresses).
    pub fn new(brokers: Vec<String>, topic: impl Into<String>) -> Self {
        KafkaExporter {
            brokers,
            topic: topic.into(),
            partition: 0,
            create_topic: false,
            timeout: Duration::from_secs(30),
            tls: None,
            sasl: None,
            client: Mutex::new(None),
        }
    }

    /// Connects with TLS configured by `config` (e.g. with a client certificate).
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Connects with TLS, trusting the system's root certificates.
    pub fn tls_with_system_roots(self) -> Result<Self, KafkaConfigError> {
        let (roots, added) = super::tls::system_roots();
        if added == 0 {
            return Err(KafkaConfigError::NoCertificates(
                "the system's certificate store".to_owned(),
            ));
        }
        Ok(self.tls(Arc::new(tls_config(roots)?)))
    }

    /// Connects with TLS, trusting only the CA certificates in the PEM file at `path`.
    pub fn tls_with_ca_file(self, path: impl AsRef<Path>) -> Result<Self, KafkaConfigError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let path = path.as_ref();
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|source| KafkaConfigError::CaFile {
                path: path.to_owned(),
                source,
            })?;
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(KafkaConfigError::NoCertificates(path.display().to_string()));
        }
        Ok(self.tls(Arc::new(tls_config(roots)?)))
    }

    /// Authenticates with SASL (`PLAIN` sends the password as is: use it over TLS only).
    pub fn sasl(
        mut self,
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.sasl = Some(Sasl {
            mechanism,
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// Reads TLS and SASL settings from the environment (see the [module docs](self)); unset
    /// variables leave the current settings as they are.
    pub fn security_from_env(self) -> Result<Self, KafkaConfigError> {
        self.security_from(|name| std::env::var(name).ok())
    }

    /// [`KafkaExporter::security_from_env`] with the variables read through `var`.
    pub(crate) fn security_from(
        mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, KafkaConfigError> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if let Some(path) = set(TLS_CA_FILE_ENV) {
            self = self.tls_with_ca_file(path.trim())?;
        } else if let Some(v) = set(TLS_ENV) {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => self = self.tls_with_system_roots()?,
                "false" | "0" | "no" => self.tls = None,
                _ => {
                    return Err(KafkaConfigError::Invalid {
                        setting: TLS_ENV,
                        expected: "true or false",
                    })
                }
            }
        }
        if let Some(m) = set(SASL_MECHANISM_ENV) {
            let mechanism: SaslMechanism = m.parse()?;
            let username =
                set(SASL_USERNAME_ENV).ok_or(KafkaConfigError::Missing(SASL_USERNAME_ENV))?;
            let password = var(SASL_PASSWORD_ENV)
                .filter(|p| !p.is_empty())
                .ok_or(KafkaConfigError::Missing(SASL_PASSWORD_ENV))?;
            self = self.sasl(mechanism, username, password);
        }
        Ok(self)
    }

    /// The partition written (default 0).
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = partition;
        self
    }

    /// Creates the topic (one partition, replication 1) when it does not exist (default off).
    pub fn create_topic(mut self, create: bool) -> Self {
        self.create_topic = create;
        self
    }

    /// Longest a connection or produce may take, retries included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn err(attempts: u32, source: impl std::error::Error + Send + Sync + 'static) -> ExportError {
        ExportError::Delivery {
            exporter: "kafka",
            attempts,
            source: Box::new(source),
        }
    }

    async fn connect(&self) -> Result<PartitionClient, ExportError> {
        let mut builder = ClientBuilder::new(self.brokers.clone());
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(tls.clone());
        }
        if let Some(s) = &self.sasl {
            let credentials = Credentials::new(s.username.clone(), s.password.clone());
            builder = builder.sasl_config(match s.mechanism {
                SaslMechanism::Plain => SaslConfig::Plain(credentials),
                SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(credentials),
                SaslMechanism::ScramSha512 => SaslConfig::ScramSha512(credentials),
            });
        }
        let client = builder.build().await.map_err(|e| Self::err(1, e))?;
        if self.create_topic {
            let topics = client.list_topics().await.map_err(|e| Self::err(1, e))?;
            if !topics.iter().any(|t| t.name == self.topic) {
                let controller = client.controller_client().map_err(|e| Self::err(1, e))?;
                let timeout_ms = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX);
                if let Err(e) = controller.create_topic(&self.topic, 1, 1, timeout_ms).await {
                    // Another producer may have created it meanwhile.
                    tracing::debug!(target: "feature::analytics", "create topic: {e}");
                }
            }
        }
        client
            .partition_client(&self.topic, self.partition, UnknownTopicHandling::Retry)
            .await
            .map_err(|e| Self::err(1, e))
    }
}

#[async_trait]
impl AnalyticsExporter for KafkaExporter {
    async fn export(&self, events: &[AnalyticsEvent]) -> Result<(), ExportError> {
        if events.is_empty() {
            return Ok(());
        }
        let batch_key = new_event_id().into_bytes();
        let mut records = Vec::with_capacity(events.len());
        for e in events {
            let value = serde_json::to_vec(e).map_err(|source| ExportError::Encode {
                exporter: "kafka",
                source,
            })?;
            let key = if e.id.is_empty() { &e.user_key } else { &e.id };
            records.push(Record {
                key: Some(key.as_bytes().to_vec()),
                value: Some(value),
                headers: BTreeMap::from([
                    ("content-type".to_owned(), b"application/json".to_vec()),
                    ("idempotency-key".to_owned(), batch_key.clone()),
                ]),
                timestamp: e.timestamp,
            });
        }
        let mut guard = self.client.lock().await;
        let work = async {
            if guard.is_none() {
                *guard = Some(self.connect().await?);
            }
            match guard.as_ref() {
                Some(c) => c
                    .produce(records, Compression::NoCompression)
                    .await
                    .map(|_| ())
                    .map_err(|e| Self::err(1, e)),
                None => Err(ExportError::Closed("kafka")),
            }
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(Self::err(
                1,
                std::io::Error::new(std::io::ErrorKind::TimedOut, "kafka produce timed out"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<KafkaExporter, KafkaConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        KafkaExporter::new(vec!["127.0.0.1:9092".to_owned()], "t")
            .security_from(|k| vars.get(k).cloned())
    }

    #[test]
    fn security_settings_are_read_from_the_environment() {
        let none = from(&[]).unwrap();
        assert!(none.tls.is_none() && none.sasl.is_none());
        let scram = from(&[
            (SASL_MECHANISM_ENV, "scram-sha-512"),
            (SASL_USERNAME_ENV, "svc"),
            (SASL_PASSWORD_ENV, "pa ss"),
        ])
        .unwrap();
        let s = scram.sasl.as_ref().unwrap();
        assert_eq!(
            (s.mechanism, s.username.as_str(), s.password.as_str()),
            (SaslMechanism::ScramSha512, "svc", "pa ss")
        );
        // The password never shows in Debug output.
        let debug = format!("{scram:?}");
        assert!(
            !debug.contains("pa ss") && debug.contains("ScramSha512"),
            "{debug}"
        );
        for (vars, want) in [
            (vec![(SASL_MECHANISM_ENV, "GSSAPI")], "expected PLAIN"),
            (vec![(SASL_MECHANISM_ENV, "PLAIN")], SASL_USERNAME_ENV),
            (
                vec![(SASL_MECHANISM_ENV, "PLAIN"), (SASL_USERNAME_ENV, "u")],
                SASL_PASSWORD_ENV,
            ),
            (vec![(TLS_ENV, "maybe")], "true or false"),
            (
                vec![(TLS_CA_FILE_ENV, "/nonexistent/ca.pem")],
                "cannot read",
            ),
        ] {
            let err = from(&vars).unwrap_err().to_string();
            assert!(err.contains(want), "{vars:?}: {err}");
        }
        assert!(from(&[(TLS_ENV, "false")]).unwrap().tls.is_none());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = from(&[(TLS_CA_FILE_ENV, path.to_str().unwrap())]).unwrap_err();
        assert!(matches!(err, KafkaConfigError::NoCertificates(_)), "{err}");
    }
}
