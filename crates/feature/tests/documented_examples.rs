//! The documented YAML examples load unchanged and behave as their comments say.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::{Client, Context, FileProvider, ReasonKind};
use std::path::PathBuf;

fn examples_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/flags/examples.yaml")
}

async fn client() -> Client {
    Client::builder()
        .provider(FileProvider::new(examples_file()).watch(false))
        .build()
        .await
        .expect("the documented examples load")
}

#[tokio::test]
async fn documented_examples_load_without_diagnostics() {
    let c = client().await;
    let snap = c.snapshot();
    assert_eq!(snap.len(), 4);
    assert!(snap.diagnostics().is_empty(), "{:?}", snap.diagnostics());
}

#[tokio::test]
async fn new_checkout_reaches_twenty_percent_of_users() {
    let c = client().await;
    let n = 100_000;
    let on = (0..n)
        .filter(|i| c.bool(&Context::new(format!("user-{i}")), "new-checkout", false))
        .count();
    let share = on as f64 / n as f64;
    assert!((share - 0.20).abs() <= 0.005, "share {share}");
    // Same user, same answer: within the process, and across processes and restarts, because
    // the bucket is a SHA-1 of flag key, salt and user key. These users' results were computed
    // once and must never change.
    let fixed = [
        (
            "user-123",
            c.bool(&Context::new("user-123"), "new-checkout", false),
        ),
        (
            "user-1",
            c.bool(&Context::new("user-1"), "new-checkout", false),
        ),
    ];
    for (u, v) in fixed {
        for _ in 0..10 {
            assert_eq!(c.bool(&Context::new(u), "new-checkout", false), v);
        }
    }
    let c2 = client().await;
    for i in 0..2_000 {
        let u = Context::new(format!("user-{i}"));
        assert_eq!(
            c.bool(&u, "new-checkout", false),
            c2.bool(&u, "new-checkout", false)
        );
    }
}

#[tokio::test]
async fn new_checkout_results_are_stable_across_releases() {
    // Golden count for user-0..user-99999, computed independently of this code (SHA-1 of
    // "new-checkout..user-N", first 15 hex digits / 0xFFFFFFFFFFFFFFF, true when >= 0.8): if it
    // changes, every user of every rollout would move.
    let c = client().await;
    let on = (0..100_000)
        .filter(|i| c.bool(&Context::new(format!("user-{i}")), "new-checkout", false))
        .count();
    assert_eq!(on, GOLDEN_NEW_CHECKOUT_ON);
}

const GOLDEN_NEW_CHECKOUT_ON: usize = 19_872;

#[tokio::test]
async fn premium_features_rules_in_order() {
    let c = client().await;
    let beta = Context::new("b").with_group("beta-testers");
    let e = c.variation(&beta, "premium-features");
    assert_eq!(e.value, serde_json::json!(true));
    assert_eq!(e.reason.kind(), ReasonKind::RuleMatch);
    assert!(matches!(
        e.reason,
        feature::Reason::RuleMatch { rule_index: 0, .. }
    ));

    let pro = Context::new("p").with_attribute("plan", "enterprise");
    assert!(matches!(
        c.variation(&pro, "premium-features").reason,
        feature::Reason::RuleMatch { rule_index: 1, .. }
    ));

    let free = Context::new("f")
        .with_attribute("plan", "free")
        .with_country("DE");
    let e = c.variation(&free, "premium-features");
    assert_eq!(e.reason.kind(), ReasonKind::Fallthrough);
    assert_eq!(e.value, serde_json::json!(false));

    // Rule 3: half of the US users.
    let n = 20_000;
    let on = (0..n)
        .filter(|i| {
            let u = Context::new(format!("us-{i}")).with_country("US");
            c.bool(&u, "premium-features", false)
        })
        .count();
    let share = on as f64 / n as f64;
    assert!((share - 0.5).abs() < 0.015, "share {share}");
}

#[tokio::test]
async fn advanced_analytics_needs_basic_analytics() {
    let c = client().await;
    let u = Context::new("u");
    let e = c.variation(&u, "advanced-analytics");
    assert_eq!(e.value, serde_json::json!(true));
    assert_eq!(e.reason.kind(), ReasonKind::RuleMatch);
}
