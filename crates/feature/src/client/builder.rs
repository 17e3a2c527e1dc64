//! [`ClientBuilder`]: the provider, overrides, hooks and timeouts of a new [`Client`], and its
//! start.

use super::cache::Published;
use super::observe::Observer;
use super::view::{ClientSink, View};
use super::{Client, ClientError, Inner};
use crate::analytics::{AnalyticsPipeline, EventSink, PipelineConfig};
use crate::config::{Config, ProviderKind};
use crate::MemoryProvider;
use feature_core::metrics::{Metrics, NoopMetrics};
use feature_core::provider::{Provider, Sink};
use feature_core::Snapshot;
use serde_json::Value;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Builds a [`Client`].
pub struct ClientBuilder {
    provider: Option<Arc<dyn Provider>>,
    overrides: Vec<(String, Value)>,
    metrics: Option<Arc<dyn Metrics>>,
    events: Option<Arc<dyn EventSink>>,
    start_timeout: Duration,
    timing_sample: u32,
    offline: bool,
    config: Option<Config>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("provider", &self.provider.as_ref().map(|p| p.name()))
            .field("overrides", &self.overrides.len())
            .field("metrics", &self.metrics.is_some())
            .field("events", &self.events.is_some())
            .field("start_timeout", &self.start_timeout)
            .field("timing_sample", &self.timing_sample)
            .field("offline", &self.offline)
            .field("config", &self.config)
            .finish()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            provider: None,
            overrides: Vec::new(),
            metrics: None,
            events: None,
            start_timeout: Duration::from_secs(10),
            timing_sample: 64,
            offline: false,
            config: None,
        }
    }
}

impl ClientBuilder {
    /// The source of flags (default: an empty [`MemoryProvider`]).
    pub fn provider(mut self, provider: impl Provider) -> Self {
        self.provider = Some(Arc::new(provider));
        self
    }

