//! Side-by-side benchmarks of `feature-core` against Unleash's engine (`unleash-yggdrasil`) and
//! LaunchDarkly's (`launchdarkly-server-sdk-evaluation`).
//!
//! Scenarios (a)–(e) of BENCHMARKS.md are expressed natively for every engine: our flag file
//! (`feature-core/benches/fixtures/scenarios.yaml`), Unleash feature definitions
//! (`fixtures/unleash.json`) and LaunchDarkly flags (`fixtures/launchdarkly.json`). [`check`]
//! asserts that every engine returns the expected answer for every scenario before anything is
//! timed; [`compare`] times them in the same run, interleaved, and reports medians and ratios.
//!
//! What each engine is asked per evaluation is what its users pay for a boolean check:
//! - feature: `client.bool(&ctx, key, false)` on a `feature::Client` over a `MemoryProvider`
//!   (the per-thread view check, override check, lookup by key, evaluation, typed extraction);
//!   [`FeatureKeyed`] is the same client asked through a `FlagKey` resolved in advance
//!   (`client.flag(&KEY).bool(&ctx, false)`, no hash of the key while the flags are unchanged);
//!   [`FeatureArcSwap`] is the previous read path (`ArcSwap::load()` of the snapshot), kept for
//!   instruction counts;
//! - Yggdrasil: `EngineState::is_enabled(name, context)`, which loads its own snapshot and looks
//!   the toggle up;
//! - LaunchDarkly: `evaluate(store, flag, context)` on a flag resolved in advance (its SDK would
//!   also fetch, and clone, the flag from its store: that cost is left out, to its advantage).
//!
//! This crate is not published and nothing depends on it.

#![allow(clippy::panic, clippy::expect_used, missing_debug_implementations)] // benchmark harness: fails loudly; wraps foreign engines
use arc_swap::ArcSwap;
use feature_core::{parse_document, Format, Snapshot, ValueKind};
use launchdarkly_server_sdk_evaluation as ld;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};
use unleash_yggdrasil as ygg;

/// Our scenario flags (shared with `feature-core`'s own benchmarks).
pub const SCENARIOS_YAML: &str = include_str!("../../feature-core/benches/fixtures/scenarios.yaml");
/// The scenarios as Unleash feature definitions.
pub const UNLEASH_JSON: &str = include_str!("../fixtures/unleash.json");
/// The scenarios as LaunchDarkly flags.
pub const LAUNCHDARKLY_JSON: &str = include_str!("../fixtures/launchdarkly.json");

/// Number of distinct context keys the rollout scenario cycles through (a power of two).
pub const ROLLOUT_KEYS: usize = 1024;

/// A benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// (a) A boolean flag that is on, no rules.
    A,
    /// (b) Three rules of one or two clauses (eq, in over 10 values, contains); the third matches.
    B,
    /// (c) A 50/50 rollout by key over 1024 distinct keys.
    C,
    /// (d1) A regular-expression clause.
    D1,
    /// (d2) A semantic-version clause.
    D2,
    /// (e) One prerequisite.
    E,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 6] = [
        Scenario::A,
        Scenario::B,
        Scenario::C,
        Scenario::D1,
        Scenario::D2,
        Scenario::E,
    ];

    /// The flag's key, the same in every engine.
    pub fn key(self) -> &'static str {
        match self {
            Scenario::A => "a-bool",
            Scenario::B => "b-rules",
            Scenario::C => "c-rollout",
            Scenario::D1 => "d1-regex",
            Scenario::D2 => "d2-semver",
            Scenario::E => "e-prereq",
        }
    }

    /// A short description for reports.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::A => "(a) bool on, no rules",
            Scenario::B => "(b) 3 rules, 3rd matches",
            Scenario::C => "(c) 50/50 rollout, 1024 keys",
            Scenario::D1 => "(d1) regex clause",
            Scenario::D2 => "(d2) semver clause",
            Scenario::E => "(e) one prerequisite",
        }
    }

    /// A name usable as a benchmark id.
    pub fn id(self) -> &'static str {
        match self {
            Scenario::A => "a_bool_no_rules",
            Scenario::B => "b_three_rules",
            Scenario::C => "c_rollout_1024_keys",
            Scenario::D1 => "d1_regex",
            Scenario::D2 => "d2_semver",
            Scenario::E => "e_prerequisite",
        }
    }

    /// The speed-up over (Yggdrasil, LaunchDarkly) this scenario must reach.
    pub fn targets(self) -> (f64, f64) {
        match self {
            Scenario::A => (4.0, 3.0),
            Scenario::C => (1.1, 3.0),
            Scenario::B | Scenario::D1 | Scenario::D2 | Scenario::E => (2.5, 3.0),
        }
    }

    /// How much slower than the bucketing hash alone the rollout may be (scenario (c) only).
    pub const HASH_FLOOR_TARGET: f64 = 1.10;

    /// The scenario by its short name (`a`, `b`, `c`, `d1`, `d2`, `e`).
    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.id().split('_').next() == Some(s))
    }
}

