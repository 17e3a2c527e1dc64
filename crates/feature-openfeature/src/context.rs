//! OpenFeature's evaluation context → this toolkit's [`Context`].

use feature::Context;
use open_feature::{EvaluationContext, EvaluationContextFieldValue, EvaluationErrorCode};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Why an OpenFeature evaluation context cannot be read as a [`Context`]. The evaluation then
/// fails with [`ContextError::code`] and the caller's default is used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// A custom field holds a structure of a type this provider cannot read (see the crate
    /// docs for the types it reads).
    #[error("context field {field:?} holds a structure of an unsupported type")]
    UnsupportedStruct {
        /// The field (`a.b` inside nested structures).
        field: String,
    },
    /// A custom field holds a number that is not finite (JSON has no NaN or infinity).
    #[error("context field {field:?} holds a number that is not finite")]
    NotFinite {
        /// The field (`a.b` inside nested structures).
        field: String,
    },
    /// A date is outside the range of Unix milliseconds this toolkit compares.
    #[error("context field {field:?} holds a date out of range")]
    DateOutOfRange {
        /// The field (`a.b` inside nested structures).
        field: String,
    },
    /// The mapped context is invalid for this toolkit (a bad kind, a kind without a key, a
    /// malformed multi-kind context).
    #[error("invalid evaluation context")]
    Invalid(#[source] feature::engine::ContextError),
}

impl ContextError {
    /// The OpenFeature error code an evaluation with this context fails with:
    /// `TARGETING_KEY_MISSING` for a kind without a key, `INVALID_CONTEXT` otherwise.
    pub fn code(&self) -> EvaluationErrorCode {
        match self {
            ContextError::Invalid(feature::engine::ContextError::MissingKey(_)) => {
                EvaluationErrorCode::TargetingKeyMissing
            }
            _ => EvaluationErrorCode::InvalidContext,
        }
    }
}

/// Reads an OpenFeature evaluation context as a [`Context`] (the crate docs describe the
/// mapping and the multi-kind convention).
///
/// ```
/// use open_feature::EvaluationContext;
///
/// let ec = EvaluationContext::default()
///     .with_targeting_key("user-1")
///     .with_custom_field("plan", "pro");
/// let ctx = feature_openfeature::context_from(&ec).unwrap();
/// assert_eq!(ctx.key(), "user-1");
/// assert_eq!(ctx.get("plan"), Some(&serde_json::json!("pro")));
/// ```
pub fn context_from(ec: &EvaluationContext) -> Result<Context, ContextError> {
    let mut obj = Map::with_capacity(ec.custom_fields.len() + 1);
    for (name, value) in &ec.custom_fields {
        obj.insert(name.clone(), field_json(name, value)?);
    }
    let multi = matches!(obj.get("kind"), Some(Value::String(k)) if k == "multi");
    if multi {
        // One nested object per kind; each may name its key `targetingKey`, as at the top.
        for (kind, part) in obj.iter_mut() {
            if let (false, Value::Object(part)) = (kind == "kind", part) {
                lift_targeting_key(part);
            }
        }
    } else {
        match &ec.targeting_key {
            Some(key) => {
                obj.remove("targetingKey");
                obj.insert("key".to_owned(), Value::String(key.clone()));
            }
            None => lift_targeting_key(&mut obj),
        }
        // No key at all: an anonymous user (other kinds need a key: TARGETING_KEY_MISSING).
        if !obj.contains_key("key") && !obj.contains_key("kind") {
            obj.entry("anonymous").or_insert(Value::Bool(true));
        }
    }
    Context::from_json(&Value::Object(obj)).map_err(ContextError::Invalid)
}

/// Moves a string `targetingKey` to `key` when there is no `key`.
fn lift_targeting_key(obj: &mut Map<String, Value>) {
    if obj.contains_key("key") {
        return;
    }
    if let Some(Value::String(_)) = obj.get("targetingKey") {
        if let Some(k) = obj.remove("targetingKey") {
            obj.insert("key".to_owned(), k);
        }
    }
}

fn field_json(path: &str, value: &EvaluationContextFieldValue) -> Result<Value, ContextError> {
    Ok(match value {
        EvaluationContextFieldValue::Bool(b) => Value::Bool(*b),
        EvaluationContextFieldValue::Int(i) => Value::from(*i),
        EvaluationContextFieldValue::Float(f) => finite(path, *f)?,
        EvaluationContextFieldValue::String(s) => Value::String(s.clone()),
        EvaluationContextFieldValue::DateTime(t) => {
            let millis = t.unix_timestamp_nanos() / 1_000_000;
            let millis = i64::try_from(millis).map_err(|_| ContextError::DateOutOfRange {
                field: path.to_owned(),
            })?;
            Value::from(millis)
        }
        EvaluationContextFieldValue::Struct(any) => struct_json(path, any)?,
    })
}

/// The structure types read: JSON values and objects, OpenFeature's `StructValue` and
/// `Value`, and maps of context field values.
fn struct_json(
    path: &str,
    any: &Arc<dyn std::any::Any + Send + Sync>,
) -> Result<Value, ContextError> {
    if let Some(v) = any.downcast_ref::<Value>() {
        return Ok(v.clone());
    }
    if let Some(m) = any.downcast_ref::<Map<String, Value>>() {
        return Ok(Value::Object(m.clone()));
    }
    if let Some(s) = any.downcast_ref::<open_feature::StructValue>() {
        return of_struct_json(path, s);
    }
    if let Some(v) = any.downcast_ref::<open_feature::Value>() {
        return of_value_json(path, v);
    }
    if let Some(m) = any.downcast_ref::<HashMap<String, EvaluationContextFieldValue>>() {
        let mut out = Map::with_capacity(m.len());
        for (k, v) in m {
            out.insert(k.clone(), field_json(&format!("{path}.{k}"), v)?);
        }
        return Ok(Value::Object(out));
    }
    Err(ContextError::UnsupportedStruct {
        field: path.to_owned(),
    })
}

fn of_struct_json(path: &str, s: &open_feature::StructValue) -> Result<Value, ContextError> {
    let mut out = Map::with_capacity(s.fields.len());
    for (k, v) in &s.fields {
        out.insert(k.clone(), of_value_json(&format!("{path}.{k}"), v)?);
    }
    Ok(Value::Object(out))
}

fn of_value_json(path: &str, v: &open_feature::Value) -> Result<Value, ContextError> {
    Ok(match v {
        open_feature::Value::Bool(b) => Value::Bool(*b),
        open_feature::Value::Int(i) => Value::from(*i),
        open_feature::Value::Float(f) => finite(path, *f)?,
        open_feature::Value::String(s) => Value::String(s.clone()),
        open_feature::Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| of_value_json(path, x))
                .collect::<Result<_, _>>()?,
        ),
        open_feature::Value::Struct(s) => of_struct_json(path, s)?,
    })
}

fn finite(path: &str, f: f64) -> Result<Value, ContextError> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| ContextError::NotFinite {
            field: path.to_owned(),
        })
}
