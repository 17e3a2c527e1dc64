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
use rskafka::client::ClientBuilder;
use rskafka::record::Record;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::Mutex;

/// Produces events to a Kafka topic. See the [module docs](self).
pub struct KafkaExporter {
    brokers: Vec<String>,
    topic: String,
    partition: i32,
    create_topic: bool,
    timeout: Duration,
    client: Mutex<Option<PartitionClient>>,
}

impl std::fmt::Debug for KafkaExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaExporter")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .finish()
    }
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
            client: Mutex::new(None),
        }
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
        let client = ClientBuilder::new(self.brokers.clone())
            .build()
            .await
            .map_err(|e| Self::err(1, e))?;
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