/// The attributes of a person the scenarios are evaluated for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Context key (Unleash: `userId`).
    pub key: String,
    /// `email`.
    pub email: String,
    /// `country`.
    pub country: String,
    /// `plan`.
    pub plan: String,
    /// `appVersion`.
    pub app_version: String,
}

impl Person {
    /// The person every scenario but the rollout serves `true` to: matches the third rule of
    /// (b), the regex of (d1) and the version clause of (d2).
    pub fn matching() -> Person {
        Person {
            key: "user-1234".into(),
            email: "jo@example.com".into(),
            country: "DE".into(),
            plan: "pro".into(),
            app_version: "2.5.1".into(),
        }
    }

    /// A person (b), (d1) and (d2) serve `false` to.
    pub fn other() -> Person {
        Person {
            key: "user-5678".into(),
            email: "jo@example.org".into(),
            country: "US".into(),
            plan: "free".into(),
            app_version: "1.9.0".into(),
        }
    }

    /// A person with only a key, as the rollout uses.
    pub fn keyed(key: String) -> Person {
        Person {
            key,
            email: String::new(),
            country: String::new(),
            plan: String::new(),
            app_version: String::new(),
        }
    }

    fn attributes(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("email", self.email.as_str()),
            ("country", self.country.as_str()),
            ("plan", self.plan.as_str()),
            ("appVersion", self.app_version.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
    }
}

/// The people a scenario is timed on: 1024 distinct keys for the rollout, one person otherwise.
pub fn people(scenario: Scenario) -> Vec<Person> {
    match scenario {
        Scenario::C => (0..ROLLOUT_KEYS)
            .map(|i| Person::keyed(format!("user-{i:04}")))
            .collect(),
        _ => vec![Person::matching()],
    }
}

/// A flag engine, as seen by an application asking for a boolean.
pub trait Engine {
    /// The engine's name in reports.
    const NAME: &'static str;
    /// Its evaluation context, built in advance.
    type Context;
    /// What a call site holds to ask for one flag.
    type Flag;
    /// Builds the context for a person.
    fn context(&self, person: &Person) -> Self::Context;
    /// Resolves a flag key to what a call site holds.
    fn flag(&self, key: &'static str) -> Self::Flag;
    /// The boolean the flag serves to `ctx` (`false` when it serves nothing).
    fn bool(&self, flag: &Self::Flag, ctx: &Self::Context) -> bool;
}

/// This project's engine, as applications use it: a `feature::Client` on a `MemoryProvider`.
pub struct Feature {
    client: feature::Client,
    provider: feature::MemoryProvider,
    _runtime: tokio::runtime::Runtime,
}

impl Feature {
    /// A client serving the scenario flags.
    pub fn new() -> Feature {
        let parsed = parse_document(SCENARIOS_YAML, Format::Yaml)
            .unwrap_or_else(|e| panic!("scenarios.yaml: {e}"));
        assert!(
            !parsed.clone().compile(None).has_errors(),
            "scenarios.yaml has errors"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let provider = feature::MemoryProvider::with_document(parsed.document);
        let client = runtime
            .block_on(
                feature::Client::builder()
                    .provider(provider.clone())
                    .build(),
            )
            .expect("the client starts");
        Feature {
            client,
            provider,
            _runtime: runtime,
        }
    }

    /// The client.
    pub fn client(&self) -> &feature::Client {
        &self.client
    }

    /// The provider behind the client (publishing through it swaps the client's view).
    pub fn provider(&self) -> &feature::MemoryProvider {
        &self.provider
    }
}

impl Default for Feature {
    fn default() -> Self {
        Feature::new()
    }
}

fn our_context(p: &Person) -> feature_core::Context {
    p.attributes()
        .fold(feature_core::Context::new(p.key.clone()), |c, (k, v)| {
            c.with_attribute(k, v)
        })
}

impl Engine for Feature {
    const NAME: &'static str = "feature";
    type Context = feature_core::Context;
    type Flag = &'static str;

    fn context(&self, p: &Person) -> feature_core::Context {
        our_context(p)
    }

    fn flag(&self, key: &'static str) -> &'static str {
        key
    }

    #[inline]
    fn bool(&self, key: &&'static str, ctx: &feature_core::Context) -> bool {
        self.client.bool(ctx, key, false)
    }
}

/// This project's engine asked through a [`feature::FlagKey`] resolved in advance
/// (`client.flag(&KEY).bool(&ctx, false)`): what a call site holding its key in a `static`
/// pays; the same resolved-in-advance footing LaunchDarkly is measured on.
pub struct FeatureKeyed(pub Feature);

impl Engine for FeatureKeyed {
    const NAME: &'static str = "feature-key";
    type Context = feature_core::Context;
    type Flag = feature::FlagKey;

