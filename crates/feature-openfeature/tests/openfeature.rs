//! The provider through OpenFeature's own client API: values of each type, reasons, error codes
//! (the application's default is used on error), variants, flag metadata, context mapping and
//! provider status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::engine::{parse_document, Format};
use feature::{Client, FileProvider, MemoryProvider};
use feature_openfeature::{OpenFeatureProvider, PROVIDER_NAME};
use open_feature::provider::{FeatureProvider, ProviderStatus};
use open_feature::{
    Client as OfClient, EvaluationContext, EvaluationContextFieldValue, EvaluationErrorCode,
    EvaluationReason, FlagMetadataValue, OpenFeature, StructValue, Value as OfValue,
};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

const FLAGS: &str = r#"
flags:
  dark-mode:
    type: bool
    version: 7
    variants:
      - {name: dark-off, value: false}
      - {name: dark-on, value: true}
    targets:
      - {variation: 1, values: [vip-1]}
    rules:
      - id: pro-plan
        clauses: [{attribute: plan, operator: eq, values: [pro]}]
        variation: 1
      - id: gold-org
        clauses: [{contextKind: org, attribute: tier, operator: eq, values: [gold]}]
        variation: 1
      - id: nested-beta
        clauses: [{attribute: /settings/beta, operator: eq, values: [true]}]
        variation: 1
      - id: signed-up-before-2020
        clauses: [{attribute: signedUp, operator: before, values: ["2020-01-01T00:00:00Z"]}]
        variation: 1
    fallthrough: {variation: 0}
  always-on:
    type: bool
    default: true
  max-items:
    type: int
    variants:
      - {name: small, value: 10}
      - {name: large, value: 100}
    rules:
      - clauses: [{attribute: plan, operator: eq, values: [pro]}]
        variation: 1
    fallthrough: {variation: 0}
  ratio:
    type: float
    default: 0.25
  greeting:
    type: string
    variants:
      - {name: hello, value: hello}
      - {name: hi, value: hi}
    fallthrough:
      rollout:
        variations:
          - {variation: 0, weight: 50000}
          - {variation: 1, weight: 50000}
  limits:
    type: json
    variants:
      - name: standard
        value: {rpm: 60, burst: 1.5, tags: [a, b], nested: {on: true}, gone: null}
    fallthrough: {variation: 0}
  list-value:
    type: json
    default: [1, null]
  kill-switch:
    type: bool
    enabled: false
    offVariation: 0
    variants:
      - {name: killed, value: false}
      - {name: live, value: true}
  off-without-value:
    type: bool
    enabled: false
  needs-kill-switch:
    type: bool
    prerequisites:
      - {key: kill-switch, variation: 1}
    offVariation: 0
    fallthrough: {variation: 1}
  broken:
    type: string
    variants: [{value: a}, {value: b}]
    fallthrough: {variation: 9}
"#;

async fn feature_client() -> Client {
    let parsed = parse_document(FLAGS, Format::Yaml).unwrap();
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    Client::builder()
        .provider(MemoryProvider::with_document(parsed.document))
        .build()
        .await
        .unwrap()
}

/// An OpenFeature client bound (by name, so tests can run in parallel) to our provider.
async fn of_client(name: &str, client: Client) -> OfClient {
    let mut api = OpenFeature::singleton_mut().await;
    api.set_named_provider(name, OpenFeatureProvider::new(client))
        .await;
    api.create_named_client(name)
}

fn user(key: &str) -> EvaluationContext {
    EvaluationContext::default().with_targeting_key(key)
}

fn meta(d: &open_feature::FlagMetadata, key: &str) -> Option<FlagMetadataValue> {
    d.values.get(key).cloned()
}

#[tokio::test]
async fn default_provider_through_the_singleton() {
    // The one test that sets the global default provider.
    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(OpenFeatureProvider::new(feature_client().await))
        .await;
    assert_eq!(api.provider_metadata().await.name, PROVIDER_NAME);
    let of = api.create_client();
    drop(api);
    let pro = user("u-1").with_custom_field("plan", "pro");
    assert!(of
        .get_bool_value("dark-mode", Some(&pro), None)
        .await
        .unwrap());
    assert!(!of
        .get_bool_value("dark-mode", Some(&user("u-2")), None)
        .await
        .unwrap());
}

