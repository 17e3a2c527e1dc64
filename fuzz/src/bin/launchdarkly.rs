//! LaunchDarkly payloads (`{"flags": {...}, "segments": {...}}` or one flag): import, compile,
//! evaluate every flag and check the evaluation invariants. Contexts come from a fixed set
//! plus the payload's own top-level `contexts` array (which the import ignores).

use feature_core::{compile, launchdarkly};
use feature_fuzz::{check_snapshot, contexts, contexts_in};

fn main() {
    let fixed = contexts();
    afl::fuzz!(|data: &[u8]| {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
            return;
        };
        let Ok(doc) = launchdarkly::import(&value) else {
            return;
        };
        let mut ctxs = contexts_in(&value);
        ctxs.extend(fixed.iter().cloned());
        let snapshot = compile(doc);
        check_snapshot(&snapshot, &ctxs);
    });
}