    fn context(&self, p: &Person) -> feature_core::Context {
        our_context(p)
    }

    fn flag(&self, key: &'static str) -> feature::FlagKey {
        feature::FlagKey::new(key)
    }

    #[inline]
    fn bool(&self, key: &feature::FlagKey, ctx: &feature_core::Context) -> bool {
        self.0.client.flag(key).bool(ctx, false)
    }
}

/// The read path before the per-thread cache: `ArcSwap::load()` of the snapshot, then the
/// same evaluation (for before/after instruction counts with `--profile feature-arcswap`).
pub struct FeatureArcSwap {
    snapshot: ArcSwap<Snapshot>,
}

impl FeatureArcSwap {
    /// Compiles the scenario flags.
    pub fn new() -> FeatureArcSwap {
        let snapshot = parse_document(SCENARIOS_YAML, Format::Yaml)
            .map(|p| p.compile(None))
            .unwrap_or_else(|e| panic!("scenarios.yaml: {e}"));
        assert!(!snapshot.has_errors(), "{:?}", snapshot.diagnostics());
        FeatureArcSwap {
            snapshot: ArcSwap::from_pointee(snapshot),
        }
    }
}

impl Default for FeatureArcSwap {
    fn default() -> Self {
        FeatureArcSwap::new()
    }
}

impl Engine for FeatureArcSwap {
    const NAME: &'static str = "feature-arcswap";
    type Context = feature_core::Context;
    type Flag = &'static str;

    fn context(&self, p: &Person) -> feature_core::Context {
        our_context(p)
    }

    fn flag(&self, key: &'static str) -> &'static str {
        key
    }

    #[inline]
    fn bool(&self, key: &&'static str, ctx: &feature_core::Context) -> bool {
        self.snapshot
            .load()
            .evaluate(key, ctx)
            .check_type(ValueKind::Bool)
            .value()
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }
}

/// A rollout reduced to its hash: whether the bucket of the context's key under the flag's
/// hash prefix is in the upper half (the scenario's second variation, `true`). What any engine must do for (c), and nothing else: the first step of
/// [`rollout_steps`].
pub struct HashAndCompare;

impl Engine for HashAndCompare {
    const NAME: &'static str = "hash ≥ 0.5";
    type Context = String;
    type Flag = Vec<u8>;

    fn context(&self, p: &Person) -> String {
        p.key.clone()
    }

    fn flag(&self, key: &'static str) -> Vec<u8> {
        format!("{key}..").into_bytes()
    }

    #[inline]
    fn bool(&self, prefix: &Vec<u8>, key: &String) -> bool {
        feature_core::bucket::bucket_str(prefix, key.as_bytes()) >= 0.5
    }
}

/// [`HashAndCompare`] reading the key from a [`feature_core::Context`].
pub struct ContextHashAndCompare;

impl Engine for ContextHashAndCompare {
    const NAME: &'static str = "context key, hash ≥ 0.5";
    type Context = feature_core::Context;
    type Flag = Vec<u8>;

    fn context(&self, p: &Person) -> feature_core::Context {
        our_context(p)
    }

    fn flag(&self, key: &'static str) -> Vec<u8> {
        format!("{key}..").into_bytes()
    }

    #[inline]
    fn bool(&self, prefix: &Vec<u8>, ctx: &feature_core::Context) -> bool {
        feature_core::bucket::bucket_str(prefix, ctx.key().as_bytes()) >= 0.5
    }
}

/// The compiled snapshot evaluated directly by [`feature_core::FlagKey`], without the client
/// (no per-thread view, no client checks).
pub struct SnapshotKeyed {
    snapshot: Snapshot,
}

impl SnapshotKeyed {
    /// Compiles the scenario flags.
    pub fn new() -> SnapshotKeyed {
        let snapshot = parse_document(SCENARIOS_YAML, Format::Yaml)
            .map(|p| p.compile(None))
            .unwrap_or_else(|e| panic!("scenarios.yaml: {e}"));
        assert!(!snapshot.has_errors(), "{:?}", snapshot.diagnostics());
        SnapshotKeyed { snapshot }
    }
}

impl Default for SnapshotKeyed {
    fn default() -> Self {
        SnapshotKeyed::new()
    }
}

impl Engine for SnapshotKeyed {
    const NAME: &'static str = "snapshot by FlagKey";
    type Context = feature_core::Context;
    type Flag = feature_core::FlagKey;

    fn context(&self, p: &Person) -> feature_core::Context {
        our_context(p)
    }