#[tokio::test]
async fn each_type_resolves_with_variant_reason_and_metadata() {
    let of = of_client("types", feature_client().await).await;
    let pro = user("u-1").with_custom_field("plan", "pro");

    let b = of
        .get_bool_details("dark-mode", Some(&pro), None)
        .await
        .unwrap();
    assert!(b.value);
    assert_eq!(b.variant.as_deref(), Some("dark-on"));
    assert_eq!(b.reason, Some(EvaluationReason::TargetingMatch));
    let m = &b.flag_metadata;
    assert_eq!(meta(m, "reasonKind"), Some("RULE_MATCH".into()));
    assert_eq!(meta(m, "ruleIndex"), Some(FlagMetadataValue::Int(0)));
    assert_eq!(meta(m, "ruleId"), Some("pro-plan".into()));
    assert_eq!(meta(m, "variationIndex"), Some(FlagMetadataValue::Int(1)));
    assert_eq!(meta(m, "version"), Some(FlagMetadataValue::Int(7)));

    let i = of
        .get_int_details("max-items", Some(&pro), None)
        .await
        .unwrap();
    assert_eq!((i.value, i.variant.as_deref()), (100, Some("large")));
    let i = of
        .get_int_value("max-items", Some(&user("u-2")), None)
        .await;
    assert_eq!(i.unwrap(), 10);

    let f = of
        .get_float_details("ratio", Some(&pro), None)
        .await
        .unwrap();
    assert_eq!(f.value, 0.25);
    assert_eq!(f.reason, Some(EvaluationReason::Static));

    let s = of
        .get_string_details("greeting", Some(&pro), None)
        .await
        .unwrap();
    assert!(s.value == "hello" || s.value == "hi", "{}", s.value);
    assert_eq!(s.variant.as_deref(), Some(s.value.as_str()));
    assert_eq!(s.reason, Some(EvaluationReason::Split));

    let o = of
        .get_struct_details::<StructValue>("limits", Some(&pro), None)
        .await
        .unwrap();
    let expected = StructValue::default()
        .with_field("rpm", 60)
        .with_field("burst", 1.5)
        .with_field(
            "tags",
            OfValue::Array(vec![
                OfValue::String("a".into()),
                OfValue::String("b".into()),
            ]),
        )
        .with_field("nested", StructValue::default().with_field("on", true));
    assert_eq!(o.value, expected, "a null field is left out");
    assert_eq!(o.variant.as_deref(), Some("standard"));
    // No targeting: one variation for everybody.
    assert_eq!(o.reason, Some(EvaluationReason::Static));
}

#[tokio::test]
async fn reasons_map_to_openfeature_reasons() {
    let of = of_client("reasons", feature_client().await).await;
    let u = user("u-2");
    let reason = |d: open_feature::EvaluationDetails<bool>| (d.value, d.reason);

    // Individually targeted.
    let d = of
        .get_bool_details("dark-mode", Some(&user("vip-1")), None)
        .await;
    assert_eq!(
        reason(d.unwrap()),
        (true, Some(EvaluationReason::TargetingMatch))
    );
    // Targeting present, nothing matched: the flag's fallthrough.
    let d = of
        .get_bool_details("dark-mode", Some(&u), None)
        .await
        .unwrap();
    assert_eq!(
        d.flag_metadata.values.get("reasonKind"),
        Some(&"FALLTHROUGH".into())
    );
    assert_eq!(reason(d), (false, Some(EvaluationReason::Default)));
    // No targeting at all.
    let d = of.get_bool_details("always-on", Some(&u), None).await;
    assert_eq!(reason(d.unwrap()), (true, Some(EvaluationReason::Static)));
    // Off.
    let d = of
        .get_bool_details("kill-switch", Some(&u), None)
        .await
        .unwrap();
    assert_eq!(d.variant.as_deref(), Some("killed"));
    assert_eq!(reason(d), (false, Some(EvaluationReason::Disabled)));
    // A prerequisite not met: the flag's off value, the prerequisite in the metadata.
    let d = of
        .get_bool_details("needs-kill-switch", Some(&u), None)
        .await
        .unwrap();
    assert_eq!(
        d.flag_metadata.values.get("prerequisiteKey"),
        Some(&"kill-switch".into())
    );
    assert_eq!(reason(d), (false, Some(EvaluationReason::Default)));
}

#[tokio::test]
async fn local_override_is_static() {
    let client = feature_client().await;
    client.set_override("dark-mode", true);
    let of = of_client("override", client).await;
    let d = of
        .get_bool_details("dark-mode", Some(&user("u-2")), None)
        .await
        .unwrap();
    assert_eq!((d.value, d.reason), (true, Some(EvaluationReason::Static)));
    assert_eq!(
        d.flag_metadata.values.get("reasonKind"),
        Some(&"OVERRIDE".into())
    );
}

