//! The client API as an application uses it: typed JSON with the reason when there is no value,
//! the variation's name, flags read outside a request scope, and carrying a scope into a task.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::engine::{parse_document, Format};
use feature::{Client, Context, ErrorKind, JsonError, MemoryProvider, ReasonKind};
use serde::Deserialize;

const FLAGS: &str = r#"
flags:
  limits:
    type: json
    enabled: true
    variants:
      - {name: standard, value: {requests_per_minute: 60}}
      - {name: generous, value: {requests_per_minute: 600}}
    targets:
      - {values: [vip], variation: 1}
    fallthrough: {variation: 0}
  off-json:
    type: json
    enabled: false
    variants:
      - {name: only, value: {requests_per_minute: 1}}
  theme:
    type: string
    enabled: true
    variants:
      - {name: light-theme, value: light}
      - {name: dark-theme, value: dark}
    fallthrough: {variation: 1}
"#;

#[derive(Debug, Deserialize, PartialEq)]
struct Limits {
    requests_per_minute: u32,
}

async fn client() -> Client {
    let doc = parse_document(FLAGS, Format::Yaml).unwrap().document;
    Client::builder()
        .provider(MemoryProvider::with_document(doc))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn try_json_gives_the_value_or_says_why_not() {
    let client = client().await;
    let user = Context::new("u1");
    let vip = Context::new("vip");
    assert_eq!(
        client.try_json::<Limits>(&user, "limits").unwrap(),
        Limits {
            requests_per_minute: 60
        }
    );
    assert_eq!(
        client.try_json::<Limits>(&vip, "limits").unwrap(),
        Limits {
            requests_per_minute: 600
        }
    );
    match client.try_json::<Limits>(&user, "no-such-flag") {
        Err(JsonError::NotServed(e)) => {
            assert_eq!(e.error_kind(), Some(ErrorKind::FlagNotFound))
        }
        other => panic!("{other:?}"),
    }
    match client.try_json::<Limits>(&user, "off-json") {
        Err(e @ JsonError::NotServed(_)) => {
            assert_eq!(e.evaluation().reason.kind(), ReasonKind::Off)
        }
        other => panic!("{other:?}"),
    }
    // A value of another shape is a decode error that keeps the value it could not read.
    match client.try_json::<Vec<String>>(&user, "limits") {
        Err(e @ JsonError::Decode { .. }) => {
            assert_eq!(
                e.evaluation().value,
                serde_json::json!({"requests_per_minute": 60})
            );
            assert!(std::error::Error::source(&e).is_some());
        }
        other => panic!("{other:?}"),
    }
    // `json` serves the default in each of those cases.
    assert_eq!(client.json(&user, "no-such-flag", vec![7u8]), vec![7u8]);
}

#[tokio::test]
async fn an_evaluation_names_the_variation_it_served() {
    let client = client().await;
    let e = client.variation(&Context::new("u1"), "theme");
    assert_eq!(
        (e.variation_index, e.variation_name.as_deref()),
        (Some(1), Some("dark-theme"))
    );
    assert_eq!(
        client
            .variation(&Context::new("vip"), "limits")
            .variation_name
            .as_deref(),
        Some("generous")
    );
    // Nothing served, no name.
    let missing = client.variation(&Context::new("u1"), "no-such-flag");
    assert_eq!(missing.variation_name, None);
    assert!(missing.is_error());
}

#[tokio::test]
async fn reads_outside_a_scope_are_counted_and_a_spawned_task_can_carry_the_scope() {
    let client = client().await;
    let before = feature::outside_scope_reads();
    assert_eq!(feature::string("theme", "none"), "none");
    assert!(feature::outside_scope_reads() > before);

    let user = Context::new("u1");
    let (inside, spawned_bare, spawned_carried) = feature::scope(client, user, async {
        let inside = feature::string("theme", "none");
        let bare = tokio::spawn(async { feature::string("theme", "none") });
        let carried = tokio::spawn(feature::carry_scope(async {
            feature::string("theme", "none")
        }));
        (inside, bare.await.unwrap(), carried.await.unwrap())
    })
    .await;
    assert_eq!(inside, "dark");
    assert_eq!(spawned_bare, "none", "a task does not inherit the scope");
    assert_eq!(spawned_carried, "dark");
}