    fn flag(&self, key: &'static str) -> feature_core::FlagKey {
        feature_core::FlagKey::new(key)
    }

    #[inline]
    fn bool(&self, key: &feature_core::FlagKey, ctx: &feature_core::Context) -> bool {
        self.snapshot
            .evaluate_key(key, ctx)
            .value()
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }
}

/// The cost of scenario (c) step by step, interleaved in one run and repeated `rounds` times:
/// the hash alone, the hash and the comparison, the context's key read too, the compiled
/// snapshot by `FlagKey`, the client by `FlagKey`, the client by key string. The median over
/// the rounds of each step's median, in ns per evaluation.
/// Fails when a step serves another person another variation than the client does: then the
/// steps would not be the same work.
pub fn rollout_steps(rounds: usize, plan: Plan) -> Result<Vec<(&'static str, f64)>, String> {
    let (snapshot, feature) = (SnapshotKeyed::new(), Feature::new());
    let keyed = FeatureKeyed(Feature::new());
    let key = Scenario::C.key();
    let (prefix, snapshot_key) = (HashAndCompare.flag(key), snapshot.flag(key));
    for p in people(Scenario::C) {
        let want = feature.bool(&key, &feature.context(&p));
        let got = [
            HashAndCompare.bool(&prefix, &HashAndCompare.context(&p)),
            ContextHashAndCompare.bool(&prefix, &ContextHashAndCompare.context(&p)),
            snapshot.bool(&snapshot_key, &snapshot.context(&p)),
        ];
        if got.iter().any(|&g| g != want) {
            return Err(format!("{}: steps {got:?}, client {want}", p.key));
        }
    }
    let mut medians: Vec<(&'static str, Vec<f64>)> = Vec::new();
    for _ in 0..rounds {
        let mut runners = vec![
            hash_floor_runner(),
            runner(&HashAndCompare, Scenario::C),
            runner(&ContextHashAndCompare, Scenario::C),
            runner(&snapshot, Scenario::C),
            runner(&keyed, Scenario::C),
            runner(&feature, Scenario::C),
        ];
        for (i, t) in measure(&mut runners, plan).iter().enumerate() {
            match medians.get_mut(i) {
                Some((_, v)) => v.push(t.median()),
                None => medians.push((t.engine, vec![t.median()])),
            }
        }
    }
    Ok(medians.into_iter().map(|(e, v)| (e, median(&v))).collect())
}

/// The floor of scenario (c): the bucketing hash alone (SHA-1 of `c-rollout..KEY`, read as
/// LaunchDarkly's bucket), on the same 1024 keys.
pub fn hash_floor_runner<'a>() -> Runner<'a> {
    let keys: Vec<String> = people(Scenario::C).into_iter().map(|p| p.key).collect();
    let mask = keys.len() - 1;
    let prefix = format!("{}..", Scenario::C.key());
    Runner {
        engine: "sha1-alone",
        batch: Box::new(move |iters| {
            let start = Instant::now();
            for i in 0..iters {
                let key = &keys[i as usize & mask];
                black_box(feature_core::bucket::bucket_str(
                    black_box(prefix.as_bytes()),
                    black_box(key.as_bytes()),
                ));
            }
            start.elapsed()
        }),
    }
}

/// Unleash's engine.
pub struct Yggdrasil {
    engine: ygg::EngineState,
}

impl Yggdrasil {
    /// Loads the scenario features.
    pub fn new() -> Yggdrasil {
        let features: ygg::ClientFeatures =
            serde_json::from_str(UNLEASH_JSON).unwrap_or_else(|e| panic!("unleash.json: {e}"));
        let engine = ygg::EngineState::default();
        if let Some(warnings) = engine.apply_client_features(features) {
            panic!("unleash.json: {warnings:?}");
        }
        Yggdrasil { engine }
    }
}

impl Default for Yggdrasil {
    fn default() -> Self {
        Yggdrasil::new()
    }
}

impl Engine for Yggdrasil {
    const NAME: &'static str = "yggdrasil";
    type Context = ygg::Context;
    type Flag = &'static str;

    fn context(&self, p: &Person) -> ygg::Context {
        let properties: HashMap<String, String> = p
            .attributes()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        ygg::Context {
            user_id: Some(p.key.clone()),
            session_id: None,
            environment: None,
            app_name: None,
            current_time: None,
            remote_address: None,
            properties: Some(properties),
        }
    }

    fn flag(&self, key: &'static str) -> &'static str {
        key
    }

    #[inline]
    fn bool(&self, key: &&'static str, ctx: &ygg::Context) -> bool {
        self.engine.is_enabled(key, ctx, &None)
    }
}

/// LaunchDarkly's evaluation crate with an in-memory store.
pub struct LaunchDarkly {
    store: LdStore,
}

/// A LaunchDarkly store over maps (its `Store` trait hands out owned copies).
pub struct LdStore {
    flags: HashMap<String, ld::Flag>,
}

impl ld::Store for LdStore {
    fn flag(&self, flag_key: &str) -> Option<ld::Flag> {
        self.flags.get(flag_key).cloned()
    }

    fn segment(&self, _segment_key: &str) -> Option<ld::Segment> {
        None
    }
}

impl LaunchDarkly {
    /// Loads the scenario flags.
    pub fn new() -> LaunchDarkly {
        let flags: HashMap<String, ld::Flag> = serde_json::from_str(LAUNCHDARKLY_JSON)
            .unwrap_or_else(|e| panic!("launchdarkly.json: {e}"));
        LaunchDarkly {
            store: LdStore { flags },
        }
    }
}

impl Default for LaunchDarkly {
    fn default() -> Self {
        LaunchDarkly::new()
    }
}

impl Engine for LaunchDarkly {
    const NAME: &'static str = "launchdarkly";
    type Context = ld::Context;
    type Flag = ld::Flag;

    fn context(&self, p: &Person) -> ld::Context {
        let mut b = ld::ContextBuilder::new(p.key.clone());
        for (k, v) in p.attributes() {
            b.set_string(k, v);
        }
        b.build()
            .unwrap_or_else(|e| panic!("LaunchDarkly context: {e}"))
    }

    fn flag(&self, key: &'static str) -> ld::Flag {
        self.store
            .flags
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("no LaunchDarkly flag {key}"))
    }

    #[inline]
    fn bool(&self, flag: &ld::Flag, ctx: &ld::Context) -> bool {
        ld::evaluate(&self.store, flag, ctx, None)
            .value
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }
}

/// Asserts that `engine` answers every scenario as expected; returns the rollout answers by key.
fn check_engine<E: Engine>(engine: &E) -> Result<Vec<bool>, String> {
    let fail = |s: Scenario, who: &str, got: bool| {
        Err(format!("{}: {} served {got} to {who}", E::NAME, s.label()))
    };
    for s in Scenario::ALL {
        if s == Scenario::C {
            continue;
        }
        let flag = engine.flag(s.key());
        let yes = engine.bool(&flag, &engine.context(&Person::matching()));
        if !yes {
            return fail(s, "the matching person", yes);
        }
        if matches!(s, Scenario::B | Scenario::D1 | Scenario::D2) {
            let no = engine.bool(&flag, &engine.context(&Person::other()));
            if no {
                return fail(s, "the other person", no);
            }
        }
    }
    let flag = engine.flag(Scenario::C.key());
    let rollout: Vec<bool> = people(Scenario::C)
        .iter()
        .map(|p| engine.bool(&flag, &engine.context(p)))
        .collect();
    let on = rollout.iter().filter(|b| **b).count();
    if !(400..=624).contains(&on) {
        return Err(format!(
            "{}: the 50/50 rollout served true to {on} of {ROLLOUT_KEYS} keys",
            E::NAME
        ));
    }
    Ok(rollout)
}

/// Asserts that every engine returns the expected result for every scenario, and that our
/// rollout buckets every key exactly as LaunchDarkly does (same algorithm).
pub fn check() -> Result<(), String> {
    let ours = check_engine(&Feature::new())?;
    if check_engine(&FeatureKeyed(Feature::new()))? != ours {
        return Err("feature answers differently by FlagKey and by string".into());
    }
    check_engine(&Yggdrasil::new())?;
    let theirs = check_engine(&LaunchDarkly::new())?;
    match ours.iter().zip(&theirs).position(|(a, b)| a != b) {
        Some(i) => Err(format!(
            "rollout: user-{i:04} is bucketed differently by feature and LaunchDarkly"
        )),
        None => Ok(()),
    }
}

/// Something that runs a batch of evaluations and says how long it took.
pub struct Runner<'a> {
    /// The engine's name.
    pub engine: &'static str,
    batch: Box<dyn FnMut(u64) -> Duration + 'a>,
}

impl Runner<'_> {
    /// Runs `iters` evaluations.
    pub fn run(&mut self, iters: u64) -> Duration {
        (self.batch)(iters)
    }
}

/// A runner of `scenario` on `engine`, with its contexts built in advance.
pub fn runner<'a, E: Engine>(engine: &'a E, scenario: Scenario) -> Runner<'a>
where
    E::Context: 'a,
    E::Flag: 'a,
{
    let contexts: Vec<E::Context> = people(scenario).iter().map(|p| engine.context(p)).collect();
    let mask = contexts.len() - 1;
    debug_assert!(contexts.len().is_power_of_two());
    let flag = engine.flag(scenario.key());
    Runner {
        engine: E::NAME,
        batch: Box::new(move |iters| {
            let start = Instant::now();
            for i in 0..iters {
                let ctx = &contexts[i as usize & mask];
                black_box(engine.bool(black_box(&flag), black_box(ctx)));
            }
            start.elapsed()
        }),
    }
}

/// One engine's timings of one scenario, in nanoseconds per evaluation.
#[derive(Debug, Clone)]
pub struct Timing {
    /// The engine.
    pub engine: &'static str,
    /// One figure per sample.
    pub samples: Vec<f64>,
}

impl Timing {
    /// The median.
    pub fn median(&self) -> f64 {
        median(&self.samples)
    }
}

/// The median of some figures.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// How long to measure.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Time of one batch (one sample).
    pub batch: Duration,
    /// Samples per engine.
    pub samples: usize,
    /// Warm-up per engine.
    pub warm_up: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            batch: Duration::from_millis(10),
            samples: 60,
            warm_up: Duration::from_millis(300),
        }
    }
}

