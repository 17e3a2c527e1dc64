//! The asynchronous pipeline between the client and an exporter.

use super::{AnalyticsEvent, AnalyticsExporter, EventKind, Redaction};
use crate::events::{BoxFuture, EvaluationEvent, EventSink};
use crate::stripe::Striped;
use chrono::{DateTime, Utc};
use feature_core::{Context, ReasonKind};
use serde_json::Value;
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// Settings of an [`AnalyticsPipeline`].
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Events the queue holds (default 10 000). When it is full, new events are dropped and
    /// counted: evaluation never waits.
    pub capacity: usize,
    /// Events per exported batch (default 500).
    pub batch_size: usize,
    /// Longest an event waits in a partial batch (default 5 s).
    pub flush_interval: Duration,
    /// Share of evaluation events kept, from 0 to 1 (default 0.01: one in a hundred, chosen at
    /// random). Experiment exposures (`in_experiment`) and custom events are always kept.
    pub evaluation_sample_rate: f64,
    /// Which context attributes events carry (default: all but `email` and `ip`).
    pub redaction: Redaction,
    /// How long `flush()` and `close()` wait for the exporter (default 30 s).
    pub close_timeout: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            capacity: 10_000,
            batch_size: 500,
            flush_interval: Duration::from_secs(5),
            evaluation_sample_rate: 0.01,
            redaction: Redaction::default(),
            close_timeout: Duration::from_secs(30),
        }
    }
}

/// Errors starting a pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The worker thread or its runtime could not be started.
    #[error("cannot start the analytics worker: {0}")]
    Start(#[source] std::io::Error),
    /// A setting is out of range.
    #[error("invalid pipeline setting: {0}")]
    Invalid(&'static str),
}

/// What the pipeline has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Events accepted into the queue.
    pub accepted: u64,
    /// Events dropped because the queue was full or the pipeline closed.
    pub dropped: u64,
    /// Events the exporter accepted.
    pub exported: u64,
    /// Events in batches the exporter failed to deliver.
    pub failed: u64,
    /// Batches handed to the exporter.
    pub batches: u64,
}

