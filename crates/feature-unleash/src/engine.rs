//! The evaluation side: Unleash's engine behind the toolkit's [`Engine`] trait.

use crate::strategies::{self, CustomUse, StrategyFn};
use crate::UnleashError;
use feature_core::provider::Engine;
use feature_core::{Context, ErrorKind, Evaluation, Reason, ValueKind};
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use unleash_yggdrasil as ygg;

/// The context attributes that fill Unleash's standard context fields rather than `properties`.
const STANDARD: [&str; 7] = [
    "userId",
    "sessionId",
    "remoteAddress",
    "ip",
    "environment",
    "appName",
    "currentTime",
];

/// The variant Unleash assigns to a context, as its SDKs report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// The variant's name; `disabled` when none is assigned.
    pub name: String,
    /// The variant's payload, when it has one.
    pub payload: Option<Payload>,
    /// Whether a variant is assigned.
    pub enabled: bool,
    /// Whether the toggle is enabled for the context (as the variant call sees it).
    pub feature_enabled: bool,
}

/// A variant's payload: its type (`string`, `json`, `csv`, `number`) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// `string`, `json`, `csv` or `number`.
    pub kind: String,
    /// The payload's text.
    pub value: String,
}

/// A toggle that Yggdrasil could not compile; it evaluates as off (or to the default variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileWarning {
    /// The toggle's name.
    pub toggle: String,
    /// What Yggdrasil reported.
    pub message: String,
}

/// Unleash's evaluation engine (Yggdrasil) answering the toolkit's evaluations.
///
/// Load it with [`UnleashEngine::load_json`] (the body of `GET /api/client/features`, or a
/// delta-API message) or [`UnleashEngine::load`]; the [`UnleashProvider`](crate::UnleashProvider)
/// does this for you. Until something is loaded every evaluation serves the caller's default
/// with `ERROR`/`CLIENT_NOT_READY`.
///
/// # Context mapping
///
/// | Unleash field | taken from |
/// |---|---|
/// | `userId` | the key of the `user` kind when the context has it, else the key of its first kind; an empty key means no `userId` (then attribute `userId`, if set) |
/// | `sessionId` | attribute `sessionId` |
/// | `remoteAddress` | attribute `remoteAddress`, else `ip` |
/// | `environment` | attribute `environment`, else the engine's default ([`UnleashEngine::with_environment`]) |
/// | `appName` | attribute `appName`, else the engine's default ([`UnleashEngine::with_app_name`]) |
/// | `currentTime` | attribute `currentTime` (RFC 3339) |
/// | `properties` | every other custom attribute of the context's first kind: strings as they are, numbers and booleans as their JSON text, lists and objects as JSON text; `null` is left out |
///
/// # Values and reasons
///
/// | asked for | toggle unknown | toggle off for the context | on, variant assigned | on, no variant |
/// |---|---|---|---|---|
/// | `Bool` | default, `ERROR`/`FLAG_NOT_FOUND` | `false` | `true` | `true` |
/// | `String` | as above | default | payload text for `string`/`csv` payloads; any other payload (or none): default, `ERROR`/`WRONG_TYPE` | default |
/// | `Int`, `Float` | as above | default | the `number` payload; any other payload (or none): default, `ERROR`/`WRONG_TYPE` | default |
/// | `Any` (`json()`) | as above | default | `json` payload parsed, `number` payload as a number, other payloads as text, no payload: the variant name | `true` |
///
/// Reasons, as far as Unleash tells: `OFF` when the toggle is switched off in the
/// environment; `FALLTHROUGH` when it is on but no strategy matches the context; `TARGET_MATCH`
/// when a strategy matches (Unleash does not say which, so there is no `RULE_MATCH` index).
/// The assigned variant's name is the evaluation's `variation_name`. A `json` payload that
/// does not parse, or a `number` payload that is not a finite number, serves the default with
/// `ERROR`/`MALFORMED_FLAG`; so does an evaluation left off only because a custom strategy has
/// no implementation ([`UnleashEngine::with_strategy`]). `variation_index` is always `None`:
/// Unleash variants are identified by name. A panic inside Yggdrasil or a custom strategy is
/// caught and serves the default with `ERROR`/`EXCEPTION`.
pub struct UnleashEngine {
    state: ygg::EngineState,
    loaded: AtomicBool,
    /// Count each evaluation for Unleash's usage metrics (see [`UnleashEngine::take_usage`]).
    count_usage: AtomicBool,
    app_name: Option<String>,
    environment: Option<String>,
    /// Implementations of custom strategies, by strategy name.
    strategies: HashMap<String, StrategyFn>,
    /// What the engine keeps of each toggle beside Yggdrasil's compiled state, rebuilt at
    /// every load.
    toggles: RwLock<Arc<HashMap<String, ToggleInfo>>>,
    /// The toggles the loads since the last [`UnleashEngine::take_changed`] changed.
    changed: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Whether a toggle loaded has custom strategies or impression data.
    side_data: AtomicBool,
    /// The uses of custom strategies with no implementation, as of the last load.
    unimplemented: std::sync::Mutex<Vec<CompileWarning>>,
    /// Where impression events go (the client's sink, set when the provider starts).
    impressions: RwLock<Option<Arc<dyn feature_core::provider::Sink>>>,
}

/// What the engine knows of a toggle beside Yggdrasil's compiled state.
#[derive(Debug, Default)]
struct ToggleInfo {
    /// Whether the toggle is switched on in this environment.
    enabled: bool,
    /// Its strategies that Yggdrasil does not implement, in the server's order.
    custom: Vec<CustomUse>,
    /// Whether its evaluations emit impression events (`impressionData: true`).
    impressions: bool,
}

impl std::fmt::Debug for UnleashEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnleashEngine")
            .field("loaded", &self.is_loaded())
            .field("app_name", &self.app_name)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl Default for UnleashEngine {
    fn default() -> Self {
        UnleashEngine::new()
    }
}

