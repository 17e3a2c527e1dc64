//! Client behaviour users rely on: typed accessors, errors as reasons, overrides, changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::model::{Clause, Rollout, Rule, Variant, WeightedVariation};
use feature::{
    Client, Context, ErrorKind, Flag, FlagType, MemoryProvider, Operator, Reason, ReasonKind,
};
use serde_json::json;
use std::time::Duration;

fn string_flag() -> Flag {
    let mut f = Flag::new("theme");
    f.flag_type = Some(FlagType::String);
    f.default = Some(json!("light"));
    f.variants = vec![Variant::of(json!("light")), Variant::of(json!("dark"))];
    f.rules = vec![Rule {
        id: Some("pro".into()),
        clauses: vec![Clause::new("plan", Operator::Eq, vec![json!("pro")])],
        variation: Some(1),
        ..Rule::default()
    }];
    f
}

async fn client_with(flags: &[Flag]) -> (Client, MemoryProvider) {
    let p = MemoryProvider::new();
    for f in flags {
        p.set_flag(f.clone());
    }
    let c = Client::builder().provider(p.clone()).build().await.unwrap();
    (c, p)
}

#[test]
fn client_is_send_sync_clone() {
    fn assert<T: Send + Sync + Clone + 'static>() {}
    assert::<Client>();
}

#[tokio::test]
async fn typed_accessors() {
    let mut num = Flag::constant("limit", json!(25));
    num.variants = vec![Variant::of(json!(25))];
    let mut ratio = Flag::constant("ratio", json!(0.25));
    ratio.variants = vec![Variant::of(json!(0.25))];
    let (c, _) = client_with(&[string_flag(), num, ratio, Flag::boolean("on", true)]).await;
    let pro = Context::new("u").with_attribute("plan", "pro");
    assert_eq!(c.string(&pro, "theme", "x"), "dark");
    assert_eq!(c.string(&Context::new("v"), "theme", "x"), "light");
    assert_eq!(c.int(&pro, "limit", 0), 25);
    assert_eq!(c.float(&pro, "ratio", 0.0), 0.25);
    assert!(c.bool(&pro, "on", false));
    #[derive(serde::Deserialize, PartialEq, Debug)]
    struct Limit(u32);
    assert_eq!(c.json::<Limit>(&pro, "limit", Limit(1)), Limit(25));
    assert_eq!(c.json::<Limit>(&pro, "missing", Limit(1)), Limit(1));
}

#[tokio::test]
async fn wrong_type_and_unknown_flag_give_the_default_with_a_reason() {
    let (c, _) = client_with(&[string_flag()]).await;
    let u = Context::new("u");
    assert!(c.bool(&u, "theme", true));
    let e = c.variation_with(&u, "theme", feature::ValueKind::Bool, json!(true));
    assert_eq!(e.value, json!(true));
    assert_eq!(e.error_kind(), Some(ErrorKind::WrongType));
    assert_eq!(e.variation_index, None);
    let e = c.variation(&u, "nope");
    assert_eq!(e.error_kind(), Some(ErrorKind::FlagNotFound));
    assert_eq!(c.int(&u, "nope", 7), 7);
}

