//! An incremental compile is the full compile of the changed document: random sequences of
//! changes (flags and segments added, edited and removed; prerequisites, segment references,
//! cycles, errors, costly fan-out) compiled both ways evaluate alike for every flag, with the
//! same diagnostics and document, and report the same changed keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::model::{Flag, FlagDocument, Segment};
use feature_core::{compile, parse_document, recompile, Change, Context, Format, Snapshot};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::Arc;

const FLAGS: usize = 8;
const SEGMENTS: usize = 6;

fn fkey(i: usize) -> String {
    format!("f{i}")
}

fn skey(i: usize) -> String {
    format!("s{i}")
}

/// A clause: the context's key in a list, a segment reference listed `times` times (the
/// fan-out the cost bound refuses when it multiplies), or a broken pattern.
fn clause() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (prop::collection::vec(0..5usize, 0..3), any::<bool>()).prop_map(|(keys, negate)| {
            let values: Vec<String> = keys.iter().map(|k| format!("k{k}")).collect();
            json!({"attribute": "key", "operator": "in", "values": values, "negate": negate})
        }),
        4 => (prop::collection::vec(0..SEGMENTS + 1, 1..3), 1..40usize, any::<bool>())
            .prop_map(|(segs, times, negate)| {
                let values: Vec<String> = (0..times).flat_map(|_| segs.iter().map(|s| skey(*s))).collect();
                json!({"attribute": "", "operator": "segmentMatch", "values": values, "negate": negate})
            }),
        1 => Just(json!({"attribute": "key", "operator": "matches", "values": ["(unclosed"]})),
        1 => Just(json!({"attribute": "/bad~", "operator": "in", "values": ["k1"]})),
    ]
}

fn flag() -> impl Strategy<Value = Flag> {
    (
        prop::bool::weighted(0.85),
        prop::collection::vec((0..FLAGS + 1, 0i64..3), 0..3),
        prop::collection::vec(
            (
                prop::collection::vec(clause(), 0..3),
                0i64..3,
                any::<bool>(),
            ),
            0..3,
        ),
        0i64..2,
        prop::bool::weighted(0.1),
        prop::collection::vec(0..5usize, 0..2),
    )
        .prop_map(
            |(enabled, prerequisites, rules, fallthrough, wrong_type, targets)| {
                let prerequisites: Vec<Value> = (prerequisites.iter())
                    .map(|(p, v)| json!({"key": fkey(*p), "variation": v}))
                    .collect();
                let rules: Vec<Value> = (rules.iter())
                    .map(|(cs, v, rollout)| {
                        if *rollout {
                            json!({"clauses": cs, "rollout": {"variations": [
                            {"variation": 0, "weight": 50000}, {"variation": 1, "weight": 50000}]}})
                        } else {
                            json!({"clauses": cs, "variation": v})
                        }
                    })
                    .collect();
                let targets: Vec<String> = targets.iter().map(|k| format!("k{k}")).collect();
                let variants = if wrong_type {
                    json!([{"value": "yes"}, {"value": true}])
                } else {
                    json!([{"value": false}, {"value": true}])
                };
                serde_json::from_value(json!({
                    "type": "bool", "enabled": enabled, "variants": variants, "offVariation": 0,
                    "default": false, "prerequisites": prerequisites, "rules": rules,
                    "targets": [{"values": targets, "variation": 1}],
                    "fallthrough": {"variation": fallthrough},
                }))
                .unwrap()
            },
        )
}

fn segment() -> impl Strategy<Value = Segment> {
    (
        prop::collection::vec(0..5usize, 0..2),
        prop::collection::vec(0..5usize, 0..2),
        prop::collection::vec(prop::collection::vec(clause(), 1..3), 0..3),
    )
        .prop_map(|(included, excluded, rules)| {
            let keys =
                |ks: &[usize]| -> Vec<String> { ks.iter().map(|k| format!("k{k}")).collect() };
            let rules: Vec<Value> = rules.iter().map(|cs| json!({"clauses": cs})).collect();
            serde_json::from_value(json!({
                "included": keys(&included), "excluded": keys(&excluded), "rules": rules,
            }))
            .unwrap()
        })
}

