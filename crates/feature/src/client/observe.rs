//! What the client does around an evaluation when metrics or analytics are on, fused so that
//! the common case costs one look-up of the thread's counter line and a few plain adds on it:
//!
//! - the evaluation is counted, by reason and [`ValueClass`], in the client's own per-thread
//!   counters ([`Tally`]); metrics that read those counts ([`Metrics::reads_counts`]) are not
//!   called at all for an untimed evaluation;
//! - one evaluation in `timing_sample` is timed, decided by a countdown on the same line;
//! - evaluation events are sampled by a geometric countdown on the same line when the sink
//!   states its rate ([`EventSink::evaluation_sample_rate`]); the event is built only when kept.

use super::sampling::Sampling;
use crate::analytics::{DefaultValue, EvaluationEvent, EventSink};
use crate::metrics::stripe::{LineRef, Striped};
use feature_core::metrics::{EvaluationCounts, EvaluationRecord, Metrics, ValueClass};
use feature_core::{Context, Detail, ErrorKind, Evaluation, ReasonKind};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

const CLASSES: usize = ValueClass::ALL.len();
/// Counters per line: reason × value class (by [`ReasonKind::index`] and
/// [`ValueClass::index`]), then the two countdowns.
const COUNTS: usize = ReasonKind::ALL.len() * CLASSES;
const TIMING: usize = COUNTS;
const EVENTS: usize = COUNTS + 1;
const LINE: usize = COUNTS + 2;

/// A client's evaluation counts: per-thread lines, summed when read.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    lines: Striped<LINE>,
}

impl EvaluationCounts for Tally {
    fn for_each_count(&self, f: &mut dyn FnMut(ReasonKind, ValueClass, u64)) {
        let totals = self.lines.totals();
        for (i, &n) in totals.iter().take(COUNTS).enumerate() {
            if n > 0 {
                f(
                    ReasonKind::ALL[i / CLASSES],
                    ValueClass::ALL[i % CLASSES],
                    n,
                );
            }
        }
    }
}

/// What the observer needs to know of an evaluation, from a borrowed [`Detail`] or an owned
/// [`Evaluation`]. Everything but the reason is read only when it is used.
pub(crate) trait Outcome {
    fn reason(&self) -> ReasonKind;
    fn error(&self) -> Option<ErrorKind>;
    fn variation(&self) -> Option<usize>;
    fn rule_id(&self) -> Option<&str>;
    fn rule_index(&self) -> Option<usize>;
    fn in_experiment(&self) -> bool;
    fn prerequisite_key(&self) -> Option<&str>;
}

impl Outcome for Detail<'_> {
    #[inline(always)]
    fn reason(&self) -> ReasonKind {
        self.reason_kind()
    }
    #[inline(always)]
    fn error(&self) -> Option<ErrorKind> {
        self.error_kind()
    }
    #[inline(always)]
    fn variation(&self) -> Option<usize> {
        self.variation_index()
    }
    #[inline(always)]
    fn rule_id(&self) -> Option<&str> {
        Detail::rule_id(self)
    }
    #[inline(always)]
    fn rule_index(&self) -> Option<usize> {
        Detail::rule_index(self)
    }
    #[inline(always)]
    fn in_experiment(&self) -> bool {
        Detail::in_experiment(self)
    }
    #[inline(always)]
    fn prerequisite_key(&self) -> Option<&str> {
        Detail::prerequisite_key(self)
    }
}

impl Outcome for Evaluation {
    fn reason(&self) -> ReasonKind {
        self.reason.kind()
    }
    fn error(&self) -> Option<ErrorKind> {
        self.reason.error_kind()
    }
    fn variation(&self) -> Option<usize> {
        self.variation_index
    }
    fn rule_id(&self) -> Option<&str> {
        Evaluation::rule_id(self)
    }
    fn rule_index(&self) -> Option<usize> {
        Evaluation::rule_index(self)
    }
    fn in_experiment(&self) -> bool {
        Evaluation::in_experiment(self)
    }
    fn prerequisite_key(&self) -> Option<&str> {
        self.prerequisite_key()
    }
}

