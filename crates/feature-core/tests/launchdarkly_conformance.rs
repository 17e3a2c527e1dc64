//! LaunchDarkly's server-side evaluation contract data (728 evaluations, from
//! `feature-testdata`): every flag and segment is imported, every evaluation compared on value,
//! variation index and the whole reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::launchdarkly::import;
use feature_core::{compile, Snapshot};
use feature_testdata::launchdarkly::{data_sets, run};

#[path = "../../feature-testdata/include/evaluate.rs"]
mod shared;
use shared::evaluate;

#[test]
fn launchdarkly_contract_data() {
    let sets = data_sets();
    let snapshots: Vec<Snapshot> = sets
        .iter()
        .map(|set| compile(import(&set.sdk_data).expect("sdkData imports")))
        .collect();
    let report = run(&sets, |set, case| evaluate(&snapshots[set.index], case));
    println!("launchdarkly conformance: {report}");
    assert_eq!(report.cases, 728, "expected 728 evaluations");
    report.assert_all_passed();
}
