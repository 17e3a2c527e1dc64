//! OpenFeature's client API over this toolkit: a `feature::Client` (here on flags from a YAML
//! text) registered as the OpenFeature provider, then flags evaluated through OpenFeature with a
//! user, a multi-kind context and a flag that does not exist; tracking goes to the client.
//!
//! Run: `cargo run -p feature-openfeature --example openfeature` (it prints and exits).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::engine::{parse_document, Format};
use feature::{Client, MemoryProvider};
use feature_openfeature::{context_from, OpenFeatureProvider};
use open_feature::{EvaluationContext, EvaluationContextFieldValue, OpenFeature, StructValue};

const FLAGS: &str = r#"
flags:
  new-dashboard:
    type: bool
    variants: [{name: classic, value: false}, {name: new, value: true}]
    rules:
      - id: pro-users
        clauses: [{attribute: plan, operator: eq, values: [pro]}]
        variation: 1
      - id: gold-orgs
        clauses: [{contextKind: org, attribute: tier, operator: eq, values: [gold]}]
        variation: 1
    fallthrough: {variation: 0}
  page-size:
    type: int
    default: 25
  ui-limits:
    type: json
    default: {uploads: 3, theme: light}
"#;

#[tokio::main]
pub(crate) async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let parsed = parse_document(FLAGS, Format::Yaml)?;
    let client = Client::builder()
        .provider(MemoryProvider::with_document(parsed.document))
        .build()
        .await?;

    // Register the provider; OpenFeature clients made from now on evaluate with `client`.
    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(OpenFeatureProvider::new(client.clone()))
        .await;
    let flags = api.create_client();
    drop(api);

    let alice = EvaluationContext::default()
        .with_targeting_key("alice")
        .with_custom_field("plan", "pro");
    let d = flags
        .get_bool_details("new-dashboard", Some(&alice), None)
        .await
        .map_err(|e| e.code)?;
    println!(
        "new-dashboard for alice: {} (variant {:?}, reason {:?}, rule {:?})",
        d.value,
        d.variant,
        d.reason,
        d.flag_metadata.values.get("ruleId")
    );
    assert!(d.value);

    // A multi-kind context: `kind: multi`, one structure per kind.
    let bob_at_acme = EvaluationContext::default()
        .with_custom_field("kind", "multi")
        .with_custom_field(
            "user",
            EvaluationContextFieldValue::new_struct(
                StructValue::default()
                    .with_field("key", "bob")
                    .with_field("plan", "free"),
            ),
        )
        .with_custom_field(
            "org",
            EvaluationContextFieldValue::new_struct(
                StructValue::default()
                    .with_field("key", "acme")
                    .with_field("tier", "gold"),
            ),
        );
    let on = flags
        .get_bool_value("new-dashboard", Some(&bob_at_acme), None)
        .await
        .map_err(|e| e.code)?;
    println!("new-dashboard for bob at acme (a gold org): {on}");
    assert!(on);

    // (`EvaluationError` is no `std::error::Error`; its code is.)
    let size = flags
        .get_int_value("page-size", Some(&alice), None)
        .await
        .map_err(|e| e.code)?;
    let limits: StructValue = flags
        .get_struct_value("ui-limits", Some(&alice), None)
        .await
        .map_err(|e| e.code)?;
    println!(
        "page-size {size}, ui-limits {:?}",
        limits.fields.get("uploads")
    );
    assert_eq!(size, 25);

    // Errors come back with OpenFeature's codes; the application supplies its default.
    let missing = flags
        .get_string_value("no-such-flag", Some(&alice), None)
        .await;
    if let Err(e) = &missing {
        println!("no-such-flag: {} ({:?})", e.code, e.message);
    }
    let theme = missing.unwrap_or_else(|_| "default-theme".to_owned());
    assert_eq!(theme, "default-theme");

    // OpenFeature's Rust SDK has no tracking API: track on the client itself.
    client.track(&context_from(&alice)?, "dashboard-opened", ());
    client.close().await;
    Ok(())
}