/// Times `runners` on the same scenario: samples are taken round-robin (rotating which engine
/// goes first), so that a slow phase of the machine hits every engine alike.
pub fn measure(runners: &mut [Runner<'_>], plan: Plan) -> Vec<Timing> {
    let iters: Vec<u64> = runners
        .iter_mut()
        .map(|r| {
            let mut n = 1u64;
            let start = Instant::now();
            while start.elapsed() < plan.warm_up {
                let t = r.run(n);
                if t < plan.batch / 4 {
                    n *= 2;
                } else {
                    n = ((n as f64) * plan.batch.as_secs_f64() / t.as_secs_f64()).max(1.0) as u64;
                }
            }
            n
        })
        .collect();
    let mut timings: Vec<Timing> = runners
        .iter()
        .map(|r| Timing {
            engine: r.engine,
            samples: Vec::with_capacity(plan.samples),
        })
        .collect();
    let k = runners.len();
    for s in 0..plan.samples {
        for j in 0..k {
            let e = (s + j) % k;
            let t = runners[e].run(iters[e]);
            timings[e]
                .samples
                .push(t.as_secs_f64() * 1e9 / iters[e] as f64);
        }
    }
    timings
}

/// One line of the comparison: medians (ns) and speed-ups of feature over the peers.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario.
    pub scenario: Scenario,
    /// Median ns per evaluation: feature, Yggdrasil, LaunchDarkly.
    pub medians: [f64; 3],
    /// Median ns per evaluation of feature through a [`feature::FlagKey`] ([`FeatureKeyed`]).
    pub keyed: f64,
    /// For the rollout (c): the median of the bucketing hash alone, measured beside them.
    pub floor: Option<f64>,
}

