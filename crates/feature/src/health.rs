//! Health: the `HealthCheck` report, built from the client's provider status and
//! snapshot, the [`EvaluationStats`] the client feeds, and optionally a caching provider's
//! [`CacheReport`]; and, with the `http-endpoints` feature, `HealthService`, a tower
//! `Service` answering it as JSON (usable as an axum route or with hyper).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature::health::{Health, Status};
//! use feature::metrics::EvaluationStats;
//! use feature::{Client, Context, Flag, MemoryProvider};
//!
//! let stats = EvaluationStats::new();
//! let flags = MemoryProvider::new();
//! flags.set_flag(Flag::boolean("beta", true));
//! let client = Client::builder().provider(flags).metrics(stats.clone()).build().await?;
//! client.bool(&Context::new("u1"), "beta", false);
//!
//! let health = Health::new(client.clone(), stats);
//! let report = health.check();
//! assert_eq!(report.status, Status::Healthy);
//! assert_eq!(report.flags_loaded, 1);
//! assert_eq!(report.evaluation_stats.total_evaluations, 1);
//! println!("{}", serde_json::to_string_pretty(&report)?);
//! # Ok(()) }
//! ```
//!
//! Status: `unhealthy` while no flags were ever loaded; `degraded` while the provider serves
//! stale data (its state is `Degraded`: the store is unreachable or its latest data invalid);
//! `healthy` otherwise. `HealthService` answers `200` for healthy and degraded (the service
//! works) and `503` for unhealthy.
//!
//! ## What the report tells about errors
//!
//! The health endpoint is often reachable by more people than the logs are, so by default
//! `provider.last_error` says *what* failed without saying *where*: no file paths, no store
//! URLs or addresses, and not the backend library's own message (which may contain either):
//! `postgres: listen failed`, `cannot read the flag file: entity not found`, `the flag document
//! cannot be parsed at line 3, column 7: ...`. [`Health::with_details`] includes the full
//! error text; the logs always have it.
//!
//! ## Cache numbers
//!
//! `cache.hit_rate` comes from the cache hits and misses providers report through
//! [`Metrics::record_cache_hit`](crate::Metrics::record_cache_hit) /
//! [`Metrics::record_cache_miss`](crate::Metrics::record_cache_miss) (counted by
//! [`EvaluationStats`]); a provider that keeps a cache also implements [`CacheReport`], given
//! to [`Health::with_cache`], for `size` and `max_size` (its hit and miss counts then win).

use crate::metrics::{CacheReport, EvaluationStats, EvaluationStatsReport};
use crate::Client;
use chrono::{DateTime, Utc};
use feature_core::provider::{ProviderError, ProviderState};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Flags are loaded and current.
    Healthy,
    /// Flags are served from the last good data: the store is unreachable or its data invalid.
    Degraded,
    /// No flags were ever loaded: every evaluation serves the caller's default.
    Unhealthy,
}

impl Status {
    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// The health report: status, provider, flag counts and evaluation statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: Status,
    /// The provider.
    pub provider: ProviderHealth,
    /// The provider's cache.
    pub cache: CacheHealth,
    /// When the provider last delivered data (`null`: never).
    pub last_refresh: Option<DateTime<Utc>>,
    /// Flags in the live snapshot.
    pub flags_loaded: usize,
    /// Evaluation counts and latencies.
    pub evaluation_stats: EvaluationStatsReport,
}

/// The provider part of [`HealthCheck`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderHealth {
    /// Whether the provider is connected to its store.
    pub connected: bool,
    /// The provider's latest operation latency (load, reload, ...), in milliseconds.
    pub latency_ms: f64,
    /// The provider's last error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last error happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<DateTime<Utc>>,
}

/// The cache part of [`HealthCheck`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheHealth {
    /// Whether the provider has a cache.
    pub enabled: bool,
    /// Hits / (hits + misses), 0 when there were no lookups.
    pub hit_rate: f64,
    /// Entries cached now.
    pub size: usize,
    /// Capacity (0: unbounded or unknown).
    pub max_size: usize,
}

/// Builds [`HealthCheck`] reports for a client. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    client: Client,
    stats: EvaluationStats,
    cache: Option<Arc<dyn CacheReport>>,
    details: bool,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("client", &self.client)
            .field("cache", &self.cache.is_some())
            .field("details", &self.details)
            .finish()
    }
}

impl Health {
    /// Health of `client`, whose metrics include `stats` (pass them to the client's builder,
    /// alone or in a [`Tee`](crate::metrics::Tee)).
    pub fn new(client: Client, stats: EvaluationStats) -> Self {
        Health {
            client,
            stats,
            cache: None,
            details: false,
        }
    }

