//! # feature-relay
//!
//! The relay provider of the `feature` toolkit: a service follows a flag server's SDK stream
//! (`featurectl serve`, `GET /sdk/v1/stream`) instead of connecting to the flag store itself,
//! so one store feeds a few servers and the servers feed the fleet.
//!
//! | item | what it is for |
//! |---|---|
//! | [`RelayProvider`], [`RelayBuilder`] | the provider: the whole state on connect, then each change; start timeout, last good flags on disk, bootstrap file, `Degraded` while disconnected, reconnect with capped backoff and jitter, full resync on reconnect, versions ordered, a refused token stops it |
//! | [`RelayError`] | what building or running it can fail with |
//!
//! The wire format is [`feature_store::stream`]. Evaluations never touch the network: they
//! read the last snapshot published, like every provider's.
//!
//! ## Quick start
//!
//! ```no_run
//! use feature_relay::RelayProvider;
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = RelayProvider::builder("https://flags.internal.example")
//!     .token(std::env::var("FEATURE_TOKEN")?)
//!     .snapshot_path("/var/cache/app/flags.json")
//!     .start_timeout(Duration::from_secs(3))
//!     .build()?;
//! // Hand it to a client: feature::Client::builder().provider(provider).build().await
//! # let _ = provider;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod error;
mod provider;

pub use error::RelayError;
pub use provider::{RelayBuilder, RelayProvider};