impl Row {
    /// Yggdrasil's median over ours.
    pub fn vs_yggdrasil(&self) -> f64 {
        self.medians[1] / self.medians[0]
    }

    /// Yggdrasil's median over ours through a [`feature::FlagKey`].
    pub fn keyed_vs_yggdrasil(&self) -> f64 {
        self.medians[1] / self.keyed
    }

    /// LaunchDarkly's median over ours.
    pub fn vs_launchdarkly(&self) -> f64 {
        self.medians[2] / self.medians[0]
    }

    /// Our median over the floor's, for the rollout.
    pub fn over_floor(&self) -> Option<f64> {
        self.floor.map(|f| self.medians[0] / f)
    }

    /// Whether every target is met.
    pub fn met(&self) -> bool {
        let (y, l) = self.scenario.targets();
        self.vs_yggdrasil() >= y
            && self.vs_launchdarkly() >= l
            && self
                .over_floor()
                .is_none_or(|r| r <= Scenario::HASH_FLOOR_TARGET)
    }
}

/// Times `scenarios` on the three engines in one run.
pub fn compare(scenarios: &[Scenario], plan: Plan) -> Vec<Row> {
    let (ours, yggdrasil, launchdarkly) = (Feature::new(), Yggdrasil::new(), LaunchDarkly::new());
    let keyed = FeatureKeyed(Feature::new());
    scenarios
        .iter()
        .map(|&s| {
            let mut runners = vec![
                runner(&ours, s),
                runner(&yggdrasil, s),
                runner(&launchdarkly, s),
                runner(&keyed, s),
            ];
            if s == Scenario::C {
                runners.push(hash_floor_runner());
            }
            let t = measure(&mut runners, plan);
            Row {
                scenario: s,
                medians: [t[0].median(), t[1].median(), t[2].median()],
                keyed: t[3].median(),
                floor: t.get(4).map(Timing::median),
            }
        })
        .collect()
}

