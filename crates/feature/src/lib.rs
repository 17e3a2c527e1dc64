//! # feature
//!
//! Feature flags for Rust services: flags defined in YAML or JSON files (or a store), evaluated
//! in-process against a context with targeting rules, segments, percentage rollouts,
//! prerequisites and A/B variants; live updates without restart; local overrides; hooks for
//! metrics and analytics.
//!
//! Evaluation is synchronous, lock-free and never fails: on any problem the caller's default
//! comes back, with a reason available through [`Client::variation`].
//!
//! ## Quick start
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature::{Client, Context, FileProvider};
//!
//! let client = Client::builder()
//!     .provider(FileProvider::new("features.yaml")) // reloaded when it changes
//!     .override_flag("experiment-mode", "variant-b")   // local override, wins over the file
//!     .build()
//!     .await?;
//!
//! let user = Context::new("user-123")
//!     .with_email("jo@example.com")
//!     .with_attribute("plan", "pro")
//!     .with_group("beta-testers");
//!
//! if client.bool(&user, "new-dashboard", false) { /* ... */ }
//! let theme = client.string(&user, "theme", "light");
//! let detail = client.variation(&user, "checkout-button-color"); // value, variation, reason
//! if detail.in_experiment() {
//!     client.track(&user, "checkout-button-view", serde_json::json!({"variant": detail.variation_name}));
//! }
//! client.close().await;
//! # let _ = theme; Ok(()) }
//! ```
//!
//! ## Crate features
//!
//! | feature | what it adds | status |
//! |---|---|---|
//! | (default) | [`Client`], [`Config`], [`MemoryProvider`], [`FileProvider`], overrides, change subscription, [`Metrics`] and [`EventSink`] hooks | available |
//! | (default) | [`health`] (the health report), [`metrics`] ([`metrics::EvaluationStats`], [`metrics::Tee`], [`metrics::MetricsConfig`]), [`analytics`] (event pipeline, redaction, [`analytics::exporters`] stdout and file) | available |
//! | `prometheus` | `metrics::prometheus`: nine Prometheus metrics of evaluations, providers and latency | available |
//! | `otel` | `metrics::otel`: the same instruments through the OpenTelemetry metrics API | available |
//! | `http-endpoints` | `endpoint`: one tower service for `/health` (`health::HealthService`) and, with `prometheus`, `/metrics` (`metrics::prometheus::MetricsService`) | available |
//! | `webhook` | `analytics::exporters::webhook`: HTTP webhook exporter | available |
//! | `kafka` | `analytics::exporters::kafka`: Kafka exporter (pure Rust client) | available |
//! | (default) | [`scope`], [`RequestFlags`] and the free functions [`bool()`], [`string()`], [`int()`], [`float()`], [`json()`], [`variation()`], [`current_context()`]: flags for the request being served | available |
//! | `http` | `middleware`: `FlagsLayer::new`, the tower/axum/hyper layer, and `middleware::axum_extract::Flags`, the axum extractor | available |
//! | `grpc` | `middleware`: `FlagsLayer::new_for_grpc`, the same layer for tonic; `middleware::grpc`: interceptor and `FlagsExt` | available |
//! | `postgres` | `providers::postgres` (the `feature-postgres` crate, with TLS): flags in a PostgreSQL table, live updates by LISTEN/NOTIFY, write API with audit log; `FEATURE_PROVIDER=postgres` | available |
//! | `redis` | `providers::redis` (the `feature-redis` crate, with TLS: `rediss://`): flags in a Redis hash, live updates by pub/sub, write API; a read-through cache in front of PostgreSQL with both features; `FEATURE_PROVIDER=redis` | available |
//! | `launchdarkly` | `providers::launchdarkly` (the `feature-launchdarkly` crate): flag data streamed (or polled) from LaunchDarkly like its server-side SDKs receive it, imported and evaluated by this engine; `FEATURE_PROVIDER=launchdarkly` with `LAUNCHDARKLY_SDK_KEY`; LaunchDarkly's analytics events (`analytics::exporters::launchdarkly`, the default exporter with this provider) | available |
//! | `unleash` | `providers::unleash` (the `feature-unleash` crate): toggles from an Unleash server's client API, polled with ETags and evaluated by Unleash's own engine (Yggdrasil); `FEATURE_PROVIDER=unleash` with `UNLEASH_URL`, `UNLEASH_API_TOKEN` | available |
//!
//! ## Modules
//!
//! - [`Client`] / [`ClientBuilder`]: evaluation, overrides, subscription, close.
//! - [`Config`]: the `FEATURE_*` environment variables.
//! - [`providers`]: where flags come from: [`MemoryProvider`], [`FileProvider`], the stores
//!   and hosted services, and the [`Provider`] contract for writing your own.
//! - [`metrics`]: the [`Metrics`] hook and its implementations (health statistics,
//!   Prometheus, OpenTelemetry), their settings, [`metrics::Tee`].
//! - [`analytics`]: the [`EventSink`] hook, the event pipeline, redaction and exporters.
//! - [`health`]: the health report; `endpoint` (feature `http-endpoints`): serving it and the
//!   Prometheus metrics over HTTP.
//! - [`scope`], [`RequestFlags`] and `middleware` (features `http`, `grpc`): flags for the
//!   request being served.
//! - [`engine`]: the engine itself (`feature-core`): flag model, compiler, evaluator;
//!   [`model`] is its flag model.
#![deny(missing_docs)]

mod client;
mod config;
#[cfg(any(feature = "http", feature = "grpc"))]
pub mod middleware;
mod request;

pub mod analytics;
#[cfg(feature = "http-endpoints")]
pub mod endpoint;
pub mod health;
pub mod metrics;
pub mod providers;

pub use analytics::{EvaluationEvent, EventSink};
pub use client::{
    Client, ClientBuilder, ClientError, FlagChange, JsonError, KeyedFlag, Subscription,
    SubscriptionClosed,
};
pub use config::{
    parse_duration, Config, ConfigError, EventsConfig, ExporterKind, FileConfig, ProviderKind,
    RemoteConfig, StoreConfig,
};
pub use feature_core as engine;
pub use feature_core::model::{self, Flag, FlagDocument, FlagType, Operator};
pub use feature_core::{Context, ErrorKind, Evaluation, FlagKey, Reason, ReasonKind, ValueKind};
pub use metrics::{Metrics, NoopMetrics};
pub use providers::{
    FileProvider, MemoryProvider, Provider, ProviderError, ProviderState, ProviderStatus,
};
pub use request::{
    bool, carry_scope, current_context, current_flags, float, int, json, outside_scope_reads,
    scope, string, variation, RequestFlags,
};

/// The README's Rust examples, compiled as doc tests so that they stay as written.
#[cfg(all(doctest, feature = "http"))]
#[doc = include_str!("../../../README.md")]
mod readme {}
