//! Providers: where flags come from.
//!
//! A [`Provider`] (the engine's contract, re-exported here with [`Sink`], [`Engine`] and the
//! status types) either publishes compiled snapshots that the client evaluates in-process, or
//! hands the client an [`Engine`] that evaluates itself. Given to
//! [`ClientBuilder::provider`](crate::ClientBuilder::provider), or chosen by
//! [`Client::new`](crate::Client::new) from [`Config::provider`](crate::Config::provider)
//! (`FEATURE_PROVIDER`).
//!
//! - [`MemoryProvider`]: flags set from code (tests, demos, computed flags).
//! - [`FileProvider`]: a YAML or JSON file, reloaded when it changes.
//! - `postgres` (crate feature `postgres`, the `feature-postgres` crate): flags in a PostgreSQL
//!   table, live updates by LISTEN/NOTIFY, write API with audit log.
//! - `redis` (crate feature `redis`, the `feature-redis` crate): flags in a Redis hash, live
//!   updates by pub/sub; a read-through cache in front of PostgreSQL with both features.
//! - `sqlite` (crate feature `sqlite`, the `feature-sqlite` crate): flags in an SQLite file,
//!   the flag server's embedded store; writes of any process on the file seen within 200 ms.
//! - `launchdarkly` (crate feature `launchdarkly`, the `feature-launchdarkly` crate): flag data
//!   streamed or polled from LaunchDarkly, evaluated by this engine.
//! - `unleash` (crate feature `unleash`, the `feature-unleash` crate): toggles from an Unleash
//!   server, evaluated by Unleash's own engine (Yggdrasil).
//! - `relay` (crate feature `relay`, the `feature-relay` crate): a flag server's SDK stream
//!   (`featurectl serve`), so services need no store connection of their own.
//!
//! Write your own by implementing [`Provider`]: publish each new [`Snapshot`](crate::engine::Snapshot)
//! through the [`Sink`] given to [`Provider::start`].

mod file;
pub(crate) mod from_config;
pub mod key_files;
mod memory;

pub use feature_core::provider::{
    BoxError, Engine, Provider, ProviderError, ProviderState, ProviderStatus, Sink,
};
#[cfg(feature = "launchdarkly")]
pub use feature_launchdarkly as launchdarkly;
#[cfg(feature = "postgres")]
pub use feature_postgres as postgres;
#[cfg(feature = "redis")]
pub use feature_redis as redis;
#[cfg(feature = "relay")]
pub use feature_relay as relay;
#[cfg(feature = "sqlite")]
pub use feature_sqlite as sqlite;
#[cfg(feature = "unleash")]
pub use feature_unleash as unleash;
pub use file::FileProvider;
pub(crate) use from_config::from_config;
pub use memory::MemoryProvider;