    /// A shared provider (kept by the caller too, e.g. to change a memory provider's flags).
    pub fn shared_provider(mut self, provider: Arc<dyn Provider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// A local override: `key` always serves `value`, whatever the provider says.
    pub fn override_flag(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    /// Local overrides: each key serves its value whatever the flags say.
    pub fn overrides<K: Into<String>, V: Into<Value>>(
        mut self,
        overrides: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.overrides
            .extend(overrides.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Where evaluations and provider activity are measured.
    pub fn metrics(mut self, metrics: impl Metrics) -> Self {
        self.metrics = Some(Arc::new(metrics));
        self
    }

    /// A shared metrics implementation.
    pub fn shared_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Where evaluation and custom events go (analytics).
    pub fn events(mut self, events: impl EventSink) -> Self {
        self.events = Some(Arc::new(events));
        self
    }

    /// A shared event sink.
    pub fn shared_events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = Some(events);
        self
    }

    /// How long [`ClientBuilder::build`] waits for the provider's first flags (default 10 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Time one evaluation in `n` for metrics (default 64; 1 times every evaluation).
    pub fn timing_sample(mut self, n: u32) -> Self {
        self.timing_sample = n.max(1);
        self
    }

    /// Offline: the provider is not started and no events are sent; overrides still apply and
    /// every other evaluation serves the caller's default with `ERROR`/`CLIENT_NOT_READY`.
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Takes the provider, offline mode, analytics exporter and metrics switch from `config`
    /// (e.g. [`Config::from_env`]), combined with this builder's other options:
    ///
    /// - a provider, events sink or metrics given to the builder win over the configuration's;
    /// - without an events sink, the exporter `FEATURE_EVENTS_EXPORTER` selects is started
    ///   behind an [`AnalyticsPipeline`] (default settings), closed with the client;
    /// - `FEATURE_SEND_EVENTS=false` means no events at all, and `FEATURE_METRICS_ENABLED=false`
    ///   no metrics, whatever the builder was given: the operator's switch wins;
    /// - `FEATURE_OFFLINE=true` with a remote provider is [`ClientBuilder::offline`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use feature::{Client, Config, Context};
    ///
    /// let config = Config::from_lookup(|k| (k == "FEATURE_PROVIDER").then(|| "memory".to_owned()))?;
    /// let client = Client::builder()
    ///     .config(config)
    ///     .override_flag("new-dashboard", true)
    ///     .build()
    ///     .await?;
    /// assert!(client.bool(&Context::new("u1"), "new-dashboard", false));
    /// client.close().await;
    /// # Ok(()) }
    /// ```
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Starts the provider and waits for its first flags.
    pub async fn build(mut self) -> Result<Client, ClientError> {
        if let Some(config) = self.config.take() {
            #[cfg(feature = "launchdarkly")]
            let mut ld_meta = None;
            let provider: Arc<dyn Provider> = match self.provider.take() {
                Some(p) => p,
                #[cfg(feature = "launchdarkly")]
                None if config.provider == ProviderKind::LaunchDarkly => {
                    let p = crate::providers::from_config::launchdarkly(&config)?;
                    ld_meta = Some(p.flag_metadata());
                    Arc::new(p)
                }
                None => crate::providers::from_config(&config)?,
            };
            // Offline means no network: local providers (memory, file) still serve.
            let local = [ProviderKind::Memory, ProviderKind::File]
                .iter()
                .any(|k| k.as_str() == provider.name());
            self.offline |= config.offline && !local;
            self.provider = Some(provider);
            if !config.metrics.enabled {
                self.metrics = None;
            }
            if !config.send_events {
                self.events = None;
            } else if self.events.is_none() && !self.offline {
                // LaunchDarkly's events: named, or the default with its provider (a sink of
                // its own, which reads the provider's flag settings).
                #[cfg(feature = "launchdarkly")]
                {
                    self.events =
                        crate::analytics::exporters::launchdarkly::from_config(&config, ld_meta)?;
                }
                if self.events.is_none() {
                    if let Some(exporter) =
                        crate::analytics::exporters::from_config(&config.events)?
                    {
                        let pipeline =
                            AnalyticsPipeline::start_shared(exporter, PipelineConfig::default())
                                .map_err(ClientError::Events)?;
                        self.events = Some(Arc::new(pipeline));
                    }
                }
            }
        }
        let provider = self
            .provider
            .unwrap_or_else(|| Arc::new(MemoryProvider::new()) as Arc<dyn Provider>);
        let events = if self.offline { None } else { self.events };
        let (changes, _) = broadcast::channel(256);
        let overrides = self
            .overrides
            .into_iter()
            .map(|(k, v)| (k.into_boxed_str(), v))
            .collect();
        let engine = provider.engine();
        let observer = Observer::new(self.metrics.clone(), events.clone(), self.timing_sample);
        let inner = Arc::new(Inner {
            view: Published::new(View::new(
                Arc::new(Snapshot::default()),
                overrides,
                false,
                super::observed_or_engine(&engine, &observer),
            )),
            engine,
            provider,
            observer,
            metrics: self.metrics,
            events,
            changes,
            closed: AtomicBool::new(false),
        });
        let client = Client { inner };
        if self.offline {
            return Ok(client);
        }
        let sink: Arc<dyn Sink> = Arc::new(ClientSink {
            inner: Arc::downgrade(&client.inner),
            metrics: client
                .inner
                .metrics
                .clone()
                .unwrap_or_else(|| Arc::new(NoopMetrics)),
        });
        let name = client.inner.provider.name();
        let started = Instant::now();
        match tokio::time::timeout(self.start_timeout, client.inner.provider.start(sink)).await {
            Ok(Ok(())) => {
                client
                    .metrics()
                    .record_provider_latency(name, "start", started.elapsed());
                Ok(client)
            }
            Ok(Err(source)) => {
                client
                    .metrics()
                    .record_provider_error(name, "start", "start");
                client.inner.provider.close().await;
                Err(ClientError::Provider {
                    provider: name,
                    source,
                })
            }
            Err(_) => {
                client.inner.provider.close().await;
                Err(ClientError::StartTimeout {
                    provider: name,
                    timeout: self.start_timeout,
                })
            }
        }
    }
}
