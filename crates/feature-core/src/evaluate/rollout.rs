//! Rollouts: a context's bucket picks a weighted variation.

use super::MalformedPart;
use crate::attr::AttrPath;
use crate::bucket::{bucket_of_hash, hash_value};
use crate::context::{Context, Part};
use crate::explain::{Step, Tracer};
use crate::program::Rollout;

#[inline]
pub(super) fn hash_of(part: Option<&Part>, by: &AttrPath, prefix: &[u8]) -> u64 {
    // The key first: what nearly every rollout buckets by, without the jump on the path.
    let value = match (part, by) {
        (Some(p), AttrPath::Key) => Some(&p.key),
        (Some(p), by) => by.get(p),
        (None, _) => None,
    };
    match value {
        Some(v) => hash_value(prefix, v),
        None => 0,
    }
}

#[inline(always)]
pub(super) fn rollout<T: Tracer>(
    r: &Rollout,
    ctx: &Context,
    tracer: &mut T,
) -> Result<(u32, bool), MalformedPart> {
    let part = ctx.part_of(&r.kind);
    // An experiment's is the key, set when it was compiled.
    let by = r.bucket_by.as_ref().ok_or(MalformedPart)?;
    let hash = hash_of(part, by, &r.prefix);
    let w = r.pick(hash).ok_or(MalformedPart)?;
    let v = w.variation().ok_or(MalformedPart)?;
    tracer.step(|| Step::Bucket {
        bucket: bucket_of_hash(hash),
        variation: v as usize,
    });
    Ok((v, r.experiment && part.is_some() && !w.untracked))
}

#[cfg(test)]
mod tests {
    use crate::{compile, parse_document, Context, Format};

    /// The variation each of 64 users (keys `u0`…, all on plan `pro`) is served by `flag`.
    fn served(text: &str, flag: &str) -> Vec<Option<usize>> {
        let snapshot = compile(parse_document(text, Format::Json).unwrap().document);
        (0..64)
            .map(|i| {
                let ctx = Context::new(format!("u{i}")).with_attribute("plan", "pro");
                snapshot.evaluate(flag, &ctx).variation_index()
            })
            .collect()
    }

    #[test]
    fn an_experiment_buckets_by_key_whatever_its_bucket_by_says() {
        // One seed for all, so that the flags' keys do not change the buckets.
        let rollout = |extra: &str| {
            format!(
                r#"{{"type": "bool", "fallthrough": {{"rollout": {{{extra}"seed": 7, "variations": [{{"variation": 0, "weight": 50000}}, {{"variation": 1, "weight": 50000}}]}}}}}}"#
            )
        };
        let text = format!(
            r#"{{"flags": {{"by-key": {}, "by-plan": {}, "experiment": {}, "bad-by": {}}}}}"#,
            rollout(""),
            rollout(r#""bucketBy": "plan", "#),
            rollout(r#""kind": "experiment", "bucketBy": "plan", "#),
            rollout(r#""kind": "experiment", "bucketBy": "", "#),
        );
        let by_key = served(&text, "by-key");
        assert!(by_key.contains(&Some(0)) && by_key.contains(&Some(1)));
        // A plain rollout follows its `bucketBy`: one plan, one variation.
        let by_plan = served(&text, "by-plan");
        assert!(by_plan.iter().all(|v| *v == by_plan[0]), "{by_plan:?}");
        // The experiments ignore theirs, even an invalid one.
        assert_eq!(served(&text, "experiment"), by_key);
        assert_eq!(served(&text, "bad-by"), by_key);
    }
}