/// The comparison as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | feature (ns) | Yggdrasil (ns) | LaunchDarkly (ns) | vs Yggdrasil | vs LaunchDarkly | targets | met | feature by FlagKey (ns) | by FlagKey vs Yggdrasil |\n\
         |---|---:|---:|---:|---:|---:|---|---|---:|---:|\n",
    );
    for r in rows {
        let (y, l) = r.scenario.targets();
        out.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.2}× | {:.2}× | ≥{y}× / ≥{l}× | {} | {:.1} | {:.2}× |\n",
            r.scenario.label(),
            r.medians[0],
            r.medians[1],
            r.medians[2],
            r.vs_yggdrasil(),
            r.vs_launchdarkly(),
            if r.met() { "yes" } else { "no" },
            r.keyed,
            r.keyed_vs_yggdrasil(),
        ));
    }
    for r in rows {
        if let (Some(f), Some(x)) = (r.floor, r.over_floor()) {
            out.push_str(&format!(
                "\n{}: the bucketing hash alone {f:.1} ns, feature {:.1} ns = {x:.3}× the hash (target ≤ {}×)\n",
                r.scenario.label(),
                r.medians[0],
                Scenario::HASH_FLOOR_TARGET
            ));
        }
    }
    out
}

/// One round of the scaling measurement: evaluations per second of all reading threads
/// together, and CPU nanoseconds per evaluation (per thread, from the scheduler's accounting).
#[derive(Debug, Clone, Copy)]
pub struct ScalingRound {
    /// Reading threads.
    pub threads: usize,
    /// Evaluations per second, all threads together.
    pub per_second: f64,
    /// CPU time per evaluation, ns (`NaN` where the scheduler's figures are not readable).
    pub cpu_ns: f64,
}

/// The CPU time this thread has used, in ns (Linux: `/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Evaluates the mix of (a), (b), (d1), (d2) and (e) through one client from `threads` threads
/// for `time`, while another thread publishes a new snapshot through the client's provider
/// every millisecond.
pub fn scaling_round(feature: &Feature, threads: usize, time: Duration) -> ScalingRound {
    use std::sync::atomic::{AtomicBool, Ordering};
    let keys = [
        Scenario::A.key(),
        Scenario::B.key(),
        Scenario::D1.key(),
        Scenario::D2.key(),
        Scenario::E.key(),
    ];
    let stop = AtomicBool::new(false);
    let start = std::sync::Barrier::new(threads + 1);
    let (counts, cpu): (Vec<u64>, Vec<f64>) = std::thread::scope(|s| {
        let publisher = s.spawn(|| {
            let mut i = 0u64;
            start.wait();
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                feature.provider().set_flag(feature::Flag::boolean(
                    "publisher-tick",
                    i.is_multiple_of(2),
                ));
                std::thread::sleep(Duration::from_millis(1));
            }
            i
        });
        let readers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let ctx = feature.context(&Person::matching());
                    let client = feature.client();
                    start.wait();
                    let cpu0 = thread_cpu_ns();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for key in keys {
                            black_box(client.bool(black_box(&ctx), black_box(key), false));
                        }
                        n += keys.len() as u64;
                    }
                    let cpu = match (cpu0, thread_cpu_ns()) {
                        (Some(a), Some(b)) => (b - a) as f64 / n as f64,
                        _ => f64::NAN,
                    };
                    (n, cpu)
                })
            })
            .collect();
        std::thread::sleep(time);
        stop.store(true, Ordering::Relaxed);
        let published = publisher.join().expect("the publisher");
        assert!(published > 0, "nothing was published");
        readers
            .into_iter()
            .map(|r| r.join().expect("a reader"))
            .unzip()
    });
    ScalingRound {
        threads,
        per_second: counts.iter().sum::<u64>() as f64 / time.as_secs_f64(),
        cpu_ns: median(&cpu),
    }
}

/// Rounds of one and two reading threads, alternately; returns the medians for one and two
/// threads, and the median of the per-pair ratios.
pub fn scaling(rounds: usize, time: Duration) -> (ScalingRound, ScalingRound, f64) {
    let feature = Feature::new();
    let mut one = Vec::new();
    let mut two = Vec::new();
    let mut ratios = Vec::new();
    for _ in 0..rounds {
        let a = scaling_round(&feature, 1, time);
        let b = scaling_round(&feature, 2, time);
        ratios.push(b.per_second / a.per_second);
        one.push(a);
        two.push(b);
    }
    let summary = |v: &[ScalingRound], threads| ScalingRound {
        threads,
        per_second: median(&v.iter().map(|r| r.per_second).collect::<Vec<_>>()),
        cpu_ns: median(&v.iter().map(|r| r.cpu_ns).collect::<Vec<_>>()),
    };
    (summary(&one, 1), summary(&two, 2), median(&ratios))
}

/// Large generated documents: N flags of one rule (two clauses, a 50/50 rollout), and one
/// segment of K user keys.
pub mod large {
    use std::io::{self, Write};

