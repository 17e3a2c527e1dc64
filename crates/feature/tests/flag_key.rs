//! Reading flags by `FlagKey` (`client.flag(&KEY)`): the same answers, overrides, events and
//! readiness as reading by the key's string, including after the flags change and the
//! remembered position would name another flag.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::analytics::TrackData;
use feature::{Client, Context, EvaluationEvent, EventSink, Flag, FlagKey, MemoryProvider};
use serde_json::json;
use std::sync::{Arc, Mutex};

static B: FlagKey = FlagKey::new("b");
static S: FlagKey = FlagKey::new("s");
static I: FlagKey = FlagKey::new("i");
static F: FlagKey = FlagKey::new("f");

/// Keeps the key and value of every evaluation event.
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Vec<(String, serde_json::Value)>>>);

impl EventSink for Recording {
    fn evaluation(&self, e: &EvaluationEvent<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((e.key.to_owned(), e.value.clone()));
    }
    fn track(&self, _: &Context, _: &str, _: &TrackData) {}
}

fn provider() -> MemoryProvider {
    let p = MemoryProvider::new();
    p.set_flag(Flag::boolean("b", true));
    p.set_flag(Flag::constant("s", json!("text")));
    p.set_flag(Flag::constant("i", json!(7)));
    p.set_flag(Flag::constant("f", json!(2.5)));
    p
}

#[tokio::test]
async fn a_flag_key_reads_what_the_string_reads_as_the_flags_change() {
    let p = provider();
    let client = Client::builder().provider(p.clone()).build().await.unwrap();
    let user = Context::new("u");
    let same = |client: &Client| {
        assert_eq!(
            client.flag(&B).bool(&user, false),
            client.bool(&user, "b", false)
        );
        assert_eq!(
            client.flag(&S).string(&user, "-"),
            client.string(&user, "s", "-")
        );
        assert_eq!(client.flag(&I).int(&user, 0), client.int(&user, "i", 0));
        assert_eq!(
            client.flag(&F).float(&user, 0.0),
            client.float(&user, "f", 0.0)
        );
        assert_eq!(
            client.flag(&B).variation(&user),
            client.variation(&user, "b")
        );
    };
    same(&client);
    assert!(client.flag(&B).bool(&user, false));
    assert_eq!(client.flag(&S).string(&user, "-"), "text");

    // "a" sorts first: every remembered position now names another flag.
    p.set_flag(Flag::boolean("a", false));
    assert!(
        client.flag(&B).bool(&user, false),
        "a stale position served `a`"
    );
    assert_eq!(client.flag(&I).int(&user, 0), 7);
    same(&client);

    // Wrong type: the default, as by string.
    assert_eq!(client.flag(&S).int(&user, -1), -1);
    assert_eq!(client.flag(&B).string(&user, "-"), "-");

    // An override wins over the remembered position.
    client.set_override("b", false);
    assert!(!client.flag(&B).bool(&user, true));
    same(&client);
    client.remove_override("b");
    assert!(client.flag(&B).bool(&user, false));

    // A removed flag serves the default.
    p.remove_flag("b");
    assert!(!client.flag(&B).bool(&user, false));
    assert!(client.flag(&B).bool(&user, true));
    same(&client);
}

#[tokio::test]
async fn a_flag_key_reports_its_evaluations_like_the_string() {
    let events = Recording::default();
    let client = Client::builder()
        .provider(provider())
        .events(events.clone())
        .build()
        .await
        .unwrap();
    let user = Context::new("u");
    assert!(client.flag(&B).bool(&user, false));
    assert!(client.bool(&user, "b", false));
    assert_eq!(client.flag(&I).int(&user, 0), 7);
    let seen = events.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            ("b".to_owned(), json!(true)),
            ("b".to_owned(), json!(true)),
            ("i".to_owned(), json!(7)),
        ]
    );
}

#[tokio::test]
async fn a_flag_key_shared_by_two_clients_serves_each_its_own_flags() {
    let (p1, p2) = (MemoryProvider::new(), MemoryProvider::new());
    p1.set_flag(Flag::boolean("b", true));
    p2.set_flag(Flag::boolean("a", true));
    p2.set_flag(Flag::boolean("b", false));
    let c1 = Client::builder().provider(p1).build().await.unwrap();
    let c2 = Client::builder().provider(p2).build().await.unwrap();
    let user = Context::new("u");
    for _ in 0..3 {
        assert!(c1.flag(&B).bool(&user, false));
        assert!(!c2.flag(&B).bool(&user, true));
    }
}