/// Raw event as queued: converted (redacted, timestamped) on the worker thread.
enum Msg {
    Evaluation(Box<RawEvaluation>),
    Custom(Box<RawCustom>),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

struct RawEvaluation {
    at: SystemTime,
    key: String,
    context: Context,
    value: Value,
    variation: Option<usize>,
    reason: ReasonKind,
    rule_id: Option<String>,
    in_experiment: bool,
}

struct RawCustom {
    at: SystemTime,
    name: String,
    context: Context,
    data: Option<Value>,
}

const ACCEPTED: usize = 0;
const DROPPED: usize = 1;

struct Shared {
    tx: mpsc::Sender<Msg>,
    counters: Striped<2>,
    worker: Mutex<WorkerStats>,
    /// Keep an evaluation when a random u64 is below this.
    threshold: u64,
    keep_all: bool,
    close_timeout: Duration,
}

#[derive(Default)]
struct WorkerStats {
    exported: u64,
    failed: u64,
    batches: u64,
}

/// The analytics pipeline: an [`EventSink`] for the client that queues events and exports
/// them in batches on its own thread. Cheap to clone (clones share the pipeline). See the
/// [module docs](super).
#[derive(Clone)]
pub struct AnalyticsPipeline {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AnalyticsPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsPipeline")
            .field("stats", &self.stats())
            .finish()
    }
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A fast per-thread random number (xorshift64*), for sampling.
#[inline]
fn random() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        if x == 0 {
            // Seed from the thread's stack address and the time: distinct per thread.
            let t = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            x = (r as *const Cell<u64> as u64) ^ t ^ 0x9E37_79B9_7F4A_7C15;
            if x == 0 {
                x = 1;
            }
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

impl AnalyticsPipeline {
    /// Starts the worker thread exporting to `exporter`.
    pub fn start(
        exporter: impl AnalyticsExporter,
        config: PipelineConfig,
    ) -> Result<Self, PipelineError> {
        Self::start_shared(Arc::new(exporter), config)
    }

    /// Like [`AnalyticsPipeline::start`], with a shared exporter.
    pub fn start_shared(
        exporter: Arc<dyn AnalyticsExporter>,
        config: PipelineConfig,
    ) -> Result<Self, PipelineError> {
        if config.capacity == 0 {
            return Err(PipelineError::Invalid("capacity must be at least 1"));
        }
        if config.batch_size == 0 {
            return Err(PipelineError::Invalid("batch_size must be at least 1"));
        }
        if !(0.0..=1.0).contains(&config.evaluation_sample_rate) {
            return Err(PipelineError::Invalid(
                "evaluation_sample_rate must be within 0..=1",
            ));
        }
        let (tx, rx) = mpsc::channel(config.capacity);
        let rate = config.evaluation_sample_rate;
        let shared = Arc::new(Shared {
            tx,
            counters: Striped::default(),
            worker: Mutex::new(WorkerStats::default()),
            threshold: (rate * u64::MAX as f64) as u64,
            keep_all: rate >= 1.0,
            close_timeout: config.close_timeout,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(PipelineError::Start)?;
        let worker = Worker {
            rx,
            exporter,
            batch: Vec::with_capacity(config.batch_size),
            config,
            shared: Arc::downgrade(&shared),
        };
        std::thread::Builder::new()
            .name("feature-analytics".to_owned())
            .spawn(move || runtime.block_on(worker.run()))
            .map_err(PipelineError::Start)?;
        Ok(AnalyticsPipeline { shared })
    }

    /// What the pipeline has done so far.
    pub fn stats(&self) -> PipelineStats {
        let s = &self.shared;
        let w = s.worker.lock().unwrap_or_else(|e| e.into_inner());
        PipelineStats {
            accepted: s.counters.get(ACCEPTED),
            dropped: s.counters.get(DROPPED),
            exported: w.exported,
            failed: w.failed,
            batches: w.batches,
        }
    }

    #[inline]
    fn offer(&self, msg: Msg) {
        let c = &self.shared.counters;
        match self.shared.tx.try_send(msg) {
            Ok(()) => c.add(ACCEPTED, 1),
            Err(_) => c.add(DROPPED, 1),
        }
    }

    async fn control(&self, make: fn(oneshot::Sender<()>) -> Msg) {
        let (tx, rx) = oneshot::channel();
        let deadline = self.shared.close_timeout;
        let done = async {
            if self.shared.tx.send(make(tx)).await.is_ok() {
                let _ = rx.await;
            }
        };
        if tokio::time::timeout(deadline, done).await.is_err() {
            tracing::warn!(target: "feature::analytics", "exporter did not finish within {deadline:?}");
        }
    }

    /// Exports everything queued so far and waits for the exporter to flush.
    pub async fn flush(&self) {
        self.control(Msg::Flush).await
    }

    /// Exports everything queued, closes the exporter and stops the worker. Events offered
    /// later are dropped (and counted).
    pub async fn close(&self) {
        self.control(Msg::Close).await
    }
}

impl EventSink for AnalyticsPipeline {
    #[inline]
    fn evaluation(&self, e: &EvaluationEvent<'_>) {
        let s = &self.shared;
        if !(e.in_experiment || s.keep_all || random() < s.threshold) {
            return;
        }
        self.offer(Msg::Evaluation(Box::new(RawEvaluation {
            at: SystemTime::now(),
            key: e.key.to_owned(),
            context: e.context.clone(),
            value: e.value.clone(),
            variation: e.variation,
            reason: e.reason,
            rule_id: e.rule_id.map(str::to_owned),
            in_experiment: e.in_experiment,
        })));
    }

    fn track(&self, context: &Context, name: &str, data: Option<&Value>) {
        self.offer(Msg::Custom(Box::new(RawCustom {
            at: SystemTime::now(),
            name: name.to_owned(),
            context: context.clone(),
            data: data.cloned(),
        })));
    }

    fn flush(&self) -> BoxFuture<'_> {
        Box::pin(AnalyticsPipeline::flush(self))
    }

    fn close(&self) -> BoxFuture<'_> {
        Box::pin(AnalyticsPipeline::close(self))
    }
}

struct Worker {
    rx: mpsc::Receiver<Msg>,
    exporter: Arc<dyn AnalyticsExporter>,
    batch: Vec<AnalyticsEvent>,
    config: PipelineConfig,
    shared: std::sync::Weak<Shared>,
}

impl Worker {
    async fn run(mut self) {
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let msg = match deadline {
                None => self.rx.recv().await,
                Some(at) => match tokio::time::timeout_at(at, self.rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        self.export().await;
                        deadline = None;
                        continue;
                    }
                },
            };
            match msg {
                Some(Msg::Evaluation(raw)) => {
                    self.push(evaluation_event(&self.config.redaction, *raw))
                }
                Some(Msg::Custom(raw)) => self.push(custom_event(&self.config.redaction, *raw)),
                Some(Msg::Flush(done)) => {
                    self.export().await;
                    deadline = None;
                    if let Err(e) = self.exporter.flush().await {
                        tracing::warn!(target: "feature::analytics", "flush failed: {e}");
                    }
                    let _ = done.send(());
                    continue;
                }
                Some(Msg::Close(done)) => {
                    self.finish().await;
                    let _ = done.send(());
                    return;
                }
                None => {
                    self.finish().await;
                    return;
                }
            }
            if self.batch.len() >= self.config.batch_size {
                self.export().await;
                deadline = None;
            } else if deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + self.config.flush_interval);
            }
        }
    }

    fn push(&mut self, e: AnalyticsEvent) {
        self.batch.push(e);
    }

    async fn finish(&mut self) {
        self.rx.close();
        // Events queued before the close are still delivered.
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Evaluation(raw) => self.push(evaluation_event(&self.config.redaction, *raw)),
                Msg::Custom(raw) => self.push(custom_event(&self.config.redaction, *raw)),
                Msg::Flush(done) | Msg::Close(done) => {
                    let _ = done.send(());
                }
            }
            if self.batch.len() >= self.config.batch_size {
                self.export().await;
            }
        }
        self.export().await;
        if let Err(e) = self.exporter.close().await {
            tracing::warn!(target: "feature::analytics", "closing the exporter failed: {e}");
        }
    }

    async fn export(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let n = self.batch.len() as u64;
        let result = self.exporter.export(&self.batch).await;
        self.batch.clear();
        if let Err(e) = &result {
            tracing::warn!(target: "feature::analytics", events = n, "export failed: {e}");
        }
        if let Some(shared) = self.shared.upgrade() {
            let mut w = shared.worker.lock().unwrap_or_else(|e| e.into_inner());
            w.batches += 1;
            match result {
                Ok(()) => w.exported += n,
                Err(_) => w.failed += n,
            }
        }
    }
}

fn evaluation_event(redaction: &Redaction, raw: RawEvaluation) -> AnalyticsEvent {
    AnalyticsEvent {
        kind: EventKind::Evaluation,
        timestamp: DateTime::<Utc>::from(raw.at),
        flag_key: raw.key,
        user_key: raw.context.key().to_owned(),
        value: raw.value,
        variation_idx: raw.variation,
        reason: Some(raw.reason),
        rule_id: raw.rule_id,
        in_experiment: raw.in_experiment,
        context: redaction.apply_opt(&raw.context),
        event: None,
        data: None,
    }
}

fn custom_event(redaction: &Redaction, raw: RawCustom) -> AnalyticsEvent {
    AnalyticsEvent {
        kind: EventKind::Custom,
        timestamp: DateTime::<Utc>::from(raw.at),
        flag_key: String::new(),
        user_key: raw.context.key().to_owned(),
        value: Value::Null,
        variation_idx: None,
        reason: None,
        rule_id: None,
        in_experiment: false,
        context: redaction.apply_opt(&raw.context),
        event: Some(raw.name),
        data: raw.data,
    }
}