/// How the client decides which evaluation events to build.
#[derive(Debug, Clone, Copy)]
enum EventChoice {
    /// The client samples at the sink's stated rate.
    Sampled(Sampling),
    /// The sink decides ([`EventSink::wants_evaluation`]).
    AskSink,
}

/// The client's metrics and analytics hooks, and the counters they share.
pub(crate) struct Observer {
    metrics: Option<Arc<dyn Metrics>>,
    /// The metrics read their evaluation counts from `tally`.
    counted: bool,
    events: Option<Arc<dyn EventSink>>,
    choice: EventChoice,
    tally: Arc<Tally>,
    /// Time one evaluation in this many (per thread).
    timing_sample: u64,
}

/// One evaluation under way: the thread's counter line and, when it is timed, its start.
pub(crate) struct InFlight<'a> {
    line: LineRef<'a, LINE>,
    start: Option<Instant>,
}

impl Observer {
    /// An observer, or `None` when there is nothing to observe for.
    pub(crate) fn new(
        metrics: Option<Arc<dyn Metrics>>,
        events: Option<Arc<dyn EventSink>>,
        timing_sample: u32,
    ) -> Option<Observer> {
        if metrics.is_none() && events.is_none() {
            return None;
        }
        let tally = Arc::new(Tally::default());
        let counted = metrics.as_ref().is_some_and(|m| m.reads_counts());
        if counted {
            if let Some(m) = &metrics {
                m.attach_counts(tally.clone());
            }
        }
        let choice = match events.as_ref().and_then(|e| e.evaluation_sample_rate()) {
            Some(rate) => EventChoice::Sampled(Sampling::new(rate)),
            None => EventChoice::AskSink,
        };
        Some(Observer {
            metrics,
            counted,
            events,
            choice,
            tally,
            timing_sample: u64::from(timing_sample.max(1)),
        })
    }

