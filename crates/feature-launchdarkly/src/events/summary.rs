//! Summary counters: per flag, per (variation, version), as LaunchDarkly's `summary` event
//! reports them. Entries are kept between flushes and reset, so that counting an evaluation
//! in the steady state allocates nothing: a hash look-up by the borrowed key, a scan of the
//! flag's few counters, a bit set for the context kinds.

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

struct Counter {
    variation: Option<usize>,
    /// `None`: the flag is unknown.
    version: Option<u64>,
    value: Value,
    count: u64,
}

struct FlagSummary {
    /// Whether the flag was evaluated since the last flush.
    touched: bool,
    default: Value,
    /// Bit `i`: kind `kinds[i]` of the summarizer was seen.
    kinds: u64,
    counters: Vec<Counter>,
}

/// One flush period's counters.
#[derive(Default)]
pub(crate) struct Summarizer {
    flags: FxHashMap<Box<str>, FlagSummary>,
    /// Context kinds seen, interned (a flag's kinds are a bit set over the first 64).
    kinds: Vec<Box<str>>,
    start: u64,
    end: u64,
    touched: usize,
}

/// One evaluation, as the summary counts it.
pub(crate) struct Count<'a> {
    pub key: &'a str,
    pub context: &'a feature_core::Context,
    pub variation: Option<usize>,
    pub version: Option<u64>,
    pub value: &'a Value,
    pub default: &'a dyn Fn() -> Value,
    pub now: u64,
}

impl Summarizer {
    pub(crate) fn count(&mut self, c: Count<'_>) {
        let mut kind_bits = 0u64;
        for k in c.context.kinds() {
            let i = match self.kinds.iter().position(|x| **x == *k) {
                Some(i) => i,
                None => {
                    self.kinds.push(k.into());
                    self.kinds.len() - 1
                }
            };
            if i < 64 {
                kind_bits |= 1 << i;
            }
        }
        let flag = match self.flags.get_mut(c.key) {
            Some(f) => f,
            None => self.flags.entry(c.key.into()).or_insert(FlagSummary {
                touched: false,
                default: Value::Null,
                kinds: 0,
                counters: Vec::new(),
            }),
        };
        if !flag.touched {
            flag.touched = true;
            flag.default = (c.default)();
            flag.kinds = 0;
            flag.counters.clear();
            self.touched += 1;
        }
        flag.kinds |= kind_bits;
        match flag
            .counters
            .iter_mut()
            .find(|x| x.variation == c.variation && x.version == c.version)
        {
            Some(x) => x.count += 1,
            None => flag.counters.push(Counter {
                variation: c.variation,
                version: c.version,
                value: c.value.clone(),
                count: 1,
            }),
        }
        if self.start == 0 || c.now < self.start {
            self.start = c.now;
        }
        if c.now > self.end {
            self.end = c.now;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.touched == 0
    }

    /// The `summary` event of the period, and a fresh period. Flags not evaluated for a
    /// whole period are forgotten.
    pub(crate) fn take(&mut self) -> Option<Value> {
        // Entries of flags evaluated this period are kept (and reused: no allocation for them
        // next period); the others go, so keys evaluated once (unknown flags named at run
        // time, typos) are not held forever.
        self.flags.retain(|_, f| f.touched);
        if self.is_empty() {
            return None;
        }
        let mut features = Map::new();
        for (key, f) in self.flags.iter_mut().filter(|(_, f)| f.touched) {
            let kinds: Vec<Value> = self
                .kinds
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < 64 && f.kinds & (1 << i) != 0)
                .map(|(_, k)| Value::String(k.to_string()))
                .collect();
            let counters: Vec<Value> = f
                .counters
                .iter()
                .map(|c| {
                    let mut o = Map::new();
                    o.insert("count".into(), c.count.into());
                    o.insert("value".into(), c.value.clone());
                    if let Some(v) = c.variation {
                        o.insert("variation".into(), v.into());
                    }
                    match c.version {
                        Some(v) => o.insert("version".into(), v.into()),
                        None => o.insert("unknown".into(), Value::Bool(true)),
                    };
                    Value::Object(o)
                })
                .collect();
            let mut o = Map::new();
            o.insert("default".into(), std::mem::take(&mut f.default));
            o.insert("contextKinds".into(), Value::Array(kinds));
            o.insert("counters".into(), Value::Array(counters));
            features.insert(key.to_string(), Value::Object(o));
            f.touched = false;
        }
        let mut out = Map::new();
        out.insert("kind".into(), Value::String("summary".into()));
        out.insert("startDate".into(), self.start.into());
        out.insert("endDate".into(), self.end.into());
        out.insert("features".into(), Value::Object(features));
        self.start = 0;
        self.end = 0;
        self.touched = 0;
        Some(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(s: &mut Summarizer, key: &str) {
        let ctx = feature_core::Context::new("u");
        s.count(Count {
            key,
            context: &ctx,
            variation: None,
            version: None,
            value: &Value::Null,
            default: &|| Value::Null,
            now: 1,
        });
    }

    #[test]
    fn flags_not_evaluated_for_a_period_are_forgotten() {
        let mut s = Summarizer::default();
        for i in 0..1000 {
            count(&mut s, &format!("flag-{i}"));
        }
        count(&mut s, "steady");
        assert!(s.take().is_some());
        assert_eq!(s.flags.len(), 1001, "kept until the next period ends");
        count(&mut s, "steady");
        let summary = s.take().unwrap();
        assert_eq!(summary["features"].as_object().unwrap().len(), 1);
        assert_eq!(
            s.flags.len(),
            1,
            "only the flag evaluated this period is kept"
        );
        assert!(s.take().is_none());
        assert!(s.flags.is_empty());
    }
}
