//! # feature-openfeature
//!
//! An [OpenFeature](https://openfeature.dev/) provider over [`feature::Client`]: applications
//! written against OpenFeature's Rust SDK (the `open-feature` crate) evaluate this toolkit's
//! flags in-process, with no network call per evaluation: the client's snapshot, overrides,
//! metrics and analytics events apply as to any other evaluation.
//!
//! ## Quick start
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature::{Client, Flag, MemoryProvider};
//! use feature_openfeature::OpenFeatureProvider;
//! use open_feature::{EvaluationContext, OpenFeature};
//!
//! let flags = MemoryProvider::new();
//! flags.set_flag(Flag::boolean("new-dashboard", true));
//! let client = Client::builder().provider(flags).build().await?;
//!
//! let mut api = OpenFeature::singleton_mut().await;
//! api.set_provider(OpenFeatureProvider::new(client)).await;
//! let of = api.create_client();
//! drop(api);
//!
//! let user = EvaluationContext::default()
//!     .with_targeting_key("user-123")
//!     .with_custom_field("plan", "pro");
//! let on = of.get_bool_value("new-dashboard", Some(&user), None).await.unwrap_or(false);
//! assert!(on);
//! // Errors carry OpenFeature's codes; the caller's default is `unwrap_or`'s argument.
//! let missing = of.get_bool_details("no-such-flag", Some(&user), None).await;
//! assert_eq!(missing.unwrap_err().code, open_feature::EvaluationErrorCode::FlagNotFound);
//! # Ok(()) }
//! ```
//!
//! ## Resolution
//!
//! - **Types**: bool, int (an integer, or a number with its fraction truncated toward zero,
//!   as [`feature::Client::int`] reads it), float, string, and struct (a JSON object; fields
//!   holding `null` are left out, since OpenFeature's values have no null). A value of
//!   another type fails with `TYPE_MISMATCH`.
//! - **Reasons** ([`reason_for`]): `OFF` → `DISABLED`, `TARGET_MATCH` → `TARGETING_MATCH`,
//!   `RULE_MATCH` → `TARGETING_MATCH` (`SPLIT` for a rollout), `FALLTHROUGH` → `DEFAULT`
//!   (`SPLIT` for a rollout or weighted variants, `STATIC` for a flag without targeting),
//!   `PREREQUISITE_FAILED` → `DEFAULT`, `OVERRIDE` → `STATIC`.
//! - **Errors** ([`error_code`]): `FLAG_NOT_FOUND` → `FLAG_NOT_FOUND`, `MALFORMED_FLAG` →
//!   `PARSE_ERROR`, `WRONG_TYPE` → `TYPE_MISMATCH`, `CLIENT_NOT_READY` → `PROVIDER_NOT_READY`,
//!   `USER_NOT_SPECIFIED` → `INVALID_CONTEXT`, `EXCEPTION` → `GENERAL`. OpenFeature's Rust SDK
//!   gives providers no default value, so an error is returned as the evaluation's `Err` and
//!   the application supplies its default (`unwrap_or(default)`). A flag that serves nothing
//!   (off, or no match, with no value defined for the case: this toolkit would serve the
//!   caller's default) fails with `GENERAL` code `DEFAULT_NOT_DEFINED`, its message naming the
//!   reason.
//! - **Variant**: the name of the variation served (`variants[].name`), when it has one.
//! - **Flag metadata** ([`metadata_for`]): `reasonKind` (this toolkit's reason), and where they
//!   apply `variationIndex`, `ruleIndex`, `ruleId`, `inExperiment`, `prerequisiteKey`,
//!   `version`.
//! - **Provider status** ([`status_for`]): the client's provider state: `starting` →
//!   `NOT_READY`, `ready` → `READY`, `degraded` → `STALE`, `unavailable` → `ERROR`, `closed` →
//!   `NOT_READY`; and `NOT_READY` while the client serves no flags (an offline client).
//!
//! ## Evaluation context
//!
//! [`context_from`] reads OpenFeature's evaluation context as a [`feature::Context`] in the JSON
//! shape [`feature::Context::from_json`] reads (LaunchDarkly's contexts):
//!
//! - `targeting_key` → the context's `key`. Without one, a custom field `targetingKey` (or
//!   `key`) is used; without any, the context is an **anonymous user with an empty key**: flags
//!   without per-user targeting still evaluate, and every such context falls in the same
//!   rollout bucket. A context of another kind (or of an explicit `kind: "user"`) without a key
//!   fails with `TARGETING_KEY_MISSING`.
//! - Custom fields → attributes, under the same names (`name`, `email`, `country`, `groups`,
//!   `anonymous` and the rest, as in this toolkit's contexts). Dates become Unix milliseconds
//!   (what the `before`/`after` operators compare). Structures become JSON objects: the field
//!   may hold a `serde_json::Value`, a `serde_json::Map`, an `open_feature::StructValue` or
//!   `open_feature::Value`, or a `HashMap<String, EvaluationContextFieldValue>`; another type
//!   fails with `INVALID_CONTEXT` rather than being dropped silently.
//! - **Kinds**: a custom field `kind` names the context's kind (`"org"`, `"device"`).
//!   **Multi-kind**: `kind` = `"multi"` and one structure per kind, under the kind's name, each
//!   with its own `key` (or `targetingKey`) and attributes; the top-level `targeting_key` is not
//!   used then.
//!
//! ```
//! use open_feature::{EvaluationContext, EvaluationContextFieldValue};
//! use serde_json::json;
//!
//! let ec = EvaluationContext::default()
//!     .with_custom_field("kind", "multi")
//!     .with_custom_field("user", EvaluationContextFieldValue::new_struct(json!({"targetingKey": "u-1", "plan": "pro"})))
//!     .with_custom_field("org", EvaluationContextFieldValue::new_struct(json!({"key": "acme", "tier": "gold"})));
//! let ctx = feature_openfeature::context_from(&ec).unwrap();
//! assert_eq!(ctx.kind(), "multi");
//! assert_eq!(ctx.key_of("user"), Some("u-1"));
//! assert_eq!(ctx.key_of("org"), Some("acme"));
//! ```
//!
//! ## What OpenFeature's Rust SDK lacks
//!
//! The `open-feature` crate (0.3) has no tracking API and no provider events (no
//! `PROVIDER_READY` / `PROVIDER_CONFIGURATION_CHANGED` handlers), and the provider's `status()`
//! is not consulted by the SDK before it evaluates. With this provider: record tracking events
//! with [`feature::Client::track`] on the client passed in ([`OpenFeatureProvider::client`]);
//! watch flag changes with [`feature::Client::subscribe`]; evaluations before the provider has
//! delivered flags fail with `PROVIDER_NOT_READY` on their own. `initialize` does nothing: the
//! client is built (and its first flags loaded) before it is handed to OpenFeature.
#![deny(missing_docs)]

