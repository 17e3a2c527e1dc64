//! Evaluating by a [`FlagKey`]: the flag's position in the snapshot is remembered in the key, so
//! a read skips hashing the key and probing the key table while the snapshot is unchanged.
//!
//! ```no_run
//! use feature::{Client, Context, FlagKey};
//!
//! static NEW_CHECKOUT: FlagKey = FlagKey::new("new-checkout");
//!
//! fn handle(client: &Client, user: &Context) {
//!     if client.flag(&NEW_CHECKOUT).bool(user, false) {
//!         // the new checkout
//!     }
//! }
//! ```
//!
//! Every accessor answers what the same accessor of [`Client`] answers with the key's string:
//! overrides, readiness, events, metrics and hooks are the same.

use super::Client;
use feature_core::{Context, Detail, Evaluation, FlagKey, Snapshot, ValueKind};

/// How the typed accessors find their flag in a snapshot: by its key's string, or by a
/// [`FlagKey`] that remembers where it found it.
pub(super) trait Locate {
    /// The key, for overrides, events and the detailed path.
    fn key(&self) -> &str;
    /// The flag's evaluation in `snapshot`.
    fn evaluate<'s>(&self, snapshot: &'s Snapshot, ctx: &Context) -> Detail<'s>;
}

impl Locate for str {
    #[inline(always)]
    fn key(&self) -> &str {
        self
    }

    #[inline(always)]
    fn evaluate<'s>(&self, snapshot: &'s Snapshot, ctx: &Context) -> Detail<'s> {
        snapshot.evaluate(self, ctx)
    }
}

impl Locate for FlagKey {
    #[inline(always)]
    fn key(&self) -> &str {
        self.as_str()
    }

    #[inline(always)]
    fn evaluate<'s>(&self, snapshot: &'s Snapshot, ctx: &Context) -> Detail<'s> {
        snapshot.evaluate_key(self, ctx)
    }
}

/// The accessors of one flag, by a [`FlagKey`]: made by [`Client::flag`].
#[derive(Debug, Clone, Copy)]
pub struct KeyedFlag<'c> {
    client: &'c Client,
    key: &'c FlagKey,
}

impl Client {
    /// The accessors of the flag `key` names. Declare the keys read on hot paths once (a
    /// `static` [`FlagKey`]): an evaluation by key remembers the flag's position in the
    /// snapshot and reads it back until the flags change. See the `keyed` module example.
    #[inline]
    pub fn flag<'c>(&'c self, key: &'c FlagKey) -> KeyedFlag<'c> {
        KeyedFlag { client: self, key }
    }
}

impl KeyedFlag<'_> {
    /// Evaluates the flag as a boolean ([`Client::bool`]).
    #[inline]
    pub fn bool(self, ctx: &Context, default: bool) -> bool {
        self.client
            .typed(
                ctx,
                self.key,
                ValueKind::Bool,
                serde_json::Value::as_bool,
                || serde_json::Value::Bool(default),
            )
            .unwrap_or(default)
    }

    /// Evaluates the flag as a string ([`Client::string`]).
    #[inline]
    pub fn string(self, ctx: &Context, default: &str) -> String {
        self.client
            .typed(
                ctx,
                self.key,
                ValueKind::String,
                |v| v.as_str().map(str::to_owned),
                || serde_json::Value::String(default.to_owned()),
            )
            .unwrap_or_else(|| default.to_owned())
    }

    /// Evaluates the flag as an integer ([`Client::int`]).
    #[inline]
    pub fn int(self, ctx: &Context, default: i64) -> i64 {
        self.client
            .typed(ctx, self.key, ValueKind::Int, super::as_int, || {
                serde_json::Value::from(default)
            })
            .unwrap_or(default)
    }

    /// Evaluates the flag as a number ([`Client::float`]).
    #[inline]
    pub fn float(self, ctx: &Context, default: f64) -> f64 {
        self.client
            .typed(
                ctx,
                self.key,
                ValueKind::Float,
                serde_json::Value::as_f64,
                || serde_json::Value::from(default),
            )
            .unwrap_or(default)
    }

    /// Evaluates the flag with every detail ([`Client::variation`]).
    pub fn variation(self, ctx: &Context) -> Evaluation {
        self.client.variation(ctx, self.key.as_str())
    }
}
