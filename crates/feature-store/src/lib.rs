//! # feature-store
//!
//! What the store providers of the `feature` toolkit (`feature-postgres`, `feature-redis`)
//! share, so that both behave the same and neither depends on the other:
//!
//! | item | what it is for |
//! |---|---|
//! | [`SyncProvider`], [`Source`] | the provider engine: start with a timeout, fall back to disk, follow change notices, reconnect with [`Backoff`] and reload fully |
//! | [`sync_option_setters!`] | the builder methods that set a provider's [`SyncOptions`] (`start_timeout`, `backoff`, `snapshot_path`, ...) |
//! | [`FlagStore`] | the write API (create / update / delete / enable / disable, segments, history), each change made by a named actor and audited |
//! | [`diff`], [`push`] | synchronising a flag document into any [`FlagStore`] |
//! | [`Rows`] | stored rows → snapshot, skipping (and reporting by key) rows that cannot be used |
//! | [`disk`] | the last-snapshot and bootstrap files used when the store is down at start |
//! | [`spawn_supervised`] | background loops whose unexpected end (panic, return) turns the provider `Unavailable` with the reason |
//! | [`sse`] | an incremental parser of server-sent events, for the streaming providers |
//! | [`stream`] | the wire format of the flag server's SDK endpoints (`put`, `patch`, `delete`), shared by the server and the relay provider |
//! | [`tokens`] | API tokens of the flag server: minting, checking, and the [`tokens::TokenStore`] the stores implement |
//! | [`testing`] | a recording sink and counting metrics, for testing providers against real stores |
//!
//! This crate has no crate features and no I/O dependency besides the file system and tokio
//! timers; applications normally reach it through `feature::postgres` / `feature::redis`.
//!
//! ## Example: computing what a push would change
//!
//! ```
//! use feature_core::{parse_document, Format};
//! use feature_store::{diff, ItemKind, Row};
//! use serde_json::json;
//!
//! // What the store holds ...
//! let stored = vec![Row {
//!     kind: ItemKind::Flag,
//!     key: "new-checkout".into(),
//!     definition: json!({"type": "bool", "default": false}),
//!     version: 3,
//!     updated_at: None,
//!     updated_by: Some("alice".into()),
//! }];
//! // ... and what the file says.
//! let file = "flags:\n  new-checkout: {type: bool, default: true}\n  theme: {default: dark}\n";
//! let doc = parse_document(file, Format::Yaml)?.document;
//! let changes: Vec<String> = diff(&stored, &doc, true).iter().map(ToString::to_string).collect();
//! assert_eq!(changes, ["~ flag new-checkout (v3): default", "+ flag theme"]);
//! # Ok::<(), feature_core::ParseError>(())
//! ```
#![deny(missing_docs)]

mod backoff;
mod builder;
pub mod disk;
mod push;
mod rows;
pub mod sse;
pub mod stream;
mod sync;
mod task;
pub mod testing;
pub mod tokens;
mod write;

pub use backoff::Backoff;
pub use push::{diff, push, Change, ChangeOp, PushError, PushOptions};
pub use rows::{
    flag_definition, flag_from_row, segment_definition, segment_from_row, Built, ItemKind, Row,
    Rows,
};
pub use sync::{Event, Loaded, Notice, Source, SyncOptions, SyncOptionsError, SyncProvider};
pub use task::{mark_task_died, panic_message, spawn_supervised, Supervised, TaskError};
pub use write::{
    check_name, checked_batch, checked_definition, now_rfc3339, validate_flag, validate_segment,
    Action, BatchError, FlagStore, HistoryEntry, IfMissing, WriteError, Written, MAX_NAME_LEN,
};