impl UnleashEngine {
    /// An empty engine.
    pub fn new() -> UnleashEngine {
        UnleashEngine {
            state: ygg::EngineState::default(),
            loaded: AtomicBool::new(false),
            count_usage: AtomicBool::new(false),
            app_name: None,
            environment: None,
            strategies: HashMap::new(),
            toggles: RwLock::new(Arc::new(HashMap::new())),
            changed: std::sync::Mutex::new(std::collections::BTreeSet::new()),
            impressions: RwLock::new(None),
            unimplemented: std::sync::Mutex::new(Vec::new()),
            side_data: AtomicBool::new(false),
        }
    }

    /// Registers the implementation of custom strategy `name` (one that Unleash's engine does
    /// not implement): `f` decides whether the strategy matches a context, given the
    /// strategy's parameters. A toggle that uses a strategy with no implementation is reported
    /// when loaded (a warning, see [`UnleashEngine::unimplemented_strategies`]), and an evaluation it leaves off serves the caller's
    /// default with `ERROR`/`MALFORMED_FLAG` instead of a silent `false`. Register before
    /// loading toggles.
    pub fn with_strategy(
        mut self,
        name: impl Into<String>,
        f: impl Fn(&Context, &HashMap<String, String>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.strategies.insert(name.into(), Arc::new(f));
        self
    }

    pub(crate) fn with_strategies(mut self, strategies: HashMap<String, StrategyFn>) -> Self {
        self.strategies.extend(strategies);
        self
    }

    fn toggle_info(&self) -> Arc<HashMap<String, ToggleInfo>> {
        self.toggles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The external results for the custom strategies of toggle `name`, and whether one of
    /// them has no implementation.
    fn custom_results(
        &self,
        info: Option<&ToggleInfo>,
        ctx: &Context,
    ) -> (Option<HashMap<String, bool>>, bool) {
        match info {
            Some(t) if !t.custom.is_empty() => {
                let (results, missing) = strategies::results(&t.custom, &self.strategies, ctx);
                (Some(results), missing)
            }
            _ => (None, false),
        }
    }

    /// The `appName` used when a context has no `appName` attribute.
    pub fn with_app_name(mut self, app_name: impl Into<String>) -> Self {
        self.app_name = Some(app_name.into());
        self
    }

    /// The `environment` used when a context has no `environment` attribute.
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Turns the counting of evaluations for Unleash's usage metrics on or off (off by
    /// default; the provider turns it on when it reports usage). Counted: per toggle, how
    /// often it was on and off, and which variants were served.
    pub fn set_usage_counting(&self, on: bool) {
        self.count_usage.store(on, Ordering::Relaxed);
    }

    /// The usage counted since the last call, as the `bucket` of Unleash's client metrics
    /// (`{"start", "stop", "toggles": {name: {"yes", "no", "variants"}}}`), and starts a new
    /// count; `None` when nothing was evaluated.
    pub fn take_usage(&self) -> Option<Value> {
        let bucket = self.state.get_metrics(chrono::Utc::now())?;
        serde_json::to_value(bucket).ok()
    }

    /// Adds a bucket from [`UnleashEngine::take_usage`] back (after it could not be sent), so
    /// that the next report includes it.
    pub fn restore_usage(&self, bucket: Value) {
        if let Ok(b) = serde_json::from_value(bucket) {
            self.state.restore_metrics(b);
        }
    }

    /// Whether toggles were loaded.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Loads a client API response: a full `GET /api/client/features` body replaces every
    /// toggle; a delta-API message (`{"events": [...]}`) is applied to the toggles loaded
    /// before. Toggles that fail to compile are returned; they evaluate as off.
    pub fn load_json(&self, body: &[u8]) -> Result<Vec<CompileWarning>, UnleashError> {
        let message: ygg::UpdateMessage =
            serde_json::from_slice(body).map_err(UnleashError::Parse)?;
        Ok(self.load(message))
    }

    /// Loads a parsed update (see [`UnleashEngine::load_json`]).
    pub fn load(&self, message: ygg::UpdateMessage) -> Vec<CompileWarning> {
        let before = self.guarded(|| self.state.get_state()).unwrap_or_default();
        let warnings = catch_unwind(AssertUnwindSafe(|| self.state.take_state(message)))
            .unwrap_or_else(|_| {
                Some(vec![ygg::EvalWarning {
                    toggle_name: String::new(),
                    message: "the engine panicked while loading toggles".to_owned(),
                }])
            });
        let state = self.guarded(|| self.state.get_state()).unwrap_or_default();
        let mut custom = strategies::index(&state);
        let mut info = HashMap::with_capacity(state.features.len());
        let mut unimplemented = Vec::new();
        for toggle in &state.features {
            let uses = custom.remove(&toggle.name).unwrap_or_default();
            for u in &uses {
                if !self.strategies.contains_key(&u.name) {
                    unimplemented.push(CompileWarning {
                        toggle: toggle.name.clone(),
                        message: format!(
                            "strategy {:?} has no implementation (register one with UnleashBuilder::strategy); it counts as not matching",
                            u.name
                        ),
                    });
                }
            }
            info.insert(
                toggle.name.clone(),
                ToggleInfo {
                    enabled: toggle.enabled,
                    custom: uses,
                    impressions: toggle.impression_data.unwrap_or(false),
                },
            );
        }
        let side_data = info.values().any(|t| t.impressions || !t.custom.is_empty());
        *self.toggles.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(info);
        self.side_data.store(side_data, Ordering::Release);
        {
            let mut known = self.unimplemented.lock().unwrap_or_else(|e| e.into_inner());
            // Warned once per toggle and strategy, not at every fetch.
            for w in &unimplemented {
                if !known.contains(w) {
                    tracing::warn!(target: "feature::unleash", toggle = %w.toggle, "{}", w.message);
                }
            }
            *known = unimplemented;
        }
        let changed = changed_toggles(&before, &state);
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(changed);
        self.loaded.store(true, Ordering::Release);
        warnings
            .unwrap_or_default()
            .into_iter()
            .map(|w| CompileWarning {
                toggle: w.toggle_name,
                message: w.message,
            })
            .collect()
    }

    /// The uses of custom strategies with no implementation in the toggles loaded (one
    /// warning per toggle and strategy). They are logged as warnings when they appear, and an
    /// evaluation they leave off serves the caller's default with `ERROR`/`MALFORMED_FLAG`;
    /// they do not degrade the provider's status (a toggle meant for other applications may
    /// use a strategy this one never implements).
    pub fn unimplemented_strategies(&self) -> Vec<CompileWarning> {
        self.unimplemented
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends impression events to `sink` (its [`Sink::event`](feature_core::provider::Sink::event),
    /// named `impression`): one per evaluation of a toggle with `impressionData: true`,
    /// shaped as Unleash's SDKs emit them: `eventType` (`isEnabled` for booleans, `getVariant`
    /// for other values), `featureName`, `enabled`, `variant` (with `getVariant`) and the
    /// Unleash `context`. Listings (`all_flags`) emit none. The provider sets this at start.
    pub fn set_impression_sink(&self, sink: Arc<dyn feature_core::provider::Sink>) {
        *self.impressions.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    fn impression(
        &self,
        info: Option<&ToggleInfo>,
        key: &str,
        ctx: &Context,
        uctx: &ygg::Context,
        enabled: bool,
        variant: Option<&str>,
    ) {
        if !info.is_some_and(|t| t.impressions) {
            return;
        }
        let Some(sink) = self
            .impressions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return;
        };
        let mut data = serde_json::json!({
            "eventType": if variant.is_some() { "getVariant" } else { "isEnabled" },
            "featureName": key,
            "enabled": enabled,
            "context": serde_json::to_value(uctx).unwrap_or(Value::Null),
        });
        if let Some(v) = variant {
            data["variant"] = Value::String(v.to_owned());
        }
        sink.event(ctx, "impression", data);
    }

    /// Every toggle loaded, as a client API response (what the backup file holds).
    pub(crate) fn state_json(&self) -> Option<Vec<u8>> {
        let state = self.guarded(|| self.state.get_state())?;
        serde_json::to_vec(&state).ok()
    }

    /// The names of the toggles that the loads since the last call added, removed or changed
    /// (a change of a segment counts for the toggles using it), sorted; the provider passes
    /// them to the client's subscribers.
    pub fn take_changed(&self) -> Vec<String> {
        std::mem::take(&mut *self.changed.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect()
    }

    /// The Unleash context `ctx` maps to (see the [type docs](UnleashEngine)).
    pub fn unleash_context(&self, ctx: &Context) -> ygg::Context {
        let text = |name: &str| ctx.get(name).and_then(as_text);
        let key = ctx.key_of(feature_core::USER_KIND).unwrap_or(ctx.key());
        let user_id = if key.is_empty() {
            text("userId")
        } else {
            Some(key.to_owned())
        };
        let mut properties = HashMap::new();
        for (name, value) in ctx.attributes() {
            if STANDARD.contains(&name) {
                continue;
            }
            if let Some(v) = as_text(value) {
                properties.insert(name.to_owned(), v);
            }
        }
        ygg::Context {
            user_id,
            session_id: text("sessionId"),
            remote_address: text("remoteAddress").or_else(|| text("ip")),
            environment: text("environment").or_else(|| self.environment.clone()),
            app_name: text("appName").or_else(|| self.app_name.clone()),
            current_time: text("currentTime"),
            properties: (!properties.is_empty()).then_some(properties),
        }
    }

    /// Whether toggle `name` is enabled for `ctx`; `None` when the toggle is unknown.
    pub fn is_enabled(&self, name: &str, ctx: &Context) -> Option<bool> {
        let uctx = self.unleash_context(ctx);
        let info = self.toggle_info();
        self.guarded(|| self.enabled_raw(info.get(name), name, &uctx, ctx).0)
            .flatten()
    }

    /// The variant of toggle `name` for `ctx`, as Unleash's SDKs report it (`disabled` when the
    /// toggle is unknown, off, or has no variants).
    pub fn variant(&self, name: &str, ctx: &Context) -> Variant {
        let uctx = self.unleash_context(ctx);
        let (external, _) = self.custom_results(self.toggle_info().get(name), ctx);
        self.guarded(|| self.variant_raw(name, &uctx, &external))
            .unwrap_or_else(|| Variant {
                name: "disabled".to_owned(),
                payload: None,
                enabled: false,
                feature_enabled: false,
            })
    }

    fn guarded<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        catch_unwind(AssertUnwindSafe(f)).ok()
    }

    /// Whether toggle `name` is on (`None`: unknown), the custom strategies' results, and
    /// whether one of its custom strategies has no implementation.
    fn enabled_raw(
        &self,
        info: Option<&ToggleInfo>,
        name: &str,
        uctx: &ygg::Context,
        ctx: &Context,
    ) -> (Option<bool>, Option<HashMap<String, bool>>, bool) {
        let (external, missing) = self.custom_results(info, ctx);
        let enriched = ygg::state::EnrichedContext::from(uctx, name, external.as_ref());
        (self.state.check_enabled(&enriched), external, missing)
    }

    fn variant_raw(
        &self,
        name: &str,
        uctx: &ygg::Context,
        external: &Option<HashMap<String, bool>>,
    ) -> Variant {
        let v = self.state.get_variant(name, uctx, external);
        Variant {
            name: v.name,
            payload: v.payload.map(|p| Payload {
                kind: p.payload_type,
                value: p.value,
            }),
            enabled: v.enabled,
            feature_enabled: v.feature_enabled,
        }
    }

    fn evaluate_inner(
        &self,
        key: &str,
        ctx: &Context,
        kind: ValueKind,
        default: &Value,
        counted: bool,
    ) -> Outcome {
        let uctx = self.unleash_context(ctx);
        // Most toggles have no custom strategy and no impressions: their evaluations that are
        // on skip the look-up of the side data.
        let all = self
            .side_data
            .load(Ordering::Acquire)
            .then(|| self.toggle_info());
        let info = all.as_ref().and_then(|a| a.get(key));
        let (enabled, external, missing) = self.enabled_raw(info, key, &uctx, ctx);
        let Some(enabled) = enabled else {
            return Outcome::Error(ErrorKind::FlagNotFound);
        };
        let count = counted && self.count_usage.load(Ordering::Relaxed);
        if count {
            self.state.count_toggle(key, enabled);
        }
        if counted && (kind == ValueKind::Bool || !enabled) {
            let variant = (kind != ValueKind::Bool).then_some("disabled");
            self.impression(info, key, ctx, &uctx, enabled, variant);
        }
        if !enabled {
            if missing {
                // Off only because a strategy could not be evaluated here: not a real "off".
                return Outcome::Error(ErrorKind::MalformedFlag);
            }
            let switched_on = match all {
                Some(_) => info.is_some_and(|t| t.enabled),
                None => self.toggle_info().get(key).is_some_and(|t| t.enabled),
            };
            let reason = if switched_on {
                Reason::Fallthrough {
                    in_experiment: false,
                }
            } else {
                Reason::Off
            };
            let value = match kind {
                ValueKind::Bool => Value::Bool(false),
                _ => default.clone(),
            };
            return Outcome::served(value, reason, None);
        }
        if kind == ValueKind::Bool {
            return Outcome::served(Value::Bool(true), Reason::TargetMatch, None);
        }
        let variant = self.variant_raw(key, &uctx, &external);
        if count {
            self.state.count_variant(key, &variant.name);
        }
        if counted {
            self.impression(info, key, ctx, &uctx, true, Some(&variant.name));
        }
        if !variant.enabled {
            return match kind {
                ValueKind::Any => Outcome::served(Value::Bool(true), Reason::TargetMatch, None),
                _ => Outcome::served(default.clone(), Reason::TargetMatch, None),
            };
        }
        let payload = variant.payload.as_ref();
        let value = match kind {
            ValueKind::String => match payload {
                Some(p) if p.kind == "string" || p.kind == "csv" => Value::String(p.value.clone()),
                _ => return Outcome::Error(ErrorKind::WrongType),
            },
            ValueKind::Int | ValueKind::Float => match payload {
                Some(p) if p.kind == "number" => match number(&p.value) {
                    Some(n) => n,
                    None => return Outcome::Error(ErrorKind::MalformedFlag),
                },
                _ => return Outcome::Error(ErrorKind::WrongType),
            },
            ValueKind::Any => match payload {
                Some(p) if p.kind == "json" => match serde_json::from_str(&p.value) {
                    Ok(v) => v,
                    Err(_) => return Outcome::Error(ErrorKind::MalformedFlag),
                },
                Some(p) if p.kind == "number" => match number(&p.value) {
                    Some(n) => n,
                    None => return Outcome::Error(ErrorKind::MalformedFlag),
                },
                Some(p) => Value::String(p.value.clone()),
                None => Value::String(variant.name.clone()),
            },
            ValueKind::Bool => Value::Bool(true),
        };
        Outcome::served(value, Reason::TargetMatch, Some(variant.name))
    }
}

/// What an evaluation decided, before it becomes an [`Evaluation`].
enum Outcome {
    Served {
        value: Value,
        reason: Reason,
        variant: Option<String>,
    },
    Error(ErrorKind),
}

impl Outcome {
    fn served(value: Value, reason: Reason, variant: Option<String>) -> Outcome {
        Outcome::Served {
            value,
            reason,
            variant,
        }
    }
}

/// The toggles added, removed or changed between two states; a changed segment counts for the
/// toggles whose strategies use it.
fn changed_toggles(before: &ygg::ClientFeatures, after: &ygg::ClientFeatures) -> Vec<String> {
    let json = |s: &ygg::ClientFeatures| -> HashMap<String, Value> {
        s.features
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    serde_json::to_value(f).unwrap_or(Value::Null),
                )
            })
            .collect()
    };
    let (a, b) = (json(before), json(after));
    let mut out: std::collections::BTreeSet<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    let segments = |s: &ygg::ClientFeatures| -> HashMap<i32, Value> {
        s.segments
            .iter()
            .flatten()
            .map(|seg| (seg.id, serde_json::to_value(seg).unwrap_or(Value::Null)))
            .collect()
    };
    let (sa, sb) = (segments(before), segments(after));
    let changed_segments: Vec<i32> = sa
        .keys()
        .chain(sb.keys())
        .filter(|id| sa.get(*id) != sb.get(*id))
        .copied()
        .collect();
    if !changed_segments.is_empty() {
        for f in &after.features {
            let uses = f
                .strategies
                .iter()
                .flatten()
                .flat_map(|s| s.segments.iter().flatten())
                .any(|id| changed_segments.contains(id));
            if uses {
                out.insert(f.name.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// A context attribute as Unleash text: strings as they are, other values as JSON text.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A `number` payload as a JSON number: a whole number when it is one, else a finite float.
fn number(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(Value::from(i));
    }
    t.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
}

impl UnleashEngine {
    fn evaluate_counted(
        &self,
        key: &str,
        ctx: &Context,
        kind: ValueKind,
        default: &Value,
        counted: bool,
    ) -> Evaluation {
        if !self.is_loaded() {
            return Evaluation::error(key, default.clone(), ErrorKind::ClientNotReady);
        }
        let outcome = self
            .guarded(|| self.evaluate_inner(key, ctx, kind, default, counted))
            .unwrap_or(Outcome::Error(ErrorKind::Exception));
        match outcome {
            Outcome::Served {
                value,
                reason,
                variant,
            } => Evaluation {
                key: key.to_owned(),
                value,
                variation_index: None,
                variation_name: variant,
                reason,
            },
            Outcome::Error(e) => Evaluation::error(key, default.clone(), e),
        }
    }
}

impl Engine for UnleashEngine {
    fn evaluate(&self, key: &str, ctx: &Context, kind: ValueKind, default: &Value) -> Evaluation {
        self.evaluate_counted(key, ctx, kind, default, true)
    }

    /// Not counted in the usage reported to Unleash (`all_flags` lists, it does not use).
    fn evaluate_uncounted(
        &self,
        key: &str,
        ctx: &Context,
        kind: ValueKind,
        default: &Value,
    ) -> Evaluation {
        self.evaluate_counted(key, ctx, kind, default, false)
    }

    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .guarded(|| self.state.list_known_toggles())
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.name)
            .collect();
        keys.sort_unstable();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn engine(features: Value) -> UnleashEngine {
        let e = UnleashEngine::new();
        let warnings = e
            .load_json(features.to_string().as_bytes())
            .expect("valid features");
        assert!(warnings.is_empty(), "{warnings:?}");
        e
    }

    fn toggles() -> UnleashEngine {
        engine(json!({
            "version": 2,
            "features": [
                {"name": "on", "enabled": true, "strategies": [{"name": "default"}]},
                {"name": "off", "enabled": false, "strategies": [{"name": "default"}]},
                {"name": "alice-only", "enabled": true, "strategies": [
                    {"name": "userWithId", "parameters": {"userIds": "alice"}}]},
                {"name": "by-plan", "enabled": true, "strategies": [{"name": "default",
                    "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]},
                                    {"contextName": "age", "operator": "NUM_GTE", "value": "18"},
                                    {"contextName": "beta", "operator": "IN", "values": ["true"]}]}]},
                {"name": "by-ip", "enabled": true, "strategies": [
                    {"name": "remoteAddress", "parameters": {"IPs": "10.1.2.3"}}]},
                {"name": "by-env", "enabled": true, "strategies": [{"name": "default",
                    "constraints": [{"contextName": "environment", "operator": "IN", "values": ["prod"]},
                                    {"contextName": "appName", "operator": "IN", "values": ["shop"]},
                                    {"contextName": "sessionId", "operator": "IN", "values": ["s1"]}]}]},
                {"name": "string-variant", "enabled": true, "strategies": [{"name": "default"}],
                 "variants": [{"name": "blue", "weight": 1000, "payload": {"type": "string", "value": "#00f"}}]},
                {"name": "bare-variant", "enabled": true, "strategies": [{"name": "default"}],
                 "variants": [{"name": "green", "weight": 1000}]},
                {"name": "number-variant", "enabled": true, "strategies": [{"name": "default"}],
                 "variants": [{"name": "n", "weight": 1000, "payload": {"type": "number", "value": "42"}}]},
                {"name": "float-variant", "enabled": true, "strategies": [{"name": "default"}],
                 "variants": [{"name": "f", "weight": 1000, "payload": {"type": "number", "value": "0.25"}}]},
                {"name": "bad-number", "enabled": true, "strategies": [{"name": "default"}],
                 "variants": [{"name": "b", "weight": 1000, "payload": {"type": "number", "value": "many"}}]},
                {"name": "json-variant", "enabled": true, "strategies": [{"name": "default"}],
                 "variants": [{"name": "j", "weight": 1000, "payload": {"type": "json", "value": "{\"a\": [1, 2]}"}}]},
                {"name": "bad-json", "enabled": true, "strategies": [{"name": "default"}],
                 "variants": [{"name": "j", "weight": 1000, "payload": {"type": "json", "value": "{oops"}}]},
                {"name": "off-variant", "enabled": false, "strategies": [{"name": "default"}],
                 "variants": [{"name": "blue", "weight": 1000, "payload": {"type": "string", "value": "#00f"}}]}
            ]
        }))
    }

    fn eval(
        e: &UnleashEngine,
        key: &str,
        ctx: &Context,
        kind: ValueKind,
        default: Value,
    ) -> (Value, Reason) {
        let r = e.evaluate(key, ctx, kind, &default);
        assert_eq!(r.key, key);
        assert_eq!(r.variation_index, None);
        (r.value, r.reason)
    }

    const ON: Reason = Reason::TargetMatch;
    const NO_MATCH: Reason = Reason::Fallthrough {
        in_experiment: false,
    };

    fn err(kind: ErrorKind) -> Reason {
        Reason::Error { error_kind: kind }
    }

    #[test]
    fn before_loading_every_evaluation_is_not_ready() {
        let e = UnleashEngine::new();
        let (v, r) = eval(&e, "on", &Context::new("u"), ValueKind::Bool, json!(true));
        assert_eq!((v, r), (json!(true), err(ErrorKind::ClientNotReady)));
        assert!(e.keys().is_empty());
    }

    #[test]
    fn booleans_and_reasons() {
        let e = toggles();
        let u = Context::new("u");
        assert_eq!(
            eval(&e, "on", &u, ValueKind::Bool, json!(false)),
            (json!(true), ON)
        );
        assert_eq!(
            eval(&e, "off", &u, ValueKind::Bool, json!(true)),
            (json!(false), Reason::Off)
        );
        assert_eq!(
            eval(&e, "missing", &u, ValueKind::Bool, json!(true)),
            (json!(true), err(ErrorKind::FlagNotFound))
        );
        assert_eq!(
            eval(&e, "alice-only", &u, ValueKind::Bool, json!(true)).0,
            json!(false)
        );
        let alice = Context::new("alice");
        assert_eq!(
            eval(&e, "alice-only", &alice, ValueKind::Bool, json!(false)),
            (json!(true), ON)
        );
        assert_eq!(e.is_enabled("missing", &alice), None);
        assert_eq!(e.is_enabled("alice-only", &alice), Some(true));
    }

    #[test]
    fn the_user_kind_gives_the_user_id_in_a_multi_kind_context() {
        let e = toggles();
        let org = Context::of_kind("org", "acme").expect("kind");
        let multi = Context::multi([org.clone(), Context::new("alice")]).expect("multi");
        assert_eq!(e.unleash_context(&multi).user_id.as_deref(), Some("alice"));
        assert_eq!(e.unleash_context(&org).user_id.as_deref(), Some("acme"));
        assert_eq!(e.is_enabled("alice-only", &multi), Some(true));
        let anonymous = Context::new("").with_attribute("userId", "alice");
        assert_eq!(
            e.unleash_context(&anonymous).user_id.as_deref(),
            Some("alice")
        );
        assert_eq!(e.unleash_context(&Context::new("")).user_id, None);
    }

    #[test]
    fn attributes_map_to_fields_and_properties() {
        let e = toggles().with_app_name("shop");
        let ctx = Context::new("u")
            .with_attribute("plan", "pro")
            .with_attribute("age", 21)
            .with_attribute("beta", true)
            .with_attribute("nothing", Value::Null)
            .with_ip("10.1.2.3")
            .with_attribute("environment", "prod")
            .with_attribute("sessionId", "s1")
            .with_attribute("currentTime", "2024-01-01T00:00:00Z");
        let u = e.unleash_context(&ctx);
        assert_eq!(u.remote_address.as_deref(), Some("10.1.2.3"));
        assert_eq!(u.session_id.as_deref(), Some("s1"));
        assert_eq!(u.environment.as_deref(), Some("prod"));
        assert_eq!(u.app_name.as_deref(), Some("shop"), "the engine's default");
        assert_eq!(u.current_time.as_deref(), Some("2024-01-01T00:00:00Z"));
        let props = u.properties.expect("properties");
        assert_eq!(props.get("plan").map(String::as_str), Some("pro"));
        assert_eq!(props.get("age").map(String::as_str), Some("21"));
        assert_eq!(props.get("beta").map(String::as_str), Some("true"));
        assert!(!props.contains_key("nothing"));
        assert!(!props.contains_key("ip") && !props.contains_key("sessionId"));
        for key in ["by-plan", "by-ip", "by-env"] {
            assert_eq!(e.is_enabled(key, &ctx), Some(true), "{key}");
        }
        let younger = ctx.clone().with_attribute("age", 17);
        assert_eq!(e.is_enabled("by-plan", &younger), Some(false));
        let other_app = ctx.clone().with_attribute("appName", "admin");
        assert_eq!(e.is_enabled("by-env", &other_app), Some(false));
        let explicit = ctx.with_attribute("remoteAddress", "10.9.9.9");
        assert_eq!(e.is_enabled("by-ip", &explicit), Some(false));
    }

    #[test]
    fn strings_numbers_and_json() {
        let e = toggles();
        let u = Context::new("u");
        let s = |k| eval(&e, k, &u, ValueKind::String, json!("dflt"));
        assert_eq!(s("string-variant"), (json!("#00f"), ON));
        // Not the variant's name: a `string`/`csv` payload or a type mismatch.
        assert_eq!(
            s("bare-variant"),
            (json!("dflt"), err(ErrorKind::WrongType))
        );
        assert_eq!(
            s("number-variant"),
            (json!("dflt"), err(ErrorKind::WrongType))
        );
        assert_eq!(s("on"), (json!("dflt"), ON));
        assert_eq!(s("off-variant"), (json!("dflt"), Reason::Off));
        assert_eq!(s("missing"), (json!("dflt"), err(ErrorKind::FlagNotFound)));

        let n = |k, kind| eval(&e, k, &u, kind, json!(-1));
        assert_eq!(n("number-variant", ValueKind::Int), (json!(42), ON));
        assert_eq!(n("float-variant", ValueKind::Float), (json!(0.25), ON));
        assert_eq!(
            n("string-variant", ValueKind::Int),
            (json!(-1), err(ErrorKind::WrongType))
        );
        assert_eq!(
            n("bare-variant", ValueKind::Float),
            (json!(-1), err(ErrorKind::WrongType))
        );
        assert_eq!(
            n("bad-number", ValueKind::Int),
            (json!(-1), err(ErrorKind::MalformedFlag))
        );
        assert_eq!(n("off", ValueKind::Int), (json!(-1), Reason::Off));

        let a = |k| eval(&e, k, &u, ValueKind::Any, Value::Null);
        assert_eq!(a("json-variant"), (json!({"a": [1, 2]}), ON));
        assert_eq!(a("number-variant"), (json!(42), ON));
        assert_eq!(a("string-variant"), (json!("#00f"), ON));
        assert_eq!(a("bare-variant"), (json!("green"), ON));
        assert_eq!(a("on"), (json!(true), ON));
        // An off toggle serves the caller's default, not `false` (which `json::<T>()` would
        // count as a wrong type).
        assert_eq!(a("off"), (Value::Null, Reason::Off));
        assert_eq!(a("bad-json"), (Value::Null, err(ErrorKind::MalformedFlag)));
    }

    #[test]
    fn variants_and_keys() {
        let e = toggles();
        let v = e.variant("string-variant", &Context::new("u"));
        assert_eq!(v.name, "blue");
        assert!(v.enabled && v.feature_enabled);
        assert_eq!(
            v.payload,
            Some(Payload {
                kind: "string".into(),
                value: "#00f".into()
            })
        );
        let missing = e.variant("missing", &Context::new("u"));
        assert_eq!(
            (missing.name.as_str(), missing.enabled),
            ("disabled", false)
        );
        let keys = e.keys();
        assert_eq!(keys.len(), 14);
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted: {keys:?}");
        assert!(keys.iter().any(|k| k == "json-variant"));
    }

    #[test]
    fn garbage_is_an_error_and_keeps_the_toggles() {
        let e = toggles();
        assert!(matches!(
            e.load_json(b"not json"),
            Err(UnleashError::Parse(_))
        ));
        assert!(matches!(
            e.load_json(b"[1, 2]"),
            Err(UnleashError::Parse(_))
        ));
        assert_eq!(e.is_enabled("on", &Context::new("u")), Some(true));
    }

    #[test]
    fn a_toggle_that_does_not_compile_is_reported_and_off() {
        let e = UnleashEngine::new();
        let warnings = e
            .load_json(
                json!({"version": 2, "features": [
                    {"name": "broken", "enabled": true, "strategies": [{"name": "default",
                        "constraints": [{"contextName": "x", "operator": "NUM_EQ", "value": "not a number"}]}]},
                    {"name": "fine", "enabled": true, "strategies": [{"name": "default"}]}
                ]})
                .to_string()
                .as_bytes(),
            )
            .expect("parses");
        let u = Context::new("u");
        assert_eq!(e.is_enabled("fine", &u), Some(true));
        // Yggdrasil either rejects the toggle at compile time (reported) or never matches it.
        assert!(
            warnings.iter().all(|w| w.toggle == "broken"),
            "{warnings:?}"
        );
        assert_eq!(e.is_enabled("broken", &u), Some(false));
    }

    #[test]
    fn usage_is_counted_only_when_on_and_survives_a_failed_report() {
        let e = toggles();
        let (alice, bob) = (Context::new("alice"), Context::new("bob"));
        e.evaluate("alice-only", &alice, ValueKind::Bool, &json!(false));
        assert_eq!(e.take_usage(), None, "counting is off by default");
        e.set_usage_counting(true);
        for _ in 0..3 {
            e.evaluate("alice-only", &alice, ValueKind::Bool, &json!(false));
        }
        for _ in 0..2 {
            e.evaluate("alice-only", &bob, ValueKind::Bool, &json!(false));
        }
        e.evaluate("string-variant", &alice, ValueKind::String, &json!(""));
        e.evaluate("missing", &alice, ValueKind::Bool, &json!(false));
        let bucket = e.take_usage().expect("something was counted");
        let toggles = &bucket["toggles"];
        assert_eq!(toggles["alice-only"]["yes"], json!(3));
        assert_eq!(toggles["alice-only"]["no"], json!(2));
        assert_eq!(toggles["string-variant"]["yes"], json!(1));
        assert_eq!(toggles["string-variant"]["variants"]["blue"], json!(1));
        assert!(
            toggles.get("missing").is_none(),
            "unknown toggles are not reported"
        );
        assert!(bucket["start"].is_string() && bucket["stop"].is_string());
        assert_eq!(e.take_usage(), None, "taking starts a new count");
        // A report that could not be sent is put back and included in the next one.
        e.restore_usage(bucket);
        e.evaluate("alice-only", &alice, ValueKind::Bool, &json!(false));
        let again = e.take_usage().expect("restored");
        assert_eq!(again["toggles"]["alice-only"]["yes"], json!(4));
        assert_eq!(
            again["toggles"]["string-variant"]["variants"]["blue"],
            json!(1)
        );
    }

    #[test]
    fn reasons_tell_disabled_from_no_match_and_name_the_variant() {
        let e = toggles();
        let bob = Context::new("bob");
        assert_eq!(
            eval(&e, "off", &bob, ValueKind::Bool, json!(true)),
            (json!(false), Reason::Off),
            "switched off"
        );
        assert_eq!(
            eval(&e, "alice-only", &bob, ValueKind::Bool, json!(true)),
            (json!(false), NO_MATCH),
            "switched on, no strategy matches"
        );
        assert_eq!(
            eval(
                &e,
                "alice-only",
                &Context::new("alice"),
                ValueKind::Bool,
                json!(false)
            ),
            (json!(true), Reason::TargetMatch),
            "a strategy matches"
        );
        let r = e.evaluate("string-variant", &bob, ValueKind::String, &json!(""));
        assert_eq!(r.variation_name.as_deref(), Some("blue"));
        let r = e.evaluate("json-variant", &bob, ValueKind::Any, &Value::Null);
        assert_eq!(r.variation_name.as_deref(), Some("j"));
        let r = e.evaluate("on", &bob, ValueKind::Any, &Value::Null);
        assert_eq!(r.variation_name, None, "no variant assigned");
    }

    fn custom_toggles(e: UnleashEngine) -> (UnleashEngine, Vec<CompileWarning>) {
        let warnings = e
            .load_json(
                json!({"version": 2, "features": [
                    {"name": "by-country", "enabled": true, "strategies": [
                        {"name": "country", "parameters": {"countries": "NO,SE"}}],
                     "variants": [{"name": "nordic", "weight": 1000,
                                   "payload": {"type": "string", "value": "hei"}}]},
                    {"name": "two-custom", "enabled": true, "strategies": [
                        {"name": "userWithId", "parameters": {"userIds": "alice"}},
                        {"name": "unknown-one", "parameters": {}},
                        {"name": "country", "parameters": {"countries": "DK"}}]},
                    {"name": "only-unknown", "enabled": true, "strategies": [
                        {"name": "unknown-one", "parameters": {}}]}
                ]})
                .to_string()
                .as_bytes(),
            )
            .expect("parses");
        (e, warnings)
    }

    fn country(ctx: &Context, params: &HashMap<String, String>) -> bool {
        let Some(c) = ctx.get("country").and_then(Value::as_str) else {
            return false;
        };
        params
            .get("countries")
            .is_some_and(|list| list.split(',').any(|x| x.trim() == c))
    }

    #[test]
    fn custom_strategies_decide_with_their_parameters() {
        let (e, warnings) = custom_toggles(UnleashEngine::new().with_strategy("country", country));
        assert!(warnings.is_empty(), "{warnings:?}");
        let warnings = e.unimplemented_strategies();
        let no = Context::new("u").with_attribute("country", "NO");
        let dk = Context::new("u").with_attribute("country", "DK");
        let us = Context::new("u").with_attribute("country", "US");
        assert_eq!(
            eval(&e, "by-country", &no, ValueKind::Bool, json!(false)),
            (json!(true), ON)
        );
        assert_eq!(
            eval(&e, "by-country", &us, ValueKind::Bool, json!(true)),
            (json!(false), NO_MATCH)
        );
        assert_eq!(
            eval(&e, "by-country", &no, ValueKind::String, json!("")),
            (json!("hei"), ON),
            "the variant call sees the custom result too"
        );
        // The second custom strategy of a toggle gets its own parameters.
        assert_eq!(e.is_enabled("two-custom", &dk), Some(true));
        assert_eq!(
            e.is_enabled("two-custom", &Context::new("alice")),
            Some(true)
        );
        // Only the toggles using the unregistered strategy are reported.
        let mut reported: Vec<&str> = warnings.iter().map(|w| w.toggle.as_str()).collect();
        reported.sort_unstable();
        assert_eq!(reported, ["only-unknown", "two-custom"], "{warnings:?}");
        assert!(warnings[0].message.contains("unknown-one"), "{warnings:?}");
    }

    #[test]
    fn a_strategy_without_implementation_is_never_silently_off() {
        let (e, _) = custom_toggles(UnleashEngine::new());
        let warnings = e.unimplemented_strategies();
        assert_eq!(warnings.len(), 4, "one per strategy use: {warnings:?}");
        let u = Context::new("u").with_attribute("country", "NO");
        // Off only because the strategy cannot be evaluated: the caller's default, with why.
        assert_eq!(
            eval(&e, "by-country", &u, ValueKind::Bool, json!(true)),
            (json!(true), err(ErrorKind::MalformedFlag))
        );
        assert_eq!(
            eval(&e, "only-unknown", &u, ValueKind::Bool, json!(false)),
            (json!(false), err(ErrorKind::MalformedFlag))
        );
        // Another strategy that matches still turns it on.
        assert_eq!(
            eval(
                &e,
                "two-custom",
                &Context::new("alice"),
                ValueKind::Bool,
                json!(false)
            ),
            (json!(true), ON)
        );
    }

    #[test]
    fn loads_name_the_toggles_they_change() {
        let e = UnleashEngine::new();
        let load = |features: Value| {
            e.load_json(json!({"version": 2, "features": features, "segments": [
                {"id": 1, "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}]}
            ]}).to_string().as_bytes())
            .expect("loads");
        };
        let a = json!({"name": "a", "enabled": true, "strategies": [{"name": "default"}]});
        let b = json!({"name": "b", "enabled": true, "strategies": [{"name": "default", "segments": [1]}]});
        load(json!([a, b]));
        assert_eq!(e.take_changed(), ["a", "b"], "all new");
        assert!(e.take_changed().is_empty(), "taken");
        load(json!([a, b]));
        assert!(e.take_changed().is_empty(), "nothing changed");
        let a_off = json!({"name": "a", "enabled": false, "strategies": [{"name": "default"}]});
        load(json!([a_off, b]));
        assert_eq!(e.take_changed(), ["a"]);
        // A changed segment counts for the toggle that uses it.
        e.load_json(json!({"version": 2, "features": [a_off, b], "segments": [
            {"id": 1, "constraints": [{"contextName": "plan", "operator": "IN", "values": ["team"]}]}
        ]}).to_string().as_bytes()).expect("loads");
        assert_eq!(e.take_changed(), ["b"]);
        load(json!([b]));
        assert_eq!(e.take_changed(), ["a", "b"], "a removed, b's segment back");
    }

    #[test]
    fn uncounted_evaluations_are_not_usage() {
        let e = toggles();
        e.set_usage_counting(true);
        let alice = Context::new("alice");
        let r = e.evaluate_uncounted("alice-only", &alice, ValueKind::Any, &Value::Null);
        assert_eq!(r.value, json!(true));
        e.evaluate_uncounted("string-variant", &alice, ValueKind::Any, &Value::Null);
        assert_eq!(e.take_usage(), None, "a listing is not a use");
        e.evaluate("alice-only", &alice, ValueKind::Bool, &json!(false));
        assert_eq!(
            e.take_usage().expect("counted")["toggles"]["alice-only"]["yes"],
            json!(1)
        );
    }

    #[derive(Default)]
    struct Events(std::sync::Mutex<Vec<(String, String, Value)>>);

    impl feature_core::metrics::Metrics for Events {}

    impl feature_core::provider::Sink for Events {
        fn publish(&self, _: feature_core::Snapshot) {}
        fn metrics(&self) -> &dyn feature_core::metrics::Metrics {
            self
        }
        fn event(&self, context: &Context, name: &str, data: Value) {
            self.0
                .lock()
                .unwrap()
                .push((context.key().to_owned(), name.to_owned(), data));
        }
    }

    #[test]
    fn toggles_with_impression_data_emit_impression_events() {
        let e = engine(json!({"version": 2, "features": [
            {"name": "seen", "enabled": true, "impressionData": true,
             "strategies": [{"name": "userWithId", "parameters": {"userIds": "alice"}}],
             "variants": [{"name": "blue", "weight": 1000, "payload": {"type": "string", "value": "#00f"}}]},
            {"name": "unseen", "enabled": true, "strategies": [{"name": "default"}]}
        ]}));
        let events = Arc::new(Events::default());
        e.set_impression_sink(events.clone());
        let alice = Context::new("alice").with_attribute("plan", "pro");
        e.evaluate("seen", &alice, ValueKind::Bool, &json!(false));
        e.evaluate("seen", &alice, ValueKind::String, &json!(""));
        e.evaluate("seen", &Context::new("bob"), ValueKind::Bool, &json!(true));
        e.evaluate("seen", &Context::new("bob"), ValueKind::String, &json!(""));
        e.evaluate("unseen", &alice, ValueKind::Bool, &json!(false));
        e.evaluate_uncounted("seen", &alice, ValueKind::Any, &Value::Null);
        let got = events.0.lock().unwrap().clone();
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got.iter().all(|(_, name, _)| name == "impression"));
        let (key, _, first) = &got[0];
        assert_eq!(key, "alice");
        assert_eq!(first["eventType"], json!("isEnabled"));
        assert_eq!(first["featureName"], json!("seen"));
        assert_eq!(first["enabled"], json!(true));
        assert_eq!(first["context"]["userId"], json!("alice"));
        assert_eq!(first["context"]["properties"]["plan"], json!("pro"));
        assert!(first.get("variant").is_none());
        assert_eq!(got[1].2["eventType"], json!("getVariant"));
        assert_eq!(got[1].2["variant"], json!("blue"));
        assert_eq!(
            (&got[2].2["eventType"], &got[2].2["enabled"]),
            (&json!("isEnabled"), &json!(false))
        );
        assert_eq!(got[3].2["variant"], json!("disabled"));
    }
}