/// A flag of `n` list values: the document's size, and so its budget, grows with it (16
/// steps a value past 6 250 nodes).
fn padding(n: usize) -> Flag {
    let values: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    serde_json::from_value(json!({"default": false, "rules": [{"clauses": [
        {"attribute": "key", "operator": "in", "values": values}], "variation": 1}]}))
    .unwrap()
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        1 => (0..12_000usize).prop_map(|n| Change::Flag("pad".into(), Some(Arc::new(padding(n))))),
        4 => (0..FLAGS, flag()).prop_map(|(i, f)| Change::Flag(fkey(i), Some(Arc::new(f)))),
        1 => (0..FLAGS).prop_map(|i| Change::Flag(fkey(i), None)),
        3 => (0..SEGMENTS, segment()).prop_map(|(i, s)| Change::Segment(skey(i), Some(Arc::new(s)))),
        1 => (0..SEGMENTS).prop_map(|i| Change::Segment(skey(i), None)),
    ]
}

fn apply(doc: &mut FlagDocument, changes: &[Change]) {
    for c in changes {
        match c {
            Change::Flag(k, Some(f)) => {
                doc.flags.insert(k.clone(), f.clone());
            }
            Change::Flag(k, None) => {
                doc.flags.remove(k);
            }
            Change::Segment(k, Some(s)) => {
                doc.segments.insert(k.clone(), s.clone());
            }
            Change::Segment(k, None) => {
                doc.segments.remove(k);
            }
        }
    }
}

fn contexts() -> Vec<Context> {
    (0..6)
        .map(|k| Context::new(format!("k{k}")))
        .chain([Context::new("other").with_attribute("plan", "gold")])
        .collect()
}

