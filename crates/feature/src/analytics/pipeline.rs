//! The asynchronous pipeline between the client and an exporter.

use super::event::new_event_id;
use super::exporters::AnalyticsExporter;
use super::{
    AnalyticsEvent, BoxFuture, EvaluationEvent, EventKind, EventSink, Redaction, TrackData,
};
use crate::client::sampling::Sampling;
use crate::metrics::stripe::Striped;
use chrono::{DateTime, Utc};
use crossbeam_queue::ArrayQueue;
use feature_core::{Context, ReasonKind};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot, Notify};

/// Settings of an [`AnalyticsPipeline`].
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Events the queue holds (default 10 000). When it is full, new events are dropped and
    /// counted: evaluation never waits.
    pub capacity: usize,
    /// Events per exported batch (default 500).
    pub batch_size: usize,
    /// How often a partial batch is exported (default 5 s): an event waits at most about this
    /// long. Full batches go out as soon as they are full.
    pub flush_interval: Duration,
    /// Share of evaluation events kept, from 0 to 1 (default 0.01: one in a hundred, chosen at
    /// random). Experiment exposures (`in_experiment`) and custom events are always kept.
    pub evaluation_sample_rate: f64,
    /// Which context attributes events carry (default: all but `email` and `ip`).
    pub redaction: Redaction,
    /// How long `flush()` and `close()` wait for the exporter (default 30 s). When `close()`
    /// gives up, the events still queued or in a batch the exporter has not finished are
    /// counted as dropped ([`PipelineStats::abandoned`]): they may never be delivered.
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

/// What the pipeline has done so far. Every event handed to the pipeline is accounted for:
/// `accepted == exported + failed + dropped + pending`, at every moment and after `close()`
/// (then `pending` is 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineStats {
    /// Events handed to the pipeline (evaluation events kept by sampling, and custom events),
    /// whether they were queued or dropped.
    pub accepted: u64,
    /// Events dropped: the queue was full, the pipeline was closed, or `close()` gave up on
    /// them after its timeout (those are also counted in `abandoned`).
    pub dropped: u64,
    /// Events the exporter accepted.
    pub exported: u64,
    /// Events in batches the exporter failed to deliver.
    pub failed: u64,
    /// Batches handed to the exporter.
    pub batches: u64,
    /// Events queued, or in a batch the exporter is working on: not yet exported, failed or
    /// dropped.
    pub pending: u64,
    /// Of `dropped`: events still queued, or in a batch the exporter had not finished, when
    /// `close()` gave up after [`PipelineConfig::close_timeout`]. Their delivery is unknown
    /// (a batch in flight may still arrive) and they are lost if the process exits.
    pub abandoned: u64,
}

impl PipelineStats {
    /// Events accounted for: `exported + failed + dropped + pending` (equals `accepted`).
    pub fn accounted(&self) -> u64 {
        self.exported + self.failed + self.dropped + self.pending
    }
}

/// Raw event as queued: converted (redacted) on the worker thread.
enum Msg {
    Evaluation(RawEvaluation),
    Custom(RawCustom),
}

/// Requests to the worker, on their own channel.
enum Control {
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

struct RawEvaluation {
    at: SystemTime,
    key: Arc<str>,
    context: Context,
    value: Value,
    variation: Option<usize>,
    reason: ReasonKind,
    rule_id: Option<Arc<str>>,
    in_experiment: bool,
}

struct RawCustom {
    at: SystemTime,
    name: Arc<str>,
    context: Context,
    data: TrackData,
}

const ACCEPTED: usize = 0;
const DROPPED: usize = 1;
/// Not a count: this thread's evaluation-sampling countdown (see `LineRef::sample`).
const SKIP: usize = 2;

struct Shared {
    /// The events: a bounded lock-free queue. Offering never wakes the worker unless a full
    /// batch is waiting, so the evaluating thread makes no system call.
    queue: ArrayQueue<Msg>,
    /// Wakes the worker when a batch is full.
    wake: Notify,
    wake_pending: AtomicBool,
    batch_size: usize,
    closed: AtomicBool,
    /// Set when `close()` gave up on the worker: what is still queued or held is abandoned.
    gave_up: AtomicBool,
    /// The worker has delivered what was queued at close and stopped taking events: an event
    /// queued after this is counted as abandoned by whoever sees it first.
    finished: AtomicBool,
    counters: Striped<3>,
    worker: Mutex<WorkerStats>,
    /// Share of evaluations kept.
    rate: f64,
    sampling: Sampling,
    close_timeout: Duration,
}

#[derive(Default)]
struct WorkerStats {
    exported: u64,
    failed: u64,
    batches: u64,
    /// Events in the batch the exporter is working on (not yet exported or failed).
    held: u64,
    /// Events given up on by `close()` after its timeout (queued or held).
    abandoned: u64,
}

impl Shared {
    fn worker(&self) -> std::sync::MutexGuard<'_, WorkerStats> {
        self.worker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `close()` timed out: from now on the worker's results no longer count, and every event
    /// still queued or held by the worker is counted as abandoned (and dropped), once.
    fn give_up(&self) -> u64 {
        let mut w = self.worker();
        self.closed.store(true, Ordering::SeqCst);
        self.gave_up.store(true, Ordering::SeqCst);
        let held = std::mem::take(&mut w.held);
        let mut n = held;
        while self.queue.pop().is_some() {
            n += 1;
        }
        w.abandoned += n;
        n
    }

