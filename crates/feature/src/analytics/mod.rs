//! Analytics: evaluation and custom events, exported in batches through an asynchronous
//! pipeline that never blocks an evaluation.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature::analytics::{AnalyticsPipeline, FileExporter, PipelineConfig};
//! use feature::{Client, Context, Flag, MemoryProvider};
//!
//! let dir = tempfile::tempdir()?;
//! let exporter = FileExporter::new(dir.path().join("events.jsonl")).max_bytes(10 << 20);
//! let pipeline = AnalyticsPipeline::start(exporter, PipelineConfig::default())?;
//!
//! let flags = MemoryProvider::new();
//! flags.set_flag(Flag::boolean("beta", true));
//! let client = Client::builder().provider(flags).events(pipeline.clone()).build().await?;
//! let user = Context::new("user-1").with_email("jo@example.com");
//! client.bool(&user, "beta", false);              // sampled (1 in 100 by default)
//! client.track(&user, "checkout", Some(serde_json::json!({"total": 42})));  // always kept
//! client.close().await;                           // flushes every queued event
//!
//! let text = std::fs::read_to_string(dir.path().join("events.jsonl"))?;
//! assert!(text.contains(r#""event":"checkout""#));
//! assert!(!text.contains("jo@example.com"));       // e-mail is private unless allowed
//! # Ok(()) }
//! ```
//!
//! - [`AnalyticsEvent`]: the plan's event (JSON field names `timestamp`, `flag_key`,
//!   `user_key`, `value`, `variation_idx`, `reason`, `rule_id`, `in_experiment`, `context`),
//!   plus `kind` and, for custom events, `event` and `data`.
//! - [`AnalyticsExporter`]: where batches go: [`StdoutExporter`], [`FileExporter`] (JSON lines,
//!   rotated by size), `webhook::HttpExporter` (feature `webhook`), `kafka::KafkaExporter`
//!   (feature `kafka`), or your own.
//! - [`AnalyticsPipeline`]: the [`EventSink`](crate::EventSink) given to the client: bounded
//!   queue filled with `try_send` (what does not fit is dropped and counted), batching by size
//!   and time, sampling of evaluation events (experiment exposures and custom events are always
//!   kept), [`Redaction`] of private attributes, flush on `close()`.

mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
mod pipeline;
mod redact;
mod stdout;
#[cfg(feature = "webhook")]
pub mod webhook;

pub use file::FileExporter;
pub use pipeline::{AnalyticsPipeline, PipelineConfig, PipelineError, PipelineStats};
pub use redact::Redaction;
pub use stdout::StdoutExporter;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use feature_core::ReasonKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::sync::Arc;

/// What an [`AnalyticsEvent`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A flag evaluation.
    Evaluation,
    /// A custom event (`client.track`).
    Custom,
}

/// One analytics event (the plan's `AnalyticsEvent`, plus custom events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsEvent {
    /// Evaluation or custom.
    pub kind: EventKind,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// The flag evaluated (empty for custom events).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub flag_key: String,
    /// The context's key.
    pub user_key: String,
    /// The value served (`null` for custom events).
    #[serde(default)]
    pub value: Value,
    /// The variation served (`null` when the caller's default was served).
    #[serde(default)]
    pub variation_idx: Option<usize>,
    /// Why (`OFF`, `RULE_MATCH`, ...; absent for custom events).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_reason",
        deserialize_with = "de_reason"
    )]
    pub reason: Option<ReasonKind>,
    /// The rule that matched, when it has an id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// Whether the context is in an experiment (an exposure).
    #[serde(default)]
    pub in_experiment: bool,
    /// The context's attributes, private ones removed (see [`Redaction`]); shared by the
    /// events of one context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Arc<Map<String, Value>>>,
    /// The custom event's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The custom event's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

fn ser_reason<S: Serializer>(r: &Option<ReasonKind>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.serialize_str(r.as_str()),
        None => s.serialize_none(),
    }
}

fn de_reason<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ReasonKind>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    let Some(s) = s else { return Ok(None) };
    Ok(Some(match s.as_str() {
        "OFF" => ReasonKind::Off,
        "TARGET_MATCH" => ReasonKind::TargetMatch,
        "RULE_MATCH" => ReasonKind::RuleMatch,
        "FALLTHROUGH" => ReasonKind::Fallthrough,
        "PREREQUISITE_FAILED" => ReasonKind::PrerequisiteFailed,
        "OVERRIDE" => ReasonKind::Override,
        "ERROR" => ReasonKind::Error,
        other => {
            return Err(serde::de::Error::custom(format!(
                "unknown reason {other:?}"
            )));
        }
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

/// Where batches of events go (the plan's `AnalyticsExporter`). The pipeline calls one method
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluation_event_has_the_plan_field_names() {
        let e = AnalyticsEvent {
            kind: EventKind::Evaluation,
            timestamp: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            flag_key: "new-checkout".into(),
            user_key: "user-1".into(),
            value: json!(true),
            variation_idx: Some(1),
            reason: Some(ReasonKind::RuleMatch),
            rule_id: Some("beta".into()),
            in_experiment: true,
            context: Some(Arc::new(Map::from_iter([(
                "plan".to_owned(),
                json!("pro"),
            )]))),
            event: None,
            data: None,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({"kind": "evaluation", "timestamp": "2023-11-14T22:13:20Z", "flag_key": "new-checkout",
                   "user_key": "user-1", "value": true, "variation_idx": 1, "reason": "RULE_MATCH",
                   "rule_id": "beta", "in_experiment": true, "context": {"plan": "pro"}})
        );
        let back: AnalyticsEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
