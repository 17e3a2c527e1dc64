//! # feature-launchdarkly
//!
//! A provider of the `feature` toolkit that receives flag data from LaunchDarkly the way
//! LaunchDarkly's server-side SDKs do, and evaluates it with this toolkit's own engine (which
//! matches LaunchDarkly's evaluation results on LaunchDarkly's contract test data). No
//! LaunchDarkly SDK is involved: the provider speaks the SDK protocol itself, imports each
//! flag and segment with [`feature_core::launchdarkly`] and publishes compiled snapshots, so
//! evaluations never wait on the network.
//!
//! | feature | what it does |
//! |---|---|
//! | [`Mode::Streaming`] (default) | `GET {stream_uri}/all` as Server-Sent Events: `put` replaces every flag and segment, `patch` adds or replaces one, `delete` removes one; a `patch` or `delete` imports only its item again and compiles only what it changes (from the snapshot published last: about 40–60 ms instead of 1.4–2.0 s in a set of 100 000 flags), unless it changes which segments are big (then the whole set) |
//! | [`Mode::Polling`] | `GET {base_uri}/sdk/latest-all` every interval (LaunchDarkly's minimum: 30 s), `If-None-Match` with the last `ETag` so unchanged data costs a `304` |
//! | versions | a `patch` or `delete` is applied only when its version is newer than the item held; deleted items leave a tombstone, so a late older `patch` cannot bring them back |
//! | invalid items | a flag or segment that cannot be imported is left out (a warning is logged; it evaluates to `FLAG_NOT_FOUND`), the rest is published and the provider reports `Degraded` with the skipped keys |
//! | reconnection | after a dropped stream, an error status or a failed poll: capped exponential backoff with jitter, the last flags keep serving, status `Degraded` (`Unavailable` before any data) until data arrives again |
//! | rejected key | HTTP 401/403 stops the provider at once (no retries): `start` fails with [`LaunchDarklyError::Unauthorized`], or, later, the status reports it and [`LaunchDarklyProvider::is_failed`] is true |
//! | metrics | latency of `connect`, `load` and `update`, and errors by operation and class, reported to the sink's metrics under provider name `launchdarkly` |
//! | event settings | [`LaunchDarklyProvider::flag_metadata`]: each flag's `trackEvents`, `trackEventsFallthrough`, rule `trackEvents`, `debugEventsUntilDate`, `version`, `clientSide`, prerequisites, replaced just before each snapshot (a [`FlagMetaMap`] in shared shards: a patch copies one) |
//! | analytics events | [`events::EventProcessor`]: summary, index (deduplicated), feature, experiment, debug, custom and identify events to `{events_uri}/bulk` as LaunchDarkly's SDKs send them (the `feature` crate's `LaunchDarklyEvents` sink feeds it); options in [`events::EventsConfig`]: events URI, capacity, flush interval, private attributes, application tags |
//! | bootstrap | [`bootstrap::all_flags_state`] (the JavaScript SDK's bootstrap object) and [`bootstrap::secure_mode_hash`] |
//! | enterprise networks | [`NetworkConfig`]: an HTTP proxy and extra root certificates (PEM), for flag data ([`LaunchDarklyBuilder::network`]) and events ([`events::EventsConfig::network`]) |
//!
//! The SDK key is sent in the `Authorization` header only; it is never logged and `Debug`
//! output redacts it.
//!
//! ## Start
//!
//! [`Provider::start`](feature_core::provider::Provider::start) returns once the first full
//! data set is published. A rejected key fails it at once. When LaunchDarkly cannot be
//! reached, the provider retries with backoff for [`LaunchDarklyBuilder::start_timeout`]
//! (default 5 s, below the client's own start timeout), then returns with the provider
//! `Unavailable` (evaluations serve the caller's defaults) and keeps trying in the background.
//!
//! ## Quick start
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature_core::provider::{Provider, Sink};
//! use feature_launchdarkly::{LaunchDarklyProvider, Mode};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let sdk_key = std::env::var("LAUNCHDARKLY_SDK_KEY")?;
//! let provider = LaunchDarklyProvider::builder(sdk_key)
//!     // Streaming is the default; polling suits hosts that cannot keep a connection open.
//!     .mode(Mode::Polling { interval: Duration::from_secs(60) })
//!     .build()?;
//!
//! // Normally the `feature` client starts the provider:
//! // `feature::Client::builder().provider(provider).build().await?`.
//! # fn sink() -> Arc<dyn Sink> { unimplemented!() }
//! provider.start(sink()).await?;
//! println!("{}", provider.status());
//! provider.close().await;
//! # Ok(()) }
//! ```
//!
//! ## Events
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature_core::Context;
//! use feature_launchdarkly::events::{EventProcessor, EventsConfig};
//! use feature_launchdarkly::LaunchDarklyProvider;
//!
//! let provider = LaunchDarklyProvider::builder("sdk-key").build()?;
//! let events = EventProcessor::start(
//!     "sdk-key",
//!     EventsConfig::default()
//!         .private_attributes(["email", "/address/city"])
//!         .application(Some("checkout".into()), Some("1.4.0".into())),
//!     provider.flag_metadata(),
//! )?;
//! events.custom(&Context::new("user-1"), "purchase", None, Some(42.5));
//! events.close().await; // sends what is queued
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod bootstrap;
mod data;
mod error;
pub mod events;
mod meta;
mod net;
mod provider;

pub use error::{BuildError, LaunchDarklyError};
pub use meta::{ClientSideAvailability, FlagEventMeta, FlagMetaMap, FlagMetadata};
pub use net::NetworkConfig;
pub use provider::{
    LaunchDarklyBuilder, LaunchDarklyProvider, Mode, DEFAULT_BASE_URI, DEFAULT_STREAM_URI,
    MIN_POLL_INTERVAL, NAME,
};
