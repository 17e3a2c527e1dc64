//! Custom strategies: strategies that Unleash's engine does not implement, answered by
//! closures the application registers by name.
//!
//! Yggdrasil compiles every strategy it does not know into a lookup of an external result
//! named `customStrategy<n>`, `n` counting the toggle's unknown strategies from 1 in the order
//! the server lists them. Before each evaluation of such a toggle the engine calls the
//! registered implementations and hands the results over; a strategy without an
//! implementation counts as not matching, and the evaluation says so (see
//! [`UnleashEngine`](crate::UnleashEngine)).

use feature_core::Context;
use std::collections::HashMap;
use std::sync::Arc;

/// The strategies Yggdrasil implements itself.
pub(crate) const BUILT_IN: [&str; 8] = [
    "default",
    "userWithId",
    "gradualRolloutUserId",
    "gradualRolloutRandom",
    "applicationHostname",
    "gradualRolloutSessionId",
    "remoteAddress",
    "flexibleRollout",
];

/// A custom strategy's implementation: whether the strategy matches `context`, given the
/// strategy's parameters as configured on the server. Constraints and segments on the
/// strategy are checked by the engine; the implementation only decides its own part.
pub type StrategyFn = Arc<dyn Fn(&Context, &HashMap<String, String>) -> bool + Send + Sync>;

/// One unknown strategy of a toggle, as the server lists it.
#[derive(Debug, Clone)]
pub(crate) struct CustomUse {
    /// The strategy's name.
    pub name: String,
    /// Its parameters.
    pub parameters: HashMap<String, String>,
}

/// The unknown strategies of each toggle that has some, in the server's order.
pub(crate) fn index(state: &unleash_yggdrasil::ClientFeatures) -> HashMap<String, Vec<CustomUse>> {
    let mut out = HashMap::new();
    for toggle in &state.features {
        let uses: Vec<CustomUse> = toggle
            .strategies
            .iter()
            .flatten()
            .filter(|s| !BUILT_IN.contains(&s.name.as_str()))
            .map(|s| CustomUse {
                name: s.name.clone(),
                parameters: s.parameters.clone().unwrap_or_default(),
            })
            .collect();
        if !uses.is_empty() {
            out.insert(toggle.name.clone(), uses);
        }
    }
    out
}

/// The external results for one evaluation of a toggle with custom strategies, and whether
/// one of them has no implementation.
pub(crate) fn results(
    uses: &[CustomUse],
    registered: &HashMap<String, StrategyFn>,
    ctx: &Context,
) -> (HashMap<String, bool>, bool) {
    let mut missing = false;
    let results = uses
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let matched = match registered.get(&u.name) {
                Some(f) => f(ctx, &u.parameters),
                None => {
                    missing = true;
                    false
                }
            };
            (format!("customStrategy{}", i + 1), matched)
        })
        .collect();
    (results, missing)
}