#[tokio::test]
async fn errors_carry_openfeature_codes_and_the_caller_default_is_used() {
    let of = of_client("errors", feature_client().await).await;
    let u = user("u-1");
    let code = |e: open_feature::EvaluationError| e.code;

    let e = of.get_bool_value("no-such-flag", Some(&u), None).await;
    assert_eq!(code(e.unwrap_err()), EvaluationErrorCode::FlagNotFound);
    // The application's default, as OpenFeature's Rust API has it.
    let v = of.get_bool_value("no-such-flag", Some(&u), None).await;
    assert!(v.unwrap_or(true));
    let v = of.get_string_value("no-such-flag", Some(&u), None).await;
    assert_eq!(v.unwrap_or_else(|_| "fallback".into()), "fallback");

    // A string flag read as a bool, a bool flag read as an int, a list read as a structure.
    let e = of
        .get_bool_value("greeting", Some(&u), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    let e = of
        .get_int_value("dark-mode", Some(&u), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    let e = of
        .get_struct_value::<StructValue>("list-value", Some(&u), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TypeMismatch);
    assert_eq!(
        of.get_int_value("max-items", Some(&u), None)
            .await
            .unwrap_or(-1),
        10
    );

    // A flag whose fallthrough names a variation that does not exist.
    let e = of
        .get_string_value("broken", Some(&u), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::ParseError);

    // Off, with no value for that case: the application's default.
    let e = of
        .get_bool_value("off-without-value", Some(&u), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.code,
        EvaluationErrorCode::General("DEFAULT_NOT_DEFINED".into())
    );
    assert!(e.message.unwrap().contains("OFF"));
}

#[tokio::test]
async fn context_fields_become_attributes() {
    let of = of_client("context", feature_client().await).await;
    // A nested structure: read by the `/settings/beta` attribute reference.
    let beta = user("u-3").with_custom_field(
        "settings",
        EvaluationContextFieldValue::new_struct(StructValue::default().with_field("beta", true)),
    );
    let d = of
        .get_bool_details("dark-mode", Some(&beta), None)
        .await
        .unwrap();
    assert_eq!(
        d.flag_metadata.values.get("ruleId"),
        Some(&"nested-beta".into())
    );
    let mut map = HashMap::new();
    map.insert("beta".to_owned(), EvaluationContextFieldValue::Bool(true));
    let beta =
        user("u-3").with_custom_field("settings", EvaluationContextFieldValue::new_struct(map));
    assert!(of
        .get_bool_value("dark-mode", Some(&beta), None)
        .await
        .unwrap());
    let beta = user("u-3").with_custom_field(
        "settings",
        EvaluationContextFieldValue::new_struct(json!({"beta": true})),
    );
    assert!(of
        .get_bool_value("dark-mode", Some(&beta), None)
        .await
        .unwrap());

    // A date: compared by the `before` operator.
    let early = time::OffsetDateTime::from_unix_timestamp(1_500_000_000).unwrap();
    let late = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let d = user("u-4").with_custom_field("signedUp", early);
    let d = of
        .get_bool_details("dark-mode", Some(&d), None)
        .await
        .unwrap();
    assert_eq!(
        d.flag_metadata.values.get("ruleId"),
        Some(&"signed-up-before-2020".into())
    );
    let d = user("u-4").with_custom_field("signedUp", late);
    assert!(!of
        .get_bool_value("dark-mode", Some(&d), None)
        .await
        .unwrap());

    // A structure of a type the provider cannot read fails rather than being dropped.
    #[derive(Debug)]
    struct Opaque;
    let bad =
        user("u-5").with_custom_field("settings", EvaluationContextFieldValue::new_struct(Opaque));
    let e = of
        .get_bool_value("dark-mode", Some(&bad), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::InvalidContext);
    assert!(e.message.unwrap().contains("settings"));
    let nan = user("u-5").with_custom_field("score", f64::NAN);
    let e = of
        .get_bool_value("dark-mode", Some(&nan), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::InvalidContext);

    // The OpenFeature client's own context is merged in.
    let mut pro_client = of_client("context-merged", feature_client().await).await;
    pro_client
        .set_evaluation_context(EvaluationContext::default().with_custom_field("plan", "pro"));
    assert!(pro_client
        .get_bool_value("dark-mode", Some(&user("u-6")), None)
        .await
        .unwrap());
}

#[tokio::test]
async fn targeting_key_missing_and_kinds() {
    let of = of_client("kinds", feature_client().await).await;

    // No targeting key: an anonymous user; untargeted flags still evaluate.
    assert!(of.get_bool_value("always-on", None, None).await.unwrap());
    let pro = EvaluationContext::default().with_custom_field("plan", "pro");
    assert!(of
        .get_bool_value("dark-mode", Some(&pro), None)
        .await
        .unwrap());
    let ctx = feature_openfeature::context_from(&EvaluationContext::default()).unwrap();
    assert!(ctx.anonymous());
    // A custom `targetingKey` field stands in for the targeting key.
    let vip = EvaluationContext::default().with_custom_field("targetingKey", "vip-1");
    let d = of
        .get_bool_details("dark-mode", Some(&vip), None)
        .await
        .unwrap();
    assert_eq!(d.reason, Some(EvaluationReason::TargetingMatch));

    // Another kind without a key.
    let org = EvaluationContext::default()
        .with_custom_field("kind", "org")
        .with_custom_field("tier", "gold");
    let e = of
        .get_bool_value("dark-mode", Some(&org), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TargetingKeyMissing);
    // With one: its attributes are read by clauses on that kind.
    let acme = org.clone().with_targeting_key("acme");
    let d = of
        .get_bool_details("dark-mode", Some(&acme), None)
        .await
        .unwrap();
    assert_eq!(
        d.flag_metadata.values.get("ruleId"),
        Some(&"gold-org".into())
    );
    // A bad kind.
    let bad = user("u").with_custom_field("kind", "no spaces");
    let e = of
        .get_bool_value("dark-mode", Some(&bad), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::InvalidContext);

    // Multi-kind: `kind: multi` and one structure per kind.
    let multi = EvaluationContext::default()
        .with_custom_field("kind", "multi")
        .with_custom_field(
            "user",
            EvaluationContextFieldValue::new_struct(json!({"targetingKey": "u-7", "plan": "free"})),
        )
        .with_custom_field(
            "org",
            EvaluationContextFieldValue::new_struct(
                StructValue::default()
                    .with_field("key", "acme")
                    .with_field("tier", "gold"),
            ),
        );
    let d = of
        .get_bool_details("dark-mode", Some(&multi), None)
        .await
        .unwrap();
    assert!(d.value);
    assert_eq!(
        d.flag_metadata.values.get("ruleId"),
        Some(&"gold-org".into())
    );
    let ctx = feature_openfeature::context_from(&multi).unwrap();
    assert_eq!(
        (ctx.key_of("user"), ctx.key_of("org")),
        (Some("u-7"), Some("acme"))
    );
    // A kind without a key in a multi-kind context.
    let multi = EvaluationContext::default()
        .with_custom_field("kind", "multi")
        .with_custom_field(
            "org",
            EvaluationContextFieldValue::new_struct(json!({"tier": "gold"})),
        );
    let e = of
        .get_bool_value("dark-mode", Some(&multi), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::TargetingKeyMissing);
}

#[tokio::test]
async fn provider_status_follows_the_client() {
    // Ready.
    let provider = OpenFeatureProvider::new(feature_client().await);
    assert_eq!(provider.status(), ProviderStatus::Ready);

    // Offline: no flags delivered; evaluations fail with PROVIDER_NOT_READY.
    let p = MemoryProvider::new();
    let offline = Client::builder()
        .provider(p)
        .offline(true)
        .build()
        .await
        .unwrap();
    let provider = OpenFeatureProvider::new(offline);
    assert_eq!(provider.status(), ProviderStatus::NotReady);
    let of = of_client("offline", provider.client().clone()).await;
    let e = of
        .get_bool_value("anything", Some(&user("u")), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, EvaluationErrorCode::ProviderNotReady);

    // Degraded (the file became invalid, the last good flags are served): STALE.
    let dir = std::env::temp_dir().join(format!("feature-openfeature-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("flags.yaml");
    std::fs::write(&path, "flags:\n  f: {type: bool, default: true}\n").unwrap();
    let client = Client::builder()
        .provider(FileProvider::new(&path))
        .build()
        .await
        .unwrap();
    let provider = OpenFeatureProvider::new(client.clone());
    assert_eq!(provider.status(), ProviderStatus::Ready);
    std::fs::write(&path, "flags: [not, a, mapping\n").unwrap();
    let mut waited = Duration::ZERO;
    while provider.status() != ProviderStatus::STALE && waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    assert_eq!(provider.status(), ProviderStatus::STALE);
    let of = of_client("degraded", client.clone()).await;
    assert!(of
        .get_bool_value("f", Some(&user("u")), None)
        .await
        .unwrap());

    // Closed.
    client.close().await;
    assert_eq!(provider.status(), ProviderStatus::NotReady);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn evaluations_through_openfeature_are_counted_by_the_client() {
    let stats = feature::metrics::EvaluationStats::new();
    let parsed = parse_document(FLAGS, Format::Yaml).unwrap();
    let client = Client::builder()
        .provider(MemoryProvider::with_document(parsed.document))
        .metrics(stats.clone())
        .build()
        .await
        .unwrap();
    let of = of_client("counted", client).await;
    let u = user("u-1");
    assert!(of
        .get_bool_value("always-on", Some(&u), None)
        .await
        .unwrap());
    assert_eq!(
        of.get_int_value("max-items", Some(&u), None).await.unwrap(),
        10
    );
    assert!(of
        .get_bool_value("no-such-flag", Some(&u), None)
        .await
        .is_err());
    let report = stats.report();
    assert_eq!(report.total_evaluations, 3);
    assert!((report.error_rate - 1.0 / 3.0).abs() < 1e-9, "{report:?}");
}