    /// Events popped from the queue after `close()` gave up (by a racing offer or by the
    /// worker): abandoned too.
    fn abandon_queued(&self, extra: u64) {
        let mut w = self.worker();
        let mut n = extra;
        while self.queue.pop().is_some() {
            n += 1;
        }
        w.abandoned += n;
    }
}

/// The analytics pipeline: an [`EventSink`] for the client that queues events and exports
/// them in batches on its own thread. Cheap to clone (clones share the pipeline). See the
/// [module docs](super).
#[derive(Clone)]
pub struct AnalyticsPipeline {
    shared: Arc<Shared>,
    /// When the last clone is dropped, the worker delivers what is queued and stops.
    control: Arc<mpsc::UnboundedSender<Control>>,
}

impl std::fmt::Debug for AnalyticsPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsPipeline")
            .field("stats", &self.stats())
            .finish()
    }
}

thread_local! {
    /// Flag keys, rule ids and event names seen on this thread (bounded).
    static INTERNED: RefCell<FxHashMap<Box<str>, Arc<str>>> = RefCell::new(FxHashMap::default());
}

/// Most strings [`intern`] keeps per thread; beyond, the table starts over.
const MAX_INTERNED: usize = 4096;

/// A shared copy of `s`, allocated once per thread.
fn intern(s: &str) -> Arc<str> {
    INTERNED.with(|t| {
        let mut t = t.borrow_mut();
        if let Some(a) = t.get(s) {
            return a.clone();
        }
        if t.len() >= MAX_INTERNED {
            t.clear();
        }
        let a: Arc<str> = Arc::from(s);
        t.insert(Box::from(s), a.clone());
        a
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
        let (control, rx) = mpsc::unbounded_channel();
        let rate = config.evaluation_sample_rate;
        let shared = Arc::new(Shared {
            queue: ArrayQueue::new(config.capacity),
            wake: Notify::new(),
            wake_pending: AtomicBool::new(false),
            batch_size: config.batch_size,
            closed: AtomicBool::new(false),
            gave_up: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            counters: Striped::default(),
            worker: Mutex::new(WorkerStats::default()),
            rate,
            sampling: Sampling::new(rate),
            close_timeout: config.close_timeout,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(PipelineError::Start)?;
        let worker = Worker {
            redacted: Redacted::default(),
            rx,
            exporter,
            batch: Vec::with_capacity(config.batch_size),
            config,
            shared: shared.clone(),
        };
        std::thread::Builder::new()
            .name("feature-analytics".to_owned())
            .spawn(move || runtime.block_on(worker.run()))
            .map_err(PipelineError::Start)?;
        Ok(AnalyticsPipeline {
            shared,
            control: Arc::new(control),
        })
    }

    /// What the pipeline has done so far (see [`PipelineStats`] for the invariant).
    pub fn stats(&self) -> PipelineStats {
        let s = &self.shared;
        // Read in the reverse order of the writes, so that every event counted below was
        // already counted as accepted: drops at the queue are counted after `ACCEPTED` (with a
        // release fence between), and an event reaches the worker only after it was accepted.
        let refused = s.counters.get(DROPPED);
        fence(Ordering::Acquire);
        let (exported, failed, batches, abandoned) = {
            let w = s.worker();
            (w.exported, w.failed, w.batches, w.abandoned)
        };
        let accepted = s.counters.get(ACCEPTED);
        let dropped = refused + abandoned;
        PipelineStats {
            accepted,
            dropped,
            exported,
            failed,
            batches,
            pending: accepted.saturating_sub(exported + failed + dropped),
            abandoned,
        }
    }

    /// Whether to keep this evaluation: Bernoulli sampling at the configured rate, drawn as
    /// geometric gaps between kept events so that a skipped evaluation costs one decrement.
    #[inline]
    fn sample(&self) -> bool {
        let sampling = self.shared.sampling;
        self.shared.counters.line().sample(SKIP, || sampling.gap())
    }

    /// Queues the event `make` builds, unless the queue is full (then nothing is built: a
    /// stuck exporter makes evaluation cheaper, never slower).
    #[inline]
    fn offer(&self, make: impl FnOnce() -> Msg) {
        let s = &self.shared;
        let line = s.counters.line();
        // Counted before it is queued: the worker can export it at once, and `stats()` must
        // never see more exported than accepted.
        line.add(ACCEPTED, 1);
        if s.queue.is_full() || s.closed.load(Ordering::Relaxed) {
            fence(Ordering::Release);
            line.add(DROPPED, 1);
            return;
        }
        if s.queue.push(make()).is_err() {
            fence(Ordering::Release);
            line.add(DROPPED, 1);
            return;
        }
        // Pairs with the fence in `Worker::finish`: either the worker's last pass sees this
        // event, or this sees that the worker has finished.
        fence(Ordering::SeqCst);
        if s.gave_up.load(Ordering::SeqCst) || s.finished.load(Ordering::SeqCst) {
            // `close()` gave up, or the worker finished, while this event was being queued:
            // nobody will take it.
            s.abandon_queued(0);
            return;
        }
        if s.queue.len() >= s.batch_size && !s.wake_pending.swap(true, Ordering::AcqRel) {
            s.wake.notify_one();
        }
    }

    /// Sends a request to the worker and waits for it, at most `close_timeout`: `true` when
    /// the worker answered (or had already stopped).
    async fn control(&self, make: fn(oneshot::Sender<()>) -> Control) -> bool {
        let (tx, rx) = oneshot::channel();
        let deadline = self.shared.close_timeout;
        if self.control.send(make(tx)).is_err() {
            return true; // the worker has already stopped
        }
        if tokio::time::timeout(deadline, rx).await.is_err() {
            tracing::warn!(target: "feature::analytics", "exporter did not finish within {deadline:?}");
            return false;
        }
        true
    }

    /// Exports everything queued so far and waits for the exporter to flush (at most
    /// `close_timeout`; what is not delivered by then stays pending).
    pub async fn flush(&self) {
        self.control(Control::Flush).await;
    }

    /// Exports everything queued, closes the exporter and stops the worker. Events offered
    /// later are dropped (and counted). When the exporter has not finished within
    /// `close_timeout`, `close()` returns anyway and counts every event still queued or in
    /// the unfinished batch as dropped and [`abandoned`](PipelineStats::abandoned) (logged as
    /// a warning), so [`stats`](Self::stats) accounts for every event.
    pub async fn close(&self) {
        if !self.control(Control::Close).await {
            let n = self.shared.give_up();
            tracing::warn!(target: "feature::analytics", events = n, "analytics close timed out: {n} event(s) abandoned (counted as dropped)");
        }
    }
}

impl EventSink for AnalyticsPipeline {
    #[inline]
    fn wants_evaluation(&self, in_experiment: bool) -> bool {
        in_experiment || self.shared.sampling == Sampling::All || self.sample()
    }

    fn evaluation_sample_rate(&self) -> Option<f64> {
        Some(self.shared.rate)
    }

    /// Called by the client only for kept events: sampling happened before (see
    /// `evaluation_sample_rate`).
    fn evaluation(&self, e: &EvaluationEvent<'_>) {
        self.offer(|| {
            Msg::Evaluation(RawEvaluation {
                at: SystemTime::now(),
                key: intern(e.key),
                context: e.context.clone(),
                value: e.value.clone(),
                variation: e.variation,
                reason: e.reason,
                rule_id: e.rule_id.map(intern),
                in_experiment: e.in_experiment,
            })
        });
    }

    fn track(&self, context: &Context, name: &str, data: &TrackData) {
        self.offer(|| {
            Msg::Custom(RawCustom {
                at: SystemTime::now(),
                name: intern(name),
                context: context.clone(),
                data: data.clone(),
            })
        });
    }

    fn flush(&self) -> BoxFuture<'_> {
        Box::pin(AnalyticsPipeline::flush(self))
    }

    fn close(&self) -> BoxFuture<'_> {
        Box::pin(AnalyticsPipeline::close(self))
    }
}

/// The redacted form of the last context seen: events of one context usually come in runs.
#[derive(Default)]
struct Redacted {
    last: Option<(Context, Option<ContextMap>)>,
}

type ContextMap = Arc<Map<String, Value>>;

impl Redacted {
    fn of(&mut self, redaction: &Redaction, ctx: &Context) -> Option<ContextMap> {
        if let Some((c, m)) = &self.last {
            if c.shares_attributes_with(ctx) || c == ctx {
                return m.clone();
            }
        }
        let m = redaction.apply_opt(ctx).map(Arc::new);
        self.last = Some((ctx.clone(), m.clone()));
        m
    }
}

struct Worker {
    redacted: Redacted,
    rx: mpsc::UnboundedReceiver<Control>,
    exporter: Arc<dyn AnalyticsExporter>,
    batch: Vec<AnalyticsEvent>,
    config: PipelineConfig,
    shared: Arc<Shared>,
}

impl Worker {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(self.config.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            if self.shared.gave_up.load(Ordering::SeqCst) {
                // `close()` timed out and accounted for everything this worker held.
                return;
            }
            tokio::select! {
                control = self.rx.recv() => match control {
                    Some(Control::Flush(done)) => {
                        self.drain().await;
                        self.export().await;
                        if let Err(e) = self.exporter.flush().await {
                            tracing::warn!(target: "feature::analytics", "flush failed: {e}");
                        }
                        let _ = done.send(());
                    }
                    Some(Control::Close(done)) => {
                        self.finish().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.finish().await;
                        return;
                    }
                },
                _ = self.shared.wake.notified() => self.drain().await,
                _ = tick.tick() => {
                    self.drain().await;
                    self.export().await;
                }
            }
        }
    }

    /// Moves every queued event into batches, exporting each full one.
    async fn drain(&mut self) {
        self.shared.wake_pending.store(false, Ordering::Release);
        while let Some(msg) = self.shared.queue.pop() {
            if self.shared.gave_up.load(Ordering::SeqCst) {
                let extra = self.batch.len() as u64 + 1;
                self.batch.clear();
                self.shared.abandon_queued(extra);
                return;
            }
            let event = match msg {
                Msg::Evaluation(raw) => {
                    let ctx = self.redacted.of(&self.config.redaction, &raw.context);
                    evaluation_event(ctx, raw)
                }
                Msg::Custom(raw) => {
                    let ctx = self.redacted.of(&self.config.redaction, &raw.context);
                    custom_event(ctx, raw)
                }
            };
            self.batch.push(event);
            if self.batch.len() >= self.config.batch_size {
                self.export().await;
            }
        }
    }

    async fn finish(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.rx.close();
        // Events queued before the close are still delivered.
        self.drain().await;
        self.export().await;
        if let Err(e) = self.exporter.close().await {
            tracing::warn!(target: "feature::analytics", "closing the exporter failed: {e}");
        }
        // An event offered while the close was under way (it passed the `closed` check before
        // it was set) may have been queued after the drain: count it, never leave it pending.
        self.shared.finished.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.shared.abandon_queued(0);
        while let Ok(Control::Flush(done) | Control::Close(done)) = self.rx.try_recv() {
            let _ = done.send(());
        }
    }

    async fn export(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let n = self.batch.len() as u64;
        {
            let mut w = self.shared.worker();
            if self.shared.gave_up.load(Ordering::SeqCst) {
                // `close()` gave up: these events were popped after it counted the rest.
                w.abandoned += n;
                self.batch.clear();
                return;
            }
            w.held = n;
        }
        let result = self.exporter.export(&self.batch).await;
        self.batch.clear();
        if let Err(e) = &result {
            tracing::warn!(target: "feature::analytics", events = n, "export failed: {e}");
        }
        let mut w = self.shared.worker();
        if self.shared.gave_up.load(Ordering::SeqCst) {
            // `close()` timed out during this export and counted the batch as abandoned.
            return;
        }
        w.held = 0;
        w.batches += 1;
        match result {
            Ok(()) => w.exported += n,
            Err(_) => w.failed += n,
        }
    }
}

fn evaluation_event(context: Option<ContextMap>, raw: RawEvaluation) -> AnalyticsEvent {
    AnalyticsEvent {
        id: new_event_id(),
        kind: EventKind::Evaluation,
        timestamp: DateTime::<Utc>::from(raw.at),
        flag_key: raw.key.to_string(),
        user_key: raw.context.key().to_owned(),
        value: raw.value,
        variation_idx: raw.variation,
        reason: Some(raw.reason),
        rule_id: raw.rule_id.map(|r| r.to_string()),
        in_experiment: raw.in_experiment,
        context,
        event: None,
        data: None,
        metric_value: None,
    }
}

fn custom_event(context: Option<ContextMap>, raw: RawCustom) -> AnalyticsEvent {
    AnalyticsEvent {
        id: new_event_id(),
        kind: EventKind::Custom,
        timestamp: DateTime::<Utc>::from(raw.at),
        flag_key: String::new(),
        user_key: raw.context.key().to_owned(),
        value: Value::Null,
        variation_idx: None,
        reason: None,
        rule_id: None,
        in_experiment: false,
        context,
        event: Some(raw.name.to_string()),
        data: raw.data.data,
        metric_value: raw.data.metric_value,
    }
}
