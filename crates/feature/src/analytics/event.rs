//! [`AnalyticsEvent`]: what the pipeline hands to exporters, one evaluation or custom event.

use chrono::{DateTime, Utc};
use feature_core::ReasonKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::sync::Arc;

/// What an [`AnalyticsEvent`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A flag evaluation.
    Evaluation,
    /// A custom event (`client.track`).
    Custom,
}

/// One analytics event (an evaluation or a custom event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsEvent {
    /// A unique id (a UUIDv7, so ids sort by time), given by the pipeline when the event is
    /// made. A receiver drops an event whose id it has already seen: deliveries retried after a
    /// timeout (webhook) or a lost acknowledgement (Kafka) can arrive twice. Empty when unknown.
    #[serde(default)]
    pub id: String,
    /// Evaluation or custom.
    pub kind: EventKind,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// The flag evaluated (empty for custom events).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub flag_key: String,
    /// The context's key.
    pub user_key: String,
    /// The value served (`null` for custom events).
    #[serde(default)]
    pub value: Value,
    /// The variation served (`null` when the caller's default was served).
    #[serde(default)]
    pub variation_idx: Option<usize>,
    /// Why (`OFF`, `RULE_MATCH`, ...; absent for custom events).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_reason",
        deserialize_with = "de_reason"
    )]
    pub reason: Option<ReasonKind>,
    /// The rule that matched, when it has an id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// Whether the context is in an experiment (an exposure).
    #[serde(default)]
    pub in_experiment: bool,
    /// The context's attributes, private ones removed (see [`Redaction`](super::Redaction)); shared by the
    /// events of one context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Arc<Map<String, Value>>>,
    /// The custom event's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The custom event's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The custom event's metric value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_value: Option<f64>,
}

/// A new event id: a UUIDv7 (time-ordered, 74 random bits), as text.
pub(crate) fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What a custom event carries besides its name (see [`Client::track`](crate::Client::track)):
/// free-form data and a numeric metric value (a revenue, a latency) for experiments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackData {
    /// Free-form data.
    pub data: Option<Value>,
    /// A numeric value of the event, for metrics that sum or average it.
    pub metric_value: Option<f64>,
}

impl TrackData {
    /// An event with this data.
    pub fn data(data: impl Into<Value>) -> TrackData {
        TrackData {
            data: Some(data.into()),
            metric_value: None,
        }
    }

    /// An event with this metric value.
    pub fn metric(value: f64) -> TrackData {
        TrackData {
            data: None,
            metric_value: Some(value),
        }
    }

    /// Adds data.
    pub fn with_data(mut self, data: impl Into<Value>) -> TrackData {
        self.data = Some(data.into());
        self
    }

    /// Adds a metric value.
    pub fn with_metric(mut self, value: f64) -> TrackData {
        self.metric_value = Some(value);
        self
    }
}

impl From<()> for TrackData {
    fn from((): ()) -> TrackData {
        TrackData::default()
    }
}

impl From<Value> for TrackData {
    fn from(data: Value) -> TrackData {
        TrackData::data(data)
    }
}

impl From<Option<Value>> for TrackData {
    fn from(data: Option<Value>) -> TrackData {
        TrackData {
            data,
            metric_value: None,
        }
    }
}

fn ser_reason<S: Serializer>(r: &Option<ReasonKind>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.serialize_str(r.as_str()),
        None => s.serialize_none(),
    }
}

fn de_reason<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ReasonKind>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    let Some(s) = s else { return Ok(None) };
    Ok(Some(match s.as_str() {
        "OFF" => ReasonKind::Off,
        "TARGET_MATCH" => ReasonKind::TargetMatch,
        "RULE_MATCH" => ReasonKind::RuleMatch,
        "FALLTHROUGH" => ReasonKind::Fallthrough,
        "PREREQUISITE_FAILED" => ReasonKind::PrerequisiteFailed,
        "OVERRIDE" => ReasonKind::Override,
        "ERROR" => ReasonKind::Error,
        other => {
            return Err(serde::de::Error::custom(format!(
                "unknown reason {other:?}"
            )));
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluation_event_has_the_documented_field_names() {
        let e = AnalyticsEvent {
            id: "0190163d-8694-739b-aea5-966c26f8ad91".into(),
            kind: EventKind::Evaluation,
            timestamp: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            flag_key: "new-checkout".into(),
            user_key: "user-1".into(),
            value: json!(true),
            variation_idx: Some(1),
            reason: Some(ReasonKind::RuleMatch),
            rule_id: Some("beta".into()),
            in_experiment: true,
            context: Some(Arc::new(Map::from_iter([(
                "plan".to_owned(),
                json!("pro"),
            )]))),
            event: None,
            data: None,
            metric_value: None,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({"id": "0190163d-8694-739b-aea5-966c26f8ad91", "kind": "evaluation", "timestamp": "2023-11-14T22:13:20Z", "flag_key": "new-checkout",
                   "user_key": "user-1", "value": true, "variation_idx": 1, "reason": "RULE_MATCH",
                   "rule_id": "beta", "in_experiment": true, "context": {"plan": "pro"}})
        );
        let back: AnalyticsEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