    /// Whether `provider.last_error` carries the provider's full error text, with file paths,
    /// store addresses and the backend's own message (default: no, only what failed; see
    /// [the module docs](self)). Turn it on where the endpoint is private.
    pub fn with_details(mut self, details: bool) -> Self {
        self.details = details;
        self
    }

    /// Reads cache size and capacity (and hit and miss counts) from a caching provider.
    pub fn with_cache(mut self, cache: Arc<dyn CacheReport>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The report now.
    pub fn check(&self) -> HealthCheck {
        let status = self.client.provider_status();
        let snapshot = self.client.snapshot();
        let ready = self.client.is_ready();
        let overall = if !ready {
            Status::Unhealthy
        } else if status.state == ProviderState::Degraded {
            Status::Degraded
        } else {
            Status::Healthy
        };
        let (last_error, last_error_at) = match &status.last_error {
            Some((e, at)) => {
                let text = if self.details {
                    e.to_string()
                } else {
                    summary(e)
                };
                (Some(text), Some(DateTime::<Utc>::from(*at)))
            }
            None => (None, None),
        };
        let cache = match &self.cache {
            Some(c) => {
                let s = c.cache_stats();
                CacheHealth {
                    enabled: true,
                    hit_rate: rate(s.hits, s.misses),
                    size: s.size,
                    max_size: s.max_size,
                }
            }
            None => {
                let (hits, misses) = self.stats.cache_counts();
                CacheHealth {
                    enabled: hits + misses > 0,
                    hit_rate: rate(hits, misses),
                    size: 0,
                    max_size: 0,
                }
            }
        };
        HealthCheck {
            status: overall,
            provider: ProviderHealth {
                connected: status.connected,
                latency_ms: self.stats.provider_latency().as_secs_f64() * 1e3,
                last_error,
                last_error_at,
            },
            cache,
            last_refresh: status.last_refresh.map(DateTime::<Utc>::from),
            flags_loaded: if ready { snapshot.len() } else { 0 },
            evaluation_stats: self.stats.report(),
        }
    }

    /// The report as JSON text.
    pub fn check_json(&self) -> String {
        // Serializing these plain structs cannot fail; fall back to the status alone.
        let report = self.check();
        serde_json::to_string(&report)
            .unwrap_or_else(|_| format!("{{\"status\":\"{}\"}}", report.status.as_str()))
    }
}

/// What failed, without where: no path, URL or backend message.
fn summary(e: &ProviderError) -> String {
    match e {
        ProviderError::Io { source, .. } => {
            format!("cannot read the flag file: {}", source.kind())
        }
        ProviderError::Parse(p) => format!(
            "the flag document cannot be parsed at line {}, column {}: {}",
            p.line, p.column, p.message
        ),
        ProviderError::Invalid(problems) => match problems.first() {
            Some(d) if d.flag.is_empty() => format!(
                "{} problem(s) in the flag data, first: {}",
                problems.len(),
                d.message
            ),
            Some(d) => format!(
                "{} problem(s) in the flag data, first: {}: {}",
                problems.len(),
                d.flag,
                d.message
            ),
            None => "the flag data has problems".to_owned(),
        },
        ProviderError::Backend {
            provider,
            operation,
            ..
        } => format!("{provider}: {operation} failed"),
        ProviderError::Timeout { .. } | ProviderError::Closed => e.to_string(),
        _ => "the provider failed".to_owned(),
    }
}

fn rate(hits: u64, misses: u64) -> f64 {
    let n = hits + misses;
    if n == 0 {
        0.0
    } else {
        hits as f64 / n as f64
    }
}

/// A tower `Service` answering every request with the [`Health`] report as JSON: `200`
/// when healthy or degraded, `503` when unhealthy (crate feature `http-endpoints`). Mount it
/// on `/health`:
///
/// ```
/// # async fn f(health: feature::health::Health) {
/// use feature::health::HealthService;
/// let app: axum::Router = axum::Router::new().route_service("/health", HealthService::new(health));
/// # let _ = app; }
/// ```
#[cfg(feature = "http-endpoints")]
pub type HealthService = crate::endpoint::EndpointService<Health>;

#[cfg(feature = "http-endpoints")]
impl crate::endpoint::Respond for Health {
    /// The report as JSON, with `503` when unhealthy.
    fn respond(&self) -> http::Response<http_body_util::Full<bytes::Bytes>> {
        let report = self.check();
        let code = if report.status == Status::Unhealthy {
            http::StatusCode::SERVICE_UNAVAILABLE
        } else {
            http::StatusCode::OK
        };
        let body = serde_json::to_vec(&report).unwrap_or_default();
        crate::endpoint::response(
            code,
            body,
            &[
                (http::header::CONTENT_TYPE, "application/json"),
                (http::header::CACHE_CONTROL, "no-store"),
            ],
        )
    }
}