    /// Starts an evaluation: decides whether it is timed (and reads the clock if so).
    #[inline(always)]
    pub(crate) fn begin(&self) -> InFlight<'_> {
        let line = self.tally.lines.line();
        let timed = self.metrics.is_some() && line.countdown(TIMING, || self.timing_sample - 1);
        InFlight {
            line,
            start: if timed { Some(Instant::now()) } else { None },
        }
    }

    /// Counts the evaluation and hands it to metrics and analytics as they asked. `value` is
    /// `o.value()`, which the caller has at hand.
    #[inline(always)]
    pub(crate) fn finish(
        &self,
        in_flight: InFlight<'_>,
        ctx: &Context,
        key: &str,
        o: &impl Outcome,
        value: Option<&Value>,
        default: impl Fn() -> Value,
    ) {
        let reason = o.reason();
        let class = ValueClass::of(reason, value);
        in_flight
            .line
            .add(reason.index() * CLASSES + class.index(), 1);
        if let Some(m) = &self.metrics {
            if !self.counted || in_flight.start.is_some() || reason == ReasonKind::Error {
                self.report(m.as_ref(), &in_flight, key, o, value);
            }
        }
        let Some(events) = &self.events else {
            return;
        };
        let in_experiment = o.in_experiment();
        let wanted = match self.choice {
            EventChoice::Sampled(Sampling::All) => true,
            EventChoice::Sampled(s) => {
                in_experiment || in_flight.line.sample(EVENTS, move || s.gap())
            }
            EventChoice::AskSink => events.wants_evaluation(in_experiment),
        };
        if wanted {
            Self::send(events.as_ref(), ctx, key, o, value, default);
        }
    }

    /// The metrics calls of an evaluation that is timed, failed, or not counted by the tally.
    #[inline(never)]
    fn report(
        &self,
        m: &dyn Metrics,
        in_flight: &InFlight<'_>,
        key: &str,
        o: &impl Outcome,
        value: Option<&Value>,
    ) {
        let duration = in_flight.start.map(|s| s.elapsed());
        let reason = o.reason();
        let error = o.error();
        if !self.counted || duration.is_some() {
            m.record_evaluation(&EvaluationRecord {
                key,
                reason,
                error,
                variation: o.variation(),
                value,
                duration,
                counted: self.counted,
            });
        }
        if let Some(e) = error {
            m.record_error(key, e);
        }
    }

    /// Builds and sends the evaluation event.
    #[inline(never)]
    fn send(
        events: &dyn EventSink,
        ctx: &Context,
        key: &str,
        o: &impl Outcome,
        value: Option<&Value>,
        default: impl Fn() -> Value,
    ) {
        let fallback;
        let value = match value {
            Some(v) => v,
            None => {
                fallback = default();
                &fallback
            }
        };
        events.evaluation(&EvaluationEvent {
            key,
            context: ctx,
            value,
            variation: o.variation(),
            reason: o.reason(),
            default: DefaultValue::new(&default),
            rule_index: o.rule_index(),
            rule_id: o.rule_id(),
            in_experiment: o.in_experiment(),
            error: o.error(),
            prerequisite_key: o.prerequisite_key(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Keeps what it is told.
    #[derive(Default)]
    struct Seen {
        records: Mutex<Vec<(ReasonKind, bool, bool)>>,
        counts: Mutex<Vec<Arc<dyn EvaluationCounts>>>,
        reads: bool,
    }

    /// Shares a [`Seen`] with the observer.
    struct Shared(Arc<Seen>);

    impl Metrics for Shared {
        fn record_evaluation(&self, r: &EvaluationRecord<'_>) {
            self.0
                .records
                .lock()
                .unwrap()
                .push((r.reason, r.duration.is_some(), r.counted));
        }
        fn reads_counts(&self) -> bool {
            self.0.reads
        }
        fn attach_counts(&self, counts: Arc<dyn EvaluationCounts>) {
            self.0.counts.lock().unwrap().push(counts);
        }
    }

    fn run(obs: &Observer, n: usize) {
        let ctx = Context::new("u");
        let eval = Evaluation {
            key: "f".into(),
            value: Value::Bool(true),
            variation_index: Some(1),
            variation_name: None,
            reason: feature_core::Reason::Fallthrough {
                in_experiment: false,
            },
        };
        for _ in 0..n {
            let t = obs.begin();
            obs.finish(t, &ctx, "f", &eval, Some(&eval.value), || Value::Null);
        }
    }

    #[test]
    fn counting_metrics_see_only_the_timed_sample_and_read_the_tally() {
        let seen = Arc::new(Seen {
            reads: true,
            ..Seen::default()
        });
        let obs = Observer::new(Some(Arc::new(Shared(seen.clone()))), None, 10).unwrap();
        run(&obs, 100);
        let records = seen.records.lock().unwrap().clone();
        assert_eq!(records.len(), 10, "one in ten is timed");
        assert!(records.iter().all(|&(_, timed, counted)| timed && counted));
        let counts = seen.counts.lock().unwrap();
        assert_eq!(counts.len(), 1);
        let mut got = Vec::new();
        counts[0].for_each_count(&mut |r, v, n| got.push((r, v, n)));
        assert_eq!(got, [(ReasonKind::Fallthrough, ValueClass::True, 100)]);
    }

    #[test]
    fn other_metrics_see_every_evaluation() {
        let seen = Arc::new(Seen::default());
        let obs = Observer::new(Some(Arc::new(Shared(seen.clone()))), None, 10).unwrap();
        run(&obs, 100);
        let records = seen.records.lock().unwrap().clone();
        assert_eq!(records.len(), 100);
        assert_eq!(records.iter().filter(|r| r.1).count(), 10);
        assert!(records
            .iter()
            .all(|r| !r.2 && r.0 == ReasonKind::Fallthrough));
        assert!(seen.counts.lock().unwrap().is_empty());
    }
}
