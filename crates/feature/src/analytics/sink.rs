//! The analytics hook: where evaluation events and custom events go.

use super::TrackData;
use feature_core::{Context, ErrorKind, ReasonKind};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// A boxed future, for the async methods of [`EventSink`].
pub type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The caller's default value of an evaluation, built only when asked for
/// ([`DefaultValue::get`]): a sink that needs it once per flag and flush (LaunchDarkly's
/// summaries) costs a string accessor no allocation on the other evaluations.
#[derive(Clone, Copy)]
pub struct DefaultValue<'a>(&'a dyn Fn() -> Value);

impl<'a> DefaultValue<'a> {
    /// The default `f` builds.
    pub fn new(f: &'a dyn Fn() -> Value) -> DefaultValue<'a> {
        DefaultValue(f)
    }

    /// The default value.
    pub fn get(&self) -> Value {
        (self.0)()
    }

    /// The builder of the value (for APIs that take a closure).
    pub fn as_fn(&self) -> &'a dyn Fn() -> Value {
        self.0
    }
}

impl std::fmt::Debug for DefaultValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.get(), f)
    }
}

fn null() -> Value {
    Value::Null
}

impl Default for DefaultValue<'_> {
    /// `null` (no default known).
    fn default() -> Self {
        DefaultValue(&null)
    }
}

/// One evaluation, as analytics see it. Borrowed: copy what you keep.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationEvent<'a> {
    /// The flag's key.
    pub key: &'a str,
    /// The context evaluated.
    pub context: &'a Context,
    /// The value served (the caller's default when nothing else was).
    pub value: &'a Value,
    /// The variation served, when one was.
    pub variation: Option<usize>,
    /// Why.
    pub reason: ReasonKind,
    /// The caller's default value.
    pub default: DefaultValue<'a>,
    /// The index of the rule that matched.
    pub rule_index: Option<usize>,
    /// The rule that matched, when it has an id.
    pub rule_id: Option<&'a str>,
    /// Whether the context is part of an experiment (such events should never be sampled away).
    pub in_experiment: bool,
    /// The error, when the reason is `ERROR`.
    pub error: Option<ErrorKind>,
    /// The prerequisite that failed.
    pub prerequisite_key: Option<&'a str>,
}

/// Receives evaluation and custom events from the client.
///
/// The client calls an `EventSink` on the evaluating thread, so an implementation must only
/// hand the event to a bounded queue (never block, never do I/O there) and count what it drops.
pub trait EventSink: Send + Sync + 'static {
    /// Whether the next evaluation event is wanted (sampling). The client asks before it builds
    /// the event and calls [`EventSink::evaluation`] only on `true`, so a sink that keeps one
    /// evaluation in a hundred costs almost nothing for the other ninety-nine. Experiment
    /// exposures (`in_experiment`) should always be wanted. Default: every event.
    #[inline]
    fn wants_evaluation(&self, in_experiment: bool) -> bool {
        let _ = in_experiment;
        true
    }

    /// The share of evaluation events this sink keeps, when it samples at a fixed rate
    /// (`0.0..=1.0`): the client then draws the sample itself, on counters it already touches
    /// for metrics, keeps every experiment exposure, and never calls
    /// [`EventSink::wants_evaluation`]. Default: `None` (ask `wants_evaluation` each time).
    fn evaluation_sample_rate(&self) -> Option<f64> {
        None
    }

    /// A flag was evaluated (and [`EventSink::wants_evaluation`] said yes). Must not block.
    fn evaluation(&self, event: &EvaluationEvent<'_>);

    /// `client.track(ctx, name, data)` was called. Must not block.
    fn track(&self, context: &Context, name: &str, data: &TrackData);

    /// LaunchDarkly's `identify`: the context was seen (see
    /// [`Client::identify`](crate::Client::identify)). Must not block. Default: nothing.
    fn identify(&self, context: &Context) {
        let _ = context;
    }

    /// Delivers everything queued so far.
    fn flush(&self) -> BoxFuture<'_> {
        Box::pin(async {})
    }

    /// Delivers everything queued and stops.
    fn close(&self) -> BoxFuture<'_> {
        self.flush()
    }
}