mod context;
mod resolve;

pub use context::{context_from, ContextError};
pub use resolve::{error_code, metadata_for, reason_for, status_for};

use feature::{Client, Evaluation, ValueKind};
use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{EvaluationContext, EvaluationErrorCode, EvaluationResult, StructValue};
use serde_json::Value;

/// The name this provider reports in OpenFeature's provider metadata.
pub const PROVIDER_NAME: &str = "feature";

/// An OpenFeature provider that evaluates flags with a [`feature::Client`], in-process.
#[derive(Debug, Clone)]
pub struct OpenFeatureProvider {
    client: Client,
    metadata: ProviderMetadata,
}

impl OpenFeatureProvider {
    /// A provider evaluating with `client` (cloning a client shares it).
    pub fn new(client: Client) -> Self {
        OpenFeatureProvider {
            client,
            metadata: ProviderMetadata::new(PROVIDER_NAME),
        }
    }

    /// The client evaluations go to (for tracking, subscriptions, overrides, closing).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Evaluates `key` for `ec`, reading the value with `extract`.
    fn resolve<T>(
        &self,
        key: &str,
        ec: &EvaluationContext,
        kind: ValueKind,
        extract: impl FnOnce(&Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let ctx = context_from(ec).map_err(|e| {
            let message = match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            };
            resolve::error(e.code(), message)
        })?;
        let eval = self.client.variation_with(&ctx, key, kind, Value::Null);
        if let Some(kind) = eval.error_kind() {
            return Err(resolve::error(
                error_code(kind),
                format!("flag {key:?}: {kind}"),
            ));
        }
        let Some(value) = extract(&eval.value) else {
            return Err(not_served(&eval));
        };
        // The flag's definition, for what the evaluation does not say (a rollout or a fixed
        // variation; targeting or none; the version).
        let snapshot = self.client.snapshot();
        let flag = snapshot.document().flags.get(key).map(|f| &**f);
        let reason = reason_for(&eval, flag);
        let flag_metadata = metadata_for(&eval, flag);
        Ok(ResolutionDetails {
            value,
            variant: eval.variation_name,
            reason: Some(reason),
            flag_metadata: Some(flag_metadata),
        })
    }
}

/// The error of a successful evaluation whose value cannot be returned: nothing served, or a
/// value OpenFeature's type cannot hold.
fn not_served(eval: &Evaluation) -> open_feature::EvaluationError {
    if eval.value.is_null() {
        resolve::error(
            EvaluationErrorCode::General("DEFAULT_NOT_DEFINED".to_owned()),
            format!(
                "flag {:?} serves the caller's default (reason {})",
                eval.key,
                eval.reason.kind()
            ),
        )
    } else {
        resolve::error(
            EvaluationErrorCode::TypeMismatch,
            format!(
                "flag {:?} serves a value of another type than asked for",
                eval.key
            ),
        )
    }
}

#[async_trait::async_trait]
impl FeatureProvider for OpenFeatureProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    /// The provider state's status ([`status_for`]); `NOT_READY` whatever the state while the
    /// client serves no flags (an offline client).
    fn status(&self) -> ProviderStatus {
        match status_for(self.client.provider_status().state) {
            ProviderStatus::Ready | ProviderStatus::STALE if !self.client.is_ready() => {
                ProviderStatus::NotReady
            }
            status => status,
        }
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(
            flag_key,
            evaluation_context,
            ValueKind::Bool,
            Value::as_bool,
        )
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(
            flag_key,
            evaluation_context,
            ValueKind::Int,
            resolve::as_int,
        )
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(
            flag_key,
            evaluation_context,
            ValueKind::Float,
            Value::as_f64,
        )
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(flag_key, evaluation_context, ValueKind::String, |v| {
            v.as_str().map(str::to_owned)
        })
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve(
            flag_key,
            evaluation_context,
            ValueKind::Any,
            resolve::as_struct,
        )
    }
}