/// The two snapshots are the same program: flags in the same order, the same evaluations for
/// every context, the same diagnostics and document.
fn assert_same(incremental: &Snapshot, full: &Snapshot) -> Result<(), TestCaseError> {
    let keys = |s: &Snapshot| s.flags().map(|f| f.key().to_owned()).collect::<Vec<_>>();
    prop_assert_eq!(keys(incremental), keys(full));
    prop_assert_eq!(incremental.diagnostics(), full.diagnostics());
    prop_assert_eq!(incremental.document(), full.document());
    for key in (0..=FLAGS).map(fkey) {
        for ctx in contexts() {
            let a = incremental
                .evaluate(&key, &ctx)
                .to_evaluation(&key, Value::Null);
            let b = full.evaluate(&key, &ctx).to_evaluation(&key, Value::Null);
            prop_assert_eq!(a, b, "{} for {:?}", key, ctx);
        }
        let malformed = |s: &Snapshot| s.flag(&key).map(|f| f.is_malformed());
        prop_assert_eq!(malformed(incremental), malformed(full));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn an_incremental_compile_is_the_full_compile_of_the_changed_document(
        start in prop::collection::vec(change(), 0..12),
        steps in prop::collection::vec(prop::collection::vec(change(), 1..4), 1..10),
    ) {
        let mut doc = FlagDocument::default();
        apply(&mut doc, &start);
        let mut snap = compile(doc.clone());
        for batch in steps {
            apply(&mut doc, &batch);
            let r = recompile(&snap, batch.clone());
            let full = compile(doc.clone());
            assert_same(&r.snapshot, &full)?;
            // The changed keys it knows are those comparing both documents finds.
            prop_assert_eq!(r.snapshot.changed_keys(&snap), full.changed_keys(&snap));
            // Without a key added or removed, a flag no change names is not compiled again:
            // the new snapshot holds the very same compiled flag (a flag the cost bound
            // refuses is a new, malformed copy).
            let kept_keys = batch.iter().all(|c| match c {
                Change::Flag(k, f) => f.is_some() == snap.document().flags.contains_key(k),
                Change::Segment(k, s) => s.is_some() == snap.document().segments.contains_key(k),
            });
            if kept_keys {
                for f in r.snapshot.flags() {
                    let k = f.key();
                    let named = batch.iter().any(|c| matches!(c, Change::Flag(n, _) if n == k));
                    let refused = f.is_malformed() || snap.flag(k).is_some_and(|f| f.is_malformed());
                    if !named && !refused {
                        prop_assert!(r.snapshot.shares_flag(&snap, k), "{} compiled again", k);
                    }
                }
            }
            snap = r.snapshot;
        }
    }
}

/// `n` flags, each a rule with two clauses and a 50/50 rollout, every tenth also matching a
/// segment `seg-{i % 10}`.
fn large(n: usize) -> FlagDocument {
    let mut doc = FlagDocument::default();
    for s in 0..10 {
        let seg: Segment = serde_json::from_value(json!({"included": [format!("u{s}")]})).unwrap();
        doc.segments.insert(format!("seg-{s}"), Arc::new(seg));
    }
    for i in 0..n {
        let mut clauses = vec![
            json!({"attribute": "country", "operator": "in", "values": ["de", "fr"]}),
            json!({"attribute": "plan", "operator": "in", "values": ["gold"], "negate": true}),
        ];
        if i % 10 == 0 {
            clauses.push(json!({"attribute": "", "operator": "segmentMatch", "values": [format!("seg-{}", i % 100 / 10)]}));
        }
        let f: Flag = serde_json::from_value(json!({
            "type": "bool", "variants": [{"value": false}, {"value": true}], "default": false,
            "rules": [{"clauses": clauses, "rollout": {"variations": [
                {"variation": 0, "weight": 50000}, {"variation": 1, "weight": 50000}]}}],
            "fallthrough": {"variation": 0},
        }))
        .unwrap();
        doc.flags.insert(format!("flag-{i:05}"), Arc::new(f));
    }
    doc
}

#[test]
fn one_changed_flag_is_the_only_one_compiled_and_the_others_are_shared() {
    let before = compile(large(1000));
    let mut edited = Flag::clone(&before.document().flags["flag-00500"]);
    edited.enabled = false;
    let r = recompile(
        &before,
        [Change::Flag("flag-00500".into(), Some(Arc::new(edited)))],
    );
    assert_eq!((r.compiled_flags, r.compiled_segments), (1, 0));
    let after = &r.snapshot;
    for f in before.flags() {
        let shared = after.shares_flag(&before, f.key());
        assert_eq!(shared, f.key() != "flag-00500", "{}", f.key());
    }
    assert!(!after.flag("flag-00500").unwrap().enabled());
    assert_eq!(after.changed_keys(&before), ["flag-00500"]);
    // The document shares every other item too.
    assert!(Arc::ptr_eq(
        &after.document().flags["flag-00499"],
        &before.document().flags["flag-00499"]
    ));
}

#[test]
fn a_changed_segment_compiles_no_flag_and_reports_its_dependents() {
    let before = compile(large(1000));
    let seg: Segment = serde_json::from_value(json!({"included": ["someone-else"]})).unwrap();
    let r = recompile(
        &before,
        [Change::Segment("seg-3".into(), Some(Arc::new(seg)))],
    );
    assert_eq!((r.compiled_flags, r.compiled_segments), (0, 1));
    let after = &r.snapshot;
    let dependents: Vec<String> = (0..1000)
        .filter(|i| i % 10 == 0 && i % 100 / 10 == 3)
        .map(|i| format!("flag-{i:05}"))
        .collect();
    assert_eq!(after.changed_keys(&before), dependents);
    assert!(before.flags().all(|f| after.shares_flag(&before, f.key())));
    // Evaluation follows the new segment.
    let ctx = Context::new("someone-else").with_attribute("country", "de");
    let full = compile(FlagDocument::clone(after.document()));
    for k in &dependents {
        assert_eq!(
            after.evaluate(k, &ctx).to_evaluation(k, Value::Null),
            full.evaluate(k, &ctx).to_evaluation(k, Value::Null)
        );
    }
}

#[test]
fn adding_a_flag_shifts_positions_without_compiling_the_others_again() {
    let mut doc = large(200);
    let p: Flag = serde_json::from_value(
        json!({"prerequisites": [{"key": "flag-00150", "variation": 1}],
        "fallthrough": {"variation": 1}}),
    )
    .unwrap();
    doc.flags.insert("flag-00199x".into(), Arc::new(p));
    let before = compile(doc);
    // Sorted before every other key: every position moves.
    let r = recompile(
        &before,
        [Change::Flag(
            "a-first".into(),
            Some(Arc::new(Flag::boolean("a-first", true))),
        )],
    );
    assert_eq!(r.compiled_flags, 1);
    let full = compile(FlagDocument::clone(r.snapshot.document()));
    let ctx = Context::new("u3").with_attribute("country", "fr");
    for f in full.flags() {
        let k = f.key();
        assert_eq!(
            r.snapshot.evaluate(k, &ctx).to_evaluation(k, Value::Null),
            full.evaluate(k, &ctx).to_evaluation(k, Value::Null),
            "{k}"
        );
    }
    // Flags without references keep their compiled form.
    assert!(r.snapshot.shares_flag(&before, "flag-00001"));
}

#[test]
fn flags_that_could_not_be_read_stay_malformed_across_changes() {
    let text = r#"{"flags": {"bad": {"defualt": true}, "good": {"default": true}}}"#;
    let before = parse_document(text, Format::Json).unwrap().compile(None);
    assert!(before.flag("bad").unwrap().is_malformed());
    let r = recompile(
        &before,
        [Change::Flag(
            "new".into(),
            Some(Arc::new(Flag::boolean("new", false))),
        )],
    );
    let s = &r.snapshot;
    assert!(s.flag("bad").unwrap().is_malformed());
    assert!(s.diagnostics().iter().any(|d| d.flag == "bad"));
    // Reading the flag again fixes it.
    let r = recompile(
        s,
        [Change::Flag(
            "bad".into(),
            Some(Arc::new(Flag::boolean("bad", true))),
        )],
    );
    assert!(!r.snapshot.flag("bad").unwrap().is_malformed());
    assert_eq!(r.snapshot.changed_keys(s), ["bad"]);
}

/// A chain of segments `c0`..`c4`, each listing the next ten times, and flag `costly` listing
/// `c0` twice: its worst case is 108 891 steps, over the smallest budget (100 000) and under
/// the budget of a document of 7 000 nodes (112 000).
fn chain() -> FlagDocument {
    let mut doc = FlagDocument::default();
    for i in 0..5 {
        let clause = if i < 4 {
            json!({"attribute": "", "operator": "segmentMatch", "values": vec![format!("c{}", i + 1); 10]})
        } else {
            json!({"attribute": "key", "operator": "in", "values": ["x"]})
        };
        let s: Segment = serde_json::from_value(json!({"rules": [{"clauses": [clause]}]})).unwrap();
        doc.segments.insert(format!("c{i}"), Arc::new(s));
    }
    let f: Flag = serde_json::from_value(json!({"default": false, "rules": [{"clauses": [
        {"attribute": "", "operator": "segmentMatch", "values": ["c0", "c0"]}], "variation": 1}]}))
    .unwrap();
    doc.flags.insert("costly".into(), Arc::new(f));
    doc
}

#[test]
fn a_change_of_the_budget_alone_refuses_or_accepts_a_flag_no_change_reaches() {
    let mut doc = chain();
    let mut snap = compile(doc.clone());
    assert!(snap.flag("costly").unwrap().is_malformed());
    // The padding flag is all that changes: `costly` does not refer to it, only the budget
    // (its size) says whether `costly` fits, and the diagnostic names the budget.
    let mut seen = Vec::new();
    for n in [100, 6_300, 6_600, 7_000, 6_700, 6_800, 0, 7_500] {
        let pad = Arc::new(padding(n));
        doc.flags.insert("pad".into(), pad.clone());
        let r = recompile(&snap, [Change::Flag("pad".into(), Some(pad))]);
        let full = compile(doc.clone());
        assert_eq!(r.snapshot.diagnostics(), full.diagnostics(), "{n}");
        let malformed = r.snapshot.flag("costly").unwrap().is_malformed();
        assert_eq!(
            malformed,
            full.flag("costly").unwrap().is_malformed(),
            "{n}"
        );
        assert_eq!(
            r.snapshot.changed_keys(&snap),
            full.changed_keys(&snap),
            "{n}"
        );
        seen.push(malformed);
        snap = r.snapshot;
    }
    assert_eq!(
        seen,
        [true, true, true, false, true, false, true, false],
        "the budget moves across the flag's worst case"
    );
}

/// Flag `i` of a many-flag document: a rule on the context's key, and a prerequisite on flag
/// `p` when given (a key that may be missing).
fn chained(i: usize, p: Option<usize>, enabled: bool) -> Flag {
    let prerequisites: Vec<Value> = p
        .map(|p| json!({"key": format!("g{p:03}"), "variation": 1}))
        .into_iter()
        .collect();
    serde_json::from_value(json!({
        "type": "bool", "variants": [{"value": false}, {"value": true}], "default": false,
        "enabled": enabled, "prerequisites": prerequisites, "offVariation": 0,
        "rules": [{"clauses": [{"attribute": "key", "operator": "in", "values": [format!("k{}", i % 5)]}],
            "variation": 1}],
        "fallthrough": {"variation": i as i64 % 2},
    }))
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// With hundreds of flags (many chunks of them), adding, removing and editing flags
    /// anywhere, prerequisites on earlier and later keys included, compiles as the whole
    /// document does: every flag evaluates alike, with the same diagnostics and keys.
    #[test]
    fn adding_and_removing_among_many_flags_is_the_full_compile(
        prerequisites in prop::collection::vec(prop::option::weighted(0.3, 0..400usize), 300),
        steps in prop::collection::vec(
            prop::collection::vec((0..400usize, prop::option::weighted(0.7, prop::option::of(0..400usize)), any::<bool>()), 1..4),
            1..5,
        ),
    ) {
        let mut doc = FlagDocument::default();
        for (i, p) in prerequisites.iter().enumerate() {
            doc.flags.insert(format!("g{:03}", i), Arc::new(chained(i, *p, true)));
        }
        let mut snap = compile(doc.clone());
        for batch in steps {
            let changes: Vec<Change> = (batch.iter())
                .map(|(i, f, enabled)| Change::Flag(
                    format!("g{i:03}"),
                    f.map(|p| Arc::new(chained(*i, p, *enabled))),
                ))
                .collect();
            apply(&mut doc, &changes);
            let r = recompile(&snap, changes);
            let full = compile(doc.clone());
            let keys = |s: &Snapshot| s.flags().map(|f| f.key().to_owned()).collect::<Vec<_>>();
            prop_assert_eq!(keys(&r.snapshot), keys(&full));
            prop_assert_eq!(r.snapshot.diagnostics(), full.diagnostics());
            prop_assert_eq!(r.snapshot.changed_keys(&snap), full.changed_keys(&snap));
            for i in 0..400 {
                let key = format!("g{i:03}");
                for k in 0..5 {
                    let ctx = Context::new(format!("k{k}"));
                    let a = r.snapshot.evaluate(&key, &ctx).to_evaluation(&key, Value::Null);
                    let b = full.evaluate(&key, &ctx).to_evaluation(&key, Value::Null);
                    prop_assert_eq!(a, b, "{}", key);
                }
            }
            snap = r.snapshot;
        }
    }
}