    /// What to generate.
    #[derive(Debug, Clone, Copy)]
    pub struct Shape {
        /// Flags (`flag-000000`, ...).
        pub flags: usize,
        /// User keys of the segment `big` (none: no segment).
        pub segment_keys: usize,
        /// JSON, else YAML.
        pub json: bool,
    }

    /// The `i`-th user key of the segment.
    pub fn segment_key(i: usize) -> String {
        format!("user-{i:08}")
    }

    /// Writes the document.
    pub fn write_document(out: &mut impl Write, shape: Shape) -> io::Result<()> {
        let rollout = |json: bool| {
            if json {
                r#"{"bucketBy":"key","variations":[{"variation":0,"weight":50000},{"variation":1,"weight":50000}]}"#
            } else {
                "{bucketBy: key, variations: [{variation: 0, weight: 50000}, {variation: 1, weight: 50000}]}"
            }
        };
        if shape.json {
            write!(out, "{{\"flags\":{{")?;
            for i in 0..shape.flags {
                let sep = if i == 0 { "" } else { "," };
                write!(
                    out,
                    "{sep}\n\"flag-{i:06}\":{{\"type\":\"bool\",\"default\":false,\"rules\":[{{\"id\":\"r{i}\",\"clauses\":[{{\"attribute\":\"plan\",\"operator\":\"in\",\"values\":[\"pro\",\"team-{}\"]}},{{\"attribute\":\"country\",\"operator\":\"eq\",\"values\":[\"DE\"]}}],\"rollout\":{}}}],\"fallthrough\":{{\"variation\":0}}}}",
                    i % 100,
                    rollout(true)
                )?;
            }
            write!(out, "\n}}")?;
            if shape.segment_keys > 0 {
                write!(out, ",\"segments\":{{\"big\":{{\"included\":[")?;
                for i in 0..shape.segment_keys {
                    let sep = if i == 0 { "" } else { "," };
                    write!(out, "{sep}\"{}\"", segment_key(i))?;
                }
                write!(out, "]}}}}")?;
            }
            writeln!(out, "}}")
        } else {
            writeln!(out, "flags:")?;
            for i in 0..shape.flags {
                writeln!(
                    out,
                    "  flag-{i:06}:\n    type: bool\n    default: false\n    rules:\n      - id: r{i}\n        clauses:\n          - {{attribute: plan, operator: in, values: [pro, team-{}]}}\n          - {{attribute: country, operator: eq, values: [DE]}}\n        rollout: {}\n    fallthrough: {{variation: 0}}",
                    i % 100,
                    rollout(false)
                )?;
            }
            if shape.segment_keys > 0 {
                writeln!(out, "segments:\n  big:\n    included:")?;
                for i in 0..shape.segment_keys {
                    writeln!(out, "      - {}", segment_key(i))?;
                }
            }
            Ok(())
        }
    }

    /// The document as a string.
    pub fn document(shape: Shape) -> String {
        let mut out = Vec::new();
        write_document(&mut out, shape).expect("writing to memory");
        String::from_utf8(out).expect("the generator writes UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_answers_every_scenario_as_expected() {
        check().unwrap();
    }

    #[test]
    fn scenarios_parse_by_short_name() {
        assert_eq!(Scenario::parse("d1"), Some(Scenario::D1));
        assert_eq!(Scenario::parse("c"), Some(Scenario::C));
        assert_eq!(Scenario::parse("x"), None);
    }

    #[test]
    fn generated_documents_load_in_both_formats() {
        for json in [true, false] {
            let shape = large::Shape {
                flags: 50,
                segment_keys: 20,
                json,
            };
            let format = if json { Format::Json } else { Format::Yaml };
            let snapshot = parse_document(&large::document(shape), format)
                .unwrap()
                .compile(None);
            assert!(!snapshot.has_errors(), "{:?}", snapshot.diagnostics());
            assert_eq!(snapshot.len(), 50);
            let served: usize = (0..50)
                .filter(|i| {
                    let ctx = feature_core::Context::new(format!("u{i}"))
                        .with_attribute("plan", "pro")
                        .with_attribute("country", "DE");
                    snapshot
                        .evaluate(&format!("flag-{i:06}"), &ctx)
                        .value()
                        .and_then(serde_json::Value::as_bool)
                        .unwrap_or(false)
                })
                .count();
            assert!((10..=40).contains(&served), "{served} of 50 in the rollout");
            assert_eq!(snapshot.document().segments["big"].included.len(), 20);
        }
    }

    #[test]
    fn runners_run() {
        let ours = Feature::new();
        let mut r = runner(&ours, Scenario::C);
        assert!(r.run(2048) > Duration::ZERO);
    }
}
