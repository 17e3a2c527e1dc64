//! Round trip of LaunchDarkly's contract data (from `feature-testdata`) through
//! `featurectl import`: for every document of every server-side evaluation file, the imported
//! flags are written as YAML exactly as the binary writes them, read back, compiled, and every
//! one of the 728 evaluations must give the same value, variation index and reason as the
//! direct import and as the file expects. The binary itself imports every document too, and
//! must write the same YAML.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use feature_core::launchdarkly::import;
use feature_core::{compile, parse_document, Format, Snapshot};
use feature_testdata::launchdarkly::{data_sets, run};

#[path = "../../feature-testdata/include/evaluate.rs"]
mod shared;
use shared::evaluate;

#[test]
fn launchdarkly_contract_data_round_trips_through_yaml() {
    let sets = data_sets();
    let work = tempfile::tempdir().unwrap();
    // For each data set: the flags compiled from the YAML, and compiled directly.
    let mut snapshots: Vec<(Snapshot, Snapshot)> = Vec::with_capacity(sets.len());
    for set in &sets {
        let at = format!("{} #{} ({})", set.file, set.index, set.name);
        let direct_doc = import(&set.sdk_data).expect("sdkData imports");
        let yaml = featurectl::import::to_yaml(&direct_doc).expect("YAML is written");

        // The binary writes the very same YAML.
        let input = common::write(
            work.path(),
            &format!("{}.json", set.index),
            &set.sdk_data.to_string(),
        );
        let out = work.path().join(format!("{}.yaml", set.index));
        let r = common::featurectl(
            work.path(),
            &[
                "import",
                "--from",
                "launchdarkly",
                input.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(r.code, 0, "{at}: {r:?}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), yaml, "{at}");

        let parsed = parse_document(&yaml, Format::Yaml)
            .unwrap_or_else(|e| panic!("{at}: YAML does not parse: {e}\n{yaml}"));
        assert_eq!(
            parsed.document, direct_doc,
            "{at}: the YAML reads back differently"
        );
        snapshots.push((parsed.compile(Some("imported.yaml")), compile(direct_doc)));
    }

    let mut differences = Vec::new();
    let report = run(&sets, |set, case| {
        let (from_yaml, direct) = &snapshots[set.index];
        let got_yaml = evaluate(from_yaml, case);
        let got_direct = evaluate(direct, case);
        // Identical (types included) to the direct import; `run` checks it equals the data's
        // expectation by value.
        if got_yaml != got_direct {
            differences.push(format!(
                "{}: {} / {}\n  direct {got_direct}\n  yaml   {got_yaml}",
                set.file, set.name, case.name
            ));
        }
        got_yaml
    });
    println!("round trip: {report}");
    assert_eq!(report.cases, 728, "expected 728 evaluations");
    assert!(
        differences.is_empty(),
        "{} evaluations differ after the YAML round trip from the direct import:\n{}",
        differences.len(),
        differences.join("\n")
    );
    report.assert_all_passed();
}
