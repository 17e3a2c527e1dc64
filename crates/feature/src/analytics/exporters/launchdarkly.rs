//! LaunchDarkly's analytics events (crate feature `launchdarkly`): [`LaunchDarklyEvents`], the
//! [`EventSink`] that feeds every evaluation, `track` and `identify` to
//! [`feature_launchdarkly::events::EventProcessor`], which summarises, deduplicates, formats
//! and sends them to LaunchDarkly's events endpoint as LaunchDarkly's server-side SDKs do.
//!
//! It is a sink rather than an [`AnalyticsExporter`](super::AnalyticsExporter) behind the
//! pipeline: LaunchDarkly's summaries count every evaluation, not a sample, and need the
//! flag's event settings, which the processor reads from the provider's
//! [`FlagMetadata`].
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature::analytics::exporters::launchdarkly::LaunchDarklyEvents;
//! use feature::providers::launchdarkly::{events::EventsConfig, LaunchDarklyProvider};
//! use feature::{Client, Context};
//!
//! let key = std::env::var("LAUNCHDARKLY_SDK_KEY")?;
//! let provider = LaunchDarklyProvider::builder(key.clone()).build()?;
//! let events = LaunchDarklyEvents::for_provider(
//!     &provider,
//!     &key,
//!     EventsConfig::default().private_attributes(["email"]),
//! )?;
//! let client = Client::builder().provider(provider).events(events).build().await?;
//! let user = Context::new("user-1").with_email("jo@example.com");
//! client.bool(&user, "new-checkout", false); // counted in the next summary
//! client.close().await;                       // sends what is queued
//! # Ok(()) }
//! ```

use crate::analytics::{BoxFuture, EvaluationEvent, EventSink, TrackData};
use crate::config::{Config, ConfigError, ExporterKind, ProviderKind};
use feature_core::Context;
use feature_launchdarkly::events::{Evaluated, EventProcessor, EventStats, EventsConfig};
use feature_launchdarkly::{BuildError, FlagMetadata, LaunchDarklyProvider};
use std::sync::Arc;

/// Sends LaunchDarkly's analytics events; see the [module docs](self).
#[derive(Debug)]
pub struct LaunchDarklyEvents {
    processor: EventProcessor,
}

impl LaunchDarklyEvents {
    /// Events for the flags of `provider`, sent with `sdk_key`.
    pub fn for_provider(
        provider: &LaunchDarklyProvider,
        sdk_key: &str,
        config: EventsConfig,
    ) -> Result<LaunchDarklyEvents, BuildError> {
        LaunchDarklyEvents::new(sdk_key, config, provider.flag_metadata())
    }

    /// Events for flags whose settings `meta` holds.
    pub fn new(
        sdk_key: &str,
        config: EventsConfig,
        meta: FlagMetadata,
    ) -> Result<LaunchDarklyEvents, BuildError> {
        Ok(LaunchDarklyEvents {
            processor: EventProcessor::start(sdk_key, config, meta)?,
        })
    }

    /// What was sent, failed and dropped so far.
    pub fn stats(&self) -> EventStats {
        self.processor.stats()
    }
}

impl EventSink for LaunchDarklyEvents {
    /// Every evaluation: LaunchDarkly's summaries count them all.
    #[inline]
    fn wants_evaluation(&self, _in_experiment: bool) -> bool {
        true
    }

    fn evaluation(&self, e: &EvaluationEvent<'_>) {
        self.processor.evaluation(&Evaluated {
            key: e.key,
            context: e.context,
            value: e.value,
            default: e.default.as_fn(),
            variation: e.variation,
            reason: e.reason,
            rule_index: e.rule_index,
            rule_id: e.rule_id,
            in_experiment: e.in_experiment,
            error: e.error,
            prerequisite_key: e.prerequisite_key,
            big_segment: false,
        });
    }

    fn track(&self, context: &Context, name: &str, data: &TrackData) {
        self.processor
            .custom(context, name, data.data.as_ref(), data.metric_value);
    }

    fn identify(&self, context: &Context) {
        self.processor.identify(context);
    }

    fn flush(&self) -> BoxFuture<'_> {
        Box::pin(self.processor.flush())
    }

    fn close(&self) -> BoxFuture<'_> {
        Box::pin(self.processor.close())
    }
}

/// The LaunchDarkly events sink a configuration selects: with `FEATURE_EVENTS_EXPORTER=
/// launchdarkly`, or by default with `FEATURE_PROVIDER=launchdarkly` and no exporter named.
/// `meta` is the settings table of the LaunchDarkly provider built from the same
/// configuration (`None`: the application gave its own provider).
pub(crate) fn from_config(
    config: &Config,
    meta: Option<FlagMetadata>,
) -> Result<Option<Arc<dyn EventSink>>, ConfigError> {
    let named = config.events.exporter == Some(ExporterKind::LaunchDarkly);
    let by_default =
        config.events.exporter.is_none() && config.provider == ProviderKind::LaunchDarkly;
    if !named && !by_default {
        return Ok(None);
    }
    let Some(meta) = meta else {
        if named {
            return Err(ConfigError::Missing {
                variable: "FEATURE_PROVIDER",
                needed_by: "FEATURE_EVENTS_EXPORTER=launchdarkly (the LaunchDarkly provider \
                            built from the same configuration; with a provider of your own, \
                            give the client `LaunchDarklyEvents::for_provider`)",
            });
        }
        tracing::warn!(target: "feature::analytics", "no LaunchDarkly events: the LaunchDarkly provider was given to the builder, not built from the configuration; use LaunchDarklyEvents::for_provider");
        return Ok(None);
    };
    let r = &config.remote;
    let key = r.launchdarkly_sdk_key.as_deref().unwrap_or_default();
    let mut events = EventsConfig::default()
        .network(crate::providers::from_config::launchdarkly_network(config))
        .application(
            r.launchdarkly_application.0.clone(),
            r.launchdarkly_application.1.clone(),
        )
        .private_attributes(r.launchdarkly_private_attributes.iter().cloned())
        .all_attributes_private(r.launchdarkly_all_attributes_private);
    if let Some(u) = &r.launchdarkly_events_url {
        events = events.events_uri(u.as_str());
    }
    let sink = LaunchDarklyEvents::new(key, events, meta)
        .map_err(|e| crate::providers::from_config::launchdarkly_error(config, e))?;
    Ok(Some(Arc::new(sink)))
}
