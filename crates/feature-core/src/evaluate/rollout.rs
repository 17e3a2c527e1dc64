//! Rollouts: a context's bucket picks a weighted variation.

use super::MalformedPart;
use crate::attr::AttrPath;
use crate::bucket::{bucket_of_hash, hash_value};
use crate::context::{Context, Part};
use crate::explain::{Step, Tracer};
use crate::program::Rollout;

#[inline(always)]
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
