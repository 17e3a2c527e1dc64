//! Analytics: evaluation and custom events, exported in batches through an asynchronous
//! pipeline that never blocks an evaluation.
//!
//! The hook is [`EventSink`], given to [`ClientBuilder::events`](crate::ClientBuilder::events):
//! the client calls it on the evaluating thread with an [`EvaluationEvent`] (sampled) or a
//! custom event (`client.track`). [`AnalyticsPipeline`] is the sink this crate provides; it
//! delivers [`AnalyticsEvent`]s to one of the [`exporters`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature::analytics::exporters::FileExporter;
//! use feature::analytics::{AnalyticsPipeline, PipelineConfig};
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
//! - [`AnalyticsEvent`]: one event (JSON field names `id`, `timestamp`, `flag_key`,
//!   `user_key`, `value`, `variation_idx`, `reason`, `rule_id`, `in_experiment`, `context`),
//!   plus `kind` and, for custom events, `event` and `data`.
//! - [`exporters`]: where batches go ([`AnalyticsExporter`](exporters::AnalyticsExporter)):
//!   [`StdoutExporter`](exporters::StdoutExporter), [`FileExporter`](exporters::FileExporter)
//!   (JSON lines, rotated by size), `exporters::webhook::HttpExporter` (feature `webhook`),
//!   `exporters::kafka::KafkaExporter` (feature `kafka`), or your own.
//! - [`AnalyticsPipeline`]: the [`EventSink`] given to the client: bounded
//!   queue filled with `try_send` (what does not fit is dropped and counted), batching by size
//!   and time, sampling of evaluation events (experiment exposures and custom events are always
//!   kept), [`Redaction`] of private attributes, flush on `close()`.

mod event;
pub mod exporters;
mod pipeline;
mod redact;
mod sink;

pub use event::{AnalyticsEvent, EventKind, TrackData};
pub use pipeline::{AnalyticsPipeline, PipelineConfig, PipelineError, PipelineStats};
pub use redact::Redaction;
pub use sink::{BoxFuture, DefaultValue, EvaluationEvent, EventSink};