#[tokio::test]
async fn variation_gives_the_full_evaluation() {
    let (c, _) = client_with(&[string_flag()]).await;
    let e = c.variation(&Context::new("u").with_attribute("plan", "pro"), "theme");
    assert_eq!(e.key, "theme");
    assert_eq!(e.value, json!("dark"));
    assert_eq!(e.variation_index, Some(1));
    assert_eq!(e.rule_id(), Some("pro"));
    assert!(!e.in_experiment());
    assert_eq!(
        serde_json::to_value(&e.reason).unwrap(),
        json!({"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "pro"})
    );
}

#[tokio::test]
async fn overrides_win_and_say_so() {
    let p = MemoryProvider::new();
    p.set_flag(Flag::boolean("new-feature", false));
    let c = Client::builder()
        .provider(p)
        .overrides([
            ("new-feature", json!(true)),
            ("experiment-mode", json!("variant-b")),
        ])
        .build()
        .await
        .unwrap();
    let u = Context::new("u");
    assert!(c.bool(&u, "new-feature", false));
    assert_eq!(c.string(&u, "experiment-mode", "control"), "variant-b");
    let e = c.variation(&u, "new-feature");
    assert_eq!(e.reason, Reason::Override);
    assert_eq!(e.variation_index, Some(1));
    // A wrong-typed override is a WRONG_TYPE like any other value.
    assert_eq!(c.int(&u, "experiment-mode", 3), 3);

    let mut changes = c.subscribe();
    c.remove_override("new-feature");
    assert_eq!(
        changes.recv().await.unwrap().keys,
        vec!["new-feature".to_string()]
    );
    assert!(!c.bool(&u, "new-feature", false));
    c.set_override("new-feature", true);
    assert!(c.bool(&u, "new-feature", false));
    assert_eq!(c.all_flags(&u)["experiment-mode"], json!("variant-b"));
}

#[tokio::test]
async fn subscription_names_the_flags_that_changed() {
    let (c, p) = client_with(&[Flag::boolean("a", false), Flag::boolean("b", false)]).await;
    let mut rx = c.subscribe();
    p.set_flag(Flag::boolean("b", true));
    let change = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.keys, vec!["b".to_string()]);
    p.remove_flag("a");
    let change = rx.recv().await.unwrap();
    assert_eq!(change.keys, vec!["a".to_string()]);
    assert!(c.bool(&Context::new("u"), "b", false));
    assert_eq!(
        c.variation(&Context::new("u"), "a").error_kind(),
        Some(ErrorKind::FlagNotFound)
    );
}

#[tokio::test]
async fn all_flags_lists_every_value() {
    let (c, _) = client_with(&[string_flag(), Flag::boolean("on", true)]).await;
    let all = c.all_flags(&Context::new("u"));
    assert_eq!(all.len(), 2);
    assert_eq!(all["theme"], json!("light"));
    assert_eq!(all["on"], json!(true));
}

#[tokio::test]
async fn weighted_splits_land_within_half_a_percent() {
    for weights in [
        vec![50_000, 50_000],
        vec![20_000, 30_000, 50_000],
        vec![10_000, 15_000, 20_000, 25_000, 30_000],
    ] {
        let mut f = Flag::new("split");
        f.variants = (0..weights.len()).map(|i| Variant::of(json!(i))).collect();
        f.fallthrough = Some(feature::model::Serve {
            variation: None,
            rollout: Some(Box::new(Rollout {
                variations: weights
                    .iter()
                    .enumerate()
                    .map(|(i, w)| WeightedVariation {
                        variation: i as i64,
                        weight: *w,
                        untracked: false,
                    })
                    .collect(),
                ..Rollout::default()
            })),
        });
        let (c, _) = client_with(&[f]).await;
        let n = 100_000;
        let mut counts = vec![0usize; weights.len()];
        for i in 0..n {
            counts[c.int(&Context::new(format!("k{i}")), "split", -1) as usize] += 1;
        }
        for (i, w) in weights.iter().enumerate() {
            let share = counts[i] as f64 / n as f64;
            let want = *w as f64 / 100_000.0;
            assert!(
                (share - want).abs() <= 0.005,
                "{weights:?}: variation {i} got {share}"
            );
        }
    }
}

#[tokio::test]
async fn weighted_variants_are_an_experiment() {
    let mut f = Flag::new("color");
    f.variants = ["blue", "green", "red"]
        .iter()
        .map(|c| {
            let mut v = Variant::of(json!(c));
            v.weight = Some(1.0);
            v
        })
        .collect();
    let (c, _) = client_with(&[f]).await;
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..300 {
        let e = c.variation(&Context::new(format!("u{i}")), "color");
        assert!(e.in_experiment());
        assert_eq!(e.reason.kind(), ReasonKind::Fallthrough);
        seen.insert(e.value.as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 3);
}

#[tokio::test]
async fn offline_serves_defaults_and_overrides() {
    let p = MemoryProvider::new();
    p.set_flag(Flag::boolean("x", true));
    let c = Client::builder()
        .provider(p)
        .offline(true)
        .override_flag("y", true)
        .build()
        .await
        .unwrap();
    let u = Context::new("u");
    assert!(!c.bool(&u, "x", false));
    assert_eq!(
        c.variation(&u, "x").error_kind(),
        Some(ErrorKind::ClientNotReady)
    );
    assert!(c.bool(&u, "y", false));
}

#[tokio::test]
async fn config_builds_memory_and_file_clients() {
    let cfg = feature::Config::default();
    let c = Client::new(cfg).await.unwrap();
    assert_eq!(c.provider_name(), "memory");
    let cfg = feature::Config {
        provider: feature::ProviderKind::File,
        file: feature::FileConfig {
            path: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("examples/flags/basic.yaml"),
            watch: false,
        },
        ..feature::Config::default()
    };
    let c = Client::new(cfg).await.unwrap();
    assert!(c.bool(&Context::new("u"), "new-dashboard", false));
    let cfg = feature::Config {
        provider: feature::ProviderKind::LaunchDarkly,
        ..feature::Config::default()
    };
    assert!(Client::new(cfg).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_set_while_snapshots_are_published_are_never_lost() {
    let (client, provider) = client_with(&[Flag::boolean("churn", true)]).await;
    const N: usize = 5_000;
    let publisher = {
        let provider = provider.clone();
        std::thread::spawn(move || {
            for i in 0..N {
                provider.set_flag(Flag::boolean("churn", i % 2 == 0));
            }
        })
    };
    let setter = {
        let client = client.clone();
        std::thread::spawn(move || {
            for i in 0..N {
                client.set_override(&format!("o{i}"), i as i64);
            }
        })
    };
    publisher.join().unwrap();
    setter.join().unwrap();
    let user = Context::new("u");
    let lost: Vec<usize> = (0..N)
        .filter(|i| client.int(&user, &format!("o{i}"), -1) != *i as i64)
        .collect();
    assert!(lost.is_empty(), "{} of {N} overrides lost", lost.len());
}

/// A flag that serves `true` only when `parent` serves `true` (variation 1).
fn child_of(key: &str, parent: &str) -> Flag {
    let mut f = Flag::boolean(key, false);
    f.fallthrough = Some(feature::model::Serve {
        variation: Some(1),
        ..Default::default()
    });
    f.prerequisites = vec![feature::model::Prerequisite {
        key: parent.into(),
        variation: 1,
    }];
    f
}

/// A flag serving `true` to the members of `segment`.
fn for_segment(key: &str, segment: &str) -> Flag {
    let mut f = Flag::boolean(key, false);
    f.rules = vec![Rule {
        clauses: vec![Clause::new(
            "key",
            Operator::SegmentMatch,
            vec![json!(segment)],
        )],
        variation: Some(1),
        ..Rule::default()
    }];
    f
}

fn segment(key: &str, included: &[&str], uses: Option<&str>) -> feature::model::Segment {
    feature::model::Segment {
        key: key.into(),
        included: included.iter().map(|s| s.to_string()).collect(),
        rules: uses
            .map(|s| {
                vec![feature::model::SegmentRule {
                    clauses: vec![Clause::new("key", Operator::SegmentMatch, vec![json!(s)])],
                    ..Default::default()
                }]
            })
            .unwrap_or_default(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_flag_whose_prerequisite_changed_is_reported_as_changed() {
    // grandchild -> child -> parent: a change of parent changes what both serve.
    let (c, p) = client_with(&[
        Flag::boolean("parent", true),
        child_of("child", "parent"),
        child_of("grandchild", "child"),
        Flag::boolean("unrelated", true),
    ])
    .await;
    let u = Context::new("u");
    assert!(c.bool(&u, "grandchild", false));
    let mut rx = c.subscribe();
    p.set_flag(Flag::boolean("parent", false));
    let change = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.keys, ["child", "grandchild", "parent"]);
    assert!(!change.resync);
    assert!(!c.bool(&u, "grandchild", false));
    // A flag depending on nothing that changed is not reported.
    p.set_flag(Flag::boolean("unrelated", false));
    assert_eq!(rx.recv().await.unwrap().keys, ["unrelated"]);
}

#[tokio::test]
async fn a_flag_whose_segment_changed_is_reported_as_changed() {
    // beta-users matches the members of testers; "gated" targets beta-users, and "child"
    // has "gated" as prerequisite.
    let p = MemoryProvider::new();
    p.set_segment(segment("testers", &[], None));
    p.set_segment(segment("beta-users", &[], Some("testers")));
    p.set_flag(for_segment("gated", "beta-users"));
    p.set_flag(child_of("child", "gated"));
    p.set_flag(Flag::boolean("unrelated", true));
    let c = Client::builder().provider(p.clone()).build().await.unwrap();
    let alice = Context::new("alice");
    assert!(!c.bool(&alice, "gated", false));
    let mut rx = c.subscribe();
    p.set_segment(segment("testers", &["alice"], None));
    let change = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.keys, ["child", "gated"]);
    assert!(c.bool(&alice, "gated", false));
}

#[tokio::test]
async fn a_subscriber_that_lagged_gets_a_resync_and_keeps_receiving() {
    let (c, _p) = client_with(&[Flag::boolean("a", true), Flag::boolean("b", true)]).await;
    let mut rx = c.subscribe();
    // Far more changes than the subscriber's buffer holds, none of them read.
    for i in 0..1000 {
        c.set_override("a", i % 2 == 0);
    }
    let change = rx
        .recv()
        .await
        .expect("a lagging subscriber is not cut off");
    assert!(change.resync, "{change:?}");
    assert_eq!(change.keys, ["a", "b"], "a resync names every flag");
    // And the stream goes on with ordinary notices.
    c.set_override("b", false);
    let change = rx.recv().await.unwrap();
    assert_eq!(change.keys, ["b"]);
    assert!(!change.resync);
}
